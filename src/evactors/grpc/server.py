"""Serving gRPC methods: `Server` answers calls to purerpc servicers on unix and TCP sockets.

purerpc's own server cannot be used (../shared/facts/purerpc-here.md): it lets handlers
outlive their callers, kills a connection for one bad request, leaks internal details
to clients, and binds neither unix sockets nor a chosen host. This one routes calls by
a generated servicer's method table and runs them on the connection driver in
`_connection`. The task tree:

    Server.serve
    ├── one trio.serve_listeners per listening socket
    └── one task per connection, with its own nursery:
        ├── the connection driver (`GrpcConnection.run`: reader and writer)
        └── one task per call; the handler runs in the call's own cancel scope,
            which a client reset, a lost connection, the deadline or shutdown cancels

Status rules (grpc-go's): a handler's `GrpcError` is the call's status; any other
exception is UNKNOWN "internal error", with the traceback in the log only; a passed
deadline is DEADLINE_EXCEEDED; an unknown method UNIMPLEMENTED; a request that cannot
be read INTERNAL (or what `_protocol.StreamFailed` says). Each fails its own call only.
"""

from __future__ import annotations

import contextlib
import errno
import inspect
import logging
import os
import stat
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Final

import attrs
import purerpc
import trio
from google.protobuf.message import DecodeError, Message

from ._connection import GrpcConnection, GrpcStream
from ._protocol import GrpcProtocol, RequestReceived
from ._status import GrpcError, StatusCode
from .address import Address, TcpAddress, UnixAddress

LOGGER = logging.getLogger(__name__)

# evactors' requests are a few filter strings: 64 KiB is generous. Each stream may hold
# twice this unread (its HTTP/2 window), so it also bounds a connection's memory.
DEFAULT_MAX_MESSAGE_LENGTH: Final = 64 * 1024
# HTTP/2's recommended minimum (RFC 9113 section 6.5.2); clients such as grpcio queue
# calls beyond the advertised limit. A client of evactors needs a handful.
DEFAULT_MAX_CONCURRENT_STREAMS: Final = 100
# Half the usual soft limit on open files (1024), leaving descriptors for containerd
# connections and files: past the limit, accept() would fail for everyone.
DEFAULT_MAX_CONNECTIONS: Final = 512
# How long shutdown waits for open calls to send their UNAVAILABLE status.
DEFAULT_SHUTDOWN_TIMEOUT: Final = 5.0
# Owner and group may connect; others may not. Applied before the socket listens.
UNIX_SOCKET_MODE: Final = 0o660
# How long to wait for a server behind an existing socket file to answer.
_PROBE_TIMEOUT: Final = 1.0
# What a client is told when a handler fails; the details go to the log only.
_INTERNAL_ERROR: Final = "internal error"
_SERVED_CARDINALITIES: Final = frozenset(
    {
        purerpc.Cardinality.UNARY_UNARY,
        purerpc.Cardinality.UNARY_STREAM,
    }
)
Status = tuple[StatusCode, str]
_OK: Final[Status] = (StatusCode.OK, "")


@attrs.frozen
class ServerStatistics:
    """What a `Server` holds open right now."""

    connections: int
    calls: int


@attrs.frozen
class _Method:
    path: str
    # purerpc's wrapper: (message, headers); it passes the headers on to a handler
    # whose second parameter is named `request`.
    handler: Callable[[Any, RequestReceived], Any]
    cardinality: purerpc.Cardinality
    request_type: type[Message]
    response_type: type[Message]


@attrs.define(eq=False)
class _Call:
    """One call being answered: its stream and the cancel scope its handler runs in."""

    stream: GrpcStream
    scope: trio.CancelScope
    path: str
    ended_by: GrpcError | None = None

    def aborted(self, error: GrpcError) -> None:
        """The stream's `on_abort`: reset by the client, failed, or its connection lost."""
        self.scope.cancel(reason=f"{self.path}: {error.message}")

    def end(self, error: GrpcError) -> None:
        """End the call from the server's side; it answers with `error`'s status."""
        if self.ended_by is None:
            self.ended_by = error
        self.scope.cancel(reason=f"{self.path}: {error.message}")


