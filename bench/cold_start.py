"""Cold-start items: items nobody interacted with during training, ranked through their text.

    python bench/cold_start.py --seeds 42 43 44 --threads 1     # MovieLens-100K
    python bench/cold_start.py --dataset ../shared/data/amazon-office --seeds 42 --out bench/results/cold_start_amazon-office.json
    python bench/cold_start.py --dataset path/to/ml-100k-slice --seeds 1 --num_epochs 2   # a quick check
    python bench/cold_start.py --variants "text+id, id dropout 0.5" --keep_runs   # add a variant to the last result

With `--keep_runs`, `--out` is read again before it is written, so processes training different variants (or seeds)
at once can share it.

A fixed, seeded `--cold_fraction` of the items is held out: every event of those items is removed from training
(and from validation), and the model is trained on the remaining catalog. The held-out items then arrive as
new items (`extend_catalog`: their id embedding and output bias are what their text predicts, regressed on the
warm items'; until 2026-12-04 they were zero and the mean bias, which `bench/cold_start_init.py` compares), and the whole test split is ranked over the full catalog, history items excluded
(the same leave-one-out test events as every other benchmark). Metrics are reported separately on test events
whose target is a cold item and on the rest.

Compared: text+id items (the default), text+id trained with `item_id_dropout` 0.2 or 0.5 (an item's id embedding
left out with that probability, so that the model learns to rank items by their text alone, as DropoutNet does),
text-only items (no id embedding at all: a cold item is made like every warm one), id-only items (a cold item is
then only its mean bias: chance among the cold), most-popular (cold items have no training events, so it cannot rank them above any warm item), and an
oracle most-popular that counts every event of the data set, test events of cold items included: information no
real system has for a new item, so it is the hard popularity bar for the cold targets.
Prints a markdown table, writes bench/results/cold_start.json.
"""

import argparse
import json
import os
import shlex
import statistics
import sys
import time

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from common import write_result
import lsrec_hf
from lsrec_hf.evaluation.baselines import MostPopular, rank_baseline
from lsrec_hf.processing.catalog import ItemCatalog
from lsrec_hf.data import load_data
from lsrec_hf.evaluation import rank_examples
from lsrec_hf.evaluation.metrics import compute_ranking_metrics
from lsrec_hf.processing.sequences import EvalExamples, Splits, build_user_sequences, leave_one_out
from lsrec_hf.text import DEFAULT_TEXT_ENCODER, encode_texts
from lsrec_hf.training import TrainingArguments, train

# trained variants: (item tokens, item_id_dropout)
MODELS = {"text+id": ("text+id", 0.0), "text+id, id dropout 0.2": ("text+id", 0.2),
          "text+id, id dropout 0.5": ("text+id", 0.5), "text-only": ("text", 0.0), "id-only": ("id", 0.0)}
DEFAULT_MODELS = ["text+id", "text+id, id dropout 0.5", "id-only"]
VARIANTS = [*MODELS, "most-popular", "most-popular (oracle: all events)"]
METRICS = ["hr@10", "ndcg@10", "mrr@10", "hr@20", "ndcg@20"]


def draw_cold_items(num_items, fraction, seed):
    """The fixed, seeded choice of held-out items: a boolean mask over the catalog."""
    cold = np.zeros(num_items, dtype=bool)
    cold[np.random.default_rng(seed).choice(num_items, size=int(round(fraction * num_items)), replace=False)] = True
    return cold


def reorder_catalog(catalog, cold):
    """The catalog with warm items first (the training catalog) and the cold ones after (the catalog growth)."""
    order = [i for i in range(len(catalog)) if not cold[i]] + [i for i in range(len(catalog)) if cold[i]]
    pick = lambda values: [values[i] for i in order]  # noqa: E731
    return ItemCatalog(pick(catalog.item_ids), pick(catalog.titles), pick(catalog.texts),
                       {k: pick(v) for k, v in catalog.attributes.items()}), order


