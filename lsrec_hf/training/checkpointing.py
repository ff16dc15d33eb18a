"""Training checkpoints in safetensors and JSON only, complete or absent, verified before use.

A checkpoint is written into `<dir>.tmp`, its files' SHA-256 hashes go into `manifest.json` last, and only
then is the folder renamed into place (the previous one survives as `<dir>.old` until the rename is done).
Loading checks every file against the manifest first, so a truncated or altered file is reported by name
and never read into the model; `find_resumable` then falls back to the previous good checkpoint.

What is saved: model weights, the optimizer's tensors (safetensors) and hyper-parameters (JSON), the LR
schedule, the loop's own state, a gradient scaler's state when there is one, and every process's random
number generator states, so that a resumed CPU run continues bit for bit.
"""

import hashlib
import json
import logging
import os
import random
import shutil

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..sharing.paths import CheckpointPathError, inside

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
TRAINER_STATE_NAME = "trainer_state.json"
# What a checkpoint to resume from holds beyond the weights (a `best` checkpoint holds the weights alone).
RESUME_FILES = ("model.safetensors", "optimizer.safetensors", "optimizer.json", "scheduler.json", TRAINER_STATE_NAME)


class CheckpointError(RuntimeError):
    """A checkpoint that is incomplete, damaged or does not fit the run that tries to load it."""


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path, payload):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2, default=float)
    os.replace(tmp, path)


def write_manifest(directory):
    """Record size and SHA-256 of every file in `directory` (flushed to disk first) in manifest.json."""
    files = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if name == MANIFEST_NAME or not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            os.fsync(f.fileno())
        files[name] = {"bytes": os.path.getsize(path), "sha256": _sha256(path)}
    write_json(os.path.join(directory, MANIFEST_NAME), {"files": files})


def verify_manifest(directory, required=()):
    """Raise `CheckpointError` naming the first file that is missing, truncated or altered, or lies outside
    `directory`; the manifest must list every `required` file."""
    manifest_path = os.path.join(directory, MANIFEST_NAME)
    if not os.path.isfile(manifest_path):
        raise CheckpointError(f"{manifest_path} is missing: the checkpoint was not completely written")
    try:
        with open(manifest_path, encoding="utf-8") as f:
            files = json.load(f)["files"]
    except (ValueError, KeyError) as error:
        raise CheckpointError(f"{manifest_path} is unreadable: {error}") from None
    if not isinstance(files, dict):
        raise CheckpointError(f"{manifest_path} is unreadable: 'files' is not an object of file names")
    unlisted = [name for name in required if name not in files]
    if unlisted:
        raise CheckpointError(f"{manifest_path} does not list {', '.join(unlisted)}: not a checkpoint of this library")
    for name, expected in files.items():
        try:
            path = inside(directory, name, manifest_path)  # a checkpoint vouches for its own files only
        except CheckpointPathError as error:
            raise CheckpointError(str(error)) from None
        if not os.path.isfile(path):
            raise CheckpointError(f"{path} is missing (listed in {MANIFEST_NAME})")
        size = os.path.getsize(path)
        if not isinstance(expected, dict) or not {"bytes", "sha256"} <= expected.keys():
            raise CheckpointError(f"{manifest_path} is unreadable: the entry of {name!r} lacks 'bytes' and 'sha256'")
        if size != expected["bytes"]:
            raise CheckpointError(f"{path} has {size} bytes, {expected['bytes']} were written: the file is truncated or altered")
        if _sha256(path) != expected["sha256"]:
            raise CheckpointError(f"{path} does not match its SHA-256 in {MANIFEST_NAME}: the file is damaged")
    return files


def swap_into_place(tmp, directory):
    """Replace `directory` by the finished `tmp`; a crash in between leaves `directory.old` to resume from."""
    old = directory + ".old"
    if os.path.exists(directory):
        shutil.rmtree(old, ignore_errors=True)
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)


# --- state <-> safetensors + JSON ------------------------------------------------------------------------

def _optimizer_files(state_dict):
    tensors, state = {}, {}
    for param_id, param_state in state_dict["state"].items():
        state[str(param_id)] = {}
        for name, value in param_state.items():
            if torch.is_tensor(value):
                tensors[f"{param_id}.{name}"] = value.detach().cpu().contiguous()
                state[str(param_id)][name] = {"tensor": f"{param_id}.{name}"}
            else:
                state[str(param_id)][name] = value
    return tensors, {"state": state, "param_groups": state_dict["param_groups"]}


