"""containerd topics in Docker's words: one table, the only place that knows them.

`status` is the word `docker events` / `nerdctl events` users filter on; `type` is what
the event is about. The table is printed in the README (keep them the same).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from .model import EventType

UNKNOWN_STATUS: Final = "unknown"
# The service's own notice that events may have been missed (containerd was unreachable
# or restarted, and it keeps no history): sent once the subscription is back.
EVENTS_MISSED_TOPIC: Final = "/evactors/events-missed"

# topic -> status. Docker's word where Docker has one; otherwise containerd's verb.
STATUS_BY_TOPIC: Final = MappingProxyType(
    {
        "/containers/create": "create",
        "/containers/update": "update",
        "/containers/delete": "destroy",
        "/tasks/create": "create",
        "/tasks/start": "start",
        "/tasks/exit": "die",
        "/tasks/delete": "destroy",
        "/tasks/oom": "oom",
        "/tasks/paused": "pause",
        "/tasks/resumed": "unpause",
        "/tasks/exec-added": "exec_create",
        "/tasks/exec-started": "exec_start",
        "/tasks/checkpointed": "checkpoint",
        "/tasks/io": "io",
        "/images/create": "create",
        "/images/update": "update",
        "/images/delete": "delete",
        "/snapshot/prepare": "prepare",
        "/snapshot/commit": "commit",
        "/snapshot/remove": "remove",
        "/namespaces/create": "create",
        "/namespaces/update": "update",
        "/namespaces/delete": "delete",
        "/content/create": "create",
        "/content/delete": "delete",
        "/sandboxes/create": "create",
        "/sandboxes/start": "start",
        "/sandboxes/exit": "die",
        EVENTS_MISSED_TOPIC: "missed",
    }
)

# First path component of the topic -> type. Nothing from containerd is a SYSTEM_EVENT,
# not even a topic under /evactors/: that type is for the notices the service makes
# itself (`Normalizer.events_missed`), so a client can trust it.
TYPE_BY_TOPIC_ROOT: Final = MappingProxyType(
    {
        "containers": EventType.CONTAINER_EVENT,
        "tasks": EventType.TASK_EVENT,
        "images": EventType.IMAGE_EVENT,
        "snapshot": EventType.SNAPSHOT_EVENT,
        "namespaces": EventType.NAMESPACE_EVENT,
        "content": EventType.CONTENT_EVENT,
    }
)


def status_of(topic: str) -> str:
    """Docker's word for the topic, or `unknown`."""
    return STATUS_BY_TOPIC.get(topic, UNKNOWN_STATUS)


def type_of(topic: str) -> EventType:
    """What an event with this topic is about."""
    root = topic.removeprefix("/").partition("/")[0]
    return TYPE_BY_TOPIC_ROOT.get(root, EventType.UNKNOWN_EVENT)
