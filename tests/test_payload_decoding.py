"""Payload decoding by type URL: `PAYLOAD_TYPES`, `encode_payload`/`decode_payload`,
`decode_envelope` and `Envelope.type_url`.

Ground truth: containerd publishes each payload in an `Any` whose type URL is the bare
full message name (`containerd.events.TaskStart`), and image events live in package
`containerd.services.images.v1`. A payload that cannot be typed is kept as a
`RawPayload` with its exact bytes, never dropped and never raising.
"""

from __future__ import annotations

import pytest
from google.protobuf.any_pb2 import Any
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.timestamp_pb2 import Timestamp

from evactors._generated.containerd.events import task_pb2
from evactors._generated.containerd.services.events.v1 import events_pb2
from evactors.containerd.events import (
    PAYLOAD_TYPES,
    Envelope,
    PayloadFacts,
    RawPayload,
    decode_envelope,
    decode_payload,
    encode_payload,
    payload_facts,
)

EXPECTED_NAMES = {
    *(
        f"containerd.events.{name}"
        for name in (
            "ContainerCreate",
            "ContainerUpdate",
            "ContainerDelete",
            "TaskCreate",
            "TaskStart",
            "TaskExit",
            "TaskDelete",
            "TaskOOM",
            "TaskExecAdded",
            "TaskExecStarted",
            "TaskPaused",
            "TaskResumed",
            "TaskCheckpointed",
            "NamespaceCreate",
            "NamespaceUpdate",
            "NamespaceDelete",
            "SnapshotPrepare",
            "SnapshotCommit",
            "SnapshotRemove",
            "ContentCreate",
            "ContentDelete",
            "SandboxCreate",
            "SandboxStart",
            "SandboxExit",
        )
    ),
    "containerd.services.images.v1.ImageCreate",
    "containerd.services.images.v1.ImageUpdate",
    "containerd.services.images.v1.ImageDelete",
}

SAMPLE_SCALARS = {
    FieldDescriptor.TYPE_STRING: "s-é<&>",
    FieldDescriptor.TYPE_INT64: -(2**62),
    FieldDescriptor.TYPE_UINT32: 2**32 - 1,
    FieldDescriptor.TYPE_BOOL: True,
}


def populated(payload_class):
    """An instance with every string, integer and bool field set (one per type), so the
    round trip is not only of empty messages."""
    payload = payload_class()
    for field in payload_class.DESCRIPTOR.fields:
        if field.type in SAMPLE_SCALARS and not field.is_repeated:
            setattr(payload, field.name, SAMPLE_SCALARS[field.type])
    return payload


def test_payload_types_include_every_containerd_event():
    assert set(PAYLOAD_TYPES) >= EXPECTED_NAMES


def test_image_events_live_in_the_images_service_package():
    assert not {name for name in PAYLOAD_TYPES if name.startswith("containerd.events.Image")}


@pytest.mark.parametrize("name", sorted(PAYLOAD_TYPES))
def test_payload_types_are_keyed_by_full_name(name):
    assert PAYLOAD_TYPES[name].DESCRIPTOR.full_name == name


@pytest.mark.parametrize("name", sorted(PAYLOAD_TYPES))
def test_every_payload_type_round_trips(name):
    payload = populated(PAYLOAD_TYPES[name])
    wrapped = encode_payload(payload)
    assert wrapped.type_url == name
    decoded = decode_payload(wrapped)
    assert type(decoded) is PAYLOAD_TYPES[name]
    assert decoded == payload


@pytest.mark.parametrize("name", sorted(PAYLOAD_TYPES))
@pytest.mark.parametrize("make", [populated, lambda cls: cls()], ids=["populated", "empty"])
def test_payload_facts_reads_every_payload_type(name, make):
    # The converter reads every event's facts: no payload type may break it (an
    # ImageDelete, which has no labels, once did).
    facts = payload_facts(make(PAYLOAD_TYPES[name]))
    if name.startswith("containerd.services.images.v1.Image"):
        assert facts.image == make(PAYLOAD_TYPES[name]).name


