"""RePlay SASRec as the peer, tuned fairly on one data set: a grid on validation NDCG@10 (seed 42), then seeds.

    python bench/replay_tuned.py --dataset ../shared/data/amazon-beauty --dropouts 0.2 0.5 --seeds 42 43 44

1. `bench/export_sequences.py` (lsrec_hf's venv) writes the data set's user sequences, so both sides share one split.
2. Each grid point (dropout x max_length) trains with seed 42 to its own early stopping (`bench/replay_peer.py`,
   RePlay's venv); the point with the best *validation* NDCG@10 wins (test metrics are never looked at).
3. The winner runs with every seed into `bench/results/replay_sasrec_<dataset>_seed<N>.json`, which
   `bench/quality.py` reads. Grid runs are kept in `bench/results/replay_tuning/`. Finished runs are reused.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAIN_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
REPLAY_PYTHON = os.path.join(ROOT, ".venv-replay", "bin", "python")


def finished(path):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        run = json.load(f)
    return run if run.get("status") == "finished" else None


def train(sequences, seed, dropout, max_length, out, extra):
    run = finished(out)
    if run is None:
        os.makedirs(os.path.dirname(out), exist_ok=True)
        command = [REPLAY_PYTHON, os.path.join(ROOT, "bench", "replay_peer.py"), "--sequences", sequences,
                   "--seed", str(seed), "--threads", "1", "--dropout", str(dropout), "--max_length", str(max_length),
                   "--out", out, *extra]
        print("[replay]", " ".join(command), flush=True)
        with open(out.replace(".json", ".log"), "w") as log:
            subprocess.run(command, check=True, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
        run = finished(out)
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="'ml-100k' or a data folder")
    parser.add_argument("--dropouts", type=float, nargs="+", default=[0.2, 0.5])
    parser.add_argument("--max_lengths", type=int, nargs="+", default=[50])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--results_dir", default=os.path.join(ROOT, "bench", "results"))
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="after --: more replay_peer.py flags")
    args = parser.parse_args()
    extra = [a for a in args.extra if a != "--"]

    name = "ml-100k" if args.dataset == "ml-100k" else os.path.basename(os.path.normpath(args.dataset))
    sequences = os.path.join(ROOT, "outputs", "sequences", f"{name}.parquet")
    if not os.path.exists(sequences):
        subprocess.run([MAIN_PYTHON, os.path.join(ROOT, "bench", "export_sequences.py"), "--dataset", args.dataset,
                        "--out", sequences], check=True, cwd=ROOT)

    grid = {}
    for dropout in args.dropouts:
        for max_length in args.max_lengths:
            out = os.path.join(args.results_dir, "replay_tuning", f"{name}_dropout{dropout}_len{max_length}_seed42.json")
            grid[(dropout, max_length)] = (out, train(sequences, 42, dropout, max_length, out, extra))
    (dropout, max_length), (best_path, best) = max(grid.items(), key=lambda kv: kv[1][1]["valid"]["ndcg@10"])
    for (d, m), (_, run) in grid.items():
        print(f"{name} dropout {d} max_length {m}: valid NDCG@10 {run['valid']['ndcg@10']:.4f}"
              + ("  <- chosen" if (d, m) == (dropout, max_length) else ""))

    for seed in args.seeds:
        out = os.path.join(args.results_dir, f"replay_sasrec_{name}_seed{seed}.json")
        if seed == 42 and finished(out) is None:
            shutil.copyfile(best_path, out)  # the grid's seed-42 run of the chosen point is that seed's run
        run = train(sequences, seed, dropout, max_length, out, extra)
        print(f"{name} seed {seed}: test NDCG@10 {run['test']['ndcg@10']:.4f} (best epoch {run['best_epoch']})")


if __name__ == "__main__":
    sys.exit(main())
