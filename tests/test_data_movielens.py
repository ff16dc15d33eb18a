import os
import subprocess
import zipfile

import pytest

from lsrec_hf.data import DataError, download_movielens, fetch_ml100k_offline, load_data, load_movielens
from lsrec_hf.data import movielens
from lsrec_hf.data.movielens import split_title_year

from conftest import write_csv_layout, write_ml100k, write_ml1m


def test_split_title_year():
    assert split_title_year("Toy Story (1995)") == ("Toy Story", "1995")
    assert split_title_year("City of Lost Children, The (Cité des enfants perdus, La) (1995) ") == (
        "City of Lost Children, The (Cité des enfants perdus, La)", "1995",
    )  # fmt: skip
    assert split_title_year("Babylon 5") == ("Babylon 5", "")
    assert split_title_year("(1995)") == ("(1995)", "")


def test_ml100k_titles_years_and_genre_flags(tmp_path):
    data = load_movielens(write_ml100k(tmp_path / "ml-100k"))
    catalog = data.catalog
    assert data.name == "ml-100k" and catalog.item_ids == ["1", "2", "3"]
    assert catalog.titles[0] == "Toy Story"
    assert catalog.texts[0] == "Toy Story (1995). Genres: Animation, Children's, Comedy."
    assert catalog.attributes["url"][0] == "http://imdb/1"
    assert data.interactions.num_rows == 4 and data.interactions[0]["rating"] == 5.0
    assert data.users[0] == {"user_id": "1", "age": "24", "gender": "M", "occupation": "technician", "zip_code": "85711"}


def test_latin1_title_is_decoded(tmp_path):
    catalog = load_movielens(write_ml100k(tmp_path / "ml-100k")).catalog
    assert catalog.titles[1] == "Café"


def test_ml100k_title_without_year_takes_it_from_the_release_date(tmp_path):
    catalog = load_movielens(write_ml100k(tmp_path / "ml-100k")).catalog
    assert catalog.titles[2] == "unknown" and catalog.attributes["year"][2] == "1996"


def test_ml100k_without_u_genre_uses_the_fixed_genre_list(tmp_path):
    catalog = load_movielens(write_ml100k(tmp_path / "ml-100k", with_genre_file=False)).catalog
    assert catalog.attributes["genres"][0] == ["Animation", "Children's", "Comedy"]


def test_ml100k_non_numeric_timestamp_names_file_and_line(tmp_path):
    folder = write_ml100k(tmp_path / "ml-100k")
    (folder / "u.data").write_text("1\t1\t5\t874965758\n1\t2\t3\t876893171\n2\t1\t4\t1995-01-01\n")
    with pytest.raises(DataError, match=r"u\.data, line 3: column 'timestamp' must be a number, got '1995-01-01'"):
        load_movielens(folder)


def test_ml100k_non_integer_id_names_file_and_line(tmp_path):
    folder = write_ml100k(tmp_path / "ml-100k")
    (folder / "u.data").write_text("1\t1\t5\t874965758\nuser2\t2\t3\t876893171\n")
    with pytest.raises(DataError, match=r"u\.data, line 2: column 'user_id' must be a whole number, got 'user2'"):
        load_movielens(folder)


def test_ml1m_double_colon_files(tmp_path):
    data = load_movielens(write_ml1m(tmp_path / "ml-1m"))
    catalog = data.catalog
    star_wars = catalog.index("260")
    assert catalog.titles[star_wars] == "Star Wars: Episode IV - A New Hope"
    assert catalog.attributes["genres"][star_wars] == ["Action", "Adventure", "Sci-Fi"]
    assert catalog.titles[catalog.index("7")] == "Café au lait"
    assert data.interactions[1] == {"user_id": "1", "item_id": "260", "rating": 3.0, "timestamp": 978302109.0}
    assert data.users.column_names == ["user_id", "gender", "age", "occupation", "zip_code"]


def test_ml1m_wrong_separator_names_line(tmp_path):
    folder = write_ml1m(tmp_path / "ml-1m")
    (folder / "ratings.dat").write_text("1::1193::5::978300760\n1,260,3,978302109\n")
    with pytest.raises(DataError, match=r"ratings\.dat, line 2: found 1 fields, expected 4.*comma-separated, not '::'"):
        load_movielens(folder)


def test_csv_layout_with_quoted_titles_and_no_genres(tmp_path):
    data = load_movielens(write_csv_layout(tmp_path / "ml-latest-small"))
    catalog = data.catalog
    assert data.name == "ml-latest-small"
    assert catalog.titles == ["American President, The", "Babylon 5"]
    assert catalog.texts == ["American President, The (1995). Genres: Comedy, Drama, Romance.", "Babylon 5."]
    assert data.interactions["rating"] == [4.5, 3.0, 2.0]


def test_layout_is_found_one_folder_down(tmp_path):
    write_ml100k(tmp_path / "download" / "ml-100k")
    (tmp_path / "src").mkdir()
    assert load_movielens(tmp_path / "download").name == "ml-100k"
    with pytest.raises(DataError, match="not a MovieLens folder; expected one of"):
        load_movielens(tmp_path / "src")
    with pytest.raises(DataError, match="does not exist"):
        load_movielens(tmp_path / "nothing")


