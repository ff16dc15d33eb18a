"""Peer baseline: RePlay 0.22's SASRec with full cross-entropy, on lsrec_hf's leave-one-out split.

Everything that makes the numbers is RePlay's (and Lightning's), not lsrec_hf's: the data module
(``replay.data.nn.ParquetModule`` with RePlay's default SasRec batch transforms), the model
(``replay.nn.sequential.SasRec.from_params``: item + learned positional embeddings, pre-LN transformer
blocks, tied output embeddings), the loss (``replay.nn.loss.CE``: softmax over the whole catalog at every
position, no negative sampling), the optimiser factory (Adam, RePlay's betas 0.9/0.98), the Lightning
wrapper (``replay.nn.lightning.LightningModule``), the metric callback (``ComputeMetricsCallback``) and its
seen-items postprocessor (``SeenItemsFilter``). Only the split comes from lsrec_hf, through the parquet of
per-user sequences that ``bench/export_sequences.py`` writes with lsrec_hf's own loader.

Protocol ("leave-one-out, full ranking, history excluded"), identical to ``lsrec_hf.processing.sequences.leave_one_out``
and ``lsrec_hf.evaluation``:
  * a user with >= 3 events: train on items[:-2]; validation target items[-2] given items[:-2]; test
    target items[-1] given items[:-1]. Users with < 3 events are train-only.
  * every one of the num_items catalog items is scored (the padding row RePlay adds is not a column of
    the logits); the user's WHOLE input history (not only the last --max_length events the model reads)
    is set to -inf before the top-k, unless ``--exclude_history false``.
  * HR@K (= Recall@K with one target), NDCG@K = 1/log2(rank+1) if rank <= K, MRR@K = 1/rank if rank <= K,
    K in {10, 20}, averaged over all evaluated users (a miss counts 0).
  * model selection and early stopping on validation NDCG@10, patience in epochs; the reported test
    metrics are those of the best-validation epoch's weights.
Training examples are RePlay's usual ones: the last max_length+1 items of each training sequence, one
next-item target per position (no sliding windows over older parts of long histories).

Nothing was tuned for this script: the defaults are the settings lsrec_hf's SASRec comparisons use
(hidden 64, 2 layers, 2 heads, dropout 0.2, lr 1e-3, batch 128, max_length 50); the FFN width is RePlay's
default (= hidden); weight decay 0 and Adam betas (0.9, 0.98) are RePlay's defaults.
Measured with these defaults on 1 thread of a 2-core machine: ml-100k ~2 s per epoch (+0.2 s validation),
seed 2026 stopped at epoch 52, best epoch 42, test NDCG@10 0.0984 (HR@10 0.1856); ml-1m with
--max_length 200, ~144 s per epoch (+14 s validation). On a GPU (Lightning's accelerator "auto" takes it) a Beauty epoch
takes about 3 s (+1-2 s validation) on one NVIDIA H200 with three runs sharing it.

Environment (RePlay needs its own, lsrec_hf's is not used here):

    python -m venv .venv-replay && .venv-replay/bin/pip install replay-rec==0.22.0 torch==2.13.0 \\
        lightning==2.6.6 pytorch-optimizer==3.11.0 safetensors==0.8.0

Commands, from the repository root:

    .venv/bin/python bench/export_sequences.py --dataset ml-100k --out outputs/sequences/ml-100k.parquet
    OMP_NUM_THREADS=1 .venv-replay/bin/python bench/replay_peer.py \\
        --sequences outputs/sequences/ml-100k.parquet --seed 2026 --threads 1 \\
        --out bench/results/replay_sasrec_ml-100k_seed2026.json

A long run (Beauty: about 4 min an epoch) can be killed and go on where it stopped: give it a folder for its
checkpoints, and run the same command again with ``--resume true``:

    OMP_NUM_THREADS=1 .venv-replay/bin/python bench/replay_peer.py \\
        --sequences outputs/sequences/amazon-beauty.parquet --seed 42 --threads 1 --dropout 0.5 \\
        --work_dir outputs/replay_work/amazon-beauty_seed42 --resume true \\
        --out bench/results/replay_sasrec_amazon-beauty_seed42.json

Lightning restores the weights, the optimizer, the epoch, the best score and the patience count from
``last.ckpt``; the data loader's shuffling starts again from the seed, so the JSON says after which epochs a
resume began (``resumed_after_epochs``).

``--scores_out FILE.safetensors`` also keeps the best epoch's scores of every item for each validation and test
user, so that ``bench/peer_priors.py`` can give the peer lsrec_hf's priors, chosen on its own validation scores.

The JSON result is rewritten after every epoch (``"status": "running"``, the per-epoch curve) and at the end
(``"status": "finished"``, ``best_epoch``, ``valid`` and ``test`` at the best epoch, settings, versions).
"""

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from datetime import datetime, timezone

