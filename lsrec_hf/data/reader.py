"""Read delimited text, JSON Lines and Parquet files into tables that remember where each row came from.

Every parser error is turned into a :class:`DataError` that names the file and the line, so a
user never sees a traceback from deep inside pyarrow or pandas for a typo in their data.
"""

import codecs
import csv
import io
import json
import logging
import os
import re
import stat
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from .errors import DataError, shown, shown_columns

logger = logging.getLogger(__name__)

_MAX_BLOCK = 2**31 - 1  # pyarrow's block size is a 32-bit int
_SEPARATOR_NAMES = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "'|'", "::": "'::'", " ": "space"}


@dataclass
class Table:
    """Rows of one source, all kept as read, plus each row's position in that source for messages.

    ``unit`` is ``"line"`` for text files (1-based line of the file, the header being line 1) and
    ``"row"`` for Parquet files and ``datasets.Dataset`` (1-based record). ``original`` maps a
    renamed column back to its name in the source. ``blank_lines`` counts the blank lines of the
    source that were skipped (whitespace only, or every field empty), so that none goes uncounted.
    """

    frame: pd.DataFrame
    source: str
    lines: np.ndarray
    unit: str = "line"
    original: dict = field(default_factory=dict)
    blank_lines: int = 0

    def __len__(self):
        return len(self.frame)

    def where(self, i):
        return f"{self.source}, {self.unit} {self.lines[i]}"

    def label(self, column):
        source = self.original.get(column, column)
        return f"'{source}'" if source == column else f"'{source}' (the {column} column)"

    def subset(self, mask):
        mask = np.asarray(mask)
        frame = self.frame[mask].reset_index(drop=True)
        return Table(frame, self.source, self.lines[mask], self.unit, dict(self.original), self.blank_lines)

    def rename(self, mapping, argument="column_map", sep_argument="sep"):
        """Rename source columns to the library's names; ``mapping`` is {our name: source column}.

        ``sep_argument`` is the caller's argument that sets the separator, named in the hint for a
        file that did not split into columns (None: the caller has none).
        """
        columns = list(self.frame.columns)
        for ours, theirs in mapping.items():
            if theirs not in columns:
                raise DataError(
                    f"{self.source}: column {shown(theirs)} (the {ours} column, from {argument}) not found; "
                    f"columns: {self.columns_hint(sep_argument)}"
                )
        if len(set(mapping.values())) != len(mapping):
            raise DataError(f"{argument} maps two names to the same column: {mapping}")
        renamed = {theirs: ours for ours, theirs in mapping.items() if theirs != ours}
        clash = [ours for ours in renamed.values() if ours in columns and ours not in renamed]
        if clash:
            raise DataError(
                f"{self.source}: {argument} renames {mapping[clash[0]]!r} to {clash[0]!r}, but the source already has a "
                f"{clash[0]!r} column; map {clash[0]!r} to it or rename one of them"
            )
        original = {**self.original, **{ours: self.original.get(theirs, theirs) for theirs, ours in renamed.items()}}
        return Table(self.frame.rename(columns=renamed), self.source, self.lines, self.unit, original, self.blank_lines)

    def columns_hint(self, sep_argument="sep"):
        """The source's columns for a message, with a separator hint when there is a single one."""
        columns = [self.original.get(c, c) for c in self.frame.columns]
        hint = separator_hint(str(columns[0]), None, sep_argument) if len(columns) == 1 else ""
        return shown_columns(columns) + hint


def check_encoding(encoding):
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise DataError(f"unknown encoding {encoding!r} (argument encoding=)") from None


