"""Training: the Accelerate loop, checkpoints, fine-tuning, the recipes' shared steps; imports data, processing, model (and evaluation, sharing)."""

from .loop import TrainerState, TrainingArguments, format_metrics_table, train

__all__ = ["TrainerState", "TrainingArguments", "format_metrics_table", "train"]
