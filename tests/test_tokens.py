import torch

from lsrec_hf.processing.tokens import (MASK_TOKEN_ID, NUM_SPECIAL_TOKENS, PAD_TOKEN_ID, is_item_token, item_indices_or,
                             item_set, to_indices, to_tokens)

def test_special_tokens_come_before_every_item():
    assert {PAD_TOKEN_ID, MASK_TOKEN_ID} == set(range(NUM_SPECIAL_TOKENS))
    assert to_tokens(0) == NUM_SPECIAL_TOKENS and to_indices(NUM_SPECIAL_TOKENS) == 0
    assert not is_item_token(PAD_TOKEN_ID) and not is_item_token(MASK_TOKEN_ID) and is_item_token(to_tokens(0))


def test_index_token_round_trip_for_ints_lists_and_tensors():
    indices = [3, 0, 2, 2]
    assert to_indices(to_tokens(indices)) == indices
    tensor = torch.tensor([[3, 0], [1, 2]])
    assert torch.equal(to_indices(to_tokens(tensor)), tensor)
    assert all(is_item_token(token) for token in to_tokens(indices))


def test_special_tokens_map_to_the_fill_value_or_are_skipped():
    tokens = torch.tensor([PAD_TOKEN_ID, MASK_TOKEN_ID, *to_tokens([1, 3])])
    assert item_indices_or(tokens, 99).tolist() == [99, 99, 1, 3]
    assert item_set(tokens.tolist()) == {1, 3}
