"""Transfer on MovieLens-100K: a new period and a new genre domain, LoRA vs full fine-tuning vs from scratch.

    python bench/transfer.py --seeds 42 43 44 --threads 1
    python bench/transfer.py --dataset path/to/ml-100k-slice --seeds 1 --num_epochs 2 --stories temporal

Temporal story: pretrain on the events before the 40 % time quantile, validating on each user's first event
in [40 %, 50 %); then train on the next period only (events between the 50 % and 80 % quantiles) and
test on each user's first event after the 90 % quantile, validating on the first in [80 %, 90 %) (histories
always hold every earlier event).
Genre story: items are split into shelves by genre (`bench/context.py`); pretrain on users' events on action and
drama items, then train and test (leave-one-out) on their events on comedy/family items, which the pretrained
model has never seen: they join its catalog through their text (`extend_catalog`).

On the target data, three ways from the same starting point: a model trained from scratch, LoRA on the
pretrained model (`recipes/finetune.py`'s defaults: attention, feed-forward and text projections and item id embeddings, r=2,
plus the per-item output biases, learning rate 1e-2), and full fine-tuning of the pretrained model.
Each reports test metrics (full ranking, history excluded), trainable parameters, the saved size of what
fine-tuning produces (adapter or whole model), and wall time. The pretrained base is trained once per story
(`--pretrain_seed`); fine-tuning and scratch runs use each of `--seeds`.
Prints a markdown table, writes bench/results/transfer.json.
"""

import argparse
import os
import shutil
import statistics
import time

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from common import item_shelves, write_result
import lsrec_hf
from lsrec_hf.data import load_data
from lsrec_hf.evaluation import evaluate_ranking
from lsrec_hf.training.finetuning import DEFAULT_LORA_TARGETS, DEFAULT_MODULES_TO_SAVE, LORA_LEARNING_RATE, add_lora_adapter
from lsrec_hf.training.recipe_utils import comma_separated_names
from lsrec_hf.processing.sequences import Splits, UserSequences, build_user_sequences, leave_one_out, temporal_split
from lsrec_hf.text import DEFAULT_TEXT_ENCODER, encode_texts
from lsrec_hf.training import TrainingArguments, train


WAYS = ["from scratch", "LoRA", "full fine-tuning"]


def restricted(sequences, keep):
    """The sequences with only the events `keep(items, times)` marks (users left without events are dropped)."""
    parts = [(u, i[m], t[m]) for u, i, t in zip(sequences.user_ids, sequences.items, sequences.timestamps)
             if (m := keep(i, t)).any()]
    users, items, times = zip(*parts)
    return UserSequences(list(users), list(items), list(times))


def temporal_story(sequences):
    times = np.concatenate(sequences.timestamps)
    q = {p: float(np.quantile(times, p)) for p in (0.4, 0.5, 0.8, 0.9)}
    source = temporal_split(sequences, q[0.4], q[0.5])  # trains before 40 %, validates in [40 %, 50 %)
    target = temporal_split(sequences, q[0.8], q[0.9])
    next_period = [i[(t >= q[0.5]) & (t < q[0.8])] for i, t in zip(sequences.items, sequences.timestamps)]
    target = Splits(train=[s for s in next_period if len(s)], valid=target.valid, test=target.test,
                    protocol="temporal (next period)")
    return source, target


def genre_story(sequences, target_items):
    source = leave_one_out(restricted(sequences, lambda i, t: ~target_items[i]))
    target = leave_one_out(restricted(sequences, lambda i, t: target_items[i]))
    return source, target


def sub_catalog(catalog, n):
    return lsrec_hf.ItemCatalog(catalog.item_ids[:n], catalog.titles[:n], catalog.texts[:n],
                                {k: v[:n] for k, v in catalog.attributes.items()})


def new_model(catalog, content):
    return lsrec_hf.LSRecForSequentialRecommendation.from_catalog(catalog, content[:len(catalog)],
                                                                   text_encoder=DEFAULT_TEXT_ENCODER)


def fit(model, splits, output_dir, seed, num_epochs, learning_rate=TrainingArguments.learning_rate):
    set_seed(seed)
    shutil.rmtree(output_dir, ignore_errors=True)
    start = time.perf_counter()
    train(model, splits, TrainingArguments(output_dir=output_dir, num_epochs=num_epochs, seed=seed,
                                           learning_rate=learning_rate), Accelerator(cpu=True))
    return time.perf_counter() - start


def saved_bytes(model, directory):
    model.save_pretrained(directory)
    return sum(os.path.getsize(os.path.join(directory, f)) for f in os.listdir(directory) if f.endswith(".safetensors"))


