import pytest
import torch

from conftest import save_tiny_model
from transformers import pipeline

import lsrec_hf  # noqa: F401  (registers the "recommendation" task)
from lsrec_hf import ItemCatalog, LSRecConfig, LSRecForSequentialRecommendation
from lsrec_hf.model.modeling_lsrec import LSRecNextItemOutput
from lsrec_hf.inference.pipeline_recommendation import RecommendationPipeline
from lsrec_hf.inference.user_state import encode_user, fold_in, score_state

NUM_ITEMS = 30
TITLES = [f"Movie {i} ({1970 + i})" for i in range(NUM_ITEMS)]
TITLES[29] = TITLES[28]  # two films of the same name


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("lsrec"), TITLES)


@pytest.fixture(scope="module")
def recommend(model_dir):
    return pipeline("recommendation", model=str(model_dir), device="cpu")


HISTORY = ["m3", "m7", "m1", "m12", "m7", "m20"]


def test_pipeline_task_is_registered_and_loads_without_a_tokenizer(recommend):
    assert isinstance(recommend, RecommendationPipeline)
    assert recommend.tokenizer is None and recommend.device.type == "cpu"
    assert isinstance(recommend.model, LSRecForSequentialRecommendation)


def test_output_format_and_sorted_scores(recommend):
    items = recommend(HISTORY, top_k=5)
    assert len(items) == 5
    for item in items:
        assert set(item) == {"item_id", "title", "score", "explanation"}
        assert item["title"] == TITLES[int(item["item_id"][1:])] and item["explanation"] is None
    scores = [item["score"] for item in items]
    assert scores == sorted(scores, reverse=True)
    assert recommend(HISTORY)[:5] == items  # top_k defaults to 10


def test_scores_are_the_models(recommend):
    tokens = torch.tensor([recommend.model.catalog.encode(HISTORY)])
    output = recommend.model.score_next(tokens)
    assert isinstance(output, LSRecNextItemOutput) and output.gate.shape == (1,)
    expected = output.scores[0]
    for item in recommend(HISTORY, top_k=3, exclude_history=False):
        assert item["score"] == pytest.approx(expected[int(item["item_id"][1:])].item(), abs=1e-5)


def test_model_recommend_is_the_pipeline_in_one_call(recommend):
    model = recommend.model
    for exclude in (True, False):
        expected = recommend(HISTORY, top_k=7, exclude_history=exclude)
        got = model.recommend(HISTORY, top_k=7, exclude_history=exclude)
        assert [item["item_id"] for item in got] == [item["item_id"] for item in expected]
        assert [item["title"] for item in got] == [item["title"] for item in expected]
        assert [item["score"] for item in got] == pytest.approx([item["score"] for item in expected], abs=1e-5)
    assert not {item["item_id"] for item in model.recommend(HISTORY, top_k=NUM_ITEMS)} & set(HISTORY)
    assert len(model.recommend(HISTORY, top_k=NUM_ITEMS)) == NUM_ITEMS - len(set(HISTORY))
    with pytest.raises(KeyError, match="'m999' is not in the catalog"):
        model.recommend(["m1", "m999"])
    with pytest.raises(ValueError, match="history is empty"):
        model.recommend([])


def test_history_items_are_excluded_unless_asked(recommend):
    everything = recommend(HISTORY, top_k=NUM_ITEMS)
    assert len(everything) == NUM_ITEMS - len(set(HISTORY))
    assert not {item["item_id"] for item in everything} & set(HISTORY)
    assert set(HISTORY) <= {item["item_id"] for item in recommend(HISTORY, top_k=NUM_ITEMS, exclude_history=False)}


def test_candidates_are_respected(recommend):
    items = recommend(HISTORY, candidates=["m2", "m5", "m7", "Movie 9 (1979)"], top_k=10)
    assert {item["item_id"] for item in items} == {"m2", "m5", "m9"}  # m7 was watched


