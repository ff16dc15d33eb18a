"""The fuzz pass over saved checkpoints (bench/probe.py): a handful of its mutations, so that a regression fails CI."""

import os
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "bench"))
from probe import probe  # noqa: E402

QUICK = ["config_layers_huge", "config_hidden_size_huge", "catalog_duplicate_ids", "catalog_huge", "weights_truncated",
         "weights_header_bits_flipped", "weights_tensor_reshaped", "index_names_a_file_outside",
         "manifest_names_etc_hostname", "adapter_base_outside"]


@pytest.fixture(scope="module")
def rows():
    return {row["mutation"]: row for row in probe(QUICK, max_seconds=30)}


@pytest.mark.parametrize("mutation", QUICK)
def test_a_damaged_checkpoint_file_ends_in_an_error_naming_it_in_bounded_time_and_memory(rows, mutation):
    row = rows[mutation]
    assert row["outcome"] == "named error", row["loads"]
    assert row["seconds"] < 30 and row["peak_rss_mib"] < 2048

