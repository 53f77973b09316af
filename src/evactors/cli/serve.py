"""`evactors serve`: run the service until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import functools
import gc
import logging
import sys
from typing import Any

import trio

from evactors.daemon import DaemonConfig, run_daemon
from evactors.events.pipeline import DEFAULT_CLIENT_BACKLOG, DEFAULT_HISTORY
from evactors.paths import default_containerd_address, default_listen_address
from evactors.system.nerdctl import DEFAULT_CNI_NETCONF_PATH, DEFAULT_DATA_ROOT, NerdctlPaths

from ._common import address_argument, first_exception, non_negative_int, positive_int


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve evactors.v1.SystemService",
        description=(
            "Serve evactors.v1.SystemService: containerd's events, info and prune for "
            "gRPC clients. Runs until SIGINT or SIGTERM, which end open streams with "
            "UNAVAILABLE and remove the socket file."
        ),
    )
    parser.add_argument(
        "--containerd-address",
        metavar="PATH",
        default=default_containerd_address(),
        help="containerd's socket (default: $CONTAINERD_ADDRESS or %(default)s)",
    )
    parser.add_argument(
        "--listen",
        metavar="ADDR",
        action="append",
        type=address_argument,
        help=(
            "unix:///path/to.sock or tcp://HOST:PORT; repeat to listen on several "
            f"(default: {default_listen_address()})"
        ),
    )
    parser.add_argument(
        "--history",
        metavar="N",
        type=non_negative_int,
        default=DEFAULT_HISTORY,
        help="events retained for since/after_sequence replay (default: %(default)s)",
    )
    parser.add_argument(
        "--client-backlog",
        metavar="N",
        type=positive_int,
        default=DEFAULT_CLIENT_BACKLOG,
        help=(
            "events queued for one slow client before its stream ends with "
            "RESOURCE_EXHAUSTED (default: %(default)s)"
        ),
    )
    parser.add_argument(
        "--nerdctl-data-root",
        metavar="PATH",
        default=DEFAULT_DATA_ROOT,
        help="nerdctl's data root, for system prune (default: %(default)s)",
    )
    parser.add_argument(
        "--cni-netconf-path",
        metavar="PATH",
        default=DEFAULT_CNI_NETCONF_PATH,
        help="where nerdctl's networks are, for system prune (default: %(default)s)",
    )
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default="info",
        help="(default: %(default)s)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    config = DaemonConfig(
        containerd_address=args.containerd_address,
        listen=args.listen or [address_argument(default_listen_address())],
        history=args.history,
        client_backlog=args.client_backlog,
        nerdctl_paths=NerdctlPaths(args.nerdctl_data_root, args.cni_netconf_path),
    )
    # What starting made (modules, classes, protobuf descriptors: most of the heap) lives
    # as long as the process: keep it out of the garbage collector's full passes, which
    # then walk only what the service made since. Such a pass pauses every stream: in
    # a benchmark phase at 2,000 events/s it took 18-23 ms, and 12-14 ms so.
    gc.freeze()
    failure: OSError | None = None
    try:
        trio.run(functools.partial(run_daemon, config))
    except* OSError as group:  # a listen address cannot be bound
        failure = first_exception(group)
    if failure is not None:
        print(f"evactors serve: {failure}", file=sys.stderr)
        return 1
    return 0
