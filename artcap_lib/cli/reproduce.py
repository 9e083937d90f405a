"""`artcap reproduce` (the numbered notebooks of a profile, with papermill) and `artcap profile` (print one)."""
from __future__ import annotations

import argparse
import json
import sys

from artcap_lib.cli.options import add_profile_options, profile_from_args, profile_overrides

RUN_FIELDS = ("seed", "device", "run_dir", "figures_dir", "jobs")     # the profile's top-level fields


def add_cli(sub) -> None:
    p = sub.add_parser("reproduce", help="run the numbered notebooks of a profile with papermill")
    p.add_argument("--only", action="append", metavar="NN", help="run only notebook NN (repeatable)")
    p.add_argument("--from", dest="start", metavar="NN", help="first notebook to run")
    p.add_argument("--to", dest="stop", metavar="NN", help="last notebook to run")
    p.add_argument("--no-progress", action="store_true", help="print only when a notebook starts and ends, not what it is doing")
    add_profile_options(p, *RUN_FIELDS)
    p.set_defaults(func=_reproduce)

    p = sub.add_parser("profile", help="print a profile as resolved (with overrides), each value with where it "
                                       "comes from, and check it")
    p.add_argument("name", nargs="?", default=argparse.SUPPRESS, metavar="NAME|PATH",
                   help="the profile (same as --profile)")
    p.add_argument("--json", action="store_true", help="print the resolved profile as JSON only")
    add_profile_options(p, *RUN_FIELDS)
    p.set_defaults(func=_show_profile)


def _reproduce(args) -> int:
    from artcap_lib.runner import NotebookFailed, RunInterrupted, list_notebooks, reproduce, select_notebooks
    try:
        chosen = {nb.name[:2] for nb in select_notebooks(list_notebooks(), args.only, args.start, args.stop)}
        cfg, _ = profile_from_args(args)
        _preflight(cfg, chosen)
        # the notebooks load the profile themselves: they get its name and the overrides, flags included
        manifest = reproduce(args.profile, profile_overrides(args), args.only, args.start, args.stop,
                             progress=not args.no_progress)
    except NotebookFailed as err:
        print(f"artcap reproduce: {err}", file=sys.stderr)
        return 1
    except RunInterrupted as err:
        print(f"artcap reproduce: {err}", file=sys.stderr)
        return 130
    except ValueError as err:                     # a bad --only/--from/--to, or a profile value (ProfileError)
        print(f"artcap reproduce: {err}", file=sys.stderr)
        return 2
    print(f"done: {len(manifest['notebooks'])} notebook(s) in {manifest['run_wall_s']:.1f} s "
          f"({manifest['total_wall_s']:.1f} s of notebook time, {manifest['jobs']} at a time); "
          f"manifest {manifest['parameters']['run_dir'] or 'papermill_runs/' + manifest['profile']}/manifest.json")
    return 0


def _preflight(cfg, chosen: set[str]) -> None:
    """What a notebook would fail on minutes in, checked before the first one starts: the device of the steps that
    use one, and the captioners' models when 02 captions with them."""
    from artcap_lib.cli.caption import check_captioners
    from artcap_lib.cli.preflight import check_device
    from artcap_lib.config import captioners
    if "02" in chosen and cfg.captioning.source == "model":
        check_captioners(cfg, captioners(cfg))
    elif chosen & {"02", "03", "04", "05"}:
        check_device(cfg)


def _show_profile(args) -> int:
    if hasattr(args, "name"):
        args.profile = args.name
    cfg, _ = profile_from_args(args)
    if args.json:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    from artcap_lib.profile_sources import format_origins, origins
    # origin: the source of the value (paper: the authors' file and line), OVERRIDE, profile (its YAML) or default
    print(format_origins(origins(cfg, args.profile)))
    return 0
