"""The priors for another recommender's scores: the same choice and the same ranking as for a model's own."""

import numpy as np
import pytest
import torch

from lsrec_hf.evaluation.priors import choose_priors, choose_priors_for_scores
from lsrec_hf.evaluation.rank import rank_examples, rank_score_matrix, score_matrix_batches, scored_batches


def _score_matrix(model, examples):
    """The model's scores of every item, one row per example in `examples`' order, no history mask: what a peer's
    harness would hand over."""
    matrix = np.zeros((len(examples), model.config.num_items), dtype=np.float32)
    for rows, scores, _ in scored_batches(model, examples, exclude_history=False):
        matrix[rows] = scores.numpy()
    return matrix


def _flat_grid(report):
    flat = {}
    for key, value in report["grid"].items():
        for inner, rest in (value.items() if isinstance(value, dict) else [(None, value)]):
            for last, figure in (rest.items() if isinstance(rest, dict) else [(None, rest)]):
                flat[(key, inner, last)] = figure
    return flat


def test_a_score_matrix_gets_the_priors_the_model_gets(slice_splits_and_model):
    splits, model = slice_splits_and_model
    trend_report, cooccurrence_report = choose_priors(model, splits)
    assert model.trend_prior is not None and model.cooccurrence_prior is not None  # an untrained model: both kept
    trend, cooccurrence, trend_again, cooccurrence_again = choose_priors_for_scores(
        _score_matrix(model, splits.valid), splits)
    for ours, theirs in ((trend_report, trend_again), (cooccurrence_report, cooccurrence_again)):
        assert {k: v for k, v in ours.items() if k != "grid"} == pytest.approx(
            {k: v for k, v in theirs.items() if k != "grid"}, abs=1e-12)
        mine, other = _flat_grid(ours), _flat_grid(theirs)
        assert mine.keys() == other.keys() and len(mine) > 10
        assert all(mine[key] == pytest.approx(other[key], abs=1e-12) for key in mine)
    assert (trend.window, trend.weight, trend.popularity_weight) == (
        model.trend_prior.window, model.trend_prior.weight, model.trend_prior.popularity_weight)
    assert (cooccurrence.weight, cooccurrence.decay) == (model.cooccurrence_prior.weight,
                                                         model.cooccurrence_prior.decay)


def test_a_score_matrix_is_ranked_with_its_priors_as_the_model_ranks_itself(slice_splits_and_model):
    splits, model = slice_splits_and_model
    choose_priors(model, splits)
    try:
        matrix = _score_matrix(model, splits.test)
        for trend, cooccurrence in ((False, False), (True, False), (True, True)):
            ranked, _, _, positions = rank_examples(model, splits.test, top_k=10, return_positions=True,
                                                    trend_prior=trend, cooccurrence_prior=cooccurrence)
            expected = [None] * len(ranked)
            for position, row in zip(positions, ranked):
                expected[position] = row
            assert rank_score_matrix(matrix, splits.test, 10, trend_prior=model.trend_prior if trend else None,
                                     cooccurrence_prior=model.cooccurrence_prior if cooccurrence else None) == expected
        without = rank_score_matrix(matrix, splits.test, 10)
        assert without != rank_score_matrix(matrix, splits.test, 10, trend_prior=model.trend_prior,
                                            cooccurrence_prior=model.cooccurrence_prior)
    finally:
        model.trend_prior = model.cooccurrence_prior = None


def test_a_score_matrix_masks_the_whole_history_and_must_have_a_row_per_example(slice_splits_and_model):
    splits, model = slice_splits_and_model
    matrix = np.zeros((len(splits.test), model.config.num_items), dtype=np.float32)
    rows, block, targets = next(score_matrix_batches(matrix, splits.test, batch_size=4))
    assert rows == [0, 1, 2, 3] and targets.tolist() == splits.test.targets[:4].tolist()
    for i, row in enumerate(rows):
        masked = set(torch.nonzero(torch.isinf(block[i])).flatten().tolist())
        assert masked == set(np.asarray(splits.test.histories[row]).tolist())
    kept = next(score_matrix_batches(matrix, splits.test, exclude_history=False))[1]
    assert torch.isfinite(kept).all()
    with pytest.raises(ValueError, match="one row per example"):
        next(score_matrix_batches(matrix[:-1], splits.test))
