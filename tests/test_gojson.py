"""`payload_json` and Go's time formats, checked against what `ctr events` prints.

Ground truth: lines printed by a real `ctr events` (containerd 1.6.20), reconstructed
here as messages and compared character for character, plus the rules of Go's
`encoding/json` on containerd's gogo-generated structs (omitempty everywhere, timestamps
never omitted, HTML-safe string escapes) and of Go's `time.RFC3339Nano` and
`time.Time.String()` in UTC.
"""

from __future__ import annotations

import datetime
import json

import pytest
from google.protobuf.any_pb2 import Any
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.timestamp_pb2 import Timestamp
from google.protobuf.wrappers_pb2 import BytesValue, Int64Value, UInt64Value
from hypothesis import given, settings
from hypothesis import strategies as st

from evactors._generated.containerd.events import (
    container_pb2,
    content_pb2,
    image_pb2,
    namespace_pb2,
    sandbox_pb2,
    snapshot_pb2,
    task_pb2,
)
from evactors._generated.containerd.types import mount_pb2
from evactors.containerd.events import PAYLOAD_TYPES, RawPayload
from evactors.containerd.gojson import GO_ZERO_TIME, go_time_string, payload_json, rfc3339_nano

UTC = datetime.UTC
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)
NS = 1_000_000_000
# The second every ground-truth line was printed in: 2026-12-04 15:53:10 UTC.
SECOND = int(datetime.datetime(2026, 12, 4, 15, 53, 10, tzinfo=UTC).timestamp())
# Go's zero time.Time, 0001-01-01T00:00:00Z, in Unix seconds.
GO_ZERO_SECONDS = -62_135_596_800

# Hypothesis would otherwise write a .hypothesis/ directory into the shared checkout.
quick = settings(database=None, max_examples=300, deadline=None)


# --- The `ctr events` lines, reconstructed -------------------------------------------


def test_ctr_container_create():
    payload = container_pb2.ContainerCreate(
        id="c1",
        image="docker.io/library/busybox:latest",
        runtime=container_pb2.ContainerCreate.Runtime(
            name="io.containerd.runc.v2",
            options=Any(type_url="containerd.runc.v1.Options"),
        ),
    )
    assert payload_json(payload) == (
        '{"id":"c1","image":"docker.io/library/busybox:latest",'
        '"runtime":{"name":"io.containerd.runc.v2",'
        '"options":{"type_url":"containerd.runc.v1.Options"}}}'
    )


def test_ctr_task_create():
    payload = task_pb2.TaskCreate(
        container_id="c1",
        bundle="/b/c1",
        rootfs=[
            mount_pb2.Mount(type="overlay", source="overlay", options=["index=off", "workdir=/w"])
        ],
        io=task_pb2.TaskIO(stdin="/f/c1-stdin", stdout="/f/c1-stdout", stderr="/f/c1-stderr"),
        pid=5060,
    )
    assert payload_json(payload) == (
        '{"container_id":"c1","bundle":"/b/c1",'
        '"rootfs":[{"type":"overlay","source":"overlay","options":["index=off","workdir=/w"]}],'
        '"io":{"stdin":"/f/c1-stdin","stdout":"/f/c1-stdout","stderr":"/f/c1-stderr"},'
        '"pid":5060}'
    )


def test_ctr_task_exit():
    payload = task_pb2.TaskExit(
        container_id="c1",
        id="c1",
        pid=5060,
        exit_status=3,
        exited_at=Timestamp(seconds=SECOND, nanos=432489902),
    )
    assert payload_json(payload) == (
        '{"container_id":"c1","id":"c1","pid":5060,"exit_status":3,'
        '"exited_at":"2026-12-04T15:53:10.432489902Z"}'
    )


def test_ctr_task_exit_omits_zero_exit_status():
    payload = task_pb2.TaskExit(
        container_id="c2", id="e1", pid=5183, exited_at=Timestamp(seconds=SECOND, nanos=786443341)
    )
    assert payload_json(payload) == (
        '{"container_id":"c2","id":"e1","pid":5183,"exited_at":"2026-12-04T15:53:10.786443341Z"}'
    )


def test_ctr_snapshot_prepare():
    payload = snapshot_pb2.SnapshotPrepare(key="c2", parent="sha256:845b")
    assert payload_json(payload) == '{"key":"c2","parent":"sha256:845b"}'


