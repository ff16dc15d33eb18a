"""Evaluation: full-ranking evaluation, baselines and metrics; imports data, processing and model."""

from .rank import DEFAULT_K_VALUES, evaluate_ranking, mask_history, rank_examples, ranking_name

__all__ = ["DEFAULT_K_VALUES", "evaluate_ranking", "mask_history", "rank_examples", "ranking_name"]
