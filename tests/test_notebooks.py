"""Notebook contracts: one typed parameters cell, profiles that fit it, papermill runs, unknown names fail.

nbval executes every notebook as committed (``pytest`` collects ``notebooks/`` with ``--nbval-lax``); these tests
check the papermill side: a profile file drives a run, and a parameter name the notebook does not declare is an
error instead of papermill's warning.
"""

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill as pm
import pytest
import yaml

from course_utils.course import config
from course_utils.ops import notebooks, sweep
from course_utils.records import papers

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PROFILE_FILES = sorted((ROOT / "profiles").glob("*.yaml"))
NB00 = ROOT / "notebooks" / "00_introduction_and_baselines.ipynb"


def test_there_are_notebooks_and_profiles():
    assert NB00 in NOTEBOOKS
    assert {p.stem for p in PROFILE_FILES} == set(config.PROFILE_NAMES)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_structure(path):
    nb = json.loads(path.read_text())
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "papermill needs exactly one cell tagged 'parameters'"
    declared = pm.inspect_notebook(str(path))
    assert {"profile", "dataset", "seed"} <= set(declared)
    assert all(p["inferred_type_name"] != "None" for p in declared.values()), "annotate every parameter"
    for name, value in config.NOTEBOOK_DEFAULTS.items():  # what config.is_checked takes for the text's run
        assert ast.literal_eval(declared[name]["default"]) == value, name
    for profile in PROFILE_FILES:
        assert set(yaml.safe_load(profile.read_text())) <= set(declared), profile.name
    for i, cell in enumerate(nb["cells"]):
        assert not any(o.get("output_type") == "error" for o in cell.get("outputs", [])), f"stored error in cell {i}"
    assert "Exercises" in "".join(nb["cells"][-1]["source"])
    checked = [c for c in nb["cells"] if "nbval-check-output" in c.get("metadata", {}).get("tags", [])]
    assert checked, (
        "nbval compares the cells tagged nbval-check-output: tag the cells whose output is the same anywhere"
    )
    assert not any("NBVAL_" in "".join(c["source"]) for c in nb["cells"]), "nbval markers go in cell tags"
    refs = [c for c in nb["cells"] if "".join(c["source"]).startswith("## References")]
    assert len(refs) == 1, "one References cell, citing from course_utils/records/papers.json"
    links = set(re.findall(r"\]\((https?://[^)]+)\)", "".join(refs[0]["source"])))
    assert links and links <= {u for s in papers.SOURCES.values() for u in (s.url, s.code) if u}, links


