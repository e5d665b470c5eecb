"""Every numeric flag and option value is parsed here: NaN, infinity, sign and
range are checked in one place, for argparse flags, `--analysis k=v` options
and pipeline files alike.

`integer(lo, hi)` and `number(lo, hi)` return parsers that argparse takes as
`type=`; they raise `BadValue` (an argparse.ArgumentTypeError, so argparse
prints its message) with a message that says what is allowed.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

Parse = Callable[[Any], Any]


class BadValue(argparse.ArgumentTypeError, ValueError):
    """A value out of range, not finite, or not a number."""


def _text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _bounds(lo: float | None, hi: float | None) -> str:
    """' between 0 and 1', ' >= 1', ' <= 5' or ''."""
    if lo is not None and hi is not None:
        return f" between {_text(lo)} and {_text(hi)}"
    if lo is not None:
        return f" >= {_text(lo)}"
    return f" <= {_text(hi)}" if hi is not None else ""


def integer(lo: int | None = None, hi: int | None = None) -> Parse:
    """A parser of whole numbers in [lo, hi] (1.0 is 1; 1.5, nan and 'x' are refused)."""

    def parse(text: Any) -> int:
        value = _as_float(text, "a whole number")
        if not value.is_integer():
            raise BadValue(f"must be a whole number, got {text!r}")
        return int(_check(value, text, lo, hi, "a whole number"))

    parse.__name__ = "integer"
    return parse


def number(lo: float | None = None, hi: float | None = None, *,
           above: bool = False) -> Parse:
    """A parser of finite numbers in [lo, hi] ((lo, hi] with `above`)."""

    def parse(text: Any) -> float:
        value = _as_float(text, "a number")
        if above and lo is not None and value <= lo:
            raise BadValue(f"must be more than {_text(lo)}, got {text!r}")
        return _check(value, text, lo, hi, "a number")

    parse.__name__ = "number"
    return parse


def _as_float(text: Any, what: str) -> float:
    if isinstance(text, bool):
        raise BadValue(f"must be {what}, got {text!r}")
    try:
        value = float(text)
    except (TypeError, ValueError, OverflowError):
        raise BadValue(f"must be {what}, got {text!r}") from None
    if not math.isfinite(value):
        raise BadValue(f"must be a finite number, got {text!r}")
    return value


def _check(value: float, text: Any, lo: float | None, hi: float | None, what: str) -> float:
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise BadValue(f"must be {what}{_bounds(lo, hi)}, got {text!r}")
    return value


def fraction(text: Any) -> float:
    """A finite number in [0, 1]."""
    return float(number(0, 1)(text))


def seconds(text: Any) -> float:
    """A duration in seconds: finite, at least 0, at most a week."""
    return float(number(0, 7 * 86400)(text))


def positive_seconds(text: Any) -> float:
    """A duration in seconds: finite, more than 0, at most a week."""
    return float(number(0, 7 * 86400, above=True)(text))


def one_of(*choices: str) -> Parse:
    """A parser of one of the names `choices` (exact, case-sensitive)."""

    def parse(text: Any) -> str:
        if str(text) not in choices:
            raise BadValue(f"must be one of {', '.join(choices)}, got {text!r}")
        return str(text)

    return parse
