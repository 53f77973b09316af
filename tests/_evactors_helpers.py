"""Helpers for end-to-end tests of the service: an evactors daemon on the private
containerd, in this trio run, and ways to wait for what it does."""

from __future__ import annotations

import functools
import itertools
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import asynccontextmanager

import trio

from evactors._generated.evactors.v1 import system_service_pb2 as pb
from evactors.containerd import ContainerdClient, RawPayload
from evactors.containerd.events import PAYLOAD_TYPES
from evactors.daemon import DaemonConfig, RunningDaemon, run_daemon
from evactors.grpc import ResponseStream, UnixAddress

PROBE_NAMESPACE = "evactors-probe"
PROBE_TOPIC = "/evactors/probe"


async def eventually(predicate: Callable[[], bool], *, within: float = 10) -> None:
    """Poll until `predicate()` holds; fail after `within` seconds. (A poll, because
    what it waits for happens in containerd or another process.)"""
    with trio.fail_after(within):
        while not predicate():  # ruff: ignore[async-busy-wait]
            await trio.sleep(0.005)


@asynccontextmanager
async def running_evactors(
    containerd_address: str, socket_path: str, **options: int
) -> AsyncGenerator[RunningDaemon]:
    """`evactors serve` in this trio run (no signal handling), shut down after the block."""
    config = DaemonConfig(containerd_address, [UnixAddress(socket_path)], **options)
    async with trio.open_nursery() as nursery:
        daemon = await nursery.start(functools.partial(run_daemon, config, handle_signals=False))
        try:
            yield daemon
        finally:
            daemon.server.shutdown()


async def wait_until_live(daemon: RunningDaemon, client: ContainerdClient) -> None:
    """Return once the daemon's containerd subscription delivers what is published now."""
    with trio.fail_after(10):
        for attempt in itertools.count():
            before = daemon.pipeline.stats().events_received
            marker = f"probe-{attempt}".encode()
            await client.publish(PROBE_NAMESPACE, PROBE_TOPIC, RawPayload("evactors.Probe", marker))
            with trio.move_on_after(0.1):
                await eventually(lambda: daemon.pipeline.stats().events_received > before)  # ruff: ignore[function-uses-loop-variable]
                return


def task_exit(container_id: str, exit_status: int = 0):
    """A /tasks/exit payload about `container_id` (no such container needs to exist)."""
    return PAYLOAD_TYPES["containerd.events.TaskExit"](
        container_id=container_id, id=container_id, pid=4242, exit_status=exit_status
    )


async def publish_exits(
    client: ContainerdClient, namespace: str, container_ids: Sequence[str]
) -> None:
    for container_id in container_ids:
        await client.publish(namespace, "/tasks/exit", task_exit(container_id))


async def receive(stream: ResponseStream[pb.SystemEvent], count: int) -> list[pb.SystemEvent]:
    """The next `count` events of a stream (fails if it ends or takes over 10 s)."""
    events = []
    with trio.fail_after(10):
        while len(events) < count:
            event = await stream.receive()
            assert event is not None, f"the stream ended after {len(events)} of {count} events"
            events.append(event)
    return events


async def receive_all(stream: ResponseStream[pb.SystemEvent]) -> list[pb.SystemEvent]:
    """Every event until the stream ends with OK (fails after 10 s)."""
    with trio.fail_after(10):
        return [event async for event in stream]
