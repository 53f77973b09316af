"""The last N events, for replay (`since`, `after_sequence`)."""

from __future__ import annotations

import bisect
import collections

from .model import SystemEvent


class History:
    """A bounded, in-memory record of recent events, oldest first.

    Memory stays bounded: at most `capacity` events are kept, whatever the event rate;
    events are shared (not copied) with the clients they are delivered to.

    Args:
      capacity: How many events to keep (`--history`); 0 keeps none.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"history capacity must be >= 0, not {capacity}")
        self._events: collections.deque[SystemEvent] = collections.deque(maxlen=capacity)

    def __len__(self) -> int:
        return len(self._events)

    def append(self, event: SystemEvent) -> None:
        if self._events.maxlen:
            self._events.append(event)

    def after_sequence(self, sequence: int) -> list[SystemEvent]:
        """Retained events with a sequence greater than `sequence`, in order."""
        events = self._events
        # Sequences are strictly increasing: find the first one past `sequence`.
        start = bisect.bisect_right(events, sequence, key=lambda event: event.sequence)
        return [events[i] for i in range(start, len(events))]

    def since(self, timestamp: int) -> list[SystemEvent]:
        """Retained events stamped at or after `timestamp` (Unix ns), in order.

        Timestamps come from containerd and are not guaranteed monotonic across
        namespaces, so this filters rather than bisects.
        """
        return [event for event in self._events if event.timestamp >= timestamp]
