"""What is trending: each item's events in a window before the moment of a request, added to the model's scores.

A time-blind sequential model ranks with the hits of its whole training log. Where the catalog moves fast (Steam:
new releases dominate what people play next, and the test events span years), how many events an item had in the
last days before the request is a signal the model cannot see. The prior adds
`weight * log(1 + r_i) + popularity_weight * log(1 + p_i)` to the score of item i, with r_i the item's events in
the `window` before the request and p_i all its events before it, strictly before (nothing of the request's moment
or later leaks in). A negative `popularity_weight` takes back the stale, all-time popularity that a time-blind
model has learned, so that what is trending now replaces it. The weights and the window are chosen on validation
after training (`lsrec_hf.evaluation.trend_calibration.calibrate_trend_prior`); both weights 0 is among the
choices, so where time does not help the prior is left out.

Saved beside the weights as `trend_prior.safetensors`: the event log (catalog index and time of each event) and, in
the file's metadata, the window and the weights. Imports nothing of the model's layers.
"""

import os

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

TREND_PRIOR_NAME = "trend_prior.safetensors"
DAY = 86400.0  # a day in unix seconds, the unit of the logs' timestamps


def recent_counts_sweep(items, times, num_items, window, request_times):
    """(row, recent counts, counts before) for each request time, in time order: one pass over a log sorted by time.

    `recent` holds each item's events in `[t - window, t)`, `before` its events in `(-inf, t)`; both are arrays the
    sweep updates in place, so copy them to keep them."""
    request_times = np.asarray(request_times, dtype=np.float64)
    before = np.zeros(num_items)
    recent = np.zeros(num_items)
    start = end = 0
    for row in np.argsort(request_times, kind="stable"):
        now = request_times[row]
        stop = int(np.searchsorted(times, now, side="left"))
        added = np.bincount(items[end:stop], minlength=num_items)
        before += added
        recent += added
        end = stop
        first = int(np.searchsorted(times, now - window, side="left")) if np.isfinite(window) else 0
        if first > start:
            recent -= np.bincount(items[start:first], minlength=num_items)
            start = first
        yield row, recent, before


