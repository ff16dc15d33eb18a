"""Hostile input: every loader and the recommendation pipeline either load the data as documented or raise an
error that says what and where (a DataError naming the file and the line or column; a ValueError naming the
argument in the pipeline). Never a crash deep inside pandas, pyarrow or torch, never a hang, never a silent drop:
rows read = rows kept + rows counted in ``RecDataset.report``."""

import csv
import io
import json
import os
import time
import warnings

import datasets
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import save_tiny_model, write_csv_layout, write_ml100k, write_ml1m
from transformers import pipeline

import lsrec_hf  # noqa: F401  (registers the "recommendation" task)
from lsrec_hf import LSRecForSequentialRecommendation
from lsrec_hf.processing.tokens import to_tokens
from lsrec_hf.data import DataError, from_hf_dataset, load_atomic, load_data, load_movielens, load_tabular
from lsrec_hf.data.movielens import split_title_year
from lsrec_hf.processing.sequences import build_user_sequences, leave_one_out
from lsrec_hf.inference.user_state import encode_user

HEADER = "user_id,item_id,timestamp\n"
INTER = "user_id:token\titem_id:token\ttimestamp:float\n"
BIG = "x" * 5_000_000  # a 5 MB field: five times pyarrow's 1 MiB parsing blocks
# Fixed examples by default, so that CI is reproducible; LSREC_FUZZ_RANDOM=1 explores new ones.
FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
                derandomize=not os.environ.get("LSREC_FUZZ_RANDOM"))


