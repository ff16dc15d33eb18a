"""Training speed beside RePlay's and RecBole's SASRec at equal size, and top-10 inference latency on the data
set's catalog and on a 100k one.

    python bench/speed.py --recbole_python .venv-recbole/bin/python --threads 2
    python bench/speed.py --dataset ../shared/data/ml-1m --skip_recbole --threads 1 --lsrec_epochs 2 --replay_epochs 2
    python bench/speed.py --skip_recbole --skip_replay --device cuda         # our figures only, on a GPU

Training (same data, same size: lsrec_hf's width for the data set, 2 layers, 2 heads, 50 events per sequence):
  * RePlay 0.22 SASRec through `bench/replay_peer.py` (its data module, model, loss and Lightning trainer),
    `--replay_epochs` epochs in RePlay's environment, given lsrec_hf's hidden size (its feed-forward block is as
    wide as its hidden size, RePlay's default); it trains on the last 50 events of each user, every position a
    target;
  * RecBole 1.2.1 SASRec through `bench/recbole_peer.py` (its own data pipeline and trainer), `--recbole_epochs`
    epochs in RecBole's environment; RecBole trains on every prefix of every user (97k sequences of up to 50
    events, one target each); its script reads only RecBole's own copy of MovieLens-100K, so it runs only there;
  * lsrec_hf through `recipes/pretrain.py --num_epochs N` (its own trainer); it reads each user once per epoch,
    in segments of 50 events with every position a target, plus an XL memory of 50 states.
Epoch time = one pass over the training data, validation excluded, both sides under the same thread count.
Throughput is given both as sequences/s (a 50-event window) and as training targets/s.

Inference: median latency of top-10 (score every item, exclude the history, top-k) for 1 user and for a batch of
256 users with real test histories, on the data set's real catalog and on a synthetic 100,000-item one (random
content embeddings; cost does not depend on the weights).
Prints markdown tables, writes bench/results/speed.json (speed_<data set>.json for another data set).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from common import write_result
import lsrec_hf
from lsrec_hf.processing.collator import EvaluationCollator
from lsrec_hf.data import load_data
from lsrec_hf.evaluation import mask_history
from lsrec_hf.processing.sequences import build_user_sequences, leave_one_out

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def recbole_epoch(python, epochs, threads, seed):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "recbole.json")
        command = [python, os.path.join(ROOT, "bench", "recbole_peer.py"), "--model", "SASRec", "--seed", str(seed),
                   "--epochs", str(epochs), "--out", out]
        if threads:
            command += ["--threads", str(threads)]
        print(f"[speed] RecBole: {' '.join(command)}", flush=True)
        subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        with open(out, encoding="utf-8") as f:
            run = json.load(f)
    epoch_seconds = [e["train_time_s"] for e in run["epochs"]]
    samples = run["data"]["n_train_samples"]
    return {"epoch_seconds": epoch_seconds, "mean_epoch_seconds": statistics.fmean(epoch_seconds),
            "sequences_per_epoch": samples, "targets_per_epoch": samples, "n_params": run["n_params"],
            "config": {k: run["config"].get(k) for k in ("hidden_size", "n_layers", "n_heads", "inner_size",
                                                         "MAX_ITEM_LIST_LENGTH", "train_batch_size")}}


def replay_epoch(python, epochs, threads, seed, dataset, hidden, max_length, splits):
    with tempfile.TemporaryDirectory() as tmp:
        sequences, out = os.path.join(tmp, "sequences.parquet"), os.path.join(tmp, "replay.json")
        subprocess.run([sys.executable, os.path.join(ROOT, "bench", "export_sequences.py"), "--dataset", dataset,
                        "--out", sequences], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        # patience above the epoch count: every epoch asked for runs
        command = [python, os.path.join(ROOT, "bench", "replay_peer.py"), "--sequences", sequences,
                   "--seed", str(seed), "--threads", str(threads or 1), "--hidden", str(hidden),
                   "--max_length", str(max_length), "--max_epochs", str(epochs), "--patience", str(epochs + 1),
                   "--out", out]
        print(f"[speed] RePlay: {' '.join(command)}", flush=True)
        subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(out, encoding="utf-8") as f:
            run = json.load(f)
    epoch_seconds = [row["epoch_train_seconds"] for row in run["curve"]]
    # what one epoch reads: the last max_length + 1 events of each training sequence, every position a target
    lengths = [min(len(s) - 1, max_length) for s in splits.train if len(s) >= 2]
    return {"epoch_seconds": epoch_seconds, "mean_epoch_seconds": statistics.fmean(epoch_seconds),
            "sequences_per_epoch": len(lengths), "targets_per_epoch": int(sum(lengths)), "n_params": run["n_params"],
            "config": {"hidden": hidden, "layers": run["hyperparameters"]["layers"],
                       "heads": run["hyperparameters"]["heads"], "max_length": max_length,
                       "batch_size": run["hyperparameters"]["batch_size"]}}


def lsrec_epoch(epochs, threads, seed, splits, dataset):
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, os.path.join(ROOT, "recipes", "pretrain.py"), "--dataset", dataset,
                   "--output_dir", tmp, "--num_epochs", str(epochs), "--seed", str(seed),
                   # only the training passes are timed: no prior is chosen after them
                   "--trend_prior", "false", "--cooccurrence_prior", "false"]
        env = {**os.environ, "TQDM_DISABLE": "1", **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
        print(f"[speed] lsrec_hf: {' '.join(command)}", flush=True)
        subprocess.run(command, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(os.path.join(tmp, "eval_results.json"), encoding="utf-8") as f:
            run = json.load(f)
        model = lsrec_hf.LSRecForSequentialRecommendation.from_pretrained(tmp)
    cumulative = [0.0] + [h["train_seconds"] for h in run["history"]]
    epoch_seconds = [b - a for a, b in zip(cumulative, cumulative[1:])]
    # what one epoch reads: causal inputs are events[:-1], in windows of segment_length
    lengths = [len(s) - 1 for s in splits.train if len(s) >= 2]
    segment = model.config.segment_length
    return {"epoch_seconds": epoch_seconds, "mean_epoch_seconds": statistics.fmean(epoch_seconds),
            "sequences_per_epoch": int(sum(-(-n // segment) for n in lengths)), "targets_per_epoch": int(sum(lengths)),
            "n_params": int(sum(p.numel() for p in model.parameters())),
            "config": {"hidden": model.config.hidden_size, "layers": model.config.num_hidden_layers,
                       "heads": model.config.num_attention_heads, "segment_length": segment}}


def latency(model, histories, device, repeats):
    collate = EvaluationCollator(model.config.segment_length)
    batch = collate([(h, 0) for h in histories])
    input_ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)

    def top10():
        scores = model.score_next(input_ids, mask).scores
        mask_history(scores.float(), input_ids).topk(10, dim=1)
        if device == "cuda":
            torch.cuda.synchronize()

    top10()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        top10()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def inference_rows(splits, catalog_size, hidden, device, repeats, seed):
    rng = np.random.default_rng(seed)
    users = rng.choice(len(splits.test), size=256, replace=False)
    rows = []
    for num_items in (catalog_size, 100_000):
        torch.manual_seed(seed)
        config = lsrec_hf.LSRecConfig(num_items=num_items, content_dim=384, hidden_size=hidden,
                                      intermediate_size=4 * hidden)
        model = lsrec_hf.LSRecForSequentialRecommendation(config).to(device).eval()
        model.model.embeddings.set_content_embeddings(torch.randn(num_items, 384))
        # real histories; on the synthetic catalog the same lengths with random items
        histories = [splits.test.histories[u] for u in users]
        if num_items != catalog_size:
            histories = [rng.integers(0, num_items, len(h)) for h in histories]
        for batch in (1, 256):
            seconds = latency(model, histories[:batch], device, repeats)
            rows.append({"num_items": num_items, "batch_users": batch, "median_ms": seconds * 1000,
                         "users_per_s": batch / seconds,
                         "mean_history": float(np.mean([len(h) for h in histories[:batch]]))})
            print(f"[speed] top-10, {num_items} items, {batch} users: {seconds * 1000:.1f} ms", flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k",
                        help="'ml-100k' (the offline copy) or a folder/file that lsrec_hf.data.load_data reads")
    parser.add_argument("--replay_python", default=".venv-replay/bin/python")
    parser.add_argument("--skip_replay", action="store_true")
    parser.add_argument("--replay_epochs", type=int, default=3)
    parser.add_argument("--replay_max_length", type=int, default=50, help="events RePlay's SASRec reads")
    parser.add_argument("--recbole_python", default=".venv-recbole/bin/python")
    parser.add_argument("--skip_recbole", action="store_true")
    parser.add_argument("--recbole_epochs", type=int, default=1)
    parser.add_argument("--lsrec_epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads on both sides")
    parser.add_argument("--device", default="cpu", help="inference device (training goes where accelerate puts it)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", default=None, help="default bench/results/speed.json, or speed_<data set>.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset_name = os.path.basename(os.path.normpath(args.dataset))
    out = args.out or ("bench/results/speed.json" if dataset_name == "ml-100k"
                       else f"bench/results/speed_{dataset_name}.json")
    if dataset_name != "ml-100k" and not args.skip_recbole:
        parser.error("RecBole's script reads only its own MovieLens-100K: add --skip_recbole for another data set")
    for flag, python, skip in (("--replay_python", args.replay_python, args.skip_replay),
                               ("--recbole_python", args.recbole_python, args.skip_recbole)):
        if not skip and not os.path.exists(python):
            parser.error(f"{flag} {python}: no such interpreter (see bench/README.md for the peer's venv, "
                         f"or skip the peer)")

    data = load_data(args.dataset)
    splits = leave_one_out(build_user_sequences(data.interactions, data.catalog))

    ours = lsrec_epoch(args.lsrec_epochs, args.threads, args.seed, splits, args.dataset)
    training = {"lsrec_hf": ours}
    if not args.skip_replay:
        training["RePlay SASRec"] = replay_epoch(args.replay_python, args.replay_epochs, args.threads, args.seed,
                                                 args.dataset, ours["config"]["hidden"], args.replay_max_length,
                                                 splits)
    if not args.skip_recbole:
        training["RecBole SASRec"] = recbole_epoch(args.recbole_python, args.recbole_epochs, args.threads, args.seed)
    inference = inference_rows(splits, len(data.catalog), ours["config"]["hidden"], args.device, args.repeats, args.seed)

    print("\n| trainer | params | epoch s | sequences/epoch | sequences/s | targets/epoch | targets/s |\n"
          "|---|---|---|---|---|---|---|")
    for name, t in training.items():
        t["sequences_per_s"] = t["sequences_per_epoch"] / t["mean_epoch_seconds"]
        t["targets_per_s"] = t["targets_per_epoch"] / t["mean_epoch_seconds"]
        print(f"| {name} | {t['n_params']:,} | {t['mean_epoch_seconds']:.1f} | {t['sequences_per_epoch']:,} | "
              f"{t['sequences_per_s']:,.0f} | {t['targets_per_epoch']:,} | {t['targets_per_s']:,.0f} |")
    ratios = {}
    for peer in ("RePlay SASRec", "RecBole SASRec"):
        if peer in training:
            ratios[peer] = ours["mean_epoch_seconds"] / training[peer]["mean_epoch_seconds"]
            print(f"\nepoch time, lsrec_hf / {peer}: {ratios[peer]:.3f}")
    print("\n| catalog | users per call | median ms | users/s |\n|---|---|---|---|")
    for row in inference:
        print(f"| {row['num_items']:,} | {row['batch_users']} | {row['median_ms']:.1f} | {row['users_per_s']:,.0f} |")
    write_result(out, {"dataset": dataset_name, "seed": args.seed, "device": args.device, "training": training,
                       "inference": inference, "epoch_time_ratio_lsrec_vs_recbole": ratios.get("RecBole SASRec"),
                       "epoch_time_ratio_lsrec_vs_replay": ratios.get("RePlay SASRec")})


if __name__ == "__main__":
    main()
