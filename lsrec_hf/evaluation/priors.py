"""The priors a trained model keeps: chosen on validation, one after the other, as the recipes do after training.

The priors need only a recommender's validation scores, not its insides: `choose_priors_for_scores` makes the same
choice for another recommender's score matrix (a peer given the same priors), and
`lsrec_hf.evaluation.rank.rank_score_matrix` ranks its test scores with them.
"""

from .cooccurrence_calibration import calibrate_cooccurrence_prior, choose_cooccurrence_prior
from .rank import score_matrix_batches
from .trend_calibration import calibrate_trend_prior, choose_trend_prior


def choose_priors(model, splits, accelerator=None, batch_size=256, max_length=None, exclude_history=True,
                  trend_prior=True, cooccurrence_prior=True):
    """Set `model.trend_prior` and then `model.cooccurrence_prior` (on top of the model with its trend prior) to the
    ones with the best validation NDCG@10 on `splits`, or None where the model does as well without; a prior not asked
    for is None. Returns the two reports (None for one not asked for). Every process must call it."""
    model.trend_prior = model.cooccurrence_prior = None  # earlier ones counted another log's events
    trend = cooccurrence = None
    if not len(splits.valid):  # a split that holds no validation event out: nothing to choose on, none kept
        unchosen = {"chosen": False, "reason": "no validation users"}
        return (dict(unchosen) if trend_prior else None), (dict(unchosen) if cooccurrence_prior else None)
    if trend_prior:
        model.trend_prior, trend = calibrate_trend_prior(model, splits, accelerator, batch_size, max_length,
                                                         exclude_history)
    if cooccurrence_prior:
        model.cooccurrence_prior, cooccurrence = calibrate_cooccurrence_prior(model, splits, accelerator, batch_size,
                                                                              max_length, exclude_history)
    return trend, cooccurrence


def choose_priors_for_scores(valid_scores, splits, exclude_history=True, trend_prior=True, cooccurrence_prior=True,
                             batch_size=256):
    """`choose_priors` for another recommender: `valid_scores` `[len(splits.valid), num_items]` are its scores of
    every item for each validation user of `splits`, in order, before any history mask (the co-occurrence prior then
    reads each whole history). Returns `(trend_prior, cooccurrence_prior, trend_report, cooccurrence_report)`, a
    prior None where the scores do as well without it or it was not asked for."""
    num_items = valid_scores.shape[1]
    trend = cooccurrence = trend_report = cooccurrence_report = None
    if trend_prior:
        trend, trend_report = choose_trend_prior(
            score_matrix_batches(valid_scores, splits.valid, exclude_history, batch_size), splits, num_items)
    if cooccurrence_prior:
        cooccurrence, cooccurrence_report = choose_cooccurrence_prior(
            score_matrix_batches(valid_scores, splits.valid, exclude_history, batch_size), splits, num_items, trend)
    return trend, cooccurrence, trend_report, cooccurrence_report


__all__ = ["choose_priors", "choose_priors_for_scores"]
