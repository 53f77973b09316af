"""`GrpcProtocol`, sans I/O: a client and a server state machine exchanging bytes.

The protocol frames DATA and encodes header blocks itself on its hot paths (instead
of through h2's frame objects and hpack's indexing encoder); these tests hold it to
what h2 and any HPACK decoder expect.
"""

from __future__ import annotations

import functools
import random
import struct

import h2.connection
import h2.exceptions
import hpack
import pytest
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    HeadersFrame,
    PingFrame,
    WindowUpdateFrame,
)
from purerpc.grpclib.connection import GRPCConnection

from evactors.grpc import StatusCode
from evactors.grpc._protocol import (
    GrpcProtocol,
    MessageReceived,
    RequestReceived,
    ResponseEnded,
    ResponseReceived,
    StreamFailed,
)

LIMIT = 1 << 20


def exchange(client: GrpcProtocol, server: GrpcProtocol) -> tuple[list, list]:
    """Pass bytes both ways until neither side has any; the events each side saw."""
    client_events, server_events = [], []
    while True:
        to_server, to_client = client.data_to_send(), server.data_to_send()
        if not to_server and not to_client:
            return client_events, server_events
        server_events += server.receive_data(to_server)
        client_events += client.receive_data(to_client)


def open_request() -> tuple[GrpcProtocol, GrpcProtocol, int]:
    """A client and a server with one call whose request has arrived, not yet answered."""
    client = GrpcProtocol(client_side=True, max_message_length=LIMIT, max_concurrent_streams=10)
    server = GrpcProtocol(client_side=False, max_message_length=LIMIT, max_concurrent_streams=10)
    client.initiate_connection()
    server.initiate_connection()
    stream_id = client.get_next_available_stream_id()
    client.start_request(stream_id, "http", "pkg.Service", "Method", authority="localhost")
    client.send_data(stream_id, grpc_message(b"request"), end_stream=True)
    _, server_events = exchange(client, server)
    assert any(isinstance(event, RequestReceived) for event in server_events)
    return client, server, stream_id


def open_call() -> tuple[GrpcProtocol, GrpcProtocol, int]:
    """A client and a server with one call whose response has started."""
    client, server, stream_id = open_request()
    server.start_response(stream_id)
    client_events, _ = exchange(client, server)
    assert any(isinstance(event, ResponseReceived) for event in client_events)
    return client, server, stream_id


def grpc_message(payload: bytes) -> bytes:
    return struct.pack(">?I", False, len(payload)) + payload


def test_a_data_frame_framed_by_the_protocol_is_the_frame_h2_would_send():
    _, server, stream_id = open_call()
    stream = server.h2_connection.streams[stream_id]
    windows = (
        server.h2_connection.outbound_flow_control_window,
        stream.outbound_flow_control_window,
    )
    data = grpc_message(b"event one") + grpc_message(b"event two")

    server.send_data(stream_id, data)

    assert server.data_to_send() == DataFrame(stream_id, data=data).serialize()
    assert server.h2_connection.outbound_flow_control_window == windows[0] - len(data)
    assert stream.outbound_flow_control_window == windows[1] - len(data)


def test_the_client_reads_the_messages_of_frames_framed_by_the_protocol():
    client, server, stream_id = open_call()
    for payload in (b"one", b"two", b"x" * 5000):
        server.send_data(stream_id, grpc_message(payload))
    client_events, _ = exchange(client, server)
    messages = [event.data for event in client_events if isinstance(event, MessageReceived)]
    assert messages == [b"one", b"two", b"x" * 5000]


def test_frames_past_the_window_are_left_to_h2_which_refuses_them():
    _, server, stream_id = open_call()
    frame_size = server.h2_connection.max_outbound_frame_size
    while (window := server.h2_connection.local_flow_control_window(stream_id)) >= frame_size:
        server.send_data(stream_id, b"x" * frame_size)
    server.data_to_send()
    with pytest.raises(h2.exceptions.FlowControlError):
        server.send_data(stream_id, b"x" * (window + 1))
    assert server.data_to_send() == b""


