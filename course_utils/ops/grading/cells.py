"""The graded cells of the instructor notebooks (nbgrader's cell metadata): which notebooks are assignments, their
exercises, the instructor's solutions and the stubs that replace them."""

from __future__ import annotations

import json
from pathlib import Path

from ...records import results

__all__ = [
    "NOTEBOOKS",
    "assignments",
    "choose",
    "exercises",
    "graded_cells",
    "meta",
    "pick",
    "source",
    "strip_markers",
    "stub_solutions",
    "with_solutions",
]

#: The instructor notebooks: the only source of the release and of the grading.
NOTEBOOKS = results.REPO_ROOT / "notebooks"


def meta(cell: dict) -> dict:
    """A cell's nbgrader metadata (empty for a cell nbgrader does not manage)."""
    return cell.get("metadata", {}).get("nbgrader", {})


def source(cell: dict) -> str:
    """A cell's source as one string (notebook files store it as a list of lines or as a string)."""
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def graded_cells(nb: dict) -> list[dict]:
    """The test cells that carry points (nbgrader ``grade`` cells), in notebook order."""
    return [c for c in nb["cells"] if meta(c).get("grade")]


def exercises(nb: dict) -> list[dict]:
    """``[{"grade_id", "points", "solution_id"}]`` of a notebook: each graded cell and the solution cell above it."""
    out, solution = [], None
    for cell in nb["cells"]:
        info = meta(cell)
        if info.get("solution"):
            solution = info["grade_id"]
        if info.get("grade"):
            out.append({"grade_id": info["grade_id"], "points": float(info["points"]), "solution_id": solution})
    return out


def assignments(folder: Path = NOTEBOOKS) -> dict[str, Path]:
    """Assignment name → instructor notebook, for every notebook of ``folder`` with graded cells."""
    out = {}
    for path in sorted(Path(folder).glob("[0-9][0-9]_*.ipynb")):
        if graded_cells(json.loads(path.read_text())):
            out[path.stem] = path
    return out


def choose(
    selectors: list[str], available: dict[str, Path], what: str = "notebook", them: str = "the notebooks"
) -> dict[str, Path]:
    """The entries of ``available`` named by ``selectors`` (numbers like ``03`` or full names); all when empty. A
    selector that names none raises ``ValueError``: ``no <what> '<selector>'; <them> are <the valid names>``."""
    if not selectors:
        return dict(available)
    chosen = {}
    for sel in selectors:
        found = {name: path for name, path in available.items() if name == sel or name.split("_")[0] == sel.zfill(2)}
        if not found:
            raise ValueError(f"no {what} {sel!r}; {them} are {', '.join(available)}")
        chosen.update(found)
    return chosen


def pick(selectors: list[str], folder: Path = NOTEBOOKS) -> dict[str, Path]:
    """The assignments named by ``selectors`` (numbers like ``03`` or full names); all when empty."""
    available = assignments(folder)
    if not available:
        raise ValueError(f"no notebook in {folder} has graded cells")
    return choose(selectors, available, "graded notebook", "the graded ones")


def strip_markers(text: str) -> str:
    """A solution cell's code as the instructor wrote it, without nbgrader's markers."""
    keep = [line for line in text.splitlines() if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION")]
    return "\n".join(keep) + "\n"


def with_solutions(student_nb: dict, instructor_nb: dict) -> dict:
    """``student_nb`` with every solution cell replaced by the instructor's solution (a reference submission)."""
    solutions = {meta(c)["grade_id"]: source(c) for c in instructor_nb["cells"] if meta(c).get("solution")}
    nb = json.loads(json.dumps(student_nb))
    for cell in nb["cells"]:
        gid = meta(cell).get("grade_id")
        if meta(cell).get("solution") and gid in solutions:
            cell["source"] = strip_markers(solutions[gid])
    return nb


def stub_solutions(nb: dict, keep: str) -> dict:
    """``nb`` with every solution cell but ``keep`` replaced by a stub that keeps the cell's imports (an exercise
    graded alone)."""
    nb = json.loads(json.dumps(nb))
    for cell in nb["cells"]:
        info = meta(cell)
        if info.get("solution") and info.get("grade_id") != keep:
            head = [line for line in source(cell).splitlines() if line.startswith(("import ", "from "))]
            cell["source"] = "\n".join(head + ["def _stubbed():", "    raise NotImplementedError()"]) + "\n"
    return nb
