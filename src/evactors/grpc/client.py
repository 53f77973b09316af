"""Calling gRPC methods over one connection: `open_channel` and `Channel`.

purerpc's own client dials TCP only and sets TCP socket options that fail on a unix
socket; this client dials either (containerd listens on a unix socket) and runs on the
connection driver in `_connection`, so a cancelled call resets its stream at once.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Final, Generic, Self, TypeVar

import h2.exceptions
import trio
from google.protobuf.message import DecodeError, Message

from ._connection import GrpcConnection, GrpcStream, Metadata
from ._protocol import GrpcProtocol
from ._status import GrpcError, StatusCode
from .address import Address, UnixAddress, connect, parse_address

# Large enough for containerd's biggest answers (a List of many containers with their
# OCI specs); containerd's own default limit is 16 MiB as well.
DEFAULT_MAX_MESSAGE_LENGTH: Final = 16 * 1024 * 1024
# A client opens few streams at once; this is what it would accept from a server.
_CLIENT_MAX_CONCURRENT_STREAMS: Final = 100

ResponseT = TypeVar("ResponseT", bound=Message)


@asynccontextmanager
async def open_channel(
    address: str | Address,
    *,
    max_message_length: int = DEFAULT_MAX_MESSAGE_LENGTH,
    connect_timeout: float = 5.0,
) -> AsyncGenerator[Channel, None]:
    """Connect to a gRPC server and yield a channel for calls to it.

    Args:
      address: `unix:///path`, a bare socket path, or `tcp://host:port`.
      max_message_length: The largest response message accepted, in bytes.
      connect_timeout: Seconds to wait for the connection to be made.

    Raises:
      GrpcError: UNAVAILABLE, naming the address, when it cannot connect.

    Resource handling:
      The connection's reader and writer run in a nursery of this context; leaving it
      cancels them, resets every open call and closes the socket. An exception raised
      in the `async with` block comes out unwrapped (not in an ExceptionGroup).
    """
    if isinstance(address, str):
        address = parse_address(address)
    try:
        with trio.fail_after(connect_timeout):
            transport = await connect(address)
    except (OSError, trio.TooSlowError) as error:
        raise GrpcError(StatusCode.UNAVAILABLE, f"cannot connect to {address}: {error}") from None
    protocol = GrpcProtocol(
        client_side=True,
        max_message_length=max_message_length,
        max_concurrent_streams=_CLIENT_MAX_CONCURRENT_STREAMS,
    )
    connection = GrpcConnection(transport, protocol, name=str(address))
    body_error: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(connection.run)
            try:
                yield Channel(connection, address)
            except BaseException as error:
                body_error = error
                raise
            finally:
                nursery.cancel_scope.cancel(reason="channel closed")
    except BaseExceptionGroup as group:
        # The nursery wraps what the caller's block raised in a group (strict exception
        # groups). When that is all there is, hand it back as it was raised, so that
        # callers catch a GrpcError or Cancelled from their own code as usual.
        if body_error is not None and group.exceptions == (body_error,):
            raise body_error from None
        raise


class Channel:
    """Makes calls on one connection; made by `open_channel`."""

    def __init__(self, connection: GrpcConnection, address: Address) -> None:
        self._connection = connection
        self.address = address
        # grpc-go sends "localhost" for unix sockets; servers ignore it either way.
        self._authority = "localhost" if isinstance(address, UnixAddress) else str(address)[6:]

    @property
    def closed(self) -> bool:
        """True once the connection has ended; every new call would fail."""
        return self._connection.closed is not None

    async def unary_unary(
        self,
        method: str,
        request: Message,
        response_type: type[ResponseT],
        *,
        metadata: Metadata = (),
        timeout: float | None = None,
    ) -> ResponseT:
        """Call a method that answers with one message.

        Args:
          method: `/package.Service/Method`.
          request: The request message.
          response_type: The generated class of the response.
          metadata: Request headers, e.g. `(("containerd-namespace", "default"),)`.
          timeout: Seconds; sent as `grpc-timeout` and enforced here too.

        Raises:
          GrpcError: with the server's status, or DEADLINE_EXCEEDED, or UNAVAILABLE
            when the connection is lost.
        """
        # The whole call in one cancel scope and no helper objects: containerd's
        # directory makes one such call per new container, on the events' path.
        stream = self._start(method, metadata, timeout)
        try:
            with trio.move_on_at(_deadline(timeout)) as scope:
                await stream.send_message(request.SerializeToString(), end_stream=True)
                data = await stream.receive_message()
                several = data is not None and await stream.receive_message() is not None
            if scope.cancelled_caught:
                raise GrpcError(StatusCode.DEADLINE_EXCEEDED, f"{method}: deadline exceeded")
        finally:
            # Normal end, error, or cancellation: a call that is not finished is reset.
            stream.reset()
        if several:
            raise GrpcError(StatusCode.INTERNAL, f"{method} answered with several messages")
        _raise_for_status(stream, method)
        if data is None:
            raise GrpcError(StatusCode.INTERNAL, f"{method} answered without a message")
        return _decode(response_type, data, method)

    @asynccontextmanager
    async def unary_stream(
        self,
        method: str,
        request: Message,
        response_type: type[ResponseT],
        *,
        metadata: Metadata = (),
        timeout: float | None = None,
    ) -> AsyncGenerator[ResponseStream[ResponseT], None]:
        """Call a method that answers with a stream of messages.

        Yields an async iterator of the responses. Leaving the context before the
        stream has ended cancels the call (the server sees RST_STREAM at once).
        Arguments and errors as for `unary_unary`; the iterator raises them.
        """
        deadline = _deadline(timeout)
        stream = self._start(method, metadata, timeout)
        try:
            call = ResponseStream(stream, response_type, method, deadline)
            with trio.move_on_at(deadline) as scope:
                await stream.send_message(request.SerializeToString(), end_stream=True)
            if scope.cancelled_caught:
                raise GrpcError(StatusCode.DEADLINE_EXCEEDED, f"{method}: deadline exceeded")
            yield call
        finally:
            # Normal end, error, or cancellation: a call that is not finished is reset.
            stream.reset()

    def _start(self, method: str, metadata: Metadata, timeout: float | None) -> GrpcStream:
        service, _, name = method.removeprefix("/").partition("/")
        if not service or not name or "/" in name:
            raise ValueError(f"method {method!r} is not /package.Service/Method")
        protocol = self._connection.protocol
        try:
            stream = self._connection.open_stream(protocol.get_next_available_stream_id())
            protocol.start_request(
                stream.stream_id,
                "http",
                service,
                name,
                authority=self._authority,
                timeout=None if timeout is None else datetime.timedelta(seconds=timeout),
                content_type_suffix="+proto",
                custom_metadata=metadata,
            )
        except h2.exceptions.TooManyStreamsError:
            raise GrpcError(
                StatusCode.RESOURCE_EXHAUSTED, f"{self.address}: too many calls at once"
            ) from None
        return stream


class ResponseStream(Generic[ResponseT]):
    """The responses of one call, as an async iterator; ends when the call ends OK."""

    def __init__(
        self,
        stream: GrpcStream,
        response_type: type[ResponseT],
        method: str,
        deadline: float,
    ) -> None:
        self._stream = stream
        self._response_type = response_type
        self._method = method
        self._deadline = deadline

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ResponseT:
        response = await self.receive()
        if response is None:
            raise StopAsyncIteration
        return response

    async def receive(self) -> ResponseT | None:
        """The next response, or None when the call has ended with OK.

        Raises:
          GrpcError: the call ended with another status, its deadline passed, or the
            connection was lost.
        """
        if self._deadline == math.inf:
            data = await self._stream.receive_message()  # e.g. a subscription: no scope
        else:
            with trio.move_on_at(self._deadline) as scope:
                data = await self._stream.receive_message()
            if scope.cancelled_caught:
                self._stream.reset()
                raise GrpcError(StatusCode.DEADLINE_EXCEEDED, f"{self._method}: deadline exceeded")
        if data is None:
            _raise_for_status(self._stream, self._method)
            return None
        return _decode(self._response_type, data, self._method)


def _deadline(timeout: float | None) -> float:
    return math.inf if timeout is None else trio.current_time() + timeout


def _decode(response_type: type[ResponseT], data: bytes, method: str) -> ResponseT:
    try:
        return response_type.FromString(data)
    except DecodeError as error:
        raise GrpcError(
            StatusCode.INTERNAL, f"{method}: cannot decode the response: {error}"
        ) from None


def _raise_for_status(stream: GrpcStream, method: str) -> None:
    """Raise the call's status unless it is OK (the peer has ended its side)."""
    trailers = stream.trailers
    if trailers is None:
        raise GrpcError(StatusCode.INTERNAL, f"{method}: stream ended without a status")
    code, message = trailers.status.int_value, trailers.status.status_message
    if code != StatusCode.OK:
        try:
            status = StatusCode(code)
        except ValueError:
            status = StatusCode.UNKNOWN
        raise GrpcError(status, message)
