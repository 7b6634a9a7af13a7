"""Adding a method is one module plus one registry line: ``tests/toy_method.py``, registered here, goes through
notebook 08's benchmark (budget, preparation, protocol, record), the GPU check's identity list and the record schema
with no other edit (``tests/test_method_contract.py`` runs it through the contract as well)."""

import importlib.util
import types
from pathlib import Path

import pytest
import torch

from course_utils import methods
from course_utils.course import benchmark, experiment
from course_utils.records import results

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def toy(monkeypatch):
    import toy_method

    monkeypatch.setattr(methods, "REGISTRY", dict(methods.REGISTRY))
    return methods.register(toy_method)


def test_the_toy_is_registered_from_its_module_alone(toy):
    assert methods.info("toy") is toy and methods.get_method("toy").__name__ == "toy_method"
    assert "toy" in methods.METHOD_NAMES and methods.paper_protocol("toy") == "dc"
    other = types.ModuleType("other_toy")  # another module that names its method "toy" is refused
    module = methods.get_method("toy")
    other.METHOD, other.Config, other.distill = module.METHOD, module.Config, module.distill
    with pytest.raises(ValueError, match="a method named 'toy' is registered already"):
        methods.register(other)


def test_the_toy_runs_through_notebook_08s_benchmark_and_its_record_has_the_schema(
    toy, mnist, tiny_cfg, tmp_path, monkeypatch
):
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(tmp_path))
    monkeypatch.setattr(results, "COMMITTED_DIR", tmp_path / "committed")
    train, test = mnist
    g = torch.Generator().manual_seed(0)
    data = {"mnist": (train.balanced_subset(10, g), test.balanced_subset(5, g))}
    cfg = {**tiny_cfg, "profile": "quick"}  # the toy's own quick budget, from its registry entry
    assert benchmark.check_grid(cfg, ["toy"], [1, 2]) == ["random", "toy"]
    assert benchmark.hparams_for(cfg, "toy", 2) == {"steps": 3, "batch_real": 8}
    rows = benchmark.run_grid(data, cfg=cfg, methods_=["toy"], ipcs=[1], root=tmp_path / "prep")
    toy_row = next(r for r in rows if r.method == "toy")
    assert toy_row.source == "computed now" and toy_row.gain is not None and toy_row.paper is None
    assert experiment.eval_protocol({**cfg, "eval_protocol": "paper"}, "toy", "mnist").name == "dc"
    record = next(
        r for r in results.load_records(tmp_path / "results", experiment=benchmark.EXPERIMENT) if r["method"] == "toy"
    )
    assert set(record["metrics"]) >= {"mean", "std", "accuracies"} and record["params"]["ipc"] == 1
    assert record["params"]["hparams"]["steps"] == 3 and record["params"]["model"] is None
    assert record["protocol"]["label"] == toy_row.protocol and record["environment"]["device"] == "cpu"


def test_the_toy_is_in_the_gpu_checks_identity_list(toy):
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "tools" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    assert "toy" in gpu_check.identity_methods()
    report = gpu_check.check_identity("cpu", names=["toy"])
    assert report["ok"] and report["toy"]["images_identical"], report
