"""ONNX export of the scorer: a batch of left-padded item-token histories in, next-item scores and gate out.

    lsrec export onnx --model outputs/lsrec-ml-100k --output outputs/lsrec-ml-100k.onnx --max_length 200

The batch size is dynamic. The history length is fixed at export (`max_length`, rounded up to whole segments): the
long memory reads a history chunk by chunk, and that recurrence is unrolled into the graph. Shorter histories are
left-padded to it (`pad_histories`), longer ones keep their last `max_length` events. Side features (context,
scenario) are not inputs of the exported graph: they count as unknown, as when the pipeline is given none.
"""

import os

import numpy as np
import torch
from torch import nn

from ..processing.collator import pad_left, segment_aligned_length
from ..processing.tokens import PAD_TOKEN_ID, to_tokens

INPUT_NAMES = ["input_ids"]
OUTPUT_NAMES = ["scores", "gate"]


class NextItemScorer(nn.Module):
    """`input_ids` `[B, max_length]` -> (`scores` `[B, num_items]`, `gate` `[B]`): `score_next` as one graph."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids):
        state, gate = self.model.next_user_state(input_ids, skip_empty_chunks=False)
        return self.model.item_scores(state), gate


def export_length(config, max_length):
    """The fixed history length of an exported graph: `max_length` in whole segments (one for a short-only model)."""
    if not config.uses_long_memory:
        return config.segment_length
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    return segment_aligned_length(max_length, config.segment_length)


def pad_histories(histories, length):
    """`[len(histories), length]` int64 array of item-token histories, left-padded (or cut to their last events)."""
    return pad_left([list(history)[-length:] for history in histories], length, PAD_TOKEN_ID).numpy()


def export_onnx(model, path, max_length=200, opset=18):
    """Write `model`'s scorer to `path` (ONNX). Returns the fixed history length of the graph."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if hasattr(model, "merge_and_unload"):  # a PEFT model: export the adapted weights
        base = model.merge_and_unload()
    base = base.eval()
    length = export_length(base.config, max_length)
    example = torch.full((2, length), PAD_TOKEN_ID, dtype=torch.long)
    example[:, -3:] = to_tokens(torch.arange(3))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with torch.no_grad():
        # an eval-mode wrapper: the exporter restores the wrapper's mode afterwards, and with it the model's
        torch.onnx.export(NextItemScorer(base).eval(), (example,), path, input_names=INPUT_NAMES, output_names=OUTPUT_NAMES,
                          dynamic_axes={"input_ids": {0: "batch"}, "scores": {0: "batch"}, "gate": {0: "batch"}},
                          opset_version=opset, dynamo=False)
    return length


class OnnxScorer:
    """An exported scorer run by onnxruntime: `scorer(histories)` -> (`scores` `[B, num_items]`, `gate` `[B]`)."""

    def __init__(self, path, threads=None):
        try:
            import onnxruntime
        except ImportError:
            raise ImportError('running an exported model needs onnxruntime: pip install "lsrec_hf[export]"') from None
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.length = self.session.get_inputs()[0].shape[1]

    def __call__(self, histories):
        input_ids = histories if isinstance(histories, np.ndarray) else pad_histories(histories, self.length)
        scores, gate = self.session.run(OUTPUT_NAMES, {"input_ids": input_ids.astype(np.int64)})
        return scores, gate


__all__ = ["NextItemScorer", "OnnxScorer", "export_onnx", "export_length", "pad_histories"]
