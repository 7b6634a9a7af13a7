"""Checkpoints resume only the run that wrote them, and any damage is one clear error (the contract test runs every
iterative method through the same checks)."""

import pytest
import torch

from course_utils.records import checkpoint


def test_round_trip_and_absent_file(tmp_path):
    path = tmp_path / "run.pt"
    assert checkpoint.load(path, {"ipc": 1}) is None and checkpoint.load(None, {}) is None
    checkpoint.save(path, {"ipc": 1, "lr": 0.1}, {"step": 7, "x": torch.ones(2)})
    state = checkpoint.load(path, {"ipc": 1, "lr": 0.1})
    assert state["step"] == 7 and torch.equal(state["x"], torch.ones(2))
    assert not list(tmp_path.glob(".*.tmp")), "the atomic write leaves no temporary file"


def test_another_runs_checkpoint_is_refused_naming_every_difference(tmp_path):
    path = tmp_path / "run.pt"
    checkpoint.save(path, {"ipc": 1, "hparams": {"lr": 0.1, "init": "real"}, "seed": 3}, {"step": 7})
    with pytest.raises(
        checkpoint.CheckpointError,
        match=r"another run \(hparams.lr: saved 0.1, asked 0.2; seed: "
        r"saved 3, asked None\).*delete",
    ) as err:
        checkpoint.load(path, {"ipc": 1, "hparams": {"lr": 0.2, "init": "real"}})
    assert isinstance(err.value, ValueError) and str(path) in str(err.value)


def test_differences_compare_nested_settings_key_by_key():
    assert checkpoint.differences({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}}) == {"a.c": (2, 3)}
    assert checkpoint.differences({"a": 1}, {"a": 1}) == {}


def test_identity_hash_is_stable_and_distinguishes_runs():
    assert checkpoint.identity_hash({"a": 1, "b": 2}) == checkpoint.identity_hash({"b": 2, "a": 1})
    assert checkpoint.identity_hash({"a": 1}) != checkpoint.identity_hash({"a": 2})
