"""Same seed, same machine => bit-identical synthetic subsets and accuracies, on real MNIST."""

import torch

from course_utils import experiment, repro
from course_utils.methods import forgetting


def _pipeline(train, test, seed):
    cfg = {"model": "convnet", "model_width": 8, "eval_models": 2, "eval_epochs": 2, "eval_dsa": True,
           "seed": seed, "device": "cpu", "profile": "test"}
    g = repro.seed_everything(seed)
    stats = forgetting.compute_statistics(train, generator=g, epochs=1, pool_per_class=20, model_kwargs={"width": 8})
    out = []
    for method, kwargs in (("random", {}), ("herding", {"pool_per_class": 30}), ("forgetting", {"statistics": stats})):
        run = experiment.run_method(method, train, test, 2, cfg=cfg, generator=g, experiment="determinism",
                                    save=False, **kwargs)
        out.append((run.synthetic.images, run.synthetic.meta["indices"], run.result.accuracies))
    return out


def test_same_seed_gives_bit_identical_sets_and_accuracies(mnist):
    train, test = mnist
    test = test.balanced_subset(20, torch.Generator().manual_seed(0))
    a, b, c = _pipeline(train, test, 0), _pipeline(train, test, 0), _pipeline(train, test, 1)
    for (ia, xa, acc_a), (ib, xb, acc_b) in zip(a, b):
        assert torch.equal(ia, ib) and xa == xb and acc_a == acc_b
    assert a[0][1] != c[0][1]  # another seed draws another random subset
