"""What the recipes share: data arguments and loading, Hub arguments, and the final test report."""

import difflib
import functools
import json
import logging
import os
import sys
from dataclasses import dataclass, field

from transformers.utils.hub import hf_api

from ..data import DataError, load_data
from ..data.domains import combine_domains
from ..data.sampling import sample_users
from ..data.errors import shown
from ..evaluation.rank import evaluate_ranking, ranking_name
from ..sharing.model_card import build_model_card
from ..processing.sequences import build_user_sequences, leave_one_out, temporal_cutoffs, temporal_split
from .checkpointing import write_json
from ..processing.context import build_vocab, feature_columns, model_event_features
from ..evaluation.priors import choose_priors
from ..model.configuration_lsrec import LSRecConfig
from ..evaluation.zero_shot import zero_shot_metrics
from .loop import format_metrics_table


@dataclass
class DataArguments:
    dataset: str = field(default="ml-100k", metadata={"help": "'ml-100k' (fetched offline), or a file/directory; several, comma-separated, are pretrained on as one catalog of domains (ids prefixed by each one's name)."})
    max_users: int | None = field(default=None, metadata={"help": "Keep a random sample of this many users of each data set, with all their events (seed 0: the same sample for every --seed)."})
    data_dir: str | None = field(default=None, metadata={"help": "Directory of already-extracted data files."})
    split: str = field(default="leave-one-out", metadata={"help": "Evaluation split.", "choices": ["leave-one-out", "temporal"]})
    hold_out_validation: bool = field(default=True, metadata={"help": "Hold out a validation event per user (leave-one-out: the second-to-last; temporal: the period before the test's) for early stopping and the priors' choice. false trains on it, keeps the last epoch and chooses no prior: HSTU's ML-1M protocol, for comparing with figures measured that way. The test is the same either way."})
    text_template: str | None = field(default=None, metadata={"help": "Item text template, e.g. '{title} ({year}). Genres: {genres}.'"})
    column_map: str | None = field(default=None, metadata={"help": 'For a table: JSON {"user_id": "uid", "item_id": "movie", "timestamp": "ts"}.'})
    items: str | None = field(default=None, metadata={"help": "For a table: an items file (id, title, genres, text...)."})
    item_column_map: str | None = field(default=None, metadata={"help": 'For --items: JSON {"item_id": "movie", "title": "name"}.'})
    duplicates: str = field(default="drop", metadata={"help": "Exact duplicate events (same user, item, time): drop (counted) or keep.", "choices": ["drop", "keep"]})
    sep: str | None = field(default=None, metadata={"help": "For a table: the field separator, e.g. ';' (default: from the file's extension)."})
    encoding: str | None = field(default=None, metadata={"help": "The files' text encoding, e.g. 'latin-1' (default: UTF-8)."})


@dataclass
class HubArguments:
    push_to_hub: bool = field(default=False, metadata={"help": "Upload the final model, its catalog, eval results and model card to the Hub."})
    hub_model_id: str | None = field(default=None, metadata={"help": "Hub repo, e.g. 'me/lsrec-ml-100k' (default: the output_dir name)."})
    hub_private: bool = field(default=False, metadata={"help": "Create the repo private (only applies when it does not exist yet)."})
    hub_revision: str | None = field(default=None, metadata={"help": "Branch to push to (created if needed; default: main)."})


def _loader_kwargs(data_args, parser):
    kwargs = {"text_template": data_args.text_template} if data_args.text_template else {}
    kwargs["duplicates"] = data_args.duplicates
    for name in ("column_map", "item_column_map"):
        value = getattr(data_args, name)
        if value:
            try:
                kwargs[name] = json.loads(value)
            except json.JSONDecodeError as error:
                parser.error(f"--{name} must be a JSON object: {error}")
    if data_args.items:
        kwargs["items"] = data_args.items
    if data_args.sep is not None:
        if not os.path.isfile(data_args.data_dir or data_args.dataset):
            parser.error("--sep applies to a single table file (--dataset path/to/file.csv)")
        kwargs["sep"] = data_args.sep
    if data_args.encoding is not None:
        kwargs["encoding"] = data_args.encoding
    return kwargs


