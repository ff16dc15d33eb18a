"""The item catalog: item ids <-> tokens, saved and loaded with a checkpoint like a tokenizer."""

import pytest

from lsrec_hf import ItemCatalog
from lsrec_hf.processing.tokens import MASK_TOKEN_ID, PAD_TOKEN_ID, to_tokens

CATALOG = ItemCatalog(["a", "b", "c", "d"], ["A", "B", "C", "D"], ["ta", "tb", "tc", "td"])


def test_catalog_encodes_item_ids_to_tokens_and_decodes_them_back():
    tokens = CATALOG.encode(["c", "a", "c"])
    assert tokens == to_tokens([2, 0, 2])
    assert CATALOG.decode(tokens) == ["c", "a", "c"]
    assert CATALOG.decode([PAD_TOKEN_ID, *tokens, MASK_TOKEN_ID]) == ["c", "a", "c"]  # special tokens skipped
    with pytest.raises(KeyError, match="'z' is not in the catalog"):
        CATALOG.encode(["a", "z"])


def test_catalog_saves_and_loads_like_a_tokenizer(tmp_path):
    CATALOG.save_pretrained(tmp_path / "model")
    loaded = ItemCatalog.from_pretrained(str(tmp_path / "model"), num_items=4)
    assert loaded.to_dict() == CATALOG.to_dict()
    assert ItemCatalog.from_pretrained(str(tmp_path)) is None  # a folder without a catalog
    with pytest.raises(ValueError, match="the catalog has 4 items but the model scores 5"):
        ItemCatalog.from_pretrained(str(tmp_path / "model"), num_items=5)
