"""Full-ranking evaluation under both protocols: history items excluded (ours, SASRec+, RePlay) or kept (RecBole)."""

import numpy as np
import pytest
import torch

from conftest import save_tiny_model
from lsrec_hf import LSRecForSequentialRecommendation
from lsrec_hf.processing.collator import EvaluationCollator
from lsrec_hf.evaluation import evaluate_ranking, rank_examples, ranking_name
from lsrec_hf.evaluation.metrics import compute_ranking_metrics
from lsrec_hf.processing.sequences import EvalExamples

NUM_ITEMS = 12
HISTORIES = [[0, 3, 5], [7], [2, 2, 9, 11, 4], [1, 6]]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = save_tiny_model(tmp_path_factory.mktemp("tiny"), [f"title {i}" for i in range(NUM_ITEMS)])
    return LSRecForSequentialRecommendation.from_pretrained(path).eval()


def raw_scores(model, histories):
    """The model's scores for every catalog item, computed one user at a time, nothing masked."""
    collate = EvaluationCollator(model.config.segment_length)
    rows = []
    for history in histories:
        batch = collate([(np.array(history), 0)])
        with torch.no_grad():
            rows.append(model.score_next(batch["input_ids"], batch["attention_mask"])[0][0].numpy())
    return np.stack(rows)


def examples_with_targets(targets):
    return EvalExamples(user_ids=list(range(len(HISTORIES))), histories=[np.array(h) for h in HISTORIES],
                        targets=np.array(targets))


@pytest.mark.parametrize("exclude", [True, False])
def test_ranked_lists_follow_the_scores_with_history_removed_only_when_excluded(model, exclude):
    scores = raw_scores(model, HISTORIES)
    ranked, _, _, positions = rank_examples(model, examples_with_targets([1, 2, 3, 4]), top_k=NUM_ITEMS,
                                            return_positions=True, exclude_history=exclude)
    for row, user in zip(ranked, positions):
        expected = [i for i in np.argsort(-scores[user], kind="stable")
                    if not (exclude and i in HISTORIES[user])]
        assert row[:len(expected)] == expected
        assert bool(set(row[:len(expected)]) & set(HISTORIES[user])) == (not exclude)


def test_a_repeated_item_is_found_only_when_history_is_kept(model):
    # every target is the user's last history item: excluded it can never be ranked, kept it always is
    examples = examples_with_targets([h[-1] for h in HISTORIES])
    # K = 5 leaves unseen items to fill every list, so an excluded item could only appear by a bug
    excluded = evaluate_ranking(model, examples, k_values=(5,), exclude_history=True)
    kept = evaluate_ranking(model, examples, k_values=(NUM_ITEMS,), exclude_history=False)
    assert excluded["hr@5"] == 0.0
    assert kept[f"hr@{NUM_ITEMS}"] == 1.0


def test_metrics_under_each_protocol_match_hand_ranked_lists(model):
    targets = [1, 2, 3, 4]  # user 2's target 2 is in its history
    scores = raw_scores(model, HISTORIES)
    for exclude in (True, False):
        masked = scores.copy()
        if exclude:
            for user, history in enumerate(HISTORIES):
                masked[user, history] = -np.inf
        lists = [list(np.argsort(-row, kind="stable")[:10]) for row in masked]
        expected = compute_ranking_metrics(lists, np.array(targets), (5, 10), NUM_ITEMS)
        got = evaluate_ranking(model, examples_with_targets(targets), k_values=(5, 10), exclude_history=exclude)
        for key in ("hr@5", "ndcg@5", "mrr@10", "ndcg@10"):
            assert got[key] == pytest.approx(expected[key], abs=1e-9)


def test_the_protocol_is_named_in_words():
    assert ranking_name(True) == "full catalog, history items excluded"
    assert ranking_name(False) == "full catalog, history items kept"


@pytest.mark.parametrize("setting", ["1", None])
def test_the_ranking_progress_bar_obeys_tqdm_disable(model, capsys, monkeypatch, setting):
    if setting is None:
        monkeypatch.delenv("TQDM_DISABLE", raising=False)
    else:
        monkeypatch.setenv("TQDM_DISABLE", setting)
    evaluate_ranking(model, examples_with_targets([1, 2, 3, 4]), batch_size=1)
    assert ("evaluating" in capsys.readouterr().err) == (setting is None)
