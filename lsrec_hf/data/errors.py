"""The one exception the data layer raises for problems in the user's data or arguments."""


class DataError(ValueError):
    """A missing file, a malformed row, an unknown column, a bad argument...

    The message names the file, the place in it (``line N``: 1-based line of the file, the header
    being line 1; ``row N``: 1-based record of a Parquet file or a ``datasets.Dataset``) and/or
    the column or argument, and what was expected, so it can be shown to the user as is.
    """


def shown(value, limit=80):
    """``repr(value)`` for a message, cut short: a 5 MB field must not become a 5 MB message."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def shown_columns(columns, limit=20):
    """A list of column names for a message, each and the list cut short."""
    names = [shown(str(c)) for c in list(columns)[:limit]]
    more = f", ... ({len(columns)} columns)" if len(columns) > limit else ""
    return f"[{', '.join(names)}{more}]"
