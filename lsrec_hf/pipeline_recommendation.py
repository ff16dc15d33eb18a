"""The "recommendation" pipeline: a user's history in, the next items (and, on request, why) out.

Registered with transformers on `import lsrec_hf`, so `pipeline("recommendation", model=...)` works like any other
task. The model's item catalog turns item ids and titles into tokens and scores back into items; no tokenizer.
"""

import difflib
import numbers
from dataclasses import dataclass

import torch
from transformers import Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .collator import pad_left
from .configuration_lsrec import NUM_SPECIAL_TOKENS, PAD_TOKEN_ID
from .evaluation import exclude_history as exclude_items
from .explain import explain_recommendations, item_name
from .modeling_lsrec import LSRecForSequentialRecommendation
from .profile import interest_profile
from .user_state import UserState, fold_in, segment_and_memory


@dataclass
class _Users:
    """Several users' histories handed to `Pipeline.__call__` as one input, so they share one forward."""

    histories: list
    single: bool = False


def _is_history(inputs):
    return isinstance(inputs, (list, tuple)) and all(isinstance(item, (str, numbers.Integral)) for item in inputs)


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
    """

    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
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
                `lsrec_hf.explain.explain_recommendations`): the long-term share, the history items that drove it
                (found by deleting them one at a time) and a one-line reason.
            profile (`bool`, defaults to `False`): add the user's interest profile (see
                `lsrec_hf.profile.interest_profile`): genres, decades and title keywords counted over the long-term
                and the short-term part of the history. Needs the whole history, so not with `memory`.
            memory (`UserState`, *optional*): one user's state (`lsrec_hf.user_state.encode_user`); the history is
                then the events since (it may be empty). Only the events of the state's short segment are excluded
                and explained.

        Return:
            Per user, a list of `{"item_id", "title", "score", "explanation"}`, best first (`explanation` is `None`
            unless `explain=True`); the list itself for a single history. Fewer than `top_k` items come back when
            exclusions or `candidates` leave fewer. With `profile=True`, per user
            `{"recommendations": [...], "profile": {"long_term": ..., "short_term": ...}}` instead of the list.
        """
        if isinstance(inputs, dict) or _is_history(inputs):
            inputs = _Users([inputs], single=True)
        elif isinstance(inputs, (list, tuple)):
            inputs = _Users(list(inputs))
        return super().__call__(inputs, **kwargs)

    def _sanitize_parameters(self, top_k=None, exclude_history=None, candidates=None, explain=None, memory=None,
                             profile=None):
        preprocess_params, forward_params = {}, {}
        if profile and memory is not None:
            raise ValueError("profile counts the whole history, and a user state keeps only its latest events: "
                             "pass the history instead of memory")
        if candidates is not None:
            preprocess_params["candidates"] = candidates
        if memory is not None:
            if not isinstance(memory, UserState):
                raise TypeError(f"memory must be a UserState (see lsrec_hf.user_state.encode_user), "
                                f"got {type(memory).__name__}")
            preprocess_params["memory"] = memory
        if top_k is not None:
            if top_k < 1:
                raise ValueError(f"top_k must be >= 1, got {top_k}")
            forward_params["top_k"] = top_k
        if exclude_history is not None:
            forward_params["exclude_history"] = exclude_history
        if explain is not None:
            forward_params["explain"] = explain
        if profile is not None:
            forward_params["profile"] = profile
        return preprocess_params, forward_params, {}

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
            items = ", ".join(f"{catalog.item_ids[i]} ({item_name(catalog, i)})" for i in matches)
            raise ValueError(f"'{item}' is the title of several items: {items}; pass the item id instead")
        close = difflib.get_close_matches(str(item).casefold(), self._titles, n=10)
        close = list(dict.fromkeys(item_name(catalog, self._titles[name][0]) for name in close))[:5]
        hint = "; close matches: " + ", ".join(map(repr, close)) if close else ""
        raise ValueError(f"unknown item '{item}': neither an item id nor a title in the catalog{hint}")

    def preprocess(self, inputs, candidates=None, memory=None):
        if not isinstance(inputs, _Users):  # one user from a dataset or a generator
            inputs = _Users([inputs], single=True)
        histories = [user["history"] if isinstance(user, dict) else user for user in inputs.histories]
        tokens = [[self.item_index(item) + NUM_SPECIAL_TOKENS for item in history] for history in histories]
        if memory is not None and len(tokens) != 1:
            raise ValueError("memory is one user's state: pass that user's new events as a single history")
        if not all(tokens) and (memory is None or memory.empty):
            raise ValueError("every history needs at least one item")
        model_inputs = {"input_ids": pad_left(tokens, max(map(len, tokens)), PAD_TOKEN_ID), "memory": memory,
                        "single": inputs.single}
        if candidates is not None:
            allowed = torch.zeros(len(self.lsrec_model.catalog), dtype=torch.bool)
            allowed[[self.item_index(item) for item in candidates]] = True
            model_inputs["candidates"] = allowed
        return model_inputs

    def _forward(self, model_inputs, top_k=10, exclude_history=True, explain=False, profile=False):
        model, input_ids, memory = self.lsrec_model, model_inputs["input_ids"], None
        if model_inputs["memory"] is not None:
            # The new events continue the user's state; the model reads its short segment after its memory.
            state = fold_in(model, model_inputs["memory"], input_ids[0])
            segment, memory = segment_and_memory(model, state)
            input_ids = segment[None]
        scores, _ = model.score_next(input_ids, memory=memory)
        scores = scores.float()
        if exclude_history:
            scores = exclude_items(scores, input_ids)
        if "candidates" in model_inputs:
            scores = scores.masked_fill(~model_inputs["candidates"], float("-inf"))
        top = scores.topk(min(top_k, scores.shape[1]))
        explanations = None
        if explain:
            explanations = []
            for row, values, indices in zip(input_ids, top.values, top.indices):
                kept = indices[values > float("-inf")].tolist()
                history = row[row != PAD_TOKEN_ID].tolist()
                explanations.append(explain_recommendations(model, history, kept, memory))
        profiles = None
        if profile:
            profiles = [interest_profile(model, (row[row != PAD_TOKEN_ID] - NUM_SPECIAL_TOKENS).tolist())
                        for row in input_ids]
        return {"scores": top.values, "indices": top.indices, "explanations": explanations, "profiles": profiles,
                "single": model_inputs["single"]}

    def postprocess(self, model_outputs):
        catalog = self.lsrec_model.catalog
        results = []
        all_scores, all_indices = model_outputs["scores"].tolist(), model_outputs["indices"].tolist()
        for user, (scores, indices) in enumerate(zip(all_scores, all_indices)):
            items = []
            for rank, (score, index) in enumerate(zip(scores, indices)):
                if score == float("-inf"):  # excluded or not a candidate: nothing better remains
                    break
                explanation = model_outputs["explanations"][user][rank] if model_outputs["explanations"] else None
                items.append({"item_id": catalog.item_ids[index], "title": catalog.titles[index], "score": score,
                              "explanation": explanation})
            if model_outputs["profiles"] is not None:
                items = {"recommendations": items, "profile": model_outputs["profiles"][user]}
            results.append(items)
        return results[0] if model_outputs["single"] else results


PIPELINE_REGISTRY.register_pipeline(
    "recommendation", pipeline_class=RecommendationPipeline, pt_model=LSRecForSequentialRecommendation
)

__all__ = ["RecommendationPipeline"]
