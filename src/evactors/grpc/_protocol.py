"""The sans-IO gRPC-over-HTTP/2 state machine: purerpc's, with its gaps closed.

purerpc's `GRPCConnection` turns bytes into gRPC events and back, and does it well,
but it drops what a correct peer must react to and lets one bad stream take the whole
connection down (see ../shared/facts/purerpc-here.md, gaps 1, 4, 5, 6, 7). This subclass
keeps purerpc's parsing and framing and changes only the event handlers:

- RST_STREAM becomes `StreamReset` and GOAWAY becomes `ConnectionTerminated`, so the
  I/O layer can cancel exactly the affected calls;
- a malformed request or response, an oversized message, a compressed message or an
  unsupported `grpc-encoding` becomes `StreamFailed` for that stream alone;
- the per-stream read buffer is dropped as soon as its stream ends, fails or is reset;
- a server refuses a stream over its concurrency limit with REFUSED_STREAM instead of
  losing the connection (gap 8), and ends a call whose request is still arriving with
  RST_STREAM(NO_ERROR) after its trailers, as grpc-go does, so the stream is closed.

It does no I/O and knows nothing of trio: `evactors.grpc._connection` drives it. The
purerpc internals it relies on are checked by tests/test_purerpc_internals.py, which is
why purerpc and h2 are pinned exactly.
"""

from __future__ import annotations

import struct
from typing import Any, Final

import attrs
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.stream
import hpack
from h2.utilities import (
    HeaderValidationFlags,
    authority_from_headers,
    extract_method_header,
    validate_headers,
)
from purerpc.grpclib.buffers import MessageReadBuffer
from purerpc.grpclib.config import GRPCConfiguration
from purerpc.grpclib.connection import GRPCConnection
from purerpc.grpclib.events import (
    MessageReceived,
    RequestEnded,
    RequestReceived,
    ResponseEnded,
    ResponseReceived,
    WindowUpdated,
)
from purerpc.grpclib.exceptions import (
    MessageTooLargeError,
    ProtocolError,
    UnsupportedMessageEncodingError,
)
from purerpc.grpclib.headers import HeaderDict
from purerpc.grpclib.status import Status

from ._status import StatusCode

__all__ = [
    "ConnectionTerminated",
    "GrpcProtocol",
    "MessageReceived",
    "RequestEnded",
    "RequestReceived",
    "ResponseEnded",
    "ResponseReceived",
    "StreamFailed",
    "StreamReset",
    "WindowUpdated",
]

