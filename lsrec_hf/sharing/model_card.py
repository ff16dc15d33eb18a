"""Model cards for LSRec checkpoints, written with `huggingface_hub.ModelCard` and eval results in the metadata."""

import os
from importlib import resources

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .paths import is_hub_id

# Package data, so a wheel install writes the same card as a checkout; `model_cards/` at the top level holds an
# identical copy for the design card (tests/test_packaging.py keeps the two equal).
TEMPLATE_NAME = "model_card_template.md"
_METRIC_NAMES = {"hr": "HR", "ndcg": "NDCG", "mrr": "MRR"}


def _template():
    # A missing template is a broken install, not a reason to write a poorer card.
    return resources.files(__package__).joinpath(TEMPLATE_NAME).read_text(encoding="utf-8")


def build_model_card(config, results=None, model_name="lsrec", repo_id=None, base_model=None, adapter=False,
                     recipe="recipes/pretrain.py"):
    """A card for a checkpoint from its config and the `eval_results.json` written by the recipe.

    Without `results` (a model trained elsewhere) the card describes the model and says nothing of its quality.
    `repo_id` is what the how-to loads (a Hub id or a path). A fine-tuned model names the `base_model` it started
    from (in the metadata when that is a Hub id); an `adapter` (PEFT) is a `peft` library card.
    """
    description = dict(
        model_name=model_name, repo_id=repo_id or model_name, text_encoder=config.text_encoder or "none",
        use_item_ids=config.use_item_ids, objective=config.objective, segment_length=config.segment_length,
        memory_length=config.memory_length, memory=config.memory, recipe=recipe, base_model=base_model,
        adapter=adapter, hidden_size=config.hidden_size, num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads, intermediate_size=config.intermediate_size,
    )
    eval_results = None
    if results is not None:
        test = results["test"]
        eval_results = [
            EvalResult(task_type="sequential-recommendation", task_name="Sequential recommendation",
                       dataset_type=results["dataset"], dataset_name=results["dataset"], dataset_split="test",
                       dataset_args={"protocol": results["protocol"], "ranking": results["ranking"]},
                       metric_type=key, metric_name=f"{_METRIC_NAMES[key.split('@')[0]]}@{key.split('@')[1]}",
                       metric_value=round(float(value), 4))
            for key, value in test.items() if key.split("@")[0] in _METRIC_NAMES
        ]
        k_values = sorted({int(key.split("@")[1]) for key in test if "@" in key})
        description["metrics_table"] = "\n".join(
            ["| | " + " | ".join(f"@{k}" for k in k_values) + " |", "|---|" + "---|" * len(k_values)]
            + [f"| {label} | " + " | ".join(f"{test[f'{name}@{k}']:.4f}" for k in k_values) + " |"
               for name, label in _METRIC_NAMES.items()]
        )
        description.update({key: results[key] for key in ("num_items", "num_users", "num_test_users", "protocol",
                                                           "epochs_run", "best_epoch")},
                           dataset_name=results["dataset"],
                           selection=(f"best validation NDCG@10 at epoch {results['best_epoch']}"
                                      if results.get("validated", True)
                                      else "no validation event held out: the last epoch's weights"),
                           history_rule=("items in the user's input history excluded from the ranking"
                                         if results.get("exclude_history", True) else
                                         "items in the user's input history kept in the ranking (RecBole's protocol)"))
        if config.scenario_feature == "domain" and test.get("per_scenario"):
            # a multi-domain checkpoint: what it was pretrained on, how each domain scores, how to carry it elsewhere
            description["domains_table"] = "\n".join(
                ["| domain | test users | HR@10 | NDCG@10 |", "|---|---|---|---|"]
                + [f"| {domain} | {m['num_users']} | {m['hr@10']:.4f} | {m['ndcg@10']:.4f} |"
                   for domain, m in sorted(test["per_scenario"].items())])
        # the test metrics above are with the priors kept: say which, and give the model's own beside them
        without = results.get("test_without_priors", results.get("test_without_trend_prior"))  # the latter: older files
        priors = []
        trend = results.get("trend_prior") or {}
        if trend.get("chosen"):
            priors.append(f"a trend prior: {trend['weight']:g} x log(1 + the item's training events in the "
                          f"{trend['window_days']:g} days before the request) {trend.get('popularity_weight', 0.0):+g} "
                          f"x log(1 + all its training events before it) (`trend_prior.safetensors`; "
                          f"`recommend(..., now=...)` and `pipeline(..., now=...)` take the moment of the request)")
        cooccurrence = results.get("cooccurrence_prior") or {}
        if cooccurrence.get("chosen"):
            priors.append(f"a co-occurrence prior: {cooccurrence['weight']:g} x the sum of the item's similarity "
                          f"(cosine over training users, {cooccurrence['neighbors']} neighbours an item) to the user's "
                          f"latest {cooccurrence['max_history']} items, times {cooccurrence['decay']:g} a step back "
                          f"(`cooccurrence_prior.safetensors`)")
        if priors and without is not None:
            description["priors"] = (
                f"The scores add {' and '.join(priors)}, chosen on validation. The model alone: NDCG@10 "
                f"{without['ndcg@10']:.4f}, HR@10 {without['hr@10']:.4f}.")
        if results.get("zero_shot"):  # held-out domains ranked with no training at all
            description["zero_shot_table"] = "\n".join(
                ["| held-out data set | items | test users | HR@10 | NDCG@10 | most-popular NDCG@10 |",
                 "|---|---|---|---|---|---|"]
                + [f"| {z['dataset']} | {z['num_items']} | {z['num_test_users']} | {z['test']['hr@10']:.4f} | "
                   f"{z['test']['ndcg@10']:.4f} | {z['most_popular']['ndcg@10']:.4f} |" for z in results["zero_shot"]])
    hub_base = base_model if base_model and not os.path.exists(base_model) and is_hub_id(base_model) else None
    card_data = ModelCardData(library_name="peft" if adapter else "transformers", pipeline_tag=None,
                              tags=["recommendation", "lsrec"] + (["lora"] if adapter else []), base_model=hub_base,
                              model_name=model_name, eval_results=eval_results, license="apache-2.0")
    return ModelCard.from_template(card_data, template_str=_template(), **description)
