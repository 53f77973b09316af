"""GetSystemEvents end to end: a real containerd, the evactors daemon, and a gRPC client
over its unix socket.

Each test publishes its synthetic events (containerd's Events/Publish, as a shim does)
in a namespace of its own and filters on it, so tests sharing the session's containerd
do not see each other's events. Real containers are used where the container's name,
image and labels matter.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import trio

from evactors._generated.evactors.v1 import system_service_pb2 as pb
from evactors.containerd import open_containerd
from evactors.grpc import GrpcError, StatusCode, open_channel
from evactors.rpc import SystemClient, open_system_client
from evactors.testing import start_private_containerd, stop_private_containerd

from ._evactors_helpers import (
    eventually,
    publish_exits,
    receive,
    receive_all,
    running_evactors,
    wait_until_live,
)


@pytest.fixture
def namespace():
    return f"t-{uuid.uuid4().hex[:8]}"


async def subscribers(client) -> int:
    return (await client.info()).stats.subscribers


LIFECYCLE = [
    ("/containers/create", "create", pb.CONTAINER_EVENT),
    ("/tasks/create", "create", pb.TASK_EVENT),
    ("/tasks/start", "start", pb.TASK_EVENT),
    ("/tasks/exit", "die", pb.TASK_EVENT),
    ("/tasks/delete", "destroy", pb.TASK_EVENT),
    ("/containers/delete", "destroy", pb.CONTAINER_EVENT),
]


async def test_a_real_containers_lifecycle(
    evactors, client, containerd, busybox_image, container_id
):
    plain = pb.GetSystemEventsRequest(filters=[f"container={container_id}"])
    formatted = pb.GetSystemEventsRequest(
        filters=[f"container={container_id}"],
        format="{{.Status}} {{.Action}} {{.ID}} {{.Metadata.name}}|{{json .Labels}}|{{json .}}",
    )
    async with client.events(plain) as events, client.events(formatted) as rendered:
        await eventually(lambda: evactors.pipeline.stats().subscribers == 2)
        result = await trio.to_thread.run_sync(
            lambda: containerd.run(
                busybox_image.name,
                container_id,
                "sh",
                "-c",
                "exit 3",
                labels={"nerdctl/name": "web", "tier": "front"},
                check=False,
            )
        )
        assert result.returncode == 3
        seen = await receive(events, len(LIFECYCLE))
        seen_rendered = await receive(rendered, len(LIFECYCLE))

    assert [(e.topic, e.status, e.type) for e in seen] == LIFECYCLE
    sequences = [e.sequence for e in seen]
    assert sequences == sorted(set(sequences))
    for event in seen:
        assert event.container_id == container_id
        assert event.namespace == "default"
        assert event.metadata["name"] == "web"
        assert event.metadata["image"] == busybox_image.name
        assert json.loads(event.event_data)
        assert event.timestamp > 0
        assert not event.formatted
    by_topic = {e.topic: e for e in seen}
    assert by_topic["/tasks/exit"].metadata["exit_code"] == "3"
    assert int(by_topic["/tasks/start"].metadata["pid"]) > 0
    assert json.loads(by_topic["/tasks/exit"].event_data)["exit_status"] == 3

    for event, plain_event in zip(seen_rendered, seen, strict=True):
        assert event.sequence == plain_event.sequence
        text, labels, record = event.formatted.split("|", 2)
        assert text == f"{plain_event.status} {plain_event.status} {container_id} web"
        # ctr adds a label of its own (the image's stop signal).
        assert json.loads(labels).items() >= {"nerdctl/name": "web", "tier": "front"}.items()
        record = json.loads(record)
        assert record["ID"] == container_id
        assert record["Topic"] == plain_event.topic
        assert record["Status"] == record["Action"] == plain_event.status
        assert json.loads(record["Event"]) == json.loads(plain_event.event_data)


async def test_filters_select_with_or_within_a_key_and_and_across_keys(
    evactors, client, containerd, busybox_image, ctd_client, namespace
):
    # Two real containers (names, labels, image) and synthetic exits in a second namespace.
    first, second = f"a{uuid.uuid4().hex[:9]}", f"b{uuid.uuid4().hex[:9]}"
    other = f"{namespace}-other"
    start = evactors.pipeline.stats().last_sequence
    try:
        for cid, name, labels in (
            (first, "web1", {"tier": "front"}),
            (second, "db2", {"tier": "back", "keep": "yes"}),
        ):
            await trio.to_thread.run_sync(
                lambda cid=cid, name=name, labels=labels: containerd.run(
                    busybox_image.name, cid, "true", labels={"nerdctl/name": name, **labels}
                )
            )
        await publish_exits(ctd_client, other, ["x1", "x2"])
        history = evactors.pipeline.history
        await eventually(
            lambda: sum(e.namespace == other for e in history.after_sequence(start)) == 2
        )
    finally:
        for cid in (first, second):
            containerd.delete_container(cid)
    end = time.time_ns()

    async def select(*filters: str) -> list[tuple[str, str, str]]:
        """Retained events since the test began that pass the filters (a replay that
        ends because `until` has passed)."""
        request = pb.GetSystemEventsRequest(filters=list(filters), after_sequence=start, until=end)
        async with client.events(request) as stream:
            return [(e.namespace, e.container_id, e.topic) for e in await receive_all(stream)]

    everything = await select()
    ours = [e for e in everything if e[0] in {"default", other}]

    def expect(predicate) -> list[tuple[str, str, str]]:
        return [e for e in ours if predicate(*e)]

    tasks_and_containers = ("/tasks/", "/containers/")
    assert await select(f"container={first}") == expect(lambda ns, cid, t: cid == first)
    assert await select(f"container={first[:4]}") == expect(lambda ns, cid, t: cid == first)
    assert await select("container=db2") == expect(lambda ns, cid, t: cid == second)
    assert await select("container=web1", "container=db2") == expect(
        lambda ns, cid, t: cid in {first, second}
    )
    assert await select("event=start", "status=DIE", "namespace=default") == expect(
        lambda ns, cid, t: ns == "default" and t in {"/tasks/start", "/tasks/exit"}
    )
    assert await select("type=task", "event=die") == expect(lambda ns, cid, t: t == "/tasks/exit")
    assert await select("type=container", "namespace=default") == expect(
        lambda ns, cid, t: ns == "default" and t.startswith(tasks_and_containers)
    )
    assert await select("type=CONTAINER_EVENT", "namespace=default") == expect(
        lambda ns, cid, t: ns == "default" and t.startswith("/containers/")
    )
    assert await select(f"namespace={other}") == expect(lambda ns, cid, t: ns == other)
    assert await select("topic=/containers/create", "namespace=default") == expect(
        lambda ns, cid, t: ns == "default" and t == "/containers/create"
    )
    assert await select("topic=/tasks/", f"namespace={other}") == expect(
        lambda ns, cid, t: ns == other
    )
    assert await select("label=tier=front") == expect(lambda ns, cid, t: cid == first)
    assert await select("label=keep") == expect(lambda ns, cid, t: cid == second)
    assert await select("label=tier") == expect(lambda ns, cid, t: cid in {first, second})
    assert await select(f"image={busybox_image.name}") == expect(
        lambda ns, cid, t: cid in {first, second}
    )
    assert await select("image=no-such-image") == []
    # The selections are not vacuous: each container had its whole lifecycle.
    assert len(expect(lambda ns, cid, t: cid == first)) == len(LIFECYCLE)


INVALID_REQUESTS = {
    "filter without =": (pb.GetSystemEventsRequest(filters=["event"]), '"event"'),
    "empty key": (pb.GetSystemEventsRequest(filters=["=start"]), '"=start"'),
    "unknown key": (pb.GetSystemEventsRequest(filters=["colour=red"]), '"colour=red"'),
    "unknown type": (pb.GetSystemEventsRequest(filters=["type=widget"]), '"type=widget"'),
    "empty value": (pb.GetSystemEventsRequest(filters=["container="]), '"container="'),
    "bad after good": (
        pb.GetSystemEventsRequest(filters=["event=start", "nope"]),
        '"nope"',
    ),
    "unparsable template": (pb.GetSystemEventsRequest(format="{{.ID"), "{{.ID"),
    "unknown template field": (pb.GetSystemEventsRequest(format="{{.Colour}}"), "Colour"),
    "negative since": (pb.GetSystemEventsRequest(since=-1), "since"),
    "negative until": (pb.GetSystemEventsRequest(until=-5), "until"),
    "since after until": (pb.GetSystemEventsRequest(since=20, until=10), "since (20)"),
}


@pytest.mark.parametrize(
    ("request_", "named"), INVALID_REQUESTS.values(), ids=INVALID_REQUESTS.keys()
)
async def test_an_invalid_request_ends_with_invalid_argument_before_any_event(
    evactors, client, ctd_client, namespace, request_, named
):
    # Events flow meanwhile; none may reach the rejected call.
    await publish_exits(ctd_client, namespace, ["c1"])
    async with client.events(request_) as stream:
        with pytest.raises(GrpcError) as caught:
            await stream.receive()
    assert caught.value.code == StatusCode.INVALID_ARGUMENT
    assert named in caught.value.message
    assert await subscribers(client) == 0


async def test_since_replays_retained_events_then_continues_live(
    evactors, client, ctd_client, namespace
):
    await publish_exits(ctd_client, namespace, ["old"])
    await eventually(lambda: evactors.pipeline.history.since(0)[-1].namespace == namespace)
    since = time.time_ns()
    await publish_exits(ctd_client, namespace, ["r1", "r2"])
    await eventually(lambda: evactors.pipeline.history.since(0)[-1].container_id == "r2")

    request = pb.GetSystemEventsRequest(filters=[f"namespace={namespace}"], since=since)
    async with client.events(request) as stream:
        replayed = await receive(stream, 2)
        await publish_exits(ctd_client, namespace, ["live"])
        live = await receive(stream, 1)
    assert [e.container_id for e in replayed + live] == ["r1", "r2", "live"]
    assert all(e.timestamp >= since for e in replayed)


async def test_after_sequence_resumes_with_no_gap_and_no_duplicate(
    evactors, client, ctd_client, namespace
):
    request = pb.GetSystemEventsRequest(filters=[f"namespace={namespace}"])
    async with client.events(request) as stream:
        await eventually(lambda: evactors.pipeline.stats().subscribers == 1)
        await publish_exits(ctd_client, namespace, ["e1", "e2", "e3"])
        first = await receive(stream, 3)

    # Resume after e1 while more events are being published: e2, e3 come from the
    # history, e4 and e5 live, whichever side of the seam they fall.
    resume = pb.GetSystemEventsRequest(
        filters=[f"namespace={namespace}"], after_sequence=first[0].sequence
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(publish_exits, ctd_client, namespace, ["e4", "e5"])
        async with client.events(resume) as stream:
            resumed = await receive(stream, 4)
    assert [e.container_id for e in resumed] == ["e2", "e3", "e4", "e5"]
    assert [e.sequence for e in resumed[:2]] == [e.sequence for e in first[1:]]
    sequences = [e.sequence for e in resumed]
    assert sequences == sorted(set(sequences))


async def test_a_window_in_the_past_replays_what_is_inside_it_then_ends(
    evactors, client, ctd_client, namespace
):
    await publish_exits(ctd_client, namespace, ["before"])
    await eventually(lambda: evactors.pipeline.history.since(0)[-1].container_id == "before")
    since = time.time_ns()
    await publish_exits(ctd_client, namespace, ["in1", "in2"])
    await eventually(lambda: evactors.pipeline.history.since(0)[-1].container_id == "in2")
    until = time.time_ns()
    await publish_exits(ctd_client, namespace, ["after"])
    await eventually(lambda: evactors.pipeline.history.since(0)[-1].container_id == "after")

    request = pb.GetSystemEventsRequest(
        filters=[f"namespace={namespace}"], since=since, until=until
    )
    async with client.events(request) as stream:
        events = await receive_all(stream)  # ends with OK
    assert [e.container_id for e in events] == ["in1", "in2"]


async def test_until_ends_the_stream_when_it_passes_even_without_events(evactors, client):
    until = time.time_ns() + 300_000_000
    request = pb.GetSystemEventsRequest(filters=["namespace=nothing-happens-here"], until=until)
    async with client.events(request) as stream:
        assert await receive_all(stream) == []
    assert time.time_ns() >= until
    assert await subscribers(client) == 0


async def test_fifty_cancelled_streams_are_released_within_a_second(evactors, client):
    request = pb.GetSystemEventsRequest(filters=["namespace=quiet"])
    async with trio.open_nursery() as nursery:
        for _ in range(50):
            nursery.start_soon(_hold_stream_open, client, request)
        await eventually(lambda: evactors.pipeline.stats().subscribers == 50)
        assert await subscribers(client) == 50
        nursery.cancel_scope.cancel()
    with trio.fail_after(1):
        while await subscribers(client):  # ruff: ignore[async-busy-wait] - asks the server over gRPC
            await trio.sleep(0.01)
    assert evactors.server.statistics().calls == 0


async def _hold_stream_open(client, request) -> None:
    async with client.events(request) as stream:
        await stream.receive()


async def test_a_stream_whose_client_stopped_reading_is_cut_off_and_others_get_everything(
    containerd, socket_path, ctd_client, namespace
):
    backlog = 64
    count = 2000
    async with running_evactors(
        str(containerd.address), socket_path, client_backlog=backlog
    ) as daemon:
        await wait_until_live(daemon, ctd_client)
        request = pb.GetSystemEventsRequest(filters=[f"namespace={namespace}"])
        # The sleeper's transport takes at most 8 KiB (its HTTP/2 window, twice its
        # largest message) before the server must wait for it: a client that stopped
        # reading. (Our client's default window, 32 MiB, would absorb this test.)
        async with (
            open_system_client(daemon.addresses[0]) as reader,
            open_channel(daemon.addresses[0], max_message_length=4096) as sleeper_channel,
            reader.events(request) as fast,
            SystemClient(sleeper_channel).events(request) as slow,
        ):
            await eventually(lambda: daemon.pipeline.stats().subscribers == 2)
            ids = [f"c{i}" for i in range(count)]
            async with trio.open_nursery() as nursery:
                nursery.start_soon(publish_exits, ctd_client, namespace, ids)
                received = await receive(fast, count)
            assert [e.container_id for e in received] == ids
            sequences = [e.sequence for e in received]
            assert sequences == sorted(set(sequences))

            # The sleeper wakes up: what was queued for it, then RESOURCE_EXHAUSTED
            # naming the last sequence it was sent.
            late: list[pb.SystemEvent] = []
            with pytest.raises(GrpcError) as caught:
                await _read_into(slow, late)
            assert caught.value.code == StatusCode.RESOURCE_EXHAUSTED
            assert late, "the slow client got nothing before it was cut off"
            assert len(late) < count
            assert [e.container_id for e in late] == ids[: len(late)]
            assert f"after_sequence={late[-1].sequence}" in caught.value.message
            assert daemon.pipeline.stats().events_dropped > 0


async def _read_into(stream, events: list) -> None:
    with trio.fail_after(10):
        async for event in stream:
            events.append(event)


async def test_info_reports_the_services_stats(evactors, client, ctd_client, namespace):
    request = pb.GetSystemEventsRequest(filters=[f"namespace={namespace}"])
    async with client.events(request) as stream:
        await eventually(lambda: evactors.pipeline.stats().subscribers == 1)
        await publish_exits(ctd_client, namespace, ["s1", "s2"])
        events = await receive(stream, 2)
        info = await client.info(pb.GetSystemInfoRequest())
    stats = info.stats
    assert stats.subscribers == 1
    assert stats.containerd_connected
    assert stats.last_sequence >= events[-1].sequence
    assert stats.events_received >= 3  # the probe and ours
    assert stats.events_delivered >= 2
    assert 0 < stats.started_at <= time.time_ns()
    assert info.service_version


async def test_a_stream_outlives_a_containerd_restart_and_carries_the_new_ones_events(
    socket_path, namespace
):
    # A containerd of its own, whose socket path survives the restart (a short folder:
    # a long one would put the socket in a fresh temporary folder each time).
    base = Path(tempfile.mkdtemp(prefix="ctd-", dir="/tmp"))
    first = await trio.to_thread.run_sync(start_private_containerd, base)
    second = None
    try:
        async with running_evactors(str(first.address), socket_path) as daemon:
            async with open_containerd(str(first.address)) as ctd_client:
                await wait_until_live(daemon, ctd_client)
            request = pb.GetSystemEventsRequest(filters=["type=task", "type=system"])
            async with (
                open_system_client(daemon.addresses[0]) as client,
                client.events(request) as stream,
            ):
                await eventually(lambda: daemon.pipeline.stats().subscribers == 1)
                async with open_containerd(str(first.address)) as ctd_client:
                    await publish_exits(ctd_client, namespace, ["before"])
                assert [e.container_id for e in await receive(stream, 1)] == ["before"]

                os.kill(first.pid, signal.SIGKILL)
                await trio.to_thread.run_sync(first._process.wait)
                second = await trio.to_thread.run_sync(start_private_containerd, base)
                assert second.address == first.address

                notice = (await receive(stream, 1))[0]
                assert (notice.type, notice.topic) == (pb.SYSTEM_EVENT, "/evactors/events-missed")
                assert json.loads(notice.event_data)["reason"]
                # containerd registers a subscription a moment after accepting it and
                # keeps no history: publish until the new containerd's events arrive.
                async with open_containerd(str(second.address)) as ctd_client:
                    after = await _publish_until_received(ctd_client, namespace, stream)
                assert after.container_id.startswith("after-")
                assert after.sequence > notice.sequence
                assert (await client.info()).stats.containerd_connected
    finally:
        await trio.to_thread.run_sync(stop_private_containerd, second or first)


async def _publish_until_received(ctd_client, namespace, stream) -> pb.SystemEvent:
    with trio.fail_after(10):
        for attempt in range(1000):
            await publish_exits(ctd_client, namespace, [f"after-{attempt}"])
            with trio.move_on_after(0.1):
                event = await stream.receive()
                assert event is not None
                return event
    raise AssertionError("unreachable")
