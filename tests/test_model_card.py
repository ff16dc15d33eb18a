"""The model card: the metrics in Hub metadata, the protocol in words, the recipe and base model of a fine-tuned card."""

import pytest

from lsrec_hf import LSRecConfig
from lsrec_hf.sharing.model_card import build_model_card

RESULTS = {
    "dataset": "ml-100k", "protocol": "leave-one-out", "ranking": "full catalog, history items excluded",
    "num_users": 943, "num_items": 20, "num_test_users": 943, "best_epoch": 3, "epochs_run": 5,
    "test": {"hr@10": 0.21, "ndcg@10": 0.11234, "mrr@10": 0.08, "hr@20": 0.33, "ndcg@20": 0.14, "mrr@20": 0.09},
}
CONFIG = LSRecConfig(num_items=20, text_encoder="sentence-transformers/all-MiniLM-L6-v2")


def test_the_card_reports_every_test_metric_in_its_metadata_and_its_table():
    card = build_model_card(CONFIG, RESULTS, model_name="lsrec-ml-100k", repo_id="me/lsrec-ml-100k")
    reported = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert reported == {key: round(value, 4) for key, value in RESULTS["test"].items()}
    assert all(r.dataset_args == {"protocol": "leave-one-out", "ranking": "full catalog, history items excluded"}
               for r in card.data.eval_results)
    assert "| NDCG | 0.1123 | 0.1400 |" in card.text
    assert 'from_pretrained("me/lsrec-ml-100k")' in card.text and "all-MiniLM-L6-v2" in card.text


@pytest.mark.parametrize("exclude, words", [
    (True, "items in the user's input history excluded from the ranking"),
    (False, "items in the user's input history kept in the ranking (RecBole's protocol)"),
])
def test_the_card_states_whether_the_history_was_ranked(exclude, words):
    card = build_model_card(CONFIG, {**RESULTS, "exclude_history": exclude})
    assert words in card.text


def test_a_card_with_priors_says_so_and_gives_the_metrics_of_the_model_alone():
    trend = {"chosen": True, "window_days": 3.0, "weight": 2.0, "popularity_weight": -0.5, "valid_ndcg@10": 0.07,
             "valid_ndcg@10_without": 0.05}
    cooccurrence = {"chosen": True, "weight": 8.0, "decay": 0.4, "neighbors": 100, "max_history": 50,
                    "valid_ndcg@10": 0.075, "valid_ndcg@10_without": 0.07}
    alone = {**RESULTS["test"], "ndcg@10": 0.0473}
    card = build_model_card(CONFIG, {**RESULTS, "trend_prior": trend, "test_without_priors": alone})
    assert ("2 x log(1 + the item's training events in the 3 days before the request) -0.5 x log(1 + all its "
            "training events before it)") in card.text
    assert "The model alone: NDCG@10 0.0473" in card.text and "now=" in card.text
    assert "co-occurrence" not in card.text
    both = build_model_card(CONFIG, {**RESULTS, "trend_prior": trend, "cooccurrence_prior": cooccurrence,
                                     "test_without_priors": alone})
    assert "8 x the sum of the item's similarity" in both.text and "latest 50 items, times 0.4 a step back" in both.text
    # a file written before the co-occurrence prior names the model alone "test_without_trend_prior"
    older = build_model_card(CONFIG, {**RESULTS, "trend_prior": trend, "test_without_trend_prior": alone})
    assert "The model alone: NDCG@10 0.0473" in older.text
    declined = build_model_card(CONFIG, {**RESULTS, "trend_prior": {**trend, "chosen": False},
                                         "cooccurrence_prior": {**cooccurrence, "chosen": False}})
    assert "trend prior" not in declined.text and "co-occurrence" not in declined.text


def test_the_card_gives_the_size_of_the_model():
    wide = LSRecConfig(num_items=20, hidden_size=128, intermediate_size=512, num_hidden_layers=3, num_attention_heads=4)
    assert ("3 layers of 128-wide tokens, 4 attention heads and a\n512-wide feed-forward block"
            in build_model_card(wide).text)
    assert "2 layers of 64-wide tokens, 2 attention heads" in build_model_card(CONFIG).text


def test_a_card_without_results_claims_no_quality():
    card = build_model_card(CONFIG)
    assert not card.data.eval_results and "NDCG" not in card.text


def test_the_card_of_an_adapter_names_its_hub_base_model_in_the_metadata():
    card = build_model_card(CONFIG, RESULTS, model_name="ft", repo_id="me/ft", base_model="me/lsrec-ml-100k",
                            adapter=True, recipe="recipes/finetune.py")
    assert card.data.library_name == "peft" and card.data.base_model == "me/lsrec-ml-100k"
    assert "with `recipes/finetune.py`" in card.text and 'from_pretrained("me/ft")' in card.text


def test_the_card_of_a_multi_domain_checkpoint_lists_its_domains_and_how_to_move_it():
    per_domain = {"amazon-beauty": {**RESULTS["test"], "num_users": 500, "ndcg@10": 0.031},
                  "steam": {**RESULTS["test"], "num_users": 400, "ndcg@10": 0.052}}
    config = LSRecConfig(num_items=20, use_item_ids=False, context_vocab={"domain": ["amazon-beauty", "steam"]},
                         scenario_feature="domain")
    card = build_model_card(config, {**RESULTS, "test": {**RESULTS["test"], "per_scenario": per_domain}},
                            repo_id="me/lsrec-multi")
    assert "| amazon-beauty | 500 | 0.2100 | 0.0310 |" in card.text and "| steam | 400 | 0.2100 | 0.0520 |" in card.text
    assert 'catalog="path/to/new-domain"' in card.text and "--base_model me/lsrec-multi" in card.text
    assert "Pretraining domains" not in build_model_card(CONFIG, RESULTS).text


def test_the_card_says_how_the_epoch_was_chosen():
    assert "(best validation NDCG@10 at epoch 3)" in build_model_card(CONFIG, RESULTS).text
    trained_on_validation = build_model_card(CONFIG, {**RESULTS, "validated": False, "best_epoch": 5,
                                                      "protocol": "leave-one-out (no validation hold-out)"}).text
    assert "(no validation event held out: the last epoch's weights)" in trained_on_validation
    assert "leave-one-out (no validation hold-out) split" in trained_on_validation
    assert "best validation" not in trained_on_validation