def test_titles_and_int_ids_are_accepted(recommend):
    by_id = recommend(["m3", "m7", "m1"])
    assert recommend(["Movie 3 (1973)", "MOVIE 7 (1977)", "m1"]) == by_id
    assert recommend({"history": ["m3", "movie 7 (1977)", "m1"]}) == by_id


def test_unknown_title_names_it_and_lists_close_matches(recommend):
    with pytest.raises(ValueError, match=r"unknown item 'Movie 5 \(1976\)'.*'Movie 5 \(1975\)'") as error:
        recommend(["m1", "Movie 5 (1976)"])
    assert str(error.value).count("'Movie") <= 6  # the item and at most 5 suggestions
    with pytest.raises(ValueError, match="several items"):
        recommend([TITLES[28]])
    with pytest.raises(ValueError, match="at least one item"):
        recommend([])


def test_batch_of_histories_matches_one_at_a_time(recommend):
    histories = [HISTORY, ["m2"], {"history": ["m4", "m5", "m6", "m8", "m9"]}]
    batch = recommend(histories, top_k=4)
    assert len(batch) == 3
    for history, items in zip(histories, batch):
        single = recommend(history, top_k=4)
        assert [i["item_id"] for i in items] == [i["item_id"] for i in single]
        assert [i["score"] for i in items] == pytest.approx([i["score"] for i in single], abs=1e-5)


def test_explain_gives_history_drivers_and_a_reason(recommend):
    items = recommend(HISTORY, top_k=3, explain=True)
    for item in items:
        explanation = item["explanation"]
        assert 0.0 <= explanation["long_term_share"] <= 1.0
        assert explanation["drivers"]
        for driver in explanation["drivers"]:
            assert driver["item_id"] in HISTORY and driver["score_drop"] > 0
            assert HISTORY[len(HISTORY) - 1 - driver["events_ago"]] == driver["item_id"]
        assert explanation["reason"].startswith("Because you ")
        assert explanation["drivers"][0]["title"] in explanation["reason"]
    assert [i["item_id"] for i in items] == [i["item_id"] for i in recommend(HISTORY, top_k=3)]


def test_state_continues_a_user_state(recommend):
    model = recommend.model
    older, new = ["m3", "m7", "m1", "m12", "m5"], ["m20", "m21", "m22", "m23"]  # 4 new events: a whole chunk
    state = encode_user(model, model.catalog.encode(older))
    from_state = recommend(new, state=state, top_k=5, exclude_history=False)
    fresh = recommend(older + new, top_k=5, exclude_history=False)
    assert [i["item_id"] for i in from_state] == [i["item_id"] for i in fresh]
    assert [i["score"] for i in from_state] == pytest.approx([i["score"] for i in fresh], abs=1e-5)
    # 2 new events: not a whole chunk, so a reading of its own, the state's (see lsrec_hf.inference.user_state)
    scores = score_state(model, fold_in(model, state, [22, 23]))[0][0]
    for item in recommend(new[:2], state=state, top_k=5, exclude_history=False):
        assert item["score"] == pytest.approx(scores[int(item["item_id"][1:])].item(), abs=1e-5)
    explained = recommend([], state=state, top_k=2, explain=True)  # no new events: the state alone
    assert all(d["item_id"] in older for i in explained for d in i["explanation"]["drivers"])
    with pytest.raises(ValueError, match="one user's state"):
        recommend([new, new], state=state)
    # memory= is the argument's former name
    assert recommend(new, memory=state, top_k=5, exclude_history=False) == from_state
    with pytest.raises(ValueError, match="pass the user state once"):
        recommend(new, memory=state, state=state)


def test_pipeline_accepts_a_loaded_model(model_dir):
    model = LSRecForSequentialRecommendation.from_pretrained(model_dir)
    recommend = pipeline("recommendation", model=model, device="cpu")
    from_path = pipeline("recommendation", model=str(model_dir), device="cpu")
    assert recommend(["m1", "m2"], top_k=2) == from_path(["m1", "m2"], top_k=2)
