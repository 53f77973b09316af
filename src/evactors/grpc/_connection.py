"""One HTTP/2 connection carrying gRPC calls, driven by trio.

`GrpcConnection` owns a byte stream (unix or TCP socket) and a `GrpcProtocol` (the
sans-IO state machine). It runs two tasks in a nursery that its opener provides:

- the *reader* receives bytes (through `Reader`), feeds them to the protocol and hands
  each event to its `GrpcStream`; it never blocks on anything but the socket, so a slow
  call can never stall the others;
- the *writer* is the task that writes to the socket. Everyone else queues frames in
  the protocol and calls `Writer.kick()` (do not wait), `Writer.write_now()` (write
  what the socket takes now if the writer is idle, leave it the rest) or
  `await Writer.flush()` (wait until what I queued has left); concurrent sends
  coalesce into one write.

Bounded buffers: a stream's inbox holds messages the application has not consumed yet,
and their bytes are acknowledged to the peer (HTTP/2 WINDOW_UPDATE) only when consumed,
so the peer can never send more than one stream window ahead. Outbound, a sender waits
for the peer's window, and for the writer whenever more than WRITE_QUEUE_LIMIT bytes
are queued on the connection.

Error handling: when the connection ends (EOF, reset, protocol error, or closing it
ourselves) every open stream is aborted with UNAVAILABLE, which wakes whoever waits on
it; a RST_STREAM aborts its stream with the status grpc-go gives its error code
(CANCELLED for CANCEL). `GrpcStream.on_abort` lets a server cancel the handler of an
aborted stream; `GrpcConnection.close_gracefully` lets it say goodbye (GOAWAY).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import struct
from collections.abc import Callable, Sequence
from typing import Any, Final

import attrs
import h2.errors
import h2.exceptions
import trio

from ._protocol import (
    ConnectionTerminated,
    GrpcProtocol,
    MessageReceived,
    RequestEnded,
    RequestReceived,
    ResponseEnded,
    ResponseReceived,
    StreamFailed,
    StreamReset,
    WindowUpdated,
)
from ._status import GrpcError, StatusCode

LOGGER = logging.getLogger(__name__)

RECEIVE_CHUNK: Final = 64 * 1024
# Outbound bytes a sender may leave queued for the writer without waiting for them to
# reach the socket. Below it, sends on one connection coalesce into few writes (one
# system call for many messages); above it, senders wait, so the queue stays bounded.
WRITE_QUEUE_LIMIT: Final = 256 * 1024
# How long a closing connection may spend writing its last frames (a GOAWAY).
GOODBYE_TIMEOUT: Final = 0.5
# A gRPC message on the wire: a compressed flag (always 0 here) and a 4-byte length.
_MESSAGE_PREFIX = struct.Struct(">?I")
# The status of a stream the peer reset, by RST_STREAM error code (grpc-go's
# http2ErrConvTab); any other code is INTERNAL. REFUSED_STREAM means "never processed".
_RESET_STATUS: Final = {
    h2.errors.ErrorCodes.CANCEL: StatusCode.CANCELLED,
    h2.errors.ErrorCodes.REFUSED_STREAM: StatusCode.UNAVAILABLE,
    h2.errors.ErrorCodes.FLOW_CONTROL_ERROR: StatusCode.RESOURCE_EXHAUSTED,
    h2.errors.ErrorCodes.ENHANCE_YOUR_CALM: StatusCode.RESOURCE_EXHAUSTED,
    h2.errors.ErrorCodes.INADEQUATE_SECURITY: StatusCode.PERMISSION_DENIED,
}

Metadata = Sequence[tuple[str, str | bytes]]
# Events that mark the end of what the peer sends on a stream.
_END_EVENTS = (RequestEnded, ResponseEnded)


class Reader:
    """Takes a connection's bytes from its socket, for the reader task.

    trio's `SocketStream.receive_some` reads first and waits when nothing is there, and
    after every read that finds something it yields to the scheduler once more. At a few
    messages at a time a read nearly always finds one packet; the next read finds
    nothing. So when the last read drained the socket (it returned less than asked
    for), this one waits until the socket is readable and then reads once: one system
    call and one scheduler round per wake-up instead of two of each.
    """

    def __init__(self, transport: trio.abc.Stream) -> None:
        self._transport = transport
        self._socket = transport.socket if isinstance(transport, trio.SocketStream) else None
        self._drained = True

    async def receive_some(self) -> bytes | bytearray:
        """The next bytes from the peer; empty when it has closed its side.

        Raises:
          trio.BrokenResourceError: The connection broke.
          trio.ClosedResourceError: The transport was closed (by this side).
        """
        if self._socket is None:
            return await self._transport.receive_some(RECEIVE_CHUNK)
        if self._drained:
            await trio.lowlevel.wait_readable(self._socket)
        else:
            await trio.lowlevel.checkpoint()  # a long read must not starve the others
        while True:
            try:
                # Non-blocking (trio's sockets are); the transport is closed only after
                # the reader task has ended, so the descriptor is still this socket's.
                data = os.read(self._socket.fileno(), RECEIVE_CHUNK)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(self._socket)
                continue
            except OSError as error:
                raise trio.BrokenResourceError(f"socket read failed: {error}") from error
            self._drained = len(data) < RECEIVE_CHUNK
            return data


class Writer:
    """The single task that writes a connection's queued frames to its socket."""

    def __init__(self, protocol: GrpcProtocol, transport: trio.abc.Stream) -> None:
        self._protocol = protocol
        self._transport = transport
        self._requested = 0  # generation of the newest kick
        self._written = 0  # generation whose bytes have all been written
        self._wakeup = trio.Event()
        self._progress = trio.Event()
        self._failure: BaseException | None = None
        self._eof_requested = False
        # Bytes taken from the protocol but not written yet (`write_now` left them).
        self._leftover = b""
        self._sending = False
        self._fd = transport.socket.fileno() if isinstance(transport, trio.SocketStream) else -1

    def kick(self) -> None:
        """Ask for queued frames to be written soon; does not wait."""
        self._requested += 1
        self._wakeup.set()

    def write_now(self) -> None:
        """Write queued frames at once when the writer is idle, as far as the socket takes
        them without waiting; the writer writes the rest. Saves waking the writer task
        (a scheduling round) for each message when traffic is light. Does not wait."""
        if self._sending or self._leftover or self._eof_requested or self._failure or self._fd < 0:
            self.kick()
            return
        data = self._protocol.data_to_send()
        if not data:
            return
        try:
            sent = os.write(self._fd, data)  # non-blocking: trio's sockets are
        except OSError:
            sent = 0  # would block, or broken: the writer finds out which
        if sent < len(data):
            self._leftover = data[sent:]
            self.kick()
        else:
            self._written = self._requested  # nothing of any earlier kick is left

    async def flush(self) -> None:
        """Write everything queued so far before returning.

        Raises:
          GrpcError: UNAVAILABLE, when the connection can no longer be written to.
        """
        self.kick()
        target = self._requested
        while self._written < target:
            if self._failure is not None:
                raise GrpcError(StatusCode.UNAVAILABLE, "connection lost") from self._failure
            progress = self._progress
            await progress.wait()

    async def send_eof(self) -> None:
        """Write everything queued so far, then half-close the transport.

        Nothing is written after it; later flushes raise.

        Raises:
          GrpcError: UNAVAILABLE, when the connection can no longer be written to.
        """
        self._eof_requested = True
        await self.flush()

    async def run(self) -> None:
        """Write until the transport breaks or is half-closed; then return."""
        while True:
            await self._wakeup.wait()
            self._wakeup = trio.Event()
            target = self._requested
            data = self._leftover + self._protocol.data_to_send()
            self._leftover = b""
            eof = self._eof_requested
            self._sending = True
            try:
                if data:
                    await self._transport.send_all(data)
                if eof and isinstance(self._transport, trio.abc.HalfCloseableStream):
                    await self._transport.send_eof()
            except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
                LOGGER.debug("connection writer stopped: %r", error)
                self._failure = error
                self._progress.set()
                return
            finally:
                self._sending = False
            self._written = target
            self._progress.set()
            self._progress = trio.Event()
            if eof:
                self._failure = trio.ClosedResourceError("the connection is half-closed")
                self._progress.set()
                return


