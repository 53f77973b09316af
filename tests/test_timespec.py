"""`parse_time` and `parse_duration`: every accepted form, exactness, every error.

The forms are those Docker's `GetTimestamp` (api/types/time) and Go's
`time.ParseDuration` accept; the duration tables are Go's own (src/time/time_test.go).
"""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evactors.timespec import (
    MAX_DURATION_NS,
    NS_PER_SECOND,
    TimeSpecError,
    parse_duration,
    parse_time,
)

# Hypothesis would otherwise write a .hypothesis/ directory into the shared checkout.
quick = settings(database=None, max_examples=300, deadline=None)

NOW = 1_796_399_590_549_196_660  # 2026-12-04T15:53:10.549196660Z
SECOND = NS_PER_SECOND
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
MILLISECOND = 1_000_000
MICROSECOND = 1_000
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def unix_ns(when: datetime.datetime) -> int:
    """Exact Unix nanoseconds of an aware datetime (no float on the way)."""
    return (when - EPOCH) // datetime.timedelta(microseconds=1) * 1000


def utc(*fields: int) -> int:
    return unix_ns(datetime.datetime(*fields, tzinfo=datetime.UTC))  # type: ignore[misc]


def at(text: str) -> int:
    return parse_time(text, now_ns=NOW)


# --- RFC 3339 ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-04T16:20:00Z", utc(2026, 12, 4, 16, 20)),
        ("2024-12-04T16:20:00Z", 1_733_329_200 * SECOND),
        ("1970-01-01T00:00:00Z", 0),
        ("1969-12-31T23:59:59Z", -SECOND),
        ("2026-12-04T16:20:00+01:00", utc(2026, 12, 4, 15, 20)),
        ("2026-12-04T16:20:00-05:30", utc(2026, 12, 4, 21, 50)),
        ("2026-12-04T16:20:00+00:00", utc(2026, 12, 4, 16, 20)),
        ("2026-12-04T16:20:00-00:00", utc(2026, 12, 4, 16, 20)),
        ("2026-12-04T00:30:00+01:00", utc(2026, 12, 3, 23, 30)),
        ("2024-02-29T12:00:00Z", utc(2024, 2, 29, 12)),
        ("2000-02-29T00:00:00Z", utc(2000, 2, 29)),
        ("9999-12-31T23:59:59Z", utc(9999, 12, 31, 23, 59, 59)),
        ("0001-01-01T00:00:00Z", utc(1, 1, 1)),
    ],
)
def test_rfc3339(text: str, expected: int):
    assert at(text) == expected


@pytest.mark.parametrize(
    ("fraction", "ns"),
    [
        ("5", 500_000_000),
        ("05", 50_000_000),
        ("123", 123_000_000),
        ("123456", 123_456_000),
        ("123456789", 123_456_789),
        ("000000001", 1),
        ("000000000", 0),
        # Digits beyond the ninth are dropped, not rounded, as Go's time.Parse does.
        ("1234567899", 123_456_789),
        ("9999999999999", 999_999_999),
    ],
)
def test_rfc3339_fractional_seconds_are_exact_to_the_ns(fraction: str, ns: int):
    base = utc(2026, 12, 4, 16, 20)
    assert at(f"2026-12-04T16:20:00.{fraction}Z") == base + ns
    assert at(f"2026-12-04T17:20:00.{fraction}+01:00") == base + ns
    assert at(f"2026-12-04T16:20:00.{fraction}") == base + ns


def test_rfc3339_comma_before_fraction_as_go_accepts():
    assert at("2026-12-04T16:20:00,25Z") == utc(2026, 12, 4, 16, 20) + 250_000_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Without an offset: UTC (Docker's CLI would use the client's local zone).
        ("2026-12-04T16:20:00", utc(2026, 12, 4, 16, 20)),
        ("2026-12-04T16:20:00.000000001", utc(2026, 12, 4, 16, 20) + 1),
        ("2026-12-04T16:20", utc(2026, 12, 4, 16, 20)),
        ("2026-12-04T16", utc(2026, 12, 4, 16)),
        ("2026-12-04", utc(2026, 12, 4)),
        # Docker's shortened layouts with an offset.
        ("2026-12-04T16:20Z", utc(2026, 12, 4, 16, 20)),
        ("2026-12-04T16:20+02:00", utc(2026, 12, 4, 14, 20)),
        ("2026-12-04T16Z", utc(2026, 12, 4, 16)),
        ("2026-12-04Z", utc(2026, 12, 4)),
        ("2026-12-04+01:00", utc(2026, 12, 3, 23)),
        ("2026-12-04-05:00", utc(2026, 12, 4, 5)),
    ],
)
def test_shortened_forms_and_utc_without_offset(text: str, expected: int):
    assert at(text) == expected


