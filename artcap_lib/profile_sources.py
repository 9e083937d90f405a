"""Where each value of a profile comes from: the authors' file and line, upstream's, or our choice.

A profile may have a sources table beside it (artcap_lib/profiles/sources/<profile>.yaml): for each dotted key, the
value the source gives and the source itself. The paper profile has one for every value its YAML sets, so a
researcher can check the run against the authors' code line by line, and `tests/test_profile_sources.py` holds the
profile to the table: a value edited in paper.yaml without its source fails there.

`artcap profile P` prints every value with its origin: the table's source where the resolved value is the table's,
"OVERRIDE (source: ...)" where a --set departs from it, else "profile" (set in the YAML) or "default" (the dataclass).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from artcap_lib.config import PROFILES_DIR, profile_path, values

SOURCES_DIR = PROFILES_DIR / "sources"


@dataclass(frozen=True)
class Source:
    value: Any        # what the source gives (as YAML reads it)
    source: str       # "authors@922787d src/x.py:12 (...)", "BLIP@b994186 ...", "ours: why", ...


def sources_path(profile_name: str) -> Path:
    return SOURCES_DIR / f"{profile_name}.yaml"


def load_sources(profile_name: str) -> dict[str, Source]:
    """{dotted key: Source} of a profile; {} where the profile has no table."""
    path = sources_path(profile_name)
    if not path.is_file():
        return {}
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    out = {}
    for key, entry in raw.items():
        if not isinstance(entry, Mapping) or set(entry) != {"value", "source"}:
            raise ValueError(f"{path}: {key}: expected {{value: ..., source: ...}}, got {entry!r}")
        out[key] = Source(entry["value"], str(entry["source"]))
    return out


def keys_set_in_yaml(name_or_path: str | Path) -> set[str]:
    """The dotted keys a profile's YAML file sets itself (the rest are dataclass defaults)."""
    raw = yaml.safe_load(profile_path(name_or_path).read_text(encoding="utf-8")) or {}

    def walk(node: Mapping, prefix: str = ""):
        for key, value in node.items():
            if isinstance(value, Mapping):
                yield from walk(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}"
    return set(walk(raw))


def same_value(a: Any, b: Any) -> bool:
    """Equal as a profile means it: 5e-7 == 5.0e-07, [a, b] == (a, b)."""
    def number(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool)
    if number(a) and number(b):
        return float(a) == float(b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return a == b


def origins(cfg, name_or_path: str | Path | None = None) -> list[tuple[str, Any, str]]:
    """(dotted key, resolved value, origin) for every leaf of a built profile."""
    name_or_path = name_or_path or cfg.profile
    sources = load_sources(Path(name_or_path).stem)
    in_yaml = keys_set_in_yaml(name_or_path)
    rows = []
    for key, value in values(cfg).items():
        if key in sources:
            src = sources[key]
            origin = src.source if same_value(value, src.value) else f"OVERRIDE (source: {src.value!r}, {src.source})"
        else:
            origin = "profile" if key in in_yaml else "default"
        rows.append((key, value, origin))
    return rows


def departures(cfg, name_or_path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """{key: {value, source_value, source}} where a resolved profile departs from its sources table."""
    sources = load_sources(Path(name_or_path or cfg.profile).stem)
    return {key: {"value": value, "source_value": sources[key].value, "source": sources[key].source}
            for key, value in values(cfg).items() if key in sources and not same_value(value, sources[key].value)}


def format_origins(rows: list[tuple[str, Any, str]]) -> str:
    def plain(value):     # a list of sections (captioning.captioners) is shown as the mappings the YAML holds
        return [dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for v in value] \
            if isinstance(value, list) else value
    width = max(len(k) for k, _, _ in rows)
    shown = [(k, yaml.safe_dump(plain(v), default_flow_style=True, width=10_000).strip().removesuffix("...").strip(),
              o) for k, v, o in rows]
    vwidth = min(max(len(v) for _, v, _ in shown), 40)
    return "\n".join(f"{k:<{width}}  {v:<{vwidth}}  {o}" for k, v, o in shown)
