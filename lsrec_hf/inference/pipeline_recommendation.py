"""The "recommendation" pipeline: a user's history in, the next items (and, on request, why) out.

Registered with transformers on `import lsrec_hf`, so `pipeline("recommendation", model=...)` works like any other
task. The model's item catalog turns item ids and titles into tokens and scores back into items; no tokenizer.
"""

import copy
import difflib
import numbers
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from transformers import Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from ..processing.collator import pad_left, pad_left_rows
from ..processing.tokens import PAD_TOKEN_ID, is_item_token, item_set, to_indices, to_tokens
from ..data.errors import shown
from ..processing.context import encode_target_context
from ..evaluation.rank import mask_history as exclude_items
from .explain import explain_recommendations, item_name
from .new_catalog import new_catalog
from ..model.modeling_lsrec import LSRecForSequentialRecommendation
from .profile import interest_profile
from ..model.retrieval import check_retrieval, retrieve
from .user_state import UserState, fold_in, segment_and_memory


@dataclass
class _Users:
    """Several users' histories handed to `Pipeline.__call__` as one input, so they share one forward."""

    histories: list
    single: bool = False


# Close matches are searched for names up to this long: difflib on a 5 MB string takes seconds for nothing.
_MAX_MATCHED_LENGTH = 500


def _is_item(value):
    return isinstance(value, (str, numbers.Integral)) and not isinstance(value, bool)


def _is_history(inputs):
    # a list of several users holds only lists and dicts; anything else (an id, None, a float...) makes it one
    # history, whose check then names a bad item
    users = (list, tuple, dict, np.ndarray)
    return isinstance(inputs, (list, tuple)) and (not inputs or not all(isinstance(user, users) for user in inputs))


def _checked_items(items, where):
    """`items` (a history or candidates) as a list, or a ValueError naming the argument and the bad item."""
    if isinstance(items, (str, bytes)) or not isinstance(items, (list, tuple, np.ndarray)):
        hint = "; for one item pass [item]" if isinstance(items, str) else ""
        raise ValueError(f"{where} must be a list of item ids or titles, got {type(items).__name__} {shown(items)}{hint}")
    for position, item in enumerate(items):
        if not _is_item(item):
            raise ValueError(f"{where}[{position}]: an item is an id or a title (str or int), got "
                             f"{type(item).__name__} {shown(item)}")
    return list(items)


@dataclass
class _OnDevice:
    """The memory and context of a forward pass, left where they are by the pipeline's move of outputs to the CPU."""

    memory: object
    context: dict
    input_ids: torch.Tensor


def _check_state(state, config):
    """A ValueError naming both sizes when `state` comes from a model whose catalog or layers this one lacks."""
    # A state saved before it recorded its catalog size still shows one through its largest item token.
    largest = to_indices(int(state.tokens.max())) + 1 if len(state.tokens) else 0
    if max(state.num_items or 0, largest) > config.num_items:
        size = state.num_items if (state.num_items or 0) >= largest else f"at least {largest}"
        raise ValueError(f"state: this user state comes from a model with a catalog of {size} items, but this "
                         f"model's catalog has {config.num_items}: encode the user again with this model "
                         f"(lsrec_hf.inference.user_state.encode_user)")
    if state.memory is not None:
        layers, width = len(state.memory.hidden), state.memory.hidden[0].shape[-1]
        if (layers, width) != (config.num_hidden_layers, config.hidden_size):
            raise ValueError(f"state: this user state comes from a model with {layers} layers of width {width}, "
                             f"but this model has {config.num_hidden_layers} of width {config.hidden_size}: encode "
                             f"the user again with this model (lsrec_hf.inference.user_state.encode_user)")


def _shortfall(who, left, offered, top_k, has_candidates):
    """Why fewer than `top_k` items come back for one user: the history items left out of `offered` ones."""
    dropped = offered - left
    if has_candidates:
        what = f"{dropped} of the {offered} candidates are in the history"
    elif left == 0:
        what = f"the history covers the whole catalog ({offered} items)"
    else:
        what = f"the history holds {dropped} of the catalog's {offered} items"
    outcome = "nothing is left to recommend" if left == 0 else f"{left} items come back instead of {top_k}"
    return (f"{who}{what}, and history items are not recommended again: {outcome} (pass exclude_history=False to "
            f"rank them too)")


