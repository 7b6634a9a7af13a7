"""Notebook 08's benchmark: one protocol for every cell, records in the course's schema, recorded results read back,
the gain over random, and errors that name the valid methods and IPCs; the NAS proxy helpers."""

import json

import pytest
import torch

from course_utils.course import benchmark, config
from course_utils.evaluation import nas
from course_utils.records import results

HPARAMS = {
    "random": {},
    "herding": {},
    "dm": {"steps": 2, "batch_real": 4, 1: {}, 2: {"steps": 1}},
    "mtt": {"steps": 1, "syn_steps": 2, "expert_epochs": 1, "max_start_epoch": 1, "lr_img": 10.0},
    "zen": {"steps": 1, "inner_steps": 2, "hypergradient": "identity"},
}
PREPARE = {
    "mtt": {"experts": 1, "epochs": 2},
    "zen": {"pool": ("convnet", "mlp"), "pool_width": (8, 16)},
}


@pytest.fixture
def cfg(tiny_cfg):
    return {**tiny_cfg, "hparams": HPARAMS, "prepare": PREPARE}


@pytest.fixture
def small(mnist):
    train, test = mnist
    g = torch.Generator().manual_seed(0)
    return train.balanced_subset(10, g), test.balanced_subset(5, g)


def test_grid_runs_every_cell_under_one_protocol_and_records_it(small, cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(tmp_path))
    monkeypatch.setattr(results, "COMMITTED_DIR", tmp_path / "committed")
    train, test = small
    rows = benchmark.run_grid(
        {"mnist": (train, test)}, cfg=cfg, methods_=["dm", "herding"], ipcs=[1, 2], root=tmp_path / "prep"
    )
    assert [(r.method, r.ipc) for r in rows] == [(m, i) for m in ("random", "dm", "herding") for i in (1, 2)]
    assert len({r.protocol for r in rows}) == 1 and all(r.source == "computed now" for r in rows)
    for r in rows:
        assert r.n == 1 and r.seeds == [0] and r.dataset == "mnist" and r.profile == "test"
        assert r.synthetic is not None and r.synthetic.ipc == r.ipc and r.distill_seconds >= 0
        ref = next(x for x in rows if x.method == "random" and x.ipc == r.ipc)
        assert r.gain == pytest.approx(r.mean - ref.mean)
        if r.method == "random":
            assert r.gain_ci is None
        else:
            lo, hi = r.gain_ci
            assert lo <= r.gain + 1e-9 and r.gain - 1e-9 <= hi
    assert rows[0].paper is not None and rows[0].paper.accuracy == 64.9  # the DC paper's random MNIST IPC 1
    records = results.load_records(tmp_path / "results", experiment=benchmark.EXPERIMENT)
    assert len(records) == 6 and {r["params"]["profile"] for r in records} == {"test"}
    dm2 = next(r for r in records if r["method"] == "dm" and r["params"]["ipc"] == 2)
    assert dm2["params"]["hparams"]["steps"] == 1 and dm2["params"]["hparams"]["batch_real"] == 4  # per-IPC override
    assert "prepare" in dm2["timings_s"]
    assert "| mnist | dm | 2 |" in benchmark.markdown(rows)
    points = benchmark.time_points(rows, "mnist")
    assert set(points) == {"random", "dm", "herding"} and set(points["dm"]) == {1, 2}


