"""Graded assignments end to end with nbgrader (course_utils.ops.grading).

A tiny instructor notebook written here checks the mechanics quickly: the release (stubs, hidden tests gone, outputs
cleared, long cells loading their record, parameters locked) and the grading of students whose code loops, kills
its kernel, deletes the grader's files, fails at import or is wrong. ``test_course_round_trip`` then releases and
grades the course's own notebooks: the reference solutions score full marks, the untouched release scores zero and
still runs to the end, planted wrong answers lose exactly their exercises' points.
"""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from course_utils.ops import grading, replay

PLANTED = json.loads((Path(__file__).parent / "planted_answers.json").read_text())


def _nbgrader(kind: str, gid: str, points: int | None = None) -> dict:
    meta = {
        "grade": kind == "tests",
        "grade_id": gid,
        "locked": kind != "solution",
        "schema_version": 3,
        "solution": kind == "solution",
        "task": False,
    }
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def _code(source: str, metadata: dict | None = None) -> dict:
    return {"cell_type": "code", "execution_count": None, "metadata": metadata or {}, "outputs": [], "source": source}


def _markdown(source: str, metadata: dict | None = None) -> dict:
    return {"cell_type": "markdown", "metadata": metadata or {}, "source": source}


def tiny_notebook() -> dict:
    cells = [
        _markdown("# 01 · A tiny graded notebook"),
        _code("%load_ext course_utils.ops.replay\nimport math\n"),
        _code("seed: int = 0\nscale: float = 2.0\n", {"tags": ["parameters"]}),
        _code("cfg = {'seed': seed, 'scale': scale}\n"),
        _code(
            "# long_run: tiny_slow --outputs table\nimport time\ntime.sleep(2)\n"
            "table = {'mean': scale * 1.5}\nprint('slow result', table)\n"
        ),
        _markdown("### Exercise 1.1 · mean (1 point)", _nbgrader("task", "ex_mean_task")),
        _code(
            "def mean(x):\n    ### BEGIN SOLUTION\n    return sum(x) / len(x)\n    ### END SOLUTION\n",
            _nbgrader("solution", "ex_mean"),
        ),
        _code(
            "assert mean([1, 2, 3]) == 2\n### BEGIN HIDDEN TESTS\nassert mean([4]) == 4\nassert mean([-1, 1]) == 0\n"
            "### END HIDDEN TESTS\n",
            _nbgrader("tests", "ex_mean_tests", 1),
        ),
        _markdown("### Exercise 1.2 · scaled (2 points)", _nbgrader("task", "ex_scaled_task")),
        _code(
            "def scaled(x, s):\n    ### BEGIN SOLUTION\n    return [s * v for v in x]\n    ### END SOLUTION\n",
            _nbgrader("solution", "ex_scaled"),
        ),
        _code(
            "assert scaled([1], 2) == [2]\n### BEGIN HIDDEN TESTS\nassert scaled([1, -2], 3) == [3, -6]\n"
            "### END HIDDEN TESTS\n",
            _nbgrader("tests", "ex_scaled_tests", 2),
        ),
        _code("print('the end', table['mean'], math.pi)\n"),
    ]
    kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return {"cells": cells, "metadata": {"kernelspec": kernel}, "nbformat": 4, "nbformat_minor": 5}


def _set_solution(nb: dict, gid: str, source: str) -> dict:
    nb = json.loads(json.dumps(nb))
    for cell in nb["cells"]:
        if grading.meta(cell).get("grade_id") == gid:
            cell["source"] = source
    return nb


def _write(folder: Path, student: str, name: str, nb: dict, nested: bool = False) -> None:
    target = folder / student / (name if nested else "")
    target.mkdir(parents=True, exist_ok=True)
    (target / f"{name}.ipynb").write_text(json.dumps(nb))


