"""IFT hypergradients (``course_utils.hypergrad``): Hessian-vector products against explicit Hessians, the Neumann
series and conjugate gradients against direct solves, and the full hypergradient against differentiation through a
closed-form ridge solution and through an unrolled inner loop (``higher``). Small problems, float64."""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from course_utils.methods import hypergrad
from course_utils.methods.hypergrad import cg_inverse_hvp, hvp, implicit_hypergradient, neumann_inverse_hvp

f64 = torch.float64


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def _split(x: torch.Tensor, sizes) -> list[torch.Tensor]:
    """Leaves (requiring grad) that are the pieces of ``x``: θ as several tensors exercises the tuple handling."""
    return [t.detach().clone().requires_grad_() for t in torch.split(x, sizes)]


# --------------------------------------------------------------------------- Hessian-vector products


def _logistic(w, b, X, y, mu=0.1):
    """Mean logistic loss of labels ±1 plus an L2 term: smooth, with a non-constant Hessian."""
    return F.softplus(-y * (X @ w + b)).mean() + 0.5 * mu * ((w**2).sum() + (b**2).sum())


def test_hvp_matches_explicit_hessian_and_zero_for_unused_params():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(10, 4, generator=g, dtype=f64)
    y = torch.randint(0, 2, (10,), generator=g).to(f64) * 2 - 1
    theta = torch.randn(5, generator=g, dtype=f64)
    v = torch.randn(5, generator=g, dtype=f64)
    w, b = _split(theta, [4, 1])
    unused = torch.randn(2, generator=g, dtype=f64, requires_grad=True)  # a parameter L_S does not touch
    params = [w, b, unused]
    grads = torch.autograd.grad(_logistic(w, b, X, y), params, create_graph=True, allow_unused=True)
    vs = [*torch.split(v, [4, 1]), torch.ones(2, dtype=f64)]

    hv = hvp(grads, params, vs)
    H = torch.autograd.functional.hessian(lambda t: _logistic(t[:4], t[4:], X, y), theta)
    assert [t.shape for t in hv] == [p.shape for p in params]
    torch.testing.assert_close(torch.cat(hv[:2]), H @ v, rtol=1e-12, atol=1e-12)
    assert torch.equal(hv[2], torch.zeros(2, dtype=f64))
    again = hvp(grads, params, vs)  # the gradient's graph was retained: it can be reused
    assert all(torch.equal(a, c) for a, c in zip(hv, again))
    assert all(p.grad is None for p in params)


# --------------------------------------------------------------------------- inverse Hessian-vector products


def _ridge_system(seed=0, n=20, d=5, mu=1.0):
    """Ridge loss ½‖Xθ − y‖² + ½μ‖θ‖² with singular values of X in [1, 3]: H = XᵀX + μI has eigenvalues in [2, 10]."""
    g = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(n, d, generator=g, dtype=f64))
    V, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=f64))
    X = U @ torch.diag(torch.linspace(1, 3, d, dtype=f64)) @ V.T
    y = torch.randn(n, generator=g, dtype=f64)
    params = _split(torch.randn(d, generator=g, dtype=f64), [3, d - 3])  # any θ: the Hessian is constant
    theta = torch.cat(params)
    loss = 0.5 * ((X @ theta - y) ** 2).sum() + 0.5 * mu * (theta**2).sum()
    grads = torch.autograd.grad(loss, params, create_graph=True)
    H = X.T @ X + mu * torch.eye(d, dtype=f64)
    v = torch.randn(d, generator=g, dtype=f64)
    return grads, params, v, H


