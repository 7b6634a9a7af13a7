"""Ridge regression, the distilled-data closed forms of Chen, Huang & Weng (all four cases), feature maps and
the ``krr_closed_form`` method, checked against direct solves on small random problems (float64)."""

import math

import pytest
import torch

from course_utils import methods
from course_utils.data.datasets import ImageSet
from course_utils.methods import feature_maps, ridge
from course_utils.methods import krr_closed_form as kcf

f64 = torch.float64


def _problem(n=40, p=6, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    F = torch.randn(n, p, generator=g, dtype=f64)  # φ(X)ᵀ
    y = torch.arange(n) % k
    return F, y, ridge.one_hot(y, k)  # Y is k×n


def _random_W(k=3, p=6, seed=1):
    return torch.randn(k, p, generator=torch.Generator().manual_seed(seed), dtype=f64)


def _min_norm_model(F_S, Y_S):
    """min ‖W‖ s.t. W φ_S = Y_S, by LAPACK's least squares on φ_Sᵀ Wᵀ = Y_Sᵀ (gelsd: minimum norm)."""
    return torch.linalg.lstsq(F_S, Y_S.T, driver="gelsd").solution.T


# --------------------------------------------------------------------------- ridge regression


def test_ridge_solve_matches_primal_and_dual_direct_solves():
    F, y, Y = _problem()
    lam = 0.7
    W = ridge.ridge_solve(F.T @ F, Y @ F, lam)
    primal = Y @ F @ torch.linalg.inv(F.T @ F + lam * torch.eye(6, dtype=f64))  # Y φᵀ(φφᵀ + λI)⁻¹
    dual = Y @ torch.linalg.solve(F @ F.T + lam * torch.eye(40, dtype=f64), F)  # Y (φᵀφ + λI)⁻¹ φᵀ
    assert torch.allclose(W, primal, atol=1e-12) and torch.allclose(W, dual, atol=1e-12)
    with pytest.raises(ValueError, match="lam.*>= 0"):
        ridge.ridge_solve(F.T @ F, Y @ F, -1.0)
    with pytest.raises(ValueError, match="singular.*lam > 0"):
        ridge.ridge_solve(torch.zeros(3, 3, dtype=f64), torch.zeros(2, 3, dtype=f64), 0.0)


def test_sufficient_statistics_over_chunks_equal_the_gram_and_cross_products():
    g = torch.Generator().manual_seed(0)
    images, labels = torch.randn(23, 1, 2, 3, generator=g), torch.randint(0, 4, (23,), generator=g)
    fmap = feature_maps.make("random_network", 6, seed=3)
    G, B = ridge.sufficient_statistics(images, labels, 4, fmap, chunk=5)
    F = fmap(images, f64)
    assert torch.allclose(G, F.T @ F, atol=1e-12)
    assert torch.allclose(B, ridge.one_hot(labels, 4) @ F, atol=1e-12)


def test_select_lambda_matches_one_fit_per_lambda():
    F, y, Y = _problem(n=60, p=8, k=3, seed=2)
    Fv, yv = F[:15] + 0.5 * torch.randn(15, 8, generator=torch.Generator().manual_seed(5), dtype=f64), y[:15]
    grid = ridge.lambda_grid()
    search = ridge.select_lambda(F.T @ F, Y @ F, Fv, yv, grid)
    brute = torch.tensor(
        [ridge.accuracy(ridge.ridge_solve(F.T @ F, Y @ F, float(lam)), Fv, yv) for lam in grid], dtype=f64
    )
    assert torch.allclose(search.val_accuracy, brute)
    best = [float(lam) for lam, a in zip(grid, brute) if a == brute.max()][-1]  # ties -> largest λ
    assert search.best == best
    assert len(grid) == 24 and math.isclose(float(grid[0]), 1e-6) and math.isclose(float(grid[-1]), 10**5.5)
    assert len(ridge.lambda_grid("identity")) == 18
    with pytest.raises(ValueError, match="positive"):
        ridge.select_lambda(F.T @ F, Y @ F, Fv, yv, [0.0, 1.0])


# --------------------------------------------------------------------------- the four cases of the theorem


def test_m_equals_k_unique_solution_reproduces_W():
    W = _random_W()
    perm = torch.tensor([2, 0, 1])
    Y_S = ridge.one_hot(perm, 3)  # one image per class, any order
    D = ridge.support_directions(W, Y_S)
    assert torch.allclose(D, torch.linalg.solve(Y_S, W), atol=1e-13)  # D = Y_S⁻¹ W
    F_S = ridge.support_features(D)  # φ_Sᵀ = (D⁺)ᵀ
    assert torch.allclose(F_S, torch.linalg.pinv(D).T, atol=1e-12)
    assert torch.allclose(_min_norm_model(F_S, Y_S), W, atol=1e-12)  # trained on S: W_S = W
    assert torch.allclose(ridge.support_model(F_S, Y_S), W, atol=1e-12)


def test_m_less_than_k_fails_unless_W_lies_in_the_range_of_Y_S():
    W = _random_W()
    Y_S = ridge.one_hot(torch.tensor([0, 1]), 3)  # m = 2 < k = 3
    with pytest.raises(ValueError, match=r"m=2 columns for k=3 classes.*rank 2 < k.*valid: m >= k"):
        ridge.support_directions(W, Y_S)
    D = ridge.support_directions(W, Y_S, allow_inexact=True)  # least squares: projection of W onto range(Y_S)
    W_S = ridge.support_model(ridge.support_features(D), Y_S)
    assert torch.allclose(W_S, Y_S @ torch.linalg.pinv(Y_S) @ W, atol=1e-12)
    assert W_S[2].abs().max() < 1e-12 and ridge.relative_error(W_S, W) > 0.1  # class 2 can never be predicted
    assert ridge.label_range_residual(W, Y_S) > 0.1
    # ... unless W's columns lie in range(Y_S): then m < k works exactly
    soft = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], dtype=f64)
    W_in = soft @ torch.randn(2, 6, generator=torch.Generator().manual_seed(3), dtype=f64)
    D = ridge.support_directions(W_in, soft)
    assert ridge.label_range_residual(W_in, soft) < 1e-12
    assert torch.allclose(ridge.support_model(ridge.support_features(D), soft), W_in, atol=1e-12)
    # m >= k is not enough: every class needs an image
    with pytest.raises(ValueError, match="rank 2 < k"):
        ridge.support_directions(W, ridge.one_hot(torch.tensor([0, 0, 1, 1]), 3))


