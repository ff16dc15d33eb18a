"""What every loader returns: the interactions as a ``datasets.Dataset`` and the item catalog.

Loaders only read and rename; :func:`build_rec_dataset` does the checks and conversions that
all formats share, so every source ends up with the same columns and the same error messages.
"""

import logging
import math
import warnings
from dataclasses import dataclass, field
from decimal import Decimal

import datasets
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pa_compute

from ..processing.catalog import ItemCatalog
from .errors import DataError, shown, shown_columns
from .item_text import DEFAULT_TEXT_TEMPLATE, STANDARD_FIELDS, render_item_text, template_fields

logger = logging.getLogger(__name__)

USER, ITEM, TIME, RATING = "user_id", "item_id", "timestamp", "rating"
TITLE, YEAR, GENRES, TEXT = "title", "year", "genres", "text"


@dataclass
class RecDataset:
    """A recommendation dataset.

    Attributes:
        interactions: one row per event, in the order of the source, with columns ``user_id`` and
            ``item_id`` (strings), ``timestamp`` (float64, usually Unix seconds), ``rating``
            (float32, only when the source has ratings) and any other source column as strings.
        catalog: every item: first those of the item file in its order, then items that only
            appear in the interactions, in order of first appearance. So every ``item_id`` of
            ``interactions`` is in the catalog.
        users: one row per user of the user file (``user_id`` plus its columns, as strings), or None.
        name: a short name, e.g. "ml-100k".
        report: what loading did to the source, as counts, so that nothing is lost unnoticed:
            ``rows_read`` (records of the interactions source), ``blank_lines`` (skipped, not
            records), ``duplicates_dropped``, ``interactions`` (rows kept: ``rows_read`` minus
            ``duplicates_dropped``), ``items_without_text`` and ``items_only_in_interactions``
            (items given the text ``"item <id>"``), ``ids_normalized`` (user and item ids of the interactions
            read other than written, see below).

    Ids are text, read as written except for spaces around them, which are stripped (``' 7'`` and ``'7 '`` are
    the id ``'7'``); a number in a typed source (JSON, Parquet) that is a whole float is its integer text
    (``7.0`` is ``'7'``), while the text ``'7.0'`` in a CSV file stays ``'7.0'``. Where ids must be whole numbers
    (GroupLens files) an id is its number: ``'007'`` is ``'7'``. Every id so changed is counted and logged.
    Timestamps are float64 numbers; a whole-number timestamp beyond 2**53 (nanoseconds) would merge distinct
    times, so it is an error naming its row rather than silently rounded.

    Exact duplicate events, rows that repeat an earlier row's (user_id, item_id, timestamp), are
    dropped by default (the first is kept; counted, logged): usually one event logged twice.
    Loaders take ``duplicates="keep"`` to keep them, e.g. for purchase logs with coarse timestamps.
    Users with a single event are kept (see :func:`lsrec_hf.processing.sequences.leave_one_out`).
    Rows are not sorted; sort by (user_id, timestamp) with a stable sort so that events with equal
    timestamps keep the order of the source.
    """

    interactions: datasets.Dataset
    catalog: ItemCatalog
    users: datasets.Dataset | None
    name: str
    report: dict = field(default_factory=dict)

    def __repr__(self):
        users = "None" if self.users is None else f"{self.users.num_rows} rows"
        return (
            f"RecDataset(name={self.name!r}, interactions={self.interactions.num_rows} rows "
            f"{self.interactions.column_names}, items={len(self.catalog)}, users={users})"
        )


def _one_str(value):
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value.is_integer():
            return str(int(value))  # ids that pandas or JSON turned into floats: 7.0 -> "7"
    if isinstance(value, (list, tuple, np.ndarray)):
        return ", ".join(_one_str(v) for v in value)
    if value is pd.NA or value is pd.NaT:
        return ""
    return str(value)


def to_strings(series):
    """A column as Python strings, "" where missing."""
    if pd.api.types.is_string_dtype(series.dtype) and series.dtype != object:
        return series.fillna("")
    if pd.api.types.is_integer_dtype(series.dtype) and not series.isna().any():
        return series.astype(str)
    return series.map(_one_str).astype(str)


