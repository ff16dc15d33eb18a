"""A seeded sample of a data set's users, on the real MovieLens-100K slice."""

import pytest

from lsrec_hf.data import DataError, load_data
from lsrec_hf.data.sampling import sample_users


def test_a_sample_keeps_every_event_of_the_users_it_draws_and_the_whole_catalog(ml100k_slice):
    data = load_data(ml100k_slice)
    sample = sample_users(data, 30, seed=1)
    frame, whole = sample.interactions.to_pandas(), data.interactions.to_pandas()
    users = set(frame["user_id"])
    assert len(users) == 30
    assert len(frame) == int(whole["user_id"].isin(users).sum())  # all their events, nobody else's
    assert sample.catalog is data.catalog
    assert sample.report["users_before_sampling"] == 120 and sample.report["interactions"] == len(frame)
    assert set(sample_users(data, 30, seed=1).interactions["user_id"]) == users  # the seed fixes the sample
    assert set(sample_users(data, 30, seed=2).interactions["user_id"]) != users
    assert sample_users(data, 500) is data and sample_users(data, None) is data


def test_a_sample_of_no_users_is_refused(ml100k_slice):
    with pytest.raises(DataError, match="max_users"):
        sample_users(load_data(ml100k_slice), 0)