K_VALUES = (10, 20)
PROTOCOL = {True: "leave-one-out, full ranking, history excluded",
            False: "leave-one-out, full ranking, history not excluded"}
METADATA_KEY = b"lsrec_hf.sequences"  # a name in the parquet files written so far, not a module path: keep


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sequences", required=True, help="parquet from bench/export_sequences.py")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--threads", type=int, default=1, help="torch / arrow threads")
    p.add_argument("--max_length", type=int, default=50, help="events the model reads (the most recent)")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight_decay", type=float, default=0.0)
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--eval_batch_size", type=int, default=256)
    p.add_argument("--patience", type=int, default=10, help="epochs without a better valid NDCG@10")
    p.add_argument("--max_epochs", type=int, default=200)
    p.add_argument("--exclude_history", type=_bool, default=True, help="true (default) or false")
    p.add_argument("--out", default=None, help="default bench/results/replay_sasrec_<dataset>_seed<N>.json")
    p.add_argument("--work_dir", default=None,
                   help="keep the split parquets and Lightning checkpoints here (last.ckpt after every epoch), "
                        "so that a killed run can go on with --resume true; default: a temporary folder")
    p.add_argument("--resume", type=_bool, default=False,
                   help="go on from <work_dir>/last.ckpt and the curve already in --out")
    p.add_argument("--scores_out", default=None,
                   help="also write the best epoch's scores of every item for each validation and test user (no "
                        "history mask, the users in the split's order) to this .safetensors file, for "
                        "bench/peer_priors.py")
    args = p.parse_args(argv)
    if args.resume and not args.work_dir:
        p.error("--resume true needs --work_dir (the folder of the killed run's last.ckpt)")
    return args


def _bool(text):
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def read_sequences(path):
    """User sequences (lists of catalog indices) and the export's info (num_items, dataset name)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = (table.schema.metadata or {}).get(METADATA_KEY)
    if meta is not None:
        info = json.loads(meta)
    else:  # a parquet written without metadata: the sidecar JSON
        with open(path + ".json", encoding="utf-8") as f:
            info = json.load(f)
    return table.column("user_id").to_pylist(), table.column("items").to_pylist(), info


def leave_one_out(items):
    """lsrec_hf's split, as lists: train sequences and (history, target) pairs for valid and test."""
    train, valid, test = [], [], []
    for seq in items:
        if len(seq) < 3:  # train-only users, as in lsrec_hf
            train.append(seq)
            continue
        train.append(seq[:-2])
        valid.append((seq[:-2], seq[-2]))
        test.append((seq[:-1], seq[-1]))
    # a one-event training sequence has no next-item target: it would only add an all-padding row
    return [s for s in train if len(s) >= 2], valid, test


