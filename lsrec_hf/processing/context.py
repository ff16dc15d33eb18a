"""Side features of events and users: derived time features, vocabularies, and their ids.

A feature is a categorical column of the interactions (scenario, device, ...), a time feature derived from the
timestamp (`hour`, `weekday`, in UTC), or a user feature joined from the users table (age, gender, ...).
Each feature's vocabulary is the sorted list of its values in the data; value `i` has id `i + 1`. Id 0 means
"unknown": missing values and values the vocabulary has never seen map to it, never to an error.
"""

import logging

import numpy as np
import pandas as pd
import torch

from ..data.errors import DataError

logger = logging.getLogger(__name__)

TIME_FEATURES = ("hour", "weekday")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def target_scenario_ids(context_ids, next_context_ids, scenario_index, causal):
    """`[B, T]` the scenario of the event each position predicts, from the events' side-feature ids `[B, T, F]`.

    causal: the next event's (the last position predicts the event of `next_context_ids` `[B, F]`, the one to
    recommend); cloze: each position's own. The one shift used by training (collator) and inference (model).
    """
    scenarios = context_ids[..., scenario_index]
    if not causal:
        return scenarios
    return torch.cat([scenarios[:, 1:], next_context_ids[:, None, scenario_index]], dim=1)


def time_feature(timestamps, name):
    """Hour of day ("0".."23") or weekday ("Mon".."Sun") of Unix timestamps in seconds, in UTC."""
    times = pd.to_datetime(np.asarray(timestamps, dtype=np.float64), unit="s", utc=True)
    if name == "hour":
        return [str(h) for h in times.hour]
    if name == "weekday":
        return [WEEKDAYS[d] for d in times.day_of_week]
    raise ValueError(f"unknown time feature {name!r}; derived features are {TIME_FEATURES}")


def feature_columns(data, context_features=(), user_features=()):
    """A DataFrame of the requested features' values (strings, "" = missing), one row per interaction.

    `context_features` are interaction columns or derived time features; `user_features` are columns of
    `data.users`, joined by user id (users missing from the users table get "").
    """
    interactions = data.interactions
    columns = {}
    for name in context_features:
        if name in interactions.column_names:
            columns[name] = [("" if v is None else str(v)) for v in interactions[name]]
        elif name in TIME_FEATURES:
            columns[name] = time_feature(interactions["timestamp"], name)
        else:
            raise DataError(f"context feature '{name}': not a column of the interactions "
                            f"{interactions.column_names} nor a derived time feature {TIME_FEATURES}")
    if user_features:
        if data.users is None:
            raise DataError(f"user features {list(user_features)}: the data set '{data.name}' has no users table")
        users = data.users.to_pandas().astype(str).set_index("user_id")
        missing = [name for name in user_features if name not in users.columns]
        if missing:
            raise DataError(f"user features {missing}: not columns of the users table {list(users.columns)}")
        user_ids = pd.Series(interactions["user_id"], dtype=str)
        unknown = int((~user_ids.isin(users.index)).sum())
        if unknown:
            logger.warning("user features: %d interactions belong to users missing from the users table "
                           "(their user features are unknown)", unknown)
        for name in user_features:
            columns[name] = user_ids.map(users[name]).fillna("").tolist()
    return pd.DataFrame(columns)


def build_vocab(values):
    """Sorted distinct non-empty values of a feature."""
    return sorted({str(v) for v in values if v not in ("", None)})


def encode(values, vocab):
    """Ids of `values` in `vocab` (index + 1); missing and unseen values get 0."""
    index = {value: i + 1 for i, value in enumerate(vocab)}
    return np.asarray([index.get("" if v is None else str(v), 0) for v in values], dtype=np.int64)


def encode_features(frame, feature_vocab):
    """`[rows, F]` int64 ids of the columns of `frame`, in the order of `feature_vocab` (a dict name -> values)."""
    if not feature_vocab:
        return None
    return np.stack([encode(frame[name], vocab) for name, vocab in feature_vocab.items()], axis=1)


def model_event_features(data, config):
    """`[rows, F]` ids of the side features `config` embeds, for every event of `data` (values unknown to the
    config's vocabularies get id 0), or None for a model without side features."""
    if config is None or not config.feature_names:
        return None
    frame = feature_columns(data, sorted(config.context_vocab or {}), sorted(config.user_vocab or {}))
    return encode_features(frame, config.feature_vocab)


def encode_target_context(feature_vocab, context):
    """Ids `[F]` of one event's context given as a dict of raw values; absent or unseen values are 0.

    Unknown feature names are an error (a typo would otherwise silently change nothing).
    """
    context = dict(context or {})
    unknown = sorted(set(context) - set(feature_vocab))
    if unknown:
        raise ValueError(f"context: unknown feature(s) {unknown}; this model knows {sorted(feature_vocab)}")
    return np.asarray([encode([context.get(name)], vocab)[0] for name, vocab in feature_vocab.items()],
                      dtype=np.int64)
