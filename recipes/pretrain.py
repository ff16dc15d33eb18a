"""Pretrain an LSRec model and report full-ranking HR/NDCG/MRR@10/20 on the test split.

    accelerate launch recipes/pretrain.py                      # MovieLens-100K, leave-one-out
    accelerate launch recipes/pretrain.py --data_dir path/to/ml-1m --output_dir outputs/ml-1m
    python recipes/pretrain.py --memory short --objective cloze # the same script without a launcher
    python recipes/pretrain.py --push_to_hub --hub_model_id me/lsrec-ml-100k  # then upload model, catalog and card

Multi-process (gloo on CPU, NCCL on GPUs), mixed precision and gradient accumulation come from
`accelerate launch` flags; the script does not change.
"""

import json
import logging
import os
import sys
from dataclasses import dataclass, field

from accelerate import Accelerator
from accelerate.utils import set_seed
from transformers import HfArgumentParser

import lsrec_hf
from lsrec_hf.configuration_lsrec import LOSSES, MEMORY_MODES, OBJECTIVES
from lsrec_hf.data import DataError, load_data
from lsrec_hf.sequences import build_user_sequences, leave_one_out, temporal_cutoffs, temporal_split
from lsrec_hf.text import DEFAULT_TEXT_ENCODER, encode_texts
from lsrec_hf.training import TrainingArguments, format_metrics_table, train, write_json
from lsrec_hf.evaluation import evaluate_ranking
from lsrec_hf.model_card import build_model_card


@dataclass
class DataArguments:
    dataset: str = field(default="ml-100k", metadata={"help": "'ml-100k' (fetched offline), or a file/directory."})
    data_dir: str | None = field(default=None, metadata={"help": "Directory of already-extracted data files."})
    split: str = field(default="leave-one-out", metadata={"help": "Evaluation split.", "choices": ["leave-one-out", "temporal"]})
    text_template: str | None = field(default=None, metadata={"help": "Item text template, e.g. '{title} ({year}). Genres: {genres}.'"})
    column_map: str | None = field(default=None, metadata={"help": 'For a table: JSON {"user_id": "uid", "item_id": "movie", "timestamp": "ts"}.'})
    items: str | None = field(default=None, metadata={"help": "For a table: an items file (id, title, genres, text...)."})
    item_column_map: str | None = field(default=None, metadata={"help": 'For --items: JSON {"item_id": "movie", "title": "name"}.'})


@dataclass
class ModelArguments:
    text_encoder: str | None = field(default=DEFAULT_TEXT_ENCODER, metadata={"help": "Sentence-transformers model for item text; 'none' for id-only."})
    use_item_ids: bool = field(default=True, metadata={"help": "Learn an id embedding per item."})
    memory: str = field(default="long+short", metadata={"help": "Which interest the model reads.", "choices": list(MEMORY_MODES)})
    objective: str = field(default="causal", metadata={"help": "Next-item (causal) or masked-item (cloze) training.", "choices": list(OBJECTIVES)})
    hidden_size: int = field(default=64)
    num_hidden_layers: int = field(default=2)
    num_attention_heads: int = field(default=2)
    intermediate_size: int = field(default=256)
    hidden_dropout_prob: float = field(default=0.3)
    attention_probs_dropout_prob: float = field(default=0.3)
    segment_length: int = field(default=50, metadata={"help": "Events in the short segment / each long-memory chunk."})
    memory_length: int = field(default=50, metadata={"help": "Cached states per layer (XL memory)."})
    loss: str = field(default="full", metadata={"help": "Full softmax, or sampled softmax with log-Q correction.", "choices": list(LOSSES)})


@dataclass
class HubArguments:
    push_to_hub: bool = field(default=False, metadata={"help": "Upload the final model, its catalog, eval results and model card to the Hub."})
    hub_model_id: str | None = field(default=None, metadata={"help": "Hub repo, e.g. 'me/lsrec-ml-100k' (default: the output_dir name)."})
    hub_private: bool = field(default=False, metadata={"help": "Create the repo private (only applies when it does not exist yet)."})
    hub_revision: str | None = field(default=None, metadata={"help": "Branch to push to (created if needed; default: main)."})


def _loader_kwargs(data_args, parser):
    kwargs = {"text_template": data_args.text_template} if data_args.text_template else {}
    for name in ("column_map", "item_column_map"):
        value = getattr(data_args, name)
        if value:
            try:
                kwargs[name] = json.loads(value)
            except json.JSONDecodeError as error:
                parser.error(f"--{name} must be a JSON object: {error}")
    if data_args.items:
        kwargs["items"] = data_args.items
    return kwargs


