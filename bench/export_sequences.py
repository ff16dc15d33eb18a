"""Export a dataset's per-user item sequences exactly as lsrec_hf builds them, for peer libraries.

Peer baselines (``bench/replay_peer.py``) run in their own virtual environments without lsrec_hf, so
they must not re-implement loading, de-duplication, the catalog order or the time ordering: any
difference there would change the split. This script runs lsrec_hf's own loader and
``build_user_sequences`` and writes the result as one parquet file:

    user_id: string        the user, as in the source
    items:   list<int64>   catalog indices 0..num_items-1, time-ordered (ties keep the file order)

The parquet's key-value metadata holds ``lsrec_hf.sequences`` = JSON with ``dataset``, ``source``,
``num_items``, ``num_users``, ``num_events``; the same JSON is also written beside it as
``<out>.json`` so it can be read without pyarrow. The leave-one-out split itself is done by the
consumer (it is two slices per user: see ``lsrec_hf.processing.sequences.leave_one_out``).

Run with lsrec_hf's interpreter, from the repository root:

    .venv/bin/python bench/export_sequences.py --dataset ml-100k --out outputs/sequences/ml-100k.parquet
    .venv/bin/python bench/export_sequences.py --dataset ../shared/data/ml-1m --out outputs/sequences/ml-1m.parquet
"""

import argparse
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lsrec_hf.data import load_data
from lsrec_hf.processing.sequences import build_user_sequences

METADATA_KEY = b"lsrec_hf.sequences"  # a name in the parquet files written so far, not a module path: keep


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", required=True,
                   help="'ml-100k' (lsrec_hf's offline copy) or a folder/file that lsrec_hf.data.load_data reads")
    p.add_argument("--out", required=True, help="parquet file to write")
    return p.parse_args(argv)


def export(dataset, out):
    data = load_data(dataset)
    sequences = build_user_sequences(data.interactions, data.catalog)
    num_items = len(data.catalog.item_ids)
    # a folder's own name is the short name used in result file names (../shared/data/ml-1m -> ml-1m)
    name = os.path.basename(os.path.normpath(dataset)) if os.path.exists(dataset) else dataset
    items = [np.asarray(s, dtype=np.int64) for s in sequences.items]
    if any(len(s) and (s.min() < 0 or s.max() >= num_items) for s in items):
        raise ValueError("a catalog index is outside 0..num_items-1")
    info = {"dataset": name, "source": dataset, "num_items": num_items, "num_users": len(items),
            "num_events": int(sum(len(s) for s in items)),
            "loader_report": {k: v for k, v in (data.report or {}).items() if isinstance(v, (int, float, str))}}
    table = pa.table({
        "user_id": pa.array([str(u) for u in sequences.user_ids], type=pa.string()),
        "items": pa.array(items, type=pa.list_(pa.int64())),
    })
    table = table.replace_schema_metadata({METADATA_KEY: json.dumps(info).encode()})
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    pq.write_table(table, out)
    with open(out + ".json", "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2)
    return info


def main(argv=None):
    args = parse_args(argv)
    info = export(args.dataset, args.out)
    print(f"{args.out}: {info['num_users']} users, {info['num_items']} items, {info['num_events']} events")


if __name__ == "__main__":
    main()
