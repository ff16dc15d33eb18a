"""Full-ranking HR@K, NDCG@K and MRR@K for next-item recommendation, as an `evaluate` module.

This file is self-contained on purpose: ``evaluate.load`` copies it alone into its module cache,
so it cannot import anything from ``lsrec_hf``. The package imports the plain functions below
(``lsrec_hf.evaluation.metrics.ranking``), so the formulas exist once.
"""

import datasets
import evaluate
import numpy as np

_CITATION = """\
@inproceedings{krichene2020sampled,
  title     = {On Sampled Metrics for Item Recommendation},
  author    = {Krichene, Walid and Rendle, Steffen},
  booktitle = {Proceedings of the 26th ACM SIGKDD International Conference on Knowledge Discovery \\& Data Mining},
  pages     = {1748--1757},
  year      = {2020}
}
"""

_DESCRIPTION = """\
Full-ranking metrics for next-item recommendation with one held-out target per user
(leave-one-out): Hit Ratio (HR@K), Normalized Discounted Cumulative Gain (NDCG@K) and Mean
Reciprocal Rank (MRR@K), averaged over users.

Protocol: for every user the model scores the *whole* item catalog, the items already in the
user's history are removed, and the top-K of what remains is the ranked list. Nothing is sampled:
sampled-negative metrics can disagree with full ranking even on which model is better
(Krichene & Rendle, 2020).

With rank r (1-based) of the target in the ranked list:
    HR@K   = 1             if r <= K else 0
    NDCG@K = 1 / log2(r+1) if r <= K else 0   (one relevant item, so IDCG = 1)
    MRR@K  = 1 / r         if r <= K else 0
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `int`): per user, the ranked item indices, best first,
        computed over the whole catalog with the user's history items already removed. Each list
        needs at least `max(k_values)` entries, unless `num_items` says the catalog is smaller.
    references (`list` of `int`): per user, the index of the held-out target item.
    k_values (`tuple` of `int`, defaults to `(10, 20)`): cut-offs K to report.
    num_items (`int`, optional): catalog size. When given, indices are checked to lie in
        `[0, num_items)` and lists may be shorter than `max(k_values)` if the catalog is.

Returns:
    `hr@K`, `ndcg@K`, `mrr@K` for each K (floats in [0, 1], means over users) and `num_users`.

Examples:
    >>> metric = evaluate.load("path/to/lsrec_hf/evaluation/metrics/full_ranking")
    >>> metric.compute(predictions=[[3, 7, 1], [5, 2, 9]], references=[7, 4], k_values=(1, 3))
    {'hr@1': 0.0, 'ndcg@1': 0.0, 'mrr@1': 0.0, 'hr@3': 0.5, 'ndcg@3': 0.31546487678572877, 'mrr@3': 0.25, 'num_users': 2}
"""


def _as_matrix(ranked_lists):
    """Ranked lists -> (int64 matrix padded with -1, length of each list).

    A 2-D array (or tensor) is used as is; ragged Python lists are padded so the maths stays
    vectorised. Item indices are never negative, so -1 padding never matches a target.
    """
    if not isinstance(ranked_lists, (list, tuple)):
        array = np.asarray(ranked_lists)
        if array.ndim == 2:
            return array.astype(np.int64, copy=False), np.full(len(array), array.shape[1])
    rows = [np.asarray(row, dtype=np.int64).reshape(-1) for row in ranked_lists]
    lengths = np.array([len(row) for row in rows], dtype=np.int64)
    matrix = np.full((len(rows), int(lengths.max(initial=0))), -1, dtype=np.int64)
    for i, row in enumerate(rows):
        matrix[i, : len(row)] = row
    return matrix, lengths


def ranks_from_topk(predictions, references):
    """1-based rank of each user's target in its ranked list, ``np.inf`` where it is absent."""
    ranked, _ = _as_matrix(predictions)
    targets = np.asarray(references, dtype=np.int64).reshape(-1)
    hits = ranked == targets[:, None]
    ranks = np.full(len(targets), np.inf)
    found = hits.any(axis=1)
    ranks[found] = hits[found].argmax(axis=1) + 1  # first match, as a ranked list has no repeats
    return ranks


def ranking_metrics(ranks, k_values=(10, 20)):
    """HR/NDCG/MRR@K means from 1-based ranks (``np.inf`` = target not retrieved)."""
    ranks = np.asarray(ranks, dtype=np.float64).reshape(-1)
    results = {}
    for k in sorted(set(int(k) for k in k_values)):
        hit = ranks <= k
        # inf ranks give 1/inf = 0 and 1/log2(inf) = 0, so no special case and no warnings.
        results[f"hr@{k}"] = float(hit.mean())
        results[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 1.0), 0.0).mean())
        results[f"mrr@{k}"] = float(np.where(hit, 1.0 / ranks, 0.0).mean())
    results["num_users"] = int(len(ranks))
    return results


def _checked_metrics(ranked_lists, targets, k_values, num_items, names):
    """Validate inputs (errors name the caller's argument names), then compute the metrics."""
    ranked_name, target_name = names
    if isinstance(k_values, (int, np.integer)):
        k_values = (k_values,)
    k_values = tuple(k_values)
    if not k_values or any(int(k) != k or k < 1 for k in k_values):
        raise ValueError(f"`k_values` must be positive integers, got {k_values!r}")
    if len(ranked_lists) != len(targets):
        raise ValueError(
            f"`{ranked_name}` has {len(ranked_lists)} ranked lists but `{target_name}` has {len(targets)} targets; "
            "need exactly one of each per user"
        )
    if len(targets) == 0:
        raise ValueError(f"`{ranked_name}` and `{target_name}` are empty; need at least one user")

    ranked, lengths = _as_matrix(ranked_lists)
    target_array = np.asarray(targets, dtype=np.int64).reshape(-1)
    if (target_array < 0).any():
        raise ValueError(f"`{target_name}` has negative item indices, e.g. {int(target_array.min())}")
    if num_items is not None:
        if (target_array >= num_items).any():
            raise ValueError(f"`{target_name}` has item index {int(target_array.max())} >= num_items={num_items}")
        if ranked.size and ranked.max() >= num_items:
            raise ValueError(f"`{ranked_name}` has item index {int(ranked.max())} >= num_items={num_items}")

    max_k = max(k_values)
    # A list shorter than max K would silently count as a miss; only a catalog smaller than K
    # (declared through num_items) makes a short list legitimate.
    if num_items is None or num_items >= max_k:
        short = np.flatnonzero(lengths < max_k)
        if len(short):
            i = int(short[0])
            raise ValueError(
                f"`{ranked_name}[{i}]` has {int(lengths[i])} items but k_values={k_values} needs at least {max_k} "
                f"({len(short)} of {len(lengths)} lists are too short); rank the whole catalog and keep the top "
                f"{max_k}, or pass `num_items` if the catalog has fewer than {max_k} items"
            )

    return ranking_metrics(ranks_from_topk(ranked, target_array), k_values)


def compute_ranking_metrics(ranked_lists, targets, k_values=(10, 20), num_items=None):
    """Full-ranking HR/NDCG/MRR@K without going through ``evaluate`` (same maths and checks)."""
    return _checked_metrics(ranked_lists, targets, k_values, num_items, names=("ranked_lists", "targets"))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class FullRanking(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("int64")),
                    "references": datasets.Value("int64"),
                }
            ),
            reference_urls=["https://doi.org/10.1145/3394486.3403226"],
        )

    def _compute(self, predictions, references, k_values=(10, 20), num_items=None):
        return _checked_metrics(predictions, references, k_values, num_items, names=("predictions", "references"))
