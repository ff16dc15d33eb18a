"""Hub push and pull without a network: uploads are caught at `HfApi`, downloads are served from a local Hub cache
laid out as huggingface_hub lays it out (blobs, snapshots/<commit>, refs/<branch>)."""

import hashlib
import json
import os
import sys

import pytest
import torch
from huggingface_hub import CommitInfo, HfApi, ModelCard, ModelCardData, RepoUrl, constants, metadata_load
from huggingface_hub.repocard_data import model_index_to_eval_results
from transformers import AutoModel

import lsrec_hf  # noqa: F401  (registers LSRec with the Auto classes)
from lsrec_hf import ItemCatalog, LSRecConfig, LSRecForSequentialRecommendation

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_ITEMS = 20
MODEL_FILES = {"config.json", "model.safetensors", "catalog.json", "README.md"}
RESULTS = {
    "dataset": "ml-100k", "protocol": "leave-one-out", "ranking": "full catalog, history items excluded",
    "num_users": 943, "num_items": NUM_ITEMS, "num_test_users": 943, "best_epoch": 3, "epochs_run": 5,
    "test": {"hr@10": 0.21, "ndcg@10": 0.1123, "mrr@10": 0.08, "hr@20": 0.33, "ndcg@20": 0.14, "mrr@20": 0.09},
}
HISTORY = torch.tensor([[3, 7, 2, 12, 9]])


@pytest.fixture
def model():
    torch.manual_seed(0)
    config = LSRecConfig(num_items=NUM_ITEMS, content_dim=8, hidden_size=16, num_attention_heads=2,
                         intermediate_size=32, segment_length=4, memory_length=8, initializer_range=0.3)
    model = LSRecForSequentialRecommendation(config).eval()
    model.model.embeddings.content_embeddings.normal_()
    model.catalog = ItemCatalog([f"m{i}" for i in range(NUM_ITEMS)], [f"Movie {i}" for i in range(NUM_ITEMS)],
                                [f"text {i}" for i in range(NUM_ITEMS)])
    return model


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An offline Hub: HF_HUB_CACHE points at an empty folder. huggingface_hub reads its environment at import, so
    the constants are patched too."""
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def add_to_cache(cache, repo_id, files, branch="main"):
    """Lay out `files` ({name: bytes}) as one commit of `repo_id` in a Hub cache, as a download would; the commit."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = hashlib.sha1(b"".join(name.encode() + data for name, data in sorted(files.items()))).hexdigest()
    for name, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = repo / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / branch).write_text(commit)
    return commit


class FakeHub:
    """Records what `HfApi` is asked to do; each commit's files land in the local Hub cache (when one is given)."""

    def __init__(self, cache=None):
        self.cache, self.repos, self.branches, self.commits = cache, {}, [], []

    def create_repo(self, repo_id, *, private=None, exist_ok=False, **kwargs):
        repo_id = repo_id if "/" in repo_id else f"me/{repo_id}"
        self.repos[repo_id] = private
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def create_branch(self, repo_id, *, branch, exist_ok=False, **kwargs):
        self.branches.append((repo_id, branch))

    def create_commit(self, repo_id, operations, *, commit_message, revision=None, **kwargs):
        files = {}
        for operation in operations:
            with operation.as_file() as f:  # the upload's payload, read while its folder still exists
                files[operation.path_in_repo] = f.read()
        self.commits.append({"repo_id": repo_id, "files": files, "message": commit_message, "revision": revision})
        oid = add_to_cache(self.cache, repo_id, files, revision or "main") if self.cache else "0" * 40
        return CommitInfo(commit_url=f"https://huggingface.co/{repo_id}/commit/{oid}", commit_message=commit_message,
                          commit_description="", oid=oid)


@pytest.fixture
def fake_hub(monkeypatch, hub_cache):
    """The lowest `HfApi` calls of a push, answered by a `FakeHub` (nothing else of huggingface_hub is replaced)."""
    hub = FakeHub(hub_cache)
    for name in ("create_repo", "create_branch", "create_commit"):
        method = getattr(hub, name)
        monkeypatch.setattr(HfApi, name, lambda api, *args, _method=method, **kwargs: _method(*args, **kwargs))
    return hub


def scores(model):
    return model.score_next(HISTORY)[0]


def test_push_uploads_weights_catalog_and_card(model, fake_hub):
    model.eval_results = RESULTS
    commit = model.push_to_hub("org/lsrec-tiny", private=True, revision="dev", commit_message="first")
    assert fake_hub.repos == {"org/lsrec-tiny": True}
    assert fake_hub.branches == [("org/lsrec-tiny", "dev")]  # the branch is created, then committed to
    [pushed] = fake_hub.commits
    assert pushed["revision"] == "dev" and pushed["message"] == "first"
    assert set(pushed["files"]) == MODEL_FILES | {"eval_results.json"}
    assert json.loads(pushed["files"]["catalog.json"]) == model.catalog.to_dict()
    assert json.loads(pushed["files"]["eval_results.json"]) == RESULTS
    assert "org/lsrec-tiny" in pushed["files"]["README.md"].decode()  # the card's how-to names the repo
    assert commit.commit_url.endswith(commit.oid)  # push_to_hub returns the commit


