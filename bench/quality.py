"""Quality on one data set: lsrec_hf ablations, three simple baselines and the peers, over seeds.

    python bench/quality.py --seeds 42 43 44 --threads 1                                   # MovieLens-100K
    python bench/quality.py --dataset ../shared/data/amazon-beauty --seeds 42 --configs default short
    python bench/quality.py --dataset ../shared/data/ml-1m --report_only       # tables from what has run

Protocol, for every row: leave-one-out by time, full ranking over the whole catalog, the items of the user's
input history excluded (`--exclude_history`, default true; SASRec+, gSASRec and RePlay use it). A second
table ranks with the history kept, which is what RecBole 1.2.1 does for sequential models: RecBole's own rows
appear only there, beside ours evaluated the same way. A ratio is only ever taken within one protocol.

Every lsrec_hf row is a real run of `recipes/pretrain.py` (the main job, only the named flags changed). A
finished run is reused (its output directory holds eval_results.json; or, when the checkpoint is gone, its row in
the results JSON), so a killed benchmark continues where it stopped. Most-popular, recent-popular (the
items with the most training events in a window before each test event, the window chosen on validation) and
item-kNN are deterministic: one run, std 0. Peer rows are read from `bench/results/`: `replay_sasrec_<dataset>_seed*.json`
(`bench/replay_peer.py`, RePlay's own environment) and `recbole_*_<dataset>_seed*.json` (`bench/recbole_peer.py`);
a peer run stopped by a time budget reports the test metrics of its best epoch so far and is marked so.

Prints markdown tables, writes bench/results/quality_<dataset>.json, _ablation.png and _curves.png.
"""

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import time

import torch

from common import write_result
import lsrec_hf
from lsrec_hf.evaluation.baselines import DAY, ItemKNN, MostPopular, RecentPopular, rank_baseline
from lsrec_hf.data import load_data
from lsrec_hf.evaluation import rank_examples
from lsrec_hf.evaluation.metrics import compute_ranking_metrics
from lsrec_hf.evaluation.metrics.beyond_accuracy import beyond_accuracy_metrics
from lsrec_hf.processing.sequences import build_user_sequences, item_counts, leave_one_out
from lsrec_hf.text import DEFAULT_TEXT_ENCODER, encode_texts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> flags given to recipes/pretrain.py on top of its defaults
# SASRec's layers and tokens (dropout 0.5, FFN 64, absolute positions, no token norm or output bias) on the default's
# chunk-count batches with history items out of the training softmax; the base of the sasrec-tokens-* variants
SASREC_TOKENS_CHUNKS_EXCL = ["--block_layout", "sasrec", "--absolute_positions", "true", "--embedding_layer_norm", "false",
                             "--use_output_bias", "false", "--intermediate_size", "64", "--hidden_dropout_prob", "0.5",
                             "--attention_probs_dropout_prob", "0.5", "--group_by", "chunks", "--loss_excludes_history",
                             "true", "--standardize_content", "false"]
