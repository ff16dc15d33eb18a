"""Per-user time-ordered sequences and the evaluation splits (leave-one-out and global temporal)."""

import logging
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pa_compute
from tqdm.auto import tqdm

from ..data.errors import DataError
from ..utils import progress_bars_off

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
    target_times: np.ndarray | None = None  # [users] float64: when the target event happened (the query's "now")

    def __len__(self):
        return len(self.user_ids)


@dataclass
class Splits:
    train: list  # int64 arrays: the training part of every user's sequence
    valid: EvalExamples
    test: EvalExamples
    protocol: str
    train_context: list | None = None  # [events, features] side-feature ids of each training part, or None
    train_times: list | None = None  # float64 arrays: the time of every training event, aligned with `train`


# How a split that holds no validation event out names itself (leave-one-out that way is HSTU's on ML-1M).
NO_VALIDATION = " (no validation hold-out)"
NO_VALIDATION_PROTOCOL = "leave-one-out" + NO_VALIDATION

# Rows read at a time: the raw log (text ids) is never whole in memory, only its integer codes are.
GROUPING_BATCH_ROWS = 1_000_000


def build_user_sequences(interactions, catalog, features=None, batch_rows=GROUPING_BATCH_ROWS, show_progress_bar=None):
    """Group a `datasets.Dataset` of (user_id, item_id, timestamp) rows into time-ordered user sequences.

    The rows are read from Arrow `batch_rows` at a time (memory-mapped when the dataset is on disk): each batch's
    text ids become integer codes, so peak memory grows with the number of events times a few integers, not with the
    raw log (`bench/event_log_scale.py`). Users come in order of first appearance; a user's events are ordered by
    time, ties by row. `features`: optional `[rows, F]` side-feature ids aligned with the rows
    (`context.encode_features`).
    """
    num_rows = interactions.num_rows
    if num_rows == 0:
        raise DataError("interactions: the dataset has no rows")
    catalog_ids = pa.array(catalog.item_ids, type=pa.string())
    items = np.empty(num_rows, dtype=np.int32)
    user_codes = np.empty(num_rows, dtype=np.int32)
    times = np.empty(num_rows, dtype=np.float64)
    codes, user_ids = {}, []  # user id -> code, in order of first appearance
    first_unknown, unknown = None, 0
    table = interactions.select_columns(["user_id", "item_id", "timestamp"]).with_format("arrow")
    batches = range(0, num_rows, batch_rows)
    show = num_rows > batch_rows if show_progress_bar is None else show_progress_bar
    for start in tqdm(batches, desc="grouping events", unit="batch", disable=not show or progress_bars_off()):
        batch = table[start:start + batch_rows]
        stop = start + batch.num_rows
        index = pa_compute.index_in(pa_compute.cast(batch["item_id"], pa.string()), value_set=catalog_ids)
        if index.null_count:
            missing = np.flatnonzero(index.is_null().to_numpy(zero_copy_only=False))
            first_unknown = start + int(missing[0]) if first_unknown is None else first_unknown
            unknown += len(missing)
            index = index.fill_null(0)
        items[start:stop] = index.to_numpy(zero_copy_only=False)
        users = pa_compute.cast(batch["user_id"], pa.string())
        seen = pa_compute.unique(users)  # in order of first appearance
        for user in (seen_ids := seen.to_pylist()):
            if user not in codes:
                codes[user] = len(user_ids)
                user_ids.append(user)
        local = pa_compute.index_in(users, value_set=seen).to_numpy(zero_copy_only=False)
        user_codes[start:stop] = np.fromiter((codes[u] for u in seen_ids), np.int32, len(seen_ids))[local]
        times[start:stop] = pa_compute.cast(batch["timestamp"], pa.float64()).to_numpy(zero_copy_only=False)
    if unknown:
        bad = interactions[first_unknown]["item_id"]
        raise DataError(f"interactions: item id '{bad}' (row {first_unknown}) is not in the catalog;"
                        f" {unknown} rows have unknown items")
    # lexsort is stable and its last key is primary: by user, then time, then row; each input is freed once used
    order = np.lexsort((times, user_codes))
    boundaries = np.flatnonzero(np.diff(user_codes[order])) + 1
    del user_codes
    item_groups = np.split(items[order].astype(np.int64), boundaries)
    del items
    time_groups = np.split(times[order], boundaries)
    del times
    context = None
    if features is not None:
        features = np.asarray(features, dtype=np.int64)
        if len(features) != num_rows:
            raise DataError(f"interactions: {len(features)} rows of side features for {num_rows} interactions")
        context = np.split(features[order], boundaries)
    return UserSequences(user_ids=user_ids, items=item_groups, timestamps=time_groups, context=context)