def _user_history(user, where):
    """The item list of one user's input: a history or `{"history": [...]}`."""
    if isinstance(user, dict):
        if "history" not in user:
            keys = ", ".join(shown(key) for key in list(user)[:10])
            raise ValueError(f"{where} needs a 'history' key (a list of item ids or titles); its keys: {keys}")
        return _checked_items(user["history"], f"{where}['history']")
    return _checked_items(user, where)


class RecommendationPipeline(Pipeline):
    """
    Next-item recommendation with an LSRec model.

    Example:

    ```python
    >>> import lsrec_hf
    >>> from transformers import pipeline

    >>> recommend = pipeline("recommendation", model="outputs/lsrec-ml-100k")
    >>> items = recommend(["Star Wars (1977)", "Return of the Jedi (1983)", "172"], top_k=3, explain=True)
    >>> sorted(items[0])
    ['explanation', 'item_id', 'score', 'title']
    >>> sorted(items[0]["explanation"])
    ['drivers', 'long_term_share', 'reason']
    ```

    A PEFT-wrapped model (LoRA and the like) goes in as it is, and scores with its active adapter:
    `pipeline("recommendation", model=peft_model)` or `RecommendationPipeline(model=peft_model)`; so does the model of
    `peft_model.merge_and_unload()`. A saved adapter folder also loads by path, `pipeline("recommendation",
    model=adapter_dir)`: the catalog is read from the base model that `adapter_config.json` names.

    `catalog=` recommends in a catalog the model was never trained on, with no training (zero-shot): an `ItemCatalog`,
    or a data folder or file `lsrec_hf.data.load_data` reads (its items). The items are encoded with the model's text
    encoder and ranked by their text alone (`LSRecForSequentialRecommendation.replace_catalog`), on a copy of the model.
    """

    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, *args, catalog=None, **kwargs):
        super().__init__(*args, **kwargs)
        if catalog is not None:
            # a catalog the model was never trained on (zero-shot, a new domain): a copy of the model recommends in
            # it through its items' text, and the caller's model keeps its own catalog
            self.model = copy.deepcopy(self.model)
            new_catalog(self.lsrec_model, catalog)
        catalog = self.lsrec_model.catalog
        if catalog is None:
            raise ValueError("the recommendation pipeline needs the model's item catalog (catalog.json beside the "
                             "weights, or `model.catalog`)")
        # case-folded "title" and "title (year)" -> catalog indices: titles need not be unique (remakes)
        self._titles = {}
        for index, title in enumerate(catalog.titles):
            for name in {title.casefold(), item_name(catalog, index).casefold()} - {""}:
                self._titles.setdefault(name, []).append(index)

    @property
    def lsrec_model(self):
        """The LSRec model: `self.model` itself, or the base model of a PEFT-wrapped one."""
        # PEFT injects its adapters into the base model's layers, so the base model scores with them. The wrapper
        # forwards unknown attributes, but its `.model` is the whole LSRec model, not the body that code here expects.
        get_base_model = getattr(self.model, "get_base_model", None)
        return self.model if get_base_model is None else get_base_model()

    def __call__(self, inputs, **kwargs):
        """
        Recommend the next items for one user or several.

        Args:
            inputs: a history (item ids or titles, oldest first), `{"history": [...]}`, or a list of those.
            top_k (`int`, defaults to 10): items to return per user.
            exclude_history (`bool`, defaults to `True`): never recommend an item of the history.
            candidates (`list`, *optional*): item ids (or titles) to rank among, instead of the whole catalog.
            explain (`bool`, defaults to `False`): add an explanation to each item (see
                `lsrec_hf.inference.explain.explain_recommendations`): the long-term share, the history items that drove it
                (found by deleting them one at a time) and a one-line reason.
            profile (`bool`, defaults to `False`): add the user's interest profile (see
                `lsrec_hf.inference.profile.interest_profile`): genres, decades and title keywords counted over the long-term
                and the short-term part of the history. Needs the whole history, so not with `state`.
            state (`UserState`, *optional*): one user's state (`lsrec_hf.inference.user_state.encode_user`); the history is
                then the events since (it may be empty). Only the events of the state's short segment are excluded
                and explained. `memory=` is the former name of this argument and still accepted.
            scenario (`str`, *optional*): where the recommendation will be shown, for a model trained with a
                `scenario_feature`; an unseen scenario counts as unknown. The explanation then says how much the
                scenario changed each item's score.
            context (`dict`, *optional*): side features of the moment of the recommendation (e.g. `{"hour": 21}`) and
                the user's features (e.g. `{"gender": "F"}`), by name; unseen values count as unknown. The context of
                each history event can come with it: `{"history": [...], "context": [{"hour": 20}, ...]}`.
            now (unix seconds or `datetime`, *optional*): the moment of the request, for a model with a trend prior
                (`lsrec_hf.model.trend_prior`, chosen on validation by the recipes): each item's score gains what its
                events in the prior's window before `now` say. Default: just after the last event the prior knows.
            trend_prior (`bool`, defaults to `True`): add the model's trend prior, when it has one.
            cooccurrence_prior (`bool`, defaults to `True`): add the model's co-occurrence prior
                (`lsrec_hf.model.cooccurrence_prior`, chosen on validation by the recipes), when it has one: what other
                users took beside the history's latest items (with `state`, the events of its short segment).
            retrieval (`str`, defaults to `"exact"`): `"exact"` scores every item; `"faiss"` searches the model's
                faiss index (`lsrec_hf.model.retrieval`, built on first use and rebuilt when the weights or the adapter
                change), approximate unless built as `"Flat"`. `candidates` are always scored exactly.

        Return:
            Per user, a list of `{"item_id", "title", "score", "explanation"}`, best first (`explanation` is `None`
            unless `explain=True`); the list itself for a single history. Fewer than `top_k` items come back when
            `candidates` are fewer, or when the history holds some of them (or of the catalog): a `UserWarning` then
            says how many history items were left out, and the list is empty, quickly, when nothing is left. With
            `profile=True`, per user `{"recommendations": [...], "profile": {"long_term": ..., "short_term": ...}}`
            instead of the list; `long_term` is `{}` when the history has no events before the short segment.
        """
        if isinstance(inputs, dict) or _is_history(inputs):
            inputs = _Users([inputs], single=True)
        elif isinstance(inputs, (list, tuple)):
            inputs = _Users(list(inputs))
        elif inputs is None or isinstance(inputs, (str, bytes, numbers.Number)):
            _checked_items(inputs, "history")  # not a history: raises, saying what it got
        return super().__call__(inputs, **kwargs)

    def _sanitize_parameters(self, top_k=None, exclude_history=None, candidates=None, explain=None, state=None,
                             profile=None, scenario=None, context=None, retrieval=None, memory=None, now=None,
                             trend_prior=None, cooccurrence_prior=None):
        """preprocess: the users' tokens, context and candidates; _forward: the model call (and a faiss search);
        postprocess: history exclusion, candidates, top-k, explanations and profiles."""
        preprocess_params, forward_params, postprocess_params = {}, {}, {}
        if memory is not None:  # the former name of `state`
            if state is not None:
                raise ValueError("pass the user state once, as state= (memory= is its former name)")
            state = memory
        config = self.lsrec_model.config
        if scenario is not None and config.scenario_feature is None:
            raise ValueError("scenario: this model was trained without a scenario feature (config.scenario_feature)")
        if context is not None and not isinstance(context, dict):
            raise TypeError(f"context must be a dict of feature values by name, got {type(context).__name__}")
        if context is not None or scenario is not None:
            target = dict(context or {})
            if scenario is not None:
                target[config.scenario_feature] = scenario
            # checks the feature names now: a typo would otherwise change nothing, silently
            preprocess_params["context"] = (target, encode_target_context(config.feature_vocab, target))
        if profile and state is not None:
            raise ValueError("profile counts the whole history, and a user state keeps only its latest events: "
                             "pass the history instead of state")
        if candidates is not None:
            preprocess_params["candidates"] = candidates
        if state is not None:
            if not isinstance(state, UserState):
                raise TypeError(f"state must be a UserState (see lsrec_hf.inference.user_state.encode_user), "
                                f"got {type(state).__name__}")
            _check_state(state, config)
            preprocess_params["state"] = state
        if top_k is not None:
            if not _is_item(top_k) or isinstance(top_k, str) or top_k < 1:
                raise ValueError(f"top_k must be a whole number >= 1, got {shown(top_k)}")
            postprocess_params["top_k"] = top_k
        if exclude_history is not None:
            postprocess_params["exclude_history"] = exclude_history
        if explain is not None:
            postprocess_params["explain"] = explain
        if profile is not None:
            postprocess_params["profile"] = profile
        trend = self.lsrec_model.trend_prior if trend_prior is None or trend_prior else None
        if trend_prior is not None:
            postprocess_params["trend_prior"] = bool(trend_prior)
        cooccurrence = self.lsrec_model.cooccurrence_prior if cooccurrence_prior is None or cooccurrence_prior else None
        if cooccurrence_prior is not None:
            postprocess_params["cooccurrence_prior"] = bool(cooccurrence_prior)
        if now is not None:
            if trend is not None:
                trend.moment(now)  # checks `now` before any work
            postprocess_params["now"] = now
        if retrieval is not None and check_retrieval(retrieval) == "faiss":
            if trend is not None and candidates is None:
                raise ValueError("retrieval='faiss' searches the model's scores alone, and this model adds a trend "
                                 "prior to every item's score: pass trend_prior=False, or retrieval='exact'")
            if cooccurrence is not None and candidates is None:
                raise ValueError("retrieval='faiss' searches the model's scores alone, and this model adds a "
                                 "co-occurrence prior to every item's score: pass cooccurrence_prior=False, or "
                                 "retrieval='exact'")
            # the index answers with its top-k: the one case where ranking happens in the forward pass
            forward_params = {"retrieval": "faiss", "top_k": top_k or 10,
                              "exclude_history": True if exclude_history is None else exclude_history}
        return preprocess_params, forward_params, postprocess_params

    def item_index(self, item):
        """Catalog index of an item id, or of a title, with or without its year (exact, case-insensitive).

        A `ValueError` names an unknown item with up to 5 close titles, or an ambiguous title with its items.
        """
        catalog = self.lsrec_model.catalog
        if item in catalog:
            return catalog.index(item)
        matches = self._titles.get(str(item).casefold(), [])
        if len(matches) == 1:
            return matches[0]
        if matches:
            items = ", ".join(f"{catalog.item_ids[i]} ({item_name(catalog, i)})" for i in matches[:10])
            more = f" and {len(matches) - 10} more" if len(matches) > 10 else ""
            raise ValueError(f"{shown(str(item))} is the title of several items: {items}{more}; pass the item id instead")
        close = []
        if len(str(item)) <= _MAX_MATCHED_LENGTH:
            # titles first (what people type), then ids ("m10" for "m100")
            names = difflib.get_close_matches(str(item).casefold(), self._titles, n=10)
            close = [item_name(catalog, self._titles[name][0]) for name in names]
            for item_id in difflib.get_close_matches(str(item), catalog.item_ids, n=5):
                title = catalog.titles[catalog.index(item_id)]
                close.append(f"{item_id} ({item_name(catalog, catalog.index(item_id))})" if title else item_id)
        close = list(dict.fromkeys(close))[:5]
        hint = "; close matches: " + ", ".join(map(repr, close)) if close else ""
        raise ValueError(f"unknown item {shown(str(item))}: neither an item id nor a title in the catalog{hint}")

    def _indices(self, items, where):
        """Catalog indices of `items`; an unknown item's error says where it is (`history[3]`, `candidates[0]`)."""
        indices = []
        for position, item in enumerate(items):
            try:
                indices.append(self.item_index(item))
            except ValueError as error:
                raise ValueError(f"{where}[{position}]: {error}") from None
        return indices

    def _event_context(self, user, history, target):
        """`[len(history), F]` ids of each history event's context (its own values, else the user's features)."""
        config = self.lsrec_model.config
        events = user.get("context") if isinstance(user, dict) else None
        if events is None:
            events = [{}] * len(history)
        if len(events) != len(history):
            raise ValueError(f"context: {len(events)} event contexts for a history of {len(history)} items")
        user_features = {name: value for name, value in target.items() if name in (config.user_vocab or {})}
        rows = [encode_target_context(config.feature_vocab, {**user_features, **event}) for event in events]
        # no rows: a user state with no new events (np.stack refuses an empty list)
        return torch.as_tensor(np.asarray(rows, dtype=np.int64).reshape(len(history), len(config.feature_vocab)))

    def preprocess(self, inputs, candidates=None, state=None, context=None):
        if not isinstance(inputs, _Users):  # one user from a dataset or a generator
            inputs = _Users([inputs], single=True)
        # where an item is, for messages: history[3], inputs['history'][3], inputs[1][3]...
        wheres = [f"inputs[{i}]" for i in range(len(inputs.histories))]
        if inputs.single:
            wheres = ["inputs" if isinstance(inputs.histories[0], dict) else "history"]
        histories = [_user_history(user, where) for user, where in zip(inputs.histories, wheres)]
        tokens = [to_tokens(self._indices(history, where))
                  for history, where in zip(histories, wheres)]
        if state is not None and len(tokens) != 1:
            raise ValueError("state is one user's state: pass that user's new events as a single history")
        if not all(tokens) and (state is None or state.empty):
            raise ValueError("every history needs at least one item")
        length = max(map(len, tokens))
        model_inputs = {"input_ids": pad_left(tokens, length, PAD_TOKEN_ID), "state": state,
                        "single": inputs.single}
        has_context = any(isinstance(user, dict) and user.get("context") is not None for user in inputs.histories)
        if self.lsrec_model.config.feature_names and (context is not None or has_context):
            target, target_ids = context or ({}, encode_target_context(self.lsrec_model.config.feature_vocab, {}))
            event_ids = [self._event_context(user, history, target)
                         for user, history in zip(inputs.histories, histories)]
            model_inputs["context_ids"] = pad_left_rows(event_ids, length, len(target_ids))
            model_inputs["target_context_ids"] = torch.as_tensor(target_ids)[None].expand(len(tokens), -1)
        if candidates is not None:
            allowed = torch.zeros(len(self.lsrec_model.catalog), dtype=torch.bool)
            allowed[self._indices(_checked_items(candidates, "candidates"), "candidates")] = True
            model_inputs["candidates"] = allowed
        return model_inputs

    def _forward(self, model_inputs, retrieval="exact", top_k=10, exclude_history=True):
        """The model call: the next-item scores of every user (`retrieval="faiss"`: the index's top-k instead)."""
        model, input_ids, memory = self.lsrec_model, model_inputs["input_ids"], None
        if model_inputs["state"] is not None:
            # The new events continue the user's state; the model reads its short segment after its memory.
            state = fold_in(model, model_inputs["state"], input_ids[0])
            segment, memory = segment_and_memory(model, state)
            input_ids = segment[None]
        context = {}
        if "target_context_ids" in model_inputs:
            context = {"context_ids": model_inputs["context_ids"][:, -input_ids.shape[1]:],
                       "target_context_ids": model_inputs["target_context_ids"]}
            if input_ids.shape[1] > model_inputs["context_ids"].shape[1]:  # the state's segment: events before are unknown
                context["context_ids"] = pad_left_rows(list(model_inputs["context_ids"]), input_ids.shape[1],
                                                       model_inputs["context_ids"].shape[2])
        # what explanations read again is kept on the model's device (the pipeline moves outputs to the CPU)
        outputs = {"input_ids": input_ids, "on_device": _OnDevice(memory, context, input_ids), "single": model_inputs["single"],
                   "candidates": model_inputs.get("candidates")}
        if retrieval == "faiss" and outputs["candidates"] is None:  # a few candidates: scoring them is cheaper
            values, indices, _ = retrieve(model, input_ids, top_k, exclude_history, memory=memory, **context)
            outputs["top"] = {"values": values, "indices": indices}
        else:
            outputs["scores"] = model.score_next(input_ids, memory=memory, **context).scores.float()
        return outputs

    def postprocess(self, model_outputs, top_k=10, exclude_history=True, explain=False, profile=False, now=None,
                    trend_prior=True, cooccurrence_prior=True):
        """The trend prior at `now` and the co-occurrence prior (when the model has them), history exclusion,
        candidates and top-k over the scores; then explanations and profiles when asked."""
        model, input_ids = self.lsrec_model, model_outputs["input_ids"]
        candidates = model_outputs["candidates"]
        if "top" in model_outputs:  # the faiss index ranked the whole catalog already
            top = torch.return_types.topk((model_outputs["top"]["values"], model_outputs["top"]["indices"]))
            offered = model.config.num_items
            left = [offered - len(item_set(row)) for row in input_ids.tolist()] if exclude_history else []
        else:
            scores = model_outputs["scores"]
            trend = model.trend_prior if trend_prior else None
            if trend is not None:
                scores = scores + trend.bias([trend.moment(now)])
            cooccurrence = model.cooccurrence_prior if cooccurrence_prior else None
            if cooccurrence is not None:
                scores = scores + cooccurrence.bias([to_indices(row[is_item_token(row)]).tolist() for row in input_ids])
            if exclude_history:
                scores = exclude_items(scores, input_ids)
            if candidates is not None:
                scores = scores.masked_fill(~candidates, float("-inf"))
            top = scores.topk(min(top_k, scores.shape[1]))
            offered = int(candidates.sum()) if candidates is not None else scores.shape[1]
            left = (scores > float("-inf")).sum(1).tolist() if exclude_history else []
        for row, remaining in enumerate(left):
            if remaining < min(top_k, offered):
                who = "" if model_outputs["single"] else f"inputs[{row}]: "
                warnings.warn(_shortfall(who, remaining, offered, top_k, candidates is not None), stacklevel=2)
        explanations = self._explanations(model_outputs, top) if explain else None
        profiles = None
        if profile:
            profiles = [interest_profile(model, to_indices(row[row != PAD_TOKEN_ID]).tolist()) for row in input_ids]
        catalog = model.catalog
        results = []
        for user, (values, indices) in enumerate(zip(top.values.tolist(), top.indices.tolist())):
            items = []
            for rank, (score, index) in enumerate(zip(values, indices)):
                if score == float("-inf"):  # excluded or not a candidate: nothing better remains
                    break
                items.append({"item_id": catalog.item_ids[index], "title": catalog.titles[index], "score": score,
                              "explanation": explanations[user][rank] if explanations else None})
            if profiles is not None:
                items = {"recommendations": items, "profile": profiles[user]}
            results.append(items)
        return results[0] if model_outputs["single"] else results

    def _explanations(self, model_outputs, top):
        """Per user, an explanation of each recommended item (`lsrec_hf.inference.explain`: more forward passes)."""
        model, explanations = self.lsrec_model, []
        on_device = model_outputs["on_device"]
        memory, context = on_device.memory, on_device.context
        for row, values, indices in zip(on_device.input_ids, top.values, top.indices):
            kept = indices[values > float("-inf")].tolist()
            history = row[row != PAD_TOKEN_ID].tolist()
            side = None
            if context:
                side = (context["context_ids"][len(explanations), row != PAD_TOKEN_ID],
                        context["target_context_ids"][len(explanations)])
            # nothing left to explain: no deletion pass over the history
            explanations.append(explain_recommendations(model, history, kept, memory, context=side)
                                if kept else [])
        return explanations


PIPELINE_REGISTRY.register_pipeline(
    "recommendation", pipeline_class=RecommendationPipeline, pt_model=LSRecForSequentialRecommendation
)

__all__ = ["RecommendationPipeline"]
