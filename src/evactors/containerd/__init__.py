"""The containerd adapter: containerd's API, its errors and its events, in Python terms.

This package is the only one that knows containerd's protobuf types. It gives:

- `open_containerd` / `ContainerdClient`: calls over containerd's unix socket;
- `errors`: `NotFound`, `AlreadyExists`, `FailedPrecondition`, `Unavailable`, ...;
- `events`: the decoded `Envelope` and its typed payload (or `RawPayload`);
- `gojson`: a payload as the JSON `ctr events` prints, and Go's time formats.
"""

from .client import (
    DEFAULT_ADDRESS,
    Container,
    ContainerdClient,
    ContentInfo,
    EventSubscription,
    Image,
    Namespace,
    Plugin,
    SnapshotUsage,
    Task,
    TaskStatus,
    Version,
    open_containerd,
)
from .errors import (
    AlreadyExists,
    ContainerdError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from .events import PAYLOAD_TYPES, Envelope, Payload, RawPayload, decode_envelope, decode_payload
from .gojson import go_time_string, payload_json, rfc3339_nano

__all__ = [
    "DEFAULT_ADDRESS",
    "PAYLOAD_TYPES",
    "AlreadyExists",
    "Container",
    "ContainerdClient",
    "ContainerdError",
    "ContentInfo",
    "Envelope",
    "EventSubscription",
    "FailedPrecondition",
    "Image",
    "InvalidArgument",
    "Namespace",
    "NotFound",
    "Payload",
    "Plugin",
    "RawPayload",
    "SnapshotUsage",
    "Task",
    "TaskStatus",
    "Unavailable",
    "Version",
    "decode_envelope",
    "decode_payload",
    "go_time_string",
    "open_containerd",
    "payload_json",
    "rfc3339_nano",
]
