"""Sparse item-id gradients with a lazy AdamW: AdamW where every row is read, untouched rows left alone, clipping
that reads sparse gradients, and training (one process, a resumed run, two gloo ranks) that uses them."""

import copy
import json
import sys

import pytest
import torch
from safetensors.torch import load_file
from accelerate import Accelerator
from accelerate.utils import set_seed

from conftest import ROOT, SMALL_MODEL, run
from lsrec_hf import LSRecConfig, LSRecForSequentialRecommendation
from lsrec_hf.data import load_data
from lsrec_hf.processing.sequences import build_user_sequences, leave_one_out
from lsrec_hf.training import TrainingArguments, train
from lsrec_hf.training.lazy_adamw import LazyAdamW, clip_grad_norm

RECIPE = f"{ROOT}/recipes/pretrain.py"


def _twin_tables(rows=6, width=3):
    torch.manual_seed(0)
    dense = torch.nn.Embedding(rows, width)
    sparse = copy.deepcopy(dense)
    sparse.sparse = True
    return dense, sparse


def _step(table, optimizer, rows, max_norm=None):
    optimizer.zero_grad()
    (table(rows) ** 2).sum().backward()
    if max_norm is not None:
        clip_grad_norm(list(table.parameters()), max_norm)
    optimizer.step()


def test_every_row_read_steps_exactly_as_adamw_with_weight_decay_and_clipping():
    dense, sparse = _twin_tables()
    adamw = torch.optim.AdamW(dense.parameters(), lr=0.05, weight_decay=0.1, betas=(0.9, 0.98))
    lazy = LazyAdamW(sparse.parameters(), lr=0.05, weight_decay=0.1, betas=(0.9, 0.98))
    rows = torch.tensor([0, 1, 2, 3, 4, 5, 2, 2])  # repeats: a sparse gradient with duplicate rows
    for _ in range(6):
        _step(dense, adamw, rows, max_norm=0.5)
        _step(sparse, lazy, rows, max_norm=0.5)
        assert sparse.weight.grad.is_sparse
    torch.testing.assert_close(sparse.weight, dense.weight, rtol=1e-5, atol=1e-6)
    moved = (dense.weight - _twin_tables()[0].weight).abs().min()
    assert moved > 1e-3  # the comparison is not between two tables that did not train


def test_unread_rows_and_their_moments_are_left_alone():
    _, sparse = _twin_tables()
    before = sparse.weight.detach().clone()
    lazy = LazyAdamW(sparse.parameters(), lr=0.05, weight_decay=0.1)
    _step(sparse, lazy, torch.tensor([1, 4]))
    _step(sparse, lazy, torch.tensor([1]))
    read, unread = [1, 4], [0, 2, 3, 5]
    assert torch.equal(sparse.weight[unread], before[unread])
    assert (sparse.weight[read] - before[read]).abs().min() > 0
    state = lazy.state[sparse.weight]
    assert state["exp_avg"][unread].abs().max() == 0 and state["exp_avg_sq"][unread].abs().max() == 0
    assert state["exp_avg"][4].abs().min() > 0 and int(state["step"]) == 2


def test_clipping_reads_sparse_gradients_as_torch_reads_dense_ones():
    dense, sparse = _twin_tables()
    rows = torch.tensor([0, 3, 3, 5])
    for table in (dense, sparse):
        (table(rows) ** 3).sum().backward()
    expected = torch.nn.utils.clip_grad_norm_(dense.parameters(), 0.1)
    total = clip_grad_norm(list(sparse.parameters()), 0.1)
    torch.testing.assert_close(total, expected)
    torch.testing.assert_close(sparse.weight.grad.to_dense(), dense.weight.grad)
    assert dense.weight.grad.norm() == pytest.approx(0.1, rel=1e-4)  # it did clip


@pytest.fixture(scope="module")
def splits(ml100k_slice):
    data = load_data(ml100k_slice)
    return leave_one_out(build_user_sequences(data.interactions, data.catalog)), len(data.catalog)


def _sampled_model(num_items):
    set_seed(0)  # torch, numpy and Python's generators, as the recipes seed them
    config = LSRecConfig(num_items=num_items, use_content=False, content_dim=0, hidden_size=16, num_attention_heads=2,
                         intermediate_size=32, num_hidden_layers=1, segment_length=20, memory_length=20,
                         loss="sampled", num_negatives=64)
    return LSRecForSequentialRecommendation(config)


@pytest.mark.parametrize("setting, expect_sparse", [(None, True), (False, False)])
def test_the_sampled_softmax_trains_the_id_table_through_sparse_gradients_unless_turned_off(
        splits, tmp_path, setting, expect_sparse):
    splits, num_items = splits
    model = _sampled_model(num_items)
    table = model.model.embeddings.item_ids
    seen = []
    table.weight.register_hook(lambda grad: seen.append(grad.is_sparse))
    args = TrainingArguments(output_dir=str(tmp_path), num_epochs=2, batch_size=32, warmup_steps=5,
                             sparse_item_gradients=setting)
    state = train(model, splits, args, Accelerator(cpu=True))
    assert seen and set(seen) == {expect_sparse}
    assert not table.sparse  # handed back dense after training
    assert state.history[-1]["train_loss"] < state.history[0]["train_loss"] + 1.0
    assert torch.isfinite(table.weight).all()


