"""The main job end to end on a slice of the real MovieLens-100K: one process, two gloo processes, resume."""

import json
import os
import subprocess
import sys

import pytest
import torch
from huggingface_hub import ModelCard
from transformers import AutoModel

import lsrec_hf  # noqa: F401  (registers LSRec with the Auto classes)
from conftest import ROOT, SMALL_MODEL, TINY, run, tiny_table
from lsrec_hf.evaluation import evaluate_ranking
from lsrec_hf.processing.sequences import NO_VALIDATION_PROTOCOL, build_user_sequences, leave_one_out
from lsrec_hf.data import load_data

RECIPE = os.path.join(ROOT, "recipes", "pretrain.py")


def test_pretrain_prints_test_metrics_and_saves_a_reloadable_checkpoint(ml100k_slice, tmp_path):
    out = tmp_path / "run"
    stdout = run([sys.executable, RECIPE, "--dataset", ml100k_slice, "--output_dir", str(out),
                  "--num_epochs", "3", *SMALL_MODEL])
    assert "NDCG" in stdout and "@10" in stdout
    results = json.loads((out / "eval_results.json").read_text())
    assert results["ranking"] == "full catalog, history items excluded" and results["exclude_history"] is True
    assert results["num_items"] == 1682 and results["num_test_users"] == 120
    assert 0.0 < results["test"]["hr@20"] <= 1.0
    assert {"config.json", "model.safetensors", "catalog.json", "README.md"} <= set(os.listdir(out))
    # the priors were chosen on validation; kept (and saved, and tested with) only where they raised NDCG@10,
    # the co-occurrence prior on top of the model with its trend prior
    trend, cooccurrence = results["trend_prior"], results["cooccurrence_prior"]
    for prior, name in ((trend, "trend_prior"), (cooccurrence, "cooccurrence_prior")):
        assert prior["chosen"] == (prior["valid_ndcg@10"] > prior["valid_ndcg@10_without"])
        assert (f"{name}.safetensors" in os.listdir(out)) == prior["chosen"]
    if trend["chosen"]:
        assert cooccurrence["valid_ndcg@10_without"] == pytest.approx(trend["valid_ndcg@10"], abs=1e-9)
    assert ("test_without_priors" in results) == (trend["chosen"] or cooccurrence["chosen"])
    assert ("test_without_cooccurrence_prior" in results) == (trend["chosen"] and cooccurrence["chosen"])

    # the model card carries the test metrics in its model-index metadata
    card = ModelCard.load(out / "README.md")
    reported = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert reported["ndcg@10"] == pytest.approx(results["test"]["ndcg@10"], abs=1e-4)
    assert card.data.eval_results[0].dataset_split == "test"
    assert "input history excluded from the ranking" in card.text

    # AutoModel after `import lsrec_hf` gives the same scores, hence the same metrics.
    model = AutoModel.from_pretrained(out)
    splits = leave_one_out(build_user_sequences(*_interactions_and_catalog(ml100k_slice)))
    reloaded = evaluate_ranking(model, splits.test)
    for key in ("hr@10", "ndcg@10", "mrr@20"):
        assert reloaded[key] == pytest.approx(results["test"][key], abs=1e-9)


def test_ranking_with_the_history_kept_is_recorded_and_measured_that_way(ml100k_slice, tmp_path):
    out = tmp_path / "kept"
    run([sys.executable, RECIPE, "--dataset", ml100k_slice, "--output_dir", str(out), "--num_epochs", "1",
         "--text_encoder", "none", "--exclude_history", "false", *SMALL_MODEL])
    results = json.loads((out / "eval_results.json").read_text())
    assert results["exclude_history"] is False and results["ranking"] == "full catalog, history items kept"
    assert "kept in the ranking" in ModelCard.load(out / "README.md").text
    splits = leave_one_out(build_user_sequences(*_interactions_and_catalog(ml100k_slice)))
    model = AutoModel.from_pretrained(out)
    kept = evaluate_ranking(model, splits.test, exclude_history=False)
    excluded = evaluate_ranking(model, splits.test)
    assert results["test"]["ndcg@20"] == pytest.approx(kept["ndcg@20"], abs=1e-9)
    assert kept["ndcg@20"] != pytest.approx(excluded["ndcg@20"], abs=1e-9)


