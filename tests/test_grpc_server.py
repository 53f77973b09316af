"""The gRPC server end to end, over real unix and TCP sockets.

Clients: evactors' own channel, grpcio (an independent implementation, run in a
thread or in a subprocess that is SIGKILLed), and a bare h2 client that sends the
malformed requests no real client would. The servicer is a test subclass of
evactors' generated SystemServiceServicer whose handlers report, through trio
Events, when they start and when their `finally` has run.

Rules: no sleep is used to synchronise; every wait is on a condition, bounded by
`trio.fail_after`, and each test runs under TEST_TIMEOUT. The only real-time waits
are the short gRPC deadlines the deadline tests are about.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import stat
import struct
import subprocess
import sys
import urllib.parse
from collections import defaultdict
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager

import attrs
import grpc
import h2.config
import h2.connection
import h2.errors
import h2.events
import hyperframe.frame
import purerpc
import pytest
import trio

from evactors._generated.evactors.v1 import system_service_pb2 as pb
from evactors._generated.evactors.v1.system_service_grpc import SystemServiceServicer
from evactors.grpc import (
    Address,
    GrpcError,
    Server,
    ServerStatistics,
    StatusCode,
    TcpAddress,
    UnixAddress,
    open_channel,
)

TEST_TIMEOUT = 10
# Cancellation of a handler after a reset or a lost connection is immediate; this is
# only how long a test waits before calling it a failure.
PROMPTLY = 1.0
SERVICE = "/evactors.v1.SystemService"
INFO = f"{SERVICE}/GetSystemInfo"
EVENTS = f"{SERVICE}/GetSystemEvents"


class Servicer(SystemServiceServicer):
    """GetSystemInfo echoes the namespace, which also picks a behaviour; GetSystemEvents
    yields `after_sequence` events, then ends (`until` set) or relays what a test feeds
    it. Both are keyed by a string (namespace, format) that names the call."""

    def __init__(self) -> None:
        self.started: defaultdict[str, trio.Event] = defaultdict(trio.Event)
        self.finished: defaultdict[str, trio.Event] = defaultdict(trio.Event)
        self.feeds: dict[str, trio.MemorySendChannel[pb.SystemEvent]] = {}

    @property
    def service(self):
        # One method of a kind the server does not serve.
        service = super().service
        service.add_method(
            "Chat",
            self.Chat,
            purerpc.RPCSignature(purerpc.Cardinality.STREAM_STREAM, pb.SystemEvent, pb.SystemEvent),
        )
        return service

    async def Chat(self, messages):  # pragma: no cover - never called
        raise AssertionError("a STREAM_STREAM handler ran")

    async def GetSystemInfo(self, request):
        key = request.namespace
        self.started[key].set()
        try:
            if key == "not-found":
                raise GrpcError(StatusCode.NOT_FOUND, "no namespace not-found")
            if key == "bug":
                raise KeyError("secret detail")
            if key.startswith("wait"):
                await trio.sleep_forever()
            return pb.GetSystemInfoResponse(namespace=key or "default", service_version="test")
        finally:
            self.finished[key].set()

    async def GetSystemEvents(self, request):
        key = request.format
        send, receive = trio.open_memory_channel[pb.SystemEvent](0)
        try:
            for sequence in range(1, request.after_sequence + 1):
                yield pb.SystemEvent(sequence=sequence, topic=key)
            if key == "bug":
                raise KeyError("secret detail")
            if key == "serialized":
                # Pre-serialized: one message, then a batch of three sent together.
                yield pb.SystemEvent(sequence=10).SerializeToString()
                yield [pb.SystemEvent(sequence=n).SerializeToString() for n in (11, 12, 13)]
            if request.until:
                return
            self.feeds[key] = send
            self.started[key].set()
            async for event in receive:
                yield event
        finally:
            self.feeds.pop(key, None)
            send.close()
            receive.close()
            self.finished[key].set()


@pytest.fixture
def servicer() -> Servicer:
    return Servicer()


@asynccontextmanager
async def serving(
    servicer: Servicer, listen: list[Address], **options
) -> AsyncGenerator[tuple[Server, list[Address]]]:
    """Serve for the body of the block, under TEST_TIMEOUT; shut down after it."""
    server = Server(servicer, **options)
    with trio.fail_after(TEST_TIMEOUT):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(server.serve, listen)
            try:
                yield server, addresses
            finally:
                server.shutdown()


def listen_on(kind: str, socket_path: str) -> list[Address]:
    return [UnixAddress(socket_path)] if kind == "unix" else [TcpAddress("127.0.0.1", 0)]


def grpcio_target(address: Address) -> str:
    if isinstance(address, UnixAddress):
        return f"unix:{address.path}"
    return f"{address.host}:{address.port}"


# -- grpcio, blocking: run in a thread ------------------------------------------------------


def grpcio_info(target: str, namespace: str, timeout: float = 5) -> pb.GetSystemInfoResponse:
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(
            INFO,
            request_serializer=pb.GetSystemInfoRequest.SerializeToString,
            response_deserializer=pb.GetSystemInfoResponse.FromString,
        )
        return call(pb.GetSystemInfoRequest(namespace=namespace), timeout=timeout)


def grpcio_info_error(target: str, namespace: str) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as raised:
        grpcio_info(target, namespace)
    return raised.value.code(), raised.value.details()


def grpcio_events(
    target: str, request: pb.GetSystemEventsRequest, on_call: Callable[[grpc.Future], None]
) -> tuple[list[int], grpc.StatusCode]:
    """Read a stream to its end: the sequences received and the final status."""
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_stream(
            EVENTS,
            request_serializer=pb.GetSystemEventsRequest.SerializeToString,
            response_deserializer=pb.SystemEvent.FromString,
        )(request, timeout=TEST_TIMEOUT)
        on_call(call)
        sequences = []
        with contextlib.suppress(grpc.RpcError):
            sequences.extend(event.sequence for event in call)
        return sequences, call.code(), call.details()


async def collect(channel, request: pb.GetSystemEventsRequest, received: list[int]) -> None:
    """Append each event's sequence to `received` until the stream ends or fails."""
    async with channel.unary_stream(EVENTS, request, pb.SystemEvent) as events:
        async for event in events:
            received.append(event.sequence)