def test_rfc3339_does_not_depend_on_now():
    assert parse_time("2026-12-04T16:20:00Z", now_ns=0) == at("2026-12-04T16:20:00Z")


@quick
@given(
    when=st.datetimes(
        min_value=datetime.datetime(1, 1, 2),
        max_value=datetime.datetime(9999, 12, 30),
        timezones=st.sampled_from(
            [
                datetime.UTC,
                datetime.timezone(datetime.timedelta(hours=1)),
                datetime.timezone(datetime.timedelta(hours=-5, minutes=-30)),
                datetime.timezone(datetime.timedelta(hours=14)),
                datetime.timezone(datetime.timedelta(hours=-12)),
            ]
        ),
    ),
    extra_ns=st.integers(0, 999),
)
def test_rfc3339_property(when: datetime.datetime, extra_ns: int):
    # isoformat writes +00:00 for UTC, which RFC 3339 allows as well as Z.
    text = when.replace(microsecond=0).isoformat()
    assert at(text) == unix_ns(when.replace(microsecond=0))
    offset = text[19:]
    with_ns = f"{text[:19]}.{when.microsecond:06d}{extra_ns:03d}{offset}"
    assert at(with_ns) == unix_ns(when) + extra_ns
    assert at(text[:19] + "Z") == unix_ns(when.replace(microsecond=0, tzinfo=datetime.UTC))


# --- Unix seconds --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1733329200", 1_733_329_200 * SECOND),
        ("1733329200.5", 1_733_329_200 * SECOND + 500_000_000),
        ("1733329200.000000001", 1_733_329_200 * SECOND + 1),
        ("1733329200.999999999", 1_733_329_201 * SECOND - 1),
        ("1733329200.123456789", 1_733_329_200_123_456_789),
        ("1733329200.05", 1_733_329_200 * SECOND + 50_000_000),
        ("1733329200.0000000019", 1_733_329_200 * SECOND + 1),  # truncated at the ns
        ("0", 0),  # the epoch, not a zero duration, as in Docker
        ("0.5", 500_000_000),
        ("0001", SECOND),
        ("9223372036854775807", (2**63 - 1) * SECOND),
    ],
)
def test_unix_seconds(text: str, expected: int):
    assert at(text) == expected


@quick
@given(seconds=st.integers(0, 2**63 - 1), ns=st.integers(0, 999_999_999))
def test_unix_seconds_are_exact(seconds: int, ns: int):
    assert at(f"{seconds}.{ns:09d}") == seconds * SECOND + ns
    assert at(str(seconds)) == seconds * SECOND
    # A float would lose the nanoseconds of any current timestamp.
    trimmed = f"{ns:09d}".rstrip("0")
    if trimmed:
        assert at(f"{seconds}.{trimmed}") == seconds * SECOND + ns


# --- Durations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10m", 10 * MINUTE),
        ("1h30m", 90 * MINUTE),
        ("1.5h", 90 * MINUTE),
        ("300ms", 300 * MILLISECOND),
        ("2h45m10s", 2 * HOUR + 45 * MINUTE + 10 * SECOND),
        ("1ns", 1),
        ("+5s", 5 * SECOND),
        ("+0", 0),
    ],
)
def test_duration_counts_back_from_now(text: str, expected: int):
    assert at(text) == NOW - expected
    assert parse_time(text, now_ns=0) == -expected


@quick
@given(now=st.integers(-(2**70), 2**70), duration=st.integers(0, MAX_DURATION_NS))
def test_duration_property(now: int, duration: int):
    assert parse_time(f"{duration}ns", now_ns=now) == now - duration
    seconds, ns = divmod(duration, SECOND)
    assert parse_time(f"{seconds}.{ns:09d}s", now_ns=now) == now - duration


