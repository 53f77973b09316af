"""The converter: each containerd envelope becomes one `SystemEvent`, once.

`Normalizer` is the pure part (no I/O, no trio): status and type from the topic,
container id and facts from the payload, `event_data` as `ctr events` prints it, and
the sequence number. `ContainerDirectory` remembers containers' names, images and labels
(asking containerd once per container). `run_converter` is the actor that joins them.
"""

from __future__ import annotations

import collections
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Final, Protocol

import attrs
import trio

from evactors.containerd import Container, ContainerdError, Envelope, NotFound, payload_json
from evactors.containerd.events import PayloadFacts, payload_facts
from evactors.containerd.gojson import rfc3339_nano

from .channels import receive_batch
from .model import EventType, SystemEvent
from .status import EVENTS_MISSED_TOPIC, status_of, type_of

LOGGER = logging.getLogger(__name__)

_NO_FACTS: Final = PayloadFacts()
# Envelopes the converter takes from its channel per wake-up (all of it, at most). The
# new containers of a batch are looked up in one call: in a burst, a batch of 256 makes
# a quarter of the calls a batch of 64 did (about 7 % of evactors' CPU per event).
CONVERTER_BATCH: Final = 256

# The containerd label nerdctl keeps a container's name in.
NAME_LABEL: Final = "nerdctl/name"
# Containers whose name, image and labels are remembered (least recently used go first).
DIRECTORY_SIZE: Final = 4096


@attrs.frozen
class EventsMissed:
    """From the subscriber: the subscription was down, events may have been missed.

    Attributes:
      timestamp: When the subscription came back, Unix ns.
      down_since: When it was lost (or first tried), Unix ns.
      reason: Why it was down.
    """

    timestamp: int
    down_since: int
    reason: str


@attrs.frozen
class ContainerInfo:
    """What the directory knows of a container."""

    name: str
    image: str
    labels: Mapping[str, str]

    @classmethod
    def from_labels(cls, image: str, labels: Mapping[str, str]) -> ContainerInfo:
        return cls(name=labels.get(NAME_LABEL, ""), image=image, labels=dict(labels))


class Normalizer:
    """Turns envelopes and notices into `SystemEvent`s, numbering them from 1."""

    def __init__(self) -> None:
        self.last_sequence = 0

    def _next_sequence(self) -> int:
        self.last_sequence += 1
        return self.last_sequence

    def normalize(
        self, envelope: Envelope, facts: PayloadFacts, container: ContainerInfo | None
    ) -> SystemEvent:
        """The event for an envelope, given its payload's facts and its container."""
        event_type = type_of(envelope.topic)
        metadata: dict[str, str] = {}
        labels: Mapping[str, str] = {}
        if container is not None:
            labels = container.labels
            if container.name:
                metadata["name"] = container.name
            if container.image:
                metadata["image"] = container.image
        if facts.image:
            metadata["image"] = facts.image
        if facts.pid is not None:
            metadata["pid"] = str(facts.pid)
        if facts.exit_status is not None:
            metadata["exit_code"] = str(facts.exit_status)
        if facts.exec_id:
            metadata["exec_id"] = facts.exec_id
        if event_type is EventType.IMAGE_EVENT and facts.labels:
            labels = facts.labels
        return SystemEvent(
            sequence=self._next_sequence(),
            timestamp=envelope.timestamp,
            namespace=envelope.namespace,
            topic=envelope.topic,
            status=status_of(envelope.topic),
            type=event_type,
            container_id=facts.container_id,
            event_data=payload_json(envelope.payload),
            metadata=metadata,
            labels=labels,
        )

    def events_missed(self, notice: EventsMissed) -> SystemEvent:
        data = {
            "reason": notice.reason,
            "down_since": rfc3339_nano(notice.down_since),
            "up_since": rfc3339_nano(notice.timestamp),
        }
        return SystemEvent(
            sequence=self._next_sequence(),
            timestamp=notice.timestamp,
            namespace="",
            topic=EVENTS_MISSED_TOPIC,
            status=status_of(EVENTS_MISSED_TOPIC),
            type=EventType.SYSTEM_EVENT,
            container_id="",
            event_data=json.dumps(data, separators=(",", ":")),
            metadata={"reason": notice.reason},
        )


class ContainerSource(Protocol):
    """What the directory asks containerd (a `ContainerdClient` is one)."""

    async def container(self, namespace: str, container_id: str) -> Container: ...

    async def containers(self, namespace: str, filters: Iterable[str] = ()) -> list[Container]: ...


