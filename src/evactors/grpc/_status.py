"""gRPC status codes and the one exception that carries them across evactors."""

from __future__ import annotations

import enum


class StatusCode(enum.IntEnum):
    """The canonical gRPC status codes (the numbers every gRPC implementation shares)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class GrpcError(Exception):
    """A call ended with a status other than OK.

    Raised by client calls when the peer answers with an error status (or the
    transport fails, as UNAVAILABLE), and raised by server handlers to end their
    call with that status.

    Args:
      code: The status code.
      message: A message for the other side; it names what was wrong.
    """

    def __init__(self, code: StatusCode, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}" if self.message else self.code.name