CONFIGS = {
    # today's: long+short memory, text+id tokens (standardized text), causal objective, chunk-count batches, history
    # out of the loss. Rows of earlier defaults are relabelled to the pinned names below when the default changes.
    "default": [],
    # Names of earlier defaults pin every flag that changed since, so that they keep meaning the same runs:
    # the default until 2026-12-03 (its rows were labelled "default" until then)
    "previous-default": ["--group_by", "length", "--loss_excludes_history", "false", "--standardize_content", "false"],
    "short": ["--memory", "short"],
    "long": ["--memory", "long"],
    "id-only": ["--text_encoder", "none"],
    "cloze": ["--objective", "cloze"],
    "text-only": ["--use_item_ids", "false"],
    "id-dropout": ["--item_id_dropout", "0.5"],
    "dropout-0.5": ["--hidden_dropout_prob", "0.5", "--attention_probs_dropout_prob", "0.5"],
    "standardized-text": ["--standardize_content", "true"],
    "ffn-64": ["--intermediate_size", "64"],
    "no-bias": ["--use_output_bias", "false"],
    "abs-pos": ["--absolute_positions", "true"],
    "no-embedding-norm": ["--embedding_layer_norm", "false"],
    "loss-excludes-history": ["--loss_excludes_history", "true"],
    "hidden-128": ["--hidden_size", "128"],
    "hidden-128-ffn-512": ["--hidden_size", "128", "--intermediate_size", "512"],
    "mlp-adapter": ["--content_adapter", "mlp"],
    "group-chunks": ["--group_by", "chunks"],
    "group-chunks-excl": ["--group_by", "chunks", "--loss_excludes_history", "true", "--standardize_content", "false"],
    # id-only, with SASRec's blocks (RePlay's): absolute positions, no token norm, no output bias, FFN = hidden
    "id-only-sasrec-blocks": ["--text_encoder", "none", "--absolute_positions", "true", "--embedding_layer_norm", "false",
                              "--use_output_bias", "false", "--intermediate_size", "64",
                              "--hidden_dropout_prob", "0.5", "--attention_probs_dropout_prob", "0.5"],
    "id-only-replay-schedule": ["--text_encoder", "none", "--batch_size", "128", "--learning_rate", "1e-3",
                                "--lr_scheduler_type", "constant", "--hidden_dropout_prob", "0.5",
                                "--attention_probs_dropout_prob", "0.5", "--num_epochs", "200", "--patience", "10"],
    "id-only-sasrec-layout": ["--text_encoder", "none", "--block_layout", "sasrec", "--absolute_positions", "true",
                              "--embedding_layer_norm", "false", "--use_output_bias", "false", "--intermediate_size", "64",
                              "--hidden_dropout_prob", "0.5", "--attention_probs_dropout_prob", "0.5"],
    "sasrec-layout": ["--block_layout", "sasrec"],
    "no-early-stop": ["--patience", "40"],  # the whole 40-epoch cosine schedule, best validation epoch kept
    "group-chunks-excl-full": ["--group_by", "chunks", "--loss_excludes_history", "true", "--patience", "40"],
    "sasrec-tokens-chunks-excl": SASREC_TOKENS_CHUNKS_EXCL,
    "sasrec-tokens-chunks-excl-standardized": [*SASREC_TOKENS_CHUNKS_EXCL, "--standardize_content", "true"],  # the last wins
    "sasrec-tokens-chunks-excl-standardized-80": [*SASREC_TOKENS_CHUNKS_EXCL, "--standardize_content", "true", "--num_epochs", "80"],
    "sasrec-tokens-chunks-excl-id-dropout": [*SASREC_TOKENS_CHUNKS_EXCL, "--item_id_dropout", "0.5"],
    "sasrec-tokens-chunks-excl-128": [*SASREC_TOKENS_CHUNKS_EXCL, "--hidden_size", "128", "--intermediate_size", "128"],
    # sasrec-tokens-chunks-excl on RePlay's schedule: 128 users a batch, constant lr 1e-3, up to 200 epochs, patience 10
    "sasrec-tokens-chunks-excl-replay-schedule": [*SASREC_TOKENS_CHUNKS_EXCL, "--batch_size", "128", "--learning_rate", "1e-3",
                                                  "--lr_scheduler_type", "constant", "--num_epochs", "200", "--patience", "10"],
    "sasrec-tokens": ["--block_layout", "sasrec", "--absolute_positions", "true", "--embedding_layer_norm", "false",
                      "--use_output_bias", "false", "--intermediate_size", "64",
                      "--hidden_dropout_prob", "0.5", "--attention_probs_dropout_prob", "0.5"],
    "standardized-text-excl": ["--standardize_content", "true", "--loss_excludes_history", "true"],
    "group-chunks-excl-sasrec": ["--group_by", "chunks", "--loss_excludes_history", "true", "--block_layout", "sasrec"],
    # the default with the sampled softmax (1,024 negatives a step from the items' frequencies, log-Q corrected),
    # history negatives kept (the sampled default until 2026-12-04) or dropped (the sampled default since)
    "sampled-softmax": ["--loss", "sampled", "--loss_excludes_history", "false"],
    "sampled-softmax-excl": ["--loss", "sampled", "--loss_excludes_history", "true"],
    # the same with one second moment per id-table row instead of AdamW's two per weight (memory flat in the catalog)
    "sampled-softmax-rowwise": ["--loss", "sampled", "--loss_excludes_history", "true", "--item_moments", "rowwise"],
    "group-chunks-excl-standardized": ["--group_by", "chunks", "--loss_excludes_history", "true",
                                       "--standardize_content", "true"],
    # everything of RePlay's SASRec the recipe can set: its layers, tokens, schedule, mixed-length batches, no memory,
    # its last 50 events, every consumed item a negative of the softmax, no gradient clipping
    "replay-emulation": ["--text_encoder", "none", "--memory", "short", "--block_layout", "sasrec",
                         "--loss_excludes_history", "false", "--max_history_length", "50", "--max_grad_norm", "0",
                         "--absolute_positions", "true", "--embedding_layer_norm", "false", "--use_output_bias", "false",
                         "--intermediate_size", "64", "--hidden_dropout_prob", "0.5", "--attention_probs_dropout_prob", "0.5",
                         "--group_by", "chunks", "--batch_size", "128", "--learning_rate", "1e-3",
                         "--lr_scheduler_type", "constant", "--warmup_steps", "0", "--num_epochs", "200", "--patience", "10"],
    # RePlay's SASRec schedule: 128 users a batch, constant lr 1e-3, dropout 0.5, up to 200 epochs, patience 10
    "replay-schedule": ["--batch_size", "128", "--learning_rate", "1e-3", "--lr_scheduler_type", "constant",
                        "--hidden_dropout_prob", "0.5", "--attention_probs_dropout_prob", "0.5",
                        "--num_epochs", "200", "--patience", "10"],
}
DESCRIPTIONS = {
    "default": "lsrec_hf long+short, text+id, causal (default)",
    "previous-default": "lsrec_hf default until 2026-12-03 (length batches, history items in the training softmax, raw text embeddings)",
    "short": "lsrec_hf short only, text+id, causal",
    "long": "lsrec_hf long only, text+id, causal",
    "id-only": "lsrec_hf long+short, id-only, causal",
    "cloze": "lsrec_hf long+short, text+id, cloze",
    "text-only": "lsrec_hf long+short, text-only items, causal",
    "id-dropout": "lsrec_hf long+short, text+id with item_id_dropout 0.5, causal",
    "dropout-0.5": "lsrec_hf default with dropout 0.5",
    "standardized-text": "lsrec_hf default with standardized text embeddings",
    "ffn-64": "lsrec_hf default with a 64-wide feed-forward block",
    "no-bias": "lsrec_hf default without the per-item output bias",
    "abs-pos": "lsrec_hf default with absolute positions (from the segment's end) as well",
    "no-embedding-norm": "lsrec_hf default without the layer norm on item tokens",
    "loss-excludes-history": "lsrec_hf default, history items left out of the training softmax",
    "hidden-128": "lsrec_hf default with 128-wide tokens and layers",
    "hidden-128-ffn-512": "lsrec_hf default with 128-wide tokens and layers and a 512-wide feed-forward block",
    "mlp-adapter": "lsrec_hf default with a feed-forward block beside the text projection (content_adapter mlp)",
    "group-chunks": "lsrec_hf default, batches drawn at random within a number of chunks (not one exact length)",
    "group-chunks-excl": "lsrec_hf previous default, chunk-count batches and history items left out of the training softmax (the default of 2026-12-03 before standardized text)",
    "id-only-sasrec-blocks": "lsrec_hf id-only with SASRec's blocks (absolute positions, no token norm or bias, FFN 64, dropout 0.5)",
    "id-only-replay-schedule": "lsrec_hf id-only on RePlay's schedule (batch 128, lr 1e-3 constant, dropout 0.5)",
    "id-only-sasrec-layout": "lsrec_hf id-only with SASRec's layers and tokens (block_layout sasrec, absolute positions, no token norm or bias, FFN 64, dropout 0.5)",
    "sasrec-layout": "lsrec_hf default with SASRec's layers (block_layout sasrec)",
    "group-chunks-excl-sasrec": "lsrec_hf default, chunk-count batches, history items out of the softmax, SASRec's layers",
    "group-chunks-excl-standardized": "lsrec_hf default, chunk-count batches, history items out of the softmax, standardized text",
    "sampled-softmax": "lsrec_hf default with the sampled softmax (1,024 frequency negatives, log-Q), history negatives kept",
    "sampled-softmax-excl": "lsrec_hf default with the sampled softmax, negatives in the user's history dropped",
    "sampled-softmax-rowwise": "sampled-softmax-excl with row-wise optimizer state for the id table (item_moments rowwise)",
    "no-early-stop": "lsrec_hf default trained the whole schedule (patience 40)",
    "group-chunks-excl-full": "lsrec_hf default, chunk-count batches, history items out of the softmax, whole schedule",
    "sasrec-tokens-chunks-excl": "sasrec-tokens with chunk-count batches and history items out of the softmax",
    "sasrec-tokens-chunks-excl-standardized": "sasrec-tokens-chunks-excl with standardized text embeddings",
    "sasrec-tokens-chunks-excl-standardized-80": "sasrec-tokens-chunks-excl-standardized with an 80-epoch cosine schedule",
    "sasrec-tokens-chunks-excl-id-dropout": "sasrec-tokens-chunks-excl with item_id_dropout 0.5 (the text carries dropped ids)",
    "sasrec-tokens-chunks-excl-128": "sasrec-tokens-chunks-excl with 128-wide tokens, layers and feed-forward",
    "sasrec-tokens-chunks-excl-replay-schedule": "sasrec-tokens-chunks-excl on RePlay's schedule (batch 128, lr 1e-3 constant, up to 200 epochs, patience 10)",
    "sasrec-tokens": "lsrec_hf text+id with SASRec's layers and tokens (as id-only-sasrec-layout, with text)",
    "replay-emulation": "lsrec_hf set up as RePlay's SASRec (id-only, short, SASRec layers, RePlay's schedule and batches)",
    "standardized-text-excl": "lsrec_hf default, standardized text, history items left out of the training softmax",
    "replay-schedule": "lsrec_hf default trained on RePlay's schedule (batch 128, lr 1e-3 constant, dropout 0.5)",
    "RePlay SASRec": "RePlay 0.22 SASRec, cross-entropy",
}
METRICS = ["hr@10", "ndcg@10", "mrr@10", "hr@20", "ndcg@20", "mrr@20"]
BEYOND = ["coverage@10", "diversity@10", "novelty@10"]


