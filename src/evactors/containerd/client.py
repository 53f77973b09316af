"""containerd's gRPC API over its unix socket, as plain Python records.

`open_containerd` dials containerd with evactors' own gRPC transport (purerpc's
client dials TCP only) and yields a `ContainerdClient`. Namespaced services get the
`containerd-namespace` header; `Events/Subscribe` without it sees every namespace.
Each answer comes back as attrs records with Unix-nanosecond times, so the protobuf
types stay inside this package; failures raise `evactors.containerd.errors` classes.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Final, Self, TypeVar

import attrs
from google.protobuf.empty_pb2 import Empty
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from evactors._generated.containerd.services.containers.v1 import containers_pb2
from evactors._generated.containerd.services.content.v1 import content_pb2
from evactors._generated.containerd.services.events.v1 import events_pb2
from evactors._generated.containerd.services.images.v1 import images_pb2
from evactors._generated.containerd.services.introspection.v1 import introspection_pb2
from evactors._generated.containerd.services.namespaces.v1 import namespace_pb2
from evactors._generated.containerd.services.snapshots.v1 import snapshots_pb2
from evactors._generated.containerd.services.tasks.v1 import tasks_pb2
from evactors._generated.containerd.services.version.v1 import version_pb2
from evactors._generated.containerd.types.task import task_pb2
from evactors.grpc import (
    Channel,
    GrpcError,
    ResponseStream,
    StatusCode,
    open_channel,
    parse_address,
)

from .errors import FailedPrecondition, NotFound, translate, translated_errors
from .events import Envelope, Payload, decode_envelope, encode_payload

ResponseT = TypeVar("ResponseT", bound=Message)

DEFAULT_ADDRESS: Final = "/run/containerd/containerd.sock"
NAMESPACE_HEADER: Final = "containerd-namespace"
# No unary call to containerd may hang: they all answer in milliseconds when healthy.
DEFAULT_CALL_TIMEOUT: Final = 10.0
# containerd's message for a plugin that chose not to load (errdefs.ErrSkipPlugin).
_SKIP_PLUGIN_MESSAGE = "skip plugin"


def _unix_ns(timestamp: Timestamp) -> int:
    return timestamp.seconds * 1_000_000_000 + timestamp.nanos


def _unix_ns_or_zero(timestamp: Timestamp) -> int:
    """Like `_unix_ns`, but 0 for "never": containerd sends Go's zero time (year 1)."""
    ns = _unix_ns(timestamp)
    return ns if ns > 0 else 0


@attrs.frozen
class Version:
    version: str
    revision: str


@attrs.frozen
class Plugin:
    """A containerd plugin; `status` is `ok`, `skip` or `error`, as `ctr plugins ls`."""

    type: str
    id: str
    status: str
    init_error: str


@attrs.frozen
class Namespace:
    name: str
    labels: Mapping[str, str]


@attrs.frozen
class Container:
    """A container record (its metadata; whether it runs is a task's business)."""

    id: str
    image: str
    labels: Mapping[str, str]
    runtime: str
    snapshotter: str
    snapshot_key: str
    created_at: int
    updated_at: int


@attrs.frozen
class Image:
    name: str
    labels: Mapping[str, str]
    target_digest: str
    target_media_type: str
    target_size: int
    created_at: int
    updated_at: int


class TaskStatus(enum.IntEnum):
    """A task's state, with containerd's numbers (`containerd.v1.types.Status`).

    A number this enum does not know (from a newer containerd) reads as `UNKNOWN`.
    """

    UNKNOWN = 0
    CREATED = 1
    RUNNING = 2
    STOPPED = 3
    PAUSED = 4
    PAUSING = 5

    @classmethod
    def _missing_(cls, value: object) -> TaskStatus:
        return cls.UNKNOWN


@attrs.frozen
class Task:
    """A container's task (its init process), as `ctr tasks ls` shows it.

    `exit_status` and `exited_at` (Unix ns) are 0 until the task has stopped.
    """

    container_id: str
    pid: int
    status: TaskStatus
    exit_status: int
    exited_at: int


@attrs.frozen
class SnapshotUsage:
    """Disk use of one snapshot's own layer (not its parents'), as `du` counts it:
    `size` in bytes of allocated blocks, `inodes` including the layer's directory."""

    size: int
    inodes: int