_SCALAR_TYPES = (str, int, float, np.integer, np.floating, Decimal)
_SCALAR_KINDS = ("string", "empty", "integer", "floating", "mixed-integer-float", "decimal")


def _not_scalar(series):
    """Mask of the values that are neither text nor a number nor missing (lists, dicts, booleans, bytes...),
    which ``str()`` would turn into an id or a number without a word; None when there is none."""
    if pd.api.types.is_bool_dtype(series.dtype):
        return np.ones(len(series), bool)
    if series.dtype != object or pd.api.types.infer_dtype(series, skipna=True) in _SCALAR_KINDS:
        return None  # the usual case, decided without looking at every value in Python

    def odd(value):
        if isinstance(value, (bool, np.bool_)):
            return True
        return not isinstance(value, _SCALAR_TYPES) and not (value is None or value is pd.NA or value is pd.NaT)

    return series.map(odd).to_numpy(bool)


def _check_scalars(table, column, what):
    bad = _not_scalar(table.frame[column])
    if bad is not None and bad.any():
        i = int(np.argmax(bad))
        value = table.frame[column].iloc[i]
        got = f"{type(value).__name__} {shown(value)}"
        raise DataError(f"{table.where(i)}: column {table.label(column)} must be {what}, got {got}")


def _ids(table, column, integer=False):
    _check_scalars(table, column, "an id (text or a number)")
    values = to_strings(table.frame[column]).str.strip()
    empty = (values == "").to_numpy()
    if empty.any():
        i = int(np.argmax(empty))
        raise DataError(f"{table.where(i)}: column {table.label(column)} is empty; every row needs an id")
    if integer:
        bad = ~values.str.fullmatch(r"\d+").to_numpy(dtype=bool)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"{table.where(i)}: column {table.label(column)} must be a whole number, got {shown(values.iloc[i])}")
        values = values.str.lstrip("0").replace("", "0")  # a whole-number id is its number: "007" is item 7
    return values


def _count_normalized(table, columns, values):
    """How many ids of `columns` were read other than written (spaces around them, leading zeros), logged."""
    count = sum(int((to_strings(table.frame[column]) != values[column]).sum()) for column in columns)
    if count:
        logger.warning("%s: %d ids were written with spaces around them or leading zeros; they are read without "
                       "(' 7', '7 ' and, for whole-number ids, '007' are the id '7')", table.source, count)
    return count


