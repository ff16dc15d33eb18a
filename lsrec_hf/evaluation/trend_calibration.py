"""Choosing a trained model's trend prior on validation: the window and the two weights of
`weight * log(1 + r_i) + popularity_weight * log(1 + p_i)`, with r_i item i's training events in the window
before each validation event and p_i all its training events before it (`lsrec_hf.model.trend_prior`).

The model's validation scores are computed once; every (window, weight, popularity weight) is then scored on them by
the target's rank, so the grid costs about one validation pass and one sweep of the training log per window. Both
weights 0 (the model alone) is on the grid: a prior is kept only where it raises validation NDCG@10. The test split
is never read.

Ranking every item at every point of the grid would cost 48 full rankings per window. An item's margin over the
target is linear in the two weights, so over the grid's box it is largest and smallest at the four corners: an item
above the target at every corner is above it everywhere, one below at every corner never counts. Only the items in
between are ranked at each grid point, with the same arithmetic as `evaluate_ranking`, so the figures are exact.
"""

import itertools

import numpy as np
import torch
from accelerate.utils import gather_object

from ..model.trend_prior import DAY, TrendPrior
from .rank import scored_batches

# Tried: windows (days of unix-second timestamps), weights of the recent events, and weights of all earlier events
# (negative: less of the all-time popularity the model learned; on Steam -0.5 won, seed 42).
TREND_WINDOWS_DAYS = (1, 3, 7, 14, 30, 90, 365)
TREND_WEIGHTS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
POPULARITY_WEIGHTS = (-1.0, -0.5, -0.25, 0.0, 0.25, 0.5)


def _ndcg_at_10_grid(scores, targets, recent, before, weights, popularity_weights):
    """`[len(weights), len(popularity_weights)]`: per choice, the summed NDCG@10 over the rows of the target (one
    relevant item) under `scores + weight * recent + popularity_weight * before`; 1 / log2(rank + 2) where fewer than
    10 items beat it, 0 where more do or the target is masked (-inf)."""
    rows = torch.arange(len(targets))
    target_scores, target_recent, target_before = (values[rows, targets] for values in (scores, recent, before))
    # each item's margin over the target, at its lowest and highest over the grid's box (separable in the weights)
    score_margin = scores - target_scores[:, None]  # history items: -inf
    recent_margin, before_margin = recent - target_recent[:, None], before - target_before[:, None]
    recent_ends = min(weights) * recent_margin, max(weights) * recent_margin
    before_ends = min(popularity_weights) * before_margin, max(popularity_weights) * before_margin
    lowest = score_margin + torch.minimum(*recent_ends) + torch.minimum(*before_ends)
    highest = score_margin + torch.maximum(*recent_ends) + torch.maximum(*before_ends)
    # the float32 rounding of these sums is far below this band; items inside it are ranked exactly below
    band = 1e-3 * (1.0 + target_scores.abs())[:, None]
    always_above = (lowest > band).sum(1)
    live = torch.isfinite(target_scores) & (always_above < 10)
    unsure = (highest >= -band) & (lowest <= band) & live[:, None]
    unsure[rows, targets] = False
    row, item = unsure.nonzero(as_tuple=True)  # flat: the cost follows how many are unsure, not the widest row
    unsure_scores, unsure_recent, unsure_before = (values[row, item] for values in (scores, recent, before))
    sums = np.zeros((len(weights), len(popularity_weights)))
    for (a, weight), (c, pop) in itertools.product(enumerate(weights), enumerate(popularity_weights)):
        # the same arithmetic as adding the prior to every score (`evaluate_ranking`), for the unsure items only
        target = target_scores + weight * target_recent + pop * target_before
        fused = unsure_scores + weight * unsure_recent + pop * unsure_before
        rank = always_above + torch.bincount(row[fused > target[row]], minlength=len(targets))
        found = live & (rank < 10)
        sums[a, c] = float(torch.where(found, 1.0 / torch.log2(rank.double() + 2.0),
                                       torch.zeros((), dtype=torch.double)).sum())
    return sums


@torch.no_grad()
def calibrate_trend_prior(model, splits, accelerator=None, batch_size=256, max_length=None, exclude_history=True,
                          windows_days=TREND_WINDOWS_DAYS, weights=TREND_WEIGHTS,
                          popularity_weights=POPULARITY_WEIGHTS):
    """The trend prior with the best validation NDCG@10 for `model`, built from the training events of `splits`.

    Returns `(prior, report)`: `prior` is a `TrendPrior` over `splits`' training events, or None when the model
    alone wins or the splits carry no times; `report` says what was chosen, and the validation NDCG@10 of every
    choice (`grid[window_days][weight][popularity_weight]`). Every process must call it (each scores its share of
    the users; the sums are shared).
    """
    batches = scored_batches(model, splits.valid, accelerator, batch_size, max_length, exclude_history,
                             "choosing the trend prior")
    return choose_trend_prior(batches, splits, model.config.num_items, accelerator, windows_days, weights,
                              popularity_weights)


def choose_trend_prior(batches, splits, num_items, accelerator=None, windows_days=TREND_WINDOWS_DAYS,
                       weights=TREND_WEIGHTS, popularity_weights=POPULARITY_WEIGHTS):
    """`calibrate_trend_prior` for any recommender: `batches` yields `(rows, scores, targets)` over (this process's
    share of) `splits.valid`, the scores `[len(rows), num_items]` with the history already at -inf
    (`lsrec_hf.evaluation.rank.scored_batches`, or `score_matrix_batches` for another recommender's scores)."""
    valid = splits.valid
    if splits.train_times is None or valid.target_times is None or not len(valid):
        return None, {"chosen": False, "reason": "the splits carry no event times"}
    weights = tuple(dict.fromkeys((0.0, *weights)))
    popularity_weights = tuple(dict.fromkeys((0.0, *popularity_weights)))
    logs = [TrendPrior.from_sequences(splits.train, splits.train_times, num_items, days * DAY, 1.0)
            for days in windows_days]
    sums = np.zeros((len(windows_days), len(weights), len(popularity_weights)))
    for rows, scores, targets in batches:
        for w, log in enumerate(logs):
            recent, before = (counts.log1p().float() for counts in log.counts(valid.target_times[rows]))
            sums[w] += _ndcg_at_10_grid(scores, targets, recent, before, weights, popularity_weights)
    if accelerator is not None and accelerator.num_processes > 1:
        sums = np.sum(gather_object([sums]), axis=0)
    grid = sums / len(valid)
    without = float(grid[0, weights.index(0.0), popularity_weights.index(0.0)])
    w, a, c = np.unravel_index(np.argmax(grid), grid.shape)
    chosen = bool(grid[w, a, c] > without)  # a tie keeps the model alone
    report = {"chosen": chosen, "window_days": float(windows_days[w]), "weight": float(weights[a]),
              "popularity_weight": float(popularity_weights[c]), "valid_ndcg@10": float(grid[w, a, c]),
              "valid_ndcg@10_without": without,
              "grid": {f"{days:g}": {f"{weight:g}": {f"{pop:g}": float(grid[i, j, k])
                                                      for k, pop in enumerate(popularity_weights)}
                                     for j, weight in enumerate(weights)}
                       for i, days in enumerate(windows_days)}}
    if not chosen:
        return None, report
    return TrendPrior.from_sequences(splits.train, splits.train_times, num_items, windows_days[w] * DAY,
                                     weights[a], popularity_weights[c]), report


__all__ = ["POPULARITY_WEIGHTS", "TREND_WEIGHTS", "TREND_WINDOWS_DAYS", "calibrate_trend_prior", "choose_trend_prior"]
