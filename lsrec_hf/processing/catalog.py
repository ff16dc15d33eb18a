"""The item catalog: external item ids, titles, texts and attributes, in model index order.

The catalog travels with every checkpoint (``catalog.json``) so a model pulled from the Hub can
turn its scores back into items by itself.
"""

import json
import os
from dataclasses import dataclass, field

from transformers.utils import ADAPTER_CONFIG_NAME, cached_file

from .tokens import is_item_token, to_indices, to_tokens

CATALOG_NAME = "catalog.json"

DEFAULT_TEXT_TEMPLATE = "{title} ({year}). Genres: {genres}."
# An id, a title, a text and attributes: 64 KiB per item is pages of text. A catalog.json far larger than that for
# the model's item count is not its catalog, and is refused before it is parsed (a 2 GB file takes minutes and GBs).
MAX_BYTES_PER_ITEM = 64 * 1024


@dataclass
class ItemCatalog:
    """Items in model index order (index ``i`` of every tensor is ``item_ids[i]``).

    Args:
        item_ids: external item ids as strings, unique.
        titles: a human-readable title per item ("" when unknown).
        texts: the text fed to the sentence encoder, one per item.
        attributes: optional extra per-item columns (e.g. ``{"genres": [...], "year": [...]}``).
    """

    item_ids: list
    titles: list
    texts: list
    attributes: dict = field(default_factory=dict)

    def __post_init__(self):
        self.item_ids = [str(i) for i in self.item_ids]
        n = len(self.item_ids)
        for name, values in [("titles", self.titles), ("texts", self.texts), *self.attributes.items()]:
            if len(values) != n:
                raise ValueError(f"ItemCatalog: '{name}' has {len(values)} entries, expected {n} (one per item id)")
        self._index = {}
        for position, item_id in enumerate(self.item_ids):
            if item_id in self._index:
                raise ValueError(f"ItemCatalog: item id '{item_id}' appears twice (positions {self._index[item_id]} and {position})")
            self._index[item_id] = position

    def __len__(self):
        return len(self.item_ids)

    def __contains__(self, item_id):
        return str(item_id) in self._index

    def index(self, item_id):
        """Model index of an external item id; ``KeyError`` naming the id if unknown."""
        try:
            return self._index[str(item_id)]
        except KeyError:
            raise KeyError(f"item id '{item_id}' is not in the catalog ({len(self)} items)") from None

    def indices(self, item_ids):
        """Model indices of external item ids, in order."""
        return [self.index(i) for i in item_ids]

    def encode(self, item_ids):
        """The model's input tokens for external item ids (a history, oldest first); `KeyError` naming an unknown id."""
        return to_tokens(self.indices(item_ids))

    def decode(self, tokens):
        """External item ids of item tokens (padding and [MASK] are skipped): the inverse of `encode`."""
        return [self.item_ids[to_indices(int(token))] for token in tokens if is_item_token(int(token))]

    def extended_with(self, other):
        """This catalog followed by the items of `other` it lacks (existing indices never move)."""
        new = [i for i, item_id in enumerate(other.item_ids) if item_id not in self]
        keys = list(dict.fromkeys([*self.attributes, *other.attributes]))
        attributes = {
            key: list(self.attributes.get(key, [""] * len(self)))
            + [other.attributes[key][i] if key in other.attributes else "" for i in new]
            for key in keys
        }
        return ItemCatalog(self.item_ids + [other.item_ids[i] for i in new],
                           self.titles + [other.titles[i] for i in new],
                           self.texts + [other.texts[i] for i in new], attributes)

    def to_dict(self):
        return {"item_ids": self.item_ids, "titles": self.titles, "texts": self.texts, "attributes": self.attributes}

    @classmethod
    def from_dict(cls, data):
        return cls(data["item_ids"], data["titles"], data["texts"], data.get("attributes", {}))

    def save(self, directory):
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, CATALOG_NAME)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, ensure_ascii=False)
        os.replace(tmp, path)  # never leave a half-written catalog behind
        return path

    def save_pretrained(self, directory):
        """Write `catalog.json` into `directory`, as a tokenizer's `save_pretrained` does (the model's saves call it)."""
        return self.save(directory)

    @classmethod
    def from_pretrained(cls, name_or_path, num_items=None, **hub_kwargs):
        """The catalog of a saved model: `catalog.json` of a local folder or a Hub repo (`hub_kwargs`: revision,
        token, cache_dir, local_files_only, subfolder), or, for a PEFT adapter, that of the base model it names.
        `None` when there is none. With `num_items`, sizes are checked as in `load`."""
        path = cached_file(name_or_path, CATALOG_NAME, _raise_exceptions_for_missing_entries=False, **hub_kwargs)
        if path is None:  # an adapter: the catalog lives with the base model it names
            adapter = cached_file(name_or_path, ADAPTER_CONFIG_NAME, _raise_exceptions_for_missing_entries=False,
                                  **hub_kwargs)
            if adapter is not None:
                try:
                    with open(adapter, encoding="utf-8") as f:
                        base = json.load(f).get("base_model_name_or_path")
                except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as error:
                    raise ValueError(f"{adapter}: not a valid adapter config ({error})") from None
                if base:
                    path = cached_file(base, CATALOG_NAME, _raise_exceptions_for_missing_entries=False)
        return None if path is None else cls.load(path, num_items=num_items)

    @classmethod
    def load(cls, path, num_items=None):
        """Load from a ``catalog.json`` file or a directory that holds one.

        With ``num_items`` (the model's `config.num_items`), a file too large for that many items is refused before
        it is read, and a catalog of another size once read. Every error is a ``ValueError`` naming the file.
        """
        if os.path.isdir(path):
            path = os.path.join(path, CATALOG_NAME)
        size = os.path.getsize(path)
        if num_items is not None and size > (num_items + 1) * MAX_BYTES_PER_ITEM:
            raise ValueError(f"{path}: {size / 2**20:.1f} MiB is too large for the catalog of a model of {num_items} "
                             f"items (config.num_items; at most {MAX_BYTES_PER_ITEM // 1024} KiB an item): not this "
                             f"model's catalog")
        with open(path, encoding="utf-8") as f:
            try:
                data = json.load(f)
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
                raise ValueError(f"{path}: not a valid catalog file ({e})") from None
        try:
            catalog = cls.from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError) as e:  # a key missing, a list of the wrong length...
            raise ValueError(f"{path}: not a valid catalog file ({type(e).__name__}: {e})") from None
        if num_items is not None and len(catalog) != num_items:
            raise ValueError(f"{path}: the catalog has {len(catalog)} items but the model scores {num_items}")
        return catalog
