"""The one exception the data layer raises for problems in the user's data or arguments."""


class DataError(ValueError):
    """A missing file, a malformed row, an unknown column, a bad argument...

    The message names the file, the place in it (``line N``: 1-based line of the file, the header
    being line 1; ``row N``: 1-based record of a Parquet file or a ``datasets.Dataset``) and/or
    the column or argument, and what was expected, so it can be shown to the user as is.
    """
