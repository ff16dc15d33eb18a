import json

import datasets
import pandas as pd
import pytest

from lsrec_hf.data import DataError, from_hf_dataset, load_data, load_tabular

COLUMN_MAP = {"user_id": "uid", "item_id": "movie", "timestamp": "ts"}
ITEM_MAP = {"item_id": "movie", "title": "name"}
ROWS = [
    {"uid": "alice", "movie": "m1", "ts": 100, "rating": 4.5, "device": "phone"},
    {"uid": "alice", "movie": "m2", "ts": 200, "rating": 3.0, "device": "tv"},
    {"uid": "bob", "movie": "m1", "ts": 150, "rating": 5.0, "device": "phone"},
]
ITEMS = [
    {"movie": "m2", "name": "Heat", "year": "1995", "genres": "Action|Crime", "blurb": "A heist."},
    {"movie": "m1", "name": "Café Society", "year": "2016", "genres": "Comedy", "blurb": "Love in the 30s."},
]


def write_rows(path, rows, sep=","):
    text = sep.join(rows[0]) + "\n" + "".join(sep.join(str(v) for v in row.values()) + "\n" for row in rows)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path):
    return write_rows(tmp_path / "ratings.csv", ROWS), write_rows(tmp_path / "movies.tsv", ITEMS, sep="\t")


def test_csv_with_column_map_keeps_extra_columns_as_strings(files):
    ratings, movies = files
    data = load_tabular(ratings, column_map=COLUMN_MAP, items=movies, item_column_map=ITEM_MAP)
    assert data.name == "ratings"
    assert data.interactions.column_names == ["user_id", "item_id", "timestamp", "rating", "device"]
    assert data.interactions[0] == {"user_id": "alice", "item_id": "m1", "timestamp": 100.0, "rating": 4.5, "device": "phone"}
    assert data.interactions.features["rating"].dtype == "float32"
    catalog = data.catalog
    assert catalog.item_ids == ["m2", "m1"]
    assert catalog.texts == ["Heat (1995). Genres: Action, Crime.", "Café Society (2016). Genres: Comedy."]
    assert catalog.attributes["blurb"] == ["A heist.", "Love in the 30s."]


def test_text_column_is_used_as_the_item_text(files):
    ratings, movies = files
    data = load_tabular(ratings, column_map=COLUMN_MAP, items=movies, item_column_map={"item_id": "movie"}, text_column="blurb")
    assert data.catalog.texts == ["A heist.", "Love in the 30s."]


@pytest.mark.parametrize("suffix", ["tsv", "jsonl", "parquet"])
def test_every_format_gives_the_same_interactions(tmp_path, files, suffix):
    path = tmp_path / f"ratings.{suffix}"
    if suffix == "tsv":
        write_rows(path, ROWS, sep="\t")
    elif suffix == "jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    else:
        pd.DataFrame(ROWS).to_parquet(path)
    with pytest.warns(UserWarning, match="no item file"):
        data = load_tabular(path, column_map=COLUMN_MAP)
    with pytest.warns(UserWarning):
        expected = load_tabular(files[0], column_map=COLUMN_MAP)
    assert data.interactions.to_list() == expected.interactions.to_list()


def test_integer_ids_from_json_stay_whole_numbers(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"user_id": 1, "item_id": 7, "timestamp": 5}\n{"user_id": 2, "item_id": 8.0, "timestamp": 6}\n')
    with pytest.warns(UserWarning):
        data = load_tabular(path)
    assert data.interactions["item_id"] == ["7", "8"]


def test_parquet_datetime_timestamps_become_unix_seconds(tmp_path):
    path = tmp_path / "r.parquet"
    pd.DataFrame({"user_id": ["a"], "item_id": ["x"], "timestamp": pd.to_datetime(["1970-01-02"])}).to_parquet(path)
    with pytest.warns(UserWarning):
        assert load_tabular(path).interactions["timestamp"] == [86400.0]


def test_missing_mapped_column_names_column_file_and_columns(files):
    expected = r"ratings\.csv: column 'user' \(the user_id column, from column_map\) not found; columns: \['uid', 'movie', 'ts', 'rating', 'device'\]"
    with pytest.raises(DataError, match=expected):
        load_tabular(files[0], column_map={**COLUMN_MAP, "user_id": "user"})


def test_unmapped_required_column_suggests_the_mapping(files):
    with pytest.raises(DataError, match=r"no 'user_id' column.*column_map=\{'user_id': 'your_column'\}"):
        load_tabular(files[0])


def test_unknown_column_map_key_is_named(files):
    with pytest.raises(DataError, match=r"column_map key 'user' is not one of"):
        load_tabular(files[0], column_map={"user": "uid"})


