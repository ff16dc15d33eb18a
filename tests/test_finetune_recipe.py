"""LoRA fine-tuning of a pretrained checkpoint on a slice of the real MovieLens-100K."""

import json
import os
import re
import shutil
import sys

import pytest
import torch
from huggingface_hub import ModelCard
from peft import PeftModel
from transformers import AutoModel, pipeline

import lsrec_hf  # noqa: F401  (registers LSRec with the Auto classes)
from conftest import ROOT, SMALL_MODEL, TINY, run, tiny_table
from lsrec_hf.data import load_data
from lsrec_hf.evaluation import evaluate_ranking
from lsrec_hf.training.finetuning import DEFAULT_LORA_TARGETS, add_lora_adapter
from lsrec_hf.processing.sequences import build_user_sequences, leave_one_out

PRETRAIN = os.path.join(ROOT, "recipes", "pretrain.py")
FINETUNE = os.path.join(ROOT, "recipes", "finetune.py")
TRAINING = ["--batch_size", "32", "--warmup_steps", "5", "--num_epochs", "2"]


@pytest.fixture(scope="module")
def base_dir(ml100k_slice, tmp_path_factory):
    out = tmp_path_factory.mktemp("base")
    run([sys.executable, PRETRAIN, "--dataset", ml100k_slice, "--output_dir", str(out), "--num_epochs", "2",
         *SMALL_MODEL])
    return out


@pytest.fixture(scope="module")
def test_split(ml100k_slice):
    data = load_data(ml100k_slice)
    return leave_one_out(build_user_sequences(data.interactions, data.catalog)).test


def test_lora_trains_an_adapter_that_reloads_and_merges_to_the_reported_metrics(ml100k_slice, base_dir, test_split,
                                                                                 tmp_path):
    out = tmp_path / "lora"
    stdout = run([sys.executable, FINETUNE, "--base_model", str(base_dir), "--dataset", ml100k_slice,
                  "--output_dir", str(out), "--learning_rate", "0.01", *TRAINING])
    assert "trainable parameters" in stdout and "NDCG" in stdout
    files = set(os.listdir(out))
    assert {"adapter_model.safetensors", "adapter_config.json", "eval_results.json"} <= files
    assert "model.safetensors" not in files  # the adapter is saved on its own
    results = json.loads((out / "eval_results.json").read_text())
    base = AutoModel.from_pretrained(base_dir)
    assert results["trainable_parameters"] < 0.5 * sum(p.numel() for p in base.parameters())

    ids = torch.tensor([[5, 9, 40, 300, 12]])
    base_scores = base.eval().score_next(ids)[0]
    adapted = PeftModel.from_pretrained(AutoModel.from_pretrained(base_dir), out).eval()
    assert not torch.allclose(adapted.score_next(ids)[0], base_scores, atol=1e-4)  # the adapter changed the model
    # the per-item output bias trains beside the adapter and is saved with it
    trained_bias = adapted.base_model.model.output_bias.modules_to_save["default"].bias
    assert not torch.allclose(trained_bias, base.output_bias.bias, atol=1e-4)
    # an adapter run is tested without priors, and its folder loads without them; a base put together by hand keeps
    # its own (the pretraining run chose them here), so they are left out to compare like with like
    assert "trend_prior" not in results and "cooccurrence_prior" not in results
    reloaded_folder = AutoModel.from_pretrained(out)
    assert reloaded_folder.trend_prior is None and reloaded_folder.cooccurrence_prior is None
    reloaded = evaluate_ranking(adapted, test_split, trend_prior=False, cooccurrence_prior=False)
    assert reloaded["ndcg@10"] == pytest.approx(results["test"]["ndcg@10"], abs=1e-9)

    merged = adapted.merge_and_unload().eval()
    torch.testing.assert_close(merged.score_next(ids)[0], adapted.score_next(ids)[0], atol=1e-5, rtol=1e-5)


def test_a_finetuned_folder_loads_after_a_move_from_another_directory(ml100k_slice, base_dir, tmp_path, monkeypatch):
    out = tmp_path / "ft1"
    # the base named relative to the working directory, as a user types it
    run([sys.executable, FINETUNE, "--base_model", os.path.relpath(base_dir, ROOT), "--dataset", ml100k_slice,
         "--output_dir", str(out), "--num_epochs", "1", "--batch_size", "64", "--warmup_steps", "1"])
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == "base_model"
    moved = tmp_path / "ft1_moved"
    shutil.move(out, moved)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    ids = torch.tensor([[5, 9, 40, 300, 12]])
    expected = PeftModel.from_pretrained(AutoModel.from_pretrained(base_dir), moved).eval().score_next(ids)[0]
    loaded = AutoModel.from_pretrained(os.path.join("..", "ft1_moved")).eval()
    torch.testing.assert_close(loaded.score_next(ids)[0], expected)
    recommend = pipeline("recommendation", model=os.path.join("..", "ft1_moved"))
    assert len(recommend(["50", "181"], top_k=3)) == 3