def _code_lines(source: str) -> list[str]:
    return [line for line in source.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _calls(source: str, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == name]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_setup_is_the_parameters_cell_and_one_call(path):
    """Cell 1 only makes a checkout that was not pip-installed importable; right after the parameters cell one call
    sets everything up. That cell, the setup call and the data line (``cfg.load_data``) take at most five lines, and
    no parameter is named again (``name=name``)."""
    cells = json.loads(path.read_text())["cells"]
    source = ["".join(c["source"]) if c["cell_type"] == "code" else "" for c in cells]
    install = source[1]
    assert len(install.splitlines()) <= 3 and "sys.path" in install and "course_utils" in install, install
    assert not any(word in install for word in ("subprocess", "pip install", "git clone", "COURSE_GIT_URL")), install
    params = next(i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", []))
    setup = source[params + 1]
    (call,) = _calls(setup, "setup")
    assert ast.unparse(call.func) == "course.setup" and ast.unparse(call.args[0]) == "globals()", setup
    data_lines = [
        line for i, s in enumerate(source) if i != params + 1 for line in s.splitlines() if "load_data(" in line
    ]
    budget = len(_code_lines(install)) + len(_code_lines(setup)) + len(data_lines)
    assert budget <= 5, f"install cell + setup cell + data line: {budget} lines of code"
    assert "load_data(" in setup or len(data_lines) == 1
    declared = {n.target.id for n in ast.parse("".join(cells[params]["source"])).body if isinstance(n, ast.AnnAssign)}
    data_cells = [s for s in source if "load_data(" in s]
    for cell in {install, setup, *data_cells}:
        twice = [
            k.arg
            for k in ast.walk(ast.parse("\n".join(line for line in cell.splitlines() if not line.startswith("%"))))
            if isinstance(k, ast.keyword) and k.arg in declared and ast.unparse(k.value) == k.arg
        ]
        assert not twice, f"parameters named again in the setup: {twice}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_setup_reads_every_declared_parameter(path):
    """The parameters cell's annotated names, as Python keeps them (``__annotations__``, what ``course.setup``
    reads), are papermill's parameters; each is a setting of the notebook or one it reads itself."""
    from course_utils.course import profiles

    cells = json.loads(path.read_text())["cells"]
    params = next(c for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
    namespace: dict = {}
    exec("".join(params["source"]), namespace)
    assert list(namespace["__annotations__"]) == list(pm.inspect_notebook(str(path)))
    own = set(profiles.OWN_PARAMETERS.get(path.stem, ()))
    assert set(namespace["__annotations__"]) - own <= config.setting_names(path.stem)
    assert own <= set(namespace["__annotations__"])


def _papermill(args, tmp_path, timeout):
    env = dict(os.environ, COURSE_OUTPUT_DIR=str(tmp_path / "output"), CI="true", TQDM_DISABLE="1")
    return subprocess.run(
        [sys.executable, "-m", "papermill", "--cwd", str(ROOT / "notebooks"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_sees_exactly_the_declared_parameters(path):
    """A comment papermill cannot parse (e.g. one with ';') hides a parameter from it: the runner would refuse it."""
    nb = json.loads(path.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    body = ast.parse("".join(cell["source"])).body
    declared = {n.target.id for n in body if isinstance(n, ast.AnnAssign)}
    assert declared == set(pm.inspect_notebook(str(path)))
    for name in declared:  # and the runner accepts each of them
        notebooks.check_parameters(path, {name: None})


def test_undeclared_parameter_fails_instead_of_warning(tmp_path):
    out = tmp_path / "out.ipynb"
    proc = _papermill(
        [str(NB00), str(out), "-f", str(ROOT / "profiles" / "quick.yaml"), "-p", "eval_epoch", "3"],
        tmp_path,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "unknown parameter(s) 'eval_epoch'" in proc.stdout + proc.stderr
    assert not (tmp_path / "output").exists(), "nothing may run after the setup cell fails"


def test_notebook_02_refuses_an_impossible_unroll_before_any_work(tmp_path):
    """Notebook 02 with T = 2 unrolled steps at IPC 3 used to fail a minute in: refuse it at once."""
    proc = _papermill(
        [
            str(ROOT / "notebooks" / "02_bilevel_distillation.ipynb"),
            str(tmp_path / "02.ipynb"),
            "-y",
            "dd_random_ipc: 3",
        ],
        tmp_path,
        timeout=300,
    )
    assert proc.returncode != 0 and "distill_steps=2 must divide ipc=3; valid: 1, 3" in proc.stdout + proc.stderr
    assert not (tmp_path / "output").exists(), "nothing may run after the settings cell fails"


def test_runner_rejects_undeclared_parameter_before_running(tmp_path, capsys):
    assert sweep.run_main(["00", "-p", "ipcc", "5", "--out", str(tmp_path)]) == 2
    assert "unknown parameter(s) ipcc" in capsys.readouterr().err
    assert sweep.run_main(["99", "--out", str(tmp_path)]) == 2
    assert "no notebook matches ['99']" in capsys.readouterr().err
    assert not list(tmp_path.iterdir()), "nothing may run after a refused parameter"


@pytest.mark.slow
def test_papermill_runs_notebook_00_with_a_profile_file(tmp_path):
    out = tmp_path / "00.ipynb"
    proc = _papermill(
        [str(NB00), str(out), "-f", str(ROOT / "profiles" / "quick.yaml"), "-y", "ipcs: [1]"], tmp_path, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    executed = json.loads(out.read_text())
    assert executed["metadata"]["papermill"]["parameters"] == {"profile": "quick", "ipcs": [1]}
    records = list((tmp_path / "output" / "results" / "00_introduction_and_baselines").glob("*.json"))
    assert len(records) == 1 + 3  # full data + 3 coresets at the one IPC the YAML asked for
    ipcs = {json.loads(r.read_text())["params"].get("ipc") for r in records}
    assert ipcs == {None, 1}


def _tiny_notebook(folder: Path, name: str, body: str) -> Path:
    book = nbformat.v4.new_notebook()
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell(
        'profile: str = "quick"  # profile\nseed: int = 0  # seed\nipcs: list = None  # images per class'
    )
    params.metadata["tags"] = ["parameters"]
    book.cells = [params, nbformat.v4.new_code_cell(body)]
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.ipynb"
    nbformat.write(book, str(path))
    return path


def test_runner_executes_notebooks_and_prints_the_results_table(tmp_path, monkeypatch, capsys):
    """``make course``'s path (``python -m course_utils run``, a sweep of one point): papermill each notebook, then
    one table from every record written; a failing notebook is reported with its error and the others still run;
    an unreadable record is named and skipped."""
    folder = tmp_path / "notebooks"
    _tiny_notebook(folder, "98_fails", "raise ValueError('ipc=7 has no schedule')")
    _tiny_notebook(
        folder,
        "99_tiny",
        (
            "from course_utils import results\n"
            "assert ipcs == [10], ipcs\n"
            "results.save_record(results.make_record('99_tiny', method='m', dataset='mnist',\n"
            "    params={'ipc': ipcs[0], 'variant': 'v1'},\n"
            "    seed=seed, device='cpu', metrics=results.metrics([12.5]), protocol='plain (1 epochs, none)'))"
        ),
    )
    out = tmp_path / "output"
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(out))
    junk = out / "results" / "old" / "junk.json"
    junk.parent.mkdir(parents=True)
    junk.write_text("{not json")
    args = ["--notebook-dir", str(folder), "-p", "seed", "3", "-p", "ipcs", "10"]
    assert sweep.run_main(args) == 1  # --out defaults to $COURSE_OUTPUT_DIR
    text = capsys.readouterr().out
    assert "[run] failed 98_fails/quick__ipcs=10__seed=3 in" in text
    assert "cell 3: ValueError: ipc=7 has no schedule" in text  # its error, not ''
    assert "[run] ok 99_tiny/quick__ipcs=10__seed=3" in text and "1 done, 1 failed;" in text
    assert "| 99_tiny | m | v1 | mnist | 10 | 12.50 | – | plain (1 epochs, none) |" in text
    assert f"skipped {junk}" in text
    executed = out / "notebooks"
    assert (executed / "99_tiny" / "quick__ipcs=10__seed=3.ipynb").exists()
    assert (executed / "98_fails" / "quick__ipcs=10__seed=3.failed.ipynb").exists()
    assert not list(executed.rglob("*.partial.ipynb"))


def test_runner_shows_progress_while_a_notebook_runs(tmp_path):
    """``make course`` tells which cell each notebook is in while it runs (here a line per cell: no terminal, and
    ``--progress-every 0``), not only when it ends."""
    folder = tmp_path / "notebooks"
    _tiny_notebook(folder, "97_slow", "import time\ntime.sleep(0.5)")
    book = nbformat.read(str(folder / "97_slow.ipynb"), as_version=4)
    book.cells.append(nbformat.v4.new_code_cell("time.sleep(4)"))
    nbformat.write(book, str(folder / "97_slow.ipynb"))
    out = tmp_path / "output"
    cmd = [sys.executable, "-m", "course_utils", "run", "--notebook-dir", str(folder), "--out", str(out)]
    env = dict(os.environ, TQDM_DISABLE="1")
    proc = subprocess.Popen([*cmd, "--progress-every", "0"], stderr=subprocess.PIPE, text=True, env=env)
    done = out / "notebooks" / "97_slow" / "quick.ipynb"
    seen, finished_at_the_line = [], None
    for line in proc.stderr:  # the sleeping cell is 4 of 4 (papermill injects the parameters cell)
        seen.append(line)
        if finished_at_the_line is None and line.startswith("[run] 97_slow/quick: cell 4/4,"):
            finished_at_the_line = done.exists()
    assert proc.wait(timeout=120) == 0, "".join(seen)
    assert finished_at_the_line is False, "".join(seen)  # the line came while the notebook was still running
    assert done.exists()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem[:2])
def test_every_cell_with_outputs_was_run(path):
    """nbval refuses a code cell that holds outputs but no execution count ("unrun reference cell has outputs"):
    outputs must come from running the cell, in order."""
    book = json.loads(path.read_text())
    unrun = [
        i
        for i, cell in enumerate(book["cells"])
        if cell["cell_type"] == "code" and cell.get("outputs") and cell.get("execution_count") is None
    ]
    assert not unrun, f"{path.name}: cells {unrun} hold outputs but were never run; record the notebook again"
