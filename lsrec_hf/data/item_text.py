"""Turn an item's fields into the one sentence the text encoder reads."""

import re
import string

import numpy as np
import pandas as pd

from ..catalog import DEFAULT_TEXT_TEMPLATE
from .errors import DataError

# Fields every loader knows about; a template may use them even when a dataset lacks them.
STANDARD_FIELDS = ("title", "year", "genres")

_EMPTY = "\x00"  # stands for an empty field until the clean-up below removes it with its decoration
_GONE = "\x01"  # marks where something was removed, so punctuation is only merged there

_BRACKETED = re.compile(r"\s*[(\[]\x00[)\]]")  # "Toy Story ({year})" -> "Toy Story"
_LABELLED = re.compile(r"(?:^|(?<=[.;!?]))\s*[^\x00\x01.;!?:()\[\]]*:\s*\x00")  # ". Genres: {genres}"
_BARE = re.compile(r"\s*[,;]?\s*\x00")  # "{title}, {year}"
_DOUBLED = re.compile(r"([.;,!?])\x01\s*[.;,!?]")  # "(1995).<gone>." -> "(1995)."
_LEADING = re.compile(r"^\s*\x01[\s\x01]*[.,;:!?]*(?:\s+|$)")  # an empty first field leaves its separator


def template_fields(template):
    """The placeholder names used by a ``str.format``-style template, in order."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        raise DataError(f"text template {template!r} is not a valid format string ({e})") from None
    names = []
    for _, name, _, _ in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            raise DataError(f"text template {template!r}: placeholder {{{name}}} must be a plain field name such as {{title}}")
        names.append(name)
    return names


def _as_text(value):
    if isinstance(value, (list, tuple, np.ndarray)):
        return ", ".join(t for t in (_as_text(v) for v in value) if t)
    if value is None or pd.isna(value):
        return ""
    return " ".join(str(value).replace(_EMPTY, "").replace(_GONE, "").split())  # one space between words


def render_item_text(template, fields):
    """Fill ``template`` with ``fields``, dropping empty fields together with their decoration.

    >>> render_item_text(DEFAULT_TEXT_TEMPLATE, {"title": "Toy Story", "year": 1995, "genres": ["Animation", "Comedy"]})
    'Toy Story (1995). Genres: Animation, Comedy.'
    >>> render_item_text(DEFAULT_TEXT_TEMPLATE, {"title": "Toy Story", "genres": []})
    'Toy Story.'

    Lists are joined with ", ". ``title``, ``year`` and ``genres`` may be missing from ``fields``
    (treated as empty); any other placeholder must be there, otherwise a ``DataError`` names it.
    """
    values = {}
    for name in template_fields(template):
        if name not in fields and name not in STANDARD_FIELDS:
            raise DataError(
                f"text template {template!r} uses {{{name}}}, but the item has no such field; fields: {sorted(fields)}"
            )
        values[name] = _as_text(fields.get(name)) or _EMPTY
    text = template.format(**values)
    if _EMPTY not in text:
        return text.strip()
    text = _BRACKETED.sub(_GONE, text)
    text = _LABELLED.sub(_GONE, text)
    text = _BARE.sub(_GONE, text)
    text = _DOUBLED.sub(r"\1", text)
    text = _LEADING.sub("", text)
    return re.sub(r"\s+", " ", text.replace(_GONE, "")).strip()


__all__ = ["DEFAULT_TEXT_TEMPLATE", "STANDARD_FIELDS", "render_item_text", "template_fields"]
