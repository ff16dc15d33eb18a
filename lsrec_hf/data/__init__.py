"""Data: loaders that turn recommendation data into a RecDataset; the first stage, imports no other (but the catalog).

A :class:`RecDataset` holds the interactions as a ``datasets.Dataset`` plus the
:class:`~lsrec_hf.processing.catalog.ItemCatalog` of every item.
"""

import os
import re

from .atomic import load_atomic
from .errors import DataError
from .reader import path_kind
from .folder import folder_files, load_folder
from .item_text import render_item_text
from .movielens import download_movielens, fetch_ml100k_offline, load_movielens, movielens_layout
from .recdataset import RecDataset
from .tabular import from_hf_dataset, load_tabular
from .tenrec import load_tenrec, tenrec_files

_MOVIELENS_NAME = re.compile(r"ml-(\d+[km]|latest(-small)?)")


def load_data(source="ml-100k", data_dir=None, **kwargs):
    """Load a dataset by name or path.

    - ``data_dir`` (or ``source``) is a folder: RecBole atomic files (``*.inter``), a GroupLens
      MovieLens folder, Tenrec scenario files (``QK-video.csv``, ...) or ``interactions.tsv`` with
      ``items.tsv`` (:func:`load_folder`, the benchmark sets' layout), told apart by their files.
    - ``data_dir`` (or ``source``) is a file: a table read by :func:`load_tabular` (``kwargs``
      such as ``column_map`` and ``items`` go there).
    - ``source="ml-100k"`` without ``data_dir``: fetched once by :func:`fetch_ml100k_offline`.
    - ``source="ml-1m"``, ``"ml-20m"``, ... without ``data_dir``: downloaded from GroupLens.

    ``kwargs`` are passed to the loader (e.g. ``text_template``, ``name``, ``duplicates``);
    ``cache_dir`` goes to the download. What loading counted (rows read, duplicates dropped, items
    without text...) is in the returned dataset's ``report``.
    """
    for argument, value in (("source", source), ("data_dir", data_dir)):
        if not isinstance(value, (str, os.PathLike)) and not (argument == "data_dir" and value is None):
            raise DataError(f"{argument} must be a dataset name or a path, got {type(value).__name__} {value!r:.80}")
    cache_dir = kwargs.pop("cache_dir", None)
    path = data_dir
    if path is None:
        if os.path.lexists(source):  # a broken link is a path too: say what it is
            path = source
        elif source == "ml-100k":
            path = fetch_ml100k_offline(cache_dir)
        elif _MOVIELENS_NAME.fullmatch(source):
            path = download_movielens(source, cache_dir)
        else:
            known = "'ml-100k', 'ml-1m', 'ml-20m', ..."
            raise DataError(f"source {source!r} is neither a file or folder nor a known dataset ({known})")
    path = os.fspath(path)
    if os.path.isfile(path):
        return load_tabular(path, **kwargs)
    if not os.path.isdir(path):
        raise DataError(f"data_dir {path} {path_kind(path, 'a data file or folder')}")
    if any(f.endswith(".inter") for f in os.listdir(path)):
        return load_atomic(path, **kwargs)
    if movielens_layout(path)[1] is not None:
        return load_movielens(path, **kwargs)
    if tenrec_files(path):
        return load_tenrec(path, **kwargs)
    if folder_files(path)[0] is not None:
        return load_folder(path, **kwargs)
    raise DataError(
        f"{path}: no data found; expected RecBole atomic files (<name>.inter, .item, .user) or a MovieLens "
        f"folder (u.data, ratings.dat or ratings.csv) or Tenrec files (QK-video.csv, ...) or interactions.tsv + items.tsv; for a single table pass the file itself"
    )


__all__ = [
    "DataError",
    "RecDataset",
    "download_movielens",
    "fetch_ml100k_offline",
    "from_hf_dataset",
    "load_atomic",
    "load_data",
    "load_folder",
    "load_movielens",
    "load_tabular",
    "load_tenrec",
    "render_item_text",
]
