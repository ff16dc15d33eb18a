"""The non-neural baselines every results table needs: most-popular, recent-popular and item-kNN.

Each scores the whole catalog for a user history, so they are ranked, filtered and measured by exactly the
same full-ranking code as the model (`rank_baseline`).
"""

import numpy as np
import torch

from .rank import DEFAULT_K_VALUES
from .metrics import compute_ranking_metrics
from ..processing.sequences import item_counts
from ..model.cooccurrence_prior import item_neighbors
from ..model.trend_prior import DAY, TrendPrior


class MostPopular:
    """Every user gets the items with the most training events (history items excluded at ranking)."""

    def __init__(self, train_sequences, num_items):
        self.num_items = num_items
        self.counts = torch.as_tensor(item_counts(train_sequences, num_items), dtype=torch.float32)

    def scores(self, histories):
        return self.counts.expand(len(histories), -1).clone()


# Windows tried by `RecentPopular.tuned` (in days of unix-second timestamps), the whole past last.
RECENT_WINDOWS_DAYS = (1, 3, 7, 14, 30, 90, 365, float("inf"))


class RecentPopular:
    """Every user gets the items with the most training events in the `window` before the moment of the request
    (the target event's time), ties broken by their training events before it: what is trending now.

    Only training events strictly before the request count, so nothing after it leaks in. On a log spread over
    years (Steam) this is a strong peer that a time-blind model cannot match: new releases dominate what people
    play next. `window` is in the log's time units (seconds for unix timestamps).
    """

    needs_times = True

    def __init__(self, train_sequences, train_times, num_items, window):
        if train_times is None or len(train_times) != len(train_sequences):
            raise ValueError("RecentPopular needs the time of every training event (Splits.train_times)")
        self.log = TrendPrior.from_sequences(train_sequences, train_times, num_items, window, weight=1.0)
        self.num_items, self.window = num_items, window

    @classmethod
    def tuned(cls, splits, num_items, windows=tuple(d * DAY for d in RECENT_WINDOWS_DAYS), metric="ndcg@10"):
        """The window with the best validation `metric` (history excluded); returns (baseline, {window: metric})."""
        found = {}
        for window in windows:
            baseline = cls(splits.train, splits.train_times, num_items, window)
            found[window] = evaluate_baseline(baseline, splits.valid)[metric]
        best = max(found, key=found.get)
        return cls(splits.train, splits.train_times, num_items, best), found

    def scores(self, histories, times):
        if len(times) != len(histories):
            raise ValueError(f"RecentPopular.scores: {len(histories)} histories but {len(times)} times")
        recent, before = self.log.counts(times)
        # all-time popularity only breaks ties; float64, so that the fraction survives beside large counts
        return recent + before / (before.sum(1, keepdim=True) + 1.0)

    def recent_counts(self, times):
        """`[len(times), num_items]`: each item's training events in the window before each time."""
        return self.log.recent_counts(times)


class ItemKNN:
    """Item-based collaborative filtering (Sarwar et al. 2001; Deshpande & Karypis 2004).

    Similarity = cosine between items' user-occurrence vectors in the training sequences, each item keeping
    its `neighbors` most similar items; a user's score for item j is the sum of sim(i, j) over the items i
    in the history (the most recent `max_history` of them).
    """

    def __init__(self, train_sequences, num_items, neighbors=100, max_history=None):
        self.num_items = num_items
        self.max_history = max_history
        # the co-occurrence prior's neighbours, as a dense matrix (padding adds similarity 0)
        indices, similarities = item_neighbors(train_sequences, num_items, min(neighbors, num_items))
        self.similarity = torch.zeros(num_items, num_items).scatter_add_(1, indices, similarities)

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
        if getattr(baseline, "needs_times", False):
            if examples.target_times is None:
                raise ValueError(f"{type(baseline).__name__} needs each example's time (EvalExamples.target_times)")
            scores = baseline.scores(histories, examples.target_times[start:start + batch_size])
        else:
            scores = baseline.scores(histories)
        for row, history in enumerate(histories if exclude_history else ()):
            scores[row, torch.as_tensor(np.asarray(history, dtype=np.int64))] = float("-inf")
        ranked.extend(scores.topk(min(top_k, baseline.num_items), dim=1).indices.tolist())
    return ranked


def evaluate_baseline(baseline, examples, k_values=DEFAULT_K_VALUES, exclude_history=True):
    ranked = rank_baseline(baseline, examples, top_k=max(k_values), exclude_history=exclude_history)
    return compute_ranking_metrics(ranked, examples.targets, k_values, num_items=baseline.num_items)
