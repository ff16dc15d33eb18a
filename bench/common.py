"""What every benchmark records beside its figures: machine, versions, command and date."""

import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone

import torch
import transformers

import lsrec_hf


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


def median_seconds(fn, repeats):
    """Median wall seconds of `fn()` over `repeats` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