@attrs.frozen
class ContentInfo:
    """A committed blob of the content store, as seen from one namespace.

    `updated_at` is 0 in what `content()` returns: containerd's Content/List leaves
    it out (1.6); `content_info()` has it.
    """

    digest: str
    size: int
    created_at: int
    updated_at: int
    labels: Mapping[str, str]


def _task(record: task_pb2.Process) -> Task:
    # containerd (1.6 at least) leaves `container_id` empty in Tasks/List and Get and
    # puts the container id in `id` (an init process's id is its container's).
    return Task(
        container_id=record.container_id or record.id,
        pid=record.pid,
        status=TaskStatus(record.status),
        exit_status=record.exit_status,
        exited_at=_unix_ns_or_zero(record.exited_at),
    )


def _content_info(record: content_pb2.Info) -> ContentInfo:
    return ContentInfo(
        digest=record.digest,
        size=record.size,
        created_at=_unix_ns_or_zero(record.created_at),
        updated_at=_unix_ns_or_zero(record.updated_at),
        labels=dict(record.labels),
    )


def _container(record: containers_pb2.Container) -> Container:
    return Container(
        id=record.id,
        image=record.image,
        labels=dict(record.labels),
        runtime=record.runtime.name,
        snapshotter=record.snapshotter,
        snapshot_key=record.snapshot_key,
        created_at=_unix_ns(record.created_at),
        updated_at=_unix_ns(record.updated_at),
    )


def _image(record: images_pb2.Image) -> Image:
    return Image(
        name=record.name,
        labels=dict(record.labels),
        target_digest=record.target.digest,
        target_media_type=record.target.media_type,
        target_size=record.target.size,
        created_at=_unix_ns(record.created_at),
        updated_at=_unix_ns(record.updated_at),
    )


def _plugin(record: introspection_pb2.Plugin) -> Plugin:
    status, error = "ok", ""
    if record.HasField("init_err"):
        error = record.init_err.message
        status = "skip" if _SKIP_PLUGIN_MESSAGE in error else "error"
    return Plugin(type=record.type, id=record.id, status=status, init_error=error)


@asynccontextmanager
async def open_containerd(
    address: str = DEFAULT_ADDRESS,
    *,
    connect_timeout: float = 5.0,
    call_timeout: float = DEFAULT_CALL_TIMEOUT,
) -> AsyncGenerator[ContainerdClient, None]:
    """Connect to containerd and yield a client.

    Args:
      address: containerd's socket: a path or `unix:///path`.
      connect_timeout: Seconds to wait for the connection.
      call_timeout: Seconds each unary call may take (DEADLINE_EXCEEDED past it).

    Raises:
      Unavailable: containerd cannot be reached at that address (the message names it).

    Resource handling:
      One connection, closed when the context ends; open subscriptions end with it.
    """
    with translated_errors():
        async with open_channel(parse_address(address), connect_timeout=connect_timeout) as channel:
            yield ContainerdClient(channel, call_timeout=call_timeout)