# Errors purerpc's header parsing raises for a malformed request or response
# (a missing header is a KeyError, a bad :path or grpc-timeout a ValueError), and
# those of h2's header checks and of decoding (UnicodeDecodeError is a ValueError).
_MALFORMED_HEADERS = (ProtocolError, h2.exceptions.ProtocolError, KeyError, ValueError, IndexError)
# h2's checks for a request's header block (RFC 9113 section 8). A server runs them
# itself, per stream: h2 would end the whole connection on a malformed request, where
# the RFC asks for a stream error (section 8.1.1).
_REQUEST_HEADERS = HeaderValidationFlags(
    is_client=False, is_trailer=False, is_response_header=False, is_push_promise=False
)
# A frame's header (RFC 9113 section 4.1): length (24 bits, as 16 + 8), type, flags,
# stream id (31 bits).
_FRAME_HEADER: Final = struct.Struct(">HBBBL")
_FRAME_HEADER_SIZE: Final = 9
_DATA: Final = 0x0
_STREAM_ID_MASK: Final = 0x7FFF_FFFF
_HEADERS: Final = 0x1
_PING: Final = 0x6
_WINDOW_UPDATE: Final = 0x8
_END_STREAM: Final = 0x1
_END_HEADERS: Final = 0x4
_ACK: Final = 0x1
_LAST_HEADERS: Final = _END_STREAM | _END_HEADERS  # no padding or priority
_PING_LENGTH: Final = 8
_WINDOW_UPDATE_LENGTH: Final = 4
_MAX_WINDOW: Final = 2**31 - 1
# The (type, flags) of the frames `GrpcProtocol.receive_data` may read itself: DATA in
# the middle of a call, a call's last header block, a PING, a WINDOW_UPDATE.
_FRAMES_READ_HERE: Final = frozenset(
    {(_DATA, 0), (_HEADERS, _LAST_HEADERS), (_PING, 0), (_WINDOW_UPDATE, 0)}
)
# A gRPC message's prefix: compressed flag, length.
_MESSAGE_PREFIX: Final = struct.Struct(">?I")
# Where sending or receiving DATA changes no state of h2's (its state machines map these
# to themselves).
_SENDING_STATES: Final = frozenset(
    {h2.stream.StreamState.OPEN, h2.stream.StreamState.HALF_CLOSED_REMOTE}
)
_RECEIVING_STATES: Final = frozenset(
    {h2.stream.StreamState.OPEN, h2.stream.StreamState.HALF_CLOSED_LOCAL}
)
# Where a client may open a stream (the first request moves IDLE to CLIENT_OPEN).
_OPENING_CONNECTION: Final = frozenset(
    {h2.connection.ConnectionState.IDLE, h2.connection.ConnectionState.CLIENT_OPEN}
)
_OPEN_CONNECTION: Final = frozenset(
    {h2.connection.ConnectionState.CLIENT_OPEN, h2.connection.ConnectionState.SERVER_OPEN}
)
# The only message encoding evactors speaks. Compression is refused rather than
# supported: requests are tiny, and inflating untrusted input is a decompression
# bomb waiting to happen (purerpc checks the size before inflating).
IDENTITY = "identity"


@attrs.frozen
class StreamReset:
    """The peer reset a stream (RST_STREAM): its call is over, abandon it."""

    stream_id: int
    error_code: int


@attrs.frozen
class ConnectionTerminated:
    """The peer sent GOAWAY: no new streams; streams above `last_stream_id` never ran."""

    error_code: int
    last_stream_id: int


@attrs.frozen
class StreamFailed:
    """One stream cannot go on (bad headers, bad message); the others are unaffected."""

    stream_id: int
    code: StatusCode
    message: str


# Header blocks `_ReusableBlockEncoder` keeps: a client's few methods and namespaces, a
# server's response headers and its common trailers.
HEADER_BLOCK_CACHE: Final = 256


class _ReusableBlockEncoder(hpack.Encoder):  # type: ignore[misc]
    """HPACK encoding that never uses the dynamic table, so that a header block depends
    on its headers alone and is encoded once.

    hpack's encoder searches its tables and Huffman-codes every header of every call:
    most of the CPU a unary call costs here (one `Containers.Get` per new container).
    Headers sent as literals "never indexed" (referring to the static table where it
    helps) are valid HPACK that any decoder reads; the price is a few bytes more per
    block on the wire.
    """

    def __init__(self) -> None:
        super().__init__()
        self._blocks: dict[tuple[Any, ...], bytes] = {}

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        # A change of the table size must still be signalled, at the start of the next
        # block (RFC 7541 section 4.2); the table itself stays empty.
        prefix = b""
        if self.header_table.resized:
            prefix = bytes(self._encode_table_size_change())
            self.header_table.resized = False
        key = tuple(headers)
        block = self._blocks.get(key)
        if block is None:
            block = b"".join(
                self.add((_bytes(name), _bytes(value)), sensitive=True, huffman=huffman)
                for name, value, *_ in key
            )
            if len(self._blocks) >= HEADER_BLOCK_CACHE:
                del self._blocks[next(iter(self._blocks))]
            self._blocks[key] = block
        return prefix + block


