"""The events the benchmark publishes, and the markers that frame a phase.

The workload is the life of many short-lived containers, as containerd reports it:
`/containers/create`, `/tasks/start`, `/tasks/exit`, `/tasks/delete`,
`/containers/delete` for one container id after another (64 hex digits, as real ids
are). The payloads are containerd's own messages (`evactors._generated.containerd.events`)
in an `Any` with containerd's *bare* type URL (`containerd.events.TaskStart`), exactly as
containerd's shims publish them, so evactors decodes, converts and looks up containers
as it would on a busy host. Five topics in a cycle make `event=start` select exactly one
event in five.

Two marker events frame every phase. Both are `/tasks/start` events in the benchmark's
namespace (so every scenario's filter lets them through, `event=start` included), told
apart by their container id:

- `WARMUP_ID`: published every few milliseconds before a phase until every client
  stream has seen one, so the phase starts only once every subscription is live
  (neither containerd nor evactors sends response headers before the first event);
- `END_ID`: published once after the last measured event; a stream that sees it is done.
"""

from __future__ import annotations

import hashlib
from typing import Final

from google.protobuf.timestamp_pb2 import Timestamp

# containerd's own messages (evactors' private generated modules, used as the tests do).
from evactors._generated.containerd.events import container_pb2, task_pb2
from evactors._generated.containerd.services.events.v1 import events_pb2
from evactors.containerd.events import encode_payload

#: The containerd namespace every benchmark event is published in.
NAMESPACE: Final = "bench"
#: A namespace that never gets an event (the idle streams filter on it).
QUIET_NAMESPACE: Final = "bench-quiet"

PUBLISH_METHOD: Final = "/containerd.services.events.v1.Events/Publish"
SUBSCRIBE_METHOD: Final = "/containerd.services.events.v1.Events/Subscribe"
EVENTS_METHOD: Final = "/evactors.v1.SystemService/GetSystemEvents"
INFO_METHOD: Final = "/evactors.v1.SystemService/GetSystemInfo"

#: gRPC metadata that puts a Publish in the benchmark's namespace.
PUBLISH_METADATA: Final = (("containerd-namespace", NAMESPACE),)

WARMUP_ID: Final = "bench-marker-warmup"
END_ID: Final = "bench-marker-end"
MARKER_TOPIC: Final = "/tasks/start"

#: The topics of one container's life, in order; `event=start` selects one in five.
CYCLE: Final = (
    "/containers/create",
    "/tasks/start",
    "/tasks/exit",
    "/tasks/delete",
    "/containers/delete",
)
IMAGE: Final = "docker.io/library/busybox:latest"
RUNTIME: Final = "io.containerd.runc.v2"


def container_id(index: int) -> str:
    """A realistic (64 hex digit) container id, the same for the same index."""
    return hashlib.sha256(f"bench-{index}".encode()).hexdigest()


def payload_for(topic: str, cid: str, index: int) -> object:
    """containerd's payload message for `topic` about container `cid`."""
    pid = 10_000 + index % 50_000
    exited_at = Timestamp(seconds=1_765_000_000 + index, nanos=123_456_789)
    match topic:
        case "/containers/create":
            return container_pb2.ContainerCreate(
                id=cid, image=IMAGE, runtime=container_pb2.ContainerCreate.Runtime(name=RUNTIME)
            )
        case "/tasks/start":
            return task_pb2.TaskStart(container_id=cid, pid=pid)
        case "/tasks/exit":
            return task_pb2.TaskExit(
                container_id=cid, id=cid, pid=pid, exit_status=index % 3, exited_at=exited_at
            )
        case "/tasks/delete":
            return task_pb2.TaskDelete(
                container_id=cid, id=cid, pid=pid, exit_status=index % 3, exited_at=exited_at
            )
        case "/containers/delete":
            return container_pb2.ContainerDelete(id=cid)
    raise ValueError(f"no payload for {topic}")


def publish_request(topic: str, payload: object) -> bytes:
    """A serialized `PublishRequest` (serialized ahead, so publishing costs only the call)."""
    request = events_pb2.PublishRequest(topic=topic, event=encode_payload(payload))
    return request.SerializeToString()


def workload(count: int) -> list[tuple[str, bytes]]:
    """The first `count` events of the cycle: (topic, serialized PublishRequest)."""
    events = []
    for n in range(count):
        topic = CYCLE[n % len(CYCLE)]
        index = n // len(CYCLE)
        events.append((topic, publish_request(topic, payload_for(topic, container_id(index), n))))
    return events


def marker(cid: str) -> bytes:
    """A serialized `PublishRequest` of a marker event (`WARMUP_ID` or `END_ID`)."""
    return publish_request(MARKER_TOPIC, task_pb2.TaskStart(container_id=cid, pid=1))


def matching(count: int, topics: frozenset[str] | None) -> int:
    """How many of the first `count` events have a topic in `topics` (None: all)."""
    if topics is None:
        return count
    return sum(1 for n in range(count) if CYCLE[n % len(CYCLE)] in topics)