def test_m_greater_than_k_every_solution_and_the_one_closest_to_real_images():
    g = torch.Generator().manual_seed(4)
    W, Y_S = _random_W(), ridge.one_hot(torch.tensor([0, 0, 1, 1, 2]), 3)  # m = 5 > k = 3
    Y_pinv, P = torch.linalg.pinv(Y_S), torch.eye(5, dtype=f64) - torch.linalg.pinv(Y_S) @ Y_S
    D0 = torch.randn(5, 6, generator=g, dtype=f64)
    D = ridge.support_directions(W, Y_S, D0)
    # the constrained least-squares problem min ‖D − D0‖ s.t. Y_S D = W, solved directly (KKT / normal equations)
    direct = D0 + Y_S.T @ torch.linalg.solve(Y_S @ Y_S.T, W - Y_S @ D0)
    assert torch.allclose(D, direct, atol=1e-12)
    assert torch.allclose(Y_S @ D, W, atol=1e-12)
    for _ in range(5):  # any other Z is a solution, and farther from D0
        other = Y_pinv @ W + P @ torch.randn(5, 6, generator=g, dtype=f64)
        assert torch.allclose(Y_S @ other, W, atol=1e-12)
        assert torch.linalg.norm(other - D0) >= torch.linalg.norm(D - D0)
        assert torch.allclose(_min_norm_model(ridge.support_features(other), Y_S), W, atol=1e-10)
    F_S = ridge.support_features(D)
    assert torch.allclose(_min_norm_model(F_S, Y_S), W, atol=1e-10)


