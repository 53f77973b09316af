"""Byte sizes for people, as Docker and nerdctl print them.

`human_size` is `HumanSize` of github.com/docker/go-units (size.go): divide by 1000
while the size is at least 1000 (at most up to yottabytes), then format the quotient
with Go's `%.4g` and append the decimal unit. nerdctl prints
`"Total reclaimed space: " + HumanSize(reclaimed)` after `system prune`:

    human_size(0)          # "0B"
    human_size(999)        # "999B"
    human_size(1000)       # "1kB"
    human_size(1_934_000)  # "1.934MB"
    human_size(1.5e9)      # "1.5GB"
    human_size(999_950)    # "1000kB": 999.95 rounds up after the division

`%.4g` is reproduced from Go's strconv (`genericFtoa` with `formatDigits`): the exact
binary value is rounded to 4 significant digits, half to even, trailing zeros dropped,
and the exponent form (`1e+04`) used only below 1e-4 or from 1e4 up, which after the
division happens only for sizes of 1e28 bytes and more.
"""

from __future__ import annotations

import decimal
import math
from typing import Final

_BASE: Final = 1000.0
_DECIMAL_UNITS: Final = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_BASE: Final = 1024.0
_BINARY_UNITS: Final = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")
_PRECISION: Final = 4


def human_size(size: float) -> str:
    """Format a byte count the way `docker`/`nerdctl` do (go-units `HumanSize`).

    Args:
      size: A number of bytes. Negative sizes are not scaled (Go's loop only divides
        sizes of at least 1000), so `-5000` gives `"-5000B"`, as in Go.

    Returns:
      At most four significant digits and a decimal unit: `"1.934MB"`, `"0B"`.
      Infinities and NaN come out as Go prints them: `"+InfYB"`, `"-InfB"`, `"NaNB"`.
    """
    return _custom_size(size, _BASE, _DECIMAL_UNITS)


def bytes_size(size: float) -> str:
    """Format a byte count in binary units, as `docker info` prints Total Memory
    (go-units `BytesSize`): `bytes_size(4_000_000_000)` is `"3.725GiB"`."""
    return _custom_size(size, _BINARY_BASE, _BINARY_UNITS)


def _custom_size(size: float, base: float, units: tuple[str, ...]) -> str:
    # go-units' CustomSize with "%.4g%s".
    value = float(size)
    unit = 0
    while value >= base and unit < len(units) - 1:
        value /= base
        unit += 1
    return _go_format_g(value, _PRECISION) + units[unit]


def _go_format_g(value: float, precision: int) -> str:
    """`fmt.Sprintf("%.*g", precision, value)` for a float64, as Go formats it.

    Args:
      value: Any float.
      precision: The maximum number of significant digits, at least 1.

    Returns:
      Go's text for the value: the fixed form, or the exponent form with a sign and at
      least two exponent digits (`1.235e+06`); never trailing zeros in the fraction.
    """
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    digits, dp = _significant_digits(abs(value), precision)
    nd = len(digits)

    eprec = precision
    if eprec > nd >= dp:
        eprec = nd
    exp = dp - 1
    if exp < -4 or exp >= eprec:  # fmtE with min(precision, nd) significant digits
        fraction = digits[1 : min(precision, nd)]
        mantissa = (digits[:1] or "0") + (f".{fraction}" if fraction else "")
        exp = exp if nd else 0
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"

    # fmtF: the integer part padded with zeros, then the fraction digits Go asks for.
    integer = digits[:dp].ljust(dp, "0") if dp > 0 else "0"
    fraction_digits = max((nd if precision > dp else precision) - dp, 0)
    fraction = "".join(digits[j] if 0 <= j < nd else "0" for j in range(dp, dp + fraction_digits))
    return f"{sign}{integer}.{fraction}" if fraction else f"{sign}{integer}"


def _significant_digits(value: float, precision: int) -> tuple[str, int]:
    """Go's decimalSlice for a finite, non-negative float rounded to `precision` digits.

    Args:
      value: A finite float, at least 0.
      precision: How many significant digits to round to (half to even), at least 1.

    Returns:
      The digits without trailing zeros (`""` for zero), and the position of the decimal
      point relative to the first of them (`("15", 1)` for 1.5, `("1", -2)` for 0.001).
    """
    # Decimal(value) is the float's exact binary value, so this is the only rounding.
    rounding = decimal.Context(prec=precision, rounding=decimal.ROUND_HALF_EVEN)
    rounded = rounding.plus(decimal.Decimal(value))
    exponent = rounded.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    all_digits = "".join(map(str, rounded.as_tuple().digits))
    digits = all_digits.rstrip("0")
    return digits, (len(all_digits) + exponent if digits else 0)
