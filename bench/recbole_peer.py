"""Peer baseline: train SASRec / BERT4Rec with RecBole 1.2.1 on MovieLens-100K.

This script runs RecBole's own data pipeline, trainer and evaluator (not
lsrec_hf code) so its numbers can be set beside ours. It needs its own
environment, because RecBole 1.2.1 pins an older scientific stack:

    python -m venv .venv-recbole && .venv-recbole/bin/pip install torch==2.13.0 "numpy<2" "pandas<2.2" "setuptools>=77,<81" "ray<2.7" recbole==1.2.1

(On a CPU-only machine, add ``--extra-index-url https://download.pytorch.org/whl/cpu``
to that same pip call to get the small CPU build of torch.)

Run it from the repository root with that interpreter, e.g.

    .venv-recbole/bin/python bench/recbole_peer.py --model SASRec --seed 2026 --threads 1

Protocol (kept identical for both models):
  * all 100,000 ml-100k interactions as implicit feedback (no rating filter),
    chronological leave-one-out per user (``LS: valid_and_test``, ``order: TO``);
  * full ranking over all items, Hit/NDCG/MRR at 10 and 20, model selection and
    early stopping on valid NDCG@10 (``stopping_step`` evaluations without gain);
  * cross-entropy over the full item set (``loss_type: CE``, no negative sampling);
  * every other hyper-parameter is RecBole's own default for the model
    (``recbole/properties/model/<Model>.yaml`` and ``overall.yaml``) unless
    overridden on the command line.

The JSON result is rewritten after every epoch (``"status": "running"``) and
finally with ``"status": "finished"`` plus the test metrics of the best epoch.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Keys of RecBole's final config that are recorded in the result JSON.
CONFIG_KEYS = [
    "model", "dataset", "data_path", "device",
    "hidden_size", "n_layers", "n_heads", "inner_size",
    "hidden_dropout_prob", "attn_dropout_prob", "hidden_act",
    "layer_norm_eps", "initializer_range", "loss_type",
    "mask_ratio", "ft_ratio", "transform",
    "MAX_ITEM_LIST_LENGTH", "learner", "learning_rate", "weight_decay",
    "clip_grad_norm", "train_batch_size", "eval_batch_size",
    "epochs", "stopping_step", "eval_step", "train_neg_sample_args",
    "eval_args", "repeatable", "metrics", "topk", "valid_metric",
    "valid_metric_bigger", "metric_decimal_place", "load_col",
    "val_interval", "user_inter_num_interval", "item_inter_num_interval",
    "rm_dup_inter", "seed", "reproducibility", "shuffle",
]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=["SASRec", "BERT4Rec"], default="SASRec")
    p.add_argument("--seed", type=int, default=2020)
    p.add_argument("--epochs", type=int, default=300,
                   help="maximum number of epochs (RecBole default 300)")
    p.add_argument("--stopping_step", type=int, default=10,
                   help="evaluations without valid improvement before stopping")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads (default: torch's own choice)")
    p.add_argument("--data_path", default=None,
                   help="directory containing ml-100k/ (default: RecBole's bundled dataset_example)")
    p.add_argument("--out", default=None,
                   help="result JSON (default bench/results/recbole_<model>_ml-100k_seed<seed>.json)")
    p.add_argument("--hidden_size", type=int, default=None)
    p.add_argument("--n_layers", type=int, default=None)
    p.add_argument("--n_heads", type=int, default=None)
    p.add_argument("--max_seq_len", type=int, default=50,
                   help="MAX_ITEM_LIST_LENGTH (default 50)")
    p.add_argument("--keep_tmp", action="store_true",
                   help="keep the temporary run directory (checkpoint, RecBole log)")
    return p.parse_args(argv)


def _jsonable(obj):
    """Convert RecBole config values (enums, OrderedDicts, tensors...) to JSON types."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):
        try:
            return obj.item()
        except Exception:  # noqa: BLE001
            pass
    return str(obj)


def _metrics(result):
    return None if result is None else {k: float(v) for k, v in result.items()}


