import random
from unittest import mock

import pytest
import torch

import lsrec_hf.inference.explain as explain
from lsrec_hf import ItemCatalog, LSRecConfig, LSRecForSequentialRecommendation
from lsrec_hf.evaluation import mask_history

NUM_ITEMS, GROUP_SIZE = 40, 5


def sessions(num_users, length, seed, stay=0.8):
    """Item tokens in sessions: each next item is from the group (5 items) of the previous one with prob `stay`."""
    rng = random.Random(seed)
    users = []
    for _ in range(num_users):
        group, tokens = rng.randrange(NUM_ITEMS // GROUP_SIZE), []
        for _ in range(length):
            if rng.random() > stay:
                group = rng.randrange(NUM_ITEMS // GROUP_SIZE)
            tokens.append(group * GROUP_SIZE + rng.randrange(GROUP_SIZE) + 2)
        users.append(tokens)
    return users


@pytest.fixture(scope="module")
def model():
    """A tiny causal model trained (200 steps, ~2 s) to continue sessions within their group."""
    torch.manual_seed(0)
    config = LSRecConfig(num_items=NUM_ITEMS, use_content=False, content_dim=0, hidden_size=32, num_attention_heads=2,
                         intermediate_size=64, segment_length=8, memory_length=16, hidden_dropout_prob=0.0,
                         attention_probs_dropout_prob=0.0)
    model = LSRecForSequentialRecommendation(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    data = torch.tensor(sessions(2000, 9, seed=1))
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        batch = data[torch.randint(0, len(data), (64,), generator=generator)]
        loss = model(batch[:, :-1], labels=batch[:, 1:] - 2).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.catalog = ItemCatalog([f"i{i}" for i in range(NUM_ITEMS)],
                                [f"Item {i} (group {i // GROUP_SIZE})" for i in range(NUM_ITEMS)],
                                [f"text {i}" for i in range(NUM_ITEMS)])
    return model.eval()


def random_drops(model, history, item_indices, memory=None, last_n=explain.DEFAULT_LAST_N):
    positions = list(range(max(len(history) - last_n, 0), len(history)))
    return positions, torch.rand(len(positions), len(item_indices)), torch.tensor(0.5)


def test_deleting_explained_drivers_lowers_the_score_more_than_deleting_random_events(model):
    histories = sessions(100, 24, seed=2)  # 3 chunks of 8: the memory is read too
    assert explain.deletion_test(model, histories) >= 0.9
    # Control: with drivers chosen at random, the same test is a coin flip, so the figure above is not a given.
    with mock.patch.object(explain, "leave_one_out", random_drops):
        assert 0.3 <= explain.deletion_test(model, histories) <= 0.7


def test_the_latest_event_drives_the_recommendation_when_it_alone_sets_the_group(model):
    # Every event in a new group: only the latest one says which group comes next (chance: 1 position in 20).
    latest = 0
    for history in sessions(50, 24, seed=3, stay=0.0):
        input_ids = torch.tensor([history])
        item = mask_history(model.score_next(input_ids)[0], input_ids)[0].argmax().item()
        (explanation,) = explain.explain_recommendations(model, history, [item])
        latest += explanation["drivers"][0]["events_ago"] == 0
    assert latest >= 40


def test_leave_one_out_equals_scoring_each_shortened_history(model):
    history = sessions(1, 12, seed=4)[0]
    items = [3, 17]
    positions, drops, gate = explain.leave_one_out(model, history, items, last_n=5)
    assert positions == [7, 8, 9, 10, 11]
    full, full_gate = model.score_next(torch.tensor([history])).to_tuple()
    torch.testing.assert_close(gate, full_gate[0])
    for row, position in enumerate(positions):
        shortened = model.score_next(torch.tensor([history[:position] + history[position + 1:]]))[0]
        torch.testing.assert_close(drops[row], full[0, items] - shortened[0, items])


def test_explanation_format_and_reason(model):
    history = sessions(1, 24, seed=5)[0]
    explanations = explain.explain_recommendations(model, history, [0, 1, 2])
    assert len(explanations) == 3
    for explanation in explanations:
        assert 0.0 <= explanation["long_term_share"] <= 1.0
        drivers = explanation["drivers"]
        assert 1 <= len(drivers) <= 3
        assert len({d["item_id"] for d in drivers}) == len(drivers)
        drops = [d["score_drop"] for d in drivers]
        assert drops == sorted(drops, reverse=True) and drops[-1] > 0
        for driver in drivers:
            assert history[len(history) - 1 - driver["events_ago"]] - 2 == model.catalog.index(driver["item_id"])
        assert explanation["reason"].startswith("Because you ")
        assert all(d["title"] in explanation["reason"] for d in drivers)


def test_reason_says_recently_for_the_short_segment_and_earlier_before_it():
    assert explain.reason(["A"], []) == "Because you recently watched A"
    assert explain.reason(["A", "B"], []) == "Because you recently watched A and B"
    assert explain.reason([], ["C"]) == "Because you watched C earlier"
    assert explain.reason(["A", "B"], ["C"]) == "Because you recently watched A and B, and watched C earlier"
    assert explain.reason([], []) is None


def test_one_event_history_claims_no_driver(model):
    (explanation,) = explain.explain_recommendations(model, [5], [3])
    assert explanation["drivers"] == [] and explanation["reason"] is None
