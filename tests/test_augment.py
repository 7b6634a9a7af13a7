"""Tests for course_utils.augment (DSA)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from course_utils.data.augment import (
    DSA,
    OPS,
    STRATEGIES,
    AugSample,
    DSAParams,
    affine_warp,
    parse_strategy,
    strategy_for,
)

SHAPES = [(4, 1, 28, 28), (4, 3, 32, 32)]
FULL = "color_crop_cutout_flip_scale_rotate"


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(shape, seed: int = 123, requires_grad: bool = False) -> torch.Tensor:
    x = torch.rand(shape, generator=gen(seed)) * 2 - 1
    return x.requires_grad_(requires_grad)


# ---------------------------------------------------------------------------------------------
# Parameters, strategies, errors
# ---------------------------------------------------------------------------------------------


def test_params_defaults_are_reference_values():
    p = DSAParams()
    assert (p.flip_p, p.scale, p.rotate, p.crop, p.cutout, p.brightness, p.saturation, p.contrast) == (
        0.5,
        1.2,
        15.0,
        0.125,
        0.5,
        1.0,
        2.0,
        0.5,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.scale = 2.0
    with pytest.raises(ValueError, match="flip_p"):
        DSAParams(flip_p=1.5)
    with pytest.raises(ValueError, match="scale"):
        DSAParams(scale=0.5)


def test_strategies():
    assert "flip" not in strategy_for("mnist").split("_")
    assert strategy_for("mnist") == "color_crop_cutout_scale_rotate"
    for name in ("fashion_mnist", "cifar10", "cifar100"):
        assert strategy_for(name) == FULL
    assert strategy_for("CIFAR-10") == FULL and strategy_for("FashionMNIST") == FULL
    assert set(STRATEGIES) == {"mnist", "fashion_mnist", "cifar10", "cifar100"}
    for s in STRATEGIES.values():
        assert set(parse_strategy(s)) <= set(OPS)


def test_errors_name_the_bad_value():
    with pytest.raises(ValueError, match=r"'shear'.*color"):
        DSA("color_shear")
    with pytest.raises(ValueError, match=r"'imagenet'.*cifar10"):
        strategy_for("imagenet")
    with pytest.raises(ValueError, match=r"'M'.*single"):
        DSA(FULL, mode="M")
    dsa = DSA("flip", mode="all")
    s = dsa.sample(3, gen())
    with pytest.raises(ValueError, match="size 3"):
        dsa.apply(images((4, 3, 8, 8)), s)
    with pytest.raises(ValueError, match="shape"):
        dsa.apply(torch.zeros(3, 8, 8), s)


def test_identity_strategy():
    x = images((3, 3, 32, 32))
    g = gen()
    state = g.get_state()
    for s in ("none", "", "None"):
        dsa = DSA(s)
        assert dsa.is_identity
        assert dsa(x, g) is x
        a, b = dsa.siamese([x, x[:1]], g)
        assert a is x
        assert dsa.apply(x, dsa.sample(1, g)) is x
    assert torch.equal(g.get_state(), state)  # identity draws nothing


# ---------------------------------------------------------------------------------------------
# Every op: shape/dtype, gradients, determinism mode
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=["1x28x28", "3x32x32"])
@pytest.mark.parametrize("op", OPS)
def test_each_op_shape_dtype_and_gradient(op, shape):
    dsa = DSA(op, mode="all")
    # flip_p=1 so that the flip is always taken (gradient is still 1 everywhere, but the test is sharper)
    if op == "flip":
        dsa = DSA(op, DSAParams(flip_p=1.0), mode="all")
    x = images(shape, requires_grad=True)
    y = dsa(x, gen(1))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.isfinite(y).all()
    assert not torch.equal(y, x)
    # weighted sum so that colour ops (whose plain-sum gradient can cancel) still give a nonzero gradient
    w = torch.rand(shape, generator=gen(2))
    (y * w).sum().backward()
    assert x.grad is not None
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("op", OPS)
def test_each_op_float64(op):
    x = images((2, 3, 16, 16)).double()
    y = DSA(op, mode="all")(x, gen())
    assert y.dtype == torch.float64 and y.shape == x.shape


@pytest.mark.parametrize("op", OPS)
def test_deterministic_algorithms_mode(op):
    was = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        outs = []
        for _ in range(2):
            x = images((4, 3, 32, 32), requires_grad=True)
            y = DSA(op, mode="all")(x, gen(5))
            (y * torch.linspace(0, 1, 32)).sum().backward()
            outs.append((y.detach(), x.grad))
        assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    finally:
        torch.use_deterministic_algorithms(was, warn_only=warn_only)


# ---------------------------------------------------------------------------------------------
# Randomness: generator only, reproducible, siamese
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["single", "all"])
def test_same_seed_same_output_and_global_rng_untouched(mode):
    dsa = DSA(FULL, mode=mode)
    x = images((8, 3, 32, 32))
    rng = torch.get_rng_state()
    outs = []
    for seed in (7, 7):
        g = gen(seed)
        outs.append(torch.stack([dsa(x, g) for _ in range(6)]))
        outs.append(torch.cat(dsa.siamese([x, x[:3]], g), 0))
    assert torch.equal(outs[0], outs[2]) and torch.equal(outs[1], outs[3])
    g = gen(8)
    other = torch.stack([dsa(x, g) for _ in range(6)])
    assert not torch.equal(other, outs[0])
    assert torch.equal(torch.get_rng_state(), rng)


def test_single_mode_picks_one_op_and_covers_all():
    dsa = DSA(FULL, mode="single")
    g = gen(0)
    seen = set()
    for _ in range(200):
        s = dsa.sample(2, g)
        assert len(s.ops) == 1
        seen.add(s.ops[0])
    assert seen == set(FULL.split("_"))
    s = DSA("color", mode="single").sample(2, g)
    assert s.brightness is not None and s.saturation is not None and s.contrast is not None
    s = DSA(FULL, mode="all").sample(5, g)
    assert s.ops == tuple(FULL.split("_")) and len(s) == 5
    for name in AugSample._TENSORS:
        assert getattr(s, name).shape[0] == 5


def test_sample_ranges():
    p = DSAParams()
    s = DSA(FULL, mode="all").sample(20000, gen(3))
    assert s.scale.min() >= 1 / p.scale - 1e-6 and s.scale.max() <= p.scale + 1e-6
    assert s.angle.abs().max() <= math.radians(p.rotate) + 1e-6
    assert s.brightness.abs().max() <= 0.5 * p.brightness
    assert s.saturation.min() >= 0 and s.saturation.max() <= p.saturation
    assert s.contrast.min() >= p.contrast and s.contrast.max() <= 1 + p.contrast
    assert abs(s.flip.float().mean().item() - p.flip_p) < 0.03
    assert s.crop_u.min() >= 0 and s.crop_u.max() < 1 and s.cutout_u.min() >= 0 and s.cutout_u.max() < 1


@pytest.mark.parametrize("op", list(OPS) + [FULL])
def test_siamese_same_transform_for_real_and_synthetic(op):
    dsa = DSA(op, mode="all")
    base = images((1, 3, 32, 32))
    real = base.expand(6, -1, -1, -1).clone()
    syn = base.expand(2, -1, -1, -1).clone().requires_grad_(True)
    ra, sa = dsa.siamese([real, syn], gen(11))
    assert ra.shape == real.shape and sa.shape == syn.shape
    # every image of both batches got the same transform
    assert torch.equal(ra, ra[:1].expand_as(ra))
    assert torch.equal(sa.detach(), ra[:2])
    sa.sum().backward()
    assert syn.grad is not None


def test_per_image_parameters_differ_and_broadcast_sample():
    dsa = DSA("rotate", mode="all")
    x = images((1, 3, 32, 32)).expand(4, -1, -1, -1).clone()
    y = dsa(x, gen(0))
    assert not torch.equal(y[0], y[1])  # per-image angles
    s = dsa.sample(1, gen(0))
    assert s.n == 1
    z = dsa.apply(x, s)
    assert torch.equal(z, z[:1].expand_as(z))


# ---------------------------------------------------------------------------------------------
# Geometry: the gather warp and the integer ops
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 3, 32, 32), (3, 1, 28, 28), (2, 2, 7, 11)])
def test_affine_warp_matches_grid_sample(shape):
    g = gen(4)
    x = torch.rand(shape, generator=g)
    theta = torch.eye(2, 3).expand(shape[0], 2, 3) + 0.3 * torch.randn(shape[0], 2, 3, generator=g)
    ref = F.grid_sample(
        x,
        F.affine_grid(theta, list(shape), align_corners=True),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=True,
    )
    assert torch.allclose(affine_warp(x, theta), ref, atol=1e-5, rtol=0)
    # one theta shared by the whole batch
    ref1 = F.grid_sample(
        x, F.affine_grid(theta[:1].expand_as(theta), list(shape), align_corners=True), align_corners=True
    )
    assert torch.allclose(affine_warp(x, theta[:1]), ref1, atol=1e-5, rtol=0)


def test_affine_warp_gradient_matches_grid_sample():
    g = gen(9)
    x1 = torch.rand(3, 2, 16, 16, generator=g).requires_grad_(True)
    x2 = x1.detach().clone().requires_grad_(True)
    theta = torch.eye(2, 3).expand(3, 2, 3) + 0.2 * torch.randn(3, 2, 3, generator=g)
    w = torch.rand(3, 2, 16, 16, generator=g)
    (affine_warp(x1, theta) * w).sum().backward()
    (
        F.grid_sample(x2, F.affine_grid(theta, [3, 2, 16, 16], align_corners=True), align_corners=True) * w
    ).sum().backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-5, rtol=0)


def test_scale_reference_convention():
    # sx = 2 samples twice as far from the centre: output column j reads input column at 2*(normalised x)
    x = torch.arange(9.0).view(1, 1, 1, 9).expand(1, 1, 3, 9).contiguous()
    theta = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    y = affine_warp(x, theta)
    assert torch.allclose(y[0, 0, 1], torch.tensor([0, 0, 0, 2, 4, 6, 8, 0, 0.0]), atol=1e-5)


def test_zero_rotation_unit_scale_zero_shift_are_identity():
    x = images((3, 3, 32, 32))
    n = len(x)
    rot = AugSample(n=n, ops=("rotate",), angle=torch.zeros(n))
    sca = AugSample(n=n, ops=("scale",), scale=torch.ones(n, 2))
    dsa = DSA(FULL, mode="all")
    assert torch.allclose(dsa.apply(x, rot), x, atol=1e-5, rtol=0)
    assert torch.allclose(dsa.apply(x, sca), x, atol=1e-5, rtol=0)
    # crop: the middle variate of {-s..s} is shift 0 (s = 4 here, 9 values)
    crop0 = AugSample(n=1, ops=("crop",), crop_u=torch.full((1, 2), 4.5 / 9))
    assert torch.equal(dsa.apply(x, crop0), x)
    flip = AugSample(n=n, ops=("flip", "flip"), flip=torch.tensor([True, False, True]))
    assert torch.equal(dsa.apply(x, flip), x)
    once = dsa.apply(x, AugSample(n=n, ops=("flip",), flip=torch.tensor([True, False, True])))
    assert torch.equal(once[0], x[0].flip(-1)) and torch.equal(once[1], x[1])


def test_crop_is_a_zero_filled_translation():
    x = images((2, 1, 32, 32))
    dsa = DSA("crop", mode="all")
    # u -> floor(u * 9) - 4: u = 0 gives shift -4, u = 0.99 gives +4
    s = AugSample(n=2, ops=("crop",), crop_u=torch.tensor([[0.0, 0.99], [0.99, 0.5]]))
    y = dsa.apply(x, s)
    # image 0: out[i, j] = x[i - 4, j + 4]
    assert torch.equal(y[0, 0, 4:, :28], x[0, 0, :28, 4:])
    assert (y[0, 0, :4] == 0).all() and (y[0, 0, :, 28:] == 0).all()
    # image 1: out[i, j] = x[i + 4, j]
    assert torch.equal(y[1, 0, :28], x[1, 0, 4:]) and (y[1, 0, 28:] == 0).all()
    # shifts stay within +-int(32 * 0.125 + 0.5) = 4 px and all 9 values occur
    z = torch.ones(1, 1, 32, 32)
    zeros = set()
    for u in torch.linspace(0, 0.999, 50):
        out = dsa.apply(z, AugSample(n=1, ops=("crop",), crop_u=torch.tensor([[u.item(), 0.5]])))
        zeros.add(int((out[0, 0, :, 0] == 0).sum()))
    assert zeros == set(range(5))


def test_cutout_hole():
    dsa = DSA("cutout", mode="all")
    x = torch.ones(64, 3, 32, 32)
    y = dsa(x, gen(2))
    holes = (y == 0).all(1)  # (N, H, W)
    area = holes.flatten(1).sum(1)
    assert area.max() == 16 * 16 and area.min() >= 8 * 8  # side int(32*0.5+0.5)=16, clipped at borders
    assert ((y == 0) | (y == 1)).all()
    for h in holes:  # a rectangle
        r = h.any(1).nonzero().flatten()
        c = h.any(0).nonzero().flatten()
        assert h.sum() == len(r) * len(c) and r.max() - r.min() + 1 == len(r)


@pytest.mark.parametrize("channels", [1, 3])
def test_color_matches_sequential_formulas(channels):
    x = images((6, channels, 8, 8))
    s = DSA("color").sample(6, gen(4))
    b, sat, con = (t.view(-1, 1, 1, 1) for t in (s.brightness, s.saturation, s.contrast))
    y = x + b  # brightness
    m = y.mean(1, keepdim=True)
    y = (y - m) * sat + m  # saturation
    m = y.mean((1, 2, 3), keepdim=True)
    y = (y - m) * con + m  # contrast
    assert torch.allclose(DSA("color").apply(x, s), y, atol=1e-5, rtol=0)


def test_color_formulas():
    x = images((2, 3, 8, 8))
    s = AugSample(
        n=2,
        ops=("color",),
        brightness=torch.tensor([0.1, -0.2]),
        saturation=torch.tensor([1.0, 1.0]),
        contrast=torch.tensor([1.0, 1.0]),
    )
    y = DSA("color").apply(x, s)
    assert torch.allclose(y, x + torch.tensor([0.1, -0.2]).view(2, 1, 1, 1), atol=1e-6)
    s = AugSample(n=1, ops=("color",), brightness=torch.zeros(1), saturation=torch.zeros(1), contrast=torch.zeros(1))
    y = DSA("color").apply(x, s)  # saturation 0 -> grey; contrast 0 -> image mean
    assert torch.allclose(y, x.mean((1, 2, 3), keepdim=True).expand_as(x), atol=1e-6)


def test_sample_device_and_speed_smoke():
    dsa = DSA(FULL, mode="all")
    s = dsa.sample(4, gen(), device="cpu")
    assert all(getattr(s, k).device.type == "cpu" for k in AugSample._TENSORS)
    x = images((256, 3, 32, 32), requires_grad=True)
    y = dsa(x, gen())
    y.sum().backward()
    assert x.grad.shape == x.shape


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_deterministic_forward_backward():
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        res = []
        for _ in range(2):
            g = torch.Generator(device="cuda").manual_seed(0)
            x = images((64, 3, 32, 32)).cuda().requires_grad_(True)
            y = DSA(FULL, mode="all")(x, g)
            (y * y).sum().backward()
            res.append((y.detach(), x.grad))
        assert torch.equal(res[0][0], res[1][0]) and torch.equal(res[0][1], res[1][1])
        # a CPU generator drives CUDA images too
        x = images((8, 3, 32, 32)).cuda()
        assert DSA(FULL)(x, gen()).device.type == "cuda"
    finally:
        torch.use_deterministic_algorithms(was)


# ----------------------------------------------------------------------------------------------
# DCAugment: the DC paper's evaluation augmentation (one op per image)
# ----------------------------------------------------------------------------------------------
from course_utils.data.augment import DCAugment  # noqa: E402


def _reference_scale(img: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The DC reference's ``scalefun`` for one image and given sizes (nearest resize, centred on a zero canvas)."""
    C, H, W = img.shape
    tmp = torch.nn.functional.interpolate(img[None], [h, w])[0]
    mhw = max(h, w, H, W)
    canvas = torch.zeros(C, mhw, mhw)
    r, c = (mhw - h) // 2, (mhw - w) // 2
    canvas[:, r : r + h, c : c + w] = tmp
    r, c = (mhw - H) // 2, (mhw - W) // 2
    return canvas[:, r : r + H, c : c + W]


