"""ZEN (``course_utils.methods.zen``): the IFT hypergradient of one family against finite differences of the real
loss at the re-solved inner optimum, the worst-case (and mean) aggregation over a pool, the variants, bad input."""

import copy
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from course_utils.methods import hypergrad, zen
from course_utils.nets import samplers

f64 = torch.float64


def _toy(seed=0, classes=3, ipc=20, pixels=4, real=30):
    """A linear softmax "network" on 2x2 images with overlapping classes: L_S has a unique finite minimum."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(classes * ipc, 1, 2, pixels // 2, generator=g, dtype=f64)
    labels = torch.arange(classes).repeat_interleave(ipc)
    labels = labels[torch.randperm(len(labels), generator=g)]  # random labels: not separable
    x_real = torch.randn(real, 1, 2, pixels // 2, generator=g, dtype=f64)
    y_real = torch.randint(classes, (real,), generator=g)
    net = nn.Sequential(nn.Flatten(), nn.Linear(pixels, classes)).to(f64)
    return net, images, labels, x_real, y_real


def _solve(net, images, labels, steps=3000, lr=0.5):
    """The inner optimum θ*(S) by gradient descent from the net's current weights (returns a trained copy)."""
    trained = copy.deepcopy(net)
    zen.train_inner(trained, images, labels, steps, lr)
    return trained


def test_ift_hypergradient_matches_finite_differences_at_the_inner_optimum():
    net, images, labels, x_real, y_real = _toy()
    theta = _solve(net, images, labels)
    grad_norm = torch.cat(
        [g.flatten() for g in torch.autograd.grad(F.cross_entropy(theta(images), labels), theta.parameters())]
    ).norm()
    assert grad_norm < 1e-9, "the inner problem is solved"

    def real_loss(s):  # L_T(θ*(S)), θ* re-solved from the optimum of S (warm start: same minimum, fast)
        solved = _solve(theta, s, labels, steps=400)
        with torch.no_grad():
            return float(F.cross_entropy(solved(x_real), y_real))

    direction = torch.randn(images.shape, generator=torch.Generator().manual_seed(1), dtype=f64)
    eps = 1e-4
    fd = (real_loss(images + eps * direction) - real_loss(images - eps * direction)) / (2 * eps)
    x = images.clone().requires_grad_(True)
    exact, outer = zen.family_hypergradient(theta, x, labels, x_real, y_real, method="cg", iterations=50)
    with torch.no_grad():
        assert outer == pytest.approx(float(F.cross_entropy(theta(x_real), y_real)))
    assert float((exact * direction).sum()) == pytest.approx(fd, rel=1e-4)
    # the Neumann series approaches the same hypergradient as K grows (α below 2/λ_max)
    g_s = torch.autograd.grad(F.cross_entropy(theta(x), labels), list(theta.parameters()), create_graph=True)
    lam = hypergrad.largest_eigenvalue(g_s, list(theta.parameters()), iterations=50)
    errors = []
    for terms in (10, 100, 400):
        neumann, _ = zen.family_hypergradient(
            theta, x, labels, x_real, y_real, method="neumann", terms=terms, alpha=1.0 / lam
        )
        errors.append(float((neumann - exact).norm() / exact.norm()))
    # (100 and 400 terms both sit at the floor of the exact solve's own error: equal up to rounding)
    assert errors[0] > errors[1] and errors[2] <= errors[1] * (1 + 1e-6) and errors[2] < 1e-4, errors
    # the identity variant (the public code's H ≈ I) points elsewhere
    identity, _ = zen.family_hypergradient(theta, x, labels, x_real, y_real, method="identity")
    cos = float((identity * exact).sum() / (identity.norm() * exact.norm()))
    assert cos < 0.99
    # no terms: p = αv, i.e. α times the identity variant
    zero, _ = zen.family_hypergradient(theta, x, labels, x_real, y_real, method="neumann", terms=0, alpha=0.5)
    torch.testing.assert_close(zero, 0.5 * identity)
    assert x.grad is None and all(p.grad is None for p in theta.parameters())


def test_train_inner_is_plain_full_batch_gradient_descent():
    net, images, labels, *_ = _toy()
    manual = copy.deepcopy(net)
    zen.train_inner(net, images, labels, 3, 0.1)
    for _ in range(3):
        grads = torch.autograd.grad(F.cross_entropy(manual(images), labels), list(manual.parameters()))
        with torch.no_grad():
            for p, g in zip(manual.parameters(), grads):
                p -= 0.1 * g
    for a, b in zip(net.parameters(), manual.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-15)


TINY_POOL = [samplers.FreshInit("convnet", width=8), "lenet", samplers.FreshInit("mlp", width=16)]