def main(argv=None):
    parser = HfArgumentParser((DataArguments, ModelArguments, TrainingArguments, HubArguments))
    data_args, model_args, train_args, hub_args = parser.parse_args_into_dataclasses(args=argv)
    accelerator = Accelerator()
    logging.basicConfig(level=logging.INFO if accelerator.is_main_process else logging.ERROR,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("accelerate").setLevel(logging.WARNING)  # one line per checkpoint file is noise
    set_seed(train_args.seed)

    # Data and content embeddings are prepared once (main process first, then read from the cache).
    with accelerator.main_process_first():
        data = load_data(data_args.dataset, data_dir=data_args.data_dir, **_loader_kwargs(data_args, parser))
        use_text = model_args.text_encoder not in (None, "", "none")
        embeddings = encode_texts(data.catalog.texts, model_args.text_encoder,
                                  show_progress_bar=accelerator.is_local_main_process) if use_text else None
    sequences = build_user_sequences(data.interactions, data.catalog)
    if data_args.split == "leave-one-out":
        splits = leave_one_out(sequences)
    else:
        splits = temporal_split(sequences, *temporal_cutoffs(sequences))
    accelerator.print(f"{data.name}: {len(sequences)} users, {len(data.catalog)} items, "
                      f"{sequences.num_events} events; {splits.protocol} split, "
                      f"{len(splits.test)} test users, {accelerator.num_processes} process(es)")

    config = lsrec_hf.LSRecConfig(
        num_items=len(data.catalog),
        content_dim=embeddings.shape[1] if use_text else 0,
        use_content=use_text,
        text_encoder=model_args.text_encoder if use_text else None,
        **{k: v for k, v in vars(model_args).items() if k != "text_encoder"},
    )
    model = lsrec_hf.LSRecForSequentialRecommendation(config)
    if use_text:
        model.model.embeddings.content_embeddings.copy_(embeddings)
    model.catalog = data.catalog

    state = train(model, splits, train_args, accelerator)
    model = accelerator.unwrap_model(model)
    test = evaluate_ranking(model, splits.test, accelerator, train_args.eval_batch_size,
                            max_length=train_args.max_history_length, description="testing")
    if accelerator.is_main_process:
        model.save_pretrained(train_args.output_dir)
        valid_best = next(h for h in state.history if h["epoch"] == state.best_epoch)
        results = {
            "dataset": data.name, "protocol": splits.protocol, "ranking": "full catalog, history items excluded",
            "num_users": len(sequences), "num_items": len(data.catalog), "num_test_users": len(splits.test),
            "best_epoch": state.best_epoch, "epochs_run": state.epoch, "train_seconds": state.train_seconds,
            "num_processes": accelerator.num_processes, "seed": train_args.seed,
            "test": test, "valid": {k[len("valid_"):]: v for k, v in valid_best.items() if k.startswith("valid_")},
            "history": state.history, "command": " ".join(sys.argv),
        }
        write_json(os.path.join(train_args.output_dir, "eval_results.json"), results)
        name = os.path.basename(os.path.normpath(train_args.output_dir))
        build_model_card(model.config, results, model_name=name).save(os.path.join(train_args.output_dir, "README.md"))
        print(f"\n{data.name}, {splits.protocol}, full ranking over {len(data.catalog)} items "
              f"({len(splits.test)} test users), best epoch {state.best_epoch}, "
              f"{state.train_seconds:.0f}s training\n")
        print(format_metrics_table(test))
        print(f"\nmodel and eval_results.json saved to {train_args.output_dir}")
        if hub_args.push_to_hub:
            # The pushed card carries the test metrics; without --hub_private the account's default visibility.
            model.eval_results = results
            commit = model.push_to_hub(hub_args.hub_model_id or name, private=hub_args.hub_private or None,
                                       revision=hub_args.hub_revision,
                                       commit_message=f"LSRec on {data.name}, best epoch {state.best_epoch}")
            print(f"pushed to {commit.commit_url}")
    accelerator.end_training()


if __name__ == "__main__":
    try:
        main()
    except (DataError, FileNotFoundError) as error:  # a user mistake: say what and where, no traceback
        sys.exit(f"error: {error}")