class GrpcStream:
    """One gRPC call on a connection, from either end.

    Created by `GrpcConnection.open_stream` (client) or by the reader for each request
    (server). Receiving and sending are each meant for one task at a time.
    """

    # One per call, and a server holds thousands of idle ones: no per-object dict.
    __slots__ = (
        "_abort",
        "_inbox",
        "_inbox_changed",
        "_window_opened",
        "connection",
        "headers",
        "on_abort",
        "remote_ended",
        "stream_id",
        "trailers",
    )

    def __init__(self, connection: GrpcConnection, stream_id: int) -> None:
        self.connection = connection
        self.stream_id = stream_id
        self.headers: RequestReceived | ResponseReceived | None = None
        self.trailers: ResponseEnded | None = None
        self.remote_ended = False
        # Called once, synchronously, when the stream is aborted (reset by the peer,
        # failed, or its connection lost). A server cancels the handler here.
        self.on_abort: Callable[[GrpcError], None] | None = None
        # Made when first needed (and the inbox dropped when emptied): a server holds
        # thousands of idle calls, and an empty deque alone is 760 bytes.
        self._inbox: collections.deque[Any] | None = None
        self._inbox_changed: trio.Event | None = None  # set when the inbox changes
        self._window_opened: trio.Event | None = None  # set when the peer's window grows
        self._abort: GrpcError | None = None

    @property
    def aborted(self) -> GrpcError | None:
        return self._abort

    # -- called by the reader ---------------------------------------------------------

    def _deliver(self, event: Any) -> None:
        if isinstance(event, RequestReceived | ResponseReceived):
            self.headers = event
            return
        if isinstance(event, ResponseEnded):
            self.trailers = event
        if isinstance(event, _END_EVENTS):
            self.remote_ended = True
        if self._inbox is None:
            self._inbox = collections.deque()
        self._inbox.append(event)
        self._wake_receiver()

    def _wake_receiver(self) -> None:
        if self._inbox_changed is not None:
            self._inbox_changed.set()
            self._inbox_changed = None

    def _window_update(self) -> None:
        if self._window_opened is not None:
            self._window_opened.set()
            self._window_opened = None

    def _aborted(self, error: GrpcError) -> None:
        if self._abort is not None:
            return
        self._abort = error
        self._wake_receiver()
        self._window_update()
        if self.on_abort is not None:
            self.on_abort(error)

    # -- used by calls and handlers ----------------------------------------------------

    async def receive_message(self) -> bytes | None:
        """The next message from the peer, or None once the peer has ended its side.

        Raises:
          GrpcError: the stream was aborted (reset, failed, or connection lost).
        """
        while not self._inbox:
            if self._abort is not None:
                raise self._abort
            changed = self._inbox_changed = trio.Event()
            await changed.wait()
        inbox = self._inbox
        event = inbox.popleft()
        if isinstance(event, _END_EVENTS):
            inbox.appendleft(event)  # the end stays the end for later calls
            return None
        if not inbox:
            self._inbox = None
        assert isinstance(event, MessageReceived)
        # Consumed: only now may the peer send this many bytes more.
        protocol = self.connection.protocol
        protocol.acknowledge_received_data(self.stream_id, event.flow_controlled_length)
        if protocol.pending_output:  # h2 sends WINDOW_UPDATE only now and then
            self.connection.writer.write_now()
        data: bytes = event.data
        return data

    async def send_message(self, message: bytes, *, end_stream: bool = False) -> None:
        """Send one message; see `send_messages`."""
        await self.send_messages([message], end_stream=end_stream)

    async def send_messages(self, messages: Sequence[bytes], *, end_stream: bool = False) -> None:
        """Send messages in order, together, respecting the peer's flow-control window.

        Returns once they are queued for the writer (which writes what several senders
        queued in one go), or, when the connection's queue is full, once the writer has
        written them.

        Raises:
          GrpcError: the stream was aborted or the connection lost.
        """
        protocol = self.connection.protocol
        pack = _MESSAGE_PREFIX.pack
        frame = memoryview(b"".join([part for m in messages for part in (pack(False, len(m)), m)]))
        while frame:
            if self._abort is not None:
                raise self._abort
            window = protocol.flow_control_window(self.stream_id)
            if window <= 0:
                opened = self._window_opened = self._window_opened or trio.Event()
                self.connection.writer.kick()
                await opened.wait()
                continue
            chunk, frame = frame[:window], frame[window:]
            protocol.send_data(self.stream_id, bytes(chunk), end_stream=end_stream and not frame)
        writer = self.connection.writer
        if protocol.pending_output > WRITE_QUEUE_LIMIT:
            await writer.flush()
        elif len(self.connection.streams) > 1 and not protocol.config.client_side:
            # Other calls on this connection may be about to send too (a fan-out wakes
            # them in the same scheduling round): the writer, woken after them, writes
            # what they all queued in one system call. (A client's calls are not woken
            # together: containerd's connection carries the event subscription, which
            # sends nothing after its request, and a container lookup at a time.)
            writer.kick()
            await trio.lowlevel.checkpoint_if_cancelled()
        else:
            writer.write_now()
            await trio.lowlevel.checkpoint_if_cancelled()

    def reset(self, error_code: int = h2.errors.ErrorCodes.CANCEL) -> None:
        """Abandon the stream: send RST_STREAM (unless it is already closed) and forget it.

        Synchronous, so it can run in cleanup code under cancellation.
        """
        if self.connection.forget(self):
            protocol = self.connection.protocol
            protocol.reset_stream(self.stream_id, error_code)
            if protocol.pending_output:  # nothing to send for a call that has ended
                self.connection.writer.kick()


