"""The trend prior: recent events counted strictly before a moment, saved with the model, chosen on validation, added
by the evaluation and the pipeline."""

import datetime
import itertools

import numpy as np
import pytest
import torch
from transformers import pipeline

import lsrec_hf
from conftest import save_tiny_model
from lsrec_hf.evaluation import evaluate_ranking
from lsrec_hf.evaluation.metrics import compute_ranking_metrics
from lsrec_hf.evaluation.rank import mask_history
from lsrec_hf.evaluation.trend_calibration import _ndcg_at_10_grid, calibrate_trend_prior
from lsrec_hf.model.trend_prior import DAY, TREND_PRIOR_NAME, TrendPrior
from lsrec_hf.processing.collator import EvaluationCollator

# item 0 on day 1, item 1 on days 2 and 3, item 2 on day 10
EVENTS = dict(items=[1, 0, 2, 1], times=np.array([3.0, 1.0, 10.0, 2.0]) * DAY)


def test_only_events_inside_the_window_and_strictly_before_the_moment_count():
    prior = TrendPrior(**EVENTS, num_items=4, window=3 * DAY, weight=2.0)
    counts = prior.recent_counts(np.array([4.0, 3.0, 10.0, 10.5, 0.5]) * DAY)
    assert counts.tolist() == [[1, 2, 0, 0],   # [1, 4): both days of item 1, and item 0 at the window's start
                               [1, 1, 0, 0],   # [0, 3): the event at 3 is not before 3
                               [0, 0, 0, 0],   # [7, 10): the event at 10 is the moment itself
                               [0, 0, 1, 0],
                               [0, 0, 0, 0]]
    assert torch.allclose(prior.bias([4.0 * DAY]), 2.0 * torch.log1p(torch.tensor([[1.0, 2.0, 0.0, 0.0]])))


def test_the_popularity_term_counts_every_event_before_the_moment():
    prior = TrendPrior(**EVENTS, num_items=4, window=1 * DAY, weight=2.0, popularity_weight=-0.5)
    recent, before = prior.counts([3.5 * DAY, 11.0 * DAY])
    assert recent.tolist() == [[0, 1, 0, 0], [0, 0, 1, 0]]   # [2.5, 3.5) and [10, 11)
    assert before.tolist() == [[1, 2, 0, 0], [1, 2, 1, 0]]
    assert torch.allclose(prior.bias([3.5 * DAY]),
                          2.0 * recent[:1].log1p().float() - 0.5 * before[:1].log1p().float())


def test_a_request_without_a_time_counts_every_known_event_and_new_events_fold_in():
    prior = TrendPrior(**EVENTS, num_items=4, window=30 * DAY, weight=1.0)
    assert prior.recent_counts([prior.moment()]).tolist() == [[1, 2, 1, 0]]
    prior.add_events([3, 3], [11.0 * DAY, 12.0 * DAY])
    assert prior.recent_counts([prior.moment()]).tolist() == [[1, 2, 1, 2]]
    when = datetime.datetime.fromtimestamp(4.0 * DAY, tz=datetime.timezone.utc)
    assert prior.moment(when) == 4.0 * DAY
    with pytest.raises(ValueError, match="now must be a time"):
        prior.moment("yesterday")


def test_bad_events_are_refused():
    with pytest.raises(ValueError, match="one time per event"):
        TrendPrior([0, 1], [1.0], num_items=2, window=DAY, weight=1.0)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        TrendPrior([0, 2], [1.0, 2.0], num_items=2, window=DAY, weight=1.0)
    with pytest.raises(ValueError, match="window must be > 0"):
        TrendPrior([0], [1.0], num_items=2, window=0, weight=1.0)


