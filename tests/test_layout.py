"""The folders of lsrec_hf are the stages of the flow, and a module imports only from its own stage and earlier ones.

Read from the source with `ast` (nothing is imported), imports inside functions included. The exceptions below
are the whole list, each with its reason: an upward import that is not on it fails, and so does an entry that is
no longer used (the list must not outlive the code).
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "lsrec_hf"

# The flow, in order (README "## Layout").
STAGES = ["data", "processing", "model", "training", "evaluation", "inference", "sharing"]
STAGE_OF_PACKAGE = {"data": "data", "text": "data", "processing": "processing", "model": "model",
                    "training": "training", "evaluation": "evaluation", "inference": "inference", "sharing": "sharing"}

# Imports against the flow, module -> module. Nothing else may point upward.
EXCEPTIONS = {
    ("lsrec_hf.data.item_text", "lsrec_hf.processing.catalog"):
        "the loaders render item text with the catalog's DEFAULT_TEXT_TEMPLATE",
    ("lsrec_hf.data.recdataset", "lsrec_hf.processing.catalog"):
        "a loaded data set carries its ItemCatalog",
    ("lsrec_hf.data.domains", "lsrec_hf.processing.catalog"):
        "a combined data set carries one ItemCatalog of every domain's items",
    ("lsrec_hf.model.hub_io", "lsrec_hf.sharing.model_card"):
        "the model's push_to_hub writes its card",
    ("lsrec_hf.model.hub_io", "lsrec_hf.sharing.paths"):
        "from_pretrained refuses files outside the checkpoint's folder",
    ("lsrec_hf.training.checkpointing", "lsrec_hf.sharing.paths"):
        "resume refuses files outside the checkpoint's folder",
    ("lsrec_hf.training.loop", "lsrec_hf.evaluation.rank"):
        "validation NDCG@10 every epoch drives early stopping",
    ("lsrec_hf.training.recipe_utils", "lsrec_hf.evaluation.rank"):
        "the recipes end with the test-split evaluation",
    ("lsrec_hf.training.recipe_utils", "lsrec_hf.evaluation.zero_shot"):
        "pretraining also ranks the held-out data sets of --zero_shot_dataset",
    ("lsrec_hf.training.recipe_utils", "lsrec_hf.evaluation.priors"):
        "the recipes choose the trend and co-occurrence priors on validation before the test",
    ("lsrec_hf.training.recipe_utils", "lsrec_hf.sharing.model_card"):
        "the recipes write the output folder's card",
}

# Not in a stage: the top-level API may import any stage; utils imports nothing of lsrec_hf.
TOP_LEVEL = {"lsrec_hf", "lsrec_hf.utils"}


def module_name(path, root):
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source, name, is_package):
    """The lsrec_hf modules (or names in them) that `source`, the module `name`, imports, anywhere in its body."""
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # `from . import x` names a module
    return {target for target in found if target == "lsrec_hf" or target.startswith("lsrec_hf.")}


def stage(name):
    """The stage of an lsrec_hf module, None for the top level."""
    parts = name.split(".")
    return STAGE_OF_PACKAGE.get(parts[1]) if len(parts) > 1 else None


def upward_imports(modules):
    """(importer, imported) pairs for every import from a later stage; `modules`: name -> (source, is_package)."""
    found = set()
    for name, (source, is_package) in modules.items():
        if name in TOP_LEVEL or stage(name) is None:
            continue
        for target in imported_modules(source, name, is_package):
            # `from ..evaluation.rank import x` adds "...rank.x": the longest name that is a module is the import.
            while target not in modules and "." in target:
                target = target.rpartition(".")[0]
            if stage(target) is not None and STAGES.index(stage(target)) > STAGES.index(stage(name)):
                found.add((name, target))
    return found


def package_modules(root=PACKAGE):
    return {module_name(path, root): (path.read_text(encoding="utf-8"), path.name == "__init__.py")
            for path in sorted(root.rglob("*.py")) if "__pycache__" not in path.parts}


MODULES = package_modules()


def test_every_module_lies_in_a_stage():
    loose = [name for name in MODULES if stage(name) is None and name not in TOP_LEVEL]
    assert not loose, f"{loose}: put each in the folder of its stage (README \"## Layout\")"


def test_no_module_imports_from_a_later_stage():
    upward = upward_imports(MODULES) - set(EXCEPTIONS)
    assert not upward, "imports from a later stage: " + ", ".join(f"{a} -> {b}" for a, b in sorted(upward))


def test_every_exception_is_still_used():
    stale = set(EXCEPTIONS) - upward_imports(MODULES)
    assert not stale, f"no longer imported, drop from EXCEPTIONS (and the README): {sorted(stale)}"


def test_evaluation_imports_nothing_from_inference():
    """retrieval="faiss" in evaluation searches the model stage's index (lsrec_hf.model.retrieval), not inference's."""
    assert not {(a, b) for a, b in upward_imports(MODULES) if stage(a) == "evaluation"}
    rank_imports = imported_modules(MODULES["lsrec_hf.evaluation.rank"][0], "lsrec_hf.evaluation.rank", False)
    assert "lsrec_hf.model.retrieval" in rank_imports


@pytest.mark.parametrize("importer, line", [
    ("lsrec_hf.processing.collator", "from ..inference.user_state import fold_in"),
    ("lsrec_hf.model.modeling_lsrec", "def f():\n    import lsrec_hf.training.loop"),
    ("lsrec_hf.evaluation.rank", "from lsrec_hf.inference import explain"),
    ("lsrec_hf.data.reader", "from ..model import modeling_lsrec"),
])
def test_an_added_upward_import_is_caught(importer, line):
    source, is_package = MODULES[importer]
    changed = {**MODULES, importer: (source + "\n" + line + "\n", is_package)}
    assert upward_imports(changed) - upward_imports(MODULES)


def test_top_level_helpers_import_nothing_of_the_package():
    assert not imported_modules(MODULES["lsrec_hf.utils"][0], "lsrec_hf.utils", False)


def test_each_stage_package_says_its_job_and_what_it_imports():
    for package in STAGE_OF_PACKAGE:
        docstring = ast.get_docstring(ast.parse(MODULES[f"lsrec_hf.{package}"][0]))
        assert docstring and "import" in docstring.splitlines()[0], f"lsrec_hf/{package}/__init__.py: {docstring!r}"