@pytest.mark.parametrize("side", ["client", "server"])
def test_a_frame_that_ends_the_stream_is_framed_and_ends_it_as_in_h2(side):
    client, server, stream_id = open_call()
    if side == "client":  # a request still being sent
        client = GrpcProtocol(client_side=True, max_message_length=LIMIT, max_concurrent_streams=10)
        client.initiate_connection()
        client.data_to_send()
        stream_id = client.get_next_available_stream_id()
        client.start_request(stream_id, "http", "pkg.Service", "Method", authority="localhost")
        client.data_to_send()
    sender = client if side == "client" else server
    message = grpc_message(b"last")

    sender.send_data(stream_id, message, end_stream=True)

    expected = DataFrame(stream_id, data=message, flags=["END_STREAM"]).serialize()
    assert sender.data_to_send() == expected
    state = sender.h2_connection.streams[stream_id].state_machine.state.name
    assert state == ("HALF_CLOSED_LOCAL" if side == "client" else "CLOSED")
    with pytest.raises(h2.exceptions.ProtocolError):  # as h2 refuses it
        sender.send_data(stream_id, grpc_message(b"after the end"))


def test_header_blocks_use_no_dynamic_table_and_are_encoded_once(monkeypatch):
    client = GrpcProtocol(client_side=True, max_message_length=LIMIT, max_concurrent_streams=10)
    encoder = client.h2_connection.encoder
    headers = [(":method", "POST"), (":path", "/pkg.Service/Method"), ("x-namespace", "ns")]
    decoder = hpack.Decoder()

    first = encoder.encode(headers)
    monkeypatch.setattr(encoder, "add", None)  # encoding again would fail
    second = encoder.encode(headers)

    assert first == second
    for block in (first, second):
        assert decoder.decode(block) == headers
    assert len(decoder.header_table.dynamic_entries) == 0
    assert len(encoder.header_table.dynamic_entries) == 0


def test_a_table_size_change_is_still_signalled_before_a_cached_block():
    encoder = GrpcProtocol(
        client_side=True, max_message_length=LIMIT, max_concurrent_streams=10
    ).h2_connection.encoder
    headers = [("content-type", "application/grpc")]
    block = encoder.encode(headers)
    encoder.header_table_size = 1024
    decoder = hpack.Decoder()
    resized = encoder.encode(headers)
    assert resized.endswith(block)
    assert resized != block
    assert decoder.decode(resized) == headers
    assert decoder.header_table.maxsize == 1024
    assert encoder.encode(headers) == block


def twin_clients() -> tuple[GrpcProtocol, GrpcProtocol, GrpcProtocol, int]:
    """Two clients in the same state, each with one call open to its own server, the
    servers also alike: what one client is fed, the other can be fed too."""
    pairs = [open_call() for _ in range(2)]
    (client, server, stream_id), (twin, _twin_server, twin_id) = pairs
    assert stream_id == twin_id
    return client, twin, server, stream_id


def windows(protocol: GrpcProtocol, stream_id: int) -> tuple[int, int]:
    connection = protocol.h2_connection
    return (
        connection._inbound_flow_control_window_manager.current_window_size,
        connection.streams[stream_id]._inbound_window_manager.current_window_size,
    )


def test_data_read_by_the_protocol_counts_against_the_windows_as_in_h2():
    client, twin, server, stream_id = twin_clients()
    for payload in (b"one", b"x" * 1000):
        server.send_data(stream_id, grpc_message(payload))
    data = server.data_to_send()

    fast = client.receive_data(data)
    slow = GRPCConnection.receive_data(twin, data)  # h2 all the way

    assert [(e.stream_id, e.data) for e in fast] == [(e.stream_id, e.data) for e in slow]
    assert windows(client, stream_id) == windows(twin, stream_id)
    assert windows(client, stream_id)[1] < windows(open_call()[0], stream_id)[1]