@attrs.define(eq=False)
class GrpcConnection:
    """The streams of one connection, and the tasks that move its bytes.

    Args:
      transport: The connected byte stream; the connection closes it when it ends.
      protocol: The sans-IO state machine for this connection.
      name: Names the peer in log lines and error messages.
      on_request: Server side: called by the reader with each new request stream. It
        must not block (it starts a handler in a nursery).
    """

    transport: trio.abc.Stream
    protocol: GrpcProtocol
    name: str
    on_request: Callable[[GrpcStream], None] | None = None
    streams: dict[int, GrpcStream] = attrs.field(factory=dict, init=False)
    reader: Reader = attrs.field(init=False)
    writer: Writer = attrs.field(init=False)
    closed: GrpcError | None = attrs.field(default=None, init=False)
    accepts_new_streams: bool = attrs.field(default=True, init=False)
    _run_scope: trio.CancelScope | None = attrs.field(default=None, init=False)
    _finished: trio.Event = attrs.field(factory=trio.Event, init=False)
    _closing: bool = attrs.field(default=False, init=False)
    _goaway: ConnectionTerminated | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        self.reader = Reader(self.transport)
        self.writer = Writer(self.protocol, self.transport)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Move bytes until the connection ends; then abort what is left and close.

        Returns when the peer closes the connection or it breaks. Cancel it to close
        the connection from this side.
        """
        try:
            async with trio.open_nursery() as nursery:
                self._run_scope = nursery.cancel_scope
                nursery.start_soon(self.writer.run)
                self.protocol.initiate_connection()
                self.writer.kick()
                task_status.started()
                reason = await self._read_until_closed()
                # At once, before any await: after a protocol error h2 refuses to send
                # anything more, so no call may try to.
                self._lost(GrpcError(StatusCode.UNAVAILABLE, f"{self.name}: {reason}"))
                # Give the writer a moment for a final GOAWAY, then stop it.
                with trio.move_on_after(GOODBYE_TIMEOUT), contextlib.suppress(GrpcError):
                    await self.writer.flush()
                nursery.cancel_scope.cancel(reason=f"connection {self.name} ended")
        finally:
            self._lost(GrpcError(StatusCode.UNAVAILABLE, f"{self.name}: connection closed"))
            self._finished.set()
            await trio.aclose_forcefully(self.transport)

    async def close_gracefully(self) -> None:
        """Say goodbye, for a server going down; `run` then returns.

        Aborts the streams still open (their calls can no longer end with a status: end
        them first), sends GOAWAY, half-closes the socket and waits up to
        GOODBYE_TIMEOUT for the peer to close its side, so that it reads everything
        sent before; then stops `run`, which closes the socket.
        """
        if self._run_scope is None or self._closing:
            return
        self._closing = True
        self._lost(GrpcError(StatusCode.UNAVAILABLE, f"{self.name}: connection closing"))
        if not self._finished.is_set():
            self.protocol.goodbye()
            with trio.move_on_after(GOODBYE_TIMEOUT):
                with contextlib.suppress(GrpcError):
                    await self.writer.send_eof()
                await self._finished.wait()
        self._run_scope.cancel(reason=f"connection {self.name} closed")

    async def _read_until_closed(self) -> str:
        while True:
            try:
                data = await self.reader.receive_some()
            except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
                return f"connection broken ({error})"
            if not data:
                return "connection closed by peer"
            if self._closing:
                # We sent GOAWAY: h2 takes no more frames, and none are wanted.
                continue
            try:
                events = self.protocol.receive_data(data)
            except h2.exceptions.ProtocolError as error:
                # h2 has queued a GOAWAY naming the error; the caller flushes it.
                LOGGER.info("closing connection %s: HTTP/2 protocol error: %s", self.name, error)
                return f"HTTP/2 protocol error: {error}"
            for event in events:
                self._dispatch(event)
            if self.protocol.pending_output:  # acknowledgements h2 made (PING, SETTINGS)
                self.writer.write_now()
            if self._goaway is not None:
                # h2 (3.2) takes a GOAWAY as the end of the connection: it will neither
                # send nor accept another frame, so no call on it can go on.
                return f"going away (GOAWAY, HTTP/2 error {self._goaway.error_code})"

    def _dispatch(self, event: Any) -> None:
        if isinstance(event, WindowUpdated):
            targets = (
                self.streams.values()
                if event.stream_id == 0
                else ([self.streams[event.stream_id]] if event.stream_id in self.streams else [])
            )
            for waiting in list(targets):
                waiting._window_update()
        elif isinstance(event, RequestReceived):
            self._request_received(event)
        elif isinstance(event, StreamReset):
            code = _RESET_STATUS.get(event.error_code, StatusCode.INTERNAL)
            self._abort_stream(
                event.stream_id,
                GrpcError(code, f"stream reset by peer (HTTP/2 error {event.error_code})"),
            )
        elif isinstance(event, StreamFailed):
            self._stream_failed(event)
        elif isinstance(event, ConnectionTerminated):
            self._goaway_received(event)
        else:
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream._deliver(event)
            elif isinstance(event, MessageReceived):
                # Nobody will consume it: give the window back at once.
                self.protocol.acknowledge_received_data(
                    event.stream_id, event.flow_controlled_length
                )

    def _request_received(self, event: RequestReceived) -> None:
        stream = GrpcStream(self, event.stream_id)
        stream.headers = event
        if self.on_request is None or not self.accepts_new_streams:
            self.protocol.reset_stream(event.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        self.streams[event.stream_id] = stream
        self.on_request(stream)

    def _stream_failed(self, event: StreamFailed) -> None:
        error = GrpcError(event.code, event.message)
        if self.protocol.config.client_side:
            self.protocol.reset_stream(event.stream_id, h2.errors.ErrorCodes.PROTOCOL_ERROR)
        else:
            self.protocol.end_call(event.stream_id, event.code, event.message)
        self._abort_stream(event.stream_id, error)

    def _goaway_received(self, event: ConnectionTerminated) -> None:
        # The reader ends the connection after this batch of events: what arrived
        # before the GOAWAY (a call's last messages and trailers) is still delivered.
        self.accepts_new_streams = False
        self._goaway = event

    def _abort_stream(self, stream_id: int, error: GrpcError) -> None:
        stream = self.streams.pop(stream_id, None)
        if stream is not None:
            stream._aborted(error)

    def _lost(self, error: GrpcError) -> None:
        if self.closed is None:
            self.closed = error
        self.accepts_new_streams = False
        for stream_id in list(self.streams):
            self._abort_stream(stream_id, error)

    # -- stream table --------------------------------------------------------------------

    def open_stream(self, stream_id: int) -> GrpcStream:
        """Register a new client stream (its headers are sent by the caller)."""
        if self.closed is not None:
            raise self.closed
        if not self.accepts_new_streams:
            raise GrpcError(StatusCode.UNAVAILABLE, f"{self.name} is going away")
        stream = GrpcStream(self, stream_id)
        self.streams[stream_id] = stream
        return stream

    def forget(self, stream: GrpcStream) -> bool:
        """Drop a finished stream from the table; True if it was still there."""
        return self.streams.pop(stream.stream_id, None) is not None
