"""Evaluation metrics: full-ranking HR/NDCG/MRR@K, directly or as an `evaluate` module."""

import os

from .ranking import compute_ranking_metrics, ranking_metrics, ranks_from_topk

FULL_RANKING_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "full_ranking")


def load_full_ranking_metric(**kwargs):
    """``evaluate.load`` on the bundled ``full_ranking`` module (a local path: works offline)."""
    import evaluate

    return evaluate.load(FULL_RANKING_PATH, **kwargs)


__all__ = ["FULL_RANKING_PATH", "compute_ranking_metrics", "load_full_ranking_metric", "ranking_metrics", "ranks_from_topk"]
