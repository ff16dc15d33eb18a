"""Approximate top-k: a faiss inner-product index over the item representations, for catalogs too big to score.

An item's score for a user state `u` is `u . v_i + b_i` (`item_scores`: the item's representation plus its output
bias). With the bias folded in as one more dimension, user `[u, 1]` and item `[v_i, b_i]`, the score is a single
inner product, which faiss searches without scoring every item: exactly with a `"Flat"` index, approximately and
much faster with an inverted file (`"IVF1024,Flat"`) or a graph (`"HNSW32"`). The default, `"auto"`, is exact
(`"Flat"`) below 100,000 items, where a search costs no more than scoring the catalog, and an inverted file of
about sqrt(num_items) lists above.

The index is built once per model (and its active adapter) and kept beside it; every search first compares a
fingerprint of the tensors the item vectors come from (their storage, their autograd version counter, a strided
sample of their values, and the adapter state of the layers holding them) with the one the index was built
from, and rebuilds on any difference: a training step, `load_state_dict`, a `.data` write, switching, disabling or
merging a LoRA adapter, or `extend_catalog`. The check reads a few hundred numbers per tensor, whatever the catalog
size. `invalidate(model)` drops the index by hand (e.g. after writing into a weight through `.data` at an unsampled
place).

`retrieval="faiss"` in `pipeline("recommendation")` and `lsrec_hf.evaluation.rank_examples` searches this index;
`retrieval="exact"` (the default) scores the whole catalog. Needs `pip install "lsrec_hf[retrieval]"` (faiss-cpu).
"""

import weakref

import numpy as np
import torch

from ..processing.tokens import item_set

RETRIEVAL_CHOICES = ("exact", "faiss")

# On the 1M-item synthetic catalog of bench/retrieval.py (one thread) "IVF1024,Flat" visiting 64 lists recalls
# 0.996 of the exact top-10 in 0.6 ms a user, built in 5 s; "HNSW32" (efConstruction 64) stalls at 0.98 with
# efSearch 512 after a 100 s build.
DEFAULT_INDEX = "auto"
EXACT_BELOW = 100_000
DEFAULT_NPROBE = 64
DEFAULT_EF_CONSTRUCTION = 80
DEFAULT_EF_SEARCH = 256

# Values sampled per tensor by the fingerprint: enough to see any update of a whole tensor, a few microseconds.
_SAMPLES = 257

_INDEXES = weakref.WeakKeyDictionary()  # LSRec model -> ItemIndex; goes with the model


def check_retrieval(retrieval):
    """`retrieval`, or a ValueError naming the argument and its choices."""
    if not isinstance(retrieval, str) or retrieval not in RETRIEVAL_CHOICES:
        raise ValueError(f"retrieval must be one of {', '.join(map(repr, RETRIEVAL_CHOICES))}, got {retrieval!r}")
    return retrieval


def _faiss():
    try:
        import faiss
    except ImportError:
        raise ImportError('retrieval="faiss" needs faiss-cpu: pip install "lsrec_hf[retrieval]"') from None
    return faiss


def _base(model):
    """The LSRec model itself, through a PEFT wrapper (whose adapters live inside the base model's layers)."""
    get_base_model = getattr(model, "get_base_model", None)
    return model if get_base_model is None else get_base_model()


def _sources(model):
    """The modules whose tensors the item vectors come from."""
    return {"embeddings": model.model.embeddings, "output_bias": model.output_bias}


