"""Full-ranking evaluation: every catalog item is scored and the rank of the held-out item gives HR@K, NDCG@K
and MRR@K (never sampled negatives).

Whether the items of the user's input history are removed from the ranking is a protocol choice that moves
NDCG@10 by about 2x on MovieLens: SASRec+, gSASRec and RePlay remove them (`exclude_history=True`, the default
here); RecBole 1.2.1 keeps them for sequential models (`exclude_history=False`). Compare only like with like.
"""

import functools

import numpy as np
import torch
from accelerate.utils import gather_object
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..processing.collator import EvaluationCollator
from ..processing.tokens import item_indices_or
from ..model.retrieval import check_retrieval, retrieve
from ..utils import progress_bars_off

DEFAULT_K_VALUES = (10, 20)


@functools.cache
def _full_ranking_metric():
    from .metrics import load_full_ranking_metric  # the `evaluate` module, loaded once per process

    return load_full_ranking_metric(keep_in_memory=True)  # no cache files shared between ranks


def ranking_name(exclude_history):
    """How a results file or model card states the ranking protocol."""
    return "full catalog, history items excluded" if exclude_history else "full catalog, history items kept"


def item_domains(model):
    """Each catalog item's domain as a code `[num_items]` when the catalog combines several (its `domain`
    attribute, `lsrec_hf.data.domains`), else None."""
    catalog = getattr(model, "catalog", None)
    domains = None if catalog is None else catalog.attributes.get("domain")
    if not domains or len(set(domains)) < 2:
        return None
    _, codes = np.unique(np.asarray(domains, dtype=object).astype(str), return_inverse=True)
    return torch.as_tensor(codes, dtype=torch.long)


def mask_other_domains(scores, input_ids, domains):
    """Set to -inf the scores of items outside the domain of each user's last history item (in place): a user of
    a combined data set is ranked over its own domain's catalog, as a run on that domain alone would rank it."""
    domains = domains.to(scores.device)
    user_domain = domains[item_indices_or(input_ids[:, -1:], 0)]  # histories are left-padded: the last is an event
    scores.masked_fill_(domains[None, :] != user_domain, float("-inf"))
    return scores


def mask_history(scores, input_ids):
    """Set the scores of the items in each user's input history to -inf (in place)."""
    num_items = scores.shape[1]
    # padding and special tokens point at an extra column that is dropped afterwards
    index = item_indices_or(input_ids, num_items)
    padded = torch.cat([scores, scores.new_zeros(scores.shape[0], 1)], dim=1)
    padded.scatter_(1, index, float("-inf"))
    scores.copy_(padded[:, :num_items])
    return scores


def read_histories(examples, rows, max_length=None):
    """The histories of `examples`' `rows` as the model reads them: the last `max_length` events (all when None)."""
    return [examples.histories[row][-max_length:] if max_length else examples.histories[row] for row in rows]


def priors_bias(examples, rows, trend_prior=None, cooccurrence_prior=None, max_length=None):
    """What the priors add to the scores of `examples`' `rows` (`[len(rows), num_items]`), or None without any: the
    trend prior at each example's time, the co-occurrence prior after the history the model reads."""
    bias = None
    if trend_prior is not None and examples.target_times is not None:
        bias = trend_prior.bias(examples.target_times[rows])
    if cooccurrence_prior is not None:
        bias = cooccurrence_prior.bias(read_histories(examples, rows, max_length)) + (0.0 if bias is None else bias)
    return bias


def sharded_batches(model, examples, accelerator=None, batch_size=256, max_length=None, description="evaluating"):
    """(rows, batch) over this process's share of `examples`, longest histories first (a batch holds users of
    similar length): `rows` are the batch's indices in `examples`, `batch` the `EvaluationCollator`'s tensors."""
    model.eval()
    num_processes = accelerator.num_processes if accelerator is not None else 1
    rank = accelerator.process_index if accelerator is not None else 0
    with_context = bool(model.config.feature_names) and examples.target_context is not None
    if with_context:
        pairs = list(zip(examples.histories, examples.targets.tolist(), examples.history_context,
                         examples.target_context))
    else:
        pairs = list(zip(examples.histories, examples.targets.tolist()))
    order = sorted(range(len(pairs)), key=lambda i: -len(pairs[i][0]))[rank::num_processes]
    loader = DataLoader([pairs[i] for i in order], batch_size=batch_size,
                        collate_fn=EvaluationCollator(model.config.segment_length, max_length))
    show = accelerator is None or accelerator.is_local_main_process
    progress = tqdm(loader, desc=description, disable=not show or progress_bars_off(), leave=False)
    for start, batch in zip(range(0, len(order), batch_size), progress):
        yield order[start:start + len(batch["targets"])], batch


