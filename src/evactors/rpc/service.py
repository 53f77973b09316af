"""`SystemService`: the handlers of `evactors.v1.SystemService`.

A handler does no work of its own beyond checking the request and translating: the
events handler relays from a `ClientStream` whose filter actor runs in the pipeline's
nursery (a handler is an async generator and holds no nursery across its `yield`s);
when the call ends for any reason (the client cancels, disconnects, its deadline
passes, the server shuts down) the server cancels the handler and leaving the `with`
block releases the filter actor and its channel at once.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator

import trio

from evactors._generated.evactors.v1 import system_service_pb2 as pb
from evactors._generated.evactors.v1.system_service_grpc import SystemServiceServicer
from evactors._version import __version__
from evactors.containerd import ContainerdClient, ContainerdError
from evactors.events.channels import receive_batch
from evactors.events.client_stream import CLIENT_QUEUE, Delivery, EndReason
from evactors.events.pipeline import EventPipeline
from evactors.events.subscriber import ConnectContainerd
from evactors.grpc import GrpcError, StatusCode
from evactors.system.info import DEFAULT_NAMESPACE, gather_system_info
from evactors.system.nerdctl import DEFAULT_NERDCTL_PATHS, NerdctlPaths
from evactors.system.prune import PruneFilterError, parse_prune_filters, prune

from .messages import (
    EventEncoder,
    info_message,
    prune_message,
    stats_message,
    stream_request,
)

LOGGER = logging.getLogger(__name__)


class SystemService(SystemServiceServicer):
    """Answers SystemService calls: events from the event pipeline; info and prune from
    containerd, on a connection of their own for each call.

    Args:
      pipeline: The running event pipeline.
      connect: Opens a containerd client (the daemon's containerd address).
      nerdctl_paths: Where nerdctl keeps its networks and volumes (for prune).
    """

    def __init__(
        self,
        pipeline: EventPipeline,
        connect: ConnectContainerd,
        *,
        nerdctl_paths: NerdctlPaths = DEFAULT_NERDCTL_PATHS,
    ) -> None:
        self._pipeline = pipeline
        self._connect = connect
        self._nerdctl_paths = nerdctl_paths
        self._encoder = EventEncoder()
        # Two prunes at once would race over the same objects: the second is refused
        # (ABORTED, as Docker answers 409), not queued behind a long first one.
        self._pruning = False

    async def GetSystemInfo(self, message: pb.GetSystemInfoRequest) -> pb.GetSystemInfoResponse:
        namespace = message.namespace or DEFAULT_NAMESPACE
        async with _containerd(self._connect) as client:
            info = await gather_system_info(client, namespace)
        return info_message(info, __version__, stats_message(self._pipeline.stats()))

    # The generated servicer declares every method a coroutine; a streaming one is an
    # async generator.
    async def GetSystemEvents(  # type: ignore[override]
        self, message: pb.GetSystemEventsRequest
    ) -> AsyncIterator[list[bytes]]:
        request = stream_request(message)
        stream = self._pipeline.open_client_stream(request)
        # try/finally rather than `with`, to make plain that nothing here stays open
        # across a yield but a plain object whose close() is synchronous.
        try:
            while True:
                try:
                    items = await receive_batch(stream.receive, CLIENT_QUEUE)
                except trio.EndOfChannel:
                    break  # the actor was cancelled with the pipeline
                # Every delivery already queued goes out in one batch (one write),
                # each event serialized once whatever the number of streams.
                batch = [
                    self._encoder.encode(item.event, item.formatted)
                    for item in items
                    if isinstance(item, Delivery)
                ]
                if batch:
                    yield batch
                end = items[-1]
                if isinstance(end, Delivery):
                    continue
                match end.reason:
                    case EndReason.UNTIL_PASSED:
                        return
                    case EndReason.OVERFLOWED:
                        raise GrpcError(
                            StatusCode.RESOURCE_EXHAUSTED,
                            "the client did not keep up: its backlog overflowed after "
                            f"sequence {end.last_sequence}; resume with "
                            f"after_sequence={end.last_sequence}",
                        )
                    case EndReason.SHUTTING_DOWN:
                        break
        finally:
            stream.close()
        # The service is stopping (its last item said so, or the actor was cancelled
        # with the pipeline before it could).
        raise GrpcError(StatusCode.UNAVAILABLE, "the service is shutting down")

    async def SystemPrune(self, message: pb.SystemPruneRequest) -> pb.SystemPruneResponse:
        try:
            prune_filter = parse_prune_filters(message.filters, now_ns=time.time_ns())
        except PruneFilterError as error:
            raise GrpcError(StatusCode.INVALID_ARGUMENT, str(error)) from None
        if self._pruning:
            raise GrpcError(
                StatusCode.ABORTED, "a prune is already running; try again once it is done"
            )
        self._pruning = True
        try:
            async with _containerd(self._connect) as client:
                report = await prune(
                    client,
                    message.namespace or DEFAULT_NAMESPACE,
                    prune_filter,
                    all_images=message.all,
                    volumes=message.volumes,
                    dry_run=message.dry_run,
                    nerdctl_paths=self._nerdctl_paths,
                )
        finally:
            self._pruning = False
        return prune_message(report)


@contextlib.asynccontextmanager
async def _containerd(connect: ConnectContainerd) -> AsyncGenerator[ContainerdClient]:
    """A containerd connection for one call. A failed containerd call ends the RPC with
    containerd's status and a message naming its socket; a containerd that does not
    answer in time (each call has a deadline) is UNAVAILABLE, as one that is down."""
    address = "containerd"
    try:
        async with connect() as client:
            address = f"containerd at {client.address}"
            yield client
    except ContainerdError as error:
        code = error.code
        if code is StatusCode.DEADLINE_EXCEEDED:
            code = StatusCode.UNAVAILABLE
        raise GrpcError(code, f"{address}: {error.message}") from None
