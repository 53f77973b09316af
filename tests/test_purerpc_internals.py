"""evactors drives purerpc's sans-IO layer and overrides some of its private methods
(src/evactors/grpc/_protocol.py). These are the internals it relies on: when a purerpc
or h2 upgrade moves one, this fails here instead of somewhere subtle."""

from __future__ import annotations

import inspect
from importlib.metadata import version

import h2.connection
import h2.stream
from purerpc.grpclib import buffers, connection, events, headers, status

from evactors.grpc._protocol import GrpcProtocol, _H2Connection


def test_pinned_versions():
    assert version("purerpc") == "0.8.0"
    assert version("h2") == "3.2.0"


def test_grpc_connection_handlers_we_override_still_exist_with_their_signatures():
    base = connection.GRPCConnection
    for name in (
        "_request_received",
        "_response_received",
        "_trailers_received",
        "_data_received",
        "_stream_reset",
        "_connection_terminated",
    ):
        method = getattr(base, name)
        assert list(inspect.signature(method).parameters) == ["self", "event"], name
        assert getattr(GrpcProtocol, name) is not method, name
    source = inspect.getsource(base.receive_data)
    for event in ("StreamReset", "ConnectionTerminated", "DataReceived", "TrailersReceived"):
        assert f"h2.events.{event}" in source


def test_state_and_helpers_we_use_still_exist():
    protocol = GrpcProtocol(client_side=False, max_message_length=1024, max_concurrent_streams=7)
    assert protocol.message_read_buffers == {}
    assert isinstance(protocol.h2_connection, h2.connection.H2Connection)
    assert protocol.h2_connection.local_settings.max_concurrent_streams == 7
    assert protocol.h2_connection.local_settings.initial_window_size == 2048
    for name in (
        "initiate_connection",
        "data_to_send",
        "receive_data",
        "flow_control_window",
        "acknowledge_received_data",
        "send_data",
        "get_next_available_stream_id",
        "start_request",
        "start_response",
        "respond_status",
        "end_response",
    ):
        assert callable(getattr(protocol, name)), name
    assert callable(buffers.MessageReadBuffer(None, 10).read_all_complete_messages_flowcontrol)
    assert callable(events.RequestReceived.parse_from_stream_id_and_headers_destructive)
    assert callable(events.ResponseEnded.parse_from_stream_id_and_headers_destructive)
    assert headers.HeaderDict([("a", "1")])["a"] == "1"
    assert status.Status(5, "m").int_value == 5


def test_h2_internals_the_stream_limit_relies_on():
    # The server counts open inbound streams itself (REFUSED_STREAM past its limit)
    # through the same h2 internals h2 uses for its own check.
    source = inspect.getsource(h2.connection.H2Connection._receive_headers_frame)
    assert "self.open_inbound_streams" in source
    assert isinstance(
        inspect.getattr_static(h2.connection.H2Connection, "open_inbound_streams"), property
    )
    assert callable(h2.connection.H2Connection._open_streams)
    assert issubclass(_H2Connection, h2.connection.H2Connection)


def test_h2_output_queue_the_writer_measures():
    # GrpcProtocol.pending_output reads h2's queue of serialized frames.
    protocol = GrpcProtocol(client_side=True, max_message_length=1024, max_concurrent_streams=10)
    assert protocol.pending_output == 0
    protocol.initiate_connection()
    assert isinstance(protocol.h2_connection._data_to_send, bytearray)
    assert protocol.pending_output == len(protocol.h2_connection._data_to_send) > 0
    protocol.data_to_send()
    assert protocol.pending_output == 0


def test_h2_internals_the_fast_paths_rely_on():
    # GrpcProtocol frames and reads DATA, and reads a call's last header block, itself
    # (see its send_data, receive_data and _last_headers); tests/test_grpc_protocol.py
    # checks that they do what h2 does.
    assert list(inspect.signature(h2.connection._decode_headers).parameters) == [
        "decoder",
        "encoded_header_block",
    ]
    protocol = GrpcProtocol(client_side=True, max_message_length=1024, max_concurrent_streams=10)
    connection = protocol.h2_connection
    assert connection.incoming_buffer.data == b""
    assert connection.incoming_buffer._preamble == b""
    assert connection.incoming_buffer._headers_buffer == []
    assert connection._inbound_flow_control_window_manager.current_window_size > 0
    protocol.initiate_connection()
    stream_id = protocol.get_next_available_stream_id()
    protocol.start_request(stream_id, "http", "pkg.Service", "Method", authority="localhost")
    stream = connection.streams[stream_id]
    assert stream._inbound_window_manager.current_window_size > 0
    assert stream._expected_content_length is None
    assert stream.outbound_flow_control_window >= 0
    assert stream.state_machine.state is h2.stream.StreamState.OPEN
