"""`human_size`: go-units `HumanSize` (size.go), down to Go's `%.4g`.

The expected strings are go-units' own (size_test.go) and values worked out from Go's
strconv (`formatDigits`): round the exact binary value half to even to four significant
digits, drop trailing zeros, and use the exponent form only from 1e4 up or below 1e-4.
"""

from __future__ import annotations

import math
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evactors.units import _go_format_g, bytes_size, human_size

# Hypothesis would otherwise write a .hypothesis/ directory into the shared checkout.
quick = settings(database=None, max_examples=500, deadline=None)

KB = 1000
MB = 1000 * KB
GB = 1000 * MB
TB = 1000 * GB
PB = 1000 * TB
UNITS = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        # go-units TestHumanSize
        (1000, "1kB"),
        (1024, "1.024kB"),
        (1000000, "1MB"),
        (1048576, "1.049MB"),
        (2 * MB, "2MB"),
        (3.42 * GB, "3.42GB"),
        (5.372 * TB, "5.372TB"),
        (2.22 * PB, "2.22PB"),
        (10000000000000 * PB, "1e+04YB"),
        # The brief's and nerdctl's everyday values
        (1934000, "1.934MB"),
        (0, "0B"),
        (999, "999B"),
        (1, "1B"),
        (1.5e9, "1.5GB"),
        (100, "100B"),
        (10 * KB, "10kB"),
        (120 * KB, "120kB"),
        (1_234_567, "1.235MB"),
        (7_340_032, "7.34MB"),
        (4_404_019, "4.404MB"),
        # One unit per step of 1000
        (KB, "1kB"),
        (MB, "1MB"),
        (GB, "1GB"),
        (TB, "1TB"),
        (PB, "1PB"),
        (1e18, "1EB"),
        (1e21, "1ZB"),
        (1e24, "1YB"),
        (1e27, "1000YB"),
        (9.999e27, "9999YB"),
        (1e28, "1e+04YB"),
        (1.5e30, "1.5e+06YB"),
        (sys.float_info.max, "1.798e+284YB"),
    ],
)
def test_human_size(size: float, expected: str):
    assert human_size(size) == expected


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        # The division comes first; rounding afterwards may reach 1000 in the same unit.
        (999_950, "1000kB"),  # 999.95 is 999.950000000000045...: rounds up
        (999_949, "999.9kB"),
        (999_500, "999.5kB"),
        (999_999, "1000kB"),
        (999_999_999, "1000MB"),
        (999.5, "999.5B"),
        (999.9999, "1000B"),
        (9999, "9.999kB"),
        (99_995, "100kB"),  # 99.995 is 99.99500000000000454...: rounds up
        (1_000_499, "1MB"),
        (1_000_500, "1MB"),  # 1.0005 is 1.00049999999999994...: rounds down
        (1_000_501, "1.001MB"),
        # Exact ties round half to even, as Go's ryuFtoaFixed64 does.
        (1.0625, "1.062B"),
        (1.1875, "1.188B"),
        (1062.5, "1.062kB"),
        (2.5625, "2.562B"),
        # Trailing zeros are dropped; no exponent for small fractions down to 1e-4.
        (1.5, "1.5B"),
        (0.5, "0.5B"),
        (0.0001, "0.0001B"),
        (0.00012345, "0.0001234B"),
        (0.00001, "1e-05B"),
        (1.5e-7, "1.5e-07B"),
        (5e-324, "4.941e-324B"),
    ],
)
def test_rounding_edges(size: float, expected: str):
    assert human_size(size) == expected


def test_tie_cases_follow_the_exact_binary_value():
    # Neither 99.995 nor 1.0005 is a binary float: the nearest doubles decide.
    assert f"{99_995 / 1000:.20f}".startswith("99.99500000000000454")
    assert f"{1_000_500 / 1_000_000:.20f}".startswith("1.00049999999999994")
    assert human_size(99_995) == "100kB"
    assert human_size(1_000_500) == "1MB"


def test_negative_sizes_are_not_scaled_as_in_go():
    # Go's loop only divides while size >= 1000.
    assert human_size(-1) == "-1B"
    assert human_size(-5000) == "-5000B"
    assert human_size(-50000) == "-5e+04B"
    assert human_size(-0.0) == "-0B"


def test_infinities_and_nan_as_go_prints_them():
    assert human_size(math.inf) == "+InfYB"
    assert human_size(-math.inf) == "-InfB"
    assert human_size(math.nan) == "NaNB"


def test_ints_and_floats_agree():
    for size in [0, 1, 999, 1000, 123_456_789, 2**53, 10**20]:
        assert human_size(size) == human_size(float(size))


@pytest.mark.parametrize(
    ("value", "precision", "expected"),
    [
        (1234567.0, 4, "1.235e+06"),
        (123456.0, 6, "123456"),
        (1234567.0, 6, "1.23457e+06"),
        (100.0, 4, "100"),
        (1000.0, 4, "1000"),
        (10000.0, 4, "1e+04"),
        (0.0, 4, "0"),
        (-0.0, 4, "-0"),
        (1e100, 4, "1e+100"),
        (1e-100, 4, "1e-100"),
        (0.1, 1, "0.1"),
        (15.0, 1, "2e+01"),
        (25.0, 1, "2e+01"),
        (1.0, 17, "1"),
        (0.1, 17, "0.10000000000000001"),
    ],
)
def test_go_format_g(value: float, precision: int, expected: str):
    assert _go_format_g(value, precision) == expected


def reference_human_size(size: float) -> str:
    """HumanSize with C's %g, which for finite values agrees with Go's: both round the
    exact value half to even and choose the form by the rounded exponent."""
    unit = 0
    while size >= 1000 and unit < len(UNITS) - 1:
        size /= 1000
        unit += 1
    return f"{size:.4g}{UNITS[unit]}"


@quick
@given(size=st.floats(allow_nan=False, allow_infinity=False))
def test_human_size_matches_reference_for_any_float(size: float):
    assert human_size(size) == reference_human_size(size)


@quick
@given(size=st.integers(0, 2**64))
def test_human_size_of_byte_counts(size: int):
    text = human_size(size)
    assert text == reference_human_size(float(size))
    number, unit = text.rstrip("BkMGTPEZY"), text[len(text.rstrip("BkMGTPEZY")) :]
    assert unit in UNITS
    value = float(number)
    assert 0 <= value <= 1000
    assert len(number.replace(".", "").lstrip("0")) <= 4
    assert not ("." in number and number.endswith("0"))
    # Four significant digits: within half a unit in the fourth digit.
    scale = 1000.0 ** UNITS.index(unit)
    assert math.isclose(value * scale, size, rel_tol=5e-4, abs_tol=0.5)


@quick
@given(
    value=st.floats(allow_nan=False, allow_infinity=False),
    precision=st.integers(1, 17),
)
def test_go_format_g_matches_c_g_for_finite_values(value: float, precision: int):
    assert _go_format_g(value, precision) == f"{value:.{precision}g}"


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0B"),
        (1023, "1023B"),
        (1024, "1KiB"),
        (1536, "1.5KiB"),
        (4_000_000_000, "3.725GiB"),
        (1024**3 * 16, "16GiB"),
    ],
)
def test_bytes_size_is_go_units_bytes_size(size, text):
    assert bytes_size(size) == text
