"""ZEN (``course_utils.methods.zen``): the IFT hypergradient of one family against finite differences of the real
loss at the re-solved inner optimum, the worst-case (mean, softmax) aggregation over a pool, the relative criterion
against a step by hand, the cosines between the hypergradient variants, bad input."""

import copy
import math
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


def _cos(a, b):
    """The cosine written out, in float64."""
    a, b = a.flatten().double(), b.flatten().double()
    return float((a * b).sum() / (a.norm() * b.norm()))


def test_hypergradient_cosines_at_the_inner_optimum():
    """From the solved toy problem, one more step (J = 1) stays at the optimum: Neumann (α = 1/λ_max, 400 terms) and
    CG agree, and the unrolled hypergradient of one step, −η ∂²L_S/∂S∂θ · ∂L_T/∂θ at θ0 ≈ θ1, is η times the
    identity variant. Every pair against the cosine of independently computed vectors, in both orders; the
    extreme eigenvalues against the explicit Hessian (the softmax's shift invariance makes λ_min = 0)."""
    pytest.importorskip("higher")
    net, images, labels, x_real, y_real = _toy()
    theta0 = _solve(net, images, labels)
    before = [p.detach().clone() for p in theta0.parameters()]
    g_s = torch.autograd.grad(F.cross_entropy(theta0(images), labels), list(theta0.parameters()), create_graph=True)
    alpha = 1.0 / hypergrad.largest_eigenvalue(g_s, list(theta0.parameters()), iterations=50)
    kw = {"inner_steps": 1, "lr": 0.5, "terms": 400, "alpha": alpha, "iterations": 50, "eigen_iterations": 2000}

    def run():
        return zen.hypergradient_cosines(
            theta0, images, labels, x_real, y_real, generator=torch.Generator().manual_seed(2), **kw
        )

    out = run()
    assert all(torch.equal(a, b) for a, b in zip(before, theta0.parameters())), "net keeps θ0"
    assert run() == out, "the same generator: the same numbers"
    pairs = [("neumann", "cg"), ("neumann", "identity"), ("neumann", "unrolled")]
    pairs += [("cg", "identity"), ("cg", "unrolled"), ("identity", "unrolled")]
    assert set(out) == {f"{a}~{b}" for a, b in pairs} | {"lambda_min", "lambda_max"}
    assert all(-1 <= out[f"{a}~{b}"] <= 1 for a, b in pairs)

    # independently: θ1 by hand-written SGD, each variant, and the unrolled step by autograd through it
    x = images.clone().requires_grad_(True)
    theta1 = copy.deepcopy(theta0)
    zen.train_inner(theta1, images, labels, 1, 0.5)
    grads = {
        m: zen.family_hypergradient(theta1, x, labels, x_real, y_real, method=m, terms=400, alpha=alpha, iterations=50)[
            0
        ]
        for m in hypergrad.METHODS
    }
    params = list(theta0.parameters())
    inner = torch.autograd.grad(F.cross_entropy(theta0(x), labels), params, create_graph=True)
    w, b = (p - 0.5 * g for p, g in zip(params, inner))  # θ1 as a function of S
    grads["unrolled"] = torch.autograd.grad(F.cross_entropy(x_real.flatten(1) @ w.T + b, y_real), x)[0]
    for a, b_ in pairs:
        assert out[f"{a}~{b_}"] == pytest.approx(_cos(grads[a], grads[b_]), abs=1e-9)
        assert out[f"{a}~{b_}"] == pytest.approx(_cos(grads[b_], grads[a]), abs=1e-9)
    assert out["neumann~cg"] > 1 - 1e-6
    assert out["identity~unrolled"] > 1 - 1e-6
    assert out["cg~identity"] < 0.99, "the IFT and H ≈ I still differ"

    def loss_of(flat):
        return F.cross_entropy(images.flatten(1) @ flat[:12].reshape(3, 4).T + flat[12:], labels)

    H = torch.autograd.functional.hessian(loss_of, torch.cat([p.detach().flatten() for p in theta1.parameters()]))
    exact = torch.linalg.eigvalsh(H)
    assert out["lambda_max"] == pytest.approx(exact[-1].item(), rel=1e-6)
    assert out["lambda_min"] == pytest.approx(exact[0].item(), abs=1e-6 * exact[-1].item())