# -- a bare HTTP/2 client --------------------------------------------------------------------


@attrs.define
class RawStream:
    headers: dict[str, str] | None = None
    trailers: dict[str, str] | None = None
    data: bytearray = attrs.field(factory=bytearray)
    reset: int | None = None

    @property
    def status(self) -> tuple[int, str] | None:
        final = self.trailers or (
            self.headers if self.headers and "grpc-status" in self.headers else None
        )
        if final is None:
            return None
        return int(final["grpc-status"]), urllib.parse.unquote(final.get("grpc-message", ""))

    def messages(self) -> list[bytes]:
        out, view = [], bytes(self.data)
        while len(view) >= 5:
            _, length = struct.unpack(">?I", view[:5])
            if len(view) < 5 + length:
                break
            out.append(view[5 : 5 + length])
            view = view[5 + length :]
        return out


class RawClient:
    """An h2 client that sends the headers and bytes a test gives it, malformed or not."""

    def __init__(self, transport: trio.SocketStream) -> None:
        self.transport = transport
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(
                client_side=True,
                header_encoding="utf-8",
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
            )
        )
        self.h2.initiate_connection()
        self.streams: defaultdict[int, RawStream] = defaultdict(RawStream)
        self.goaway: h2.events.ConnectionTerminated | None = None

    def request(
        self, path: str, *, headers: dict[str, str] | None = None, end_stream: bool = False
    ) -> int:
        fields = {
            ":method": "POST",
            ":scheme": "http",
            ":path": path,
            ":authority": "localhost",
            "te": "trailers",
            "content-type": "application/grpc+proto",
        }
        fields.update(headers or {})
        stream_id = self.h2.get_next_available_stream_id()
        self.h2.send_headers(stream_id, list(fields.items()), end_stream=end_stream)
        return stream_id

    def message(
        self,
        stream_id: int,
        payload: bytes,
        *,
        compressed: bool = False,
        declared: int | None = None,
        end_stream: bool = True,
    ) -> None:
        length = len(payload) if declared is None else declared
        self.h2.send_data(
            stream_id, struct.pack(">?I", compressed, length) + payload, end_stream=end_stream
        )

    async def flush(self) -> None:
        await self.transport.send_all(self.h2.data_to_send())

    async def read_until(self, done: Callable[[], bool]) -> None:
        await self.flush()
        while not done():
            data = await self.transport.receive_some(65536)
            assert data, "the server closed the connection"
            for event in self.h2.receive_data(data):
                self._record(event)
            await self.flush()

    async def status(self, stream_id: int) -> tuple[int, str]:
        await self.read_until(lambda: self.streams[stream_id].status is not None)
        status = self.streams[stream_id].status
        assert status is not None
        return status

    def _record(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            self.streams[event.stream_id].headers = dict(event.headers)
        elif isinstance(event, h2.events.TrailersReceived):
            self.streams[event.stream_id].trailers = dict(event.headers)
        elif isinstance(event, h2.events.DataReceived):
            self.streams[event.stream_id].data += event.data
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamReset):
            self.streams[event.stream_id].reset = event.error_code
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event