def make_zip(tmp_path, variant="ml-100k"):
    source = write_ml100k(tmp_path / "src" / variant)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with zipfile.ZipFile(mirror / f"{variant}.zip", "w") as archive:
        for path in source.iterdir():
            archive.write(path, f"{variant}/{path.name}")
    return mirror.as_uri()


def test_download_from_a_file_url_unzips_into_the_cache(tmp_path):
    base_url = make_zip(tmp_path)
    folder = download_movielens("ml-100k", cache_dir=tmp_path / "cache", base_url=base_url)
    assert folder == str(tmp_path / "cache" / "datasets" / "grouplens" / "ml-100k")
    assert sorted(os.listdir(folder)) == ["u.data", "u.genre", "u.item", "u.user"]
    assert os.listdir(tmp_path / "cache" / "datasets" / "grouplens") == ["ml-100k"]  # no temporary leftovers
    os.remove(tmp_path / "mirror" / "ml-100k.zip")
    assert download_movielens("ml-100k", cache_dir=tmp_path / "cache", base_url=base_url) == folder  # cached
    assert load_data(data_dir=folder).catalog.titles[1] == "Café"


def test_download_of_a_missing_file_raises_data_error(tmp_path):
    with pytest.raises(DataError, match=r"could not download .*ml-1m\.zip"):
        download_movielens("ml-1m", cache_dir=tmp_path / "cache", base_url=(tmp_path).as_uri())
    assert os.listdir(tmp_path / "cache" / "datasets" / "grouplens") == []


def test_download_of_a_broken_zip_leaves_nothing_behind(tmp_path):
    (tmp_path / "ml-1m.zip").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a zip archive"):
        download_movielens("ml-1m", cache_dir=tmp_path / "cache", base_url=tmp_path.as_uri())
    assert os.listdir(tmp_path / "cache" / "datasets" / "grouplens") == []


def test_download_rejects_a_variant_that_is_a_path(tmp_path):
    with pytest.raises(DataError, match="not a MovieLens release name"):
        download_movielens("../etc", cache_dir=tmp_path)


def failing_pip(*args, **kwargs):
    return subprocess.CompletedProcess(args, 1, "", "ERROR: No matching distribution found for recbole==1.2.1")


def test_fetch_ml100k_falls_back_to_grouplens_when_pip_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(movielens.subprocess, "run", failing_pip)
    monkeypatch.setattr(movielens, "GROUPLENS_URL", make_zip(tmp_path))
    folder = fetch_ml100k_offline(cache_dir=tmp_path / "cache")
    assert folder.endswith(os.path.join("grouplens", "ml-100k"))
    assert load_data(data_dir=folder).interactions.num_rows == 4


def test_fetch_ml100k_explains_how_to_get_the_data_when_all_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(movielens.subprocess, "run", failing_pip)
    monkeypatch.setattr(movielens, "GROUPLENS_URL", tmp_path.as_uri())
    with pytest.raises(DataError, match=r"(?s)No matching distribution.*could not download.*--data_dir"):
        fetch_ml100k_offline(cache_dir=tmp_path / "cache")


def test_fetch_ml100k_returns_the_cached_folder_without_pip(tmp_path, monkeypatch):
    cached = tmp_path / "datasets" / "ml-100k"
    cached.mkdir(parents=True)
    for name in ("ml-100k.inter", "ml-100k.item", "ml-100k.user"):
        (cached / name).write_text("")
    monkeypatch.setattr(movielens.subprocess, "run", None)  # any call would fail
    assert fetch_ml100k_offline(cache_dir=tmp_path) == str(cached)


def test_load_data_rejects_an_unknown_source(tmp_path):
    with pytest.raises(DataError, match="neither a file or folder nor a known dataset"):
        load_data("netflix-prize")
    with pytest.raises(DataError, match="no data found"):
        load_data(data_dir=tmp_path)


@pytest.fixture(scope="session")
def ml100k_cache(tmp_path_factory):
    """Where the real MovieLens-100K is cached: $LSREC_HF_CACHE if set, else a folder for this session."""
    return os.environ.get("LSREC_HF_CACHE") or str(tmp_path_factory.mktemp("lsrec_hf_cache"))


def test_real_ml100k_has_943_users_1682_items_100000_ratings(ml100k_cache):
    try:
        folder = fetch_ml100k_offline(cache_dir=ml100k_cache)
    except DataError as e:
        pytest.skip(f"MovieLens-100K is out of reach from here: {e}")
    data = load_data(data_dir=folder)
    assert data.interactions.num_rows == 100_000
    assert len(set(data.interactions["user_id"])) == 943
    assert len(data.catalog) == 1682
    assert data.users.num_rows == 943
    assert data.catalog.titles[data.catalog.index("1")] == "Toy Story"
    assert data.catalog.texts[data.catalog.index("1")] == "Toy Story (1995). Genres: Animation, Children's, Comedy."
