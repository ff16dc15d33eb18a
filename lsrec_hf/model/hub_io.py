"""Checkpoint I/O of LSRec models: the catalog, eval results and trend prior travel with the weights, loading is strict.

A mixin of `LSRecPreTrainedModel` (before `PreTrainedModel` in its bases): the model itself knows only tensors.
Imports the catalog, the config, the model card and the path checks; nothing of the model's layers.
"""

import json
import os
import re
import tempfile

import torch
from safetensors import SafetensorError, safe_open
from transformers.utils import ADAPTER_CONFIG_NAME, CONFIG_NAME, SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, cached_file
from transformers.utils.hub import hf_api

from ..processing.catalog import ItemCatalog
from .configuration_lsrec import LSRecConfig
from .cooccurrence_prior import COOCCURRENCE_PRIOR_NAME, CooccurrencePrior
from .trend_prior import TREND_PRIOR_NAME, TrendPrior
from ..data.errors import shown_columns
from ..sharing.model_card import build_model_card
from ..sharing.paths import inside, resolve_base_model

EVAL_RESULTS_NAME = "eval_results.json"
# Checkpoints written before the output bias became a module (`LSRecOutputBias`) store it under this key.
LEGACY_OUTPUT_BIAS_KEY = "output_bias"


class LSRecHubMixin:
    """`save_pretrained` / `push_to_hub` / `from_pretrained` of transformers, with the catalog and eval results."""

    # The item catalog (ids, titles, texts) travels with the weights as catalog.json.
    catalog: ItemCatalog | None = None
    # Test metrics (the recipe's eval_results.json), saved beside the weights and shown in the pushed model card.
    eval_results: dict | None = None
    # What is trending (`lsrec_hf.model.trend_prior`), added to the scores where a request has a time; saved beside
    # the weights as trend_prior.safetensors.
    trend_prior: TrendPrior | None = None
    # What other users took beside the user's latest items (`lsrec_hf.model.cooccurrence_prior`), added to the scores;
    # saved beside the weights as cooccurrence_prior.safetensors.
    cooccurrence_prior: CooccurrencePrior | None = None

    def save_pretrained(self, save_directory, is_main_process=True, push_to_hub=False, **kwargs):
        # transformers uploads from inside its own save_pretrained, before the catalog is written: save, then push.
        hub_kwargs = {k: kwargs.pop(k) for k in ("repo_id", "commit_message", "commit_description", "private",
                                                 "revision", "create_pr") if k in kwargs}
        super().save_pretrained(save_directory, is_main_process=is_main_process, **kwargs)
        if not is_main_process:
            return
        if self.catalog is not None:
            self.catalog.save_pretrained(save_directory)
        for prior, name in ((self.trend_prior, TREND_PRIOR_NAME), (self.cooccurrence_prior, COOCCURRENCE_PRIOR_NAME)):
            if prior is not None:
                prior.save_pretrained(save_directory)
            elif os.path.exists(os.path.join(save_directory, name)):  # an earlier save's would load with these weights
                os.remove(os.path.join(save_directory, name))
        if self.eval_results is not None:
            with open(os.path.join(save_directory, EVAL_RESULTS_NAME), "w", encoding="utf-8") as f:
                json.dump(self.eval_results, f, indent=2, default=float)
        if push_to_hub:
            repo_id = hub_kwargs.pop("repo_id", os.path.basename(os.path.normpath(save_directory)))
            self.push_to_hub(repo_id, token=kwargs.get("token"), max_shard_size=kwargs.get("max_shard_size", "50GB"),
                             **hub_kwargs)

    def push_to_hub(self, repo_id, *, commit_message=None, commit_description=None, private=None, token=None,
                    revision=None, create_pr=False, max_shard_size="50GB", tags=None):
        """Upload the model to the Hub: config.json, model.safetensors, catalog.json, eval_results.json,
        trend_prior.safetensors and cooccurrence_prior.safetensors (when the model has them) and a model card,
        README.md, with the test metrics in its model-index metadata.

        As transformers' `push_to_hub`, except that the card is this model's own (`lsrec_hf.sharing.model_card`): it
        replaces the repo's card rather than keeping it. `private` only applies when the repo is created;
        `revision` is a branch, created if needed. Results loaded with a checkpoint go with it: set
        `model.eval_results = None` once they no longer describe the weights (e.g. after fine-tuning).
        """
        repo_id = hf_api().create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
        card = build_model_card(self.config, self.eval_results, model_name=repo_id.split("/")[-1], repo_id=repo_id)
        tags = [tags] if isinstance(tags, str) else tags or []
        card.data.tags = list(dict.fromkeys(card.data.tags + (self.model_tags or []) + tags))
        with tempfile.TemporaryDirectory() as tmp_dir:
            self.save_pretrained(tmp_dir, max_shard_size=max_shard_size)
            card.save(os.path.join(tmp_dir, "README.md"))
            return self._upload_modified_files(
                tmp_dir, repo_id, files_timestamps={}, commit_message=commit_message or "Upload LSRec model",
                token=token, create_pr=create_pr, revision=revision, commit_description=commit_description,
            )

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """As transformers' `from_pretrained`, but strict, and with the catalog and eval results of the checkpoint.

        Every tensor the model expects must be in the checkpoint (an error names the missing ones, and the file), a
        config must fit its weights before anything is allocated, and every file the checkpoint names must lie inside
        its folder (`lsrec_hf.sharing.paths`). An adapter folder (PEFT) loads on top of the base model it names.
        """
        output_loading_info = kwargs.pop("output_loading_info", False)
        adapter_kwargs = dict(kwargs.pop("adapter_kwargs", None) or {})
        adapter_dir = adapter_kwargs.pop("_adapter_model_path", None)  # AutoModel found an adapter config
        source = os.fspath(pretrained_model_name_or_path)
        if adapter_dir is None and os.path.isfile(os.path.join(source, ADAPTER_CONFIG_NAME)):
            adapter_dir = source
        if adapter_dir is not None and os.path.isdir(adapter_dir):
            config_path = os.path.join(adapter_dir, ADAPTER_CONFIG_NAME)
            base = _read_json(config_path).get("base_model_name_or_path") or ""
            base = resolve_base_model(adapter_dir, base, config_path)
            model, loading_info = cls.from_pretrained(base, *model_args, output_loading_info=True, **kwargs)
            model.load_adapter(adapter_dir, adapter_kwargs=adapter_kwargs)
            # the adapter's run was tested without priors (the base's counted the base's log)
            model.trend_prior = model.cooccurrence_prior = None
            return (model, loading_info) if output_loading_info else model
        if adapter_dir is not None:  # an adapter on the Hub: transformers loads it
            adapter_kwargs["_adapter_model_path"] = adapter_dir
        if adapter_kwargs:
            kwargs["adapter_kwargs"] = adapter_kwargs
        hub_kwargs = {k: kwargs[k] for k in ("cache_dir", "revision", "token", "local_files_only", "subfolder")
                      if k in kwargs}
        weights = _check_config_fits_weights(pretrained_model_name_or_path, kwargs.get("config"), hub_kwargs)
        try:
            model, loading_info = super().from_pretrained(pretrained_model_name_or_path, *model_args,
                                                          output_loading_info=True, **kwargs)
        except SafetensorError as error:
            raise OSError(f"{', '.join(weights) or source}: not a readable safetensors file ({error})") from None
        except RuntimeError as error:  # transformers logs which tensors differ, and raises without them
            if "ignore_mismatched_sizes" not in str(error) or not weights:
                raise
            raise OSError(f"{', '.join(weights)} does not hold the weights of the model its {CONFIG_NAME} describes "
                          f"(of another shape: "
                          f"{_mismatched_shapes(cls, pretrained_model_name_or_path, kwargs.get('config'), weights)})"
                          ) from None
        if LEGACY_OUTPUT_BIAS_KEY in loading_info["unexpected_keys"] and hasattr(model, "output_bias"):
            with torch.no_grad():
                model.output_bias.bias.copy_(_read_legacy_output_bias(pretrained_model_name_or_path, hub_kwargs))
            loading_info["unexpected_keys"].discard(LEGACY_OUTPUT_BIAS_KEY)
            loading_info["missing_keys"].discard("output_bias.bias")
        # a model with weights it did not read would serve different scores than the one that was saved
        problems = {"missing": loading_info["missing_keys"], "of another shape": loading_info["mismatched_keys"]}
        if hasattr(model, "output_bias"):  # the bare LSRecModel leaves a head's tensors unused, as BertModel does
            problems["not used by the model"] = loading_info["unexpected_keys"]
        problems = {what: sorted(map(str, keys)) for what, keys in problems.items() if keys}
        if problems:
            listed = "; ".join(f"{what}: {shown_columns(keys)}" for what, keys in problems.items())
            raise OSError(f"{', '.join(weights) or source} does not hold the weights of this model ({listed})")
        model.catalog = ItemCatalog.from_pretrained(pretrained_model_name_or_path, num_items=model.config.num_items,
                                                    **hub_kwargs)
        path = cached_file(pretrained_model_name_or_path, EVAL_RESULTS_NAME,
                           _raise_exceptions_for_missing_entries=False, **hub_kwargs)
        if path is not None:
            model.eval_results = _read_json(path)
        path = cached_file(pretrained_model_name_or_path, TREND_PRIOR_NAME,
                           _raise_exceptions_for_missing_entries=False, **hub_kwargs)
        if path is not None:
            model.trend_prior = TrendPrior.from_file(path, model.config.num_items)
        path = cached_file(pretrained_model_name_or_path, COOCCURRENCE_PRIOR_NAME,
                           _raise_exceptions_for_missing_entries=False, **hub_kwargs)
        if path is not None:
            model.cooccurrence_prior = CooccurrencePrior.from_file(path, model.config.num_items)
        return (model, loading_info) if output_loading_info else model


