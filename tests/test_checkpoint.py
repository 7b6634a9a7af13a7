"""Checkpoints resume only the run that wrote them."""

import pytest
import torch

from course_utils import checkpoint


def test_round_trip_and_absent_file(tmp_path):
    path = tmp_path / "run.pt"
    assert checkpoint.load(path, {"ipc": 1}) is None and checkpoint.load(None, {}) is None
    checkpoint.save(path, {"ipc": 1, "lr": 0.1}, {"step": 7, "x": torch.ones(2)})
    state = checkpoint.load(path, {"ipc": 1, "lr": 0.1})
    assert state["step"] == 7 and torch.equal(state["x"], torch.ones(2))


def test_another_runs_checkpoint_is_refused_naming_the_difference(tmp_path):
    path = tmp_path / "run.pt"
    checkpoint.save(path, {"ipc": 1, "lr": 0.1}, {"step": 7})
    with pytest.raises(ValueError, match=r"written by another run.*'lr': \(0.1, 0.2\)"):
        checkpoint.load(path, {"ipc": 1, "lr": 0.2})
