"""What every benchmark records beside its figures: machine, versions, command and date."""

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone

import numpy as np
import torch
import transformers

import lsrec_hf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_result(path, result):
    """Write `result` plus the environment it was measured in as JSON to `path`."""
    result = {
        **result,
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "torch_threads": torch.get_num_threads()},
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "lsrec_hf": lsrec_hf.__version__},
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)


def rss_bytes():
    """This process's resident memory now (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_peak_rss():
    """Forget this process's peak memory so far (Linux: VmHWM restarts from the current RSS), so that what was
    built before a measurement does not count in it."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss_bytes():
    """This process's peak resident memory since it started or since `reset_peak_rss` (Linux VmHWM)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


def median_seconds(fn, repeats):
    """Median wall seconds of `fn()` over `repeats` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# MovieLens genres grouped into three shelves of a store (bench/context.py, bench/transfer.py)
SHELVES = {
    "action": {"Action", "Adventure", "Sci-Fi", "Thriller", "War", "Western", "Crime", "Mystery", "Horror",
               "Film-Noir", "Fantasy"},
    "comedy-family": {"Comedy", "Children's", "Animation", "Musical", "Romance"},
    "drama": {"Drama", "Documentary", "unknown"},
}


def item_shelves(catalog):
    genres = catalog.attributes.get("genres")
    if genres is None:
        raise SystemExit("the catalog has no genres: this benchmark needs MovieLens item genres")
    shelves = []
    for item_genres in genres:
        names = {g.strip() for g in (item_genres if isinstance(item_genres, list) else str(item_genres).split(","))}
        counts = [len(names & members) for members in SHELVES.values()]
        shelves.append(list(SHELVES)[int(np.argmax(counts))])
    return np.asarray(shelves)


def ml100k_model(checkpoint, work_dir, epochs, threads=1):
    """`checkpoint` when the main job (recipes/pretrain.py) has saved its ML-100K model there; else that recipe
    run with its defaults for `epochs` epochs into `work_dir`: the main job's model size and cost, less training."""
    if os.path.isfile(os.path.join(checkpoint, "config.json")):
        return checkpoint
    command = [sys.executable, os.path.join(ROOT, "recipes", "pretrain.py"), "--output_dir", work_dir,
               "--num_epochs", str(epochs)]
    print(f"[bench] no model in {checkpoint}: {' '.join(command)}", flush=True)
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"recipes/pretrain.py failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return work_dir