def fingerprint(model):
    """A cheap key that changes when the item vectors `[v_i, b_i]` of `model` may have changed."""
    model = _base(model)
    key = []
    for prefix, module in _sources(model).items():
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
            flat = tensor.detach().reshape(-1)
            # `.data` writes bump no version counter: a strided sample of the values sees them
            step = max(flat.numel() // _SAMPLES, 1)
            sample = flat[::step][:_SAMPLES].double()
            weights = torch.arange(1, sample.numel() + 1, dtype=torch.float64, device=sample.device)
            key.append((f"{prefix}.{name}", tensor.data_ptr(), tensor._version, tuple(tensor.shape),
                        str(tensor.dtype), str(tensor.device), float((sample * weights).sum())))
        for name, layer in module.named_modules():  # PEFT layers: which adapter is on, merged or not
            state = tuple(repr(getattr(layer, attribute, None))
                          for attribute in ("active_adapters", "active_adapter", "disable_adapters", "merged"))
            if any(value != "None" for value in state):
                key.append((f"{prefix}.{name}", state))
    return tuple(key)


@torch.no_grad()
def item_vectors(model):
    """`[num_items, hidden + 1]` float32: each item's representation with its output bias appended."""
    model = _base(model)
    embeddings = model.model.embeddings
    training = embeddings.training
    embeddings.eval()  # no id dropout: the vectors the model scores with at inference
    try:
        reps = embeddings.item_representations()
    finally:
        embeddings.train(training)
    bias = model.output_bias() if model.config.use_output_bias else torch.zeros(reps.shape[0])
    return torch.cat([reps.float(), bias.float()[:, None]], dim=1).cpu().contiguous()


class ItemIndex:
    """A faiss inner-product index over a model's item vectors `[v_i, b_i]`.

    Args:
        model: an LSRec model (or a PEFT model around one).
        index (`str`, defaults to `"auto"`): a faiss index factory string; `"Flat"` is exact (brute force),
            `"IVF1024,Flat"` an inverted file (trained on the item vectors), `"HNSW32"` an HNSW graph; `"auto"`
            is `"Flat"` below 100,000 items, else `"IVF{n},Flat"` with n the power of 2 nearest sqrt(num_items).
        ef_construction, ef_search (`int`): HNSW's candidate list sizes when building and when searching; a
            search asks for at least as many candidates as results.
        nprobe (`int`): inverted lists visited per search (IVF only).
    """

    def __init__(self, model, index=DEFAULT_INDEX, ef_construction=DEFAULT_EF_CONSTRUCTION,
                 ef_search=DEFAULT_EF_SEARCH, nprobe=DEFAULT_NPROBE):
        faiss = _faiss()
        self.spec, self.ef_search, self.nprobe = index, ef_search, nprobe
        self.ef_construction = ef_construction
        self.fingerprint = fingerprint(model)
        vectors = item_vectors(model).numpy()
        if index == "auto":
            lists = 2 ** round(np.log2(max(len(vectors), 1) ** 0.5))
            index = "Flat" if len(vectors) < EXACT_BELOW else f"IVF{lists},Flat"
        self.kind = index
        # inner product searched as is: on item vectors with the structure of text (or trained) embeddings, HNSW
        # with inner product recalled more than the L2 search of the sphere transform (Bachrach et al., 2014)
        self.index = faiss.index_factory(vectors.shape[1], index, faiss.METRIC_INNER_PRODUCT)
        hnsw = getattr(self.index, "hnsw", None)
        if hnsw is not None:
            hnsw.efConstruction = ef_construction
        if not self.index.is_trained:
            self.index.train(vectors)
        self.index.add(vectors)
        self.num_items = vectors.shape[0]

    def search(self, user_states, k):
        """Top-`k` `(scores, indices)` `[B, k]` tensors for user states `[B, hidden]`, best first.

        Missing results (an approximate index may find fewer than `k`) have score -inf and index 0.
        """
        faiss = _faiss()
        k = min(k, self.num_items)
        queries = torch.cat([user_states.float().cpu(), torch.ones(user_states.shape[0], 1)], dim=1)
        hnsw = getattr(self.index, "hnsw", None)
        if hnsw is not None:
            hnsw.efSearch = max(self.ef_search, k)
        ivf = faiss.try_extract_index_ivf(self.index)
        if ivf is not None:
            ivf.nprobe = self.nprobe
        scores, indices = self.index.search(np.ascontiguousarray(queries.numpy()), k)
        scores, indices = torch.from_numpy(scores), torch.from_numpy(indices)
        missing = indices < 0
        return scores.masked_fill(missing, float("-inf")), indices.masked_fill(missing, 0)


def item_index(model, index=None, **options):
    """The model's current `ItemIndex`: the cached one while the item vectors are unchanged, else built anew.

    `index` (a faiss factory string) and `options` (see `ItemIndex`) choose the index; without them a rebuild keeps
    the kind of the previous index (the default `"auto"` at first). A choice different from the cached index's
    rebuilds it, so `item_index(model, "Flat")` once makes every later `retrieval="faiss"` search exact.
    """
    base = _base(model)
    cached = _INDEXES.get(base)
    if cached is not None:
        settings = {"index": cached.spec, "ef_construction": cached.ef_construction, "ef_search": cached.ef_search,
                    "nprobe": cached.nprobe}
    else:
        settings = {}
    wanted = {**settings, **({"index": index} if index is not None else {}), **options}
    if cached is not None and wanted == settings and cached.fingerprint == fingerprint(base):
        return cached
    built = ItemIndex(base, **wanted)
    _INDEXES[base] = built
    return built


def invalidate(model):
    """Forget the model's index: the next search builds it again from the current weights."""
    _INDEXES.pop(_base(model), None)


@torch.no_grad()
def next_user_states(model, input_ids, **kwargs):
    """The user states `[B, hidden]` that `model.score_next(input_ids, **kwargs)` scores, and its gate `[B]`."""
    return _base(model).next_user_state(input_ids, **kwargs)


def _history_sets(input_ids):
    """Per row, the catalog indices of the items in the (padded) token row."""
    rows = []
    for row in input_ids.tolist():
        rows.append(item_set(row))
    return rows


def search_top_k(model, user_states, top_k, exclude=None):
    """Top-`top_k` `(scores, indices)` `[B, top_k]` from the model's index; rows of `exclude` (sets of catalog
    indices, e.g. each user's history) are never returned. A row short of items pads with score -inf, like
    `scores.topk` over a catalog whose remaining items are all masked.
    """
    index = item_index(model)
    top_k = min(top_k, index.num_items)
    extra = max((len(items) for items in exclude), default=0) if exclude is not None else 0
    # ask for enough that `top_k` remain after dropping the excluded ones
    scores, indices = index.search(user_states, top_k + extra)
    if exclude is None:
        return scores[:, :top_k], indices[:, :top_k]
    out_scores = torch.full((len(scores), top_k), float("-inf"))
    out_indices = torch.zeros((len(scores), top_k), dtype=torch.long)
    for row, (row_scores, row_indices, excluded) in enumerate(zip(scores.tolist(), indices.tolist(), exclude)):
        kept = [(s, i) for s, i in zip(row_scores, row_indices) if i not in excluded and s > float("-inf")][:top_k]
        if kept:
            out_scores[row, :len(kept)] = torch.tensor([s for s, _ in kept])
            out_indices[row, :len(kept)] = torch.tensor([i for _, i in kept])
    return out_scores, out_indices


def retrieve(model, input_ids, top_k, exclude_history=True, **kwargs):
    """`(scores, indices, gate)`: the top-`top_k` next items after each history, searched in the model's index.

    The same as `score_next` + `mask_history` + `topk` with an exact (`"Flat"`) index; `kwargs` go to
    `score_next` (`attention_mask`, `memory`, `context_ids`, `target_context_ids`).
    """
    states, gate = next_user_states(model, input_ids, **kwargs)
    exclude = _history_sets(input_ids) if exclude_history else None
    scores, indices = search_top_k(model, states, top_k, exclude)
    return scores, indices, gate


__all__ = ["RETRIEVAL_CHOICES", "ItemIndex", "check_retrieval", "fingerprint", "invalidate", "item_index",
           "item_vectors", "next_user_states", "retrieve", "search_top_k"]
