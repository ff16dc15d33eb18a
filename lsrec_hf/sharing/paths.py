"""One path policy for checkpoints: every file a checkpoint names lies inside its folder, or is a Hub id.

A checkpoint's own files (`manifest.json` entries, shard index entries, an adapter's base model) are named
relative to the checkpoint's folder, so that the folder can be moved, copied or uploaded whole; a name that
leads out of it (`../x`, `/etc/hostname`, a link to elsewhere) is refused by name, never followed.
"""

import os

from huggingface_hub.utils import HFValidationError, validate_repo_id

# Where the fine-tuning recipe keeps the base model an adapter needs, inside the adapter's folder.
BASE_MODEL_DIR = "base_model"


class CheckpointPathError(ValueError):
    """A checkpoint names a file outside its own folder."""


def inside(folder, name, source):
    """`name`, a file that `source` names, as a path inside `folder`; a `CheckpointPathError` otherwise."""
    root = os.path.realpath(folder)
    path = os.path.realpath(os.path.join(root, name))
    if os.path.isabs(name) or not path.startswith(root + os.sep):
        raise CheckpointPathError(f"{source} names {name!r}, which lies outside {folder}: the files of a checkpoint "
                                  f"must stay inside its folder")
    return path


def is_hub_id(name):
    try:
        validate_repo_id(name)
        return True
    except HFValidationError:
        return False


def resolve_base_model(adapter_dir, name, source):
    """The base model named by an adapter in `adapter_dir`: a folder inside it, a Hub id, or an absolute path.

    A relative name is a folder of the adapter (`base_model`) when there is one, else a Hub id; an absolute path
    (what PEFT writes for a base loaded from one) is the user's explicit choice and is kept. A folder written
    before base paths were relative names its `base_model` folder absolutely: once moved, the copy beside it is used.
    """
    if not os.path.isabs(name):
        if os.path.isdir(os.path.join(adapter_dir, name)) or not is_hub_id(name):
            return inside(adapter_dir, name, source)
        return name
    if os.path.isdir(name):
        return name
    beside = os.path.join(adapter_dir, BASE_MODEL_DIR)
    if os.path.basename(os.path.normpath(name)) == BASE_MODEL_DIR and os.path.isdir(beside):
        return beside
    raise CheckpointPathError(f"{source}: the base model {name} does not exist (moved?); load it yourself and pass "
                              f"it: PeftModel.from_pretrained(AutoModel.from_pretrained(base), {adapter_dir!r})")