def test_neumann_series_converges_to_inverse_hvp_when_alpha_below_two_over_lambda_max():
    grads, params, v, H = _ridge_system()
    vs = torch.split(v, [3, 2])
    exact = torch.linalg.solve(H, v)
    lam_max = torch.linalg.eigvalsh(H).max().item()

    def error(terms, alpha):
        return _rel(torch.cat(neumann_inverse_hvp(grads, params, vs, terms=terms, alpha=alpha)), exact)

    errors = [error(k, 1 / lam_max) for k in (5, 20, 80)]
    assert errors[0] > errors[1] > errors[2]
    assert error(200, 1 / lam_max) < 1e-6
    torch.testing.assert_close(torch.cat(neumann_inverse_hvp(grads, params, vs, terms=0, alpha=0.5)), 0.5 * v)
    # α = 3/λ_max: the top eigenvalue's factor |1 − αλ_max| = 2 > 1, so the series diverges, with a warning naming α
    with pytest.warns(hypergrad.NeumannDivergenceWarning, match=r"alpha=0\.3"):
        diverging = [error(k, 3 / lam_max) for k in (5, 10, 20)]
    assert diverging[0] < diverging[1] < diverging[2] and diverging[2] > 1
    assert all(p.grad is None for p in params)


def test_converging_series_gives_no_warning_and_an_overflow_is_an_error_naming_alpha():
    grads, params, v, H = _ridge_system()
    vs = torch.split(v, [3, 2])
    lam_max = torch.linalg.eigvalsh(H).max().item()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        neumann_inverse_hvp(grads, params, vs, terms=50, alpha=1.9 / lam_max)
    with pytest.raises(ValueError, match=r"alpha=1e\+150.*largest_eigenvalue"):
        neumann_inverse_hvp(grads, params, vs, terms=5, alpha=1e150)


def test_largest_eigenvalue_by_power_iteration():
    grads, params, v, H = _ridge_system()
    exact = torch.linalg.eigvalsh(H).max().item()
    estimate = hypergrad.largest_eigenvalue(grads, params, iterations=60, generator=torch.Generator().manual_seed(1))
    assert estimate == pytest.approx(exact, rel=1e-6)
    with pytest.raises(ValueError, match="iterations"):
        hypergrad.largest_eigenvalue(grads, params, iterations=0)


def _quadratic(spectrum: torch.Tensor, g: torch.Generator):
    """½θᵀAθ with A = Q diag(spectrum) Qᵀ (Q random orthogonal), θ in two pieces; its Hessian is A."""
    d = len(spectrum)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=f64))
    A = Q @ torch.diag(spectrum) @ Q.T
    A = 0.5 * (A + A.T)  # exactly symmetric: eigvalsh reads one triangle
    params = _split(torch.randn(d, generator=g, dtype=f64), [3, d - 3])
    theta = torch.cat(params)
    grads = torch.autograd.grad(0.5 * theta @ A @ theta, params, create_graph=True)
    return grads, params, A


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("kind", ["positive_definite", "indefinite"])
def test_extreme_eigenvalues_match_eigvalsh_on_quadratics(kind, seed):
    """Both ends of the spectrum, whichever has the larger magnitude (the indefinite case alternates the sign of the
    dominant end with the seed); the ends are kept 0.5 from the interior so that 500 iterations converge."""
    g = torch.Generator().manual_seed(seed)
    d = 8

    def uniform(lo, hi, n=1):
        return lo + (hi - lo) * torch.rand(n, generator=g, dtype=f64)

    low = uniform(0.2, 1.0) if kind == "positive_definite" else -uniform(1.0, 3.0)
    high = uniform(5.0, 10.0)
    spectrum = torch.cat([low, uniform(float(low) + 0.5, float(high) - 0.5, d - 2), high])
    if kind == "indefinite" and seed % 2:
        spectrum = -spectrum  # the dominant end is the negative one
    grads, params, A = _quadratic(spectrum, g)
    exact = torch.linalg.eigvalsh(A)
    if kind == "indefinite":
        assert exact[0] < 0 < exact[-1]
    else:
        assert exact[0] > 0

    def run():
        return hypergrad.extreme_eigenvalues(
            grads, params, iterations=500, generator=torch.Generator().manual_seed(seed)
        )

    lo, hi = run()
    assert lo == pytest.approx(exact[0].item(), rel=1e-3) and hi == pytest.approx(exact[-1].item(), rel=1e-3)
    assert run() == (lo, hi), "same generator seed: the same estimate"
    assert all(p.grad is None for p in params)


