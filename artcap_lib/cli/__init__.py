"""The `artcap` command. Each capability module that has commands defines `add_cli(subparsers)`; heavy imports
happen inside the command functions, so `artcap --help` is instant and GPU machines need no extras."""
from __future__ import annotations

import argparse
import importlib
import sys

# modules that contribute sub-commands, in the order they appear in --help
COMMAND_MODULES = ("reproduce", "data", "caption", "retrieval", "metrics", "blip", "longclip", "report", "bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="artcap", description="Reproduce 'Augmenting Cross-Modal Art Retrieval: "
                                     "The Role of MLLM-Synthesized Captions' (SIGIR 2025).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"artcap_lib.cli.{name}").add_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