def _optimizer_state_dict(tensors, meta):
    state = {int(param_id): {name: tensors[value["tensor"]] if isinstance(value, dict) and "tensor" in value else value
                             for name, value in param_state.items()}
             for param_id, param_state in meta["state"].items()}
    groups = [{k: tuple(v) if k == "betas" else v for k, v in group.items()} for group in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def _rng_files():
    numpy_state = np.random.get_state()
    tensors = {"torch": torch.get_rng_state(), "numpy": torch.from_numpy(numpy_state[1].astype(np.int64))}
    if torch.cuda.is_available():
        for index, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{index}"] = cuda_state
    python_state = random.getstate()
    meta = {"numpy": [numpy_state[0], int(numpy_state[2]), int(numpy_state[3]), float(numpy_state[4])],
            "python": [python_state[0], list(python_state[1]), python_state[2]]}
    return tensors, meta


def _set_rng(tensors, meta):
    torch.set_rng_state(tensors["torch"])
    cuda_states = [tensors[f"cuda.{i}"] for i in range(len(tensors)) if f"cuda.{i}" in tensors]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states)
    kind, position, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, tensors["numpy"].numpy().astype(np.uint32), position, has_gauss, cached))
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))


# --- save / load -------------------------------------------------------------------------------------------

def save_checkpoint(directory, accelerator, model, optimizer, scheduler, trainer_state):
    """Write a complete checkpoint of the run to `directory` (every process calls this)."""
    tmp = directory + ".tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        weights = accelerator.unwrap_model(model).state_dict()
        save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, os.path.join(tmp, "model.safetensors"))
        tensors, meta = _optimizer_files(optimizer.state_dict())
        save_file(tensors, os.path.join(tmp, "optimizer.safetensors"))
        write_json(os.path.join(tmp, "optimizer.json"), meta)
        write_json(os.path.join(tmp, "scheduler.json"), scheduler.state_dict())
        if accelerator.scaler is not None:
            write_json(os.path.join(tmp, "scaler.json"), accelerator.scaler.state_dict())
        write_json(os.path.join(tmp, TRAINER_STATE_NAME),
                   {**trainer_state, "num_processes": accelerator.num_processes})
    rank = accelerator.process_index
    tensors, meta = _rng_files()
    save_file(tensors, os.path.join(tmp, f"rng_state_{rank}.safetensors"))
    write_json(os.path.join(tmp, f"rng_state_{rank}.json"), meta)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_manifest(tmp)  # last: a folder without it was never finished
        swap_into_place(tmp, directory)
    accelerator.wait_for_everyone()


def find_resumable(directory):
    """The newest verified checkpoint among `directory` and `directory.old`, or None; damage is logged."""
    for candidate in (directory, directory + ".old"):
        if not os.path.isdir(candidate):
            continue
        try:
            verify_manifest(candidate, RESUME_FILES)
            return candidate
        except CheckpointError as error:
            logger.warning("not resuming from %s: %s", candidate, error)
    return None


def load_checkpoint(directory, accelerator, model, optimizer, scheduler):
    """Restore a verified checkpoint written by `save_checkpoint`; returns the loop's state (a dict)."""
    verify_manifest(directory, RESUME_FILES)
    with open(os.path.join(directory, TRAINER_STATE_NAME), encoding="utf-8") as f:
        trainer_state = json.load(f)
    saved_processes = trainer_state.pop("num_processes", None)
    accelerator.unwrap_model(model).load_state_dict(load_file(os.path.join(directory, "model.safetensors")))
    with open(os.path.join(directory, "optimizer.json"), encoding="utf-8") as f:
        meta = json.load(f)
    optimizer.load_state_dict(_optimizer_state_dict(load_file(os.path.join(directory, "optimizer.safetensors")), meta))
    with open(os.path.join(directory, "scheduler.json"), encoding="utf-8") as f:
        scheduler.load_state_dict(json.load(f))
    scaler_path = os.path.join(directory, "scaler.json")
    if accelerator.scaler is not None and os.path.exists(scaler_path):
        with open(scaler_path, encoding="utf-8") as f:
            accelerator.scaler.load_state_dict(json.load(f))
    rng_path = os.path.join(directory, f"rng_state_{accelerator.process_index}.safetensors")
    if saved_processes == accelerator.num_processes and os.path.exists(rng_path):
        with open(rng_path[: -len(".safetensors")] + ".json", encoding="utf-8") as f:
            _set_rng(load_file(rng_path), json.load(f))
    else:
        logger.warning("checkpoint %s was written by %s process(es), this run has %d: random states start afresh, "
                       "so the resumed run will not repeat the uninterrupted one exactly",
                       directory, saved_processes, accelerator.num_processes)
    return trainer_state
