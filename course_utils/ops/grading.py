r"""Graded assignments with nbgrader: the student release, the autograder and the grade report.

The instructor notebooks in ``notebooks/`` are the only source: their graded exercises are nbgrader cells (a
solution cell with ``### BEGIN SOLUTION`` / ``### END SOLUTION``, a locked test cell with visible asserts and
``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN TESTS``, and its points). Every notebook is one assignment, named by
its file (``03_gradient_matching``). Three commands, run from the course checkout:

    python -m course_utils.ops.grading release [NN ...]             # the student versions
    python -m course_utils.ops.grading grade SUBMISSIONS [--workers 2]  # autograde + report + feedback
    python -m course_utils.ops.grading record [NN ...]              # re-record the long cells' results

``release`` builds an nbgrader course folder (default ``output/grading``, git-ignored): ``source/`` (the instructor
notebooks with their long cells switched to ``--recorded``, see ``replay``, and the parameters cell locked),
``release/<assignment>/<notebook>.ipynb`` (solutions replaced by a ``NotImplementedError`` stub, hidden tests
removed, outputs cleared) and ``gradebook.db``. Hand out ``release/`` as it is, or run nbgrader's
``release_assignment`` in that folder to use its exchange.

``grade`` takes a folder of submissions, ``SUBMISSIONS/<student>/<notebook>.ipynb`` or nbgrader's
``SUBMISSIONS/<student>/<assignment>/<notebook>.ipynb``. It rebuilds the gradebook from the instructor notebooks,
then grades every student **in a throw-away copy of the course, in a process group of its own** with a time limit
(``--notebook-timeout``) on top of nbgrader's per-cell limit (``--cell-timeout``), so that a submission that
loops, crashes its kernel, deletes files around it or fails at import loses its own points and nothing else. It
writes ``grades.csv`` (student, assignment, exercise, points, max points, status, failure message),
``summary.csv`` (per student and assignment) and ``feedback/<student>/<assignment>/`` (the graded notebook with
the hidden tests' results, and nbgrader's HTML feedback). The copy does not stop code that writes to absolute
paths: grade untrusted submissions as a user that can write nowhere else, or in a container.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..core import atomic
from ..records import results
from . import replay
from .processes import run_python

NOTEBOOKS = results.REPO_ROOT / "notebooks"
DEFAULT_COURSE = results.output_dir() / "grading"
COURSE_ID = "dataset-distillation"
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"


def nbgrader_config(cell_timeout: int) -> str:
    """The course folder's ``nbgrader_config.py``."""
    return (
        "# Written by `python -m course_utils.ops.grading`: edit the instructor notebooks, not this folder.\n"
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.course_id = {COURSE_ID!r}\n"
        f"c.ClearSolutions.code_stub = {{'python': {STUB!r}}}\n"
        "c.Autograde.create_student = True\n"
        f"c.Execute.timeout = {int(cell_timeout)}  # seconds per cell: a loop that never ends loses that cell\n"
        "c.Execute.interrupt_on_timeout = True\n"
        "c.Execute.raise_on_iopub_timeout = False\n"
    )


# ---------------------------------------------------------------------------------------------------- notebooks


def assignments(folder: Path = NOTEBOOKS) -> dict[str, Path]:
    """Assignment name → instructor notebook, for every notebook of ``folder`` with graded cells."""
    out = {}
    for path in sorted(Path(folder).glob("[0-9][0-9]_*.ipynb")):
        if graded_cells(json.loads(path.read_text())):
            out[path.stem] = path
    return out


def pick(selectors: list[str], folder: Path = NOTEBOOKS) -> dict[str, Path]:
    """The assignments named by ``selectors`` (numbers like ``03`` or full names); all when empty."""
    available = assignments(folder)
    if not available:
        raise ValueError(f"no notebook in {folder} has graded cells")
    if not selectors:
        return available
    chosen = {}
    for sel in selectors:
        found = [name for name in available if name == sel or name.split("_")[0] == sel.zfill(2)]
        if not found:
            raise ValueError(f"no graded notebook {sel!r}; the graded ones are {', '.join(available)}")
        chosen.update({name: available[name] for name in found})
    return chosen


