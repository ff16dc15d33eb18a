"""Adapting a pretrained model to new data: its catalog grown by the items it never saw (or replaced by a new
domain's), a LoRA adapter (PEFT).

Imports the model and the text encoder; used by `recipes/finetune.py` and the transfer benchmark.
"""

import contextlib
import logging

from peft import LoraConfig, get_peft_model

from ..text import encode_texts

logger = logging.getLogger(__name__)

# The attention and feed-forward projections of every layer, the projection of the item text, and the item id
# embeddings: a low-rank update per item lets items the base never saw (or whose popularity moved) be learned,
# which a frozen catalog cannot (ML-100K genre transfer, bench/transfer.py: NDCG@10 0.151 at r=2 with it, 0.125 at r=4 without).
DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "fc_in", "fc_out", "text_proj", "item_ids")
# Trained whole beside the adapter and saved with it: one output bias per item (1,682 weights on ML-100K), so new
# items and shifted popularity get their own offsets (genre transfer: NDCG@10 0.162 ± 0.006 with it, 0.157 ± 0.010
# without; full fine-tuning 0.166 ± 0.006).
DEFAULT_MODULES_TO_SAVE = ("output_bias",)
# The learning rate of LoRA runs unless told otherwise (genre transfer: NDCG@10 0.157 at 1e-2, 0.151 at
# pretraining's 2e-3; full fine-tuning 0.166).
LORA_LEARNING_RATE = 1e-2
# With fresh item ids (`adopt_catalog(new_item_ids=True)`) most trained weights are the new id table, which a step
# of 1e-2 overshoots: on a new domain (Amazon Office from a Beauty+Toys+Steam checkpoint, bench/domain_transfer.py,
# 3 seeds) NDCG@10 0.0385 at 3e-3 against 0.0349 at 1e-2 with 10 % of the users, 0.0722 against 0.0677 with all.
NEW_ITEM_IDS_LORA_LEARNING_RATE = 3e-3


def default_lora_learning_rate(new_item_ids=False):
    """The learning rate of a LoRA run that was given none."""
    return NEW_ITEM_IDS_LORA_LEARNING_RATE if new_item_ids else LORA_LEARNING_RATE


def add_lora_adapter(model, r=2, alpha=4, dropout=0.05, item_rank=None, target_modules=DEFAULT_LORA_TARGETS,
                     modules_to_save=DEFAULT_MODULES_TO_SAVE):
    """`model` wrapped with a LoRA adapter (a `peft.PeftModel`); only the adapter and `modules_to_save` train.

    `item_rank` is the rank of the item id embeddings' update (default `r`), at the same scale `alpha / r`.
    With the default targets, those a model lacks (the text projection of an id-only model) are skipped.
    """
    target_modules, modules_to_save = list(target_modules), list(modules_to_save or ())
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    if tuple(target_modules) == DEFAULT_LORA_TARGETS:
        target_modules = [name for name in target_modules if name in present]
    missing = [name for name in target_modules if name not in present]
    if missing:
        raise ValueError(f"target_modules: {missing} are not modules of this model; choose among "
                         f"{sorted(n for n in present if n)}")
    unknown = [name for name in modules_to_save if name not in present]
    if unknown:
        raise ValueError(f"modules_to_save: {unknown} are not modules of this model")
    item_rank = item_rank or r
    item_update = "item_ids" in target_modules  # a text-only model has no id table to adapt
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules,
                        modules_to_save=modules_to_save or None,
                        rank_pattern={"item_ids": item_rank} if item_update else {},
                        alpha_pattern={"item_ids": item_rank * alpha / r} if item_update else {})
    return get_peft_model(model, config)


def grow_catalog(model, catalog, accelerator=None):
    """Extend `model` with the items of `catalog` it has never seen, represented through their text.

    Returns how many items were added. With an `accelerator`, the main process encodes the texts first (the
    others read its cache).
    """
    grown = model.catalog.extended_with(catalog)
    old, added = len(model.catalog), len(grown) - len(model.catalog)
    if not added:
        return 0
    content = None
    if model.config.use_content:
        main_first = accelerator.main_process_first() if accelerator is not None else contextlib.nullcontext()
        with main_first:
            content = encode_texts(grown.texts[old:], model.config.text_encoder,
                                   show_progress_bar=accelerator is None or accelerator.is_local_main_process)
    else:
        logger.warning("an id-only model gives its %d new items a zero id embedding: they are indistinguishable "
                       "until trained (by the adapter's low-rank item update, or full fine-tuning)", added)
    model.extend_catalog(grown, content)
    logger.info("catalog: %d items of the base model + %d new items", old, added)
    return added


def adopt_catalog(model, catalog, accelerator=None, new_item_ids=False):
    """Put `model` onto `catalog`, a catalog of new items only (a new domain), in place: every item is then its
    text, encoded with the model's text encoder (`LSRecForSequentialRecommendation.replace_catalog`).

    `new_item_ids`: give a text-only model a fresh (zero) id embedding and output bias per item to fine-tune."""
    if not model.config.use_content:
        raise ValueError("an id-only model cannot move to a new catalog: its items are only their ids; pretrain "
                         "with a text encoder")
    main_first = accelerator.main_process_first() if accelerator is not None else contextlib.nullcontext()
    with main_first:
        content = encode_texts(catalog.texts, model.config.text_encoder,
                               show_progress_bar=accelerator is None or accelerator.is_local_main_process)
    model.replace_catalog(catalog, content, new_item_ids=new_item_ids)
    logger.info("catalog: %d new items, each represented by its text%s", len(catalog),
                " and a fresh id" if new_item_ids else "")
    return model


def new_item_lora_modules(target_modules=DEFAULT_LORA_TARGETS, modules_to_save=DEFAULT_MODULES_TO_SAVE):
    """LoRA targets and modules to save for a model whose item ids are fresh (`adopt_catalog(new_item_ids=True)`):
    a low-rank update of a zero table could only learn rank-r ids, so the id table trains whole beside the adapter
    (64 numbers an item at the default width) and is saved with it."""
    return ([name for name in target_modules if name != "item_ids"],
            [*dict.fromkeys([*(modules_to_save or ()), "item_ids"])])


__all__ = ["adopt_catalog", "DEFAULT_LORA_TARGETS", "DEFAULT_MODULES_TO_SAVE", "LORA_LEARNING_RATE",
           "NEW_ITEM_IDS_LORA_LEARNING_RATE", "add_lora_adapter", "default_lora_learning_rate", "grow_catalog",
           "new_item_lora_modules"]