def test_full_finetune_saves_a_whole_model(ml100k_slice, base_dir, tmp_path):
    out = tmp_path / "full"
    run([sys.executable, FINETUNE, "--base_model", str(base_dir), "--dataset", ml100k_slice, "--output_dir", str(out),
         "--full_finetune", "true", *TRAINING])
    assert {"model.safetensors", "catalog.json"} <= set(os.listdir(out))
    assert AutoModel.from_pretrained(out).catalog is not None


def test_lora_finetune_runs_on_two_gloo_processes(ml100k_slice, base_dir, tmp_path):
    out = tmp_path / "lora2"
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--main_process_port", "29533"]
    stdout = run(launcher + [FINETUNE, "--base_model", str(base_dir), "--dataset", ml100k_slice,
                             "--output_dir", str(out), *TRAINING], env_extra={"ACCELERATE_USE_CPU": "true"})
    assert "2 process(es)" in stdout
    results = json.loads((out / "eval_results.json").read_text())
    assert results["num_processes"] == 2 and results["test"]["num_users"] == 120


def test_new_items_extend_the_catalog_and_are_scored_through_their_text(ml100k_slice, base_dir, test_split, tmp_path):
    # users of the slice, each followed by an item the base model has never seen
    data = load_data(ml100k_slice)
    rows = ["user,item,ts"]
    for user, history in zip(test_split.user_ids[:40], test_split.histories[:40]):
        items = [data.catalog.item_ids[i] for i in history[-8:]] + ["new-1" if int(user) % 2 else "new-2"]
        rows += [f"{user},{item},{t}" for t, item in enumerate(items)] + [f"{user},50,{len(items)}", f"{user},181,{len(items) + 1}"]
    (tmp_path / "new.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (tmp_path / "items.csv").write_text("item,title,genres\nnew-1,A Space Epic (2024),Sci-Fi|Adventure\n"
                                        "new-2,A Quiet Romance (2024),Romance|Drama\n", encoding="utf-8")
    out = tmp_path / "grown"
    stdout = run([sys.executable, FINETUNE, "--base_model", str(base_dir), "--dataset", str(tmp_path / "new.csv"),
                  "--column_map", '{"user_id": "user", "item_id": "item", "timestamp": "ts"}',
                  "--items", str(tmp_path / "items.csv"), "--item_column_map", '{"item_id": "item", "title": "title", "genres": "genres"}',
                  "--output_dir", str(out), *TRAINING])
    assert "1682 items of the base model + 2 new items" in stdout
    grown = AutoModel.from_pretrained(out / "base_model")
    base = AutoModel.from_pretrained(base_dir)
    assert grown.catalog.item_ids[:1682] == base.catalog.item_ids  # extended, not replaced
    assert grown.catalog.item_ids[1682:] == ["new-1", "new-2"] and grown.config.num_items == 1684
    # new items start as what their text predicts (ids and biases regressed on the base items' text)
    expected = AutoModel.from_pretrained(base_dir)
    expected.extend_catalog(grown.catalog, grown.model.embeddings.content_embeddings[1682:])
    assert torch.allclose(grown.model.embeddings.item_ids.weight[1682:], expected.model.embeddings.item_ids.weight[1682:], atol=1e-6)
    assert grown.model.embeddings.item_ids.weight[1682:].abs().sum() > 0

    adapter_config = json.loads((out / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == "base_model"  # named inside the folder, which can move
    moved = tmp_path / "grown_moved"
    shutil.move(out, moved)
    recommend = pipeline("recommendation", model=str(moved))  # the adapter folder alone finds its grown base
    assert len(recommend.lsrec_model.catalog) == 1684
    out = moved

    adapted = PeftModel.from_pretrained(grown, out).eval()
    scores = adapted.score_next(torch.tensor([[5, 9, 40, 300, 12]]))[0][0]
    assert torch.isfinite(scores[1682:]).all() and scores[1682] != scores[1683]  # text tells the new items apart


def test_default_adapter_trains_at_most_five_percent_of_the_default_model():
    model = lsrec_hf.LSRecForSequentialRecommendation(lsrec_hf.LSRecConfig(num_items=1682, content_dim=384))
    full = sum(p.numel() for p in model.parameters())
    adapted = add_lora_adapter(model)
    trainable = sum(p.numel() for p in adapted.parameters() if p.requires_grad)
    assert 0 < trainable <= 0.05 * full
    # every default target got an adapter, in both layers
    adapted_modules = {re.split(r"\.lora_(?:embedding_)?A", name)[0].rsplit(".", 1)[-1]
                       for name, p in adapted.named_parameters() if re.search(r"\.lora_(?:embedding_)?A\.", name)}
    assert adapted_modules == set(DEFAULT_LORA_TARGETS)
    assert "base_model.model.output_bias.modules_to_save.default.bias" in {
        name for name, p in adapted.named_parameters() if p.requires_grad}
    # an id-only model has no text projection: the default targets adapt what it has
    id_only = lsrec_hf.LSRecForSequentialRecommendation(lsrec_hf.LSRecConfig(num_items=50, content_dim=0, use_content=False))
    names = [n for n, p in add_lora_adapter(id_only).named_parameters() if p.requires_grad]
    assert any("item_ids.lora_embedding_A" in n for n in names) and not any("text_proj" in n for n in names)
    # item_rank sets the rank of the item embeddings' update alone
    ranked = lsrec_hf.LSRecForSequentialRecommendation(lsrec_hf.LSRecConfig(num_items=50, content_dim=0, use_content=False))
    shapes = {n.split(".lora_")[0].rsplit(".", 1)[-1]: p.shape[0] for n, p in
              add_lora_adapter(ranked, r=1, item_rank=4).named_parameters() if "lora_A" in n or "lora_embedding_A" in n}
    assert shapes.pop("item_ids") == 4 and set(shapes.values()) == {1}


def test_the_recipe_names_the_flag_of_a_module_the_model_lacks():
    sys.path.insert(0, os.path.join(ROOT, "recipes"))
    from finetune import FinetuneArguments, build_finetune_model

    id_only = lsrec_hf.LSRecForSequentialRecommendation(lsrec_hf.LSRecConfig(num_items=50, content_dim=0, use_content=False))
    with pytest.raises(ValueError, match=r"--lora_modules_to_save: \['no_such_module'\]"):
        build_finetune_model(id_only, FinetuneArguments(lora_modules_to_save="output_bias,no_such_module"))
    with pytest.raises(ValueError, match=r"--lora_target_modules: \['text_proj'\]"):
        build_finetune_model(id_only, FinetuneArguments(lora_target_modules="q_proj,text_proj"))


def test_lora_on_item_embeddings_reaches_the_output_layer():
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = lsrec_hf.LSRecForSequentialRecommendation(lsrec_hf.LSRecConfig(
        num_items=30, content_dim=8, hidden_size=16, intermediate_size=32, num_hidden_layers=1)).eval()
    ids = torch.tensor([[5, 9, 12]])
    base_scores = model.score_next(ids)[0].clone()
    adapted = get_peft_model(model, LoraConfig(r=2, target_modules=["item_ids"])).eval()
    with torch.no_grad():
        for name, p in adapted.named_parameters():
            if "lora_embedding_A" in name:
                p[:, 20].normal_()  # only item 20 (token 22, never in the history) moves
    scores = adapted.score_next(ids)[0]
    changed = (scores - base_scores).abs()[0] > 1e-6
    assert changed.tolist() == [i == 20 for i in range(30)]
    merged = adapted.merge_and_unload().eval()
    torch.testing.assert_close(merged.score_next(ids)[0], scores)


@pytest.fixture
def recipes(monkeypatch, tmp_path):
    """`pretrain` and `finetune` run in-process from `tmp_path`, with a tiny base model in `tmp_path/base`."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(os.path.join(ROOT, "recipes"))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    import finetune
    import pretrain

    table = tiny_table(tmp_path / "events.csv")
    pretrain.main(["--dataset", table, "--output_dir", "base", "--num_epochs", "1", *TINY])
    yield finetune, table
    sys.modules.pop("pretrain", None)


TINY_FINETUNE = ["--batch_size", "8", "--warmup_steps", "1", "--num_epochs", "1"]


@pytest.mark.filterwarnings("ignore:.*appear only in the interactions")  # a table without an item file
def test_a_finetuned_card_is_a_peft_card_naming_its_base_and_its_recipe(recipes):
    finetune, table = recipes
    finetune.main(["--base_model", "base", "--dataset", table, "--output_dir", "outputs/ft1", *TINY_FINETUNE])
    card = ModelCard.load("outputs/ft1/README.md")
    assert card.data.library_name == "peft" and "lora" in card.data.tags
    assert "Fine-tuned from `base` as a LoRA adapter" in card.text
    assert "with `recipes/finetune.py`" in card.text and 'from_pretrained("outputs/ft1")' in card.text
    assert AutoModel.from_pretrained("outputs/ft1").catalog is not None  # the how-to works as written


@pytest.mark.filterwarnings("ignore:.*appear only in the interactions")
def test_pushing_an_adapter_of_a_local_base_is_refused_before_training(recipes, capsys):
    finetune, table = recipes
    with pytest.raises(SystemExit):
        finetune.main(["--base_model", "base", "--dataset", table, "--output_dir", "ft", "--push_to_hub",
                       *TINY_FINETUNE])
    assert "--push_to_hub: the adapter would name a base model on this disk" in capsys.readouterr().err
    assert not os.path.exists("ft")


def test_finetune_help_states_its_own_output_dir_default(monkeypatch, capsys):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "recipes"))
    import finetune

    with pytest.raises(SystemExit):
        finetune.main(["--help"])
    assert "outputs/lsrec-finetuned" in " ".join(capsys.readouterr().out.split())
