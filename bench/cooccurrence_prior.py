"""A trained model with and without its co-occurrence prior, overall and by the test target's training events.

    python bench/cooccurrence_prior.py --dataset ../shared/data/amazon-beauty \
        --models outputs/trend/amazon-beauty/seed4*

For each checkpoint of `recipes/pretrain.py` (with the trend prior it chose, if any) the co-occurrence prior
(`lsrec_hf.model.cooccurrence_prior`) is chosen on validation NDCG@10 on top of it, exactly as the recipe does after
training since the prior exists (`--cooccurrence_prior true`, the default): for checkpoints trained before, this is
the rest of today's recipe. The test split is never looked at for a choice. Rows per checkpoint: the model alone,
with its trend prior, with both priors. Protocol: leave-one-out by time, full ranking, the user's input history
excluded.

`--update` writes the chosen prior into each checkpoint and its figures into its eval_results.json (as the recipe
would have), so that `bench/quality.py --report_only` reports today's default.

Prints a markdown table and writes bench/results/cooccurrence_prior_<dataset>.json.
"""

import argparse
import json
import os
import sys

import torch

from common import write_result
import lsrec_hf
from lsrec_hf.data import load_data
from lsrec_hf.evaluation.cooccurrence_calibration import calibrate_cooccurrence_prior
from lsrec_hf.evaluation.metrics import compute_ranking_metrics
from lsrec_hf.evaluation.rank import rank_examples
from lsrec_hf.processing.context import model_event_features
from lsrec_hf.processing.sequences import build_user_sequences, item_counts, leave_one_out

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from quality import METRICS, ndcg10_by_target_popularity  # noqa: E402


def test_figures(model, splits, counts, **priors):
    ranked, targets, gates = rank_examples(model, splits.test, top_k=20, **priors)
    metrics = compute_ranking_metrics(ranked, targets, (10, 20), model.config.num_items)
    figures = {m: metrics[m] for m in METRICS}
    figures["num_users"] = len(targets)
    figures["mean_long_term_gate"] = float(sum(gates) / max(len(gates), 1))
    return figures, ndcg10_by_target_popularity(ranked, targets, counts)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--models", nargs="+", required=True, help="trained checkpoints (recipes/pretrain.py outputs)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--update", action="store_true",
                        help="save the chosen prior with each checkpoint and its figures in its eval_results.json")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    data = load_data(args.dataset)
    rows = []
    for path in args.models:
        model = lsrec_hf.LSRecForSequentialRecommendation.from_pretrained(path).eval()
        if model.catalog.item_ids != data.catalog.item_ids:
            raise ValueError(f"{path}: its catalog is not the catalog of {args.dataset}")
        splits = leave_one_out(build_user_sequences(data.interactions, data.catalog,
                                                    model_event_features(data, model.config)))
        counts = item_counts(splits.train, model.config.num_items)
        model.cooccurrence_prior, report = calibrate_cooccurrence_prior(model, splits)
        alone, alone_buckets = test_figures(model, splits, counts, trend_prior=False, cooccurrence_prior=False)
        trend, trend_buckets = test_figures(model, splits, counts, cooccurrence_prior=False)
        both, both_buckets = test_figures(model, splits, counts)
        rows.append({"model": path, "trend_prior": model.trend_prior is not None,
                     "cooccurrence_prior": {k: v for k, v in report.items() if k != "grid"},
                     "valid_grid": report["grid"],
                     "test_model_alone": alone, "test_with_trend_prior": trend, "test_with_both_priors": both,
                     "ndcg@10_by_target_popularity": {"model alone": alone_buckets, "with trend prior": trend_buckets,
                                                      "with both priors": both_buckets}})
        print(f"[cooccurrence_prior] {path}: alone {alone['ndcg@10']:.4f}, with its trend prior "
              f"{trend['ndcg@10']:.4f}, with both {both['ndcg@10']:.4f} (weight {report['weight']:g}, decay "
              f"{report['decay']:g}; validation {report['valid_ndcg@10_without']:.4f} -> "
              f"{report['valid_ndcg@10']:.4f})",
              flush=True)
        if args.update:
            results_path = os.path.join(path, "eval_results.json")
            with open(results_path, encoding="utf-8") as f:
                results = json.load(f)
            if "per_scenario" in results["test"]:
                raise ValueError(f"{results_path}: per-scenario figures are not recomputed here; retrain instead")
            results.pop("test_without_trend_prior", None)  # the model alone, now under test_without_priors
            results["cooccurrence_prior"] = report
            results["cooccurrence_prior_added_by"] = " ".join(["bench/cooccurrence_prior.py", *sys.argv[1:]])
            results["test"] = {**results["test"], **both}
            if model.trend_prior is not None or model.cooccurrence_prior is not None:
                results["test_without_priors"] = alone
            if model.trend_prior is not None and model.cooccurrence_prior is not None:
                results["test_without_cooccurrence_prior"] = trend
            model.eval_results = results
            model.save_pretrained(path)  # writes the prior (or removes an earlier one) and eval_results.json

    print(f"\n### {data.name}: leave-one-out by time, full ranking, history excluded\n\n"
          "| checkpoint | model alone | + trend prior | + co-occurrence prior (weight, decay) | "
          "targets with < 5 events: alone / both |\n|---|---|---|---|---|")
    for row in rows:
        prior, rare = row["cooccurrence_prior"], row["ndcg@10_by_target_popularity"]
        rare_alone, rare_both = (rare[name].get("0-4", {}).get("ndcg@10", 0.0)
                                 for name in ("model alone", "with both priors"))
        print(f"| {row['model']} | {row['test_model_alone']['ndcg@10']:.4f} | "
              f"{row['test_with_trend_prior']['ndcg@10']:.4f} | {row['test_with_both_priors']['ndcg@10']:.4f} "
              f"({prior['weight']:g}, {prior['decay']:g}) | {rare_alone:.4f} / {rare_both:.4f} |")
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                   f"cooccurrence_prior_{data.name}.json")
    write_result(out, {"dataset": data.name, "num_items": len(data.catalog),
                       "protocol": "leave-one-out by time, full ranking, history excluded; the prior's weight and "
                                   "decay chosen on validation NDCG@10",
                       "rows": rows})
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
