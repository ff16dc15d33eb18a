"""ONNX export of the scorer beside torch: parity on real histories and latency, ML-100K (1,682 items) and 100k items.

    python bench/export.py --threads 1

For each catalog the default configuration (hidden 64, 2 layers, long+short memory, text + id tokens) is built with
`from_catalog` (random weights and content vectors: the cost does not depend on them), exported with
`lsrec_hf.inference.export.export_onnx` (history length 200 = 4 segments) and run by onnxruntime. Parity: the largest absolute
score difference over the ML-100K test users' real histories. Latency: median seconds of one scoring call (all items
scored, no top-k) for 1 user and for 256 users, torch `score_next` against onnxruntime, same thread count, same
left-padded inputs. Writes bench/results/export.json.
"""

import argparse
import os
import tempfile

import numpy as np
import torch

from common import median_seconds, write_result
import lsrec_hf
from lsrec_hf.data import load_data
from lsrec_hf.inference.export import OnnxScorer, export_onnx, pad_histories
from lsrec_hf.processing.sequences import build_user_sequences, leave_one_out
from lsrec_hf.processing.tokens import to_tokens

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))




def measure(catalog, histories, length, threads, repeats, tmp):
    torch.manual_seed(0)
    model = lsrec_hf.LSRecForSequentialRecommendation.from_catalog(catalog, torch.randn(len(catalog), 384)).eval()
    path = os.path.join(tmp, f"{len(catalog)}.onnx")
    export_onnx(model, path, max_length=length)
    scorer = OnnxScorer(path, threads=threads)
    inputs = pad_histories(histories, scorer.length)
    with torch.no_grad():
        expected = np.concatenate([model.score_next(torch.as_tensor(inputs[i:i + 256])).scores.numpy()
                                   for i in range(0, len(inputs), 256)])
    got = np.concatenate([scorer(inputs[i:i + 256])[0] for i in range(0, len(inputs), 256)])
    row = {"num_items": len(catalog), "history_length": scorer.length, "users_checked": len(inputs),
           "max_abs_score_difference": float(np.abs(got - expected).max()),
           "onnx_bytes": os.path.getsize(path)}
    for users in (1, 256):
        batch = inputs[:users]
        tensor = torch.as_tensor(batch)
        with torch.no_grad():
            row[f"torch_seconds_{users}"] = median_seconds(lambda: model.score_next(tensor), repeats)
        row[f"onnx_seconds_{users}"] = median_seconds(lambda: scorer(batch), repeats)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--max_length", type=int, default=200)
    parser.add_argument("--large_catalog", type=int, default=100_000)
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "export.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_data("ml-100k")
    splits = leave_one_out(build_user_sequences(data.interactions, data.catalog))
    histories = [to_tokens(h) for h in splits.test.histories]
    large = lsrec_hf.ItemCatalog([f"i{n}" for n in range(args.large_catalog)], [""] * args.large_catalog,
                                 [""] * args.large_catalog)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for catalog in (data.catalog, large):
            rows.append(measure(catalog, histories, args.max_length, args.threads, args.repeats, tmp))
            print(rows[-1], flush=True)
    print("\n| items | max abs score diff | torch 1 user | onnxruntime 1 user | torch 256 users | onnxruntime 256 users |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['num_items']:,} | {r['max_abs_score_difference']:.1e} | {r['torch_seconds_1'] * 1e3:.1f} ms | "
              f"{r['onnx_seconds_1'] * 1e3:.1f} ms | {r['torch_seconds_256'] * 1e3:.0f} ms | "
              f"{r['onnx_seconds_256'] * 1e3:.0f} ms |")
    write_result(args.out, {"threads": args.threads, "rows": rows})


if __name__ == "__main__":
    main()
