"""The `lsrec` command: installed as a console script, its subcommands listed, a bad --model named before any loading."""

import subprocess
import sys
from importlib import metadata

import pytest

CLI = [sys.executable, "-m", "lsrec_hf.inference.cli"]


def lsrec(*args):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)


def test_the_console_script_is_the_cli_main():
    [entry] = [e for e in metadata.entry_points(group="console_scripts") if e.name == "lsrec"]
    assert entry.value == "lsrec_hf.inference.cli:main"


def test_help_lists_both_commands():
    result = lsrec("--help")
    assert result.returncode == 0 and all(command in result.stdout for command in ("serve", "export", "evaluate"))


@pytest.mark.parametrize("args, message", [
    ((), "required: command"),
    (("export",), "required: format"),
    (("serve",), "--model"),
    (("serve", "--model", "./no-such-model"), "--model ./no-such-model: no such folder"),
    (("export", "onnx", "--model", "/no/such/model", "--output", "m.onnx"), "--model /no/such/model: no such folder"),
])
def test_bad_arguments_stop_with_a_usage_error_naming_them(args, message):
    result = lsrec(*args)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def saved_slice_model(slice_splits_and_model, tmp_path_factory):
    splits, model = slice_splits_and_model
    folder = tmp_path_factory.mktemp("cli-evaluate") / "model"
    model.save_pretrained(folder)
    return str(folder), splits, model


def test_evaluate_gives_the_figures_of_evaluate_ranking_under_the_protocol_asked(saved_slice_model, ml100k_slice,
                                                                                  tmp_path, capsys):
    import json

    from lsrec_hf.evaluation import evaluate_ranking
    from lsrec_hf.inference.cli import main
    from lsrec_hf.processing.sequences import NO_VALIDATION_PROTOCOL

    folder, splits, model = saved_slice_model
    out = tmp_path / "default.json"
    main(["evaluate", "--model", folder, "--dataset", ml100k_slice, "--output", str(out)])
    results = json.loads(out.read_text())
    assert results["protocol"] == "leave-one-out" and results["exclude_history"] is True
    assert results["num_test_users"] == len(splits.test) == 120
    for name, examples in (("test", splits.test), ("valid", splits.valid)):
        assert results[name]["ndcg@10"] == pytest.approx(evaluate_ranking(model, examples)["ndcg@10"], abs=1e-9)
    assert "| test | @10 | @20 |" in capsys.readouterr().out
    # HSTU's way: no validation event held out, the last 5 events read and only those removed, the history kept
    out = tmp_path / "hstu.json"
    main(["evaluate", "--model", folder, "--dataset", ml100k_slice, "--output", str(out), "--hold_out_validation",
          "false", "--max_length", "5", "--exclude_history", "false"])
    results = json.loads(out.read_text())
    assert results["protocol"] == NO_VALIDATION_PROTOCOL and "valid" not in results and results["max_length"] == 5
    short_kept = evaluate_ranking(model, splits.test, max_length=5, exclude_history=False)
    assert results["test"]["ndcg@20"] == pytest.approx(short_kept["ndcg@20"], abs=1e-9)
    assert short_kept["ndcg@20"] != pytest.approx(evaluate_ranking(model, splits.test)["ndcg@20"], abs=1e-6)


def test_evaluate_names_an_item_the_model_does_not_know(saved_slice_model, tmp_path):
    folder, _, _ = saved_slice_model
    table = tmp_path / "log.csv"
    table.write_text("user_id,item_id,timestamp\nu1,1,1\nu1,2,2\nu1,no-such-item,3\n", encoding="utf-8")
    result = lsrec("evaluate", "--model", folder, "--dataset", str(table))
    assert result.returncode == 1 and "no-such-item" in result.stderr and "Traceback" not in result.stderr
