"""Faithfulness of explanations on MovieLens-100K, and pipeline throughput for a batch of users.

    python bench/explanations.py --checkpoint outputs/lsrec-ml-100k

Deletion test: for each test user's top-1 recommendation, removing the 3 history events the explanation names
must lower the item's score more than removing 3 random events (of the same last 20). Reports the fraction of
users where it does (random drivers give about 0.5). Also times `pipeline("recommendation")` on 256 users.
"""

import argparse
import time

import torch
import transformers

from common import write_result
from lsrec_hf.processing.tokens import to_tokens
from lsrec_hf.data import load_data
from lsrec_hf.inference.explain import deletion_test
from lsrec_hf.processing.sequences import build_user_sequences, leave_one_out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="outputs/lsrec-ml-100k")
    parser.add_argument("--users", type=int, default=None, help="Test users to use (default: all).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench/results/explanations.json")
    args = parser.parse_args()

    model = transformers.AutoModel.from_pretrained(args.checkpoint).eval()
    data = load_data("ml-100k")
    test = leave_one_out(build_user_sequences(data.interactions, data.catalog)).test
    histories = [to_tokens(h) for h in test.histories[: args.users]]

    with torch.no_grad():
        start = time.perf_counter()
        faithful = deletion_test(model, histories, top_k=1, n_remove=3, seed=args.seed)
        deletion_seconds = time.perf_counter() - start

    recommend = transformers.pipeline("recommendation", model=model)
    batch = [[data.catalog.item_ids[i] for i in h] for h in test.histories[:256]]
    start = time.perf_counter()
    outputs = recommend(batch, top_k=10)
    batch_seconds = time.perf_counter() - start
    assert len(outputs) == len(batch) and all(len(o) == 10 for o in outputs)

    print("| measure | value |\n|---|---|")
    print(f"| deletion test: explained > random (top-1, {len(histories)} users) | {faithful:.3f} |")
    print(f"| pipeline, top-10 for 256 users | {batch_seconds:.2f} s |")
    result = {
        "benchmark": "explanations", "deletion_test_fraction": faithful, "users": len(histories),
        "deletion_test_seconds": deletion_seconds, "pipeline_256_users_seconds": batch_seconds, "seed": args.seed,
    }
    write_result(args.out, result)


if __name__ == "__main__":
    main()
