"""What the subcommands share: argument types and how errors are reported."""

from __future__ import annotations

import argparse
import sys
from typing import TypeVar

from evactors.grpc import Address, GrpcError, parse_address
from evactors.paths import default_listen_address

E = TypeVar("E", bound=BaseException)


def address_argument(text: str) -> Address:
    """An argparse type: `unix:///path`, a bare socket path, or `tcp://host:port`."""
    try:
        return parse_address(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_server_address(parser: argparse.ArgumentParser) -> None:
    """The `--address` of the evactors server a client command calls."""
    parser.add_argument(
        "--address",
        type=address_argument,
        default=default_listen_address(),
        help="the evactors server (default: $EVACTORS_ADDRESS or %(default)s)",
    )


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {value}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {value}")
    return value


def report_error(command: str, error: GrpcError) -> int:
    """Print a call's error as `evactors CMD: STATUS: message`; the exit status is 1."""
    print(f"evactors {command}: {error}", file=sys.stderr)
    return 1


def first_exception(group: BaseExceptionGroup[E]) -> E:
    """The first leaf exception of a (possibly nested) group, as `except*` catches it."""
    first = group.exceptions[0]
    return first_exception(first) if isinstance(first, BaseExceptionGroup) else first
