"""`artcap report`: notebook 06 without Jupyter — the tables, figures, results.json and README of a run directory.

    artcap report --profile paper --set run_dir=/data/artcap-paper   # e.g. after copying a GPU run back
"""
from __future__ import annotations

import sys


def add_cli(sub) -> None:
    p = sub.add_parser("report", help="paper tables, figures, results.json and README of a run directory")
    p.add_argument("--profile", default="demo", help="demo | reference | paper | bench, or a YAML path")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a profile value, e.g. --set run_dir=/tmp/run --set figures_dir=/tmp/fig")
    p.set_defaults(func=_report)


def _report(args) -> int:
    from artcap_lib import notebook
    from artcap_lib.report import tables as report
    from artcap_lib.config import ProfileError, parse_overrides
    try:
        cfg, paths = notebook.setup(args.profile, parse_overrides(args.set))
        built = report.build(cfg, paths)
    except (ProfileError, ValueError) as err:
        print(f"artcap report: {err}", file=sys.stderr)
        return 2
    for kind, made in (("table", built.tables), ("figure", built.figures)):
        for name, files in made.items():
            print(f"{kind} {name}: {', '.join(str(f) for f in files)}")
    print(f"results: {paths.root / 'results.json'}\nsummary: {paths.figures / 'README.md'}")
    for line in built.inputs.missing:
        print(f"not produced: {line}", file=sys.stderr)
    return 0
