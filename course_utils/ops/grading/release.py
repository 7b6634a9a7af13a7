"""The student release: an nbgrader course folder built from the instructor notebooks.

``build_course`` writes ``nbgrader_config.py`` and ``source/<assignment>/`` (each instructor notebook with its long
cells switched to ``--recorded`` and its parameters cell locked: ``for_students``), then nbgrader's
``generate_assignment`` fills ``gradebook.db`` and ``release/`` (solutions stubbed, hidden tests removed, outputs
cleared). It refuses notebooks whose long cells have no up-to-date record (``check_records``): a release would
compute them, or load results of other code.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ...core import atomic
from ...records import results
from .. import replay
from ..processes import run_python
from .cells import NOTEBOOKS, meta, pick, source

__all__ = ["COURSE_ID", "DEFAULT_COURSE", "STUB", "api", "build_course", "check_records", "for_students", "release"]

DEFAULT_COURSE = results.output_dir() / "grading"
COURSE_ID = "dataset-distillation"
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"


def nbgrader_config(cell_timeout: int) -> str:
    """The course folder's ``nbgrader_config.py``."""
    return (
        "# Written by `python -m course_utils grading`: edit the instructor notebooks, not this folder.\n"
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.course_id = {COURSE_ID!r}\n"
        f"c.ClearSolutions.code_stub = {{'python': {STUB!r}}}\n"
        "c.Autograde.create_student = True\n"
        f"c.Execute.timeout = {int(cell_timeout)}  # seconds per cell: a loop that never ends loses that cell\n"
        "c.Execute.interrupt_on_timeout = True\n"
        "c.Execute.raise_on_iopub_timeout = False\n"
    )


def for_students(nb: dict) -> dict:
    """The source notebook nbgrader releases and grades with: long cells load their records (``--recorded``), the
    parameters cell is locked (graded with the defaults, whatever a student changed)."""
    nb = json.loads(json.dumps(nb))
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        long = replay.long_cell(source(cell))
        if long:
            head, line, body = long
            if not replay.parse_line(line).recorded:
                line = f"{line.split('#')[0].rstrip()} --recorded  # delete --recorded to compute this cell"
            cell["source"] = f"{head}{line}\n{body}"
        if "parameters" in cell.get("metadata", {}).get("tags", []) and not meta(cell):
            cell["metadata"]["nbgrader"] = {
                "grade": False,
                "grade_id": f"parameters_{i}",
                "locked": True,
                "schema_version": 3,
                "solution": False,
                "task": False,
            }
    return nb


def check_records(nb: dict, name: str) -> list[str]:
    """Problems of ``nb``'s long cells for a student release: a record missing, or made from other code."""
    problems = []
    for cell in nb["cells"]:
        long = replay.long_cell(source(cell)) if cell["cell_type"] == "code" else None
        if long:
            _, line, body = long
            args = replay.parse_line(line)
            path = replay.record_path(args.name)
            if not path.exists():
                problems.append(f"{name}: no record {path.name} (run `python -m course_utils grading record`)")
                continue
            record = replay.read(path)
            if record["source"] != replay.source_hash(body):
                problems.append(f"{name}: the cell of {path.name} changed since it was recorded")
            missing = sorted(set(args.outputs) - set(record["outputs"]))
            if missing:
                problems.append(f"{name}: {path.name} lacks the outputs {missing}")
    return problems


def build_course(course: Path, chosen: dict[str, Path], cell_timeout: int = 120) -> Path:
    """Write ``course``'s config and ``source/`` from the instructor notebooks, then ``generate_assignment`` each
    (which also fills ``gradebook.db`` and ``release/``). Refuses notebooks whose long cells have no valid record."""
    problems = [p for name, path in chosen.items() for p in check_records(json.loads(path.read_text()), name)]
    if problems:
        raise RuntimeError("the long cells' records are not up to date:\n  " + "\n  ".join(problems))
    course.mkdir(parents=True, exist_ok=True)
    atomic.write_text(course / "nbgrader_config.py", nbgrader_config(cell_timeout))
    for name, path in chosen.items():
        folder = course / "source" / name
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        atomic.write_text(folder / path.name, json.dumps(for_students(json.loads(path.read_text())), indent=1))
    out = run_python(["-m", "course_utils.ops.grading", "_generate", str(course), *chosen], course, 600)
    if out.returncode != 0:
        raise RuntimeError(f"nbgrader's generate_assignment failed:\n{out.stdout[-3000:]}")
    return course


def api(course: Path):
    """nbgrader's Python API on ``course`` with its ``nbgrader_config.py``, and that config."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    return NbGraderAPI(coursedir=CourseDirectory(config=config, root=str(course)), config=config), config


def generate(course: Path, names: list[str]) -> None:
    """In a process of its own (``_generate``): ``generate_assignment`` for each of ``names`` (fills the gradebook
    and release/)."""
    os.chdir(course)
    nbgrader, _ = api(course)
    for name in names:
        result = nbgrader.generate_assignment(name, force=True)
        if not result.get("success"):
            raise SystemExit(f"generate_assignment {name}:\n{result.get('log', '')}\n{result.get('error', '')}")


def release(
    selectors: list[str], course: Path = DEFAULT_COURSE, cell_timeout: int = 120, notebooks: Path = NOTEBOOKS
) -> Path:
    """The student versions of the chosen notebooks under ``course/release/``."""
    chosen = pick(selectors, notebooks)
    build_course(Path(course), chosen, cell_timeout)
    return Path(course) / "release"
