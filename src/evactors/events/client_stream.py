"""The filter actor: one per client stream, between the hub and the RPC handler."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import attrs
import trio

from .channels import receive_batch
from .hub import Subscription
from .model import SystemEvent

if TYPE_CHECKING:
    from .filters import EventFilter
    from .template import EventTemplate


# Deliveries queued between a filter actor and its RPC handler: enough for the handler
# to take a batch at a time (and write it in one go) when events come fast.
CLIENT_QUEUE: Final = 64
# Events a filter actor takes from its backlog in one go before it lets others run.
DRAIN_LIMIT: Final = 64


@attrs.frozen
class StreamRequest:
    """A client's validated request.

    Attributes:
      filter: Which events the client wants.
      template: Renders `formatted`, or None.
      since: Replay retained events stamped at or after this (Unix ns); 0 = no replay.
      until: Stop once the wall clock passes this, and send nothing stamped after it
        (Unix ns); 0 = never.
      after_sequence: Replay retained events with a greater sequence; None = no replay.
        With `since` as well, the replay takes the events that satisfy both.
    """

    filter: EventFilter
    template: EventTemplate | None = None
    since: int = 0
    until: int = 0
    after_sequence: int | None = None


def live_selector(request: StreamRequest) -> Callable[[SystemEvent], bool]:
    """Which live events the hub hands this client's actor: those its filter matches,
    and, with `until`, any stamped after it (the one that ends the stream)."""
    matches = request.filter.matches
    until = request.until
    if not until:
        return matches
    return lambda event: event.timestamp > until or matches(event)


@attrs.frozen
class Delivery:
    """One event for the client, with its rendering when it asked for a format."""

    event: SystemEvent
    formatted: str = ""


class EndReason(enum.Enum):
    UNTIL_PASSED = "until passed"
    OVERFLOWED = "backlog overflowed"
    SHUTTING_DOWN = "service shutting down"


@attrs.frozen
class StreamEnd:
    """The last item of a client stream: why it ended, and the last sequence sent."""

    reason: EndReason
    last_sequence: int


@attrs.define(eq=False)
class ClientStream:
    """The handler's end of a client stream; made by `EventPipeline.open_client_stream`.

    Iterate `receive` for `Delivery` items and one final `StreamEnd`. Leaving it
    (`with client_stream:`) cancels the filter actor at once and closes the channel,
    which is how a cancelled or disconnected client releases everything it held.
    """

    receive: trio.MemoryReceiveChannel[Delivery | StreamEnd]
    cancel_scope: trio.CancelScope

    def close(self) -> None:
        """Synchronous, so it is safe in cleanup under cancellation."""
        self.cancel_scope.cancel(reason="client stream closed")
        self.receive.close()

    def __enter__(self) -> ClientStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


async def run_client_stream(
    request: StreamRequest,
    subscription: Subscription,
    replay: list[SystemEvent],
    out: trio.MemorySendChannel[Delivery | StreamEnd],
    *,
    until_deadline: float = math.inf,
    on_delivered: Callable[[], None] = lambda: None,
) -> int:
    """The filter actor: replay, then live events, filtered and rendered, to `out`.

    Args:
      request: The client's filter, template and time window.
      subscription: Its place at the hub (live events after the replay, no gap and no
        duplicate: both were taken in one synchronous step). Its selector, if any, must
        be `live_selector(request)`: the events it lets through are not matched again.
      replay: Retained events to send first.
      out: To the RPC handler; this actor owns the send end and closes it. Its buffer
        is small (CLIENT_QUEUE): the backlog is the subscription's, so a slow client is
        cut off by the hub.
      until_deadline: trio time at which `request.until` passes.
      on_delivered: Called after each event handed to the handler (for stats).

    Returns the number of events delivered. Ends with a `StreamEnd` item when the
    window closes, the backlog overflowed, or the hub shut down; ends without one when
    the client went away (`out` broken).
    """
    relay = _Relay(request, out, on_delivered)
    with out, subscription.receive:
        try:
            reason = await _relay_events(relay, replay, subscription, until_deadline)
            await out.send(StreamEnd(reason, relay.last_sequence))
        except trio.BrokenResourceError:
            pass  # the client went away: nothing more to say
    return relay.delivered


async def _relay_events(
    relay: _Relay, replay: list[SystemEvent], subscription: Subscription, until_deadline: float
) -> EndReason:
    # The replay is sent whole even when `until` has already passed: a window wholly in
    # the past replays what is retained inside it, then ends.
    if not await relay.deliver_all(replay):
        return EndReason.UNTIL_PASSED
    with trio.move_on_at(until_deadline):
        while True:
            try:
                batch = await receive_batch(subscription.receive, DRAIN_LIMIT)
            except trio.EndOfChannel:
                # The hub closed the backlog: it overflowed, or the service stops.
                if subscription.overflowed:
                    return EndReason.OVERFLOWED
                return EndReason.SHUTTING_DOWN
            # A subscription with a selector (`live_selector(request)`, as the pipeline
            # makes them) gets only what it picked: no second match here.
            if not await relay.deliver_all(batch, selected=subscription.wants is not None):
                return EndReason.UNTIL_PASSED
    return EndReason.UNTIL_PASSED


class _Relay:
    """What a filter actor keeps for its client: the filter, the template, the window,
    and what it has sent. (A slotted object rather than closures: a server holds
    thousands of idle streams.)"""

    __slots__ = (
        "_match",
        "_on_delivered",
        "_out",
        "_template",
        "_until",
        "delivered",
        "last_sequence",
    )

    def __init__(
        self,
        request: StreamRequest,
        out: trio.MemorySendChannel[Delivery | StreamEnd],
        on_delivered: Callable[[], None],
    ) -> None:
        self._match = request.filter.matches
        self._template = request.template
        self._until = request.until
        self._out = out
        self._on_delivered = on_delivered
        self.delivered = 0
        self.last_sequence = 0

    async def deliver_all(self, events: list[SystemEvent], *, selected: bool = False) -> bool:
        """Send those of `events` that match (all of them, when the hub `selected` them
        already); False once past `until` (stop)."""
        until, match, template, out = self._until, self._match, self._template, self._out
        for event in events:
            if until and event.timestamp > until:
                return False
            if not selected and not match(event):
                continue
            formatted = template.render(event) if template is not None else ""
            delivery = Delivery(event, formatted)
            try:
                out.send_nowait(delivery)  # room in the handler's queue: no scheduling
            except trio.WouldBlock:
                await out.send(delivery)
            self._on_delivered()
            self.delivered += 1
            self.last_sequence = event.sequence
        return True
