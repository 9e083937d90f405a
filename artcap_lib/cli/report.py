"""`artcap report`: notebook 06 without Jupyter — the tables, figures, results.json and README of a run directory.

    artcap report --profile paper --run-dir /data/artcap-paper   # e.g. after copying a GPU run back
    artcap report --profile demo --significance-test randomisation --formats png
"""
from __future__ import annotations

import sys

from artcap_lib.cli.options import add_profile_options, profile_from_args, profile_overrides


def add_cli(sub) -> None:
    p = sub.add_parser("report", help="paper tables, figures, results.json and README of a run directory",
                       description=__doc__.split("\n\n", 1)[1])
    add_profile_options(p, "report", "run_dir", "figures_dir")
    p.set_defaults(func=_report)


def _report(args) -> int:
    from artcap_lib import notebook
    from artcap_lib.report import step as report
    _, paths = profile_from_args(args)
    problem = not_a_run(paths)
    if problem:        # a mistyped --run-dir once created that folder and wrote "No results yet" over the report
        print(f"artcap report: {problem}", file=sys.stderr)
        return 2
    cfg, paths = notebook.setup(args.profile, profile_overrides(args))     # as notebook 06 starts
    try:
        built = report.run(cfg, paths)
    except ValueError as err:
        print(f"artcap report: {err}", file=sys.stderr)
        return 2
    for kind, made in (("table", built.tables), ("figure", built.figures)):
        for name, files in made.items():
            print(f"{kind} {name}: {', '.join(str(f) for f in files)}")
    print(f"results: {paths.root / 'results.json'}\nsummary: {paths.figures / 'README.md'}")
    for line in built.inputs.missing:
        print(f"not produced: {line}", file=sys.stderr)
    return 0


def not_a_run(paths) -> str | None:
    """Why paths.root is no run directory to report on (missing, or no step 03-05 result in it), else None."""
    if not paths.root.is_dir():
        return f"run_dir: {paths.root} does not exist; check --run-dir (or --set run_dir=...)"
    results = [paths.metrics_summary(), paths.reference_results, *paths.retrieval.glob("*/results.json")]
    if not any(f.is_file() for f in results):
        return (f"run_dir: {paths.root} holds no results (no {paths.metrics.name}/summary.json, no "
                f"{paths.retrieval.name}/<model>/results.json): run steps 03-05 first (artcap reproduce --from 03), "
                f"or check --run-dir; nothing was written")
    return None