def test_frames_split_across_reads_and_mixed_with_others_keep_their_order():
    client, server, stream_id = open_call()
    server.send_data(stream_id, grpc_message(b"first"))
    server.send_data(stream_id, grpc_message(b"second"))
    server.end_call(stream_id, StatusCode.OK)
    data = server.data_to_send()

    events = []
    for cut in (3, 20, 31, len(data)):  # mid-header, mid-payload, ...
        events += client.receive_data(data[:cut])
        data = data[cut:]
    events += client.receive_data(data)

    messages = [e.data for e in events if isinstance(e, MessageReceived)]
    assert messages == [b"first", b"second"]
    assert isinstance(events[-1], ResponseEnded)
    assert client.h2_connection.incoming_buffer.data == b""


@pytest.mark.parametrize("cut", [1, 9, 10, 24, 25, 40])
def test_frames_cut_short_wait_for_their_end_and_are_still_read_without_h2(cut, monkeypatch):
    client, twin, server, stream_id = twin_clients()
    for payload in (b"first", b"second", b"third"):
        server.send_data(stream_id, grpc_message(payload))  # 19, 20, 19 bytes of frame
    data = server.data_to_send()
    slow = GRPCConnection.receive_data(twin, data)  # h2 all the way

    monkeypatch.setattr(GRPCConnection, "receive_data", None)  # h2 is not asked now
    fast = []
    for start in range(0, len(data), cut):
        fast += client.receive_data(data[start : start + cut])

    assert [(e.stream_id, e.data) for e in fast] == [(e.stream_id, e.data) for e in slow]
    assert windows(client, stream_id) == windows(twin, stream_id)
    assert client.h2_connection.incoming_buffer.data == b""


def test_a_frame_larger_than_accepted_is_refused_as_in_h2_but_at_its_header():
    client, twin, _server, stream_id = twin_clients()
    too_large = client.h2_connection.max_inbound_frame_size + 1
    header = struct.pack(">HBBBL", too_large >> 8, too_large & 0xFF, 0x0, 0, stream_id)
    with pytest.raises(h2.exceptions.FrameTooLargeError):
        client.receive_data(header)  # h2 would wait for the whole frame first
    with pytest.raises(h2.exceptions.FrameTooLargeError):
        GRPCConnection.receive_data(twin, header + b"x" * too_large)
    goaway = client.data_to_send()
    assert goaway == twin.data_to_send()
    assert goaway[3] == 0x7  # a GOAWAY frame


def test_data_past_the_window_is_left_to_h2_which_refuses_it():
    client, _server, stream_id = open_call()
    frame_size = client.h2_connection.max_inbound_frame_size
    while (window := windows(client, stream_id)[1]) >= frame_size:
        message = grpc_message(b"x" * (frame_size - 5))  # received, so never acknowledged
        client.receive_data(DataFrame(stream_id, data=message).serialize())
    frame = DataFrame(stream_id, data=b"x" * (window + 1)).serialize()
    with pytest.raises(h2.exceptions.FlowControlError):
        client.receive_data(frame)


def test_messages_split_across_frames_are_put_together():
    client, server, stream_id = open_call()
    message = grpc_message(b"y" * 3000)
    for part in (message[:2], message[2:1000], message[1000:] + grpc_message(b"next")):
        server.send_data(stream_id, part)
    client_events, _ = exchange(client, server)
    messages = [e.data for e in client_events if isinstance(e, MessageReceived)]
    assert messages == [b"y" * 3000, b"next"]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (struct.pack(">?I", True, 3) + b"abc", StatusCode.INTERNAL),  # compressed
        (struct.pack(">?I", False, LIMIT + 1), StatusCode.RESOURCE_EXHAUSTED),  # too large
    ],
)
def test_a_message_that_cannot_be_read_fails_its_stream_alone(frame, code):
    client, server, stream_id = open_call()
    server.send_data(stream_id, grpc_message(b"fine"))
    server.send_data(stream_id, frame)
    client_events, _ = exchange(client, server)
    assert [e.data for e in client_events if isinstance(e, MessageReceived)] == [b"fine"]
    failed = [e for e in client_events if isinstance(e, StreamFailed)]
    assert [(e.stream_id, e.code) for e in failed] == [(stream_id, code)]