def test_a_committed_record_of_the_same_cell_is_read_instead_of_recomputed(small, cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(tmp_path / "out"))
    committed = tmp_path / "committed"
    monkeypatch.setattr(results, "COMMITTED_DIR", committed)
    train, test = small
    computed = benchmark.run_cell("random", train, test, 1, cfg=cfg)
    record = results.read_record(next((tmp_path / "out" / "results").rglob("*.json")))
    for seed, mean in ((0, 70.0), (1, 80.0)):  # a GPU run of two seeds, written where the course keeps them
        fake = {**record, "seed": seed, "metrics": results.metrics([mean])}
        fake["environment"] = {**record["environment"], "device": "cuda:0", "device_name": "Test GPU"}
        results.save_record(fake, committed)
    row = benchmark.run_cell("random", train, test, 1, cfg=cfg)
    assert row.recorded and row.source == "recorded on cuda:0 (Test GPU)" and row.synthetic is None
    assert (row.mean, row.n, row.seeds, row.std_over) == (75.0, 2, [0, 1], "seeds")
    assert not benchmark.run_cell("random", train, test, 1, cfg=cfg, use_recorded=False).recorded
    # another profile, IPC or protocol is another cell: computed now
    assert not benchmark.run_cell("random", train, test, 1, cfg={**cfg, "profile": "other"}).recorded
    assert not benchmark.run_cell("random", train, test, 2, cfg=cfg).recorded
    assert not benchmark.run_cell("random", train, test, 1, cfg={**cfg, "eval_epochs": 2}).recorded
    assert computed.source == "computed now"


def test_unknown_method_or_ipc_names_the_valid_ones(cfg):
    with pytest.raises(ValueError, match=r"unknown method 'dmm'; valid: random, herding, .*zen"):
        benchmark.check_grid(cfg, ["dmm"], [1])
    with pytest.raises(ValueError, match=r"ipc must be an integer >= 1, got 0"):
        benchmark.check_grid(cfg, ["dm"], [1, 0])
    with pytest.raises(
        ValueError, match=r"dc has no benchmark budget for profile 'test' \(its budgets: quick, standard"
    ):
        benchmark.hparams_for(cfg, "dc", 1)  # neither the registry nor the caller's table has one
    assert benchmark.check_grid(cfg, ["herding", "dm", "random"], [1, 2]) == ["random", "herding", "dm"]
    assert benchmark.hparams_for(cfg, "dm", 2) == {"steps": 1, "batch_real": 4}
    assert benchmark.listed_ipcs(cfg, "herding") is None  # one setting for every IPC
    # an IPC without its own entry takes the nearest listed one (the smaller on a tie)
    assert benchmark.listed_ipcs(cfg, "dm") == (1, 2)
    assert benchmark.hparams_for(cfg, "dm", 10) == benchmark.hparams_for(cfg, "dm", 2)
    assert benchmark.hparams_for(cfg, "dm", 1) != benchmark.hparams_for(cfg, "dm", 2)


def test_gain_interval_is_a_seeded_percentile_bootstrap_of_the_difference_of_means():
    mine, theirs = [80.0, 82.0], [50.0, 52.0, 54.0, 56.0]
    lo, hi = benchmark.gain_interval(mine, theirs)
    assert 80 - 56 <= lo < 28 < hi <= 82 - 50  # inside the extremes, around the gain of the means (28)
    assert benchmark.gain_interval(mine, theirs) == (lo, hi)  # the same draws every time
    assert benchmark.gain_interval([70.0] * 3, [60.0] * 5) == pytest.approx((10.0, 10.0))  # no spread, no width
    wide = benchmark.gain_interval([60.0, 100.0], theirs)
    assert wide[1] - wide[0] > hi - lo  # more spread between networks, a wider interval
    narrow = benchmark.gain_interval(mine * 20, theirs * 10, level=0.5)
    assert narrow[1] - narrow[0] < hi - lo
    for bad, match in (
        (dict(accuracies=[]), "accuracies is empty"),
        (dict(random_accuracies=[]), "random_accuracies is empty"),
        (dict(level=1.0), "level must lie strictly between 0 and 1"),
        (dict(resamples=10), "resamples must be an int >= 100"),
    ):
        args = {"accuracies": mine, "random_accuracies": theirs, **bad}
        with pytest.raises(ValueError, match=match):
            benchmark.gain_interval(args.pop("accuracies"), args.pop("random_accuracies"), **args)