def warm_splits(splits, num_warm):
    """Training parts without cold events; validation restricted to warm targets and warm history items."""
    valid = splits.valid
    rows = [i for i, t in enumerate(valid.targets) if t < num_warm and (valid.histories[i] < num_warm).any()]
    valid = EvalExamples([valid.user_ids[i] for i in rows], [valid.histories[i][valid.histories[i] < num_warm] for i in rows],
                         valid.targets[rows])
    train_parts = [seq[seq < num_warm] for seq in splits.train]
    return Splits(train=[s for s in train_parts if len(s)], valid=valid, test=splits.test, protocol=splits.protocol)


def split_metrics(ranked, targets, num_warm, num_items):
    targets = np.asarray(targets)
    result = {}
    for name, rows in (("cold", np.flatnonzero(targets >= num_warm)), ("warm", np.flatnonzero(targets < num_warm))):
        result[name] = compute_ranking_metrics([ranked[r] for r in rows], targets[rows], (10, 20), num_items)
    return result


def run_model(variant, seed, catalog, content, num_warm, splits, args):
    tokens, id_dropout = MODELS[variant]
    use_text = tokens != "id"
    set_seed(seed)
    config = lsrec_hf.LSRecConfig(num_items=num_warm, content_dim=content.shape[1] if use_text else 0,
                                  use_content=use_text, text_encoder=DEFAULT_TEXT_ENCODER if use_text else None,
                                  use_item_ids=tokens != "text", item_id_dropout=id_dropout)
    model = lsrec_hf.LSRecForSequentialRecommendation(config)
    if use_text:
        model.model.embeddings.set_content_embeddings(content[:num_warm])  # and the text statistics of the warm items
    model.catalog = ItemCatalog(catalog.item_ids[:num_warm], catalog.titles[:num_warm], catalog.texts[:num_warm],
                                {k: v[:num_warm] for k, v in catalog.attributes.items()})
    start = time.perf_counter()
    name = "".join(c if c.isalnum() else "_" for c in variant)
    train(model, warm_splits(splits, num_warm), TrainingArguments(
        output_dir=os.path.join(args.work_dir, f"{name}_seed{seed}"), num_epochs=args.num_epochs, seed=seed),
        Accelerator(cpu=True))
    seconds = time.perf_counter() - start
    model.extend_catalog(catalog, content[num_warm:] if use_text else None)  # the cold items arrive
    ranked, targets, _ = rank_examples(model, splits.test, top_k=20)
    return split_metrics(ranked, targets, num_warm, len(catalog)), seconds


