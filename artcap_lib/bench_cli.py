"""`artcap bench ...`: speed measurements of the real pipeline (images/s, tokens/s), never timed tests.

Each benchmark prints its figures and, with --json PATH, writes them as JSON (scripts/gpu_check.sh gathers them)."""
from __future__ import annotations


def add_cli(sub) -> None:
    bench = sub.add_parser("bench", help="benchmarks: captioning, metrics, training speed")
    bsub = bench.add_subparsers(dest="bench_command", required=True, metavar="WHAT")
    # each capability adds its benchmark below: _add_<what>(bsub)
