"""containerd events: the envelope, and its payload decoded by type URL.

containerd wraps each event payload in a `google.protobuf.Any` whose type URL is the
bare message name (`containerd.events.TaskStart`, no `type.googleapis.com/` prefix).
protobuf's own `Any.Unpack` quietly fails on such URLs (../shared/facts), so the
payload class is looked up here by name. A type URL nobody registered, or bytes that do
not parse, are kept as a `RawPayload`: an event is never dropped for its payload.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final

import attrs
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.message import DecodeError, Message

from evactors._generated.containerd.events import (
    container_pb2,
    content_pb2,
    image_pb2,
    namespace_pb2,
    sandbox_pb2,
    snapshot_pb2,
    task_pb2,
)
from evactors._generated.containerd.services.events.v1 import events_pb2

_PAYLOAD_MODULES = (
    container_pb2,
    content_pb2,
    image_pb2,
    namespace_pb2,
    sandbox_pb2,
    snapshot_pb2,
    task_pb2,
)


def _payload_classes() -> dict[str, type[Message]]:
    classes: dict[str, type[Message]] = {}
    for module in _PAYLOAD_MODULES:
        for descriptor in module.DESCRIPTOR.message_types_by_name.values():
            classes[descriptor.full_name] = getattr(module, descriptor.name)
    return classes


# Every event payload containerd 1.6 to 2.x publishes, by full message name. (Image
# events live in package containerd.services.images.v1, not containerd.events.)
PAYLOAD_TYPES: Final = MappingProxyType(_payload_classes())


@attrs.frozen
class RawPayload:
    """A payload whose type is unknown here, or whose bytes did not parse."""

    type_url: str
    value: bytes


Payload = Message | RawPayload


@attrs.frozen
class Envelope:
    """One event as containerd delivered it, with its payload decoded.

    Attributes:
      timestamp: When containerd published it, Unix nanoseconds.
      namespace: The containerd namespace it happened in.
      topic: e.g. `/tasks/exit`.
      payload: The typed message (e.g. `TaskExit`), or a `RawPayload`.
    """

    timestamp: int
    namespace: str
    topic: str
    payload: Payload

    @property
    def type_url(self) -> str:
        if isinstance(self.payload, RawPayload):
            return self.payload.type_url
        return str(self.payload.DESCRIPTOR.full_name)


def decode_payload(any_payload: AnyProto) -> Payload:
    """The typed payload of an Any, or a `RawPayload` when it cannot be typed."""
    type_url: str = any_payload.type_url
    # Accept `type.googleapis.com/name` too, as other publishers may send it.
    payload_class = PAYLOAD_TYPES.get(type_url.rpartition("/")[2])
    if payload_class is not None:
        try:
            return payload_class.FromString(any_payload.value)
        except DecodeError:
            pass
    return RawPayload(type_url, bytes(any_payload.value))


def decode_envelope(envelope: events_pb2.Envelope) -> Envelope:
    """Decode one envelope from `Events/Subscribe`."""
    stamp = envelope.timestamp
    return Envelope(
        timestamp=stamp.seconds * 1_000_000_000 + stamp.nanos,
        namespace=envelope.namespace,
        topic=envelope.topic,
        payload=decode_payload(envelope.event),
    )


def encode_payload(payload: Payload) -> AnyProto:
    """Wrap a payload in an Any with containerd's bare type URL (for Publish)."""
    if isinstance(payload, RawPayload):
        return AnyProto(type_url=payload.type_url, value=payload.value)
    return AnyProto(type_url=payload.DESCRIPTOR.full_name, value=payload.SerializeToString())


@attrs.frozen
class PayloadFacts:
    """What the rest of evactors needs from a payload, without its protobuf type.

    Attributes:
      container_id: The container the event is about ("" if none).
      pid: The process id the payload names, or None.
      exit_status: A task's exit status (/tasks/exit, /tasks/delete), or None.
      exec_id: The exec process the event is about ("" if none or the init process).
      image: A container's image (container events) or the image's name (image events).
      labels: Labels the payload carries (/containers/update, /images/*), or None.
    """

    container_id: str = ""
    pid: int | None = None
    exit_status: int | None = None
    exec_id: str = ""
    image: str = ""
    labels: Mapping[str, str] | None = None


_NO_FACTS = PayloadFacts()
_CONTAINER_EVENTS = frozenset(
    f"containerd.events.{name}"
    for name in ("ContainerCreate", "ContainerUpdate", "ContainerDelete")
)
_IMAGE_EVENTS = frozenset(
    f"containerd.services.images.v1.{name}"
    for name in ("ImageCreate", "ImageUpdate", "ImageDelete")
)
_EXIT_EVENTS = frozenset(("containerd.events.TaskExit", "containerd.events.TaskDelete"))


def payload_facts(payload: Payload) -> PayloadFacts:
    """The container id, pid, exit status, exec id, image and labels a payload carries."""
    if isinstance(payload, RawPayload):
        return _NO_FACTS
    return _facts_reader(payload.DESCRIPTOR)(payload)


FactsReader = Callable[[Message], PayloadFacts]


@functools.cache
def _facts_reader(descriptor: Any) -> FactsReader:
    """How to read the facts of one payload type; worked out once per type, because
    descriptor lookups cost more than reading the fields."""
    name = descriptor.full_name
    fields = descriptor.fields_by_name
    has_labels = "labels" in fields

    def labels_of(payload: Message) -> Mapping[str, str] | None:
        return dict(_field(payload, "labels")) if has_labels else None

    if name in _IMAGE_EVENTS:  # ImageDelete has a name only
        return lambda payload: PayloadFacts(
            image=_field(payload, "name"), labels=labels_of(payload)
        )
    if name in _CONTAINER_EVENTS:
        has_image = "image" in fields
        return lambda payload: PayloadFacts(
            container_id=_field(payload, "id"),
            image=_field(payload, "image") if has_image else "",
            labels=labels_of(payload),
        )
    if "container_id" not in fields:
        return lambda payload: _NO_FACTS
    has_exec_id, has_id = "exec_id" in fields, "id" in fields
    has_pid = "pid" in fields
    has_exit = name in _EXIT_EVENTS

    def task_facts(payload: Message) -> PayloadFacts:
        container_id: str = _field(payload, "container_id")
        exec_id = (_field(payload, "exec_id") if has_exec_id else "") or (
            _field(payload, "id") if has_id else ""
        )
        pid = _field(payload, "pid") if has_pid else 0
        return PayloadFacts(
            container_id=container_id,
            pid=pid or None,
            exit_status=_field(payload, "exit_status") if has_exit else None,
            exec_id="" if exec_id == container_id else exec_id,
        )

    return task_facts


def _field(message: Message, name: str) -> Any:
    """A field of a generated message (their fields are invisible to the type checker)."""
    return getattr(message, name)
