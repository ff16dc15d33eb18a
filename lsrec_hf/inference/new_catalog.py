"""Zero-shot: a trained model put onto a catalog it has never seen, through the text of the new items."""

import os

from ..data import load_data
from ..processing.catalog import ItemCatalog
from ..training.finetuning import adopt_catalog


def as_catalog(catalog):
    """An `ItemCatalog` from itself, a `catalog.json` (or the folder holding one), or a data set `load_data` reads."""
    if isinstance(catalog, ItemCatalog):
        return catalog
    if isinstance(catalog, (str, os.PathLike)):
        path = os.fspath(catalog)
        if path.endswith(".json") or os.path.isfile(os.path.join(path, "catalog.json")):
            return ItemCatalog.load(path)
        return load_data(path).catalog
    raise TypeError(f"catalog= must be an ItemCatalog or a path, got {type(catalog).__name__}")


def new_catalog(model, catalog):
    """Put `model` (an LSRec model, changed in place) onto `catalog` (see `as_catalog`); returns the model."""
    return adopt_catalog(model, as_catalog(catalog))


__all__ = ["as_catalog", "new_catalog"]
