"""Distribution matching (DM): the loss by hand, batched == per-class loop, batch norm, the distill loop."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from course_utils import methods
from course_utils.data.augment import DSA
from course_utils.methods import dm
from course_utils.nets import samplers
from course_utils.nets.models import get_model
from course_utils.records import checkpoint

TINY = samplers.FreshInit("convnet", width=8)
SMALL = {"steps": 3, "batch_real": 6, "model": TINY}
STRATEGY = "color_crop_cutout_flip_scale_rotate"


def net_for(name="convnet", seed=0, classes=4, **kw):
    torch.manual_seed(seed)
    return get_model(name, 1, classes, 28, **{"width": 8, **kw})


def class_batch(k=4, n=5, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(k, n, 1, 28, 28, generator=g).requires_grad_(requires_grad)


class PixelNet(nn.Module):
    """``embed(x) = W · vec(x)``: a linear embedding whose mean is ``W`` times the mean image."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight)

    def embed(self, x):
        return x.flatten(1) @ self.weight.T


# ----------------------------------------------------------------------------------------------
# the loss
# ----------------------------------------------------------------------------------------------


def test_loss_and_image_gradient_by_hand():
    # two classes of 1×1×2 "images", embedding = the pixels (W = I)
    real = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [2.0, 3.0]]]).view(2, 2, 1, 1, 2)
    syn = torch.tensor([[[0.0, 0.0]], [[1.0, 1.0]]]).view(2, 1, 1, 1, 2).requires_grad_(True)
    net = PixelNet(torch.eye(2))
    for impl in dm.IMPLEMENTATIONS:
        loss, per_class = dm.distribution_matching_loss(net, real, syn, implementation=impl)
        # class 0: means (2, 3) vs (0, 0) -> 4 + 9 = 13;  class 1: (1, 2) vs (1, 1) -> 0 + 1 = 1
        assert per_class.tolist() == [13.0, 1.0] and loss.item() == 14.0
        (grad,) = torch.autograd.grad(loss, syn)
        # ∂/∂s ‖μ_r − s‖² = −2 (μ_r − s) (one synthetic image per class)
        assert grad.view(2, 2).tolist() == [[-4.0, -6.0], [0.0, -2.0]]
    # a general W: ‖W (μ_r − μ_s)‖²
    w = torch.tensor([[1.0, -1.0], [2.0, 0.5], [0.0, 3.0]])
    loss, _ = dm.distribution_matching_loss(PixelNet(w), real, syn)
    expected = (w @ torch.tensor([2.0, 3.0])).pow(2).sum() + (w @ torch.tensor([0.0, 1.0])).pow(2).sum()
    assert loss.item() == pytest.approx(expected.item())


def test_loss_on_a_convnet_equals_image_by_image_means():
    net = net_for()
    real, syn = class_batch(n=5, seed=1), class_batch(n=3, seed=2)
    loss, per_class = dm.distribution_matching_loss(net, real, syn)
    hand = []
    with torch.no_grad():
        for c in range(4):  # one image at a time, means as plain sums
            mu_r = sum(net.embed(real[c, i : i + 1])[0] for i in range(5)) / 5
            mu_s = sum(net.embed(syn[c, j : j + 1])[0] for j in range(3)) / 3
            hand.append(((mu_r - mu_s) ** 2).sum())
    torch.testing.assert_close(per_class, torch.stack(hand), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(loss, torch.stack(hand).sum(), rtol=1e-5, atol=1e-6)


def test_real_side_has_no_graph_and_network_gets_no_gradient():
    net = net_for()
    net.requires_grad_(False)
    real, syn = class_batch(seed=1, requires_grad=True), class_batch(n=2, seed=2, requires_grad=True)
    for impl in dm.IMPLEMENTATIONS:
        loss, _ = dm.distribution_matching_loss(
            net, real, syn, dsa=DSA(STRATEGY), generator=torch.Generator().manual_seed(0), implementation=impl
        )
        g_real, g_syn = torch.autograd.grad(loss, [real, syn], allow_unused=True)
        # real embeddings are constants (batched DSA augments real and synthetic images in one call: zeros flow back)
        assert g_real is None or not g_real.any()
        assert torch.isfinite(g_syn).all() and g_syn.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())


