"""loop.run_interleaved (and accdd.distill_interleaved on it): several runs stepped round-robin give every run the
images it gives alone, bit for bit, and their steps really alternate."""

from __future__ import annotations

import pytest
import torch

from course_utils import methods
from course_utils.methods import accdd, loop
from course_utils.nets import samplers

SMALL = {"steps": 3, "outer_loop": 2, "inner_loop": 2, "batch_real": 8, "batch_net": 16}
POOL = {"model": samplers.FreshInit("convnet", width=8), "batch_size": 64}


@pytest.fixture(scope="module")
def tiny(mnist):
    train, _ = mnist
    return train.balanced_subset(20, torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def models(tiny, tmp_path_factory):
    pool, _ = accdd.early_stage_pool(tiny, 2, 1, root=tmp_path_factory.mktemp("pools"), **POOL)
    return {"fresh": samplers.FreshInit("convnet", width=8), "plain": pool.without_perturbation(), "perturbed": pool}


def _generators(names, seed=0):
    return {name: torch.Generator().manual_seed(seed + i) for i, name in enumerate(names)}


def test_interleaved_runs_equal_the_runs_alone_and_alternate(tiny, models):
    order = []
    together = accdd.distill_interleaved(
        tiny,
        1,
        models,
        generators=_generators(models),
        callback=lambda name, event: order.append((name, event.step)),
        **SMALL,
    )
    assert list(together) == list(models)
    for name, gen in _generators(models).items():
        alone = methods.distill("accdd", tiny, 1, generator=gen, model=models[name], **SMALL)
        assert torch.equal(together[name].images, alone.images), name
        assert torch.equal(together[name].labels, alone.labels)
        assert together[name].meta["history"] == alone.meta["history"], name
        assert together[name].meta["variant"] == alone.meta["variant"]
        assert together[name].meta["steps_done"] == SMALL["steps"]
        assert together[name].meta["seconds"] > 0
    # round-robin: step 1 of every run, then step 2 of every run, ...
    assert order == [(name, k) for k in range(1, SMALL["steps"] + 1) for name in models]


def test_runs_of_different_lengths_alternate_while_both_run(tiny, models):
    config = accdd.Config(**SMALL).resolved(tiny.name)
    configs = {"short": accdd.Config(**{**SMALL, "steps": 1}).resolved(tiny.name), "long": config}
    runs = {name: (accdd.ModelAugmentedMatching, {"sampler": models["fresh"]}) for name in configs}
    order = []
    sets = loop.run_interleaved(
        runs, tiny, 1, generators=_generators(configs), configs=configs, callback=lambda n, e: order.append((n, e.step))
    )
    assert order == [("short", 1), ("long", 1), ("long", 2), ("long", 3)]
    assert sets["short"].meta["steps_done"] == 1 and sets["long"].meta["steps_done"] == 3


def test_every_run_needs_its_generator_and_config(tiny, models):
    runs = {"a": (accdd.ModelAugmentedMatching, {"sampler": models["fresh"]})}
    with pytest.raises(ValueError, match="own generator and config"):
        loop.run_interleaved(runs, tiny, 1, generators={}, configs={"a": accdd.Config(**SMALL)})
    with pytest.raises(TypeError, match="callback"):
        loop.run_interleaved(
            runs, tiny, 1, generators=_generators(runs), configs={"a": accdd.Config(**SMALL)}, callback=3
        )
    with pytest.raises(ValueError, match="model= given"):
        accdd.distill_interleaved(tiny, 1, {"a": None}, generators=_generators(["a"]), **SMALL)