def run_config(name, seed, work_dir, threads, dataset):
    """Train one config with one seed through the pretraining recipe (skipped when already finished)."""
    output_dir = os.path.join(work_dir, name, f"seed{seed}")
    results_path = os.path.join(output_dir, "eval_results.json")
    if not os.path.exists(results_path):
        os.makedirs(output_dir, exist_ok=True)
        command = [sys.executable, os.path.join(ROOT, "recipes", "pretrain.py"), "--dataset", dataset,
                   "--output_dir", output_dir, "--seed", str(seed), *CONFIGS[name]]
        env = {**os.environ, "TQDM_DISABLE": "1"}
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        print(f"[quality] {name} seed {seed}: {' '.join(command)}", flush=True)
        with open(os.path.join(output_dir, "train.log"), "w") as log:
            subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, check=True, cwd=ROOT)
    with open(results_path, encoding="utf-8") as f:
        return output_dir, json.load(f)


# a test target's training events: where item text can matter (few) and where ids suffice (many)
POPULARITY_BUCKETS = ((0, 4), (5, 19), (20, 99), (100, None))


def bucket_name(low, high):
    return f"{low}+" if high is None else f"{low}-{high}"


def ndcg10_by_target_popularity(ranked, targets, counts):
    """NDCG@10 over the test users whose target has a given number of training events."""
    out = {}
    for low, high in POPULARITY_BUCKETS:
        rows = [r for r, t in enumerate(targets) if counts[t] >= low and (high is None or counts[t] <= high)]
        if rows:
            metrics = compute_ranking_metrics([ranked[r] for r in rows], [targets[r] for r in rows], (10,),
                                              len(counts))
            out[bucket_name(low, high)] = {"users": len(rows), "ndcg@10": metrics["ndcg@10"]}
    return out