def leave_one_out(sequences, validation=True):
    """Last event of each user = test target, second-to-last = validation target, the rest = training.

    The validation history is the training part; the test history adds the validation event. Users with
    fewer than 3 events cannot give all three parts: their events are used for training only (counted, logged).

    `validation=False` holds out no validation event: each user's second-to-last event is trained on, as HSTU's
    ML-1M protocol does (`NO_VALIDATION_PROTOCOL`); the test is unchanged, and nothing can be chosen on validation.
    """
    parts = _SplitParts(sequences.context is not None)
    held_out = 2 if validation else 1
    short_users = 0
    for user, events in _user_events(sequences):
        if len(events) < held_out + 1:
            short_users += 1
            parts.add_train(events)
            continue
        parts.add_train(events.head(len(events) - held_out))
        if validation:
            parts.add_eval("valid", user, events.head(len(events) - 2), events.at(len(events) - 2))
        parts.add_eval("test", user, events.head(len(events) - 1), events.at(len(events) - 1))
    if short_users:
        logger.warning("leave-one-out: %d users with fewer than %d events are used for training only", short_users,
                       held_out + 1)
    if not parts.eval["test"][0]:
        raise DataError(f"leave-one-out: no user has {held_out + 1} or more events, nothing to evaluate")
    return parts.splits("leave-one-out" if validation else NO_VALIDATION_PROTOCOL)


def temporal_split(sequences, valid_time, test_time):
    """A global temporal split: train on events before `valid_time`; validate on each user's first event in
    [valid_time, test_time) given everything before it; test on the first event at or after `test_time`.
    `valid_time == test_time` holds out no validation period (nothing to validate on)."""
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
    return parts.splits("temporal" if valid_time < test_time else "temporal" + NO_VALIDATION)


@dataclass
class _Events:
    """One user's items, their times and (optionally) their side-feature ids, sliced together."""

    items: np.ndarray
    times: np.ndarray
    context: np.ndarray | None

    def __len__(self):
        return len(self.items)

    def head(self, n):
        return _Events(self.items[:n], self.times[:n], None if self.context is None else self.context[:n])

    def at(self, i):
        return self.items[i], None if self.context is None else self.context[i], self.times[i]


def _user_events(sequences):
    contexts = sequences.context if sequences.context is not None else [None] * len(sequences)
    return [(user, _Events(items, times, context))
            for user, items, times, context in zip(sequences.user_ids, sequences.items, sequences.timestamps, contexts)]


class _SplitParts:
    def __init__(self, with_context):
        self.with_context = with_context
        self.train, self.train_times, self.train_context = [], [], []
        self.eval = {name: ([], [], [], [], [], []) for name in ("valid", "test")}

    def add_train(self, events):
        self.train.append(events.items)
        self.train_times.append(events.times)
        self.train_context.append(events.context)

    def add_eval(self, name, user, history, target):
        users, histories, targets, history_context, target_context, target_times = self.eval[name]
        users.append(user), histories.append(history.items), targets.append(target[0])
        history_context.append(history.context), target_context.append(target[1]), target_times.append(target[2])

    def examples(self, name):
        users, histories, targets, history_context, target_context, target_times = self.eval[name]
        return EvalExamples(user_ids=users, histories=histories, targets=np.asarray(targets, dtype=np.int64),
                            history_context=history_context if self.with_context else None,
                            target_context=np.asarray(target_context, dtype=np.int64) if self.with_context else None,
                            target_times=np.asarray(target_times, dtype=np.float64))

    def splits(self, protocol):
        return Splits(train=self.train, valid=self.examples("valid"), test=self.examples("test"), protocol=protocol,
                      train_context=self.train_context if self.with_context else None, train_times=self.train_times)


def temporal_cutoffs(sequences, valid_quantile=0.8, test_quantile=0.9):
    """Cut-off times at quantiles of all event times (e.g. the last 10 % of time for testing)."""
    times = np.concatenate(sequences.timestamps)
    return float(np.quantile(times, valid_quantile)), float(np.quantile(times, test_quantile))


def item_counts(train_sequences, num_items):
    """Training frequency of every catalog item (popularity baseline, sampled-softmax proposal)."""
    if not train_sequences:
        return np.zeros(num_items, dtype=np.int64)
    return np.bincount(np.concatenate(train_sequences), minlength=num_items)
