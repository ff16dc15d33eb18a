"""Coverage, intra-list diversity and novelty of top-K lists against hand-computed values."""

import math

import numpy as np
import pytest
import torch

from lsrec_hf.evaluation.metrics.beyond_accuracy import beyond_accuracy_metrics, catalog_coverage, intra_list_diversity, novelty


def test_coverage_counts_distinct_items_in_the_top_k():
    assert catalog_coverage([[0, 1, 2], [1, 2, 3]], num_items=10, k=2) == pytest.approx(3 / 10)
    assert catalog_coverage([[0, 1, 2], [1, 2, 3]], num_items=10, k=3) == pytest.approx(4 / 10)


def test_diversity_is_one_minus_mean_pairwise_cosine():
    embeddings = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0], [1.0, 1.0]])
    assert intra_list_diversity([[0, 1]], embeddings, k=2) == pytest.approx(1.0)  # orthogonal
    assert intra_list_diversity([[0, 2]], embeddings, k=2) == pytest.approx(0.0)  # same direction
    expected = 1 - (0.0 + 1 / math.sqrt(2) + 1 / math.sqrt(2)) / 3  # pairs (0,1), (0,3), (1,3)
    assert intra_list_diversity([[0, 1, 3]], embeddings, k=3) == pytest.approx(expected)
    assert intra_list_diversity([[0, 1], [0, 2]], embeddings, k=2) == pytest.approx(0.5)  # mean over users


def test_novelty_is_mean_self_information_of_user_share():
    train = [np.array([0, 1]), np.array([0, 0]), np.array([0, 2]), np.array([0])]
    # p(0) = 4/4, p(1) = 1/4, p(3) unseen -> counted as one user of 4
    assert novelty([[0, 1]], train, num_items=4, k=2) == pytest.approx((0 + 2) / 2)
    assert novelty([[3]], train, num_items=4, k=1) == pytest.approx(2.0)


def test_all_in_one():
    metrics = beyond_accuracy_metrics([[0, 1]], [np.array([0, 1])], 4, torch.eye(4), k=2)
    assert metrics == {"coverage@2": 0.5, "novelty@2": 0.0, "diversity@2": pytest.approx(1.0)}
