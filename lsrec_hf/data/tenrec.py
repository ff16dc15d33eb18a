"""Tenrec (Yuan et al., NeurIPS 2022 Datasets and Benchmarks): four Tencent feeds in one download.

Each feed is one scenario, one CSV with a header, and the files the user brings sit in one folder:

- ``QK-video.csv``, ``QB-video.csv``: ``user_id,item_id,click,follow,like,share,video_category,
  watching_times,gender,age``;
- ``QK-article.csv``, ``QB-article.csv``: ``user_id,item_id,click,gender,age,...,category_first,
  category_second,...`` (QK has more feedback columns than QB).

Tenrec is licensed CC BY-NC 4.0 and is handed out after accepting its terms
(https://static.qblv.qq.com/qblv/h5/algo-frontend/tenrec_dataset.html), so it is never downloaded here.

Rows are impressions: ``positive`` (``click`` by default; ``like``, ``share`` or ``follow`` too) marks
the events kept, the others are counted in ``report["rows_not_positive"]``. The files carry no
timestamps: a row's position in its file is its time, and the scenarios follow each other in the order
read (a user's events of the first file come before those of the second), since the feeds share no clock.
Each event gets a ``scenario`` column (the file's name, e.g. ``"QK-video"``) for
``--context_features scenario --scenario_feature scenario``; ``gender`` and ``age`` become the users
table. Item ids are kept apart per scenario (``"QK-video:123"``) unless ``shared_item_ids`` says that
the feeds of one content type number the same items alike (then ``"video:123"``). An item's text names
its content type and categories, the only item side information Tenrec has.
"""

import os

import numpy as np
import pandas as pd

from .item_text import DEFAULT_TEXT_TEMPLATE
from .errors import DataError, shown
from .reader import Table, read_delimited
from .recdataset import GENRES, ITEM, TIME, USER, build_rec_dataset

SCENARIOS = ("QK-video", "QB-video", "QK-article", "QB-article")
POSITIVE_COLUMNS = ("click", "like", "share", "follow")
CATEGORY_COLUMNS = {"video": ("video_category",), "article": ("category_first", "category_second")}
USER_COLUMNS = ("gender", "age")


def tenrec_files(directory):
    """The Tenrec scenario files present in `directory` (also under a ``Tenrec/`` subfolder), in scenario order."""
    directory = os.fspath(directory)
    for folder in (directory, os.path.join(directory, "Tenrec")):
        found = {s: os.path.join(folder, f"{s}.csv") for s in SCENARIOS if os.path.isfile(os.path.join(folder, f"{s}.csv"))}
        if found:
            return found
    return {}


def _positive_mask(table, column):
    if column not in table.frame.columns:
        raise DataError(f"{table.source}: no {column!r} column to mark positive events; columns: {table.columns_hint()}")
    values = pd.to_numeric(table.frame[column].str.strip(), errors="coerce")
    bad = values.isna().to_numpy() | ~np.isin(values.to_numpy(), (0, 1))
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{table.where(i)}: {column} must be 0 or 1, got {shown(table.frame[column].iloc[i])}")
    return values.to_numpy() == 1


def _read_scenario(path, scenario, positive, shared_item_ids, clock_start):
    table = read_delimited(path, ",")
    for column in (USER, ITEM):
        if column not in table.frame.columns:
            raise DataError(f"{path}: no {column!r} column; columns: {table.columns_hint()}")
    rows = len(table)
    kept = table.subset(_positive_mask(table, positive))
    kind = scenario.split("-", 1)[1]
    frame = kept.frame
    for column in (USER, ITEM):
        empty = (frame[column].str.strip() == "").to_numpy()
        if empty.any():
            raise DataError(f"{kept.where(int(np.argmax(empty)))}: empty {column}")
    items = (kind if shared_item_ids else scenario) + ":" + frame[ITEM].str.strip()
    interactions = pd.DataFrame({USER: frame[USER].str.strip(), ITEM: items,
                                 TIME: clock_start + np.arange(len(frame), dtype=np.float64), "scenario": scenario})
    categories = [c for c in CATEGORY_COLUMNS[kind] if c in frame.columns]
    genres = [[f"{kind} category {v.strip()}" for v in values if v.strip() not in ("", "\\N", "nan")]
              for values in zip(*(frame[c] for c in categories))] if categories else [[] for _ in range(len(frame))]
    item_frame = pd.DataFrame({ITEM: items, GENRES: genres})
    item_frame["text"] = [f"A {kind} from {scenario}. " + (f"Categories: {', '.join(g)}." if g else "No category.")
                          for g in genres]
    user_frame = pd.DataFrame({USER: interactions[USER], **{c: frame[c] for c in USER_COLUMNS if c in frame.columns}})
    return (Table(interactions, kept.source, kept.lines), item_frame, user_frame, rows, rows - len(frame),
            kept.blank_lines)