def _numbers(table, column, dtype):
    series = table.frame[column]
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        # Parquet/Dataset timestamps become Unix seconds like the text formats
        values = (series - pd.Timestamp(0, tz=getattr(series.dt, "tz", None))).dt.total_seconds().to_numpy(float, na_value=np.nan)
    elif pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        values = series.to_numpy(dtype=float, na_value=np.nan)
    else:
        _check_scalars(table, column, "a number")
        strings = to_strings(series).str.strip()
        try:  # pyarrow's cast is fast; pandas' coercion below only runs to find the bad value
            values = pa_compute.cast(pa.array(strings, type=pa.string()), pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            values = pd.to_numeric(strings, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(values)
    if column == TIME and not bad.any():
        bad = _inexact_times(series, values)
    if bad.any():
        i = int(np.argmax(bad))
        got = series.iloc[i]
        if np.isfinite(values[i]):
            raise DataError(f"{table.where(i)}: timestamp {shown(got)} is beyond 2**53, where float64 seconds merge "
                            f"distinct times; give timestamps in seconds or milliseconds")
        what = "is empty" if _one_str(got).strip() == "" else f"must be a number, got {shown(got)}"
        hint = " (Unix seconds)" if column == TIME else ""
        raise DataError(f"{table.where(i)}: column {table.label(column)} {what}; expected a number{hint}")
    return values.astype(dtype)


def _inexact_times(series, values):
    """Mask of whole-number timestamps beyond 2**53 (nanoseconds, say), which float64 cannot keep apart."""
    big = np.abs(values) > 2.0**53
    if not big.any():
        return big
    if pd.api.types.is_integer_dtype(series.dtype):
        return big
    if pd.api.types.is_datetime64_any_dtype(series.dtype) or pd.api.types.is_float_dtype(series.dtype):
        return np.zeros(len(values), bool)  # already a date or a float: no digits were lost in reading
    return big & to_strings(series).str.strip().str.fullmatch(r"[+-]?\d+").to_numpy(dtype=bool)


def _genre_list(value):
    if value is None or isinstance(value, float) and math.isnan(value):
        return []
    if isinstance(value, (list, tuple, np.ndarray)):
        return [s for s in (_one_str(v).strip() for v in value) if s]
    text = str(value).strip()
    return [text] if text else []


def _check_unique(table, ids, what):
    duplicated = ids.duplicated().to_numpy()
    if duplicated.any():
        i = int(np.argmax(duplicated))
        earlier = table.lines[int(np.argmax((ids == ids.iloc[i]).to_numpy()))]
        raise DataError(f"{table.where(i)}: {what} {shown(ids.iloc[i])} appears again (first at {table.unit} {earlier})")


def _check_column_name(table, column):
    if not isinstance(column, str) or not column.isprintable():  # `datasets` would mangle or drop such a name
        raise DataError(f"{table.source}: column name {shown(column)} has unprintable characters; "
                        f"columns: {shown_columns(list(table.frame.columns))}")


def _require(table, column):
    if column not in table.frame.columns:
        raise DataError(f"{table.source} has no {column} column; columns: {shown_columns(table.frame.columns)}")


def _build_catalog(items, interaction_items, text_template, name, integer_ids):
    """The catalog, and the number of items without text and of items only in the interactions."""
    item_ids, titles, texts, attributes = [], [], [], {}
    empty_texts = 0
    if items is not None:
        _require(items, ITEM)
        ids = _ids(items, ITEM, integer_ids)
        _check_unique(items, ids, "item id")
        columns = [c for c in items.frame.columns if c != ITEM]
        unknown = [f for f in template_fields(text_template) if f not in STANDARD_FIELDS and f not in columns]
        if unknown:
            raise DataError(
                f"text template {text_template!r} uses {{{unknown[0]}}}, but {items.source} has no such column; "
                f"columns: {shown_columns(columns)}"
            )
        attribute_columns = [c for c in columns if c not in (TITLE, TEXT)]
        if GENRES in columns:
            items.frame[GENRES] = items.frame[GENRES].map(_genre_list)
        for column in attribute_columns:
            values = items.frame[column]
            attributes[column] = list(values) if column == GENRES else list(to_strings(values))
        given_titles = list(to_strings(items.frame[TITLE]).str.strip()) if TITLE in columns else [""] * len(ids)
        given_texts = list(to_strings(items.frame[TEXT]).str.strip()) if TEXT in columns else [""] * len(ids)
        records = items.frame[columns].to_dict("records")
        for item_id, title, text, fields in zip(ids, given_titles, given_texts, records):
            fields[TITLE] = title
            text = text or render_item_text(text_template, fields)
            if not text:
                empty_texts += 1
                text = f"item {item_id}"
            item_ids.append(item_id)
            titles.append(title)
            texts.append(text)

    known = set(item_ids)
    unseen = [i for i in pd.unique(interaction_items) if i not in known]
    if unseen:
        where = f"not in {items.source}" if items is not None else "there is no item file"
        warnings.warn(
            f"{name}: {len(unseen)} of {len(known) + len(unseen)} items appear only in the interactions ({where}); "
            f"they get an empty title and the text 'item <id>'",
            stacklevel=3,
        )
        item_ids += unseen
        titles += [""] * len(unseen)
        texts += [f"item {i}" for i in unseen]
        for column, values in attributes.items():
            values += [[] if column == GENRES else ""] * len(unseen)
    if empty_texts:
        warnings.warn(
            f"{name}: {empty_texts} items of {items.source} have no title or other text; they get the text 'item <id>'", stacklevel=3
        )
    return ItemCatalog(item_ids, titles, texts, attributes), empty_texts, len(unseen)


def _drop_duplicates(frame, name, duplicates, timed):
    """``frame`` without the rows that repeat an earlier (user, item, timestamp), and their number."""
    if not timed:  # the row order is the time: no two rows share one
        return frame, 0
    repeated = frame.duplicated([USER, ITEM, TIME]).to_numpy()
    count = int(repeated.sum())
    if not count:
        return frame, 0
    if duplicates == "keep":
        logger.info("%s: %d rows repeat an earlier (user_id, item_id, timestamp); they are kept", name, count)
        return frame, 0
    logger.warning(
        "%s: dropped %d duplicate events (rows that repeat an earlier row's user_id, item_id and timestamp; "
        "pass duplicates='keep' to keep them)", name, count,
    )  # fmt: skip
    return frame[~repeated].reset_index(drop=True), count


def build_rec_dataset(interactions, items=None, users=None, name="", text_template=DEFAULT_TEXT_TEMPLATE, integer_ids=False,
                      duplicates="drop"):  # fmt: skip
    """Check and convert loader output into a :class:`RecDataset`.

    Args:
        interactions: a ``reader.Table`` with columns ``user_id`` and ``item_id``, optionally
            ``timestamp`` and ``rating``; other columns are kept as strings.
        items: a ``reader.Table`` with ``item_id`` and optionally ``title``, ``year``, ``genres``
            (lists of strings), ``text`` (used as is instead of the template) and any attributes.
        users: a ``reader.Table`` with ``user_id`` and any attributes.
        integer_ids: require whole-number ids (GroupLens files), to catch shifted columns early.
        duplicates: ``"drop"`` (the default) or ``"keep"`` the rows that repeat an earlier row's
            (user_id, item_id, timestamp); see :class:`RecDataset`.
    """
    if duplicates not in ("drop", "keep"):
        raise DataError(f"duplicates must be 'drop' or 'keep', got {shown(duplicates)}")
    if len(interactions) == 0:
        raise DataError(f"{interactions.source} has no interactions")
    for column in (USER, ITEM):
        _require(interactions, column)
    frame = pd.DataFrame({USER: _ids(interactions, USER, integer_ids), ITEM: _ids(interactions, ITEM, integer_ids)})
    normalized = _count_normalized(interactions, (USER, ITEM), frame)
    features = {USER: datasets.Value("string"), ITEM: datasets.Value("string")}
    if TIME in interactions.frame.columns:
        frame[TIME] = _numbers(interactions, TIME, np.float64)
    else:
        warnings.warn(f"{interactions.source} has no timestamp column; the order of the rows is used as time", stacklevel=2)
        frame[TIME] = np.arange(len(frame), dtype=np.float64)
    features[TIME] = datasets.Value("float64")
    if RATING in interactions.frame.columns:
        frame[RATING] = _numbers(interactions, RATING, np.float32)
        features[RATING] = datasets.Value("float32")
    for column in interactions.frame.columns:
        if column not in features:
            _check_column_name(interactions, column)
            frame[column] = to_strings(interactions.frame[column])
            features[column] = datasets.Value("string")

    frame, dropped = _drop_duplicates(frame, name, duplicates, TIME in interactions.frame.columns)
    catalog, without_text, only_in_interactions = _build_catalog(items, frame[ITEM], text_template, name, integer_ids)
    dataset = datasets.Dataset.from_pandas(frame, features=datasets.Features(features), preserve_index=False)

    user_dataset = None
    if users is not None:
        _require(users, USER)
        user_ids = _ids(users, USER, integer_ids)
        _check_unique(users, user_ids, "user id")
        user_frame = pd.DataFrame({USER: user_ids})
        for column in users.frame.columns:
            if column != USER:
                _check_column_name(users, column)
                user_frame[column] = to_strings(users.frame[column])
        user_features = datasets.Features({c: datasets.Value("string") for c in user_frame.columns})
        user_dataset = datasets.Dataset.from_pandas(user_frame, features=user_features, preserve_index=False)
    report = {
        "rows_read": len(interactions), "blank_lines": interactions.blank_lines, "duplicates_dropped": dropped,
        "interactions": len(frame), "items_without_text": without_text, "items_only_in_interactions": only_in_interactions,
        "ids_normalized": normalized,
    }  # fmt: skip
    return RecDataset(dataset, catalog, user_dataset, name, report)