@asynccontextmanager
async def raw_client(address: UnixAddress) -> AsyncGenerator[RawClient]:
    transport = await trio.open_unix_socket(address.path)
    async with transport:
        yield RawClient(transport)


# -- calls from each client over each transport ----------------------------------------------


@pytest.mark.parametrize("kind", ["unix", "tcp"])
async def test_unary_and_streaming_calls_from_evactors_client(servicer, socket_path, kind):
    async with serving(servicer, listen_on(kind, socket_path)) as (_, [address]):
        if isinstance(address, TcpAddress):
            assert address.port != 0
        async with open_channel(address) as channel:
            info = await channel.unary_unary(
                INFO, pb.GetSystemInfoRequest(namespace="ns1"), pb.GetSystemInfoResponse
            )
            request = pb.GetSystemEventsRequest(format="k", after_sequence=3, until=1)
            async with channel.unary_stream(EVENTS, request, pb.SystemEvent) as events:
                received = [(event.sequence, event.topic) async for event in events]
    assert (info.namespace, info.service_version) == ("ns1", "test")
    assert received == [(1, "k"), (2, "k"), (3, "k")]


async def test_messages_larger_than_one_http2_frame(servicer, socket_path):
    # HTTP/2 frames carry at most 16 KiB by default: a larger message spans several,
    # both ways (here a 100 KiB namespace name comes back in the response).
    big = "n" * 100_000
    async with (
        serving(servicer, listen_on("unix", socket_path), max_message_length=200_000) as (
            _,
            [address],
        ),
        open_channel(address) as channel,
    ):
        info = await channel.unary_unary(
            INFO, pb.GetSystemInfoRequest(namespace=big), pb.GetSystemInfoResponse
        )
        assert info.namespace == big
        # grpcio advertises HTTP/2's default largest frame, 16 KiB.
        target = grpcio_target(address)
        assert (await trio.to_thread.run_sync(grpcio_info, target, big)).namespace == big


async def test_a_handler_may_yield_serialized_messages_and_batches(servicer, socket_path):
    request = pb.GetSystemEventsRequest(format="serialized", after_sequence=1, until=1)
    async with serving(servicer, listen_on("unix", socket_path)) as (_, [address]):
        async with (
            open_channel(address) as channel,
            channel.unary_stream(EVENTS, request, pb.SystemEvent) as events,
        ):
            ours = [event.sequence async for event in events]
        theirs = await trio.to_thread.run_sync(
            grpcio_events, grpcio_target(address), request, lambda call: None
        )
    assert ours == [1, 10, 11, 12, 13]
    assert theirs == ([1, 10, 11, 12, 13], grpc.StatusCode.OK, "")


async def test_an_error_raised_inside_a_channel_comes_out_unwrapped(servicer, socket_path):
    # The channel's nursery must not turn the caller's own exception into a group:
    # the subscriber's retry (`except ContainerdError`) depends on it.
    async with serving(servicer, listen_on("unix", socket_path)) as (_, [address]):
        with pytest.raises(GrpcError) as caught:
            async with open_channel(address):
                raise GrpcError(StatusCode.UNAVAILABLE, "from the caller")
    assert caught.value.message == "from the caller"


