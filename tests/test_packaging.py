"""The package as users install it: a wheel (built from the sdist) that carries its data, run outside the source tree."""

import filecmp
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile

import pytest

from conftest import ROOT, SMALL_MODEL

TEMPLATE = os.path.join("lsrec_hf", "sharing", "model_card_template.md")
METRIC_MODULE = os.path.join("lsrec_hf", "evaluation", "metrics", "full_ranking", "full_ranking.py")
# What a build reads; copied so that building leaves no build/ or egg-info behind in the checkout.
SOURCES = ["pyproject.toml", "MANIFEST.in", "README.md", "CHANGELOG.md", "lsrec_hf", "model_cards"]


def _version():
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
        return re.search(r'^version = "([^"]+)"', f.read(), re.M).group(1)


def _check(command, cwd, env=None):
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(map(str, command))} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result.stdout


def test_the_design_cards_template_is_the_one_the_package_ships():
    assert filecmp.cmp(os.path.join(ROOT, "model_cards", "lsrec_model_card_template.md"), os.path.join(ROOT, TEMPLATE),
                       shallow=False), "model_cards/ and lsrec_hf/ hold different model-card templates: copy one over"


def test_a_missing_template_is_an_error_not_a_poorer_card(monkeypatch):
    from lsrec_hf import LSRecConfig
    from lsrec_hf.sharing import model_card

    monkeypatch.setattr(model_card, "TEMPLATE_NAME", "no_such_template.md")
    with pytest.raises(FileNotFoundError):
        model_card.build_model_card(LSRecConfig(num_items=3))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The sdist and the wheel built from it, as `python -m build` makes them (no isolation: nothing downloaded)."""
    tmp = tmp_path_factory.mktemp("packaging")
    src = tmp / "src"
    for name in SOURCES:
        path = os.path.join(ROOT, name)
        if os.path.isdir(path):
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            os.makedirs(src, exist_ok=True)
            shutil.copy(path, src / name)
    _check([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp / "dist"), str(src)], cwd=tmp)
    (sdist,) = (tmp / "dist").glob("*.tar.gz")
    (wheel,) = (tmp / "dist").glob("*.whl")
    return tmp, sdist, wheel


def test_the_wheel_and_the_sdist_carry_the_template_and_the_metric_module(built):
    _, sdist, wheel = built
    assert wheel.name == f"lsrec_hf-{_version()}-py3-none-any.whl"
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    assert {TEMPLATE, METRIC_MODULE} <= in_wheel
    prefix = f"lsrec_hf-{_version()}/"
    in_sdist = set(tarfile.open(sdist).getnames())
    assert {prefix + TEMPLATE, prefix + METRIC_MODULE, prefix + "model_cards/lsrec_model_card_template.md"} <= in_sdist


@pytest.fixture(scope="module")
def installed(built):
    """A fresh venv with the wheel installed (--no-deps) and this environment's packages behind it: no downloads."""
    tmp, _, wheel = built
    venv = tmp / "venv"
    _check([sys.executable, "-m", "venv", str(venv)], cwd=tmp)
    python = str(venv / "bin" / "python")
    _check([python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], cwd=tmp)
    # Only now (pip must not see, or touch, this environment's editable lsrec_hf): the test environment's
    # site-packages behind the venv's own, as a path line, so its editable-install hook is not run.
    purelib = _check([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp).strip()
    ours = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    ours += [p for p in sys.path if p.endswith("site-packages") and p not in ours]
    with open(os.path.join(purelib, "zz_test_env.pth"), "w") as f:
        f.write("\n".join(dict.fromkeys(ours)) + "\n")
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": ""}
    return python, elsewhere, env


def test_the_installed_wheel_runs_the_main_job_the_pipeline_and_writes_the_real_card(installed, ml100k_slice):
    python, elsewhere, env = installed
    where = json.loads(_check([python, "-c", "import json, lsrec_hf; print(json.dumps([lsrec_hf.__file__, lsrec_hf.__version__]))"],
                              cwd=elsewhere, env=env))
    assert where[0].startswith(os.path.dirname(os.path.dirname(python))) and where[1] == _version()

    out = elsewhere / "run"
    stdout = _check([python, os.path.join(ROOT, "recipes", "pretrain.py"), "--dataset", ml100k_slice,
                     "--output_dir", str(out), "--num_epochs", "1", *SMALL_MODEL], cwd=elsewhere, env=env)
    assert "NDCG" in stdout
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "## How to use" in card and "## Limitations" in card  # only the real template has these sections
    assert "input history excluded from the ranking" in card

    script = ("import json, lsrec_hf; from transformers import pipeline; "
              f"recommend = pipeline('recommendation', model={str(out)!r}, device='cpu'); "
              "print(json.dumps([item['item_id'] for item in recommend(['1', '2', '3'], top_k=5)]))")
    items = json.loads(_check([python, "-c", script], cwd=elsewhere, env=env).strip().splitlines()[-1])
    assert len(items) == 5 and not {"1", "2", "3"} & set(items)
