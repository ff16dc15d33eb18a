"""Full-ranking HR/NDCG/MRR@K for direct use (training loops, benchmarks).

The formulas live in ``full_ranking/full_ranking.py``, the `evaluate` module script, because
``evaluate.load`` copies that script alone into its cache where it cannot import this package.
Importing them from there keeps a single copy of the maths.
"""

from .full_ranking.full_ranking import compute_ranking_metrics, ranking_metrics, ranks_from_topk

__all__ = ["compute_ranking_metrics", "ranking_metrics", "ranks_from_topk"]
