import pytest
import torch

from lsrec_hf import LSRecConfig, LSRecForSequentialRecommendation
from lsrec_hf.inference.user_state import UserState, encode_user, fold_in, score_state

NUM_ITEMS = 30


def make_model(**overrides):
    torch.manual_seed(0)
    # Large initial weights: with the default tiny ones, attention is near uniform and differently chunked
    # readings of a history would pass for equal.
    settings = dict(num_items=NUM_ITEMS, use_content=False, content_dim=0, hidden_size=16, num_attention_heads=2,
                    intermediate_size=32, segment_length=4, memory_length=6, hidden_dropout_prob=0.0,
                    attention_probs_dropout_prob=0.0, initializer_range=0.3)
    return LSRecForSequentialRecommendation(LSRecConfig(**{**settings, **overrides})).eval()


def history(length, seed=0):
    return torch.randint(2, NUM_ITEMS + 2, (length,), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("objective", ["causal", "cloze"])
def test_fresh_state_scores_like_the_whole_history(objective):
    model = make_model(objective=objective)
    for length in [3, 4, 9, 16]:
        tokens = history(length)
        scores, gate = score_state(model, encode_user(model, tokens)).to_tuple()
        expected_scores, expected_gate = model.score_next(tokens[None]).to_tuple()
        torch.testing.assert_close(scores, expected_scores)
        torch.testing.assert_close(gate, expected_gate)


@pytest.mark.parametrize("objective", ["causal", "cloze"])
def test_fold_in_equals_fresh_encode_when_chunks_align(objective):
    model = make_model(objective=objective)
    # a chunk-aligned prefix, and one whose first chunk is partial; new events by whole chunks of segment_length
    for prefix, new in [(8, 4), (8, 8), (7, 4), (7, 8)]:
        tokens = history(prefix + new)
        state = fold_in(model, encode_user(model, tokens[:prefix]), tokens[prefix:])
        assert state.memory is not None
        torch.testing.assert_close(score_state(model, state)[0], model.score_next(tokens[None])[0])


def test_folding_in_one_event_at_a_time_is_exact_at_every_whole_chunk():
    model = make_model()
    tokens = history(17)
    state = encode_user(model, tokens[:9])
    for length in range(10, 18):
        state = fold_in(model, state, tokens[length - 1 : length])
        if (length - 9) % 4 == 0:
            torch.testing.assert_close(score_state(model, state)[0], model.score_next(tokens[None, :length])[0])


def test_fold_in_before_the_memory_starts_is_exact_for_any_count():
    model = make_model()
    tokens = history(9)
    state = fold_in(model, encode_user(model, tokens[:2]), tokens[2:])
    torch.testing.assert_close(score_state(model, state)[0], model.score_next(tokens[None])[0])


def test_unaligned_fold_in_is_a_close_but_different_reading():
    # Documented in user_state: 3 new events after the memory has started move the chunk boundaries.
    model = make_model()
    tokens = history(15)
    state = fold_in(model, encode_user(model, tokens[:12]), tokens[12:])
    streamed, fresh = score_state(model, state)[0][0], model.score_next(tokens[None])[0][0]
    assert not torch.allclose(streamed, fresh, atol=1e-3)
    assert torch.corrcoef(torch.stack([streamed, fresh]))[0, 1] > 0.99


def test_state_is_bounded_whatever_the_history_length():
    model = make_model()
    state = encode_user(model, history(40))
    assert state.tokens.tolist() == history(40)[-4:].tolist()
    for _ in range(3):
        state = fold_in(model, state, history(3, seed=1))
    assert len(state.tokens) < 4 + 4  # the short segment and less than a whole chunk
    assert all(h.shape[1] == 6 for h in state.memory.hidden)
    assert state.memory.long_count.item() + len(state.tokens) == 49


def test_short_memory_model_keeps_tokens_only():
    model = make_model(memory="short")
    tokens = history(10)
    state = fold_in(model, encode_user(model, tokens[:3]), tokens[3:])
    assert state.memory is None and len(state.tokens) == 4
    torch.testing.assert_close(score_state(model, state)[0], model.score_next(tokens[None])[0])


def test_empty_state_cannot_be_scored():
    model = make_model()
    with pytest.raises(ValueError, match="no events"):
        score_state(model, encode_user(model, []))


def test_safetensors_round_trip(tmp_path):
    model = make_model()
    state = encode_user(model, history(13))
    path = tmp_path / "user.safetensors"
    state.save(path)
    assert path.read_bytes()[8:].lstrip().startswith(b"{")  # a safetensors header, not a pickle
    loaded = UserState.load(path)
    assert torch.equal(loaded.tokens, state.tokens)
    for a, b in zip(loaded.memory, state.memory):
        for x, y in zip(a if isinstance(a, tuple) else [a], b if isinstance(b, tuple) else [b]):
            assert torch.equal(x, y)
    torch.testing.assert_close(score_state(model, loaded)[0], score_state(model, state)[0])
    new = history(4, seed=1)
    torch.testing.assert_close(score_state(model, fold_in(model, loaded, new))[0],
                               score_state(model, fold_in(model, state, new))[0])


def test_round_trip_of_a_state_without_memory(tmp_path):
    model = make_model()
    state = encode_user(model, history(2))
    state.save(tmp_path / "user.safetensors")
    loaded = UserState.load(tmp_path / "user.safetensors")
    assert loaded.memory is None and torch.equal(loaded.tokens, state.tokens)
