"""Fine-tune a pretrained LSRec model with LoRA (PEFT) and report full-ranking HR/NDCG/MRR@10/20.

    accelerate launch recipes/finetune.py --base_model outputs/lsrec-ml-100k --dataset path/to/new-data
    accelerate launch recipes/finetune.py --base_model me/lsrec-ml-100k --split temporal --lora_r 16
    python recipes/finetune.py --base_model outputs/lsrec-ml-100k --full_finetune true   # every weight trains

The training loop, evaluation and checkpointing are those of `recipes/pretrain.py`. The adapter is saved on its
own (`adapter_model.safetensors` + `adapter_config.json`, with the per-item output biases it trains beside the
low-rank updates); `pipeline("recommendation", model=output_dir)`, `AutoModel.from_pretrained(output_dir)` and
`PeftModel.from_pretrained(base, output_dir)` load it on top of the base model it names, and
`merge_and_unload()` folds it into the base weights for serving.

Items the base model has never seen are added to its catalog (extended, never replaced): a new item starts as
its text (content embedding through the text projection, zero id embedding, mean output bias). For a new domain,
`--new_catalog true` replaces the catalog by the data's instead (a base pretrained with text; see
`recipes/pretrain.py --dataset a,b,c`):

    python recipes/finetune.py --base_model outputs/lsrec-multi --dataset ../shared/data/amazon-office --new_catalog true

`--new_item_ids true` gives each of the new domain's items a fresh id embedding and output bias as well (zero at
first, trained in full beside the adapter), for when the target has enough users to learn them. With LoRA a grown
or local base model is saved in `output_dir/base_model` and the adapter names it relative to its folder, so the
folder loads after a move, from any directory; a Hub base is named by its id.
"""

import os
from dataclasses import dataclass, field

from accelerate import Accelerator
from accelerate.utils import set_seed
from transformers import AutoModel, HfArgumentParser

import lsrec_hf  # noqa: F401  (registers LSRec with the Auto classes)
from lsrec_hf.data import DataError
from lsrec_hf.data.domains import DOMAIN, with_domain
from lsrec_hf.training.finetuning import (DEFAULT_LORA_TARGETS, DEFAULT_MODULES_TO_SAVE, adopt_catalog, default_lora_learning_rate,
                                         add_lora_adapter, grow_catalog, new_item_lora_modules)
from lsrec_hf.sharing.paths import BASE_MODEL_DIR
from lsrec_hf.training.recipe_utils import (DataArguments, HubArguments, check_hub_repo, comma_separated_names, load_dataset,
                                   make_splits, parse_recipe_args, run_recipe, setup_logging, test_and_save)
from lsrec_hf.training import TrainingArguments, train


