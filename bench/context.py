"""Does context help? MovieLens-100K with genre-shelf scenarios and time-of-day context, over seeds.

    python bench/context.py --seeds 42 43 44 --threads 1
    python bench/context.py --dataset path/to/ml-100k-slice --seeds 1 --num_epochs 2   # a quick check

Scenarios: every item belongs to one of three shelves by its genres (the shelf holding most of them, ties in
the order below); an event's scenario is the shelf its item is shown on. A test event is evaluated under its
own shelf. The scenario is derived from the target item's own genres, so it carries label information: the
multi-scenario and per-shelf rows are oracle settings (what a site that knows which genre row it fills would get),
not a result a system could claim. Only the comparison between them (one shared model vs one model per shelf, both
told the shelf) and the time-context row (no label information) are fair measurements.

Variants, all the main job's model and training loop (defaults unless named), same leave-one-out test events,
full ranking over the whole catalog with history items excluded:
  * no context;
  * time context: hour of day and weekday of every event (UTC);
  * one multi-scenario model: the shelf as context of each event plus the target-scenario token;
  * one model per scenario: each trained only on its shelf's events, tested on its shelf's test events with the
    history restricted to that shelf (what separate per-surface models see).
Prints a markdown table (overall and per shelf, mean ± std), writes bench/results/context.json and context.png.
"""

import argparse
import os
import statistics
import time

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from common import SHELVES, item_shelves, write_result
import lsrec_hf
from lsrec_hf.processing.context import build_vocab, encode_features, feature_columns
from lsrec_hf.data import load_data
from lsrec_hf.evaluation import rank_examples
from lsrec_hf.evaluation.metrics import compute_ranking_metrics
from lsrec_hf.processing.sequences import EvalExamples, Splits, build_user_sequences, leave_one_out
from lsrec_hf.text import DEFAULT_TEXT_ENCODER, encode_texts
from lsrec_hf.training import TrainingArguments, train

VARIANTS = ["no context", "time context", "multi-scenario", "per-scenario models"]


def make_model(catalog, content, feature_vocab=None, scenario=None):
    return lsrec_hf.LSRecForSequentialRecommendation.from_catalog(
        catalog, content, text_encoder=DEFAULT_TEXT_ENCODER, context_vocab=feature_vocab, scenario_feature=scenario)


def fit(model, splits, args, seed, output_dir):
    set_seed(seed)
    train_args = TrainingArguments(output_dir=output_dir, num_epochs=args.num_epochs, seed=seed)
    start = time.perf_counter()
    train(model, splits, train_args, Accelerator(cpu=True))
    return time.perf_counter() - start


def ranked_by_shelf(model, examples, shelf_of_item):
    ranked, targets, _, positions = rank_examples(model, examples, top_k=20, return_positions=True)
    shelves = shelf_of_item[np.asarray(targets)]
    return ranked, targets, shelves


def metrics_by_shelf(ranked, targets, shelves, num_items):
    result = {"all": compute_ranking_metrics(ranked, targets, (10, 20), num_items)}
    for shelf in SHELVES:
        rows = np.flatnonzero(shelves == shelf)
        result[shelf] = compute_ranking_metrics([ranked[r] for r in rows], [targets[r] for r in rows], (10, 20), num_items)
    return result


def restrict(splits, keep_item):
    """Each user's training part and test history restricted to the items `keep_item` marks; tests on its targets."""
    test = splits.test
    rows = [i for i, target in enumerate(test.targets) if keep_item[target]]
    histories = [test.histories[i][keep_item[test.histories[i]]] for i in rows]
    rows, histories = zip(*[(i, h) for i, h in zip(rows, histories) if len(h)])
    examples = EvalExamples([test.user_ids[i] for i in rows], list(histories), test.targets[list(rows)])
    valid = splits.valid
    valid_rows = [i for i, t in enumerate(valid.targets) if keep_item[t] and keep_item[valid.histories[i]].any()]
    valid_examples = EvalExamples([valid.user_ids[i] for i in valid_rows],
                                  [valid.histories[i][keep_item[valid.histories[i]]] for i in valid_rows],
                                  valid.targets[valid_rows])
    train_parts = [seq[keep_item[seq]] for seq in splits.train]
    return Splits(train=[s for s in train_parts if len(s)], valid=valid_examples, test=examples, protocol=splits.protocol)


