"""The grid of a sweep: axes of values (``-p NAME V1,V2``, a grid file), the runs they expand to, each checked
against its notebook before anything starts, and each run's files (its name, its state on disk)."""

from __future__ import annotations

import ast
import itertools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..records import results
from . import notebooks

__all__ = ["Grid", "Run", "SweepError", "expand", "literal", "load_grid", "parse_values", "status", "validate"]

#: Keys a grid file may hold.
GRID_KEYS = ("notebooks", "profile", "parameters")
_MAX_NAME = 150  # characters of a run's file name before it is shortened with a hash


class SweepError(ValueError):
    """A grid that cannot run as given (unknown notebook or parameter, bad value): nothing was started."""


def parse_values(text: str) -> list:
    """The values of one axis: ``"a..b"`` is the integers a to b, else comma-separated values outside brackets and
    quotes, each read as a Python literal (``"[1,10]"`` is one list) or kept as text (``mnist``)."""
    text = str(text).strip()
    match = re.fullmatch(r"(-?\d+)\.\.(-?\d+)", text)
    if match:
        low, high = int(match[1]), int(match[2])
        if high < low:
            raise SweepError(f"empty range {text!r}: write low..high with low <= high")
        return list(range(low, high + 1))
    parts, depth, quote, current = [], 0, None, ""
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += char
    parts.append(current)
    if depth != 0 or quote:
        raise SweepError(f"unbalanced brackets or quotes in {text!r}")
    return [literal(p.strip()) for p in parts if p.strip()]


def literal(text: str) -> Any:
    """``text`` read as a Python literal (``10``, ``[1, 10]``, ``'a'``), else the text itself (``mnist``)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


@dataclass
class Grid:
    """Notebooks (number prefixes) × the product of ``axes`` (name -> values), all with ``profile`` unless an axis
    names ``profile``."""

    notebooks: list[str]
    profile: str = "quick"
    axes: dict[str, list] = field(default_factory=dict)


def _axis(name: str, value: Any) -> list:
    if isinstance(value, str):
        return parse_values(value)
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if not values:
        raise SweepError(f"parameter {name!r} has no values")
    return values


def load_grid(path: str | os.PathLike) -> Grid:
    """A grid file (YAML)::

    notebooks: ["03", "04", "05"]
    profile: quick
    parameters:
      dataset: [mnist, fashion_mnist]   # a list is an axis: one run per value
      ipcs: [[1], [10], [50]]           # so a list-valued parameter's values are lists
      seed: 0..4                        # a range
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise SweepError(f"no grid file {path}")
    spec = yaml.safe_load(path.read_text()) or {}
    if not isinstance(spec, dict):
        raise SweepError(f"{path}: a grid file is a mapping with keys {', '.join(GRID_KEYS)}")
    unknown = sorted(set(spec) - set(GRID_KEYS))
    if unknown:
        raise SweepError(f"{path}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(GRID_KEYS)}")
    notebooks = spec.get("notebooks") or []
    notebooks = [notebooks] if isinstance(notebooks, (str, int)) else notebooks
    parameters = spec.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise SweepError(f"{path}: 'parameters' must map names to values")
    return Grid(
        notebooks=[f"{n:02d}" if isinstance(n, int) else str(n) for n in notebooks],  # YAML reads 03 as 3
        profile=str(spec.get("profile", "quick")),
        axes={str(name): _axis(name, value) for name, value in parameters.items()},
    )


@dataclass(frozen=True)
class Run:
    """One notebook with one set of parameters (``params`` always holds ``profile``)."""

    notebook: Path
    params: tuple  # sorted (name, value) pairs, hashable

    @property
    def parameters(self) -> dict:
        return dict(self.params)

    @property
    def name(self) -> str:
        """``<profile>__<name>=<value>__...``: the parameters given, in name order, readable in a file listing."""
        params = self.parameters
        parts = [str(params["profile"])] + [f"{k}={_fmt(v)}" for k, v in sorted(params.items()) if k != "profile"]
        name = re.sub(r"[^A-Za-z0-9_.=+-]+", "-", "__".join(parts))
        if len(name) > _MAX_NAME:
            name = f"{name[:_MAX_NAME]}__{results.params_hash(params)}"
        return name

    @property
    def label(self) -> str:
        return f"{self.notebook.stem}/{self.name}"

    def paths(self, out: Path) -> dict[str, Path]:
        done = out / "notebooks" / self.notebook.stem / f"{self.name}.ipynb"
        return {
            "done": done,
            "partial": notebooks.partial_path(done),
            "failed": notebooks.failed_path(done),
            "error": done.with_name(f"{self.name}.failed.txt"),
            "log": out / "logs" / self.notebook.stem / f"{self.name}.log",
        }


def _fmt(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "-".join(_fmt(v) for v in value) or "empty"
    return str(value)


def expand(grid: Grid, notebook_dir: str | os.PathLike | None = None) -> list[Run]:
    """Every run of ``grid`` (notebooks in number order, then the axes' product in the order given), validated
    before any of them starts (``validate``)."""
    try:
        books = notebooks.list_notebooks(grid.notebooks or None, notebook_dir)
    except ValueError as err:
        raise SweepError(str(err)) from None
    axes = {"profile": [grid.profile], **grid.axes}
    names = list(axes)
    runs = []
    for book in books:
        for values in itertools.product(*(axes[n] for n in names)):
            runs.append(Run(book, tuple(sorted(zip(names, values)))))
    return validate(runs)


def validate(runs: Sequence[Run]) -> list[Run]:
    """Check every run's names and values against its notebook (``notebooks.check_parameters``); raise one
    ``SweepError`` listing every problem, so that nothing starts. Returns the runs with values coerced (a scalar
    given to a list parameter becomes a one-element list)."""
    problems: dict[str, list[str]] = {}  # message -> the runs it concerns
    checked, seen = [], set()
    for run in runs:
        try:
            params = notebooks.check_parameters(run.notebook, run.parameters, values=True)
        except (ValueError, TypeError) as err:
            problems.setdefault(str(err), []).append(run.label)
            continue
        coerced = Run(run.notebook, tuple(sorted(params.items())))
        if coerced.label in seen:
            problems.setdefault("two runs of the grid have the same parameters", []).append(coerced.label)
        seen.add(coerced.label)
        checked.append(coerced)
    if problems:
        lines = [
            f"{message} ({labels[0]}" + (f" and {len(labels) - 1} more run(s))" if len(labels) > 1 else ")")
            for message, labels in problems.items()
        ]
        raise SweepError("the grid cannot run; nothing was started:\n  " + "\n  ".join(lines))
    return checked


def status(run: Run, out: Path) -> str:
    """``done`` (its executed notebook exists), ``failed`` (its failure notebook or error line does) or ``pending``."""
    paths = run.paths(out)
    if paths["done"].exists():
        return "done"
    return "failed" if paths["error"].exists() or paths["failed"].exists() else "pending"
