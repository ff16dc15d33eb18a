"""Any table of interactions: CSV/TSV/JSON Lines/Parquet files or a ``datasets.Dataset``.

Columns are matched to the library's names through a mapping, e.g.::

    load_tabular("ratings.csv", column_map={"user_id": "uid", "item_id": "movie", "timestamp": "ts"},
                 items="movies.csv", item_column_map={"item_id": "movie", "title": "name"})

Names left out of a mapping are looked up as is (a ``rating`` column is found without mapping).
Columns not named in the mapping are kept: as string context columns of the interactions, and
as catalog attributes of the items.
"""

import os

import datasets
import numpy as np
import pandas as pd

from .item_text import DEFAULT_TEXT_TEMPLATE
from .errors import DataError, shown
from .reader import Table, check_file, read_any
from .recdataset import GENRES, ITEM, RATING, TEXT, TIME, TITLE, USER, YEAR, build_rec_dataset

INTERACTION_COLUMNS = (USER, ITEM, TIME, RATING)
ITEM_COLUMNS = (ITEM, TITLE, YEAR, GENRES, TEXT)
_REQUIRED = (USER, ITEM)


def _as_map(column_map, argument):
    """A copy of a column mapping given by the user, checked: {library name: column name}."""
    if column_map is not None and not isinstance(column_map, dict):
        raise DataError(f"{argument} must be a dict {{library name: column}}, got {type(column_map).__name__}")
    bad = [v for v in (column_map or {}).values() if not isinstance(v, str)]
    if bad:
        raise DataError(f"{argument} values must be column names (text), got {shown(bad[0])}")
    return dict(column_map or {})


def _mapped(table, column_map, known, required, argument, sep_argument):
    """``table`` with its columns renamed by ``column_map``; ``sep_argument``: the caller's argument
    for the separator, suggested when a file did not split into columns (None: there is none)."""
    column_map = _as_map(column_map, argument)
    unknown = [k for k in column_map if k not in known]
    if unknown:
        raise DataError(f"{argument} key {shown(unknown[0])} is not one of {list(known)}")
    for ours in known:
        if ours not in column_map and ours in table.frame.columns:
            column_map[ours] = ours
    table = table.rename(column_map, argument=argument, sep_argument=sep_argument)
    missing = [c for c in required if c not in table.frame.columns]
    if missing:
        example = f"{argument}={{{missing[0]!r}: 'your_column'}}"
        raise DataError(
            f"{table.source}: no {missing[0]!r} column; columns: {table.columns_hint(sep_argument)}. "
            f"Name it in {argument}, e.g. {example}"
        )
    return table


def _frame_table(frame, source):
    if len(frame) == 0:
        raise DataError(f"{source} is empty")
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]  # a DataFrame may have int column names
    twice = frame.columns[frame.columns.duplicated()]
    if len(twice):
        raise DataError(f"{source}: column {shown(twice[0])} appears twice")
    return Table(frame, source, np.arange(1, len(frame) + 1), unit="row")


def _hf_table(ds, what):
    if isinstance(ds, datasets.DatasetDict):
        raise DataError(f"{what} is a DatasetDict with splits {list(ds)}; pass one split, e.g. ds['train']")
    if not isinstance(ds, datasets.Dataset):
        raise DataError(f"{what} must be a datasets.Dataset, got {type(ds).__name__}")
    return _frame_table(ds.to_pandas(), f"{what} ({ds.info.dataset_name or 'Dataset'})")


def _items_table(items, item_column_map, text_column, genres_sep, sep, encoding, sep_argument):
    if items is None:
        return None
    if isinstance(items, (str, os.PathLike)):
        table = read_any(check_file(items, "items file"), sep=sep, encoding=encoding)
    elif isinstance(items, pd.DataFrame):
        table = _frame_table(items, "items DataFrame")
        sep_argument = None
    else:
        table = _hf_table(items, "items")
        sep_argument = None
    item_column_map = _as_map(item_column_map, "item_column_map")
    if text_column is not None:
        item_column_map[TEXT] = text_column
    table = _mapped(table, item_column_map, ITEM_COLUMNS, (ITEM,), "item_column_map", sep_argument)
    if GENRES in table.frame.columns:
        if not isinstance(genres_sep, str) or not genres_sep:
            raise DataError(f"genres_sep must be a non-empty string such as '|', got {shown(genres_sep)}")
        table.frame[GENRES] = [g.split(genres_sep) if isinstance(g, str) else g for g in table.frame[GENRES]]
    return table


def load_tabular(path, column_map=None, items=None, item_column_map=None, text_column=None, text_template=DEFAULT_TEXT_TEMPLATE,
                 genres_sep="|", sep=None, encoding="utf-8", name=None, duplicates="drop"):  # fmt: skip
    """Load interactions from a .csv/.tsv/.jsonl/.parquet file.

    Args:
        path: the interactions file; the extension picks the parser (``sep`` overrides it for text).
        column_map: {library name: file column} for ``user_id``, ``item_id``, ``timestamp``, ``rating``.
            Without a timestamp the row order is used as time (with a warning).
        items: optional items file (any of the same formats), ``datasets.Dataset`` or DataFrame.
        item_column_map: {library name: column} for ``item_id``, ``title``, ``year``, ``genres``, ``text``.
        text_column: an items column with ready-made item text, used instead of ``text_template``.
        genres_sep: separator of genre strings such as "Comedy|Drama".
        encoding: text encoding of both files.
        name: dataset name; defaults to the file name without extension.
        duplicates: "drop" (default) or "keep" rows that repeat an earlier (user, item, timestamp),
            see :class:`~lsrec_hf.data.RecDataset`.
    """
    path = check_file(path, "interactions file")
    table = _mapped(read_any(path, sep=sep, encoding=encoding), column_map, INTERACTION_COLUMNS, _REQUIRED, "column_map", "sep")
    item_table = _items_table(items, item_column_map, text_column, genres_sep, sep, encoding, "sep")
    name = name or os.path.splitext(os.path.basename(path))[0]
    return build_rec_dataset(table, item_table, None, name, text_template, duplicates=duplicates)


def from_hf_dataset(ds, column_map=None, items=None, item_column_map=None, text_column=None, text_template=DEFAULT_TEXT_TEMPLATE,
                    genres_sep="|", name=None, duplicates="drop"):  # fmt: skip
    """Build a :class:`RecDataset` from a ``datasets.Dataset`` of interactions (one split).

    The arguments are those of :func:`load_tabular`; ``items`` may be a ``datasets.Dataset``, a
    DataFrame or a file. Positions in messages are 1-based rows of the Dataset.
    """
    table = _mapped(_hf_table(ds, "interactions"), column_map, INTERACTION_COLUMNS, _REQUIRED, "column_map", None)
    item_table = _items_table(items, item_column_map, text_column, genres_sep, None, "utf-8", None)
    name = name or ds.info.dataset_name or "dataset"
    return build_rec_dataset(table, item_table, None, name, text_template, duplicates=duplicates)