class TrendPrior:
    """`weight * log(1 + each item's events in the window before a moment) + popularity_weight * log(1 + all its
    events before it)`, from a log of (item, time) events.

    items: catalog indices of the events; times: their times (unix seconds for the loaders' timestamps);
    window: in the times' unit; weight: the scale of the recent events' term beside the model's scores;
    popularity_weight: that of all earlier events (0: none; negative: less of what was popular).
    """

    def __init__(self, items, times, num_items, window, weight, popularity_weight=0.0):
        items = np.asarray(items, dtype=np.int64)
        times = np.asarray(times, dtype=np.float64)
        if items.shape != times.shape or items.ndim != 1:
            raise ValueError(f"TrendPrior: {items.shape} items but {times.shape} times; one time per event")
        if len(items) and (items.min() < 0 or items.max() >= num_items):
            raise ValueError(f"TrendPrior: item indices must lie in [0, {num_items}), got {items.min()}..{items.max()}")
        if not window > 0:
            raise ValueError(f"TrendPrior: window must be > 0, got {window}")
        order = np.argsort(times, kind="stable")
        self.items, self.times = items[order], times[order]
        self.num_items, self.window, self.weight = num_items, float(window), float(weight)
        self.popularity_weight = float(popularity_weight)
        self._last_bias = (None, None)  # (the key of a one-moment request, its bias)

    @classmethod
    def from_sequences(cls, sequences, times, num_items, window, weight, popularity_weight=0.0):
        """From per-user arrays of catalog indices and their times (`Splits.train`, `Splits.train_times`)."""
        if times is None or len(times) != len(sequences):
            raise ValueError("a trend prior needs the time of every event (Splits.train_times)")
        items = np.concatenate(sequences) if len(sequences) else np.zeros(0, dtype=np.int64)
        return cls(items, np.concatenate(times) if len(times) else np.zeros(0), num_items, window, weight,
                   popularity_weight)

    @property
    def latest_time(self):
        """The time of the last event the prior knows."""
        return float(self.times[-1]) if len(self.times) else 0.0

    def moment(self, now=None):
        """The time a request is taken at: `now` (unix seconds, or a `datetime`), else just after the last event the
        prior knows, so that every known event counts (a served model folds in live events with `add_events`)."""
        if now is None:
            return float(np.nextafter(self.latest_time, np.inf))
        if hasattr(now, "timestamp"):
            return float(now.timestamp())
        try:
            return float(now)
        except (TypeError, ValueError):
            raise ValueError(f"now must be a time in unix seconds or a datetime, got {now!r}") from None

    def add_events(self, items, times):
        """Fold in new events (catalog indices and times), e.g. what was played since the model was trained."""
        items = np.concatenate([self.items, np.asarray(items, dtype=np.int64)])
        times = np.concatenate([self.times, np.asarray(times, dtype=np.float64)])
        self.__init__(items, times, self.num_items, self.window, self.weight, self.popularity_weight)

    def counts(self, times):
        """Two `[len(times), num_items]` float64 tensors: each item's events in the window before each time, and
        all its events before it."""
        recent_counts, counts_before = np.zeros((len(times), self.num_items)), np.zeros((len(times), self.num_items))
        for row, recent, before in recent_counts_sweep(self.items, self.times, self.num_items, self.window, times):
            recent_counts[row], counts_before[row] = recent, before
        return torch.as_tensor(recent_counts), torch.as_tensor(counts_before)

    def recent_counts(self, times):
        """`[len(times), num_items]` float64: each item's events in the window before each time."""
        return self.counts(times)[0]

    def bias(self, times):
        """`[len(times), num_items]` float32: what the prior adds to the model's scores of a request at each time."""
        key = ((float(times[0]), self.num_items, len(self.items), self.window, self.weight, self.popularity_weight)
               if len(times) == 1 else None)
        if key is not None and self._last_bias[0] == key:  # served requests mostly share one moment: one sweep
            return self._last_bias[1]
        recent, before = self.counts(times)
        bias = (self.weight * recent.log1p() + self.popularity_weight * before.log1p()).float()
        if key is not None:
            self._last_bias = (key, bias)
        return bias

    def save_pretrained(self, save_directory):
        save_file({"items": torch.as_tensor(self.items), "times": torch.as_tensor(self.times)},
                  os.path.join(save_directory, TREND_PRIOR_NAME),
                  metadata={"num_items": str(self.num_items), "window": repr(self.window), "weight": repr(self.weight),
                            "popularity_weight": repr(self.popularity_weight)})

    @classmethod
    def from_file(cls, path, num_items):
        """The prior saved at `path`; an `OSError` naming the file when it is not one, or not of this catalog."""
        try:
            with safe_open(path, framework="pt") as f:
                metadata = f.metadata() or {}
                items, times = f.get_tensor("items").numpy(), f.get_tensor("times").numpy()
            saved_items = int(metadata["num_items"])
            window, weight = float(metadata["window"]), float(metadata["weight"])
            popularity_weight = float(metadata["popularity_weight"])
        except (SafetensorError, KeyError, ValueError) as error:
            raise OSError(f"{path}: not a trend prior file ({type(error).__name__}: {error})") from None
        if saved_items != num_items:
            raise OSError(f"{path}: a trend prior of {saved_items} items, but the model's catalog has {num_items}")
        return cls(items, times, num_items, window, weight, popularity_weight)

    def __repr__(self):
        return (f"TrendPrior(events={len(self.items)}, window={self.window / DAY:g} days, weight={self.weight:g}, "
                f"popularity_weight={self.popularity_weight:g}, latest_time={self.latest_time:.0f})")


__all__ = ["DAY", "TREND_PRIOR_NAME", "TrendPrior", "recent_counts_sweep"]