def _read_json(path):
    """A JSON object from one of the checkpoint's files; a `ValueError` naming the file when it is not one."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise ValueError(f"{path}: not a valid JSON file ({error})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _read_legacy_output_bias(pretrained_model_name_or_path, hub_kwargs):
    """The output bias of a checkpoint that stores it under the old key (before `LSRecOutputBias`)."""
    weights_name = SAFE_WEIGHTS_NAME
    index = cached_file(pretrained_model_name_or_path, SAFE_WEIGHTS_INDEX_NAME,
                        _raise_exceptions_for_missing_entries=False, **hub_kwargs)
    if index is not None:
        with open(index, encoding="utf-8") as f:
            weights_name = json.load(f)["weight_map"][LEGACY_OUTPUT_BIAS_KEY]
    with safe_open(cached_file(pretrained_model_name_or_path, weights_name, **hub_kwargs), framework="pt") as f:
        return f.get_tensor(LEGACY_OUTPUT_BIAS_KEY)


def _mismatched_shapes(cls, pretrained_model_name_or_path, config, weights):
    """'name [saved shape] vs [shape of the config]' for each tensor whose shape is not the config's, for a message."""
    if not isinstance(config, LSRecConfig):
        config = cls.config_class.from_pretrained(pretrained_model_name_or_path)
    with torch.device("meta"):  # shapes only: no memory, whatever sizes the config says
        expected = {key: tuple(value.shape) for key, value in cls(config).state_dict().items()}
    found = []
    for path in weights:
        with safe_open(path, framework="pt") as f:
            found += [f"{key} {list(shape)} vs {list(expected[key])}" for key in f.keys()
                      if key in expected and tuple(shape := f.get_slice(key).get_shape()) != expected[key]]
    return shown_columns(found, limit=5)