# One method per containerd call that evactors makes: a flat facade over several
# containerd services, so it has more public methods than ruff's default cap.
class ContainerdClient:  # ruff: ignore[too-many-public-methods]
    """Calls to one containerd; made by `open_containerd`."""

    def __init__(self, channel: Channel, *, call_timeout: float = DEFAULT_CALL_TIMEOUT) -> None:
        self._channel = channel
        self._call_timeout = call_timeout

    @property
    def address(self) -> str:
        return str(self._channel.address)

    @property
    def connected(self) -> bool:
        """False once the connection to containerd has ended."""
        return not self._channel.closed

    async def _call(
        self,
        method: str,
        request: Message,
        response_type: type[ResponseT],
        namespace: str | None = None,
    ) -> ResponseT:
        metadata = () if namespace is None else ((NAMESPACE_HEADER, namespace),)
        with translated_errors():
            return await self._channel.unary_unary(
                method, request, response_type, metadata=metadata, timeout=self._call_timeout
            )

    # -- the daemon ------------------------------------------------------------------

    async def version(self) -> Version:
        response = await self._call(
            "/containerd.services.version.v1.Version/Version", Empty(), version_pb2.VersionResponse
        )
        return Version(response.version, response.revision)

    async def server_uuid(self) -> str:
        response = await self._call(
            "/containerd.services.introspection.v1.Introspection/Server",
            Empty(),
            introspection_pb2.ServerResponse,
        )
        return response.uuid

    async def plugins(self, filters: Iterable[str] = ()) -> list[Plugin]:
        response = await self._call(
            "/containerd.services.introspection.v1.Introspection/Plugins",
            introspection_pb2.PluginsRequest(filters=list(filters)),
            introspection_pb2.PluginsResponse,
        )
        return [_plugin(record) for record in response.plugins]

    async def namespaces(self) -> list[Namespace]:
        response = await self._call(
            "/containerd.services.namespaces.v1.Namespaces/List",
            namespace_pb2.ListNamespacesRequest(),
            namespace_pb2.ListNamespacesResponse,
        )
        return [Namespace(n.name, dict(n.labels)) for n in response.namespaces]

    # -- containers and images (namespaced) ----------------------------------------------

    async def containers(self, namespace: str, filters: Iterable[str] = ()) -> list[Container]:
        response = await self._call(
            "/containerd.services.containers.v1.Containers/List",
            containers_pb2.ListContainersRequest(filters=list(filters)),
            containers_pb2.ListContainersResponse,
            namespace,
        )
        return [_container(record) for record in response.containers]

    async def container(self, namespace: str, container_id: str) -> Container:
        """One container. Raises `NotFound` when it does not exist."""
        response = await self._call(
            "/containerd.services.containers.v1.Containers/Get",
            containers_pb2.GetContainerRequest(id=container_id),
            containers_pb2.GetContainerResponse,
            namespace,
        )
        return _container(response.container)

    async def delete_container(self, namespace: str, container_id: str) -> None:
        """Delete a container record. containerd's garbage collection then removes its
        snapshot, unless something else refers to it (see `remove_snapshot`).

        Raises `NotFound` when it does not exist, and `FailedPrecondition` while it
        still has a task, in any state: delete that first. containerd itself would
        delete the record and orphan a running task, so this checks first, as
        containerd's Go client does (a task created meanwhile is not caught).
        """
        try:
            task = await self.task(namespace, container_id)
        except NotFound:
            pass
        else:
            raise FailedPrecondition(
                StatusCode.FAILED_PRECONDITION,
                f'container "{container_id}" in namespace "{namespace}": '
                f"cannot delete, its task is {task.status.name}",
            )
        await self._call(
            "/containerd.services.containers.v1.Containers/Delete",
            containers_pb2.DeleteContainerRequest(id=container_id),
            Empty,
            namespace,
        )

    async def images(self, namespace: str, filters: Iterable[str] = ()) -> list[Image]:
        response = await self._call(
            "/containerd.services.images.v1.Images/List",
            images_pb2.ListImagesRequest(filters=list(filters)),
            images_pb2.ListImagesResponse,
            namespace,
        )
        return [_image(record) for record in response.images]

    async def delete_image(self, namespace: str, name: str, *, sync: bool = True) -> None:
        """Delete an image name. Raises `NotFound` when there is no such image.

        With `sync`, containerd runs its garbage collection before answering, so the
        content and snapshots nothing else in `namespace` refers to are gone on return;
        without it they go a little later. Other namespaces keep their own references.
        """
        await self._call(
            "/containerd.services.images.v1.Images/Delete",
            images_pb2.DeleteImageRequest(name=name, sync=sync),
            Empty,
            namespace,
        )

    # -- tasks (namespaced) --------------------------------------------------------------

    async def tasks(self, namespace: str) -> list[Task]:
        """The tasks of `namespace`: one per container that has one, in any state."""
        response = await self._call(
            "/containerd.services.tasks.v1.Tasks/List",
            tasks_pb2.ListTasksRequest(),
            tasks_pb2.ListTasksResponse,
            namespace,
        )
        return [_task(record) for record in response.tasks]

    async def task(self, namespace: str, container_id: str) -> Task:
        """The task of a container. Raises `NotFound` when it has none (or there is no
        such container)."""
        response = await self._call(
            "/containerd.services.tasks.v1.Tasks/Get",
            tasks_pb2.GetRequest(container_id=container_id),
            tasks_pb2.GetResponse,
            namespace,
        )
        return _task(response.process)

    async def delete_task(self, namespace: str, container_id: str) -> int:
        """Delete a container's stopped (or created) task and return its exit status.

        Raises `NotFound` when the container has no task, `FailedPrecondition` when the
        task still runs (kill it first).
        """
        response = await self._call(
            "/containerd.services.tasks.v1.Tasks/Delete",
            tasks_pb2.DeleteTaskRequest(container_id=container_id),
            tasks_pb2.DeleteResponse,
            namespace,
        )
        return response.exit_status

    # -- snapshots and content (namespaced) ----------------------------------------------

    async def remove_snapshot(self, namespace: str, snapshotter: str, key: str) -> None:
        """Remove a snapshot. Raises `NotFound` when there is none with that key.

        Remove a container's snapshot before deleting the container, as containerd's
        Go client does: once no container refers to it, garbage collection may remove
        it first (within tens of milliseconds).
        """
        await self._call(
            "/containerd.services.snapshots.v1.Snapshots/Remove",
            snapshots_pb2.RemoveSnapshotRequest(snapshotter=snapshotter, key=key),
            Empty,
            namespace,
        )

    async def snapshot_usage(self, namespace: str, snapshotter: str, key: str) -> SnapshotUsage:
        """Disk use of a snapshot. Raises `NotFound` when there is none with that key."""
        response = await self._call(
            "/containerd.services.snapshots.v1.Snapshots/Usage",
            snapshots_pb2.UsageRequest(snapshotter=snapshotter, key=key),
            snapshots_pb2.UsageResponse,
            namespace,
        )
        return SnapshotUsage(size=response.size, inodes=response.inodes)

    async def content(self, namespace: str, filters: Iterable[str] = ()) -> list[ContentInfo]:
        """The blobs of the content store that `namespace` holds (containerd streams
        them in batches; this gathers them all)."""
        found: list[ContentInfo] = []
        with translated_errors():
            async with self._channel.unary_stream(
                "/containerd.services.content.v1.Content/List",
                content_pb2.ListContentRequest(filters=list(filters)),
                content_pb2.ListContentResponse,
                metadata=((NAMESPACE_HEADER, namespace),),
                timeout=self._call_timeout,
            ) as responses:
                async for response in responses:
                    found.extend(_content_info(record) for record in response.info)
        return found

    async def content_info(self, namespace: str, digest: str) -> ContentInfo:
        """One blob by digest (`sha256:...`). Raises `NotFound` when `namespace` does
        not hold it."""
        response = await self._call(
            "/containerd.services.content.v1.Content/Info",
            content_pb2.InfoRequest(digest=digest),
            content_pb2.InfoResponse,
            namespace,
        )
        return _content_info(response.info)

    # -- events --------------------------------------------------------------------------

    async def publish(self, namespace: str, topic: str, payload: Payload) -> None:
        """Publish an event, as a shim does (`containerd publish`)."""
        await self._call(
            "/containerd.services.events.v1.Events/Publish",
            events_pb2.PublishRequest(topic=topic, event=encode_payload(payload)),
            Empty,
            namespace,
        )

    @asynccontextmanager
    async def subscribe(
        self, filters: Iterable[str] = ()
    ) -> AsyncGenerator[EventSubscription, None]:
        """Subscribe to containerd's events in every namespace.

        Args:
          filters: containerd filter expressions (`topic~="/tasks/"`); several are OR-ed.

        Yields an async iterator of decoded `Envelope`s. It raises `Unavailable` when
        the connection to containerd is lost. Leaving the context ends the subscription.
        """
        with translated_errors():
            async with self._channel.unary_stream(
                "/containerd.services.events.v1.Events/Subscribe",
                events_pb2.SubscribeRequest(filters=list(filters)),
                events_pb2.Envelope,
            ) as responses:
                yield EventSubscription(responses)


class EventSubscription:
    """The events of one subscription, decoded, as an async iterator."""

    def __init__(self, responses: ResponseStream[events_pb2.Envelope]) -> None:
        self._responses = responses

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Envelope:
        try:
            envelope = await self._responses.receive()
        except GrpcError as error:
            raise translate(error) from None
        if envelope is None:
            raise StopAsyncIteration
        return decode_envelope(envelope)
