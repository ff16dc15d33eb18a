"""ONNX export of the scorer (`lsrec export onnx`): onnxruntime's scores and gates are torch's, on real histories."""

import sys

import numpy as np
import pytest
import torch

from conftest import run, save_tiny_model
from lsrec_hf import LSRecForSequentialRecommendation
from lsrec_hf.data import load_data
from lsrec_hf.inference.export import OnnxScorer, export_onnx, pad_histories
from lsrec_hf.processing.sequences import build_user_sequences, leave_one_out
from lsrec_hf.processing.tokens import to_tokens

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def real_model(ml100k_slice):
    """A model of the ML-100K slice's catalog (random weights and text vectors) and the slice's test histories."""
    data = load_data(ml100k_slice)
    splits = leave_one_out(build_user_sequences(data.interactions, data.catalog))
    torch.manual_seed(0)
    model = LSRecForSequentialRecommendation.from_catalog(
        data.catalog, torch.randn(len(data.catalog), 12), hidden_size=16, num_attention_heads=2,
        intermediate_size=32, segment_length=8, memory_length=8)
    return model.eval(), [to_tokens(h) for h in splits.test.histories]


def torch_scores(model, histories, length):
    output = model.score_next(torch.as_tensor(pad_histories(histories, length)))
    return output.scores.numpy(), output.gate.numpy()


def test_onnx_scores_equal_torch_on_real_histories_of_every_length(real_model, tmp_path):
    model, histories = real_model
    length = export_onnx(model, tmp_path / "model.onnx", max_length=30)
    assert length == 32  # whole segments of 8
    assert not model.training  # the exporter leaves the model as it found it
    scorer = OnnxScorer(str(tmp_path / "model.onnx"))
    histories = [histories[0][-3:], *histories]  # the last 3 events of a user: one chunk, mostly padding
    lengths = sorted(len(h) for h in histories)
    assert lengths[0] < 8 and 8 < lengths[1] < 32 and lengths[-1] > 32  # one chunk, several, cut to the graph's
    for batch in (histories[:1], histories[:7], histories[:64]):  # the batch size is dynamic
        scores, gate = scorer(batch)
        expected_scores, expected_gate = torch_scores(model, batch, length)
        np.testing.assert_allclose(scores, expected_scores, atol=1e-4, rtol=0)
        np.testing.assert_allclose(gate, expected_gate, atol=1e-5, rtol=0)
    # cut to the graph's length: the same as the model reading the last 32 events
    longest = max(histories, key=len)
    np.testing.assert_allclose(scorer([longest])[0], model.score_next(torch.tensor([longest[-32:]])).scores.numpy(),
                               atol=1e-4, rtol=0)


def test_short_only_model_exports_one_segment(ml100k_slice, tmp_path):
    model = LSRecForSequentialRecommendation.from_catalog(load_data(ml100k_slice).catalog, None, memory="short",
                                                         hidden_size=16, num_attention_heads=2, segment_length=6)
    model.eval()
    assert export_onnx(model, tmp_path / "short.onnx", max_length=200) == 6
    histories = [[5, 9, 40], [7, 3, 11, 12, 13, 14, 15, 16]]
    scores, _ = OnnxScorer(str(tmp_path / "short.onnx"))(histories)
    np.testing.assert_allclose(scores, torch_scores(model, histories, 6)[0], atol=1e-4, rtol=0)


def test_lsrec_export_onnx_command(tmp_path):
    model_dir = save_tiny_model(tmp_path / "model", [f"Movie {i}" for i in range(30)])
    out = tmp_path / "exported" / "model.onnx"
    result = run([sys.executable, "-m", "lsrec_hf.inference.cli", "export", "onnx", "--model", str(model_dir),
                  "--output", str(out), "--max_length", "8"])
    assert "input_ids [batch, 8]" in result and "scores [batch, 30]" in result
    model = LSRecForSequentialRecommendation.from_pretrained(model_dir).eval()
    histories = [model.catalog.encode(["m3", "m7", "m1"]), model.catalog.encode([f"m{i}" for i in range(12)])]
    scores, gate = OnnxScorer(str(out))(histories)
    expected_scores, expected_gate = torch_scores(model, histories, 8)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-4, rtol=0)
    np.testing.assert_allclose(gate, expected_gate, atol=1e-5, rtol=0)
