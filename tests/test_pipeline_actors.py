"""The pipeline's actors driven with in-memory sources and trio's virtual clock.

Rules: no real sleeps; `autojump_clock` for anything timed, asserting exact virtual
times; `wait_all_tasks_blocked` to let actors settle; every test is bounded by
`fail_after` on the virtual clock.
"""

from __future__ import annotations

import contextlib
import logging

import attrs
import pytest
import trio
import trio.testing
from google.protobuf.timestamp_pb2 import Timestamp

from evactors._generated.containerd.events import container_pb2, task_pb2
from evactors.containerd import Container, Envelope, NotFound, RawPayload, Unavailable
from evactors.events.client_stream import (
    EndReason,
    StreamEnd,
    StreamRequest,
    live_selector,
    run_client_stream,
)
from evactors.events.converter import (
    ContainerDirectory,
    ContainerInfo,
    EventsMissed,
    Normalizer,
    run_converter,
)
from evactors.events.history import History
from evactors.events.hub import Hub
from evactors.events.model import EventType, SystemEvent
from evactors.events.subscriber import ContainerdLink, run_subscriber
from evactors.grpc import StatusCode


def event(sequence: int, timestamp: int = 0, status: str = "start") -> SystemEvent:
    return SystemEvent(
        sequence=sequence,
        timestamp=timestamp or sequence * 1000,
        namespace="default",
        topic="/tasks/start",
        status=status,
        type=EventType.TASK_EVENT,
        container_id="c1",
        event_data="{}",
    )


@attrs.frozen
class Only:
    """A stand-in filter: events with one of these statuses."""

    statuses: frozenset[str] = frozenset({"start", "die"})

    def matches(self, item: SystemEvent) -> bool:
        return item.status in self.statuses


# -- history -----------------------------------------------------------------------------


def test_history_keeps_the_last_n_and_replays_by_sequence_and_time():
    history = History(3)
    for n in range(1, 6):
        history.append(event(n))
    assert [e.sequence for e in history.after_sequence(0)] == [3, 4, 5]
    assert [e.sequence for e in history.after_sequence(3)] == [4, 5]
    assert history.after_sequence(5) == []
    assert [e.sequence for e in history.since(4000)] == [4, 5]
    assert len(History(0).after_sequence(0)) == 0


# -- hub ---------------------------------------------------------------------------------


def test_hub_cuts_off_a_full_backlog_and_keeps_the_others():
    hub = Hub(backlog=2)
    slow, fast = hub.subscribe(), hub.subscribe()
    for n in (1, 2):
        hub.publish(event(n))
    assert fast.receive.receive_nowait().sequence == 1
    hub.publish(event(3))  # slow is full: cut off
    assert slow.overflowed
    assert not fast.overflowed
    assert len(hub) == 1
    assert hub.dropped == 1
    assert [slow.receive.receive_nowait().sequence for _ in range(2)] == [1, 2]
    with pytest.raises(trio.EndOfChannel):
        slow.receive.receive_nowait()


def test_hub_forgets_a_subscriber_that_went_away():
    hub = Hub(backlog=2)
    gone = hub.subscribe()
    gone.receive.close()
    hub.publish(event(1))
    assert len(hub) == 0
    assert not gone.overflowed


def test_hub_hands_a_subscription_only_what_it_selects():
    hub = Hub(backlog=2)
    dies = hub.subscribe(live_selector(StreamRequest(Only(frozenset({"die"})))))
    for n, status in enumerate(["start", "die", "start", "start", "die"], start=1):
        hub.publish(event(n, status=status))
    # Three unselected events took no backlog slot: two selected ones fit in two.
    assert not dies.overflowed
    assert [dies.receive.receive_nowait().sequence for _ in range(2)] == [2, 5]
    hub.publish(event(6, status="die"))
    hub.publish(event(7, status="die"))
    hub.publish(event(8, status="die"))  # the third selected one overflows
    assert dies.overflowed