# Go's parseDurationTests (src/time/time_test.go), without the negative ones.
GO_DURATIONS = [
    ("0", 0),
    ("5s", 5 * SECOND),
    ("30s", 30 * SECOND),
    ("1478s", 1478 * SECOND),
    ("+5s", 5 * SECOND),
    ("+0", 0),
    ("5.0s", 5 * SECOND),
    ("5.6s", 5 * SECOND + 600 * MILLISECOND),
    ("5.s", 5 * SECOND),
    (".5s", 500 * MILLISECOND),
    ("1.0s", 1 * SECOND),
    ("1.00s", 1 * SECOND),
    ("1.004s", 1 * SECOND + 4 * MILLISECOND),
    ("1.0040s", 1 * SECOND + 4 * MILLISECOND),
    ("100.00100s", 100 * SECOND + 1 * MILLISECOND),
    ("10ns", 10),
    ("11us", 11 * MICROSECOND),
    ("12\u00b5s", 12 * MICROSECOND),  # MICRO SIGN
    ("12\u03bcs", 12 * MICROSECOND),  # GREEK SMALL LETTER MU
    ("13ms", 13 * MILLISECOND),
    ("14s", 14 * SECOND),
    ("15m", 15 * MINUTE),
    ("16h", 16 * HOUR),
    ("3h30m", 3 * HOUR + 30 * MINUTE),
    ("10.5s4m", 4 * MINUTE + 10 * SECOND + 500 * MILLISECOND),
    ("1h2m3s4ms5us6ns", HOUR + 2 * MINUTE + 3 * SECOND + 4 * MILLISECOND + 5 * MICROSECOND + 6),
    ("39h9m14.425s", 39 * HOUR + 9 * MINUTE + 14 * SECOND + 425 * MILLISECOND),
    ("52763797000ns", 52763797000),
    ("9007199254740993ns", 2**53 + 1),
    ("9223372036854775807ns", 2**63 - 1),
    ("9223372036854775.807us", 2**63 - 1),
    ("9223372036s854ms775us807ns", 2**63 - 1),
    ("2562047h47m16.854775807s", 2**63 - 1),
    ("0.100000000000000000000h", 6 * MINUTE),
    ("0.830103483285477580700h", 49 * MINUTE + 48 * SECOND + 372539827),
]


@pytest.mark.parametrize(("text", "expected"), GO_DURATIONS)
def test_parse_duration_go_table(text: str, expected: int):
    assert parse_duration(text) == expected


def test_parse_duration_is_exact_where_go_rounds_through_float():
    # Go says 20m (float64 arithmetic rounds up); a third of an hour truncated to the
    # nanosecond is 1ns less.
    assert parse_duration("0.3333333333333333333h") == 20 * MINUTE - 1
    assert parse_duration("0.1ns") == 0
    assert parse_duration("1.9999999999ns") == 1
    assert parse_duration("0.0000000000000000000001h") == 0
    assert parse_duration("1.000000001s") == SECOND + 1


