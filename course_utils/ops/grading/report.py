"""The grade report: one row per student × exercise (``grades.csv``), totals per student × assignment
(``summary.csv``) and the feedback files, from what the autograder found (``autograde``)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from ...core import atomic

__all__ = ["REPORT_FIELDS", "Outcome", "copy_feedback", "exercise_rows", "write_report"]

REPORT_FIELDS = ["student", "assignment", "exercise", "points", "max_points", "status", "message"]


@dataclass
class Outcome:
    """One student's one assignment: rows of the report, and the feedback files written."""

    student: str
    assignment: str
    rows: list[dict] = field(default_factory=list)
    feedback: list[Path] = field(default_factory=list)
    log: str = ""
    seconds: float | None = None  # the notebook's grading run, kernel start and feedback included


def exercise_rows(outcome: Outcome, expected: list[dict], entry: dict) -> list[dict]:
    """The report's rows of ``outcome`` for each exercise ``expected`` (``cells.exercises``), from the grader's
    ``entry`` (``scores``: grade_id → [score, max], ``messages``, and ``fallback`` when graded exercise by
    exercise): passed, failed with the reason, or not graded (the notebook could not be graded: its log says why)."""
    rows = []
    for ex in expected:
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
        rows.append(
            {
                "student": outcome.student,
                "assignment": outcome.assignment,
                "exercise": gid,
                "points": score,
                "max_points": max_score,
                "status": status,
                "message": message[:400],
            }
        )
    return rows


def copy_feedback(src: Path, dest: Path) -> list[Path]:
    """The grader's feedback files (graded notebook, HTML) from ``src`` into ``dest``; the files written."""
    return [atomic.write_bytes(dest / f.name, f.read_bytes()) for f in sorted(src.iterdir())] if src.exists() else []


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
