"""A seeded random sample of a data set's users, every event of each kept user: smaller runs of a large set."""

import numpy as np

from .errors import DataError
from .recdataset import RecDataset


def sample_users(data, max_users, seed=0):
    """`data` with at most `max_users` of its users (drawn at random with `seed`), each with all their events.

    The catalog stays whole, so item indices (and a model's catalog) do not depend on the sample.
    """
    if max_users is None:
        return data
    if max_users < 1:
        raise DataError(f"max_users must be a positive number of users, got {max_users}")
    users = data.interactions["user_id"]
    unique = np.unique(np.asarray(users, dtype=object).astype(str))
    if len(unique) <= max_users:
        return data
    keep = set(np.random.default_rng(seed).choice(unique, size=max_users, replace=False).tolist())
    rows = [i for i, user in enumerate(users) if user in keep]
    report = dict(data.report, users_sampled=max_users, users_before_sampling=len(unique),
                  interactions=len(rows))
    users_table = data.users.filter(lambda row: row["user_id"] in keep) if data.users is not None else None
    return RecDataset(data.interactions.select(rows), data.catalog, users_table, data.name, report)


__all__ = ["sample_users"]