def dataset_profile(splits, num_items, segment_length=50):
    """What the data offers the long memory (histories longer than a segment) and the text (rare targets)."""
    counts = item_counts(splits.train, num_items)
    lengths = [len(h) for h in splits.test.histories]
    return {"test_users": len(lengths), "mean_test_history": statistics.fmean(lengths),
            "median_test_history": statistics.median(lengths),
            f"share_history_over_{segment_length}": sum(n > segment_length for n in lengths) / len(lengths),
            "share_target_under_5_train_events": float((counts[splits.test.targets] < 5).mean()),
            "share_target_under_20_train_events": float((counts[splits.test.targets] < 20).mean())}


def model_row(name, seed, output_dir, results, splits, content):
    model = lsrec_hf.LSRecForSequentialRecommendation.from_pretrained(output_dir).eval()
    ranked, targets, _ = rank_examples(model, splits.test, top_k=10)
    beyond = beyond_accuracy_metrics(ranked, splits.train, model.config.num_items, content)
    beyond["ndcg@10_by_target_popularity"] = ndcg10_by_target_popularity(
        ranked, targets, item_counts(splits.train, model.config.num_items))
    beyond["mean_long_term_gate"] = results["test"].get("mean_long_term_gate")
    kept, kept_targets, _ = rank_examples(model, splits.test, top_k=20, exclude_history=False)
    history_kept = compute_ranking_metrics(kept, kept_targets, (10, 20), model.config.num_items)
    curve = [(h["train_seconds"], h["valid_ndcg@10"]) for h in results["history"]]
    # the recipe's test figures include the priors it chose (if any); the model alone is kept beside them
    trend = {}
    for prior in ("trend_prior", "cooccurrence_prior"):
        if results.get(prior):
            trend[prior] = {k: v for k, v in results[prior].items() if k != "grid"}
    # "test_without_trend_prior": the model alone in files written before the co-occurrence prior
    alone = results.get("test_without_priors", results.get("test_without_trend_prior"))
    if alone:
        trend["test_without_priors"] = {m: alone[m] for m in METRICS}
    if results.get("test_without_cooccurrence_prior"):
        trend["test_without_cooccurrence_prior"] = {m: results["test_without_cooccurrence_prior"][m] for m in METRICS}
    return {"model": name, "seed": seed, "test": {m: results["test"][m] for m in METRICS},
            "test_history_kept": {m: history_kept[m] for m in METRICS}, **trend, **beyond,
            "train_seconds": results["train_seconds"], "best_epoch": results["best_epoch"],
            "epochs_run": results["epochs_run"], "valid_curve": curve}


