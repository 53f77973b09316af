"""The connection's socket I/O on real socket pairs.

The reader: everything in order, then the end; one read per wake-up, and a checkpoint
on every call. The writer: frames written at once when it is idle, the rest by its
task, in order, whatever the socket takes at a time; a client's request written at
once even beside other calls."""

from __future__ import annotations

import os
import socket

import pytest
import trio
import trio.testing

from evactors.grpc._connection import RECEIVE_CHUNK, GrpcConnection, Reader, Writer
from evactors.grpc._protocol import GrpcProtocol


class Queue:
    """Stands in for the protocol: bytes queued for the socket."""

    def __init__(self) -> None:
        self.pending = bytearray()

    def data_to_send(self) -> bytes:
        data, self.pending = bytes(self.pending), bytearray()
        return data


async def read_exactly(stream: trio.SocketStream, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = await stream.receive_some(65536)
        assert chunk
        data += chunk
    return bytes(data)


async def test_the_reader_takes_everything_in_order_then_the_end():
    left, right = trio.socket.socketpair()
    sender, receiver = trio.SocketStream(left), trio.SocketStream(right)
    reader = Reader(receiver)
    data = os.urandom(3 * RECEIVE_CHUNK + 123)
    received = bytearray()
    with trio.fail_after(10):
        async with sender, receiver, trio.open_nursery() as nursery:

            async def send_then_close() -> None:
                await sender.send_all(data)
                await sender.aclose()

            nursery.start_soon(send_then_close)
            while chunk := await reader.receive_some():
                assert len(chunk) <= RECEIVE_CHUNK
                received += chunk
    assert received == data


async def test_every_read_is_a_checkpoint_whether_it_waits_or_not():
    left, right = trio.socket.socketpair()
    sender, receiver = trio.SocketStream(left), trio.SocketStream(right)
    reader = Reader(receiver)
    async with sender, receiver:
        await sender.send_all(b"x" * (RECEIVE_CHUNK + 1))
        for expected in (RECEIVE_CHUNK, 1):  # a full read, then one that drains
            with trio.testing.assert_checkpoints():
                assert len(await reader.receive_some()) == expected


async def test_a_reader_on_a_quiet_socket_waits_for_the_next_bytes():
    left, right = trio.socket.socketpair()
    sender, receiver = trio.SocketStream(left), trio.SocketStream(right)
    reader = Reader(receiver)
    got: list[bytes | bytearray] = []
    with trio.fail_after(10):
        async with sender, receiver, trio.open_nursery() as nursery:

            async def read() -> None:
                got.append(await reader.receive_some())

            nursery.start_soon(read)
            await trio.testing.wait_all_tasks_blocked()
            assert got == []
            await sender.send_all(b"hello")
    assert got == [b"hello"]


async def test_a_connection_reset_by_the_peer_is_broken():
    left, right = trio.socket.socketpair()
    receiver = trio.SocketStream(right)
    reader = Reader(receiver)
    async with receiver:
        await receiver.send_all(b"never read")
        left.close()  # with unread data: the peer's read fails with ECONNRESET
        with pytest.raises(trio.BrokenResourceError):
            await reader.receive_some()


async def test_what_the_socket_does_not_take_at_once_is_written_by_the_task_in_order():
    left, right = trio.socket.socketpair()
    left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sender, receiver = trio.SocketStream(left), trio.SocketStream(right)
    queue = Queue()
    writer = Writer(queue, sender)
    blocks = [os.urandom(300_000), b"small", os.urandom(100_000)]
    with trio.fail_after(10):
        async with sender, receiver, trio.open_nursery() as nursery:
            nursery.start_soon(writer.run)
            for block in blocks:
                queue.pending += block
                # The first is too big for the socket: its rest, and what comes after
                # it, are left to the writer's task.
                writer.write_now()
            received = await read_exactly(receiver, sum(map(len, blocks)))
            await writer.flush()
            nursery.cancel_scope.cancel()
    assert received == b"".join(blocks)


async def test_an_idle_writer_leaves_nothing_for_its_task():
    left, right = trio.socket.socketpair()
    sender, receiver = trio.SocketStream(left), trio.SocketStream(right)
    queue = Queue()
    writer = Writer(queue, sender)
    queue.pending += b"hello"
    async with sender, receiver:
        writer.write_now()  # no task running: written by the call itself
        with trio.fail_after(5):
            assert await read_exactly(receiver, 5) == b"hello"


async def test_a_clients_request_is_written_at_once_beside_another_open_call():
    ours, peer = socket.socketpair()
    peer.setblocking(False)
    protocol = GrpcProtocol(client_side=True, max_message_length=1024, max_concurrent_streams=10)
    transport = trio.SocketStream(trio.socket.from_stdlib_socket(ours))
    connection = GrpcConnection(transport, protocol, "peer")
    with peer, trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(connection.run)
            await trio.testing.wait_all_tasks_blocked()
            peer.recv(65536)  # the connection preface
            streams = [connection.open_stream(n) for n in (1, 3)]  # a subscription and a call
            for stream in streams:
                protocol.start_request(
                    stream.stream_id, "http", "pkg.Service", "Method", authority="localhost"
                )
            await streams[1].send_message(b"lookup", end_stream=True)
            # No scheduling round since: the request is on the socket already (a server's
            # sends leave it to the writer, which coalesces a fan-out).
            assert b"lookup" in peer.recv(65536)
            nursery.cancel_scope.cancel()