def test_with_until_the_selector_also_lets_through_what_is_stamped_after_it():
    wants = live_selector(StreamRequest(Only(frozenset({"die"})), until=5000))
    assert not wants(event(1, timestamp=4000, status="start"))
    assert wants(event(2, timestamp=4000, status="die"))
    assert wants(event(3, timestamp=6000, status="start"))  # it ends the stream


# -- filter actor ------------------------------------------------------------------------


async def collect(receive):
    items = []
    async for item in receive:
        items.append(item)
    return items


async def test_replay_then_live_without_gap_or_duplicate(autojump_clock):
    hub, history = Hub(backlog=10), History(10)
    for n in (1, 2, 3):
        history.append(event(n))
    subscription = hub.subscribe()  # same synchronous step as the replay snapshot
    replay = history.after_sequence(1)
    send, receive = trio.open_memory_channel(0)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_client_stream, StreamRequest(Only()), subscription, replay, send)
            for n in (4, 5):
                hub.publish(event(n, status="die" if n == 5 else "start"))
            hub.close()
            items = await collect(receive)
    assert [i.event.sequence for i in items[:-1]] == [2, 3, 4, 5]
    assert items[-1] == StreamEnd(EndReason.SHUTTING_DOWN, 5)


@pytest.mark.parametrize("selected_by_hub", [False, True])
async def test_filtered_out_events_are_not_sent(autojump_clock, selected_by_hub):
    hub = Hub(backlog=10)
    request = StreamRequest(Only(frozenset({"die"})))
    subscription = hub.subscribe(live_selector(request) if selected_by_hub else None)
    send, receive = trio.open_memory_channel(0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_client_stream, request, subscription, [], send)
        for n, status in enumerate(["start", "die", "create", "die"], start=1):
            hub.publish(event(n, status=status))
        hub.close()
        items = await collect(receive)
    assert [i.event.sequence for i in items[:-1]] == [2, 4]
    assert items[-1] == StreamEnd(EndReason.SHUTTING_DOWN, 4)


async def test_until_ends_a_quiet_stream_at_the_deadline(autojump_clock):
    subscription = Hub(backlog=10).subscribe()
    send, receive = trio.open_memory_channel(0)
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: run_client_stream(
                StreamRequest(Only(), until=10**18),
                subscription,
                [],
                send,
                until_deadline=start + 7,
            )
        )
        items = await collect(receive)
        assert trio.current_time() - start == pytest.approx(7)
    assert items == [StreamEnd(EndReason.UNTIL_PASSED, 0)]


async def test_an_unselected_event_past_until_ends_the_stream(autojump_clock):
    hub = Hub(backlog=10)
    request = StreamRequest(Only(frozenset({"die"})), until=5000)
    subscription = hub.subscribe(live_selector(request))
    send, receive = trio.open_memory_channel(0)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_client_stream, request, subscription, [], send)
            hub.publish(event(1, timestamp=4000, status="die"))
            hub.publish(event(2, timestamp=6000, status="start"))
            items = await collect(receive)
    assert [i.event.sequence for i in items[:-1]] == [1]
    assert items[-1] == StreamEnd(EndReason.UNTIL_PASSED, 1)


async def test_a_window_in_the_past_replays_what_is_inside_it_then_ends(autojump_clock):
    subscription = Hub(backlog=10).subscribe()
    replay = [event(n) for n in (1, 2, 3)]
    send, receive = trio.open_memory_channel(0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: run_client_stream(
                StreamRequest(Only(), until=2000), subscription, replay, send, until_deadline=-1
            )
        )
        items = await collect(receive)
    assert [i.event.sequence for i in items[:-1]] == [1, 2]
    assert items[-1] == StreamEnd(EndReason.UNTIL_PASSED, 2)


