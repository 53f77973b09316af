"""Payload JSON as `ctr events` prints it, and Go's time formats.

`ctr events` marshals each payload with Go's `encoding/json` on containerd's generated
structs. That JSON differs from protobuf's canonical JSON mapping, so it is rebuilt
here from the message descriptor by Go's rules:

- keys are the proto field names (`container_id`, `exit_status`), in declaration order;
- zero scalars, empty strings, lists and maps, and unset messages are omitted
  (every field is tagged `omitempty`); map keys are sorted;
- timestamps are never omitted (a Go `time.Time` is a struct) and print as RFC 3339
  with trailing zeros of the fraction trimmed (`2026-12-04T15:53:10.432489902Z`); one
  absent on the wire is Go's zero time, `0001-01-01T00:00:00Z`;
- 64-bit integers are plain numbers, bytes are standard base64, an `Any` is
  `{"type_url": ..., "value": ...}`;
- strings escape `<`, `>`, `&`, U+2028 and U+2029 as `\\u003c` and so on, and control
  characters as `\\u00XX`, like Go's HTML-safe encoder.

A `RawPayload` renders as an `Any` would: `{"type_url": ..., "value": base64}`.
"""

from __future__ import annotations

import base64
import datetime
import enum
import functools
import json
import re
from collections.abc import Callable
from typing import Any, Final

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from .events import Payload, RawPayload, _field

_TIMESTAMP = "google.protobuf.Timestamp"
_ANY = "google.protobuf.Any"
_NS_PER_S = 1_000_000_000
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
# What Go prints for a time.Time that was never set (a timestamp absent on the wire).
GO_ZERO_TIME = "0001-01-01T00:00:00Z"
_GO_ZERO_TIME_JSON: Final = f'"{GO_ZERO_TIME}"'
# Python's json escapes these differently from Go (which also escapes HTML characters).
_GO_ESCAPES = {
    "\\b": "\\u0008",
    "\\f": "\\u000c",
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
# An escape sequence (consumed whole, so `\\b` is never mistaken for `\b`) or a
# character Go escapes and Python does not.
_ESCAPE_PATTERN = re.compile(r'\\(?:u[0-9a-fA-F]{4}|["\\/bfnrt])|[<>&\u2028\u2029]')


def payload_json(payload: Payload) -> str:
    """The payload as the JSON text `ctr events` prints for it."""
    if isinstance(payload, RawPayload):
        return _go_escaped(_any_json(payload.type_url, payload.value))
    return _go_escaped(_message_json(payload))


def _go_escaped(text: str) -> str:
    """`text` with the characters escaped that Go escapes and Python's json does not."""
    # Most payloads have nothing to rewrite: substring checks cost a twentieth of the
    # regular expression's pass (U+2028 and U+2029 are not ASCII).
    if (
        text.isascii()
        and "\\" not in text
        and "<" not in text
        and ">" not in text
        and "&" not in text
    ):
        return text
    return _ESCAPE_PATTERN.sub(lambda match: _GO_ESCAPES.get(match[0], match[0]), text)


# A string as JSON text, as Python's json writes it with ensure_ascii=False (in C).
_json_string: Final[Callable[[str], str]] = json.encoder.encode_basestring
# For numbers that json writes its own way (floats: NaN, Infinity), should a payload
# hold one.
_JSON_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

# Descriptors are typed loosely: protobuf's stubs type them as a union of the pure-Python
# and upb classes, which share the attributes used here but not a declared base.
Descriptor = Any


def _message_json(message: Message) -> str:
    """The message as JSON text, written member by member from its field plan, with no
    dict in between (the converter writes every event's payload)."""
    descriptor: Descriptor = message.DESCRIPTOR
    if descriptor.full_name == _ANY:
        return _any_json(_field(message, "type_url"), _field(message, "value"))
    members = []
    for name, kind, write, key in _field_plan(descriptor):
        value = getattr(message, name)
        if kind is _Kind.VALUE:
            if value:
                members.append(key + write(value))
        elif kind is _Kind.TIMESTAMP:
            members.append(key + (write(value) if message.HasField(name) else _GO_ZERO_TIME_JSON))
        elif kind is _Kind.MESSAGE:
            if message.HasField(name):
                members.append(key + write(value))
        elif kind is _Kind.REPEATED:
            if value:
                members.append(key + "[" + ",".join(map(write, value)) + "]")
        elif value:  # a map, keys sorted
            pairs = [_key_json(k) + ":" + write(value[k]) for k in sorted(value)]
            members.append(key + "{" + ",".join(pairs) + "}")
    return "{" + ",".join(members) + "}"


class _Kind(enum.Enum):
    """When a field is omitted and how it is written; worked out once per message type
    (`_field_plan`)."""

    VALUE = enum.auto()  # a scalar or bytes: omitted when zero
    TIMESTAMP = enum.auto()  # never omitted
    MESSAGE = enum.auto()  # omitted when unset
    REPEATED = enum.auto()  # omitted when empty
    MAP = enum.auto()  # omitted when empty


# A field's plan: its name, its kind, the writer of its value (of one item, for lists
# and maps) and its member key (`"name":`).
_FieldPlan = tuple[str, _Kind, Callable[[Any], str], str]


@functools.cache
def _field_plan(descriptor: Descriptor) -> tuple[_FieldPlan, ...]:
    """Each field's plan: reading descriptors (map options especially) is slow, and every
    event needs this."""
    plan: list[_FieldPlan] = []
    for field in descriptor.fields:
        message_type = field.message_type
        key = _json_string(field.name) + ":"
        if message_type is not None and message_type.GetOptions().map_entry:
            value_field = message_type.fields_by_name["value"]
            plan.append((field.name, _Kind.MAP, _writer(value_field), key))
        elif field.is_repeated:
            plan.append((field.name, _Kind.REPEATED, _writer(field), key))
        elif message_type is not None and message_type.full_name == _TIMESTAMP:
            plan.append((field.name, _Kind.TIMESTAMP, _writer(field), key))
        elif message_type is not None:
            plan.append((field.name, _Kind.MESSAGE, _writer(field), key))
        else:
            plan.append((field.name, _Kind.VALUE, _writer(field), key))
    return tuple(plan)


def _writer(field: Descriptor) -> Callable[[Any], str]:
    """How to write one value of the field's type (an item, for a list field)."""
    if field.message_type is None:
        return _bytes_json if field.type == FieldDescriptor.TYPE_BYTES else _scalar_json
    if field.message_type.full_name == _TIMESTAMP:
        return _quoted_timestamp
    return _message_json


def _scalar_json(value: str | float) -> str:
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:d}"
    return _JSON_ENCODER.encode(value)