def test_the_prior_travels_with_the_checkpoint_and_a_save_without_it_removes_the_old_file(tmp_path):
    path = save_tiny_model(tmp_path / "model", [f"t{i}" for i in range(4)])
    model = lsrec_hf.LSRecForSequentialRecommendation.from_pretrained(path)
    assert model.trend_prior is None
    model.trend_prior = TrendPrior(**EVENTS, num_items=4, window=3 * DAY, weight=1.5, popularity_weight=-0.25)
    model.save_pretrained(path)
    loaded = lsrec_hf.LSRecForSequentialRecommendation.from_pretrained(path)
    assert (loaded.trend_prior.window, loaded.trend_prior.weight, loaded.trend_prior.popularity_weight) == (
        3 * DAY, 1.5, -0.25)
    assert torch.equal(loaded.trend_prior.recent_counts([4 * DAY]), model.trend_prior.recent_counts([4 * DAY]))

    loaded.trend_prior = None
    loaded.save_pretrained(path)
    assert not (path / TREND_PRIOR_NAME).exists()
    assert lsrec_hf.LSRecForSequentialRecommendation.from_pretrained(path).trend_prior is None


def test_a_prior_of_another_catalog_or_a_broken_file_is_an_error_naming_the_file(tmp_path):
    path = save_tiny_model(tmp_path / "model", [f"t{i}" for i in range(4)])
    TrendPrior(**EVENTS, num_items=5, window=DAY, weight=1.0).save_pretrained(path)
    with pytest.raises(OSError, match=f"{TREND_PRIOR_NAME}: a trend prior of 5 items.*has 4"):
        lsrec_hf.LSRecForSequentialRecommendation.from_pretrained(path)
    (path / TREND_PRIOR_NAME).write_bytes(b"not safetensors")
    with pytest.raises(OSError, match=f"{TREND_PRIOR_NAME}: not a trend prior file"):
        lsrec_hf.LSRecForSequentialRecommendation.from_pretrained(path)



def _by_hand(model, examples, prior):
    """NDCG@10 and HR@10 of the model's scores plus the prior at each example's time, computed here."""
    batch = EvaluationCollator(model.config.segment_length, None)(
        list(zip(examples.histories, examples.targets.tolist())))
    with torch.no_grad():
        scores = model.score_next(batch["input_ids"], batch["attention_mask"]).scores.float()
    scores = mask_history(scores + prior.bias(examples.target_times), batch["input_ids"])
    ranked = scores.topk(20, dim=1).indices.tolist()
    return compute_ranking_metrics(ranked, examples.targets, (10,), num_items=model.config.num_items)


def test_evaluation_adds_the_prior_at_each_examples_time(slice_splits_and_model):
    splits, model = slice_splits_and_model
    prior = TrendPrior.from_sequences(splits.train, splits.train_times, model.config.num_items, 30 * DAY, 3.0, -0.5)
    without = evaluate_ranking(model, splits.test)
    model.trend_prior = prior
    try:
        with_prior = evaluate_ranking(model, splits.test)
        assert evaluate_ranking(model, splits.test, trend_prior=False)["ndcg@10"] == without["ndcg@10"]
        with pytest.raises(ValueError, match="trend_prior=False"):
            evaluate_ranking(model, splits.test, retrieval="faiss")
    finally:
        model.trend_prior = None
    expected = _by_hand(model, splits.test, prior)
    assert with_prior["ndcg@10"] == pytest.approx(expected["ndcg@10"], abs=1e-6)
    assert with_prior["ndcg@10"] != pytest.approx(without["ndcg@10"], abs=1e-6)


def test_calibration_scores_every_choice_as_the_evaluation_does_and_keeps_the_best(slice_splits_and_model):
    splits, model = slice_splits_and_model
    prior, report = calibrate_trend_prior(model, splits, windows_days=(7, 365), weights=(0.0, 4.0),
                                          popularity_weights=(-0.5, 0.0, 1.0))
    without = evaluate_ranking(model, splits.valid)["ndcg@10"]
    assert report["valid_ndcg@10_without"] == pytest.approx(without, abs=1e-9)
    found = {(float(days), float(weight), float(pop)): value for days, row in report["grid"].items()
             for weight, column in row.items() for pop, value in column.items()}
    assert len(found) == 2 * 2 * 3
    for (days, weight, pop), value in found.items():
        if weight == pop == 0.0:
            assert value == pytest.approx(without, abs=1e-9)
            continue
        model.trend_prior = TrendPrior.from_sequences(splits.train, splits.train_times, model.config.num_items,
                                                      days * DAY, weight, pop)
        try:
            assert value == pytest.approx(evaluate_ranking(model, splits.valid)["ndcg@10"], abs=1e-9), (days, weight, pop)
        finally:
            model.trend_prior = None
    best = max(found.values())
    assert report["valid_ndcg@10"] == best
    # an untrained model: counting what is popular beats it, so a prior is kept, and it is the best choice's
    assert report["chosen"] and best > without
    assert (prior.window, prior.weight, prior.popularity_weight) == (
        report["window_days"] * DAY, report["weight"], report["popularity_weight"])


