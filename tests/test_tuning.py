"""The quick profile's choices: made on validation splits, recorded, and what the profile holds."""

from __future__ import annotations

import dataclasses
import json

import pytest

from course_utils import methods
from course_utils.course import benchmark, config, tuning

DC_LR = next(t for t in tuning.CHOICES if t.notebook == "03_gradient_matching")


@pytest.mark.parametrize("entry", tuning.CHOICES, ids=lambda t: f"{t.name}:{t.parameter}")
def test_the_profile_holds_the_value_its_record_chose(entry):
    """Each choice's record exists, was made with the profile's current settings, scored every candidate, and chose
    the value the quick profile holds; its scores are the means of its runs on validation splits."""
    record = tuning.read_choice(entry.name)
    what = tuning._what(entry, record["datasets"], record["seed"])
    stale = {k: (record.get(k), v) for k, v in what.items() if record.get(k) != v}
    assert not stale, f"rerun `python -m course_utils.course.tuning {entry.name} --restart`: {stale}"
    assert record["measured_on"] == "validation"
    runs = record["runs"]
    means = {}
    for value in entry.candidates:
        done = [runs[f"{d}/ipc{i}/{value!r}"] for d in record["datasets"] for i in entry.ipcs]
        if any("diverged" in run for run in done):
            assert repr(value) in record["diverged"] and repr(value) not in record["scores"]
            continue
        means[value] = sum(run["validation_accuracy"] for run in done) / len(done)
        assert record["scores"][repr(value)] == pytest.approx(means[value])
    assert record["best"] == max(means, key=lambda v: (means[v], -entry.candidates.index(v)))
    held = entry.current(config.resolve("quick", notebook=entry.notebook))
    assert held == record["best"], (
        f"{entry.name}: the quick profile's {entry.parameter} is {held!r}, validation chose {record['best']!r}"
    )


def _tiny(monkeypatch, seen, fail_at=None):
    """A choice of notebook 03's lr_img whose runs are random real subsets and whose score is a spy: it records the
    split it is given and returns a number that grows with the candidate, so the largest must win."""
    calls = []

    def distil(cfg, train, ipc, gen):
        return methods.distill("random", train, ipc, generator=gen)

    def score(cfg, method, syn, validation):
        calls.append(cfg.lr_img)
        if fail_at is not None and len(calls) == fail_at:
            raise RuntimeError("stopped")
        seen.append((validation.role, len(validation), tuple(syn.images.shape)))
        return 10.0 * cfg.lr_img

    entry = dataclasses.replace(
        DC_LR, candidates=(0.1, 1.0, 3.0), ipcs=(1,), distil=distil, score=score, uses=("batch_real",)
    )
    monkeypatch.setattr(tuning, "CHOICES", (entry,))
    return entry, calls


def test_tune_scores_on_validation_only_records_and_resumes(tmp_path, monkeypatch):
    seen = []
    _tiny(monkeypatch, seen, fail_at=2)
    with pytest.raises(RuntimeError, match="stopped"):
        tuning.tune("03", datasets=("mnist",), root=tmp_path, log=lambda s: None)
    partial = json.loads((tmp_path / "03_gradient_matching.json").read_text())
    assert list(partial["runs"]) == ["mnist/ipc1/0.1"] and "best" not in partial  # what was scored, nothing more

    _, calls = _tiny(monkeypatch, seen)
    record = tuning.tune("03", datasets=("mnist",), root=tmp_path, log=lambda s: None)
    assert calls == [1.0, 3.0]  # the first candidate's score was kept, not recomputed
    again = tuning.tune("03", datasets=("mnist",), root=tmp_path, log=lambda s: None)
    assert calls == [1.0, 3.0] and again["made"] == record["made"] and again["environment"] == record["environment"]
    assert record["best"] == 3.0 and record["measured_on"] == "validation"
    # every score was taken on the validation split: 100 training images per class, never the test split
    assert {role for role, _, _ in seen} == {"validation"}
    assert {n for _, n, _ in seen} == {10 * tuning.VALIDATION_PER_CLASS}
    assert tuning.read_choice("03", tmp_path)["scores"] == {"0.1": 1.0, "1.0": 10.0, "3.0": 30.0}
    said = tuning.describe("03", {"profile": "quick", "lr_img": 3.0}, tmp_path)
    assert said.startswith("lr_img = 3: the quick profile's lr_img = 3 was chosen among 3 values") and "MNIST" in said
    assert "0.1: 1.0 %, 1: 10.0 %, 3: 30.0 %" in said and "never a test image" in said
    other = tuning.describe("03", {"profile": "standard", "lr_img": 0.1}, tmp_path)
    assert other.startswith("lr_img = 0.1, set by the standard profile or by you; for comparison, the quick")


