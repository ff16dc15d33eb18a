"""Context and scenario signals: derived time features, ids with an unknown slot, the target-scenario token,
per-scenario metrics, the pipeline's `scenario=` / `context=` and the explanation of the scenario's influence."""

import json
import sys

import numpy as np
import pytest
import torch
from transformers import AutoModel, pipeline

import lsrec_hf
from conftest import ROOT, SMALL_MODEL, run
from lsrec_hf.processing.collator import EvaluationCollator, TrainingCollator
from lsrec_hf.processing.context import build_vocab, encode, encode_target_context, feature_columns, time_feature
from lsrec_hf.data import load_data
from lsrec_hf.evaluation import evaluate_ranking
from lsrec_hf.processing.sequences import EvalExamples, build_user_sequences, leave_one_out
from lsrec_hf.processing.tokens import to_tokens
from lsrec_hf.inference.user_state import encode_user

SCENARIOS = ["home", "search", "shelf"]


def _model(objective="causal", seed=0):
    torch.manual_seed(seed)
    config = lsrec_hf.LSRecConfig(num_items=12, use_content=False, content_dim=0, hidden_size=16, intermediate_size=32,
                                  segment_length=4, memory_length=4, objective=objective, hidden_dropout_prob=0.0,
                                  attention_probs_dropout_prob=0.0, initializer_range=0.3,
                                  context_vocab={"scenario": SCENARIOS, "hour": [str(h) for h in range(24)]},
                                  scenario_feature="scenario", user_vocab={"gender": ["F", "M"]})
    model = LSRecForSequentialRecommendation(config).eval()
    model.catalog = lsrec_hf.ItemCatalog([f"m{i}" for i in range(12)], [f"Movie {i}" for i in range(12)],
                                         [f"text {i}" for i in range(12)])
    return model


LSRecForSequentialRecommendation = lsrec_hf.LSRecForSequentialRecommendation


def test_time_features_are_utc_hour_and_weekday():
    # 2021-01-04 was a Monday; 1609800000 = 2021-01-04 22:40:00 UTC
    assert time_feature([1609800000, 1609800000 + 3 * 3600], "hour") == ["22", "1"]
    assert time_feature([1609800000, 1609800000 + 3 * 3600], "weekday") == ["Mon", "Tue"]


def test_unknown_and_missing_values_map_to_id_zero():
    vocab = build_vocab(["b", "a", "", None, "b"])
    assert vocab == ["a", "b"]
    assert encode(["a", "b", "zzz", "", None], vocab).tolist() == [1, 2, 0, 0, 0]
    feature_vocab = {"hour": ["1", "2"], "scenario": SCENARIOS}
    assert encode_target_context(feature_vocab, {"scenario": "shelf", "hour": 99}).tolist() == [0, 3]
    with pytest.raises(ValueError, match="unknown feature.*'scenaro'"):
        encode_target_context(feature_vocab, {"scenaro": "shelf"})


def test_changing_only_the_scenario_changes_the_scores():
    for objective in ("causal", "cloze"):
        model = _model(objective)
        history = torch.randint(2, 14, (1, 9))
        context = torch.zeros(1, 9, 3, dtype=torch.long)
        names = model.config.feature_names  # ['hour', 'scenario', 'gender']
        column = names.index("scenario")
        scores = []
        for scenario in (1, 2):
            target = torch.zeros(1, 3, dtype=torch.long)
            target[0, column] = scenario
            scores.append(model.score_next(history, context_ids=context, target_context_ids=target)[0])
        assert not torch.allclose(scores[0], scores[1]), objective
        # an all-unknown context is exactly the model without context
        unknown = model.score_next(history, context_ids=context, target_context_ids=torch.zeros(1, 3, dtype=torch.long))
        assert torch.allclose(unknown[0], model.score_next(history)[0])


def test_training_collator_gives_each_position_the_scenario_it_predicts():
    items = np.array([3, 4, 5, 6])
    context = np.array([[0, 1, 0], [0, 2, 0], [0, 3, 0], [0, 1, 0]])  # scenario column 1
    causal = TrainingCollator(4, "causal", scenario_index=1)([(items, context)])
    assert causal["target_scenario_ids"][0, -3:].tolist() == [2, 3, 1]  # scenarios of events 2..4
    assert causal["context_ids"][0, -3:, 1].tolist() == [1, 2, 3]  # events 1..3 carry their own
    torch.manual_seed(0)
    cloze = TrainingCollator(4, "cloze", mask_prob=0.5, scenario_index=1)([(items, context)])
    assert cloze["target_scenario_ids"][0].tolist() == [1, 2, 3, 1]
    assert cloze["context_ids"].shape == (1, 4, 3)


def test_per_scenario_metrics_use_only_that_scenarios_test_events():
    model = _model()
    rng = np.random.default_rng(0)
    histories = [rng.integers(0, 12, 6) for _ in range(30)]
    targets = rng.integers(0, 12, 30)
    scenario = rng.integers(1, 4, 30)
    target_context = np.zeros((30, 3), dtype=np.int64)
    target_context[:, 1] = scenario
    history_context = [np.zeros((6, 3), dtype=np.int64) for _ in range(30)]
    examples = EvalExamples(list(range(30)), histories, targets, history_context, target_context)
    metrics = evaluate_ranking(model, examples, batch_size=7)
    assert sum(m["num_users"] for m in metrics["per_scenario"].values()) == 30
    for scenario_id, name in enumerate(SCENARIOS, start=1):
        rows = np.flatnonzero(scenario == scenario_id)
        subset = EvalExamples([0] * len(rows), [histories[r] for r in rows], targets[rows],
                              [history_context[r] for r in rows], target_context[rows])
        alone = evaluate_ranking(model, subset)
        assert metrics["per_scenario"][name]["num_users"] == len(rows)
        assert metrics["per_scenario"][name]["ndcg@10"] == pytest.approx(alone["ndcg@10"])


