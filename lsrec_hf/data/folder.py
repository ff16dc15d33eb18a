"""A folder of two tables: ``interactions.<ext>`` (``user_id, item_id, timestamp``) and ``items.<ext>``
(``item_id, title`` and any other text columns), the layout of the benchmark sets (ML-1M 5-core, Amazon, Steam).

Tab-separated files are read with quoting off: a quote character inside a title is literal text.
"""

import os

from .errors import DataError
from .tabular import load_tabular

EXTENSIONS = (".tsv", ".csv", ".jsonl", ".parquet")
# extra item columns that carry text, in the order they are put into the item's sentence
_TEXT_COLUMNS = ("brand", "categories", "description")


def folder_files(path):
    """``(interactions file, items file or None)`` of a folder in this layout, or ``(None, None)``."""
    def first(stem):
        for ext in EXTENSIONS:
            candidate = os.path.join(path, stem + ext)
            if os.path.isfile(candidate):
                return candidate
        return None

    return first("interactions"), first("items")


def _template_for(items_file):
    """The title, then every known text column the items file has (labelled, so empty ones drop out)."""
    if items_file is None or not items_file.endswith(".tsv"):
        return "{title}."
    with open(items_file, encoding="utf-8", errors="replace") as f:
        columns = f.readline().rstrip("\r\n").split("\t")
    parts = ["{title}."] + [f"{column.capitalize()}: {{{column}}}." for column in _TEXT_COLUMNS if column in columns]
    return " ".join(parts)


def load_folder(path, text_template=None, name=None, **kwargs):
    """Load ``path/interactions.*`` with the catalog of ``path/items.*``.

    Args:
        path: the folder.
        text_template: item text template; default the title followed by brand, categories and
            description where the items file has them (``"{title}. Brand: {brand}. ..."``).
        name: dataset name; default the folder's name.
        kwargs: passed to :func:`~lsrec_hf.data.load_tabular` (``column_map``, ``duplicates``, ...).
    """
    interactions, items = folder_files(path)
    if interactions is None:
        raise DataError(f"{path}: no interactions file ({', '.join('interactions' + e for e in EXTENSIONS)})")
    template = text_template or _template_for(items)
    name = name or os.path.basename(os.path.normpath(path))
    return load_tabular(interactions, items=items, text_template=template, name=name, **kwargs)
