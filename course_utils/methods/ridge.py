"""(Kernel) ridge regression and the closed forms of its distilled data (Chen, Huang & Weng, NeurIPS 2024).

Notation of the paper: features φ(X) ∈ R^{p×n} (one column per sample), one-hot labels Y ∈ R^{k×n},
a linear model f(x) = W φ(x) with W ∈ R^{k×p}. The course keeps samples in **rows**, so the code holds
F = φ(X)ᵀ ∈ R^{n×p}; the equations below are the paper's, the shapes in the docstrings the code's.

Ridge regression:  W = argmin_W ‖Y − W φ(X)‖² + λ‖W‖²  ⇒  W (φφᵀ + λI) = Y φᵀ  ⇒
    W = Y φᵀ (φφᵀ + λI)⁻¹  =  B (G + λI)⁻¹,  with the Gram matrix G = φφᵀ = FᵀF (p×p) and B = Yφᵀ (k×p).
G and B are sums over samples, so they are accumulated over chunks of the data and never need all
features in memory; the Gram product (n·p² multiply-adds) is the whole cost.

Distilled data: m points with features φ_S ∈ R^{p×m} and labels Y_S ∈ R^{k×m}, trained with λ_S:
    W_S = Y_S (φ_Sᵀφ_S + λ_S I)⁻¹ φ_Sᵀ  =:  Y_S D,     D ∈ R^{m×p}     (λ_S = 0: W_S = Y_S φ_S⁺, min-norm).
The goal W_S = W is the linear system Y_S D = W for D, followed by "φ_S such that D is its regularised
pseudo-inverse" (then X_S = φ⁻¹(φ_S), see ``feature_maps``):
- Y_S D = W is solvable iff W's columns lie in range(Y_S), i.e. Y_S Y_S⁺ W = W. With m < k (or a class
  without an image) rank(Y_S) < k and a generic W (rank k) has no solution: ``support_directions`` raises.
- Every solution: D = Y_S⁺W + (I − Y_S⁺Y_S) Z, Z ∈ R^{m×p} free (unique, D = Y_S⁻¹W, when m = k).
- λ_S = 0: φ_S = D⁺ (then φ_S⁺ = D⁺⁺ = D).  λ_S > 0: with the SVD D = V S Uᵀ, φ_S = U diag(σ) Vᵀ,
  σ_i = (1 + √(1 − 4λ_S s_i²)) / (2 s_i), real only when λ_S ≤ 1/(4 s_max²) (``support_features``).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Iterator

import torch

from .feature_maps import FeatureMap

#: ``lambda_grid`` exponents: 10^[-6, 6) in steps of 0.5, and 10^[-3, 6) for the identity map.
_GRID = {"default": (-6.0, 6.0), "identity": (-3.0, 6.0)}


# --------------------------------------------------------------------------- small helpers


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run a block of *small* dense algebra (matrices of a few hundred to a few thousand rows) on one CPU thread.

    LAPACK's SVD, eigen- and LU solvers and small GEMMs gain little from a second thread at these sizes and slow
    down by 10-100× when the cores are shared with other work (threads spin at every barrier). The big pass over
    the data (the Gram product) stays multi-threaded. The previous setting is restored.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def one_hot(labels: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Y_S ∈ R^{k×m}: column j is the one-hot code of ``labels[j]`` (the paper's orientation)."""
    labels = labels.long()
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(
            f"labels must lie in 0..{num_classes - 1}, got values {int(labels.min())}..{int(labels.max())}"
        )
    return torch.nn.functional.one_hot(labels, num_classes).to(dtype).T


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖a − b‖_F / ‖b‖_F."""
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(b))


def lambda_grid(feature_map: str = "default", dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The λ candidates: 10^[-6, 6) step 0.5 (identity map: 10^[-3, 6))."""
    lo, hi = _GRID["identity" if feature_map == "identity" else "default"]
    return 10.0 ** torch.arange(lo, hi, 0.5, dtype=dtype)


