"""The `artcap` command (also `python -m artcap_lib.cli`, what torchrun launches).

Each command module defines `add_cli(subparsers)`; its command functions import torch, transformers, pandas and
the metric libraries only when they run, so `artcap --help` is instant and a GPU machine without the metric extras
can run the GPU commands. The options shared by every command (--profile, --set, flags derived from the profile
dataclasses) are in `options`."""
from __future__ import annotations

import argparse
import sys

from artcap_lib.cli import (bench, blip, caption, data, doctor, explore, longclip, metrics, replicas, report,
                            reproduce, retrieval)
from artcap_lib.cli.errors import report as report_error

# in the order they appear in --help
COMMAND_MODULES = (reproduce, data, caption, retrieval, metrics, blip, longclip, report, explore, bench, replicas,
                   doctor)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="artcap", description="Reproduce 'Augmenting Cross-Modal Art Retrieval: "
                                     "The Role of MLLM-Synthesized Captions' (SIGIR 2025).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit status (2: a bad profile, value or input, 1: a fault of the machine such
    as a full disk, each reported in one line by `errors`; --debug / ARTCAP_DEBUG=1: the traceback instead)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except Exception as err:
        return report_error(err, args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
