"""Distilled data for (kernel) ridge regression in closed form (Chen, Huang & Weng, NeurIPS 2024).

1. Fit the full-data model  W = Y φᵀ(φφᵀ + λI)⁻¹  with λ chosen on a validation split
   (``fit_full_model``: one pass over the data for G = φφᵀ and B = Yφᵀ, one eigendecomposition for the grid).
2. Labels Y_S: ``ipc`` one-hot columns per class (m = k·ipc ≥ k, rank k).
3. D = Y_S⁺W + (I − Y_S⁺Y_S)Z  with Z = D_0 = φ(X_0)⁺, X_0 real images of each class (``init="real"``) or
   Gaussian noise (``init="noise"``); for ipc = 1 (m = k) the solution D = Y_S⁻¹W is unique.
4. φ_S from D: φ_S = D⁺ (λ_S = 0) or the SVD construction for λ_S ≤ 1/(4 s_max²).
5. X_S = φ⁻¹(φ_S) through the feature map's inverse.
Then the model trained on (X_S, Y_S) with λ_S, W_S = Y_S(φ(X_S)ᵀφ(X_S) + λ_S I)⁻¹φ(X_S)ᵀ, equals W: the
distilled set reproduces the full-data model, not just its accuracy. Steps 2-5 are m×p and p×p algebra
(milliseconds); step 1 (the Gram product, n·p² multiply-adds) is the whole cost. Everything runs in float64 (the
check W_S = W needs it);
``distill`` hands back float32 images like every other method, so ``ClosedForm`` keeps the float64 ones.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import Generator

from ..core import validate
from ..core.cost import synchronized_time
from ..core.repro import derive_seed
from ..data.datasets import ImageSet
from ..records.synthetic import INITS, SyntheticSet, class_labels, initial_images
from . import feature_maps, loop, ridge
from .hparams import parse
from .registry import MethodInfo, Preparation, Tiny, by_profile
from .selection import check_ipc

__all__ = [
    "Config",
    "FullModel",
    "ClosedForm",
    "fit_full_model",
    "construct",
    "distill",
    "for_display",
    "initial_images",
    "INITS",
]

DEFAULT_FEATURE_MAP = "random_network"


@dataclass
class FullModel:
    """The full-data ridge model W = Y φᵀ(φφᵀ + λI)⁻¹ on ``feature_map``, with how λ was chosen and timings."""

    feature_map: feature_maps.FeatureMap
    W: torch.Tensor  # k×p, float64
    lam: float
    search: ridge.LambdaSearch | None  # None when λ was given
    dataset: str
    num_train: int
    seconds: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return self.W.shape[0]

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """φ(x) (N×p float64) of ``images``, computed in chunks."""
        return torch.cat([self.feature_map(images[s : s + 8192], torch.float64) for s in range(0, len(images), 8192)])

    def accuracy(self, test: ImageSet, features: torch.Tensor | None = None) -> float:
        """Test accuracy (%) of the full-data model (``features``: ``self.features(test.images)``, to reuse them)."""
        F = self.features(test.images) if features is None else features
        return ridge.accuracy(self.W, F, test.labels)


def fit_full_model(
    train_set: ImageSet,
    feature_map=None,
    *,
    generator: torch.Generator,
    val_fraction: float = 0.05,
    lambdas=None,
    lam: float | None = None,
    chunk: int = 8192,
) -> FullModel:
    """Ridge regression on the whole training set:  W = B (G + λI)⁻¹,  G = φφᵀ,  B = Yφᵀ.

    λ: ``lam`` if given, else the best of ``lambdas`` (default ``ridge.lambda_grid``) on a random
    ``val_fraction`` of the training set. The held-out part only needs its own G_val, B_val: the training
    part is G − G_val, B − B_val (no second pass). The final W uses all images with the chosen λ.
    ``feature_map``: a name in ``feature_maps.FEATURE_MAPS``, a ``FeatureMap`` or a spec (None:
    ``random_network``), drawn from ``generator`` when given by name.
    """
    if not isinstance(train_set, ImageSet):
        raise TypeError(f"train_set must be a data.ImageSet, got {type(train_set).__name__}")
    if lam is None and not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction!r}")
    if lam is not None and not lam >= 0:
        raise ValueError(f"lam (ridge λ) must be >= 0, got {lam!r}")
    t0 = time.perf_counter()
    fmap_seed = derive_seed(generator)  # drawn first, whatever ``model`` is, so streams do not shift
    fmap = feature_maps.resolve(feature_map, train_set.images[0].numel(), fmap_seed, DEFAULT_FEATURE_MAP)
    n, k = len(train_set), train_set.num_classes
    G, B = ridge.sufficient_statistics(train_set.images, train_set.labels, k, fmap, chunk=chunk)
    t1 = time.perf_counter()
    search = None
    if lam is None:
        n_val = max(1, round(n * val_fraction))
        val = torch.randperm(n, generator=generator, device=generator.device)[:n_val].to(train_set.device)
        F_val, y_val = fmap(train_set.images[val], torch.float64), train_set.labels[val]
        B_val = ridge.one_hot(y_val, k) @ F_val
        grid = ridge.lambda_grid(fmap.name) if lambdas is None else lambdas
        search = ridge.select_lambda(G - F_val.T @ F_val, B - B_val, F_val, y_val, grid)
        lam = search.best
    t2 = time.perf_counter()
    with ridge.single_thread():
        W = ridge.ridge_solve(G, B, lam)
    t3 = synchronized_time(W.device)
    return FullModel(
        fmap,
        W,
        float(lam),
        search,
        train_set.name,
        n,
        {"features_and_gram": t1 - t0, "select_lambda": t2 - t1, "solve": t3 - t2, "total": t3 - t0},
    )


@dataclass
class ClosedForm:
    """One closed-form distilled set and its diagnostics (all float64)."""

    images: torch.Tensor  # m×C×H×W recovered X_S
    labels: torch.Tensor  # m class indices
    Y_S: torch.Tensor  # k×m one-hot label matrix
    D: torch.Tensor  # m×p, Y_S D = W
    target_features: torch.Tensor  # m×p, φ_Sᵀ built from D
    W_S: torch.Tensor  # k×p, the model trained on (images, Y_S) with lam_s
    lam_s: float
    rel_error: float  # ‖W_S − W‖ / ‖W‖
    recovery_residual: float  # ‖φ(X_S) − φ_S‖ / ‖φ_S‖ (0 up to round-off for a surjective map)
    out_of_range: float  # fraction of φ_S entries with no pre-image (random Fourier features)
    lam_s_bound: float  # 1/(4 s_max²) for this D
    seconds: float


def construct(
    full: FullModel,
    labels: torch.Tensor,
    *,
    init_images: torch.Tensor | None = None,
    lam_s: float = 0.0,
    allow_inexact: bool = False,
    image_shape: tuple[int, ...] | None = None,
) -> ClosedForm:
    """Distilled images for ``labels`` that reproduce ``full.W`` (steps 3-5 of the module docstring).

    ``init_images`` (m×…): X_0 with D_0 = φ(X_0)⁺ (Z = D_0); None: Z = 0. ``lam_s``: λ_S of the distilled
    model (ValueError above 1/(4 s_max²)). ``allow_inexact``: return the least-squares D when no exact one
    exists (m < k). ``image_shape``: C×H×W of the result (default: ``init_images``' or flat).
    """
    with ridge.single_thread():  # m×p work only: see ``ridge.single_thread``
        return _construct(full, labels, init_images, lam_s, allow_inexact, image_shape)


def _construct(full, labels, init_images, lam_s, allow_inexact, image_shape) -> ClosedForm:
    t0 = time.perf_counter()
    W, fmap = full.W, full.feature_map
    labels = labels.to(W.device)
    Y_S = ridge.one_hot(labels, full.num_classes)
    D0 = None
    if init_images is not None:
        if len(init_images) != len(labels):
            raise ValueError(f"init_images holds {len(init_images)} images for {len(labels)} labels")
        image_shape = image_shape or tuple(init_images.shape[1:])
        D0 = torch.linalg.pinv(fmap(init_images.to(W.device), torch.float64).T)  # φ(X_0)⁺, m×p
    D = ridge.support_directions(W, Y_S, D0, allow_inexact=allow_inexact)
    bound = ridge.lambda_s_bound(D)
    F_S = ridge.support_features(D, lam_s)
    X = fmap.inverse(F_S)
    F_rec = fmap(X)
    W_S = ridge.support_model(F_rec, Y_S, lam_s)
    images = X.view(len(X), *image_shape) if image_shape else X
    return ClosedForm(
        images,
        labels,
        Y_S,
        D,
        F_S,
        W_S,
        float(lam_s),
        ridge.relative_error(W_S, W),
        ridge.relative_error(F_rec, F_S),
        fmap.out_of_range(F_S),
        bound,
        time.perf_counter() - t0,
    )


def _check_same_map(feature_map, fmap: feature_maps.FeatureMap) -> None:
    """``feature_map`` (if given) must name or be the map ``fmap`` that a reused full model was fitted with."""
    if feature_map is None or feature_map is fmap:
        return
    same = (
        feature_maps.canonical_name(feature_map) == fmap.name
        if isinstance(feature_map, str)
        else isinstance(feature_map, feature_maps.FeatureMap) and feature_map.spec == fmap.spec
    )
    if not same:
        raise ValueError(f"feature_map={feature_map!r} differs from full_model's feature map {fmap!r}")


@dataclass(frozen=True)
class Config:
    """Hyperparameters of the closed form."""

    init: str = "real"  # X_0 for ipc > 1: real | noise (ipc = 1 has one solution)
    lam_s: float = 0.0  # λ_S of the distilled model (<= 1/(4 s_max²), known once D is)
    val_fraction: float = 0.05  # share of the training set that chooses λ
    lambdas: tuple | None = None  # the λ grid (None: ridge.lambda_grid)
    lam: float | None = None  # a fixed λ instead of the search

    def __post_init__(self) -> None:
        validate.choice("init", self.init, INITS)
        validate.positive_number("lam_s", self.lam_s, allow_zero=True)
        validate.number_in("val_fraction", self.val_fraction, 0, 1)
        if self.lam is not None:
            validate.positive_number("lam", self.lam, allow_zero=True)
        if self.lambdas is not None:
            object.__setattr__(self, "lambdas", tuple(float(x) for x in self.lambdas))


def distill(
    train_set: ImageSet, ipc: int, *, generator: Generator, feature_map=None, callback=None, full_model=None, **hparams
):
    """``ipc`` images per class whose ridge model equals the full-data one:  W_S = Y_S (φ_Sᵀφ_S + λ_S I)⁻¹φ_Sᵀ = W.

    D = Y_S⁺W + (I − Y_S⁺Y_S) φ(X_0)⁺,  φ_S from D (φ_S = D⁺ when λ_S = 0),  X_S = φ⁻¹(φ_S).
    ``feature_map``: name, ``FeatureMap`` or spec (None: ``random_network``). ``full_model``: a ``fit_full_model``
    result to reuse (its feature map is used; skips the pass over the data). ``hparams``: the fields of ``Config``.
    Returns float32 images in the dataset's normalisation, class indices as labels, and in ``meta`` the feature
    map's spec (the model the set was distilled for), λ, λ_S and the relative error ‖W_S − W‖/‖W‖ (float64), which
    is also the step's loss.
    """
    config = parse("krr_closed_form", Config, hparams)
    check_ipc(ipc, train_set)
    if full_model is None:
        full_model = fit_full_model(
            train_set,
            feature_map,
            generator=generator,
            val_fraction=config.val_fraction,
            lambdas=None if config.lambdas is None else torch.tensor(config.lambdas, dtype=torch.float64),
            lam=config.lam,
        )
    else:
        _check_same_map(feature_map, full_model.feature_map)
        if full_model.num_classes != train_set.num_classes or full_model.dataset != train_set.name:
            raise ValueError(
                f"full_model was fitted on {full_model.dataset} ({full_model.num_classes} classes), "
                f"not on {train_set.name} ({train_set.num_classes} classes)"
            )

    def compute() -> SyntheticSet:
        k = train_set.num_classes
        labels = class_labels(k, ipc, train_set.device)
        X0 = initial_images(train_set, ipc, config.init, generator) if ipc > 1 else None
        cf = construct(
            full_model, labels, init_images=X0, lam_s=config.lam_s, image_shape=tuple(train_set.images.shape[1:])
        )
        meta = {
            "lam": full_model.lam,
            "rel_error": cf.rel_error,
            "recovery_residual": cf.recovery_residual,
            "out_of_range": cf.out_of_range,
            "timing": {"full_model": full_model.seconds.get("total"), "closed_form": cf.seconds},
        }
        return SyntheticSet(cf.images.float().to(train_set.device), labels, None, meta)

    return loop.one_shot(
        "krr_closed_form",
        compute,
        train_set,
        ipc,
        config,
        {"feature_map": full_model.feature_map.spec},
        callback,
        loss=lambda syn: syn.meta["rel_error"],
    )


def for_display(images: torch.Tensor, clip: float = 0.01) -> torch.Tensor:
    """Each image stretched linearly to [0, 1] between its own ``clip`` and ``1 − clip`` quantiles (clamped), for plots.

    Closed-form images can lie far outside the data's range (a pseudo-inverse has no reason to keep a photo's scale)
    and a few extreme pixels would wash the rest out; show the result with ``mean=(0,), std=(1,)``.
    """
    if not 0 <= clip < 0.5:
        raise ValueError(f"clip must lie in [0, 0.5), got {clip!r}")
    flat = images.detach().flatten(1).float().cpu()
    q = torch.quantile(flat, torch.tensor([clip, 1 - clip]), dim=1, keepdim=True)  # 2×N×1
    lo, hi = q[0], q[1]
    return ((flat - lo) / (hi - lo).clamp(min=1e-12)).clamp(0, 1).view(images.shape)


def prepare(p: Preparation) -> tuple[dict, None]:
    """Notebook 08: the full-data ridge fit of ``settings["feature_map"]``, reused by every IPC."""
    full = fit_full_model(p.train, p.settings["feature_map"], generator=p.generator)
    return {"full_model": full, "feature_map": full.feature_map}, None


TINY = Tiny({"lam": 1.0})

BUDGETS = by_profile({}, {})

PREPARE = by_profile({"feature_map": "random_network"}, {"feature_map": "random_network"})

METHOD = MethodInfo(
    "krr_closed_form", "closed form", "01", "feature_map", "dc", TINY, BUDGETS, DEFAULT_FEATURE_MAP, prepare, PREPARE
)