def test_ctr_image_create_omits_empty_labels():
    assert payload_json(image_pb2.ImageCreate(name="x:1")) == '{"name":"x:1"}'


def test_ctr_task_paused():
    assert payload_json(task_pb2.TaskPaused(container_id="c2")) == '{"container_id":"c2"}'


@pytest.mark.parametrize(
    ("nanos", "printed"),
    [
        (326455488, "2026-12-04 15:53:10.326455488 +0000 UTC"),
        (416262462, "2026-12-04 15:53:10.416262462 +0000 UTC"),
        (432513828, "2026-12-04 15:53:10.432513828 +0000 UTC"),
        (549196660, "2026-12-04 15:53:10.54919666 +0000 UTC"),
    ],
)
def test_ctr_envelope_timestamps(nanos, printed):
    assert go_time_string(SECOND * NS + nanos) == printed


# --- Keys, omission, nesting --------------------------------------------------------


def test_keys_follow_declaration_order_not_assignment_order():
    payload = task_pb2.TaskDelete(id="e1", exit_status=1, pid=7, container_id="c")
    assert list(json.loads(payload_json(payload))) == [
        "container_id",
        "pid",
        "exit_status",
        "exited_at",
        "id",
    ]


@pytest.mark.parametrize(
    "payload",
    [
        container_pb2.ContainerUpdate(),
        container_pb2.ContainerUpdate(id="", image="", labels={}, snapshot_key=""),
        task_pb2.TaskCreate(rootfs=[], pid=0),
        task_pb2.TaskIO(terminal=False),
        content_pb2.ContentCreate(size=0),
    ],
    ids=["default", "explicit-empties", "empty-list-zero-int", "false-bool", "zero-int64"],
)
def test_zero_values_are_omitted(payload):
    assert payload_json(payload) == "{}"


def test_unset_sub_message_is_omitted():
    assert payload_json(container_pb2.ContainerCreate(id="c")) == '{"id":"c"}'


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            container_pb2.ContainerCreate(runtime=container_pb2.ContainerCreate.Runtime()),
            '{"runtime":{}}',
        ),
        (task_pb2.TaskCreate(io=task_pb2.TaskIO()), '{"io":{}}'),
        (
            container_pb2.ContainerCreate(
                runtime=container_pb2.ContainerCreate.Runtime(options=Any())
            ),
            '{"runtime":{"options":{}}}',
        ),
        (task_pb2.TaskCreate(rootfs=[mount_pb2.Mount()]), '{"rootfs":[{}]}'),
    ],
    ids=["runtime", "io", "any", "list-item"],
)
def test_set_but_empty_sub_message_is_an_empty_object(payload, expected):
    assert payload_json(payload) == expected


def test_bool_true_is_printed():
    assert payload_json(task_pb2.TaskIO(terminal=True)) == '{"terminal":true}'


def test_map_keys_are_sorted():
    payload = container_pb2.ContainerUpdate(id="c", labels={"b": "2", "a": "1", "B": "3", "é": "4"})
    assert payload_json(payload) == '{"id":"c","labels":{"B":"3","a":"1","b":"2","é":"4"}}'


def test_map_entry_with_empty_value_is_kept():
    payload = namespace_pb2.NamespaceUpdate(labels={"k": ""})
    assert payload_json(payload) == '{"labels":{"k":""}}'


# --- Numbers and bytes ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (content_pb2.ContentCreate(size=2**63 - 1), '{"size":9223372036854775807}'),
        (content_pb2.ContentCreate(size=-(2**63)), '{"size":-9223372036854775808}'),
        (content_pb2.ContentCreate(size=2**53 + 1), '{"size":9007199254740993}'),
        (Int64Value(value=-1), '{"value":-1}'),
        (UInt64Value(value=2**64 - 1), '{"value":18446744073709551615}'),
        (
            task_pb2.TaskExit(exit_status=2**32 - 1),
            f'{{"exit_status":4294967295,"exited_at":"{GO_ZERO_TIME}"}}',
        ),
    ],
    ids=["int64-max", "int64-min", "2**53+1", "negative", "uint64-max", "uint32-max"],
)
def test_64_bit_integers_are_plain_numbers(payload, expected):
    assert payload_json(payload) == expected


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (b"\x01", "AQ=="),
        (b"\x01\x02", "AQI="),
        (b"\x01\x02\x03", "AQID"),
        (b"\xfb\xff\xbf", "+/+/"),
    ],
)
def test_bytes_are_standard_padded_base64(value, encoded):
    assert payload_json(BytesValue(value=value)) == f'{{"value":"{encoded}"}}'


