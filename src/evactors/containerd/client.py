"""containerd's gRPC API over its unix socket, as plain Python records.

`open_containerd` dials containerd with evactors' own gRPC transport (purerpc's
client dials TCP only) and yields a `ContainerdClient`. Namespaced services get the
`containerd-namespace` header; `Events/Subscribe` without it sees every namespace.
Each answer comes back as attrs records with Unix-nanosecond times, so the protobuf
types stay inside this package; failures raise `evactors.containerd.errors` classes.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Final, Self, TypeVar

import attrs
from google.protobuf.empty_pb2 import Empty
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from evactors._generated.containerd.services.containers.v1 import containers_pb2
from evactors._generated.containerd.services.events.v1 import events_pb2
from evactors._generated.containerd.services.images.v1 import images_pb2
from evactors._generated.containerd.services.introspection.v1 import introspection_pb2
from evactors._generated.containerd.services.namespaces.v1 import namespace_pb2
from evactors._generated.containerd.services.version.v1 import version_pb2
from evactors.grpc import Channel, GrpcError, ResponseStream, open_channel, parse_address

from .errors import translate, translated_errors
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
    address: str = DEFAULT_ADDRESS, *, connect_timeout: float = 5.0
) -> AsyncGenerator[ContainerdClient, None]:
    """Connect to containerd and yield a client.

    Args:
      address: containerd's socket: a path or `unix:///path`.
      connect_timeout: Seconds to wait for the connection.

    Raises:
      Unavailable: containerd cannot be reached at that address (the message names it).

    Resource handling:
      One connection, closed when the context ends; open subscriptions end with it.
    """
    with translated_errors():
        async with open_channel(parse_address(address), connect_timeout=connect_timeout) as channel:
            yield ContainerdClient(channel)


class ContainerdClient:
    """Calls to one containerd; made by `open_containerd`."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

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
                method, request, response_type, metadata=metadata, timeout=DEFAULT_CALL_TIMEOUT
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

    async def images(self, namespace: str, filters: Iterable[str] = ()) -> list[Image]:
        response = await self._call(
            "/containerd.services.images.v1.Images/List",
            images_pb2.ListImagesRequest(filters=list(filters)),
            images_pb2.ListImagesResponse,
            namespace,
        )
        return [_image(record) for record in response.images]

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
