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
    assert result.returncode == 0 and "serve" in result.stdout and "export" in result.stdout


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
