"""The grading command line: ``python -m course_utils grading release|grade|record ...`` (also
``python -m course_utils.ops.grading ...``), and the two commands grading runs in processes of its own
(``_worker``: one student's autograding; ``_generate``: nbgrader's ``generate_assignment``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .autograde import grade, worker
from .cells import NOTEBOOKS
from .recording import record
from .release import DEFAULT_COURSE, generate, release

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run one grading command; 2 with the error on stderr for a bad input (a notebook, a folder, a stale record)."""
    parser = argparse.ArgumentParser(
        prog="python -m course_utils grading",
        description="Graded assignments with nbgrader: the student release, the autograder and the grade report.",
        epilog="README.md, 'Graded assignments', says what each command writes.",
    )
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
        worker(args.course, args.student, args.assignments, args.result)
        return 0
    if args.command == "_generate":
        generate(args.course, args.assignments)
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
