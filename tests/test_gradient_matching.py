"""Gradient matching (DC) and DSA: distances, per-class gradients, batch norm, the distill loop."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from course_utils import methods
from course_utils.data.augment import DSA
from course_utils.methods import dc, matching
from course_utils.nets import samplers
from course_utils.nets.models import get_model

SMALL = {"steps": 2, "outer_loop": 2, "inner_loop": 2, "batch_real": 6, "model": samplers.FreshInit("convnet", width=8)}


def net_for(name="convnet", seed=0, **kw):
    torch.manual_seed(seed)
    return get_model(name, 1, 3, 28, **{"width": 8, **kw})


def class_batch(k=3, n=4, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(k, n, 1, 28, 28, generator=g)
    y = torch.arange(k).view(k, 1).expand(k, n)
    return x.requires_grad_(requires_grad), y


# ----------------------------------------------------------------------------------------------
# distances
# ----------------------------------------------------------------------------------------------


def test_ours_distance_by_hand():
    # a "conv" gradient (2 output channels, 1×2×1 kernel), a linear one (1×2) and a bias
    a = [torch.tensor([[[[1.0], [0.0]]], [[[1.0], [1.0]]]]), torch.tensor([[3.0, 4.0]]), torch.tensor([1.0, 2.0])]
    b = [torch.tensor([[[[0.0], [2.0]]], [[[2.0], [2.0]]]]), torch.tensor([[4.0, 3.0]]), torch.tensor([-5.0, 9.0])]
    eps = matching.EPS
    # rows (1,0)·(0,2): cos 0 -> 1;  (1,1)·(2,2): cos 1 -> 0;  linear (3,4)·(4,3) = 24/25 -> 1/25; bias -> 0
    expected = (1 - 0 / (1 * 2 + eps)) + (1 - 4 / (math.sqrt(2) * math.sqrt(8) + eps)) + (1 - 24 / (25 + eps))
    got = matching.gradient_distance(a, b, "layerwise")
    assert got.item() == pytest.approx(expected, abs=1e-6)
    assert got.item() == pytest.approx(1 + 1 / 25, abs=1e-5)
    # 1-D parameters contribute exactly 0, whatever their gradients
    assert matching.gradient_distance(a[2:], b[2:], "layerwise").item() == 0.0


def test_mse_and_cos_distances_by_hand():
    a = [torch.tensor([[1.0, 2.0]]), torch.tensor([3.0])]
    b = [torch.tensor([[2.0, 0.0]]), torch.tensor([1.0])]
    assert matching.gradient_distance(a, b, "mse").item() == pytest.approx(1 + 4 + 4)
    dot, na, nb = 1 * 2 + 0 + 3 * 1, math.sqrt(1 + 4 + 9), math.sqrt(4 + 0 + 1)
    assert matching.gradient_distance(a, b, "cos").item() == pytest.approx(1 - dot / (na * nb + matching.EPS))
    # identical gradients: distance 0 for all three (up to eps)
    for d in matching.DISTANCES:
        assert matching.gradient_distance(a, a, d).item() == pytest.approx(0.0, abs=1e-5)


def test_class_distances_equal_one_class_at_a_time():
    g = torch.Generator().manual_seed(1)
    shapes = [(5, 4, 3, 3, 3), (5, 4), (5, 10, 16), (5, 10)]
    ga = [torch.randn(s, generator=g) for s in shapes]
    gb = [torch.randn(s, generator=g) for s in shapes]
    for d in matching.DISTANCES:
        batched = matching.class_distances(ga, gb, d)
        single = torch.stack([matching.gradient_distance([t[c] for t in ga], [t[c] for t in gb], d) for c in range(5)])
        torch.testing.assert_close(batched, single)


def test_distance_errors_name_the_bad_value():
    a = [torch.ones(2, 3)]
    with pytest.raises(ValueError, match="unknown gradient distance 'l2'.*layerwise, mse, cos"):
        matching.gradient_distance(a, a, "l2")
    with pytest.raises(ValueError, match="same non-empty list"):
        matching.class_distances(a, a + a)
    with pytest.raises(ValueError, match="agree"):
        matching.class_distances([torch.ones(2, 3)], [torch.ones(2, 4)])
    with pytest.raises(ValueError, match="unknown per-class gradient implementation 'vmap'"):
        matching.class_gradients(net_for(), *class_batch(), implementation="vmap")


# ----------------------------------------------------------------------------------------------
# per-class gradients: batched == loop == by hand
# ----------------------------------------------------------------------------------------------


def test_matched_parameters_skip_1d_for_ours():
    net = net_for()
    ours = matching.matched_parameter_names(net, "layerwise")
    assert ours and all(dict(net.named_parameters())[n].dim() > 1 for n in ours)
    assert matching.matched_parameter_names(net, "mse") == [n for n, _ in net.named_parameters()]


@pytest.mark.parametrize("create_graph", [False, True])
def test_batched_class_gradients_equal_the_per_class_loop(create_graph):
    net = net_for()
    x, y = class_batch(requires_grad=create_graph)
    loop = matching.class_gradients(net, x, y, create_graph=create_graph, implementation="loop")
    batched = matching.class_gradients(net, x, y, create_graph=create_graph, implementation="batched")
    names = [n for n, _ in net.named_parameters()]
    assert len(loop) == len(batched) == len(names)
    for c in range(x.shape[0]):  # and both equal a plain backward on that class alone
        net.zero_grad()
        nn.functional.cross_entropy(net(x[c].detach()), y[c]).backward()
        for g_loop, g_batched, p in zip(loop, batched, net.parameters()):
            torch.testing.assert_close(g_loop[c], p.grad, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(g_batched[c], p.grad, rtol=1e-4, atol=1e-6)
    assert all(g.requires_grad == create_graph for g in loop + batched)


@pytest.mark.parametrize("distance", matching.DISTANCES)
def test_matching_loss_and_image_gradient_same_for_both_implementations(distance):
    net = net_for()
    real, ry = class_batch(n=6, seed=1)
    syn, sy = class_batch(n=2, seed=2, requires_grad=True)
    out = {}
    for impl in matching.IMPLEMENTATIONS:
        loss, per_class = matching.matching_loss(net, real, ry, syn, sy, distance=distance, implementation=impl)
        (grad,) = torch.autograd.grad(loss, syn)
        out[impl] = (loss, per_class, grad)
        assert per_class.shape == (3,) and torch.isclose(per_class.sum(), loss)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    for a, b in zip(out["loop"], out["batched"]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert all(p.grad is None for p in net.parameters()), "matching must not touch the network's gradients"


def test_batchnorm_is_frozen_from_a_real_batch_and_matching_is_exact():
    net = net_for("convnet_bn")
    x, y = class_batch(n=5)
    assert matching.has_batchnorm(net) and not matching.has_batchnorm(net_for())
    assert matching.freeze_batchnorm(net, x.flatten(0, 1))
    bn = next(m for m in net.modules() if isinstance(m, nn.BatchNorm2d))
    assert not bn.training
    conv_out = net.features[0](x.flatten(0, 1))
    torch.testing.assert_close(bn.running_mean, conv_out.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(bn.running_var, conv_out.var((0, 2, 3)), rtol=1e-4, atol=1e-5)
    assert bn.momentum == 0.1
    loop = matching.class_gradients(net, x, y, implementation="loop")
    batched = matching.class_gradients(net, x, y, implementation="batched")
    for a, b in zip(loop, batched):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert not matching.freeze_batchnorm(net_for(), x.flatten(0, 1))


# ----------------------------------------------------------------------------------------------
# DSA
# ----------------------------------------------------------------------------------------------


def test_siamese_per_class_equals_per_class_transforms():
    dsa = DSA("color_crop_cutout_flip_scale_rotate")
    real, _ = class_batch(k=6, n=3, seed=3)
    syn, _ = class_batch(k=6, n=2, seed=4)
    r_aug, s_aug = dsa.siamese_per_class(real, syn, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    ops = set()
    for c in range(6):
        s = dsa.sample(1, g)
        ops.add(s.ops)
        torch.testing.assert_close(r_aug[c], dsa.apply(real[c], s))
        torch.testing.assert_close(s_aug[c], dsa.apply(syn[c], s))
    assert len(ops) > 1, "the check is only meaningful when classes drew different ops"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_siamese_per_class_on_cuda_matches_cpu_and_parameters_move_exactly():
    from course_utils.data.augment import to_device_together

    host = [
        torch.tensor([True, False]),
        torch.tensor([3, 0, 7]),
        torch.rand(2, 2, generator=torch.Generator().manual_seed(0)),
    ]
    moved = to_device_together(host, "cuda")
    for a, b in zip(host, moved):
        assert b.device.type == "cuda" and b.dtype == a.dtype and torch.equal(b.cpu(), a)
    dsa = DSA("color_crop_cutout_flip_scale_rotate")
    real, _ = class_batch(k=6, n=3, seed=3)
    syn, _ = class_batch(k=6, n=2, seed=4)
    r_cpu, s_cpu = dsa.siamese_per_class(real, syn, torch.Generator().manual_seed(0))
    r_gpu, s_gpu = dsa.siamese_per_class(real.cuda(), syn.cuda(), torch.Generator().manual_seed(0))
    torch.testing.assert_close(r_gpu.cpu(), r_cpu, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(s_gpu.cpu(), s_cpu, rtol=1e-5, atol=1e-5)


def test_gradient_reaches_the_images_through_dsa():
    net = net_for()
    real, ry = class_batch(n=4, seed=5)
    syn, sy = class_batch(n=2, seed=6, requires_grad=True)
    for strategy in ("color", "crop", "cutout", "flip", "scale", "rotate", "color_crop_cutout_flip_scale_rotate"):
        dsa = DSA(strategy, mode="all")
        r, s = dsa.siamese_per_class(real, syn, torch.Generator().manual_seed(1))
        assert not torch.equal(s, syn)
        loss, _ = matching.matching_loss(net, r, ry, s, sy)
        (grad,) = torch.autograd.grad(loss, syn)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, strategy


# ----------------------------------------------------------------------------------------------
# distill: interface, balance, determinism, checkpoints, errors
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["dc", "dsa"])
def test_distill_is_balanced_deterministic_and_leaves_global_rng_alone(name, blob_set):
    train = blob_set(8)
    state = torch.get_rng_state()
    run = lambda seed: methods.distill(name, train, 2, generator=torch.Generator().manual_seed(seed), **SMALL)
    a, b, c = run(0), run(0), run(1)
    assert torch.equal(torch.get_rng_state(), state), "only the explicit generator may be drawn from"
    assert a.images.shape == (20, 1, 28, 28) and torch.bincount(a.labels).tolist() == [2] * 10
    assert a.labels.tolist() == [c for c in range(10) for _ in range(2)]
    assert torch.equal(a.images, b.images) and a.meta["history"] == b.meta["history"]
    assert not torch.equal(a.images, c.images)
    assert a.meta["method"] == name and a.ipc == 2 and len(a.meta["history"]["loss"]) == 2
    assert not a.images.requires_grad
    init = train.images[train.sample_balanced(2, torch.Generator().manual_seed(0))]
    assert not torch.equal(a.images, init), "the images must have moved from their real initialisation"


@pytest.mark.parametrize("name", ["dc", "dsa"])
def test_batched_and_loop_runs_agree(name, blob_set):
    train = blob_set(8)
    kw = dict(SMALL, steps=1)
    runs = {
        impl: methods.distill(name, train, 2, generator=torch.Generator().manual_seed(0), implementation=impl, **kw)
        for impl in ("loop", "batched")
    }
    torch.testing.assert_close(runs["loop"].images, runs["batched"].images, rtol=1e-4, atol=1e-5)
    assert runs["loop"].meta["history"]["loss"] == pytest.approx(runs["batched"].meta["history"]["loss"], rel=1e-4)


def test_noise_init_and_callback(blob_set):
    train = blob_set(8)
    seen = []
    syn = dc.distill(
        train,
        1,
        generator=torch.Generator().manual_seed(0),
        init="noise",
        steps=3,
        batch_real=4,
        model=samplers.FreshInit("convnet", width=8),
        callback=lambda e: seen.append((e.step, e.loss)),
    )
    assert [s for s, _ in seen] == [1, 2, 3] and all(math.isfinite(v) for _, v in seen)
    assert syn.meta["outer_loop"] == 1 and syn.meta["inner_loop"] == 1
    assert syn.images.abs().max() > 2  # Gaussian noise, not normalised digits' blobs


def test_loop_schedule():
    assert dc.loop_schedule(1) == (1, 1) and dc.loop_schedule(10) == (10, 50) and dc.loop_schedule(50) == (50, 10)
    assert dc.loop_schedule(7, 3, 4) == (3, 4) and dc.loop_schedule(10, inner_loop=5) == (10, 5)
    # an IPC the papers do not list runs with the nearest listed IPC's schedule (ties to the smaller)
    assert dc.loop_schedule(3) == (1, 1) and dc.loop_schedule(5) == (1, 1) and dc.loop_schedule(6) == (10, 50)
    assert dc.loop_schedule(15) == (10, 50) and dc.loop_schedule(26) == (30, 20) and dc.loop_schedule(100) == (50, 10)
    assert dc.loop_schedule(7, inner_loop=5) == (10, 5)
    with pytest.raises(ValueError, match="ipc"):
        dc.loop_schedule(0)


def test_distill_errors_name_the_bad_value(blob_set):
    train = blob_set(8)
    g = torch.Generator().manual_seed(0)
    assert dc.distill(train, 3, generator=g, steps=1).meta["outer_loop"] == 1  # IPC 1's schedule, the nearest
    with pytest.raises(ValueError, match="unknown gradient distance 'l1'"):
        dc.distill(train, 1, generator=g, distance="l1")
    with pytest.raises(ValueError, match="init='zeros' is not valid; valid: real, noise"):
        dc.distill(train, 1, generator=g, init="zeros")
    with pytest.raises(ValueError, match="implementation='fast' is not valid; valid: auto, batched, loop"):
        dc.distill(train, 1, generator=g, implementation="fast")
    with pytest.raises(ValueError, match="lr_img must be a finite number > 0, got -1"):
        dc.distill(train, 1, generator=g, lr_img=-1)
    with pytest.raises(TypeError, match="dc: unknown hyperparameter.*'epochs'.*valid: steps"):
        dc.distill(train, 1, generator=g, epochs=3)
    with pytest.raises(TypeError, match="model must be a model name"):
        dc.distill(train, 1, generator=g, model=3)
    with pytest.raises(ValueError, match="ipc"):
        dc.distill(train, 0, generator=g)
    with pytest.raises(ValueError, match="dsa_mode='both' is not valid"):
        methods.distill("dsa", train, 1, generator=g, dsa_mode="both")


class _NaNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(28 * 28, 10)
        with torch.no_grad():
            self.lin.weight.fill_(float("nan"))

    def forward(self, x):
        return self.lin(x.flatten(1))


def test_divergence_names_the_step_and_keeps_the_last_good_images(blob_set):
    train = blob_set(8)
    with pytest.raises(FloatingPointError, match="dc diverged at step 1/2: the matching loss.*lr_img") as info:
        dc.distill(train, 1, generator=torch.Generator().manual_seed(0), model=_NaNNet, steps=2, batch_real=4)
    assert torch.isfinite(info.value.synthetic.images).all()


def test_a_module_is_a_fixed_network_for_every_step(blob_set):
    """``model=`` means the same in every method: a module is a fixed θ0 (a copy per step)."""
    train = blob_set(8)
    net = get_model("convnet", 1, 10, 28, width=8)
    before = [p.clone() for p in net.parameters()]
    syn = dc.distill(train, 1, generator=torch.Generator().manual_seed(0), model=net, steps=2, batch_real=4)
    assert syn.meta["model"]["sampler"] == "fixed"
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), before))
