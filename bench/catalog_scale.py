"""Cost as the catalog grows: one training step (forward, backward, optimizer) at 10k, 100k and 1M items.

    python bench/catalog_scale.py                                   # 10k, 100k, 1M items on the CPU, one thread
    python bench/catalog_scale.py --items 10000 1000000 --threads 4
    python bench/catalog_scale.py --losses sampled --item_gradients dense --out bench/results/catalog_scale_dense_ids.json
    python bench/catalog_scale.py --losses sampled --items 10000 1000000 --item_moments rowwise --out bench/results/catalog_scale_rowwise.json

A synthetic catalog: item popularity follows a power law (Zipf, exponent 1.1), every item has a 384-wide "text
embedding" (random unit vectors, the width of all-MiniLM-L6-v2), and a batch is 32 users x 50 events drawn from
that popularity. The model is the default's size (64 hidden, 2 layers, 2 heads, text + id tokens) with:
  * sampled softmax: 1,024 shared negatives drawn from the item frequencies, log-Q corrected
    (`loss="sampled"`, `set_item_frequencies`), what a large catalog trains with;
  * full softmax: every item scored at every position (the default), skipped where its logits alone
    (positions x items, fp32) would exceed --max_logits_gb.
The optimizer is the training loop's: with the sampled softmax the id table's gradients are sparse and a lazy
AdamW steps only the rows they read (`TrainingArguments.sparse_item_gradients`, `--item_gradients dense` turns
it off); with the full softmax every row is read, and plain AdamW steps dense gradients.

Each measurement runs in a fresh process, and its peak memory is the peak RSS growth from the moment the model and its
catalog are built (VmHWM reset through /proc/self/clear_refs): gradients, optimizer state and activations. Prints a markdown table and writes bench/results/catalog_scale.json; the ratio column divides
each step time by the same loss's step time at the smallest catalog.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import torch

from common import peak_rss_bytes, reset_peak_rss, rss_bytes, write_result
from lsrec_hf.processing.tokens import to_tokens

CONTENT_DIM, BATCH, LENGTH = 384, 32, 50


def zipf_counts(num_items, exponent=1.1, events=10_000_000):
    ranks = torch.arange(1, num_items + 1, dtype=torch.float64)
    weights = ranks ** -exponent
    return (weights / weights.sum() * events).round()


def measure(loss, num_items, tokens, seed, repeats, item_gradients, item_moments="full", negative_sampling="frequency"):
    """Child process: median step time and peak RSS growth of one training step at `num_items` items."""
    import lsrec_hf
    from lsrec_hf.training import TrainingArguments
    from lsrec_hf.training.lazy_adamw import LazyAdamW
    from lsrec_hf.training.loop import sparse_item_tables

    torch.manual_seed(seed)
    per_item = tokens == "text+id"  # text-only tokens and no output bias: no parameter grows with the catalog
    config = lsrec_hf.LSRecConfig(num_items=num_items, content_dim=CONTENT_DIM, loss=loss, segment_length=LENGTH,
                                  memory_length=LENGTH, use_item_ids=per_item, use_output_bias=per_item,
                                  negative_sampling=negative_sampling)
    model = lsrec_hf.LSRecForSequentialRecommendation(config)
    content = torch.nn.functional.normalize(torch.randn(num_items, CONTENT_DIM), dim=-1)
    model.model.embeddings.set_content_embeddings(content)
    del content
    counts = zipf_counts(num_items)
    model.set_item_frequencies(counts)
    # what the training loop does: sparse id gradients and a lazy AdamW with the sampled softmax, unless told dense
    sparse = sparse_item_tables(model, TrainingArguments(sparse_item_gradients=None if item_gradients == "auto" else False))
    optimizer = (LazyAdamW(model.parameters(), lr=1e-3, rowwise_moments=item_moments == "rowwise") if sparse
                 else torch.optim.AdamW(model.parameters(), lr=1e-3))
    popularity = (counts / counts.sum()).float()
    items = torch.multinomial(popularity, BATCH * (LENGTH + 1), replacement=True).view(BATCH, LENGTH + 1)
    input_ids, labels = to_tokens(items[:, :-1]), items[:, 1:]
    model.train()

    def step():
        optimizer.zero_grad(set_to_none=True)
        model(input_ids, labels=labels).loss.backward()
        optimizer.step()

    reset_peak_rss()
    base = rss_bytes()
    step()  # warm-up: AdamW allocates its state here, counted in the peak
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    peak = peak_rss_bytes() - base
    # Adam's two moments per parameter: persistent state that grows with the id table whatever the gradients
    state_bytes = sum(t.numel() * t.element_size() for state in optimizer.state.values() for t in state.values()
                      if torch.is_tensor(t))
    return {"seconds": sorted(times)[len(times) // 2], "peak_bytes": max(peak, 0),
            "item_gradients": "sparse" if sparse else "dense", "optimizer_state_bytes": state_bytes,
            "item_moments": item_moments if sparse else "full", "negative_sampling": negative_sampling,
            "parameters": sum(p.numel() for p in model.parameters())}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--losses", nargs="+", choices=["sampled", "full"], default=["sampled", "full"])
    parser.add_argument("--max_logits_gb", type=float, default=2.0,
                        help="skip the full softmax where its logits (32 x 50 positions x items, fp32) exceed this")
    parser.add_argument("--tokens", choices=["text+id", "text"], default="text+id",
                        help="item tokens: text + a learned id embedding and output bias per item (the default "
                             "model), or text alone (no per-item parameters)")
    parser.add_argument("--item_gradients", choices=["auto", "dense"], default="auto",
                        help="auto: as training does it (sparse id gradients and a lazy AdamW with the sampled "
                             "softmax, TrainingArguments.sparse_item_gradients unset); dense: AdamW on dense ones")
    parser.add_argument("--item_moments", choices=["full", "rowwise"], default="full",
                        help="the sparse id table's optimizer state (TrainingArguments.item_moments)")
    parser.add_argument("--negative_sampling", choices=["frequency", "mixed"], default="frequency")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per measurement (the median is kept)")
    parser.add_argument("--out", default="bench/results/catalog_scale.json")
    parser.add_argument("--child", nargs=2, metavar=("LOSS", "ITEMS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(measure(args.child[0], int(args.child[1]), args.tokens, args.seed, args.repeats,
                                 args.item_gradients, args.item_moments, args.negative_sampling)))
        return

    rows = []
    for loss in args.losses:
        for num_items in sorted(args.items):
            logits_gb = BATCH * LENGTH * num_items * 4 / 2**30
            row = {"loss": loss, "num_items": num_items, "tokens": args.tokens}
            if loss == "full" and logits_gb > args.max_logits_gb:
                row["skipped"] = f"logits alone {logits_gb:.1f} GB > --max_logits_gb {args.max_logits_gb}"
            else:
                command = [sys.executable, __file__, "--child", loss, str(num_items), "--threads", str(args.threads),
                           "--tokens", args.tokens, "--seed", str(args.seed), "--repeats", str(args.repeats),
                           "--item_gradients", args.item_gradients, "--item_moments", args.item_moments,
                           "--negative_sampling", args.negative_sampling]
                done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
                if done.returncode:
                    raise SystemExit(f"{loss} at {num_items} items failed:\n{done.stderr[-2000:]}")
                row.update(json.loads(done.stdout.strip().splitlines()[-1]))
            rows.append(row)
            print(json.dumps(row), flush=True)
    for loss in args.losses:
        measured = [r for r in rows if r["loss"] == loss and "seconds" in r]
        for row in measured:
            row["seconds_vs_smallest"] = row["seconds"] / measured[0]["seconds"]
            row["peak_vs_smallest"] = row["peak_bytes"] / max(measured[0]["peak_bytes"], 1)

    print(f"\none training step, {args.tokens} item tokens, batch {BATCH} x {LENGTH} events, {args.threads} thread(s)\n")
    print("| loss | id gradients | items | parameters | step s (median) | vs smallest | peak RSS growth | vs smallest "
          "| of which optimizer state |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "skipped" in r:
            print(f"| {r['loss']} | – | {r['num_items']:,} | – | skipped: {r['skipped']} | – | – | – | – |")
        else:
            print(f"| {r['loss']} | {r['item_gradients']} | {r['num_items']:,} | {r['parameters']:,} | {r['seconds']:.3f} | "
                  f"{r['seconds_vs_smallest']:.2f}× | {r['peak_bytes'] / 2**20:,.0f} MiB | {r['peak_vs_smallest']:.2f}× | "
                  f"{r['optimizer_state_bytes'] / 2**20:,.0f} MiB |")
    write_result(args.out, {"command": " ".join(sys.argv), "tokens": args.tokens, "item_gradients": args.item_gradients,
                            "batch": BATCH, "length": LENGTH,
                            "content_dim": CONTENT_DIM, "threads": args.threads, "rows": rows})


if __name__ == "__main__":
    main()
