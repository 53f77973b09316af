"""The `evactors` parser and entry point."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from evactors._version import __version__

from . import events, info, prune, serve


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evactors",
        description="nerdctl events, info and system prune for gRPC clients of containerd.",
    )
    parser.add_argument("--version", action="version", version=f"evactors {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve.add_parser(subparsers)
    events.add_parser(subparsers)
    info.add_parser(subparsers)
    prune.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    status: int = args.run(args)
    return status
