"""Choosing a trained model's co-occurrence prior on validation: the weight and the decay of
`weight * sum_p decay^p * sim(h_p, i)` (`lsrec_hf.model.cooccurrence_prior`), on top of the model's scores and of its
trend prior, when it has one.

The model's validation scores are computed once; every (decay, weight) is then scored on them by the target's rank,
exactly, as the trend prior's grid is (`lsrec_hf.evaluation.trend_calibration`). Weight 0 (no prior) is on the grid:
the prior is kept only where it raises validation NDCG@10. The test split is never read.
"""

import numpy as np
import torch
from accelerate.utils import gather_object

from ..model.cooccurrence_prior import CooccurrencePrior
from .rank import read_histories, scored_batches
from .trend_calibration import _ndcg_at_10_grid

# Tried: the factor per step back in the history, and the weight beside the model's scores (whose spread over the
# catalog is a few units). On Amazon Beauty (seed 43, with its trend prior) decay 0.4 and weight 8 won on validation.
COOCCURRENCE_DECAYS = (0.2, 0.4, 0.6, 0.8, 1.0)
COOCCURRENCE_WEIGHTS = (0.0, 1.0, 2.0, 4.0, 6.0, 8.0, 12.0, 16.0)


@torch.no_grad()
def calibrate_cooccurrence_prior(model, splits, accelerator=None, batch_size=256, max_length=None,
                                 exclude_history=True, decays=COOCCURRENCE_DECAYS, weights=COOCCURRENCE_WEIGHTS,
                                 neighbors=100, max_history=50):
    """The co-occurrence prior with the best validation NDCG@10 for `model` (with its trend prior, if any), built from
    the training events of `splits`.

    Returns `(prior, report)`: `prior` is a `CooccurrencePrior` over `splits`' training sequences, or None when the
    model without it wins; `report` says what was chosen, and the validation NDCG@10 of every choice
    (`grid[decay][weight]`). Every process must call it (each scores its share of the users; the sums are shared).
    """
    batches = scored_batches(model, splits.valid, accelerator, batch_size, max_length, exclude_history,
                             "choosing the co-occurrence prior")
    return choose_cooccurrence_prior(batches, splits, model.config.num_items, getattr(model, "trend_prior", None),
                                     accelerator, max_length, decays, weights, neighbors, max_history)


def choose_cooccurrence_prior(batches, splits, num_items, trend_prior=None, accelerator=None, max_length=None,
                              decays=COOCCURRENCE_DECAYS, weights=COOCCURRENCE_WEIGHTS, neighbors=100,
                              max_history=50):
    """`calibrate_cooccurrence_prior` for any recommender: `batches` yields `(rows, scores, targets)` over (this
    process's share of) `splits.valid`, the scores with the history at -inf and no prior
    (`lsrec_hf.evaluation.rank.scored_batches`, or `score_matrix_batches` for another recommender's scores);
    `trend_prior` (if any) is added to them first. The prior reads the last `max_length` events of each history
    (all of them when None), the events the model reads."""
    valid = splits.valid
    if not len(valid):
        return None, {"chosen": False, "reason": "no validation users"}
    weights = tuple(dict.fromkeys((0.0, *weights)))
    neighbours = CooccurrencePrior.from_sequences(splits.train, num_items, neighbors, max_history=max_history)
    trend = trend_prior if valid.target_times is not None else None
    sums = np.zeros((len(decays), len(weights)))
    for rows, scores, targets in batches:
        if trend is not None:
            scores += trend.bias(valid.target_times[rows])  # -inf (the history) stays -inf
        histories = read_histories(valid, rows, max_length)
        none = torch.zeros_like(scores)
        for d, decay in enumerate(decays):
            sums[d] += _ndcg_at_10_grid(scores, targets, neighbours.with_weights(1.0, decay).similarity_sums(histories),
                                        none, weights, (0.0,))[:, 0]
    if accelerator is not None and accelerator.num_processes > 1:
        sums = np.sum(gather_object([sums]), axis=0)
    grid = sums / len(valid)
    without = float(grid[0, weights.index(0.0)])
    d, w = np.unravel_index(np.argmax(grid), grid.shape)
    chosen = bool(grid[d, w] > without)  # a tie keeps the model without it
    report = {"chosen": chosen, "decay": float(decays[d]), "weight": float(weights[w]), "neighbors": neighbors,
              "max_history": max_history, "valid_ndcg@10": float(grid[d, w]), "valid_ndcg@10_without": without,
              "grid": {f"{decay:g}": {f"{weight:g}": float(grid[i, j]) for j, weight in enumerate(weights)}
                       for i, decay in enumerate(decays)}}
    if not chosen:
        return None, report
    return neighbours.with_weights(weights[w], decays[d]), report


__all__ = ["COOCCURRENCE_DECAYS", "COOCCURRENCE_WEIGHTS", "calibrate_cooccurrence_prior",
           "choose_cooccurrence_prior"]