async def test_a_slow_client_is_cut_off_naming_the_last_sequence_it_was_sent(autojump_clock):
    hub = Hub(backlog=3)
    subscription, other = hub.subscribe(), hub.subscribe()
    send, receive = trio.open_memory_channel(0)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_client_stream, StreamRequest(Only()), subscription, [], send)
            hub.publish(event(1))
            other.receive.receive_nowait()
            first = await receive.receive()  # then this client stops reading
            for n in range(2, 7):
                hub.publish(event(n))
                other.receive.receive_nowait()  # the other client keeps up
                await trio.testing.wait_all_tasks_blocked()
            assert subscription.overflowed
            assert not other.overflowed
            rest = await collect(receive)
    assert first.event.sequence == 1
    # The actor holds one event (2) and the backlog three (3, 4, 5); 6 overflowed. What
    # was queued still arrives, then the end naming the last sequence sent.
    assert [i.event.sequence for i in rest[:-1]] == [2, 3, 4, 5]
    assert rest[-1] == StreamEnd(EndReason.OVERFLOWED, 5)


async def test_a_client_that_goes_away_ends_the_actor(autojump_clock):
    subscription = Hub(backlog=10).subscribe()
    send, receive = trio.open_memory_channel(0)
    receive.close()
    with trio.fail_after(1):
        delivered = await run_client_stream(StreamRequest(Only()), subscription, [event(1)], send)
    assert delivered == 0


# -- converter ---------------------------------------------------------------------------


def test_normalizer_derives_status_type_container_and_metadata():
    from evactors.containerd.events import payload_facts

    normalizer = Normalizer()
    payload = task_pb2.TaskExit(
        container_id="c1", id="c1", pid=42, exit_status=3, exited_at=Timestamp(seconds=5)
    )
    envelope = Envelope(timestamp=7, namespace="default", topic="/tasks/exit", payload=payload)
    info = ContainerInfo.from_labels("docker.io/library/busybox:latest", {"nerdctl/name": "web"})
    first = normalizer.normalize(envelope, payload_facts(payload), info)
    second = normalizer.normalize(envelope, payload_facts(payload), None)
    assert (first.sequence, second.sequence) == (1, 2)
    assert (first.status, first.type, first.container_id) == ("die", EventType.TASK_EVENT, "c1")
    assert dict(first.metadata) == {
        "name": "web",
        "image": "docker.io/library/busybox:latest",
        "pid": "42",
        "exit_code": "3",
    }
    assert first.labels == {"nerdctl/name": "web"}
    assert first.event_data.startswith('{"container_id":"c1","id":"c1","pid":42,"exit_status":3')
    assert dict(second.metadata) == {"pid": "42", "exit_code": "3"}


def test_unknown_topics_and_payloads_are_still_events():
    normalizer = Normalizer()
    raw = RawPayload("x.Y", b"")
    from evactors.containerd.events import payload_facts

    made = normalizer.normalize(Envelope(1, "ns", "/custom/thing", raw), payload_facts(raw), None)
    assert (made.status, made.type, made.container_id) == ("unknown", EventType.UNKNOWN_EVENT, "")
    notice = normalizer.events_missed(EventsMissed(timestamp=9, down_since=1, reason="gone"))
    assert (notice.type, notice.topic, notice.sequence) == (
        EventType.SYSTEM_EVENT,
        "/evactors/events-missed",
        2,
    )


# -- subscriber --------------------------------------------------------------------------


class FakeContainerd:
    """Fails `failures` times to connect, then serves `envelopes` and ends."""

    def __init__(self, failures: int, envelopes: list[Envelope]) -> None:
        self.failures = failures
        self.envelopes = envelopes
        self.attempts: list[float] = []
        self.address = "fake"

    @contextlib.asynccontextmanager
    async def connect(self):
        self.attempts.append(trio.current_time())
        if len(self.attempts) <= self.failures:
            raise Unavailable(StatusCode.UNAVAILABLE, "cannot connect to fake")
        yield self

    @contextlib.asynccontextmanager
    async def subscribe(self):
        async def events():
            for envelope in self.envelopes:
                yield envelope
            await trio.sleep_forever()

        yield events()