def _write_json(path, payload):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def main(argv=None):
    args = parse_args(argv)
    command = shlex.join([sys.executable] + (sys.argv if argv is None else [sys.argv[0]] + list(argv)))

    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)

    import recbole
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_logger, init_seed

    if args.data_path is None:
        args.data_path = os.path.join(os.path.dirname(recbole.__file__), "dataset_example")
    data_path = os.path.abspath(args.data_path)
    if not os.path.isfile(os.path.join(data_path, "ml-100k", "ml-100k.inter")):
        sys.exit(f"ml-100k/ml-100k.inter not found under {data_path}")

    out = args.out or os.path.join(
        REPO_ROOT, "bench", "results", f"recbole_{args.model.lower()}_ml-100k_seed{args.seed}.json")
    out = os.path.abspath(out)
    os.makedirs(os.path.dirname(out), exist_ok=True)

    # RecBole writes ./log/, ./log_tensorboard/ and checkpoints relative to the
    # working directory: keep all of that in a throw-away directory.
    run_dir = tempfile.mkdtemp(prefix=f"recbole_{args.model.lower()}_")
    os.chdir(run_dir)

    config_dict = {
        "data_path": data_path,
        "checkpoint_dir": os.path.join(run_dir, "saved"),
        "show_progress": False,
        "reproducibility": True,
        "seed": args.seed,
        "epochs": args.epochs,
        "stopping_step": args.stopping_step,
        "loss_type": "CE",
        "train_neg_sample_args": None,
        "MAX_ITEM_LIST_LENGTH": args.max_seq_len,
        "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]},
        "eval_args": {
            "split": {"LS": "valid_and_test"},
            "order": "TO",
            "mode": "full",
            "group_by": "user",
        },
        "metrics": ["Hit", "NDCG", "MRR"],
        "topk": [10, 20],
        "valid_metric": "NDCG@10",
    }
    for key in ("hidden_size", "n_layers", "n_heads"):
        if getattr(args, key) is not None:
            config_dict[key] = getattr(args, key)

    # RecBole's Config also reads ``--key=value`` pairs from sys.argv; hide ours
    # so that only config_dict defines the run.
    saved_argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        config = Config(model=args.model, dataset="ml-100k", config_dict=config_dict)
    finally:
        sys.argv = saved_argv
    # For dataset "ml-100k" RecBole always points data_path at its bundled copy,
    # whatever the config says; put the requested directory back.
    config["data_path"] = os.path.join(data_path, "ml-100k")
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)

    dataset = create_dataset(config)
    # Counted before data_preparation, which replaces the interactions by one
    # (prefix -> next item) sample per target position.
    n_interactions = int(dataset.inter_num)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    data_stats = {
        # RecBole reserves id 0 for padding; *_num_with_pad are its internal sizes.
        "n_users": int(dataset.user_num - 1),
        "n_items": int(dataset.item_num - 1),
        "user_num_with_pad": int(dataset.user_num),
        "item_num_with_pad": int(dataset.item_num),
        "n_interactions": n_interactions,
        "n_train_samples": int(len(train_data.dataset)),
        "n_valid_users": int(len(valid_data.dataset)),
        "n_test_users": int(len(test_data.dataset)),
    }

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    n_params = int(sum(p.numel() for p in model.parameters()))

    valid_key = config["valid_metric"].lower()
    epochs_log: list[dict] = []
    state = {"best_epoch": None, "fit_start": None, "cur": None, "test_at_best": None}

    base_trainer = get_trainer(config["MODEL_TYPE"], config["model"])

    class TimedTrainer(base_trainer):
        """RecBole's trainer, unchanged except for timing each epoch."""

        def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
            t0 = time.perf_counter()
            loss = super()._train_epoch(train_data, epoch_idx, loss_func=loss_func,
                                        show_progress=show_progress)
            dt = time.perf_counter() - t0
            total = float(sum(loss)) if isinstance(loss, tuple) else float(loss)
            state["cur"] = {
                "epoch": int(epoch_idx),
                "train_time_s": round(dt, 4),
                "train_loss": total,
            }
            epochs_log.append(state["cur"])
            return loss

        def _valid_epoch(self, valid_data, show_progress=False):
            t0 = time.perf_counter()
            score, result = super()._valid_epoch(valid_data, show_progress=show_progress)
            dt = time.perf_counter() - t0
            rec = state["cur"]
            rec["valid_time_s"] = round(dt, 4)
            rec[f"valid_{valid_key}"] = float(score)
            rec["valid"] = _metrics(result)
            rec["elapsed_s"] = round(time.perf_counter() - state["fit_start"], 4)
            rec["wall_clock"] = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
            # The checkpoint is only written after this returns; the best-epoch
            # bookkeeping is done in _save_checkpoint below.
            write_result("running")
            return score, result

        def _save_checkpoint(self, epoch, verbose=True, **kwargs):
            # Called by Trainer.fit exactly when the valid metric did not get worse.
            if epoch >= 0:
                state["best_epoch"] = int(epoch)
                if state["cur"] is not None:
                    state["cur"]["is_best"] = True
            saved = super()._save_checkpoint(epoch, verbose=verbose, **kwargs)
            if epoch >= 0:
                # Test metrics of the best epoch so far (the model in memory is that
                # epoch's), so a run stopped by a time budget still reports honestly.
                result = self.evaluate(test_data, load_best_model=False, show_progress=False)
                state["test_at_best"] = {"epoch": int(epoch), **_metrics(result)}
                write_result("running")
            return saved

    trainer = TimedTrainer(config, model)

    machine = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(config["device"]),
    }
    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "recbole": recbole.__version__,
    }
    try:
        import numpy, pandas  # noqa: E401

        versions.update(numpy=numpy.__version__, pandas=pandas.__version__)
    except ImportError:
        pass

    cfg_subset = {}
    for k in CONFIG_KEYS:
        try:
            v = config[k]
        except (KeyError, AttributeError):
            continue
        cfg_subset[k] = _jsonable(v)

    final = {"best_valid": None, "test": None, "best_valid_score": None,
             "train_wall_s": None, "stopped_early": None, "finished_at": None}

    def write_result(status):
        train_times = [e["train_time_s"] for e in epochs_log]
        payload = {
            "library": "RecBole",
            "model": args.model,
            "dataset": "ml-100k",
            "seed": args.seed,
            "status": status,
            "max_epochs": args.epochs,
            "stopping_step": args.stopping_step,
            "epochs_run": len(epochs_log),
            "stopped_early": final["stopped_early"],
            "best_epoch": state["best_epoch"],
            "best_valid_score": final["best_valid_score"],
            "valid_metric": config["valid_metric"],
            "best_valid": final["best_valid"],
            "test": final["test"],
            "test_at_best_so_far": state["test_at_best"],
            "train_wall_s": final["train_wall_s"],
            "mean_epoch_train_s": (round(sum(train_times) / len(train_times), 4)
                                   if train_times else None),
            "total_epoch_train_s": round(sum(train_times), 4),
            "n_params": n_params,
            "data": data_stats,
            "config": cfg_subset,
            "machine": machine,
            "versions": versions,
            "command": command,
            "started_at": started_at,
            "finished_at": final["finished_at"],
            "epochs": epochs_log,
        }
        _write_json(out, payload)

    started_at = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    print(f"[recbole_peer] {args.model} seed={args.seed} threads={torch.get_num_threads()} "
          f"users={data_stats['n_users']} items={data_stats['n_items']} "
          f"train_samples={data_stats['n_train_samples']} -> {out}", flush=True)

    state["fit_start"] = time.perf_counter()
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=True, show_progress=config["show_progress"])
    final["train_wall_s"] = round(time.perf_counter() - state["fit_start"], 4)
    # Trainer.fit breaks out of its loop only when early stopping fires.
    final["stopped_early"] = bool(trainer.cur_step > config["stopping_step"])

    # Same as Trainer.evaluate(load_best_model=True), but torch>=2.6 defaults to
    # weights_only=True, which rejects RecBole's checkpoint (it pickles the config).
    # The file is the one this run has just written.
    checkpoint = torch.load(trainer.saved_model_file, map_location=trainer.device,
                            weights_only=False)
    trainer.model.load_state_dict(checkpoint["state_dict"])
    trainer.model.load_other_parameter(checkpoint.get("other_parameter"))
    test_result = trainer.evaluate(test_data, load_best_model=False,
                                   show_progress=config["show_progress"])
    final.update(
        best_valid=_metrics(best_valid_result),
        test=_metrics(test_result),
        best_valid_score=float(best_valid_score),
        finished_at=_dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    )
    write_result("finished")

    os.chdir(REPO_ROOT)
    if args.keep_tmp:
        print(f"[recbole_peer] run directory kept: {run_dir}")
    else:
        shutil.rmtree(run_dir, ignore_errors=True)

    names = [f"{m}@{k}" for k in (10, 20) for m in ("hit", "ndcg", "mrr")]
    print()
    print(f"### RecBole {recbole.__version__} {args.model} on ml-100k (seed {args.seed})")
    print()
    print("| split | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for split, res in (("valid (best)", final["best_valid"]), ("test", final["test"])):
        print(f"| {split} | " + " | ".join(f"{res.get(n, float('nan')):.4f}" for n in names) + " |")
    print()
    print(f"epochs run: {len(epochs_log)} / {args.epochs} (early stop: {final['stopped_early']}), "
          f"best epoch: {state['best_epoch']}, train wall: {final['train_wall_s']:.1f}s, "
          f"mean epoch train: {sum(e['train_time_s'] for e in epochs_log) / max(len(epochs_log), 1):.2f}s, "
          f"threads: {torch.get_num_threads()}")
    print(f"result: {out}")


if __name__ == "__main__":
    main()
