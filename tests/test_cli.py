"""The one command-line entry, ``python -m course_utils TOOL ...``: it lists the tools, names an unknown one with the
valid ones, runs each tool's own command line, and imports a tool only when that tool runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from course_utils import __main__ as cli

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "course_utils", *args], capture_output=True, text=True, timeout=120)


def test_without_a_tool_it_lists_the_tools_and_imports_none():
    code = (
        "import sys; from course_utils.__main__ import main; main([]); "
        "print(sorted(m for m in ('torch', 'papermill', 'nbgrader', 'submitit') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith("[]"), proc.stdout  # listing the tools imported no heavy module
    for tool in ("run", "sweep", "gather", "grading", "data"):
        assert f"\n  {tool} " in proc.stdout


def test_an_unknown_tool_is_named_with_the_valid_ones(capsys):
    assert cli.main(["swep"]) == 2
    err = capsys.readouterr().err
    assert "unknown tool 'swep'; the tools are: run, sweep, gather, grading, data" in err


HELP = {
    "data": "--copy-from",
    "run": "--progress-every",
    "sweep": "--slurm",
    "grading": "release",
    "gather": "--committed",
}


@pytest.mark.parametrize("tool, text", HELP.items())
def test_each_tool_runs_its_own_command_line(tool, text):
    proc = _run(tool, "--help")
    assert proc.returncode == 0, proc.stderr
    assert text in proc.stdout


def test_the_data_tool_reports_the_data_root(tmp_path):
    proc = _run("data", "--root", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert f"data root: {tmp_path}" in proc.stdout and "mnist" in proc.stdout
