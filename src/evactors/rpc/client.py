"""Calling `evactors.v1.SystemService`: `open_system_client` and `SystemClient`."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Final

from evactors._generated.evactors.v1 import system_service_pb2 as pb
from evactors.grpc import Address, Channel, ResponseStream, open_channel

_SERVICE: Final = "/evactors.v1.SystemService"


@asynccontextmanager
async def open_system_client(address: str | Address) -> AsyncGenerator[SystemClient, None]:
    """Connect to an evactors server.

    Raises:
      GrpcError: UNAVAILABLE, naming the address, when it cannot connect.
    """
    async with open_channel(address) as channel:
        yield SystemClient(channel)


class SystemClient:
    """Calls to one evactors server; made by `open_system_client`. Calls raise
    `GrpcError` with the server's status."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    async def info(
        self, request: pb.GetSystemInfoRequest | None = None, *, timeout: float | None = None
    ) -> pb.GetSystemInfoResponse:
        return await self.channel.unary_unary(
            f"{_SERVICE}/GetSystemInfo",
            request or pb.GetSystemInfoRequest(),
            pb.GetSystemInfoResponse,
            timeout=timeout,
        )

    @asynccontextmanager
    async def events(
        self, request: pb.GetSystemEventsRequest | None = None, *, timeout: float | None = None
    ) -> AsyncGenerator[ResponseStream[pb.SystemEvent], None]:
        """The event stream; leaving the context cancels the call."""
        async with self.channel.unary_stream(
            f"{_SERVICE}/GetSystemEvents",
            request or pb.GetSystemEventsRequest(),
            pb.SystemEvent,
            timeout=timeout,
        ) as stream:
            yield stream

    async def prune(
        self, request: pb.SystemPruneRequest, *, timeout: float | None = None
    ) -> pb.SystemPruneResponse:
        return await self.channel.unary_unary(
            f"{_SERVICE}/SystemPrune", request, pb.SystemPruneResponse, timeout=timeout
        )