def test_without_a_validation_hold_out_every_epoch_runs_the_last_is_kept_and_no_prior_is_chosen(ml100k_slice,
                                                                                                  tmp_path):
    out = tmp_path / "no-validation"
    stdout = run([sys.executable, RECIPE, "--dataset", ml100k_slice, "--output_dir", str(out), "--num_epochs", "3",
                  "--patience", "1", "--text_encoder", "none", "--hold_out_validation", "false", *SMALL_MODEL])
    assert "no validation users" in stdout and "last epoch 3" in stdout
    results = json.loads((out / "eval_results.json").read_text())
    assert results["protocol"] == NO_VALIDATION_PROTOCOL and results["validated"] is False
    assert results["epochs_run"] == results["best_epoch"] == 3 and results["valid"] == {}
    assert all(not key.startswith("valid_") for entry in results["history"] for key in entry)
    assert results["trend_prior"] == results["cooccurrence_prior"] == {"chosen": False, "reason": "no validation users"}
    assert not {"trend_prior.safetensors", "cooccurrence_prior.safetensors"} & set(os.listdir(out))
    card = ModelCard.load(out / "README.md").text
    assert "no validation event held out: the last epoch's weights" in card and NO_VALIDATION_PROTOCOL in card
    # trained on each user's second-to-last event, tested on the same targets as with a validation hold-out
    sequences = build_user_sequences(*_interactions_and_catalog(ml100k_slice))
    trained_on, held_out = leave_one_out(sequences, validation=False), leave_one_out(sequences)
    assert trained_on.test.user_ids == held_out.test.user_ids
    assert sum(map(len, trained_on.train)) == sum(map(len, held_out.train)) + len(held_out.valid)
    reloaded = evaluate_ranking(AutoModel.from_pretrained(out), held_out.test)
    assert reloaded["ndcg@10"] == pytest.approx(results["test"]["ndcg@10"], abs=1e-9)


def _interactions_and_catalog(directory):
    data = load_data(directory)
    return data.interactions, data.catalog


def test_training_resumes_from_the_last_checkpoint(ml100k_slice, tmp_path):
    out = tmp_path / "run"
    base = [sys.executable, RECIPE, "--dataset", ml100k_slice, "--output_dir", str(out), *SMALL_MODEL,
            "--text_encoder", "none"]
    run(base + ["--num_epochs", "1"])
    stdout = run(base + ["--num_epochs", "2", "--resume", "true"])
    assert "resumed from" in stdout
    results = json.loads((out / "eval_results.json").read_text())
    assert [h["epoch"] for h in results["history"]] == [1, 2]


def test_two_gloo_processes_train_data_parallel(ml100k_slice, tmp_path):
    out = tmp_path / "run"
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--main_process_port", "29531"]
    stdout = run(launcher + [RECIPE, "--dataset", ml100k_slice, "--output_dir", str(out), "--num_epochs", "2",
                             *SMALL_MODEL], env_extra={"ACCELERATE_USE_CPU": "true"})
    assert "2 process(es)" in stdout
    results = json.loads((out / "eval_results.json").read_text())
    assert results["num_processes"] == 2
    assert results["test"]["num_users"] == 120  # every test user evaluated once across the two ranks
    # both ranks stepped the same replicated weights: the saved model reproduces the reported metrics
    splits = leave_one_out(build_user_sequences(*_interactions_and_catalog(ml100k_slice)))
    reloaded = evaluate_ranking(AutoModel.from_pretrained(out), splits.test)
    assert reloaded["ndcg@10"] == pytest.approx(results["test"]["ndcg@10"], abs=1e-9)
    assert torch.isfinite(torch.tensor(results["test"]["ndcg@10"]))


