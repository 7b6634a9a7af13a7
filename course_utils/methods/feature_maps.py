"""Feature maps φ: R^d → R^p for (kernel) ridge regression that can be *inverted*, so a distilled set
found in feature space can be turned back into images.

The kernel of a feature map is K(x, x') = φ(x)·φ(x'); kernel ridge regression with it is linear ridge
regression on φ(x). Chen, Huang & Weng (NeurIPS 2024) distil in feature space (they solve for φ_S) and
need a **surjective** φ to find images X_S with φ(X_S) = φ_S. The three maps here all have p = d:

``identity``        φ(x) = x.                                   Linear ridge regression (LRR); X_S = φ_S.
``random_fourier``  φ(x) = √(2/p) cos(A x + b),  A_ij ~ N(0, s²), b_i ~ U[0, π].
                    E φ(x)·φ(x') ≈ exp(−s²‖x − x'‖²/2) (Rahimi & Recht's random Fourier features; b ~ U[0, π]
                    suffices because cos(u + 2b) still averages to 0). With A square and invertible, φ maps
                    R^d ONTO the cube [−√(2/p), √(2/p)]^p:  x = A⁻¹(arccos(√(p/2)·f) − b).
                    A target f outside the cube has no pre-image: its entries are clipped to the cube, the
                    recovered x is the pre-image of the clipped f, and φ(x) ≠ f there (``inverse`` reports it).
``random_network``  φ(x) = LeakyReLU_α(A x),  A_ij ~ N(0, 1/d), α = 0.1, no bias: a frozen random
                    one-hidden-layer network whose hidden layer is the feature (an NNGP-style kernel).
                    LeakyReLU is a bijection of R and A is square and (almost surely) invertible, so φ is a
                    bijection of R^d:  x = A⁻¹ LeakyReLU_α⁻¹(f),  LeakyReLU_α⁻¹(z) = z if z ≥ 0 else z / α.

Shapes: the course keeps samples in rows, so ``fmap(x)`` maps N×… images to an N×p matrix, which is
φ(X)ᵀ in the paper's notation (φ(X) ∈ R^{p×n}, one column per sample). Parameters are drawn once, in
float64, from ``torch.Generator().manual_seed(seed)``; ``spec`` (name, dimension, seed, options) rebuilds
the same map with :func:`from_spec`, so a saved distilled set names the model it was distilled for.
Random matrices are cached per (dtype, device), and the LU factors used by ``inverse`` are computed once.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch

FEATURE_MAPS: tuple[str, ...] = ("identity", "random_fourier", "random_network")
_ALIASES = {
    "identity": "identity",
    "linear": "identity",
    "lrr": "identity",
    "random_fourier": "random_fourier",
    "rff": "random_fourier",
    "random_network": "random_network",
    "fcnn": "random_network",
    "network": "random_network",
}


class FeatureMap:
    """Base class: ``fmap(x, dtype=None)`` -> N×p features; ``fmap.inverse(f)`` -> N×d pre-images."""

    name = "base"

    def __init__(self, dim: int, seed: int = 0, **options: Any):
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            raise ValueError(f"dim (input dimension d) must be an integer >= 1, got {dim!r}")
        self.in_dim = self.out_dim = dim
        self.seed = int(seed)
        self.options = dict(options)
        self._cache: dict[tuple, torch.Tensor] = {}

    # ---- what every map provides
    @property
    def spec(self) -> dict:
        """Everything needed to rebuild this map (see :func:`from_spec`)."""
        return {"name": self.name, "dim": self.in_dim, "seed": self.seed, **self.options}

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v}" for k, v in self.options.items())
        return f"{type(self).__name__}(dim={self.in_dim}, seed={self.seed}{opts})"

    def __call__(self, x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """φ of every row of ``x`` (N×… flattened to N×d), computed in ``dtype`` (default: x's)."""
        x = x.flatten(1)
        if x.shape[1] != self.in_dim:
            raise ValueError(
                f"{self.name} feature map expects inputs with {self.in_dim} values, "
                f"got {x.shape[1]} (shape {tuple(x.shape)})"
            )
        return self._forward(x.to(dtype or x.dtype))

    def inverse(self, features: torch.Tensor) -> torch.Tensor:
        """Pre-images X (N×d) with φ(X) = features (N×p) when one exists; see each map's docstring."""
        if features.ndim != 2 or features.shape[1] != self.out_dim:
            raise ValueError(f"{self.name}.inverse expects N×{self.out_dim} features, got {tuple(features.shape)}")
        return self._inverse(features)

    def out_of_range(self, features: torch.Tensor) -> float:
        """Fraction of the entries of ``features`` that have no pre-image (0 for a surjective map)."""
        return 0.0

    # ---- helpers
    def _tensor(self, key: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """Parameter ``key`` (drawn once in float64 on the CPU) as ``dtype`` on ``device``, cached."""
        ck = (key, dtype, device)
        if ck not in self._cache:
            self._cache[ck] = self._cache[(key, torch.float64, torch.device("cpu"))].to(device, dtype)
        return self._cache[ck]

    def _lu(self, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """LU factors of the square matrix A (computed once per dtype/device)."""
        ck = ("lu", dtype, device)
        if ck not in self._cache:
            self._cache[ck] = torch.linalg.lu_factor(self._tensor("A", dtype, device))
        return self._cache[ck]

    def _solve_A(self, z: torch.Tensor) -> torch.Tensor:
        """Rows x with A x = z for every row z (one LU factorisation, reused)."""
        lu, piv = self._lu(z.dtype, z.device)
        return torch.linalg.lu_solve(lu, piv, z.T).T

    def _forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _inverse(self, f: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class Identity(FeatureMap):
    """φ(x) = x: linear ridge regression on the (normalised) pixels; the inverse is φ itself."""

    name = "identity"

    def _forward(self, x):
        return x

    def _inverse(self, f):
        return f.clone()


class RandomFourier(FeatureMap):
    """φ(x) = √(2/p) cos(A x + b), A_ij ~ N(0, scale²), b_i ~ U[0, π], p = d (see the module docstring).

    ``scale`` is the standard deviation of A's entries (kernel bandwidth 1/scale); the default
    1/√1000 is the reference implementation's choice.
    """

    name = "random_fourier"

    def __init__(self, dim: int, seed: int = 0, scale: float = 1000**-0.5):
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale!r}")
        super().__init__(dim, seed, scale=float(scale))
        g = torch.Generator().manual_seed(self.seed)
        cpu = torch.device("cpu")
        self._cache[("A", torch.float64, cpu)] = torch.randn(dim, dim, generator=g, dtype=torch.float64) * scale
        self._cache[("b", torch.float64, cpu)] = torch.rand(dim, generator=g, dtype=torch.float64) * math.pi
        self.amplitude = math.sqrt(2.0 / dim)

    def _forward(self, x):
        A, b = self._tensor("A", x.dtype, x.device), self._tensor("b", x.dtype, x.device)
        z = torch.addmm(b, x, A.T)
        z = torch.cos(z) if z.requires_grad else z.cos_()  # cos's backward needs z: in place only without grad
        return z.mul_(self.amplitude)

    def out_of_range(self, features):
        return float((features.abs() > self.amplitude).double().mean())

    def _inverse(self, f):
        """x = A⁻¹(arccos(clip(√(p/2) f, −1, 1)) − b): exact where |f| ≤ √(2/p), the clipped target elsewhere."""
        u = torch.arccos((f / self.amplitude).clamp(-1.0, 1.0))
        return self._solve_A(u - self._tensor("b", f.dtype, f.device))


class RandomNetwork(FeatureMap):
    """φ(x) = LeakyReLU_α(A x), A_ij ~ N(0, 1/d), no bias, p = d (a bijection; see the module docstring)."""

    name = "random_network"

    def __init__(self, dim: int, seed: int = 0, negative_slope: float = 0.1):
        if not 0 < negative_slope < 1:
            raise ValueError(
                f"negative_slope must lie in (0, 1) for LeakyReLU to be invertible, got {negative_slope!r}"
            )
        super().__init__(dim, seed, negative_slope=float(negative_slope))
        g = torch.Generator().manual_seed(self.seed)
        self._cache[("A", torch.float64, torch.device("cpu"))] = torch.randn(
            dim, dim, generator=g, dtype=torch.float64
        ) / math.sqrt(dim)

    def _forward(self, x):
        # In place on the fresh product: autograd supports it for a positive slope, and it saves a pass.
        return torch.nn.functional.leaky_relu(
            x @ self._tensor("A", x.dtype, x.device).T, self.options["negative_slope"], inplace=True
        )

    def _inverse(self, f):
        """x = A⁻¹ LeakyReLU_α⁻¹(f), LeakyReLU_α⁻¹(z) = z (z ≥ 0), z/α (z < 0)."""
        z = torch.where(f >= 0, f, f / self.options["negative_slope"])
        return self._solve_A(z)


_CLASSES = {"identity": Identity, "random_fourier": RandomFourier, "random_network": RandomNetwork}


def canonical_name(name: str) -> str:
    key = str(name).lower().replace("-", "_").replace(" ", "_")
    if key not in _ALIASES:
        raise ValueError(f"unknown feature map {name!r}; valid: {', '.join(FEATURE_MAPS)}")
    return _ALIASES[key]


def make(name: str, dim: int, seed: int = 0, **options: Any) -> FeatureMap:
    """The feature map ``name`` (one of ``FEATURE_MAPS``) on ``dim``-dimensional inputs, drawn from ``seed``."""
    cls = _CLASSES[canonical_name(name)]
    try:
        return cls(dim, seed, **options)
    except TypeError:
        import inspect

        valid = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "dim", "seed")]
        raise TypeError(f"{cls.name} feature map takes options {valid or 'none'}, got {sorted(options)}") from None


def from_spec(spec: Mapping[str, Any]) -> FeatureMap:
    """Rebuild a map from its ``spec`` (e.g. the one stored in a distilled set's ``meta['feature_map']``)."""
    spec = dict(spec)
    return make(spec.pop("name"), spec.pop("dim"), spec.pop("seed", 0), **spec)


def resolve(
    model: str | FeatureMap | Mapping | None, dim: int, seed: int, default: str = "random_network"
) -> FeatureMap:
    """A ``FeatureMap`` from what a method's ``model`` argument holds: a map, a spec, a name, or None (``default``)."""
    if isinstance(model, FeatureMap):
        if model.in_dim != dim:
            raise ValueError(f"feature map {model!r} expects {model.in_dim} inputs but the images have {dim} values")
        return model
    if isinstance(model, Mapping):
        return from_spec(model)
    if model is None or isinstance(model, str):
        return make(default if model is None else model, dim, seed)
    raise TypeError(
        f"model must be a feature-map name ({', '.join(FEATURE_MAPS)}), a FeatureMap or a spec, "
        f"got {type(model).__name__}"
    )