def test_calibration_without_times_keeps_no_prior(slice_splits_and_model):
    splits, model = slice_splits_and_model
    untimed = type(splits)(**{**vars(splits), "train_times": None})
    assert calibrate_trend_prior(model, untimed) == (None, {"chosen": False, "reason": "the splits carry no event times"})


def test_the_pipeline_and_recommend_add_the_prior_at_now(tmp_path):
    path = save_tiny_model(tmp_path / "model", [f"t{i}" for i in range(4)])
    model = lsrec_hf.LSRecForSequentialRecommendation.from_pretrained(path)
    # a weight that outweighs the model: the item most played in the 3 days before `now` comes first
    model.trend_prior = TrendPrior(**EVENTS, num_items=4, window=3 * DAY, weight=100.0)
    recommend = pipeline("recommendation", model=model, device="cpu")
    assert recommend(["m3"], top_k=1, now=4 * DAY)[0]["item_id"] == "m1"
    assert recommend(["m3"], top_k=1, now=10.5 * DAY)[0]["item_id"] == "m2"
    assert recommend(["m3"], top_k=1)[0]["item_id"] == "m2"  # just after the last event: day 10's item 2
    assert model.recommend(["m3"], top_k=1, now=4 * DAY)[0]["item_id"] == "m1"
    plain = recommend(["m3"], top_k=3, trend_prior=False)
    model.trend_prior = None
    assert [r["item_id"] for r in plain] == [r["item_id"] for r in recommend(["m3"], top_k=3)]
    model.trend_prior = TrendPrior(**EVENTS, num_items=4, window=3 * DAY, weight=100.0)
    with pytest.raises(ValueError, match="now must be a time"):
        recommend(["m3"], now="soon")


@pytest.mark.parametrize("tied", [False, True])
def test_the_grid_ranks_only_unsure_items_yet_equals_ranking_every_item(tied):
    """Items above the target at every corner of the grid count as above, items below at every corner never count:
    on random scores (with ties, masked history and masked targets) every grid value equals a full ranking."""
    generator = torch.Generator().manual_seed(1)
    rows, num_items = 64, 500
    scores = torch.randn(rows, num_items, generator=generator) * 3
    if tied:
        scores = scores.round()
    recent = torch.poisson(torch.rand(rows, num_items, generator=generator) * 2, generator=generator).log1p()
    before = torch.poisson(torch.rand(rows, num_items, generator=generator) * 40, generator=generator).log1p()
    targets = torch.randint(0, num_items, (rows,), generator=generator)
    scores[torch.arange(32), targets[:32]] += 8  # half the targets near the top: their NDCG@10 is not 0
    scores[torch.rand(rows, num_items, generator=generator) < 0.05] = -float("inf")  # history items
    scores[3, targets[3]] = -float("inf")  # a target the protocol masks: 0 everywhere
    weights, popularity_weights = (0.0, 1.0, 6.0), (-1.0, 0.0, 0.5)
    grid = _ndcg_at_10_grid(scores, targets, recent, before, weights, popularity_weights)
    for (a, weight), (c, pop) in itertools.product(enumerate(weights), enumerate(popularity_weights)):
        fused = scores + weight * recent + pop * before
        target = fused[torch.arange(rows), targets][:, None]
        rank = (fused > target).sum(1).double()
        expected = torch.where((rank < 10) & torch.isfinite(target[:, 0]), 1 / torch.log2(rank + 2), 0.0).sum()
        assert grid[a, c] == pytest.approx(float(expected), abs=1e-12), (weight, pop)
    assert grid.max() > 0
