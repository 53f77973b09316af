"""Times as `docker events --since/--until` and `docker system prune --filter until=` take them.

`parse_time` turns one such text into Unix nanoseconds. It accepts the forms Docker's
`GetTimestamp` (api/types/time) accepts, computed exactly, with integers only:

- An RFC 3339 date-time, or one of its shortenings: `2026-12-04T16:20:00Z`,
  `2026-12-04T16:20:00.123456789+01:00`, `2026-12-04T16:20Z`, `2026-12-04T16Z`,
  `2026-12-04Z`, `2026-12-04-05:00`. A text without an offset (`2026-12-04T16:20:00`,
  `2026-12-04`) is taken as UTC: Docker's CLI reads it in the client's local time zone,
  which a server does not know.
- Unix seconds, with an optional fraction: `1733329200`, `1733329200.5`,
  `1733329200.000000001`. `0` is the epoch (not a zero duration, as in Docker).
- A Go duration (`time.ParseDuration`): `10m`, `1h30m`, `1.5h`, `300ms`, `2h45m10s`,
  meaning that long before now. Negative durations are refused.

Fractions of a second are kept to the nanosecond; further digits are dropped, as Go's
`time.Parse` drops them. `parse_duration` is the duration half on its own.
"""

from __future__ import annotations

import calendar
import datetime
import json
import re
from typing import Final, Literal

NS_PER_SECOND: Final = 1_000_000_000

# Go's time.Duration is an int64 of nanoseconds: 2562047h47m16.854775807s at most.
MAX_DURATION_NS: Final = 2**63 - 1

# time.ParseDuration's units; both micro signs (U+00B5 and U+03BC) are accepted, as in Go.
_UNIT_NS: Final = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": NS_PER_SECOND,
    "m": 60 * NS_PER_SECOND,
    "h": 3600 * NS_PER_SECOND,
}

# Longer texts are refused before any parsing, so no int() sees thousands of digits.
_MAX_TEXT_LENGTH: Final = 1000

_DIGITS_OF_NS: Final = 9

# Error messages quote at most this much of a text.
_QUOTED_LENGTH: Final = 80

# One `[digits][.digits]unit` piece of a duration; a unit runs to the next digit or dot.
_DURATION_PIECE: Final = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")
_UNIX_SECONDS: Final = re.compile(r"([0-9]+)(?:\.([0-9]+))?")
_DATE_TIME: Final = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"(?:T(?P<hour>[0-9]{2})"
    r"(?::(?P<minute>[0-9]{2})"
    r"(?::(?P<second>[0-9]{2})(?:[.,](?P<fraction>[0-9]+))?)?)?)?"
    r"(?:Z|(?P<sign>[+-])(?P<offset_hour>[0-9]{2}):(?P<offset_minute>[0-9]{2}))?"
)
# What a date-time starts with: text like this that _DATE_TIME refuses is a bad date-time.
_DATE_PREFIX: Final = re.compile(r"[0-9]{4}-")
# What a duration starts with: text like this that parse_duration refuses is a bad duration.
_DURATION_PREFIX: Final = re.compile(r"\+?[0-9.]")
_EPOCH_ORDINAL: Final = datetime.date(1970, 1, 1).toordinal()

_ACCEPTED: Final = {
    "time": (
        "expected an RFC 3339 date-time (2026-12-04T16:20:00Z, 2026-12-04T16:20:00+01:00, "
        "2026-12-04; UTC without an offset), Unix seconds (1733329200, 1733329200.5) "
        "or a Go duration before now (10m, 1h30m, 1.5h, 300ms)"
    ),
    "duration": (
        "expected a Go duration: decimal numbers, each with a unit of ns, us, \u00b5s, ms, "
        "s, m or h (300ms, 10m, 1h30m, 1.5h)"
    ),
}


class TimeSpecError(ValueError):
    """A time or duration text that cannot be used; the message quotes it and says why.

    Attributes:
      text: The offending text, as given.
      reason: What is wrong with it.
    """

    def __init__(
        self, text: str, reason: str, *, kind: Literal["time", "duration"] = "time"
    ) -> None:
        super().__init__(f"invalid {kind} {_quoted(text)}: {reason}; {_ACCEPTED[kind]}")
        self.text = text
        self.reason = reason


def parse_time(text: str, *, now_ns: int) -> int:
    """The Unix time in nanoseconds that a `--since`/`--until`/`until=` value names.

    Args:
      text: A date-time, Unix seconds or a duration; see the module docstring. A
        date-time without an offset (`2026-12-04T16:20:00`, `2026-12-04`) is UTC.
        Surrounding whitespace is not allowed.
      now_ns: The current Unix time in nanoseconds; a duration counts back from it.

    Returns:
      Nanoseconds since the Unix epoch; negative before 1970.

    Raises:
      TimeSpecError: For an empty or whitespace-only text, a text in none of the forms,
        an impossible date or time of day (`2026-02-30`, `24:00`), a negative duration or
        timestamp, Unix seconds beyond int64, or a duration beyond Go's (about 292 years).
    """
    _check_length(text, "time")
    if text != text.strip():
        raise TimeSpecError(text, "leading or trailing whitespace is not allowed")
    if text.startswith("-"):
        raise TimeSpecError(text, "negative durations and timestamps are not accepted")
    if match := _UNIX_SECONDS.fullmatch(text):
        return _unix_ns(text, match)
    if match := _DATE_TIME.fullmatch(text):
        return _date_time_ns(text, match)
    if _DATE_PREFIX.match(text):
        raise TimeSpecError(text, "not an RFC 3339 date-time")
    try:
        duration = parse_duration(text)
    except TimeSpecError as error:
        if _DURATION_PREFIX.match(text):
            raise TimeSpecError(text, error.reason) from None
        raise TimeSpecError(text, "not a date-time, Unix seconds or a duration") from None
    return now_ns - duration