async def test_subscriber_retries_with_capped_backoff_then_reports_missed_events(
    autojump_clock, caplog
):
    caplog.set_level(logging.DEBUG, logger="evactors.events.subscriber")
    envelope = Envelope(1, "default", "/tasks/start", RawPayload("x", b""))
    fake = FakeContainerd(failures=8, envelopes=[envelope])
    link = ContainerdLink()
    send, receive = trio.open_memory_channel(10)
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: run_subscriber(
                fake.connect, send, link, wall_clock=lambda: 123, task_status=task_status
            )
        )
        assert not link.connected
        notice = await receive.receive()
        got = await receive.receive()
        assert link.connected
        nursery.cancel_scope.cancel()
    gaps = [round(b - a, 3) for a, b in zip([start, *fake.attempts], fake.attempts, strict=False)]
    assert gaps == [0, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert notice == EventsMissed(
        timestamp=123, down_since=123, reason="cannot connect to fake (UNAVAILABLE)"
    )
    assert got is envelope
    # One warning for the outage, not one per retry.
    levels = [r.levelno for r in caplog.records if "containerd" in r.getMessage()]
    assert levels.count(logging.WARNING) == 1
    assert levels.count(logging.DEBUG) == 7


# -- converter -------------------------------------------------------------------------------


async def test_the_converter_survives_a_payload_it_cannot_read(monkeypatch, caplog):
    def broken(payload):
        raise AttributeError("labels")

    monkeypatch.setattr("evactors.events.converter.payload_facts", broken)
    send, receive = trio.open_memory_channel(10)
    emitted: list[SystemEvent] = []
    directory = ContainerDirectory(lambda: None)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(run_converter, receive, emitted.append, directory, Normalizer())
            payload = task_pb2.TaskStart(container_id="c1", pid=7)
            await send.send(Envelope(1, "default", "/tasks/start", payload))
            await send.send(Envelope(2, "default", "/tasks/start", payload))
            send.close()
    assert [(e.sequence, e.topic, e.container_id) for e in emitted] == [
        (1, "/tasks/start", ""),
        (2, "/tasks/start", ""),
    ]
    assert "cannot read the facts of a /tasks/start event" in caplog.text


# -- batches -------------------------------------------------------------------------------


async def test_receive_batch_takes_what_is_queued_up_to_the_limit():
    from evactors.events.channels import receive_batch

    send, receive = trio.open_memory_channel[int](10)
    for n in range(5):
        send.send_nowait(n)
    assert await receive_batch(receive, 3) == [0, 1, 2]
    assert await receive_batch(receive, 3) == [3, 4]
    send.send_nowait(5)
    send.close()
    assert await receive_batch(receive, 3) == [5]
    with pytest.raises(trio.EndOfChannel):
        await receive_batch(receive, 3)


async def test_receive_batch_waits_for_the_first_item(autojump_clock):
    from evactors.events.channels import receive_batch

    send, receive = trio.open_memory_channel[int](10)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: _send_later(send, 7, 2.0))
        assert await receive_batch(receive, 3) == [7]
        assert trio.current_time() == pytest.approx(2.0)


async def _send_later(send, value, delay):
    await trio.sleep(delay)
    await send.send(value)


@attrs.define
class SlowContainerd:
    """Knows containers c0 and c1; each call takes one (virtual) second."""

    calls: list[str] = attrs.field(factory=list)

    async def container(self, namespace, container_id):
        self.calls.append(f"get {container_id}")
        await trio.sleep(1)
        if container_id not in {"c0", "c1"}:
            raise NotFound(StatusCode.NOT_FOUND, f"container {container_id}: not found")
        return self._record(container_id)

    async def containers(self, namespace, filters=()):
        self.calls.append(f"list {' '.join(filters)}")
        await trio.sleep(1)
        wanted = {f.removeprefix('id=="').removesuffix('"') for f in filters}
        return [self._record(c) for c in ("c0", "c1") if c in wanted]

    @staticmethod
    def _record(container_id):
        labels = {"nerdctl/name": f"name-{container_id}"}
        return Container(container_id, "busybox", labels, "runc", "overlayfs", container_id, 0, 0)