@quick
@given(
    pieces=st.lists(
        st.tuples(
            st.integers(0, 10**6),
            st.one_of(st.none(), st.text("0123456789", max_size=12)),
            st.sampled_from(["ns", "us", "\u00b5s", "\u03bcs", "ms", "s", "m", "h"]),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_parse_duration_property(pieces: list[tuple[int, str | None, str]]):
    units = {"ns": 1, "us": 1000, "\u00b5s": 1000, "\u03bcs": 1000, "ms": 10**6}
    units |= {"s": SECOND, "m": MINUTE, "h": HOUR}
    text = "".join(
        f"{whole}{'' if fraction is None else '.' + fraction}{unit}"
        for whole, fraction, unit in pieces
    )
    expected = 0
    for whole, fraction, unit in pieces:
        expected += whole * units[unit]
        if fraction:
            expected += int(fraction) * units[unit] // 10 ** len(fraction)
    if expected > MAX_DURATION_NS:
        with pytest.raises(TimeSpecError, match="out of range"):
            parse_duration(text)
    else:
        assert parse_duration(text) == expected
        assert parse_time(text, now_ns=NOW) == NOW - expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   ", "only whitespace"),
        ("3", "missing unit after 3"),
        ("1h30", "missing unit after 30"),
        ("1..5h", "missing unit after 1."),
        ("s", 'expected a number at "s"'),
        (".", 'expected a number at "."'),
        (".s", 'expected a number at ".s"'),
        ("+.s", 'expected a number at ".s"'),
        ("+", "no number"),
        ("1d", 'unknown unit "d"'),
        ("10M", 'unknown unit "M"'),
        ("1H", 'unknown unit "H"'),
        ("1h 30m", 'unknown unit "h "'),
        (" 1h", 'expected a number at " 1h"'),
        ("1e3s", 'unknown unit "e"'),
        ("\x85\x85", "only whitespace"),  # NEL is whitespace to Python
        ("\ufffd hello", 'expected a number at "\ufffd hello"'),
        ("-", "negative"),
        ("-.", "negative"),
        ("-5s", "negative"),
        ("-0", "negative"),
        ("3000000h", "out of range"),
        ("9223372036854775808ns", "out of range"),
        ("9223372036854775810ns", "out of range"),
        ("9223372036854775.808us", "out of range"),
        ("9223372036854ms775us808ns", "out of range"),
        ("2562047h47m16.854775808s", "out of range"),
        ("1" * 2000 + "s", "longer than 1000 characters"),
    ],
)
def test_parse_duration_errors(text: str, reason: str):
    with pytest.raises(TimeSpecError) as caught:
        parse_duration(text)
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.text == text
    assert reason in error.reason
    message = str(error)
    assert message.startswith("invalid duration ")
    assert "expected a Go duration" in message
    assert "ns, us, \u00b5s, ms, s, m or h" in message


# --- Errors of parse_time -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        (" ", "only whitespace"),
        ("\t\n", "only whitespace"),
        (" 10m", "leading or trailing whitespace"),
        ("2026-12-04T16:20:00Z\n", "leading or trailing whitespace"),
        ("-10m", "negative"),
        ("-1h30m", "negative"),
        ("-1733329200", "negative"),
        ("garbage", "not a date-time, Unix seconds or a duration"),
        ("yesterday", "not a date-time, Unix seconds or a duration"),
        ("10x", 'unknown unit "x"'),
        ("1h30", "missing unit after 30"),
        ("1733329200.", "missing unit after 1733329200."),
        (".5", "missing unit after .5"),
        ("9223372036854775808", "Unix seconds out of range"),
        ("99999999999999999999h", "out of range"),
        ("2026-12-04T16:20:00z", "not an RFC 3339 date-time"),
        ("2026-12-04t16:20:00Z", "not an RFC 3339 date-time"),
        ("2026-12-04 16:20:00Z", "not an RFC 3339 date-time"),
        ("2026-12-4", "not an RFC 3339 date-time"),
        ("2026-12-04T16:2", "not an RFC 3339 date-time"),
        ("2026-12-04T16:20:00.Z", "not an RFC 3339 date-time"),
        ("2026-12-04T16:20:00+0100", "not an RFC 3339 date-time"),
        ("2026-12-04T16:20:00+01", "not an RFC 3339 date-time"),
        ("2026-12-04T16:20:00.5", None),  # valid; checked below not to raise
        ("2026-13-04", "month 13 is out of range"),
        ("2026-00-04", "month 00 is out of range"),
        ("2026-02-29", "day 29 is out of range for 2026-02"),
        ("2026-04-31", "day 31 is out of range for 2026-04"),
        ("2026-12-00", "day 00 is out of range"),
        ("0000-01-01", "year 0000 is out of range"),
        ("2026-12-04T24:00:00Z", "hour 24 is out of range"),
        ("2026-12-04T16:60:00Z", "minute 60 is out of range"),
        ("2026-12-04T16:20:60Z", "second 60 is out of range"),
        ("2026-12-04T16:20:00+24:00", "offset 24:00 is out of range"),
        ("2026-12-04T16:20:00+01:60", "offset 01:60 is out of range"),
        ("x" * 1001, "longer than 1000 characters"),
    ],
)
def test_parse_time_errors(text: str, reason: str | None):
    if reason is None:
        at(text)
        return
    with pytest.raises(TimeSpecError) as caught:
        at(text)
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.text == text
    assert reason in error.reason
    message = str(error)
    assert message.startswith("invalid time ")
    # The message says which forms are accepted.
    assert "RFC 3339" in message
    assert "Unix seconds" in message
    assert "Go duration" in message


def test_error_message_quotes_the_text():
    with pytest.raises(TimeSpecError) as caught:
        at("nope")
    assert str(caught.value).startswith('invalid time "nope": not a date-time')
    with pytest.raises(TimeSpecError) as caught:
        at('say "when"\t')
    assert str(caught.value).startswith('invalid time "say \\"when\\"\\t": ')
    with pytest.raises(TimeSpecError) as caught:
        at("")
    assert str(caught.value).startswith('invalid time "": empty; expected an RFC 3339')


def test_error_message_cuts_a_long_text_short():
    text = "9" * 2000
    with pytest.raises(TimeSpecError) as caught:
        at(text)
    assert caught.value.text == text
    assert f'"{"9" * 80}"...' in str(caught.value)
    assert len(str(caught.value)) < 500


@quick
@given(text=st.text(max_size=40))
def test_parse_time_returns_an_int_or_raises_time_spec_error(text: str):
    try:
        result: int | TimeSpecError = at(text)
    except TimeSpecError as error:
        result = error
    if isinstance(result, TimeSpecError):
        assert result.text == text
        assert str(result).startswith("invalid time ")
    else:
        assert isinstance(result, int)