def write_split_parquets(work_dir, train, valid, test):
    """One parquet per split in the layout RePlay's ParquetModule reads (numeric list columns only).

    Evaluation files carry the history twice: ``item_id`` (the model reads its last max_length events;
    ParquetModule left-pads and keeps the tail) and ``seen_ids`` (read in full, for SeenItemsFilter, so
    the whole history is excluded as in lsrec_hf, not only the part the model saw).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = {"train": os.path.join(work_dir, "train.parquet")}
    pq.write_table(pa.table({"item_id": pa.array(train, type=pa.list_(pa.int64()))}), paths["train"])
    for name, pairs in (("validate", valid), ("test", test)):
        histories = pa.array([h for h, _ in pairs], type=pa.list_(pa.int64()))
        paths[name] = os.path.join(work_dir, f"{name}.parquet")
        pq.write_table(pa.table({
            "item_id": histories,
            "seen_ids": histories,
            "ground_truth": pa.array([[t] for _, t in pairs], type=pa.list_(pa.int64())),
        }), paths[name])
    return paths


def build_datamodule(paths, num_items, schema, args, longest_history):
    """RePlay's ParquetModule with its default SasRec transforms; padding id = num_items (RePlay's convention)."""
    import torch
    from replay.data.nn import ParquetModule
    from replay.nn.transform.template import make_default_sasrec_transforms

    item = {"shape": args.max_length, "padding": num_items}
    metadata = {
        # NextTokenTransform shifts by one: read one event more than the model's length
        "train": {"item_id": {"shape": args.max_length + 1, "padding": num_items}},
        # seen_ids padding = num_items is outside [0, num_items): SeenItemsFilter ignores it;
        # ground_truth padding must not be an item id (never used: exactly one target per user)
        "validate": {"item_id": item, "seen_ids": {"shape": longest_history, "padding": num_items},
                     "ground_truth": {"shape": 1, "padding": -1}},
    }
    metadata["test"] = metadata["validate"]
    generator = torch.Generator().manual_seed(args.seed)  # the train shuffling order
    return ParquetModule(
        batch_size={"train": args.batch_size, "validate": args.eval_batch_size, "test": args.eval_batch_size},
        metadata=metadata,
        transforms=make_default_sasrec_transforms(schema),
        config={"train": {"generator": generator, "partition_size": 2 ** 20},
                "validate": {"partition_size": 2 ** 20}, "test": {"partition_size": 2 ** 20}},
        train_path=paths["train"], validate_path=paths["validate"], test_path=paths["test"],
    )


def build_model(num_items, args):
    """SasRec.from_params: RePlay's standard blocks and its full cross-entropy loss (replay.nn.loss.CE)."""
    from replay.data import FeatureHint, FeatureSource, FeatureType
    from replay.data.nn import TensorFeatureInfo, TensorFeatureSource, TensorSchema
    from replay.nn.lightning import LightningModule
    from replay.nn.lightning.optimizer import OptimizerFactory
    from replay.nn.loss import CE
    from replay.nn.sequential import SasRec

    schema = TensorSchema([TensorFeatureInfo(
        "item_id", is_seq=True, feature_type=FeatureType.CATEGORICAL, feature_hint=FeatureHint.ITEM_ID,
        feature_sources=[TensorFeatureSource(FeatureSource.INTERACTIONS, "item_id")],
        # cardinality = padding value = num_items: the embedding table has num_items + 1 rows and
        # get_item_weights() drops the padding row, so logits column j is catalog index j
        cardinality=num_items, padding_value=num_items, embedding_dim=args.hidden,
    )])
    model = SasRec.from_params(schema, embedding_dim=args.hidden, num_heads=args.heads, num_blocks=args.layers,
                               max_sequence_length=args.max_length, dropout=args.dropout)
    assert isinstance(model.loss, CE), "from_params is expected to use the full cross-entropy loss"
    optimizer = OptimizerFactory("adam", learning_rate=args.lr, weight_decay=args.weight_decay)
    return schema, LightningModule(model, optimizer_factory=optimizer), optimizer


def replay_metrics(logged):
    """RePlay's names (recall@10, ...) -> ours (hr@10, ...); recall with one target is the hit rate."""
    out = {}
    for k in K_VALUES:
        out[f"hr@{k}"] = float(logged[f"recall@{k}"])
        out[f"ndcg@{k}"] = float(logged[f"ndcg@{k}"])
        out[f"mrr@{k}"] = float(logged[f"mrr@{k}"])
    return out


