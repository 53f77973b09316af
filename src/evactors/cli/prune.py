"""`evactors system prune`: remove stopped containers and unused images, as
`nerdctl system prune` does, through an evactors server."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from typing import Any, Final, TextIO

import trio

from evactors._generated.evactors.v1 import system_service_pb2 as pb
from evactors.grpc import Address, GrpcError
from evactors.rpc import SystemClient, open_system_client
from evactors.units import human_size

from ._common import add_server_address, report_error

# Deleting images waits for containerd's garbage collection: allow it time.
PRUNE_TIMEOUT: Final = 300.0


def add_parser(subparsers: Any) -> None:
    system = subparsers.add_parser("system", help="manage the system (prune)")
    commands = system.add_subparsers(dest="system_command", metavar="COMMAND", required=True)
    parser = commands.add_parser(
        "prune",
        help="remove stopped containers and unused images",
        description=(
            "Remove the stopped containers (with their snapshots) and the dangling images "
            "of a namespace; with --all also every image no container uses. Running and "
            "paused containers are never touched."
        ),
    )
    add_server_address(parser)
    parser.add_argument(
        "-a", "--all", action="store_true", help="also remove images no container uses"
    )
    parser.add_argument(
        "--volumes",
        action="store_true",
        help="also nerdctl's unused anonymous volumes (see README)",
    )
    parser.add_argument(
        "--filter",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="until=TIME, label=k[=v], label!=k[=v] (as docker system prune takes them)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="show what would be removed; remove nothing"
    )
    parser.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    parser.add_argument(
        "-n", "--namespace", default="", help="namespace to prune (default: default)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    request = pb.SystemPruneRequest(
        all=args.all,
        volumes=args.volumes,
        filters=args.filter,
        dry_run=args.dry_run,
        namespace=args.namespace,
    )
    confirm = None if args.force or args.dry_run else _ask
    return trio.run(functools.partial(prune, args.address, request, confirm, sys.stdout))


def _ask(question: str) -> bool:
    print(question, end="", flush=True)
    answer = sys.stdin.readline().strip().lower()
    return answer in {"y", "yes"}


async def prune(
    address: Address,
    request: pb.SystemPruneRequest,
    confirm: Callable[[str], bool] | None,
    out: TextIO,
) -> int:
    """Prune, after showing what will go and asking `confirm` unless it is None.

    Returns the exit status: 0, or 1 when the call failed or an item could not be removed.
    """
    try:
        async with open_system_client(address) as client:
            if confirm is not None:
                plan = await _call(client, request, dry_run=True)
                out.write(_warning(request, plan))
                out.flush()
                if not await trio.to_thread.run_sync(
                    confirm, "Are you sure you want to continue? [y/N] "
                ):
                    return 0
            report = await _call(client, request, dry_run=request.dry_run)
    except GrpcError as error:
        return report_error("system prune", error)
    out.write(_report(report, dry_run=request.dry_run))
    for line in report.errors:
        print(f"evactors system prune: {line}", file=sys.stderr)
    return 1 if report.errors else 0


async def _call(
    client: SystemClient, request: pb.SystemPruneRequest, *, dry_run: bool
) -> pb.SystemPruneResponse:
    call = pb.SystemPruneRequest()
    call.CopyFrom(request)
    call.dry_run = dry_run
    return await client.prune(call, timeout=PRUNE_TIMEOUT)


def _warning(request: pb.SystemPruneRequest, plan: pb.SystemPruneResponse) -> str:
    images = (
        "all images without at least one container associated to them"
        if request.all
        else "all dangling images"
    )
    lines = [
        f"WARNING! This will remove, in namespace {request.namespace or 'default'}:",
        "  - all stopped containers",
        f"  - {images}",
    ]
    if request.filters:
        lines.append(f"  Items to be pruned will be filtered with: {', '.join(request.filters)}")
    lines.append("As things stand now, that is:")
    lines.extend(f"  container {container_id}" for container_id in plan.containers_deleted)
    lines.extend(f"  image {name}" for name in plan.images_deleted)
    if not plan.containers_deleted and not plan.images_deleted:
        lines.append("  nothing")
    return "\n".join(lines) + "\n"


def _report(report: pb.SystemPruneResponse, *, dry_run: bool) -> str:
    verb = "Would Delete" if dry_run else "Deleted"
    sections = [
        ("Containers", report.containers_deleted),
        ("Networks", report.networks_deleted),
        ("Volumes", report.volumes_deleted),
        ("Images", report.images_deleted),
    ]
    text = "".join(
        f"{verb} {title}:\n" + "".join(f"{item}\n" for item in items) + "\n"
        for title, items in sections
        if items
    )
    if not dry_run:
        text += f"Total reclaimed space: {human_size(report.space_reclaimed)}\n"
    return text