def test_only_whole_plain_messages_within_the_limit_skip_the_buffer():
    protocol = GrpcProtocol(client_side=True, max_message_length=10, max_concurrent_streams=1)
    two = protocol._whole_messages(1, grpc_message(b"a") + grpc_message(b"b" * 10))
    assert [(e.data, e.flow_controlled_length) for e in two] == [(b"a", 6), (b"b" * 10, 15)]
    for data in (
        grpc_message(b"x" * 11),  # over the limit
        struct.pack(">?I", True, 1) + b"z",  # compressed
        grpc_message(b"whole") + grpc_message(b"cut")[:-1],  # a message cut short
        grpc_message(b"whole") + b"\x00\x00",  # a prefix cut short
    ):
        assert protocol._whole_messages(1, data) is None


def outcome(events: list) -> list:
    """What a call's events say, comparable between two clients."""
    said = []
    for event in events:
        status = getattr(event, "status", None)
        said.append(
            (
                type(event).__name__,
                event.stream_id,
                getattr(event, "data", None),
                None if status is None else (status.int_value, status.status_message),
            )
        )
    return said


@pytest.mark.parametrize("with_message", [False, True])
def test_a_calls_last_header_block_read_by_the_protocol_says_what_h2_says(
    with_message, monkeypatch
):
    (client, server, stream_id), (twin, twin_server, _) = open_request(), open_request()
    fast, slow = [], []
    if with_message:
        for side in (server, twin_server):
            side.start_response(stream_id)
            side.send_data(stream_id, grpc_message(b"answer"))
        fast += client.receive_data(server.data_to_send())
        slow += GRPCConnection.receive_data(twin, twin_server.data_to_send())
    for side in (server, twin_server):
        side.end_call(stream_id, StatusCode.NOT_FOUND, 'container "x" in namespace "y": not found')
    data, twin_data = server.data_to_send(), twin_server.data_to_send()
    assert data == twin_data

    slow += GRPCConnection.receive_data(twin, data)  # h2 all the way
    monkeypatch.setattr(GRPCConnection, "receive_data", None)  # h2 is not asked now
    fast += client.receive_data(data)

    assert outcome(fast) == outcome(slow)
    assert outcome(fast)[-1][-1] == (
        StatusCode.NOT_FOUND,
        'container "x" in namespace "y": not found',
    )
    for side in (client, twin):
        assert side.h2_connection.streams[stream_id].state_machine.state.name == "CLOSED"
    assert list(client.h2_connection.decoder.header_table.dynamic_entries) == list(
        twin.h2_connection.decoder.header_table.dynamic_entries
    )


@pytest.mark.parametrize("end_stream", [False, True])
def test_a_request_opened_by_the_protocol_is_the_one_h2_would_open(end_stream, monkeypatch):
    client, twin = (
        GrpcProtocol(client_side=True, max_message_length=LIMIT, max_concurrent_streams=10)
        for _ in range(2)
    )
    # The twin goes through h2's own send_headers.
    twin.h2_connection.send_headers = functools.partial(
        h2.connection.H2Connection.send_headers, twin.h2_connection
    )
    for side in (client, twin):
        side.initiate_connection()
        side.data_to_send()
    stream_id = client.get_next_available_stream_id()
    headers = [(":method", "POST"), (":scheme", "http"), (":path", "/pkg.Service/Method")]
    headers += [(":authority", "localhost"), ("te", "trailers"), ("x-namespace", "ns")]

    monkeypatch.setattr(h2.connection.H2Connection, "send_headers", None)  # only the twin's
    for side in (client, twin):
        side.h2_connection.send_headers(stream_id, headers, end_stream=end_stream)

    assert client.data_to_send() == twin.data_to_send()
    mine, theirs = (side.h2_connection.streams[stream_id] for side in (client, twin))
    assert mine.state_machine.state == theirs.state_machine.state
    assert (mine.request_method, mine._authority) == (theirs.request_method, theirs._authority)
    assert client.h2_connection.highest_outbound_stream_id == stream_id
    assert client.h2_connection.state_machine.state.name == "CLIENT_OPEN"  # was IDLE