def test_gains_compare_within_dataset_ipc_and_protocol():
    def row(method, ipc, mean, protocol="p", dataset="mnist"):
        return benchmark.Row(
            method,
            dataset,
            ipc,
            "quick",
            protocol,
            mean,
            None,
            "networks",
            1,
            [0],
            1.0,
            None,
            "cpu",
            benchmark.COMPUTED,
        )

    rows = benchmark.add_gains(
        [row("random", 1, 50.0), row("dm", 1, 80.0), row("dm", 10, 90.0), row("dc", 1, 60.0, protocol="q")]
    )
    assert [r.gain for r in rows] == [0.0, 30.0, None, None]  # no random row at IPC 10, none under protocol q


def test_preparation_makes_what_each_method_needs_once(small, cfg, tmp_path):
    train, _ = small
    prep = benchmark.Preparation(train, cfg, root=tmp_path)
    experts = prep.kwargs("mtt")["model"]
    assert len(experts.trajectories) == 1 and prep.seconds["mtt"] >= 0
    assert prep.kwargs("mtt")["model"] is experts  # made once
    pool = prep.kwargs("zen")["model"]
    assert pool.names == ["convnet", "mlp"] and prep.seconds["zen"] == 0.0
    assert prep.kwargs("random") == {}


def test_quick_profile_has_settings_for_every_registered_method_at_its_ipcs():
    from course_utils import methods

    for profile in config.PROFILE_NAMES:
        cfg = config.resolve(profile, notebook=benchmark.EXPERIMENT)
        assert benchmark.check_grid(cfg, cfg.methods, cfg.ipcs)[0] == "random"
        assert set(cfg.methods) == set(methods.METHOD_NAMES)
        assert cfg.eval_protocol != "paper"  # one protocol for every row
    quick = config.resolve("quick", notebook=benchmark.EXPERIMENT)
    benchmark.check_grid(quick, quick.methods, [1, 10, 50])  # IPC 50 by parameter


def test_records_are_strict_json(small, cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(tmp_path))
    monkeypatch.setattr(results, "COMMITTED_DIR", tmp_path / "committed")
    train, test = small
    benchmark.run_cell("herding", train, test, 1, cfg=cfg)
    for path in (tmp_path / "results").rglob("*.json"):
        json.loads(path.read_text(), parse_constant=lambda c, where=path: pytest.fail(f"{c} in {where}"))


# ------------------------------------------------------------------------------------------------------ nas
def test_nas_candidates_and_agreement():
    cands = nas.convnet_candidates([1, 2], [16, 32], 32)
    assert {name: (c.model, c.kwargs) for name, c in cands.items()} == {
        "d1-w32": ("convnet", {"depth": 1, "width": 32}),
        "d2-w32": ("convnet", {"depth": 2, "width": 32}),
        "d3-w16": ("convnet", {"depth": 3, "width": 16}),
    }
    a = nas.agreement({"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 10.0, "b": 20.0, "c": 30.0})
    assert (a.spearman, a.kendall, a.same_winner) == (pytest.approx(1.0), pytest.approx(1.0), True)
    assert a.proxy_ranking == a.reference_ranking == ["c", "b", "a"]
    b = nas.agreement({"a": 3.0, "b": 2.0, "c": 1.0}, {"a": 10.0, "b": 20.0, "c": 30.0})
    assert b.spearman == pytest.approx(-1.0) and not b.same_winner
    with pytest.raises(ValueError, match="differ in their candidates: \\['d'\\]"):
        nas.agreement({"a": 1.0, "d": 2.0}, {"a": 1.0})
    with pytest.raises(ValueError, match="depth"):
        nas.convnet_candidates([0], [], 32)


def test_nas_scores_train_each_candidate(small):
    from course_utils.methods import random_subset

    train, test = small
    syn = random_subset.distill(train, 1, generator=torch.Generator().manual_seed(0))
    cands = nas.convnet_candidates([1, 2], [], 8)
    proxy, secs, protocol = nas.proxy_scores(syn, test, cands, protocol="plain", epochs=1, num_models=1)
    reference, ref_secs = nas.reference_scores(train, test, cands, epochs=1)
    assert set(proxy) == set(reference) == set(cands) and secs > 0 and ref_secs > 0 and "plain" in protocol
    assert all(0 <= v <= 100 for v in (*proxy.values(), *reference.values()))
