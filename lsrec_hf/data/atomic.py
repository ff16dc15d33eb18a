"""RecBole atomic files: ``<name>.inter``, ``<name>.item`` and ``<name>.user`` in one directory.

They are tab-separated with a header of ``name:type`` fields, e.g.::

    user_id:token   item_id:token   rating:float    timestamp:float
    item_id:token   movie_title:token_seq   release_year:token  class:token_seq

``token_seq`` values are space-separated tokens. See https://recbole.io/docs/user_guide/data/atomic_files.html
"""

import os

from .item_text import DEFAULT_TEXT_TEMPLATE
from .errors import DataError, shown
from .reader import read_delimited, separator_hint
from .recdataset import GENRES, TITLE, YEAR, build_rec_dataset

# Item columns that mean the same thing in different RecBole datasets, most specific first.
TITLE_COLUMNS = ("title", "movie_title", "name", "item_name", "book_title", "product_name")
YEAR_COLUMNS = ("year", "release_year")
GENRE_COLUMNS = ("genres", "genre", "class", "categories", "category")


def read_atomic_file(path, encoding="utf-8"):
    """Read one atomic file; columns lose their ``:type`` suffix. Returns ``(table, {column: type})``."""
    table = read_delimited(path, "\t", encoding=encoding)
    if len(table.frame.columns) == 1:
        field = table.frame.columns[0]
        hint = separator_hint(field, "\t")
        if hint:
            raise DataError(f"{path}, line 1: the header has a single field {shown(field)}{hint}; atomic files are tab-separated")
    names, types = [], {}
    for column in table.frame.columns:
        name, _, kind = column.partition(":")
        if name in types:
            raise DataError(f"{path}, line 1: field {shown(name)} appears twice in the header")
        names.append(name)
        types[name] = kind or "token"
    table.original = dict(zip(names, table.frame.columns))
    table.frame.columns = names
    return table, types


def _item_table(path, encoding):
    table, types = read_atomic_file(path, encoding)
    renames = {}
    for ours, candidates in ((TITLE, TITLE_COLUMNS), (YEAR, YEAR_COLUMNS), (GENRES, GENRE_COLUMNS)):
        found = next((c for c in candidates if c in types), None)
        if found is not None:
            renames[ours] = found
    if GENRES in renames:
        column = renames[GENRES]
        genres = table.frame[column]
        table.frame[column] = genres.str.split() if types[column].endswith("_seq") else genres.map(lambda g: [g] if g else [])
    return table.rename(renames, argument="the .item header")


def load_atomic(directory, name=None, text_template=DEFAULT_TEXT_TEMPLATE, encoding="utf-8", duplicates="drop"):
    """Load a RecBole atomic dataset.

    Args:
        directory: folder holding ``<name>.inter`` and optionally ``<name>.item`` / ``<name>.user``.
        name: dataset name; found from the single ``*.inter`` file of the folder when not given.
        text_template: builds each item's text from its fields (``title``, ``year``, ``genres``
            and any other ``.item`` column by its name without ``:type``).
        encoding: text encoding of the files.
        duplicates: "drop" (default) or "keep" rows that repeat an earlier (user, item, timestamp),
            see :class:`~lsrec_hf.data.RecDataset`.

    ``movie_title``/``name``/... become ``title``, ``release_year`` becomes ``year`` and
    ``class``/``genre``/``categories`` become the ``genres`` list; other ``.item`` columns are
    kept as catalog attributes.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise DataError(f"directory {directory} does not exist")
    if name is None:
        found = sorted(f[: -len(".inter")] for f in os.listdir(directory) if f.endswith(".inter"))
        if not found:
            raise DataError(f"{directory}: no RecBole atomic file (*.inter) in this folder")
        if len(found) > 1:
            raise DataError(f"{directory} holds several datasets {found}; pass name= to pick one")
        name = found[0]
    interactions, _ = read_atomic_file(os.path.join(directory, f"{name}.inter"), encoding)
    item_path, user_path = (os.path.join(directory, f"{name}.{ext}") for ext in ("item", "user"))
    items = _item_table(item_path, encoding) if os.path.exists(item_path) else None
    users = read_atomic_file(user_path, encoding)[0] if os.path.exists(user_path) else None
    return build_rec_dataset(interactions, items, users, name, text_template, duplicates=duplicates)
