"""`model_names`: the one place stage code asks where a named model is; stand-ins (and other providers) plug in."""
import ast
from pathlib import Path

import pytest

import artcap_lib
from artcap_lib import model_names


def test_names_resolve_by_kind(tmp_path, monkeypatch):
    from artcap_lib.config import RunPaths
    paths = RunPaths(tmp_path / "run", tmp_path / "figures")
    assert model_names.locate("pocket-blip", paths) == str(tmp_path / "run" / "models" / "pocket-blip")
    assert model_names.locate("Salesforce/blip-itm-large-coco", paths) == "Salesforce/blip-itm-large-coco"
    assert model_names.locate(str(tmp_path / "my-model")) == str(tmp_path / "my-model")
    with pytest.raises(KeyError, match="no pocket model 'pocket-nothing'"):
        model_names.pocket("pocket-nothing")
    assert model_names.pocket("pocket-llava").train is not None and model_names.pocket("pocket-clip").build is not None


def test_a_package_registers_its_own_names_through_the_entry_point(monkeypatch):
    """What a third party does: an `artcap.models` entry point whose callable registers a prefix."""
    class Entry:
        value = "mystore.artcap:register"

        def load(self):
            return lambda: model_names.register_prefix("mystore:", lambda spec, models_dir, device: f"/models/{spec[8:]}")

    import importlib.metadata
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group: [Entry()] if group == model_names.ENTRY_POINTS else [])
    monkeypatch.setattr(model_names, "_providers_loaded", False)
    monkeypatch.setattr(model_names, "_prefixes", {})
    assert model_names.locate("mystore:painting-captioner-v2") == "/models/painting-captioner-v2"
    assert model_names.RANDOM in model_names._prefixes        # the built-in stand-ins registered too


def test_no_stage_imports_the_standins():
    """Stage code reaches stand-ins only through model_names: standins/ stands above the stages it stands in for."""
    root = Path(artcap_lib.__file__).parent
    allowed = {"standins", "cli", "bench"}      # the stand-ins themselves, and the commands that build/benchmark them
    offenders = []
    for path in root.rglob("*.py"):
        if path.relative_to(root).parts[0] in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            offenders += [f"{path.relative_to(root)}: {n}" for n in names if n.startswith("artcap_lib.standins")]
    assert offenders == []