def test_any_value_is_base64_in_a_nested_any():
    options = Any(type_url="containerd.runc.v1.Options", value=b"\x08\x01")
    payload = container_pb2.ContainerCreate(
        runtime=container_pb2.ContainerCreate.Runtime(options=options)
    )
    assert payload_json(payload) == (
        '{"runtime":{"options":{"type_url":"containerd.runc.v1.Options","value":"CAE="}}}'
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (RawPayload("x.Y", b"\x01\x02"), '{"type_url":"x.Y","value":"AQI="}'),
        (RawPayload("x.Y", b""), '{"type_url":"x.Y"}'),
        (RawPayload("", b"\xff"), '{"value":"/w=="}'),
        (RawPayload("", b""), "{}"),
    ],
    ids=["both", "no-value", "no-type-url", "neither"],
)
def test_raw_payload_renders_like_an_any(raw, expected):
    assert payload_json(raw) == expected


# --- Timestamps ------------------------------------------------------------------------


def test_absent_timestamp_is_go_zero_time():
    assert GO_ZERO_TIME == "0001-01-01T00:00:00Z"
    assert payload_json(task_pb2.TaskExit(container_id="c")) == (
        '{"container_id":"c","exited_at":"0001-01-01T00:00:00Z"}'
    )


def test_present_but_zero_timestamp_is_the_unix_epoch():
    payload = sandbox_pb2.SandboxExit(exited_at=Timestamp())
    assert payload_json(payload) == '{"exited_at":"1970-01-01T00:00:00Z"}'


@pytest.mark.parametrize(
    ("nanos", "fraction"),
    [
        (0, ""),
        (1, ".000000001"),
        (100, ".0000001"),
        (500_000_000, ".5"),
        (120_000_000, ".12"),
        (999_999_999, ".999999999"),
        (432_489_900, ".4324899"),
    ],
)
def test_timestamp_fraction_trims_trailing_zeros(nanos, fraction):
    payload = task_pb2.TaskDelete(exited_at=Timestamp(seconds=SECOND, nanos=nanos))
    assert payload_json(payload) == f'{{"exited_at":"2026-12-04T15:53:10{fraction}Z"}}'


@pytest.mark.parametrize(
    ("unix_ns", "expected"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (-1, "1969-12-31T23:59:59.999999999Z"),
        (-NS, "1969-12-31T23:59:59Z"),
        (253_402_300_799 * NS + 999_999_999, "9999-12-31T23:59:59.999999999Z"),
        (-30_610_224_000 * NS, "1000-01-01T00:00:00Z"),
    ],
)
def test_rfc3339_nano_edges(unix_ns, expected):
    assert rfc3339_nano(unix_ns) == expected


@pytest.mark.parametrize(
    ("unix_ns", "expected"),
    [
        (GO_ZERO_SECONDS * NS, "0001-01-01T00:00:00Z"),
        (-30_610_224_001 * NS, "0999-12-31T23:59:59Z"),
    ],
)
def test_rfc3339_nano_zero_pads_years_below_1000(unix_ns, expected):
    assert rfc3339_nano(unix_ns) == expected


def test_go_zero_time_sent_on_the_wire_matches_go():
    # containerd sends Go's zero time.Time as Timestamp(seconds=-62135596800), e.g. for
    # a task deleted without having exited; Go prints it as its zero time.
    payload = task_pb2.TaskDelete(container_id="c", exited_at=Timestamp(seconds=GO_ZERO_SECONDS))
    assert payload_json(payload) == f'{{"container_id":"c","exited_at":"{GO_ZERO_TIME}"}}'


def test_go_time_string_zero_pads_years_below_1000():
    assert go_time_string(GO_ZERO_SECONDS * NS) == "0001-01-01 00:00:00 +0000 UTC"


