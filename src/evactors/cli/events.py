"""`evactors events`: print a server's event stream, as `nerdctl events` does."""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from typing import Any, TextIO

import trio

from evactors._generated.evactors.v1 import system_service_pb2 as pb
from evactors.containerd import go_time_string
from evactors.grpc import Address, GrpcError
from evactors.rpc import open_system_client
from evactors.timespec import TimeSpecError, parse_time

from ._common import add_server_address, first_exception, report_error


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "events",
        help="stream containerd events through an evactors server",
        description=(
            "Print containerd's events from every namespace, as `nerdctl events` does: "
            "one line per event, `<time> <namespace> <topic> <payload as JSON>`, or "
            "rendered with --format. Ctrl-C ends it."
        ),
    )
    add_server_address(parser)
    parser.add_argument(
        "-f",
        "--filter",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help=(
            "event (or status), container, type, namespace, topic, label, image; "
            "the same key repeated is OR, different keys are AND"
        ),
    )
    parser.add_argument(
        "--format",
        metavar="TEMPLATE",
        default="",
        help="a Go template, e.g. '{{.Status}} {{.ID}}' or '{{json .}}'",
    )
    parser.add_argument(
        "--since",
        metavar="TIME",
        help=(
            "replay retained events from this time: RFC 3339, Unix seconds, or a duration ago (10m)"
        ),
    )
    parser.add_argument(
        "--until",
        metavar="TIME",
        help="stop at this time (same forms as --since)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    now = time.time_ns()
    times: dict[str, int] = {}
    for name in ("since", "until"):
        text = getattr(args, name)
        try:
            times[name] = 0 if text is None else parse_time(text, now_ns=now)
        except TimeSpecError as error:
            print(f"evactors events: --{name}: {error}", file=sys.stderr)
            return 2
    request = pb.GetSystemEventsRequest(filters=args.filter, format=args.format, **times)
    return trio.run(functools.partial(print_events, args.address, request, sys.stdout))


async def print_events(address: Address, request: pb.GetSystemEventsRequest, out: TextIO) -> int:
    """Print events until the stream ends, SIGINT or SIGTERM; returns the exit status."""
    failure: GrpcError | None = None
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cancel_on_signal, signals, nursery.cancel_scope)
                await _relay(address, request, out)
                nursery.cancel_scope.cancel(reason="the stream ended")
        except* GrpcError as group:
            failure = first_exception(group)
        except* BrokenPipeError:
            # The reader went away (`| head`): not an error. Point stdout at /dev/null
            # so that the interpreter's last flush does not complain either.
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
    return 0 if failure is None else report_error("events", failure)


async def _cancel_on_signal(signals: AsyncIterator[int], scope: trio.CancelScope) -> None:
    async for _ in signals:
        scope.cancel(reason="interrupted")
        return


async def _relay(address: Address, request: pb.GetSystemEventsRequest, out: TextIO) -> None:
    async with open_system_client(address) as client, client.events(request) as stream:
        async for event in stream:
            out.write(f"{event.formatted if request.format else default_line(event)}\n")
            out.flush()


def default_line(event: pb.SystemEvent) -> str:
    """`nerdctl events`' line: `<time> <namespace> <topic> <payload as JSON>`."""
    return f"{go_time_string(event.timestamp)} {event.namespace} {event.topic} {event.event_data}"