def write(path, content):
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def quietly(load, *args, **kwargs):
    """Load without the warnings about items that have no item file or text (counted in the report)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load(*args, **kwargs)


def atomic(folder, inter, item=None, user=None):
    """``folder`` with ``toy.inter`` and, when given, ``toy.item`` and ``toy.user``."""
    folder.mkdir(exist_ok=True)
    for suffix, content in (("inter", inter), ("item", item), ("user", user)):
        if content is not None:
            write(folder / f"toy.{suffix}", content)
    return folder


def check_consistent(data):
    """What every load that succeeds must hold: each row read is kept or counted, each item is in the catalog."""
    report = data.report
    assert report["rows_read"] == report["interactions"] + report["duplicates_dropped"]
    assert report["interactions"] == data.interactions.num_rows
    assert set(data.interactions["item_id"]) <= set(data.catalog.item_ids)


# --- wrong delimiter: the message names the file and the columns it found --------------------------------------


def test_comma_file_read_as_tab_separated_names_the_columns_found(tmp_path):
    path = write(tmp_path / "r.tsv", HEADER + "a,x,1\n")
    found = r"columns: \['user_id,item_id,timestamp'\] \(the file looks comma-separated; pass sep=','\)"
    expected = rf"r\.tsv: no 'user_id' column; {found}"
    with pytest.raises(DataError, match=expected):
        load_tabular(path)
    assert quietly(load_tabular, path, sep=",").interactions["item_id"] == ["x"]


def test_semicolon_file_read_as_csv_gets_a_semicolon_hint(tmp_path):
    with pytest.raises(DataError, match=r"r\.csv: no 'user_id' column; columns: \['user_id;item_id;timestamp'\] .*pass sep=';'"):
        load_tabular(write(tmp_path / "r.csv", "user_id;item_id;timestamp\na;x;1\n"))


def test_comma_atomic_file_names_the_single_header_field(tmp_path):
    folder = atomic(tmp_path / "d", "user_id:token,item_id:token\nu,i\n")
    expected = r"toy\.inter, line 1: the header has a single field 'user_id:token,item_id:token' \(it looks comma-separated"
    with pytest.raises(DataError, match=expected):
        load_atomic(folder)


def test_comma_u_data_names_the_line_and_the_separator(tmp_path):
    folder = write_ml100k(tmp_path / "ml-100k")
    write(folder / "u.data", "1,1,5,874965758\n")
    with pytest.raises(DataError, match=r"u\.data, line 1: found 1 fields, expected 4 .*comma-separated, not tab-separated"):
        load_movielens(folder)


def test_semicolon_movielens_csv_hints_without_an_argument_it_does_not_take(tmp_path):
    folder = write_csv_layout(tmp_path / "ml-latest-small")
    write(folder / "ratings.csv", "userId;movieId;rating;timestamp\n1;11;4;964982703\n")
    found = r"columns: \['userId;movieId;rating;timestamp'\] \(the file looks semicolon-separated\)$"
    with pytest.raises(DataError, match=rf"ratings\.csv: .*{found}"):
        load_movielens(folder)


# --- wrong encoding: an error naming file and line, or the documented latin-1 fallback of MovieLens --------------


def test_latin1_jsonl_read_as_utf8_names_the_line(tmp_path):
    rows = [{"user_id": "a", "item_id": "x", "timestamp": 1}, {"user_id": "b", "item_id": "Café", "timestamp": 2}]
    path = write(tmp_path / "r.jsonl", "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("latin-1"))
    with pytest.raises(DataError, match=r"r\.jsonl, line 2: bytes that are not valid utf-8 text; pass encoding="):
        load_tabular(path)
    assert quietly(load_tabular, path, encoding="latin-1").interactions["item_id"] == ["x", "Café"]


def test_movielens_reads_latin1_files_and_their_utf8_copies_alike(tmp_path):
    original = write_ml100k(tmp_path / "original" / "ml-100k")
    copy = write_ml100k(tmp_path / "copy" / "ml-100k")
    write(copy / "u.item", (original / "u.item").read_bytes().decode("latin-1").encode("utf-8"))
    assert load_movielens(copy).catalog.titles == load_movielens(original).catalog.titles == ["Toy Story", "Café", "unknown"]
    with pytest.raises(DataError, match=r"u\.item, line 2: bytes .* are not valid utf-8 text"):
        load_movielens(original, encoding="utf-8")  # forced: the latin-1 byte is an error again


@pytest.mark.parametrize("name, encoding, wide", [
    ("r.csv", "utf-16", "utf-16"),  # with a byte order mark
    ("r.csv", "utf-16-le", "utf-16"),  # without one: every other byte is NUL
    ("r.tsv", "utf-32", "utf-32"),
    ("r.jsonl", "utf-16", "utf-16"),
])  # fmt: skip
def test_utf16_and_utf32_files_name_the_encoding_to_pass(tmp_path, name, encoding, wide):
    sep = "\t" if name.endswith(".tsv") else ","
    text = HEADER.replace(",", sep) + f"a{sep}Café{sep}1\n"
    if name.endswith(".jsonl"):
        text = json.dumps({"user_id": "a", "item_id": "Café", "timestamp": 1}, ensure_ascii=False) + "\n"
    path = write(tmp_path / name, text.encode(encoding))
    with pytest.raises(DataError, match=rf"{name}: the file looks like {wide.upper()}, not UTF-8 text; pass encoding='{wide}'"):
        load_tabular(path)  # was: advice to try latin-1
    assert quietly(load_tabular, path, encoding=wide).interactions["item_id"] == ["Café"]


def test_utf16_movielens_file_is_named_not_read_as_latin1(tmp_path):
    folder = write_ml100k(tmp_path / "ml-100k")
    write(folder / "u.data", (folder / "u.data").read_text(encoding="latin-1").encode("utf-16"))
    with pytest.raises(DataError, match=r"u\.data: the file looks like UTF-16, not UTF-8 text; pass encoding='utf-16'"):
        load_movielens(folder)


def test_data_path_that_is_a_device_pipe_or_broken_link_says_what_it_is(tmp_path):
    (tmp_path / "null").symlink_to(os.devnull)
    (tmp_path / "broken").symlink_to(tmp_path / "gone")
    os.mkfifo(tmp_path / "pipe")  # opening a pipe to read it would wait forever
    device = rf"{tmp_path}/null is a link to /dev/null, a character device, not"
    with pytest.raises(DataError, match=rf"data_dir {device} a data file or folder"):  # was "does not exist"
        load_data(str(tmp_path / "null"))
    with pytest.raises(DataError, match=rf"data_dir {device} a data file or folder"):
        load_data(data_dir=tmp_path / "null")
    with pytest.raises(DataError, match=rf"interactions file {device} a regular file"):
        load_tabular(tmp_path / "null")
    with pytest.raises(DataError, match=rf"data_dir {tmp_path}/pipe is a named pipe, not a data file or folder"):
        load_data(str(tmp_path / "pipe"))
    with pytest.raises(DataError, match=rf"data_dir {tmp_path}/broken is a broken link \(to {tmp_path}/gone\)"):
        load_data(str(tmp_path / "broken"))


def test_utf8_movies_dat_keeps_its_accents(tmp_path):
    folder = write_ml1m(tmp_path / "ml-1m")
    write(folder / "movies.dat", "7::Café au lait (1993)::Comedy\n1193::Cuckoo (1975)::Drama\n260::Star Wars (1977)::Sci-Fi\n")
    assert load_movielens(folder).catalog.titles[0] == "Café au lait"


# --- missing columns -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix, header, column", [
    ("item", "title:token\nx\n", "item_id"),
    ("user", "age:token\n3\n", "user_id"),
])  # fmt: skip
def test_atomic_item_or_user_file_without_its_id_column_is_named(tmp_path, suffix, header, column):
    folder = atomic(tmp_path / "d", INTER + "u\t1\t1\n", **{suffix: header})
    with pytest.raises(DataError, match=rf"toy\.{suffix} has no {column} column; columns: \['(title|age)'\]"):
        quietly(load_atomic, folder)


def test_movielens_csv_without_movie_id_names_the_column(tmp_path):
    folder = write_csv_layout(tmp_path / "ml-latest-small")
    write(folder / "ratings.csv", "userId,film,rating,timestamp\n1,11,4,964982703\n")
    expected = r"ratings\.csv: column 'movieId' \(the item_id column, from the MovieLens layout\) not found"
    with pytest.raises(DataError, match=expected):
        load_movielens(folder)


def test_items_dataframe_with_a_column_twice_is_refused(tmp_path):
    items = pd.DataFrame([["x", "A", "B"]], columns=["item_id", "title", "title"])
    with pytest.raises(DataError, match=r"items DataFrame: column 'title' appears twice"):
        load_tabular(write(tmp_path / "r.csv", HEADER + "a,x,1\n"), items=items)


# --- ids: numbers where numbers are required, and never a list or a dict turned into text -------------------------


def test_non_integer_movie_id_in_the_items_file_names_file_and_line(tmp_path):
    folder = write_csv_layout(tmp_path / "ml-latest-small")
    write(folder / "movies.csv", "movieId,title,genres\n11,Heat (1995),Action\nabc,Babylon 5,Drama\n")
    expected = r"movies\.csv, line 3: column 'movieId' \(the item_id column\) must be a whole number, got 'abc'"
    with pytest.raises(DataError, match=expected):
        load_movielens(folder)


@pytest.mark.parametrize("value, shown", [([1, 2], r"list \[1, 2\]"), ({"a": 1}, r"dict \{'a': 1\}"), (True, "bool True")])
def test_json_id_that_is_not_text_or_a_number_names_line_and_type(tmp_path, value, shown):
    rows = [{"user_id": "a", "item_id": "x", "timestamp": 1}, {"user_id": value, "item_id": "y", "timestamp": 2}]
    path = write(tmp_path / "r.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(DataError, match=rf"r\.jsonl, line 2: column 'user_id' must be an id \(text or a number\), got {shown}"):
        load_tabular(path)


def test_list_ids_in_a_dataset_name_the_row():
    ds = datasets.Dataset.from_list([{"u": ["a"], "i": "x", "t": 1}])
    with pytest.raises(DataError, match=r"row 1: column 'u' \(the user_id column\) must be an id"):
        from_hf_dataset(ds, {"user_id": "u", "item_id": "i", "timestamp": "t"})


def test_genre_flag_that_is_not_0_or_1_names_line_and_genre(tmp_path):
    folder = write_ml100k(tmp_path / "ml-100k")
    line = (folder / "u.item").read_bytes().decode("latin-1").splitlines()[0]
    write(folder / "u.item", (line[:-1] + "x\n").encode("latin-1"))  # the last flag is Western's
    with pytest.raises(DataError, match=r"u\.item, line 1: the 'Western' genre flag must be 0 or 1, got 'x'"):
        load_movielens(folder)


# --- timestamps: non-numeric and empty, in every format ---------------------------------------------------------


def parquet_with_null_timestamp(path):
    pd.DataFrame({"user_id": ["a", "b"], "item_id": ["x", "y"], "timestamp": [1.0, None]}).to_parquet(path)
    return path


@pytest.mark.parametrize("name, content, expected", [
    ("r.csv", HEADER + "a,x,1\nb,y,\n", r"r\.csv, line 3: column 'timestamp' is empty; expected a number \(Unix seconds\)"),
    ("r.tsv", HEADER.replace(",", "\t") + "a\tx\tnoon\n", r"r\.tsv, line 2: column 'timestamp' must be a number, got 'noon'"),
    ("r.csv", HEADER + "a,x,1e400\n", r"line 2: column 'timestamp' must be a number, got '1e400'"),
    ("r.jsonl", '{"user_id": "a", "item_id": "x", "timestamp": [1]}\n', r"r\.jsonl, line 1: column 'timestamp' must be a number, got list \[1\]"),
    ("r.jsonl", '{"user_id": "a", "item_id": "x", "timestamp": true}\n', r"line 1: column 'timestamp' must be a number, got bool True"),
    ("r.parquet", parquet_with_null_timestamp, r"r\.parquet, row 2: column 'timestamp' is empty"),
])  # fmt: skip
def test_bad_timestamp_names_file_and_place(tmp_path, name, content, expected):
    path = content(tmp_path / name) if callable(content) else write(tmp_path / name, content)
    with pytest.raises(DataError, match=expected):
        quietly(load_tabular, path)


def test_bad_timestamp_in_ratings_dat_and_atomic_file(tmp_path):
    folder = write_ml1m(tmp_path / "ml-1m")
    write(folder / "ratings.dat", "1::1193::5::978300760\n1::260::3::later\n")
    with pytest.raises(DataError, match=r"ratings\.dat, line 2: column 'timestamp' must be a number, got 'later'"):
        load_movielens(folder)
    with pytest.raises(DataError, match=r"toy\.inter, line 3: column 'timestamp:float' \(the timestamp column\) is empty"):
        quietly(load_atomic, atomic(tmp_path / "d", INTER + "u\t1\t5\nu\t2\t\n"))


# --- duplicate events: the first is kept, the others are dropped, counted and logged ------------------------------


def test_duplicate_events_are_dropped_counted_and_logged(tmp_path, caplog):
    rows = "a,x,1\na,y,2\na,x,1\nb,x,1\na,x,3\n"  # row 3 repeats row 1; b's and the later x are new events
    data = quietly(load_tabular, write(tmp_path / "r.csv", HEADER + rows))
    assert list(zip(data.interactions["user_id"], data.interactions["item_id"], data.interactions["timestamp"])) == [
        ("a", "x", 1.0), ("a", "y", 2.0), ("b", "x", 1.0), ("a", "x", 3.0),
    ]  # fmt: skip
    assert data.report["rows_read"] == 5 and data.report["duplicates_dropped"] == 1 and data.report["interactions"] == 4
    assert "r: dropped 1 duplicate events" in caplog.text
    check_consistent(data)


def test_duplicates_keep_and_a_bad_policy(tmp_path):
    path = write(tmp_path / "r.csv", HEADER + "a,x,1\na,x,1\n")
    assert quietly(load_tabular, path, duplicates="keep").interactions.num_rows == 2
    with pytest.raises(DataError, match="duplicates must be 'drop' or 'keep', got 'first'"):
        quietly(load_tabular, path, duplicates="first")


def test_duplicates_are_dropped_by_every_loader(tmp_path):
    folder = write_ml1m(tmp_path / "ml-1m")
    write(folder / "ratings.dat", "1::1193::5::978300760\n1::1193::5::978300760\n2::260::4::978298413\n")
    assert load_movielens(folder).report["duplicates_dropped"] == 1
    ds = datasets.Dataset.from_list([{"user_id": "a", "item_id": "x", "timestamp": 1}] * 3)
    data = quietly(from_hf_dataset, ds)
    assert data.interactions.num_rows == 1 and data.report["duplicates_dropped"] == 2


def test_without_timestamps_repeats_are_events_in_row_order(tmp_path):
    data = quietly(load_tabular, write(tmp_path / "r.csv", "user_id,item_id\na,x\na,x\n"))
    assert data.interactions["timestamp"] == [0.0, 1.0] and data.report["duplicates_dropped"] == 0


# --- one id and timestamp policy: ids read as written but for spaces (and leading zeros of numbers), counted ----


def test_nanosecond_timestamps_beyond_2_53_are_an_error_not_merged_events(tmp_path):
    rows = "a,x,1700000000000000001\na,x,1700000000000000002\na,x,1700000000000000003\n"
    with pytest.raises(DataError, match=r"r\.csv, line 2: timestamp '1700000000000000001' is beyond 2\*\*53"):
        quietly(load_tabular, write(tmp_path / "r.csv", HEADER + rows))
    lines = "".join(json.dumps({"user_id": "a", "item_id": "x", "timestamp": 1700000000000000001 + i}) + "\n"
                    for i in range(3))
    with pytest.raises(DataError, match="beyond 2\\*\\*53"):
        quietly(load_tabular, write(tmp_path / "r.jsonl", lines))


def test_ids_with_spaces_around_them_are_one_id_and_counted(tmp_path, caplog):
    data = quietly(load_tabular, write(tmp_path / "r.csv", HEADER + "a, 7,1\na,7 ,2\nb,7.0,3\n"))
    assert data.interactions["item_id"] == ["7", "7", "7.0"]  # text ids stay as written, but for spaces
    assert data.report["ids_normalized"] == 2 and "2 ids were written with spaces around them" in caplog.text
    check_consistent(data)


def test_a_whole_number_id_with_leading_zeros_is_its_number_in_grouplens_files(tmp_path):
    folder = write_ml100k(tmp_path / "ml-100k")
    write(folder / "u.data", "1\t001\t5\t874965758\n1\t2\t3\t876893171\n2\t1\t4\t888550871\n")
    data = load_movielens(folder)
    assert data.interactions["item_id"] == ["1", "2", "1"] and data.report["ids_normalized"] == 1
    assert len(data.catalog) == 3 and data.catalog.titles[data.catalog.index("1")] == "Toy Story"
    check_consistent(data)


# --- users with one event; items without text --------------------------------------------------------------------


def test_users_with_one_event_are_kept_for_training_and_counted(tmp_path, caplog):
    data = quietly(load_tabular, write(tmp_path / "r.csv", HEADER + "a,x,1\na,y,2\na,z,3\nb,x,1\n"))
    assert data.interactions.num_rows == 4
    splits = leave_one_out(build_user_sequences(data.interactions, data.catalog))
    assert len(splits.train) == 2 and len(splits.test) == 1  # b trains, a is also evaluated
    assert "1 users with fewer than 3 events are used for training only" in caplog.text


def test_items_without_text_get_one_from_their_id_and_are_counted(tmp_path):
    ratings = write(tmp_path / "r.csv", HEADER + "a,x,1\na,y,2\na,z,3\n")
    items = write(tmp_path / "items.csv", "item_id,title\nx,Heat\ny,\n")
    with pytest.warns(UserWarning) as warned:
        data = load_tabular(ratings, items=items)
    assert data.catalog.texts == ["Heat.", "item y", "item z"]
    assert data.report["items_without_text"] == 1 and data.report["items_only_in_interactions"] == 1
    messages = " ".join(str(w.message) for w in warned)
    assert "1 items of" in messages and "have no title" in messages and "1 of 3 items appear only in the interactions" in messages


# --- empty (0 bytes) and header-only files -----------------------------------------------------------------------


def empty_parquet(path):
    pd.DataFrame({"user_id": pd.Series([], dtype=str), "item_id": pd.Series([], dtype=str)}).to_parquet(path)
    return path


@pytest.mark.parametrize("name, content, expected", [
    ("r.csv", "", r"r\.csv is empty"),
    ("r.csv", HEADER, r"r\.csv has a header but no rows"),
    ("r.csv", HEADER + "\n,,\n   \n", r"r\.csv has a header but no rows"),
    ("r.tsv", "\n \n\t\n", r"r\.tsv is empty"),
    ("r.jsonl", "", r"r\.jsonl is empty"),
    ("r.jsonl", "\n\n", r"r\.jsonl is empty"),
    ("r.parquet", b"", r"r\.parquet: not a readable Parquet file \(.*0 bytes\)"),
    ("r.parquet", empty_parquet, r"r\.parquet is empty"),
])  # fmt: skip
def test_empty_table_files_raise(tmp_path, name, content, expected):
    path = content(tmp_path / name) if callable(content) else write(tmp_path / name, content)
    with pytest.raises(DataError, match=expected):
        load_tabular(path)


def test_parquet_with_invalid_text_or_broken_pandas_metadata_raises(tmp_path):
    # both came out of the fuzzer below as a pyarrow ArrowInvalid and a KeyError
    invalid = pa.table({"user_id": pa.array([b"a", b"\xff"]).view(pa.string()), "item_id": ["x", "y"], "timestamp": [1, 2]})
    pq.write_table(invalid, tmp_path / "r.parquet")
    with pytest.raises(DataError, match=r"r\.parquet: not a readable Parquet file \(column 'user_id': .*Invalid UTF8"):
        load_tabular(tmp_path / "r.parquet")
    broken = pa.table({"user_id": ["a"], "item_id": ["x"]}).replace_schema_metadata({b"pandas": b'{"columns": []}'})
    pq.write_table(broken, tmp_path / "r.parquet")
    with pytest.raises(DataError, match=r"not a readable Parquet file \(its pandas metadata lacks 'index_columns'\)"):
        load_tabular(tmp_path / "r.parquet")


def test_empty_items_file_raises(tmp_path):
    with pytest.raises(DataError, match=r"items\.csv has a header but no rows"):
        load_tabular(write(tmp_path / "r.csv", HEADER + "a,x,1\n"), items=write(tmp_path / "items.csv", "item_id,title\n"))


@pytest.mark.parametrize("layout, name, content, expected", [
    ("ml-100k", "u.data", "", r"u\.data is empty"),
    ("ml-100k", "u.item", "", r"u\.item is empty"),
    ("ml-1m", "ratings.dat", "\n", r"ratings\.dat is empty"),
    ("ml-1m", "movies.dat", "", r"movies\.dat is empty"),
    ("ml-latest-small", "ratings.csv", "userId,movieId,rating,timestamp\n", r"ratings\.csv has a header but no rows"),
    ("ml-latest-small", "movies.csv", "", r"movies\.csv is empty"),
])  # fmt: skip
def test_empty_movielens_files_raise(tmp_path, layout, name, content, expected):
    folder = {"ml-100k": write_ml100k, "ml-1m": write_ml1m, "ml-latest-small": write_csv_layout}[layout](tmp_path / layout)
    write(folder / name, content)
    with pytest.raises(DataError, match=expected):
        load_movielens(folder)


def test_empty_and_header_only_atomic_item_files_raise(tmp_path):
    cases = (("", r"toy\.item is empty"), ("item_id:token\ttitle:token\n", r"toy\.item has a header but no rows"))
    for content, expected in cases:
        with pytest.raises(DataError, match=expected):
            load_atomic(atomic(tmp_path / "d", INTER + "u\t1\t1\n", item=content))


def test_blank_lines_are_skipped_and_counted(tmp_path):
    data = quietly(load_tabular, write(tmp_path / "r.csv", HEADER + "a,x,1\n\n,,\nb,y,2\n"))
    assert data.interactions["user_id"] == ["a", "b"]
    assert data.report["blank_lines"] == 2 and data.report["rows_read"] == 2


def test_old_mac_line_endings_are_lines(tmp_path):
    path = write(tmp_path / "r.csv", HEADER.replace("\n", "\r") + "a,x,1\rb,y,soon\r")
    with pytest.raises(DataError, match=r"r\.csv, line 3: column 'timestamp' must be a number, got 'soon'"):
        quietly(load_tabular, path)


# --- a huge line (a 5 MB field) loads, and messages that quote it stay short ------------------------------------


@pytest.mark.parametrize("sep, suffix", [(",", "csv"), ("\t", "tsv")])
def test_a_5mb_field_loads(tmp_path, sep, suffix):
    path = write(tmp_path / f"r.{suffix}", HEADER.replace(",", sep) + f"a{sep}{BIG}{sep}1\nb{sep}y{sep}2\n")
    data = quietly(load_tabular, path)
    assert data.interactions["item_id"][1] == "y" and len(data.interactions["item_id"][0]) == len(BIG)


def test_a_5mb_field_loads_from_atomic_and_json_lines_files(tmp_path):
    folder = atomic(tmp_path / "d", INTER + "u\t1\t1\n", item=f"item_id:token\tmovie_title:token_seq\n1\tA {BIG}\n")
    assert load_atomic(folder).catalog.titles[0] == f"A {BIG}"
    rows = write(tmp_path / "r.jsonl", json.dumps({"user_id": "u", "item_id": "1", "timestamp": 1, "note": BIG}) + "\n")
    assert len(quietly(load_tabular, rows).interactions["note"][0]) == len(BIG)


def test_a_title_with_a_long_run_of_spaces_does_not_hang(tmp_path):
    start = time.perf_counter()
    assert split_title_year("A" + " " * 1_000_000 + "B (1995)") == ("A" + " " * 1_000_000 + "B", "1995")
    assert split_title_year("A" + " " * 1_000_000 + "B") == ("A" + " " * 1_000_000 + "B", "")
    assert time.perf_counter() - start < 5  # was quadratic: hours for a 5 MB field


@pytest.mark.parametrize("content", [f"user_id,{BIG}\na,x\n", HEADER + f"a,x,{BIG}\n", HEADER + f"a,x,1\nb,x,1,{BIG}\n"])
def test_messages_quoting_a_5mb_field_stay_short(tmp_path, content):
    with pytest.raises(DataError) as error:
        quietly(load_tabular, write(tmp_path / "r.csv", content))
    assert len(str(error.value)) < 600 and "r.csv" in str(error.value)


# --- bad arguments ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", [None, 0, 1.5])
def test_load_data_with_a_source_that_is_not_a_name_or_path(source):
    with pytest.raises(DataError, match="source must be a dataset name or a path"):
        load_data(source)


def test_bad_separator_and_genre_separator_arguments(tmp_path):
    path = write(tmp_path / "r.csv", HEADER + "a,x,1\n")
    with pytest.raises(DataError, match="sep must be a field separator"):
        load_tabular(path, sep="")
    with pytest.raises(DataError, match="genres_sep must be a non-empty string"):
        load_tabular(path, items=write(tmp_path / "i.csv", "item_id,genres\nx,A|B\n"), genres_sep="")
    with pytest.raises(DataError, match="column_map must be a dict"):
        load_tabular(path, column_map=["user_id"])


# --- the pipeline: unknown and malformed items name the argument and the position -------------------------------


@pytest.fixture(scope="module")
def recommend(tmp_path_factory):
    titles = [f"Movie {i} ({1970 + i})" for i in range(30)]
    return pipeline("recommendation", model=str(save_tiny_model(tmp_path_factory.mktemp("lsrec"), titles)), device="cpu")


@pytest.mark.parametrize("inputs, kwargs, expected", [
    (None, {}, r"history must be a list of item ids or titles, got NoneType None"),
    ("m1", {}, r"history must be a list .*got str 'm1'; for one item pass \[item\]"),
    (["m1", None], {}, r"history\[1\]: an item is an id or a title \(str or int\), got NoneType None"),
    (["m1", 2.0], {}, r"history\[1\]: .*got float 2\.0"),
    ({"hist": ["m1"]}, {}, r"inputs needs a 'history' key .*its keys: 'hist'"),
    ([["m1"], {"history": ["m2", True]}], {}, r"inputs\[1\]\['history'\]\[1\]: .*got bool True"),
    (["m1"], {"top_k": "5"}, r"top_k must be a whole number >= 1, got '5'"),
    (["m1"], {"top_k": 2.5}, r"top_k must be a whole number >= 1, got 2\.5"),
    (["m1"], {"candidates": "m2"}, r"candidates must be a list .*got str 'm2'"),
    (["m1"], {"candidates": ["m2", "zz"]}, r"candidates\[1\]: unknown item 'zz'"),
    (["m1", "m100"], {}, r"history\[1\]: unknown item 'm100': .*close matches: 'm10 \(Movie 10 \(1980\)\)'"),
    (["movie 3"], {}, r"history\[0\]: unknown item 'movie 3': .*close matches: 'Movie 3 \(1973\)'"),
])  # fmt: skip
def test_pipeline_bad_input_says_what_and_where(recommend, inputs, kwargs, expected):
    with pytest.raises(ValueError, match=expected):
        recommend(inputs, **kwargs)


def test_pipeline_huge_unknown_item_gives_a_short_message_quickly(recommend):
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"unknown item 'xxx.*\(5000002 characters\)") as error:
        recommend(["m1", BIG])
    assert len(str(error.value)) < 300 and time.perf_counter() - start < 5


def test_pipeline_refuses_a_user_state_of_a_larger_catalog_naming_both_sizes(recommend, tmp_path):
    bigger = LSRecForSequentialRecommendation.from_pretrained(save_tiny_model(tmp_path, [f"M {i}" for i in range(45)]))
    state = encode_user(bigger, [to_tokens(44), 3, to_tokens(40)])  # was an IndexError deep in torch
    with pytest.raises(ValueError, match=r"state: this user state comes from a model with a catalog of 45 items, "
                                         r"but this model's catalog has 30"):
        recommend(["m1"], memory=state)
    state.num_items = None  # a state saved before it recorded its catalog: its largest item tells
    with pytest.raises(ValueError, match=r"a catalog of at least 45 items, but this model's catalog has 30"):
        recommend(["m1"], memory=state)


def test_pipeline_history_covering_the_whole_catalog_returns_empty_quickly_and_says_why(recommend):
    everything = [f"m{i}" for i in range(30)] * 3
    start = time.perf_counter()
    with pytest.warns(UserWarning, match=r"the history covers the whole catalog \(30 items\).*nothing is left to "
                                         r"recommend \(pass exclude_history=False"):
        assert recommend(everything, explain=True) == []
    assert time.perf_counter() - start < 2  # no deletion pass over a history with nothing to explain
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing excluded: no warning
        assert len(recommend(everything, top_k=3, exclude_history=False)) == 3


def test_pipeline_candidates_in_the_history_are_dropped_with_a_warning_naming_how_many(recommend):
    with pytest.warns(UserWarning, match=r"2 of the 3 candidates are in the history.*1 items come back instead of 5"):
        assert [item["item_id"] for item in recommend(["m1", "m2"], candidates=["m1", "m2", "m3"], top_k=5)] == ["m3"]
    with pytest.warns(UserWarning, match=r"inputs\[1\]: 2 of the 2 candidates .*nothing is left"):
        assert recommend([["m5"], ["m1", "m2"]], candidates=["m1", "m2"])[1] == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # fewer candidates than top_k, none in the history: nothing to say
        assert len(recommend(["m9"], candidates=["m1", "m2"], top_k=5)) == 2


def test_pipeline_profile_of_a_history_within_the_short_segment_has_no_long_term(recommend):
    result = recommend(["m1", "m2"], profile=True)  # the short segment holds 4 events
    assert result["profile"]["long_term"] == {} and result["profile"]["short_term"]["keywords"]


# --- fuzzing: random input loads consistently or raises DataError; any other exception fails -----------------------

TEXT = ',;\t|:\n\r "\'ab1.9é\x00\\-e+{}[]'  # separators, quotes, line ends, a NUL, a non-ASCII letter, JSON
body = (
    st.binary(max_size=300)
    | st.text(alphabet=TEXT, max_size=150).map(str.encode)
    | st.text(alphabet=TEXT, max_size=150).map(lambda text: text.encode("latin-1"))
)
headers = st.sampled_from(["", HEADER, HEADER.replace(",", "\t"), "user_id,item_id\n", "user_id,item_id,timestamp,rating\n"])


def load_or_data_error(load, *args, **kwargs):
    """The loaded data, checked; None for a DataError. Any other exception propagates and fails the test."""
    try:
        data = quietly(load, *args, **kwargs)
    except DataError:
        return None
    check_consistent(data)
    return data


@FUZZ
@given(header=headers, content=body, suffix=st.sampled_from(["csv", "tsv", "jsonl"]))
def test_random_bytes_as_a_table_load_or_raise_data_error(tmp_path, header, content, suffix):
    path = write(tmp_path / f"r.{suffix}", header.encode() + content)
    load_or_data_error(load_tabular, path)


json_lines = st.lists(st.sampled_from([
    '{"user_id": 1, "item_id": "x", "timestamp": 1}', '{"user_id": "a", "item_id": 2.0, "timestamp": 1.5, "rating": 4}', "{}",
    "[]", "null", '{"user_id": null, "item_id": [1], "timestamp": "2"}', '{"user_id": "a", "item_id": {"b": 1}, "timestamp": true}',
    '{"user_id": 1e400, "item_id": 1, "timestamp": -0}', '{"user_id": 1, "item_id": 2}', '{"user_id": "a", "item_id": "b", "timestamp": NaN}',
    "", " ", '{"user_id": "a", "item_id": "x", "timestamp": 1', "[" * 50_000,
]), max_size=6)  # fmt: skip


@FUZZ
@given(lines=json_lines)
def test_random_json_lines_load_or_raise_data_error(tmp_path, lines):
    load_or_data_error(load_tabular, write(tmp_path / "r.jsonl", "\n".join(lines)))


ids = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=8).filter(lambda s: s == s.strip())


@FUZZ
@given(rows=st.lists(st.tuples(ids, ids, st.integers(0, 2**53)), min_size=1, max_size=10))
def test_random_rows_round_trip_through_a_csv_file(tmp_path, rows):
    """Ids with commas, quotes and any letter come back as written (csv-quoted); repeated events once."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([("user_id", "item_id", "timestamp"), *rows])
    data = load_or_data_error(load_tabular, write(tmp_path / "r.csv", out.getvalue()))
    expected = list(dict.fromkeys((u, i, float(t)) for u, i, t in rows))
    assert list(zip(data.interactions["user_id"], data.interactions["item_id"], data.interactions["timestamp"])) == expected
    assert data.report["duplicates_dropped"] == len(rows) - len(expected)