@dataclass
class FinetuneArguments:
    base_model: str = field(default="outputs/lsrec-ml-100k", metadata={"help": "Pretrained LSRec checkpoint: a folder or a Hub id."})
    base_revision: str | None = field(default=None, metadata={"help": "Hub revision of the base model."})
    full_finetune: bool = field(default=False, metadata={"help": "Train every weight instead of a LoRA adapter."})
    # r=2 on the default targets plus the output bias trains 10,678 weights of the default model, 4.5 % of full
    # fine-tuning's 238,675 (a rank-4 item update with r=1 elsewhere, 11,418 weights, did no better: 0.162 ± 0.009).
    new_catalog: bool = field(default=False, metadata={"help": "The data are a new domain: replace the base model's catalog by theirs (every item its text) instead of extending it; for a base pretrained with text."})
    new_item_ids: bool = field(default=False, metadata={"help": "With --new_catalog: give each new item a fresh id embedding and output bias (zero at first), trained in full beside the adapter, so that fine-tuning learns what an item's text does not say."})
    lora_r: int = field(default=2, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=4, metadata={"help": "LoRA scaling numerator (scale = alpha / r)."})
    lora_item_rank: int | None = field(default=None, metadata={
        "help": "Rank of the update of the item id embeddings (default: --lora_r), at the same scale alpha / r."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    lora_target_modules: str = field(default=",".join(DEFAULT_LORA_TARGETS), metadata={"help": "Comma-separated module names to adapt."})
    lora_modules_to_save: str = field(default=",".join(DEFAULT_MODULES_TO_SAVE), metadata={
        "help": "Comma-separated modules trained in full beside the adapter and saved with it ('' for none)."})


def build_finetune_model(base, args):
    """The base model wrapped with a LoRA adapter as the arguments say (or the base model itself for full fine-tuning)."""
    if args.full_finetune:
        return base
    target_modules = comma_separated_names(args.lora_target_modules)
    modules_to_save = comma_separated_names(args.lora_modules_to_save)
    if args.new_item_ids:
        target_modules, modules_to_save = new_item_lora_modules(target_modules, modules_to_save)
    try:
        return add_lora_adapter(base, r=args.lora_r, alpha=args.lora_alpha, dropout=args.lora_dropout,
                                item_rank=args.lora_item_rank, target_modules=target_modules,
                                modules_to_save=modules_to_save)
    except ValueError as error:  # name the flag, not the function's argument
        raise ValueError(f"--lora_{error}") from None


def main(argv=None):
    parser = HfArgumentParser((FinetuneArguments, DataArguments, TrainingArguments, HubArguments))
    parser.set_defaults(output_dir="outputs/lsrec-finetuned")  # --help states it too
    finetune_args, data_args, train_args, hub_args = parse_recipe_args(parser, argv)
    if not finetune_args.full_finetune and train_args.learning_rate == TrainingArguments.learning_rate:
        # adapters start at zero and have few weights: they want a larger step than pretraining (a fresh id table
        # beside them a smaller one than the adapter alone)
        train_args.learning_rate = default_lora_learning_rate(finetune_args.new_item_ids)
    local_base = not finetune_args.full_finetune and os.path.isdir(finetune_args.base_model)
    if hub_args.push_to_hub and local_base:
        parser.error("--push_to_hub: the adapter would name a base model on this disk; push the base model and pass "
                     "its Hub id as --base_model, or use --full_finetune true")
    accelerator = Accelerator()
    setup_logging(accelerator)
    set_seed(train_args.seed)
    check_hub_repo(hub_args, train_args.output_dir, accelerator)

    base = AutoModel.from_pretrained(finetune_args.base_model, revision=finetune_args.base_revision)
    if base.catalog is None:
        raise DataError(f"{finetune_args.base_model}: no catalog.json beside the weights; cannot map items to the model")
    # they counted the base's log; full fine-tuning chooses its own on this data (test_and_save)
    base.trend_prior = base.cooccurrence_prior = None
    data = load_dataset(data_args, parser, accelerator)
    if base.config.scenario_feature == DOMAIN:  # pretrained on several domains: this one is named by the data
        data = with_domain(data)
    old = len(base.catalog)
    if finetune_args.new_item_ids and not finetune_args.new_catalog:
        parser.error("--new_item_ids applies with --new_catalog true (a grown catalog's new items get ids already "
                     "where the base has an id table)")
    if finetune_args.new_catalog:
        adopt_catalog(base, data.catalog, accelerator, new_item_ids=finetune_args.new_item_ids)
        added = len(base.catalog)
        accelerator.print(f"catalog: the base model's {old} items replaced by the {added} items of {data.name}")
    else:
        added = grow_catalog(base, data.catalog, accelerator)
        if added:
            accelerator.print(f"catalog: {old} items of the base model + {added} new items")
    sequences, splits = make_splits(data, data_args, accelerator, catalog=base.catalog, config=base.config)

    if added and hub_args.push_to_hub and not finetune_args.full_finetune:
        raise DataError(f"--push_to_hub: the adapter needs the base model grown by {added} new items, which is not on "
                        f"the Hub; use --full_finetune true, or push the grown base first")
    if not finetune_args.full_finetune and (added or local_base):
        # The adapter's folder carries the base it needs (grown, or a local one), named relative to the folder, so
        # that the folder can be moved or shared (lsrec_hf.sharing.paths); a Hub base is named by its id.
        if accelerator.is_main_process:
            base.save_pretrained(os.path.join(train_args.output_dir, BASE_MODEL_DIR))
            base.config.save_pretrained(train_args.output_dir)  # so that transformers lets LSRec resolve the base
        base.name_or_path = BASE_MODEL_DIR
    model = build_finetune_model(base, finetune_args)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    accelerator.print(f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.2f} %)")

    state = train(model, splits, train_args, accelerator)
    test_and_save(model, state, data, sequences, splits, train_args, hub_args, accelerator,
                  base_model=finetune_args.base_model, recipe="recipes/finetune.py")
    accelerator.end_training()


if __name__ == "__main__":
    run_recipe(main)
