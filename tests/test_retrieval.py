"""The faiss index behind `retrieval="faiss"`: exact with a flat index, history never returned, rebuilt when the
weights or the adapter change, chosen by name in evaluation and in the pipeline."""

import random

import pytest
import torch

pytest.importorskip("faiss")

from peft import LoraConfig, get_peft_model  # noqa: E402
from transformers import pipeline  # noqa: E402

import lsrec_hf  # noqa: E402,F401  (registers the "recommendation" task)
from lsrec_hf import LSRecConfig, LSRecForSequentialRecommendation  # noqa: E402
from lsrec_hf.processing.collator import TrainingCollator  # noqa: E402
from lsrec_hf.data import load_data  # noqa: E402
from lsrec_hf.evaluation import evaluate_ranking, rank_examples  # noqa: E402
from lsrec_hf.model.retrieval import invalidate, item_index, item_vectors, retrieve  # noqa: E402
from lsrec_hf.processing.sequences import build_user_sequences, leave_one_out  # noqa: E402
from lsrec_hf.processing.tokens import to_tokens  # noqa: E402


@pytest.fixture(scope="module")
def trained(ml100k_slice, tmp_path_factory):
    """A small LSRec model trained for 60 steps on the ML-100K slice (1682 items), saved, and its splits."""
    data = load_data(ml100k_slice)
    splits = leave_one_out(build_user_sequences(data.interactions, data.catalog))
    torch.manual_seed(0)
    config = LSRecConfig(num_items=len(data.catalog), use_content=False, hidden_size=16, num_attention_heads=2,
                         intermediate_size=32, num_hidden_layers=1, segment_length=20, memory_length=20)
    model = LSRecForSequentialRecommendation(config)
    model.catalog = data.catalog
    collate = TrainingCollator(config.segment_length, max_length=40)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    rng = random.Random(0)
    for _ in range(60):
        batch = collate([s for s in rng.sample(list(splits.train), 32) if len(s) >= 2])
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    path = tmp_path_factory.mktemp("trained")
    model.save_pretrained(path)
    return model, splits, path


@pytest.fixture
def model(trained):
    """A fresh copy of the trained model for each test, which may change its weights or its index."""
    return LSRecForSequentialRecommendation.from_pretrained(trained[2]).eval()


def exact_top_k(model, input_ids, k, exclude_history=True):
    from lsrec_hf.evaluation import mask_history

    scores = model.score_next(input_ids)[0].float()
    if exclude_history:
        scores = mask_history(scores, input_ids)
    return scores.topk(k)


def histories(splits, users=40):
    rows = [to_tokens(torch.as_tensor(h[-30:])) for h in splits.test.histories[:users]]
    length = max(map(len, rows))
    return torch.stack([torch.cat([torch.zeros(length - len(r), dtype=torch.long), r]) for r in rows])


def test_flat_index_gives_exactly_the_exact_top_k_and_scores(model, trained):
    input_ids = histories(trained[1])
    item_index(model, "Flat")
    scores, indices, _ = retrieve(model, input_ids, 20)
    exact = exact_top_k(model, input_ids, 20)
    assert indices.tolist() == exact.indices.tolist()
    torch.testing.assert_close(scores, exact.values, atol=1e-4, rtol=1e-4)


def test_the_item_vectors_fold_the_bias_in_so_an_inner_product_is_the_score(model, trained):
    input_ids = histories(trained[1], users=3)
    from lsrec_hf.model.retrieval import next_user_states

    states, _ = next_user_states(model, input_ids)
    scores = torch.cat([states, torch.ones(len(states), 1)], dim=1) @ item_vectors(model).T
    torch.testing.assert_close(scores, model.score_next(input_ids)[0], atol=1e-4, rtol=1e-4)
    assert "item_scores" not in vars(model)  # the class's scoring is back


def test_hnsw_index_recalls_the_exact_top_10_on_a_small_catalog(model, trained):
    input_ids = histories(trained[1], users=100)
    item_index(model, "HNSW32")
    _, indices, _ = retrieve(model, input_ids, 10)
    exact = exact_top_k(model, input_ids, 10).indices
    recall = sum(len(set(a) & set(b)) for a, b in zip(indices.tolist(), exact.tolist())) / exact.numel()
    assert recall >= 0.98


@pytest.mark.parametrize("index", ["Flat", "HNSW32"])
def test_history_items_are_never_returned_with_faiss(model, trained, index):
    input_ids = histories(trained[1])
    item_index(model, index)
    _, indices, _ = retrieve(model, input_ids, 50)
    for row, top in zip(input_ids.tolist(), indices.tolist()):
        history = {token - 2 for token in row if token >= 2}
        assert len(top) == 50 and not history & set(top)
    # and they are what the exact ranking would have put first: asked with the history kept, they come back
    _, kept, _ = retrieve(model, input_ids, 50, exclude_history=False)
    assert any({t - 2 for t in row if t >= 2} & set(top) for row, top in zip(input_ids.tolist(), kept.tolist()))