def parquet_bytes():
    buffer = io.BytesIO()
    pd.DataFrame({"user_id": ["a", "b", "a"], "item_id": ["x", "y", "z"], "timestamp": [1, 2, 3]}).to_parquet(buffer)
    return buffer.getvalue()


PARQUET = parquet_bytes()


# half the changes hit the footer, where the schema and the pandas metadata are
positions = st.integers(0, len(PARQUET) - 1) | st.integers(len(PARQUET) - 1200, len(PARQUET) - 1)


@FUZZ
@given(changes=st.lists(st.tuples(positions, st.integers(0, 255)), min_size=1, max_size=4))
def test_corrupted_parquet_loads_or_raises_data_error(tmp_path, changes):
    data = bytearray(PARQUET)
    for position, value in changes:
        data[position] = value
    load_or_data_error(load_tabular, write(tmp_path / "r.parquet", bytes(data)))


LAYOUTS = {"ml-100k": ("u.data", "u.item", "u.user"), "ml-1m": ("ratings.dat", "movies.dat", "users.dat"),
           "ml-latest-small": ("ratings.csv", "movies.csv", None)}  # fmt: skip
field = st.text(alphabet=' ab1(9)é\x00-:"\',;|', max_size=10)


@FUZZ
@given(layout=st.sampled_from(sorted(LAYOUTS)), which=st.sampled_from([0, 1, 2]), as_bytes=st.booleans(), content=body,
       rows=st.lists(st.lists(field, min_size=3, max_size=5), min_size=1, max_size=3))  # fmt: skip
