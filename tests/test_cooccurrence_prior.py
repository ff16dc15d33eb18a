"""The co-occurrence prior: item-to-item cosine over training users, summed over the latest history items with a
decay, saved with the model, chosen on validation, added by the evaluation, `recommend` and the pipeline."""

import math

import pytest
import torch
from transformers import pipeline

import lsrec_hf
from conftest import save_tiny_model
from lsrec_hf.evaluation import evaluate_ranking
from lsrec_hf.evaluation.cooccurrence_calibration import calibrate_cooccurrence_prior
from lsrec_hf.model.cooccurrence_prior import COOCCURRENCE_PRIOR_NAME, CooccurrencePrior, item_neighbors
from lsrec_hf.processing.catalog import ItemCatalog

# users: {0, 1}, {0, 1, 2} (item 1 twice), {2, 3}; item 4 never occurs
SEQUENCES = [[0, 1], [1, 0, 2, 1], [2, 3]]


def test_neighbours_are_the_cosine_between_the_items_sets_of_users_best_first():
    indices, similarities = item_neighbors(SEQUENCES, num_items=5, neighbors=3)
    # item 0 and 1: users {0, 1} both; item 2: users {1, 2}; item 3: user {2}
    assert indices[0].tolist()[:2] == [1, 2] and similarities[0].tolist()[:2] == pytest.approx([1.0, 0.5])
    assert indices[2].tolist() == [3, 0, 1] and similarities[2].tolist() == pytest.approx([1 / math.sqrt(2), 0.5, 0.5])
    assert similarities[4].tolist() == [0.0, 0.0, 0.0]  # no users, no neighbours: it adds nothing
    assert similarities[0, 2] == 0.0  # only two items share a user with item 0
    top1 = item_neighbors(SEQUENCES, num_items=5, neighbors=1)
    assert top1[0][:, 0].tolist() == indices[:, 0].tolist()


def test_the_bias_sums_the_latest_items_similarities_with_the_decay():
    prior = CooccurrencePrior.from_sequences(SEQUENCES, num_items=5, neighbors=4, weight=2.0, decay=0.5,
                                             max_history=2)
    sim = torch.zeros(5, 5)
    sim.scatter_add_(1, prior.neighbor_indices, prior.neighbor_similarities)  # padding adds 0 to item 0
    # history 3, 0, 2 (2 the latest): the window of 2 keeps 2 and 0, weighted 1 and 0.5
    expected = 2.0 * (sim[2] + 0.5 * sim[0])
    assert torch.allclose(prior.bias([[3, 0, 2], []])[0], expected)
    assert prior.bias([[3, 0, 2], []])[1].abs().sum() == 0  # an empty history: nothing added
    with pytest.raises(ValueError, match=r"catalog indices in \[0, 5\)"):
        prior.bias([[7]])
    with pytest.raises(ValueError, match="decay must lie in"):
        prior.with_weights(1.0, 0.0)


def test_the_prior_is_saved_with_the_model_and_a_bad_file_is_an_error_naming_it(tmp_path):
    path = save_tiny_model(tmp_path / "model", [f"t{i}" for i in range(5)])
    model = lsrec_hf.LSRecForSequentialRecommendation.from_pretrained(path)
    assert model.cooccurrence_prior is None
    model.cooccurrence_prior = CooccurrencePrior.from_sequences(SEQUENCES, 5, neighbors=3, weight=1.5, decay=0.4)
    model.save_pretrained(path)
    loaded = lsrec_hf.LSRecForSequentialRecommendation.from_pretrained(path).cooccurrence_prior
    assert (loaded.weight, loaded.decay, loaded.max_history) == (1.5, 0.4, 50)
    assert torch.equal(loaded.bias([[0, 2]]), model.cooccurrence_prior.bias([[0, 2]]))
    model.cooccurrence_prior = None
    model.save_pretrained(path)  # the earlier file must not come back with these weights
    assert lsrec_hf.LSRecForSequentialRecommendation.from_pretrained(path).cooccurrence_prior is None
    CooccurrencePrior.from_sequences(SEQUENCES, 6, neighbors=3).save_pretrained(path)
    with pytest.raises(OSError, match=f"{COOCCURRENCE_PRIOR_NAME}: a co-occurrence prior of 6 items.*has 5"):
        lsrec_hf.LSRecForSequentialRecommendation.from_pretrained(path)
    (path / COOCCURRENCE_PRIOR_NAME).write_bytes(b"not safetensors")
    with pytest.raises(OSError, match=f"{COOCCURRENCE_PRIOR_NAME}: not a co-occurrence prior file"):
        lsrec_hf.LSRecForSequentialRecommendation.from_pretrained(path)


