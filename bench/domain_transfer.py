"""A new domain: one checkpoint pretrained on several catalogs, then zero-shot, LoRA, full fine-tuning and training
from scratch on a held-out one, at 100 %, 10 % and 1 % of its training users.

    python bench/domain_transfer.py --base outputs/lsrec-multi --target ../shared/data/amazon-office --seeds 42 43 44

`--base` is a checkpoint of `recipes/pretrain.py --dataset a,b,c` (text-only items, a domain token), e.g.

    python recipes/pretrain.py --dataset ../shared/data/amazon-beauty,../shared/data/amazon-toys,../shared/data/steam \\
        --max_users 2000 --loss sampled --output_dir outputs/lsrec-multi

On the target (leave-one-out by time, full ranking over the target's catalog, history items excluded):
- zero-shot: the pretrained model put onto the target's catalog (every item its text), no training at all;
- most-popular, counted on the training events of the users kept;
- from scratch: today's single-domain default (text+id items, output bias) trained on the kept users;
- LoRA (`recipes/finetune.py --new_catalog true`'s defaults) and full fine-tuning from the pretrained checkpoint;
- the same two with a fresh id embedding and output bias per target item (`--new_item_ids true`), zero at first
  and trained in full beside the adapter: what from scratch has and a text-only checkpoint lacks.
A fraction keeps that share of the target's users for training (a seeded sample, per seed); validation and test
are every user's, so each way is scored on the same test events. Prints a markdown table, writes
bench/results/domain_transfer.json (written after every run; a run already there for the same base, same path and
same zero-shot metrics, is not repeated, so a stopped bench continues where it was).
"""

import argparse
import copy
import json
import os
import shutil
import statistics
import time

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from common import write_result
import lsrec_hf
from lsrec_hf.data import load_data
from lsrec_hf.data.domains import DOMAIN, with_domain
from lsrec_hf.evaluation import evaluate_ranking
from lsrec_hf.evaluation.baselines import MostPopular, evaluate_baseline
from lsrec_hf.processing.context import model_event_features
from lsrec_hf.processing.sequences import Splits, build_user_sequences, leave_one_out
from lsrec_hf.text import DEFAULT_TEXT_ENCODER, encode_texts
from lsrec_hf.training import TrainingArguments, train
from lsrec_hf.training.finetuning import add_lora_adapter, default_lora_learning_rate, new_item_lora_modules

WAYS = ["zero-shot", "most-popular", "from scratch", "LoRA", "full fine-tuning", "LoRA + new ids",
        "full fine-tuning + new ids"]
METRICS = ["hr@10", "ndcg@10", "mrr@10", "hr@20", "ndcg@20"]


def kept_users(splits, fraction, seed):
    """`splits` whose training part holds a seeded `fraction` of the users (validation and test stay whole)."""
    if fraction >= 1.0:
        return splits
    rng = np.random.default_rng(seed)
    keep = np.flatnonzero(rng.random(len(splits.train)) < fraction)
    if len(keep) == 0:
        keep = np.array([0])
    contexts = splits.train_context
    return Splits(train=[splits.train[i] for i in keep], valid=splits.valid, test=splits.test,
                  protocol=f"{splits.protocol}, {len(keep)} training users ({100 * fraction:g} %)",
                  train_context=None if contexts is None else [contexts[i] for i in keep])


def target_splits(data, catalog, config=None):
    """Leave-one-out splits of the target over `catalog`, with the base's side features when `config` has them."""
    return leave_one_out(build_user_sequences(data.interactions, catalog, model_event_features(data, config)))


def fit(model, splits, output_dir, seed, args, learning_rate):
    set_seed(seed)
    shutil.rmtree(output_dir, ignore_errors=True)
    start = time.perf_counter()
    train(model, splits, TrainingArguments(output_dir=output_dir, num_epochs=args.num_epochs, seed=seed,
                                           learning_rate=learning_rate), Accelerator(cpu=True))
    return time.perf_counter() - start


def adapter_bytes(model, directory):
    model.save_pretrained(directory)
    return sum(os.path.getsize(os.path.join(directory, f)) for f in os.listdir(directory) if f.endswith(".safetensors"))