def test_a_record_made_with_other_settings_is_refused(tmp_path, monkeypatch):
    seen = []
    _tiny(monkeypatch, seen)
    tuning.tune("03", datasets=("mnist",), root=tmp_path, log=lambda s: None)
    path = tmp_path / "03_gradient_matching.json"
    record = json.loads(path.read_text())
    record["settings"]["batch_real"] = 256
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"other settings.*--restart"):
        tuning.tune("03", datasets=("mnist",), root=tmp_path, log=lambda s: None)
    _, calls = _tiny(monkeypatch, seen)
    tuning.tune("03", datasets=("mnist",), root=tmp_path, restart=True, log=lambda s: None)
    assert calls == [0.1, 1.0, 3.0]  # discarded and made again
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not a readable record"):
        tuning.read_choice("03", tmp_path)


def test_a_notebook_without_a_choice_is_named():
    with pytest.raises(ValueError, match="01_ridge_regression_closed_form has no quick-profile choice.*valid: 02_"):
        tuning.tune("01")
    with pytest.raises(FileNotFoundError, match="python -m course_utils.course.tuning"):
        tuning.read_choice("03", "/nonexistent")


def test_a_benchmark_budget_is_chosen_through_the_run_notebook_08_makes(tmp_path, monkeypatch):
    """Notebook 08's rates live in each method's benchmark budget: every candidate reaches the method's run at each
    IPC's budget (its steps kept), the record is named after notebook and method, and the value described is the
    budget's."""
    entry = tuning._entry("08.dc")
    assert entry.budget and entry.name == "08_benchmark_and_applications.dc"
    real = methods.distill
    ran = []

    def distill(method, train, ipc, **kwargs):
        ran.append((method, ipc, kwargs["lr_img"], kwargs["steps"]))
        return real("random", train, ipc, generator=kwargs["generator"])

    monkeypatch.setattr(methods, "distill", distill)
    score = lambda cfg, method, syn, validation: 1.0 + benchmark.hparams_for(cfg, method, 1)["lr_img"]  # noqa: E731
    monkeypatch.setattr(tuning, "CHOICES", (dataclasses.replace(entry, candidates=(0.3, 3.0), score=score),))
    record = tuning.tune("08.dc", datasets=("mnist",), root=tmp_path, log=lambda s: None)
    steps = {ipc: benchmark.hparams_for({"profile": "quick"}, "dc", ipc)["steps"] for ipc in (1, 10)}
    assert ran == [("dc", ipc, lr, steps[ipc]) for lr in (0.3, 3.0) for ipc in (1, 10)]
    assert record["best"] == 3.0 and (tmp_path / "08_benchmark_and_applications.dc.json").exists()
    assert record["settings"]["budget"]["1"] == {"steps": steps[1]} and "lr_img" not in record["settings"]["budget"]
    said = tuning.describe("08.dc", {"profile": "quick"}, tmp_path)
    assert said.startswith("dc's lr_img = 3: the quick profile's lr_img = 3 was chosen among 2 values by the mean")
    with pytest.raises(ValueError, match=r"08 makes 2 choices: name one of .*\.dc, .*\.dm"):
        monkeypatch.setattr(tuning, "CHOICES", (entry, dataclasses.replace(entry, method="dm")))
        tuning.tune("08", root=tmp_path)
    with pytest.raises(ValueError, match=r"08_benchmark_and_applications.herding has no quick-profile choice"):
        tuning.tune("08.herding", root=tmp_path)


def test_a_grid_that_grows_keeps_the_scores_it_has(tmp_path, monkeypatch):
    """A best candidate at the grid's edge calls for a wider grid: the runs already made are kept (each depends only
    on its own candidate), only the new candidate runs, and one dropped from the grid leaves the record."""
    seen = []
    entry, _ = _tiny(monkeypatch, seen)
    tuning.tune("03", datasets=("mnist",), root=tmp_path, log=lambda s: None)
    entry, calls = _tiny(monkeypatch, seen)
    monkeypatch.setattr(tuning, "CHOICES", (dataclasses.replace(entry, candidates=(1.0, 3.0, 10.0)),))
    record = tuning.tune("03", datasets=("mnist",), root=tmp_path, log=lambda s: None)
    assert calls == [10.0] and record["best"] == 10.0
    assert sorted(record["runs"]) == ["mnist/ipc1/1.0", "mnist/ipc1/10.0", "mnist/ipc1/3.0"]


def test_a_candidate_that_diverges_is_never_chosen(tmp_path, monkeypatch):
    from course_utils.methods import loop

    seen = []
    entry, _ = _tiny(monkeypatch, seen)

    def distil(cfg, train, ipc, gen):
        if cfg.lr_img == 3.0:  # the best score, were it not diverging
            raise loop.DivergenceError(
                "dc diverged at step 3/30. Likely cause: lr_img", method="dc", step=3, synthetic=None, path=None
            )
        return methods.distill("random", train, ipc, generator=gen)

    monkeypatch.setattr(tuning, "CHOICES", (dataclasses.replace(entry, distil=distil),))
    record = tuning.tune("03", datasets=("mnist",), root=tmp_path, log=lambda s: None)
    assert record["best"] == 1.0 and record["diverged"] == ["3.0"] and "3.0" not in record["scores"]
    assert record["runs"]["mnist/ipc1/3.0"]["diverged"] == "dc diverged at step 3/30"
    assert "diverged: 3" in tuning.describe("03", {"profile": "quick", "lr_img": 1.0}, tmp_path)