def test_hypergradient_cosines_check_their_arguments():
    net, images, labels, x_real, y_real = _toy()
    kw = {"inner_steps": 1, "lr": 0.1, "terms": 2, "alpha": 0.1}
    with pytest.raises(ValueError, match="eigen_iterations must be an integer >= 1, got 0"):
        zen.hypergradient_cosines(
            net, images, labels, x_real, y_real, eigen_iterations=0, generator=torch.Generator(), **kw
        )
    with pytest.raises(ValueError, match="alpha must be a finite number > 0"):
        zen.hypergradient_cosines(
            net, images, labels, x_real, y_real, generator=torch.Generator(), **{**kw, "alpha": 0}
        )


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
    assert (syn.meta["worst_case"], syn.meta["aggregate"], syn.meta["temperature"]) == ("raw", aggregate, 0.1)
    assert not any(key.startswith("ref_") for key in h), "no reference losses in a raw run"
    per_family = torch.tensor([h[f"loss_{f}"] for f in families], dtype=f64)  # (A, steps)
    torch.testing.assert_close(torch.tensor(h["worst"]), per_family.argmax(0).to(torch.float32))
    if aggregate == "max":
        expected = per_family.max(0).values
    elif aggregate == "mean":
        expected = per_family.mean(0)
    else:  # τ log Σ_i exp(c_i / τ), written out
        expected = torch.tensor(
            [0.1 * math.log(sum(math.exp(c / 0.1) for c in col)) for col in per_family.T.tolist()], dtype=f64
        )
    torch.testing.assert_close(torch.tensor(h["loss"], dtype=f64), expected, rtol=1e-6, atol=1e-6)


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


def test_a_raw_run_draws_no_reference_and_the_defaults_are_raw_and_max(tiny):
    """The new settings leave a default run as it was: the generator after construction has made only the initial
    images' draw (no R), and explicit raw/max (any temperature) gives bit-identical images to the defaults."""
    config = zen.Config(steps=1, inner_steps=1)
    assert (config.worst_case, config.aggregate) == ("raw", "max")
    pool = samplers.as_pool(TINY_POOL, zen.DEFAULT_POOL)
    gen = torch.Generator().manual_seed(5)
    replay = torch.Generator()
    replay.set_state(gen.get_state())
    distiller = zen.WorstCaseDistiller(tiny, 2, generator=gen, config=config, sampler=pool)
    assert distiller.reference is None
    torch.testing.assert_close(distiller.images.detach(), tiny.images[tiny.sample_balanced(2, replay)], rtol=0, atol=0)
    assert torch.equal(gen.get_state(), replay.get_state()), "a raw run drew something besides its initial images"
    relative = zen.WorstCaseDistiller(
        tiny, 2, generator=torch.Generator().manual_seed(5), config=zen.Config(worst_case="relative"), sampler=pool
    )
    assert torch.equal(relative.images.detach(), distiller.images.detach()), "R is drawn after the images"
    assert torch.equal(relative.reference, tiny.images[tiny.sample_balanced(2, replay)]), "R: the next draw"

    def run(**kw):
        kwargs = {"model": TINY_POOL, "steps": 2, "inner_steps": 2, "hypergradient": "identity", **kw}
        return zen.distill(tiny, 1, generator=torch.Generator().manual_seed(0), **kwargs).images

    default = run()
    assert torch.equal(default, run(worst_case="raw", aggregate="max", temperature=7.0))
    assert not torch.equal(default, run(worst_case="relative")), "the relative run is another run"