def parse_duration(text: str) -> int:
    """Nanoseconds in a Go duration, as `time.ParseDuration` reads it, but never negative.

    A duration is one or more decimal numbers, each with a fraction if wanted and a unit:
    `300ms`, `1.5h`, `2h45m10s`, `.5s`, `1.s`; `0` alone needs no unit. Units are `ns`,
    `us` (also with a micro sign or a Greek mu for the u), `ms`, `s`, `m` and `h`,
    case-sensitive, with nothing between pieces.
    A leading `+` is allowed. Each fraction is exact, truncated to whole nanoseconds.

    Args:
      text: The duration.

    Returns:
      The duration in nanoseconds, from 0 to 2**63 - 1 (Go's largest).

    Raises:
      TimeSpecError: For an empty text, a leading `-`, a number without a unit, an
        unknown unit, anything else outside the grammar, or more than 2**63 - 1 ns.
    """
    _check_length(text, "duration")
    if text.startswith("-"):
        raise TimeSpecError(text, "negative durations are not accepted", kind="duration")
    body = text.removeprefix("+")
    if body == "0":
        return 0
    if not body:
        raise TimeSpecError(text, "no number", kind="duration")
    total = 0
    position = 0
    while position < len(body):
        match = _DURATION_PIECE.match(body, position)
        assert match is not None  # every part of the pattern is optional
        whole, fraction, unit = match.groups()
        if not whole and not fraction:
            rest = _quoted(body[position:])
            raise TimeSpecError(text, f"expected a number at {rest}", kind="duration")
        number = body[position : match.start(3)]
        if not unit:
            raise TimeSpecError(text, f"missing unit after {number}", kind="duration")
        unit_ns = _UNIT_NS.get(unit)
        if unit_ns is None:
            raise TimeSpecError(text, f"unknown unit {_quoted(unit)}", kind="duration")
        total += int(whole or "0") * unit_ns
        if fraction:
            total += int(fraction) * unit_ns // 10 ** len(fraction)
        position = match.end()
    if total > MAX_DURATION_NS:
        raise TimeSpecError(
            text, "out of range (at most 2562047h47m16.854775807s)", kind="duration"
        )
    return total


def _check_length(text: str, kind: Literal["time", "duration"]) -> None:
    if not text:
        raise TimeSpecError(text, "empty", kind=kind)
    if text.isspace():
        raise TimeSpecError(text, "only whitespace", kind=kind)
    if len(text) > _MAX_TEXT_LENGTH:
        raise TimeSpecError(text, f"longer than {_MAX_TEXT_LENGTH} characters", kind=kind)


def _unix_ns(text: str, match: re.Match[str]) -> int:
    seconds_text, fraction = match.groups()
    seconds = int(seconds_text)
    if seconds > MAX_DURATION_NS:
        raise TimeSpecError(text, "Unix seconds out of range (more than 2**63 - 1)")
    return seconds * NS_PER_SECOND + _fraction_ns(fraction)


def _date_time_ns(text: str, match: re.Match[str]) -> int:
    fields = match.groupdict()
    year, month, day = int(fields["year"]), int(fields["month"]), int(fields["day"])
    hour = int(fields["hour"] or "0")
    minute = int(fields["minute"] or "0")
    second = int(fields["second"] or "0")
    offset_hour = int(fields["offset_hour"] or "0")
    offset_minute = int(fields["offset_minute"] or "0")
    problem = None
    if year == 0:
        problem = "year 0000 is out of range"
    elif not 1 <= month <= 12:
        problem = f"month {month:02d} is out of range"
    elif not 1 <= day <= calendar.monthrange(year, month)[1]:
        problem = f"day {day:02d} is out of range for {year:04d}-{month:02d}"
    elif hour > 23:
        problem = f"hour {hour:02d} is out of range"
    elif minute > 59:
        problem = f"minute {minute:02d} is out of range"
    elif second > 59:
        problem = f"second {second:02d} is out of range"
    elif offset_hour > 23 or offset_minute > 59:
        problem = f"offset {offset_hour:02d}:{offset_minute:02d} is out of range"
    if problem is not None:
        raise TimeSpecError(text, problem)
    days = datetime.date(year, month, day).toordinal() - _EPOCH_ORDINAL
    offset = offset_hour * 3600 + offset_minute * 60
    if fields["sign"] == "-":
        offset = -offset
    seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset
    return seconds * NS_PER_SECOND + _fraction_ns(fields["fraction"])


def _fraction_ns(fraction: str | None) -> int:
    """Nanoseconds in the digits after a decimal point, beyond the ninth dropped."""
    if not fraction:
        return 0
    return int(fraction[:_DIGITS_OF_NS].ljust(_DIGITS_OF_NS, "0"))


def _quoted(text: str) -> str:
    """`text` in double quotes, with control characters and quotes escaped; a long text
    is cut short, so that a message stays readable."""
    if len(text) > _QUOTED_LENGTH:
        return json.dumps(text[:_QUOTED_LENGTH], ensure_ascii=False) + "..."
    return json.dumps(text, ensure_ascii=False)
