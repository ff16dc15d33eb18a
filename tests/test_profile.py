import pytest
import torch
from transformers import pipeline

import lsrec_hf  # noqa: F401  (registers the "recommendation" task)
from lsrec_hf import ItemCatalog, LSRecConfig, LSRecForSequentialRecommendation
from lsrec_hf.inference.profile import interest_profile, item_aspects, title_keywords
from lsrec_hf.inference.user_state import encode_user

# A catalog shaped like ML-100K's: titles without the year, "year" as a string ("" when unknown), genre lists.
ITEMS = [
    ("Star Wars", "1977", ["Action", "Sci-Fi"]),
    ("Empire Strikes Back, The", "1980", ["Action", "Sci-Fi"]),
    ("Return of the Jedi", "1983", ["Action", "Sci-Fi"]),
    ("Star Trek: First Contact", "1996", ["Sci-Fi"]),
    ("Usual Suspects, The", "1995", ["Crime", "Thriller"]),
    ("Fargo", "1996", ["Crime", "Drama"]),
    ("Pulp Fiction", "1994", ["Crime", "Drama"]),
    ("Heat", "1995", ["Crime", "Thriller"]),
    ("Toy Story", "1995", ["Animation", "Comedy"]),
    ("Unknown Film", "", []),
]


def tiny_model(objective="causal"):
    torch.manual_seed(0)
    config = LSRecConfig(num_items=len(ITEMS), content_dim=4, hidden_size=8, num_attention_heads=2,
                         intermediate_size=16, segment_length=4, memory_length=4, objective=objective)
    model = LSRecForSequentialRecommendation(config).eval()
    titles, years, genres = zip(*ITEMS)
    model.catalog = ItemCatalog([str(i) for i in range(len(ITEMS))], list(titles), list(titles),
                                {"year": list(years), "genres": [list(g) for g in genres]})
    return model


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def test_item_aspects_from_attributes_and_title(model):
    assert item_aspects(model.catalog, 1) == {"decades": ["1980s"], "genres": ["Action", "Sci-Fi"],
                                              "keywords": ["empire", "strikes", "back"]}
    assert item_aspects(model.catalog, 9) == {"decades": [], "genres": [], "keywords": ["unknown", "film"]}
    assert title_keywords("Star Trek: First Contact") == ["star", "trek", "first", "contact"]
    assert title_keywords("Return of the Jedi") == ["return", "jedi"]  # short words and stop words are left out


def test_short_term_is_the_last_segment_and_long_term_the_events_before(model):
    history = [0, 1, 2, 3, 4, 5, 6, 7]  # segment_length 4: the crime films are the short term
    profile = interest_profile(model, history)
    assert set(profile) == {"long_term", "short_term"}
    short, long = profile["short_term"], profile["long_term"]
    # 4 events with 2 genres each: Crime 4 of 8 genre counts, Thriller and Drama 2 each
    assert short["genres"] == {"Crime": 0.5, "Thriller": 0.25, "Drama": 0.25}
    assert short["decades"] == {"1990s": 1.0}
    assert long["genres"] == {"Sci-Fi": 4 / 7, "Action": 3 / 7}
    assert long["decades"] == {"1980s": 0.5, "1970s": 0.25, "1990s": 0.25}
    assert long["keywords"]["star"] == pytest.approx(2 / 11) and next(iter(long["keywords"])) == "star"
    for part in profile.values():
        for weights in part.values():
            assert list(weights.values()) == sorted(weights.values(), reverse=True)


def test_weights_are_shares_and_top_n_cuts(model):
    profile = interest_profile(model, [0, 4, 8, 9], top_n=2)
    genres = profile["short_term"]["genres"]
    assert len(genres) == 2 and sum(genres.values()) < 1.0  # shares of all 6 genre counts, cut to the best 2
    full = interest_profile(model, [0, 4, 8, 9], top_n=100)
    for weights in full["short_term"].values():
        assert sum(weights.values()) == pytest.approx(1.0)
    # equal counts are ranked newest first: Toy Story's genres before Usual Suspects' before Star Wars'
    assert list(full["short_term"]["genres"]) == ["Animation", "Comedy", "Crime", "Thriller", "Action", "Sci-Fi"]


def test_a_history_within_the_short_segment_has_an_empty_long_term(model):
    profile = interest_profile(model, [5, 6])
    assert profile["long_term"] == {}  # was a copy of the short term: no events before the segment, no long term
    assert profile["short_term"]["genres"] == {"Crime": 0.5, "Drama": 0.5}
    with pytest.raises(ValueError, match="at least one event"):
        interest_profile(model, [])


def test_cloze_short_term_leaves_room_for_the_mask_slot():
    profile = interest_profile(tiny_model("cloze"), [0, 1, 2, 3, 4, 5, 6, 7])  # short segment: 3 events
    assert profile["short_term"]["genres"] == {"Crime": 0.5, "Drama": 2 / 6, "Thriller": 1 / 6}


@pytest.fixture(scope="module")
def recommend(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("lsrec")
    model.save_pretrained(path)  # the profile reads the attributes back from catalog.json
    return pipeline("recommendation", model=str(path), device="cpu")


def test_pipeline_adds_the_profile_on_request(recommend, model):
    history = ["0", "1", "Return of the Jedi (1983)", "3", "4", "5"]
    plain = recommend(history, top_k=3)
    assert isinstance(plain, list)  # the default output is unchanged
    with_profile = recommend(history, top_k=3, profile=True)
    assert set(with_profile) == {"recommendations", "profile"}
    assert with_profile["recommendations"] == plain
    assert with_profile["profile"] == interest_profile(model, [0, 1, 2, 3, 4, 5])

    batch = recommend([history, ["8"]], top_k=2, profile=True)
    assert [user["recommendations"] for user in batch] == recommend([history, ["8"]], top_k=2)
    assert batch[1]["profile"]["short_term"]["genres"] == {"Animation": 0.5, "Comedy": 0.5}


def test_pipeline_profile_needs_the_whole_history(recommend):
    state = encode_user(recommend.model, [2, 3, 4, 5, 6, 7])
    with pytest.raises(ValueError, match="whole history"):
        recommend(["8"], memory=state, profile=True)
