"""Cost as histories grow: one training pass and one inference over a single user's history of N events.

    python bench/scale.py                                  # N = 200, 2k, 20k, 100k on the CPU
    python bench/scale.py --lengths 200 2000 --device cuda # on a GPU (peak memory from the CUDA allocator)

Two encoders of the same size (64 hidden, 2 layers, 2 heads, ML-100K's 1,682 items with text):
  * lsrec_hf as trained: segments of 50 events, each reading a detached XL memory of 50 states per layer
    (forward + backward segment by segment, as `training.train` does; inference through `encode`);
  * full attention: the same model reading the whole history as one segment (what a BERT4Rec/SASRec
    without truncation does), skipped where its N x N attention bias alone would exceed --max_attention_gb.

Each measurement runs in a fresh process, so peak memory (CPU: peak RSS growth, GPU: max allocated) is its
own. Prints a markdown table, writes bench/results/scale.json and scale.png (log-log).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch

from common import rss_bytes, write_result
from lsrec_hf.processing.tokens import to_tokens

NUM_ITEMS, CONTENT_DIM = 1682, 384


def measure(encoder, phase, length, device, seed, repeats):
    """Child process: time and peak memory of one `phase` ("train" or "inference") over `length` events."""
    import lsrec_hf

    torch.manual_seed(seed)
    segment = 50 if encoder == "xl" else length
    config = lsrec_hf.LSRecConfig(num_items=NUM_ITEMS, content_dim=CONTENT_DIM, segment_length=segment,
                                  memory_length=50, memory="long+short" if encoder == "xl" else "short")
    model = lsrec_hf.LSRecForSequentialRecommendation(config).to(device)
    model.model.embeddings.set_content_embeddings(torch.randn(NUM_ITEMS, CONTENT_DIM))
    items = torch.randint(0, NUM_ITEMS, (1, length + 1), device=device)
    input_ids, labels = to_tokens(items[:, :-1]), items[:, 1:]

    def train_pass():
        model.train()
        memory = None
        for start in range(0, length, segment):
            out = model(input_ids[:, start:start + segment], labels=labels[:, start:start + segment], memory=memory)
            out.loss.backward()
            memory = out.memory

    def inference():
        model.eval()
        model.score_next(input_ids)

    run = train_pass if phase == "train" else inference
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = rss_bytes()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    seconds = min(times)  # best of `repeats`: the least disturbed by other work on the machine
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    return {"seconds": seconds, "peak_bytes": max(peak, 0)}


def attention_bias_gb(length, heads=2):
    return heads * length * length * 4 / 2**30


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[200, 2_000, 20_000, 100_000])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max_attention_gb", type=float, default=1.0,
                        help="skip full attention where one N x N bias (2 heads, fp32) exceeds this")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (the fastest is kept)")
    parser.add_argument("--out", default="bench/results/scale.json")
    parser.add_argument("--child", nargs=3, metavar=("ENCODER", "PHASE", "LENGTH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        encoder, phase, length = args.child
        print(json.dumps(measure(encoder, phase, int(length), args.device, args.seed, args.repeats)))
        return

    rows = []
    for length in args.lengths:
        for encoder in ("xl", "full"):
            for phase in ("train", "inference"):
                row = {"encoder": encoder, "phase": phase, "length": length}
                if encoder == "full" and attention_bias_gb(length) > args.max_attention_gb:
                    row["skipped"] = (f"not run: one N x N attention bias alone needs {attention_bias_gb(length):.1f} GiB "
                                          f"(--max_attention_gb {args.max_attention_gb})")
                else:
                    command = [sys.executable, __file__, "--child", encoder, phase, str(length),
                               "--device", args.device, "--seed", str(args.seed), "--repeats", str(args.repeats)]
                    if args.threads:
                        command += ["--threads", str(args.threads)]
                    done = subprocess.run(command, capture_output=True, text=True)
                    if done.returncode:
                        row["skipped"] = f"failed: {done.stderr.strip().splitlines()[-1][:200]}"
                    else:
                        row.update(json.loads(done.stdout.strip().splitlines()[-1]))
                rows.append(row)
                shown = row.get("skipped") or f"{row['seconds']:.3f}s, {row['peak_bytes'] / 2**20:.0f} MiB"
                print(f"[scale] {encoder:4s} {phase:9s} N={length}: {shown}", flush=True)

    def get(encoder, phase, length, key):
        row = next(r for r in rows if (r["encoder"], r["phase"], r["length"]) == (encoder, phase, length))
        return row.get(key)

    print("\n| events | XL train s | XL train peak MiB | XL infer s | XL infer peak MiB | full train s | "
          "full train peak MiB | full infer s | full infer peak MiB |\n|---|---|---|---|---|---|---|---|---|")
    for length in args.lengths:
        cells = []
        for encoder in ("xl", "full"):
            for phase in ("train", "inference"):
                seconds = get(encoder, phase, length, "seconds")
                peak = get(encoder, phase, length, "peak_bytes")
                cells += ["—", "—"] if seconds is None else [f"{seconds:.3f}", f"{peak / 2**20:.0f}"]
        print(f"| {length:,} | " + " | ".join(cells) + " |")

    checks = {}
    if 2_000 in args.lengths and 20_000 in args.lengths:
        for phase in ("train", "inference"):
            checks[f"xl_{phase}_time_20k_over_2k"] = get("xl", phase, 20_000, "seconds") / get("xl", phase, 2_000, "seconds")
    if 2_000 in args.lengths and 100_000 in args.lengths:
        for phase in ("train", "inference"):
            checks[f"xl_{phase}_peak_100k_over_2k"] = (get("xl", phase, 100_000, "peak_bytes")
                                                        / max(get("xl", phase, 2_000, "peak_bytes"), 1))
    for name, value in checks.items():
        print(f"{name}: {value:.2f}")
    write_result(args.out, {"device": args.device, "seed": args.seed, "num_items": NUM_ITEMS,
                            "model": "hidden 64, 2 layers, 2 heads, segment 50, memory 50", "rows": rows,
                            "checks": checks})
    plot(rows, os.path.splitext(args.out)[0] + ".png")


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for encoder, style in (("xl", "-o"), ("full", "--s")):
        for phase, colour in (("train", "C0"), ("inference", "C1")):
            points = [(r["length"], r["seconds"], r["peak_bytes"] / 2**20) for r in rows
                      if (r["encoder"], r["phase"]) == (encoder, phase) and "seconds" in r]
            if not points:
                continue
            lengths, seconds, peaks = zip(*points)
            label = f"{'XL memory' if encoder == 'xl' else 'full attention'}, {phase}"
            axes[0].plot(lengths, seconds, style, color=colour, label=label)
            axes[1].plot(lengths, peaks, style, color=colour, label=label)
    for ax, ylabel in zip(axes, ("seconds", "peak memory growth (MiB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("history length (events)")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
    fig.suptitle("One user's history: one training pass and one inference")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
