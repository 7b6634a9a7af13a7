"""Progress bars that help a reader at a laptop and stay quiet in CI logs.

tqdm writes to stderr, which nbval is told not to compare (see ``conftest.py``). Bars are
disabled when ``CI`` or ``TQDM_DISABLE`` is set, so CI logs hold only the timing lines.
"""

from __future__ import annotations

import os
from typing import Iterable, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress_enabled() -> bool:
    return not (os.environ.get("CI") or os.environ.get("TQDM_DISABLE"))


def progress(
    iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "", leave: bool = False
) -> tqdm:
    """A tqdm bar over ``iterable`` (or a manual one with ``total``), refreshed at most once a second."""
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        leave=leave,
        mininterval=1.0,
        disable=not progress_enabled(),
        dynamic_ncols=True,
    )
