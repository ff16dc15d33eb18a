"""How new items join a trained model: their id embedding and bias at zero/mean, or predicted from their text.

    python bench/cold_start_init.py --dataset ../shared/data/amazon-toys --work_dir outputs/bench_cold_start/amazon-toys \
        --out bench/results/cold_start_init_amazon-toys.json

Reads the models `bench/cold_start.py` trained (its `--work_dir`, same `--cold_fraction` and `--cold_seed`), adds
the held-out items with `extend_catalog(new_item_init="zero")` (id embedding zero, mean bias) and with
`new_item_init="text"` at several ridge penalties (id embedding and bias regressed on the warm items' text), and
ranks the whole test split over the full catalog, history excluded. Besides the NDCG@10 of cold and warm targets it
reports the share of cold items in the top 10 (their share of the test targets is the share a calibrated model
would show, roughly) and the NDCG@10 of all test users. Writes the results JSON.
"""

import argparse
import glob
import os

import numpy as np
import torch

from cold_start import draw_cold_items, reorder_catalog, split_metrics
from common import write_result
import lsrec_hf
from lsrec_hf.data import load_data
from lsrec_hf.evaluation import rank_examples
from lsrec_hf.evaluation.metrics import compute_ranking_metrics
from lsrec_hf.processing.sequences import build_user_sequences, leave_one_out
from lsrec_hf.text import DEFAULT_TEXT_ENCODER, encode_texts


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--work_dir", required=True, help="bench/cold_start.py's --work_dir")
    parser.add_argument("--cold_fraction", type=float, default=0.15)
    parser.add_argument("--cold_seed", type=int, default=0)
    parser.add_argument("--ridges", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    data = load_data(args.dataset)
    cold = draw_cold_items(len(data.catalog), args.cold_fraction, args.cold_seed)  # the draw of bench/cold_start.py
    catalog, _ = reorder_catalog(data.catalog, cold)
    num_warm = int((~cold).sum())
    content = torch.as_tensor(encode_texts(catalog.texts, DEFAULT_TEXT_ENCODER, show_progress_bar=False))
    splits = leave_one_out(build_user_sequences(data.interactions, catalog))
    cold_share = float((splits.test.targets >= num_warm).mean())

    rows = []
    for run in sorted(glob.glob(os.path.join(args.work_dir, "*_seed*", "checkpoints", "best"))):
        name = os.path.basename(os.path.dirname(os.path.dirname(run)))
        inits = [("zero", None)] + [("text", ridge) for ridge in args.ridges]
        for init, ridge in inits:
            model = lsrec_hf.LSRecForSequentialRecommendation.from_pretrained(run).eval()
            if model.config.use_content:
                model.extend_catalog(catalog, content[num_warm:], new_item_init=init, ridge=ridge or 0.1)
            elif init == "zero":
                model.extend_catalog(catalog)
            else:
                continue
            ranked, targets, _ = rank_examples(model, splits.test, top_k=20)
            metrics = split_metrics(ranked, targets, num_warm, len(catalog))
            everyone = compute_ranking_metrics(ranked, targets, (10,), len(catalog))["ndcg@10"]
            share = float(np.mean([np.mean(np.asarray(r[:10]) >= num_warm) for r in ranked]))
            rows.append({"run": name, "new_item_init": init, "ridge": ridge, "cold_ndcg@10": metrics["cold"]["ndcg@10"],
                         "warm_ndcg@10": metrics["warm"]["ndcg@10"], "all_ndcg@10": everyone,
                         "cold_share_of_top10": share, "metrics": metrics})
            print(f"| {name} | {init}{'' if ridge is None else f', ridge {ridge:g}'} | {metrics['cold']['ndcg@10']:.4f} | "
                  f"{metrics['warm']['ndcg@10']:.4f} | {everyone:.4f} | {share:.3f} |", flush=True)
    write_result(args.out, {"dataset": args.dataset, "cold_fraction": args.cold_fraction, "cold_seed": args.cold_seed,
                            "num_cold_items": int(cold.sum()), "cold_share_of_test_targets": cold_share,
                            "protocol": "leave-one-out by time, full ranking, history excluded", "rows": rows})


if __name__ == "__main__":
    main()
