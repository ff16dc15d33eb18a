"""The training loop shared by pretraining and fine-tuning: plain torch under Accelerate.

Each batch of users is read segment by segment, Transformer-XL style: a segment's loss is backpropagated
and stepped before the next segment reads the (detached) memory it left. Validation NDCG@10 drives early
stopping; verified safetensors/JSON checkpoints (`checkpointing.py`) make a killed run resumable with `--resume`.
"""

import logging
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .lazy_adamw import LazyAdamW, clip_grad_norm
from .checkpointing import (find_resumable, load_checkpoint, save_checkpoint, swap_into_place, verify_manifest,
                            write_manifest)
from ..data.domains import domain_weights
from ..data.errors import DataError
from ..processing.collator import LengthBucketSampler, TrainingCollator
from ..processing.sequences import item_counts
from ..evaluation.rank import DEFAULT_K_VALUES, evaluate_ranking
from ..utils import progress_bars_off

logger = logging.getLogger(__name__)


@dataclass
class TrainingArguments:
    """Arguments of the training loop (the recipes expose them on the command line)."""

    output_dir: str = field(default="outputs/lsrec-ml-100k", metadata={"help": "Where checkpoints and the final model go."})
    num_epochs: int = field(default=40, metadata={"help": "Epochs (the cosine schedule decays over all of them)."})
    batch_size: int = field(default=32, metadata={"help": "Users per batch (over all processes)."})
    eval_batch_size: int = field(default=256, metadata={"help": "Users per evaluation batch."})
    learning_rate: float = field(default=2e-3, metadata={"help": "Peak AdamW learning rate."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    warmup_steps: int = field(default=100, metadata={"help": "Linear warm-up steps."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Learning rate after warm-up.", "choices": ["cosine", "constant"]})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm (0 = off)."})
    group_by: str = field(default="chunks", metadata={"help": "Batches of users of one number of segment chunks, drawn at random within ('chunks'), or of one history length ('length').", "choices": ["chunks", "length"]})
    max_history_length: int | None = field(default=None, metadata={"help": "Keep only the last N events of a user (None = all)."})
    exclude_history: bool = field(default=True, metadata={"help": "Validate and test with the items of each user's input history removed from the ranking (the protocol of SASRec+, gSASRec, RePlay); false keeps them, as RecBole 1.2.1 does."})
    trend_prior: bool = field(default=True, metadata={"help": "After training, choose on validation a trend prior (each item's recent events before the request, lsrec_hf.model.trend_prior) and keep it with the model where it raises validation NDCG@10; tested with it. Needs event times; not for LoRA adapters."})
    cooccurrence_prior: bool = field(default=True, metadata={"help": "After training (and the trend prior), choose on validation a co-occurrence prior (what other users took beside each user's latest items, lsrec_hf.model.cooccurrence_prior) and keep it with the model where it raises validation NDCG@10; tested with it. Not for LoRA adapters."})
    patience: int = field(default=15, metadata={"help": "Stop after this many evaluations without a better validation NDCG@10."})
    eval_every: int = field(default=1, metadata={"help": "Evaluate (and checkpoint) every N epochs."})
    seed: int = field(default=42, metadata={"help": "Random seed."})
    resume: bool = field(default=False, metadata={"help": "Resume from the last checkpoint in output_dir."})
    item_moments: str = field(default="full", metadata={"help": "Optimizer state of a sparse item-id table: AdamW's two moments per weight ('full'), or one second moment per row ('rowwise': N numbers instead of 2 x N x width, for catalogs of millions).", "choices": ["full", "rowwise"]})
    domain_balance: float = field(default=0.5, metadata={"help": "With a catalog of several domains (--dataset a,b,c): each epoch draws users so that a domain's share is proportional to its users ** this (1: as in the data, 0: every domain alike, 0.5: between, as multilingual pretraining samples languages)."})
    sparse_item_gradients: bool | None = field(default=None, metadata={"help": "Sparse gradients for the item-id table, stepped by a lazy AdamW (only the rows a step reads are updated), so that a step's cost does not grow with the catalog. Unset: on with the sampled softmax, off with the full one (which reads every row)."})


@dataclass
class TrainerState:
    epoch: int = 0
    global_step: int = 0
    best_metric: float = -1.0
    best_epoch: int = -1
    evaluations_without_improvement: int = 0
    train_seconds: float = 0.0
    history: list = field(default_factory=list)

    def state_dict(self):
        return asdict(self)

    def load_state_dict(self, state):
        for key, value in state.items():
            setattr(self, key, value)


def _save_best(model, directory):
    tmp = directory + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    write_manifest(tmp)
    swap_into_place(tmp, directory)


def _segment_steps_per_epoch(sampler, sequences, collator, segment_length):
    """Optimizer steps in one epoch: one per segment of every batch (its longest user sets the count)."""
    shift = 1 if collator.objective == "causal" else 0
    longest = [max(min(len(sequences[i][0]) - shift, collator.max_length or 10**12) for i in batch) for batch in sampler]
    return sum(max(1, -(-n // segment_length)) for n in longest)


def _lr_schedule(args, steps_per_epoch):
    total = max(1, steps_per_epoch * args.num_epochs)

    def factor(step):
        if step < args.warmup_steps:
            return (step + 1) / args.warmup_steps
        if args.lr_scheduler_type == "constant":
            return 1.0
        progress = min(1.0, (step - args.warmup_steps) / max(1, total - args.warmup_steps))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def domain_balanced_weights(model, sequences, args):
    """Per training user, the weight that gives each domain of a combined catalog its `args.domain_balance`
    share of an epoch (`lsrec_hf.data.domains.domain_weights`); None for one domain or `domain_balance` 1."""
    catalog = getattr(model, "catalog", None)
    domains = None if catalog is None else catalog.attributes.get("domain")
    if not domains or len(set(domains)) < 2 or args.domain_balance == 1.0:
        return None
    user_domains = [domains[int(sequence[0])] for sequence in sequences]  # an item belongs to one domain
    weights = domain_weights(user_domains, args.domain_balance)
    names, counts = np.unique(user_domains, return_counts=True)
    shares = {name: float(weights[np.asarray(user_domains) == name].sum()) for name in names}
    logger.info("domain-balanced epochs (domain_balance %.2f): %s", args.domain_balance,
                ", ".join(f"{n} {c} users, {100 * shares[n]:.0f} %" for n, c in zip(names, counts)))
    return weights


def train(model, splits, args, accelerator, selection_metric="ndcg@10", k_values=DEFAULT_K_VALUES):
    """Train `model` on `splits.train`, early-stop on `splits.valid`, return the best model's test metrics.

    The best weights (by validation `selection_metric`) are restored at the end. With no validation users (a split
    that holds none out) every epoch runs and the last one's weights are kept.
    """
    config = model.config
    checkpoint_dir = os.path.join(args.output_dir, "checkpoints")
    last_dir, best_dir = os.path.join(checkpoint_dir, "last"), os.path.join(checkpoint_dir, "best")

    contexts = splits.train_context if config.feature_names else None
    if config.feature_names and contexts is None:
        raise DataError(f"training: the model embeds side features {config.feature_names} but the data has none; "
                        "build the sequences with `features=` (see lsrec_hf.processing.context)")
    contexts = contexts or [None] * len(splits.train)
    train_sequences = [(seq, context) for seq, context in zip(splits.train, contexts)
                       if len(seq) >= 2 or config.objective == "cloze"]
    if not train_sequences:
        raise DataError("training: no user has enough events to train on (a causal model needs 2 training events per user; "
                        "leave-one-out holds out the last 2)")
    if config.loss == "sampled":  # the proposal of the sampled softmax: the items' training frequencies
        model.set_item_frequencies(item_counts([s for s, _ in train_sequences], config.num_items))
    # causal inputs are all events but the last: what fills the chunks
    input_lengths = [len(s) - (config.objective == "causal") for s, _ in train_sequences]
    sampler = LengthBucketSampler(input_lengths, args.batch_size, shuffle=True, seed=args.seed,
                                  min_batch_size=accelerator.num_processes,
                                  bucket=config.segment_length if args.group_by == "chunks" else None,
                                  weights=domain_balanced_weights(model, [s for s, _ in train_sequences], args))
    collator = TrainingCollator(config.segment_length, config.objective, config.mask_prob,
                                args.max_history_length, accelerator.num_processes, accelerator.process_index,
                                config.scenario_index)
    loader = DataLoader(train_sequences, batch_sampler=sampler, collate_fn=collator)

    sparse_tables = sparse_item_tables(model, args)  # before `prepare`: DDP reads `sparse` when it wraps the model
    optimizer_class = LazyAdamW if sparse_tables else torch.optim.AdamW
    rowwise = {"rowwise_moments": args.item_moments == "rowwise"} if sparse_tables else {}
    optimizer = optimizer_class(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay,
                                betas=(0.9, 0.98), **rowwise)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_schedule(args, _segment_steps_per_epoch(sampler, train_sequences, collator, config.segment_length)))
    # The scheduler is not prepared: accelerate would step it once per process per optimizer step (it assumes
    # every process reads a whole batch), but the collator splits one batch across the processes, so the
    # schedule must advance once per optimizer step, as with one process. It is stepped only on real steps.
    model, optimizer = accelerator.prepare(model, optimizer)
    state = TrainerState()
    # the newest checkpoint that verifies: `last`, or `last.old` when a crash hit the swap or damaged `last`
    resume_dir = find_resumable(last_dir) if args.resume else None
    if resume_dir is not None:
        state.load_state_dict(load_checkpoint(resume_dir, accelerator, model, optimizer, scheduler))
        accelerator.print(f"resumed from {resume_dir} at epoch {state.epoch}")
    elif args.resume:
        accelerator.print(f"--resume: no complete checkpoint in {checkpoint_dir}, starting from scratch")

    unwrapped = accelerator.unwrap_model(model)
    validating = len(splits.valid) > 0
    if not validating:
        accelerator.print(f"no validation users ({splits.protocol} split): all {args.num_epochs} epochs run, the last "
                          "one's weights are kept")
    while state.epoch < args.num_epochs and state.evaluations_without_improvement < args.patience:
        epoch_start = time.perf_counter()
        sampler.set_epoch(state.epoch)
        model.train()
        total_loss, total_steps = 0.0, 0
        progress = tqdm(loader, desc=f"epoch {state.epoch + 1}", leave=False,
                        disable=not accelerator.is_local_main_process or progress_bars_off())
        for batch in progress:
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            memory = None
            for start in range(0, batch["input_ids"].shape[1], config.segment_length):
                segment = {k: v[:, start:start + config.segment_length] for k, v in batch.items()}
                with accelerator.accumulate(model):
                    if config.loss_excludes_history:  # the items of earlier segments are history too
                        segment["earlier_ids"] = batch["input_ids"][:, :start]
                    outputs = model(**segment, memory=memory)
                    accelerator.backward(outputs.loss)
                    if accelerator.sync_gradients and args.max_grad_norm:
                        if sparse_tables:  # torch's clipping cannot read sparse gradients
                            accelerator.unscale_gradients()
                            clip_grad_norm(model.parameters(), args.max_grad_norm)
                        else:
                            accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                    optimizer.step()
                    if accelerator.sync_gradients:
                        scheduler.step()
                    optimizer.zero_grad()
                memory = outputs.memory
                total_loss += outputs.loss.item()
                total_steps += 1
                state.global_step += 1
            progress.set_postfix(loss=f"{total_loss / max(total_steps, 1):.4f}")
        state.epoch += 1
        state.train_seconds += time.perf_counter() - epoch_start

        if state.epoch % args.eval_every and state.epoch < args.num_epochs:
            continue
        train_loss = total_loss / max(total_steps, 1)
        if validating:
            metrics = evaluate_ranking(unwrapped, splits.valid, accelerator, args.eval_batch_size, k_values,
                                       args.max_history_length, description="validating",
                                       exclude_history=args.exclude_history)
            improved = metrics[selection_metric] > state.best_metric
        else:  # nothing to choose on: the latest weights are the ones kept
            metrics, improved = {}, True
        state.history.append({"epoch": state.epoch, "train_loss": train_loss, "train_seconds": state.train_seconds,
                              **{f"valid_{k}": v for k, v in metrics.items()}})
        if improved:
            state.best_metric, state.best_epoch = metrics.get(selection_metric, state.best_metric), state.epoch
            state.evaluations_without_improvement = 0
        else:
            state.evaluations_without_improvement += 1
        validation = (f"valid {selection_metric} {metrics[selection_metric]:.4f}  best {state.best_metric:.4f} "
                      f"(epoch {state.best_epoch})" if validating else "no validation")
        accelerator.print(f"epoch {state.epoch}: loss {train_loss:.4f}  {validation}  {state.train_seconds:.0f}s")
        if improved and accelerator.is_main_process:
            _save_best(unwrapped, best_dir)
        accelerator.wait_for_everyone()
        save_checkpoint(last_dir, accelerator, model, optimizer, scheduler, state.state_dict())

    for table in sparse_tables:  # a trained model hands out dense gradients again (e.g. to a later fine-tuning)
        table.sparse = False
    # restore the best weights (every process reads the same files)
    accelerator.wait_for_everyone()
    if os.path.isdir(best_dir):
        _restore(unwrapped, best_dir)
    return state


def sparse_item_tables(model, args):
    """The trainable item-id tables, switched to sparse gradients when `args.sparse_item_gradients` (or, unset, the
    sampled softmax) asks for it; `[]` otherwise. A LoRA-wrapped table's frozen base is left alone."""
    wanted = args.sparse_item_gradients
    if wanted is None:
        wanted = model.config.loss == "sampled"
    if not wanted:
        return []
    tables = [module for name, module in model.named_modules() if "item_ids" in name.split(".")
              and isinstance(module, torch.nn.Embedding) and module.weight.requires_grad]
    for table in tables:
        table.sparse = True
    return tables


def _restore(model, directory):
    verify_manifest(directory)
    weights = os.path.join(directory, "model.safetensors")
    if os.path.exists(weights):
        model.load_state_dict(load_file(weights))
    else:  # a PEFT model saves its adapter only
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, load_file(os.path.join(directory, "adapter_model.safetensors")))


def format_metrics_table(metrics, k_values=DEFAULT_K_VALUES, title="test"):
    """A markdown table of HR/NDCG/MRR at each K."""
    lines = [f"| {title} | " + " | ".join(f"@{k}" for k in k_values) + " |",
             "|---|" + "---|" * len(k_values)]
    for name in ("hr", "ndcg", "mrr"):
        lines.append(f"| {name.upper()} | " + " | ".join(f"{metrics[f'{name}@{k}']:.4f}" for k in k_values) + " |")
    return "\n".join(lines)
