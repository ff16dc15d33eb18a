"""A real run killed with SIGKILL (inside a step, and while a checkpoint is written) resumes to the same result."""

import json
import os
import sys

import pytest

from conftest import ROOT, run

HARNESS = os.path.join(ROOT, "bench", "kill_resume.py")


@pytest.mark.parametrize("num_processes", [1, 2])
def test_killed_runs_resume_bit_for_bit(ml100k_slice, tmp_path, num_processes):
    out = tmp_path / "kill_resume.json"
    run([sys.executable, HARNESS, "--dataset", ml100k_slice, "--epochs", "4", "--kills", "2",
         "--num_processes", str(num_processes), "--work_dir", str(tmp_path), "--out", str(out), "--",
         "--text_encoder", "none"])
    summary = json.loads(out.read_text())["summary"]
    trials = json.loads(out.read_text())["trials"]
    assert summary["killed"] == 2, trials  # both kill points hit a live run
    assert summary["killed_during_checkpoint_write"] >= 1, trials
    assert summary["identical_to_uninterrupted"] == 2, trials  # metrics, best epoch, history, weights