def path_kind(path, expected="a regular file"):
    """What a path that is not `expected` is, for a message: 'does not exist', 'is a character device, not ...'."""
    if not os.path.exists(path):
        return f"is a broken link (to {os.readlink(path)})" if os.path.islink(path) else "does not exist"
    mode = os.stat(path).st_mode
    kinds = [(stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"), (stat.S_ISREG, "a file")]
    kind = next((name for test, name in kinds if test(mode)), "a special file")
    # a link to /dev/null is a link: say where it leads
    what = f"a link to {os.path.realpath(path)}, {kind}" if os.path.islink(path) else kind
    return f"is {what}, not {expected}"


def check_file(path, what="file"):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"{what} {path} {path_kind(path)}")
    return path


def separator_hint(text, sep, sep_argument="sep"):
    """' (it looks comma-separated ...)' when a line that did not split holds another usual separator.

    ``sep`` is the separator the line was split on (None: unknown); ``sep_argument`` the argument
    that would change it, named in the hint (None: there is none to suggest).
    """
    for other, label in _SEPARATOR_NAMES.items():
        if other != sep and other != " " and other in text:
            if sep is None:
                advice = f"; pass {sep_argument}={other!r}" if sep_argument else ""
                return f" (the file looks {label}-separated{advice})"
            return f" (it looks {label}-separated, not {_SEPARATOR_NAMES.get(sep, repr(sep))}-separated)"
    return ""


# Byte order marks of the wide encodings; UTF-32's first, since UTF-32-LE's starts with UTF-16-LE's.
_WIDE_BOMS = [(codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
              (codecs.BOM_UTF16_BE, "utf-16")]


def check_not_wide(data, path, encoding):
    """A DataError when bytes read as UTF-8 (or latin-1 by default) are UTF-16/32 text: a BOM or many NUL bytes.

    Such a file decodes "fine" as UTF-8 when it is ASCII (a NUL between letters is valid UTF-8), and always as
    latin-1, into columns that never match: say what it is instead.
    """
    if encoding is not None and codecs.lookup(encoding).name != "utf-8":
        return  # the user named the encoding
    wide = next((name for bom, name in _WIDE_BOMS if data.startswith(bom)), None)
    sample = data[:4096]
    if wide is None and sample.count(0) > len(sample) * 0.3:  # ASCII text in UTF-16 is half NUL, in UTF-32 3/4
        wide = "utf-32" if sample.count(0) > len(sample) * 0.65 else "utf-16"
    if wide is not None:
        raise DataError(f"{path}: the file looks like {wide.upper()}, not UTF-8 text; pass encoding={wide!r}")


def _decode(data, path, encoding):
    """``(text, encoding used)``; ``encoding=None`` means UTF-8, or latin-1 where the file is not valid UTF-8."""
    check_not_wide(data, path, encoding)
    try:
        return data.decode(encoding or "utf-8"), encoding or "utf-8"
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        if encoding is None:
            # GroupLens ships latin-1 files that people often re-save as UTF-8: read either one
            logger.info("%s is not valid UTF-8 (line %d); read as latin-1", path, line)
            return data.decode("latin-1"), "latin-1"
        raise DataError(
            f"{path}, line {line}: bytes {data[e.start:e.start + 4]!r} are not valid {encoding} text; "
            f"pass the file's encoding (e.g. encoding='latin-1')"
        ) from None


def _header(data, path, sep, quoted):
    """Column names from the first line of UTF-8 ``data``, which may end with a lone CR (old Mac files)."""
    ends = [i for i in (data.find(b"\n"), data.find(b"\r")) if i >= 0]
    head = data[: min(ends, default=len(data))].decode("utf-8")
    try:
        columns = next(csv.reader([head], delimiter=sep)) if quoted else head.split(sep)
    except csv.Error as e:
        raise DataError(f"{path}, line 1: cannot read the header ({e}): {shown(head)}") from None
    columns = [c.strip() for c in columns]
    if len(set(columns)) != len(columns):
        twice = next(c for c in columns if columns.count(c) > 1)
        raise DataError(f"{path}, line 1: header names column {shown(twice)} twice: {shown_columns(columns)}")
    return columns


def read_delimited(path, sep, names=None, encoding="utf-8", quoted=False):
    """Read a delimited text file with every value as a string.

    Args:
        sep: the field separator; "::" (MovieLens-1M) is supported.
        names: column names of a file without a header; by default the first line is the header.
        encoding: the file's text encoding; None reads UTF-8, or latin-1 where the file is not
            valid UTF-8 (logged).
        quoted: honour "..." quoting (CSV); off for TSV-like formats, whose titles may hold quotes.

    Blank lines are skipped (counted in ``Table.blank_lines``). A line with the wrong number of
    fields and bytes that are not valid in ``encoding`` raise a ``DataError`` naming the file and
    the line. A line of any length is read (a 5 MB field included).
    """
    path = check_file(path)
    if encoding is not None:
        check_encoding(encoding)
    if not isinstance(sep, str) or not sep or any(c in sep for c in '\r\n"'):
        raise DataError(f"sep must be a field separator such as ',' or '\\t', got {shown(sep)}")
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]  # a UTF-8 byte order mark is not part of the first column's name
    shown_sep = sep
    if len(sep.encode()) > 1:
        # pyarrow takes a single-byte separator: swap in one that the file does not use
        single = next((c for c in "\t\x1f\x1e\x1d" if c.encode() not in data), None)
        if single is None:
            raise DataError(f"{path}: cannot split on {sep!r}: the file uses every stand-in separator byte")
        data, sep = data.replace(sep.encode(), single.encode()), single
    text, encoding = _decode(data, path, encoding)
    if not text or text.isspace():
        raise DataError(f"{path} is empty")
    if codecs.lookup(encoding).name != "utf-8":
        data = text.encode("utf-8")  # pyarrow reads UTF-8
    del text

    first_line = 0
    if names is None:
        columns = _header(data, path, sep, quoted)
        first_line = 1
    else:
        columns = list(names)
    return _parse(data, path, sep, columns, first_line, quoted, shown_sep)


def _parse(data, path, sep, columns, first_line, quoted, shown_sep):
    """Parse UTF-8 ``data`` with pyarrow; on any bad line, parse again single-threaded to find its number."""
    block_size = 1 << 20  # pyarrow's default; grown below for files with longer lines

    def read(use_threads, bad):
        def on_invalid(row):
            bad.append(row)
            return "skip" if not row.text.strip() else "error"  # whitespace-only lines are blank lines

        return pa_csv.read_csv(
            io.BytesIO(data),
            read_options=pa_csv.ReadOptions(
                use_threads=use_threads, block_size=block_size, column_names=columns, skip_rows=first_line
            ),
            parse_options=pa_csv.ParseOptions(
                delimiter=sep, quote_char='"' if quoted else False, ignore_empty_lines=False, invalid_row_handler=on_invalid
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types={c: pa.string() for c in columns}, strings_can_be_null=False, quoted_strings_can_be_null=False
            ),
        )

    def attempt(use_threads):
        # pyarrow fails on a line longer than its block ("straddles two block boundaries", "header
        # is larger than block size"): a 5 MB field is valid data, so retry with bigger blocks
        nonlocal block_size
        while True:
            bad = []
            try:
                return read(use_threads, bad), bad, None
            except pa.ArrowException as e:
                if "block" not in str(e) or block_size > len(data) or block_size >= _MAX_BLOCK:
                    return None, bad, e
                block_size = min(block_size * 4, _MAX_BLOCK)

    table, bad, error = attempt(True)
    if bad or table is None:
        # rows are numbered only in a single-threaded read; it is slower, so only done when needed
        table, bad, error = attempt(False)
        if table is None:
            bad_rows = [b for b in bad if b.text.strip()]
            if not bad_rows:
                raise DataError(f"{path}: could not parse the file ({error})") from None
            row = bad_rows[0]
            text = row.text.replace(sep, shown_sep)
            expected = ", ".join(columns)
            expected = expected if len(expected) <= 200 else f"{expected[:200]}..."
            raise DataError(
                f"{path}, line {row.number}: found {row.actual_columns} fields, expected {row.expected_columns} "
                f"({expected}){separator_hint(text, shown_sep)}: {text[:200]!r}"
            ) from None
    frame = table.to_pandas()
    # file line of each row (pyarrow numbers rows by file line): all lines after the header but
    # the whitespace-only ones that were skipped
    skipped = np.array(sorted(b.number for b in bad), dtype=np.int64)
    numbers = np.arange(first_line + 1, first_line + len(frame) + len(skipped) + 1)
    numbers = numbers[~np.isin(numbers, skipped)]
    blank = (frame == "").all(axis=1).to_numpy() if len(frame.columns) else np.zeros(len(frame), bool)
    result = Table(frame, path, numbers, blank_lines=len(skipped) + int(blank.sum()))
    result = result.subset(~blank) if blank.any() else result
    if len(result) == 0:
        raise DataError(f"{path} has a header but no rows" if first_line else f"{path} is empty")
    return result


def read_jsonl(path, encoding="utf-8"):
    """Read a JSON Lines file (one JSON object per line); values keep their JSON types."""
    path = check_file(path)
    check_encoding(encoding)
    records, numbers, blank_lines = [], [], 0
    source = open(path, "rb")
    if codecs.lookup(encoding).name.startswith(("utf-16", "utf-32")):
        # its lines cannot be split on the byte b"\n": decode it whole, then read that text as UTF-8
        with source:
            text, _ = _decode(source.read(), path, encoding)
        source, encoding = io.BytesIO(text.encode("utf-8")), "utf-8"
    with source as f:
        check_not_wide(f.read(4096), path, encoding)
        f.seek(0)
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode(encoding)
            except UnicodeDecodeError:
                raise DataError(f"{path}, line {number}: bytes that are not valid {encoding} text; pass encoding=") from None
            line = line.lstrip("\ufeff") if number == 1 else line
            if not line.strip():
                blank_lines += 1
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}, line {number}: not valid JSON ({e.msg} at column {e.colno})") from None
            except (ValueError, RecursionError) as e:  # an integer of 5000 digits, [[[[... nested too deep
                raise DataError(f"{path}, line {number}: JSON that cannot be read ({type(e).__name__}: {str(e)[:200]})") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}, line {number}: expected a JSON object {{...}}, got {type(record).__name__}")
            records.append(record)
            numbers.append(number)
    if not records:
        raise DataError(f"{path} is empty")
    frame = pd.DataFrame.from_records(records)
    frame = frame.astype(object).where(frame.notna(), None)
    return Table(frame, path, np.array(numbers), blank_lines=blank_lines)