def make_recorder(result, out_path, num_items):
    """A Lightning callback: epoch timings, mean train loss, valid metrics; rewrites the JSON each epoch."""
    import lightning

    class Recorder(lightning.Callback):
        def __init__(self):
            self.metrics_callback = None  # set by main: the ComputeMetricsCallback to read
            self.start = None
            self.train_seconds = 0.0

        def on_fit_start(self, trainer, pl_module):
            self.start, self.elapsed_before = time.perf_counter(), None

        def on_train_epoch_start(self, trainer, pl_module):
            if self.elapsed_before is None:  # the first epoch of this process; the loop's epoch is restored by now
                # a resumed run: keep the rows of the epochs the checkpoint holds, count on from their time
                del result["curve"][trainer.current_epoch:]
                self.train_seconds = sum(row["epoch_train_seconds"] for row in result["curve"])
                self.elapsed_before = result["curve"][-1]["elapsed_seconds"] if result["curve"] else 0.0
            self.epoch_start, self.loss_sum, self.loss_rows = time.perf_counter(), 0.0, 0

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            rows = batch["padding_mask"].shape[0]
            self.loss_sum += float(outputs["loss"]) * rows
            self.loss_rows += rows

        def on_validation_start(self, trainer, pl_module):
            self.valid_start = time.perf_counter()

        def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
            # the padding item must not be a column of the scores: column j == catalog index j
            assert outputs["logits"].shape[1] == num_items, outputs["logits"].shape

        def on_train_epoch_end(self, trainer, pl_module):  # runs after this epoch's validation
            now = time.perf_counter()
            epoch_train = self.valid_start - self.epoch_start
            self.train_seconds += epoch_train
            valid = replay_metrics(self.metrics_callback.get_metrics("validate")[trainer.current_epoch])
            result["curve"].append({
                "epoch": trainer.current_epoch + 1, "train_loss": self.loss_sum / max(self.loss_rows, 1),
                **{f"valid_{k}": v for k, v in valid.items()},
                "epoch_train_seconds": round(epoch_train, 3), "epoch_valid_seconds": round(now - self.valid_start, 3),
                "elapsed_seconds": round(self.elapsed_before + now - self.start, 3),
            })
            result["train_seconds"] = round(self.train_seconds, 3)
            write_json(out_path, result)
            row = result["curve"][-1]
            print(f"epoch {row['epoch']}: loss {row['train_loss']:.4f} valid ndcg@10 {row['valid_ndcg@10']:.4f}"
                  f" ({epoch_train:.1f}s train, {row['epoch_valid_seconds']:.1f}s valid)", flush=True)

    return Recorder()