def test_the_pipeline_and_recommend_add_the_prior_after_the_history(tmp_path):
    path = save_tiny_model(tmp_path / "model", [f"t{i}" for i in range(5)])
    model = lsrec_hf.LSRecForSequentialRecommendation.from_pretrained(path)
    recommend = pipeline("recommendation", model=model, device="cpu")
    # a weight that outweighs the model: after item 2, its nearest neighbour (item 3) comes first
    model.cooccurrence_prior = CooccurrencePrior.from_sequences(SEQUENCES, 5, neighbors=3, weight=100.0)
    assert recommend(["m2"], top_k=1)[0]["item_id"] == "m3"
    assert model.recommend(["m2"], top_k=1)[0]["item_id"] == "m3"
    assert recommend(["m0"], top_k=1)[0]["item_id"] == "m1"
    plain = recommend(["m2"], top_k=4, cooccurrence_prior=False)
    with pytest.raises(ValueError, match="cooccurrence_prior=False"):
        recommend(["m2"], retrieval="faiss")
    model.cooccurrence_prior = None
    assert [r["item_id"] for r in plain] == [r["item_id"] for r in recommend(["m2"], top_k=4)]


def test_new_items_have_no_neighbours_and_a_new_catalog_drops_the_prior(tmp_path):
    path = save_tiny_model(tmp_path / "model", [f"t{i}" for i in range(5)])
    model = lsrec_hf.LSRecForSequentialRecommendation.from_pretrained(path)
    model.cooccurrence_prior = CooccurrencePrior.from_sequences(SEQUENCES, 5, neighbors=3, weight=1.0)
    before = model.cooccurrence_prior.bias([[0, 2]])
    catalog = model.catalog.extended_with(ItemCatalog(["m5"], ["t5"], ["text 5"]))
    model.extend_catalog(catalog, torch.zeros(1, 8))
    after = model.cooccurrence_prior.bias([[0, 2]])
    assert after.shape == (1, 6) and torch.equal(after[:, :5], before) and after[0, 5] == 0
    model.replace_catalog(catalog, torch.zeros(6, 8))
    assert model.cooccurrence_prior is None



def test_calibration_scores_every_choice_as_the_evaluation_does_and_keeps_the_best(slice_splits_and_model):
    splits, model = slice_splits_and_model
    prior, report = calibrate_cooccurrence_prior(model, splits, decays=(0.5, 1.0), weights=(0.0, 2.0, 50.0))
    without = evaluate_ranking(model, splits.valid)["ndcg@10"]
    assert report["valid_ndcg@10_without"] == pytest.approx(without, abs=1e-9)
    found = {(float(decay), float(weight)): value for decay, row in report["grid"].items()
             for weight, value in row.items()}
    assert len(found) == 2 * 3
    neighbours = CooccurrencePrior.from_sequences(splits.train, model.config.num_items)
    for (decay, weight), value in found.items():
        if weight == 0.0:
            assert value == pytest.approx(without, abs=1e-9)
            continue
        model.cooccurrence_prior = neighbours.with_weights(weight, decay)
        try:
            assert value == pytest.approx(evaluate_ranking(model, splits.valid)["ndcg@10"], abs=1e-9), (decay, weight)
            assert evaluate_ranking(model, splits.valid, cooccurrence_prior=False)["ndcg@10"] == without
        finally:
            model.cooccurrence_prior = None
    # an untrained model: what other users took together beats it, so a prior is kept, and it is the best choice's
    assert report["chosen"] and report["valid_ndcg@10"] == max(found.values()) > without
    assert (prior.weight, prior.decay) == (report["weight"], report["decay"])
