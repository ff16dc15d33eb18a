"""Peak memory of grouping an event log into user sequences, 1M to 100M events read from Arrow on disk.

    python bench/event_log_scale.py --events 1000000 10000000 100000000

For each size a synthetic log is written to `--work_dir` as an Arrow file, chunk by chunk: users with Zipf-like
activity (one user per 50 events on average), items with a power-law popularity over `--items`, random timestamps,
ids as text as loaders give them. A fresh process then memory-maps it (`datasets.Dataset.from_file`, nothing read
into memory up front) and groups it with `lsrec_hf.processing.sequences.build_user_sequences`, which reads it a
million rows at a time; its peak RSS growth is set against the size of what it returns (the sequences: an int64
item and a float64 time per event) and of the raw log. As the baseline, another fresh process reads the same
three columns into a pandas frame first (`Dataset.to_pandas`, what the grouping did before). Prints a markdown
table, writes bench/results/event_log_scale.json.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from common import peak_rss_bytes, reset_peak_rss, rss_bytes, write_result

CHUNK = 1_000_000


def write_log(path, num_events, num_items, seed):
    """The synthetic log as an Arrow stream file (what `datasets` memory-maps), written a chunk at a time."""
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    num_users = max(1, num_events // 50)
    schema = pa.schema([("user_id", pa.string()), ("item_id", pa.string()), ("timestamp", pa.float64())])
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for start in range(0, num_events, CHUNK):
            n = min(CHUNK, num_events - start)
            users = np.minimum(rng.zipf(1.3, n) - 1, num_users - 1) if num_users > 1 else np.zeros(n, np.int64)
            users = (users * 2654435761 + start // CHUNK) % num_users  # spread the heavy users over the id range
            items = np.minimum(rng.zipf(1.2, n) - 1, num_items - 1)
            times = rng.random(n) * 1e9
            writer.write_batch(pa.record_batch([pa.array(users.astype(str)), pa.array(items.astype(str)),
                                                pa.array(times)], schema=schema))


def measure(path, num_items, how):
    """Child process: peak RSS growth and seconds of grouping the log at `path` (`how`: arrow or pandas)."""
    import datasets

    from lsrec_hf.processing.catalog import ItemCatalog
    from lsrec_hf.processing.sequences import build_user_sequences

    ids = [str(i) for i in range(num_items)]
    catalog = ItemCatalog(ids, ids, ids)
    log = datasets.Dataset.from_file(path)  # memory-mapped
    reset_peak_rss()
    before = rss_bytes()
    start = time.perf_counter()
    if how == "pandas":
        frame = log.select_columns(["user_id", "item_id", "timestamp"]).to_pandas()  # the raw log, whole
        sequences = build_user_sequences(datasets.Dataset.from_pandas(frame, preserve_index=False), catalog)
    else:
        sequences = build_user_sequences(log, catalog)
    seconds = time.perf_counter() - start
    result = {"peak_rss_growth_bytes": peak_rss_bytes() - before, "seconds": seconds, "users": len(sequences),
              "sequences_bytes": int(sum(i.nbytes + t.nbytes for i, t in zip(sequences.items, sequences.timestamps)))}
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000, 100_000_000])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--pandas_up_to", type=int, default=10_000_000, help="largest log the pandas baseline reads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work_dir", default="outputs/bench_event_log")
    parser.add_argument("--out", default="bench/results/event_log_scale.json")
    parser.add_argument("--child", nargs=3, metavar=("PATH", "ITEMS", "HOW"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure(args.child[0], int(args.child[1]), args.child[2])
        return

    os.makedirs(args.work_dir, exist_ok=True)
    rows = []
    for num_events in args.events:
        path = os.path.join(args.work_dir, f"log_{num_events}.arrow")
        if not os.path.exists(path):
            write_log(path, num_events, args.items, args.seed)
        for how in ("arrow", "pandas"):
            if how == "pandas" and num_events > args.pandas_up_to:
                continue
            done = subprocess.run([sys.executable, __file__, "--child", path, str(args.items), how],
                                  capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
            if done.returncode:
                raise SystemExit(f"{how} at {num_events} events failed:\n{done.stderr[-3000:]}")
            row = {"events": num_events, "grouping": how, "log_file_bytes": os.path.getsize(path),
                   **json.loads(done.stdout.strip().splitlines()[-1])}
            rows.append(row)
            print(f"[event_log_scale] {num_events:,} events, {how}: peak RSS +{row['peak_rss_growth_bytes'] / 2**30:.2f} "
                  f"GiB, sequences {row['sequences_bytes'] / 2**30:.2f} GiB, {row['seconds']:.1f}s", flush=True)

    print("\n| events | grouping | users | log file GiB | sequences GiB | peak RSS growth GiB | growth / sequences | "
          "seconds |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['events']:,} | {r['grouping']} | {r['users']:,} | {r['log_file_bytes'] / 2**30:.2f} | "
              f"{r['sequences_bytes'] / 2**30:.2f} | {r['peak_rss_growth_bytes'] / 2**30:.2f} | "
              f"{r['peak_rss_growth_bytes'] / r['sequences_bytes']:.2f} | {r['seconds']:.1f} |")
    write_result(args.out, {"items": args.items, "seed": args.seed, "rows": rows})


if __name__ == "__main__":
    main()
