"""Same seed, same machine => bit-identical synthetic subsets and accuracies, on real MNIST."""

import torch

from course_utils.core import repro
from course_utils.course import experiment
from course_utils.methods import forgetting
from course_utils.nets import samplers


def _pipeline(train, test, seed):
    cfg = {
        "model": "convnet",
        "model_width": 8,
        "eval_models": 2,
        "eval_epochs": 2,
        "eval_protocol": "dsa",
        "seed": seed,
        "device": "cpu",
        "profile": "test",
        "dataset": "mnist",
        "random_draws": 2,
    }
    g = repro.seed_everything(seed)
    stats = forgetting.compute_statistics(
        train, generator=g, epochs=1, pool_per_class=20, model=samplers.FreshInit("convnet", width=8)
    )
    out = []
    for method, kwargs in (("random", {}), ("herding", {"pool_per_class": 30}), ("forgetting", {"statistics": stats})):
        run = experiment.run_method(method, train, test, 2, cfg=cfg, experiment="determinism", save=False, **kwargs)
        out.append((run.synthetic.images, run.synthetic.meta["indices"], run.result.accuracies))
    return out


def test_same_seed_gives_bit_identical_sets_and_accuracies(mnist):
    train, test = mnist
    test = test.balanced_subset(20, torch.Generator().manual_seed(0))
    a, b, c = _pipeline(train, test, 0), _pipeline(train, test, 0), _pipeline(train, test, 1)
    for (ia, xa, acc_a), (ib, xb, acc_b) in zip(a, b):
        assert torch.equal(ia, ib) and xa == xb and acc_a == acc_b
    assert a[0][1] != c[0][1]  # another seed draws another random subset


def test_a_run_does_not_depend_on_the_runs_before_it(mnist, tiny_cfg):
    """Each run draws from a generator derived from (seed, method, dataset, ipc, variant, draw): the same set
    whether or not other runs came first in the notebook."""
    train, test = mnist
    test = test.balanced_subset(10, torch.Generator().manual_seed(0))
    cfg = {**tiny_cfg, "random_draws": 3}
    alone = experiment.run_method("random", train, test, 1, cfg=cfg, experiment="x", save=False)
    experiment.run_method("herding", train, test, 1, cfg=cfg, experiment="x", save=False, pool_per_class=5)
    after = experiment.run_method("random", train, test, 1, cfg=cfg, experiment="x", save=False)
    assert torch.equal(alone.synthetic.images, after.synthetic.images)
    assert len(alone.draws) == 3 and len(alone.result.accuracies) == 3  # three draws, one network each
    assert alone.result.settings["draws"] == 3 and len(alone.result.settings["draw_means"]) == 3
    assert repro.run_seed(0, "random", "mnist", 1) != repro.run_seed(0, "random", "mnist", 10)
