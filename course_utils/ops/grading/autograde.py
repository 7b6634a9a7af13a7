"""The autograder: every student graded in a throw-away copy of the course, in a process group of its own.

A student's submissions are copied into a fresh copy of the nbgrader course folder and graded there by
``python -m course_utils.ops.grading _worker`` (``worker``), killed whole past the notebook's time limit on top of
nbgrader's per-cell limit. A notebook the grader could not finish (its kernel died, it deleted its course copy, it
ran out of time) is graded again exercise by exercise, each run with the other exercises' solutions stubbed, so one
exercise's code costs only that exercise's points, and never another student's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ...core import atomic
from ..processes import run_python
from .cells import NOTEBOOKS, assignments, exercises, meta, stub_solutions
from .release import DEFAULT_COURSE, api, build_course, for_students
from .report import Outcome, copy_feedback, exercise_rows, write_report

__all__ = ["Submission", "find_submissions", "grade", "grade_one", "worker"]


@dataclass
class Submission:
    """One student's notebook of one assignment."""

    student: str
    assignment: str
    notebook: Path


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
    """The error a graded cell shows, in one line (a cell stopped at the time limit says so)."""
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
        info = meta(cell)
        if info.get("solution"):
            solution_error = _error_message(cell, cell_timeout)
        if info.get("grade"):
            tests_error = _error_message(cell, cell_timeout)
            out[info["grade_id"]] = f"the solution cell failed: {solution_error}" if solution_error else tests_error
    return out


def worker(course: Path, student: str, assignments_: list[str], result: Path) -> None:
    """In a process of its own (``_worker``): autograde ``student``'s ``assignments_`` in ``course`` (a throw-away
    copy), write each one's scores, failure messages and feedback files to ``result`` (outside the copy) as soon as
    known."""
    from nbgrader.api import Gradebook

    os.chdir(course)
    nbgrader, config = api(course)
    timeout = int(config.Execute.timeout)
    done: dict[str, dict] = {}
    feedback_dir = result.parent / "feedback"
    for assignment in assignments_:
        entry: dict = {"scores": {}, "messages": {}, "log": ""}
        start = time.perf_counter()
        try:
            graded = nbgrader.autograde(assignment, student, force=True, create=True)
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
                if nbgrader.generate_feedback(assignment, student, force=True).get("success"):
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
                feedback = copy_feedback(work / "feedback" / assignment, out / "feedback" / student / assignment)
                outcomes[assignment].feedback = feedback
                continue
            why = _reason(((entry or {}).get("log") or "") + "\n" + log)
            entry = {"scores": {}, "messages": {}, "fallback": why}
            for ex in expected[assignment]:
                part = Path(tempfile.mkdtemp(prefix=f"grade-{student}-{ex['grade_id']}-"))
                works.append(part)
                one = {assignment: stub_solutions(nb, ex["solution_id"])}
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
            outcome.rows = exercise_rows(outcome, expected[assignment], done.get(assignment) or {"scores": {}})
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