def test_a_last_header_block_that_cannot_be_decoded_ends_the_connection_as_in_h2():
    (client, _, stream_id), (twin, _, _) = open_request(), open_request()
    block = b"\xff\xff\xff\xff\x0f"  # an index far past both tables
    frame = struct.pack(">HBBBL", 0, len(block), 0x1, 0x1 | 0x4, stream_id) + block
    goaways = []
    for receive, side in ((client.receive_data, client), (twin_receive(twin), twin)):
        side.data_to_send()
        with pytest.raises(h2.exceptions.ProtocolError):
            receive(frame)
        goaways.append(side.data_to_send())
    assert goaways[0] == goaways[1]
    assert goaways[0][3] == 0x7  # a GOAWAY frame


def twin_receive(twin: GrpcProtocol):
    """The twin's receive_data through h2 all the way."""
    return functools.partial(GRPCConnection.receive_data, twin)


@pytest.mark.parametrize(
    "frame",
    [
        struct.pack(">HBBBL", 0, 8, 0x6, 0, 0) + b"opaque!!",  # PING
        struct.pack(">HBBBLL", 0, 4, 0x8, 0, 0, 12345),  # the connection's WINDOW_UPDATE
    ],
    ids=["ping", "window-update"],
)
def test_a_ping_or_a_window_update_read_by_the_protocol_does_what_h2_does(frame, monkeypatch):
    (client, _, _), (twin, _, _) = open_call(), open_call()
    for side in (client, twin):
        side.data_to_send()
    slow = GRPCConnection.receive_data(twin, frame)  # h2 all the way
    monkeypatch.setattr(GRPCConnection, "receive_data", None)  # h2 is not asked now
    fast = client.receive_data(frame)
    assert [repr(event) for event in fast] == [repr(event) for event in slow]
    assert client.data_to_send() == twin.data_to_send()  # the PING's answer, if any
    assert (
        client.h2_connection.outbound_flow_control_window
        == twin.h2_connection.outbound_flow_control_window
    )


def test_a_window_update_h2_would_refuse_is_left_to_h2():
    client, _, _ = open_call()
    zero = struct.pack(">HBBBLL", 0, 4, 0x8, 0, 0, 0)
    with pytest.raises(h2.exceptions.ProtocolError):
        client.receive_data(zero)


def rest_of_a_call(server: GrpcProtocol, stream_id: int) -> bytes:
    """Messages, a PING, the connection's WINDOW_UPDATE, and trailers in a HEADERS frame
    and a CONTINUATION frame: the frames read here and those left to h2, mixed."""
    for payload in (b"a" * 10, b"b" * 3000, b"c"):
        server.send_data(stream_id, grpc_message(payload))
    block = hpack.Encoder().encode([("grpc-status", "0"), ("grpc-message", "fine")])
    headers = HeadersFrame(stream_id, data=block[:3], flags=["END_STREAM"])
    continuation = ContinuationFrame(stream_id, data=block[3:], flags=["END_HEADERS"])
    return b"".join(
        [
            server.data_to_send(),
            PingFrame(0, opaque_data=b"12345678").serialize(),
            WindowUpdateFrame(0, window_increment=1000).serialize(),
            headers.serialize(),
            continuation.serialize(),
        ]
    )


@pytest.mark.parametrize("seed", range(25))
def test_bytes_cut_anywhere_read_as_h2_reads_them_whole(seed):
    client, twin, server, stream_id = twin_clients()
    data = rest_of_a_call(server, stream_id)
    for side in (client, twin):
        side.data_to_send()
    slow = GRPCConnection.receive_data(twin, data)  # h2 all the way, in one piece

    cuts = random.Random(seed)
    fast, offset = [], 0
    while offset < len(data):
        size = cuts.randint(1, 60)
        fast += client.receive_data(data[offset : offset + size])
        offset += size

    assert outcome(fast) == outcome(slow)
    assert isinstance(fast[-1], ResponseEnded)
    assert client.data_to_send() == twin.data_to_send()  # the PING's answer
    assert client.h2_connection.streams.keys() == twin.h2_connection.streams.keys()
    assert client.h2_connection.outbound_flow_control_window == (
        twin.h2_connection.outbound_flow_control_window
    )
