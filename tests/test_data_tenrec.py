"""Tenrec's layout, on small samples written here in its column order (the real files need a licence)."""

import json
import sys

import numpy as np
import pytest

from conftest import ROOT, SMALL_MODEL, run
from lsrec_hf.data import DataError, load_data, load_tenrec
from lsrec_hf.processing.sequences import build_user_sequences

VIDEO_HEADER = "user_id,item_id,click,follow,like,share,video_category,watching_times,gender,age\n"
ARTICLE_HEADER = ("user_id,item_id,click,gender,age,exposure_count,click_count,like_count,comment_count,"
                  "read_percentage,item_score1,item_score2,category_second,category_first,item_score3\n")


def video_row(user, item, click, category=3, gender=1, age=2, like=0):
    return f"{user},{item},{click},0,{like},0,{category},1,{gender},{age}\n"


def article_row(user, item, click, first=7, second=70, gender=1, age=2):
    return f"{user},{item},{click},{gender},{age},10,3,1,0,0.5,0.1,0.2,{second},{first},0.3\n"


@pytest.fixture
def tenrec_dir(tmp_path):
    (tmp_path / "QK-video.csv").write_text(VIDEO_HEADER + video_row(1, 100, 1) + video_row(1, 101, 0)
                                           + video_row(2, 100, 1, gender=2, age=4) + video_row(1, 102, 1, category="\\N"))
    (tmp_path / "QB-article.csv").write_text(ARTICLE_HEADER + article_row(1, 100, 1) + article_row(3, 200, 1, gender=2)
                                             + article_row(3, 201, 0))
    return tmp_path


def test_positive_events_of_every_scenario_with_scenario_column_and_order(tenrec_dir):
    data = load_data(tenrec_dir)
    rows = data.interactions.to_pandas()
    assert list(rows["scenario"]) == ["QK-video", "QK-video", "QK-video", "QB-article", "QB-article"]
    assert list(rows["item_id"]) == ["QK-video:100", "QK-video:100", "QK-video:102", "QB-article:100", "QB-article:200"]
    assert list(rows["user_id"]) == ["1", "2", "1", "1", "3"]
    # the file order is the time, and the second file comes after the first
    assert rows["timestamp"].is_monotonic_increasing
    assert data.report["rows_in_files"] == 7 and data.report["rows_not_positive"] == 2
    assert data.report["rows_read"] == data.report["interactions"] + data.report["duplicates_dropped"] == 5
    sequences = build_user_sequences(data.interactions, data.catalog)
    user1 = sequences.items[sequences.user_ids.index("1")]
    assert [data.catalog.item_ids[i] for i in user1] == ["QK-video:100", "QK-video:102", "QB-article:100"]


def test_items_get_text_from_their_categories_and_users_their_features(tenrec_dir):
    data = load_tenrec(tenrec_dir)
    catalog = data.catalog
    assert catalog.texts[catalog.index("QK-video:100")] == "A video from QK-video. Categories: video category 3."
    assert catalog.texts[catalog.index("QK-video:102")] == "A video from QK-video. No category."  # \N is missing
    assert catalog.attributes["genres"][catalog.index("QB-article:200")] == ["article category 7", "article category 70"]
    users = data.users.to_pandas().set_index("user_id")
    assert users.loc["2", "gender"] == "2" and users.loc["2", "age"] == "4" and users.loc["3", "gender"] == "2"


def test_positive_column_scenarios_and_shared_item_ids(tenrec_dir):
    (tenrec_dir / "QB-video.csv").write_text(VIDEO_HEADER + video_row(5, 100, 1, like=1) + video_row(5, 103, 1))
    liked = load_tenrec(tenrec_dir, scenarios=["QB-video"], positive="like")
    assert list(liked.interactions["item_id"]) == ["QB-video:100"]
    shared = load_tenrec(tenrec_dir, scenarios=["QK-video", "QB-video"], shared_item_ids=True)
    assert shared.catalog.item_ids.count("video:100") == 1
    assert len(shared.catalog) == 3  # video:100, video:102, video:103
    with pytest.raises(DataError, match=r"QK-article\.csv.*present"):
        load_tenrec(tenrec_dir, scenarios=["QK-article"])
    with pytest.raises(DataError, match="not Tenrec's"):
        load_tenrec(tenrec_dir, scenarios=["QQ-music"])
    with pytest.raises(DataError, match="positive must be one of"):
        load_tenrec(tenrec_dir, positive="watching_times")


def test_bad_rows_are_named_by_file_and_line(tmp_path):
    (tmp_path / "QK-video.csv").write_text(VIDEO_HEADER + video_row(1, 100, 1) + video_row(1, 101, "yes"))
    with pytest.raises(DataError, match=r"QK-video\.csv, line 3: click must be 0 or 1, got 'yes'"):
        load_tenrec(tmp_path)
    (tmp_path / "QK-video.csv").write_text(VIDEO_HEADER + video_row(1, 100, 1) + video_row("", 101, 1))
    with pytest.raises(DataError, match=r"QK-video\.csv, line 3: empty user_id"):
        load_tenrec(tmp_path)
    (tmp_path / "QK-video.csv").write_text("user,item,click\n1,2,1\n")
    with pytest.raises(DataError, match=r"QK-video\.csv: no 'user_id' column"):
        load_tenrec(tmp_path)
    (tmp_path / "QK-video.csv").write_text(VIDEO_HEADER + video_row(1, 100, 0))
    with pytest.raises(DataError, match="no row .* has click = 1"):
        load_tenrec(tmp_path)


def test_recipe_trains_one_model_over_the_scenarios(tmp_path):
    rng = np.random.default_rng(0)
    video, article = [VIDEO_HEADER], [ARTICLE_HEADER]
    for user in range(40):
        for _ in range(8):
            video.append(video_row(user, int(rng.integers(30)), int(rng.random() < 0.8), category=int(rng.integers(4))))
        for _ in range(6):
            article.append(article_row(user, int(rng.integers(20)), 1, first=int(rng.integers(3))))
    data_dir = tmp_path / "tenrec"
    data_dir.mkdir()
    (data_dir / "QK-video.csv").write_text("".join(video))
    (data_dir / "QK-article.csv").write_text("".join(article))
    out = tmp_path / "run"
    stdout = run([sys.executable, f"{ROOT}/recipes/pretrain.py", "--dataset", str(data_dir), "--output_dir", str(out),
                  "--num_epochs", "1", *SMALL_MODEL, "--text_encoder", "none", "--context_features", "scenario",
                  "--scenario_feature", "scenario", "--user_features", "gender,age"])
    assert "rows not positive" in stdout or "rows_not_positive" in stdout
    per_scenario = json.loads((out / "eval_results.json").read_text())["test"]["per_scenario"]
    # leave-one-out takes each user's last event: all of them are in the scenario read last
    assert set(per_scenario) == {"QK-article"} and per_scenario["QK-article"]["num_users"] == 40
