"""`artcap explore`: a run directory as one self-contained HTML page (every test painting, its captions, metric
scores and ranks; each query's top paintings per model and variant), to share a run with someone without Python.
A run of more than 5,000 test paintings gets a page of 5,000 (`--paintings`): those at either end of every metric
and rank difference, and a seeded sample of the rest.

    artcap explore --profile demo                       # -> figures/demo/explore.html
    artcap explore --profile zoo --set run_dir=/data/zoo --out zoo.html
"""
from __future__ import annotations

import sys
from pathlib import Path
import time

from artcap_lib.cli.options import add_profile_options, output_file, profile_from_args


def add_cli(sub) -> None:
    p = sub.add_parser("explore", help="a run as one self-contained HTML page: paintings, captions, rankings",
                       description=__doc__.split("\n\n", 1)[1])
    add_profile_options(p, "run_dir", "figures_dir")
    p.add_argument("--out", type=output_file, default=None, metavar="FILE",
                   help="the page to write (default: explore.html in the profile's figures folder)")
    p.add_argument("--paintings", type=int, default=None, metavar="N",
                   help="paintings the page holds at most (default 5,000; 0 = every one): above it, those at either "
                   "end of each metric and rank difference and a seeded sample of the rest")
    p.set_defaults(func=_explore)


def _explore(args) -> int:
    from artcap_lib.report import explore, explore_html
    cfg, paths = profile_from_args(args)
    if not paths.artworks.is_file():
        print(f"artcap explore: {paths.artworks} not found: no run in {paths.root} (check --set run_dir=..., or "
              "run step 01 first); nothing was written", file=sys.stderr)
        return 2
    start = time.monotonic()
    limit = explore_html.PAGE_PAINTINGS if args.paintings is None else (args.paintings or None)
    out = explore_html.write_page(explore.load(cfg, paths), paths, Path(args.out or paths.figures / explore.PAGE_NAME),
                                  limit)
    print(f"explore: {out} ({out.stat().st_size / 1e6:.1f} MB, {time.monotonic() - start:.1f} s)")
    return 0