def test_the_relative_criterion_is_the_gap_to_the_same_weights_trained_on_the_reference(tiny):
    """One relative step by hand: R is the draw after the initial images; each family's fresh weights are copied,
    trained J steps on R and (the original) J steps on S; the criterion is L_T(S) − L_T(R) on the same real batch;
    the update is the argmax family's hypergradient of L_T(S) alone."""
    config = zen.Config(steps=1, inner_steps=2, lr_net=0.05, worst_case="relative", hypergradient="identity")
    pool = samplers.as_pool(TINY_POOL, zen.DEFAULT_POOL)
    gen = torch.Generator().manual_seed(4)
    replay = torch.Generator()
    replay.set_state(gen.get_state())
    distiller = zen.WorstCaseDistiller(tiny, 2, generator=gen, config=config, sampler=pool)
    start = tiny.images[tiny.sample_balanced(2, replay)]
    reference = tiny.images[tiny.sample_balanced(2, replay)]
    assert torch.equal(distiller.images.detach(), start) and torch.equal(distiller.reference, reference)
    _, metrics = distiller.step(1)

    nets = pool.bind(tiny.info, "cpu").sample_all(replay)
    real = tiny.images[tiny.sample_per_class(distiller.batch_real, replay)].flatten(0, 1)
    real_labels = torch.arange(10).repeat_interleave(distiller.batch_real)
    on_s, on_r = [], []
    for net in nets:
        ref = copy.deepcopy(net)
        for trained, images, out in ((ref, reference, on_r), (net, start, on_s)):
            zen.train_inner(trained, images, distiller.labels, 2, 0.05)
            with torch.no_grad():
                out.append(float(F.cross_entropy(trained(real), real_labels)))
    for label, s_loss, r_loss in zip(distiller.families, on_s, on_r):
        assert metrics[f"loss_{label}"] == pytest.approx(s_loss, rel=1e-6)
        assert metrics[f"ref_{label}"] == pytest.approx(r_loss, rel=1e-6)
    gaps = [a - b for a, b in zip(on_s, on_r)]
    worst = max(range(3), key=lambda i: gaps[i])
    assert metrics["worst"] == worst
    x = start.clone().requires_grad_(True)
    x.grad, _ = zen.family_hypergradient(nets[worst], x, distiller.labels, real, real_labels, method="identity")
    torch.optim.Adam([x], lr=config.lr_img, betas=(config.beta1, 0.999)).step()
    torch.testing.assert_close(distiller.images.detach(), x.detach(), rtol=0, atol=1e-6)


class _Stuck(nn.Module):
    """A family that learns nothing: confident fixed random logits of the flattened image (a frozen projection,
    scaled up); its one trainable parameter enters multiplied by zero, so SGD leaves the outputs as they are."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(784, 10).requires_grad_(False)
        self.unused = nn.Parameter(torch.zeros(10))

    def forward(self, x):
        return 10 * self.proj(x.flatten(1)) + 0 * self.unused


def test_a_family_that_learns_nothing_is_the_raw_worst_but_not_the_relative_one(tiny):
    """From noise, the learning families end near ln 10 and the stuck one far above: raw ZEN follows the stuck one
    (whose hypergradient is zero) at every step. Relative to what the same steps reach on R, its gap is exactly 0
    while the learning families', trained on noise rather than real images, are positive: they are followed."""
    pool = [samplers.FreshInit("convnet", width=8), samplers.FreshInit(_Stuck), samplers.FreshInit("mlp", width=16)]
    kwargs = {"model": pool, "steps": 3, "inner_steps": 5, "lr_net": 0.1, "init": "noise", "hypergradient": "identity"}
    histories = {}
    for worst_case in zen.WORST_CASES:
        gen = torch.Generator().manual_seed(0)
        syn = zen.distill(tiny, 1, generator=gen, worst_case=worst_case, **kwargs)
        histories[worst_case] = syn.meta["history"]
    stuck = syn.meta["families"][1]
    raw, relative = histories["raw"], histories["relative"]
    assert raw["worst"] == [1.0] * 3 and all(loss > 2 * math.log(10) for loss in raw[f"loss_{stuck}"])
    assert relative[f"loss_{stuck}"] == relative[f"ref_{stuck}"], "learning nothing: no gap to the reference"
    assert all(w != 1.0 for w in relative["worst"])
    gaps = {f: [a - b for a, b in zip(relative[f"loss_{f}"], relative[f"ref_{f}"])] for f in syn.meta["families"]}
    assert relative["loss"] == [max(g[k] for g in gaps.values()) for k in range(3)]
    assert all(value > 0 for value in relative["loss"])