def test_a_resumed_sparse_run_ends_where_the_uninterrupted_one_does(splits, tmp_path):
    splits, num_items = splits
    whole = _sampled_model(num_items)
    train(whole, splits, TrainingArguments(output_dir=str(tmp_path / "whole"), num_epochs=2, batch_size=32,
                                           warmup_steps=5, lr_scheduler_type="constant"), Accelerator(cpu=True))
    # the constant schedule does not depend on num_epochs, so 1 epoch then a resumed 2nd is the same run
    halves = _sampled_model(num_items)
    train(halves, splits, TrainingArguments(output_dir=str(tmp_path / "halves"), num_epochs=1, batch_size=32,
                                            warmup_steps=5, lr_scheduler_type="constant"), Accelerator(cpu=True))
    resumed = _sampled_model(num_items)  # a fresh process would start from fresh weights too
    train(resumed, splits, TrainingArguments(output_dir=str(tmp_path / "halves"), num_epochs=2, batch_size=32,
                                             warmup_steps=5, lr_scheduler_type="constant", resume=True), Accelerator(cpu=True))
    # the lazy optimizer's moments came back from the checkpoint: the same weights, bit for bit
    for (name, expected), actual in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(expected, actual), name


def test_two_gloo_processes_reduce_sparse_id_gradients(ml100k_slice, tmp_path):
    out = tmp_path / "run"
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--main_process_port", "29537"]
    run(launcher + [RECIPE, "--dataset", ml100k_slice, "--output_dir", str(out), "--num_epochs", "2",
                    "--text_encoder", "none", "--loss", "sampled", "--num_negatives", "64", *SMALL_MODEL],
        env_extra={"ACCELERATE_USE_CPU": "true"})
    results = json.loads((out / "eval_results.json").read_text())
    assert results["num_processes"] == 2 and results["test"]["num_users"] == 120
    assert results["history"][1]["valid_ndcg@10"] > 0


def test_rowwise_moments_keep_one_number_per_row_and_step_only_the_rows_read():
    _, table = _twin_tables(rows=6, width=3)
    start = table.weight.detach().clone()
    optimizer = LazyAdamW(table.parameters(), rowwise_moments=True, lr=0.1, betas=(0.9, 0.98), weight_decay=0.0)
    rows = torch.tensor([1, 4, 4])
    _step(table, optimizer, rows)
    state = optimizer.state[table.weight]
    assert set(state) == {"step", "row_exp_avg_sq"} and state["row_exp_avg_sq"].shape == (6,)
    # by hand: g = 2 w per read (row 4 read twice), v = (1 - b2) mean(g^2), bias-corrected, w -= lr g / sqrt(v_hat)
    grad = 2 * start * torch.tensor([0, 1, 0, 0, 2, 0.0])[:, None]
    v = 0.02 * grad.pow(2).mean(1)
    expected = start - 0.1 * grad / ((v / 0.02).sqrt() + 1e-8)[:, None]
    assert torch.allclose(table.weight, expected, atol=1e-6)
    assert torch.equal(table.weight[[0, 2, 3, 5]], start[[0, 2, 3, 5]])  # untouched rows stay


def test_training_with_rowwise_item_moments_learns_and_keeps_no_full_moments_for_the_id_table(ml100k_slice, tmp_path):
    data = load_data(ml100k_slice)
    splits = leave_one_out(build_user_sequences(data.interactions, data.catalog))
    set_seed(0)
    model = LSRecForSequentialRecommendation.from_catalog(data.catalog, None, hidden_size=16, intermediate_size=32,
                                                          num_hidden_layers=1, segment_length=20, memory_length=20,
                                                          loss="sampled", num_negatives=64)
    args = TrainingArguments(output_dir=str(tmp_path), num_epochs=2, batch_size=32, warmup_steps=5, item_moments="rowwise")
    state = train(model, splits, args, Accelerator(cpu=True))
    assert state.history[-1]["valid_ndcg@10"] > 0
    saved = load_file(tmp_path / "checkpoints" / "last" / "optimizer.safetensors")
    row_moments = [v for k, v in saved.items() if k.endswith(".row_exp_avg_sq")]
    assert [v.shape for v in row_moments] == [(len(data.catalog),)]  # the id table: one number per row
    width_sized = [v for k, v in saved.items() if k.endswith(".exp_avg") and v.dim() == 2 and v.shape[0] == len(data.catalog)]
    assert not width_sized  # and no per-weight moments of it