def predict(W: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Scores f(x) = W φ(x) of every row of ``features`` (N×p) -> N×k."""
    return features @ W.T


def accuracy(W: torch.Tensor, features: torch.Tensor, labels: torch.Tensor) -> float:
    """Test accuracy (%) of argmax_c (W φ(x))_c."""
    return 100.0 * float((predict(W, features).argmax(1) == labels.to(features.device)).double().mean())


def agreement(W_a: torch.Tensor, W_b: torch.Tensor, features: torch.Tensor) -> float:
    """Fraction of the rows of ``features`` on which the models W_a and W_b predict the same class."""
    return float((predict(W_a, features).argmax(1) == predict(W_b, features).argmax(1)).double().mean())


# --------------------------------------------------------------------------- full-data ridge regression


def sufficient_statistics(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    feature_map: FeatureMap,
    *,
    dtype: torch.dtype = torch.float64,
    chunk: int = 8192,
) -> tuple[torch.Tensor, torch.Tensor]:
    """G = φ(X)φ(X)ᵀ (p×p) and B = Y φ(X)ᵀ (k×p), accumulated over chunks of ``chunk`` images.

    Each chunk's features are computed in ``dtype`` and folded in with two GEMMs (G += F_cᵀF_c, B += Y_c F_c,
    deterministic on every device), so memory stays at one chunk of features whatever n is.
    """
    p = feature_map.out_dim
    G = torch.zeros(p, p, dtype=dtype, device=images.device)
    B = torch.zeros(num_classes, p, dtype=dtype, device=images.device)
    for s in range(0, len(images), chunk):
        F = feature_map(images[s : s + chunk], dtype)
        G.addmm_(F.T, F)
        B.addmm_(one_hot(labels[s : s + chunk].to(images.device), num_classes, dtype), F)
    return G, B


def ridge_solve(G: torch.Tensor, B: torch.Tensor, lam: float) -> torch.Tensor:
    """W = B (G + λI)⁻¹ = Y φᵀ(φφᵀ + λI)⁻¹ (k×p), by a Cholesky factorisation of the p×p system."""
    if not lam >= 0:
        raise ValueError(f"lam (ridge λ) must be >= 0, got {lam!r}")
    A = G + lam * torch.eye(G.shape[0], dtype=G.dtype, device=G.device)
    L, info = torch.linalg.cholesky_ex(A)
    if int(info) != 0:
        raise ValueError(f"G + λI is not positive definite for lam={lam!r} (the Gram matrix is singular); use lam > 0")
    return torch.cholesky_solve(B.T, L).T


@dataclass
class LambdaSearch:
    """Validation accuracy (%) of the ridge model for every λ of the grid; ``best`` is the chosen λ."""

    lambdas: torch.Tensor
    val_accuracy: torch.Tensor
    best: float
    seconds: float


def select_lambda(
    G_train: torch.Tensor, B_train: torch.Tensor, F_val: torch.Tensor, y_val: torch.Tensor, lambdas: torch.Tensor
) -> LambdaSearch:
    """Pick λ on a validation split with ONE eigendecomposition for the whole grid.

    With G_train = Q diag(e) Qᵀ,  W_λ = B Q diag(1/(e + λ)) Qᵀ, so the validation scores of every λ are
    (F_val Q) diag(1/(e + λ)) (B Q)ᵀ: two p-sized products, then one batched k-column product per λ.
    Ties go to the largest λ (the most regularised model).
    """
    t0 = time.perf_counter()
    lambdas = torch.as_tensor(lambdas, dtype=G_train.dtype, device=G_train.device).flatten()
    if lambdas.numel() == 0 or not bool((lambdas > 0).all()):
        raise ValueError(f"lambdas must be a non-empty list of positive values, got {lambdas.tolist()}")
    with single_thread():
        evals, Q = torch.linalg.eigh(G_train)
        evals = evals.clamp(min=0)  # G is PSD; clip round-off below zero
        BQ, FQ = B_train @ Q, F_val @ Q  # k×p, n_val×p
        inv = 1.0 / (evals.unsqueeze(0) + lambdas.unsqueeze(1))  # L×p
        scores = torch.matmul(FQ, inv.unsqueeze(2) * BQ.T.unsqueeze(0))  # L×n_val×k
        acc = 100.0 * (scores.argmax(2) == y_val.to(scores.device)).double().mean(1)
    best = int(torch.nonzero(acc == acc.max()).max())
    return LambdaSearch(lambdas.cpu(), acc.cpu(), float(lambdas[best]), time.perf_counter() - t0)


# --------------------------------------------------------------------------- the distilled-data closed forms


def label_range_residual(W: torch.Tensor, Y_S: torch.Tensor) -> float:
    """‖(I − Y_S Y_S⁺) W‖ / ‖W‖: 0 iff W's columns lie in range(Y_S), i.e. iff Y_S D = W has a solution."""
    return relative_error(Y_S @ (torch.linalg.pinv(Y_S) @ W), W)


