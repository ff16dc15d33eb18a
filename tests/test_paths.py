"""The checkpoint path policy: a file a checkpoint names lies inside its folder, or is a Hub id; nothing else is followed."""

import os

import pytest

from lsrec_hf.sharing.paths import BASE_MODEL_DIR, CheckpointPathError, inside, is_hub_id, resolve_base_model


def test_a_name_inside_the_folder_is_its_path(tmp_path):
    (tmp_path / "sub").mkdir()
    assert inside(str(tmp_path), "sub/model.safetensors", "manifest.json") == os.path.join(
        os.path.realpath(tmp_path), "sub", "model.safetensors")


@pytest.mark.parametrize("name", ["../x", "sub/../../x", "/etc/hostname", ".."])
def test_a_name_leading_out_of_the_folder_is_refused_by_name(tmp_path, name):
    with pytest.raises(CheckpointPathError, match=r"manifest.json names .* which lies outside"):
        inside(str(tmp_path), name, "manifest.json")


def test_a_link_to_elsewhere_is_refused_not_followed(tmp_path):
    folder, outside = tmp_path / "checkpoint", tmp_path / "secret"
    folder.mkdir()
    outside.write_text("not a weight")
    (folder / "model.safetensors").symlink_to(outside)
    with pytest.raises(CheckpointPathError, match="model.safetensors"):
        inside(str(folder), "model.safetensors", "manifest.json")


def test_hub_ids_are_told_from_paths():
    assert is_hub_id("me/lsrec-ml-100k") and is_hub_id("bert-base-uncased")
    assert not is_hub_id("../base") and not is_hub_id("/abs/path") and not is_hub_id("a/b/c")


def test_an_adapters_base_model_is_its_own_folder_a_hub_id_or_an_existing_absolute_path(tmp_path):
    adapter = tmp_path / "adapter"
    (adapter / BASE_MODEL_DIR).mkdir(parents=True)
    assert resolve_base_model(str(adapter), BASE_MODEL_DIR, "adapter_config.json") == os.path.realpath(
        adapter / BASE_MODEL_DIR)
    assert resolve_base_model(str(adapter), "me/lsrec-ml-100k", "adapter_config.json") == "me/lsrec-ml-100k"
    assert resolve_base_model(str(adapter), str(tmp_path), "adapter_config.json") == str(tmp_path)
    # a folder moved with its adapter: the absolute path it was written with is gone, the copy beside it is used
    gone = str(tmp_path / "old-place" / BASE_MODEL_DIR)
    assert resolve_base_model(str(adapter), gone, "adapter_config.json") == os.path.join(str(adapter), BASE_MODEL_DIR)
    with pytest.raises(CheckpointPathError, match="does not exist"):
        resolve_base_model(str(adapter), str(tmp_path / "nowhere"), "adapter_config.json")
    with pytest.raises(CheckpointPathError, match="outside"):
        resolve_base_model(str(adapter), "../elsewhere", "adapter_config.json")
