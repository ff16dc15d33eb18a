"""Checkpoints: safetensors/JSON round trip of the whole run state, manifest checks, fallback to the last good one."""

import json
import os
import random
import shutil
import sys

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from safetensors.torch import load_file, save_file
from transformers import AutoModel

from conftest import ROOT, SMALL_MODEL, run, save_tiny_model
from lsrec_hf import LSRecConfig, LSRecForSequentialRecommendation
from lsrec_hf.training.checkpointing import (RESUME_FILES, CheckpointError, find_resumable, load_checkpoint, save_checkpoint,
                                    verify_manifest)
from lsrec_hf.sharing.paths import CheckpointPathError


def _run_parts(seed=0):
    torch.manual_seed(seed)
    model = LSRecForSequentialRecommendation(LSRecConfig(num_items=30, use_content=False, content_dim=0, hidden_size=16,
                                                         intermediate_size=32, segment_length=5, memory_length=5))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1 + step))
    accelerator = Accelerator(cpu=True)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    return accelerator, model, optimizer, scheduler


def _step(model, optimizer, scheduler):
    ids = torch.randint(2, 32, (4, 5))
    model(ids, labels=torch.randint(0, 30, (4, 5))).loss.backward()
    optimizer.step(), scheduler.step(), optimizer.zero_grad()


def test_round_trip_restores_weights_optimizer_schedule_and_random_states(tmp_path):
    accelerator, model, optimizer, scheduler = _run_parts()
    for _ in range(3):
        _step(model, optimizer, scheduler)
    save_checkpoint(str(tmp_path / "last"), accelerator, model, optimizer, scheduler, {"epoch": 3})
    files = set(os.listdir(tmp_path / "last"))
    assert files == {"model.safetensors", "optimizer.safetensors", "optimizer.json", "scheduler.json",
                     "trainer_state.json", "rng_state_0.safetensors", "rng_state_0.json", "manifest.json"}
    expected_next = (torch.rand(3), np.random.rand(3), random.random())
    _step(model, optimizer, scheduler)
    expected_weights = {k: v.clone() for k, v in model.state_dict().items()}

    accelerator2, model2, optimizer2, scheduler2 = _run_parts(seed=1)  # different weights and states
    state = load_checkpoint(str(tmp_path / "last"), accelerator2, model2, optimizer2, scheduler2)
    assert state == {"epoch": 3}
    assert torch.equal(torch.rand(3), expected_next[0]) and np.array_equal(np.random.rand(3), expected_next[1])
    assert random.random() == expected_next[2]
    load_checkpoint(str(tmp_path / "last"), accelerator2, model2, optimizer2, scheduler2)
    torch.rand(3)  # the same draws and step as after the save ...
    _step(model2, optimizer2, scheduler2)
    for key, value in model2.state_dict().items():  # ... gives bit-identical weights
        assert torch.equal(value, expected_weights[key]), key
    assert scheduler2.get_last_lr() == scheduler.get_last_lr()


@pytest.fixture
def checkpoint(tmp_path):
    accelerator, model, optimizer, scheduler = _run_parts()
    _step(model, optimizer, scheduler)
    save_checkpoint(str(tmp_path / "last"), accelerator, model, optimizer, scheduler, {"epoch": 1})
    return tmp_path / "last"


def test_a_truncated_file_is_named(checkpoint):
    weights = checkpoint / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match=r"model\.safetensors has \d+ bytes.*truncated"):
        verify_manifest(str(checkpoint))


def test_a_flipped_byte_is_named(checkpoint):
    state = checkpoint / "optimizer.safetensors"
    data = bytearray(state.read_bytes())
    data[-1] ^= 0xFF
    state.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"optimizer\.safetensors does not match its SHA-256"):
        verify_manifest(str(checkpoint))


def test_an_unfinished_checkpoint_is_never_loaded(checkpoint):
    os.remove(checkpoint / "manifest.json")  # what a kill before the last write leaves
    with pytest.raises(CheckpointError, match="manifest.json is missing"):
        verify_manifest(str(checkpoint))
    accelerator, model, optimizer, scheduler = _run_parts()
    with pytest.raises(CheckpointError):
        load_checkpoint(str(checkpoint), accelerator, model, optimizer, scheduler)


def test_resume_falls_back_to_the_previous_good_checkpoint(checkpoint, caplog):
    shutil.copytree(checkpoint, str(checkpoint) + ".old")
    shutil.copytree(checkpoint, str(checkpoint) + ".tmp")  # a half-written one is never a candidate
    assert find_resumable(str(checkpoint)) == str(checkpoint)
    (checkpoint / "scheduler.json").write_text("{}")
    assert find_resumable(str(checkpoint)) == str(checkpoint) + ".old"
    assert "scheduler.json" in caplog.text
    shutil.rmtree(str(checkpoint) + ".old")
    assert find_resumable(str(checkpoint)) is None


