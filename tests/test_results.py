"""Result records, atomic writes and SyntheticSet files."""

import json
import os

import pytest
import torch

from course_utils.core import atomic
from course_utils.records import results
from course_utils.records.synthetic import SyntheticSet


def _record(seed=0, ipc=10, **params):
    return results.make_record(
        "00_test",
        method="random",
        dataset="mnist",
        params={"ipc": ipc, "model": "convnet", **params},
        seed=seed,
        device="cpu",
        metrics=results.metrics([91.0, 92.0]),
        protocol="plain (50 epochs, none)",
        timings={"evaluate": 1.25},
    )


def test_record_carries_parameters_seed_device_protocol_and_versions():
    rec = _record()
    assert rec["params"]["ipc"] == 10 and rec["seed"] == 0 and rec["metrics"]["std"] == 0.5
    assert rec["metrics"]["mean"] == 91.5 and rec["metrics"]["accuracies"] == [91.0, 92.0]
    assert rec["protocol"]["label"] == "plain (50 epochs, none)" and rec["version"]
    env = rec["environment"]
    assert env["torch"] == torch.__version__ and env["device"] == "cpu" and "torchvision" in env
    json.dumps(rec, allow_nan=False)  # strict JSON


def test_one_schema_for_every_record():
    assert results.metrics([80.0]) == {"mean": 80.0, "std": None, "accuracies": [80.0]}  # no spread from one value
    with pytest.raises(ValueError, match="metrics need mean, std and accuracies; missing \\['std', 'accuracies'\\]"):
        results.make_record(
            "x", method="kip", dataset="mnist", params={}, seed=0, device="cpu", metrics={"mean": 90.0}, protocol="krr"
        )
    with pytest.raises(ValueError, match="at least one accuracy"):
        results.metrics([])


def test_nan_and_infinity_are_stored_as_null(tmp_path):
    rec = _record(loss=float("nan"), bound=float("inf"), curve=torch.tensor([1.0, float("nan")]))
    path = results.save_record(rec, tmp_path)
    back = json.loads(path.read_text())  # strict JSON: no NaN tokens in the file
    assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()
    assert back["params"]["loss"] is None and back["params"]["bound"] is None and back["params"]["curve"] == [1.0, None]


def test_unreadable_files_are_named_and_skipped(tmp_path):
    good = results.save_record(_record(), tmp_path)
    (good.parent / "broken.json").write_text('{"method": "dc", "metr')
    (good.parent / "other.json").write_text('{"not": "a record"}')
    skipped = []
    assert [r["method"] for r in results.load_records(tmp_path, skipped=skipped)] == ["random"]
    assert sorted(p.name for p, _ in skipped) == ["broken.json", "other.json"]
    with pytest.warns(UserWarning) as warned:
        results.load_records(tmp_path)
    assert sorted(str(w.message).split()[1].rsplit("/", 1)[1].rstrip(",") for w in warned) == [
        "broken.json",
        "other.json",
    ]


def test_save_and_load_round_trip_leaves_no_temporary_files(tmp_path):
    paths = [results.save_record(_record(seed=s), tmp_path) for s in (0, 1)]
    assert all(p.exists() for p in paths) and len({p.name for p in paths}) == 2
    assert [r["seed"] for r in results.load_records(tmp_path, "00_test")] == [0, 1]
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_output_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(tmp_path))
    path = results.save_record(_record())
    assert path.is_relative_to(tmp_path) and results.load_records()[0]["method"] == "random"


def test_markdown_table():
    single = results.make_record(
        "x",
        method="kip",
        dataset="mnist",
        params={"ipc": 1},
        seed=0,
        device="cpu",
        metrics=results.metrics([93.7]),
        protocol="krr predictor",
    )
    table = results.markdown_table(
        [_record(), single], ["method", "params.ipc", "metrics.mean", "metrics.std", "missing.key"]
    )
    assert table.splitlines()[2] == "| random | 10 | 91.50 | 0.50 |  |"
    assert table.splitlines()[3] == "| kip | 1 | 93.70 | – |  |"


def test_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "state.json"
    atomic.write_json(target, {"step": 1})

    class Boom:
        def __repr__(self):
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic.write_json(target, {"step": Boom()})  # json.dump calls default=str -> repr -> raises
    assert json.load(open(target)) == {"step": 1}
    assert os.listdir(tmp_path) == ["state.json"]


def test_synthetic_set_save_load(tmp_path):
    syn = SyntheticSet(
        torch.randn(6, 1, 28, 28), torch.tensor([0, 0, 1, 1, 2, 2]), lr=0.02, meta={"method": "dc", "num_classes": 3}
    )
    path = syn.save(tmp_path / "sets" / "dc.pt")
    back = SyntheticSet.load(path)
    assert torch.equal(back.images, syn.images) and torch.equal(back.labels, syn.labels)
    assert back.lr == 0.02 and back.meta["method"] == "dc" and back.ipc == 2 and len(back) == 6
    with pytest.raises(ValueError, match="differ in length"):
        SyntheticSet(torch.zeros(2, 1, 2, 2), torch.zeros(3, dtype=torch.long))


def test_soft_labels_count_by_their_most_likely_class():
    soft = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    syn = SyntheticSet(torch.zeros(4, 1, 2, 2), soft)
    assert syn.num_classes == 2 and syn.ipc == 2 and syn.hard_labels.tolist() == [0, 1, 0, 1]


def test_ipc_is_the_one_distilled_at_even_when_a_class_loses_its_arg_max():
    soft = torch.tensor([[0.6, 0.4], [0.7, 0.3]])  # learned labels: no image is most likely class 1
    assert SyntheticSet(torch.zeros(2, 1, 2, 2), soft, meta={"ipc": 1}).ipc == 1
    assert SyntheticSet(torch.zeros(2, 1, 2, 2), soft).ipc == 0  # without the record, the smallest class count