def test_dc_scale_equals_the_reference_construction():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 2, 28, 28, generator=g)
    aug = DCAugment("scale")
    u = torch.rand(16, 2, generator=g)
    out = aug._scale(x, u)
    sizes = torch.floor((0.8 + 0.4 * u.double()) * 28).long()
    for i in range(16):
        expected = _reference_scale(x[i], int(sizes[i, 0]), int(sizes[i, 1]))
        assert torch.equal(out[i], expected), i


def test_dc_crop_shifts_by_at_most_crop_pixels_and_fills_with_the_channel_mean():
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 10:18, 10:18] = 1.0
    out = DCAugment("crop")(x, torch.Generator().manual_seed(1))
    mean = x.mean()
    assert torch.isclose(out, mean).any(), "the pad is the batch's channel mean, not zero"
    for img in out:
        rows = torch.nonzero((img[0] == 1.0).any(1)).flatten()
        shift = int(rows[0]) - 10
        assert -3 <= shift <= 4  # a window at offset r in {0..7} of the 4-pixel pad moves content by 4 - r


def test_dc_rotate_keeps_the_centre_and_fills_corners_with_the_mean():
    x = torch.randn(32, 1, 29, 29, generator=torch.Generator().manual_seed(2))
    out = DCAugment("rotate")(x, torch.Generator().manual_seed(3))
    torch.testing.assert_close(out[:, :, 14, 14], x[:, :, 14, 14], atol=1e-5, rtol=1e-5)  # centre pixel stays
    assert not torch.equal(out, x)


def test_dc_augment_is_one_op_per_image_deterministic_and_validated():
    x = torch.randn(200, 1, 28, 28, generator=torch.Generator().manual_seed(4))
    aug = DCAugment()
    a = aug(x, torch.Generator().manual_seed(5))
    b = aug(x, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.shape == x.shape
    g = torch.Generator().manual_seed(5)
    choice = torch.randint(3, (200,), generator=g)
    assert set(choice.tolist()) == {0, 1, 2}  # the three ops all occur
    state = torch.get_rng_state()
    aug(x, torch.Generator().manual_seed(6))
    assert torch.equal(state, torch.get_rng_state())
    assert DCAugment("none")(x, g) is x
    with pytest.raises(ValueError, match="unknown DC augmentation op.*'flip'"):
        DCAugment("crop_flip")
    with pytest.raises(ValueError, match="crop must be an integer >= 1"):
        DCAugment(crop=0)