def test_recipe_resumes_from_the_last_good_checkpoint_when_the_newest_is_damaged(ml100k_slice, tmp_path):
    out = tmp_path / "run"
    base = [sys.executable, os.path.join(ROOT, "recipes", "pretrain.py"), "--dataset", ml100k_slice,
            "--output_dir", str(out), *SMALL_MODEL, "--text_encoder", "none"]
    run(base + ["--num_epochs", "1"])
    last = out / "checkpoints" / "last"
    shutil.copytree(last, str(last) + ".old")
    weights = last / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: len(weights.read_bytes()) // 2])
    stdout = run(base + ["--num_epochs", "2", "--resume", "true"])
    assert f"resumed from {last}.old at epoch 1" in stdout
    assert [h["epoch"] for h in json.loads((out / "eval_results.json").read_text())["history"]] == [1, 2]


# --- loading a saved model is strict, and a checkpoint's files stay in its folder -------------------------------

@pytest.fixture
def saved_model(tmp_path):
    return save_tiny_model(tmp_path / "model", [f"Movie {i}" for i in range(10)])


def test_a_model_with_a_tensor_missing_from_its_weights_is_refused_by_name(saved_model):
    weights = load_file(saved_model / "model.safetensors")
    del weights["model.encoder.layers.0.attention.k_proj.bias"]
    save_file(weights, saved_model / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(OSError, match=r"model\.safetensors does not hold.*missing.*layers\.0\.attention\.k_proj\.bias"):
        AutoModel.from_pretrained(saved_model)


def test_a_truncated_model_safetensors_is_named(saved_model):
    weights = saved_model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:500])
    with pytest.raises(OSError, match=r"model\.safetensors: not a readable safetensors file"):
        AutoModel.from_pretrained(saved_model)


def test_a_config_with_more_layers_than_the_weights_is_refused_before_allocating(saved_model):
    config = json.loads((saved_model / "config.json").read_text())
    (saved_model / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 100000}))
    with pytest.raises(OSError, match=r"num_hidden_layers=100000.*holds 2 layers"):
        AutoModel.from_pretrained(saved_model)


def test_a_shard_index_naming_a_file_outside_the_folder_is_refused(saved_model, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.move(saved_model / "model.safetensors", outside / "model.safetensors")
    keys = load_file(outside / "model.safetensors").keys()
    (saved_model / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {key: "../outside/model.safetensors" for key in keys}}))
    with pytest.raises(CheckpointPathError, match=r"index\.json names '\.\./outside/model\.safetensors'.*outside"):
        AutoModel.from_pretrained(saved_model)


@pytest.mark.parametrize("name", ["/etc/hostname", "../last.old/model.safetensors"])
def test_a_manifest_naming_a_file_outside_its_checkpoint_is_not_a_checkpoint(checkpoint, name):
    manifest = json.loads((checkpoint / "manifest.json").read_text())
    manifest["files"][name] = {"bytes": 1, "sha256": "0"}
    (checkpoint / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="outside"):
        verify_manifest(str(checkpoint))
    assert find_resumable(str(checkpoint)) is None


def test_a_manifest_listing_only_a_foreign_file_is_not_a_checkpoint(tmp_path):
    (tmp_path / "hostname").write_text("x")
    (tmp_path / "manifest.json").write_text(json.dumps({"files": {"hostname": {"bytes": 1, "sha256": "0"}}}))
    with pytest.raises(CheckpointError, match="does not list model.safetensors"):
        verify_manifest(str(tmp_path), RESUME_FILES)
    assert find_resumable(str(tmp_path)) is None


def test_a_catalog_far_too_large_for_num_items_is_refused_before_it_is_parsed(saved_model):
    # 11 x 64 KiB of "[" for a 10-item model: parsed, it would be a RecursionError; it is refused by its size first
    (saved_model / "catalog.json").write_bytes(b"[" * (11 * 64 * 1024 + 1))
    with pytest.raises(ValueError, match=r"catalog\.json: 0\.7 MiB is too large for the catalog of a model of 10 items"):
        AutoModel.from_pretrained(saved_model)


@pytest.mark.parametrize("change, expected", [
    (lambda catalog: {**catalog, "item_ids": ["m1"] * 10}, r"item id 'm1' appears twice"),
    (lambda catalog: {key: value for key, value in catalog.items() if key != "texts"}, r"KeyError: 'texts'"),
    (lambda catalog: {**catalog, "titles": None}, r"TypeError"),
    (lambda catalog: {key: value[:9] for key, value in catalog.items() if key != "attributes"},
     r"the catalog has 9 items but the model scores 10"),
], ids=["duplicate-id", "missing-key", "wrong-type", "wrong-count"])  # fmt: skip
def test_a_malformed_catalog_is_an_error_naming_the_file(saved_model, change, expected):
    catalog = json.loads((saved_model / "catalog.json").read_text())
    (saved_model / "catalog.json").write_text(json.dumps(change(catalog)))
    with pytest.raises(ValueError, match=rf"catalog\.json: .*{expected}"):  # was a KeyError or a message without it
        AutoModel.from_pretrained(saved_model)