def load_tenrec(directory, scenarios=None, positive="click", shared_item_ids=False, text_template=None, duplicates="drop"):
    """Load the Tenrec scenario files of `directory` as one multi-scenario dataset.

    Args:
        scenarios: which of ``QK-video``, ``QB-video``, ``QK-article``, ``QB-article`` to read, in this
            order (default: every one present, in that order).
        positive: the 0/1 feedback column whose 1s are the events (``click``, ``like``, ``share``, ``follow``).
        shared_item_ids: the video feeds (and the article feeds) number the same items alike.
        text_template: builds item texts from ``{genres}`` instead of the default "A video from QK-video.
            Categories: video category 3."
        duplicates: "drop" (default) or "keep" repeated (user, item, time) rows, see :class:`RecDataset`.

    Every file is read whole into memory: the QB files (tens of MB) load in seconds, the QK ones are
    several GB.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise DataError(f"directory {directory} does not exist")
    if positive not in POSITIVE_COLUMNS:
        raise DataError(f"positive must be one of {POSITIVE_COLUMNS}, got {shown(positive)}")
    files = tenrec_files(directory)
    if not files:
        raise DataError(f"{directory}: no Tenrec file; expected some of {[f'{s}.csv' for s in SCENARIOS]}")
    if scenarios is None:
        scenarios = list(files)
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        raise DataError(f"scenarios {unknown} are not Tenrec's; choose among {list(SCENARIOS)}")
    missing = [s for s in scenarios if s not in files]
    if missing:
        raise DataError(f"{directory}: no {[f'{s}.csv' for s in missing]}; present: {list(files)}")

    parts, items, users, rows_in_files, not_positive, blank = [], [], [], 0, 0, 0
    clock = 0.0
    for scenario in scenarios:
        table, item_frame, user_frame, rows, dropped, blank_lines = _read_scenario(
            files[scenario], scenario, positive, shared_item_ids, clock)
        clock += rows
        parts.append(table)
        items.append(item_frame)
        users.append(user_frame)
        rows_in_files += rows
        not_positive += dropped
        blank += blank_lines
    if not sum(len(p) for p in parts):
        raise DataError(f"{directory}: no row of {list(scenarios)} has {positive} = 1")
    interactions = Table(pd.concat([p.frame for p in parts], ignore_index=True), f"{directory} ({', '.join(scenarios)})",
                         np.concatenate([p.lines for p in parts]), blank_lines=blank)
    # An item (or user) seen in several rows or files keeps its first description.
    item_frame = pd.concat(items, ignore_index=True).drop_duplicates(ITEM).reset_index(drop=True)
    if text_template is not None:
        item_frame = item_frame.drop(columns="text")
    user_frame = pd.concat(users, ignore_index=True).drop_duplicates(USER).reset_index(drop=True)
    data = build_rec_dataset(interactions, Table(item_frame, f"{directory} (items)", np.arange(1, len(item_frame) + 1)),
                             Table(user_frame, f"{directory} (users)", np.arange(1, len(user_frame) + 1)),
                             name="tenrec", text_template=text_template or DEFAULT_TEXT_TEMPLATE, duplicates=duplicates)
    data.report = {"rows_in_files": rows_in_files, "rows_not_positive": not_positive, **data.report}
    return data
