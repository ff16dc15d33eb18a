"""Per-user time-ordered sequences and the evaluation splits (leave-one-out and global temporal)."""

import logging
from dataclasses import dataclass

import numpy as np

from .data.errors import DataError

logger = logging.getLogger(__name__)


@dataclass
class UserSequences:
    """Each user's events in time order, as catalog indices (ties broken by the order of the rows)."""

    user_ids: list
    items: list  # list of int64 arrays of catalog indices
    timestamps: list  # list of float64 arrays

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

    def __len__(self):
        return len(self.user_ids)


@dataclass
class Splits:
    train: list  # int64 arrays: the training part of every user's sequence
    valid: EvalExamples
    test: EvalExamples
    protocol: str


def build_user_sequences(interactions, catalog):
    """Group a `datasets.Dataset` of (user_id, item_id, timestamp) rows into time-ordered user sequences."""
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
    return UserSequences(user_ids=list(user_ids), items=item_groups, timestamps=time_groups)


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
    train, valid, test = [], ([], [], []), ([], [], [])
    short_users = 0
    for user, items in zip(sequences.user_ids, sequences.items):
        if len(items) < 3:
            short_users += 1
            train.append(items)
            continue
        train.append(items[:-2])
        for split, history, target in ((valid, items[:-2], items[-2]), (test, items[:-1], items[-1])):
            split[0].append(user)
            split[1].append(history)
            split[2].append(target)
    if short_users:
        logger.warning("leave-one-out: %d users with fewer than 3 events are used for training only", short_users)
    if not valid[0]:
        raise DataError("leave-one-out: no user has 3 or more events, nothing to evaluate")
    return Splits(train=train, valid=_examples(valid), test=_examples(test), protocol="leave-one-out")


def temporal_split(sequences, valid_time, test_time):
    """A global temporal split: train on events before `valid_time`; validate on each user's first event in
    [valid_time, test_time) given everything before it; test on the first event at or after `test_time`."""
    if valid_time > test_time:
        raise DataError(f"temporal split: valid_time ({valid_time}) must not be after test_time ({test_time})")
    train, valid, test = [], ([], [], []), ([], [], [])
    for user, items, times in zip(sequences.user_ids, sequences.items, sequences.timestamps):
        n_train = int(np.searchsorted(times, valid_time, side="left"))
        n_before_test = int(np.searchsorted(times, test_time, side="left"))
        if n_train:
            train.append(items[:n_train])
        if n_train and n_train < n_before_test:
            valid[0].append(user), valid[1].append(items[:n_train]), valid[2].append(items[n_train])
        if n_before_test and n_before_test < len(items):
            test[0].append(user), test[1].append(items[:n_before_test]), test[2].append(items[n_before_test])
    if not test[0]:
        raise DataError(f"temporal split: no user has events both before and after test_time={test_time}")
    return Splits(train=train, valid=_examples(valid), test=_examples(test), protocol="temporal")


def temporal_cutoffs(sequences, valid_quantile=0.8, test_quantile=0.9):
    """Cut-off times at quantiles of all event times (e.g. the last 10 % of time for testing)."""
    times = np.concatenate(sequences.timestamps)
    return float(np.quantile(times, valid_quantile)), float(np.quantile(times, test_quantile))


def _examples(parts):
    users, histories, targets = parts
    return EvalExamples(user_ids=users, histories=histories, targets=np.asarray(targets, dtype=np.int64))


def item_counts(train_sequences, num_items):
    """Training frequency of every catalog item (popularity baseline, sampled-softmax proposal)."""
    if not train_sequences:
        return np.zeros(num_items, dtype=np.int64)
    return np.bincount(np.concatenate(train_sequences), minlength=num_items)
