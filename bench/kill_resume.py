"""Kill a real pretraining run with SIGKILL, resume it with --resume, and compare with an uninterrupted run.

    python bench/kill_resume.py --kills 10                      # 1 process, ML-100K, a small model
    python bench/kill_resume.py --kills 6 --num_processes 2     # 2 gloo processes under `accelerate launch`
    python bench/kill_resume.py --dataset path/to/slice --epochs 4 --kills 4 --out results.json

Kill points cycle through three kinds:
  * "random": at a uniformly random moment of the uninterrupted run's wall time (mostly inside a step);
  * "write best" / "write last": the moment the best-model or the resume checkpoint of a randomly chosen epoch
    starts being written (`checkpoints/best.tmp` / `last.tmp` appears), i.e. in the middle of that write.
A run is killed once, then restarted with --resume until it finishes (a write kill that landed after the write
had finished is counted as missed, and the resumed run is killed at its next write instead). It must end with the same test and
validation metrics, the same best epoch and bit-identical final weights as the uninterrupted run.
Prints a table, writes JSON (default bench/results/kill_resume_<N>proc.json).
"""

import argparse
import glob
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

import psutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

SMALL_MODEL = ["--hidden_size", "16", "--intermediate_size", "32", "--num_hidden_layers", "1",
               "--segment_length", "20", "--memory_length", "20", "--batch_size", "32", "--warmup_steps", "5"]


def command(args, output_dir, port):
    recipe = [os.path.join(ROOT, "recipes", "pretrain.py"), "--dataset", args.dataset, "--output_dir", output_dir,
              "--num_epochs", str(args.epochs), "--seed", str(args.seed), "--resume", "true", *SMALL_MODEL,
              *args.recipe_args]
    if args.num_processes == 1:
        return [sys.executable, *recipe]
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
            str(args.num_processes), "--num_machines", "1", "--main_process_port", str(port), *recipe]


def environment(args):
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    if args.num_processes > 1:
        env["ACCELERATE_USE_CPU"] = "true"
    return env


