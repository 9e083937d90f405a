"""A profile field declared in one place: its default, its help text and the rules its value must keep.

    epochs: int = setting(6, "fine-tuning epochs", at_least=1)
    precision: str = setting("fp32", "fp32 | bf16 | auto", choices=("fp32", "bf16", "auto"))

Every section of a profile (config.py's shared ones, each retrieval model's own beside its code) declares its fields
this way, so the loader checks a value where it is declared (`problems`) and the CLI's --help shows the help text
(`help_text`), with no table of keys to keep in step elsewhere.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import MISSING
from typing import Any, Callable, Iterator

RULE = "artcap.rule"
HELP = "artcap.help"
KIND = "artcap.kind"
PATH, MODEL = "path", "model"     # a field the user types a path into; one that holds a hub id or a path


class ProfileError(ValueError):
    """A profile file or override that does not fit the schema."""


@dataclasses.dataclass(frozen=True)
class Rule:
    """What a value may be; a field without a rule only may not be a negative number (counts, seeds, decays)."""
    choices: tuple = ()                          # the value (each item of a list) is one of these
    at_least: int | None = None
    positive: bool = False                       # strictly greater than 0
    within: tuple[float, float] | None = None    # both ends allowed
    pattern: str = ""                            # a regular expression the whole value matches ...
    pattern_means: str = ""                      # ... said in words for the message


def setting(default: Any = MISSING, help: str = "", *, factory: Callable[[], Any] | Any = MISSING,
            choices: tuple = (), at_least: int | None = None, positive: bool = False,
            within: tuple[float, float] | None = None, pattern: str = "", pattern_means: str = "",
            kind: str = "") -> Any:
    """A dataclass field carrying its help text and its `Rule` (a mutable default goes in `factory`); `kind` PATH
    or MODEL marks a field whose local paths the loader makes absolute (`config.absolute_paths`)."""
    metadata = {HELP: help, RULE: Rule(tuple(choices), at_least, positive, within, pattern, pattern_means),
                KIND: kind}
    if factory is not MISSING:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def rule(f: dataclasses.Field) -> Rule:
    return f.metadata.get(RULE, Rule())


def help_text(f: dataclasses.Field) -> str:
    return f.metadata.get(HELP, "")


def kind(f: dataclasses.Field) -> str:
    return f.metadata.get(KIND, "")


def leaves(node, prefix: str = "") -> Iterator[tuple[str, Any, dataclasses.Field]]:
    """(dotted key, value, field) of every value of a built section, nested sections walked into."""
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if dataclasses.is_dataclass(value):
            yield from leaves(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", value, f


def problem(key: str, value: Any, f: dataclasses.Field) -> str | None:
    """Why a value breaks its field's rule ("key: why"), or None."""
    r = rule(f)
    if r.choices:
        bad = [v for v in (value if isinstance(value, list) else [value]) if v not in r.choices]
        return f"{key}: {', '.join(map(repr, bad))} is not one of {', '.join(r.choices)}" if bad else None
    if r.pattern:
        return None if re.fullmatch(r.pattern, value) else f"{key}: {value!r} is not {r.pattern_means}"
    if r.at_least is not None:
        return f"{key}: must be at least {r.at_least}, got {value}" if value < r.at_least else None
    if r.positive:
        return None if value > 0 else f"{key}: must be greater than 0, got {value}"
    if r.within is not None:
        low, high = r.within
        return None if low <= value <= high else f"{key}: must lie in [{low}, {high}], got {value}"
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        return f"{key}: must not be negative, got {value}"
    return None


def problems(node, prefix: str = "") -> list[str]:
    """Every value of a built section (nested ones included) that breaks its field's rule."""
    return [p for key, value, f in leaves(node, prefix) if (p := problem(key, value, f))]