def test_random_movielens_files_load_or_raise_data_error(tmp_path, layout, which, as_bytes, content, rows):
    """One file of a valid folder replaced by random bytes, or by rows of random fields."""
    folder = {"ml-100k": write_ml100k, "ml-1m": write_ml1m, "ml-latest-small": write_csv_layout}[layout](tmp_path / layout)
    name = LAYOUTS[layout][which] or LAYOUTS[layout][0]
    sep = {"ml-100k": "\t" if name == "u.data" else "|", "ml-1m": "::", "ml-latest-small": ","}[layout]
    write(folder / name, content if as_bytes else "".join(sep.join(row) + "\n" for row in rows))
    load_or_data_error(load_movielens, folder)


@FUZZ
@given(item=st.sampled_from(["", "item_id:token\tmovie_title:token_seq\tclass:token_seq\n"]), content=body)
def test_random_atomic_item_file_loads_or_raises_data_error(tmp_path, item, content):
    folder = atomic(tmp_path / "d", INTER + "u\t1\t1\nu\t2\t2\n")
    write(folder / "toy.item", item.encode() + content)
    load_or_data_error(load_atomic, folder)


scalars = st.none() | st.booleans() | st.integers(-3, 40) | st.floats() | st.text(max_size=4) | st.sampled_from(
    ["m1", "m3", "Movie 3 (1973)", "movie 4", "m99", "x" * 600]
)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["history", "hist"]), inner, max_size=2)
)


