"""`--format` for events: what a template sees of an event, as nerdctl's event record.

    Timestamp  Go's time.Time.String() (`2026-12-04 15:53:10.54919666 +0000 UTC`)
    ID         the container id ("" if none)
    Namespace, Topic
    Status     Docker's word for what happened (`start`, `die`, ...)
    Action     the same word (Docker's name for it)
    Event      the payload as `ctr events` prints it (JSON text)
    Labels     the container's labels (a map)
    Type       Docker's word for the type: `container`, `task`, `image`, ...
    Metadata   derived facts: `name`, `image`, `exit_code`, `pid`, ... (a map)

`{{json .}}` writes these keys; `Timestamp` as RFC 3339 with nanoseconds, as Go marshals
a time.Time. The template language is `evactors.gotemplate`'s subset of Go's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from operator import attrgetter
from typing import Final

from evactors.containerd.gojson import go_time_string, rfc3339_nano
from evactors.gotemplate import (
    NO_VALUE,
    RecordSchema,
    Template,
    TemplateError,
    go_map_text,
    sorted_dict,
)
from evactors.gotemplate import compile_template as compile_record_template

from .model import EventType, SystemEvent

__all__ = ["EVENT_SCHEMA", "NO_VALUE", "EventTemplate", "TemplateError", "compile_template"]

EventTemplate = Template[SystemEvent]

_TYPE_WORDS: Final = {event_type: event_type.word for event_type in EventType}
_MAPS: Final[Mapping[str, Callable[[SystemEvent], Mapping[str, str]]]] = {
    "Labels": attrgetter("labels"),
    "Metadata": attrgetter("metadata"),
}


# Each field of the record, in the order of nerdctl's struct (then ours), as
# `{{.Field}}` prints it.
_FIELD_TEXTS: Final[Mapping[str, Callable[[SystemEvent], str]]] = {
    "Timestamp": lambda event: go_time_string(event.timestamp),
    "ID": attrgetter("container_id"),
    "Namespace": attrgetter("namespace"),
    "Topic": attrgetter("topic"),
    "Status": attrgetter("status"),
    "Action": attrgetter("status"),
    "Event": attrgetter("event_data"),
    "Labels": lambda event: go_map_text(event.labels),
    "Type": lambda event: _TYPE_WORDS[event.type],
    "Metadata": lambda event: go_map_text(event.metadata),
}

# ... and the value `{{json .Field}}` encodes, in the same order.
_FIELD_VALUES: Final[Mapping[str, Callable[[SystemEvent], object]]] = {
    **_FIELD_TEXTS,
    "Timestamp": lambda event: rfc3339_nano(event.timestamp),
    "Labels": lambda event: sorted_dict(event.labels),
    "Metadata": lambda event: sorted_dict(event.metadata),
}

EVENT_SCHEMA: Final = RecordSchema[SystemEvent](_FIELD_TEXTS, _FIELD_VALUES, _MAPS)


def compile_template(text: str) -> EventTemplate:
    """Parse an events `--format` template once, for rendering many events.

    Raises:
      TemplateError: see `evactors.gotemplate.compile_template`.
    """
    return compile_record_template(text, EVENT_SCHEMA)