def baseline_rows(splits, num_items, content):
    rows, windows = [], {}

    def recent_popular():  # its window (1 day to all time) chosen on validation NDCG@10
        baseline, found = RecentPopular.tuned(splits, num_items)
        windows.update(chosen_window_days=baseline.window / DAY,
                       valid_ndcg10_by_window_days={f"{w / DAY:g}": v for w, v in found.items()})
        return baseline

    for name, make in (("most-popular", lambda: MostPopular(splits.train, num_items)),
                       ("recent-popular", recent_popular),
                       ("item-kNN", lambda: ItemKNN(splits.train, num_items, neighbors=100))):
        windows.clear()
        start = time.perf_counter()
        baseline = make()
        ranked = rank_baseline(baseline, splits.test, top_k=20)
        seconds = time.perf_counter() - start
        test = compute_ranking_metrics(ranked, splits.test.targets, (10, 20), num_items)
        kept = compute_ranking_metrics(rank_baseline(baseline, splits.test, top_k=20, exclude_history=False),
                                       splits.test.targets, (10, 20), num_items)
        rows.append({"model": name, "seed": None, "test": {m: test[m] for m in METRICS},
                     "test_history_kept": {m: kept[m] for m in METRICS},
                     "ndcg@10_by_target_popularity": ndcg10_by_target_popularity(
                         ranked, splits.test.targets.tolist(), item_counts(splits.train, num_items)),
                     **beyond_accuracy_metrics(ranked, splits.train, num_items, content), **windows,
                     "train_seconds": seconds, "best_epoch": None, "epochs_run": None, "valid_curve": []})
    return rows


