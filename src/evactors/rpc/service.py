"""`SystemService`: the handlers of `evactors.v1.SystemService`.

A handler does no work of its own beyond checking the request and translating: the
events handler relays from a `ClientStream` whose filter actor runs in the pipeline's
nursery (a handler is an async generator and holds no nursery across its `yield`s);
when the call ends for any reason (the client cancels, disconnects, its deadline
passes, the server shuts down) the server cancels the handler and leaving the `with`
block releases the filter actor and its channel at once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from evactors._generated.evactors.v1 import system_service_pb2 as pb
from evactors._generated.evactors.v1.system_service_grpc import SystemServiceServicer
from evactors._version import __version__
from evactors.events.client_stream import Delivery, EndReason
from evactors.events.pipeline import EventPipeline
from evactors.grpc import GrpcError, StatusCode

from .messages import event_message, stats_message, stream_request

LOGGER = logging.getLogger(__name__)


class SystemService(SystemServiceServicer):
    """Answers SystemService calls from the event pipeline (and, for info and prune,
    from containerd).

    Args:
      pipeline: The running event pipeline.
    """

    def __init__(self, pipeline: EventPipeline) -> None:
        self._pipeline = pipeline

    async def GetSystemInfo(self, message: pb.GetSystemInfoRequest) -> pb.GetSystemInfoResponse:
        return pb.GetSystemInfoResponse(
            namespace=message.namespace or "default",
            service_version=__version__,
            stats=stats_message(self._pipeline.stats()),
        )

    # The generated servicer declares every method a coroutine; a streaming one is an
    # async generator.
    async def GetSystemEvents(  # type: ignore[override]
        self, message: pb.GetSystemEventsRequest
    ) -> AsyncIterator[pb.SystemEvent]:
        request = stream_request(message)
        stream = self._pipeline.open_client_stream(request)
        # try/finally rather than `with`, to make plain that nothing here stays open
        # across a yield but a plain object whose close() is synchronous.
        try:
            async for item in stream.receive:
                if isinstance(item, Delivery):
                    yield event_message(item.event, item.formatted)
                    continue
                match item.reason:
                    case EndReason.UNTIL_PASSED:
                        return
                    case EndReason.OVERFLOWED:
                        raise GrpcError(
                            StatusCode.RESOURCE_EXHAUSTED,
                            "the client did not keep up: its backlog overflowed after "
                            f"sequence {item.last_sequence}; resume with "
                            f"after_sequence={item.last_sequence}",
                        )
                    case EndReason.SHUTTING_DOWN:
                        break
        finally:
            stream.close()
        # The service is stopping (its last item said so, or the actor was cancelled
        # with the pipeline before it could).
        raise GrpcError(StatusCode.UNAVAILABLE, "the service is shutting down")

    async def SystemPrune(self, message: pb.SystemPruneRequest) -> pb.SystemPruneResponse:
        raise GrpcError(StatusCode.UNIMPLEMENTED, "SystemPrune is not implemented yet")