def write_json(path, payload):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def main(argv=None):
    args = parse_args(argv)
    # one thread everywhere, set before torch / arrow start their pools
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))
    import lightning
    import pyarrow
    import replay
    import torch

    wall_start = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    pyarrow.set_cpu_count(args.threads)
    pyarrow.set_io_thread_count(args.threads)
    lightning.seed_everything(args.seed, verbose=False)

    user_ids, items, info = read_sequences(args.sequences)
    num_items, dataset = int(info["num_items"]), info["dataset"]
    out = args.out or f"bench/results/replay_sasrec_{dataset}_seed{args.seed}.json"
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    train, valid, test = leave_one_out(items)
    last_ckpt = os.path.join(args.work_dir, "last.ckpt") if args.work_dir else None
    resuming = args.resume and os.path.exists(last_ckpt)
    if args.resume and not resuming:
        print(f"--resume: no {last_ckpt} yet, starting from epoch 1", flush=True)
    result = {
        "status": "running", "library": "replay", "model": "SasRec", "loss": "CE (full softmax)",
        "dataset": dataset, "sequences": args.sequences, "num_items": num_items,
        "protocol": PROTOCOL[args.exclude_history], "exclude_history": args.exclude_history,
        "split": {"users": len(user_ids), "train_sequences": len(train), "valid_users": len(valid),
                  "test_users": len(test)},
        "hyperparameters": {k: v for k, v in vars(args).items() if k not in ("sequences", "out")},
        "curve": [], "train_seconds": 0.0,
        **environment(lightning, replay, torch, argv),
    }
    if resuming:
        result = resumed_result(out, result)
    write_json(out, result)

    if args.work_dir:
        os.makedirs(args.work_dir, exist_ok=True)
        train_and_test(args, result, out, args.work_dir, (train, valid, test), num_items,
                       resume_from=last_ckpt if resuming else None)
    else:
        with tempfile.TemporaryDirectory(prefix="replay_peer_") as work_dir:
            train_and_test(args, result, out, work_dir, (train, valid, test), num_items)
    result["wall_seconds"] = round(time.perf_counter() - wall_start, 3)
    result["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_json(out, result)
    print(f"best epoch {result['best_epoch']}: test " + " ".join(f"{k} {v:.4f}" for k, v in result["test"].items()))
    print(f"wrote {out}")


def resumed_result(out, fresh):
    """The killed run's JSON (its curve and train time) under this run's settings and environment."""
    if not os.path.exists(out):
        raise SystemExit(f"--resume: {out} is missing; it holds the curve of the epochs already run")
    with open(out, encoding="utf-8") as f:
        previous = json.load(f)
    for key in ("dataset", "num_items", "exclude_history", "split"):
        if previous.get(key) != fresh[key]:
            raise SystemExit(f"--resume: {out} has {key}={previous.get(key)!r}, this run {fresh[key]!r}")
    # the data loader's shuffling starts again from the seed, so resumed epochs are not those of an
    # uninterrupted run: say where each resume began
    fresh["curve"], fresh["train_seconds"] = previous["curve"], previous["train_seconds"]
    fresh["resumed_after_epochs"] = previous.get("resumed_after_epochs", []) + [len(previous["curve"])]
    fresh["started"] = previous.get("started", fresh["started"])
    return fresh


def train_and_test(args, result, out, work_dir, splits, num_items, resume_from=None):
    """Lightning fit with early stopping on valid NDCG@10, then the test metrics of the best checkpoint."""
    import lightning
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from replay.nn.lightning.callback import ComputeMetricsCallback
    from replay.nn.lightning.postprocessor import SeenItemsFilter

    train, valid, test = splits
    paths = write_split_parquets(work_dir, train, valid, test)
    schema, module, optimizer = build_model(num_items, args)
    result["hyperparameters"]["adam_betas"] = list(optimizer.betas)
    result["n_params"] = int(sum(p.numel() for p in module.parameters()))
    datamodule = build_datamodule(paths, num_items, schema, args, max(len(h) for h, _ in valid + test))
    # RePlay's own metric callback does full-ranking HR/NDCG/MRR; its SeenItemsFilter masks the full
    # history read from `seen_ids` (item ids outside [0, num_items), i.e. padding, are ignored)
    postprocessors = [SeenItemsFilter(item_count=num_items, seen_items_column="seen_ids")] \
        if args.exclude_history else []
    metrics_cb = ComputeMetricsCallback(metrics=["recall", "ndcg", "mrr"], ks=list(K_VALUES),
                                        postprocessors=postprocessors, item_count=num_items, verbose=False)
    recorder = make_recorder(result, out, num_items)
    recorder.metrics_callback = metrics_cb
    # patience counts validation checks, one per epoch; both callbacks need a strict improvement,
    # so the kept checkpoint is the first epoch with the best valid NDCG@10
    checkpoint = ModelCheckpoint(dirpath=work_dir, monitor="ndcg@10", mode="max", save_top_k=1, save_last=True)
    stopping = EarlyStopping(monitor="ndcg@10", mode="max", patience=args.patience)
    trainer = lightning.Trainer(
        max_epochs=args.max_epochs, accelerator="auto", devices=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=work_dir,
        callbacks=[metrics_cb, recorder, stopping, checkpoint],
    )
    # Lightning restores the weights, optimizer, epoch and the callbacks' states (best score, patience
    # count, RePlay's per-epoch metrics); weights_only=False for the same reason as the test below
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=False)

    best = max(result["curve"], key=lambda row: row["valid_ndcg@10"])  # first maximum
    assert abs(float(checkpoint.best_model_score) - best["valid_ndcg@10"]) < 1e-6, checkpoint.best_model_path
    # weights_only=False: RePlay's LightningModule pickles its OptimizerFactory into the hyperparameters,
    # which torch>=2.6's safe loader refuses; the checkpoint is our own, written a moment ago
    logged = trainer.test(module, datamodule=datamodule, ckpt_path=checkpoint.best_model_path,
                          verbose=False, weights_only=False)[0]
    result.update({
        "status": "finished", "best_epoch": best["epoch"], "epochs_run": len(result["curve"]),
        "stopped_early": len(result["curve"]) < args.max_epochs,
        "valid": {k[len("valid_"):]: v for k, v in best.items() if k.startswith("valid_")},
        "test": replay_metrics(logged),
    })
    # trainer.test loaded the best weights into `module`: check RePlay's figures with our own code
    result["test_check"] = independent_test_check(module, datamodule, num_items, args.exclude_history,
                                                  result["test"])
    if args.scores_out:
        write_score_matrices(args.scores_out, module, datamodule, {"valid": valid, "test": test})
        result["scores_out"] = args.scores_out