# Runs the recipe's own `main` unchanged, after noting on every rank a digest of the split it built.
_SPLIT_PROBE = """
import hashlib, json, os, sys
sys.path.insert(0, {recipes!r})
import pretrain

make_splits = pretrain.make_splits


def noted_make_splits(data, data_args, accelerator, **kwargs):
    sequences, splits = make_splits(data, data_args, accelerator, **kwargs)
    digest = hashlib.sha256()
    for part in (*splits.train, *splits.test.histories, splits.test.targets):
        digest.update(bytes(memoryview(part.astype("int64"))))
    with open(os.path.join({out!r}, f"split-rank{{accelerator.process_index}}.json"), "w") as f:
        json.dump({{"digest": digest.hexdigest(), "num_processes": accelerator.num_processes}}, f)
    return sequences, splits


pretrain.make_splits = noted_make_splits
pretrain.run_recipe(pretrain.main)
"""


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_machines_and_one_process(ml100k_slice, tmp_path_factory):
    """The recipe on two "machines" (one process each, gloo) that rendezvous over TCP at 127.0.0.1, as two cluster
    nodes would, then in one process: their output folders and each rank's split digest."""
    tmp_path = tmp_path_factory.mktemp("machines")
    probe = tmp_path / "probe.py"
    probe.write_text(_SPLIT_PROBE.format(recipes=os.path.dirname(RECIPE), out=str(tmp_path)))
    recipe = ["--dataset", ml100k_slice, "--num_epochs", "2", "--text_encoder", "none", *SMALL_MODEL]
    port = _free_port()
    env = {**os.environ, "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1", "ACCELERATE_USE_CPU": "true",
           "OMP_NUM_THREADS": "1"}
    machines = []
    for rank in (0, 1):
        launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", "2",
                    "--machine_rank", str(rank), "--main_process_ip", "127.0.0.1", "--main_process_port", str(port),
                    "--num_processes", "2"]
        machines.append(subprocess.Popen(launcher + [str(probe), *recipe, "--output_dir", str(tmp_path / "two")],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                         cwd=ROOT))
    try:
        outputs = [machine.communicate(timeout=600) for machine in machines]
    finally:
        for machine in machines:
            machine.kill()
    for rank, (machine, (stdout, stderr)) in enumerate(zip(machines, outputs)):
        assert machine.returncode == 0, f"machine {rank} failed:\n{stdout[-2000:]}\n{stderr[-4000:]}"
    splits = [json.loads((tmp_path / f"split-rank{rank}.json").read_text()) for rank in (0, 1)]
    run([sys.executable, str(probe), *recipe, "--output_dir", str(tmp_path / "one")])
    one_split = json.loads((tmp_path / "split-rank0.json").read_text())
    return {"stdout": outputs[0][0], "splits": splits, "one_split": one_split, "two": tmp_path / "two",
            "one": tmp_path / "one"}


def test_two_machines_on_one_host_train_like_one_process(two_machines_and_one_process):
    runs = two_machines_and_one_process
    assert "2 process(es)" in runs["stdout"]
    splits = runs["splits"]
    assert splits[0] == splits[1] and splits[0]["num_processes"] == 2  # both ranks built the same split...
    assert runs["one_split"]["digest"] == splits[0]["digest"]  # ...the one a single process builds
    two = json.loads((runs["two"] / "eval_results.json").read_text())
    one = json.loads((runs["one"] / "eval_results.json").read_text())
    assert two["num_processes"] == 2 and one["num_processes"] == 1
    assert two["test"]["num_users"] == one["test"]["num_users"] == 120
    # Within noise: one process's test NDCG@20 over seeds 42-46 here is 0.035 with a std of 0.0097, so the
    # difference of two runs has a std of about 0.014; 0.04 is 3 of those.
    assert two["test"]["ndcg@20"] == pytest.approx(one["test"]["ndcg@20"], abs=0.04)


def test_two_machines_follow_the_learning_rate_schedule_of_one_process(two_machines_and_one_process):
    runs = two_machines_and_one_process
    steps = [json.loads((runs[name] / "checkpoints" / "last" / "scheduler.json").read_text())["last_epoch"]
             for name in ("one", "two")]
    assert steps[0] == steps[1]