def test_push_without_results_still_uploads_a_card(model, fake_hub):
    model.push_to_hub("lsrec-tiny")
    [pushed] = fake_hub.commits
    assert pushed["repo_id"] == "me/lsrec-tiny" and pushed["revision"] is None
    assert set(pushed["files"]) == MODEL_FILES
    card = ModelCard(pushed["files"]["README.md"].decode())
    assert card.data.eval_results is None and "## Results" not in card.text


def test_save_pretrained_with_push_to_hub_uploads_the_catalog(model, fake_hub, tmp_path):
    model.save_pretrained(tmp_path / "out", push_to_hub=True, repo_id="org/saved")
    assert {"config.json", "model.safetensors", "catalog.json"} <= set(os.listdir(tmp_path / "out"))
    [pushed] = fake_hub.commits
    assert pushed["repo_id"] == "org/saved" and set(pushed["files"]) == MODEL_FILES


def test_pull_from_the_hub_cache_by_branch_and_by_commit(model, hub_cache, tmp_path):
    model.save_pretrained(tmp_path / "saved")
    files = {name: (tmp_path / "saved" / name).read_bytes() for name in os.listdir(tmp_path / "saved")}
    commit = add_to_cache(hub_cache, "org/lsrec-tiny", files)

    pulled = AutoModel.from_pretrained("org/lsrec-tiny")  # HF_HUB_OFFLINE: from the cache only
    assert isinstance(pulled, LSRecForSequentialRecommendation)
    assert pulled.catalog.to_dict() == model.catalog.to_dict() and pulled.eval_results is None
    assert torch.equal(scores(pulled), scores(model))

    pinned = AutoModel.from_pretrained("org/lsrec-tiny", revision=commit, cache_dir=str(hub_cache))
    assert pinned.catalog.item_ids == model.catalog.item_ids
    assert torch.equal(scores(pinned), scores(model))


def test_push_then_pull_round_trip(model, fake_hub):
    model.eval_results = RESULTS
    model.push_to_hub("org/round-trip")
    pulled = AutoModel.from_pretrained("org/round-trip")
    assert torch.equal(scores(pulled), scores(model))
    assert pulled.catalog.to_dict() == model.catalog.to_dict() and pulled.eval_results == RESULTS

    pulled.push_to_hub("org/round-trip-again")  # a pulled model carries its results to the next card
    first, again = (c["files"]["README.md"].decode() for c in fake_hub.commits)
    assert ModelCard(again).data.eval_results == ModelCard(first).data.eval_results


def test_model_card_metadata_holds_the_metrics(model, fake_hub, tmp_path):
    model.eval_results = RESULTS
    model.push_to_hub("org/lsrec-card")
    path = tmp_path / "README.md"
    path.write_bytes(fake_hub.commits[0]["files"]["README.md"])

    card = ModelCard.load(path)
    assert {r.metric_type: r.metric_value for r in card.data.eval_results} == {
        key: pytest.approx(value, abs=1e-4) for key, value in RESULTS["test"].items()}
    assert all(r.dataset_split == "test" and r.dataset_type == "ml-100k" for r in card.data.eval_results)
    assert card.data.library_name == "transformers" and "recommendation" in card.data.tags

    # The metadata as the Hub reads it: YAML front matter with a model-index, which parses back to the same results.
    metadata = metadata_load(path)
    name, results = model_index_to_eval_results(metadata["model-index"])
    assert name == "lsrec-card" and results == card.data.eval_results
    assert ModelCardData(**metadata).to_dict() == metadata  # nothing lost or invented in a round trip


@pytest.mark.filterwarnings("ignore:.*appear only in the interactions")  # a table without an item file
def test_recipe_pushes_the_final_model(fake_hub, tmp_path, monkeypatch):
    """`recipes/pretrain.py --push_to_hub` on a tiny table: one commit with the model, its catalog and the card."""
    rows = [f"u{u},i{(u * 3 + t) % 12},{t}" for u in range(12) for t in range(8)]
    (tmp_path / "events.csv").write_text("user_id,item_id,timestamp\n" + "\n".join(rows) + "\n")
    monkeypatch.syspath_prepend(os.path.join(ROOT, "recipes"))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    import pretrain

    pretrain.main(["--dataset", str(tmp_path / "events.csv"), "--output_dir", str(tmp_path / "run"),
                   "--text_encoder", "none", "--hidden_size", "8", "--intermediate_size", "16",
                   "--num_hidden_layers", "1", "--num_epochs", "1", "--segment_length", "4", "--memory_length", "4",
                   "--push_to_hub", "--hub_model_id", "org/recipe", "--hub_private", "--hub_revision", "v1"])
    assert fake_hub.repos == {"org/recipe": True}
    [pushed] = fake_hub.commits
    local = json.loads((tmp_path / "run" / "eval_results.json").read_text())
    # the priors the recipe kept (chosen on validation) travel with the weights
    priors = {f"{name}.safetensors" for name in ("trend_prior", "cooccurrence_prior") if local[name]["chosen"]}
    assert pushed["revision"] == "v1" and set(pushed["files"]) == MODEL_FILES | {"eval_results.json"} | priors
    card = ModelCard(pushed["files"]["README.md"].decode())
    reported = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert reported["ndcg@10"] == pytest.approx(local["test"]["ndcg@10"], abs=1e-4)
    sys.modules.pop("pretrain", None)
