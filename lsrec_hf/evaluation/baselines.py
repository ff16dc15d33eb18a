"""Two non-neural baselines every results table needs: most-popular and item-kNN.

Both score the whole catalog for a user history, so they are ranked, filtered and measured by exactly the
same full-ranking code as the model (`rank_baseline`).
"""

import numpy as np
import torch

from .rank import DEFAULT_K_VALUES
from .metrics import compute_ranking_metrics
from ..processing.sequences import item_counts


class MostPopular:
    """Every user gets the items with the most training events (history items excluded at ranking)."""

    def __init__(self, train_sequences, num_items):
        self.num_items = num_items
        self.counts = torch.as_tensor(item_counts(train_sequences, num_items), dtype=torch.float32)

    def scores(self, histories):
        return self.counts.expand(len(histories), -1).clone()


class ItemKNN:
    """Item-based collaborative filtering (Sarwar et al. 2001; Deshpande & Karypis 2004).

    Similarity = cosine between items' user-occurrence vectors in the training sequences, each item keeping
    its `neighbors` most similar items; a user's score for item j is the sum of sim(i, j) over the items i
    in the history (the most recent `max_history` of them).
    """

    def __init__(self, train_sequences, num_items, neighbors=100, max_history=None):
        self.num_items = num_items
        self.max_history = max_history
        rows = np.concatenate([np.full(len(np.unique(s)), u) for u, s in enumerate(train_sequences)])
        cols = np.concatenate([np.unique(s) for s in train_sequences])
        occurrence = torch.zeros(len(train_sequences), num_items)
        occurrence[torch.as_tensor(rows), torch.as_tensor(cols)] = 1.0
        co_counts = occurrence.T @ occurrence
        norms = co_counts.diagonal().clamp(min=1.0).sqrt()
        similarity = co_counts / norms[:, None] / norms[None, :]
        similarity.fill_diagonal_(0.0)
        if neighbors < num_items:
            top = similarity.topk(neighbors, dim=1)
            similarity = torch.zeros_like(similarity).scatter_(1, top.indices, top.values)
        self.similarity = similarity

    def scores(self, histories):
        profile = torch.zeros(len(histories), self.num_items)
        for row, history in enumerate(histories):
            history = history[-self.max_history:] if self.max_history else history
            profile[row, torch.as_tensor(np.asarray(history, dtype=np.int64))] = 1.0
        return profile @ self.similarity


def rank_baseline(baseline, examples, top_k=20, batch_size=1024, exclude_history=True):
    """Top-k lists of `baseline` for every example, in order (history items excluded unless told otherwise)."""
    ranked = []
    for start in range(0, len(examples), batch_size):
        histories = examples.histories[start:start + batch_size]
        scores = baseline.scores(histories)
        for row, history in enumerate(histories if exclude_history else ()):
            scores[row, torch.as_tensor(np.asarray(history, dtype=np.int64))] = float("-inf")
        ranked.extend(scores.topk(min(top_k, baseline.num_items), dim=1).indices.tolist())
    return ranked


def evaluate_baseline(baseline, examples, k_values=DEFAULT_K_VALUES, exclude_history=True):
    ranked = rank_baseline(baseline, examples, top_k=max(k_values), exclude_history=exclude_history)
    return compute_ranking_metrics(ranked, examples.targets, k_values, num_items=baseline.num_items)
