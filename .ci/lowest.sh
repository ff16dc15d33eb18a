#!/usr/bin/env bash
# The package at its lowest supported versions (.ci/constraints-lowest.txt), in a fresh venv, on a smoke subset:
# the wheel test (main job, pipeline, model card from outside the source tree), the model, metrics, LoRA, text.
# Not in .ci/run: it downloads old wheels. By hand: bash .ci/lowest.sh [venv folder, default /tmp/lsrec-lowest]
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_NO_ADVISORY_WARNINGS=1 PIP_DISABLE_PIP_VERSION_CHECK=1
export LSREC_HF_CACHE="$PWD/.cache/lsrec_hf" HF_HOME="$PWD/.cache/huggingface" OMP_NUM_THREADS=1
VENV="${1:-/tmp/lsrec-lowest}"
SRC="$(mktemp -d)"  # installed from a copy, so the checkout gets no build/ or egg-info of its own
trap 'rm -rf "$SRC"' EXIT
cp -r pyproject.toml MANIFEST.in README.md CHANGELOG.md lsrec_hf model_cards "$SRC"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q -c .ci/constraints-lowest.txt "$SRC[test]"
"$VENV/bin/pip" list 2>/dev/null | grep -i -E '^(torch|transformers|accelerate|datasets|peft|sentence-transformers|evaluate|huggingface.hub|safetensors|numpy|pandas|pyarrow|tqdm) '
"$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/test_packaging.py tests/test_modeling_lsrec.py \
    tests/test_metrics.py tests/test_pipeline_peft.py tests/test_text_embeddings.py tests/test_data_folder.py