def read_parquet(path):
    path = check_file(path)
    table = None
    try:
        table = pq.read_table(path)
        table.validate(full=True)  # text that is not UTF-8 would fail later, deep in pandas
        frame = table.to_pandas()
    except (pa.ArrowException, OSError, ValueError, TypeError, KeyError, OverflowError) as e:
        # a broken footer, two columns of one name, a date pandas cannot hold, broken pandas metadata...
        reason = f"its pandas metadata lacks {e}" if isinstance(e, KeyError) else (str(e).splitlines() or [""])[0][:300]
        column = re.match(r"Column (\d+): ", reason)
        if column and table is not None and int(column[1]) < table.num_columns:
            reason = f"column {shown(table.column_names[int(column[1])])}: {reason[column.end():]}"
        raise DataError(f"{path}: not a readable Parquet file ({reason or type(e).__name__})") from None
    if len(frame) == 0:
        raise DataError(f"{path} is empty")
    return Table(frame, path, np.arange(1, len(frame) + 1), unit="row")


def read_any(path, sep=None, encoding="utf-8"):
    """Read a .csv/.tsv/.txt/.tab/.jsonl/.json/.parquet file, picking the parser from the extension."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".parquet":
        return read_parquet(path)
    if ext in (".jsonl", ".json", ".ndjson"):
        return read_jsonl(path, encoding=encoding)
    if sep is None:
        if ext not in (".csv", ".tsv", ".tab", ".txt", ".dat"):
            raise DataError(f"{path}: cannot tell the format from the extension {ext or '(none)'}; use .csv, .tsv, .jsonl or .parquet")
        sep = "," if ext == ".csv" else "\t"
    return read_delimited(path, sep, encoding=encoding, quoted=(sep == ","))
