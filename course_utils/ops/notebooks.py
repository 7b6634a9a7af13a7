"""The course's notebooks as papermill runs them: which there are, the parameters each declares, and the one function
that executes a notebook (``execute``: the sweep, ``python -m course_utils run`` and the GPU check all use it).

Parameter names are checked against a notebook's ``parameters`` cell before anything runs: papermill itself would
only warn about a typo and silently run the defaults. A value given for a list parameter on its own (``ipcs=10``)
means a one-element list (``[10]``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from ..records import results

__all__ = [
    "NOTEBOOK_DIR",
    "Outcome",
    "check_parameters",
    "declared_parameters",
    "describe_failure",
    "execute",
    "failed_path",
    "list_notebooks",
    "partial_path",
    "remove",
]

NOTEBOOK_DIR = results.REPO_ROOT / "notebooks"


def list_notebooks(selection: list[str] | None = None, folder: str | os.PathLike | None = None) -> list[Path]:
    """Numbered notebooks (of ``folder``, default the course's), optionally only those whose name starts with one
    of ``selection``; a selection that matches none raises ``ValueError`` naming it and the notebooks there are."""
    books = sorted(p for p in Path(folder or NOTEBOOK_DIR).glob("[0-9][0-9]_*.ipynb"))
    if selection:
        chosen = [p for p in books if any(p.name.startswith(s) for s in selection)]
        missing = [s for s in selection if not any(p.name.startswith(s) for p in books)]
        if missing:
            raise ValueError(f"no notebook matches {missing}; available: {', '.join(p.stem for p in books)}")
        books = chosen
    return books


def declared_parameters(path: Path) -> dict:
    """papermill's view of the notebook's ``parameters`` cell: name -> its default, type and help."""
    import papermill as pm

    return pm.inspect_notebook(str(path))


#: The Python types of the annotations a parameters cell uses (``name: type = value``).
_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "list": (list, tuple), "dict": (dict,)}


def check_parameters(path: Path, parameters: dict, values: bool = False) -> dict:
    """``parameters`` checked against the notebook's declarations; a scalar for a list parameter becomes a list. An
    undeclared name raises ``ValueError`` naming it and the declared ones.

    With ``values``, each value must also have its declared type (``None`` always means the profile's value) and
    pass the course's checks (``config.resolve``: a valid dataset, IPCs >= 1, ...); a bad one raises ``ValueError``
    naming it.
    """
    declared = declared_parameters(path)
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise ValueError(f"{path.name}: unknown parameter(s) {', '.join(unknown)}; declared: {', '.join(declared)}")
    out = dict(parameters)
    for name, value in parameters.items():
        kind = declared[name]["inferred_type_name"]
        if kind == "list" and value is not None and not isinstance(value, (list, tuple)):
            out[name] = value = [value]
        types = _TYPES.get(kind)
        if values and value is not None and types:
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                raise ValueError(f"{name}={value!r} is not of type {kind}, as {path.name} declares it")
    if values:
        from ..course import config, profiles

        notebook = path.stem if path.stem in profiles.NOTEBOOK_PROFILES else None
        own = profiles.OWN_PARAMETERS.get(path.stem, ())  # read by the notebook itself: no setting
        settings = {k: v for k, v in out.items() if k != "profile" and k not in own}
        config.resolve(out.get("profile", "quick"), notebook=notebook, **settings)  # raises naming a bad value
    return out


def describe_failure(exc: BaseException) -> str:
    """One line for a failed notebook: the cell and the error papermill reports (``ename: evalue``)."""
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename:
        cell = getattr(exc, "exec_count", None)
        where = f"cell {cell}: " if cell is not None else ""
        return f"{where}{ename}: {evalue}"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def partial_path(output: Path) -> Path:
    """Where ``execute`` writes while the notebook runs: ``<name>.partial.ipynb`` beside ``output``."""
    return output.with_name(f"{output.stem}.partial.ipynb")


def failed_path(output: Path) -> Path:
    """Where ``execute`` leaves the notebook of a failed run by default: ``<name>.failed.ipynb`` beside ``output``."""
    return output.with_name(f"{output.stem}.failed.ipynb")


def remove(*paths: str | Path) -> None:
    """Delete each file that exists."""
    for path in paths:
        Path(path).unlink(missing_ok=True)


@dataclass(frozen=True)
class Outcome:
    """One notebook's execution: ``error`` is ``None`` when every cell ran, else its one-line description;
    ``notebook`` is the executed notebook (``output``, or the failed one)."""

    notebook: Path
    seconds: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class _CellHooks:
    """nbclient's hooks (papermill hands them to its client): ``on_cell(k, n)`` just before code cell ``k`` of ``n``
    (numbered as in the executed notebook, papermill's injected parameters cell included) runs."""

    def __init__(self, on_cell: Callable[[int, int], Any]):
        self.on_cell, self.cells = on_cell, 0

    def notebook_start(self, notebook, **_) -> None:
        self.cells = len(notebook.cells)

    def cell_execute(self, cell, cell_index: int, **_) -> None:
        self.on_cell(cell_index + 1, self.cells)

    def kwargs(self) -> dict:
        return {"on_notebook_start": self.notebook_start, "on_cell_execute": self.cell_execute}


def execute(
    notebook: str | os.PathLike,
    output: str | os.PathLike,
    parameters: Mapping[str, Any] | None = None,
    *,
    failed: str | os.PathLike | None = None,
    cell_timeout: int | None = None,
    on_cell: Callable[[int, int], Any] | None = None,
) -> Outcome:
    """Execute ``notebook`` with papermill (``parameters`` injected, in the notebook's folder) into ``output``.

    Nothing half-written is ever left under ``output``: papermill writes ``<name>.partial.ipynb``, renamed to
    ``output`` when every cell succeeded. A failure (an error in a cell, a cell past ``cell_timeout`` seconds, a
    dead kernel) is returned, not raised: papermill's notebook goes to ``failed`` (default
    ``<name>.failed.ipynb``) and ``Outcome.error`` describes it (``cell 3: ValueError: ...``). An interruption
    (Ctrl-C, SIGTERM turned into ``KeyboardInterrupt``) removes the partial notebook and propagates.
    ``on_cell(k, n)`` is called as code cell k of n starts (progress).
    """
    import papermill as pm

    notebook, output = Path(notebook), Path(output)
    failed = Path(failed) if failed else failed_path(output)
    partial = partial_path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    remove(partial, failed)
    hooks = _CellHooks(on_cell).kwargs() if on_cell else {}
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(
            str(notebook),
            str(partial),
            parameters=dict(parameters or {}),
            cwd=str(notebook.parent),
            kernel_name="python3",
            progress_bar=False,
            execution_timeout=cell_timeout,
            **hooks,
        )
        os.replace(partial, output)
    except Exception as exc:  # the caller goes on: the failure is in the outcome and on disk
        if partial.exists():
            os.replace(partial, failed)
        return Outcome(failed, time.perf_counter() - t0, describe_failure(exc))
    except BaseException:  # interrupted: leave nothing half-written
        remove(partial)
        raise
    return Outcome(output, time.perf_counter() - t0)
