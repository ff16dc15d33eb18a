"""Quality on MovieLens-100K: lsrec_hf ablations, two simple baselines and the RecBole peers, over seeds.

    python bench/quality.py --seeds 42 43 44 --threads 1
    python bench/quality.py --seeds 42 --configs default id-only      # a subset
    python bench/quality.py --report_only                              # tables and plots from what has run

Every lsrec_hf row is a real run of `recipes/pretrain.py` (the main job, only the named flags changed) on the
same leave-one-out split, ranked over the full catalog with history items excluded. A finished run is reused
(its output directory holds eval_results.json), so a killed benchmark continues where it stopped.
Most-popular and item-kNN are deterministic: one run, std 0. RecBole SASRec/BERT4Rec rows are read from
`bench/results/recbole_*_ml-100k_seed*.json`, written by `bench/recbole_peer.py` in RecBole's own environment;
a peer run stopped by a time budget reports the test metrics of its best epoch so far and is marked so.

Prints markdown tables, writes bench/results/quality.json, quality_ablation.png and quality_curves.png.
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
from lsrec_hf.baselines import ItemKNN, MostPopular, rank_baseline
from lsrec_hf.data import load_data
from lsrec_hf.evaluation import rank_examples
from lsrec_hf.metrics import compute_ranking_metrics
from lsrec_hf.metrics.beyond_accuracy import beyond_accuracy_metrics
from lsrec_hf.sequences import build_user_sequences, leave_one_out
from lsrec_hf.text import DEFAULT_TEXT_ENCODER, encode_texts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> flags given to recipes/pretrain.py on top of its defaults
CONFIGS = {
    "default": [],  # long+short memory, text+id tokens, causal objective
    "short": ["--memory", "short"],
    "long": ["--memory", "long"],
    "id-only": ["--text_encoder", "none"],
    "cloze": ["--objective", "cloze"],
}
DESCRIPTIONS = {
    "default": "lsrec_hf long+short, text+id, causal (default)",
    "short": "lsrec_hf short only, text+id, causal",
    "long": "lsrec_hf long only, text+id, causal",
    "id-only": "lsrec_hf long+short, id-only, causal",
    "cloze": "lsrec_hf long+short, text+id, cloze",
}
METRICS = ["hr@10", "ndcg@10", "mrr@10", "hr@20", "ndcg@20", "mrr@20"]
BEYOND = ["coverage@10", "diversity@10", "novelty@10"]


def run_config(name, seed, work_dir, threads):
    """Train one config with one seed through the pretraining recipe (skipped when already finished)."""
    output_dir = os.path.join(work_dir, name, f"seed{seed}")
    results_path = os.path.join(output_dir, "eval_results.json")
    if not os.path.exists(results_path):
        os.makedirs(output_dir, exist_ok=True)
        command = [sys.executable, os.path.join(ROOT, "recipes", "pretrain.py"), "--output_dir", output_dir,
                   "--seed", str(seed), *CONFIGS[name]]
        env = {**os.environ, "TQDM_DISABLE": "1"}
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        print(f"[quality] {name} seed {seed}: {' '.join(command)}", flush=True)
        with open(os.path.join(output_dir, "train.log"), "w") as log:
            subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, check=True, cwd=ROOT)
    with open(results_path, encoding="utf-8") as f:
        return output_dir, json.load(f)


def model_row(name, seed, output_dir, results, splits, content):
    model = lsrec_hf.LSRecForSequentialRecommendation.from_pretrained(output_dir).eval()
    ranked, targets, _ = rank_examples(model, splits.test, top_k=10)
    beyond = beyond_accuracy_metrics(ranked, splits.train, model.config.num_items, content)
    curve = [(h["train_seconds"], h["valid_ndcg@10"]) for h in results["history"]]
    return {"model": name, "seed": seed, "test": {m: results["test"][m] for m in METRICS}, **beyond,
            "train_seconds": results["train_seconds"], "best_epoch": results["best_epoch"],
            "epochs_run": results["epochs_run"], "valid_curve": curve}


def baseline_rows(splits, num_items, content):
    rows = []
    for name, make in (("most-popular", lambda: MostPopular(splits.train, num_items)),
                       ("item-kNN", lambda: ItemKNN(splits.train, num_items, neighbors=100))):
        start = time.perf_counter()
        baseline = make()
        ranked = rank_baseline(baseline, splits.test, top_k=20)
        seconds = time.perf_counter() - start
        test = compute_ranking_metrics(ranked, splits.test.targets, (10, 20), num_items)
        rows.append({"model": name, "seed": None, "test": {m: test[m] for m in METRICS},
                     **beyond_accuracy_metrics(ranked, splits.train, num_items, content),
                     "train_seconds": seconds, "best_epoch": None, "epochs_run": None, "valid_curve": []})
    return rows


def peer_rows(results_dir):
    rows = []
    for path in sorted(glob.glob(os.path.join(results_dir, "recbole_*_ml-100k_seed*.json"))):
        with open(path, encoding="utf-8") as f:
            run = json.load(f)
        finished = run["status"] == "finished"
        test = run["test"] if finished else run.get("test_at_best_so_far")
        if not test:
            continue
        curve = [(e["elapsed_s"], e["valid_ndcg@10"]) for e in run["epochs"] if "elapsed_s" in e]
        test = {m: test[m.replace("hr@", "hit@")] for m in METRICS}  # RecBole calls HR "hit"
        rows.append({"model": f"RecBole {run['model']}", "seed": run["seed"], "test": test,
                     "train_seconds": curve[-1][0] if curve else None, "best_epoch": run["best_epoch"] + 1,
                     "epochs_run": run["epochs_run"], "valid_curve": curve, "finished": finished,
                     "max_epochs": run["max_epochs"], "source": os.path.relpath(path, ROOT),
                     "torch_threads": run["machine"]["torch_threads"]})
    return rows


def mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(rows):
    groups = {}
    for row in rows:
        groups.setdefault(row["model"], []).append(row)
    summary = {}
    for model, group in groups.items():
        entry = {"seeds": [r["seed"] for r in group], "n": len(group)}
        for m in METRICS:
            entry[m] = mean_std([r["test"][m] for r in group])
        for key in BEYOND + ["train_seconds", "best_epoch", "epochs_run"]:
            entry[key] = mean_std([r.get(key) for r in group])
        entry["all_finished"] = all(r.get("finished", True) for r in group)
        summary[model] = entry
    return summary


def _fmt(pair, digits=4):
    mean, std = pair
    return "—" if mean is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown_tables(summary):
    lines = ["| model | n | HR@10 | NDCG@10 | MRR@10 | HR@20 | NDCG@20 | MRR@20 | train s | best epoch |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for model, e in summary.items():
        label = DESCRIPTIONS.get(model, model) + ("" if e["all_finished"] else " (capped, best so far)")
        lines.append(f"| {label} | {e['n']} | " + " | ".join(_fmt(e[m]) for m in METRICS)
                     + f" | {_fmt(e['train_seconds'], 0)} | {_fmt(e['best_epoch'], 1)} |")
    lines += ["", "| model | coverage@10 | diversity@10 | novelty@10 (bits) |", "|---|---|---|---|"]
    for model, e in summary.items():
        if e["coverage@10"][0] is not None:
            lines.append(f"| {DESCRIPTIONS.get(model, model)} | {_fmt(e['coverage@10'], 3)} | "
                         f"{_fmt(e['diversity@10'], 3)} | {_fmt(e['novelty@10'], 2)} |")
    return "\n".join(lines)


def plot(rows, summary, out_prefix):
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
    ax.set_title("MovieLens-100K, leave-one-out, full ranking")
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
    ax.set_title("Validation NDCG@10 against training time (one line per seed)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_prefix + "_curves.png", dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--threads", type=int, default=None, help="OMP/torch threads of each training run")
    parser.add_argument("--work_dir", default="outputs/bench_quality", help="where the trained runs are kept")
    parser.add_argument("--results_dir", default=os.path.join(ROOT, "bench", "results"))
    parser.add_argument("--report_only", action="store_true", help="train nothing new; report finished runs")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    data = load_data("ml-100k")
    splits = leave_one_out(build_user_sequences(data.interactions, data.catalog))
    num_items = len(data.catalog)
    content = encode_texts(data.catalog.texts, DEFAULT_TEXT_ENCODER, show_progress_bar=False)

    rows = []
    for seed in args.seeds:  # seed by seed, so a partial benchmark already covers every config
        for name in args.configs:
            output_dir = os.path.join(args.work_dir, name, f"seed{seed}")
            if args.report_only and not os.path.exists(os.path.join(output_dir, "eval_results.json")):
                continue
            output_dir, results = run_config(name, seed, args.work_dir, args.threads)
            rows.append(model_row(name, seed, output_dir, results, splits, content))
    rows += baseline_rows(splits, num_items, content)
    rows += peer_rows(args.results_dir)

    summary = summarise(rows)
    print(markdown_tables(summary))
    ratio = None
    if "default" in summary and "RecBole SASRec" in summary:
        ratio = summary["default"]["ndcg@10"][0] / summary["RecBole SASRec"]["ndcg@10"][0]
        print(f"\nNDCG@10, lsrec_hf default / RecBole SASRec: {ratio:.2f}x (target >= 1.10)")
    out_prefix = os.path.join(args.results_dir, "quality")
    write_result(out_prefix + ".json", {"dataset": "ml-100k", "protocol": "leave-one-out, full ranking, history excluded",
                                        "seeds": args.seeds, "summary": summary, "runs": rows,
                                        "ndcg@10_ratio_default_vs_sasrec": ratio})
    plot(rows, summary, out_prefix)
    print(f"\nwrote {out_prefix}.json, {out_prefix}_ablation.png, {out_prefix}_curves.png")


if __name__ == "__main__":
    main()