def _meta(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def graded_cells(nb: dict) -> list[dict]:
    """The test cells that carry points (nbgrader ``grade`` cells), in notebook order."""
    return [c for c in nb["cells"] if _meta(c).get("grade")]


def exercises(nb: dict) -> list[dict]:
    """``[{"grade_id", "points", "solution_id"}]`` of a notebook: each graded cell and the solution cell above it."""
    out, solution = [], None
    for cell in nb["cells"]:
        meta = _meta(cell)
        if meta.get("solution"):
            solution = meta["grade_id"]
        if meta.get("grade"):
            out.append({"grade_id": meta["grade_id"], "points": float(meta["points"]), "solution_id": solution})
    return out


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def for_students(nb: dict) -> dict:
    """The source notebook nbgrader releases and grades with: long cells load their records (``--recorded``), the
    parameters cell is locked (graded with the defaults, whatever a student changed)."""
    nb = json.loads(json.dumps(nb))
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        long = replay.long_cell(_source(cell))
        if long:
            head, line, body = long
            if not replay.parse_line(line).recorded:
                line = f"{line.split('#')[0].rstrip()} --recorded  # delete --recorded to compute this cell"
            cell["source"] = f"{head}{line}\n{body}"
        if "parameters" in cell.get("metadata", {}).get("tags", []) and not _meta(cell):
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
        long = replay.long_cell(_source(cell)) if cell["cell_type"] == "code" else None
        if long:
            _, line, body = long
            args = replay.parse_line(line)
            path = replay.record_path(args.name)
            if not path.exists():
                problems.append(f"{name}: no record {path.name} (run `python -m course_utils.ops.grading record`)")
                continue
            record = replay.read(path)
            if record["source"] != replay.source_hash(body):
                problems.append(f"{name}: the cell of {path.name} changed since it was recorded")
            missing = sorted(set(args.outputs) - set(record["outputs"]))
            if missing:
                problems.append(f"{name}: {path.name} lacks the outputs {missing}")
    return problems


def strip_markers(source: str) -> str:
    """A solution cell's code as the instructor wrote it, without nbgrader's markers."""
    keep = [line for line in source.splitlines() if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION")]
    return "\n".join(keep) + "\n"


def with_solutions(student_nb: dict, instructor_nb: dict) -> dict:
    """``student_nb`` with every solution cell replaced by the instructor's solution (a reference submission)."""
    solutions = {_meta(c)["grade_id"]: _source(c) for c in instructor_nb["cells"] if _meta(c).get("solution")}
    nb = json.loads(json.dumps(student_nb))
    for cell in nb["cells"]:
        gid = _meta(cell).get("grade_id")
        if _meta(cell).get("solution") and gid in solutions:
            cell["source"] = strip_markers(solutions[gid])
    return nb


# ---------------------------------------------------------------------------------------------------- course folder


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


def _api(course: Path):
    """nbgrader's Python API on ``course`` with its ``nbgrader_config.py``."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    return NbGraderAPI(coursedir=CourseDirectory(config=config, root=str(course)), config=config), config


def _generate(course: Path, names: list[str]) -> None:
    """In a process of its own: ``generate_assignment`` for each of ``names`` (fills the gradebook and release/)."""
    os.chdir(course)
    api, _ = _api(course)
    for name in names:
        result = api.generate_assignment(name, force=True)
        if not result.get("success"):
            raise SystemExit(f"generate_assignment {name}:\n{result.get('log', '')}\n{result.get('error', '')}")


def release(
    selectors: list[str], course: Path = DEFAULT_COURSE, cell_timeout: int = 120, notebooks: Path = NOTEBOOKS
) -> Path:
    """The student versions of the chosen notebooks under ``course/release/``."""
    chosen = pick(selectors, notebooks)
    build_course(Path(course), chosen, cell_timeout)
    return Path(course) / "release"


# ---------------------------------------------------------------------------------------------------- grading


@dataclass
class Submission:
    student: str
    assignment: str
    notebook: Path


@dataclass
class Outcome:
    """One student's one assignment: rows of the report, and the feedback files written."""

    student: str
    assignment: str
    rows: list[dict] = field(default_factory=list)
    feedback: list[Path] = field(default_factory=list)
    log: str = ""
    seconds: float | None = None  # the notebook's grading run, kernel start and feedback included


STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")


def find_submissions(folder: Path, known: dict[str, Path]) -> tuple[list[Submission], list[str]]:
    """Submissions under ``folder`` (``<student>/<nb>.ipynb`` or ``<student>/<assignment>/<nb>.ipynb``) and the
    files that are not one, each with the reason."""
    if not folder.is_dir():
        raise FileNotFoundError(f"no submissions folder {folder}")
    found, skipped = [], []
    for student_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        student = student_dir.name
        if not STUDENT_ID.match(student):
            skipped.append(f"{student_dir}: a student id is letters, digits, '_', '.', '@', '-'")
            continue
        for nb in sorted(student_dir.rglob("*.ipynb")):
            if ".ipynb_checkpoints" in nb.parts:
                continue
            if nb.stem not in known:
                skipped.append(f"{nb}: not a graded notebook ({', '.join(known)})")
                continue
            found.append(Submission(student, nb.stem, nb))
    return found, skipped


def _error_message(cell: dict, cell_timeout: int | None = None) -> str:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            name = out.get("ename", "Error")
            if name in ("KeyboardInterrupt", "CellTimeoutError"):
                return f"the cell ran past the time limit ({cell_timeout} s a cell) and was stopped"
            value = re.sub(r"\x1b\[[0-9;]*m", "", str(out.get("evalue", ""))).strip()
            return f"{name}: {value}"[:300] if value else name
    return ""


def _messages(cells: list[dict], cell_timeout: int) -> dict[str, str]:
    """grade_id → why its tests failed: the solution cell's own error when it raised (a missing import, a syntax
    error), else the tests' error."""
    out, solution_error = {}, ""
    for cell in cells:
        meta = _meta(cell)
        if meta.get("solution"):
            solution_error = _error_message(cell, cell_timeout)
        if meta.get("grade"):
            tests_error = _error_message(cell, cell_timeout)
            out[meta["grade_id"]] = f"the solution cell failed: {solution_error}" if solution_error else tests_error
    return out


def _stub_solutions(nb: dict, keep: str) -> dict:
    """``nb`` with every solution cell but ``keep`` replaced by the release's stub."""
    nb = json.loads(json.dumps(nb))
    for cell in nb["cells"]:
        meta = _meta(cell)
        if meta.get("solution") and meta.get("grade_id") != keep:
            head = [line for line in _source(cell).splitlines() if line.startswith(("import ", "from "))]
            cell["source"] = "\n".join(head + ["def _stubbed():", "    raise NotImplementedError()"]) + "\n"
    return nb


def _worker(course: Path, student: str, assignments_: list[str], result: Path) -> None:
    """In a process of its own: autograde ``student``'s ``assignments_`` in ``course`` (a throw-away copy), write
    each one's scores, failure messages and feedback files to ``result`` (outside the copy) as soon as known."""
    from nbgrader.api import Gradebook

    os.chdir(course)
    api, config = _api(course)
    timeout = int(config.Execute.timeout)
    done: dict[str, dict] = {}
    feedback_dir = result.parent / "feedback"
    for assignment in assignments_:
        entry: dict = {"scores": {}, "messages": {}, "log": ""}
        start = time.perf_counter()
        try:
            graded = api.autograde(assignment, student, force=True, create=True)
            entry["log"] = str(graded.get("log", ""))[-3000:] + str(graded.get("error", "") or "")[-3000:]
            path = course / "autograded" / student / assignment / f"{assignment}.ipynb"
            if graded.get("success") and path.exists():
                with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
                    nb = gb.find_submission_notebook(assignment, assignment, student)
                    entry["scores"] = {g.name: [float(g.score), float(g.max_score)] for g in nb.grades}
                cells = json.loads(path.read_text())["cells"]
                entry["messages"] = _messages(cells, timeout)
                dest = feedback_dir / assignment
                dest.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, dest / path.name)
                if api.generate_feedback(assignment, student, force=True).get("success"):
                    html = course / "feedback" / student / assignment / f"{assignment}.html"
                    if html.exists():
                        shutil.copy(html, dest / html.name)
        except Exception as exc:  # the submission damaged its copy of the course: its own loss, reported
            entry["log"] += f"\n{type(exc).__name__}: {exc}"
            entry["scores"] = {}
        entry["seconds"] = round(time.perf_counter() - start, 1)
        done[assignment] = entry
        atomic.write_json(result, done)


def _run_worker(
    master: Path, student: str, notebooks: dict[str, dict], work: Path, timeout: float, threads: dict[str, str]
) -> tuple[dict[str, dict], str]:
    """Copy ``master`` into ``work``, put ``notebooks`` (assignment → notebook) in as ``student``'s submission and
    grade them in a subprocess (its own session; the whole tree is killed after ``timeout`` seconds)."""
    # the copy sits three levels below `work`: `rm -rf ../../..` from a notebook stays inside it
    course = work / "sandbox" / "a" / "course"
    shutil.copytree(master, course, ignore=shutil.ignore_patterns("autograded", "feedback", "submitted", "release"))
    for assignment, nb in notebooks.items():
        target = course / "submitted" / student / assignment
        target.mkdir(parents=True)
        (target / f"{assignment}.ipynb").write_text(json.dumps(nb))
    result = work / "result.json"
    env = {"COURSE_OUTPUT_DIR": str(work / "sandbox" / "output"), "MPLBACKEND": "Agg", **threads}
    args = ["-m", "course_utils.ops.grading", "_worker", str(course), student, str(result), *notebooks]
    run = run_python(args, work, timeout, env)
    done = json.loads(result.read_text()) if result.exists() else {}
    log = run.stdout
    if not (course / "gradebook.db").exists() or not (course / "source").exists():
        log += "\n[the course copy's files were deleted]"
    return done, log


def grade_one(
    master: Path,
    student: str,
    subs: list[Submission],
    out: Path,
    *,
    notebook_timeout: float,
    threads: dict[str, str] | None = None,
    keep: bool = False,
) -> list[Outcome]:
    """Grade ``student``'s submissions in a throw-away copy of ``master``. A notebook the grader could not finish
    (its kernel died, it deleted its course copy, it ran out of time) is graded again exercise by exercise, each run
    with the other exercises' solutions stubbed, so that one exercise's code costs only that exercise's points."""
    threads = threads or {}
    outcomes = {s.assignment: Outcome(student, s.assignment) for s in subs}
    notebooks, expected = {}, {}
    for sub in subs:
        instructor = json.loads((master / "source" / sub.assignment / f"{sub.assignment}.ipynb").read_text())
        expected[sub.assignment] = exercises(instructor)
        try:  # long cells load their records, however the student left them
            notebooks[sub.assignment] = for_students(json.loads(sub.notebook.read_text()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            outcomes[sub.assignment].log = f"unreadable notebook {sub.notebook.name}: {exc}"
    works = []
    try:
        work = Path(tempfile.mkdtemp(prefix=f"grade-{student}-"))
        works.append(work)
        done, log = _run_worker(master, student, notebooks, work, notebook_timeout * max(1, len(notebooks)), threads)
        for assignment, nb in notebooks.items():
            entry = done.get(assignment)
            if entry and entry["scores"]:
                outcomes[assignment].log = entry["log"]
                outcomes[assignment].seconds = entry.get("seconds")
                dest = out / "feedback" / student / assignment
                src = work / "feedback" / assignment
                if src.exists():
                    dest.mkdir(parents=True, exist_ok=True)
                    for f in src.iterdir():
                        outcomes[assignment].feedback.append(atomic.write_bytes(dest / f.name, f.read_bytes()))
                continue
            why = _reason(((entry or {}).get("log") or "") + "\n" + log)
            entry = {"scores": {}, "messages": {}, "fallback": why}
            for ex in expected[assignment]:
                part = Path(tempfile.mkdtemp(prefix=f"grade-{student}-{ex['grade_id']}-"))
                works.append(part)
                one = {assignment: _stub_solutions(nb, ex["solution_id"])}
                got, part_log = _run_worker(master, student, one, part, notebook_timeout, threads)
                got = got.get(assignment) or {}
                gid = ex["grade_id"]
                if gid in got.get("scores", {}):
                    entry["scores"][gid] = got["scores"][gid]
                    entry["messages"][gid] = got["messages"].get(gid, "")
                else:  # this exercise's own code stops the grader: no points, the cause named
                    entry["scores"][gid] = [0.0, ex["points"]]
                    cause = _reason(got.get("log", "") + part_log)
                    entry["messages"][gid] = f"grading stopped in this exercise: {cause}"
            done[assignment] = entry
            outcomes[assignment].log = f"graded exercise by exercise: {why}"
        for assignment, outcome in outcomes.items():
            entry = done.get(assignment) or {"scores": {}, "messages": {}}
            for ex in expected[assignment]:
                gid = ex["grade_id"]
                score, max_score = entry["scores"].get(gid, (0.0, ex["points"]))
                if gid not in entry["scores"]:
                    status = "not graded"
                    message = outcome.log or "the notebook could not be graded"
                elif score >= max_score:
                    status, message = "passed", ""
                else:
                    status = "failed"
                    message = entry["messages"].get(gid) or "no points (see the feedback notebook)"
                    if entry.get("fallback") and not message.startswith("grading stopped"):
                        message = f"{message} (graded alone: the whole notebook stopped the grader)"
                outcome.rows.append(
                    {
                        "student": student,
                        "assignment": assignment,
                        "exercise": gid,
                        "points": score,
                        "max_points": max_score,
                        "status": status,
                        "message": message[:400],
                    }
                )
    finally:
        if not keep:
            for w in works:
                shutil.rmtree(w, ignore_errors=True)
    return list(outcomes.values())


CAUSES = [  # what stopped a grading run, as the report says it
    (r"DeadKernelError|Kernel died", "the kernel died (the code exited or crashed Python)"),
    (r"\[killed after", "grading ran past the notebook's time limit"),
    (r"files were deleted\]|FileNotFoundError|OperationalError|unable to open", "the grader's files were deleted"),
]


def _reason(log: str) -> str:
    """Why a grading run stopped, from its log."""
    for pattern, reason in CAUSES:
        if re.search(pattern, log):
            return reason
    lines = [line.strip() for line in log.splitlines() if re.search(r"(Error|Exception)\b", line)]
    return lines[-1][:300] if lines else "the grader stopped"


REPORT_FIELDS = ["student", "assignment", "exercise", "points", "max_points", "status", "message"]


def write_report(outcomes: list[Outcome], out: Path) -> tuple[Path, Path]:
    """``grades.csv`` (one row per student × exercise) and ``summary.csv`` (per student × assignment)."""
    rows = sorted((r for o in outcomes for r in o.rows), key=lambda r: (r["student"], r["assignment"]))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=REPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    grades = atomic.write_text(out / "grades.csv", buf.getvalue())
    seconds = {(o.student, o.assignment): o.seconds for o in outcomes}
    totals: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        t = totals.setdefault((r["student"], r["assignment"]), [0.0, 0.0, 0])
        t[0] += r["points"]
        t[1] += r["max_points"]
        t[2] += r["status"] == "passed"
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["student", "assignment", "points", "max_points", "exercises_passed", "grading_seconds"])
    for (student, assignment), (points, max_points, passed) in sorted(totals.items()):
        writer.writerow([student, assignment, points, max_points, passed, seconds.get((student, assignment)) or ""])
    summary = atomic.write_text(out / "summary.csv", buf.getvalue())
    return grades, summary


def grade(
    submissions: Path,
    out: Path,
    *,
    course: Path = DEFAULT_COURSE,
    workers: int = 1,
    cell_timeout: int = 120,
    notebook_timeout: float = 1800,
    keep: bool = False,
    notebooks: Path = NOTEBOOKS,
) -> list[Outcome]:
    """Grade every submission under ``submissions``; the report and the feedback go to ``out``."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if cell_timeout < 1 or notebook_timeout < 1:
        raise ValueError(f"timeouts must be >= 1 s, got cell {cell_timeout}, notebook {notebook_timeout}")
    known = assignments(notebooks)
    subs, skipped = find_submissions(Path(submissions), known)
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    if not subs:
        raise ValueError(f"no submission of a graded notebook under {submissions} (expected <student>/<nb>.ipynb)")
    master = build_course(Path(course), {s.assignment: known[s.assignment] for s in subs}, cell_timeout)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    by_student: dict[str, list[Submission]] = {}
    for sub in subs:
        by_student.setdefault(sub.student, []).append(sub)

    # each kernel gets its share of the cores: oversubscribed OpenMP threads slow small tensor work tenfold
    share = str(max(1, (os.cpu_count() or 1) // workers))
    threads = {"OMP_NUM_THREADS": share, "MKL_NUM_THREADS": share}

    def one(student: str) -> list[Outcome]:
        outcomes = grade_one(
            master, student, by_student[student], out, notebook_timeout=notebook_timeout, threads=threads, keep=keep
        )
        for o in outcomes:
            points = sum(r["points"] for r in o.rows)
            total = sum(r["max_points"] for r in o.rows)
            print(f"{student} {o.assignment}: {points:g} / {total:g}  ({time.perf_counter() - started:.0f} s)")
        return outcomes

    with ThreadPoolExecutor(workers) as pool:
        outcomes = [o for group in pool.map(one, by_student) for o in group]
    grades_csv, summary_csv = write_report(outcomes, out)
    print(f"report: {grades_csv}, {summary_csv}; feedback: {out / 'feedback'}")
    return outcomes


# ---------------------------------------------------------------------------------------------------- recording


def record(selectors: list[str], cell_timeout: int = 1800) -> None:
    """Run the chosen instructor notebooks in place (their defaults) with ``$COURSE_RECORD_DIR`` set, so every long
    cell rewrites its record in the package's ``recorded/`` folder; a fresh output folder, so no checkpoint of an
    earlier run shortens a timing."""
    available = {p.stem: p for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))}
    chosen = available if not selectors else {}
    for sel in selectors:
        found = {n: p for n, p in available.items() if n == sel or n.split("_")[0] == sel.zfill(2)}
        if not found:
            raise ValueError(f"no notebook {sel!r}; the notebooks are {', '.join(available)}")
        chosen.update(found)
    for name, path in chosen.items():
        with tempfile.TemporaryDirectory() as scratch:
            env = {**os.environ, replay.RECORD_ENV: str(replay.PACKAGE_RECORDS), "COURSE_OUTPUT_DIR": scratch}
            env.update(CI="true", TQDM_DISABLE="1")  # no progress bars in the records
            t0 = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "jupyter",
                    "nbconvert",
                    "--to",
                    "notebook",
                    "--execute",
                    "--inplace",
                    f"--ExecutePreprocessor.timeout={cell_timeout}",
                    str(path),
                ],
                cwd=NOTEBOOKS,
                env=env,
                check=True,
            )
            print(f"{name}: recorded in {time.perf_counter() - t0:.0f} s")


# ---------------------------------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.ops.grading", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("release", help="the student versions of the notebooks (all, or NN ...)")
    p.add_argument("notebooks", nargs="*")
    p.add_argument("--course", type=Path, default=DEFAULT_COURSE, help="the nbgrader course folder to write")
    p.add_argument("--from", dest="notebooks_dir", type=Path, default=NOTEBOOKS, help="the instructor notebooks")
    p = sub.add_parser("grade", help="autograde a folder of submissions: report and feedback")
    p.add_argument("submissions", type=Path, help="<student>/<notebook>.ipynb or <student>/<assignment>/<nb>.ipynb")
    p.add_argument("--out", type=Path, default=None, help="report and feedback (default <course>/grades)")
    p.add_argument("--course", type=Path, default=DEFAULT_COURSE)
    p.add_argument("--workers", type=int, default=1, help="students graded at once")
    p.add_argument("--cell-timeout", type=int, default=120, help="seconds a cell may run (default 120)")
    p.add_argument("--notebook-timeout", type=float, default=1800, help="seconds one notebook's grading may take")
    p.add_argument("--keep", action="store_true", help="keep each student's throw-away course copy (debugging)")
    p.add_argument("--from", dest="notebooks_dir", type=Path, default=NOTEBOOKS, help="the instructor notebooks")
    p = sub.add_parser("record", help="rerun notebooks so their long cells rewrite the records a release loads")
    p.add_argument("notebooks", nargs="*")
    p = sub.add_parser("_worker", help=argparse.SUPPRESS)  # one student's grading, run by `grade`
    p.add_argument("course", type=Path)
    p.add_argument("student")
    p.add_argument("result", type=Path)
    p.add_argument("assignments", nargs="+")
    p = sub.add_parser("_generate", help=argparse.SUPPRESS)  # generate_assignment, run by `release` and `grade`
    p.add_argument("course", type=Path)
    p.add_argument("assignments", nargs="+")
    args = parser.parse_args(argv)
    if args.command == "_worker":
        _worker(args.course, args.student, args.assignments, args.result)
        return 0
    if args.command == "_generate":
        _generate(args.course, args.assignments)
        return 0
    try:
        if args.command == "release":
            folder = release(args.notebooks, args.course, notebooks=args.notebooks_dir)
            names = sorted(p.name for p in folder.iterdir())
            print(f"student release in {folder}: {', '.join(names)}")
        elif args.command == "grade":
            out = args.out or Path(args.course) / "grades"
            grade(
                args.submissions,
                out,
                course=args.course,
                workers=args.workers,
                cell_timeout=args.cell_timeout,
                notebook_timeout=args.notebook_timeout,
                keep=args.keep,
                notebooks=args.notebooks_dir,
            )
        else:
            record(args.notebooks)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