def _report(out: Path) -> dict[tuple[str, str], dict]:
    with open(out / "grades.csv") as fh:
        return {(r["student"], r["exercise"]): r for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny notebook, its long cell recorded by a real run, and its release."""
    root = tmp_path_factory.mktemp("tiny")
    notebooks, records, course = root / "notebooks", root / "records", root / "course"
    notebooks.mkdir()
    (notebooks / "01_tiny.ipynb").write_text(json.dumps(tiny_notebook()))
    (notebooks / "02_ungraded.ipynb").write_text(json.dumps({**tiny_notebook(), "cells": tiny_notebook()["cells"][:5]}))
    subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--output-dir", str(root)]
        + [str(notebooks / "01_tiny.ipynb")],
        check=True,
        capture_output=True,
        env={**os.environ, replay.RECORD_ENV: str(records)},
    )
    os.environ[replay.RECORDED_ENV] = str(records)  # the graders' subprocesses inherit it
    try:
        assert grading.main(["release", "--from", str(notebooks), "--course", str(course)]) == 0
        yield root, notebooks, course
    finally:
        os.environ.pop(replay.RECORDED_ENV, None)


def test_release_is_the_student_version(tiny):
    root, notebooks, course = tiny
    assert sorted(p.name for p in (course / "release").iterdir()) == ["01_tiny"]  # only notebooks with exercises
    nb = json.loads((course / "release" / "01_tiny" / "01_tiny.ipynb").read_text())
    text = json.dumps(nb)
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text and "sum(x) / len(x)" not in text
    assert "assert mean([4]) == 4" not in text and "assert mean([1, 2, 3]) == 2" in text  # visible tests stay
    assert text.count("raise NotImplementedError()") == 2
    assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")
    sources = ["".join(c["source"]) for c in nb["cells"]]
    assert sources[4].startswith("# long_run: tiny_slow --outputs table --recorded  # delete --recorded to compute")
    params = nb["cells"][2]["metadata"]
    assert params["nbgrader"]["locked"] and "parameters" in params["tags"]
    assert (course / "gradebook.db").exists() and (course / "nbgrader_config.py").exists()


def test_release_refuses_stale_records(tiny, tmp_path):
    _, notebooks, _ = tiny
    changed = tiny_notebook()
    changed["cells"][4]["source"] = changed["cells"][4]["source"].replace("1.5", "2.5")
    (tmp_path / "01_tiny.ipynb").write_text(json.dumps(changed))
    with pytest.raises(RuntimeError, match="the cell of tiny_slow.pt changed since it was recorded"):
        grading.release([], tmp_path / "course", notebooks=tmp_path)
    with pytest.raises(ValueError, match="no graded notebook '07'; the graded ones are 01_tiny"):
        grading.pick(["07"], notebooks)


def test_grading_isolates_every_failure(tiny, tmp_path):
    root, notebooks, course = tiny
    source = tiny_notebook()
    release = json.loads((course / "release" / "01_tiny" / "01_tiny.ipynb").read_text())
    reference = grading.with_solutions(release, source)
    subs = tmp_path / "submissions"
    _write(subs, "ref", "01_tiny", reference, nested=True)  # nbgrader's <student>/<assignment>/ layout
    _write(subs, "untouched", "01_tiny", release)
    wrong = "def mean(x):\n    return sum(x) / (len(x) + 1)\n"
    _write(subs, "offbyone", "01_tiny", _set_solution(reference, "ex_mean", wrong))
    loop = "def mean(x):\n    while True:\n        pass\n"
    _write(subs, "looper", "01_tiny", _set_solution(reference, "ex_mean", loop))
    missing = "import not_a_module_xyz\ndef mean(x):\n    return sum(x) / len(x)\n"
    _write(subs, "missing_import", "01_tiny", _set_solution(reference, "ex_mean", missing))
    broken = json.loads(json.dumps(reference))
    broken["cells"][1]["source"] = "import course_utilz\n" + "".join(broken["cells"][1]["source"])
    _write(subs, "broken_setup", "01_tiny", broken)
    deleter = 'import shutil\nshutil.rmtree("../../..", ignore_errors=True)\ndef mean(x):\n    return sum(x) / len(x)\n'
    _write(subs, "deleter", "01_tiny", _set_solution(reference, "ex_mean", deleter))
    _write(subs, "exiter", "01_tiny", _set_solution(reference, "ex_scaled", "import os\nos._exit(3)\n"))
    (subs / "stray").mkdir()
    (subs / "stray" / "notes.ipynb").write_text("{}")
    out = tmp_path / "grades"
    code = grading.main(
        ["grade", str(subs), "--from", str(notebooks), "--course", str(course), "--out", str(out)]
        + ["--cell-timeout", "10", "--workers", "2"]
    )
    assert code == 0
    report = _report(out)
    points = {key: float(r["points"]) for key, r in report.items()}
    expected = {
        "ref": (1, 2),
        "untouched": (0, 0),
        "offbyone": (0, 2),
        "looper": (0, 2),
        "missing_import": (0, 2),
        "broken_setup": (1, 2),  # its exercises need nothing it failed to import
        "deleter": (0, 2),
        "exiter": (1, 0),
    }
    for student, (mean_points, scaled_points) in expected.items():
        assert points[student, "ex_mean_tests"] == mean_points, (student, report[student, "ex_mean_tests"])
        assert points[student, "ex_scaled_tests"] == scaled_points, (student, report[student, "ex_scaled_tests"])
    assert report["untouched", "ex_mean_tests"]["message"] == "NotImplementedError"
    assert report["offbyone", "ex_mean_tests"]["message"].startswith("AssertionError")
    assert report["missing_import", "ex_mean_tests"]["message"].startswith("the solution cell failed: ModuleNotFound")
    assert "time limit (10 s a cell)" in report["looper", "ex_mean_tests"]["message"]
    assert "not_a_module_xyz" in report["missing_import", "ex_mean_tests"]["message"]
    assert "the grader's files were deleted" in report["deleter", "ex_mean_tests"]["message"]
    assert "the kernel died" in report["exiter", "ex_scaled_tests"]["message"]
    assert all(r["max_points"] in ("1.0", "2.0") for r in report.values())
    with open(out / "summary.csv") as fh:
        summary = {r["student"]: r for r in csv.DictReader(fh)}
    assert summary["ref"]["points"] == "3.0" and summary["ref"]["max_points"] == "3.0"
    assert float(summary["ref"]["grading_seconds"]) > 0
    feedback = out / "feedback" / "ref" / "01_tiny"
    assert (feedback / "01_tiny.html").exists()
    graded = json.loads((feedback / "01_tiny.ipynb").read_text())
    assert "assert mean([4]) == 4" in json.dumps(graded)  # the hidden tests are back in the graded copy
    assert "slow result" in json.dumps(graded) and "[recorded result of `tiny_slow`" in json.dumps(graded)
    assert (course / "gradebook.db").exists() and not list(Path(os.environ.get("TMPDIR", "/tmp")).glob("grade-ref-*"))


def test_bad_input_is_named(tiny, tmp_path):
    _, notebooks, course = tiny
    with pytest.raises(FileNotFoundError, match="no submissions folder"):
        grading.grade(tmp_path / "nope", tmp_path / "out", course=course, notebooks=notebooks)
    (tmp_path / "subs" / "bad id!").mkdir(parents=True)
    with pytest.raises(ValueError, match="no submission of a graded notebook"):
        grading.grade(tmp_path / "subs", tmp_path / "out", course=course, notebooks=notebooks)
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        grading.grade(tmp_path / "subs", tmp_path / "out", course=course, notebooks=notebooks, workers=0)


@pytest.mark.slow
def test_course_round_trip(tmp_path, monkeypatch):
    """The course's notebooks: reference solutions score full marks, the untouched release zero (and runs to the
    end), planted wrong answers lose exactly their exercises, a loop and a failed import cost only their exercise."""
    monkeypatch.delenv(replay.RECORDED_ENV, raising=False)  # the package's records, not the tiny notebook's
    course = tmp_path / "course"
    assert grading.main(["release", "--course", str(course)]) == 0
    chosen = grading.assignments()
    subs = tmp_path / "submissions"
    expected: dict[tuple[str, str], float] = {}
    lost: dict[tuple[str, str], str] = {}
    kinds_wanted = ["sign error", "wrong axis", "off-by-one", "forgotten normalisation"]
    # notebooks 01 and 02 take longest to grade: the planted answers are looked for in the others first
    for name, path in sorted(chosen.items(), key=lambda item: item[0][:2] in ("01", "02")):
        instructor = json.loads(path.read_text())
        release = json.loads((course / "release" / name / f"{name}.ipynb").read_text())
        text = json.dumps(release)
        assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
        reference = grading.with_solutions(release, instructor)
        _write(subs, "reference", name, reference)
        _write(subs, "untouched", name, release)
        for ex in grading.exercises(instructor):
            expected["reference", ex["grade_id"]] = ex["points"]
            expected["untouched", ex["grade_id"]] = 0.0
        # one planted wrong answer of each kind, each in its own notebook
        for ex in grading.exercises(instructor):
            options = [p for p in PLANTED[name][ex["solution_id"]] if p["kind"] in kinds_wanted]
            if options and not any(k[0] == "planted" and k[1].startswith(f"ex{name[:2]}") for k in expected):
                wrong = options[0]
                kinds_wanted.remove(wrong["kind"])
                _write(subs, "planted", name, _set_solution(reference, ex["solution_id"], wrong["source"]))
                for other in grading.exercises(instructor):
                    lost_points = other["grade_id"] == ex["grade_id"]
                    expected["planted", other["grade_id"]] = 0.0 if lost_points else other["points"]
                lost["planted", ex["grade_id"]] = wrong["kind"]
                break
    assert not kinds_wanted, f"no planted answer of the kinds {kinds_wanted}"
    loop_nb, import_nb = "04_distribution_matching", "05_trajectory_matching"
    for student, name, code in [
        ("looper", loop_nb, "def _f(*args, **kwargs):\n    while True:\n        pass\n"),
        ("importer", import_nb, "import not_a_module_xyz\n"),
    ]:
        instructor = json.loads(chosen[name].read_text())
        release = json.loads((course / "release" / name / f"{name}.ipynb").read_text())
        reference = grading.with_solutions(release, instructor)
        first, *rest = grading.exercises(instructor)
        target = next(c for c in reference["cells"] if grading.meta(c).get("grade_id") == first["solution_id"])
        src = grading.source(target)
        func = src[src.index("def ") + 4 : src.index("(")]
        new = src + "\n" + code.replace("_f", func) if student == "looper" else code + src
        _write(subs, student, name, _set_solution(reference, first["solution_id"], new))
        expected[student, first["grade_id"]] = 0.0
        for other in rest:
            expected[student, other["grade_id"]] = other["points"]
    out = tmp_path / "grades"
    args = ["grade", str(subs), "--course", str(course), "--out", str(out), "--workers", "2", "--cell-timeout", "60"]
    assert grading.main(args) == 0
    report = _report(out)
    got = {key: float(r["points"]) for key, r in report.items()}
    wrong = {k: (got.get(k), v, report.get(k, {}).get("message")) for k, v in expected.items() if got.get(k) != v}
    assert not wrong, wrong
    assert set(got) == set(expected)
    for key in lost:
        assert report[key]["status"] == "failed" and report[key]["message"]
    looper = [r for (s, _), r in report.items() if s == "looper" and r["status"] == "failed"]
    assert len(looper) == 1 and "time limit" in looper[0]["message"]
    importer = [r for (s, _), r in report.items() if s == "importer" and r["status"] == "failed"]
    assert len(importer) == 1 and "not_a_module_xyz" in importer[0]["message"]
    # both ran to their last cell, and only the untouched release's graded cells failed
    for student in ("reference", "untouched"):
        for name in chosen:
            graded = json.loads((out / "feedback" / student / name / f"{name}.ipynb").read_text())
            code = [c for c in graded["cells"] if c["cell_type"] == "code" and grading.source(c).strip()]
            assert all(c.get("execution_count") for c in code), f"{student} {name}: a cell did not run"
            failed = [c for c in code if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
            allowed = [c for c in failed if student == "untouched" and grading.meta(c).get("grade")]
            assert failed == allowed, [grading.source(c)[:80] for c in failed if c not in allowed]
    with open(out / "summary.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["student"] == "untouched"]
    seconds = {r["assignment"]: float(r["grading_seconds"]) for r in rows}
    print("grading seconds of the untouched release:", seconds, "total", round(sum(seconds.values())))
