"""Checks of user-supplied values, shared by every module: a bad value gets an error naming it and what is valid.

Each function returns the (possibly normalised) value, so callers write ``ipc = validate.positive_int("ipc", ipc)``.
Booleans are rejected where numbers are expected (``True`` is an ``int`` to Python, never a sensible ``ipc``).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Iterable

__all__ = ["positive_int", "non_negative_int", "positive_number", "number_in", "choice", "is_number", "ipc"]


def is_number(value: Any) -> bool:
    """A real number that is not a bool (ints and floats, numpy scalars included)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def positive_int(name: str, value: Any, *, minimum: int = 1, allow_none: bool = False) -> Any:
    """An integer ``>= minimum`` (``None`` passes when ``allow_none``)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        extra = " or None" if allow_none else ""
        raise ValueError(f"{name} must be an integer >= {minimum}{extra}, got {value!r}")
    return value


def non_negative_int(name: str, value: Any) -> int:
    return positive_int(name, value, minimum=0)


def positive_number(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """A finite number ``> 0`` (``>= 0`` with ``allow_zero``)."""
    if not is_number(value) or not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return value


def number_in(name: str, value: Any, low: float, high: float, *, closed_high: bool = False) -> float:
    """A number in ``[low, high)`` (``[low, high]`` with ``closed_high``)."""
    ok = is_number(value) and math.isfinite(value) and low <= value and (value <= high if closed_high else value < high)
    if not ok:
        raise ValueError(f"{name} must be in [{low}, {high}{']' if closed_high else ')'}, got {value!r}")
    return value


def choice(name: str, value: Any, valid: Iterable[Any]) -> Any:
    """``value`` if it is one of ``valid`` (compared with ``==`` and the same type), else a ValueError listing them."""
    valid = tuple(valid)
    if not any(type(value) is type(v) and value == v for v in valid):
        raise ValueError(f"{name}={value!r} is not valid; valid: {', '.join(map(str, valid))}")
    return value


def ipc(value: Any, train_set) -> int:
    """Images per class: an integer >= 1 that the smallest class of ``train_set`` can supply."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"ipc (images per class) must be an integer >= 1, got {value!r}")
    smallest = int(train_set.class_counts.min())
    if value > smallest:
        raise ValueError(f"ipc={value} is larger than the smallest class of {train_set.name} ({smallest} images)")
    return value
