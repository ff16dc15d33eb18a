"""A trained model's scores plus what is trending at the moment of each request, against each alone.

    python bench/recency_prior.py --dataset ../shared/data/steam --models outputs/bench_quality/steam/default/seed42

For every test user the score of item i is `model score + weight * log(1 + r_i) + popularity_weight *
log(1 + p_i)`, with r_i the item's training events in the `window` before the test event and p_i all its training
events before it (strictly before): the model's trend prior
(`lsrec_hf.model.trend_prior`), whose window and weights `calibrate_trend_prior` chooses on validation NDCG@10, as
the recent-popular baseline's window is; the test events are never looked at for a choice. It is what
`recipes/pretrain.py` does after training (`--trend_prior true`, the default); this script applies it to
checkpoints trained without it. Rows: the model alone (weight 0), recent-popular alone, and the
sum. Protocol: leave-one-out by time, full ranking, the user's input history excluded.

Prints a markdown table and writes bench/results/recency_prior_<dataset>.json.
"""

import argparse
import os

import torch

from common import write_result
import lsrec_hf
from lsrec_hf.data import load_data
from lsrec_hf.evaluation import evaluate_ranking
from lsrec_hf.evaluation.baselines import DAY, RecentPopular, evaluate_baseline
from lsrec_hf.evaluation.trend_calibration import calibrate_trend_prior
from lsrec_hf.processing.context import model_event_features
from lsrec_hf.processing.sequences import build_user_sequences, leave_one_out

METRICS = ("hr@10", "ndcg@10", "hr@20", "ndcg@20")


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
    recent, found = RecentPopular.tuned(splits, num_items)
    rows = [{"model": "recent-popular", "window_days": recent.window / DAY,
             "test": {m: evaluate_baseline(recent, splits.test)[m] for m in METRICS}}]

    for path in args.models:
        model = lsrec_hf.LSRecForSequentialRecommendation.from_pretrained(path)
        if model.catalog.item_ids != data.catalog.item_ids:
            raise ValueError(f"{path}: its catalog is not the catalog of {args.dataset}")
        model_splits = leave_one_out(build_user_sequences(data.interactions, data.catalog,
                                                          model_event_features(data, model.config)))
        alone = evaluate_ranking(model, model_splits.test, trend_prior=False)
        rows.append({"model": path, "weight": 0.0, "test": {m: alone[m] for m in METRICS}})
        model.trend_prior, report = calibrate_trend_prior(model, model_splits)
        fused = evaluate_ranking(model, model_splits.test)
        rows.append({"model": f"{path} + trend prior", "window_days": report["window_days"],
                     "weight": report["weight"], "popularity_weight": report["popularity_weight"],
                     "valid_ndcg@10": report["valid_ndcg@10"], "test": {m: fused[m] for m in METRICS}})
        print(f"[recency_prior] {path}: alone {alone['ndcg@10']:.4f}, + {report['weight']:g} x log(1 + events in "
              f"{report['window_days']:g} days) {report['popularity_weight']:+g} x log(1 + all events before): "
              f"{fused['ndcg@10']:.4f}", flush=True)

    print(f"\n### {data.name}: leave-one-out by time, full ranking, history excluded\n\n"
          "| model | window (days) | weight | popularity weight | HR@10 | NDCG@10 |\n|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['model']} | {row.get('window_days', '–')} | {row.get('weight', '–')} | "
              f"{row.get('popularity_weight', '–')} | "
              f"{row['test']['hr@10']:.4f} | {row['test']['ndcg@10']:.4f} |")
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", f"recency_prior_{data.name}.json")
    write_result(out, {"dataset": data.name, "num_items": num_items,
                       "protocol": "leave-one-out by time, full ranking, history excluded; window and weights chosen "
                                   "on validation NDCG@10",
                       "recent_popular_valid_ndcg10_by_window_days": {f"{w / DAY:g}": v for w, v in found.items()},
                       "rows": rows})
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
