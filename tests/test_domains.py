"""Several domains pretrained as one, and a checkpoint put onto a catalog it never saw (zero-shot, then LoRA).

The domains are three disjoint shelves of the real MovieLens-100K slice (items 1-300, 301-600, 601-900, each a
folder of `interactions.tsv` + `items.tsv`), encoded with the real MiniLM text encoder.
"""

import collections
import json
import os
import sys

import numpy as np
import pytest
import safetensors.torch
import torch
from transformers import AutoModel, pipeline

import lsrec_hf
from conftest import ROOT, SMALL_MODEL, run
from lsrec_hf.data import load_data
from lsrec_hf.data.domains import DOMAIN, combine_domains, domain_weights, with_domain
from lsrec_hf.evaluation import evaluate_ranking
from lsrec_hf.evaluation.rank import rank_examples
from lsrec_hf.processing.context import encode_features, feature_columns
from lsrec_hf.processing.collator import LengthBucketSampler
from lsrec_hf.processing.sequences import build_user_sequences, leave_one_out
from lsrec_hf.text import encode_texts
from lsrec_hf.training.loop import TrainingArguments, domain_balanced_weights

PRETRAIN = os.path.join(ROOT, "recipes", "pretrain.py")
FINETUNE = os.path.join(ROOT, "recipes", "finetune.py")
SHELVES = {"shelf-a": (1, 300), "shelf-b": (301, 600), "shelf-new": (601, 900)}


