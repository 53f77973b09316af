"""The events pipeline: subscriber → converter → history and hub → filter actors.

`EventPipeline.run` is the forever-task that owns the pipeline's nursery: the
subscriber and converter actors run in it from the start (so history accumulates before
the first client), and so does every client's filter actor, started by
`open_client_stream` — never in the RPC handler, which is an async generator and must not
hold a nursery across its `yield`s.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable
from typing import Final, NoReturn

import attrs
import trio

from evactors.containerd import Envelope

from .client_stream import (
    CLIENT_QUEUE,
    ClientStream,
    Delivery,
    StreamEnd,
    StreamRequest,
    live_selector,
    run_client_stream,
)
from .converter import ContainerDirectory, EventsMissed, Normalizer, run_converter
from .history import History
from .hub import Hub, Subscription
from .model import EventType, SystemEvent
from .subscriber import ConnectContainerd, ContainerdLink, run_subscriber

LOGGER = logging.getLogger(__name__)

DEFAULT_HISTORY: Final = 10_000
# A client's backlog: events published to it that it has not taken yet. Past this it
# is cut off with RESOURCE_EXHAUSTED (and may resume with after_sequence). 4096 events
# is about two seconds of a busy host (2,000 events/s): enough to ride out a scheduling
# hiccup, small enough that a stuck client costs little (the events are shared).
DEFAULT_CLIENT_BACKLOG: Final = 4096
# Envelopes read from containerd but not yet converted: a converter batch
# (CONVERTER_BATCH). Small: when the converter is slow, the subscriber stops reading and
# containerd queues, not us.
ENVELOPE_BUFFER: Final = 256


@attrs.frozen
class PipelineStats:
    started_at: int
    events_received: int
    events_delivered: int
    events_dropped: int
    subscribers: int
    last_sequence: int
    containerd_connected: bool


class EventPipeline:
    """The actors that turn containerd's events into client streams.

    Args:
      history_size: Events retained for replay.
      client_backlog: Events queued for one client before it is cut off.
      wall_clock: Unix-ns clock (injectable for tests).
    """

    def __init__(
        self,
        *,
        history_size: int = DEFAULT_HISTORY,
        client_backlog: int = DEFAULT_CLIENT_BACKLOG,
        wall_clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.history = History(history_size)
        self.hub = Hub(client_backlog)
        self.normalizer = Normalizer()
        self.link = ContainerdLink()
        self.directory = ContainerDirectory(lambda: self.link.client)
        self._wall_clock = wall_clock
        self._nursery: trio.Nursery | None = None
        self._started_at = wall_clock()
        self._received = 0
        self._delivered = 0
        self._subscribers = 0

    def stats(self) -> PipelineStats:
        return PipelineStats(
            started_at=self._started_at,
            events_received=self._received,
            events_delivered=self._delivered,
            events_dropped=self.hub.dropped,
            subscribers=self._subscribers,
            last_sequence=self.normalizer.last_sequence,
            containerd_connected=self.link.connected,
        )

    def _count_delivery(self) -> None:
        self._delivered += 1

    def _emit(self, event: SystemEvent) -> None:
        if event.type is not EventType.SYSTEM_EVENT:
            self._received += 1
        self.history.append(event)
        self.hub.publish(event)

    async def run(
        self,
        connect: ConnectContainerd,
        *,
        task_status: trio.TaskStatus[EventPipeline] = trio.TASK_STATUS_IGNORED,
    ) -> NoReturn:
        """Run the subscriber and converter, and host the client streams, until cancelled.

        Ready (`task_status.started(self)`) as soon as the actors run, whether or not
        containerd answers yet. When cancelled, the client streams end first.
        """
        send, receive = trio.open_memory_channel[Envelope | EventsMissed](ENVELOPE_BUFFER)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(
                    run_converter, receive, self._emit, self.directory, self.normalizer
                )
                await nursery.start(run_subscriber, connect, send, self.link)
                self._nursery = nursery
                task_status.started(self)
                await trio.sleep_forever()
        finally:
            self._nursery = None
            self.hub.close()
        raise AssertionError("unreachable")

    def open_client_stream(self, request: StreamRequest) -> ClientStream:
        """Start a filter actor for one client and give the handler its end.

        The replay and the live subscription are taken in one synchronous step, so
        the seam between them has no gap and no duplicate.

        Raises:
          RuntimeError: the pipeline is not running.
        """
        if self._nursery is None:
            raise RuntimeError("the event pipeline is not running")
        subscription = self.hub.subscribe(live_selector(request))
        if request.after_sequence is not None:
            replay = self.history.after_sequence(request.after_sequence)
            if request.since:
                replay = [event for event in replay if event.timestamp >= request.since]
        elif request.since:
            replay = self.history.since(request.since)
        else:
            replay = []
        until_deadline = math.inf
        if request.until:
            until_deadline = trio.current_time() + (request.until - self._wall_clock()) / 1e9
        send, receive = trio.open_memory_channel[Delivery | StreamEnd](CLIENT_QUEUE)
        scope = trio.CancelScope()
        self._subscribers += 1
        self._nursery.start_soon(
            functools.partial(
                self._client_actor,
                scope,
                request,
                subscription,
                replay,
                send,
                until_deadline=until_deadline,
            )
        )
        return ClientStream(receive, scope)

    async def _client_actor(
        self,
        scope: trio.CancelScope,
        request: StreamRequest,
        subscription: Subscription,
        replay: list[SystemEvent],
        send: trio.MemorySendChannel[Delivery | StreamEnd],
        *,
        until_deadline: float,
    ) -> None:
        try:
            with scope:
                await run_client_stream(
                    request,
                    subscription,
                    replay,
                    send,
                    until_deadline=until_deadline,
                    on_delivered=self._count_delivery,
                )
        finally:
            send.close()
            self.hub.unsubscribe(subscription)
            self._subscribers -= 1
