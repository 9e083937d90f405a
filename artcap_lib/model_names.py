"""Where a model that a profile names is, and what makes the models behind the project's own names.

A model field holds a hub id or a path, which `from_pretrained` takes as given, or one of three kinds of name that
no hub knows: a pocket model (`pocket-*`, small, trained in the run: its folder is `RunPaths.pocket_model`),
`random:<arch>` (a full-size architecture with random weights, materialised once) and `replica:<hub id>` (a
hub-faithful replica with tiny random weights). Stage code asks this module only (`locate`, `pocket`); how those
models are made is the business of the providers that register here: the project's `artcap_lib.standins`, and any
package that declares an `artcap.models` entry point whose callable registers names of its own the same way.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

ENTRY_POINTS = "artcap.models"
BUILT_IN_PROVIDER = "artcap_lib.standins"      # its register() is called first, installed as a package or not

# the pocket models a profile can name (the demo's and the zoo's)
POCKET_LLAVA = "pocket-llava"            # trained by notebook 02 on the demo's pre-training pool
POCKET_LLAVA_NEXT = "pocket-llava-next"  # the zoo's second captioner, trained by notebook 02 the same way
POCKET_QWEN2VL = "pocket-qwen2-vl"       # a Qwen2-VL (ChatML, merged patches, M-RoPE), trained by notebook 02 too
POCKET_BLIP = "pocket-blip"              # pre-trained by notebook 04
POCKET_LONGCLIP = "pocket-longclip"      # pre-trained by notebook 05
POCKET_CLIP = "pocket-clip"              # pre-trained by notebook 05
POCKET_SIGLIP = "pocket-siglip"          # pre-trained by notebook 05
POCKET_MODELS = (POCKET_LLAVA, POCKET_LLAVA_NEXT, POCKET_QWEN2VL, POCKET_BLIP, POCKET_LONGCLIP, POCKET_CLIP,
                 POCKET_SIGLIP)
POCKET_CAPTIONERS = (POCKET_LLAVA, POCKET_LLAVA_NEXT, POCKET_QWEN2VL)

RANDOM = "random:"      # random:<architecture>
REPLICA = "replica:"    # replica:<hub id>


@dataclass
class Pocket:
    """What a provider registered for one pocket name: `build` makes it untrained (a retrieval model's starting
    point, which the model's own recipe then pre-trains), `train` builds and trains a pocket captioner on the
    pre-training pool and returns its training report."""
    name: str
    build: Callable[..., Any] | None = None
    train: Callable[..., dict[str, Any]] | None = None


Resolver = Callable[[str, Any, str], str]       # (spec, models_dir or None, device) -> what from_pretrained loads

_prefixes: dict[str, Resolver] = {}
_pockets: dict[str, Pocket] = {}
_providers_loaded = False


def register_prefix(prefix: str, resolve: Resolver) -> None:
    """Names that start with `prefix` are resolved by `resolve(spec, models_dir, device)`."""
    _prefixes[prefix] = resolve


def register_pocket(name: str, build: Callable[..., Any] | None = None,
                    train: Callable[..., dict[str, Any]] | None = None) -> None:
    _pockets[name] = Pocket(name, build, train)


def _load_providers() -> None:
    global _providers_loaded
    if _providers_loaded:
        return
    _providers_loaded = True
    importlib.import_module(BUILT_IN_PROVIDER).register()
    from importlib.metadata import entry_points
    for entry in entry_points(group=ENTRY_POINTS):
        if entry.value.split(":")[0] != BUILT_IN_PROVIDER:
            entry.load()()


def pocket(name: str) -> Pocket:
    """The registered makers of pocket model `name`."""
    _load_providers()
    if name not in _pockets:
        raise KeyError(f"no pocket model {name!r} (known: {', '.join(sorted(_pockets))})")
    return _pockets[name]


def locate(spec: str, paths=None, device: str = "auto", models_dir=None) -> str:
    """What `from_pretrained` gets for a profile's model field: a pocket name -> the run's folder of that model
    (`paths` needed); a registered prefix (`random:`, `replica:`) -> what its provider makes of it, once, under
    `models_dir` (default: the run's models/ where `paths` is given); anything else (a hub id, a directory or
    file) as given."""
    spec = str(spec)
    if spec in POCKET_MODELS:
        if paths is None:
            raise ValueError(f"{spec} is a pocket model of a run: locating it needs the run's paths")
        return str(paths.pocket_model(spec))
    _load_providers()
    for prefix, resolve in _prefixes.items():
        if spec.startswith(prefix):
            return resolve(spec, models_dir if models_dir is not None else getattr(paths, "models", None), device)
    return spec