@attrs.define(eq=False)
class _ServedConnection:
    connection: GrpcConnection
    nursery: trio.Nursery
    calls: dict[int, _Call] = attrs.field(factory=dict)
    _call_ended: trio.Event = attrs.field(factory=trio.Event)

    def remove(self, call: _Call) -> None:
        self.calls.pop(call.stream.stream_id, None)
        self._call_ended.set()

    async def wait_until_idle(self) -> None:
        while self.calls:
            self._call_ended = trio.Event()
            await self._call_ended.wait()


@attrs.frozen
class _Listening:
    address: Address
    listener: trio.SocketListener
    # A unix socket file this server made: (path, st_dev, st_ino), removed if still ours.
    socket_file: tuple[str, int, int] | None = None


class Server:
    """Answers gRPC calls to the methods of generated purerpc servicers.

    Serves unary (`async def M(self, request) -> response`) and server-streaming
    (`async def M(self, request): yield response`) methods; calls to others are
    UNIMPLEMENTED. A handler is cancelled the moment its call is over for the client
    (reset, connection lost, deadline passed) and must let `trio.Cancelled` through.
    A streaming handler is an async generator: it must not keep a nursery or cancel
    scope open across a `yield` (PEP 789); it relays from a channel instead. A handler
    whose second parameter is named `request` is also given the call's headers
    (purerpc's `RequestReceived`, with `custom_metadata` and `timeout`). A handler may
    answer with `bytes`, a response it serialized itself (a server that sends the same
    message on many streams serializes it once), and a streaming handler may yield a
    list of such, which go out together, in one write.

    Args:
      *servicers: Instances of generated `...Servicer` subclasses; each one's
        `service.methods` table gives its methods and message types.
      max_message_length: The largest request message accepted, in bytes; a bigger
        one fails its call with RESOURCE_EXHAUSTED.
      max_concurrent_streams: Calls open at once on one connection; advertised to
        clients, and a stream beyond it is refused with REFUSED_STREAM.
      max_connections: Connections open at once; a new connection beyond it is closed
        at once, with a warning in the log.
      shutdown_timeout: Seconds `shutdown` waits for open calls to end.

    Raises:
      ValueError: two servicers serve the same service.
    """

    def __init__(
        self,
        *servicers: purerpc.Servicer,
        max_message_length: int = DEFAULT_MAX_MESSAGE_LENGTH,
        max_concurrent_streams: int = DEFAULT_MAX_CONCURRENT_STREAMS,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    ) -> None:
        self._methods: dict[str, _Method] = {}
        self._services: set[str] = set()
        for servicer in servicers:
            service = servicer.service
            if service.name in self._services:
                raise ValueError(f"service {service.name} is served twice")
            self._services.add(service.name)
            for name, bound in service.methods.items():
                path = f"/{service.name}/{name}"
                signature = bound.signature
                self._methods[path] = _Method(
                    path,
                    bound.method_fn,
                    signature.cardinality,
                    signature.request_type,
                    signature.response_type,
                )
        self._max_message_length = max_message_length
        self._max_concurrent_streams = max_concurrent_streams
        self._max_connections = max_connections
        self._shutdown_timeout = shutdown_timeout
        self._connections: set[_ServedConnection] = set()
        self._accepted = 0
        self._stop = trio.Event()
        self._stop_message = ""

    def statistics(self) -> ServerStatistics:
        """How many connections and calls are open."""
        calls = sum(len(served.calls) for served in self._connections)
        return ServerStatistics(connections=len(self._connections), calls=calls)

    def shutdown(self, message: str = "the server is shutting down") -> None:
        """Ask `serve` to stop gracefully; it returns once done. Does not wait.

        Every open call ends with UNAVAILABLE and `message`, then each connection gets
        GOAWAY and is closed. Later calls do nothing. Call it from a task of the trio
        run that serves (a signal watcher, say).
        """
        if not self._stop.is_set():
            self._stop_message = message
            self._stop.set()

    async def serve(
        self,
        listen: Sequence[Address],
        *,
        task_status: trio.TaskStatus[list[Address]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on every address and answer calls until `shutdown` is called.

        Args:
          listen: Where to listen. `tcp://host:port` binds exactly that host (port 0:
            any free port); `unix:///path` creates the parent folder if needed and
            replaces a stale socket file, but never one a server answers on.
          task_status: Given the addresses listened on once every listener accepts
            connections (with the real port for port 0).

        Raises:
          OSError: an address cannot be bound; EADDRINUSE naming the path when a
            server already answers on a unix socket.
          ValueError: `listen` is empty.

        Resource handling:
          Each connection lives in its own nursery with its calls; when it ends, every
          handler on it is cancelled and its socket closed. On `shutdown` the listeners
          close and the unix socket files are removed (only if still ours: same inode);
          open calls end with UNAVAILABLE (waiting up to `shutdown_timeout` for them),
          then each connection gets GOAWAY and is closed (waiting up to half a second
          for the client to read it). Cancelling `serve` instead stops at once: sockets
          are closed without a status (clients see the lost connection, UNAVAILABLE).
        """
        if not listen:
            raise ValueError("serve needs at least one address to listen on")
        listening: list[_Listening] = []
        try:
            for address in listen:
                listening.extend(await _listen(address))
            async with trio.open_nursery() as connections:
                async with trio.open_nursery() as acceptors:
                    for item in listening:
                        handler = partial(self._serve_connection, item.address)
                        acceptors.start_soon(
                            partial(
                                trio.serve_listeners,
                                handler,
                                [item.listener],
                                handler_nursery=connections,
                            )
                        )
                    addresses = [item.address for item in listening]
                    LOGGER.debug("serving gRPC on %s", ", ".join(map(str, addresses)))
                    task_status.started(addresses)
                    await self._stop.wait()
                    acceptors.cancel_scope.cancel(reason="server shutting down")
                _remove_socket_files(listening)
                await self._close_connections()
                connections.cancel_scope.cancel(reason="server stopped")
        finally:
            for item in listening:
                await trio.aclose_forcefully(item.listener)
            _remove_socket_files(listening)
        LOGGER.debug("gRPC server stopped")

    # -- shutdown -------------------------------------------------------------------------

    async def _close_connections(self) -> None:
        error = GrpcError(StatusCode.UNAVAILABLE, self._stop_message)
        LOGGER.debug("closing %d gRPC connections: %s", len(self._connections), error.message)
        async with trio.open_nursery() as nursery:
            for served in list(self._connections):
                nursery.start_soon(self._close_gracefully, served, error)

    async def _close_gracefully(self, served: _ServedConnection, error: GrpcError) -> None:
        served.connection.accepts_new_streams = False
        for call in list(served.calls.values()):
            call.end(error)
        with trio.move_on_after(self._shutdown_timeout):
            await served.wait_until_idle()
        await served.connection.close_gracefully()

    # -- connections ----------------------------------------------------------------------

    async def _serve_connection(self, address: Address, transport: trio.SocketStream) -> None:
        self._accepted += 1
        name = f"{address} #{self._accepted}"
        if isinstance(address, TcpAddress):
            name += f" from {_peer(transport)}"
        if self._stop.is_set():
            return  # serve_listeners closes it
        if len(self._connections) >= self._max_connections:
            LOGGER.warning(
                "closing connection %s at once: %d connections are open (max_connections)",
                name,
                len(self._connections),
            )
            return
        protocol = GrpcProtocol(
            client_side=False,
            max_message_length=self._max_message_length,
            max_concurrent_streams=self._max_concurrent_streams,
        )
        connection = GrpcConnection(transport, protocol, name)
        LOGGER.debug("connection %s opened", name)
        async with trio.open_nursery() as nursery:
            served = _ServedConnection(connection, nursery)
            connection.on_request = partial(self._start_call, served)
            self._connections.add(served)
            try:
                await connection.run()
            finally:
                self._connections.discard(served)
                nursery.cancel_scope.cancel(reason=f"connection {name} ended")
        LOGGER.debug("connection %s ended: %s", name, connection.closed)

    # -- calls ----------------------------------------------------------------------------

    def _start_call(self, served: _ServedConnection, stream: GrpcStream) -> None:
        """The connection's `on_request`: run a call in the connection's nursery."""
        headers = stream.headers
        assert isinstance(headers, RequestReceived)
        path = f"/{headers.service_name}/{headers.method_name}"
        scope = trio.CancelScope()
        if headers.timeout is not None:
            # grpc-timeout runs from when the request arrives, as in grpc-go.
            scope.deadline = trio.current_time() + headers.timeout.total_seconds()
        call = _Call(stream, scope, path)
        stream.on_abort = call.aborted
        served.calls[stream.stream_id] = call
        served.nursery.start_soon(self._run_call, served, call, name=f"grpc call {path}")

    async def _run_call(self, served: _ServedConnection, call: _Call) -> None:
        stream = call.stream
        try:
            status = await self._answer_in_scope(call)
            if status is not None and stream.connection.forget(stream):
                code, message = status
                LOGGER.debug(
                    "%s on %s: %s %s", call.path, stream.connection.name, code.name, message
                )
                stream.connection.protocol.end_call(stream.stream_id, code, message)
                stream.connection.writer.write_now()
        finally:
            # After a status this does nothing; otherwise (cancelled with the whole
            # connection, say) it resets the stream, synchronously.
            stream.reset()
            served.remove(call)

    async def _answer_in_scope(self, call: _Call) -> Status | None:
        """The call's status, or None when no status can reach the client any more."""
        with call.scope:
            try:
                return await self._answer(call)
            except GrpcError as error:
                # `_answer` turns the handler's errors into statuses: this one comes from
                # the transport, because the stream was reset or the connection lost.
                LOGGER.debug("%s ended: %s", call.path, error)
                return None
        if call.stream.aborted is not None:
            LOGGER.debug("%s ended: %s", call.path, call.stream.aborted)
            return None
        if call.ended_by is not None:
            return call.ended_by.code, call.ended_by.message
        return StatusCode.DEADLINE_EXCEEDED, "deadline exceeded"

    async def _answer(self, call: _Call) -> Status:
        method = self._methods.get(call.path)
        if method is None or method.cardinality not in _SERVED_CARDINALITIES:
            return self._unimplemented(call, method)
        request = _decode(method, await call.stream.receive_message())
        if isinstance(request, tuple):
            return request
        if method.cardinality is purerpc.Cardinality.UNARY_UNARY:
            return await _answer_unary(call.stream, method, request)
        return await _answer_stream(call.stream, method, request)

    def _unimplemented(self, call: _Call, method: _Method | None) -> Status:
        if method is not None:
            return (
                StatusCode.UNIMPLEMENTED,
                f"{method.path} is {method.cardinality.name}: this server serves only "
                "unary and server-streaming methods",
            )
        headers = call.stream.headers
        assert isinstance(headers, RequestReceived)
        if headers.service_name in self._services:
            return (
                StatusCode.UNIMPLEMENTED,
                f"unknown method {headers.method_name} for service {headers.service_name}",
            )
        return StatusCode.UNIMPLEMENTED, f"unknown service {headers.service_name}"


def _decode(method: _Method, data: bytes | None) -> Message | Status:
    """The request, or the status of a call whose request cannot be read (grpc-go's)."""
    if data is None:
        return StatusCode.INTERNAL, f"{method.path}: the request has no message"
    try:
        return method.request_type.FromString(data)
    except DecodeError as error:
        return StatusCode.INTERNAL, f"{method.path}: cannot decode the request: {error}"


async def _answer_unary(stream: GrpcStream, method: _Method, request: Message) -> Status:
    try:
        response = await method.handler(request, stream.headers)
        payload = _serialize(method, response)
    except GrpcError as error:
        return error.code, error.message
    except Exception:
        LOGGER.exception("%s failed", method.path)
        return StatusCode.UNKNOWN, _INTERNAL_ERROR
    await _send(stream, payload, first=True)
    return _OK


async def _answer_stream(stream: GrpcStream, method: _Method, request: Message) -> Status:
    responses = method.handler(request, stream.headers)
    if not inspect.isasyncgen(responses):
        if inspect.iscoroutine(responses):
            responses.close()
        LOGGER.error("%s failed: its handler is not an async generator", method.path)
        return StatusCode.UNKNOWN, _INTERNAL_ERROR
    first = True
    # aclosing: however the call ends, the handler's `finally` runs now, not whenever
    # the garbage collector gets to it.
    async with contextlib.aclosing(responses):
        while True:
            try:
                response = await anext(responses)
                payload = _serialize(method, response)
            except StopAsyncIteration:
                return _OK
            except GrpcError as error:
                return error.code, error.message
            except Exception:
                LOGGER.exception("%s failed", method.path)
                return StatusCode.UNKNOWN, _INTERNAL_ERROR
            await _send(stream, payload, first=first)
            first = False


def _serialize(method: _Method, response: object) -> bytes | list[bytes]:
    if isinstance(response, bytes):
        return response  # serialized by the handler (e.g. once for many streams)
    if isinstance(response, list) and all(isinstance(item, bytes) for item in response):
        return response  # several, serialized, to be sent together
    if not isinstance(response, method.response_type):
        raise TypeError(
            f"{method.path} answered with {type(response).__name__}, "
            f"not {method.response_type.__name__}"
        )
    return response.SerializeToString()


async def _send(stream: GrpcStream, payload: bytes | list[bytes], *, first: bool) -> None:
    """Send one response message (or several, together); the first one goes after the
    response headers.

    Raises:
      GrpcError: the stream was aborted or the connection lost.
    """
    if first:
        if stream.aborted is not None:
            raise stream.aborted
        stream.connection.protocol.start_response(stream.stream_id)
    await stream.send_messages([payload] if isinstance(payload, bytes) else payload)


def _peer(transport: trio.SocketStream) -> str:
    try:
        host, port, *_ = transport.socket.getpeername()
    except (OSError, ValueError):
        return "an unknown peer"
    return str(TcpAddress(host, port)).removeprefix("tcp://")


# -- listening ------------------------------------------------------------------------------


async def _listen(address: Address) -> list[_Listening]:
    if isinstance(address, TcpAddress):
        # trio sets SO_REUSEADDR (restart while old connections linger), never SO_REUSEPORT.
        try:
            listeners = await trio.open_tcp_listeners(address.port, host=address.host)
        except OSError as error:
            raise OSError(error.errno, f"cannot listen on {address}: {error.strerror}") from error
        return [
            _Listening(TcpAddress(address.host, listener.socket.getsockname()[1]), listener)
            for listener in listeners
        ]
    return [await _listen_unix(address)]


async def _listen_unix(address: UnixAddress) -> _Listening:
    path = address.path
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    await _remove_stale_socket(path)
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    try:
        await sock.bind(path)
        # Before listen(): until then a connect() is refused whatever the file's mode.
        os.chmod(path, UNIX_SOCKET_MODE)
        info = os.stat(path)
        sock.listen(trio.socket.SOMAXCONN)
    except BaseException:
        sock.close()
        raise
    return _Listening(address, trio.SocketListener(sock), (path, info.st_dev, info.st_ino))


async def _remove_stale_socket(path: str) -> None:
    """Unlink a socket file nobody answers on; refuse one a server answers on.

    Raises:
      OSError: EADDRINUSE when a server answers on `path` (or does not answer in
        time); EEXIST when `path` is not a socket.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(errno.EEXIST, f"cannot listen on {path}: it exists and is not a socket")
    probe = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    with probe:
        try:
            with trio.fail_after(_PROBE_TIMEOUT):
                await probe.connect(path)
        except ConnectionRefusedError:
            LOGGER.info("removing stale socket file %s", path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return
        except FileNotFoundError:
            return
        except trio.TooSlowError:
            pass
    raise OSError(errno.EADDRINUSE, f"cannot listen on {path}: a server is answering on it")


def _remove_socket_files(listening: Sequence[_Listening]) -> None:
    for item in listening:
        if item.socket_file is None:
            continue
        path, device, inode = item.socket_file
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            continue
        # Another server may have replaced a file we no longer listen on: leave it.
        if (info.st_dev, info.st_ino) == (device, inode):
            os.unlink(path)