# transformers' TrainingArguments names for flags of ours: a transformers user types them first
TRANSFORMERS_NAMES = {"--num_train_epochs": "--num_epochs", "--per_device_train_batch_size": "--batch_size",
                      "--per_device_eval_batch_size": "--eval_batch_size"}


def comma_separated_names(text):
    """'a, b,,c' -> ['a', 'b', 'c'] (None or '' -> []): feature and module lists on the command line."""
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def parse_recipe_args(parser, argv=None):
    """`parser.parse_args_into_dataclasses`, taking transformers' names for our flags, and ending an unknown flag
    with a usage message that names it (and the closest flag) instead of a traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    for position, arg in enumerate(argv):
        name, equals, value = arg.partition("=")
        if name in TRANSFORMERS_NAMES:
            argv[position] = TRANSFORMERS_NAMES[name] + equals + value
    _, unknown = parser.parse_known_args(argv)
    if unknown:
        flags = [flag for action in parser._actions for flag in action.option_strings]
        close = difflib.get_close_matches(unknown[0].partition("=")[0], flags, n=1)
        parser.error(f"unknown argument {shown(unknown[0])}" + (f"; did you mean {close[0]}?" if close else "; see --help"))
    return parser.parse_args_into_dataclasses(args=argv)


def check_hub_repo(hub_args, output_dir, accelerator):
    """Create (or find) the Hub repo before training, as transformers' Trainer does: a missing token or network
    ends the run in seconds with a message, not after training with a traceback."""
    if not hub_args.push_to_hub or not accelerator.is_main_process:
        return
    repo_id = hub_args.hub_model_id or os.path.basename(os.path.normpath(output_dir))
    try:
        hf_api().create_repo(repo_id, private=hub_args.hub_private or None, exist_ok=True)
    except Exception as error:  # the Hub client raises OS, HTTP and connection errors of several libraries
        sys.exit(f"error: --push_to_hub: cannot create or reach the Hub repo {repo_id!r} ({shown(str(error), 300)}); "
                 f"log in (`hf auth login` or HF_TOKEN) and check the network, or leave out --push_to_hub")


def run_recipe(main):
    """Run a recipe's `main`; a user mistake ends with a message saying what and where, not a traceback."""
    try:
        main()
    except (DataError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")


def setup_logging(accelerator):
    logging.basicConfig(level=logging.INFO if accelerator.is_main_process else logging.ERROR,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("accelerate").setLevel(logging.WARNING)  # one line per checkpoint file is noise


def dataset_sources(data_args):
    """The data sets `--dataset` names: one, or several comma-separated (a path holding a comma is one)."""
    if os.path.exists(data_args.dataset) or "," not in data_args.dataset:
        return [data_args.dataset]
    return comma_separated_names(data_args.dataset)


def load_dataset(data_args, parser, accelerator):
    sources = dataset_sources(data_args)
    if len(sources) > 1 and data_args.data_dir:
        parser.error("--data_dir reads one data set; give several as --dataset a,b,c (paths)")
    kwargs = _loader_kwargs(data_args, parser)
    with accelerator.main_process_first():  # the main process fetches and caches, the others read the cache
        parts = [sample_users(load_data(source, data_dir=data_args.data_dir, **kwargs), data_args.max_users,
                              seed=0) for source in sources]
    data = parts[0] if len(parts) == 1 else combine_domains(parts)
    # what loading counted, so that nothing is dropped unnoticed
    counts = ", ".join(f"{key.replace('_', ' ')}: {value}" for key, value in data.report.items())
    accelerator.print(f"{data.name}: {counts}")
    return data


# A log of this many events or more gets tokens this wide (and a feed-forward block four times as wide). Measured
# (test NDCG@10, model alone): 128 against 64 gains 0.2063 against 0.1945 on MovieLens-1M (1M events, 3 seeds) and
# loses on MovieLens-100K (0.1193 against 0.1313) and Amazon Office (0.0691 against 0.0759, 53k events; seed 42).
# Between 200k and 1M events the crossing is not measured; half a million is a round number between.
WIDE_FROM_EVENTS = 500_000
WIDE_HIDDEN_SIZE = 128


def default_hidden_size(num_events):
    """The recipes' token width for a log of `num_events`: the config's default (64), or `WIDE_HIDDEN_SIZE` from
    `WIDE_FROM_EVENTS` on, where a 64-wide model is too small for what a million events can teach."""
    return WIDE_HIDDEN_SIZE if num_events >= WIDE_FROM_EVENTS else LSRecConfig.hidden_size


# The wide model of a large log also drops less: 0.2 against 0.3 at 128 wide on MovieLens-1M led validation at every
# epoch compared on each of three seeds (test figures: README, "MovieLens-1M with today's recipe"). Smaller logs keep
# the config's 0.3.
WIDE_DROPOUT = 0.2


def default_dropout(num_events):
    """The recipes' dropout (on hidden states and on attention weights alike) for a log of `num_events`: the
    config's default (0.3), or `WIDE_DROPOUT` from `WIDE_FROM_EVENTS` on."""
    return WIDE_DROPOUT if num_events >= WIDE_FROM_EVENTS else LSRecConfig.hidden_dropout_prob


def feature_vocabularies(data, context_features, user_features):
    """`(context_vocab, user_vocab)` of the named features in `data` (None where none are asked for)."""
    frame = feature_columns(data, context_features, user_features)
    context_vocab = {name: build_vocab(frame[name]) for name in context_features} or None
    user_vocab = {name: build_vocab(frame[name]) for name in user_features} or None
    return context_vocab, user_vocab


def make_splits(data, data_args, accelerator, catalog=None, config=None):
    """The data's user sequences (over `catalog`, default the data's own) and the evaluation split.

    With a model `config` that embeds side features, the sequences carry their ids (values unknown to the
    config's vocabularies get id 0).
    """
    catalog = catalog or data.catalog
    sequences = build_user_sequences(data.interactions, catalog, model_event_features(data, config))
    if data_args.split == "leave-one-out":
        splits = leave_one_out(sequences, validation=data_args.hold_out_validation)
    else:
        valid_time, test_time = temporal_cutoffs(sequences)
        if not data_args.hold_out_validation:  # the validation period becomes training
            valid_time = test_time
        splits = temporal_split(sequences, valid_time, test_time)
    accelerator.print(f"{data.name}: {len(sequences)} users, {len(catalog)} items, "
                      f"{sequences.num_events} events; {splits.protocol} split, "
                      f"{len(splits.test)} test users, {accelerator.num_processes} process(es)")
    return sequences, splits


def test_and_save(model, state, data, sequences, splits, train_args, hub_args, accelerator, base_model=None,
                  recipe="recipes/pretrain.py", zero_shot_data=()):
    """Test the best weights, save the model with eval_results.json and a model card, print the table, push.

    `base_model` is the checkpoint a fine-tuned model started from and `recipe` the script, both named in its card.
    `zero_shot_data`: held-out domains the model is also tested on with no training (`zero_shot_metrics`)."""
    model = accelerator.unwrap_model(model)
    trend = cooccurrence = None
    if not hasattr(model, "peft_config"):  # an adapter saves only its own tensors: a prior would not travel with it
        # a base model's priors counted another log's events: the ones kept are chosen on this data, or none
        trend, cooccurrence = choose_priors(model, splits, accelerator, train_args.eval_batch_size,
                                            train_args.max_history_length, train_args.exclude_history,
                                            train_args.trend_prior, train_args.cooccurrence_prior)
    evaluate = functools.partial(evaluate_ranking, model, splits.test, accelerator, train_args.eval_batch_size,
                                 max_length=train_args.max_history_length, exclude_history=train_args.exclude_history)
    test = evaluate(description="testing")
    # the model alone, and (with both priors) the model with its trend prior alone, beside it
    test_without_priors = test_without_cooccurrence = None
    if model.trend_prior is not None or model.cooccurrence_prior is not None:
        test_without_priors = evaluate(description="testing without the priors", trend_prior=False,
                                       cooccurrence_prior=False)
    if model.trend_prior is not None and model.cooccurrence_prior is not None:
        test_without_cooccurrence = evaluate(description="testing without the co-occurrence prior",
                                             cooccurrence_prior=False)
    zero_shot = [zero_shot_metrics(model, held_out, accelerator, train_args.eval_batch_size, train_args.exclude_history)
                 for held_out in zero_shot_data]
    if not accelerator.is_main_process:
        return test
    num_items = model.config.num_items
    # an adapter never carries the base's embeddings: its base is saved whole beside it, or is on the Hub
    model.save_pretrained(train_args.output_dir, **({"save_embedding_layers": False} if hasattr(model, "peft_config") else {}))
    valid_best = next(h for h in state.history if h["epoch"] == state.best_epoch)
    results = {
        "dataset": data.name, "protocol": splits.protocol, "ranking": ranking_name(train_args.exclude_history),
        "exclude_history": train_args.exclude_history,
        "num_users": len(sequences), "num_items": num_items, "num_test_users": len(splits.test),
        "validated": len(splits.valid) > 0, "best_epoch": state.best_epoch, "epochs_run": state.epoch, "train_seconds": state.train_seconds,
        "num_processes": accelerator.num_processes, "seed": train_args.seed, "learning_rate": train_args.learning_rate,
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "test": test, "valid": {k[len("valid_"):]: v for k, v in valid_best.items() if k.startswith("valid_")},
        "history": state.history, "command": " ".join(sys.argv),
    }
    if trend is not None:
        results["trend_prior"] = trend
    if cooccurrence is not None:
        results["cooccurrence_prior"] = cooccurrence
    if test_without_priors is not None:
        results["test_without_priors"] = test_without_priors
    if test_without_cooccurrence is not None:
        results["test_without_cooccurrence_prior"] = test_without_cooccurrence
    if zero_shot:
        results["zero_shot"] = zero_shot
    write_json(os.path.join(train_args.output_dir, "eval_results.json"), results)
    name = os.path.basename(os.path.normpath(train_args.output_dir))
    build_model_card(model.config, results, model_name=name, repo_id=hub_args.hub_model_id or train_args.output_dir,
                     base_model=base_model, adapter=hasattr(model, "peft_config"),
                     recipe=recipe).save(os.path.join(train_args.output_dir, "README.md"))
    print(f"\n{data.name}, {splits.protocol}, {ranking_name(train_args.exclude_history)} ({num_items} items, "
          f"{len(splits.test)} test users), {'best' if len(splits.valid) else 'last'} epoch {state.best_epoch}, "
          f"{state.train_seconds:.0f}s training\n")
    print(format_metrics_table(test))
    if model.trend_prior is not None:
        print(f"\nwith the trend prior: {trend['weight']:g} x log(1 + events in the {trend['window_days']:g} days before) "
              f"{trend['popularity_weight']:+g} x log(1 + all events before), chosen on validation (NDCG@10 "
              f"{trend['valid_ndcg@10_without']:.4f} -> {trend['valid_ndcg@10']:.4f})")
    if model.cooccurrence_prior is not None:
        print(f"with the co-occurrence prior: {cooccurrence['weight']:g} x the similarity to the latest items (decay "
              f"{cooccurrence['decay']:g} a step back), chosen on validation (NDCG@10 "
              f"{cooccurrence['valid_ndcg@10_without']:.4f} -> {cooccurrence['valid_ndcg@10']:.4f})")
    if test_without_cooccurrence is not None:
        print(f"test NDCG@10 without the co-occurrence prior {test_without_cooccurrence['ndcg@10']:.4f}")
    if test_without_priors is not None:
        print(f"test NDCG@10 of the model alone, without the priors {test_without_priors['ndcg@10']:.4f}")
    for scenario, metrics in test.get("per_scenario", {}).items():
        print(f"\nscenario {scenario} ({metrics['num_users']} test users)\n{format_metrics_table(metrics)}")
    for held_out in zero_shot:
        print(f"\nzero-shot on {held_out['dataset']} ({held_out['num_items']} items never trained on, "
              f"{held_out['num_test_users']} test users; most-popular NDCG@10 {held_out['most_popular']['ndcg@10']:.4f})"
              f"\n{format_metrics_table(held_out['test'])}")
    print(f"\nmodel and eval_results.json saved to {train_args.output_dir}")
    if hub_args.push_to_hub:
        # The pushed card carries the test metrics; without --hub_private the account's default visibility.
        model.eval_results = results
        commit = model.push_to_hub(hub_args.hub_model_id or name, private=hub_args.hub_private or None,
                                   revision=hub_args.hub_revision,
                                   commit_message=f"LSRec on {data.name}, best epoch {state.best_epoch}")
        print(f"pushed to {commit.commit_url}")
    return test
