"""The retrieval models Experiment 2 knows: name -> where its `RetrievalModel` lives, its title, its notebook and
the dataclass of its profile section.

Entries name a model class by "module:Class", imported on first use, so the report and the CLI list models without
importing torch; a test may register a class object directly. A model's settings class is imported here (its module
imports nothing heavy): the profile has one section per entry that declares one, named as the entry, which the
loader fills from the YAML and checks by the rules on its fields. Adding a model is one line here.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

from artcap_lib.retrieval.blip.settings import BlipConfig
from artcap_lib.retrieval.dualenc.settings import ClipConfig, SiglipConfig
from artcap_lib.retrieval.longclip.settings import LongClipConfig
from artcap_lib.retrieval.protocol import RetrievalModel


@dataclass(frozen=True)
class Entry:
    target: str | type      # "package.module:Class", or the class itself
    title: str              # how tables and messages name the model
    notebook: str           # the step that runs it ("04"), for "not produced" messages
    settings: type | None = None    # its profile section (a dataclass of `settings.setting` fields); None = none


MODELS: dict[str, Entry] = {
    "blip": Entry("artcap_lib.retrieval.blip.adapter:Blip", "BLIP", "04", BlipConfig),
    "longclip": Entry("artcap_lib.retrieval.longclip.adapter:LongClip", "Long-CLIP", "05", LongClipConfig),
    "clip": Entry("artcap_lib.retrieval.dualenc.clip:Clip", "CLIP", "05", ClipConfig),
    "siglip": Entry("artcap_lib.retrieval.dualenc.siglip:Siglip", "SigLIP", "05", SiglipConfig),
}


def names() -> list[str]:
    return list(MODELS)


def entry(name: str) -> Entry:
    if name not in MODELS:
        raise KeyError(f"unknown retrieval model {name!r} (known: {', '.join(MODELS)})")
    return MODELS[name]


def get(name: str) -> RetrievalModel:
    """A fresh instance of the model's class (one per experiment run: it may cache its loaded baseline)."""
    target = entry(name).target
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        target = getattr(importlib.import_module(module), attr)
    return target()
