import datasets
import numpy as np
import pytest

from lsrec_hf import ItemCatalog
from lsrec_hf.processing.sequences import (NO_VALIDATION_PROTOCOL, build_user_sequences, item_counts, leave_one_out,
                                          temporal_split)

CATALOG = ItemCatalog(["a", "b", "c", "d", "e"], [""] * 5, ["item a", "item b", "item c", "item d", "item e"])


def interactions(rows):
    users, items, times = zip(*rows)
    return datasets.Dataset.from_dict({"user_id": list(users), "item_id": list(items), "timestamp": list(map(float, times))})


def test_sequences_are_time_ordered_with_ties_kept_in_row_order():
    data = interactions([("u1", "c", 5), ("u2", "a", 1), ("u1", "a", 3), ("u1", "b", 5), ("u1", "d", 1)])
    seqs = build_user_sequences(data, CATALOG)
    assert seqs.user_ids == ["u1", "u2"]
    # u1: d@1, a@3, then the tie at t=5 in row order: c before b
    assert seqs.items[0].tolist() == [3, 0, 2, 1]
    assert seqs.timestamps[0].tolist() == [1, 3, 5, 5]
    assert seqs.items[1].tolist() == [0]


def test_unknown_item_is_named():
    with pytest.raises(ValueError, match="'zz'"):
        build_user_sequences(interactions([("u1", "zz", 1)]), CATALOG)


def test_grouping_in_small_batches_gives_the_same_sequences_as_in_one(ml100k_slice):
    from lsrec_hf.data import load_data

    data = load_data(ml100k_slice)
    whole = build_user_sequences(data.interactions, data.catalog)
    batched = build_user_sequences(data.interactions, data.catalog, batch_rows=997)  # users cross batch borders
    assert batched.user_ids == whole.user_ids and len(whole) == 120
    assert all(np.array_equal(a, b) and a.dtype == b.dtype == np.int64 for a, b in zip(whole.items, batched.items))
    assert all(np.array_equal(a, b) for a, b in zip(whole.timestamps, batched.timestamps))
    # a selected subset (an indices mapping over the Arrow table) is read through the mapping
    subset = data.interactions.select(range(5000, 9000))
    frame = subset.to_pandas()
    sequences = build_user_sequences(subset, data.catalog, batch_rows=333)
    assert sequences.num_events == 4000 and sequences.user_ids == list(dict.fromkeys(frame["user_id"]))


def test_an_unknown_item_in_a_later_batch_is_named_with_its_row():
    rows = [("u1", "a", t) for t in range(10)] + [("u2", "zz", 3), ("u2", "yy", 4)]
    with pytest.raises(ValueError, match=r"'zz' \(row 10\).* 2 rows have unknown items"):
        build_user_sequences(interactions(rows), CATALOG, batch_rows=4)


def test_leave_one_out_holds_out_last_two_events():
    data = interactions([("u1", x, t) for t, x in enumerate("abcde")] + [("u2", "a", 1), ("u2", "b", 2)])
    splits = leave_one_out(build_user_sequences(data, CATALOG))
    assert [s.tolist() for s in splits.train] == [[0, 1, 2], [0, 1]]  # u2 (2 events) trains only
    assert splits.valid.user_ids == ["u1"] and splits.valid.targets.tolist() == [3]
    assert splits.valid.histories[0].tolist() == [0, 1, 2]
    assert splits.test.targets.tolist() == [4]
    assert splits.test.histories[0].tolist() == [0, 1, 2, 3]
    # the times travel with the events: each training event's, and each target's (the request's "now")
    assert [t.tolist() for t in splits.train_times] == [[0, 1, 2], [1, 2]]
    assert splits.valid.target_times.tolist() == [3] and splits.test.target_times.tolist() == [4]


def test_leave_one_out_without_validation_trains_on_the_second_to_last_event():
    data = interactions([("u1", x, t) for t, x in enumerate("abcde")] + [("u2", "a", 1), ("u2", "b", 2), ("u3", "c", 1)])
    sequences = build_user_sequences(data, CATALOG)
    held_out, trained_on = leave_one_out(sequences), leave_one_out(sequences, validation=False)
    assert [s.tolist() for s in trained_on.train] == [[0, 1, 2, 3], [0], [2]]  # u3 (1 event) trains only
    assert len(trained_on.valid) == 0 and trained_on.protocol == NO_VALIDATION_PROTOCOL != held_out.protocol
    # the test is the same either way: every user with a target after some history
    assert trained_on.test.user_ids == ["u1", "u2"] and held_out.test.user_ids == ["u1"]
    assert trained_on.test.targets.tolist() == [4, 1] and trained_on.test.histories[0].tolist() == [0, 1, 2, 3]
    assert [t.tolist() for t in trained_on.train_times] == [[0, 1, 2, 3], [1], [1]]


def test_temporal_split_never_trains_on_the_future():
    data = interactions([("u1", "a", 1), ("u1", "b", 2), ("u1", "c", 3), ("u1", "d", 4), ("u2", "e", 4), ("u2", "a", 5)])
    splits = temporal_split(build_user_sequences(data, CATALOG), valid_time=3, test_time=4)
    assert [s.tolist() for s in splits.train] == [[0, 1]]
    assert splits.valid.targets.tolist() == [2]
    assert splits.test.user_ids == ["u1"] and splits.test.targets.tolist() == [3]
    assert splits.test.histories[0].tolist() == [0, 1, 2]
    assert [t.tolist() for t in splits.train_times] == [[1, 2]] and splits.test.target_times.tolist() == [4]


def test_item_counts_cover_the_whole_catalog():
    assert item_counts([np.array([0, 0, 3])], 5).tolist() == [2, 0, 0, 1, 0]


def test_a_temporal_split_without_validation_trains_up_to_the_test_period():
    data = interactions([("u1", "a", 1), ("u1", "b", 2), ("u1", "c", 3), ("u1", "d", 4), ("u2", "e", 3), ("u2", "a", 5)])
    splits = temporal_split(build_user_sequences(data, CATALOG), valid_time=4, test_time=4)
    assert [s.tolist() for s in splits.train] == [[0, 1, 2], [4]] and len(splits.valid) == 0
    assert splits.test.targets.tolist() == [3, 0] and splits.protocol == "temporal (no validation hold-out)"
