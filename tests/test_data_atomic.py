import logging
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lsrec_hf.data import DataError, load_atomic, load_data

INTER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
ITEM = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\tstudio:token\n"
USER = "user_id:token\tage:token\tgender:token\n"


def write(path, text, encoding="utf-8"):
    path.write_text(text, encoding=encoding)
    return path


@pytest.fixture
def atomic_dir(tmp_path):
    write(
        tmp_path / "toy.inter",
        INTER + "u1\t10\t4\t100\nu1\t20\t3\t200\nu2\t30\t5\t150\nu2\t10\t2\t160\nu1\t20\t3\t200\n",
    )
    write(
        tmp_path / "toy.item",
        ITEM + "20\tCafé Society\t2016\tComedy Drama\tAmazon\n10\tToy Story\t1995\tAnimation Comedy\tPixar\n",
    )
    write(tmp_path / "toy.user", USER + "u1\t24\tM\nu2\t53\tF\n")
    return tmp_path


def load(directory, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_atomic(directory, **kwargs)


def test_interactions_have_typed_columns(atomic_dir):
    data = load(atomic_dir)
    assert data.name == "toy"
    features = data.interactions.features
    assert {name: feature.dtype for name, feature in features.items()} == {
        "user_id": "string", "item_id": "string", "rating": "float32", "timestamp": "float64",
    }  # fmt: skip
    assert data.interactions[2] == {"user_id": "u2", "item_id": "30", "rating": 5.0, "timestamp": 150.0}


def test_item_fields_become_title_year_genres_and_attributes(atomic_dir):
    catalog = load(atomic_dir).catalog
    i = catalog.index("10")
    assert catalog.titles[i] == "Toy Story"
    assert catalog.texts[i] == "Toy Story (1995). Genres: Animation, Comedy."
    assert catalog.attributes["genres"][i] == ["Animation", "Comedy"]
    assert catalog.attributes["year"][i] == "1995"
    assert catalog.attributes["studio"][i] == "Pixar"
    assert catalog.titles[catalog.index("20")] == "Café Society"


def test_catalog_lists_item_file_first_then_new_items_by_first_appearance(atomic_dir):
    with pytest.warns(UserWarning, match="1 of 3 items appear only in the interactions"):
        catalog = load_atomic(atomic_dir).catalog
    assert catalog.item_ids == ["20", "10", "30"]
    assert catalog.titles[2] == "" and catalog.texts[2] == "item 30"
    assert catalog.attributes["genres"][2] == [] and catalog.attributes["studio"][2] == ""


def test_every_interaction_item_is_in_the_catalog(atomic_dir):
    data = load(atomic_dir)
    assert all(item in data.catalog for item in data.interactions["item_id"])


def test_duplicate_user_item_timestamp_rows_are_dropped_and_counted(atomic_dir, caplog):
    data = load(atomic_dir)
    assert data.interactions.num_rows == 4 and data.interactions["timestamp"] == [100.0, 200.0, 150.0, 160.0]
    assert data.report["rows_read"] == 5 and data.report["duplicates_dropped"] == 1
    assert "toy: dropped 1 duplicate events" in caplog.text


def test_duplicates_keep_keeps_them_and_says_so(atomic_dir, caplog):
    caplog.set_level(logging.INFO, logger="lsrec_hf.data")
    data = load(atomic_dir, duplicates="keep")
    assert data.interactions.num_rows == 5 and data.report["duplicates_dropped"] == 0
    assert "toy: 1 rows repeat an earlier (user_id, item_id, timestamp); they are kept" in caplog.text


def test_user_file_becomes_users_dataset(atomic_dir):
    users = load(atomic_dir).users
    assert users.column_names == ["user_id", "age", "gender"]
    assert users[1] == {"user_id": "u2", "age": "53", "gender": "F"}


def test_item_and_user_files_are_optional(tmp_path):
    write(tmp_path / "solo.inter", INTER + "a\tx\t1\t1\n")
    with pytest.warns(UserWarning, match="no item file"):
        data = load_atomic(tmp_path)
    assert data.users is None and data.catalog.texts == ["item x"]


@pytest.mark.filterwarnings("ignore:.*appear only in the interactions")
def test_missing_timestamp_uses_row_order_with_a_warning(tmp_path):
    write(tmp_path / "t.inter", "user_id:token\titem_id:token\tclicks:float\na\tx\t3\na\ty\t1\n")
    with pytest.warns(UserWarning, match="no timestamp column"):
        data = load_atomic(tmp_path)
    assert data.interactions["timestamp"] == [0.0, 1.0]
    assert data.interactions["clicks"] == ["3", "1"]  # other columns are kept as strings


def test_non_numeric_timestamp_names_file_and_line(tmp_path):
    # data row 3 is line 4 of the file: the header is line 1
    write(tmp_path / "bad.inter", INTER + "a\tx\t1\t1\nb\ty\t1\t2\nc\tz\t1\tyesterday\n")
    with pytest.raises(DataError, match=r"bad\.inter, line 4: column 'timestamp:float'.*'yesterday'"):
        load(tmp_path)


def test_row_with_missing_field_names_file_and_line(tmp_path):
    write(tmp_path / "bad.inter", INTER + "a\tx\t1\t1\n\nb\ty\t1\n")
    with pytest.raises(DataError, match=r"bad\.inter, line 4: found 3 fields, expected 4"):
        load(tmp_path)


def test_blank_lines_do_not_shift_line_numbers(tmp_path):
    write(tmp_path / "bad.inter", INTER + "a\tx\t1\t1\n\n   \nb\ty\tgood\t2\n")
    with pytest.raises(DataError, match=r"line 5: column 'rating:float'"):
        load(tmp_path)


def test_missing_user_column_names_file_and_columns(tmp_path):
    write(tmp_path / "bad.inter", "uid:token\titem_id:token\nu\ti\n")
    with pytest.raises(DataError, match=r"bad\.inter has no user_id column; columns: \['uid', 'item_id'\]"):
        load(tmp_path)


def test_comma_separated_file_gets_a_separator_hint(tmp_path):
    write(tmp_path / "bad.inter", "user_id:token,item_id:token\nu,i\n")
    with pytest.raises(DataError, match="line 1: the header has a single field .*comma-separated"):
        load(tmp_path)
    write(tmp_path / "bad.inter", INTER + "a,x,1,1\n")
    with pytest.raises(DataError, match="line 2: found 1 fields, expected 4.*comma-separated"):
        load(tmp_path)


def test_empty_and_header_only_files_raise(tmp_path):
    write(tmp_path / "e.inter", "")
    with pytest.raises(DataError, match=r"e\.inter is empty"):
        load(tmp_path)
    write(tmp_path / "e.inter", INTER)
    with pytest.raises(DataError, match="has a header but no rows"):
        load(tmp_path)


def test_empty_item_id_names_line(tmp_path):
    write(tmp_path / "bad.inter", INTER + "a\t\t1\t1\n")
    with pytest.raises(DataError, match=r"line 2: column 'item_id:token' \(the item_id column\) is empty"):
        load(tmp_path)


def test_duplicate_item_in_item_file_names_both_lines(atomic_dir):
    write(atomic_dir / "toy.item", ITEM + "10\tA\t1\tX\ts\n20\tB\t2\tY\ts\n10\tC\t3\tZ\ts\n")
    with pytest.raises(DataError, match=r"toy\.item, line 4: item id '10' appears again \(first at line 2\)"):
        load(atomic_dir)


def test_missing_directory_and_missing_inter_file_raise(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load(tmp_path / "nope")
    with pytest.raises(DataError, match=r"no RecBole atomic file \(\*\.inter\)"):
        load(tmp_path)
    with pytest.raises(DataError, match=r"other\.inter does not exist"):
        load(tmp_path, name="other")


def test_several_datasets_in_one_folder_need_a_name(atomic_dir):
    write(atomic_dir / "other.inter", INTER + "a\tx\t1\t1\n")
    with pytest.raises(DataError, match=r"several datasets \['other', 'toy'\]; pass name="):
        load(atomic_dir)
    assert load(atomic_dir, name="other").interactions.num_rows == 1


def test_template_with_unknown_field_names_it(atomic_dir):
    with pytest.raises(DataError, match=r"\{director\}.*toy\.item has no such column"):
        load(atomic_dir, text_template="{title} by {director}")
    data = load(atomic_dir, text_template="{title} ({studio})")
    assert data.catalog.texts[0] == "Café Society (Amazon)"


def test_non_utf8_bytes_name_the_line_and_the_encoding(atomic_dir):
    (atomic_dir / "toy.item").write_bytes((ITEM + "10\tToy\t1995\tX\tP\n20\tCaf\xe9\t2016\tY\tA\n").encode("latin-1"))
    with pytest.raises(DataError, match=r"toy\.item, line 3: .*not valid utf-8.*encoding='latin-1'"):
        load(atomic_dir)
    assert load(atomic_dir, encoding="latin-1").catalog.titles[1] == "Café"


def test_load_data_reads_an_atomic_folder(atomic_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = load_data(data_dir=atomic_dir)
    assert data.name == "toy" and data.interactions.num_rows == 4  # one duplicate event dropped


tokens = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1, max_size=6)
rows = st.lists(st.tuples(tokens, tokens, st.integers(0, 5), st.integers(0, 2**40)), min_size=1, max_size=8)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows)
def test_random_rows_round_trip_through_an_inter_file(tmp_path, rows):
    lines = "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows)
    write(tmp_path / "rt.inter", INTER + lines)
    data = load(tmp_path, duplicates="keep")  # random rows may repeat one
    assert data.interactions["user_id"] == [u for u, _, _, _ in rows]
    assert data.interactions["item_id"] == [i for _, i, _, _ in rows]
    assert data.interactions["rating"] == [float(r) for _, _, r, _ in rows]
    assert data.interactions["timestamp"] == [float(t) for _, _, _, t in rows]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=200) | st.text(alphabet="ab1.\t\n\r :x\"'\\", max_size=80).map(str.encode))
def test_garbage_inter_file_raises_only_data_error(tmp_path, body):
    (tmp_path / "g.inter").write_bytes(INTER.encode() + body)
    try:
        load(tmp_path)
    except DataError:
        pass