def test_evaluation_collator_carries_history_and_target_context():
    batch = EvaluationCollator(4)([(np.array([1, 2]), 3, np.array([[1, 2, 0], [2, 1, 0]]), np.array([3, 3, 1]))])
    assert batch["context_ids"][0, -2:].tolist() == [[1, 2, 0], [2, 1, 0]]
    assert batch["context_ids"][0, :2].abs().sum() == 0
    assert batch["target_context_ids"].tolist() == [[3, 3, 1]]


def test_pipeline_takes_scenario_and_context_and_explains_the_scenario(tmp_path):
    model = _model()
    model.save_pretrained(tmp_path / "m")
    recommend = pipeline("recommendation", model=str(tmp_path / "m"))
    history = ["m1", "m2", "m3", "m4", "m5"]
    home = recommend(history, scenario="home", top_k=12, exclude_history=False)
    shelf = recommend(history, scenario="shelf", top_k=12, exclude_history=False)
    assert {r["item_id"]: r["score"] for r in home} != {r["item_id"]: r["score"] for r in shelf}
    # an unseen scenario or hour is "unknown", not an error
    unseen = recommend(history, scenario="billboard", context={"hour": "99"}, top_k=12, exclude_history=False)
    plain = recommend(history, top_k=12, exclude_history=False)
    assert [r["item_id"] for r in unseen] == [r["item_id"] for r in plain]
    with_events = recommend({"history": history, "context": [{"hour": 20}] * 5}, context={"gender": "F"},
                            top_k=12, exclude_history=False)
    assert {r["item_id"]: r["score"] for r in with_events} != {r["item_id"]: r["score"] for r in plain}
    with pytest.raises(ValueError, match="5 items"):
        recommend({"history": history, "context": [{"hour": 20}]})
    with pytest.raises(ValueError, match="unknown feature"):
        recommend(history, context={"device": "tv"})

    explained = recommend(history, scenario="search", top_k=3, explain=True)
    for item in explained:
        scenario = item["explanation"]["scenario"]
        assert scenario["name"] == "search" and np.isfinite(scenario["score_change"])
        assert "shown in 'search'" in item["explanation"]["reason"]
    # the stated change is the real difference against an unknown scenario
    first = explained[0]
    unknown = {r["item_id"]: r["score"] for r in plain}
    assert first["score"] - unknown[first["item_id"]] == pytest.approx(first["explanation"]["scenario"]["score_change"],
                                                                      abs=1e-4)


def test_a_user_state_without_new_events_takes_a_scenario():
    model = _model()
    recommend = pipeline("recommendation", model=model)
    state = encode_user(model, to_tokens([1, 2, 3, 4, 5]))
    home = recommend([], state=state, scenario="home", top_k=12, exclude_history=False)
    shelf = recommend([], state=state, scenario="shelf", top_k=12, exclude_history=False)
    assert {r["item_id"]: r["score"] for r in home} != {r["item_id"]: r["score"] for r in shelf}


def test_pipeline_without_scenario_feature_refuses_a_scenario(tmp_path):
    torch.manual_seed(0)
    config = lsrec_hf.LSRecConfig(num_items=5, use_content=False, content_dim=0, hidden_size=8, intermediate_size=16,
                                  num_attention_heads=2)
    model = LSRecForSequentialRecommendation(config)
    model.catalog = lsrec_hf.ItemCatalog([f"m{i}" for i in range(5)], [""] * 5, [""] * 5)
    with pytest.raises(ValueError, match="without a scenario"):
        pipeline("recommendation", model=model)(["m1"], scenario="home")


def test_user_features_join_the_users_table(ml100k_slice):
    data = load_data(ml100k_slice)
    frame = feature_columns(data, ["weekday"], ["gender", "occupation"])
    assert len(frame) == data.interactions.num_rows
    users = data.users.to_pandas().set_index("user_id")
    first_user = data.interactions[0]["user_id"]
    assert frame["gender"][0] == users.loc[first_user, "gender"]
    with pytest.raises(lsrec_hf.data.DataError, match="'device'"):
        feature_columns(data, ["device"])


def test_recipe_trains_with_context_and_reports_each_scenario(ml100k_slice, tmp_path):
    out = tmp_path / "run"
    stdout = run([sys.executable, f"{ROOT}/recipes/pretrain.py", "--dataset", ml100k_slice, "--output_dir", str(out),
                  "--num_epochs", "2", *SMALL_MODEL, "--text_encoder", "none", "--context_features", "hour",
                  "--scenario_feature", "weekday", "--user_features", "gender"])
    assert "scenario Mon" in stdout
    results = json.loads((out / "eval_results.json").read_text())
    per_scenario = results["test"]["per_scenario"]
    assert sum(m["num_users"] for m in per_scenario.values()) == results["test"]["num_users"] == 120
    model = AutoModel.from_pretrained(out)
    assert model.config.feature_names == ["hour", "weekday", "gender"]
    data = load_data(ml100k_slice)
    frame = feature_columns(data, ["hour", "weekday"], ["gender"])
    from lsrec_hf.processing.context import encode_features

    sequences = build_user_sequences(data.interactions, data.catalog, encode_features(frame, model.config.feature_vocab))
    reloaded = evaluate_ranking(model, leave_one_out(sequences).test)
    assert reloaded["ndcg@10"] == pytest.approx(results["test"]["ndcg@10"], abs=1e-9)