def summarize(runs, fractions):
    summary = {}
    for fraction in fractions:
        for way in WAYS:
            rows = [r for r in runs if (r["fraction"], r["way"]) == (fraction, way)]
            if not rows:
                continue
            entry = {m: (statistics.fmean(v := [r["test"][m] for r in rows]), statistics.stdev(v) if len(v) > 1 else 0.0)
                     for m in METRICS}
            entry.update(n=len(rows), trainable_parameters=rows[0].get("trainable_parameters", 0),
                         saved_bytes=rows[0].get("saved_bytes", 0),
                         train_seconds=statistics.fmean(r.get("train_seconds", 0.0) for r in rows))
            summary[f"{fraction:g} / {way}"] = entry
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="a checkpoint of recipes/pretrain.py --dataset a,b,c")
    parser.add_argument("--target", required=True, help="the held-out domain's data (a folder load_data reads)")
    parser.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.1, 0.01])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--ways", nargs="+", default=WAYS, choices=WAYS)
    parser.add_argument("--num_epochs", type=int, default=TrainingArguments.num_epochs)
    parser.add_argument("--lora_r", type=int, default=2, help="rank of the LoRA ways' adapter")
    parser.add_argument("--lora_alpha", type=int, default=None, help="LoRA scale numerator (default: 2 x rank)")
    parser.add_argument("--lora_learning_rate", type=float, default=None,
                        help="of the LoRA ways (default: recipes/finetune.py's, 3e-3 with new ids, 1e-2 without)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--work_dir", default="outputs/bench_domain_transfer")
    parser.add_argument("--out", default="bench/results/domain_transfer.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    base = lsrec_hf.LSRecForSequentialRecommendation.from_pretrained(args.base)
    pretraining = sorted(set(base.catalog.attributes.get(DOMAIN, [])))
    data = with_domain(load_data(args.target))
    catalog = data.catalog
    content = encode_texts(catalog.texts, base.config.text_encoder, show_progress_bar=False)
    moved = copy.deepcopy(base).replace_catalog(catalog, torch.as_tensor(content))
    # the same, with a fresh (zero) id embedding and output bias per target item, trained beside the adapter
    moved_ids = copy.deepcopy(base).replace_catalog(catalog, torch.as_tensor(content), new_item_ids=True)
    transfer_splits = target_splits(data, catalog, moved.config)
    scratch_splits = target_splits(data, catalog)
    print(f"[domain_transfer] base pretrained on {pretraining}; target {data.name}: {len(catalog)} items, "
          f"{len(transfer_splits.train)} users", flush=True)

    # A run already in --out is kept and not repeated, so a stopped bench continues where it was; only when the
    # base there is this one: same path and the same zero-shot metrics (a base retrained at that path differs).
    zero_shot = evaluate_ranking(moved, transfer_splits.test)
    runs, done = [], set()
    if os.path.exists(args.out):
        with open(args.out, encoding="utf-8") as f:
            earlier = json.load(f)
        earlier_zero_shot = next((r["test"] for r in earlier["runs"] if r["way"] == "zero-shot"), None)
        if earlier.get("base") == args.base and earlier_zero_shot is not None and all(
                abs(earlier_zero_shot[m] - zero_shot[m]) < 1e-9 for m in METRICS):
            runs = earlier["runs"]
            done = {(r["fraction"], r["way"], r["seed"]) for r in runs}
        else:
            print(f"[domain_transfer] {args.out} holds runs of another base (path or zero-shot metrics differ): "
                  f"starting a new report", flush=True)

    def record(run):
        runs.append(run)
        print(f"[domain_transfer] {run['fraction']:g} {run['way']} seed {run['seed']}: NDCG@10 "
              f"{run['test']['ndcg@10']:.4f} ({run.get('train_seconds', 0):.0f}s)", flush=True)
        write_result(args.out, {"base": args.base, "pretraining_domains": pretraining, "target": args.target,
                                "protocol": "leave-one-out, full ranking over the target's catalog, history items excluded",
                                "seeds": args.seeds, "fractions": args.fractions, "num_epochs": args.num_epochs,
                                "lora": {"r": args.lora_r, "alpha": args.lora_alpha or 2 * args.lora_r,
                                         "learning_rate": args.lora_learning_rate or "3e-3 with new ids, 1e-2 without"},
                                "summary": summarize(runs, [0.0, *args.fractions]), "runs": runs})

    if "zero-shot" in args.ways and (0.0, "zero-shot", None) not in done:
        record({"fraction": 0.0, "way": "zero-shot", "seed": None, "test": zero_shot})
    for fraction in args.fractions:
        for seed in args.seeds:
            kept = kept_users(scratch_splits, fraction, seed)
            if "most-popular" in args.ways and (fraction, "most-popular", seed) not in done:
                popular = MostPopular(kept.train, len(catalog))
                record({"fraction": fraction, "way": "most-popular", "seed": seed,
                        "test": evaluate_baseline(popular, kept.test)})
            for way in WAYS[2:]:
                if way not in args.ways or (fraction, way, seed) in done:
                    continue
                if way == "from scratch":
                    set_seed(seed)
                    model = lsrec_hf.LSRecForSequentialRecommendation.from_catalog(
                        catalog, content, text_encoder=DEFAULT_TEXT_ENCODER)
                    splits = kept
                else:
                    model = copy.deepcopy(moved_ids if way.endswith("new ids") else moved)
                    splits = kept_users(transfer_splits, fraction, seed)
                    lora = {"r": args.lora_r, "alpha": args.lora_alpha or 2 * args.lora_r}
                    if way == "LoRA":
                        model = add_lora_adapter(model, **lora)
                    elif way == "LoRA + new ids":
                        targets, to_save = new_item_lora_modules()
                        model = add_lora_adapter(model, **lora, target_modules=targets, modules_to_save=to_save)
                trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
                output_dir = os.path.join(args.work_dir, f"{fraction:g}", way.replace(" ", "_"), f"seed{seed}")
                seconds = fit(model, splits, output_dir, seed, args,
                              (args.lora_learning_rate or default_lora_learning_rate(way.endswith("new ids")))
                              if way.startswith("LoRA") else TrainingArguments.learning_rate)
                size = adapter_bytes(model, os.path.join(output_dir, "final"))
                record({"fraction": fraction, "way": way, "seed": seed, "test": evaluate_ranking(model, splits.test),
                        "trainable_parameters": trainable, "saved_bytes": size, "train_seconds": seconds,
                        "training_users": len(splits.train)})

    summary = summarize(runs, [0.0, *args.fractions])
    print("\n| training users | way | n | HR@10 | NDCG@10 | trainable params | saved MiB | train s |\n"
          "|---|---|---|---|---|---|---|---|")
    for key, entry in summary.items():
        fraction, way = key.split(" / ")
        share = "none" if float(fraction) == 0 else f"{100 * float(fraction):g} %"
        print(f"| {share} | {way} | {entry['n']} | " + " | ".join(
            f"{entry[m][0]:.4f} ± {entry[m][1]:.4f}" for m in ("hr@10", "ndcg@10"))
            + f" | {entry['trainable_parameters']:,} | {entry['saved_bytes'] / 2**20:.2f} | {entry['train_seconds']:.0f} |")


if __name__ == "__main__":
    main()
