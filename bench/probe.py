"""Fuzz pass over saved checkpoints: every damaged file ends in an error naming it, in bounded time and memory.

    python bench/probe.py                        # every mutation, writes bench/results/probe.json
    python bench/probe.py --only config_not_json,weights_truncated --no_write

A tiny real model (nothing trained) is saved with its catalog, beside a LoRA adapter of it and a manifest of its
files, as `recipes/` write them. Each mutation damages one file of a fresh copy (config.json, catalog.json,
model.safetensors, the shard index, manifest.json, adapter_config.json); the copy is then loaded, in a forked child
process with a time limit and a memory limit (`resource.setrlimit(RLIMIT_AS)`), by what a user calls:
`AutoModel.from_pretrained(folder)` and `pipeline("recommendation", model=folder)(history)`, or for a manifest
`lsrec_hf.training.checkpointing.verify_manifest` (what `--resume` checks). A mutation passes when every load raises an
exception whose message names the damaged file, within `--max_seconds` and a peak RSS of `--max_rss_mib`.
Prints a markdown table (mutation, outcome, seconds, peak RSS) and writes bench/results/probe.json.
"""

import argparse
import json
import os
import resource
import select
import shutil
import struct
import sys
import tempfile
import time
import traceback
import warnings

import torch

from common import write_result

import lsrec_hf  # noqa: F401  (registers the model and the "recommendation" task)
from lsrec_hf import ItemCatalog, LSRecConfig, LSRecForSequentialRecommendation
from lsrec_hf.training.checkpointing import write_manifest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_ITEMS = 20
HISTORY = ["m1", "m2", "m3"]


# --- the checkpoint: a tiny real model, its LoRA adapter, a manifest ----------------------------------------------


def save_base(folder):
    """A tiny random model with a catalog of NUM_ITEMS items (ids m0, m1, ...), saved as `save_pretrained` does."""
    torch.manual_seed(0)
    config = LSRecConfig(num_items=NUM_ITEMS, content_dim=8, hidden_size=16, num_attention_heads=2,
                         intermediate_size=32, segment_length=4, memory_length=8)
    model = LSRecForSequentialRecommendation(config)
    model.catalog = ItemCatalog([f"m{i}" for i in range(NUM_ITEMS)], [f"Movie {i}" for i in range(NUM_ITEMS)],
                                [f"text {i}" for i in range(NUM_ITEMS)])
    model.save_pretrained(folder)
    return model


def save_adapter(model, folder):
    """A LoRA adapter of `model` with its base inside the folder, as `recipes/finetune.py` writes it."""
    from peft import LoraConfig, get_peft_model

    model.save_pretrained(os.path.join(folder, "base_model"))
    model.config.save_pretrained(folder)  # as the recipe does, so that transformers lets LSRec resolve the base
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
        peft.save_pretrained(folder)
    path = os.path.join(folder, "adapter_config.json")
    adapter = json.load(open(path, encoding="utf-8"))
    json.dump({**adapter, "base_model_name_or_path": "base_model"}, open(path, "w", encoding="utf-8"))


# --- the mutations: (name, kind of folder, damaged file, change applied to a fresh copy) --------------------------


def edit_json(name, change):
    def mutate(folder):
        path = os.path.join(folder, name)
        data = json.load(open(path, encoding="utf-8"))
        json.dump(change(data), open(path, "w", encoding="utf-8"))
    return mutate


def edit_bytes(name, change):
    def mutate(folder):
        path = os.path.join(folder, name)
        data = open(path, "rb").read()
        open(path, "wb").write(change(data))
    return mutate


def edit_tensors(change):
    def mutate(folder):
        from safetensors.torch import load_file, save_file

        path = os.path.join(folder, "model.safetensors")
        tensors = load_file(path)
        save_file(change(tensors), path, metadata={"format": "pt"})
    return mutate