async def convert(source, topics_and_ids):
    send, receive = trio.open_memory_channel(10)
    for n, container_id in enumerate(topics_and_ids):
        payload = task_pb2.TaskStart(container_id=container_id)
        send.send_nowait(Envelope(n, "default", "/tasks/start", payload))
    send.close()
    emitted: list[SystemEvent] = []
    with trio.fail_after(10):
        await run_converter(
            receive, emitted.append, ContainerDirectory(lambda: source), Normalizer()
        )
    return emitted


async def test_a_batch_of_new_containers_is_looked_up_in_one_call(autojump_clock):
    source = SlowContainerd()
    emitted = await convert(source, ["c0", "c1", "gone", "c0"])
    assert source.calls == ['list id=="c0" id=="c1" id=="gone"']
    assert trio.current_time() == pytest.approx(1.0)
    assert [e.name for e in emitted] == ["name-c0", "name-c1", "", "name-c0"]
    assert [e.sequence for e in emitted] == [1, 2, 3, 4]


async def test_a_single_new_container_is_looked_up_alone(autojump_clock):
    source = SlowContainerd()
    emitted = await convert(source, ["c1", "c1"])
    assert source.calls == ["get c1"]
    assert [e.name for e in emitted] == ["name-c1", "name-c1"]


@attrs.define
class NewContainerEachTime:
    """Every Get finds a new container of that id, named `<id>-<n>` for the n-th call."""

    calls: list[str] = attrs.field(factory=list)

    async def container(self, namespace, container_id):
        self.calls.append(container_id)
        labels = {"nerdctl/name": f"{container_id}-{len(self.calls)}"}
        return Container(container_id, "busybox", labels, "runc", "overlayfs", container_id, 0, 0)

    async def containers(self, namespace, filters=()):
        raise AssertionError("one container: looked up alone")


LIFE_OF_A_CONTAINER_ID = [
    ("/containers/create", container_pb2.ContainerCreate(id="c0")),
    ("/containers/delete", container_pb2.ContainerDelete(id="c0")),
    ("/tasks/delete", task_pb2.TaskDelete(container_id="c0")),  # published late
    ("/containers/create", container_pb2.ContainerCreate(id="c0")),  # the id again
    ("/tasks/start", task_pb2.TaskStart(container_id="c0")),
]


async def test_a_deleted_container_keeps_its_name_until_its_id_is_created_again(autojump_clock):
    send, receive = trio.open_memory_channel(10)
    for n, (topic, payload) in enumerate(LIFE_OF_A_CONTAINER_ID):
        send.send_nowait(Envelope(n, "default", topic, payload))
    send.close()
    source = NewContainerEachTime()
    emitted: list[SystemEvent] = []
    with trio.fail_after(10):
        await run_converter(
            receive, emitted.append, ContainerDirectory(lambda: source), Normalizer()
        )
    assert source.calls == ["c0", "c0"]
    assert [(e.topic, e.name) for e in emitted] == [
        ("/containers/create", "c0-1"),
        ("/containers/delete", "c0-1"),
        ("/tasks/delete", "c0-1"),
        ("/containers/create", "c0-2"),
        ("/tasks/start", "c0-2"),
    ]


def test_the_directory_forgets_deleted_containers_as_it_forgets_others():
    directory = ContainerDirectory(lambda: None, size=2)
    directory.updated("ns", "a", "img", {})
    directory.deleted("ns", "a")
    directory.updated("ns", "b", "img", {})
    directory.updated("ns", "c", "img", {})  # "a" goes
    assert set(directory._known) == {("ns", "b"), ("ns", "c")}
    assert directory._deleted == set()
