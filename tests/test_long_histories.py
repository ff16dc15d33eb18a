"""A 20,000-event user in training and at inference: attention never spans more than segment + memory events."""

import numpy as np
import torch
from accelerate import Accelerator

from lsrec_hf import LSRecConfig, LSRecForSequentialRecommendation
from lsrec_hf.model.modeling_lsrec import LSRecAttention
from lsrec_hf.processing.sequences import EvalExamples, Splits
from lsrec_hf.training import TrainingArguments, train

EVENTS, SEGMENT, MEMORY = 20_000, 50, 50


def _record_attention_sizes(model):
    sizes = []

    def hook(module, args, output):
        hidden_states, context, bias = args
        sizes.append((hidden_states.shape[1], context.shape[1], tuple(bias.shape)))

    for module in model.modules():
        if isinstance(module, LSRecAttention):
            module.register_forward_hook(hook)
    return sizes


def _model(objective="causal"):
    torch.manual_seed(0)
    config = LSRecConfig(num_items=200, use_content=False, content_dim=0, hidden_size=16, intermediate_size=32,
                         num_hidden_layers=1, segment_length=SEGMENT, memory_length=MEMORY, objective=objective)
    return LSRecForSequentialRecommendation(config)


def _bounded(sizes):
    assert sizes
    for query, key, bias in sizes:
        assert query <= SEGMENT + 1 and key <= SEGMENT + 1 + MEMORY, (query, key)
        assert bias[-2:] == (query, key)  # the bias too is segment x (memory + segment), never history x history


def test_training_on_a_20k_event_history_reads_it_segment_by_segment(tmp_path):
    rng = np.random.default_rng(0)
    long_user = rng.integers(0, 200, EVENTS)
    history = long_user[:-1]
    examples = EvalExamples(user_ids=["u"], histories=[history], targets=np.array([long_user[-1]]))
    splits = Splits(train=[long_user[:-2]], valid=examples, test=examples, protocol="leave-one-out")
    model = _model()
    sizes = _record_attention_sizes(model)
    args = TrainingArguments(output_dir=str(tmp_path), num_epochs=1, batch_size=1, warmup_steps=1)
    state = train(model, splits, args, Accelerator(cpu=True))
    _bounded(sizes)
    assert state.global_step == -(-(EVENTS - 3) // SEGMENT)  # one optimizer step per segment of the history
    assert np.isfinite(state.history[0]["train_loss"])


def test_inference_on_a_20k_event_history_is_segment_by_segment():
    for objective in ("causal", "cloze"):
        model = _model(objective).eval()
        sizes = _record_attention_sizes(model)
        scores, gate = model.score_next(torch.randint(2, 202, (1, EVENTS))).to_tuple()
        _bounded(sizes)
        assert len(sizes) >= EVENTS // SEGMENT and torch.isfinite(scores).all()
