"""A peer given the same priors as lsrec_hf's default: is the lead the model's or the priors'?

lsrec_hf's default adds two priors to its model's scores, each kept only where it raises validation NDCG@10 (the
trend prior, `lsrec_hf.model.trend_prior`, then the co-occurrence prior, `lsrec_hf.model.cooccurrence_prior`). They
need a recommender's scores, not its insides, so a peer can be given them too: `bench/replay_peer.py --scores_out`
keeps RePlay's SASRec's scores of every item for each validation and test user (its best epoch), and this script
chooses the priors on the peer's validation scores exactly as `recipes/pretrain.py` chooses ours
(`lsrec_hf.evaluation.priors.choose_priors_for_scores`), then ranks its test scores with them
(`lsrec_hf.evaluation.rank.rank_score_matrix`). The test split is never looked at for a choice.

    .venv-replay/bin/python bench/replay_peer.py --sequences outputs/sequences/ml-100k.parquet --seed 42 \\
        --threads 1 --scores_out outputs/peer_scores/ml-100k_seed42.safetensors
    .venv/bin/python bench/peer_priors.py --dataset ml-100k --scores outputs/peer_scores/ml-100k_seed4*.safetensors

Protocol: leave-one-out by time, full ranking, the user's input history excluded. Rows per score file: the peer
alone (its own test figures, recomputed here), with the trend prior, with both priors. Prints a markdown table and
writes bench/results/peer_priors_<dataset>.json.
"""

import argparse
import os
import statistics

import numpy as np
import torch
from safetensors.numpy import load_file

from common import write_result
from lsrec_hf.data import load_data
from lsrec_hf.evaluation.metrics import compute_ranking_metrics
from lsrec_hf.evaluation.priors import choose_priors_for_scores
from lsrec_hf.evaluation.rank import rank_score_matrix
from lsrec_hf.processing.sequences import build_user_sequences, leave_one_out
from quality import METRICS


def read_scores(path, splits, num_items):
    """The peer's validation and test score matrices, checked against this split (users, order, catalog)."""
    tensors = load_file(path)
    for name, examples in (("valid", splits.valid), ("test", splits.test)):
        scores, targets = tensors.get(f"{name}_scores"), tensors.get(f"{name}_targets")
        if scores is None or targets is None:
            raise ValueError(f"{path}: no {name}_scores / {name}_targets (write it with bench/replay_peer.py "
                             "--scores_out)")
        if scores.shape != (len(examples), num_items) or not np.array_equal(targets, examples.targets):
            raise ValueError(f"{path}: its {name} rows (shape {scores.shape}) are not this data set's {name} users "
                             f"({len(examples)} users x {num_items} items, same targets in the same order)")
    return tensors["valid_scores"], tensors["test_scores"]


def figures(test_scores, splits, num_items, **priors):
    ranked = rank_score_matrix(test_scores, splits.test, top_k=20, **priors)
    metrics = compute_ranking_metrics(ranked, splits.test.targets, (10, 20), num_items)
    return {m: float(metrics[m]) for m in METRICS}


def without_grid(report):
    return None if report is None else {k: v for k, v in report.items() if k != "grid"}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="'ml-100k' or a folder that lsrec_hf.data.load_data reads")
    parser.add_argument("--scores", nargs="+", required=True, help="bench/replay_peer.py --scores_out files")
    parser.add_argument("--peer", default="RePlay SasRec (CE)", help="the peer's name in the table")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    data = load_data(args.dataset)
    splits = leave_one_out(build_user_sequences(data.interactions, data.catalog))
    num_items = len(data.catalog)
    rows = []
    for path in args.scores:
        valid_scores, test_scores = read_scores(path, splits, num_items)
        trend, cooccurrence, trend_report, cooccurrence_report = choose_priors_for_scores(valid_scores, splits)
        row = {"scores": path, "trend_prior": without_grid(trend_report),
               "cooccurrence_prior": without_grid(cooccurrence_report),
               "test_alone": figures(test_scores, splits, num_items),
               "test_with_trend_prior": figures(test_scores, splits, num_items, trend_prior=trend),
               "test_with_both_priors": figures(test_scores, splits, num_items, trend_prior=trend,
                                                cooccurrence_prior=cooccurrence)}
        rows.append(row)
        print(f"[peer_priors] {path}: alone {row['test_alone']['ndcg@10']:.4f}, with the trend prior "
              f"{row['test_with_trend_prior']['ndcg@10']:.4f}, with both {row['test_with_both_priors']['ndcg@10']:.4f}",
              flush=True)

    summary = {}
    for name in ("test_alone", "test_with_trend_prior", "test_with_both_priors"):
        values = [row[name]["ndcg@10"] for row in rows]
        summary[name] = {"ndcg@10_mean": statistics.mean(values),
                         "ndcg@10_std": statistics.stdev(values) if len(values) > 1 else 0.0, "n": len(values)}
    print(f"\n### {data.name}: {args.peer} with lsrec_hf's priors (leave-one-out by time, full ranking, history "
          "excluded)\n\n| scores | alone | + trend prior | + both priors |\n|---|---|---|---|")
    for row in rows:
        print(f"| {os.path.basename(row['scores'])} | {row['test_alone']['ndcg@10']:.4f} | "
              f"{row['test_with_trend_prior']['ndcg@10']:.4f} | {row['test_with_both_priors']['ndcg@10']:.4f} |")
    print("| mean ± std | " + " | ".join(f"{summary[n]['ndcg@10_mean']:.4f} ± {summary[n]['ndcg@10_std']:.4f}"
                                        for n in summary) + " |")
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                   f"peer_priors_{data.name}.json")
    write_result(out, {"dataset": data.name, "num_items": num_items, "peer": args.peer,
                       "protocol": "leave-one-out by time, full ranking, history excluded; each prior chosen on the "
                                   "peer's validation NDCG@10 as lsrec_hf's recipe chooses its own",
                       "summary_ndcg@10": summary, "rows": rows})
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
