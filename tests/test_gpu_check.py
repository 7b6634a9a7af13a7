"""The GPU check runs only where a GPU is: elsewhere it says so and exits 2 (CI has none)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible: make gpu-check runs the real thing")
def test_gpu_check_without_a_gpu_says_so(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gpu_check.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "needs a CUDA GPU" in proc.stdout


def test_gpu_check_rejects_unknown_parts(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gpu_check.py"), "--skip", "tests,lint"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "unknown part(s) ['lint']" in proc.stderr


def test_gpu_check_names_missing_packages_before_anything_runs(tmp_path):
    """A bare GPU machine lacks papermill and friends: say which, at once, not as a crash half-way."""
    hide = tmp_path / "site"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import importlib.util as u\n_f = u.find_spec\n"
        "u.find_spec = lambda n, *a, **k: None if n in ('papermill', 'nbformat') else _f(n, *a, **k)\n"
    )
    # prepended: a machine that finds its packages through PYTHONPATH keeps them
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(hide), os.environ.get("PYTHONPATH")])))
    cmd = [sys.executable, str(ROOT / "tools" / "gpu_check.py"), "--out", str(tmp_path / "out")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2 and "gpu-check needs papermill, nbformat, which" in proc.stdout
    proc = subprocess.run([*cmd, "--skip", "tests,notebooks"], capture_output=True, text=True, timeout=120, env=env)
    assert "gpu-check needs papermill" not in proc.stdout  # the parts left need neither
    assert not (tmp_path / "out").exists() or torch.cuda.is_available()


def _gpu_check():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "tools" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_identity_part_covers_every_registered_method_and_runs_on_the_cpu():
    """The GPU check's identity list is the registry (a new method is in it with no edit), and the part itself runs
    anywhere: on the CPU it checks the same properties (its draws are trivially the CPU's)."""
    from course_utils import methods

    gpu_check = _gpu_check()
    assert gpu_check.identity_methods() == list(methods.REGISTRY)
    report = gpu_check.check_identity("cpu", names=["dm", "mtt"])
    assert report["ok"], report
    assert set(report) >= {"dm", "mtt", "experts", "evaluate_dsa_protocol"}
    assert report["evaluate_dsa_protocol"]["draws_equal_to_cpu"]
