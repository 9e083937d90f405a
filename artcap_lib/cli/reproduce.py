"""`artcap reproduce` and `artcap profile`."""
from __future__ import annotations

import json
import sys


def add_cli(sub) -> None:
    p = sub.add_parser("reproduce", help="run the numbered notebooks of a profile with papermill")
    p.add_argument("--profile", default="demo", help="demo | reference | paper | bench, or a YAML path")
    p.add_argument("--only", action="append", metavar="NN", help="run only notebook NN (repeatable)")
    p.add_argument("--from", dest="start", metavar="NN", help="first notebook to run")
    p.add_argument("--to", dest="stop", metavar="NN", help="last notebook to run")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a profile value, e.g. --set captioning.batch_size=8 --set run_dir=/tmp/run")
    p.add_argument("--jobs", type=int, metavar="N",
                   help="notebooks run side by side once their needs are met (= --set jobs=N; profile default)")
    p.add_argument("--no-progress", action="store_true", help="no per-cell progress bars")
    p.set_defaults(func=_reproduce)

    p = sub.add_parser("profile", help="print a profile as resolved (with overrides) and check it")
    p.add_argument("name", nargs="?", default="demo")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=_show_profile)


def _reproduce(args) -> int:
    from artcap_lib.config import ProfileError, parse_overrides
    from artcap_lib.runner import NotebookFailed, reproduce
    try:
        overrides = parse_overrides(args.set)
        if args.jobs is not None:
            overrides["jobs"] = args.jobs
        manifest = reproduce(args.profile, overrides, args.only, args.start, args.stop,
                             progress=not args.no_progress)
    except (ProfileError, ValueError) as err:
        print(f"artcap reproduce: {err}", file=sys.stderr)
        return 2
    except NotebookFailed as err:
        print(f"artcap reproduce: {err}", file=sys.stderr)
        return 1
    print(f"done: {len(manifest['notebooks'])} notebook(s) in {manifest['run_wall_s']:.1f} s "
          f"({manifest['total_wall_s']:.1f} s of notebook time, {manifest['jobs']} at a time); "
          f"manifest {manifest['parameters']['run_dir'] or 'papermill_runs/' + manifest['profile']}/manifest.json")
    return 0


def _show_profile(args) -> int:
    from artcap_lib.config import ProfileError, load_profile, parse_overrides
    try:
        cfg = load_profile(args.name, parse_overrides(args.set))
    except ProfileError as err:
        print(f"artcap profile: {err}", file=sys.stderr)
        return 2
    print(json.dumps(cfg.to_dict(), indent=2))
    return 0