def _check_config_fits_weights(pretrained_model_name_or_path, config, hub_kwargs):
    """Check, from the safetensors headers alone, that the config's layers and items are those of the weights.

    Run before transformers allocates the model, so that a config saying `num_hidden_layers: 100000` is an error
    naming it rather than a machine out of memory. Also refuses shard index entries outside the checkpoint's folder.
    Returns the weight files (local paths) for messages.
    """
    def find(name):
        return cached_file(pretrained_model_name_or_path, name, _raise_exceptions_for_missing_entries=False,
                           **hub_kwargs)

    index, config_path = find(SAFE_WEIGHTS_INDEX_NAME), find(CONFIG_NAME)
    if index is not None:
        with open(index, encoding="utf-8") as f:
            names = sorted(set(json.load(f)["weight_map"].values()))
        for name in names:
            inside(os.path.dirname(index), name, index)
        weights = [find(name) or os.path.join(os.path.dirname(index), name) for name in names]
    else:
        weights = [path for path in [find(SAFE_WEIGHTS_NAME)] if path is not None]
    if not weights or (config is None and config_path is None):
        return weights  # transformers says what is missing
    shapes = {}
    for path in weights:
        try:
            with safe_open(path, framework="pt") as f:
                shapes.update({key: f.get_slice(key).get_shape() for key in f.keys()})
        except (SafetensorError, OSError) as error:
            raise OSError(f"{path}: not a readable safetensors file ({error})") from None
    if config is None or isinstance(config, (str, os.PathLike)):
        config_path = config_path if config is None else os.fspath(config)
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
    elif not isinstance(config, dict):
        config = config.to_dict()
    layers = {int(m.group(1)) for key in shapes if (m := re.search(r"(?:^|\.)encoder\.layers\.(\d+)\.", key))}
    expected = config.get("num_hidden_layers")
    if layers and expected != len(layers):
        raise OSError(f"{config_path or 'config'} says num_hidden_layers={expected!r}, but {', '.join(weights)} "
                      f"holds {len(layers)} layers")
    bias = shapes.get("output_bias.bias") or shapes.get(LEGACY_OUTPUT_BIAS_KEY)
    if bias is not None and config.get("num_items") != bias[0]:
        raise OSError(f"{config_path or 'config'} says num_items={config.get('num_items')!r}, but "
                      f"{', '.join(weights)} scores {bias[0]} items")
    return weights
