"""Longer runs: recorded with their provenance, resumed from their checkpoint, never made twice, shown or asked for."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from course_utils import methods
from course_utils.course import longer
from course_utils.methods import dm, hparams

TINY = dataclasses.replace(
    longer.entry("04"),
    hparams={"steps": 2, "batch_real": 4, "lr_img": 1.0, "init": "real", "checkpoint_every": 1},
    model_width=8,
    train_per_class=10,
    eval_protocol="plain",
    eval_epochs=2,
    eval_models=1,
)


def _with(monkeypatch, steps):
    run_ = dataclasses.replace(TINY, hparams={**TINY.hparams, "steps": steps})
    monkeypatch.setattr(longer, "RUNS", (run_,))
    return run_


def test_a_longer_run_is_recorded_resumed_and_not_made_twice(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(tmp_path / "output"))  # where the checkpoints go
    root = tmp_path / "results"
    _with(monkeypatch, 2)
    first = longer.run("04", root=root, log=lambda s: None)
    assert first["seed"] == 0 and first["params"]["longer"]["hparams"]["steps"] == 2
    assert first["commit"] and first["environment"]["torch"] and first["timings_s"]["distill"] > 0
    assert first["params"]["test_images"] == 10000 and len(first["metrics"]["accuracies"]) == 1

    calls = []
    real = methods.distill
    monkeypatch.setattr(methods, "distill", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = longer.run("04", root=root, log=lambda s: None)
    assert again == first and not calls  # recorded: nothing runs again

    # a longer budget continues from the 2-step checkpoint (one more step runs) and ends where an unbroken run ends
    steps_run = []
    step = dm.DistributionMatching.step
    monkeypatch.setattr(dm.DistributionMatching, "step", lambda self, k: steps_run.append(k) or step(self, k))
    _with(monkeypatch, 3)
    resumed = longer.run("04", root=root, log=lambda s: None)
    assert steps_run == [3]
    assert resumed["params"]["longer"]["hparams"]["steps"] == 3
    assert len(longer.recorded("04", root)) == 1  # only the current definition's record counts
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(tmp_path / "fresh"))
    unbroken = longer.run("04", root=tmp_path / "unbroken", log=lambda s: None)
    assert steps_run == [3, 1, 2, 3]
    assert resumed["metrics"]["accuracies"] == unbroken["metrics"]["accuracies"]


def test_show_names_the_command_until_a_record_exists(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(tmp_path / "output"))
    _with(monkeypatch, 1)
    said = longer.show("04", tmp_path)
    assert "Not recorded yet" in said and "python -m course_utils.course.longer 04" in said
    longer.run("04", root=tmp_path, log=lambda s: None)
    table = longer.show("04", tmp_path)
    assert table.startswith("Longer run: DM") and "| dm | mnist | 10 | 0 |" in table


def test_every_longer_run_is_a_valid_setting_of_its_method():
    for run_ in longer.RUNS:
        # a typo or a bad value fails here, before an hour of CPU
        hparams.parse(run_.method, methods.get_method(run_.method).Config, run_.hparams)
        assert run_.ipc > 0 and run_.eval_models >= 3 and run_.why
    with pytest.raises(ValueError, match="03_gradient_matching has no longer run; valid: 04_distribution_matching"):
        longer.entry("03")
    assert torch.cuda.is_available() or longer.settings(longer.RUNS[0], 0, "auto")["device"] == "cpu"