def write_shelf(data, folder, first, last):
    """The events and items of `data` whose (integer) item id is in [first, last], in the folder layout."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = data.interactions.to_pandas()
    frame = frame[frame["item_id"].astype(int).between(first, last)]
    frame[["user_id", "item_id", "timestamp"]].to_csv(folder / "interactions.tsv", sep="\t", index=False)
    ids = [i for i in data.catalog.item_ids if first <= int(i) <= last]
    titles = [data.catalog.titles[data.catalog.index(i)] for i in ids]
    (folder / "items.tsv").write_text("item_id\ttitle\n" + "".join(f"{i}\t{t}\n" for i, t in zip(ids, titles)),
                                      encoding="utf-8")
    return str(folder)


@pytest.fixture(scope="module")
def shelves(ml100k_slice, tmp_path_factory):
    data = load_data(ml100k_slice)
    root = tmp_path_factory.mktemp("shelves")
    return {name: write_shelf(data, root / name, *bounds) for name, bounds in SHELVES.items()}


@pytest.fixture(scope="module")
def pretrained(shelves, tmp_path_factory):
    out = tmp_path_factory.mktemp("multi")
    stdout = run([sys.executable, PRETRAIN, "--dataset", f"{shelves['shelf-a']},{shelves['shelf-b']}",
                  "--zero_shot_dataset", shelves["shelf-new"], "--output_dir", str(out), "--num_epochs", "2", *SMALL_MODEL])
    return out, stdout


def test_combined_domains_keep_every_event_and_item_apart(shelves):
    a, b = load_data(shelves["shelf-a"]), load_data(shelves["shelf-b"])
    both = combine_domains([a, b])
    assert both.name == "shelf-a+shelf-b"
    assert both.interactions.num_rows == a.interactions.num_rows + b.interactions.num_rows
    assert len(both.catalog) == len(a.catalog) + len(b.catalog)
    assert both.catalog.item_ids[0] == f"shelf-a:{a.catalog.item_ids[0]}"
    assert both.catalog.attributes[DOMAIN] == ["shelf-a"] * len(a.catalog) + ["shelf-b"] * len(b.catalog)
    frame = both.interactions.to_pandas()
    assert set(frame[DOMAIN]) == {"shelf-a", "shelf-b"}
    # a user of both shelves is two users, one per domain, and each event names its own domain
    assert all(u.startswith(d + ":") and i.startswith(d + ":")
               for d, u, i in zip(frame[DOMAIN], frame["user_id"], frame["item_id"]))
    with pytest.raises(lsrec_hf.data.DataError, match="repeat"):
        combine_domains([a, a])


def test_domain_shares_follow_the_balance_exponent():
    domains = ["big"] * 900 + ["small"] * 100
    for alpha, small_share in ((1.0, 0.1), (0.0, 0.5), (0.5, 100**0.5 / (900**0.5 + 100**0.5))):
        weights = domain_weights(domains, alpha)
        assert weights.sum() == pytest.approx(1.0)
        assert weights[900:].sum() == pytest.approx(small_share)


def test_balanced_batches_hold_every_domain(pretrained):
    model = AutoModel.from_pretrained(pretrained[0])
    domains = model.catalog.attributes[DOMAIN]
    # 200 users of shelf-a and 20 of shelf-b, each a sequence of its shelf's items
    a = [i for i, d in enumerate(domains) if d == "shelf-a"]
    b = [i for i, d in enumerate(domains) if d == "shelf-b"]
    sequences = [np.array(a[k % 50: k % 50 + 5]) for k in range(200)] + [np.array(b[k: k + 5]) for k in range(20)]
    weights = domain_balanced_weights(model, sequences, TrainingArguments(domain_balance=0.0))
    sampler = LengthBucketSampler([5] * len(sequences), batch_size=16, seed=3, weights=weights)
    batches = list(sampler)
    of = lambda user: "shelf-a" if user < 200 else "shelf-b"  # noqa: E731
    counts = collections.Counter(of(u) for batch in batches for u in batch)
    assert abs(counts["shelf-b"] / sum(counts.values()) - 0.5) < 0.1  # 9 % of the users, half of the epoch
    assert all({of(u) for u in batch} == {"shelf-a", "shelf-b"} for batch in batches)
    assert domain_balanced_weights(model, sequences, TrainingArguments(domain_balance=1.0)) is None


def test_multi_domain_pretraining_is_text_only_with_a_domain_token_and_metrics_per_domain(pretrained, shelves):
    out, stdout = pretrained
    config = json.loads((out / "config.json").read_text())
    assert not config["use_item_ids"] and not config["use_output_bias"] and config["scenario_feature"] == DOMAIN
    results = json.loads((out / "eval_results.json").read_text())
    assert set(results["test"]["per_scenario"]) == {"shelf-a", "shelf-b"}
    # each user is ranked over its own domain's items only
    model = AutoModel.from_pretrained(out)
    data = combine_domains([load_data(shelves["shelf-a"]), load_data(shelves["shelf-b"])])
    test = leave_one_out(build_user_sequences(data.interactions, model.catalog)).test
    ranked, targets, _ = rank_examples(model, test, top_k=20)
    domains = model.catalog.attributes[DOMAIN]
    assert all({domains[i] for i in items} == {domains[t]} for items, t in zip(ranked, targets))


def test_zero_shot_figures_of_a_held_out_set_are_the_moved_models_and_on_the_card(pretrained, shelves):
    out, stdout = pretrained
    results = json.loads((out / "eval_results.json").read_text())
    (zero_shot,) = results["zero_shot"]
    assert zero_shot["dataset"] == "shelf-new" and zero_shot["num_items"] == len(load_data(shelves["shelf-new"]).catalog)
    # the figures are those of the checkpoint put onto the held-out catalog, tested on its leave-one-out split
    new = with_domain(load_data(shelves["shelf-new"]))
    model = AutoModel.from_pretrained(out).replace_catalog(
        new.catalog, torch.as_tensor(encode_texts(new.catalog.texts, AutoModel.from_pretrained(out).config.text_encoder)))
    features = encode_features(feature_columns(new, [DOMAIN], []), model.config.feature_vocab)
    test = leave_one_out(build_user_sequences(new.interactions, model.catalog, features)).test
    assert evaluate_ranking(model, test)["ndcg@10"] == pytest.approx(zero_shot["test"]["ndcg@10"], abs=1e-6)
    assert zero_shot["num_test_users"] == len(test) and 0 <= zero_shot["most_popular"]["ndcg@10"] <= 1
    card = (out / "README.md").read_text()
    assert "| shelf-new |" in card and f"{zero_shot['test']['ndcg@10']:.4f}" in card and "--new_item_ids true" in card
    assert "zero-shot on shelf-new" in stdout


def test_a_pretrained_checkpoint_recommends_in_a_catalog_it_never_saw_through_the_text(pretrained, shelves):
    out, _ = pretrained
    new = load_data(shelves["shelf-new"]).catalog
    model = AutoModel.from_pretrained(out)
    recommend = pipeline("recommendation", model=model, catalog=new)
    assert recommend.lsrec_model.catalog.item_ids == new.item_ids and model.catalog is not new  # a copy moved
    history = new.item_ids[:4]
    scores = {r["item_id"]: r["score"] for r in recommend(history, top_k=len(new))}
    assert len(scores) == len(new) - len(history)
    # same text, same score; another text, another score (and only that item's)
    twin = lsrec_hf.ItemCatalog(new.item_ids, new.titles, [*new.texts[:-1], new.texts[10]])
    twin_scores = {r["item_id"]: r["score"]
                   for r in pipeline("recommendation", model=model, catalog=twin)(history, top_k=len(new))}
    last, tenth = new.item_ids[-1], new.item_ids[10]
    assert twin_scores[last] == pytest.approx(twin_scores[tenth], abs=1e-5)
    assert twin_scores[last] != pytest.approx(scores[last], abs=1e-4)
    assert all(twin_scores[i] == pytest.approx(s, abs=1e-5) for i, s in scores.items() if i != last)


def test_fresh_ids_on_a_new_catalog_start_at_the_text_only_scores(pretrained, shelves):
    new = load_data(shelves["shelf-new"]).catalog
    base = AutoModel.from_pretrained(pretrained[0])
    content = torch.as_tensor(encode_texts(new.texts, base.config.text_encoder))
    text_only = AutoModel.from_pretrained(pretrained[0]).replace_catalog(new, content).eval()
    with_ids = base.replace_catalog(new, content, new_item_ids=True).eval()
    assert with_ids.config.use_item_ids and with_ids.config.use_output_bias
    assert with_ids.model.embeddings.item_ids.weight.shape == (len(new), base.config.hidden_size)
    history = torch.tensor([new.encode(new.item_ids[:5])])
    assert torch.allclose(with_ids.score_next(history).scores, text_only.score_next(history).scores, atol=1e-6)
    with torch.no_grad():  # and the fresh ids do count once learnt
        with_ids.model.embeddings.item_ids.weight[3] += 1.0
    assert not torch.allclose(with_ids.score_next(history).scores, text_only.score_next(history).scores, atol=1e-4)


@pytest.mark.parametrize("new_item_ids", [False, True])
def test_lora_on_a_new_domain_round_trips_through_disk(pretrained, shelves, tmp_path, new_item_ids):
    out = tmp_path / "lora"
    stdout = run([sys.executable, FINETUNE, "--base_model", str(pretrained[0]), "--dataset", shelves["shelf-new"],
                  "--new_catalog", "true", "--output_dir", str(out), "--num_epochs", "2", "--warmup_steps", "5",
                  "--new_item_ids", str(new_item_ids).lower()])
    assert "replaced by the" in stdout
    assert {"adapter_model.safetensors", "adapter_config.json"} <= set(os.listdir(out))
    results = json.loads((out / "eval_results.json").read_text())
    # no --learning_rate: the adapter's own (a fresh id table beside it takes a smaller step)
    assert results["learning_rate"] == (3e-3 if new_item_ids else 1e-2)
    recommend = pipeline("recommendation", model=str(out))
    new = load_data(shelves["shelf-new"])
    assert recommend.lsrec_model.catalog.item_ids == new.catalog.item_ids
    # the adapter reloaded from disk reproduces the metrics the run reported
    data = with_domain(new)
    features = encode_features(feature_columns(data, [DOMAIN], []), recommend.lsrec_model.config.feature_vocab)
    test = leave_one_out(build_user_sequences(data.interactions, recommend.lsrec_model.catalog, features)).test
    assert evaluate_ranking(recommend.model, test)["ndcg@10"] == pytest.approx(results["test"]["ndcg@10"], abs=1e-6)
    assert torch.isfinite(torch.tensor(results["test"]["ndcg@10"]))
    adapter = safetensors.torch.load_file(out / "adapter_model.safetensors")
    saved_ids = [key for key in adapter if "item_ids" in key]
    assert recommend.lsrec_model.config.use_item_ids == new_item_ids
    if new_item_ids:  # the id table trained whole beside the adapter, saved with it, learnt away from zero
        assert saved_ids and adapter[saved_ids[0]].shape == (len(new.catalog), recommend.lsrec_model.config.hidden_size)
        assert adapter[saved_ids[0]].abs().sum() > 0
    else:
        assert not saved_ids
