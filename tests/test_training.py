"""The training loop: one epoch on real data lowers the loss, the sampled softmax gets its real proposal."""

import numpy as np
import pytest
import torch
from accelerate import Accelerator

from lsrec_hf import LSRecConfig, LSRecForSequentialRecommendation
from lsrec_hf.data import load_data
from lsrec_hf.processing.sequences import build_user_sequences, item_counts, leave_one_out
from lsrec_hf.training import TrainingArguments, train


@pytest.fixture(scope="module")
def splits(ml100k_slice):
    data = load_data(ml100k_slice)
    return leave_one_out(build_user_sequences(data.interactions, data.catalog)), len(data.catalog)


def tiny_model(num_items, **overrides):
    torch.manual_seed(0)
    config = LSRecConfig(num_items=num_items, use_content=False, content_dim=0, hidden_size=16, num_attention_heads=2,
                         intermediate_size=32, num_hidden_layers=1, segment_length=20, memory_length=20, **overrides)
    return LSRecForSequentialRecommendation(config)


def test_sampled_softmax_trains_against_the_items_training_frequencies(splits, tmp_path):
    splits, num_items = splits
    model = tiny_model(num_items, loss="sampled", num_negatives=64)
    args = TrainingArguments(output_dir=str(tmp_path), num_epochs=1, batch_size=32, warmup_steps=5)
    train(model, splits, args, Accelerator(cpu=True))
    expected = item_counts(splits.train, num_items) + 1.0
    np.testing.assert_allclose(model.sampling_probs.numpy(), expected / expected.sum(), rtol=1e-5)
    assert model.sampling_probs.max() > 10 * model.sampling_probs.min()  # not the uniform start


def test_training_lowers_the_loss_and_keeps_the_best_epoch(splits, tmp_path):
    splits, num_items = splits
    model = tiny_model(num_items)
    args = TrainingArguments(output_dir=str(tmp_path), num_epochs=3, batch_size=32, warmup_steps=5)
    state = train(model, splits, args, Accelerator(cpu=True))
    losses = [h["train_loss"] for h in state.history]
    assert losses[-1] < losses[0]
    best = max(state.history, key=lambda h: h["valid_ndcg@10"])
    assert state.best_epoch == best["epoch"] and state.best_metric == best["valid_ndcg@10"]


def test_loss_excludes_history_sees_the_earlier_segments_of_long_histories(splits, tmp_path):
    splits, num_items = splits
    widths = []
    model = tiny_model(num_items, loss_excludes_history=True)
    model.register_forward_pre_hook(
        lambda module, args, kwargs: widths.append((kwargs["input_ids"].shape[1], kwargs["earlier_ids"].shape[1])),
        with_kwargs=True)
    args = TrainingArguments(output_dir=str(tmp_path / "excluded"), num_epochs=1, batch_size=32, warmup_steps=5)
    excluded = train(model, splits, args, Accelerator(cpu=True)).history[0]["train_loss"]
    training_calls = [w for w in widths if w[0] == 20]
    assert {earlier for _, earlier in training_calls} >= {0, 20, 40}  # histories of several segments
    plain_args = TrainingArguments(output_dir=str(tmp_path / "plain"), num_epochs=1, batch_size=32, warmup_steps=5)
    plain = train(tiny_model(num_items, loss_excludes_history=False), splits, plain_args,
                  Accelerator(cpu=True)).history[0]["train_loss"]
    assert excluded < plain  # the same start, fewer negatives at every position
