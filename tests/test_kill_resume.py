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
    run([sys.executable, HARNESS, "--dataset", ml100k_slice, "--epochs", "4", "--kills", "3",
         "--num_processes", str(num_processes), "--work_dir", str(tmp_path), "--out", str(out), "--",
         "--text_encoder", "none"])
    summary = json.loads(out.read_text())["summary"]
    trials = json.loads(out.read_text())["trials"]
    # a random moment, the best-model write and the resume-checkpoint write of a random epoch
    assert [t["kind"] for t in trials] == ["random", "write best", "write last"]
    assert summary["killed"] >= 2, trials  # a random moment or an epoch without a new best can miss the run
    assert trials[2]["checkpoint_being_written"] == ["last.tmp"], trials  # every epoch writes one: always hit
    assert summary["identical_to_uninterrupted"] == 3, trials  # metrics, best epoch, history, weights
