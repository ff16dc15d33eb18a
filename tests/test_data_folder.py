"""The benchmark sets' layout: a folder of interactions.tsv + items.tsv, read on slices of the real shared sets."""

import os

import pytest

from conftest import ROOT
from lsrec_hf.data import DataError, load_data, load_folder
from lsrec_hf.processing.sequences import build_user_sequences, leave_one_out

SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data")


def write_slice(name, target, users=40):
    """The first `users` users of a shared set (all their events) and its whole items file."""
    source = os.path.join(SHARED, name)
    if not os.path.isdir(source):
        pytest.skip(f"{source} is not here")
    with open(os.path.join(source, "interactions.tsv"), encoding="utf-8") as f:
        header, *rows = f.read().splitlines()
    kept, seen = [], []
    for row in rows:
        user = row.split("\t")[0]
        if user not in seen:
            if len(seen) == users:
                break
            seen.append(user)
        kept.append(row)
    os.makedirs(target, exist_ok=True)
    with open(os.path.join(target, "interactions.tsv"), "w", encoding="utf-8") as f:
        f.write("\n".join([header, *kept]) + "\n")
    with open(os.path.join(source, "items.tsv"), encoding="utf-8") as f, \
            open(os.path.join(target, "items.tsv"), "w", encoding="utf-8") as out:
        out.write(f.read())
    return str(target), kept


def test_a_folder_of_interactions_and_items_loads_every_event_in_file_order(tmp_path):
    path, rows = write_slice("amazon-beauty", tmp_path / "amazon-beauty")
    data = load_data(path)
    assert data.name == "amazon-beauty"
    assert data.report["interactions"] == len(rows) and data.report["items_only_in_interactions"] == 0
    sequences = build_user_sequences(data.interactions, data.catalog)
    # equal timestamps (Amazon's are days) keep the file's order, as the published benchmarks order them
    first_user = [r.split("\t") for r in rows if r.split("\t")[0] == rows[0].split("\t")[0]]
    index = {item_id: i for i, item_id in enumerate(data.catalog.item_ids)}
    assert sequences.items[0].tolist() == [index[item] for _, item, _ in first_user]
    assert len(leave_one_out(sequences).test) == 40


def test_item_text_uses_every_text_column_of_the_items_file(tmp_path):
    data = load_folder(write_slice("amazon-office", tmp_path / "office", users=10)[0])
    text = data.catalog.texts[0]
    assert text.startswith("VTECH CS6114") and "Brand: VTech." in text and "Categories: Office Electronics" in text
    assert "Description:" not in text  # the first item has no description: the label goes with it
    assert any("Description: " in t for t in data.catalog.texts)


def test_quote_characters_in_titles_are_literal_text(tmp_path):
    path, _ = write_slice("steam", tmp_path / "steam", users=10)
    with open(os.path.join(path, "items.tsv"), encoding="utf-8") as f:
        lines = f.read().splitlines()[1:]
    quoted = next(line.split("\t")[1] for line in lines if '"' in line)
    data = load_folder(path)
    assert len(data.catalog) == len(lines) and quoted in data.catalog.titles


def test_a_folder_without_an_interactions_file_says_what_it_expected(tmp_path):
    (tmp_path / "items.tsv").write_text("item_id\ttitle\n1\ta\n", encoding="utf-8")
    with pytest.raises(DataError, match="interactions.tsv"):
        load_data(str(tmp_path))