@pytest.mark.parametrize(
    ("unix_ns", "expected"),
    [
        (0, "1970-01-01 00:00:00 +0000 UTC"),
        (-1, "1969-12-31 23:59:59.999999999 +0000 UTC"),
        (SECOND * NS + 500_000_000, "2026-12-04 15:53:10.5 +0000 UTC"),
    ],
)
def test_go_time_string_edges(unix_ns, expected):
    assert go_time_string(unix_ns) == expected


# --- String escapes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("<", r"\u003c"),
        (">", r"\u003e"),
        ("&", r"\u0026"),
        ("\u2028", r"\u2028"),
        ("\u2029", r"\u2029"),
        ("\b", r"\u0008"),
        ("\f", r"\u000c"),
        ("\x00", r"\u0000"),
        ("\x01", r"\u0001"),
        ("\x1b", r"\u001b"),
        ("\x1f", r"\u001f"),
        ('"', r"\""),
        ("\\", r"\\"),
        ("\n", r"\n"),
        ("\r", r"\r"),
        ("\t", r"\t"),
        ("\\b", r"\\b"),
        ("\\f", r"\\f"),
        ("\\u003c", r"\\u003c"),
        ("\\\b", r"\\\u0008"),
        ("/", "/"),
        ("\x7f", "\x7f"),
        ("é", "é"),
        ("日本", "日本"),
        ("😀", "😀"),
        ("<a href='x'>&amp;</a>", r"\u003ca href='x'\u003e\u0026amp;\u003c/a\u003e"),
    ],
)
def test_string_escapes_match_go(text, escaped):
    assert payload_json(container_pb2.ContainerDelete(id=text)) == f'{{"id":"{escaped}"}}'


def test_map_keys_are_escaped_too():
    payload = image_pb2.ImageUpdate(labels={"<k>": "a&b"})
    assert payload_json(payload) == r'{"labels":{"\u003ck\u003e":"a\u0026b"}}'


FORBIDDEN_RAW = {"<", ">", "&", "\u2028", "\u2029", *map(chr, range(0x20))}


@quick
@given(st.text())
def test_any_text_round_trips_and_is_html_safe(text):
    printed = payload_json(container_pb2.ContainerDelete(id=text))
    assert json.loads(printed) == ({"id": text} if text else {})
    assert not FORBIDDEN_RAW & set(printed)


# --- Time formats against a datetime reference -----------------------------------------

MIN_NS = int((datetime.datetime(1, 1, 1, tzinfo=UTC) - EPOCH).total_seconds()) * NS
MAX_NS = (
    int((datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC) - EPOCH).total_seconds()) * NS
    + NS
    - 1
)


def reference(unix_ns, date_time_separator, suffix):
    seconds, nanos = divmod(unix_ns, NS)
    moment = EPOCH + datetime.timedelta(seconds=seconds)
    fraction = f".{nanos:09d}".rstrip("0") if nanos else ""
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}{date_time_separator}"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}{fraction}{suffix}"
    )


# The whole range Go can print (years 1 to 9999), and more densely the years around now.
@quick
@given(st.integers(MIN_NS, MAX_NS) | st.integers(-(10**18), 10**18))
def test_time_formats_match_reference(unix_ns):
    assert rfc3339_nano(unix_ns) == reference(unix_ns, "T", "Z")
    assert go_time_string(unix_ns) == reference(unix_ns, " ", " +0000 UTC")


# --- Every payload type ----------------------------------------------------------------


def timestamp_fields(descriptor):
    return [
        field.name
        for field in descriptor.fields
        if field.type == FieldDescriptor.TYPE_MESSAGE
        and field.message_type.full_name == "google.protobuf.Timestamp"
        and not field.is_repeated
    ]


@pytest.mark.parametrize("name", sorted(PAYLOAD_TYPES))
def test_default_payload_prints_only_its_timestamps(name):
    payload_class = PAYLOAD_TYPES[name]
    printed = payload_json(payload_class())
    assert json.loads(printed) == dict.fromkeys(
        timestamp_fields(payload_class.DESCRIPTOR), GO_ZERO_TIME
    )


def test_some_payload_types_have_timestamps():
    with_timestamps = {
        name for name, cls in PAYLOAD_TYPES.items() if timestamp_fields(cls.DESCRIPTOR)
    }
    assert {
        "containerd.events.TaskExit",
        "containerd.events.TaskDelete",
        "containerd.events.SandboxExit",
    } <= with_timestamps