def test_extreme_eigenvalues_of_a_small_networks_loss_match_its_explicit_hessian():
    """A 3-5-3 tanh MLP's cross-entropy at its random initialisation (float64): an indefinite Hessian."""
    from torch.func import functional_call

    g = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)).to(f64)
    X = torch.randn(20, 3, generator=g, dtype=f64)
    y = torch.randint(3, (20,), generator=g)
    names, params = zip(*net.named_parameters())

    def loss_of(flat):  # the same loss as a function of one flat parameter vector
        pieces = torch.split(flat, [p.numel() for p in params])
        weights = {n: t.reshape(p.shape) for n, t, p in zip(names, pieces, params)}
        return F.cross_entropy(functional_call(net, weights, (X,)), y)

    H = torch.autograd.functional.hessian(loss_of, torch.cat([p.detach().flatten() for p in params]))
    exact = torch.linalg.eigvalsh(H)
    assert exact[0] < 0 < exact[-1]
    grads = torch.autograd.grad(F.cross_entropy(net(X), y), params, create_graph=True)
    lo, hi = hypergrad.extreme_eigenvalues(grads, params, iterations=1000, generator=torch.Generator().manual_seed(1))
    assert lo == pytest.approx(exact[0].item(), rel=1e-3) and hi == pytest.approx(exact[-1].item(), rel=1e-3)
    # the largest magnitude alone is one end only
    lam = hypergrad.largest_eigenvalue(grads, params, iterations=1000, generator=torch.Generator().manual_seed(1))
    assert lam == pytest.approx(max(exact, key=abs).item(), rel=1e-3)


def test_extreme_eigenvalues_check_their_arguments():
    grads, params, _, _ = _ridge_system()
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        hypergrad.extreme_eigenvalues(grads, params, generator=None)
    with pytest.raises(ValueError, match="iterations must be an integer >= 1, got 0"):
        hypergrad.extreme_eigenvalues(grads, params, iterations=0, generator=torch.Generator())


def test_cg_solves_hessian_system_within_dim_iterations():
    grads, params, v, H = _ridge_system(seed=1)
    x = cg_inverse_hvp(grads, params, torch.split(v, [3, 2]), iterations=v.numel())
    torch.testing.assert_close(torch.cat(x), torch.linalg.solve(H, v), rtol=1e-8, atol=1e-8)
    zero = cg_inverse_hvp(grads, params, [torch.zeros(3, dtype=f64), torch.zeros(2, dtype=f64)], iterations=3)
    assert all(torch.equal(z, torch.zeros_like(z)) for z in zero)


