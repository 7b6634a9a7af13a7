"""How the course writes numbers and tables in its reports: markdown tables and "mean ± std" cells."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

__all__ = ["MISSING", "cell", "mean_std", "markdown_table"]

#: What a table shows for a value that is not there.
MISSING = "–"


def cell(value: Any, digits: int = 2) -> str:
    """A value as a table shows it: floats with ``digits`` decimals, None as ``MISSING``, the rest as ``str``."""
    if value is None:
        return MISSING
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def mean_std(mean: float | None, std: float | None, digits: int = 2) -> str:
    """``"91.23 ± 0.45"`` (``"91.23"`` without a spread, ``MISSING`` without a mean)."""
    if mean is None:
        return MISSING
    return f"{mean:.{digits}f}" + ("" if std is None else f" ± {std:.{digits}f}")


def markdown_table(header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> str:
    """A markdown table: one header line, the separator, one line per row (cells through ``cell``)."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
