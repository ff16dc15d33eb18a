"""Pretrain an LSRec model and report full-ranking HR/NDCG/MRR@10/20 on the test split.

    accelerate launch recipes/pretrain.py                      # MovieLens-100K, leave-one-out
    accelerate launch recipes/pretrain.py --data_dir path/to/ml-1m --output_dir outputs/ml-1m
    python recipes/pretrain.py --memory short --objective cloze # the same script without a launcher
    python recipes/pretrain.py --push_to_hub --hub_model_id me/lsrec-ml-100k  # then upload model, catalog and card
    python recipes/pretrain.py --dataset ../shared/data/amazon-beauty,../shared/data/amazon-toys,../shared/data/steam

Several data sets (comma-separated) are pretrained on as one catalog of domains: ids prefixed by each set's
name, a domain token per event, text-only items (no id embedding or output bias: a new catalog has neither),
epochs balanced across domains (`--domain_balance`), each user ranked within its own domain, metrics per domain.
Such a checkpoint recommends in a catalog it has never seen: `pipeline("recommendation", model=..., catalog=...)`,
or `recipes/finetune.py --new_catalog true --new_item_ids true` to adapt it there; `--zero_shot_dataset` tests it
on held-out sets with no training and puts the figures on its card.

Multi-process (gloo on CPU, NCCL on GPUs), mixed precision and gradient accumulation come from
`accelerate launch` flags; the script does not change.
"""

from dataclasses import dataclass, field

from accelerate import Accelerator
from accelerate.utils import set_seed
from transformers import HfArgumentParser

import lsrec_hf
from lsrec_hf.data import load_data
from lsrec_hf.data.domains import DOMAIN
from lsrec_hf.model.configuration_lsrec import LOSSES, MEMORY_MODES, NEGATIVE_SAMPLING, OBJECTIVES, LSRecConfig
from lsrec_hf.training.recipe_utils import (WIDE_DROPOUT, WIDE_FROM_EVENTS, WIDE_HIDDEN_SIZE, DataArguments,
                                            HubArguments, check_hub_repo, comma_separated_names, dataset_sources,
                                            default_dropout, default_hidden_size, feature_vocabularies,
                                            load_dataset, make_splits,
                                            parse_recipe_args, run_recipe, setup_logging, test_and_save)
from lsrec_hf.text import DEFAULT_TEXT_ENCODER, encode_texts
from lsrec_hf.training import TrainingArguments, train


@dataclass
class ModelArguments:
    text_encoder: str | None = field(default=DEFAULT_TEXT_ENCODER, metadata={"help": "Sentence-transformers model for item text; 'none' for id-only."})
    use_item_ids: bool | None = field(default=None, metadata={"help": "Learn an id embedding per item; unset: on for one data set, off for several (text-only items: what a new catalog can have)."})
    item_id_dropout: float = field(default=LSRecConfig.item_id_dropout, metadata={"help": "Training probability of leaving an item's id embedding out (its text alone): better cold items."})
    standardize_content: bool = field(default=LSRecConfig.standardize_content, metadata={"help": "Centre and scale each dimension of the text embeddings on the catalog's statistics before the projection."})
    content_adapter: str = field(default=LSRecConfig.content_adapter, metadata={"help": "Text embedding to item token: one linear projection, or that plus a feed-forward block ('mlp').", "choices": ["linear", "mlp"]})
    use_output_bias: bool | None = field(default=None, metadata={"help": "Add a learned score offset per item; unset: on for one data set, off for several (per-item state does not transfer)."})
    absolute_positions: bool = field(default=LSRecConfig.absolute_positions, metadata={"help": "Add learned positions counted from the segment's end (SASRec's) to the relative position bias."})
    embedding_layer_norm: bool = field(default=LSRecConfig.embedding_layer_norm, metadata={"help": "Layer-normalise item tokens before the first layer."})
    block_layout: str = field(default=LSRecConfig.block_layout, metadata={"help": "Transformer layers: 'pre-norm' or SASRec's ('sasrec').", "choices": ["pre-norm", "sasrec"]})
    memory: str = field(default=LSRecConfig.memory, metadata={"help": "Which interest the model reads.", "choices": list(MEMORY_MODES)})
    objective: str = field(default=LSRecConfig.objective, metadata={"help": "Next-item (causal) or masked-item (cloze) training.", "choices": list(OBJECTIVES)})
    hidden_size: int | None = field(default=None, metadata={"help": f"Width of every token and hidden state; unset: {LSRecConfig.hidden_size}, or {WIDE_HIDDEN_SIZE} for a log of {WIDE_FROM_EVENTS:,} events or more (lsrec_hf.training.recipe_utils.default_hidden_size)."})
    num_hidden_layers: int = field(default=LSRecConfig.num_hidden_layers, metadata={"help": "Transformer layers."})
    num_attention_heads: int = field(default=LSRecConfig.num_attention_heads, metadata={"help": "Attention heads per layer (must divide hidden_size)."})
    intermediate_size: int | None = field(default=None, metadata={"help": "Width of each layer's feed-forward block; unset: 4 x hidden_size."})
    hidden_dropout_prob: float | None = field(default=None, metadata={"help": f"Dropout on embeddings and hidden states; unset: {LSRecConfig.hidden_dropout_prob}, or {WIDE_DROPOUT} for a log of {WIDE_FROM_EVENTS:,} events or more (lsrec_hf.training.recipe_utils.default_dropout)."})
    attention_probs_dropout_prob: float | None = field(default=None, metadata={"help": "Dropout on attention weights; unset: as hidden_dropout_prob's default."})
    segment_length: int = field(default=LSRecConfig.segment_length, metadata={"help": "Events in the short segment / each long-memory chunk."})
    memory_length: int = field(default=LSRecConfig.memory_length, metadata={"help": "Cached states per layer (XL memory)."})
    loss_excludes_history: bool | None = field(default=LSRecConfig.loss_excludes_history, metadata={"help": "Leave each user's history items out of the training softmax (causal, full loss), as evaluation leaves them out of the ranking; unset: on wherever it applies."})
    loss: str = field(default=LSRecConfig.loss, metadata={"help": "Full softmax, or sampled softmax with log-Q correction.", "choices": list(LOSSES)})
    num_negatives: int = field(default=LSRecConfig.num_negatives, metadata={"help": "Negatives per step of the sampled softmax (shared by the batch, drawn from the items' training frequencies)."})
    negative_sampling: str = field(default=LSRecConfig.negative_sampling, metadata={"help": "The sampled softmax's negatives: from the items' frequencies, or the batch's other targets plus uniform draws ('mixed').", "choices": list(NEGATIVE_SAMPLING)})
    context_features: str | None = field(default=None, metadata={"help": "Comma-separated per-event features to embed: interaction columns and/or derived 'hour', 'weekday'."})
    scenario_feature: str | None = field(default=None, metadata={"help": "The context feature saying where an event happened; adds the target-scenario token and per-scenario metrics. With several data sets: 'domain' unless told ('none' for no domain token)."})
    user_features: str | None = field(default=None, metadata={"help": "Comma-separated columns of the users table to embed as a user token (e.g. 'age,gender,occupation')."})
    zero_shot_dataset: str | None = field(default=None, metadata={"help": "Comma-separated data sets (folders or names) held out of pretraining, ranked after it with no training at all (every item its text); their metrics go to eval_results.json and the model card. Needs a text encoder."})


