"""`evactors info`: containerd, host and service facts, in the spirit of `nerdctl info`."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Mapping
from typing import Any, Final

import trio

from evactors._generated.evactors.v1 import system_service_pb2 as pb
from evactors.containerd import rfc3339_nano
from evactors.gotemplate import RecordSchema, TemplateError, compile_template
from evactors.grpc import Address, GrpcError
from evactors.rpc import open_system_client
from evactors.units import bytes_size

from ._common import add_server_address, report_error

# A whole call, connection included: info is quick, or containerd is in trouble.
INFO_TIMEOUT: Final = 30.0


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "info",
        help="show containerd, host and evactors facts",
        description=(
            "Show what `nerdctl info` shows: containerd's version and plugins, one "
            "namespace's containers and images, the host, and evactors' own stats."
        ),
    )
    add_server_address(parser)
    parser.add_argument(
        "-n", "--namespace", default="", help="namespace to count in (default: default)"
    )
    parser.add_argument(
        "-f",
        "--format",
        metavar="TEMPLATE",
        help="`json` for the whole answer as JSON, or a Go template: '{{.ServerVersion}}'",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    render: Callable[[pb.GetSystemInfoResponse], str] = human_readable
    if args.format:
        text = "{{json .}}" if args.format == "json" else args.format
        try:
            render = compile_template(text, INFO_SCHEMA).render
        except TemplateError as error:
            print(f"evactors info: --format: {error}", file=sys.stderr)
            return 2
    request = pb.GetSystemInfoRequest(namespace=args.namespace)
    return trio.run(functools.partial(_print_info, args.address, request, render))


async def _print_info(
    address: Address,
    request: pb.GetSystemInfoRequest,
    render: Callable[[pb.GetSystemInfoResponse], str],
) -> int:
    try:
        async with open_system_client(address) as client:
            info = await client.info(request, timeout=INFO_TIMEOUT)
    except GrpcError as error:
        return report_error("info", error)
    print(render(info))
    return 0


def human_readable(info: pb.GetSystemInfoResponse) -> str:
    stats = info.stats
    plugins: dict[str, list[str]] = {}
    for plugin in info.plugins:
        shown = plugin.id if plugin.status == "ok" else f"{plugin.id}({plugin.status})"
        plugins.setdefault(plugin.type, []).append(shown)
    lines = [
        "Client:",
        f" Namespace:\t{info.namespace}",
        "",
        "Server:",
        f" Server Version: {info.server_version}",
        f" Server Revision: {info.server_revision}",
        f" ID: {info.server_uuid}",
        f" Containers: {info.containers}",
        f"  Running: {info.containers_running}",
        f"  Paused: {info.containers_paused}",
        f"  Stopped: {info.containers_stopped}",
        f" Images: {info.images}",
        f" Namespaces: {' '.join(info.namespaces)}",
        " Plugins:",
        *(f"  {kind}: {' '.join(ids)}" for kind, ids in sorted(plugins.items())),
        f" Kernel Version: {info.kernel_version}",
        f" Operating System: {info.operating_system}",
        f" OSType: {info.os_type}",
        f" Architecture: {info.architecture}",
        f" CPUs: {info.ncpu}",
        f" Total Memory: {bytes_size(info.mem_total)}",
        f" Name: {info.name}",
        "",
        "evactors:",
        f" Version: {info.service_version}",
        f" Started: {rfc3339_nano(stats.started_at)}",
        f" containerd Connected: {str(stats.containerd_connected).lower()}",
        f" Event Streams: {stats.subscribers}",
        f" Events Received: {stats.events_received}",
        f" Events Delivered: {stats.events_delivered}",
        f" Events Dropped: {stats.events_dropped}",
        f" Last Sequence: {stats.last_sequence}",
    ]
    return "\n".join(lines)


# -- --format -------------------------------------------------------------------------------


def _go_text(value: object) -> str:
    """A value as Go's fmt prints it with %v: slices `[a b]`, structs `{a b}`."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + " ".join(map(_go_text, value)) + "]"
    if isinstance(value, dict):
        return "{" + " ".join(map(_go_text, value.values())) + "}"
    return str(value)


def _plugin(plugin: pb.Plugin) -> dict[str, object]:
    return {"Type": plugin.type, "ID": plugin.id, "Status": plugin.status}


def _stats(stats: pb.ServiceStats) -> dict[str, object]:
    return {
        "StartedAt": rfc3339_nano(stats.started_at),
        "EventsReceived": stats.events_received,
        "EventsDelivered": stats.events_delivered,
        "EventsDropped": stats.events_dropped,
        "Subscribers": stats.subscribers,
        "LastSequence": stats.last_sequence,
        "ContainerdConnected": stats.containerd_connected,
    }


# The fields a template sees, named as `docker info --format` names them where Docker
# has the field, in the order of the response message.
_FIELD_VALUES: Final[Mapping[str, Callable[[pb.GetSystemInfoResponse], object]]] = {
    "ServerVersion": lambda info: info.server_version,
    "ServerRevision": lambda info: info.server_revision,
    "ID": lambda info: info.server_uuid,
    "Namespace": lambda info: info.namespace,
    "Containers": lambda info: info.containers,
    "ContainersRunning": lambda info: info.containers_running,
    "ContainersPaused": lambda info: info.containers_paused,
    "ContainersStopped": lambda info: info.containers_stopped,
    "Images": lambda info: info.images,
    "Namespaces": lambda info: list(info.namespaces),
    "Plugins": lambda info: [_plugin(plugin) for plugin in info.plugins],
    "KernelVersion": lambda info: info.kernel_version,
    "OperatingSystem": lambda info: info.operating_system,
    "OSType": lambda info: info.os_type,
    "Architecture": lambda info: info.architecture,
    "NCPU": lambda info: info.ncpu,
    "MemTotal": lambda info: info.mem_total,
    "Name": lambda info: info.name,
    "ServiceVersion": lambda info: info.service_version,
    "Stats": lambda info: _stats(info.stats),
}


def _printed(
    value_of: Callable[[pb.GetSystemInfoResponse], object],
) -> Callable[[pb.GetSystemInfoResponse], str]:
    return lambda info: _go_text(value_of(info))


INFO_SCHEMA: Final = RecordSchema[pb.GetSystemInfoResponse](
    texts={name: _printed(value_of) for name, value_of in _FIELD_VALUES.items()},
    values=_FIELD_VALUES,
)