def flip_header_bits(data):
    # bit flips inside the JSON header (after its 8-byte length): names, dtypes and offsets become garbage
    data = bytearray(data)
    (length,) = struct.unpack("<Q", data[:8])
    for position in range(9, 8 + length, max(length // 12, 1)):
        data[position] ^= 0x24
    return bytes(data)


def huge_catalog(data):
    """A catalog.json of 5M items, as a shared or hostile checkpoint could ship (about 90 MB)."""
    count = 5_000_000
    ids = ",".join(f'"x{i}"' for i in range(count))
    return ('{"item_ids": [' + ids + '], "titles": [' + ",".join(['""'] * count) + '], "texts": ['
            + ",".join(['""'] * count) + "]}").encode()


def outside_index(folder):
    """The weights moved out of the folder, and a shard index in the folder naming them there."""
    from safetensors import safe_open

    outside = folder + "_outside"
    os.makedirs(outside, exist_ok=True)
    shutil.move(os.path.join(folder, "model.safetensors"), os.path.join(outside, "model.safetensors"))
    with safe_open(os.path.join(outside, "model.safetensors"), framework="pt") as f:
        keys = list(f.keys())
    name = f"../{os.path.basename(outside)}/model.safetensors"
    json.dump({"metadata": {}, "weight_map": {key: name for key in keys}},
              open(os.path.join(folder, "model.safetensors.index.json"), "w"))


def remove(name):
    return lambda folder: os.remove(os.path.join(folder, name))


# Loads that may succeed: a model without catalog.json is a model (it scores; only the pipeline needs the catalog).
MAY_LOAD = {"catalog_missing": {"AutoModel.from_pretrained"}}
RENAMED = "model.encoder.layers.0.attention.q_proj.weight"
CONFIG, CATALOG, WEIGHTS, MANIFEST, ADAPTER = ("config.json", "catalog.json", "model.safetensors", "manifest.json",
                                               "adapter_config.json")
MUTATIONS = [
    # config.json: wrong types, impossible or huge sizes, missing keys, another model
    ("config_not_json", "model", CONFIG, edit_bytes(CONFIG, lambda d: d[: len(d) // 2])),
    ("config_is_a_list", "model", CONFIG, edit_json(CONFIG, lambda c: [c])),
    ("config_wrong_model_type", "model", CONFIG, edit_json(CONFIG, lambda c: {**c, "model_type": "bert"})),
    ("config_unknown_model_type", "model", CONFIG, edit_json(CONFIG, lambda c: {**c, "model_type": "nope"})),
    ("config_no_model_type", "model", CONFIG, edit_json(CONFIG, lambda c: {k: v for k, v in c.items() if k != "model_type"})),
    ("config_no_num_items", "model", CONFIG, edit_json(CONFIG, lambda c: {k: v for k, v in c.items() if k != "num_items"})),
    ("config_hidden_size_text", "model", CONFIG, edit_json(CONFIG, lambda c: {**c, "hidden_size": "16"})),
    ("config_num_items_negative", "model", CONFIG, edit_json(CONFIG, lambda c: {**c, "num_items": -5})),
    ("config_num_items_huge", "model", CONFIG, edit_json(CONFIG, lambda c: {**c, "num_items": 10**12})),
    ("config_hidden_size_huge", "model", CONFIG, edit_json(CONFIG, lambda c: {**c, "hidden_size": 2**30})),
    ("config_layers_huge", "model", CONFIG, edit_json(CONFIG, lambda c: {**c, "num_hidden_layers": 100000})),
    ("config_layers_negative", "model", CONFIG, edit_json(CONFIG, lambda c: {**c, "num_hidden_layers": -1})),
    ("config_heads_do_not_divide", "model", CONFIG, edit_json(CONFIG, lambda c: {**c, "num_attention_heads": 3})),
    ("config_segment_length_zero", "model", CONFIG, edit_json(CONFIG, lambda c: {**c, "segment_length": 0})),
    ("config_intermediate_huge", "model", CONFIG, edit_json(CONFIG, lambda c: {**c, "intermediate_size": 2**40})),
    # catalog.json: cut, miscounted, duplicated, huge, missing
    ("catalog_truncated", "model", CATALOG, edit_bytes(CATALOG, lambda d: d[: len(d) // 2])),
    ("catalog_wrong_count", "model", CATALOG, edit_json(CATALOG, lambda c: {k: v[:-1] if isinstance(v, list) else v for k, v in c.items()})),
    ("catalog_duplicate_ids", "model", CATALOG, edit_json(CATALOG, lambda c: {**c, "item_ids": ["m1"] * NUM_ITEMS})),
    ("catalog_no_texts", "model", CATALOG, edit_json(CATALOG, lambda c: {k: v for k, v in c.items() if k != "texts"})),
    ("catalog_not_utf8", "model", CATALOG, edit_bytes(CATALOG, lambda d: d.replace(b"Movie 1", b"Movi\xe9 1"))),
    ("catalog_huge", "model", CATALOG, edit_bytes(CATALOG, huge_catalog)),
    ("catalog_missing", "model", CATALOG, remove(CATALOG)),
    # model.safetensors: cut, header bits flipped, tensors missing, renamed, reshaped
    ("weights_truncated", "model", WEIGHTS, edit_bytes(WEIGHTS, lambda d: d[: len(d) // 2])),
    ("weights_header_cut", "model", WEIGHTS, edit_bytes(WEIGHTS, lambda d: d[:100])),
    ("weights_header_bits_flipped", "model", WEIGHTS, edit_bytes(WEIGHTS, flip_header_bits)),
    ("weights_header_length_huge", "model", WEIGHTS, edit_bytes(WEIGHTS, lambda d: struct.pack("<Q", 2**62) + d[8:])),
    ("weights_empty", "model", WEIGHTS, edit_bytes(WEIGHTS, lambda d: b"")),
    ("weights_tensor_missing", "model", WEIGHTS, edit_tensors(lambda t: {k: v for k, v in t.items() if k != RENAMED})),
    ("weights_tensor_renamed", "model", WEIGHTS, edit_tensors(lambda t: {(k + "_x" if k == RENAMED else k): v for k, v in t.items()})),
    ("weights_tensor_reshaped", "model", WEIGHTS, edit_tensors(lambda t: {**t, RENAMED: t[RENAMED].reshape(8, -1).contiguous()})),
    ("weights_missing", "model", WEIGHTS, remove(WEIGHTS)),
    ("index_names_a_file_outside", "model", "model.safetensors.index.json", outside_index),
    # manifest.json (what --resume trusts) and adapter_config.json: paths outside the folder
    ("manifest_names_etc_hostname", "manifest", MANIFEST, edit_json(MANIFEST, lambda m: {"files": {**m["files"], "/etc/hostname": {"bytes": 1, "sha256": "0"}}})),
    ("manifest_names_a_parent_file", "manifest", MANIFEST, edit_json(MANIFEST, lambda m: {"files": {**m["files"], "../x/model.safetensors": {"bytes": 1, "sha256": "0"}}})),
    ("manifest_not_json", "manifest", MANIFEST, edit_bytes(MANIFEST, lambda d: d[: len(d) // 2])),
    ("manifest_wrong_hash", "manifest", MANIFEST, edit_json(MANIFEST, lambda m: {"files": {k: {**v, "sha256": "0" * 64} for k, v in m["files"].items()}})),
    ("adapter_base_outside", "adapter", ADAPTER, edit_json(ADAPTER, lambda a: {**a, "base_model_name_or_path": "../../../../tmp/base"})),
    ("adapter_base_absolute_missing", "adapter", ADAPTER, edit_json(ADAPTER, lambda a: {**a, "base_model_name_or_path": "/nonexistent/other_base"})),
    ("adapter_config_not_json", "adapter", ADAPTER, edit_bytes(ADAPTER, lambda d: d[: len(d) // 2])),
]  # fmt: skip


# --- one load, in a forked child with limits ------------------------------------------------------------------------


def loads(kind, folder):
    """What a user calls on such a folder: (description, call) pairs."""
    from transformers import AutoModel, pipeline

    from lsrec_hf.training.checkpointing import verify_manifest

    if kind == "manifest":
        return [("verify_manifest", lambda: verify_manifest(folder))]
    return [("AutoModel.from_pretrained", lambda: AutoModel.from_pretrained(folder)),
            ("pipeline", lambda: pipeline("recommendation", model=folder, device="cpu")(HISTORY))]


def _child(kind, folder, name, memory_limit, out):
    """Run every load of `folder`; write one JSON line per load to the pipe `out`."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    results = []
    for what, call in loads(kind, folder):
        try:
            call()
            results.append({"load": what, "outcome": "loaded"})
        except BaseException as error:  # noqa: BLE001 (a MemoryError or a SystemExit is a finding too)
            message = f"{type(error).__name__}: {error}"
            results.append({"load": what, "outcome": "named error" if name in message else "unnamed error",
                            "error": message[:400], "where": traceback.format_exc(limit=-1)[-300:]})
    os.write(out, json.dumps(results).encode())
    os.close(out)


def _status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


def _vm_size():
    return _status("VmSize")


def run_one(mutation, folder, max_seconds, headroom):
    """Outcome, seconds and peak RSS (MiB) of loading `folder`, damaged by `mutation`, in a child process."""
    name, kind, damaged, _ = mutation
    read, write = os.pipe()
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: everything is imported already, so a load costs what it costs, not an import
        os.close(read)
        try:
            _child(kind, folder, damaged, _vm_size() + headroom, write)
        finally:
            os._exit(0)
    os.close(write)
    chunks, status, usage = [], None, None
    while True:
        ready, _, _ = select.select([read], [], [], 0.05)
        if ready and (chunk := os.read(read, 1 << 16)):
            chunks.append(chunk)
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if time.perf_counter() - start > max_seconds:
            os.kill(pid, 9)
            _, status, usage = os.wait4(pid, 0)
            break
    while chunk := os.read(read, 1 << 16):
        chunks.append(chunk)
    os.close(read)
    seconds = time.perf_counter() - start
    row = {"mutation": name, "file": damaged, "seconds": round(seconds, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}
    if seconds > max_seconds:
        return {**row, "outcome": f"timed out (> {max_seconds} s)", "loads": []}
    if not chunks:
        return {**row, "outcome": f"crashed (status {status})", "loads": []}
    results = json.loads(b"".join(chunks))
    outcomes = {r["outcome"] for r in results if not (r["outcome"] == "loaded" and r["load"] in MAY_LOAD.get(name, ()))}
    return {**row, "outcome": outcomes.pop() if len(outcomes) == 1 else "mixed", "loads": results}


def probe(names=None, max_seconds=30.0, max_rss_mib=2048):
    """Rows of every mutation (or those in `names`): each loaded from a damaged copy of one saved checkpoint."""
    torch.set_num_threads(1)  # forked children must not inherit a busy thread pool
    selected = [m for m in MUTATIONS if names is None or m[0] in names]
    unknown = set(names or ()) - {m[0] for m in MUTATIONS}
    if unknown:
        raise ValueError(f"unknown mutations: {sorted(unknown)}; known: {[m[0] for m in MUTATIONS]}")
    with tempfile.TemporaryDirectory() as tmp:
        originals = {kind: os.path.join(tmp, kind) for kind in ("model", "adapter", "manifest")}
        model = save_base(originals["model"])
        save_adapter(model, originals["adapter"])
        shutil.copytree(originals["model"], originals["manifest"])
        write_manifest(originals["manifest"])
        rows = []
        for mutation in selected:
            name, kind, _, mutate = mutation
            folder = os.path.join(tmp, "copies", name, kind)  # a few levels deep: "../" names stay in tmp
            shutil.copytree(originals[kind], folder)
            mutate(folder)
            row = run_one(mutation, folder, max_seconds, headroom=max_rss_mib * 2**20)
            row["ok"] = row["outcome"] == "named error" and row["peak_rss_mib"] <= max_rss_mib
            rows.append(row)
            shutil.rmtree(os.path.join(tmp, "copies", name))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None, help="Comma-separated mutation names (default: all).")
    parser.add_argument("--max_seconds", type=float, default=30.0, help="Time limit of one mutation's loads.")
    parser.add_argument("--max_rss_mib", type=float, default=2048,
                        help="Peak RSS a child may reach; its address space may grow this much past the parent's.")
    parser.add_argument("--output", default=os.path.join(ROOT, "bench", "results", "probe.json"))
    parser.add_argument("--no_write", action="store_true", help="Print the table only.")
    args = parser.parse_args()
    start = time.perf_counter()
    rows = probe(args.only.split(",") if args.only else None, args.max_seconds, args.max_rss_mib)
    print("| mutation | outcome | seconds | peak RSS MiB |\n|---|---|---:|---:|")
    for row in rows:
        print(f"| {row['mutation']} | {row['outcome']} | {row['seconds']:.2f} | {row['peak_rss_mib']:.0f} |")
    summary = {"mutations": len(rows), "named_errors": sum(r["outcome"] == "named error" for r in rows),
               "ok": sum(r["ok"] for r in rows), "max_seconds": max(r["seconds"] for r in rows),
               "max_peak_rss_mib": max(r["peak_rss_mib"] for r in rows),
               "total_seconds": round(time.perf_counter() - start, 1)}
    print("\n" + ", ".join(f"{key}: {value}" for key, value in summary.items()))
    for row in rows:
        if not row["ok"]:
            print(f"\n{row['mutation']}: {row['outcome']}")
            for load in row["loads"]:
                print(f"  {load['load']}: {load['outcome']}: {load.get('error', '')[:300]}")
    if not args.no_write:
        write_result(args.output, {"summary": summary, "rows": rows,
                                   "limits": {"max_seconds": args.max_seconds, "max_rss_mib": args.max_rss_mib}})
    return 0 if summary["ok"] == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