def main(argv=None):
    parser = HfArgumentParser((DataArguments, ModelArguments, TrainingArguments, HubArguments))
    data_args, model_args, train_args, hub_args = parse_recipe_args(parser, argv)
    accelerator = Accelerator()
    setup_logging(accelerator)
    set_seed(train_args.seed)
    check_hub_repo(hub_args, train_args.output_dir, accelerator)

    data = load_dataset(data_args, parser, accelerator)
    several_domains = len(dataset_sources(data_args)) > 1
    for name in ("use_item_ids", "use_output_bias"):  # unset: per-item state for one domain, none for several
        if getattr(model_args, name) is None:
            setattr(model_args, name, not several_domains)
    if several_domains and model_args.scenario_feature is None:
        model_args.scenario_feature = DOMAIN  # a domain token per event, and metrics per domain
    num_events = len(data.interactions)
    if model_args.hidden_size is None:  # the width follows the log's size
        model_args.hidden_size = default_hidden_size(num_events)
        accelerator.print(f"{data.name}: {num_events:,} events, so {model_args.hidden_size}-wide tokens "
                          f"(--hidden_size to choose)")
    unset = [name for name in ("hidden_dropout_prob", "attention_probs_dropout_prob")
             if getattr(model_args, name) is None]
    if unset:  # and so does the dropout
        dropout = default_dropout(num_events)
        for name in unset:
            setattr(model_args, name, dropout)
        accelerator.print(f"{data.name}: {num_events:,} events, so dropout {dropout} "
                          f"({', '.join('--' + name for name in unset)} to choose)")
    if model_args.intermediate_size is None:
        model_args.intermediate_size = 4 * model_args.hidden_size
    if model_args.scenario_feature == "none":
        model_args.scenario_feature = None
    context_features = comma_separated_names(model_args.context_features)
    if model_args.scenario_feature and model_args.scenario_feature not in context_features:
        context_features.append(model_args.scenario_feature)
    user_features = comma_separated_names(model_args.user_features)
    context_vocab, user_vocab = feature_vocabularies(data, context_features, user_features)
    use_text = model_args.text_encoder not in (None, "", "none")
    with accelerator.main_process_first():  # the main process reads and caches, the others read the cache
        zero_shot_data = [load_data(source) for source in comma_separated_names(model_args.zero_shot_dataset)]
    if zero_shot_data and not use_text:
        parser.error("--zero_shot_dataset: an id-only model cannot rank a catalog it never saw; keep a --text_encoder")
    if use_text:
        with accelerator.main_process_first():  # encoded once, then read from the cache
            embeddings = encode_texts(data.catalog.texts, model_args.text_encoder,
                                      show_progress_bar=accelerator.is_local_main_process)

    model = lsrec_hf.LSRecForSequentialRecommendation.from_catalog(
        data.catalog, embeddings if use_text else None,
        text_encoder=model_args.text_encoder if use_text else None,
        context_vocab=context_vocab,
        user_vocab=user_vocab,
        **{k: v for k, v in vars(model_args).items()
           if k not in ("text_encoder", "context_features", "user_features", "zero_shot_dataset")},
    )
    sequences, splits = make_splits(data, data_args, accelerator, config=model.config)

    state = train(model, splits, train_args, accelerator)
    test_and_save(model, state, data, sequences, splits, train_args, hub_args, accelerator, zero_shot_data=zero_shot_data)
    accelerator.end_training()


if __name__ == "__main__":
    run_recipe(main)
