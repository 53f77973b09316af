"""Fan-out from the converter to every client stream, never waiting on any of them."""

from __future__ import annotations

from collections.abc import Callable

import attrs
import trio

from .model import SystemEvent

# Which events a subscription is handed; None: every one.
Selector = Callable[[SystemEvent], bool] | None


@attrs.define(eq=False)
class Subscription:
    """One client's place at the hub: the hub owns `send`, the client's actor `receive`.

    Attributes:
      receive: The client's bounded backlog of events.
      wants: The events it is handed (None: all). The hub applies it while it
        publishes, so an event no client wants wakes no actor and takes no backlog slot.
      overflowed: Set when the backlog was full: the hub closed `send`, so the client's
        actor sees the end of its backlog and ends its stream with RESOURCE_EXHAUSTED.
    """

    send: trio.MemorySendChannel[SystemEvent]
    receive: trio.MemoryReceiveChannel[SystemEvent]
    wants: Selector = None
    overflowed: bool = False


class Hub:
    """Hands each event to every subscription with `send_nowait`.

    Slow-consumer policy: a client's backlog is bounded (`backlog`); when it is full the
    client is cut off (its backlog channel closed and marked overflowed) rather than
    slowing the pipeline or any other client down; only the events a client selected
    count against its backlog. A client that has gone away (its actor closed the
    receive end) is dropped on the next event it would have been handed.
    """

    def __init__(self, backlog: int) -> None:
        if backlog < 1:
            raise ValueError(f"client backlog must be >= 1, not {backlog}")
        self.backlog = backlog
        self._subscriptions: set[Subscription] = set()
        self.dropped = 0  # events a cut-off client did not get

    def __len__(self) -> int:
        return len(self._subscriptions)

    def subscribe(self, wants: Selector = None) -> Subscription:
        """A new subscription; it sees every event published from now on that `wants`
        selects (all, when None)."""
        send, receive = trio.open_memory_channel[SystemEvent](self.backlog)
        subscription = Subscription(send, receive, wants)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Forget a subscription and close its send end (synchronous: safe in cleanup)."""
        self._subscriptions.discard(subscription)
        subscription.send.close()

    def publish(self, event: SystemEvent) -> None:
        for subscription in list(self._subscriptions):
            wants = subscription.wants
            if wants is not None and not wants(event):
                continue
            try:
                subscription.send.send_nowait(event)
            except trio.WouldBlock:
                subscription.overflowed = True
                self.dropped += 1
                self.unsubscribe(subscription)
            except trio.BrokenResourceError:
                self.unsubscribe(subscription)

    def close(self) -> None:
        """End every subscription (the pipeline is stopping)."""
        for subscription in list(self._subscriptions):
            self.unsubscribe(subscription)