# containerd's identifiers; other ids (a publisher may send anything) are looked up alone.
_IDENTIFIER: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class ContainerDirectory:
    """Names, images and labels of containers, asked of containerd once per container.

    /containers/update refreshes an entry from its payload. /containers/delete marks it
    deleted but keeps it: an event of the container that comes later (containerd does
    not order events published concurrently) still carries its name, and costs no
    lookup that could only answer NotFound; a /containers/create of the same id drops
    the entry, so a new container of that id is looked up afresh. A container
    containerd does not know is remembered as unknown, so the events of a short-lived
    container cost at most one lookup.

    Args:
      source: containerd's client now, or None while containerd is away.
      size: How many containers to remember.
    """

    def __init__(
        self, source: Callable[[], ContainerSource | None], size: int = DIRECTORY_SIZE
    ) -> None:
        self._source = source
        self._size = size
        self._known: collections.OrderedDict[tuple[str, str], ContainerInfo | None] = (
            collections.OrderedDict()
        )
        # Entries of `_known` whose container was deleted.
        self._deleted: set[tuple[str, str]] = set()

    async def lookup(self, namespace: str, container_id: str) -> ContainerInfo | None:
        key = (namespace, container_id)
        if key in self._known:
            self._known.move_to_end(key)
            return self._known[key]
        source = self._source()
        if source is None:
            return None  # containerd is away: do not remember "unknown"
        try:
            record = await source.container(namespace, container_id)
        except NotFound:
            info = None
        except ContainerdError as error:
            LOGGER.info("cannot look up container %s/%s: %s", namespace, container_id, error)
            return None
        else:
            info = ContainerInfo.from_labels(record.image, record.labels)
        self._remember(key, info)
        return info

    async def prefetch(self, keys: Iterable[tuple[str, str]]) -> None:
        """Look up the containers (namespace, id) not remembered yet, several at a time:
        one `Containers.List` call per namespace for a batch of events about new
        containers, instead of one `Get` each. What it cannot settle is looked up alone
        when its event is converted."""
        by_namespace: dict[str, list[str]] = {}
        for namespace, container_id in keys:
            if (namespace, container_id) not in self._known and _IDENTIFIER.fullmatch(container_id):
                ids = by_namespace.setdefault(namespace, [])
                if container_id not in ids:
                    ids.append(container_id)
        source = self._source()
        for namespace, ids in by_namespace.items():
            if len(ids) < 2 or source is None:
                continue
            try:
                # containerd ORs the filters: the records of exactly these containers.
                records = await source.containers(namespace, [f'id=="{i}"' for i in ids])
            except ContainerdError as error:
                LOGGER.info("cannot list containers in %s: %s", namespace, error)
                continue
            found = {record.id: record for record in records}
            for container_id in ids:
                record = found.get(container_id)
                info = (
                    None
                    if record is None
                    else ContainerInfo.from_labels(record.image, record.labels)
                )
                self._remember((namespace, container_id), info)

    def _remember(self, key: tuple[str, str], info: ContainerInfo | None) -> None:
        self._known[key] = info
        self._known.move_to_end(key)
        self._deleted.discard(key)
        while len(self._known) > self._size:
            evicted, _ = self._known.popitem(last=False)
            self._deleted.discard(evicted)

    def created(self, namespace: str, container_id: str) -> None:
        """/containers/create: a deleted container's entry is not this container's."""
        key = (namespace, container_id)
        if key in self._deleted:
            self._deleted.discard(key)
            del self._known[key]

    def updated(
        self, namespace: str, container_id: str, image: str, labels: Mapping[str, str]
    ) -> None:
        self._remember((namespace, container_id), ContainerInfo.from_labels(image, labels))

    def deleted(self, namespace: str, container_id: str) -> None:
        """/containers/delete (after its own event was normalized)."""
        key = (namespace, container_id)
        if key in self._known:
            self._deleted.add(key)


async def run_converter(
    source: trio.MemoryReceiveChannel[Envelope | EventsMissed],
    emit: Callable[[SystemEvent], None],
    directory: ContainerDirectory,
    normalizer: Normalizer,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The converter actor: normalize each envelope once and `emit` it.

    Args:
      source: Envelopes and notices from the subscriber; this actor owns and closes it.
      emit: Called with each event, synchronously (appends to the history and publishes
        to the hub; it never blocks, so the converter waits only on containerd lookups).
      directory: Container names, images and labels.
      normalizer: Numbers the events.

    Returns when the subscriber closes its end of `source`.
    """
    with source:
        task_status.started()
        while True:
            try:
                batch = await receive_batch(source, CONVERTER_BATCH)
            except trio.EndOfChannel:
                return
            # Each payload's facts once; then the batch's new containers looked up at
            # once; then the events in order.
            prepared = [
                (item, _facts_of(item) if isinstance(item, Envelope) else _NO_FACTS)
                for item in batch
            ]
            await directory.prefetch(
                (item.namespace, facts.container_id)
                for item, facts in prepared
                if isinstance(item, Envelope) and facts.container_id
            )
            for item, facts in prepared:
                if isinstance(item, EventsMissed):
                    emit(normalizer.events_missed(item))
                else:
                    await _convert(item, facts, emit, directory, normalizer)


async def _convert(
    item: Envelope,
    facts: PayloadFacts,
    emit: Callable[[SystemEvent], None],
    directory: ContainerDirectory,
    normalizer: Normalizer,
) -> None:
    container = None
    if facts.container_id:
        if item.topic == "/containers/create":
            directory.created(item.namespace, facts.container_id)
        elif item.topic == "/containers/update" and facts.labels is not None:
            directory.updated(item.namespace, facts.container_id, facts.image, facts.labels)
        container = await directory.lookup(item.namespace, facts.container_id)
    emit(normalizer.normalize(item, facts, container))
    if item.topic == "/containers/delete":
        directory.deleted(item.namespace, facts.container_id)


def _facts_of(envelope: Envelope) -> PayloadFacts:
    """The payload's facts. A bug in reading them costs this event its derived facts
    (it is still delivered, with its topic, namespace and JSON), never the service: the
    converter is the one path every event takes."""
    try:
        return payload_facts(envelope.payload)
    except Exception:
        LOGGER.exception(
            "cannot read the facts of a %s event; delivering it without", envelope.topic
        )
        return PayloadFacts()
