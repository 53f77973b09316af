"""Between evactors' wire messages and the pipeline's records, both ways.

Requests are checked here, before anything else happens: a bad one raises `GrpcError`
with INVALID_ARGUMENT and a message naming what was wrong, so the call ends before any
event is sent.
"""

from __future__ import annotations

import collections
from typing import Final, cast

from evactors._generated.evactors.v1 import system_service_pb2 as pb
from evactors.events.client_stream import StreamRequest
from evactors.events.filters import FilterError, parse_filters
from evactors.events.model import SystemEvent
from evactors.events.pipeline import PipelineStats
from evactors.events.template import TemplateError, compile_template
from evactors.grpc import GrpcError, StatusCode
from evactors.system.info import SystemInfo
from evactors.system.prune import PruneReport


def stream_request(message: pb.GetSystemEventsRequest) -> StreamRequest:
    """The pipeline's request for a GetSystemEvents call.

    `after_sequence = 0` means "not set" (proto3 cannot tell 0 from unset; sequences
    start at 1, so resuming after 0 would be the same as `since` the beginning).
    When both `since` and `after_sequence` are set, the replay takes events that
    satisfy both.

    Raises:
      GrpcError: INVALID_ARGUMENT naming the offending filter, template or time.
    """
    try:
        event_filter = parse_filters(message.filters)
        template = compile_template(message.format) if message.format else None
    except (FilterError, TemplateError) as error:
        raise GrpcError(StatusCode.INVALID_ARGUMENT, str(error)) from None
    since, until = message.since, message.until
    for name, value in (("since", since), ("until", until)):
        if value < 0:
            raise GrpcError(
                StatusCode.INVALID_ARGUMENT,
                f"{name} must be Unix nanoseconds >= 0 (0 = unset), not {value}",
            )
    if since and until and since > until:
        raise GrpcError(StatusCode.INVALID_ARGUMENT, f"since ({since}) is after until ({until})")
    return StreamRequest(
        filter=event_filter,
        template=template,
        since=since,
        until=until,
        after_sequence=message.after_sequence or None,
    )


# SystemEvent.formatted, field 10, length-delimited: its tag byte (10 << 3 | 2).
_FORMATTED_TAG: Final = bytes([10 << 3 | 2])
# Events kept serialized: a little more than clients lag behind each other in normal
# operation; a replay of older events serializes them again.
ENCODED_EVENTS: Final = 4096


class EventEncoder:
    """Serializes each event once, for every stream that sends it.

    The bytes of an event without `formatted` are cached by sequence (sequences are
    unique within the process) for the last ENCODED_EVENTS events; a client's rendering
    is appended as field 10 (protobuf parsers take fields in any order), so a client
    with a `format` costs one small append, not a serialization.
    """

    def __init__(self, size: int = ENCODED_EVENTS) -> None:
        self._size = size
        self._encoded: collections.OrderedDict[int, bytes] = collections.OrderedDict()

    def encode(self, event: SystemEvent, formatted: str = "") -> bytes:
        encoded = self._encoded.get(event.sequence)
        if encoded is None:
            encoded = event_message(event).SerializeToString()
            self._encoded[event.sequence] = encoded
            if len(self._encoded) > self._size:
                self._encoded.popitem(last=False)
        if formatted:
            text = formatted.encode()
            encoded += _FORMATTED_TAG + _varint(len(text)) + text
        return encoded


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def event_message(event: SystemEvent, formatted: str = "") -> pb.SystemEvent:
    return pb.SystemEvent(
        timestamp=event.timestamp,
        container_id=event.container_id,
        namespace=event.namespace,
        topic=event.topic,
        status=event.status,
        event_data=event.event_data,
        type=cast("pb.EventType", event.type.value),
        metadata=event.metadata,
        sequence=event.sequence,
        formatted=formatted,
    )


def stats_message(stats: PipelineStats) -> pb.ServiceStats:
    return pb.ServiceStats(
        started_at=stats.started_at,
        events_received=stats.events_received,
        events_delivered=stats.events_delivered,
        events_dropped=stats.events_dropped,
        subscribers=stats.subscribers,
        last_sequence=stats.last_sequence,
        containerd_connected=stats.containerd_connected,
    )


def info_message(
    info: SystemInfo, service_version: str, stats: pb.ServiceStats
) -> pb.GetSystemInfoResponse:
    host = info.host
    return pb.GetSystemInfoResponse(
        server_version=info.version.version,
        server_revision=info.version.revision,
        server_uuid=info.server_uuid,
        namespace=info.namespace,
        containers=info.containers.total,
        containers_running=info.containers.running,
        containers_paused=info.containers.paused,
        containers_stopped=info.containers.stopped,
        images=info.images,
        namespaces=info.namespaces,
        plugins=[pb.Plugin(type=p.type, id=p.id, status=p.status) for p in info.plugins],
        kernel_version=host.kernel_version,
        operating_system=host.operating_system,
        os_type=host.os_type,
        architecture=host.architecture,
        ncpu=host.ncpu,
        mem_total=host.mem_total,
        name=host.name,
        service_version=service_version,
        stats=stats,
    )


def prune_message(report: PruneReport) -> pb.SystemPruneResponse:
    return pb.SystemPruneResponse(
        containers_deleted=report.containers_deleted,
        images_deleted=report.images_deleted,
        networks_deleted=report.networks_deleted,
        volumes_deleted=report.volumes_deleted,
        space_reclaimed=report.space_reclaimed,
        errors=report.errors,
    )
