"""Event filters as `nerdctl events --filter` and `docker events --filter` take them.

A client sends filter strings (`key=value`); `parse_filters` checks them once and
precomputes everything a match needs, so `EventFilter.matches`, which runs for every
client on every event, is a few set lookups. The same key given twice is an OR, different
keys are an AND, and no filters at all match every event:

    parse_filters(["type=container", "event=start", "event=die"])
    # container (or task) events whose status is start OR die

Keys (case-sensitive, as Docker's are):

- `event`, alias `status`: the event's status word, case-insensitively (`start`, `die`).
- `container`: a container id, a non-empty id prefix, or the exact container name.
- `type`: Docker's type word (`container` also matches task events, because Docker
  reports start and die as container events) or an `EventType` name such as
  `TASK_EVENT` (that one type only); case-insensitive.
- `namespace`: the containerd namespace, exactly.
- `topic`: the exact topic, or a topic prefix when the value ends in `/`.
- `label`: `key` (the container has the label) or `key=value` (it has it with that value).
- `image`: the event's image, both sides normalized as Docker references
  (`busybox` is `docker.io/library/busybox:latest`).

An empty value (`event=`) is an error for every key: for `container` it would be a prefix
of every id, and for the others it can only be a mistake. `label=key=` is allowed and
means a label with an empty value.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Final, Protocol

import attrs

from evactors.references import normalized_image

from .model import EventType, SystemEvent

FILTER_KEYS: Final = (
    "event",
    "status",
    "container",
    "type",
    "namespace",
    "topic",
    "label",
    "image",
)

# `event` and `status` are two names for one key: their values form one OR group.
_KEY_ALIASES: Final = {"status": "event"}

# Docker's type words, and what each matches. Docker has no task events: it reports a
# task's start and exit as container events, so `type=container` takes both.
_TYPES_BY_WORD: Final = {event_type.word: frozenset({event_type}) for event_type in EventType} | {
    EventType.CONTAINER_EVENT.word: frozenset({EventType.CONTAINER_EVENT, EventType.TASK_EVENT})
}

# An enum name picks exactly its one type, so a client can still ask for container
# records without task records.
_TYPES_BY_NAME: Final = {
    event_type.name.lower(): frozenset({event_type}) for event_type in EventType
}
# Looked up lower-cased: both kinds of value are accepted in any case.
_TYPES: Final = _TYPES_BY_WORD | _TYPES_BY_NAME


class FilterError(ValueError):
    """A filter string that cannot be used; the message names it and says why.

    Attributes:
      filter: The offending filter string, as the client sent it.
      reason: What is wrong with it.
    """

    def __init__(self, filter_text: str, reason: str) -> None:
        super().__init__(f'invalid filter "{filter_text}": {reason}')
        self.filter = filter_text
        self.reason = reason


class _Clause(Protocol):
    def matches(self, event: SystemEvent) -> bool: ...


@attrs.frozen
class _TypeClause:
    types: frozenset[EventType]

    def matches(self, event: SystemEvent) -> bool:
        return event.type in self.types


@attrs.frozen
class _NamespaceClause:
    namespaces: frozenset[str]

    def matches(self, event: SystemEvent) -> bool:
        return event.namespace in self.namespaces


@attrs.frozen
class _StatusClause:
    statuses: frozenset[str]  # lower-cased

    def matches(self, event: SystemEvent) -> bool:
        return event.status.lower() in self.statuses


@attrs.frozen
class _TopicClause:
    topics: frozenset[str]
    prefixes: tuple[str, ...]  # sorted, so that equal filters compare equal

    def matches(self, event: SystemEvent) -> bool:
        return event.topic in self.topics or event.topic.startswith(self.prefixes)


@attrs.frozen
class _ContainerClause:
    id_prefixes: tuple[str, ...]  # sorted; a full id is its own prefix
    names: frozenset[str]

    def matches(self, event: SystemEvent) -> bool:
        if not event.container_id:
            return False
        return event.container_id.startswith(self.id_prefixes) or event.name in self.names


@attrs.frozen
class _LabelClause:
    keys: frozenset[str]
    pairs: frozenset[tuple[str, str]]

    def matches(self, event: SystemEvent) -> bool:
        labels = event.labels
        if not labels:
            return False
        return any(key in labels for key in self.keys) or any(
            labels.get(key) == value for key, value in self.pairs
        )


@attrs.frozen
class _ImageClause:
    references: frozenset[str]  # normalized, or verbatim when unparsable

    def matches(self, event: SystemEvent) -> bool:
        image = event.image
        if not image:
            return False
        return image in self.references or normalized_image(image) in self.references


@attrs.frozen
class EventFilter:
    """What one client asked to see; made by `parse_filters`.

    Attributes:
      clauses: One clause per filter key, cheapest first; an event must match them all.
        No clauses match every event.
    """

    clauses: tuple[_Clause, ...] = ()

    def matches(self, event: SystemEvent) -> bool:
        """Whether the client wants `event`.

        Args:
          event: Any normalized event.

        Returns:
          True if every clause matches (always, for a filter without clauses).
        """
        # A plain loop: all() over a generator costs a frame per event, per client.
        for clause in self.clauses:  # ruff: ignore[reimplemented-builtin]
            if not clause.matches(event):
                return False
        return True


def parse_filters(filters: Sequence[str]) -> EventFilter:
    """Check filter strings and compile them into one `EventFilter`.

    Args:
      filters: `key=value` strings, split at the first `=`; see the module docstring for
        the keys. The order does not matter.

    Returns:
      A filter matching events that satisfy every key, each key by any of its values.

    Raises:
      FilterError: For the first string without `=`, with an empty key or value, with an
        unknown key, with a `type` value that names no event type, or with a `label`
        value that has an empty label key (`label==v`).
    """
    values: dict[str, list[str]] = {}
    for filter_text in filters:
        key, value = _checked_key_and_value(filter_text)
        values.setdefault(_KEY_ALIASES.get(key, key), []).append(value)
    # Checked in the client's order above, so the error names its first bad string;
    # built here cheapest first, so that a mismatch is found early.
    clauses: list[_Clause] = []
    if "type" in values:
        types = (_TYPES[value.lower()] for value in values["type"])
        clauses.append(_TypeClause(frozenset(itertools.chain.from_iterable(types))))
    if "namespace" in values:
        clauses.append(_NamespaceClause(frozenset(values["namespace"])))
    if "event" in values:
        clauses.append(_StatusClause(frozenset(value.lower() for value in values["event"])))
    if "topic" in values:
        topics = frozenset(values["topic"])
        prefixes = tuple(sorted(topic for topic in topics if topic.endswith("/")))
        clauses.append(_TopicClause(topics.difference(prefixes), prefixes))
    if "container" in values:
        containers = frozenset(values["container"])
        clauses.append(_ContainerClause(tuple(sorted(containers)), containers))
    if "label" in values:
        labels = [value.partition("=") for value in values["label"]]
        keys = frozenset(key for key, separator, _ in labels if not separator)
        pairs = frozenset((key, value) for key, separator, value in labels if separator)
        clauses.append(_LabelClause(keys, pairs))
    if "image" in values:
        references = frozenset(normalized_image(value) for value in values["image"])
        clauses.append(_ImageClause(references))
    return EventFilter(tuple(clauses))


def _checked_key_and_value(filter_text: str) -> tuple[str, str]:
    key, separator, value = filter_text.partition("=")
    if not separator:
        raise FilterError(filter_text, "want key=value")
    if not key:
        raise FilterError(filter_text, "empty key")
    if key not in FILTER_KEYS:
        known = f"{', '.join(FILTER_KEYS[:-1])} or {FILTER_KEYS[-1]}"
        raise FilterError(filter_text, f'unknown key "{key}" (use {known})')
    if not value:
        raise FilterError(filter_text, "empty value")
    if key == "type" and value.lower() not in _TYPES:
        raise FilterError(
            filter_text,
            f'unknown type "{value}" (use {", ".join(_TYPES_BY_WORD)}, '
            "or an EventType name such as CONTAINER_EVENT)",
        )
    if key == "label" and value.startswith("="):
        raise FilterError(filter_text, "empty label key")
    return key, value