def _notebook_ridge(seed):
    """Notebook 06's ridge problem (40 × 8 Gaussian X, ridge 0.05): the claims it checks must hold for every seed."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(40, 8, generator=g, dtype=f64)
    theta = torch.zeros(8, dtype=f64, requires_grad=True)
    y = torch.randn(40, generator=g, dtype=f64)
    loss = 0.5 * (X @ theta - y).pow(2).mean() + 0.05 * theta.pow(2).sum()
    (grad,) = torch.autograd.grad(loss, theta, create_graph=True)
    H = X.T @ X / 40 + 0.1 * torch.eye(8, dtype=f64)
    return [grad], [theta], torch.randn(8, generator=g, dtype=f64), H


@pytest.mark.parametrize("seed", range(20))
def test_notebook_claims_on_the_inverse_hvp_hold_for_every_seed(seed):
    """CG run for as many iterations as unknowns (tol=0: no early stop) is exact to 1e-8, and the Neumann series'
    error falls with every term at alpha = 1/lambda_max (power iteration's estimate); the default tolerance may stop
    CG earlier, at a relative error near 1e-6, which is why the notebook passes tol=0."""
    grads, params, v, H = _notebook_ridge(seed)
    exact = torch.linalg.solve(H, v)
    x = cg_inverse_hvp(grads, params, [v], iterations=8, tol=0.0)[0]
    assert _rel(x, exact) < 1e-8
    lam = hypergrad.largest_eigenvalue(grads, params, iterations=50, generator=torch.Generator().manual_seed(seed))
    errors = [_rel(neumann_inverse_hvp(grads, params, [v], terms=k, alpha=1 / lam)[0], exact) for k in (0, 1, 2, 5, 10)]
    assert all(a > b for a, b in zip(errors, errors[1:]))


# --------------------------------------------------------------------------- the full hypergradient

MU = 1.0


def _bilevel(seed=0):
    """λ = synthetic inputs X_s (6×3) with targets y_s; real data (X_t, y_t)."""
    g = torch.Generator().manual_seed(seed)
    Xs = torch.randn(6, 3, generator=g, dtype=f64).requires_grad_()
    ys = torch.randn(6, generator=g, dtype=f64)
    Xt = torch.randn(30, 3, generator=g, dtype=f64)
    yt = Xt @ torch.randn(3, generator=g, dtype=f64) + 0.1 * torch.randn(30, generator=g, dtype=f64)
    return Xs, ys, Xt, yt


def _inner(theta, Xs, ys):
    return 0.5 * ((Xs @ theta - ys) ** 2).sum() + 0.5 * MU * (theta**2).sum()


def _outer(theta, Xs, Xt, yt, nu):
    """Real-data loss; ν > 0 adds a term in λ itself (a direct ∂L_T/∂λ)."""
    return 0.5 * ((Xt @ theta - yt) ** 2).sum() + 0.5 * nu * (Xs**2).sum()


def _theta_star(Xs, ys):
    """argmin_θ L_S(θ, X_s), differentiable in X_s."""
    return torch.linalg.solve(Xs.T @ Xs + MU * torch.eye(3, dtype=f64), Xs.T @ ys)


def _true_hypergrad(Xs, ys, Xt, yt, nu=0.0):
    """d L_T(θ*(X_s), X_s) / d X_s by autograd through the closed-form solve."""
    return torch.autograd.grad(_outer(_theta_star(Xs, ys), Xs, Xt, yt, nu), Xs)[0]


def _ift(Xs, ys, Xt, yt, theta, nu=0.0, **kw):
    params = _split(theta, [2, 1])
    th = torch.cat(params)
    return implicit_hypergradient(_inner(th, Xs, ys), _outer(th, Xs, Xt, yt, nu), params, [Xs], **kw)[0]


def _neumann_kw(Xs):
    H = Xs.detach().T @ Xs.detach() + MU * torch.eye(3, dtype=f64)
    eig = torch.linalg.eigvalsh(H)
    assert eig.max() / eig.min() < 50, "test problem too ill-conditioned for 1000 Neumann terms"
    return {"method": "neumann", "terms": 1000, "alpha": 1 / eig.max().item()}


@pytest.mark.parametrize("nu", [0.0, 0.3])
@pytest.mark.parametrize("method", ["cg", "neumann"])
def test_implicit_hypergradient_matches_closed_form_solution(method, nu):
    Xs, ys, Xt, yt = _bilevel()
    true = _true_hypergrad(Xs, ys, Xt, yt, nu)
    kw = {"method": "cg", "iterations": 10} if method == "cg" else _neumann_kw(Xs)
    ift = _ift(Xs, ys, Xt, yt, _theta_star(Xs, ys).detach(), nu, **kw)
    assert _rel(ift, true) < 1e-6


def test_identity_method_is_not_the_hypergradient():
    """p = ∂L_T/∂θ (H ≈ I, the ZEN reference code's effective behaviour) points elsewhere."""
    Xs, ys, Xt, yt = _bilevel()
    ident = _ift(Xs, ys, Xt, yt, _theta_star(Xs, ys).detach(), method="identity")
    assert _rel(ident, _true_hypergrad(Xs, ys, Xt, yt)) > 1e-2


def test_implicit_hypergradient_matches_unrolled_differentiation():
    higher = pytest.importorskip("higher")
    Xs, ys, Xt, yt = _bilevel()
    lam = torch.linalg.eigvalsh(Xs.detach().T @ Xs.detach() + MU * torch.eye(3, dtype=f64))
    assert lam.max() / lam.min() < 20, "test problem too ill-conditioned for 500 gradient steps"
    net = torch.nn.Linear(3, 1, bias=False).to(f64)
    with torch.no_grad():
        net.weight.zero_()  # θ0 = 0
    opt = torch.optim.SGD(net.parameters(), lr=1 / lam.max().item())
    with higher.innerloop_ctx(net, opt, copy_initial_weights=True) as (fnet, diffopt):
        for _ in range(500):
            diffopt.step(_inner(fnet.weight.reshape(3), Xs, ys))
        theta_T = fnet.weight.reshape(3)
        unrolled = torch.autograd.grad(_outer(theta_T, Xs, Xt, yt, 0.0), Xs)[0]
    assert _rel(theta_T.detach(), _theta_star(Xs, ys).detach()) < 1e-8  # the unroll has converged
    ift = _ift(Xs, ys, Xt, yt, theta_T.detach(), method="cg", iterations=10)
    assert _rel(ift, unrolled) < 1e-4
    assert Xs.grad is None and all(p.grad is None for p in net.parameters())


@pytest.mark.parametrize("method", hypergrad.METHODS)
def test_no_grad_left_behind_and_deterministic(method):
    Xs, ys, Xt, yt = _bilevel(seed=3)
    params = _split(_theta_star(Xs, ys).detach(), [2, 1])

    def run():
        th = torch.cat(params)
        return implicit_hypergradient(
            _inner(th, Xs, ys), _outer(th, Xs, Xt, yt, 0.1), params, [Xs], method=method, alpha=0.05
        )

    first, second = run(), run()
    assert torch.equal(first[0], second[0]) and first[0].shape == Xs.shape
    assert not first[0].requires_grad
    assert Xs.grad is None and all(p.grad is None for p in params)


# --------------------------------------------------------------------------- errors


def _call_kwargs(**kw):
    Xs, ys, Xt, yt = _bilevel()
    params = _split(_theta_star(Xs, ys).detach(), [2, 1])
    th = torch.cat(params)
    return implicit_hypergradient(_inner(th, Xs, ys), _outer(th, Xs, Xt, yt, 0.0), params, [Xs], **kw)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"method": "adam"}, "valid: neumann, cg, identity"),
        ({"terms": -1}, "terms must be an integer >= 0, got -1"),
        ({"alpha": 0}, "alpha must be a finite number > 0, got 0"),
        ({"alpha": math.nan}, "alpha must be a finite number > 0, got nan"),
        ({"iterations": 0}, "iterations must be an integer >= 1, got 0"),
    ],
)
def test_bad_arguments_are_named(kw, match):
    with pytest.raises(ValueError, match=match):
        _call_kwargs(**kw)


def test_inverse_hvp_functions_check_their_arguments():
    grads, params, v, _ = _ridge_system()
    vs = torch.split(v, [3, 2])
    with pytest.raises(ValueError, match="terms"):
        neumann_inverse_hvp(grads, params, vs, terms=-1, alpha=0.1)
    for alpha in (0, math.nan, -1.0):
        with pytest.raises(ValueError, match="alpha"):
            neumann_inverse_hvp(grads, params, vs, terms=3, alpha=alpha)
    with pytest.raises(ValueError, match="iterations"):
        cg_inverse_hvp(grads, params, vs, iterations=0)
    with pytest.raises(ValueError, match="v has 1 tensors but params has 2"):
        hvp(grads, params, [v])
    with pytest.raises(ValueError, match=r"v\[1\] has shape \(3,\), params\[1\] has \(2,\)"):
        hvp(grads, params, [vs[0], torch.zeros(3, dtype=f64)])
    with pytest.raises(TypeError, match="single tensor"):
        hvp(grads, params[0], vs)
