"""Helpers for tests that watch a real containerd: subscriptions that are known to be
live, and `ctr events` running beside them for comparison."""

from __future__ import annotations

import functools
import subprocess
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import attrs
import trio

from evactors.containerd import ContainerdClient, Envelope, EventSubscription, RawPayload
from evactors.testing import PrivateContainerd

PROBE_NAMESPACE = "evactors-probe"
PROBE_TOPIC = "/evactors/probe"


async def wait_until_live(client: ContainerdClient, events: EventSubscription) -> None:
    """Return once `events` sees what is published now (containerd keeps no history, so
    an event published before the subscription is registered is lost)."""
    for attempt in range(100):
        marker = f"probe-{attempt}".encode()
        await client.publish(PROBE_NAMESPACE, PROBE_TOPIC, RawPayload("evactors.Probe", marker))
        with trio.move_on_after(0.1):
            async for envelope in events:
                if envelope.payload == RawPayload("evactors.Probe", marker):
                    return
    raise AssertionError("the subscription never saw a probe event")


async def collect_until(events: EventSubscription, done: str, container_id: str) -> list[Envelope]:
    """Envelopes until the one with topic `done` about `container_id` (inclusive)."""
    seen = []
    with trio.fail_after(30):
        async for envelope in events:
            seen.append(envelope)
            if envelope.topic == done and container_id in str(envelope.payload):
                return seen
    raise AssertionError("subscription ended early")


@attrs.frozen
class CtrEventLine:
    timestamp: str
    namespace: str
    topic: str
    payload: str


def parse_ctr_event_line(line: str) -> CtrEventLine:
    """`2026-12-04 15:53:10.32 +0000 UTC default /containers/create {...}`."""
    date, time, offset, zone, namespace, topic, payload = line.split(" ", 6)
    return CtrEventLine(f"{date} {time} {offset} {zone}", namespace, topic, payload)


@attrs.define
class CtrEvents:
    lines: list[CtrEventLine] = attrs.field(factory=list)


@asynccontextmanager
async def ctr_events(containerd: PrivateContainerd) -> AsyncGenerator[CtrEvents]:
    """Run `ctr events` beside the test; yields once it is known to receive events."""
    seen = CtrEvents()
    live = trio.Event()
    async with trio.open_nursery() as nursery:
        process = await nursery.start(
            functools.partial(
                trio.run_process,
                ["ctr", "-a", str(containerd.address), "events"],
                stdout=subprocess.PIPE,
                check=False,
            )
        )

        async def read_lines() -> None:
            buffer = b""
            async for chunk in process.stdout:
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    parsed = parse_ctr_event_line(line.decode())
                    if parsed.topic == "/namespaces/create":
                        live.set()
                    seen.lines.append(parsed)

        nursery.start_soon(read_lines)
        for attempt in range(100):
            name = f"ctr-events-probe-{attempt}"
            await trio.to_thread.run_sync(containerd.ctr, "namespaces", "create", name)
            await trio.to_thread.run_sync(containerd.ctr, "namespaces", "remove", name)
            with trio.move_on_after(0.1):
                await live.wait()
            if live.is_set():
                break
        assert live.is_set(), "ctr events never printed an event"
        try:
            yield seen
            await trio.sleep(0.2)  # let ctr print what containerd already sent it
        finally:
            process.kill()
