"""Turn an item's fields into the one sentence the text encoder reads."""

import re
import string

import numpy as np
import pandas as pd

from ..processing.catalog import DEFAULT_TEXT_TEMPLATE
from .errors import DataError, shown

# Fields every loader knows about; a template may use them even when a dataset lacks them.
STANDARD_FIELDS = ("title", "year", "genres")

_GONE = "\x01"  # marks where an empty field was removed, so that punctuation is only merged there
_SENTENCE_ENDS = ".;!?"
_DOUBLED = re.compile(r"([.;,!?])\x01\s*[.;,!?]")  # "(1995).<gone>." -> "(1995)."
_LEADING = re.compile(r"^\s*\x01[\s\x01]*[.,;:!?]*(?:\s+|$)")  # an empty first field leaves its separator


def _parse(template):
    """``[(literal, field name or None)]`` of a ``str.format``-style template: one pass, linear in its length."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        raise DataError(f"text template {shown(template)} is not a valid format string ({e})") from None
    pieces = []
    for literal, name, spec, conversion in parsed:
        if name is not None and not name.isidentifier():
            raise DataError(f"text template {shown(template)}: placeholder {shown('{' + name + '}')} must be a plain "
                            f"field name such as {{title}}")
        if spec or conversion:  # a field is text already: `{title:>4000}` pads, `{title:d}` cannot apply
            raise DataError(f"text template {shown(template)}: placeholder {{{name}}} has a format spec or conversion "
                            f"({shown((('!' + conversion) if conversion else '') + (':' + spec if spec else ''))}); "
                            f"write plain {{{name}}}")
        pieces.append((literal.replace(_GONE, ""), name))
    return pieces


def template_fields(template):
    """The placeholder names used by a ``str.format``-style template, in order."""
    return [name for _, name in _parse(template) if name is not None]


def _as_text(value):
    if isinstance(value, (list, tuple, np.ndarray)):
        return ", ".join(t for t in (_as_text(v) for v in value) if t)
    if value is None or pd.isna(value):
        return ""
    return " ".join(str(value).replace(_GONE, "").split())  # one space between words


def _without_decoration(before, after):
    """The literals around an empty field, less the decoration that only made sense with a value.

    ``"Toy Story ("`` + ``")."``: the brackets; ``". Genres: "``: the label back to the sentence's end;
    ``", "``: the separator. String methods only, so each literal is scanned a bounded number of times.
    """
    head = before.rstrip()
    if before.endswith(("(", "[")) and after.startswith((")", "]")):
        return head[:-1].rstrip(), after[1:]
    if head.endswith(":"):
        start = max(head.rfind(end) for end in _SENTENCE_ENDS) + 1
        if not any(c in head[start:-1] for c in ":()[]"):
            return head[:start], after
    head = head[:-1].rstrip() if head.endswith((",", ";")) else head
    return head, after


def render_item_text(template, fields):
    """Fill ``template`` with ``fields``, dropping empty fields together with their decoration.

    >>> render_item_text(DEFAULT_TEXT_TEMPLATE, {"title": "Toy Story", "year": 1995, "genres": ["Animation", "Comedy"]})
    'Toy Story (1995). Genres: Animation, Comedy.'
    >>> render_item_text(DEFAULT_TEXT_TEMPLATE, {"title": "Toy Story", "genres": []})
    'Toy Story.'

    Lists are joined with ", ". ``title``, ``year`` and ``genres`` may be missing from ``fields``
    (treated as empty); any other placeholder must be there, otherwise a ``DataError`` names it. Placeholders are
    plain names (no format spec or conversion). Time is linear in the template and the values.
    """
    pieces = _parse(template)
    values = {}
    for _, name in pieces:
        if name is not None and name not in fields and name not in STANDARD_FIELDS:
            raise DataError(f"text template {shown(template)} uses {{{name}}}, but the item has no such field; "
                            f"fields: {sorted(fields)}")
        if name is not None:
            values[name] = _as_text(fields.get(name))
    literals = [literal for literal, _ in pieces]
    parts, removed = [], False
    for i, (_, name) in enumerate(pieces):
        literal = literals[i]
        if name is None or values[name]:
            parts += [literal, values[name] if name is not None else ""]
            continue
        following = literals[i + 1] if i + 1 < len(literals) else ""
        literal, following = _without_decoration(literal, following)
        if i + 1 < len(literals):
            literals[i + 1] = following
        parts += [literal, _GONE]
        removed = True
    text = "".join(parts)
    if not removed:
        return text.strip()
    text = _DOUBLED.sub(r"\1", text)
    text = _LEADING.sub("", text)
    return re.sub(r"\s+", " ", text.replace(_GONE, "")).strip()


__all__ = ["DEFAULT_TEXT_TEMPLATE", "STANDARD_FIELDS", "render_item_text", "template_fields"]
