"""Per-user time-ordered sequences and the evaluation splits (leave-one-out and global temporal)."""

import logging
from dataclasses import dataclass

import numpy as np

from ..data.errors import DataError

logger = logging.getLogger(__name__)


@dataclass
class UserSequences:
    """Each user's events in time order, as catalog indices (ties broken by the order of the rows)."""

    user_ids: list
    items: list  # list of int64 arrays of catalog indices
    timestamps: list  # list of float64 arrays
    context: list | None = None  # list of [events, features] int64 arrays of side-feature ids, or None

    def __len__(self):
        return len(self.user_ids)

    @property
    def num_events(self):
        return int(sum(len(s) for s in self.items))


@dataclass
class EvalExamples:
    """One prediction per user: the history given to the model and the held-out target after it."""

    user_ids: list
    histories: list  # int64 arrays of catalog indices, oldest first
    targets: np.ndarray  # catalog index of the item to find
    history_context: list | None = None  # [len(history), features] side-feature ids per history, or None
    target_context: np.ndarray | None = None  # [users, features]: where and when the target event happened

    def __len__(self):
        return len(self.user_ids)


@dataclass
class Splits:
    train: list  # int64 arrays: the training part of every user's sequence
    valid: EvalExamples
    test: EvalExamples
    protocol: str
    train_context: list | None = None  # [events, features] side-feature ids of each training part, or None


def build_user_sequences(interactions, catalog, features=None):
    """Group a `datasets.Dataset` of (user_id, item_id, timestamp) rows into time-ordered user sequences.

    `features`: optional `[rows, F]` side-feature ids aligned with the rows (`context.encode_features`).
    """
    table = interactions.select_columns(["user_id", "item_id", "timestamp"]).to_pandas()
    if len(table) == 0:
        raise DataError("interactions: the dataset has no rows")
    unknown = ~table["item_id"].astype(str).isin(catalog.item_ids)
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise DataError(f"interactions: item id '{table['item_id'].iloc[row]}' (row {row}) is not in the catalog;"
                         f" {int(unknown.sum())} rows have unknown items")
    index = {item_id: i for i, item_id in enumerate(catalog.item_ids)}
    items = table["item_id"].astype(str).map(index).to_numpy(np.int64)
    users = table["user_id"].astype(str).to_numpy()
    times = table["timestamp"].to_numpy(np.float64)
    user_codes, user_ids = _codes_in_first_appearance_order(users)
    # lexsort: last key is primary -> by user, then time, then original row (a stable tie-break)
    order = np.lexsort((np.arange(len(items)), times, user_codes))
    boundaries = np.flatnonzero(np.diff(user_codes[order])) + 1
    item_groups = np.split(items[order], boundaries)
    time_groups = np.split(times[order], boundaries)
    context = None
    if features is not None:
        features = np.asarray(features, dtype=np.int64)
        if len(features) != len(items):
            raise DataError(f"interactions: {len(features)} rows of side features for {len(items)} interactions")
        context = np.split(features[order], boundaries)
    return UserSequences(user_ids=list(user_ids), items=item_groups, timestamps=time_groups, context=context)


def _codes_in_first_appearance_order(values):
    uniques, first, codes = np.unique(values, return_index=True, return_inverse=True)
    rank = np.empty(len(uniques), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(uniques))
    return rank[codes], uniques[np.argsort(first, kind="stable")]


def leave_one_out(sequences):
    """Last event of each user = test target, second-to-last = validation target, the rest = training.

    The validation history is the training part; the test history adds the validation event. Users with
    fewer than 3 events cannot give all three parts: their events are used for training only (counted, logged).
    """
    parts = _SplitParts(sequences.context is not None)
    short_users = 0
    for user, events in _user_events(sequences):
        if len(events) < 3:
            short_users += 1
            parts.add_train(events)
            continue
        parts.add_train(events.head(len(events) - 2))
        parts.add_eval("valid", user, events.head(len(events) - 2), events.at(len(events) - 2))
        parts.add_eval("test", user, events.head(len(events) - 1), events.at(len(events) - 1))
    if short_users:
        logger.warning("leave-one-out: %d users with fewer than 3 events are used for training only", short_users)
    if not parts.eval["valid"][0]:
        raise DataError("leave-one-out: no user has 3 or more events, nothing to evaluate")
    return parts.splits("leave-one-out")


def temporal_split(sequences, valid_time, test_time):
    """A global temporal split: train on events before `valid_time`; validate on each user's first event in
    [valid_time, test_time) given everything before it; test on the first event at or after `test_time`."""
    if valid_time > test_time:
        raise DataError(f"temporal split: valid_time ({valid_time}) must not be after test_time ({test_time})")
    parts = _SplitParts(sequences.context is not None)
    for (user, events), times in zip(_user_events(sequences), sequences.timestamps):
        n_train = int(np.searchsorted(times, valid_time, side="left"))
        n_before_test = int(np.searchsorted(times, test_time, side="left"))
        if n_train:
            parts.add_train(events.head(n_train))
        if n_train and n_train < n_before_test:
            parts.add_eval("valid", user, events.head(n_train), events.at(n_train))
        if n_before_test and n_before_test < len(events):
            parts.add_eval("test", user, events.head(n_before_test), events.at(n_before_test))
    if not parts.eval["test"][0]:
        raise DataError(f"temporal split: no user has events both before and after test_time={test_time}")
    return parts.splits("temporal")


@dataclass
class _Events:
    """One user's items and (optionally) their side-feature ids, sliced together."""

    items: np.ndarray
    context: np.ndarray | None

    def __len__(self):
        return len(self.items)

    def head(self, n):
        return _Events(self.items[:n], None if self.context is None else self.context[:n])

    def at(self, i):
        return self.items[i], None if self.context is None else self.context[i]


def _user_events(sequences):
    contexts = sequences.context if sequences.context is not None else [None] * len(sequences)
    return [(user, _Events(items, context)) for user, items, context in zip(sequences.user_ids, sequences.items, contexts)]


class _SplitParts:
    def __init__(self, with_context):
        self.with_context = with_context
        self.train, self.train_context = [], []
        self.eval = {name: ([], [], [], [], []) for name in ("valid", "test")}

    def add_train(self, events):
        self.train.append(events.items)
        self.train_context.append(events.context)

    def add_eval(self, name, user, history, target):
        users, histories, targets, history_context, target_context = self.eval[name]
        users.append(user), histories.append(history.items), targets.append(target[0])
        history_context.append(history.context), target_context.append(target[1])

    def examples(self, name):
        users, histories, targets, history_context, target_context = self.eval[name]
        return EvalExamples(user_ids=users, histories=histories, targets=np.asarray(targets, dtype=np.int64),
                            history_context=history_context if self.with_context else None,
                            target_context=np.asarray(target_context, dtype=np.int64) if self.with_context else None)

    def splits(self, protocol):
        return Splits(train=self.train, valid=self.examples("valid"), test=self.examples("test"), protocol=protocol,
                      train_context=self.train_context if self.with_context else None)


def temporal_cutoffs(sequences, valid_quantile=0.8, test_quantile=0.9):
    """Cut-off times at quantiles of all event times (e.g. the last 10 % of time for testing)."""
    times = np.concatenate(sequences.timestamps)
    return float(np.quantile(times, valid_quantile)), float(np.quantile(times, test_quantile))


def item_counts(train_sequences, num_items):
    """Training frequency of every catalog item (popularity baseline, sampled-softmax proposal)."""
    if not train_sequences:
        return np.zeros(num_items, dtype=np.int64)
    return np.bincount(np.concatenate(train_sequences), minlength=num_items)