def exact_scores(model, batch, device, exclude_history=True, domains=None, bias=None):
    """Float32 scores `[B, num_items]` of every item for a batch of `sharded_batches`, and the gate `[B]`:
    `bias` `[B, num_items]` (a trend prior's) added, history items (and other domains' items) at -inf."""
    input_ids = batch["input_ids"].to(device)
    context = {k: batch[k].to(device) for k in ("context_ids", "target_context_ids") if k in batch}
    output = model.score_next(input_ids, batch["attention_mask"].to(device), **context)
    scores = output.scores.float()
    if bias is not None:
        scores += bias.to(scores.device)
    if exclude_history:
        scores = mask_history(scores, input_ids)
    if domains is not None:
        scores = mask_other_domains(scores, input_ids, domains)
    return scores, output.gate


def scored_batches(model, examples, accelerator=None, batch_size=256, max_length=None, exclude_history=True,
                   description="scoring"):
    """(rows, scores, targets) over this process's share of `examples`: the model's `exact_scores` on the CPU,
    without any prior (what the priors' calibration adds its choices to)."""
    device = accelerator.device if accelerator is not None else model.device
    domains = item_domains(model)
    for rows, batch in sharded_batches(model, examples, accelerator, batch_size, max_length, description):
        scores, _ = exact_scores(model, batch, device, exclude_history, domains)
        yield rows, scores.cpu(), batch["targets"]


def score_matrix_batches(scores, examples, exclude_history=True, batch_size=256):
    """(rows, scores, targets) as `scored_batches` gives them, for another recommender's scores: `scores` is
    `[len(examples), num_items]` (a numpy array or tensor, row i for `examples`' user i, before any history mask);
    with `exclude_history` each user's whole input history is set to -inf, as `evaluate_ranking` does."""
    if tuple(scores.shape[:1]) != (len(examples),):
        raise ValueError(f"scores: {len(scores)} rows for {len(examples)} examples; one row per example, in order")
    for start in range(0, len(examples), batch_size):
        rows = list(range(start, min(start + batch_size, len(examples))))
        block = torch.as_tensor(scores[rows[0]:rows[-1] + 1]).float().clone()
        if exclude_history:
            history_rows = np.concatenate([np.full(len(examples.histories[row]), i) for i, row in enumerate(rows)])
            history_items = np.concatenate([np.asarray(examples.histories[row], dtype=np.int64) for row in rows])
            block[torch.as_tensor(history_rows, dtype=torch.long), torch.as_tensor(history_items)] = float("-inf")
        yield rows, block, torch.as_tensor(examples.targets[rows[0]:rows[-1] + 1])


@torch.no_grad()
def rank_score_matrix(scores, examples, top_k=20, exclude_history=True, trend_prior=None, cooccurrence_prior=None,
                      batch_size=256):
    """Top-k lists of catalog indices for another recommender's scores (`score_matrix_batches`), with a trend prior
    (at each example's time) and a co-occurrence prior (after each example's whole history) added, when given, as
    `rank_examples` adds a model's own."""
    ranked = []
    for rows, block, _ in score_matrix_batches(scores, examples, exclude_history, batch_size):
        bias = priors_bias(examples, rows, trend_prior, cooccurrence_prior)
        if bias is not None:
            block += bias  # -inf (the history) stays -inf
        ranked.extend(block.topk(min(top_k, block.shape[1]), dim=1).indices.tolist())
    return ranked