@pytest.mark.parametrize("kind", ["unix", "tcp"])
async def test_unary_and_streaming_calls_from_grpcio(servicer, socket_path, kind):
    async with serving(servicer, listen_on(kind, socket_path)) as (_, [address]):
        target = grpcio_target(address)
        info = await trio.to_thread.run_sync(grpcio_info, target, "ns2")
        request = pb.GetSystemEventsRequest(format="k", after_sequence=3, until=1)
        sequences, code, _ = await trio.to_thread.run_sync(
            grpcio_events, target, request, lambda call: None
        )
    assert info.namespace == "ns2"
    assert (sequences, code) == ([1, 2, 3], grpc.StatusCode.OK)


# -- statuses ---------------------------------------------------------------------------------


async def test_handler_grpc_error_is_the_status(servicer, socket_path):
    async with (
        serving(servicer, [UnixAddress(socket_path)]) as (_, [address]),
        open_channel(address) as channel,
    ):
        with pytest.raises(GrpcError) as raised:
            await channel.unary_unary(
                INFO, pb.GetSystemInfoRequest(namespace="not-found"), pb.GetSystemInfoResponse
            )
        grpcio = await trio.to_thread.run_sync(
            grpcio_info_error, grpcio_target(address), "not-found"
        )
    assert (raised.value.code, raised.value.message) == (
        StatusCode.NOT_FOUND,
        "no namespace not-found",
    )
    assert grpcio == (grpc.StatusCode.NOT_FOUND, "no namespace not-found")


async def test_handler_bug_is_unknown_with_details_only_in_the_log(servicer, socket_path, caplog):
    caplog.set_level(logging.ERROR, logger="evactors.grpc.server")
    async with (
        serving(servicer, [UnixAddress(socket_path)]) as (_, [address]),
        open_channel(address) as channel,
    ):
        with pytest.raises(GrpcError) as unary:
            await channel.unary_unary(
                INFO, pb.GetSystemInfoRequest(namespace="bug"), pb.GetSystemInfoResponse
            )
        request = pb.GetSystemEventsRequest(format="bug", after_sequence=2)
        received = []
        with pytest.raises(GrpcError) as streaming:
            await collect(channel, request, received)
    assert (unary.value.code, unary.value.message) == (StatusCode.UNKNOWN, "internal error")
    assert (streaming.value.code, streaming.value.message) == (StatusCode.UNKNOWN, "internal error")
    assert received == [1, 2]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [f"{INFO} failed", f"{EVENTS} failed"]
    assert all(r.exc_info and "secret detail" in str(r.exc_info[1]) for r in errors)


async def test_unknown_service_method_and_cardinality_are_unimplemented(servicer, socket_path):
    async with (
        serving(servicer, [UnixAddress(socket_path)]) as (_, [address]),
        open_channel(address) as channel,
    ):
        statuses = []
        for method in (f"{SERVICE}/Nope", "/other.Service/Nope", f"{SERVICE}/Chat"):
            with pytest.raises(GrpcError) as raised:
                await channel.unary_unary(method, pb.SystemEvent(), pb.SystemEvent)
            statuses.append((raised.value.code, raised.value.message))
        # The connection is still fine.
        info = await channel.unary_unary(INFO, pb.GetSystemInfoRequest(), pb.GetSystemInfoResponse)
    assert statuses == [
        (StatusCode.UNIMPLEMENTED, "unknown method Nope for service evactors.v1.SystemService"),
        (StatusCode.UNIMPLEMENTED, "unknown service other.Service"),
        (
            StatusCode.UNIMPLEMENTED,
            f"{SERVICE}/Chat is STREAM_STREAM: this server serves only unary and "
            "server-streaming methods",
        ),
    ]
    assert info.namespace == "default"


