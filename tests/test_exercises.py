"""The graded exercises of the instructor notebooks, checked in-process (fast): for every exercise the reference
solution passes its tests, the release's stub fails them, and every planted wrong answer (tests/planted_answers.json:
sign errors, wrong axes, off-by-ones, forgotten normalisations) fails them."""

import json
import re
import time
import warnings
from pathlib import Path

import pytest

from course_utils.ops import grading

PLANTED = json.loads((Path(__file__).parent / "planted_answers.json").read_text())


def _exercises():
    for name, path in grading.assignments().items():
        nb = json.loads(path.read_text())
        cells = {grading.meta(c).get("grade_id"): grading.source(c) for c in nb["cells"] if grading.meta(c)}
        for ex in grading.exercises(nb):
            yield pytest.param(name, ex, cells[ex["solution_id"]], cells[ex["grade_id"]], id=ex["solution_id"])


def _run(solution: str, tests: str) -> float:
    """Run the solution, then the tests; a warning is an error, because a graded cell that writes to stderr scores
    nothing under nbgrader."""
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("error", RuntimeWarning)
        exec(compile(solution, "<solution>", "exec"), namespace)
        start = time.perf_counter()
        exec(compile(tests, "<tests>", "exec"), namespace)
    return time.perf_counter() - start


def _stub(solution: str) -> str:
    return re.sub(
        r"^(\s*)### BEGIN SOLUTION\n.*?### END SOLUTION\n?",
        lambda m: f"{m.group(1)}raise NotImplementedError()\n",
        solution,
        flags=re.S | re.M,
    )


def test_every_notebook_has_graded_exercises():
    names = list(grading.assignments())
    assert len(names) == 9 and names[0].startswith("00_") and names[-1].startswith("08_"), names
    for name in names:
        assert set(PLANTED[name]), f"{name}: no planted wrong answers"


@pytest.mark.parametrize("assignment, exercise, solution, tests", list(_exercises()))
def test_exercise(assignment, exercise, solution, tests):
    assert "### BEGIN HIDDEN TESTS" in tests and exercise["points"] > 0
    seconds = _run(grading.strip_markers(solution), tests)
    assert seconds < 30, f"the tests of {exercise['grade_id']} took {seconds:.1f} s"
    visible = re.sub(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS", "", tests, flags=re.S)
    _run(grading.strip_markers(solution), visible)
    with pytest.raises(NotImplementedError):
        _run(_stub(solution), tests)
    planted = PLANTED[assignment][exercise["solution_id"]]
    assert planted, f"{exercise['solution_id']}: no planted wrong answer"
    for wrong in planted:
        with pytest.raises(Exception):  # noqa: B017 (any failure of the tests loses the exercise)
            _run(wrong["source"], tests)
