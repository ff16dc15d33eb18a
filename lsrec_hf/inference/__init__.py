"""Inference: the recommendation pipeline, explanations, user states, ONNX export, `lsrec serve`; imports any earlier stage."""