def peer_runs(results_dir, pattern):
    """(path, result) of every peer results file matching `pattern` in `results_dir`, in name order."""
    for path in sorted(glob.glob(os.path.join(results_dir, pattern))):
        with open(path, encoding="utf-8") as f:
            yield path, json.load(f)


def recbole_rows(results_dir, dataset):
    """RecBole 1.2.1 runs; without an `exclude_history` field a file is RecBole's own protocol (history kept)."""
    rows = []
    for path, run in peer_runs(results_dir, f"recbole_*_{dataset}_seed*.json"):
        finished = run["status"] == "finished"
        test = run["test"] if finished else run.get("test_at_best_so_far")
        if not test:
            continue
        curve = [(e["elapsed_s"], e["valid_ndcg@10"]) for e in run["epochs"] if "elapsed_s" in e]
        test = {m: test[m.replace("hr@", "hit@")] for m in METRICS}  # RecBole calls HR "hit"
        protocol = "test" if run.get("exclude_history", False) else "test_history_kept"
        rows.append({"model": f"RecBole {run['model']}", "seed": run["seed"], protocol: test,
                     "train_seconds": curve[-1][0] if curve else None, "best_epoch": run["best_epoch"] + 1,
                     "epochs_run": run["epochs_run"], "valid_curve": curve, "finished": finished,
                     "max_epochs": run["max_epochs"], "source": os.path.relpath(path, ROOT),
                     "torch_threads": run["machine"]["torch_threads"]})
    return rows


def replay_rows(results_dir, dataset):
    """RePlay 0.22 SASRec (cross-entropy) runs, in the protocol each file records."""
    rows = []
    for path, run in peer_runs(results_dir, f"replay_sasrec_{dataset}_seed*.json"):
        finished = run["status"] == "finished"
        if not finished or "test" not in run:
            continue
        curve = [(e["elapsed_seconds"], e["valid_ndcg@10"]) for e in run["curve"]]
        protocol = "test" if run["exclude_history"] else "test_history_kept"
        rows.append({"model": "RePlay SASRec", "seed": run["hyperparameters"]["seed"],
                     protocol: {m: run["test"][m] for m in METRICS}, "train_seconds": run["train_seconds"],
                     "best_epoch": run["best_epoch"], "epochs_run": run["epochs_run"], "valid_curve": curve,
                     "finished": finished,
                     "source": os.path.relpath(path, ROOT), "hyperparameters": run.get("hyperparameters")})
    return rows


def mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(rows, protocol="test"):
    """Mean ± std per model over the rows measured under `protocol` ("test" or "test_history_kept")."""
    groups = {}
    for row in rows:
        if row.get(protocol):
            groups.setdefault(row["model"], []).append(row)
    summary = {}
    for model, group in groups.items():
        entry = {"seeds": [r["seed"] for r in group], "n": len(group)}
        for m in METRICS:
            entry[m] = mean_std([r[protocol][m] for r in group])
        for key in BEYOND + ["train_seconds", "best_epoch", "epochs_run"]:
            entry[key] = mean_std([r.get(key) for r in group])
        entry["all_finished"] = all(r.get("finished", True) for r in group)
        summary[model] = entry
    return summary


