import pytest
import torch

from conftest import save_tiny_model
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModel, pipeline

import lsrec_hf  # noqa: F401  (registers the "recommendation" task)
from lsrec_hf import ItemCatalog, LSRecConfig, LSRecForSequentialRecommendation
from lsrec_hf.inference.pipeline_recommendation import RecommendationPipeline
from lsrec_hf.inference.user_state import encode_user

NUM_ITEMS = 30
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "fc_in", "fc_out", "text_proj"]
HISTORIES = [["m3", "m7", "m1", "m12", "m7", "m20"], ["m2"], ["m4", "m5", "m6", "m8", "m9"]]


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("base"), [f"Movie {i} ({1970 + i})" for i in range(NUM_ITEMS)])


@pytest.fixture(scope="module")
def peft_model(base_dir):
    # No task_type: LSRec is none of PEFT's task heads, so the plain PeftModel wraps it.
    model = get_peft_model(AutoModel.from_pretrained(base_dir),
                           LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, lora_dropout=0.0))
    torch.manual_seed(1)
    for name, param in model.named_parameters():
        if "lora_B" in name:  # B starts at zero, which would make the adapter a no-op
            torch.nn.init.normal_(param, std=0.3)
    return model.eval()


def scores(recommend, **kwargs):
    """Every item's score per history, item id -> score (the history not excluded)."""
    return [{item["item_id"]: item["score"] for item in items}
            for items in recommend(HISTORIES, top_k=NUM_ITEMS, exclude_history=False, **kwargs)]


def assert_same(a, b, tol=1e-5):
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        assert max(abs(x[k] - y[k]) for k in x) <= tol


def test_lora_reaches_every_target(peft_model):
    wrapped = {name.rsplit(".", 1)[-1] for name, module in peft_model.named_modules() if hasattr(module, "lora_A")}
    assert wrapped == set(TARGETS)


def test_pipeline_takes_the_peft_model_and_scores_with_its_adapter(base_dir, peft_model):
    recommend = pipeline("recommendation", model=peft_model, device="cpu")
    assert isinstance(recommend, RecommendationPipeline) and recommend.model is peft_model
    assert recommend.lsrec_model is peft_model.get_base_model()
    adapted = scores(recommend)
    # The pipeline's scores are the PEFT model's own (its forward, last position of the left-padded batch).
    tokens = torch.tensor([recommend.lsrec_model.catalog.encode(HISTORIES[0])])
    with torch.no_grad():
        logits = peft_model(input_ids=tokens).logits[0, -1]
    assert_same(adapted[:1], [{f"m{i}": logits[i].item() for i in range(NUM_ITEMS)}])

    base = scores(pipeline("recommendation", model=str(base_dir), device="cpu"))
    assert max(abs(adapted[0][k] - base[0][k]) for k in base[0]) > 1e-2  # the adapter changes the model
    with peft_model.disable_adapter():
        assert_same(scores(recommend), base)


def test_memory_and_explain_go_through_the_adapter(peft_model):
    recommend = RecommendationPipeline(model=peft_model, device="cpu")  # the class itself takes it too
    older, new = ["m3", "m7", "m1", "m12", "m5"], ["m20", "m21", "m22", "m23"]
    state = encode_user(recommend.lsrec_model, recommend.lsrec_model.catalog.encode(older))
    from_state = recommend(new, memory=state, top_k=5, exclude_history=False)
    fresh = recommend(older + new, top_k=5, exclude_history=False)
    assert [i["item_id"] for i in from_state] == [i["item_id"] for i in fresh]
    assert [i["score"] for i in from_state] == pytest.approx([i["score"] for i in fresh], abs=1e-5)
    assert all(item["explanation"]["reason"] for item in recommend(HISTORIES[0], top_k=2, explain=True))


def test_saved_adapter_reloads_and_merges_to_the_same_scores(base_dir, peft_model, tmp_path):
    expected = scores(pipeline("recommendation", model=peft_model, device="cpu"))
    peft_model.save_pretrained(tmp_path)
    assert {"adapter_model.safetensors", "adapter_config.json"} <= {p.name for p in tmp_path.iterdir()}

    reloaded = PeftModel.from_pretrained(AutoModel.from_pretrained(base_dir), tmp_path)
    assert_same(scores(pipeline("recommendation", model=reloaded, device="cpu")), expected)

    merged = reloaded.merge_and_unload()
    assert type(merged) is LSRecForSequentialRecommendation and merged.catalog is not None
    assert not any(hasattr(module, "lora_A") for module in merged.modules())
    assert_same(scores(pipeline("recommendation", model=merged, device="cpu")), expected)


def test_pipeline_loads_an_adapter_folder_by_path_with_its_base_catalog(base_dir, peft_model, tmp_path):
    expected = scores(pipeline("recommendation", model=peft_model, device="cpu"))
    peft_model.save_pretrained(tmp_path)  # adapter_config.json names base_dir as the base model
    recommend = pipeline("recommendation", model=str(tmp_path), device="cpu")
    assert recommend.lsrec_model.catalog is not None
    assert_same(scores(recommend), expected)
