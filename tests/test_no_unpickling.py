"""Weights and states are safetensors / JSON: the library and recipes never unpickle a file."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCES = sorted([*ROOT.joinpath("lsrec_hf").rglob("*.py"), *ROOT.joinpath("recipes").rglob("*.py")])
FORBIDDEN = [
    (re.compile(r"\bimport\s+pickle\b|\bfrom\s+pickle\b|\bpickle\.loads?\("), "pickle"),
    (re.compile(r"\btorch\.load\((?![^)]*weights_only\s*=\s*True)"), "torch.load without weights_only=True"),
    (re.compile(r"\btorch\.save\("), "torch.save (pickle) instead of safetensors"),
    (re.compile(r"\.(save|load)_state\("), "accelerate save_state/load_state (pickles optimizer and RNG states)"),
    (re.compile(r"\bjoblib\.load\(|\bdill\.loads?\(|\bnp\.load\([^)]*allow_pickle\s*=\s*True"), "pickle-based loader"),
]


def test_sources_were_found():  # the scan below is not vacuous: it reads the package and the recipes
    found = {str(path.relative_to(ROOT)) for path in SOURCES}
    assert {"lsrec_hf/model/modeling_lsrec.py", "lsrec_hf/training/checkpointing.py", "recipes/pretrain.py"} <= found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_source_file_unpickles(path):
    text = path.read_text(encoding="utf-8")
    found = [(what, text[:m.start()].count("\n") + 1) for pattern, what in FORBIDDEN for m in pattern.finditer(text)]
    assert not found, f"{path.relative_to(ROOT)}: {found}"


def test_the_check_catches_an_unsafe_load():
    unsafe = "state = torch.load(path)\n"
    assert any(pattern.search(unsafe) for pattern, _ in FORBIDDEN)
    assert not any(pattern.search("torch.load(path, weights_only=True)") for pattern, _ in FORBIDDEN)