def run_variant(variant, seed, data, content, shelf_of_item, args):
    output_dir = os.path.join(args.work_dir, variant.replace(" ", "_"), f"seed{seed}")
    catalog, num_items = data.catalog, len(data.catalog)
    if variant == "per-scenario models":
        ranked, targets, shelves, seconds = [], [], [], 0.0
        base = leave_one_out(build_user_sequences(data.interactions, catalog))
        for shelf in SHELVES:
            splits = restrict(base, shelf_of_item == shelf)
            model = make_model(catalog, content)
            seconds += fit(model, splits, args, seed, os.path.join(output_dir, shelf))
            r, t, s = ranked_by_shelf(model, splits.test, shelf_of_item)
            ranked += r
            targets += t
            shelves += list(s)
        return metrics_by_shelf(ranked, targets, np.asarray(shelves), num_items), seconds

    features = {"no context": [], "time context": ["hour", "weekday"], "multi-scenario": ["shelf"]}[variant]
    vocab = None
    encoded = None
    if features:
        frame = feature_columns(data, features)
        vocab = {name: build_vocab(frame[name]) for name in features}
        encoded = encode_features(frame, {name: vocab[name] for name in sorted(vocab)})
    splits = leave_one_out(build_user_sequences(data.interactions, catalog, encoded))
    model = make_model(catalog, content, vocab, "shelf" if variant == "multi-scenario" else None)
    seconds = fit(model, splits, args, seed, output_dir)
    ranked, targets, shelves = ranked_by_shelf(model, splits.test, shelf_of_item)
    return metrics_by_shelf(ranked, targets, shelves, num_items), seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS)
    parser.add_argument("--num_epochs", type=int, default=TrainingArguments.num_epochs)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--work_dir", default="outputs/bench_context")
    parser.add_argument("--out", default="bench/results/context.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    data = load_data(args.dataset)
    shelf_of_item = item_shelves(data.catalog)
    # the scenario of an event is the shelf of its item: a column of the interactions
    index = {item_id: i for i, item_id in enumerate(data.catalog.item_ids)}
    data.interactions = data.interactions.add_column(
        "shelf", [shelf_of_item[index[i]] for i in data.interactions["item_id"]])
    content = encode_texts(data.catalog.texts, DEFAULT_TEXT_ENCODER, show_progress_bar=False)

    runs = []
    for seed in args.seeds:
        for variant in args.variants:
            metrics, seconds = run_variant(variant, seed, data, content, shelf_of_item, args)
            runs.append({"variant": variant, "seed": seed, "metrics": metrics, "train_seconds": seconds})
            print(f"[context] {variant} seed {seed}: NDCG@10 {metrics['all']['ndcg@10']:.4f} ({seconds:.0f}s)", flush=True)

    groups = ["all", *SHELVES]
    summary = {}
    for variant in args.variants:
        rows = [r for r in runs if r["variant"] == variant]
        summary[variant] = {g: {m: (statistics.fmean(v := [r["metrics"][g][m] for r in rows]),
                                    statistics.stdev(v) if len(v) > 1 else 0.0)
                                for m in ("hr@10", "ndcg@10", "mrr@10")} for g in groups}
        summary[variant]["test_users"] = {g: rows[0]["metrics"][g]["num_users"] for g in groups}
    header = " | ".join(f"NDCG@10 {g}" for g in groups)
    print(f"\n| variant | {header} |\n|---|" + "---|" * len(groups))
    for variant, entry in summary.items():
        print(f"| {variant} | " + " | ".join(f"{entry[g]['ndcg@10'][0]:.4f} ± {entry[g]['ndcg@10'][1]:.4f}"
                                             for g in groups) + " |")
    write_result(args.out, {"dataset": args.dataset, "seeds": args.seeds, "num_epochs": args.num_epochs,
                            "shelves": {k: sorted(v) for k, v in SHELVES.items()}, "summary": summary, "runs": runs})
    plot(summary, groups, os.path.splitext(args.out)[0] + ".png")


def plot(summary, groups, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(summary)
    for i, (variant, entry) in enumerate(summary.items()):
        xs = np.arange(len(groups)) + i * width
        ax.bar(xs, [entry[g]["ndcg@10"][0] for g in groups], width, yerr=[entry[g]["ndcg@10"][1] for g in groups],
               capsize=3, label=variant)
    ax.set_xticks(np.arange(len(groups)) + width * (len(summary) - 1) / 2, groups)
    ax.set_ylabel("test NDCG@10 (mean ± std)")
    ax.set_title("MovieLens-100K: context and scenarios (shelf = genre family of the target)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
