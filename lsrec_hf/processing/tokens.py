"""Item tokens: the one place where a catalog index becomes a token id and back.

Token ids below `NUM_SPECIAL_TOKENS` are special (padding, [MASK]); item `i` of the catalog is token
`i + NUM_SPECIAL_TOKENS`. Everything else (collators, evaluation, pipeline, serving, explanations, the README)
converts through these functions, or through `ItemCatalog.encode` / `ItemCatalog.decode`.
"""

import torch

PAD_TOKEN_ID = 0
MASK_TOKEN_ID = 1
NUM_SPECIAL_TOKENS = 2


def to_tokens(indices):
    """Token ids of catalog indices: an int, a list of ints or a tensor (then a tensor)."""
    if isinstance(indices, torch.Tensor):
        return indices + NUM_SPECIAL_TOKENS
    if isinstance(indices, int):
        return indices + NUM_SPECIAL_TOKENS
    return [int(index) + NUM_SPECIAL_TOKENS for index in indices]


def to_indices(tokens):
    """Catalog indices of item tokens (special tokens must already be dropped): an int, a list or a tensor."""
    if isinstance(tokens, torch.Tensor):
        return tokens - NUM_SPECIAL_TOKENS
    if isinstance(tokens, int):
        return tokens - NUM_SPECIAL_TOKENS
    return [int(token) - NUM_SPECIAL_TOKENS for token in tokens]


def is_item_token(tokens):
    """True where a token id (int or tensor) is an item, not padding or [MASK]."""
    return tokens >= NUM_SPECIAL_TOKENS


def item_indices_or(tokens, fill):
    """`[...]` catalog index of each item token, `fill` at special tokens (a tensor op)."""
    return torch.where(is_item_token(tokens), to_indices(tokens), torch.as_tensor(fill, device=tokens.device))


def item_set(tokens):
    """The set of catalog indices of the item tokens in a sequence (special tokens ignored)."""
    return {to_indices(int(token)) for token in tokens if is_item_token(int(token))}
