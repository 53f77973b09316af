"""containerd's errors as Python exceptions that callers can catch precisely.

containerd reports errors as gRPC statuses (its `errdefs` package maps them one to
one); `translate` turns a `GrpcError` from a containerd call into the matching class.
A few errors from shims arrive as UNKNOWN; those it knows are recognised by message.
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager

from evactors.grpc import GrpcError, StatusCode


class ContainerdError(Exception):
    """A containerd call failed. Subclasses name the failures callers act on.

    Attributes:
      code: The gRPC status containerd answered with.
      message: containerd's message (it names the object, e.g. `container "c1": not found`).
    """

    def __init__(self, code: StatusCode, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.message} ({self.code.name})"


class NotFound(ContainerdError):
    """The object does not exist."""


class AlreadyExists(ContainerdError):
    """An object with that name or id exists already."""


class FailedPrecondition(ContainerdError):
    """The object is in the wrong state for this, e.g. deleting a running task."""


class InvalidArgument(ContainerdError):
    """containerd rejected the request itself (a bad filter, a missing namespace)."""


class Unavailable(ContainerdError):
    """containerd cannot be reached, or the connection to it was lost."""


_BY_CODE: dict[StatusCode, type[ContainerdError]] = {
    StatusCode.NOT_FOUND: NotFound,
    StatusCode.ALREADY_EXISTS: AlreadyExists,
    StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    StatusCode.INVALID_ARGUMENT: InvalidArgument,
    StatusCode.UNAVAILABLE: Unavailable,
}


# Failures containerd reports as UNKNOWN because the shim's error carries no errdefs
# kind, recognised by their message: (message fragment, class).
_BY_UNKNOWN_MESSAGE: tuple[tuple[str, type[ContainerdError]], ...] = (
    # runc shim: Tasks/Delete of a task that still runs (seen with containerd 1.6.20).
    ("cannot delete a running process", FailedPrecondition),
)


def translate(error: GrpcError) -> ContainerdError:
    """The containerd exception for a failed call's status.

    `code` keeps the status containerd sent, also when a known UNKNOWN message picks a
    more precise class.
    """
    cls = _BY_CODE.get(error.code, ContainerdError)
    if error.code == StatusCode.UNKNOWN:
        for fragment, known in _BY_UNKNOWN_MESSAGE:
            if fragment in error.message:
                cls = known
                break
    return cls(error.code, error.message)


@contextmanager
def translated_errors() -> Generator[None, None, None]:
    """Re-raise a `GrpcError` from the block as the matching `ContainerdError`."""
    try:
        yield
    except GrpcError as error:
        raise translate(error) from None