@pytest.mark.parametrize("strategy", ["none", STRATEGY])
def test_batched_equals_the_per_class_loop(strategy):
    net = net_for()
    real, syn = class_batch(k=6, n=5, seed=3), class_batch(k=6, n=2, seed=4, requires_grad=True)
    dsa = DSA(strategy)
    out, draws = {}, {}
    for impl in dm.IMPLEMENTATIONS:
        g = torch.Generator().manual_seed(7)
        loss, per_class = dm.distribution_matching_loss(net, real, syn, dsa=dsa, generator=g, implementation=impl)
        (grad,) = torch.autograd.grad(loss, syn)
        out[impl], draws[impl] = (loss, per_class, grad), g.get_state()
    for a, b in zip(out["loop"], out["batched"]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert torch.equal(draws["loop"], draws["batched"]), "the same random draws"
    if strategy != "none":  # the augmentation changed the loss, and the classes drew different ops
        plain, _ = dm.distribution_matching_loss(net, real, syn)
        assert not torch.isclose(plain, out["batched"][0])
        g = torch.Generator().manual_seed(7)
        assert len({dsa.sample(1, g).ops for _ in range(6)}) > 1


def test_batchnorm_uses_statistics_of_all_classes_in_both_implementations():
    net = net_for("convnet_bn")
    real, syn = class_batch(n=5, seed=5), class_batch(n=2, seed=6, requires_grad=True)
    out = {}
    for impl in dm.IMPLEMENTATIONS:
        loss, per_class = dm.distribution_matching_loss(net, real, syn, implementation=impl)
        out[impl] = (loss, per_class, *torch.autograd.grad(loss, syn))
    for a, b in zip(out["loop"], out["batched"]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    # the reference's batch-norm branch: train mode, one batch of all classes per side
    assert net.training
    with torch.no_grad():
        mu_r = net.embed(real.flatten(0, 1)).view(4, 5, -1).mean(1)
        mu_s = net.embed(syn.flatten(0, 1)).view(4, 2, -1).mean(1)
        per_class_forwards = torch.stack(
            [((net.embed(real[c]).mean(0) - net.embed(syn[c]).mean(0)) ** 2).sum() for c in range(4)]
        )
    torch.testing.assert_close(out["batched"][1].detach(), ((mu_r - mu_s) ** 2).sum(1), rtol=1e-4, atol=1e-6)
    assert not torch.allclose(per_class_forwards, out["batched"][1].detach(), rtol=1e-3), "per class would differ"


def test_loss_errors_name_the_bad_value():
    net, real, syn = net_for(), class_batch(), class_batch(n=2)
    with pytest.raises(ValueError, match="implementation='fast' is not valid; valid: batched, loop"):
        dm.distribution_matching_loss(net, real, syn, implementation="fast")
    with pytest.raises(ValueError, match=r"same K.*\(4, 5, 1, 28, 28\) and \(3, 2, 1, 28, 28\)"):
        dm.distribution_matching_loss(net, real, syn[:3])
    with pytest.raises(ValueError, match="needs a torch.Generator.*generator=None"):
        dm.distribution_matching_loss(net, real, syn, dsa=DSA(STRATEGY))
    with pytest.raises(TypeError, match="net.embed.*Linear has no embed method"):
        dm.distribution_matching_loss(nn.Linear(784, 4), real, syn)


# ----------------------------------------------------------------------------------------------
# distill: determinism, batched == loop, checkpoints, errors, progress
# ----------------------------------------------------------------------------------------------


def test_distill_is_deterministic_balanced_and_moves_the_images(blob_set):
    train = blob_set(8)
    state = torch.get_rng_state()
    run = lambda seed: dm.distill(train, 2, generator=torch.Generator().manual_seed(seed), **SMALL)  # noqa: E731
    a, b, c = run(0), run(0), run(1)
    assert torch.equal(torch.get_rng_state(), state), "only the explicit generator may be drawn from"
    assert torch.equal(a.images, b.images) and a.meta["history"] == b.meta["history"], "same seed: bit-identical"
    assert not torch.equal(a.images, c.images)
    assert a.images.shape == (20, 1, 28, 28) and a.labels.tolist() == [c for c in range(10) for _ in range(2)]
    assert a.meta["method"] == "dm" and len(a.meta["history"]["loss"]) == 3 and not a.images.requires_grad
    assert a.meta["strategy"] == "color_crop_cutout_scale_rotate" == a.meta["hparams"]["strategy"]  # MNIST: no flip
    assert a.meta["batch_real_used"] == 6 and a.meta["implementation"] == "batched"
    init = train.images[train.sample_balanced(2, torch.Generator().manual_seed(0))]
    assert not torch.equal(a.images, init), "the images must have moved from their real initialisation"


@pytest.mark.parametrize("strategy", ["none", None])
def test_batched_and_loop_runs_agree(strategy, blob_set):
    train = blob_set(8)
    runs = {
        impl: dm.distill(
            train,
            2,
            generator=torch.Generator().manual_seed(0),
            implementation=impl,
            strategy=strategy,
            **{**SMALL, "steps": 2},
        )
        for impl in dm.IMPLEMENTATIONS
    }
    torch.testing.assert_close(runs["loop"].images, runs["batched"].images, rtol=1e-4, atol=1e-5)
    assert runs["loop"].meta["history"]["loss"] == pytest.approx(runs["batched"].meta["history"]["loss"], rel=1e-4)


def test_checkpoint_resume_equals_an_unbroken_run_and_other_runs_are_refused(blob_set, tmp_path):
    train = blob_set(8)
    path = tmp_path / "dm.pt"
    run = lambda seed=0, ipc=2, **kw: dm.distill(  # noqa: E731
        train, ipc, generator=torch.Generator().manual_seed(seed), **{**SMALL, "steps": 4, **kw}
    )
    straight = run()

    def kill(event):
        if event.step == 3:
            raise KeyboardInterrupt  # killed after step 3, whose checkpoint was not written

    with pytest.raises(KeyboardInterrupt):
        run(checkpoint=path, checkpoint_every=2, callback=kill)
    resumed = run(checkpoint=path, checkpoint_every=2)
    assert torch.equal(straight.images, resumed.images) and straight.meta["history"] == resumed.meta["history"]
    with pytest.raises(checkpoint.CheckpointError, match=rf"{path} was written by another run.*generator"):
        run(seed=1, checkpoint=path)
    with pytest.raises(checkpoint.CheckpointError, match=r"another run \(ipc: saved 2, asked 1"):
        run(ipc=1, checkpoint=path)
    with pytest.raises(checkpoint.CheckpointError, match="another run.*hparams.implementation"):
        run(implementation="loop", checkpoint=path)


def test_bad_hyperparameters_are_refused_naming_the_value(blob_set):
    train = blob_set(8)
    g = torch.Generator().manual_seed(0)
    cases = [
        ({"init": "zeros"}, ValueError, "init='zeros' is not valid; valid: real, noise"),
        ({"implementation": "fast"}, ValueError, "implementation='fast' is not valid; valid: batched, loop"),
        ({"lr_img": -1}, ValueError, "lr_img must be a finite number > 0, got -1"),
        ({"momentum_img": 1.5}, ValueError, r"momentum_img must be in \[0, 1\), got 1.5"),
        ({"batch_real": 0}, ValueError, "batch_real must be an integer >= 1, got 0"),
        ({"steps": 0}, ValueError, "steps must be an integer >= 1, got 0"),
        ({"strategy": "blur"}, ValueError, "unknown DSA op 'blur'.*valid ops"),
        ({"dsa_mode": "both"}, ValueError, "dsa_mode='both' is not valid; valid: single, all"),
        ({"dsa_params": 3}, ValueError, "dsa_params must be a DSAParams or a dict of its fields, got 3"),
        ({"outer_loop": 3}, TypeError, r"dm: unknown hyperparameter\(s\) 'outer_loop'; valid: steps, .*batch_real"),
        ({"model": 3}, TypeError, "model must be a model name"),
        ({"model": lambda: nn.Linear(784, 10)}, TypeError, "no embed method"),
    ]
    for hparams, error, message in cases:
        with pytest.raises(error, match=message):
            dm.distill(train, 1, generator=g, **{"steps": 1, "batch_real": 4, **hparams})
    with pytest.raises(ValueError, match="ipc=9 is larger than the smallest class"):
        dm.distill(train, 9, generator=g, steps=1)


def test_defaults_follow_the_reference():
    c = dm.Config()
    assert (c.steps, c.init, c.lr_img, c.momentum_img, c.batch_real) == (20000, "real", 1.0, 0.5, 256)
    assert c.strategy is None and c.resolved("cifar10").strategy == STRATEGY and c.implementation == "batched"
    assert methods.info("dm").notebook == "04" and methods.get_method("dm") is dm


def test_distribution_matching_reduces_the_loss(blob_set):
    """From noise, 80 iterations bring the class means closer in the embeddings of five other random networks
    (0.34-0.37 of the starting loss for seeds 0-2; the last five iterations' losses 0.41-0.53 of the first five's)."""
    train = blob_set(20, seed=1)
    hparams = {"init": "noise", "strategy": "none", "batch_real": 6}
    start = dm.DistributionMatching(
        train, 2, generator=torch.Generator().manual_seed(0), config=dm.Config(**hparams), sampler=TINY
    ).images.detach()
    syn = dm.distill(train, 2, generator=torch.Generator().manual_seed(0), steps=80, model=TINY, **hparams)
    real = train.images[train.sample_per_class(20, torch.Generator().manual_seed(0))]

    def loss(images):
        nets = [net_for(seed=s, classes=10) for s in range(100, 105)]
        with torch.no_grad():
            return sum(float(dm.distribution_matching_loss(n, real, images.view(10, 2, 1, 28, 28))[0]) for n in nets)

    before, after = loss(start), loss(syn.images)
    assert after < 0.6 * before, (before, after)
    history = syn.meta["history"]["loss"]
    assert sum(history[-5:]) < 0.7 * sum(history[:5]), history