@pytest.fixture(scope="module")
def tiny(mnist):
    train, _ = mnist
    return train.balanced_subset(20, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("aggregate", zen.AGGREGATES)
def test_the_step_follows_the_worst_family_or_the_mean(tiny, aggregate):
    syn = zen.distill(
        tiny,
        1,
        generator=torch.Generator().manual_seed(0),
        model=TINY_POOL,
        steps=3,
        inner_steps=2,
        aggregate=aggregate,
        hypergradient="identity",
    )
    h = syn.meta["history"]
    families = syn.meta["families"]
    assert families == ["convnet", "lenet", "mlp"]
    per_family = torch.tensor([h[f"loss_{f}"] for f in families])  # (A, steps)
    torch.testing.assert_close(torch.tensor(h["worst"]), per_family.argmax(0).to(torch.float32))
    expected = per_family.max(0).values if aggregate == "max" else per_family.mean(0)
    torch.testing.assert_close(torch.tensor(h["loss"]), expected.to(torch.float32), rtol=1e-6, atol=1e-6)


def test_the_update_is_the_worst_familys_hypergradient(tiny):
    """One step by hand: fresh weights for every family from the same draws, J steps, the worst family's IFT
    hypergradient, one Adam step; the package's first step must give the same images."""
    config = zen.Config(steps=1, inner_steps=2, lr_net=0.02, hypergradient="neumann", neumann_terms=2)
    pool = samplers.as_pool(TINY_POOL, zen.DEFAULT_POOL)
    gen = torch.Generator().manual_seed(3)
    distiller = zen.WorstCaseDistiller(tiny, 2, generator=gen, config=config, sampler=pool)
    start = distiller.images.detach().clone()
    replay = torch.Generator()
    replay.set_state(gen.get_state())
    distiller.step(1)

    nets = pool.bind(tiny.info, "cpu").sample_all(replay)
    real = tiny.images[tiny.sample_per_class(distiller.batch_real, replay)].flatten(0, 1)
    real_labels = torch.arange(10).repeat_interleave(distiller.batch_real)
    losses = []
    for net in nets:
        zen.train_inner(net, start, distiller.labels, 2, 0.02)
        losses.append(float(F.cross_entropy(net(real), real_labels)))
    worst = max(range(3), key=lambda i: losses[i])
    x = start.clone().requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hypergrad.NeumannDivergenceWarning)
        grad, _ = zen.family_hypergradient(nets[worst], x, distiller.labels, real, real_labels, terms=2, alpha=0.02)
    x.grad = grad
    opt = torch.optim.Adam([x], lr=config.lr_img, betas=(config.beta1, 0.999))
    opt.step()
    torch.testing.assert_close(distiller.images.detach(), x.detach(), rtol=0, atol=1e-6)


def test_neumann_alpha_too_large_warns_naming_alpha(tiny):
    with pytest.warns(hypergrad.NeumannDivergenceWarning, match="neumann_alpha=1000.0"):
        zen.distill(
            tiny,
            1,
            generator=torch.Generator().manual_seed(0),
            model="lenet",
            steps=1,
            inner_steps=1,
            neumann_terms=5,
            neumann_alpha=1000.0,
        )


@pytest.mark.parametrize(
    "kw, error, match",
    [
        ({"model": ["convnet", "transformer"]}, ValueError, "transformer.*convnet"),
        ({"model": torch.nn.Linear(2, 2)}, TypeError, "architecture pool"),
        ({"model": samplers.FixedInit(torch.nn.Linear(2, 2))}, TypeError, "architecture pool"),
        ({"neumann_terms": -1}, ValueError, "neumann_terms"),
        ({"neumann_alpha": 0.0}, ValueError, "neumann_alpha"),
        ({"hypergradient": "exact"}, ValueError, "neumann.*cg.*identity"),
        ({"aggregate": "softmax"}, ValueError, "max.*mean"),
        ({"inner_steps": 0}, ValueError, "inner_steps"),
        ({"lr_net": -0.1}, ValueError, "lr_net"),
    ],
)
def test_bad_input_is_named(tiny, kw, error, match):
    kwargs = {"model": TINY_POOL, "steps": 1, "inner_steps": 1, **kw}
    with pytest.raises(error, match=match):
        zen.distill(tiny, 1, generator=torch.Generator().manual_seed(0), **kwargs)


def test_pool_spec_names_every_family_and_duplicates_get_distinct_labels():
    pool = zen.METHOD.sampler(["convnet", samplers.FreshInit("convnet", width=8), "lenet"])
    assert zen.family_labels(pool) == ["convnet", "convnet_2", "lenet"]
    assert [m["model"] for m in pool.spec()["members"]] == ["convnet", "convnet", "lenet"]
    assert zen.METHOD.sampler(None).names == list(zen.DEFAULT_POOL)
    assert zen.METHOD.sampler("lenet").names == ["lenet"]