def _bytes(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode()


class _H2Connection(h2.connection.H2Connection):  # type: ignore[misc]
    """h2's connection state machine, leaving the concurrent-stream limit to `GrpcProtocol`.

    h2 compares the inbound streams with the limit we advertise *before* it decodes a
    HEADERS frame's header block, and raises TooManyStreamsError: the HPACK decoder has
    then missed a block, so the whole connection is lost (purerpc gap 8). Here h2 sees
    no open inbound streams; `GrpcProtocol` refuses the extra stream alone, after its
    headers are decoded.

    A client's request headers, which open a stream, are framed here without h2's frame
    objects and header checks (`send_headers`).
    """

    def send_headers(
        self, stream_id: int, headers: Any, end_stream: bool = False, **priority: Any
    ) -> None:
        block = None
        if (
            self.config.client_side
            and stream_id not in self.streams
            and not any(value is not None for value in priority.values())
            and self.state_machine.state in _OPENING_CONNECTION
            and self.open_outbound_streams < self.remote_settings.max_concurrent_streams
        ):
            # The encoder never touches the dynamic table: encoding for nothing is harmless.
            block = self.encoder.encode(headers)
        if block is None or len(block) > self.max_outbound_frame_size:
            super().send_headers(stream_id, headers, end_stream, **priority)
            return
        # What h2 does to open a stream with a request, but the frame itself.
        self.state_machine.process_input(h2.connection.ConnectionInputs.SEND_HEADERS)
        stream = self._begin_new_stream(stream_id, h2.connection.AllowedStreamIDs.ODD)
        stream.state_machine.process_input(h2.stream.StreamInputs.SEND_HEADERS)
        flags = _END_HEADERS
        if end_stream:
            stream.state_machine.process_input(h2.stream.StreamInputs.SEND_END_STREAM)
            flags |= _END_STREAM
        stream._authority = authority_from_headers(headers)
        stream.request_method = extract_method_header(headers)
        size = len(block)
        self._data_to_send += _FRAME_HEADER.pack(size >> 8, size & 0xFF, _HEADERS, flags, stream_id)
        self._data_to_send += block

    @property
    def open_inbound_streams(self) -> int:
        self._open_streams(int(not self.config.client_side))  # counting drops closed streams
        return 0

    def open_inbound_streams_up_to(self, stream_id: int) -> int:
        """The peer's open or half-closed streams numbered up to `stream_id`.

        h2 reports the events of all the frames it was given at once, so the streams a
        later HEADERS frame in the same batch opens are already open: they do not count.
        """
        parity = stream_id % 2
        return sum(
            1
            for other, stream in self.streams.items()
            if other % 2 == parity and other <= stream_id and stream.open
        )


class GrpcProtocol(GRPCConnection):  # type: ignore[misc]
    """purerpc's gRPC connection state machine with per-stream failure handling.

    Args:
      client_side: True for the dialling end.
      max_message_length: The largest message accepted, in bytes. The per-stream
        HTTP/2 receive window is twice this, and a stream's data is acknowledged only
        when the application consumes it, so this bounds what one stream can buffer.
      max_concurrent_streams: Advertised to the peer; a server refuses streams beyond it
        with REFUSED_STREAM (which a client may retry).
    """

    # The largest frame a peer may send (purerpc's is 16 MiB): HTTP/2's default, what
    # grpc-go and grpcio send, and the most that h2 or `receive_data` hold of a frame
    # that has not all arrived.
    MAX_INBOUND_FRAME_SIZE = 16_384

    def __init__(
        self, *, client_side: bool, max_message_length: int, max_concurrent_streams: int
    ) -> None:
        # purerpc reads these class attributes while it initialises its settings.
        self.MAX_CONCURRENT_STREAMS = max_concurrent_streams
        super().__init__(
            GRPCConfiguration(client_side=client_side, max_message_length=max_message_length)
        )
        # purerpc's own set-up, on h2's connection with the stream limit left to us; a
        # server checks and decodes request headers itself (see `_request_received`).
        self.h2_connection = _H2Connection(
            h2.config.H2Configuration(
                client_side=client_side,
                header_encoding="utf-8" if client_side else None,
                validate_inbound_headers=client_side,
                # Every header block we send is built by this package (purerpc's
                # request and response headers, checked metadata): h2's per-header
                # checks and rewriting would only repeat, for every call, what holds.
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
            )
        )
        self.h2_connection.encoder = _ReusableBlockEncoder()
        self.h2_connection.clear_outbound_data_buffer()
        self._set_h2_connection_local_settings()
        self._responses_started: set[int] = set()
        # The start of a frame whose end has not arrived yet, held here rather than in
        # h2's buffer so that the frame is still read by `receive_data` once whole
        # (when h2 holds part of a frame, every frame after it goes through h2).
        self._partial_frame = b""

    # -- requests (server side) ------------------------------------------------------

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Queue one DATA frame, which must fit the stream's window and the frame size.

        A frame on an open stream of an open connection changes no state in h2 but the
        two flow-control windows, and with END_STREAM one step of the stream's state
        machine: nearly every frame of a server stream, and a client's request, is
        framed here, without h2's frame objects. Everything else goes through h2, which
        checks and raises.
        """
        h2_connection = self.h2_connection
        stream = h2_connection.streams.get(stream_id)
        size = len(data)
        if stream is None or not self._frames_data_itself(stream, size):
            super().send_data(stream_id, data, end_stream=end_stream)
            return
        flags = 0
        if end_stream:
            stream.state_machine.process_input(h2.stream.StreamInputs.SEND_END_STREAM)
            flags = _END_STREAM
        h2_connection._data_to_send += _FRAME_HEADER.pack(
            size >> 8, size & 0xFF, _DATA, flags, stream_id
        )
        h2_connection._data_to_send += data
        stream.outbound_flow_control_window -= size
        h2_connection.outbound_flow_control_window -= size

    def _frames_data_itself(self, stream: Any, size: int) -> bool:
        h2_connection = self.h2_connection
        return (
            stream.state_machine.state in _SENDING_STATES
            and h2_connection.state_machine.state in _OPEN_CONNECTION
            and size <= h2_connection.max_outbound_frame_size
            and size <= h2_connection.outbound_flow_control_window
            and size <= stream.outbound_flow_control_window
        )

    def receive_data(self, data: bytes | bytearray) -> list[Any]:
        """The events of the frames in `data` (bytes from the peer, in order).

        Some frames are read here, without h2's frame objects, doing what h2 would: a
        DATA frame in the middle of a call (no END_STREAM, no padding) on an open
        stream, which changes no state in h2 but the two inbound windows (nearly all a
        stream of events is made of); on a client, a call's last header block
        (`_last_headers`); a PING, answered; a WINDOW_UPDATE of the connection's window
        (containerd sends the last two with every answer). Every other frame, and any
        frame while h2 holds part of one, goes through h2, in order. A frame cut short
        at the end of `data` waits here for the rest (h2 would hold it, and then read
        every frame after it itself: in a burst, nearly all).
        """
        incoming = self.h2_connection.incoming_buffer
        if self._partial_frame:
            data = self._partial_frame + data
            self._partial_frame = b""
        if incoming.data or incoming._preamble:
            return super().receive_data(data)  # type: ignore[no-any-return]
        events: list[Any] = []
        offset, end = 0, len(data)
        to_h2 = 0  # where the frames not read here yet begin: h2 takes them together
        while end - offset >= _FRAME_HEADER_SIZE:
            high, low, kind, flags, stream_id = _FRAME_HEADER.unpack_from(data, offset)
            start = offset + _FRAME_HEADER_SIZE
            frame_end = start + (high << 8 | low)
            if frame_end > end:
                break
            if (kind, flags) in _FRAMES_READ_HERE:
                if to_h2 < offset:  # h2 first: those frames may change what this one means
                    events += super().receive_data(data[to_h2:offset])
                    to_h2 = offset
                # None: left to h2 (it is in the middle of a header block, or the frame
                # is one that changes more in h2 than is done here).
                read = None
                if not incoming._headers_buffer:
                    payload = bytes(data[start:frame_end])
                    read = self._read_frame(kind, stream_id & _STREAM_ID_MASK, payload)
                if read is not None:
                    events += read
                    to_h2 = frame_end
            offset = frame_end
        if to_h2 < offset:
            events += super().receive_data(data[to_h2:offset])
        if offset < end:
            self._hold_partial_frame(data[offset:end])
        return events

    def _hold_partial_frame(self, start: bytes | bytearray) -> None:
        """Keep the start of a frame until the rest arrives, unless its header already
        announces more than we accept: h2 would refuse that frame only once all of it
        had arrived; we refuse it (as h2 does: GOAWAY, FrameTooLargeError) at once, so
        what waits is never more than one frame of the size we accept."""
        if len(start) >= _FRAME_HEADER_SIZE:
            high, low = _FRAME_HEADER.unpack_from(start)[:2]
            length = high << 8 | low
            limit = self.h2_connection.max_inbound_frame_size
            if length > limit:
                error = h2.exceptions.FrameTooLargeError(
                    f"Received overlong frame: length {length}, max {limit}"
                )
                self.h2_connection._terminate_connection(error.error_code)
                raise error
        self._partial_frame = bytes(start)

    def _read_frame(self, kind: int, stream_id: int, payload: bytes) -> list[Any] | None:
        """The events of one frame of `_FRAMES_READ_HERE`; None: h2 must read it."""
        if kind == _DATA:
            if not self._consume_inbound_windows(stream_id, len(payload)):
                return None
            return self._message_data(stream_id, payload, len(payload))
        if kind == _HEADERS:
            return self._last_headers(stream_id, payload)
        if stream_id or self.h2_connection.state_machine.state not in _OPEN_CONNECTION:
            return None
        if kind == _PING:
            return self._ping(payload)
        return self._connection_window_update(payload)

    def _ping(self, opaque: bytes) -> list[Any] | None:
        """Answer a PING (what h2 would queue; purerpc makes no event of it)."""
        if len(opaque) != _PING_LENGTH:
            return None
        h2_connection = self.h2_connection
        h2_connection.state_machine.process_input(h2.connection.ConnectionInputs.RECV_PING)
        h2_connection._data_to_send += _FRAME_HEADER.pack(0, _PING_LENGTH, _PING, _ACK, 0)
        h2_connection._data_to_send += opaque
        return []

    def _connection_window_update(self, payload: bytes) -> list[Any] | None:
        """The peer opened the connection's window (what h2 would do, and purerpc's event)."""
        if len(payload) != _WINDOW_UPDATE_LENGTH:
            return None
        increment = int.from_bytes(payload) & _STREAM_ID_MASK
        h2_connection = self.h2_connection
        window = h2_connection.outbound_flow_control_window + increment
        if not increment or window > _MAX_WINDOW:
            return None  # h2 reports the error
        h2_connection.state_machine.process_input(h2.connection.ConnectionInputs.RECV_WINDOW_UPDATE)
        h2_connection.outbound_flow_control_window = window
        return [WindowUpdated(stream_id=0, delta=increment)]

    def _last_headers(self, stream_id: int, block: bytes) -> list[Any] | None:
        """The events of a call's last header block (a response that is only a status,
        or trailers), when it ends a stream we have finished sending on: such a block
        takes h2's decoder and two steps of the stream's state machine, which are done
        here without h2's frame objects and checks. None (nothing done) otherwise."""
        h2_connection = self.h2_connection
        stream = h2_connection.streams.get(stream_id)
        if (
            not h2_connection.config.client_side
            or stream is None
            or stream.state_machine.state is not h2.stream.StreamState.HALF_CLOSED_LOCAL
            or h2_connection.state_machine.state not in _OPEN_CONNECTION
        ):
            return None
        try:
            headers = h2.connection._decode_headers(h2_connection.decoder, block)
        except h2.exceptions.ProtocolError as error:
            h2_connection._terminate_connection(error.error_code)  # GOAWAY, as h2 would
            raise
        h2_connection.state_machine.process_input(h2.connection.ConnectionInputs.RECV_HEADERS)
        received = stream.state_machine.process_input(h2.stream.StreamInputs.RECV_HEADERS)[0]
        ended = stream.state_machine.process_input(h2.stream.StreamInputs.RECV_END_STREAM)[0]
        received.stream_id = stream_id
        received.stream_ended = ended
        received.headers = [(name.decode(), value.decode()) for name, value in headers]
        if isinstance(received, h2.events.TrailersReceived):
            events = self._trailers_received(received)
        else:
            events = self._response_received(received)
        events += self._stream_ended(ended)
        return events

    def _consume_inbound_windows(self, stream_id: int, size: int) -> bool:
        """Account for a DATA frame of `size` bytes on `stream_id` as h2 would, if it
        changes nothing else in h2; False (nothing done) otherwise."""
        h2_connection = self.h2_connection
        stream = h2_connection.streams.get(stream_id)
        if (
            stream is None
            or stream.state_machine.state not in _RECEIVING_STATES
            or stream._expected_content_length is not None
            or h2_connection.state_machine.state not in _OPEN_CONNECTION
            or size > h2_connection.max_inbound_frame_size
        ):
            return False
        connection_window = h2_connection._inbound_flow_control_window_manager
        stream_window = stream._inbound_window_manager
        if size > connection_window.current_window_size or size > stream_window.current_window_size:
            return False  # h2 reports the flow-control error
        connection_window.window_consumed(size)
        stream_window.window_consumed(size)
        return True

    @property
    def pending_output(self) -> int:
        """Bytes of frames queued for the socket that `data_to_send` has not taken yet."""
        return len(self.h2_connection._data_to_send)

    def _request_received(self, event: h2.events.RequestReceived) -> list[Any]:
        stream_id = event.stream_id
        open_streams = self.h2_connection.open_inbound_streams_up_to(stream_id)
        if open_streams > self.MAX_CONCURRENT_STREAMS:
            # Not processed at all, so the client may retry it (RFC 9113 section 8.7).
            self.h2_connection.reset_stream(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            return []
        try:
            headers = [
                (name.decode(), value.decode())
                for name, value in validate_headers(event.headers, _REQUEST_HEADERS)
            ]
            request = RequestReceived.parse_from_stream_id_and_headers_destructive(
                stream_id, HeaderDict(headers)
            )
        except _MALFORMED_HEADERS as error:
            return [StreamFailed(stream_id, StatusCode.INTERNAL, f"malformed request: {error}")]
        if request.message_encoding not in {None, IDENTITY}:
            return [
                StreamFailed(
                    stream_id,
                    StatusCode.UNIMPLEMENTED,
                    f"grpc-encoding {request.message_encoding!r} is not supported",
                )
            ]
        if event.stream_ended:
            return [StreamFailed(stream_id, StatusCode.INTERNAL, "request ended without a message")]
        self._open_read_buffer(stream_id)
        return [request]

    # -- responses (client side) -----------------------------------------------------

    def _response_received(self, event: h2.events.ResponseReceived) -> list[Any]:
        try:
            events: list[Any] = super()._response_received(event)
        except _MALFORMED_HEADERS as error:
            return [self._fail(event.stream_id, StatusCode.UNKNOWN, f"malformed response: {error}")]
        if event.stream_ended:
            self.message_read_buffers.pop(event.stream_id, None)
        return events

    def _trailers_received(self, event: h2.events.TrailersReceived) -> list[Any]:
        self.message_read_buffers.pop(event.stream_id, None)
        try:
            events: list[Any] = super()._trailers_received(event)
        except _MALFORMED_HEADERS as error:
            return [
                StreamFailed(event.stream_id, StatusCode.UNKNOWN, f"malformed trailers: {error}")
            ]
        return events

    # -- messages ----------------------------------------------------------------------

    def _open_read_buffer(self, stream_id: int) -> None:
        self.message_read_buffers[stream_id] = MessageReadBuffer(
            None, self.config.max_message_length
        )

    def _data_received(self, event: h2.events.DataReceived) -> list[Any]:
        return self._message_data(event.stream_id, event.data, event.flow_controlled_length)

    def _message_data(self, stream_id: int, data: bytes, flow_controlled_length: int) -> list[Any]:
        buffer = self.message_read_buffers.get(stream_id)
        if buffer is None:
            # Data for a stream we already gave up on: hand the window back and drop it.
            self.h2_connection.acknowledge_received_data(flow_controlled_length, stream_id)
            return []
        if len(data) == flow_controlled_length and not (buffer._buffer or buffer._messages):
            whole = self._whole_messages(stream_id, data)
            if whole is not None:
                return whole
        try:
            buffer.data_received(data, flow_controlled_length)
        except MessageTooLargeError as error:
            return [self._fail(stream_id, StatusCode.RESOURCE_EXHAUSTED, str(error))]
        except UnsupportedMessageEncodingError:
            return [
                self._fail(stream_id, StatusCode.INTERNAL, "compressed messages are not supported")
            ]
        return [
            MessageReceived(stream_id, message, length)
            for message, length in buffer.read_all_complete_messages_flowcontrol()
        ]

    def _whole_messages(self, stream_id: int, data: bytes) -> list[Any] | None:
        """The messages of `data` when it holds whole, uncompressed messages within the
        size limit and nothing else (what a sender that frames each batch of messages
        at once, as containerd and evactors do, sends): read without purerpc's buffer.
        None otherwise: the buffer then takes it all, and finds what is wrong."""
        events = []
        offset, end = 0, len(data)
        limit = self.config.max_message_length
        while offset < end:
            if end - offset < _MESSAGE_PREFIX.size:
                return None
            compressed, length = _MESSAGE_PREFIX.unpack_from(data, offset)
            start = offset + _MESSAGE_PREFIX.size
            if compressed or length > limit or start + length > end:
                return None
            events.append(
                MessageReceived(stream_id, data[start : start + length], start + length - offset)
            )
            offset = start + length
        return events

    def _fail(self, stream_id: int, code: StatusCode, message: str) -> StreamFailed:
        self.message_read_buffers.pop(stream_id, None)
        return StreamFailed(stream_id, code, message)

    # -- stream and connection ends ----------------------------------------------------

    def _stream_reset(self, event: h2.events.StreamReset) -> list[Any]:
        self.message_read_buffers.pop(event.stream_id, None)
        self._responses_started.discard(event.stream_id)
        return [StreamReset(event.stream_id, int(event.error_code))]

    def _connection_terminated(self, event: h2.events.ConnectionTerminated) -> list[Any]:
        return [ConnectionTerminated(int(event.error_code), event.last_stream_id or 0)]

    # -- server responses -------------------------------------------------------------

    def start_response(self, stream_id: int, custom_metadata: Any = ()) -> None:
        super().start_response(stream_id, "+proto", custom_metadata)
        self._responses_started.add(stream_id)

    def end_call(self, stream_id: int, code: StatusCode, message: str = "") -> None:
        """Send the call's final status (trailers, or a trailers-only response).

        If the client is still sending its request, the stream is then reset with
        NO_ERROR, as grpc-go does: the client stops sending and the stream is closed.
        """
        self.message_read_buffers.pop(stream_id, None)
        stream = self.h2_connection.streams.get(stream_id)
        if stream is None or stream.closed:
            self._responses_started.discard(stream_id)
            return
        status = Status(int(code), message)
        if stream_id in self._responses_started:
            self._responses_started.remove(stream_id)
            self.end_response(stream_id, status)
        else:
            self.respond_status(stream_id, status, "+proto")
        if not stream.closed:
            self.h2_connection.reset_stream(stream_id, h2.errors.ErrorCodes.NO_ERROR)

    def goodbye(self) -> None:
        """Queue a GOAWAY (NO_ERROR) naming the last stream the peer opened.

        h2 sends nothing on the connection after it, so every call must have ended first.
        """
        self.h2_connection.close_connection(h2.errors.ErrorCodes.NO_ERROR)

    def reset_stream(self, stream_id: int, error_code: int = h2.errors.ErrorCodes.CANCEL) -> None:
        """Send RST_STREAM, unless the stream is already closed (then there is nothing to do)."""
        self.message_read_buffers.pop(stream_id, None)
        self._responses_started.discard(stream_id)
        stream = self.h2_connection.streams.get(stream_id)
        if stream is not None and not stream.closed:
            self.h2_connection.reset_stream(stream_id, error_code)