def test_the_index_is_rebuilt_when_a_weight_changes(model, trained):
    input_ids = histories(trained[1], users=5)
    first = item_index(model, "Flat")
    assert item_index(model) is first  # unchanged weights: the same index
    before = retrieve(model, input_ids, 10)[1]
    favourite = 1681
    with torch.no_grad():
        model.output_bias.bias[favourite] += 100.0  # an optimizer-style in-place update
    assert item_index(model) is not first
    after = retrieve(model, input_ids, 10)[1]
    assert (after[:, 0] == favourite).all() and not (before[:, 0] == favourite).all()
    assert after.tolist() == exact_top_k(model, input_ids, 10).indices.tolist()

    # a write through .data bumps no version counter; the sampled values still see a whole-tensor update
    second = item_index(model)
    model.model.embeddings.item_ids.weight.data.mul_(-1.0)
    assert item_index(model) is not second
    assert retrieve(model, input_ids, 10)[1].tolist() == exact_top_k(model, input_ids, 10).indices.tolist()

    third = item_index(model)
    invalidate(model)
    assert item_index(model) is not third


def test_switching_or_disabling_a_lora_adapter_rebuilds_the_index(model, trained):
    input_ids = histories(trained[1], users=8)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["item_ids"],
                                                  lora_dropout=0.0))
    peft_model.add_adapter("other", LoraConfig(r=4, lora_alpha=8, target_modules=["item_ids"], lora_dropout=0.0))
    torch.manual_seed(3)
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:  # B starts at zero: the adapter would change nothing
            torch.nn.init.normal_(param, std=1.0)
    peft_model.eval()
    item_index(peft_model, "Flat")
    for adapter in ("default", "other", "default"):
        peft_model.set_adapter(adapter)
        found = retrieve(peft_model, input_ids, 10)[1].tolist()
        assert found == exact_top_k(peft_model, input_ids, 10).indices.tolist(), adapter
    with peft_model.disable_adapter():
        assert retrieve(peft_model, input_ids, 10)[1].tolist() == exact_top_k(model, input_ids, 10).indices.tolist()


def test_evaluation_with_a_flat_faiss_index_gives_the_exact_metrics(model, trained):
    test = trained[1].test
    exact = evaluate_ranking(model, test)
    item_index(model, "Flat")
    approximate = evaluate_ranking(model, test, retrieval="faiss")
    for key in ("hr@10", "ndcg@10", "mrr@20", "mean_long_term_gate"):
        assert approximate[key] == pytest.approx(exact[key], abs=1e-9), key
    ranked, _, _, positions = rank_examples(model, test, top_k=20, retrieval="faiss", return_positions=True)
    for position, items in zip(positions, ranked):  # rows come ordered by history length
        assert len(items) == 20 and not set(test.histories[position].tolist()) & set(items)


@pytest.mark.parametrize("value", ["nonsense", "FAISS", None, 1])
def test_an_unknown_retrieval_is_an_error_naming_the_argument(model, trained, value):
    with pytest.raises(ValueError, match=r"retrieval must be one of 'exact', 'faiss'"):
        rank_examples(model, trained[1].test, retrieval=value)


def test_the_pipeline_with_faiss_returns_the_exact_items_on_a_flat_index(model, trained):
    recommend = pipeline("recommendation", model=model, device="cpu")
    history = [model.catalog.item_ids[i] for i in trained[1].test.histories[0][-15:].tolist()]
    several = [history, history[:5], {"history": history[3:9]}]
    item_index(model, "Flat")
    for kwargs in ({}, {"top_k": 25}, {"exclude_history": False}):
        exact = recommend(several, **kwargs)
        found = recommend(several, retrieval="faiss", **kwargs)
        assert [[i["item_id"] for i in user] for user in found] == [[i["item_id"] for i in user] for user in exact]
        for user_found, user_exact in zip(found, exact):
            assert [i["score"] for i in user_found] == pytest.approx([i["score"] for i in user_exact], abs=1e-4)
    assert not {i["item_id"] for i in recommend(history, top_k=50, retrieval="faiss")} & set(history)
    with pytest.raises(ValueError, match="retrieval must be one of"):
        recommend(history, retrieval="nonsense")


def test_the_pipeline_with_faiss_explains_and_ranks_candidates_exactly(model, trained):
    recommend = pipeline("recommendation", model=model, device="cpu")
    history = [model.catalog.item_ids[i] for i in trained[1].test.histories[1][-8:].tolist()]
    item_index(model, "Flat")
    explained = recommend(history, top_k=3, explain=True, retrieval="faiss")
    exact = recommend(history, top_k=3, explain=True)
    # the same items and explanations; a score may differ in its last bits (faiss sums in another order)
    assert [i["item_id"] for i in explained] == [i["item_id"] for i in exact]
    assert [i["explanation"]["drivers"] for i in explained] == [i["explanation"]["drivers"] for i in exact]
    assert [i["score"] for i in explained] == pytest.approx([i["score"] for i in exact], abs=1e-4)
    candidates = model.catalog.item_ids[:40]
    assert recommend(history, candidates=candidates, retrieval="faiss") == recommend(history, candidates=candidates)
