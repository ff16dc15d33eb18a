"""The priors a trained model keeps: chosen on validation, one after the other, as the recipes do after training."""

from .cooccurrence_calibration import calibrate_cooccurrence_prior
from .trend_calibration import calibrate_trend_prior


def choose_priors(model, splits, accelerator=None, batch_size=256, max_length=None, exclude_history=True,
                  trend_prior=True, cooccurrence_prior=True):
    """Set `model.trend_prior` and then `model.cooccurrence_prior` (on top of the model with its trend prior) to the
    ones with the best validation NDCG@10 on `splits`, or None where the model does as well without; a prior not asked
    for is None. Returns the two reports (None for one not asked for). Every process must call it."""
    model.trend_prior = model.cooccurrence_prior = None  # earlier ones counted another log's events
    trend = cooccurrence = None
    if trend_prior:
        model.trend_prior, trend = calibrate_trend_prior(model, splits, accelerator, batch_size, max_length,
                                                         exclude_history)
    if cooccurrence_prior:
        model.cooccurrence_prior, cooccurrence = calibrate_cooccurrence_prior(model, splits, accelerator, batch_size,
                                                                              max_length, exclude_history)
    return trend, cooccurrence


__all__ = ["choose_priors"]