def test_lambda_s_positive_svd_construction_and_its_bound():
    W, Y_S = _random_W(), ridge.one_hot(torch.tensor([0, 1, 2, 0]), 3)
    D = ridge.support_directions(W, Y_S, torch.randn(4, 6, generator=torch.Generator().manual_seed(6), dtype=f64))
    bound = ridge.lambda_s_bound(D)
    assert math.isclose(bound, 1 / (4 * float(torch.linalg.svdvals(D)[0]) ** 2))
    for lam_s in (0.3 * bound, bound):
        F_S = ridge.support_features(D, lam_s)
        direct = torch.linalg.solve(F_S @ F_S.T + lam_s * torch.eye(4, dtype=f64), F_S)  # (φ_Sᵀφ_S+λ_S I)⁻¹φ_Sᵀ
        assert torch.isfinite(F_S).all() and torch.allclose(direct, D, atol=1e-10)
        assert torch.allclose(ridge.support_model(F_S, Y_S, lam_s), W, atol=1e-10)
    # the σ_i of the docstring, one by one
    V, s, Ut = torch.linalg.svd(D, full_matrices=False)
    lam_s = 0.5 * bound
    sigma = (1 + torch.sqrt(1 - 4 * lam_s * s**2)) / (2 * s)
    assert torch.allclose(ridge.support_features(D, lam_s), V @ torch.diag(sigma) @ Ut, atol=1e-12)
    with pytest.raises(ValueError, match=rf"lam_s=.* above the feasibility bound 1/\(4 s_max²\) = {bound:.6g}"):
        ridge.support_features(D, 1.01 * bound)
    with pytest.raises(ValueError, match="lam_s.*>= 0"):
        ridge.support_features(D, -1e-3)


# --------------------------------------------------------------------------- feature maps


@pytest.mark.parametrize("name", ["identity", "random_network", "random_fourier"])
def test_feature_map_round_trips(name):
    fmap = feature_maps.make(name, 12, seed=7)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(9, 1, 3, 4, generator=g, dtype=f64)
    F = fmap(x)
    assert F.shape == (9, 12) and F.dtype == f64
    f = F if name == "random_fourier" else torch.randn(9, 12, generator=g, dtype=f64)
    assert torch.allclose(fmap(fmap.inverse(f)), f, atol=1e-9)  # surjective: φ(φ⁻¹(f)) = f
    if name != "random_fourier":  # bijective: φ⁻¹(φ(x)) = x
        assert torch.allclose(fmap.inverse(F), x.flatten(1), atol=1e-9)
    assert fmap.out_of_range(f) == 0.0
    twin = feature_maps.from_spec(fmap.spec)
    assert torch.equal(twin(x), F) and torch.equal(fmap(x.float()), twin(x.float()))
    assert fmap(x.float()).dtype == torch.float32


def test_random_fourier_outside_the_cube_is_clipped_and_reported():
    fmap = feature_maps.make("rff", 10, seed=1, scale=0.3)
    f = fmap(torch.randn(5, 10, generator=torch.Generator().manual_seed(0), dtype=f64))
    f[0, :3] = 2.0 * fmap.amplitude  # no pre-image: |f| > √(2/p)
    assert math.isclose(fmap.out_of_range(f), 3 / 50)
    back = fmap(fmap.inverse(f))
    assert torch.allclose(back[1:], f[1:], atol=1e-9)
    assert torch.allclose(back[0, :3], torch.full((3,), fmap.amplitude, dtype=f64))  # clipped to the cube


def test_feature_map_errors_name_the_valid_values():
    with pytest.raises(ValueError, match="unknown feature map 'rbf'; valid: identity, random_fourier, random_network"):
        feature_maps.make("rbf", 4)
    with pytest.raises(ValueError, match="expects inputs with 4 values, got 6"):
        feature_maps.make("identity", 4)(torch.zeros(2, 6))
    with pytest.raises(ValueError, match="negative_slope"):
        feature_maps.make("random_network", 4, negative_slope=0.0)
    with pytest.raises(TypeError, match="random_network feature map takes options \\['negative_slope'\\]"):
        feature_maps.make("random_network", 4, scale=1.0)


# --------------------------------------------------------------------------- the method


