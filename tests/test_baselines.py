"""Most-popular and item-kNN against hand-computed scores, ranked by the same full-ranking code as the model."""

import math

import numpy as np
import pytest
import torch

from lsrec_hf.evaluation.baselines import ItemKNN, MostPopular, evaluate_baseline, rank_baseline
from lsrec_hf.processing.sequences import EvalExamples

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