@pytest.mark.parametrize("content, expected", [
    ("user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n1\t3\tyesterday\n", "bad.inter, line 3"),
    ("user_id:token\titem_id:token\ttimestamp:float\n", "no rows"),
    ("user:token\titem_id:token\ttimestamp:float\n1\t2\t3\n", "user_id"),
])
def test_bad_input_stops_with_a_message_naming_file_and_row_not_a_traceback(tmp_path, content, expected):
    (tmp_path / "bad.inter").write_text(content, encoding="utf-8")
    result = subprocess.run([sys.executable, RECIPE, "--dataset", str(tmp_path), "--output_dir", str(tmp_path / "o")],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode != 0
    assert expected in result.stderr and "Traceback" not in result.stderr


def test_missing_dataset_path_is_named(tmp_path):
    result = subprocess.run([sys.executable, RECIPE, "--dataset", str(tmp_path / "nowhere")],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode != 0 and "nowhere" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("policy, dropped, events", [("drop", 1, 15), ("keep", 0, 16)])
def test_duplicate_events_are_counted_in_the_report_never_dropped_silently(tmp_path, policy, dropped, events):
    rows = ["user_id,item_id,timestamp"] + [f"u{u},i{(u + k) % 7},{100 * k}" for u in range(3) for k in range(5)]
    rows.append("u0,i0,0")  # the same event as the first row
    (tmp_path / "events.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    stdout = run([sys.executable, RECIPE, "--dataset", str(tmp_path / "events.csv"), "--output_dir", str(tmp_path / "o"),
                  "--num_epochs", "1", *SMALL_MODEL, "--text_encoder", "none", "--duplicates", policy])
    assert f"rows read: 16, blank lines: 0, duplicates dropped: {dropped}, interactions: {events}" in stdout
    assert f"3 users, 7 items, {events} events" in stdout


# --- the command line a transformers user expects ---------------------------------------------------------------

@pytest.fixture
def pretrain(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # a default output_dir lands here, not in the repository
    monkeypatch.syspath_prepend(os.path.join(ROOT, "recipes"))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    import pretrain

    yield pretrain
    sys.modules.pop("pretrain", None)


@pytest.mark.filterwarnings("ignore:.*appear only in the interactions")  # a table without an item file
def test_transformers_flag_names_and_the_separator_the_loader_advises_are_accepted(pretrain, tmp_path):
    table = tiny_table(tmp_path / "events.csv", sep=";")
    pretrain.main(["--dataset", table, "--sep", ";", "--encoding", "utf-8", "--output_dir", str(tmp_path / "run"),
                   "--num_train_epochs", "1", "--per_device_train_batch_size", "8", *TINY])
    assert json.loads((tmp_path / "run" / "eval_results.json").read_text())["epochs_run"] == 1


@pytest.mark.filterwarnings("ignore:.*appear only in the interactions")  # a table without an item file
def test_the_width_and_dropout_follow_the_size_of_the_log_unless_given(pretrain, tmp_path, monkeypatch, capsys):
    from lsrec_hf.training import recipe_utils

    table = tiny_table(tmp_path / "events.csv")  # 72 events
    unsized = [arg for flag, value in zip(TINY[::2], TINY[1::2]) if flag not in ("--hidden_size", "--intermediate_size")
               for arg in (flag, value)]

    def size_of(name, *flags):
        pretrain.main(["--dataset", table, "--output_dir", str(tmp_path / name), "--num_epochs", "1", *unsized, *flags])
        config = json.loads((tmp_path / name / "config.json").read_text())
        return (config["hidden_size"], config["intermediate_size"], config["hidden_dropout_prob"],
                config["attention_probs_dropout_prob"])

    assert size_of("small") == (64, 256, 0.3, 0.3)
    monkeypatch.setattr(recipe_utils, "WIDE_FROM_EVENTS", 72)  # the tiny log now counts as a large one
    assert size_of("large") == (128, 512, 0.2, 0.2)
    assert ("72 events, so dropout 0.2 (--hidden_dropout_prob, --attention_probs_dropout_prob to choose)"
            in capsys.readouterr().out)
    assert size_of("given", "--hidden_size", "32", "--hidden_dropout_prob", "0.1") == (32, 128, 0.1, 0.2)
    assert "so dropout 0.2 (--attention_probs_dropout_prob to choose)" in capsys.readouterr().out
    assert size_of("both_given", "--hidden_size", "32", "--intermediate_size", "48",
                   "--attention_probs_dropout_prob", "0.05") == (32, 48, 0.2, 0.05)


def test_an_unknown_flag_is_named_with_the_closest_one(pretrain, capsys):
    with pytest.raises(SystemExit):
        pretrain.main(["--epochs", "1", "--dataset", "no-such.csv"])
    assert "unknown argument '--epochs'; did you mean --num_epochs?" in capsys.readouterr().err


def test_help_gives_every_model_size_flag_a_description(pretrain, capsys):
    with pytest.raises(SystemExit):
        pretrain.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_dropout_prob"):
        after = text.split(f"--{flag} {flag.upper()}")[1]
        assert not after.lstrip().startswith("(default"), flag


def test_push_to_hub_without_the_hub_stops_before_training(pretrain, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(SystemExit, match=r"--push_to_hub: cannot create or reach the Hub repo 'org/x'"):
        pretrain.main(["--dataset", tiny_table(tmp_path / "events.csv"), "--output_dir", str(tmp_path / "run"),
                       "--num_epochs", "1", "--push_to_hub", "--hub_model_id", "org/x", *TINY])
    assert not (tmp_path / "run").exists()  # nothing was trained