@settings(max_examples=60, deadline=None)
@given(inputs=values, top_k=st.none() | scalars, candidates=st.none() | values, explain=st.booleans())
def test_random_pipeline_input_recommends_or_raises_value_error(recommend, inputs, top_k, candidates, explain):
    kwargs = {name: value for name, value in (("top_k", top_k), ("candidates", candidates)) if value is not None}
    try:
        items = recommend(inputs, explain=explain, **kwargs)
    except ValueError as error:
        assert 0 < len(str(error)) < 1500  # a message, not a dump of the input
        return
    users = items if items and isinstance(items[0], list) else [items]
    for ranked in users:  # whatever came in, what comes out is a ranking
        assert all({"item_id", "title", "score", "explanation"} <= set(item) for item in ranked)
        scores = [item["score"] for item in ranked]
        assert scores == sorted(scores, reverse=True)
        asked = top_k if isinstance(top_k, int) and not isinstance(top_k, bool) else 10
        assert len({item["item_id"] for item in ranked}) == len(ranked) <= asked


def test_unprintable_column_name_is_named_not_a_cast_error(tmp_path):
    # found by the Parquet fuzzer: one byte of the schema turned 't' of 'timestamp' into NUL
    import pandas as pd

    path = tmp_path / "r.parquet"
    pd.DataFrame({"user_id": ["1", "2"], "item_id": ["5", "6"], "\x00imestamp": ["1", "2"]}).to_parquet(path)
    with pytest.raises(DataError, match=r"r\.parquet.*column name '\\x00imestamp' has unprintable characters"):
        load_tabular(path)


@pytest.mark.parametrize("edit, message", [
    ({"hidden_size": "16"}, "hidden_size must be int, got str '16'"),
    ({"num_attention_heads": 3}, r"hidden_size \(16\) must be divisible by num_attention_heads \(3\)"),
    ({"segment_length": 0}, "segment_length must be >= 1, got 0"),
    ({"use_item_ids": "yes"}, "use_item_ids must be bool"),
])
def test_a_bad_value_in_config_json_is_an_error_naming_the_file_and_the_field(tmp_path, edit, message):
    from transformers import AutoModel

    model_dir = save_tiny_model(tmp_path / "model", [f"Movie {i}" for i in range(10)])
    config_path = model_dir / "config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, **edit}))
    for load in (AutoModel.from_pretrained, LSRecForSequentialRecommendation.from_pretrained):
        with pytest.raises(ValueError, match=f"config.json does not describe a valid LSRec model: .*{message}"):
            load(model_dir)
