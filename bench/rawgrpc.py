"""Unary gRPC calls written straight onto one HTTP/2 connection: the cheap publisher.

Why: a Python grpcio client spends 150 to 200 microseconds of CPU per unary call (measured
here with grpc.aio, 16 calls in flight over 4 connections: at most ~8,000 Publish
calls a second on an idle machine, ~3,300 while a subscriber and containerd share the
two cores). The publisher would then be the bottleneck of a burst, and at a steady
2,000/s it would take a third of a core from the processes being measured. Every
Publish request of a run is known in advance, so it can be framed in advance:

- one HPACK header block, encoded once with never-indexed literals (no dynamic table
  state, so the same bytes serve every stream);
- per call, a HEADERS frame and a DATA frame (gRPC's 5-byte length prefix and the
  serialized request, END_STREAM), written with one `send` for many calls.

Responses are not HPACK-decoded (that would cost what grpcio costs): a unary call
succeeded when its stream carried a DATA frame (the response message) before the
trailers. grpc-go answers an error with a trailers-only response or RST_STREAM, which
count as errors. The connection honours the peer's SETTINGS (max concurrent streams,
ACK), PINGs, WINDOW_UPDATEs for the connection send window, and GOAWAY (fatal); it
advertises a 1 GiB receive window so that responses never wait for us.

This is benchmark tooling, not a gRPC client: one method, known small requests, no
CONTINUATION, no padding, no priority.
"""

from __future__ import annotations

import select
import socket
import struct
from collections.abc import Sequence

from hpack import Encoder, NeverIndexedHeaderTuple

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20
SETTINGS_MAX_CONCURRENT_STREAMS, SETTINGS_INITIAL_WINDOW_SIZE = 0x3, 0x4
RECEIVE_WINDOW = 1 << 30
_FRAME_HEADER = struct.Struct(">IBI")  # (24-bit length, 8-bit type), flags, stream id


class ConnectionFailed(RuntimeError):
    """The peer closed the connection or sent GOAWAY."""


def _frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return (
        (len(payload) << 8 | kind).to_bytes(4, "big")
        + bytes([flags])
        + stream_id.to_bytes(4, "big")
        + payload
    )


class UnaryCaller:
    """Makes unary calls of one method on one HTTP/2 connection over a unix socket.

    Use `send(requests)` to start calls (as many as the stream limit allows; it returns
    how many it started), `poll(timeout)` to read responses, `outstanding` to see how many
    calls have not finished, and `ok` / `errors` for the finished ones.
    """

    def __init__(
        self, path: str, method: str, metadata: Sequence[tuple[str, str]], *, limit: int = 256
    ) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        headers = [
            (":method", "POST"),
            (":scheme", "http"),
            NeverIndexedHeaderTuple(":path", method),
            NeverIndexedHeaderTuple(":authority", "localhost"),
            NeverIndexedHeaderTuple("content-type", "application/grpc"),
            NeverIndexedHeaderTuple("te", "trailers"),
            *(NeverIndexedHeaderTuple(key, value) for key, value in metadata),
        ]
        self._header_block = Encoder().encode(headers)
        self._next_stream = 1
        self._open: dict[int, bool] = {}  # stream id -> saw a DATA frame
        self.limit = limit  # calls in flight at most
        self.max_streams = 100  # the peer's limit, until its SETTINGS say otherwise
        self._send_window = 65_535  # the connection's; streams' are never the limit here
        self._buffer = bytearray()
        self.ok = 0
        self.errors = 0
        settings = struct.pack(">HI", SETTINGS_INITIAL_WINDOW_SIZE, RECEIVE_WINDOW)
        self.sock.sendall(
            PREFACE
            + _frame(SETTINGS, 0, 0, settings)
            + _frame(WINDOW_UPDATE, 0, 0, (RECEIVE_WINDOW - 65_535).to_bytes(4, "big"))
        )

    @property
    def outstanding(self) -> int:
        return len(self._open)

    def capacity(self) -> int:
        """How many more calls may start now (the stream limits allowing)."""
        return max(0, min(self.limit, self.max_streams) - len(self._open))

    def send(self, requests: Sequence[bytes]) -> int:
        """Start calls for as many of `requests` as allowed now; return how many."""
        out = bytearray()
        sent = 0
        for request in requests:
            size = len(request) + 5
            if not self.capacity() or size > self._send_window:
                break
            stream_id = self._next_stream
            self._next_stream += 2
            self._open[stream_id] = False
            self._send_window -= size
            out += _frame(HEADERS, END_HEADERS, stream_id, self._header_block)
            out += _frame(
                DATA, END_STREAM, stream_id, b"\x00" + len(request).to_bytes(4, "big") + request
            )
            sent += 1
        if out:
            self.sock.sendall(out)
        return sent

    def poll(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for the socket, then handle what came."""
        readable, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if not readable:
            return
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionFailed("the peer closed the connection")
        self._buffer += chunk
        self._handle_frames()

    def _handle_frames(self) -> None:
        buffer = self._buffer
        offset = 0
        replies = bytearray()
        while len(buffer) - offset >= 9:
            word, flags, stream_id = _FRAME_HEADER.unpack_from(buffer, offset)
            end = offset + 9 + (word >> 8)
            if end > len(buffer):
                break
            replies += self._handle_frame(
                word & 0xFF, flags, stream_id & 0x7FFF_FFFF, bytes(buffer[offset + 9 : end])
            )
            offset = end
        del buffer[:offset]
        if replies:
            self.sock.sendall(replies)

    def _handle_frame(self, kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
        """Act on one frame; returns the frames to send back (ACKs), if any."""
        if kind == DATA:
            if stream_id in self._open:
                self._open[stream_id] = True
            if flags & END_STREAM:
                self._finish(stream_id, ok=True)
        elif kind == HEADERS and flags & END_STREAM:
            self._finish(stream_id, ok=self._open.get(stream_id, False))
        elif kind == RST_STREAM:
            self._finish(stream_id, ok=False)
        elif kind == SETTINGS and not flags & ACK:
            settings = dict(struct.iter_unpack(">HI", payload))
            self.max_streams = settings.get(SETTINGS_MAX_CONCURRENT_STREAMS, self.max_streams)
            return _frame(SETTINGS, ACK, 0, b"")
        elif kind == PING and not flags & ACK:
            return _frame(PING, ACK, 0, payload)
        elif kind == WINDOW_UPDATE and stream_id == 0:
            self._send_window += int.from_bytes(payload, "big") & 0x7FFF_FFFF
        elif kind == GOAWAY:
            raise ConnectionFailed(f"GOAWAY from the peer: {payload[8:]!r}")
        return b""

    def _finish(self, stream_id: int, *, ok: bool) -> None:
        if self._open.pop(stream_id, None) is None:
            return
        if ok:
            self.ok += 1
        else:
            self.errors += 1

    def close(self) -> None:
        self.sock.close()
