r"""Graded assignments with nbgrader: the student release, the autograder and the grade report.

The instructor notebooks in ``notebooks/`` are the only source: their graded exercises are nbgrader cells (a
solution cell with ``### BEGIN SOLUTION`` / ``### END SOLUTION``, a locked test cell with visible asserts and
``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN TESTS``, and its points). Every notebook is one assignment, named by
its file (``03_gradient_matching``). Three commands, run from the course checkout:

    python -m course_utils grading release [NN ...]                 # the student versions
    python -m course_utils grading grade SUBMISSIONS [--workers 2]  # autograde + report + feedback
    python -m course_utils grading record [NN ...]                  # re-record the long cells' results

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

The modules: ``cells`` (the graded cells: assignments, exercises, solutions, stubs), ``release`` (the course folder
and the student versions, the records' check), ``autograde`` (each student in a throw-away copy, time limits, the
exercise-by-exercise fallback), ``report`` (grades.csv, summary.csv, feedback), ``recording`` (re-recording the long
cells) and ``cli`` (the commands). The names below are the package's API.
"""

from .autograde import find_submissions, grade, grade_one
from .cells import NOTEBOOKS, assignments, exercises, graded_cells, meta, pick, source, strip_markers, with_solutions
from .cli import main
from .recording import record
from .release import DEFAULT_COURSE, build_course, check_records, for_students, release
from .report import Outcome, write_report

__all__ = [
    "DEFAULT_COURSE",
    "NOTEBOOKS",
    "Outcome",
    "assignments",
    "build_course",
    "check_records",
    "exercises",
    "find_submissions",
    "for_students",
    "grade",
    "grade_one",
    "graded_cells",
    "main",
    "meta",
    "pick",
    "record",
    "release",
    "source",
    "strip_markers",
    "with_solutions",
    "write_report",
]
