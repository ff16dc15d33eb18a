"""A trained model's scores plus what is trending at the moment of each request, against each alone.

    python bench/recency_prior.py --dataset ../shared/data/steam --models outputs/bench_quality/steam/default/seed42

For every test user the score of item i is `model score + weight * log(1 + n_i)`, with n_i the item's training
events in the `window` before the test event (strictly before it: `RecentPopular.recent_counts`). The window
(1 day to a year) and the weight are chosen on validation NDCG@10, as the recent-popular baseline's window is;
the test events are never looked at for a choice. Rows: the model alone (weight 0), recent-popular alone, and the
sum. Protocol: leave-one-out by time, full ranking, the user's input history excluded.

Prints a markdown table and writes bench/results/recency_prior_<dataset>.json.
"""

import argparse
import os

import numpy as np
import torch

from common import write_result
import lsrec_hf
from lsrec_hf.data import load_data
from lsrec_hf.evaluation.baselines import DAY, RecentPopular, evaluate_baseline
from lsrec_hf.evaluation.metrics import compute_ranking_metrics
from lsrec_hf.evaluation.rank import mask_history
from lsrec_hf.processing.collator import EvaluationCollator
from lsrec_hf.processing.sequences import build_user_sequences, leave_one_out

WINDOWS_DAYS = (1, 3, 7, 14, 30, 90, 365)
WEIGHTS = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
METRICS = ("hr@10", "ndcg@10", "hr@20", "ndcg@20")


@torch.no_grad()
def model_scores(model, examples, batch_size=256):
    """`[users, items]` float32 scores of `model` for `examples`, the history items at -inf."""
    collator = EvaluationCollator(model.config.segment_length, None)
    model.eval()
    rows = []
    for start in range(0, len(examples), batch_size):
        batch = collator(list(zip(examples.histories[start:start + batch_size],
                                  examples.targets[start:start + batch_size].tolist())))
        scores = model.score_next(batch["input_ids"], batch["attention_mask"]).scores.float()
        rows.append(mask_history(scores, batch["input_ids"]))
    return torch.cat(rows)


def metrics_of(scores, targets, num_items):
    ranked = scores.topk(20, dim=1).indices.tolist()
    return compute_ranking_metrics(ranked, targets, (10, 20), num_items=num_items)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--models", nargs="+", required=True, help="trained checkpoints (recipes/pretrain.py outputs)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    data = load_data(args.dataset)
    splits = leave_one_out(build_user_sequences(data.interactions, data.catalog))
    num_items = len(data.catalog)
    counts = {}  # window -> (valid, test) log(1 + recent counts)
    for days in WINDOWS_DAYS:
        prior = RecentPopular(splits.train, splits.train_times, num_items, days * DAY)
        counts[days] = tuple(prior.recent_counts(part.target_times).log1p().float() for part in (splits.valid, splits.test))
    recent, found = RecentPopular.tuned(splits, num_items)
    rows = [{"model": "recent-popular", "window_days": recent.window / DAY,
             "test": {m: evaluate_baseline(recent, splits.test)[m] for m in METRICS}}]

    for path in args.models:
        model = lsrec_hf.LSRecForSequentialRecommendation.from_pretrained(path)
        if model.catalog.item_ids != data.catalog.item_ids:
            raise ValueError(f"{path}: its catalog is not the catalog of {args.dataset}")
        valid, test = model_scores(model, splits.valid), model_scores(model, splits.test)
        alone = metrics_of(test, splits.test.targets, num_items)
        rows.append({"model": path, "weight": 0.0, "test": {m: alone[m] for m in METRICS}})
        grid = {(days, weight): metrics_of(valid + weight * counts[days][0], splits.valid.targets, num_items)["ndcg@10"]
                for days in WINDOWS_DAYS for weight in WEIGHTS}
        days, weight = max(grid, key=grid.get)
        fused = metrics_of(test + weight * counts[days][1], splits.test.targets, num_items)
        rows.append({"model": f"{path} + recent popularity", "window_days": days, "weight": weight,
                     "valid_ndcg@10": grid[(days, weight)], "test": {m: fused[m] for m in METRICS}})
        print(f"[recency_prior] {path}: alone {alone['ndcg@10']:.4f}, + log(1 + events in {days} days) x {weight}: "
              f"{fused['ndcg@10']:.4f}", flush=True)

    print(f"\n### {data.name}: leave-one-out by time, full ranking, history excluded\n\n"
          "| model | window (days) | weight | HR@10 | NDCG@10 |\n|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['model']} | {row.get('window_days', '–')} | {row.get('weight', '–')} | "
              f"{row['test']['hr@10']:.4f} | {row['test']['ndcg@10']:.4f} |")
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", f"recency_prior_{data.name}.json")
    write_result(out, {"dataset": data.name, "num_items": num_items,
                       "protocol": "leave-one-out by time, full ranking, history excluded; window and weight chosen "
                                   "on validation NDCG@10",
                       "recent_popular_valid_ndcg10_by_window_days": {f"{w / DAY:g}": v for w, v in found.items()},
                       "rows": rows})
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