def _first_update(tiny, **overrides):
    """The images' gradient (the update Adam is given) and the value of one step of a fresh distiller, seed 6."""
    config = zen.Config(steps=1, inner_steps=2, hypergradient="identity", **overrides)
    pool = samplers.as_pool(TINY_POOL, zen.DEFAULT_POOL)
    distiller = zen.WorstCaseDistiller(tiny, 1, generator=torch.Generator().manual_seed(6), config=config, sampler=pool)
    value, metrics = distiller.step(1)
    return distiller.images.grad.clone(), distiller.images.detach().clone(), value, metrics


@pytest.mark.parametrize("worst_case", zen.WORST_CASES)
def test_softmax_tends_to_the_max_as_tau_falls_and_to_the_mean_as_it_grows(tiny, worst_case):
    grad_max, images_max, value_max, metrics = _first_update(tiny, worst_case=worst_case)
    grad_mean, images_mean, value_mean, _ = _first_update(tiny, worst_case=worst_case, aggregate="mean")
    # the criteria differ by ≫ 1e-6 · 745: the other weights underflow to exactly 0
    grad, images, value, _ = _first_update(tiny, worst_case=worst_case, aggregate="softmax", temperature=1e-6)
    assert torch.equal(grad, grad_max) and torch.equal(images, images_max)
    assert value == pytest.approx(value_max, rel=1e-9)
    grad, images, value, _ = _first_update(tiny, worst_case=worst_case, aggregate="softmax", temperature=1e6)
    scale = float(grad_mean.abs().max())  # float32 sums of three terms: cancellation leaves rounding near zero
    torch.testing.assert_close(grad, grad_mean, rtol=1e-5, atol=1e-6 * scale)
    torch.testing.assert_close(images, images_mean, rtol=0, atol=1e-6)
    assert value - 1e6 * math.log(3) == pytest.approx(value_mean, abs=1e-4)  # τ log Σ e^{c/τ} ≈ mean + τ log A
    assert not torch.equal(grad_max, grad_mean), "the two limits differ: the test can tell them apart"


def test_softmax_weighs_every_familys_hypergradient_by_softmax_of_the_criterion(tiny):
    """At a temperature of the order of the losses' spread, by hand: Σ_i softmax(c/τ)_i · g_i."""
    tau = 0.05
    grad, _, value, metrics = _first_update(tiny, aggregate="softmax", temperature=tau)
    config = zen.Config(steps=1, inner_steps=2, hypergradient="identity")
    pool = samplers.as_pool(TINY_POOL, zen.DEFAULT_POOL)
    gen = torch.Generator().manual_seed(6)
    distiller = zen.WorstCaseDistiller(tiny, 1, generator=gen, config=config, sampler=pool)
    start = distiller.images.detach().clone()
    nets = pool.bind(tiny.info, "cpu").sample_all(gen)
    real = tiny.images[tiny.sample_per_class(distiller.batch_real, gen)].flatten(0, 1)
    real_labels = torch.arange(10).repeat_interleave(distiller.batch_real)
    losses, grads = [], []
    x = start.clone().requires_grad_(True)
    for net in nets:
        zen.train_inner(net, start, distiller.labels, 2, config.lr_net)
        g, loss = zen.family_hypergradient(net, x, distiller.labels, real, real_labels, method="identity")
        grads.append(g)
        losses.append(loss)
    exps = [math.exp((c - max(losses)) / tau) for c in losses]
    weights = [e / sum(exps) for e in exps]
    assert 0.01 < min(weights), "every family counts at this temperature"
    torch.testing.assert_close(grad, sum(w * g for w, g in zip(weights, grads)), rtol=1e-5, atol=1e-10)
    assert value == pytest.approx(max(losses) + tau * math.log(sum(exps)), rel=1e-9)


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
        ({"aggregate": "median"}, ValueError, "valid: max, mean, softmax"),
        ({"worst_case": "fair"}, ValueError, "valid: raw, relative"),
        ({"temperature": 0}, ValueError, "temperature must be a finite number > 0, got 0"),
        ({"temperature": -1.0}, ValueError, "temperature"),
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
