"""The %%long_run cell magic: a long cell records its result, a student's copy replays it, never for another run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from course_utils.ops import replay

KERNEL_ENV = {"MPLBACKEND": "module://matplotlib_inline.backend_inline", "PYTHONWARNINGS": "ignore"}


def _notebook(cells: list[str]) -> dict:
    return {
        "cells": [
            {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": c} for c in cells
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _execute(tmp_path: Path, name: str, cells: list[str], env: dict[str, str]) -> list[dict]:
    """Run ``cells`` in a real kernel (errors allowed); the executed cells."""
    path = tmp_path / f"{name}.ipynb"
    path.write_text(json.dumps(_notebook(cells)))
    subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--allow-errors", "--inplace"]
        + [str(path)],
        check=True,
        capture_output=True,
        env={**os.environ, **KERNEL_ENV, **env},
        timeout=180,
    )
    return json.loads(path.read_text())["cells"]


def _text(cell: dict) -> str:
    parts = []
    for out in cell["outputs"]:
        if out["output_type"] == "stream":
            parts.append("".join(out["text"]))
        elif out["output_type"] == "error":
            parts.append(f"{out['ename']}: {out['evalue']}")
    return "".join(parts)


SETUP = "%load_ext course_utils.ops.replay\nimport matplotlib.pyplot as plt\ncfg = {'seed': SEED, 'device': 'cpu'}"
LONG = (
    "# long_run: demo --outputs table,curve{flag}\n"
    "import time\ntable = {{'acc': 91.5, 'seed': cfg['seed']}}\ncurve = torch_like = [1, 2, 3]\n"
    "scratch = 'not an output'\nprint('computed', table)\nplt.plot(curve)"
)


def test_record_then_replay_and_refuse_other_settings(tmp_path):
    records = tmp_path / "records"
    cells = _execute(
        tmp_path,
        "instructor",
        [SETUP.replace("SEED", "0"), LONG.format(flag=""), "print(table, curve)"],
        {replay.RECORD_ENV: str(records)},
    )
    assert "computed {'acc': 91.5, 'seed': 0}" in _text(cells[1])
    assert "[recorded" not in _text(cells[1])  # recording is quiet: the output stays as without it
    record = replay.read(records / "demo.pt")
    assert record["outputs"] == {"table": {"acc": 91.5, "seed": 0}, "curve": [1, 2, 3]}  # only the named outputs
    assert record["provenance"]["device"] == "cpu" and record["provenance"]["torch"] == torch.__version__
    assert any("image/png" in data for data, _ in record["displays"])  # the figure is kept

    replayed = _execute(
        tmp_path,
        "student",
        [
            SETUP.replace("SEED", "0"),
            LONG.format(flag=" --recorded  # delete to compute"),
            "print(table, curve)",
            LONG.format(flag=" --recorded  # delete to compute"),
        ],
        {replay.RECORDED_ENV: str(records)},
    )
    again = _text(replayed[3])  # a later replayed cell names its source only: the explanation is said once
    assert "[recorded result of `demo`" in again and "delete `--recorded`" not in again
    text = _text(replayed[1])
    assert "computed {'acc': 91.5, 'seed': 0}" in text and "[recorded result of `demo`" in text
    assert "delete `--recorded` in the cell's first line" in text  # the first replayed cell says how to compute it
    assert any(o["output_type"] == "display_data" and "image/png" in o["data"] for o in replayed[1]["outputs"])
    assert "{'acc': 91.5, 'seed': 0} [1, 2, 3]" in _text(replayed[2])

    other = _execute(
        tmp_path,
        "other_seed",
        [SETUP.replace("SEED", "1"), LONG.format(flag=" --recorded"), "print(table)"],
        {replay.RECORDED_ENV: str(records)},
    )
    text = _text(other[1])
    assert "instead of loading its record: the parameters differ: seed=1 (recorded 0)" in text
    assert "{'acc': 91.5, 'seed': 1}" in _text(other[2])  # computed for seed 1, not the seed-0 record

    edited = LONG.format(flag=" --recorded").replace("91.5", "12.0")
    changed = _execute(
        tmp_path, "edited", [SETUP.replace("SEED", "0"), edited, "print(table)"], {replay.RECORDED_ENV: str(records)}
    )
    assert "the cell's code differs from the recorded one" in _text(changed[1])
    assert "'acc': 12.0" in _text(changed[2])


def test_errors_surface_and_nothing_half_written(tmp_path):
    records = tmp_path / "records"
    cells = _execute(
        tmp_path,
        "errors",
        [
            SETUP.replace("SEED", "0"),
            "%%long_run boom --outputs x\nraise RuntimeError('inner failure')",
            "%%long_run missing --outputs never_defined\ny = 1",
            "%%long_run unpicklable --outputs gen\ngen = (i for i in range(3))",
            "# long_run: bad name! --outputs x\nx = 1",
        ],
        {replay.RECORD_ENV: str(records)},
    )
    assert "RuntimeError: inner failure" in _text(cells[1])
    assert "did not define its outputs ['never_defined']" in _text(cells[2])
    assert "an output cannot be saved" in _text(cells[3])
    assert "expected `# long_run: NAME --outputs a,b [--recorded]`" in _text(cells[4])
    assert not records.exists() or not list(records.iterdir())  # nothing half-written


def test_marker_and_magic_forms():
    assert replay.long_cell("# long_run: a --outputs x\nx = 1") == ("# long_run:", " a --outputs x", "x = 1")
    assert replay.long_cell("%%long_run a\nx = 1") == ("%%long_run", " a", "x = 1")
    assert replay.long_cell("x = 1  # long_run: a") is None
    code = replay._transform(["# long_run: a --outputs x\n", "x = 1\n"])
    assert code == ["get_ipython().run_cell_magic('long_run', 'a --outputs x', 'x = 1\\n')\n"]
    assert replay._transform(["x = 1\n"]) == ["x = 1\n"]


def test_parse_line_and_hash():
    args = replay.parse_line(" nb03_c20 --outputs runs,sets --recorded  # a comment")
    assert (args.name, args.outputs, args.recorded) == ("nb03_c20", ["runs", "sets"], True)
    assert replay.parse_line("x").outputs == [] and not replay.parse_line("x").recorded
    with pytest.raises(ValueError, match="must be letters"):
        replay.parse_line("a-b")
    with pytest.raises(ValueError, match="are not Python names"):
        replay.parse_line("a --outputs 1x")
    assert replay.source_hash("a = 1  \nb = 2\n") == replay.source_hash("a = 1\nb = 2")
    assert replay.source_hash("a = 1") != replay.source_hash("a = 2")


def test_size_limit_names_the_largest_output(monkeypatch):
    monkeypatch.setattr(replay, "MAX_RECORD_BYTES", 1000)
    with pytest.raises(ValueError, match="largest output 'big'"):
        replay._size_check("demo", {"big": torch.zeros(10_000), "small": 1}, 50_000)


def test_committed_records_describe_the_notebooks():
    """Every long cell of the instructor notebooks has a record made from its current code, with its outputs."""
    from course_utils.ops import grading

    problems = []
    for path in sorted(grading.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        problems += grading.check_records(json.loads(path.read_text()), path.stem)
    assert not problems, "\n".join(problems)
    rows = replay.summary()
    assert rows and all(r["kib"] <= replay.MAX_RECORD_BYTES / 1024 for r in rows)
