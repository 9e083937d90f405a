"""The options every `artcap` command shares: a profile, overrides, and flags derived from the profile dataclasses.

    add_profile_options(parser, "captioning", "device")   # --profile, --set, one flag per field named
    cfg, paths = profile_from_args(args)                   # the profile as the command line resolved it

A name is a dotted profile key, as `--set` takes it: a section ("captioning") gives one flag per field of that
section, a field ("data.max_side", "device") one flag. The flag is the field's name with dashes (`--batch-size`),
typed by the field's annotation, with the help text and choices declared on the field (`settings.setting`: the one
source, so what the profile documents is what --help shows). A flag has no default of its own: left out, the
profile's value stands; given, it is an override of that field, exactly like `--set captioning.batch_size=8`.

Precedence: the profile's YAML < `--set` (in order) < explicit flags.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import textwrap
import typing
from pathlib import Path
from typing import Any, Mapping

from artcap_lib import settings
from artcap_lib.config import Profile, RunPaths, available_profiles, load_profile, parse_overrides, user_path

PRECEDENCE = ("profile values: --profile NAME|PATH (packaged: {profiles}), then each --set KEY=VALUE in order "
              "(dotted keys, values read as YAML), then the flags given here; a later one wins "
              "(profile < --set < flag). `artcap profile NAME --set ...` prints the result.")


def add_profile_options(parser: argparse.ArgumentParser, *keys: str, default_profile: str = "demo",
                        flag_names: Mapping[str, str] | None = None) -> None:
    """Add --profile, --set and one flag per profile field named by `keys` (sections or dotted fields).

    flag_names: dotted key -> flag, where the derived name would be unclear (e.g. {"data.download_workers":
    "--workers"}); the flag still sets that field and nothing else."""
    parser.add_argument("--profile", default=default_profile, metavar="NAME|PATH",
                        help=f"a packaged profile or a YAML file (default: {default_profile})")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override a profile value, e.g. --set captioning.batch_size=8 (repeatable)")
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback of an error instead of its one line (also: ARTCAP_DEBUG=1)")
    flags = []
    group = parser.add_argument_group("profile fields (default: the profile's value)") if keys else None
    for key in keys:
        for field_key in field_keys(key):
            flag = (flag_names or {}).get(field_key) or "--" + field_key.rsplit(".", 1)[-1].replace("_", "-")
            dest = "profile:" + field_key          # cannot clash with a command's own arguments
            group.add_argument(flag, dest=dest, default=argparse.SUPPRESS, **_argument(field_key))
            flags.append((dest, field_key))
    parser.set_defaults(profile_flags=tuple(flags), prog=parser.prog)
    parser.error = functools.partial(_one_line_usage_error, parser)
    # descriptions are written as the module docstrings' command examples: keep their lines
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    epilog = textwrap.fill(PRECEDENCE.format(profiles=", ".join(available_profiles())), 100)
    parser.epilog = f"{parser.epilog}\n\n{epilog}" if parser.epilog else epilog


def _one_line_usage_error(parser: argparse.ArgumentParser, message: str) -> typing.NoReturn:
    """A usage mistake in one line (argparse's own error prints the whole usage first, 15 lines for `caption`)."""
    parser.exit(2, f"{parser.prog}: error: {message} (see {parser.prog} --help)\n")


def profile_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The overrides the command line asks for: --set in order, then the explicit flags (which win)."""
    overrides = parse_overrides(args.overrides)
    for dest, key in getattr(args, "profile_flags", ()):
        if hasattr(args, dest):
            overrides.pop(key, None)               # re-inserted last: a flag beats an earlier --set of its key
            overrides[key] = getattr(args, dest)
    return overrides


def profile_from_args(args: argparse.Namespace) -> tuple[Profile, RunPaths]:
    """(Profile, RunPaths) as --profile, --set and the flags resolve them; a bad value raises ProfileError."""
    cfg = load_profile(args.profile, profile_overrides(args))
    return cfg, RunPaths.for_profile(cfg)


_HELD_LOCKS: list = []      # run-directory locks held until this process exits


def writing_run(args: argparse.Namespace, command: str) -> tuple[Profile, RunPaths]:
    """`profile_from_args` for a command that writes the run directory: it takes the directory's lock, and is
    refused (one line, exit 2) while another run writes there. The processes of one torchrun launch write one run
    together, so a multi-process command does not lock (its launcher is the one writer)."""
    from artcap_lib.files import RunLock
    from artcap_lib.runtime import distributed_rank
    cfg, paths = profile_from_args(args)
    if distributed_rank()[1] == 1:
        _HELD_LOCKS.append(RunLock(paths.root, command).acquire())
    return cfg, paths


# ---- path and count options: one rule (config.user_path), checked before any work ------------------------------


def input_path(text: str) -> Path:
    """argparse type of a file or folder the command reads: `~` expanded, relative to the current directory."""
    return user_path(text)


def output_file(text: str) -> Path:
    """argparse type of a file the command writes: refused at once if it is a folder or its folder is a file (not
    after the work is done)."""
    path = user_path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder; give a file path (e.g. {path / 'out'}{path.suffix})")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise argparse.ArgumentTypeError(f"{parent} is a file, so {path} cannot be written")
    return path


def output_folder(text: str) -> Path:
    """argparse type of a folder the command writes into."""
    path = user_path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a file; give a folder")
    return path


def positive_int(text: str) -> int:
    """argparse type of a count that must be at least 1 (`--limit 0` once meant every image)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


# ---- from the dataclasses to argparse -----------------------------------------------------------------------------


def field_keys(key: str) -> list[str]:
    """A section -> the dotted keys of its fields; a field -> itself (unknown names fail when the CLI is built)."""
    cls = Profile
    *sections, name = key.split(".")
    for section in sections:
        cls = _fields(cls)[section]
    hint = _fields(cls).get(name)
    if hint is None:
        raise KeyError(f"no profile field {key!r}")
    if dataclasses.is_dataclass(hint):
        # a list of records (captioning.captioners) has no flag form: it comes from the profile or --set
        return [f"{key}.{f}" for f, h in _fields(hint).items() if not _is_record_list(h)]
    return [key]


def _is_record_list(hint) -> bool:
    return typing.get_origin(hint) is list and dataclasses.is_dataclass(typing.get_args(hint)[0])


def _argument(key: str) -> dict[str, Any]:
    """add_argument keywords for a profile field: type, nargs or a --x/--no-x pair, choices, help."""
    *sections, name = key.split(".")
    cls = Profile
    for section in sections:
        cls = _fields(cls)[section]
    hint = _fields(cls)[name]
    declared = next(f for f in dataclasses.fields(cls) if f.name == name)
    help_text = " ".join(filter(None, [settings.help_text(declared), f"[{key}]"]))
    kwargs: dict[str, Any] = {"help": help_text.replace("%", "%%")}
    if hint is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        # extend: `--backend paper --backend coco` and `--backend paper coco` both give [paper, coco]
        kwargs.update(action="extend", nargs="+", type=item, metavar=name.rstrip("s").upper())
    elif hint in (int, float, str):
        kwargs.update(type=hint, metavar={int: "INT", float: "FLOAT", str: "TEXT"}[hint])
    else:
        raise TypeError(f"profile field {key}: no command-line form for {hint}")
    choices = settings.rule(declared).choices
    if choices:
        kwargs.update(choices=choices, metavar="|".join(choices))
    return kwargs


def _fields(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}