def run_story(name, source, target, catalog, num_source_items, content, args):
    base_dir = os.path.join(args.work_dir, name, "base")
    if not os.path.exists(os.path.join(base_dir, "model.safetensors")):
        base = new_model(sub_catalog(catalog, num_source_items), content)
        seconds = fit(base, source, os.path.join(args.work_dir, name, "base_run"), args.pretrain_seed, args.num_epochs)
        base.save_pretrained(base_dir)
        print(f"[transfer] {name}: pretrained in {seconds:.0f}s", flush=True)
    runs = []
    lora = {"r": args.lora_r, "alpha": args.lora_alpha, "item_rank": args.lora_item_rank,
            "target_modules": comma_separated_names(args.lora_target_modules),
            "modules_to_save": comma_separated_names(args.lora_modules_to_save)}
    for seed in args.seeds:
        for way in args.ways:
            if way == "from scratch":
                set_seed(seed)
                model = new_model(catalog, content)
            else:
                model = lsrec_hf.LSRecForSequentialRecommendation.from_pretrained(base_dir)
                model.extend_catalog(catalog, content[num_source_items:] if num_source_items < len(catalog) else None)
                if way == "LoRA":
                    model = add_lora_adapter(model, **lora)
            trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
            output_dir = os.path.join(args.work_dir, name, way.replace(" ", "_"), f"seed{seed}")
            seconds = fit(model, target, output_dir, seed, args.num_epochs,
                          args.lora_learning_rate if way == "LoRA" else TrainingArguments.learning_rate)
            test = evaluate_ranking(model, target.test)
            size = saved_bytes(model, os.path.join(output_dir, "final"))
            runs.append({"story": name, "way": way, "seed": seed, **(lora if way == "LoRA" else {}), "test": test,
                         "trainable_parameters": trainable,
                         "saved_bytes": size, "train_seconds": seconds})
            print(f"[transfer] {name} {way} seed {seed}: NDCG@10 {test['ndcg@10']:.4f}, {trainable:,} trainable, "
                  f"{size / 2**20:.2f} MiB, {seconds:.0f}s", flush=True)
    return runs


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--stories", nargs="+", default=["temporal", "genre"], choices=["temporal", "genre"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--ways", nargs="+", default=WAYS, choices=WAYS)
    parser.add_argument("--lora_r", type=int, default=2)
    parser.add_argument("--lora_alpha", type=int, default=4)
    parser.add_argument("--lora_target_modules", default=",".join(DEFAULT_LORA_TARGETS))
    parser.add_argument("--lora_modules_to_save", default=",".join(DEFAULT_MODULES_TO_SAVE))
    parser.add_argument("--lora_item_rank", type=int, default=None)
    parser.add_argument("--lora_learning_rate", type=float, default=LORA_LEARNING_RATE)
    parser.add_argument("--pretrain_seed", type=int, default=42)
    parser.add_argument("--num_epochs", type=int, default=TrainingArguments.num_epochs)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--work_dir", default="outputs/bench_transfer")
    parser.add_argument("--out", default="bench/results/transfer.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    data = load_data(args.dataset)
    runs = []
    if "temporal" in args.stories:
        catalog = data.catalog
        content = encode_texts(catalog.texts, DEFAULT_TEXT_ENCODER, show_progress_bar=False)
        source, target = temporal_story(build_user_sequences(data.interactions, catalog))
        runs += run_story("temporal", source, target, catalog, len(catalog), content, args)
    if "genre" in args.stories:
        shelves = item_shelves(data.catalog)
        is_target = shelves == "comedy-family"
        order = [*np.flatnonzero(~is_target), *np.flatnonzero(is_target)]  # source items first: the base catalog
        pick = lambda values: [values[i] for i in order]  # noqa: E731
        catalog = lsrec_hf.ItemCatalog(pick(data.catalog.item_ids), pick(data.catalog.titles), pick(data.catalog.texts),
                                       {k: pick(v) for k, v in data.catalog.attributes.items()})
        content = encode_texts(catalog.texts, DEFAULT_TEXT_ENCODER, show_progress_bar=False)
        num_source = int((~is_target).sum())
        target_items = np.arange(len(catalog)) >= num_source
        source, target = genre_story(build_user_sequences(data.interactions, catalog), target_items)
        runs += run_story("genre", source, target, catalog, num_source, content, args)

    print("\n| story | way | n | HR@10 | NDCG@10 | MRR@10 | trainable params | saved MiB | train s |\n"
          "|---|---|---|---|---|---|---|---|---|")
    summary = {}
    for story in args.stories:
        for way in args.ways:
            rows = [r for r in runs if (r["story"], r["way"]) == (story, way)]
            entry = {m: (statistics.fmean(v := [r["test"][m] for r in rows]), statistics.stdev(v) if len(v) > 1 else 0.0)
                     for m in ("hr@10", "ndcg@10", "mrr@10", "hr@20", "ndcg@20")}
            entry.update(n=len(rows), trainable_parameters=rows[0]["trainable_parameters"],
                         saved_bytes=rows[0]["saved_bytes"], train_seconds=statistics.fmean(r["train_seconds"] for r in rows))
            summary[f"{story} / {way}"] = entry
            print(f"| {story} | {way} | {entry['n']} | " + " | ".join(
                f"{entry[m][0]:.4f} ± {entry[m][1]:.4f}" for m in ("hr@10", "ndcg@10", "mrr@10"))
                + f" | {entry['trainable_parameters']:,} | {entry['saved_bytes'] / 2**20:.2f} | {entry['train_seconds']:.0f} |")
    write_result(args.out, {"dataset": args.dataset, "seeds": args.seeds, "pretrain_seed": args.pretrain_seed,
                            "lora": {"r": args.lora_r, "alpha": args.lora_alpha, "target_modules": args.lora_target_modules,
                                     "modules_to_save": args.lora_modules_to_save, "item_rank": args.lora_item_rank,
                                     "learning_rate": args.lora_learning_rate},
                            "num_epochs": args.num_epochs, "summary": summary, "runs": runs})


if __name__ == "__main__":
    main()