def start(args, output_dir, port, log):
    return subprocess.Popen(command(args, output_dir, port), env=environment(args), cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def kill_tree(process):
    """SIGKILL the run: the launcher and every process under it.

    torchrun starts each rank in a session of its own, out of reach of a kill of the launcher's process group; a
    rank that outlived its launcher would go on writing the checkpoint the resumed run reads. The launcher is
    stopped first, so that it cannot start a rank between the listing and the kill.
    """
    try:
        launcher = psutil.Process(process.pid)
        launcher.send_signal(signal.SIGSTOP)
        ranks = launcher.children(recursive=True)
    except psutil.NoSuchProcess:  # it ended on its own just now (and a launcher waits for its ranks)
        ranks = []
    for member in ranks:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass
    process.kill()
    process.wait()  # reaped by Popen itself, which keeps the exit status
    psutil.wait_procs(ranks, timeout=30)


def outcome(output_dir):
    with open(os.path.join(output_dir, "eval_results.json"), encoding="utf-8") as f:
        results = json.load(f)
    with open(os.path.join(output_dir, "model.safetensors"), "rb") as f:
        weights = hashlib.sha256(f.read()).hexdigest()
    history = [{k: v for k, v in h.items() if k != "train_seconds"} for h in results["history"]]
    return {"test": results["test"], "valid": results["valid"], "best_epoch": results["best_epoch"],
            "history": history, "weights_sha256": weights}


def run_to_end(args, output_dir, port, log):
    process = start(args, output_dir, port, log)
    if process.wait():
        raise RuntimeError(f"run in {output_dir} failed (exit {process.returncode}); see {log.name}")


def killed_then_resumed(args, output_dir, port, kind, delay, epoch, log, retries=5):
    """Kill the run once (for a write kind: while the watched checkpoint is on disk half-written), resume to the end.

    A write can finish between the moment its `.tmp` folder is seen and the moment SIGKILL lands; such a kill
    missed the write, so the run is resumed and killed again at its next write, up to `retries` times.
    """
    checkpoints = os.path.join(output_dir, "checkpoints")
    watched = os.path.join(checkpoints, "best.tmp" if kind == "write best" else "last.tmp")
    landed, missed, killed = None, 0, False
    while landed is None or (kind != "random" and os.path.basename(watched) not in landed["checkpoint_being_written"]
                             and missed < retries):
        if landed is not None:
            missed += 1
        # a fresh port for every launch: a killed launcher's rendezvous port is not reused at once
        process, killed = start(args, output_dir, port + 100 * missed, log), False
        started, appearances, was_there = time.perf_counter(), 0, False
        wanted = epoch if landed is None else 1  # after a miss: the next write
        while process.poll() is None:
            elapsed = time.perf_counter() - started
            there = os.path.exists(watched)
            appearances += there and not was_there
            was_there = there
            if (kind != "random" and there and appearances >= wanted) or (kind == "random" and elapsed >= delay):
                kill_tree(process)
                killed = True
                # read after the kill: what the resumed run finds on disk is what was being written
                writing = glob.glob(os.path.join(checkpoints, "*.tmp"))
                landed = {"killed_after_s": round(elapsed, 3), "checkpoint_being_written": sorted(
                    os.path.basename(p) for p in writing)}
                break
            time.sleep(0.01 if kind == "random" else 0.001)
        else:
            if process.returncode:
                raise RuntimeError(f"run in {output_dir} failed (exit {process.returncode}); see {log.name}")
            if landed is None:
                return {"killed": False}
            break  # the run ended before another write could be hit: keep the last kill
    last = os.path.join(checkpoints, "last", "trainer_state.json")
    if os.path.exists(last):
        with open(last, encoding="utf-8") as f:
            landed["last_checkpoint_epoch"] = json.load(f)["epoch"]
    if killed:  # the last launch was killed: finish the run
        run_to_end(args, output_dir, port + 100 * (missed + 1), log)
    return {"killed": True, "writes_missed": missed, **landed}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--num_processes", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--work_dir", default=None, help="default: a temporary folder, removed afterwards")
    parser.add_argument("--out", default=None)
    parser.add_argument("recipe_args", nargs="*", help="extra arguments for recipes/pretrain.py (after --)")
    args = parser.parse_args()
    out = args.out or os.path.join(ROOT, "bench", "results", f"kill_resume_{args.num_processes}proc.json")
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory(dir=args.work_dir) as work:
        log = open(os.path.join(work, "runs.log"), "w")
        started = time.perf_counter()
        run_to_end(args, os.path.join(work, "reference"), 29600, log)
        reference_seconds = time.perf_counter() - started
        reference = outcome(os.path.join(work, "reference"))
        trials = []
        for index in range(args.kills):
            kind = ("random", "write best", "write last")[index % 3]
            delay = rng.uniform(0.1, 1.0) * reference_seconds
            epoch = rng.randint(1, args.epochs)  # the write of which epoch (by appearance) to interrupt
            output_dir = os.path.join(work, f"kill{index}")
            trial = {"kind": kind, "epoch": epoch if kind != "random" else None,
                     **killed_then_resumed(args, output_dir, 29601 + index, kind, delay, epoch, log)}
            result = outcome(output_dir)
            trial["same_as_uninterrupted"] = {key: result[key] == reference[key] for key in reference}
            trial["identical"] = all(trial["same_as_uninterrupted"].values())
            trials.append(trial)
            print(f"[kill_resume] {index}: {kind:10s} {trial.get('killed_after_s', '-')}s "
                  f"writing={trial.get('checkpoint_being_written', '-')} identical={trial['identical']}", flush=True)
        log.close()

    killed = [t for t in trials if t["killed"]]
    summary = {"kills_tried": args.kills, "killed": len(killed),
               "killed_during_checkpoint_write": sum(bool(t.get("checkpoint_being_written")) for t in killed),
               "identical_to_uninterrupted": sum(t["identical"] for t in trials), "trials": len(trials)}
    print(f"\n| processes | kill points | killed | during a checkpoint write | identical to uninterrupted |\n"
          f"|---|---|---|---|---|\n| {args.num_processes} | {summary['kills_tried']} | {summary['killed']} | "
          f"{summary['killed_during_checkpoint_write']} | {summary['identical_to_uninterrupted']} / {summary['trials']} |")
    from common import write_result

    write_result(out, {"num_processes": args.num_processes, "epochs": args.epochs, "seed": args.seed,
                       "dataset": args.dataset, "reference_seconds": reference_seconds, "reference": reference,
                       "summary": summary, "trials": trials})
    return 0 if summary["identical_to_uninterrupted"] == summary["trials"] else 1


if __name__ == "__main__":
    sys.exit(main())
