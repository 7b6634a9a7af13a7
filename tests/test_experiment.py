"""A run's record: every set's parameters come from the set itself, in one schema, for package and notebook runs."""

import torch

from course_utils.course import experiment
from course_utils.methods import dc
from course_utils.nets import samplers
from course_utils.records import results


def test_run_method_records_the_sets_parameters_and_timings(mnist, tmp_path, monkeypatch, tiny_cfg):
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(tmp_path))
    train, test = mnist
    test = test.balanced_subset(5, torch.Generator().manual_seed(0))
    run = experiment.run_method("random", train, test, 1, cfg=tiny_cfg, experiment="exp", variant="v")
    record = results.read_record(run.record_path)
    params = record["params"]
    assert (params["ipc"], params["profile"], params["variant"], params["draws"]) == (1, "test", "v", 2)
    assert params["eval"] == {"model": samplers.FreshInit("convnet", width=8).spec(), "num_models": 1}
    assert {"hparams", "model", "feature_map"} <= set(params) and params["test_images"] == 50
    assert set(record["timings_s"]) == {"distill", "evaluate_train", "evaluate_test"}
    assert len(record["metrics"]["draw_means"]) == 2 and record["dataset"] == "mnist"


def test_save_set_takes_the_sets_own_meta(mnist, tmp_path, tiny_cfg):
    train, _ = mnist
    small = train.balanced_subset(20, torch.Generator().manual_seed(0))
    syn = dc.distill(small, 1, generator=torch.Generator().manual_seed(0), steps=1, batch_real=4, model="convnet")
    path = experiment.save_set(
        "exp",
        "dc",
        syn,
        cfg={**tiny_cfg, "dataset": "ignored: the set knows its dataset"},
        seconds=1.5,
        params={"steps": 1},
        accuracies=[50.0],
        protocol_info="a test",
        folder=tmp_path,
    )
    record = results.read_record(path)
    assert record["dataset"] == "mnist" and record["params"]["steps"] == 1 and record["params"]["ipc"] == 1
    assert record["params"]["hparams"]["steps"] == 1 and record["params"]["model"]["model"] == "convnet"
    assert record["timings_s"] == {"distill": 1.5} and record["metrics"]["mean"] == 50.0


def test_cross_architecture_trains_every_set_on_every_architecture(mnist):
    import pytest

    from course_utils.methods import random_subset

    train, test = mnist
    test = test.balanced_subset(5, torch.Generator().manual_seed(0))
    sets = {f"draw {i}": random_subset.distill(train, 1, generator=torch.Generator().manual_seed(i)) for i in range(2)}
    archs = {"convnet": samplers.FreshInit("convnet", width=8), "lenet": "lenet"}
    table = experiment.cross_architecture(sets, test, archs, epochs=2, num_models=1)
    assert set(table) == {(r, c) for r in sets for c in archs}
    assert all(0 <= r.mean <= 100 and r.model == c for (_, c), r in table.items())
    again = experiment.cross_architecture(sets, test, archs, epochs=2, num_models=1)
    assert all(table[k].accuracies == again[k].accuracies for k in table)
    with pytest.raises(ValueError, match="at least one"):
        experiment.cross_architecture({}, test, archs)


def test_cross_architecture_table_helpers():
    table = {("a", "x"): 10.0, ("a", "y"): 30.0, ("b", "x"): 50.0, ("b", "y"): 20.0}
    rows, cols, means = experiment.cross_architecture_grid(table)
    assert (rows, cols, means) == (["a", "b"], ["x", "y"], [[10.0, 30.0], [50.0, 20.0]])
    assert experiment.worst_column(table) == {"a": 10.0, "b": 20.0}
    text = experiment.cross_architecture_markdown(table)
    assert text.splitlines()[0] == "| set \\ trained on | x | y | worst |"
    assert "| b | 50.0 | 20.0 | 20.0 |" in text
    assert "worst" not in experiment.cross_architecture_markdown(table, worst=False)
    import pytest

    with pytest.raises(ValueError, match="no cell for"):
        experiment.cross_architecture_grid({("a", "x"): 1.0, ("b", "y"): 2.0})


def test_record_set_records_a_set_made_elsewhere_as_run_method_does(mnist, tmp_path, monkeypatch, tiny_cfg):
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(tmp_path))
    train, test = mnist
    test = test.balanced_subset(5, torch.Generator().manual_seed(0))
    made = experiment.run_method("random", train, test, 1, cfg=tiny_cfg, experiment="exp", draws=1)
    again = experiment.record_set("random", made.synthetic, test, cfg=tiny_cfg, experiment="exp", seconds=2.0)
    assert again.result.accuracies == made.result.accuracies  # the same protocol, networks and seed
    given = experiment.record_set(
        "random", made.synthetic, test, cfg=tiny_cfg, experiment="exp", variant="v", result=made.result
    )
    first, second = (results.read_record(r.record_path) for r in (made, given))
    assert second["params"]["variant"] == "v" and second["params"]["eval"] == first["params"]["eval"]
    assert second["metrics"] == first["metrics"] and set(second["timings_s"]) == set(first["timings_s"])
    assert results.read_record(again.record_path)["timings_s"]["distill"] == 2.0