async def test_deadline_ends_the_call_with_deadline_exceeded_and_cancels_the_handler(
    servicer, socket_path
):
    async with serving(servicer, [UnixAddress(socket_path)]) as (_, [address]):
        # The bare client does not enforce the deadline itself: the status is the server's.
        async with raw_client(address) as client:
            stream_id = client.request(INFO, headers={"grpc-timeout": "100m"})
            client.message(
                stream_id, pb.GetSystemInfoRequest(namespace="wait-raw").SerializeToString()
            )
            status = await client.status(stream_id)
        assert servicer.finished["wait-raw"].is_set()
        # grpcio gets the same, and evactors' client on a stream (it enforces it too).
        grpcio = await trio.to_thread.run_sync(
            lambda: grpcio_info_error_timeout(grpcio_target(address), "wait-grpcio")
        )
        async with open_channel(address) as channel:
            request = pb.GetSystemEventsRequest(format="wait-stream")
            with pytest.raises(GrpcError) as raised:
                async with channel.unary_stream(
                    EVENTS, request, pb.SystemEvent, timeout=0.2
                ) as events:
                    [event async for event in events]
        with trio.fail_after(PROMPTLY):
            await servicer.finished["wait-grpcio"].wait()
            await servicer.finished["wait-stream"].wait()
    assert status == (StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
    assert grpcio[0] == grpc.StatusCode.DEADLINE_EXCEEDED
    assert raised.value.code == StatusCode.DEADLINE_EXCEEDED


def grpcio_info_error_timeout(target: str, namespace: str) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as raised:
        grpcio_info(target, namespace, timeout=0.2)
    return raised.value.code(), raised.value.details()


# -- the client goes away ----------------------------------------------------------------------


async def test_client_cancelling_a_stream_cancels_its_handler(servicer, socket_path):
    async with (
        serving(servicer, [UnixAddress(socket_path)]) as (server, [address]),
        open_channel(address) as channel,
    ):
        request = pb.GetSystemEventsRequest(format="evactors", after_sequence=1)
        async with channel.unary_stream(EVENTS, request, pb.SystemEvent) as events:
            assert (await events.receive()).sequence == 1
            await servicer.started["evactors"].wait()
        # Leaving the block reset the stream.
        with trio.fail_after(PROMPTLY):
            await servicer.finished["evactors"].wait()

        def cancel_after_first(call):
            next(call)
            call.cancel()

        request = pb.GetSystemEventsRequest(format="grpcio", after_sequence=1)
        _, code, _ = await trio.to_thread.run_sync(
            grpcio_events, grpcio_target(address), request, cancel_after_first
        )
        with trio.fail_after(PROMPTLY):
            await servicer.finished["grpcio"].wait()
        assert server.statistics().calls == 0
    assert code == grpc.StatusCode.CANCELLED


KILLED_CLIENT = """
import sys, grpc
from evactors._generated.evactors.v1 import system_service_pb2 as pb
channel = grpc.insecure_channel(sys.argv[1])
call = channel.unary_stream(
    sys.argv[2],
    request_serializer=pb.GetSystemEventsRequest.SerializeToString,
    response_deserializer=pb.SystemEvent.FromString,
)(pb.GetSystemEventsRequest(format="killed", after_sequence=1))
print(next(call).sequence, flush=True)
sys.stdin.read()
"""


async def test_killed_client_process_cancels_its_waiting_handler(servicer, socket_path):
    async with serving(servicer, [UnixAddress(socket_path)]) as (server, [address]):
        process = await trio.lowlevel.open_process(
            [sys.executable, "-c", KILLED_CLIENT, grpcio_target(address), EVENTS],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            assert process.stdout is not None
            assert await process.stdout.receive_some(16) == b"1\n"
            await servicer.started["killed"].wait()
            assert server.statistics() == ServerStatistics(connections=1, calls=1)
        finally:
            process.kill()
            await process.wait()
            await process.stdin.aclose()
            await process.stdout.aclose()
        with trio.fail_after(PROMPTLY):
            await servicer.finished["killed"].wait()
        assert server.statistics().calls == 0


async def test_streams_reset_leave_no_trace(servicer, socket_path):
    async with (
        serving(servicer, [UnixAddress(socket_path)]) as (server, [address]),
        open_channel(address) as channel,
    ):

        async def call(key, task_status):
            request = pb.GetSystemEventsRequest(format=key, after_sequence=1)
            async with channel.unary_stream(EVENTS, request, pb.SystemEvent) as events:
                await events.receive()
                task_status.started()
                await trio.sleep_forever()

        # 5 x 100: the server lets a connection have 100 calls at once.
        for batch in range(5):
            keys = [f"r{batch}-{n}" for n in range(100)]
            async with trio.open_nursery() as nursery:
                for key in keys:
                    await nursery.start(call, key)
                assert server.statistics().calls == 100
                nursery.cancel_scope.cancel()
            with trio.fail_after(PROMPTLY):
                for key in keys:
                    await servicer.finished[key].wait()
        # A call task leaves the tables in the same step as its handler's `finally`.
        [served] = server._connections
        assert server.statistics() == ServerStatistics(connections=1, calls=0)
        assert served.calls == {}
        assert served.connection.streams == {}
        assert served.connection.protocol.message_read_buffers == {}
        assert served.connection.protocol._responses_started == set()
        assert len(served.nursery.child_tasks) == 0
        # h2 drops its closed streams when it next counts the open ones.
        await channel.unary_unary(INFO, pb.GetSystemInfoRequest(), pb.GetSystemInfoResponse)
        assert len(served.connection.protocol.h2_connection.streams) <= 1


# -- one bad stream fails alone ---------------------------------------------------------------


async def test_malformed_requests_fail_only_their_own_stream(servicer, socket_path):
    good = pb.GetSystemInfoRequest(namespace="x").SerializeToString()
    async with (
        serving(servicer, [UnixAddress(socket_path)]) as (_, [address]),
        raw_client(address) as client,
    ):
        feed = client.request(EVENTS)
        client.message(feed, pb.GetSystemEventsRequest(format="feed").SerializeToString())
        await client.read_until(lambda: "feed" in servicer.feeds)
        bad = {}
        bad["content-type"] = client.request(INFO, headers={"content-type": "text/plain"})
        bad["te"] = client.request(INFO, headers={"te": "gzip"})
        bad["timeout"] = client.request(INFO, headers={"grpc-timeout": "soon"})
        bad["path"] = client.request("/evactors.v1.SystemService")
        bad["upper case"] = client.request(INFO, headers={"X-Trace": "1"})
        bad["not utf-8"] = client.request(INFO, headers={"x-trace": b"\xff"})
        bad["no message"] = client.request(INFO, end_stream=True)
        bad["gzip"] = client.request(INFO, headers={"grpc-encoding": "gzip"})
        client.message(bad["gzip"], good)
        bad["compressed"] = client.request(INFO)
        client.message(bad["compressed"], good, compressed=True)
        bad["1 MiB"] = client.request(INFO)
        client.message(bad["1 MiB"], b"\0" * 16000, declared=1 << 20, end_stream=False)
        bad["not protobuf"] = client.request(INFO)
        client.message(bad["not protobuf"], b"\xff\xff\xff")
        statuses = {name: await client.status(stream_id) for name, stream_id in bad.items()}
        # The streaming call on the same connection goes on.
        await servicer.feeds["feed"].send(pb.SystemEvent(sequence=42))
        await client.read_until(lambda: len(client.streams[feed].messages()) == 1)
        event = pb.SystemEvent.FromString(client.streams[feed].messages()[0])
        assert client.goaway is None
        # So do new calls.
        ok = client.request(INFO)
        client.message(ok, good)
        ok_status = await client.status(ok)
    assert event.sequence == 42
    assert ok_status == (StatusCode.OK, "")
    codes = {name: StatusCode(code) for name, (code, _) in statuses.items()}
    assert codes == {
        "content-type": StatusCode.INTERNAL,
        "te": StatusCode.INTERNAL,
        "timeout": StatusCode.INTERNAL,
        "path": StatusCode.INTERNAL,
        "upper case": StatusCode.INTERNAL,
        "not utf-8": StatusCode.INTERNAL,
        "no message": StatusCode.INTERNAL,
        "gzip": StatusCode.UNIMPLEMENTED,
        "compressed": StatusCode.INTERNAL,
        "1 MiB": StatusCode.RESOURCE_EXHAUSTED,
        "not protobuf": StatusCode.INTERNAL,
    }
    # The oversized request was cut short: the client is told to stop sending it.
    assert client.streams[bad["1 MiB"]].reset == h2.errors.ErrorCodes.NO_ERROR


async def test_a_connection_error_ends_that_connection_and_its_calls_only(servicer, socket_path):
    async with (
        serving(servicer, [UnixAddress(socket_path)]) as (server, [address]),
        open_channel(address) as other,
    ):
        async with raw_client(address) as client:
            feed = client.request(EVENTS)
            client.message(feed, pb.GetSystemEventsRequest(format="broken").SerializeToString())
            await client.read_until(lambda: "broken" in servicer.feeds)
            # A connection-level WINDOW_UPDATE of zero: an HTTP/2 connection error.
            await client.transport.send_all(b"\0\0\4\x08\0\0\0\0\0" + b"\0\0\0\0")
            with trio.fail_after(PROMPTLY):
                await servicer.finished["broken"].wait()
            await client.read_until(lambda: client.goaway is not None)
        info = await other.unary_unary(INFO, pb.GetSystemInfoRequest(), pb.GetSystemInfoResponse)
        assert server.statistics() == ServerStatistics(connections=1, calls=0)
    assert client.goaway.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
    assert info.namespace == "default"


async def test_a_client_goaway_ends_the_connection_and_cancels_its_calls(servicer, socket_path):
    async with (
        serving(servicer, [UnixAddress(socket_path)]) as (server, [address]),
        raw_client(UnixAddress(socket_path)) as client,
    ):
        feed = client.request(EVENTS)
        client.message(feed, pb.GetSystemEventsRequest(format="feed").SerializeToString())
        await client.read_until(lambda: "feed" in servicer.feeds)
        # h2 3.2 neither sends nor accepts a frame after a GOAWAY, so the calls cannot
        # go on (grpc-go would answer them): they are cancelled, nothing breaks.
        goaway = hyperframe.frame.GoAwayFrame(0, last_stream_id=0, error_code=0)
        await client.transport.send_all(client.h2.data_to_send() + goaway.serialize())
        with trio.fail_after(PROMPTLY):
            await servicer.finished["feed"].wait()
            while await client.transport.receive_some(65536):
                pass  # until the server closes the connection
        async with open_channel(address) as other:
            await other.unary_unary(INFO, pb.GetSystemInfoRequest(), pb.GetSystemInfoResponse)
        assert server.statistics().calls == 0


async def test_streams_over_the_limit_are_refused_alone(servicer, socket_path):
    async with (
        serving(servicer, [UnixAddress(socket_path)], max_concurrent_streams=2) as (
            _,
            [address],
        ),
        raw_client(address) as client,
    ):
        # Sent before the server's SETTINGS arrive, so h2 does not hold them back.
        ids = [client.request(INFO) for _ in range(3)]
        for n, stream_id in enumerate(ids):
            request = pb.GetSystemInfoRequest(namespace=f"wait{n}" if n < 2 else "third")
            client.message(stream_id, request.SerializeToString())
        await client.read_until(lambda: client.streams[ids[2]].reset is not None)
        assert client.streams[ids[2]].reset == h2.errors.ErrorCodes.REFUSED_STREAM
        await servicer.started["wait0"].wait()
        await servicer.started["wait1"].wait()
        assert "third" not in servicer.started
        assert client.goaway is None


async def test_connections_over_the_limit_are_closed_at_once(servicer, socket_path, caplog):
    caplog.set_level(logging.WARNING, logger="evactors.grpc.server")
    async with (
        serving(servicer, [UnixAddress(socket_path)], max_connections=1) as (
            server,
            [address],
        ),
        open_channel(address) as first,
    ):
        await first.unary_unary(INFO, pb.GetSystemInfoRequest(), pb.GetSystemInfoResponse)
        async with open_channel(address) as second:
            with pytest.raises(GrpcError) as raised:
                await second.unary_unary(INFO, pb.GetSystemInfoRequest(), pb.GetSystemInfoResponse)
        await first.unary_unary(INFO, pb.GetSystemInfoRequest(), pb.GetSystemInfoResponse)
        assert server.statistics().connections == 1
    assert raised.value.code == StatusCode.UNAVAILABLE
    assert [r.getMessage() for r in caplog.records] == [
        f"closing connection unix://{socket_path} #2 at once: 1 connections are open "
        "(max_connections)"
    ]


# -- unix sockets ------------------------------------------------------------------------------


async def test_unix_socket_is_made_private_in_a_new_folder_and_removed(servicer, tmp_path):
    path = str(tmp_path / "run" / "evactors" / "s.sock")
    async with serving(servicer, [UnixAddress(path)]):
        mode = os.stat(path).st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) & ~0o660 == 0
        assert stat.S_IMODE(mode) & 0o007 == 0
    assert not await trio.Path(path).exists()


async def test_tcp_binds_the_given_host_and_port_alone(servicer):
    async with serving(servicer, [TcpAddress("127.0.0.1", 0)]) as (_, [address]):
        assert isinstance(address, TcpAddress)
        assert address.host == "127.0.0.1"
        # No SO_REUSEPORT: a second server cannot share the port.
        with pytest.raises(OSError, match="ddress already in use") as raised:
            await Server(servicer).serve([address])
        assert raised.value.errno == errno.EADDRINUSE


async def test_second_server_on_a_live_socket_refuses_to_start(servicer, socket_path):
    async with serving(servicer, [UnixAddress(socket_path)]) as (_, [address]):
        inode = os.stat(socket_path).st_ino
        with pytest.raises(OSError, match="a server is answering on it") as raised:
            await Server(servicer).serve([UnixAddress(socket_path)])
        assert raised.value.errno == errno.EADDRINUSE
        assert socket_path in str(raised.value)
        assert os.stat(socket_path).st_ino == inode
        async with open_channel(address) as channel:
            await channel.unary_unary(INFO, pb.GetSystemInfoRequest(), pb.GetSystemInfoResponse)


async def test_stale_socket_file_is_replaced_and_other_files_are_not(servicer, socket_path):
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(socket_path)
    stale.close()  # the file stays, nobody answers on it
    async with (
        serving(servicer, [UnixAddress(socket_path)]) as (_, [address]),
        open_channel(address) as channel,
    ):
        await channel.unary_unary(INFO, pb.GetSystemInfoRequest(), pb.GetSystemInfoResponse)
    await trio.Path(socket_path).write_text("not a socket")
    with pytest.raises(OSError, match="is not a socket"):
        await Server(servicer).serve([UnixAddress(socket_path)])
    assert await trio.Path(socket_path).read_text() == "not a socket"


# -- graceful shutdown --------------------------------------------------------------------------


async def test_shutdown_ends_open_calls_with_unavailable_and_removes_the_socket(
    servicer, socket_path
):
    server = Server(servicer)
    with trio.fail_after(TEST_TIMEOUT):
        async with trio.open_nursery() as nursery:
            [address] = await nursery.start(server.serve, [UnixAddress(socket_path)])
            grpcio_result = []

            async def grpcio_stream():
                request = pb.GetSystemEventsRequest(format="grpcio", after_sequence=1)
                grpcio_result.append(
                    await trio.to_thread.run_sync(
                        grpcio_events, grpcio_target(address), request, lambda call: None
                    )
                )

            nursery.start_soon(grpcio_stream)
            async with open_channel(address) as channel:
                request = pb.GetSystemEventsRequest(format="evactors", after_sequence=1)
                async with channel.unary_stream(EVENTS, request, pb.SystemEvent) as events:
                    assert (await events.receive()).sequence == 1
                    await servicer.started["grpcio"].wait()
                    await servicer.started["evactors"].wait()
                    server.shutdown("maintenance")
                    with pytest.raises(GrpcError) as raised:
                        await events.receive()
    assert (raised.value.code, raised.value.message) == (StatusCode.UNAVAILABLE, "maintenance")
    assert grpcio_result == [([1], grpc.StatusCode.UNAVAILABLE, "maintenance")]
    assert servicer.finished["grpcio"].is_set()
    assert servicer.finished["evactors"].is_set()
    assert not await trio.Path(socket_path).exists()
    assert server.statistics() == ServerStatistics(connections=0, calls=0)
