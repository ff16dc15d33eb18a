"""Choosing a trained model's trend prior on validation: the window and the weight of `weight * log(1 + n_i)`, with
n_i item i's training events in the window before each validation event (`lsrec_hf.model.trend_prior`).

The model's validation scores are computed once; every (window, weight) pair is then scored on them by the target's
rank, so the whole grid costs about one validation pass and one sweep of the training log per window. Weight 0 (the
model alone) is on the grid: the prior is kept only where it raises validation NDCG@10. The test split is never read.
"""

import numpy as np
import torch
from accelerate.utils import gather_object

from ..model.trend_prior import DAY, TrendPrior
from .rank import exact_scores, item_domains, sharded_batches

# Windows (days of unix-second timestamps) and weights tried; the whole past is all-time popularity.
TREND_WINDOWS_DAYS = (1, 3, 7, 14, 30, 90, 365, float("inf"))
TREND_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def _ndcg_at_10(scores, targets):
    """Per row, NDCG@10 of the target (one relevant item): 1 / log2(rank + 2) where fewer than 10 items beat it."""
    target_scores = scores.gather(1, targets[:, None])
    rank = (scores > target_scores).sum(1)
    found = (rank < 10) & torch.isfinite(target_scores[:, 0])
    return torch.where(found, 1.0 / torch.log2(rank.double() + 2.0), torch.zeros((), dtype=torch.double))


@torch.no_grad()
def calibrate_trend_prior(model, splits, accelerator=None, batch_size=256, max_length=None, exclude_history=True,
                          windows_days=TREND_WINDOWS_DAYS, weights=TREND_WEIGHTS):
    """The trend prior with the best validation NDCG@10 for `model`, built from the training events of `splits`.

    Returns `(prior, report)`: `prior` is a `TrendPrior` over `splits`' training events, or None when weight 0 wins
    or the splits carry no times; `report` says what was chosen and the validation NDCG@10 of every pair. Every
    process must call it (each scores its share of the users; the sums are shared).
    """
    valid = splits.valid
    if splits.train_times is None or valid.target_times is None or not len(valid):
        return None, {"chosen": False, "reason": "the splits carry no event times"}
    if 0.0 not in weights:
        weights = (0.0, *weights)
    num_items = model.config.num_items
    logs = [TrendPrior.from_sequences(splits.train, splits.train_times, num_items, days * DAY, 1.0)
            for days in windows_days]
    device = accelerator.device if accelerator is not None else model.device
    domains = item_domains(model)
    sums = np.zeros((len(windows_days), len(weights)))
    for rows, batch in sharded_batches(model, valid, accelerator, batch_size, max_length, "choosing the trend prior"):
        scores, _ = exact_scores(model, batch, device, exclude_history, domains)
        scores, targets = scores.cpu(), batch["targets"]
        for w, log in enumerate(logs):
            recent = log.recent_counts(valid.target_times[rows]).log1p().float()
            for a, weight in enumerate(weights):  # -inf (history items) stays -inf
                sums[w, a] += float(_ndcg_at_10(scores + weight * recent, targets).sum())
    if accelerator is not None and accelerator.num_processes > 1:
        sums = np.sum(gather_object([sums]), axis=0)
    grid = sums / len(valid)
    w, a = np.unravel_index(np.argmax(grid), grid.shape)  # ties: the first, so weight 0 before any prior
    without = float(grid[0, weights.index(0.0)])
    report = {"chosen": bool(weights[a] > 0), "window_days": float(windows_days[w]), "weight": float(weights[a]),
              "valid_ndcg@10": float(grid[w, a]), "valid_ndcg@10_without": without,
              "grid": {f"{days:g}": {f"{weight:g}": float(grid[i, j]) for j, weight in enumerate(weights)}
                       for i, days in enumerate(windows_days)}}
    if weights[a] == 0:
        return None, report
    return TrendPrior.from_sequences(splits.train, splits.train_times, num_items, windows_days[w] * DAY,
                                     weights[a]), report


__all__ = ["TREND_WEIGHTS", "TREND_WINDOWS_DAYS", "calibrate_trend_prior"]