@torch.no_grad()
def rank_examples(model, examples, accelerator=None, batch_size=256, top_k=20, max_length=None,
                  description="evaluating", return_positions=False, exclude_history=True, retrieval="exact",
                  trend_prior=True, cooccurrence_prior=True):
    """Top-k item lists and targets for this process's share of `examples`.

    With `exclude_history` (the default) no item of a user's input history is ranked; without it a
    history item may take any place, as in RecBole's protocol. A model whose catalog combines several domains
    ranks each user over the items of the user's domain only.
    `retrieval="faiss"` takes the top-k from the model's faiss index (`lsrec_hf.model.retrieval`) instead of scoring
    the whole catalog (`"exact"`, the default); a list is then shorter only where the index found too few items.
    A model with a `trend_prior` (`lsrec_hf.model.trend_prior`) adds it at each example's time
    (`examples.target_times`) unless `trend_prior=False`; one with a `cooccurrence_prior`
    (`lsrec_hf.model.cooccurrence_prior`) adds it after each example's history unless `cooccurrence_prior=False`.

    Returns lists gathered from every process: `ranked` (lists of catalog indices), `targets`, `gates`, and
    with `return_positions` the index in `examples` of each row (rows are ordered by history length).
    """
    check_retrieval(retrieval)
    trend = getattr(model, "trend_prior", None) if trend_prior and examples.target_times is not None else None
    cooccurrence = getattr(model, "cooccurrence_prior", None) if cooccurrence_prior else None
    if trend is not None and retrieval == "faiss":
        raise ValueError("retrieval='faiss' searches the model's scores alone; a model with a trend prior adds it to "
                         "every item's score: use retrieval='exact', or trend_prior=False")
    if cooccurrence is not None and retrieval == "faiss":
        raise ValueError("retrieval='faiss' searches the model's scores alone; a model with a co-occurrence prior adds "
                         "it to every item's score: use retrieval='exact', or cooccurrence_prior=False")
    domains = item_domains(model)
    if domains is not None and retrieval == "faiss":
        raise ValueError("retrieval='faiss' ranks the whole catalog; a multi-domain model ranks each user within "
                         "its domain: use retrieval='exact'")
    device = accelerator.device if accelerator is not None else model.device
    ranked, targets, gates, positions = [], [], [], []
    for rows, batch in sharded_batches(model, examples, accelerator, batch_size, max_length, description):
        input_ids = batch["input_ids"].to(device)
        if retrieval == "faiss":
            context = {k: batch[k].to(device) for k in ("context_ids", "target_context_ids") if k in batch}
            scores, indices, gate = retrieve(model, input_ids, top_k, exclude_history,
                                             attention_mask=batch["attention_mask"].to(device), **context)
            ranked.extend([i for s, i in zip(row_scores, row) if s > float("-inf")]
                          for row_scores, row in zip(scores.tolist(), indices.tolist()))
        else:
            bias = priors_bias(examples, rows, trend, cooccurrence, max_length)
            scores, gate = exact_scores(model, batch, device, exclude_history, domains, bias)
            ranked.extend(scores.topk(min(top_k, scores.shape[1]), dim=1).indices.cpu().tolist())
        targets.extend(batch["targets"].tolist())
        gates.extend(gate.float().cpu().tolist())
        positions.extend(rows)
    if accelerator is not None and accelerator.num_processes > 1:
        ranked, targets, gates = gather_object(ranked), gather_object(targets), gather_object(gates)
        positions = gather_object(positions)
    if return_positions:
        return ranked, targets, gates, positions
    return ranked, targets, gates


def evaluate_ranking(model, examples, accelerator=None, batch_size=256, k_values=DEFAULT_K_VALUES,
                     max_length=None, description="evaluating", exclude_history=True, retrieval="exact",
                     trend_prior=True, cooccurrence_prior=True):
    """HR/NDCG/MRR@K over the full catalog, plus the mean long-term gate share.

    `exclude_history`: remove the items of each user's input history from the ranking (see the module's note).
    `retrieval`: `"exact"` (the default) scores every item; `"faiss"` searches the model's index
    (`lsrec_hf.model.retrieval`), approximate unless it is a `"Flat"` one.
    `trend_prior`: add the model's trend prior, when it has one, at each example's time (`rank_examples`).
    `cooccurrence_prior`: add the model's co-occurrence prior, when it has one, after each example's history.
    """
    ranked, targets, gates, positions = rank_examples(model, examples, accelerator, batch_size, max(k_values),
                                                      max_length, description, return_positions=True,
                                                      exclude_history=exclude_history, retrieval=retrieval,
                                                      trend_prior=trend_prior,
                                                      cooccurrence_prior=cooccurrence_prior)
    metric = _full_ranking_metric()
    metrics = metric.compute(predictions=ranked, references=targets, k_values=k_values,
                             num_items=model.config.num_items)
    metrics["mean_long_term_gate"] = float(sum(gates) / max(len(gates), 1))
    config = model.config
    if config.scenario_feature is not None and examples.target_context is not None and len(examples):
        # Each target's own scenario: the same metrics over that scenario's test events only.
        column = config.scenario_index
        scenario_of = np.asarray(examples.target_context)[:, column][positions]
        names = ["unknown", *config.context_vocab[config.scenario_feature]]
        metrics["per_scenario"] = {}
        for scenario_id in sorted(set(scenario_of.tolist())):
            rows = np.flatnonzero(scenario_of == scenario_id)
            metrics["per_scenario"][names[scenario_id]] = metric.compute(
                predictions=[ranked[r] for r in rows], references=[targets[r] for r in rows], k_values=k_values,
                num_items=config.num_items)
    return metrics