def _small_set(n_per_class=6, k=10, size=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    protos = torch.randn(k, 1, size, size, generator=g)
    labels = torch.arange(k).repeat_interleave(n_per_class)
    images = protos[labels] + 0.3 * torch.randn(len(labels), 1, size, size, generator=g)
    return ImageSet(images, labels, "mnist")  # (dataset name only sets the metadata)


@pytest.mark.parametrize("name", ["identity", "random_network"])
@pytest.mark.parametrize("ipc,init,lam_s", [(1, "real", 0.0), (3, "real", 0.0), (3, "noise", 0.0), (2, "real", "half")])
def test_closed_form_pipeline_reproduces_the_full_model(name, ipc, init, lam_s):
    train = _small_set()
    full = kcf.fit_full_model(train, name, generator=torch.Generator().manual_seed(0))
    assert full.search is not None and full.lam in full.search.lambdas.tolist()
    full = kcf.fit_full_model(train, name, generator=torch.Generator().manual_seed(0), lam=1.0)  # well conditioned
    direct = ridge.ridge_solve(*ridge.sufficient_statistics(train.images, train.labels, 10, full.feature_map), full.lam)
    assert torch.allclose(full.W, direct)
    labels = torch.arange(10).repeat_interleave(ipc)
    X0 = kcf.initial_images(train, ipc, init, torch.Generator().manual_seed(1))
    if lam_s == "half":
        lam_s = 0.5 * kcf.construct(full, labels, init_images=X0).lam_s_bound
    cf = kcf.construct(full, labels, init_images=X0, lam_s=lam_s)
    assert cf.images.shape == (10 * ipc, 1, 6, 6) and cf.images.dtype == f64
    assert cf.rel_error < 1e-8 and cf.recovery_residual < 1e-8
    F = full.feature_map(cf.images, f64)
    assert torch.allclose(ridge.support_model(F, ridge.one_hot(labels, 10), lam_s), full.W, rtol=1e-7, atol=1e-9)


def test_distill_interface_class_balance_and_determinism():
    train = _small_set()
    run = lambda seed, **kw: methods.distill(
        "krr_closed_form",
        train,
        3,
        generator=torch.Generator().manual_seed(seed),
        feature_map="random_network",
        lam=1.0,
        **kw,
    )
    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)  # same seed: bit-identical
    assert not torch.equal(a.images, c.images)
    assert a.labels.tolist() == [c for c in range(10) for _ in range(3)] and a.ipc == 3
    assert a.images.shape == (30, 1, 6, 6) and a.images.dtype == torch.float32
    assert a.meta["method"] == "krr_closed_form" and a.meta["rel_error"] < 1e-8
    fmap = feature_maps.from_spec(a.meta["feature_map"])  # the set names its model
    W_S = ridge.support_model(fmap(a.images, f64), ridge.one_hot(a.labels, 10))
    full = kcf.fit_full_model(train, "random_network", generator=torch.Generator().manual_seed(0), lam=1.0)
    assert ridge.relative_error(W_S, full.W) < 1e-3  # float32 images: still close
    # reuse a fitted model; a mismatching feature map is refused
    again = kcf.distill(train, 3, generator=torch.Generator().manual_seed(5), full_model=full)
    assert again.meta["lam"] == full.lam
    with pytest.raises(ValueError, match="differs from full_model's feature map"):
        kcf.distill(train, 3, generator=torch.Generator(), full_model=full, feature_map="identity")


def test_distill_errors_name_the_bad_value():
    train = _small_set()
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="init='zeros' is not valid; valid: real, noise"):
        kcf.distill(train, 2, generator=g, init="zeros")
    with pytest.raises(ValueError, match="ipc"):
        kcf.distill(train, 0, generator=g)
    with pytest.raises(ValueError, match="above the feasibility bound"):
        kcf.distill(train, 2, generator=g, feature_map="identity", lam_s=1e9)
    with pytest.raises(ValueError, match="val_fraction must be in \\[0, 1\\)"):
        kcf.distill(train, 2, generator=g, val_fraction=1.5)
    with pytest.raises(TypeError, match="krr_closed_form: unknown hyperparameter.*'steps'"):
        methods.distill("krr_closed_form", train, 1, generator=g, steps=3)


def test_for_display_stretches_each_image_between_its_quantiles():
    x = torch.randn(4, 1, 5, 5, generator=torch.Generator().manual_seed(0)) * torch.tensor([1e-3, 1.0, 1e3, 1e6]).view(
        4, 1, 1, 1
    )
    y = kcf.for_display(x)
    assert y.shape == x.shape and float(y.min()) == 0.0 and float(y.max()) == 1.0
    assert torch.allclose(kcf.for_display(x[1:2] * 7.0), kcf.for_display(x[1:2]), atol=1e-6)
    with pytest.raises(ValueError, match="clip must lie in"):
        kcf.for_display(x, clip=0.5)