def kept_runs(args, cold_ids):
    """The trained runs and commands already in `--out` (with `--keep_runs`; the same cold items or an error)."""
    if not (args.keep_runs and os.path.exists(args.out)):
        return [], []
    with open(args.out, encoding="utf-8") as f:
        previous = json.load(f)
    if previous["cold_item_ids"] != cold_ids:
        raise SystemExit(f"{args.out} holds runs on other cold items; drop --keep_runs or choose another --out")
    return [r for r in previous["runs"] if r["seed"] is not None], previous.get("commands", [previous["command"]])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--cold_fraction", type=float, default=0.15)
    parser.add_argument("--cold_seed", type=int, default=0, help="the fixed choice of cold items")
    parser.add_argument("--num_epochs", type=int, default=TrainingArguments.num_epochs)
    parser.add_argument("--variants", nargs="+", default=DEFAULT_MODELS, choices=list(MODELS), help="models to train")
    parser.add_argument("--keep_runs", action="store_true",
                        help="keep the runs already in --out (same cold items) and only add the missing ones")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--work_dir", default="outputs/bench_cold_start")
    parser.add_argument("--out", default="bench/results/cold_start.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    data = load_data(args.dataset)
    cold = draw_cold_items(len(data.catalog), args.cold_fraction, args.cold_seed)
    catalog, order = reorder_catalog(data.catalog, cold)
    num_warm = int((~cold).sum())
    content = encode_texts(catalog.texts, DEFAULT_TEXT_ENCODER, show_progress_bar=False)
    sequences = build_user_sequences(data.interactions, catalog)
    splits = leave_one_out(sequences)
    cold_targets = int((splits.test.targets >= num_warm).sum())
    print(f"[cold_start] {len(cold) - num_warm} cold items of {len(cold)}; {cold_targets} of {len(splits.test)} "
          f"test targets are cold", flush=True)

    cold_ids = [data.catalog.item_ids[i] for i in np.flatnonzero(cold)]
    kept, commands = kept_runs(args, cold_ids)
    runs = []
    popular = MostPopular(warm_splits(splits, num_warm).train, len(catalog))
    ranked = rank_baseline(popular, splits.test, top_k=20)
    runs.append({"variant": "most-popular", "seed": None, "train_seconds": 0.0,
                 "metrics": split_metrics(ranked, splits.test.targets, num_warm, len(catalog))})
    oracle = MostPopular(sequences.items, len(catalog))
    ranked = rank_baseline(oracle, splits.test, top_k=20)
    runs.append({"variant": "most-popular (oracle: all events)", "seed": None, "train_seconds": 0.0,
                 "metrics": split_metrics(ranked, splits.test.targets, num_warm, len(catalog))})
    runs += kept
    for seed in args.seeds:
        for variant in args.variants:
            if any((r["variant"], r["seed"]) == (variant, seed) for r in runs):
                continue
            metrics, seconds = run_model(variant, seed, catalog, content, num_warm, splits, args)
            runs.append({"variant": variant, "seed": seed, "metrics": metrics, "train_seconds": seconds})
            print(f"[cold_start] {variant} seed {seed}: cold NDCG@10 {metrics['cold']['ndcg@10']:.4f}, "
                  f"warm {metrics['warm']['ndcg@10']:.4f} ({seconds:.0f}s)", flush=True)

    if args.keep_runs:  # read again: another process may have added its variants to --out meanwhile
        later, commands = kept_runs(args, cold_ids)
        runs += [r for r in later if not any((r["variant"], r["seed"]) == (q["variant"], q["seed"]) for q in runs)]
    summary = {}
    for variant in [v for v in VARIANTS if any(r["variant"] == v for r in runs)]:
        rows = [r for r in runs if r["variant"] == variant]
        summary[variant] = {part: {m: (statistics.fmean(v := [r["metrics"][part][m] for r in rows]),
                                       statistics.stdev(v) if len(v) > 1 else 0.0) for m in METRICS}
                            for part in ("cold", "warm")}
        summary[variant]["n"] = len(rows)
    print(f"\n| items | test events ({cold_targets} cold, {len(splits.test) - cold_targets} warm) | n | HR@10 | NDCG@10 | "
          "MRR@10 | HR@20 | NDCG@20 |\n|---|---|---|---|---|---|---|---|")
    for variant, entry in summary.items():
        for part in ("cold", "warm"):
            print(f"| {variant} | {part} targets | {entry['n']} | "
                  + " | ".join(f"{entry[part][m][0]:.4f} ± {entry[part][m][1]:.4f}" for m in METRICS) + " |")
    ratios = {}
    for model in (m for m in MODELS if MODELS[m][0] != "id" and m in summary):
        for popular in ("most-popular", "most-popular (oracle: all events)"):
            base = summary[popular]["cold"]["ndcg@10"][0]
            ratio = ratios[f"{model} / {popular}"] = summary[model]["cold"]["ndcg@10"][0] / base if base > 0 else None
            print(f"cold NDCG@10, {model} / {popular}: "
                  + ("undefined (it scores 0 on cold targets)" if ratio is None else f"{ratio:.1f}x"))
    seeds = sorted({r["seed"] for r in runs if r["seed"] is not None})
    write_result(args.out, {"dataset": args.dataset, "seeds": seeds, "cold_fraction": args.cold_fraction,
                            "cold_seed": args.cold_seed, "num_cold_items": int(cold.sum()),
                            "cold_test_targets": cold_targets, "num_epochs": args.num_epochs,
                            "cold_item_ids": cold_ids, "commands": [*commands, shlex.join(["python", *sys.argv])],
                            "summary": summary, "runs": runs, "cold_ndcg@10_ratios": ratios})


if __name__ == "__main__":
    main()
