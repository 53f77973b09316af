"""The `evactors` command line: one module per subcommand.

Each subcommand module has `add_parser(subparsers)`, which registers its arguments and
sets `run` (a function of the parsed arguments returning the exit status).
"""

from ._app import build_parser, main

__all__ = ["build_parser", "main"]
