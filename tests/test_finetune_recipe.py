"""LoRA fine-tuning of a pretrained checkpoint on a slice of the real MovieLens-100K."""

import json
import os
import subprocess
import sys

import pytest
import torch
from peft import PeftModel
from transformers import AutoModel

import lsrec_hf  # noqa: F401  (registers LSRec with the Auto classes)
from conftest import ROOT, SMALL_MODEL, run
from lsrec_hf.data import load_data
from lsrec_hf.evaluation import evaluate_ranking
from lsrec_hf.sequences import build_user_sequences, leave_one_out

PRETRAIN = os.path.join(ROOT, "recipes", "pretrain.py")
FINETUNE = os.path.join(ROOT, "recipes", "finetune.py")
TRAINING = ["--batch_size", "32", "--warmup_steps", "5", "--num_epochs", "2"]


@pytest.fixture(scope="module")
def base_dir(ml100k_slice, tmp_path_factory):
    out = tmp_path_factory.mktemp("base")
    run([sys.executable, PRETRAIN, "--dataset", ml100k_slice, "--output_dir", str(out), "--num_epochs", "2",
         *SMALL_MODEL])
    return out


@pytest.fixture(scope="module")
def test_split(ml100k_slice):
    data = load_data(ml100k_slice)
    return leave_one_out(build_user_sequences(data.interactions, data.catalog)).test


def test_lora_trains_an_adapter_that_reloads_and_merges_to_the_reported_metrics(ml100k_slice, base_dir, test_split,
                                                                                 tmp_path):
    out = tmp_path / "lora"
    stdout = run([sys.executable, FINETUNE, "--base_model", str(base_dir), "--dataset", ml100k_slice,
                  "--output_dir", str(out), "--learning_rate", "0.01", *TRAINING])
    assert "trainable parameters" in stdout and "NDCG" in stdout
    files = set(os.listdir(out))
    assert {"adapter_model.safetensors", "adapter_config.json", "eval_results.json"} <= files
    assert "model.safetensors" not in files  # the adapter is saved on its own
    results = json.loads((out / "eval_results.json").read_text())
    base = AutoModel.from_pretrained(base_dir)
    assert results["trainable_parameters"] < 0.5 * sum(p.numel() for p in base.parameters())

    ids = torch.tensor([[5, 9, 40, 300, 12]])
    base_scores = base.eval().score_next(ids)[0]
    adapted = PeftModel.from_pretrained(AutoModel.from_pretrained(base_dir), out).eval()
    assert not torch.allclose(adapted.score_next(ids)[0], base_scores, atol=1e-4)  # the adapter changed the model
    reloaded = evaluate_ranking(adapted, test_split)
    assert reloaded["ndcg@10"] == pytest.approx(results["test"]["ndcg@10"], abs=1e-9)

    merged = adapted.merge_and_unload().eval()
    torch.testing.assert_close(merged.score_next(ids)[0], adapted.score_next(ids)[0], atol=1e-5, rtol=1e-5)


def test_full_finetune_saves_a_whole_model(ml100k_slice, base_dir, tmp_path):
    out = tmp_path / "full"
    run([sys.executable, FINETUNE, "--base_model", str(base_dir), "--dataset", ml100k_slice, "--output_dir", str(out),
         "--full_finetune", "true", *TRAINING])
    assert {"model.safetensors", "catalog.json"} <= set(os.listdir(out))
    assert AutoModel.from_pretrained(out).catalog is not None


def test_lora_finetune_runs_on_two_gloo_processes(ml100k_slice, base_dir, tmp_path):
    out = tmp_path / "lora2"
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--main_process_port", "29533"]
    stdout = run(launcher + [FINETUNE, "--base_model", str(base_dir), "--dataset", ml100k_slice,
                             "--output_dir", str(out), *TRAINING], env_extra={"ACCELERATE_USE_CPU": "true"})
    assert "2 process(es)" in stdout
    results = json.loads((out / "eval_results.json").read_text())
    assert results["num_processes"] == 2 and results["test"]["num_users"] == 120


def test_items_missing_from_the_base_catalog_are_named(base_dir, tmp_path):
    table = tmp_path / "new.csv"
    table.write_text("user,item,ts\nu1,1,1\nu1,2,2\nu1,new-item-7,3\nu1,3,4\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, FINETUNE, "--base_model", str(base_dir), "--dataset", str(table),
         "--column_map", '{"user_id": "user", "item_id": "item", "timestamp": "ts"}', "--output_dir", str(tmp_path / "o")],
        capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode != 0 and "new-item-7" in result.stderr and "Traceback" not in result.stderr