def test_image_delete_facts_are_its_name():
    delete = PAYLOAD_TYPES["containerd.services.images.v1.ImageDelete"](name="busybox:1")
    assert payload_facts(delete) == PayloadFacts(image="busybox:1")


def test_populated_payloads_are_not_all_empty():
    for name in EXPECTED_NAMES:
        assert populated(PAYLOAD_TYPES[name]).ByteSize() > 0, name


def test_round_trip_keeps_nested_and_repeated_fields():
    payload = task_pb2.TaskCreate(
        container_id="c1",
        rootfs=[{"type": "overlay", "options": ["index=off"]}],
        io=task_pb2.TaskIO(stdout="/f/out", terminal=True),
    )
    assert decode_payload(encode_payload(payload)) == payload


def test_type_googleapis_url_decodes_too():
    wrapped = Any(
        type_url="type.googleapis.com/containerd.events.TaskStart",
        value=task_pb2.TaskStart(container_id="c", pid=42).SerializeToString(),
    )
    assert decode_payload(wrapped) == task_pb2.TaskStart(container_id="c", pid=42)


@pytest.mark.parametrize(
    "type_url", ["containerd.events.Nope", "example.com/x.Y", "", "containerd.events"]
)
def test_unknown_type_url_gives_raw_payload_with_exact_bytes(type_url):
    value = b"\x0a\x01c\xff\x00"
    assert decode_payload(Any(type_url=type_url, value=value)) == RawPayload(type_url, value)


@pytest.mark.parametrize(
    "value",
    [b"\xff\xff\xff", b"\x0a\x05ab", b"\x0a\x02\xff\xfe", b"\x07"],
    ids=["bad-tag", "truncated-string", "invalid-utf8", "bad-wire-type"],
)
def test_unparsable_bytes_give_raw_payload(value):
    wrapped = Any(type_url="containerd.events.TaskStart", value=value)
    decoded = decode_payload(wrapped)
    assert decoded == RawPayload("containerd.events.TaskStart", value)
    assert type(decoded.value) is bytes


def test_raw_payload_encodes_back_unchanged():
    raw = RawPayload("x.Y", b"\x01\x02")
    assert encode_payload(raw) == Any(type_url="x.Y", value=b"\x01\x02")
    assert decode_payload(encode_payload(raw)) == raw


def test_decode_envelope():
    payload = task_pb2.TaskExit(container_id="c", exit_status=3)
    proto = events_pb2.Envelope(
        timestamp=Timestamp(seconds=1, nanos=5),
        namespace="default",
        topic="/tasks/exit",
        event=encode_payload(payload),
    )
    assert decode_envelope(proto) == Envelope(
        timestamp=1_000_000_005, namespace="default", topic="/tasks/exit", payload=payload
    )


def test_decode_envelope_keeps_an_untyped_payload():
    proto = events_pb2.Envelope(namespace="n", topic="/x", event=Any(type_url="x.Y", value=b"\x01"))
    envelope = decode_envelope(proto)
    assert (envelope.timestamp, envelope.namespace, envelope.topic) == (0, "n", "/x")
    assert envelope.payload == RawPayload("x.Y", b"\x01")


def test_envelope_type_url_of_a_typed_payload_is_its_full_name():
    envelope = Envelope(0, "default", "/tasks/start", task_pb2.TaskStart(container_id="c"))
    assert envelope.type_url == "containerd.events.TaskStart"


def test_envelope_type_url_of_a_googleapis_payload_is_still_the_bare_name():
    wrapped = Any(type_url="type.googleapis.com/containerd.events.TaskStart")
    envelope = Envelope(0, "default", "/tasks/start", decode_payload(wrapped))
    assert envelope.type_url == "containerd.events.TaskStart"


def test_envelope_type_url_of_a_raw_payload_is_as_received():
    envelope = Envelope(0, "default", "/x", RawPayload("example.com/x.Y", b""))
    assert envelope.type_url == "example.com/x.Y"