def support_directions(
    W: torch.Tensor,
    Y_S: torch.Tensor,
    D0: torch.Tensor | None = None,
    *,
    allow_inexact: bool = False,
    rtol: float = 1e-8,
) -> torch.Tensor:
    """D ∈ R^{m×p} with Y_S D = W (k×p, Y_S k×m): D = Y_S⁺W + (I − Y_S⁺Y_S) Z.

    ``D0=None`` takes Z = 0 (the minimum-norm D; for m = k the unique D = Y_S⁻¹W). Given D0, Z = D0, which is
    the D closest to D0 in Frobenius norm: writing P = I − Y_S⁺Y_S (an orthogonal projector with P Y_S⁺ = 0),
    ‖D − D0‖ = ‖(Y_S⁺W − (I − P) D0) + P(Z − D0)‖; the first term lies in range(Y_S⁺) ⟂ range(P), so the
    minimum is at P Z = P D0, and   D = D0 + Y_S⁺ (W − Y_S D0).
    With D0 = φ(X_0)⁺ for real images X_0 ("realistic") or noise images ("from noise"), φ_S stays near φ(X_0).

    If W is not in range(Y_S) (m < k, or a class with no image) no D exists: ``ValueError``, unless
    ``allow_inexact`` returns the least-squares D (then Y_S D = Y_S Y_S⁺ W, the projection of W).
    """
    k, m = Y_S.shape
    if W.shape[0] != k or (D0 is not None and D0.shape != (m, W.shape[1])):
        raise ValueError(
            f"shapes do not fit: W {tuple(W.shape)}, Y_S {tuple(Y_S.shape)}"
            + (f", D0 {tuple(D0.shape)} (expected {(m, W.shape[1])})" if D0 is not None else "")
        )
    Y_pinv = torch.linalg.pinv(Y_S)
    D = Y_pinv @ W if D0 is None else D0 + Y_pinv @ (W - Y_S @ D0)
    residual = relative_error(Y_S @ D, W)
    if residual > rtol and not allow_inexact:
        rank = int(torch.linalg.matrix_rank(Y_S))
        raise ValueError(
            f"no distilled set with these labels reproduces W: Y_S has m={m} columns for k={k} classes and "
            f"rank {rank} < k, and W's columns are not in range(Y_S) (relative residual {residual:.3g}); "
            f"valid: m >= k images covering every class (rank(Y_S) = k), or allow_inexact=True for the "
            f"least-squares model Y_S Y_S⁺ W"
        )
    return D


def lambda_s_bound(D: torch.Tensor) -> float:
    """The largest feasible λ_S for ``support_features(D, λ_S)``: 1 / (4 s_max²), s_max = ‖D‖₂."""
    s_max = float(torch.linalg.svdvals(D)[0]) if D.numel() else 0.0
    return math.inf if s_max == 0 else 1.0 / (4.0 * s_max * s_max)


def support_features(D: torch.Tensor, lam_s: float = 0.0) -> torch.Tensor:
    """φ_Sᵀ ∈ R^{m×p} whose regularised pseudo-inverse (φ_Sᵀφ_S + λ_S I)⁻¹φ_Sᵀ equals D (m×p).

    SVD D = V diag(s) Uᵀ. Try φ_S = U diag(σ) Vᵀ: φ_Sᵀφ_S = V diag(σ²) Vᵀ and
    (φ_Sᵀφ_S + λ_S I)⁻¹ φ_Sᵀ = V diag(σ / (σ² + λ_S)) Uᵀ, which is D iff  s σ² − σ + λ_S s = 0, i.e.
        σ_i = (1 + √(1 − 4 λ_S s_i²)) / (2 s_i)     (the root that tends to 1/s_i, i.e. φ_S = D⁺, as λ_S → 0).
    Real roots need 4 λ_S s_i² ≤ 1 for every i: λ_S ≤ 1/(4 s_max²). Above that bound no φ_S exists and this
    raises ``ValueError`` (instead of returning NaN). Zero singular values stay zero (rank is kept).
    """
    lam_s = float(lam_s)
    if not lam_s >= 0:
        raise ValueError(f"lam_s (λ_S) must be >= 0, got {lam_s!r}")
    V, s, Ut = torch.linalg.svd(D, full_matrices=False)  # D = V diag(s) Ut,  Ut = Uᵀ
    if s.numel() == 0 or float(s[0]) == 0:
        raise ValueError("D is zero: there is no model to distil")
    bound = 1.0 / (4.0 * float(s[0]) ** 2)
    if lam_s > bound * (1 + 1e-12):  # slack: ``lambda_s_bound`` may differ from s[0] in the last bit
        raise ValueError(
            f"lam_s={lam_s:.6g} is above the feasibility bound 1/(4 s_max²) = {bound:.6g} "
            f"(s_max = {float(s[0]):.6g}): valid: 0 <= lam_s <= {bound:.6g}"
        )
    keep = s > s[0] * max(D.shape) * torch.finfo(D.dtype).eps
    s = torch.where(keep, s, torch.ones_like(s))
    disc = (1.0 - 4.0 * lam_s * s * s).clamp(min=0)  # >= 0 by the bound; clamp round-off only
    sigma = torch.where(keep, (1.0 + disc.sqrt()) / (2.0 * s), torch.zeros_like(s))
    return (V * sigma) @ Ut


def support_model(F_S: torch.Tensor, Y_S: torch.Tensor, lam_s: float = 0.0) -> torch.Tensor:
    """The model trained on the distilled set: W_S = Y_S (φ_Sᵀφ_S + λ_S I)⁻¹ φ_Sᵀ  (k×p), F_S = φ_Sᵀ (m×p).

    λ_S = 0 gives the minimum-norm interpolating model W_S = Y_S φ_S⁺.
    """
    if not lam_s >= 0:
        raise ValueError(f"lam_s (λ_S) must be >= 0, got {lam_s!r}")
    if lam_s == 0:
        return Y_S @ torch.linalg.pinv(F_S.T)
    K = F_S @ F_S.T + lam_s * torch.eye(F_S.shape[0], dtype=F_S.dtype, device=F_S.device)
    return Y_S @ torch.linalg.solve(K, F_S)