def test_missing_item_column_names_the_items_file(files):
    with pytest.raises(DataError, match=r"movies\.tsv: no 'item_id' column"):
        load_tabular(files[0], column_map=COLUMN_MAP, items=files[1])


def test_non_numeric_timestamp_names_file_and_row(tmp_path):
    rows = [dict(r) for r in ROWS] + [dict(ROWS[0])]
    rows[2]["ts"] = "soon"
    path = write_rows(tmp_path / "r.csv", rows)
    # data row 3 is line 4: the header is line 1
    with pytest.raises(DataError, match=r"r\.csv, line 4: column 'ts' \(the timestamp column\) must be a number, got 'soon'"):
        load_tabular(path, column_map=COLUMN_MAP)


def test_non_numeric_rating_in_a_dataset_names_the_row(tmp_path):
    ds = datasets.Dataset.from_list([{"u": "a", "i": "x", "t": 1, "r": "5"}, {"u": "b", "i": "y", "t": 2, "r": "five"}])
    with pytest.raises(DataError, match=r"row 2: column 'r' \(the rating column\) must be a number, got 'five'"):
        from_hf_dataset(ds, column_map={"user_id": "u", "item_id": "i", "timestamp": "t", "rating": "r"})


def test_invalid_json_line_is_named(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"user_id": "a", "item_id": "x", "timestamp": 1}\n\n{"user_id": "b", \n')
    with pytest.raises(DataError, match=r"r\.jsonl, line 3: not valid JSON"):
        load_tabular(path)


def test_latin1_file_read_as_utf8_names_line_and_encoding(tmp_path):
    path = tmp_path / "r.tsv"
    path.write_bytes("user_id\titem_id\ttimestamp\na\tx\t1\nb\tCafé\t2\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"r\.tsv, line 3: .*not valid utf-8 text; pass .*encoding="):
        load_tabular(path)
    with pytest.warns(UserWarning):
        assert load_tabular(path, encoding="latin-1").interactions["item_id"] == ["x", "Café"]


def test_tab_separated_file_named_csv_gets_a_separator_hint(tmp_path):
    path = write_rows(tmp_path / "r.csv", ROWS, sep="\t")
    with pytest.raises(DataError, match=r"not found; columns: \['uid\\tmovie.*looks tab-separated; pass sep='\\t'"):
        load_tabular(path, column_map=COLUMN_MAP)
    with pytest.warns(UserWarning):
        assert load_tabular(path, column_map=COLUMN_MAP, sep="\t").interactions.num_rows == 3


def test_empty_and_missing_files_raise(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"empty\.csv is empty"):
        load_tabular(tmp_path / "empty.csv")
    with pytest.raises(DataError, match=r"interactions file .*nope\.csv does not exist"):
        load_tabular(tmp_path / "nope.csv")
    with pytest.raises(DataError, match=r"cannot tell the format from the extension \.xlsx"):
        (tmp_path / "r.xlsx").write_text("x")
        load_tabular(tmp_path / "r.xlsx")


def test_from_hf_dataset_with_items_dataset():
    interactions = datasets.Dataset.from_list(ROWS)
    items = datasets.Dataset.from_list(ITEMS)
    data = from_hf_dataset(interactions, COLUMN_MAP, items=items, item_column_map=ITEM_MAP, name="toy")
    assert data.name == "toy" and data.interactions.num_rows == 3
    assert data.catalog.titles == ["Heat", "Café Society"]
    assert data.catalog.attributes["genres"] == [["Action", "Crime"], ["Comedy"]]


def test_from_hf_dataset_rejects_a_dataset_dict_and_an_empty_dataset():
    ds = datasets.Dataset.from_list(ROWS)
    with pytest.raises(DataError, match=r"DatasetDict with splits \['train'\]; pass one split"):
        from_hf_dataset(datasets.DatasetDict({"train": ds}), COLUMN_MAP)
    with pytest.raises(DataError, match="is empty"):
        from_hf_dataset(ds.select([]), COLUMN_MAP)


def test_column_map_that_clashes_with_an_existing_column_is_refused():
    ds = datasets.Dataset.from_list([{"user_id": "a", "uid": "b", "item_id": "x", "timestamp": 1}])
    with pytest.raises(DataError, match="already has a 'user_id' column"):
        from_hf_dataset(ds, {"user_id": "uid"}, name="clash")


def test_load_data_reads_a_file_as_a_table(files):
    data = load_data(data_dir=files[0], column_map=COLUMN_MAP, items=files[1], item_column_map=ITEM_MAP)
    assert data.catalog.titles == ["Heat", "Café Society"]
