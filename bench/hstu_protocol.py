"""Saved models scored as HSTU's published ML-1M figures were: the last event of each user the target, the whole
catalog ranked, and only the ids of the model's input removed from the ranking, HSTU's input being the user's
last 200 events (`generative-recommenders`, `eval_metrics_v2_from_tensors`, `filter_invalid_ids=True`).

    python bench/hstu_protocol.py --dataset ../shared/data/ml-1m \
        --checkpoints outputs/explore/ml-1m/no-validation/seed4* --output bench/results/hstu_protocol_ml-1m.json

Each checkpoint is scored three ways, the model alone (HSTU has no priors), on the same test users:
- `whole_history`: our protocol: the model reads each whole history and every item in it is removed;
- `last_200_removed`: the model reads each whole history, only the items of the last 200 events are removed
  (HSTU's removal; the items of older events stay rankable, so this is never easier than `whole_history`);
- `last_200_read`: the model reads only the last 200 events, and only those are removed (HSTU's reading too).
With validation held out the figures of a checkpoint trained on each user's second-to-last event are not comparable
with HSTU's (which trains on it): pass the checkpoints of `recipes/pretrain.py --hold_out_validation false` for that.
Writes one entry per checkpoint (and the mean ± std over them) to `--output`.
"""

import argparse
import json
import os
import statistics
import sys

import numpy as np
import torch
from accelerate import Accelerator
from transformers import AutoModel

import lsrec_hf  # noqa: F401 - registers the LSRec model type
from lsrec_hf.data import load_data
from lsrec_hf.evaluation.metrics import load_full_ranking_metric
from lsrec_hf.evaluation.rank import evaluate_ranking, scored_batches
from lsrec_hf.training.checkpointing import write_json
from lsrec_hf.training.recipe_utils import make_splits

K_VALUES = (10, 20)


def last_events_removed(model, examples, events, batch_size=256):
    """Metrics with the model reading each whole history and only the items of its last `events` events removed."""
    ranked, targets = [], []
    for rows, scores, batch_targets in scored_batches(model, examples, None, batch_size, exclude_history=False,
                                                      description=f"last {events} removed"):
        for i, row in enumerate(rows):
            scores[i, torch.as_tensor(np.asarray(examples.histories[row][-events:], dtype=np.int64))] = float("-inf")
        ranked.extend(scores.topk(max(K_VALUES), dim=1).indices.tolist())
        targets.extend(batch_targets.tolist())
    return load_full_ranking_metric(keep_in_memory=True).compute(
        predictions=ranked, references=targets, k_values=K_VALUES, num_items=model.config.num_items)


def score_checkpoint(folder, dataset, events, batch_size):
    model = AutoModel.from_pretrained(folder).eval()
    with open(os.path.join(folder, "eval_results.json"), encoding="utf-8") as f:
        trained = json.load(f)
    data = load_data(dataset)
    split = argparse.Namespace(split="leave-one-out", hold_out_validation=trained.get("validated", True))
    _, splits = make_splits(data, split, Accelerator(), catalog=model.catalog, config=model.config)
    alone = {"trend_prior": False, "cooccurrence_prior": False}
    with torch.no_grad():
        ways = {
            "whole_history": evaluate_ranking(model, splits.test, batch_size=batch_size, k_values=K_VALUES, **alone),
            f"last_{events}_removed": last_events_removed(model, splits.test, events, batch_size),
            f"last_{events}_read": evaluate_ranking(model, splits.test, batch_size=batch_size, k_values=K_VALUES,
                                                    max_length=events, **alone),
        }
    return {"checkpoint": folder, "protocol": trained["protocol"], "seed": trained["seed"],
            "epochs_run": trained["epochs_run"], "best_epoch": trained["best_epoch"],
            "train_seconds": trained["train_seconds"], "command": trained.get("command"),
            "num_test_users": len(splits.test),
            "test": {way: {k: v for k, v in m.items() if k in ("hr@10", "ndcg@10", "mrr@10", "hr@20", "ndcg@20")}
                     for way, m in ways.items()},
            "test_as_trained_with_its_priors": trained["test"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="the data set the checkpoints were trained on")
    parser.add_argument("--checkpoints", nargs="+", required=True, help="folders written by recipes/pretrain.py")
    parser.add_argument("--input_events", type=int, default=200, help="HSTU's input length on ML-1M")
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default=None, help="a JSON file for the figures")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    runs = []
    for folder in args.checkpoints:
        if not os.path.isfile(os.path.join(folder, "eval_results.json")):
            parser.error(f"--checkpoints {folder}: no eval_results.json (not a finished recipes/pretrain.py run)")
        runs.append(score_checkpoint(folder, args.dataset, args.input_events, args.batch_size))
        print(json.dumps({way: round(m["ndcg@10"], 4) for way, m in runs[-1]["test"].items()}), folder, flush=True)
    summary = {}
    for way in runs[0]["test"]:
        values = [run["test"][way]["ndcg@10"] for run in runs]
        summary[way] = {"ndcg@10": [statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0],
                        "hr@10": statistics.mean(run["test"][way]["hr@10"] for run in runs), "n": len(values)}
    print("\n| way | NDCG@10 (mean ± std) | HR@10 | n |\n|---|---|---|---|")
    for way, s in summary.items():
        print(f"| {way} | {s['ndcg@10'][0]:.4f} ± {s['ndcg@10'][1]:.4f} | {s['hr@10']:.4f} | {s['n']} |")
    if args.output:
        write_json(args.output, {"what": "test figures of saved models under HSTU's ML-1M evaluation (the model "
                                         "alone; see bench/hstu_protocol.py)",
                                 "machine": "2-core x86_64 CPU, torch 2.13.0 CPU build", "command": " ".join(sys.argv),
                                 "runs": runs, "summary": summary})


if __name__ == "__main__":
    main()
