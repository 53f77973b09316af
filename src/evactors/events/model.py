"""The normalized event every actor after the converter works with.

It mirrors `evactors.v1.SystemEvent` without depending on protobuf: the RPC layer turns
it into the wire message at the edge.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import attrs

_EMPTY: Final[Mapping[str, str]] = MappingProxyType({})


class EventType(enum.IntEnum):
    """What an event is about (numbers as in `evactors.v1.EventType`)."""

    UNKNOWN_EVENT = 0
    CONTAINER_EVENT = 1
    IMAGE_EVENT = 2
    NETWORK_EVENT = 3
    VOLUME_EVENT = 4
    TASK_EVENT = 5
    SNAPSHOT_EVENT = 6
    NAMESPACE_EVENT = 7
    CONTENT_EVENT = 8
    SYSTEM_EVENT = 9

    @property
    def word(self) -> str:
        """Docker's lower-case word for the type: `container`, `task`, ..., `unknown`."""
        return self.name.removesuffix("_EVENT").lower()


@attrs.frozen
class SystemEvent:
    """One containerd event (or one of the service's own notices), normalized once.

    Attributes:
      sequence: Assigned by the converter; strictly increasing within one process.
      timestamp: containerd's envelope timestamp, Unix nanoseconds.
      namespace: The containerd namespace, as containerd sent it.
      topic: e.g. `/tasks/exit`, as containerd sent it.
      status: Docker's word for what happened (`create`, `start`, `die`, ...).
      type: What the event is about, from the topic.
      container_id: The container the event is about, from the payload; "" if none.
      event_data: The payload as `ctr events` prints it (JSON).
      metadata: Derived facts: `name`, `image`, `exit_code`, `pid`, ... (see README).
      labels: The container's labels, when the event is about a known container.
    """

    sequence: int
    timestamp: int
    namespace: str
    topic: str
    status: str
    type: EventType
    container_id: str
    event_data: str
    metadata: Mapping[str, str] = _EMPTY
    labels: Mapping[str, str] = _EMPTY

    @property
    def name(self) -> str:
        """The container's name (its `nerdctl/name` label), or ""."""
        return self.metadata.get("name", "")

    @property
    def image(self) -> str:
        """The image the event is about (a container's image, or an image event's name)."""
        return self.metadata.get("image", "")
