"""The connection's writer: frames written at once when it is idle, the rest by its task,
in order, whatever the socket takes at a time."""

from __future__ import annotations

import os
import socket

import trio

from evactors.grpc._connection import Writer


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