def _key_json(key: str | int) -> str:
    """A map key as a JSON member name (json's conversion of other keys to strings)."""
    if isinstance(key, str):
        return _json_string(key)
    if isinstance(key, bool):
        return '"true"' if key else '"false"'
    return f'"{key}"'


def _bytes_json(value: bytes) -> str:
    return '"' + base64.b64encode(value).decode("ascii") + '"'


def _quoted_timestamp(timestamp: Message) -> str:
    return f'"{_timestamp_value(timestamp)}"'


def _timestamp_value(timestamp: Message) -> str:
    return rfc3339_nano(_field(timestamp, "seconds") * _NS_PER_S + _field(timestamp, "nanos"))


def _any_json(type_url: str, value: bytes) -> str:
    members = []
    if type_url:
        members.append('"type_url":' + _json_string(type_url))
    if value:
        members.append('"value":' + _bytes_json(value))
    return "{" + ",".join(members) + "}"


def _split(unix_ns: int) -> tuple[datetime.datetime, int]:
    seconds, nanos = divmod(unix_ns, _NS_PER_S)
    return _EPOCH + datetime.timedelta(seconds=seconds), nanos


def _fraction(nanos: int) -> str:
    return f".{nanos:09d}".rstrip("0") if nanos else ""


def rfc3339_nano(unix_ns: int) -> str:
    """Go's `time.RFC3339Nano` in UTC: `2026-12-04T15:53:10.4324899Z`."""
    seconds, nanos = divmod(unix_ns, _NS_PER_S)
    return f"{_rfc3339_seconds(seconds)}{_fraction(nanos)}Z"


@functools.lru_cache(maxsize=64)
def _rfc3339_seconds(seconds: int) -> str:
    """`2026-12-04T15:53:10` for a Unix time in seconds: the events of one second (and a
    burst's are mostly of a few) share it."""
    m = _EPOCH + datetime.timedelta(seconds=seconds)
    # The fields, not strftime (half the time; and %Y is padded to four digits only on
    # some platforms, where Go always pads it).
    return f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"


def go_time_string(unix_ns: int) -> str:
    """Go's `time.Time.String()` in UTC, as `ctr events` and `nerdctl events` print it.

    e.g. `2026-12-04 15:53:10.54919666 +0000 UTC`.
    """
    moment, nanos = _split(unix_ns)
    return f"{moment.year:04d}-{moment:%m-%d %H:%M:%S}{_fraction(nanos)} +0000 UTC"