def _fmt(pair, digits=4):
    mean, std = pair
    return "—" if mean is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown_table(summary, beyond=True):
    lines = ["| model | n | HR@10 | NDCG@10 | MRR@10 | HR@20 | NDCG@20 | MRR@20 | train s | best epoch |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for model, e in summary.items():
        label = DESCRIPTIONS.get(model, model) + ("" if e["all_finished"] else " (capped, best so far)")
        lines.append(f"| {label} | {e['n']} | " + " | ".join(_fmt(e[m]) for m in METRICS)
                     + f" | {_fmt(e['train_seconds'], 0)} | {_fmt(e['best_epoch'], 1)} |")
    if beyond and any(e["coverage@10"][0] is not None for e in summary.values()):
        lines += ["", "| model | coverage@10 | diversity@10 | novelty@10 (bits) |", "|---|---|---|---|"]
        for model, e in summary.items():
            if e["coverage@10"][0] is not None:
                lines.append(f"| {DESCRIPTIONS.get(model, model)} | {_fmt(e['coverage@10'], 3)} | "
                             f"{_fmt(e['diversity@10'], 3)} | {_fmt(e['novelty@10'], 2)} |")
    return "\n".join(lines)


def popularity_table(rows):
    """Mean NDCG@10 per target-popularity bucket for the rows that have rankings (ours and the baselines)."""
    buckets = [bucket_name(*b) for b in POPULARITY_BUCKETS]
    groups = {}
    for row in rows:
        if row.get("ndcg@10_by_target_popularity"):
            groups.setdefault(row["model"], []).append(row["ndcg@10_by_target_popularity"])
    if not groups:
        return ""
    first = next(iter(groups.values()))[0]
    lines = ["| model | " + " | ".join(f"target with {b} train events ({first.get(b, {}).get('users', 0)} users)"
                                       for b in buckets) + " |", "|---|" + "---|" * len(buckets)]
    for model, entries in groups.items():
        cells = [_fmt(mean_std([e[b]["ndcg@10"] for e in entries if b in e])) for b in buckets]
        lines.append(f"| {DESCRIPTIONS.get(model, model)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ratio_to_strongest_peer(summary):
    """NDCG@10 of the default over the best mean NDCG@10 of any peer or baseline, within one protocol."""
    peers = {m: e["ndcg@10"][0] for m, e in summary.items() if m not in CONFIGS}
    if "default" not in summary or not peers:
        return None, None
    strongest = max(peers, key=peers.get)
    return strongest, summary["default"]["ndcg@10"][0] / peers[strongest]


def plot(rows, summary, out_prefix, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [m for m in summary]
    fig, ax = plt.subplots(figsize=(9, 4))
    means = [summary[m]["ndcg@10"][0] for m in names]
    stds = [summary[m]["ndcg@10"][1] for m in names]
    ax.bar(range(len(names)), means, yerr=stds, capsize=4, color="tab:blue")
    ax.set_xticks(range(len(names)), [DESCRIPTIONS.get(m, m).replace("lsrec_hf ", "").replace(", ", "\n")
                                      for m in names], fontsize=7)
    ax.set_ylabel("test NDCG@10 (mean ± std over seeds)")
    ax.set_title(f"{title}, leave-one-out, full ranking, history excluded")
    fig.tight_layout()
    fig.savefig(out_prefix + "_ablation.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = {}
    for row in rows:
        if not row["valid_curve"]:
            continue
        first = row["model"] not in colours  # one legend entry per model
        colour = colours.setdefault(row["model"], f"C{len(colours)}")
        seconds, ndcg = zip(*row["valid_curve"])
        ax.plot(seconds, ndcg, color=colour, alpha=0.8, lw=1.2,
                label=DESCRIPTIONS.get(row["model"], row["model"]) if first else None)
    ax.set_xscale("log")
    ax.set_xlabel("training wall time (s, log)")
    ax.set_ylabel("validation NDCG@10")
    ax.set_title(f"{title}: validation NDCG@10 against training time (one line per seed)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_prefix + "_curves.png", dpi=120)
    plt.close(fig)


def earlier_rows(path):
    """lsrec_hf rows of an earlier report, by (config, seed): a run whose checkpoint is gone keeps its figures."""
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return {(r["model"], r["seed"]): r for r in json.load(f)["runs"] if r["model"] in CONFIGS}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k", help="'ml-100k' or a data folder, e.g. ../shared/data/ml-1m")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--configs", nargs="+", default=["default", "short", "long", "id-only"], choices=list(CONFIGS))
    parser.add_argument("--threads", type=int, default=None, help="OMP/torch threads of each training run")
    parser.add_argument("--work_dir", default="outputs/bench_quality", help="where the trained runs are kept")
    parser.add_argument("--results_dir", default=os.path.join(ROOT, "bench", "results"))
    parser.add_argument("--report_only", action="store_true", help="train nothing new; report finished runs")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    data = load_data(args.dataset)
    name = data.name
    splits = leave_one_out(build_user_sequences(data.interactions, data.catalog))
    num_items = len(data.catalog)
    content = encode_texts(data.catalog.texts, DEFAULT_TEXT_ENCODER, show_progress_bar=False)
    out_prefix = os.path.join(args.results_dir, f"quality_{name}")
    earlier = earlier_rows(out_prefix + ".json")

    rows = []
    for seed in args.seeds:  # seed by seed, so a partial benchmark already covers every config
        for config in args.configs:
            output_dir = os.path.join(args.work_dir, name, config, f"seed{seed}")
            finished = os.path.exists(os.path.join(output_dir, "eval_results.json"))
            row = earlier.get((config, seed))
            # an earlier row stands for a run whose checkpoint is gone, unless it lacks the history-kept figures
            # and this call may train (then the run is repeated to measure both protocols)
            if not finished and row is not None and ("test_history_kept" in row or args.report_only):
                rows.append(row)
                continue
            if args.report_only and not finished:
                continue
            output_dir, results = run_config(config, seed, os.path.join(args.work_dir, name), args.threads,
                                             args.dataset)
            rows.append(model_row(config, seed, output_dir, results, splits, content))
    # runs not asked for this time keep their earlier rows: a run adds to the report, never shrinks it
    done = {(row["model"], row["seed"]) for row in rows}
    rows += [row for key, row in earlier.items() if key not in done]
    rows += baseline_rows(splits, num_items, content)
    rows += replay_rows(args.results_dir, name) + recbole_rows(args.results_dir, name)

    profile = dataset_profile(splits, num_items)
    print(f"{name}: " + ", ".join(f"{k} {v:.3g}" for k, v in profile.items()))
    summaries, ratios = {}, {}
    for protocol, label in (("test", "history excluded"), ("test_history_kept", "history kept (RecBole's protocol)")):
        summaries[label] = summary = summarise(rows, protocol)
        strongest, ratio = ratio_to_strongest_peer(summary)
        ratios[label] = {"strongest_peer": strongest, "ndcg@10_ratio": ratio}
        print(f"\n### {name}, leave-one-out, full ranking over {num_items} items, {label}\n")
        print(markdown_table(summary, beyond=protocol == "test"))
        if protocol == "test":
            print("\nNDCG@10 by the test target's number of training events:\n\n" + popularity_table(rows))
        if ratio is not None:
            print(f"\nNDCG@10, lsrec_hf default / strongest other ({strongest}): {ratio:.2f}x (target >= 1.10)")
    write_result(out_prefix + ".json", {
        "dataset": name, "num_items": num_items, "num_test_users": len(splits.test),
        "protocol": "leave-one-out by time, full ranking; 'test' excludes the input history, "
                    "'test_history_kept' keeps it (RecBole's protocol)",
        "data_profile": profile, "seeds": args.seeds, "summary": summaries, "ratios": ratios, "runs": rows})
    plot(rows, summaries["history excluded"], out_prefix, name)
    print(f"\nwrote {out_prefix}.json, {out_prefix}_ablation.png, {out_prefix}_curves.png")


if __name__ == "__main__":
    main()
