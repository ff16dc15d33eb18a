"""Most-popular and item-kNN against hand-computed scores, ranked by the same full-ranking code as the model."""

import math

import numpy as np
import pytest
import torch

from lsrec_hf.evaluation.baselines import DAY, ItemKNN, MostPopular, RecentPopular, evaluate_baseline, rank_baseline
from lsrec_hf.processing.sequences import EvalExamples, Splits

# 4 users over 5 items
TRAIN = [np.array([0, 1, 2]), np.array([0, 1]), np.array([1, 3]), np.array([0, 1, 1])]


def examples(histories, targets):
    return EvalExamples(user_ids=list(range(len(histories))), histories=[np.array(h) for h in histories],
                        targets=np.array(targets))


def test_most_popular_ranks_by_training_events_and_skips_history():
    baseline = MostPopular(TRAIN, num_items=5)
    assert baseline.counts.tolist() == [3, 5, 1, 1, 0]
    ranked = rank_baseline(baseline, examples([[1], [0, 1]], [0, 2]), top_k=3)
    assert ranked[0][0] == 0 and 1 not in ranked[0]  # most popular item 1 is in the history
    assert ranked[1][0] in (2, 3) and not {0, 1} & set(ranked[1])


def test_item_knn_is_cosine_over_user_occurrence():
    knn = ItemKNN(TRAIN, num_items=5, neighbors=5)
    # users with item 0: {0,1,3}; with item 1: {0,1,2,3}; with item 3: {2}
    assert knn.similarity[0, 1].item() == pytest.approx(3 / math.sqrt(3 * 4))
    assert knn.similarity[1, 3].item() == pytest.approx(1 / math.sqrt(4 * 1))
    assert knn.similarity[0, 3].item() == 0.0 and knn.similarity[4].abs().sum() == 0  # item 4 never seen
    assert torch.equal(knn.similarity, knn.similarity.T)
    assert knn.similarity.diagonal().abs().sum() == 0
    scores = knn.scores([np.array([0, 3])])
    assert scores[0, 1].item() == pytest.approx(knn.similarity[0, 1].item() + knn.similarity[3, 1].item())


def test_item_knn_keeps_only_the_nearest_neighbours():
    dense, sparse = ItemKNN(TRAIN, 5, neighbors=5), ItemKNN(TRAIN, 5, neighbors=1)
    assert ((sparse.similarity > 0).sum(dim=1) <= 1).all()
    best = dense.similarity.argmax(dim=1)
    for item in range(4):
        assert sparse.similarity[item, best[item]] == dense.similarity[item, best[item]]


def test_baseline_metrics_on_real_movielens(ml100k_slice):
    from lsrec_hf.data import load_data
    from lsrec_hf.processing.sequences import build_user_sequences, leave_one_out

    data = load_data(ml100k_slice)
    splits = leave_one_out(build_user_sequences(data.interactions, data.catalog))
    num_items = len(data.catalog)
    knn = evaluate_baseline(ItemKNN(splits.train, num_items), splits.test)
    popular = evaluate_baseline(MostPopular(splits.train, num_items), splits.test)
    assert knn["num_users"] == popular["num_users"] == len(splits.test)
    chance = 10 / num_items  # HR@10 of a random ranking
    assert popular["hr@10"] > 2 * chance and knn["hr@10"] > 2 * chance


def test_most_popular_ranks_history_items_when_history_is_kept():
    baseline = MostPopular(TRAIN, num_items=5)
    split = examples([[1], [0, 1]], [1, 0])
    assert rank_baseline(baseline, split, top_k=3, exclude_history=False) == [[1, 0, 2], [1, 0, 2]]
    kept = evaluate_baseline(baseline, split, k_values=(1,), exclude_history=False)
    excluded = evaluate_baseline(baseline, split, k_values=(1,))
    assert kept["hr@1"] == 0.5 and excluded["hr@1"] == 0.0


# two users' training events over 5 items: item 0 was popular long ago, item 2 is trending on days 10-11
RECENT_TRAIN = [np.array([0, 0, 0, 2, 2]), np.array([0, 3, 2])]
RECENT_TIMES = [np.array([1.0, 2.0, 3.0, 10.0, 11.0]) * DAY, np.array([1.5, 9.0, 12.0]) * DAY]


def test_recent_popular_counts_only_training_events_inside_the_window_before_the_request():
    baseline = RecentPopular(RECENT_TRAIN, RECENT_TIMES, num_items=5, window=3 * DAY)
    scores = baseline.scores([np.array([1]), np.array([1]), np.array([1])], [12.0 * DAY, 12.5 * DAY, 4.0 * DAY])
    # day 12: days 9-12 hold 2 x item 2 (day 10, 11) and item 3 (day 9); the event at day 12 itself is not before it
    assert scores[0, 2].floor() == 2 and scores[0, 3].floor() == 1 and scores[0, 0].floor() == 0
    # half a day later the day-12 event counts
    assert scores[1, 2].floor() == 3
    # day 4: only the old events of item 0 are recent
    assert scores[2, 0].floor() == 4 and scores[2, 2].floor() == 0
    # ties are broken by all-time popularity before the request: item 0 (4 events) above item 1 (none) on day 12
    assert scores[0, 0] > scores[0, 1] and scores[0, 0] < 1
    # requests in any order give the rows of requests in time order
    reversed_scores = baseline.scores([np.array([1])] * 3, [4.0 * DAY, 12.5 * DAY, 12.0 * DAY])
    assert torch.equal(reversed_scores, scores.flip(0))
    assert torch.equal(baseline.recent_counts([12.0 * DAY, 4.0 * DAY]),
                       torch.tensor([[0.0, 0, 2, 1, 0], [4, 0, 0, 0, 0]], dtype=torch.float64))


def test_recent_popular_with_an_infinite_window_is_most_popular_before_the_request():
    baseline = RecentPopular(RECENT_TRAIN, RECENT_TIMES, num_items=5, window=float("inf"))
    scores = baseline.scores([np.array([4])], [100.0 * DAY])
    assert scores[0].floor().tolist() == MostPopular(RECENT_TRAIN, 5).counts.tolist()


def test_recent_popular_is_ranked_with_each_examples_time_and_its_window_is_chosen_on_validation():
    valid = EvalExamples([0, 1], [np.array([3]), np.array([3])], np.array([2, 2]), target_times=np.array([12.5, 12.5]) * DAY)
    test = EvalExamples([0], [np.array([2])], np.array([0]), target_times=np.array([4.0]) * DAY)
    splits = Splits(train=RECENT_TRAIN, valid=valid, test=test, protocol="leave-one-out", train_times=RECENT_TIMES)
    baseline, found = RecentPopular.tuned(splits, 5, windows=(1 * DAY, 3 * DAY, float("inf")))
    # the target, item 2, leads within 1 and 3 days before day 12.5; over all time item 0 leads; a tie keeps the first
    assert found[1 * DAY] == found[3 * DAY] == 1.0 and found[float("inf")] < 1.0
    assert baseline.window == 1 * DAY
    assert rank_baseline(baseline, test, top_k=1) == [[0]]  # history item 2 excluded; on day 4 item 0 is recent
    with pytest.raises(ValueError, match="target_times"):
        rank_baseline(baseline, examples([[1]], [0]), top_k=1)
    with pytest.raises(ValueError, match="train_times"):
        RecentPopular(RECENT_TRAIN, None, 5, DAY)
