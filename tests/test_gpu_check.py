"""The GPU check runs only where a GPU is: elsewhere it says so and exits 2 (CI has none)."""

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