def write_score_matrices(path, module, datamodule, splits):
    """The best weights' logits `[users, num_items]` per evaluation split, before any history mask, and the
    targets they were scored for (so that a reader can check the users' order against its own split)."""
    import numpy as np
    import torch
    from lightning.pytorch.utilities import move_data_to_device
    from safetensors.numpy import save_file

    model = module.model.eval()
    device = next(model.parameters()).device
    tensors = {}
    for name, loader, stage in (("valid", datamodule.val_dataloader(), "validate"),
                                ("test", datamodule.test_dataloader(), "test")):
        transform = datamodule.compiled_transforms[stage]
        blocks, targets = [], []
        with torch.no_grad():
            for raw in loader:
                batch = transform(move_data_to_device(raw, device))
                logits = model(feature_tensors=batch["feature_tensors"], padding_mask=batch["padding_mask"])["logits"]
                blocks.append(logits.float().cpu().numpy())
                targets.append(batch["ground_truth"][:, 0].cpu().numpy())
        tensors[f"{name}_scores"] = np.ascontiguousarray(np.concatenate(blocks))
        tensors[f"{name}_targets"] = np.concatenate(targets).astype(np.int64)
        expected = np.asarray([target for _, target in splits[name]], dtype=np.int64)
        if not np.array_equal(tensors[f"{name}_targets"], expected):
            raise RuntimeError(f"RePlay's {stage} loader did not keep the split's user order")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_file(tensors, path, metadata={"what": "RePlay SasRec logits at the best validation epoch, no history mask"})


def independent_test_check(module, datamodule, num_items, exclude, replay_test):
    """Our own test metrics from the same weights; the largest difference to RePlay's is recorded.

    Written separately from RePlay's callback on purpose: it masks the history with its own scatter and
    ranks the target by counting higher scores, so a wrong item-id offset or a masked target would show.
    """
    import torch
    from lightning.pytorch.utilities import move_data_to_device

    model = module.model.eval()
    transform = datamodule.compiled_transforms["test"]
    sums = {f"{m}@{k}": 0.0 for k in K_VALUES for m in ("hr", "ndcg", "mrr")}
    users = masked_targets = 0
    device = next(model.parameters()).device
    with torch.no_grad():
        for raw in datamodule.test_dataloader():
            batch = transform(move_data_to_device(raw, device))
            scores = model(feature_tensors=batch["feature_tensors"], padding_mask=batch["padding_mask"])["logits"]
            scores = scores.float().clone()
            target = batch["ground_truth"][:, 0]
            if exclude:
                seen = batch["seen_ids"]
                real = seen < num_items  # padding id num_items is not an item
                masked_targets += int(((seen == target[:, None]) & real).any(1).sum())
                rows = torch.arange(seen.shape[0], device=seen.device)[:, None].expand_as(seen)
                scores[rows[real], seen[real]] = float("-inf")
            rank = 1 + (scores > scores.gather(1, target[:, None])).sum(1).float()  # 1-based rank
            for k in K_VALUES:
                inside = (rank <= k).float()
                sums[f"hr@{k}"] += float(inside.sum())
                sums[f"ndcg@{k}"] += float((inside / torch.log2(rank + 1)).sum())
                sums[f"mrr@{k}"] += float((inside / rank).sum())
            users += scores.shape[0]
    ours = {k: v / users for k, v in sums.items()}
    return {"metrics": ours, "users": users, "targets_in_own_history": masked_targets,
            "max_abs_diff_to_replay": max(abs(ours[k] - replay_test[k]) for k in ours)}


def environment(lightning, replay, torch, argv):
    return {
        "versions": {"python": platform.python_version(), "replay": getattr(replay, "__version__", "?"),
                     "torch": torch.__version__, "lightning": lightning.__version__},
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "torch_threads": torch.get_num_threads()},
        "command": shlex.join([sys.executable] + (sys.argv if argv is None else [sys.argv[0], *argv])),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


if __name__ == "__main__":
    main()
