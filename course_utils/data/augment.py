"""Differentiable Siamese Augmentation (DSA; Zhao & Bilen, ICML 2021), driven by an explicit generator.

DSA augments images with transformations that are differentiable with respect to the *pixels*, so a
loss computed on augmented synthetic images can be back-propagated to the synthetic images. "Siamese"
means that the real batch and the synthetic batch of one matching step receive the *same* sampled
transformation, so that the two are compared under the same view.

Design of this module
---------------------
* Sampling and applying are separate. :meth:`DSA.sample` draws an :class:`AugSample` (which op(s),
  and their parameters) from an explicit ``torch.Generator``; :meth:`DSA.apply` applies it. Torch's
  global RNG is never read or reseeded (the reference code reseeds it on every call).
* ``sample(1, g)`` gives one parameter set that :meth:`DSA.apply` broadcasts to any batch: this is
  the siamese use (:meth:`DSA.siamese`). ``sample(len(x), g)`` gives per-image parameters
  (:meth:`DSA.__call__`, used by the evaluation protocol).
* Everything is vectorised over the batch. Scale and rotate do **not** use ``F.affine_grid`` /
  ``F.grid_sample`` (whose CUDA backward has no deterministic kernel): :func:`affine_warp` builds the
  sampling grid itself and samples bilinearly with ``gather`` (backward: ``scatter_add``, which is
  deterministic under ``torch.use_deterministic_algorithms(True)``). It reproduces
  ``F.grid_sample(x, F.affine_grid(theta, x.shape, align_corners=True), mode="bilinear",
  padding_mode="zeros", align_corners=True)``, the reference convention.

Operations (``x`` has shape ``(N, C, H, W)``; ``U(a, b)`` is uniform; all fills are zero)
-----------------------------------------------------------------------------------------
``color``   the three colour ops below, in this order (computed in one fused closed form):
            brightness  ``x + (b - 0.5) * brightness``,            ``b ~ U(0, 1)``  (shift in ±0.5)
            saturation  ``m + (x - m) * (s * saturation)``,         ``s ~ U(0, 1)``, ``m`` = per-pixel
                        mean over channels (identity on 1-channel images)
            contrast    ``m + (x - m) * (c + contrast)``,           ``c ~ U(0, 1)``, ``m`` = per-image
                        mean over C, H, W  (factor in [0.5, 1.5) with contrast=0.5)
``crop``    translation ("pad and crop"): ``out[i, j] = x[i + tx, j + ty]``, zero outside, with integer
            shifts ``tx, ty`` uniform in ``{-s, ..., s}``, ``s = int(side * crop + 0.5)`` (4 px for 28 and 32)
``cutout``  zero a square of side ``k = int(side * cutout + 0.5)`` whose rows are
            ``[cx - k//2, cx - k//2 + k)`` (same for columns), clipped to the image, with the centre
            ``cx`` uniform in ``{0, ..., side - k % 2}``
``flip``    horizontal flip (last axis) with probability ``flip_p``
``scale``   affine warp with matrix ``[[sx, 0, 0], [0, sy, 0]]`` in normalised coordinates,
            ``sx, sy ~ U(1/scale, scale)`` independently
``rotate``  affine warp with ``[[cos a, -sin a, 0], [sin a, cos a, 0]]``, ``a ~ U(-rotate, rotate)`` degrees

Integer parameters (shifts, cutout centres) are stored in the sample as uniform variates in [0, 1)
and turned into integers in :meth:`DSA.apply`, once the image side is known (``floor(u * K)`` is
uniform on ``{0, ..., K-1}``); a sample therefore applies to any image size.

Modes: ``"single"`` (the reference's ``aug_mode='S'``) picks ONE op of the strategy per call, for
the whole batch (``color`` counts as one op and applies its three parts); ``"all"`` applies every
op of the strategy, in the order written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Mapping, Optional, Sequence

import torch
from torch import Tensor

__all__ = [
    "DCAugment",
    "DC_OPS",
    "DSAParams",
    "AugSample",
    "DSA",
    "DSAFields",
    "OPS",
    "MODES",
    "STRATEGIES",
    "USER_DATASET_STRATEGY",
    "strategy_for",
    "parse_strategy",
    "affine_warp",
]

#: The ops a strategy string may name, in the reference's vocabulary.
OPS: tuple[str, ...] = ("color", "crop", "cutout", "flip", "scale", "rotate")
#: ``"single"``: one randomly chosen op per call (reference ``aug_mode='S'``); ``"all"``: every op in turn.
MODES: tuple[str, ...] = ("single", "all")
#: Strategy strings that switch augmentation off.
_IDENTITY = ("", "none")

#: DSA strategy per dataset (reference: no flip on MNIST, where flipping changes digit meaning).
STRATEGIES: dict[str, str] = {
    "mnist": "color_crop_cutout_scale_rotate",
    "fashion_mnist": "color_crop_cutout_flip_scale_rotate",
    "cifar10": "color_crop_cutout_flip_scale_rotate",
    "cifar100": "color_crop_cutout_flip_scale_rotate",
}


def _norm_name(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


#: DSA strategy of a dataset registered from the user's own images (``data.register_dataset``): the natural-image
#: one, flip included. Pass ``strategy=`` to a method where flipping changes the meaning (digits, text).
USER_DATASET_STRATEGY = "color_crop_cutout_flip_scale_rotate"


def strategy_for(dataset_name: str) -> str:
    """The DSA strategy string for a dataset (``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``, ``"cifar100"``).

    Case, ``-`` and ``_`` are ignored (``"CIFAR-10"``, ``"FashionMNIST"`` work). A dataset registered with
    ``data.register_dataset`` (your own images) gets ``USER_DATASET_STRATEGY``. Unknown -> ValueError.
    """
    if isinstance(dataset_name, str):
        key = _norm_name(dataset_name)
        for name, strategy in STRATEGIES.items():
            if _norm_name(name) == key:
                return strategy
        # Imported here: data is heavy (torchvision) and augment is otherwise free of package imports.
        from . import datasets as data

        if key and key in {_norm_name(name) for name in data.registered_datasets()}:
            return USER_DATASET_STRATEGY
    raise ValueError(f"no DSA strategy for dataset {dataset_name!r}; valid datasets: {sorted(STRATEGIES)}")


def parse_strategy(strategy: str) -> tuple[str, ...]:
    """Split a ``'_'``-joined strategy into ops; ``""``/``"none"`` -> ``()``. Unknown op -> ValueError."""
    if not isinstance(strategy, str):
        raise ValueError(f"strategy must be a string of '_'-joined ops from {list(OPS)}, got {strategy!r}")
    if strategy.strip().lower() in _IDENTITY:
        return ()
    ops = tuple(strategy.split("_"))
    for op in ops:
        if op not in OPS:
            raise ValueError(
                f"unknown DSA op {op!r} in strategy {strategy!r}; valid ops: {list(OPS)} "
                f"(or 'none' for no augmentation)"
            )
    return ops


@dataclass(frozen=True)
class DSAParams:
    """Strength of each op; defaults are the reference's ``ParamDiffAug`` values (see module docstring).

    flip_p      probability of a horizontal flip
    scale       sx, sy ~ U(1/scale, scale)
    rotate      angle ~ U(-rotate, rotate), degrees
    crop        maximal shift as a fraction of the side (pad-and-crop, zero fill)
    cutout      side of the zeroed square as a fraction of the side
    brightness  x + (U(0,1) - 0.5) * brightness
    saturation  deviation from the channel mean scaled by U(0,1) * saturation
    contrast    deviation from the image mean scaled by U(0,1) + contrast
    """

    flip_p: float = 0.5
    scale: float = 1.2
    rotate: float = 15.0
    crop: float = 0.125
    cutout: float = 0.5
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
                raise ValueError(f"DSAParams.{f.name} must be a finite number >= 0, got {v!r}")
        if self.flip_p > 1:
            raise ValueError(f"DSAParams.flip_p must be in [0, 1], got {self.flip_p!r}")
        if self.scale < 1:
            raise ValueError(
                f"DSAParams.scale must be >= 1 (factors are drawn in [1/scale, scale]), got {self.scale!r}"
            )
        if self.crop >= 1 or self.cutout > 1:
            raise ValueError(
                f"DSAParams.crop must be < 1 and cutout <= 1, got crop={self.crop!r}, cutout={self.cutout!r}"
            )


def to_device_together(tensors: Sequence[Tensor], device: torch.device | str) -> list[Tensor]:
    """Move small tensors (parameters, indices) to ``device`` in ONE host-to-device copy.

    A copy from pageable host memory waits until the GPU has finished the work already queued, so one copy per
    parameter tensor stalls the queue many times per step. The tensors are packed into one float64 buffer (exact for
    float32, bool and integers below 2**53), moved, split and cast back: the values are unchanged.
    """
    device = torch.device(device)
    if all(t.device == device for t in tensors):
        return list(tensors)
    flat = torch.cat([t.detach().reshape(-1).to("cpu", torch.float64) for t in tensors]).to(device)
    out, start = [], 0
    for t in tensors:
        out.append(flat[start : start + t.numel()].view(t.shape).to(t.dtype))
        start += t.numel()
    return out


@dataclass(frozen=True)
class AugSample:
    """One draw of DSA: which op(s) to apply and their parameters for ``n`` images.

    ``n == 1`` broadcasts to any batch (siamese use). Parameters of ops that were not chosen are None.

    ops         the ops to apply, in order (``()`` = identity)
    flip        (n,) bool, flip this image
    scale       (n, 2) float, (sx, sy)
    angle       (n,) float, radians
    crop_u      (n, 2) float in [0, 1): row/column shift variates (-> integer shifts in ``apply``)
    cutout_u    (n, 2) float in [0, 1): row/column centre variates (-> integer centres in ``apply``)
    brightness  (n,) float, the additive shift ``(b - 0.5) * params.brightness``
    saturation  (n,) float, multiplicative factor of the deviation from the channel mean
    contrast    (n,) float, multiplicative factor of the deviation from the image mean
    """

    n: int
    ops: tuple[str, ...]
    flip: Optional[Tensor] = None
    scale: Optional[Tensor] = None
    angle: Optional[Tensor] = None
    crop_u: Optional[Tensor] = None
    cutout_u: Optional[Tensor] = None
    brightness: Optional[Tensor] = None
    saturation: Optional[Tensor] = None
    contrast: Optional[Tensor] = None

    _TENSORS = ("flip", "scale", "angle", "crop_u", "cutout_u", "brightness", "saturation", "contrast")

    def to(self, device: torch.device | str) -> "AugSample":
        """The same sample with every tensor on ``device`` (moved in one copy, see ``to_device_together``)."""
        keys = [k for k in self._TENSORS if getattr(self, k) is not None]
        return replace(self, **dict(zip(keys, to_device_together([getattr(self, k) for k in keys], device))))

    def __len__(self) -> int:
        return self.n


# ----------------------------------------------------------------------------------------------
# Warping: gather-based bilinear sampling (deterministic forward and backward on CPU and CUDA)
# ----------------------------------------------------------------------------------------------


def _coord_dtype(x: Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def affine_warp(x: Tensor, theta: Tensor) -> Tensor:
    """Bilinear affine warp of ``x`` (N, C, H, W) by ``theta`` (N or 1, 2, 3), zero padding.

    Same result as ``F.grid_sample(x, F.affine_grid(theta, x.shape, align_corners=True),
    mode="bilinear", padding_mode="zeros", align_corners=True)`` but built from ``gather`` only, so
    that forward and backward are deterministic on CUDA too. Differentiable w.r.t. ``x`` (not theta).
    A ``theta`` of batch size 1 is shared by all images.
    """
    if x.dim() != 4:
        raise ValueError(f"affine_warp expects x of shape (N, C, H, W), got {tuple(x.shape)}")
    N, C, H, W = x.shape
    if theta.dim() != 3 or theta.shape[1:] != (2, 3) or theta.shape[0] not in (1, N):
        raise ValueError(f"theta must have shape (1 or {N}, 2, 3), got {tuple(theta.shape)}")
    cdt = _coord_dtype(x)
    theta = theta.detach().to(device=x.device, dtype=cdt)
    # Normalised output coordinates, exactly as affine_grid(align_corners=True) builds them.
    xs = (
        torch.linspace(-1.0, 1.0, W, device=x.device, dtype=cdt)
        if W > 1
        else torch.zeros(1, device=x.device, dtype=cdt)
    )
    ys = (
        torch.linspace(-1.0, 1.0, H, device=x.device, dtype=cdt)
        if H > 1
        else torch.zeros(1, device=x.device, dtype=cdt)
    )
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    gx = gx.reshape(1, H * W)
    gy = gy.reshape(1, H * W)
    t = theta.unsqueeze(-1)  # (B, 2, 3, 1)
    # Source coordinates, elementwise (not matmul: TF32 matmul settings must not change the warp).
    sx = t[:, 0, 0] * gx + t[:, 0, 1] * gy + t[:, 0, 2]  # (B, HW)
    sy = t[:, 1, 0] * gx + t[:, 1, 1] * gy + t[:, 1, 2]
    # Unnormalise (align_corners=True): -1 -> 0, +1 -> size - 1.
    ix = (sx + 1) / 2 * (W - 1)
    iy = (sy + 1) / 2 * (H - 1)
    return _bilinear_gather(x, ix, iy)


def _gather_pixels(x: Tensor, idx: Tensor) -> Tensor:
    """``out[n, c, k] = x.view(N, C, H*W)[n, c, idx[n or 0, k]]`` for ``idx`` (B, K), B in {1, N}.

    Implemented as ONE gather on the flattened (1-D) tensor: torch documents 1-D ``gather`` (whose
    backward is a 1-D ``scatter_add_``) as deterministic on CUDA under ``use_deterministic_algorithms``
    since 1.11 (recent releases: any dimension), so this holds on every supported torch.
    """
    N, C, H, W = x.shape
    K = idx.shape[-1]
    offsets = torch.arange(N * C, device=x.device).view(N, C, 1) * (H * W)  # (N, C, 1)
    flat_idx = (offsets + idx.view(-1, 1, K)).reshape(-1)  # (N*C*K,)
    return x.reshape(-1).gather(0, flat_idx).view(N, C, K)


def _bilinear_gather(x: Tensor, ix: Tensor, iy: Tensor) -> Tensor:
    """Sample ``x`` (N, C, H, W) at pixel coordinates ``ix, iy`` (B, H*W), B in {1, N}; zeros outside."""
    N, C, H, W = x.shape
    B, P = ix.shape
    x0 = torch.floor(ix)
    y0 = torch.floor(iy)
    x1 = x0 + 1
    y1 = y0 + 1
    # Weights written as grid_sample writes them (same rounding): e.g. nw = (x1 - ix) * (y1 - iy).
    wx0, wx1 = x1 - ix, ix - x0
    wy0, wy1 = y1 - iy, iy - y0
    x0 = x0.long()
    y0 = y0.long()
    idxs, ws = [], []
    for dy, dx, w in ((0, 0, wx0 * wy0), (0, 1, wx1 * wy0), (1, 0, wx0 * wy1), (1, 1, wx1 * wy1)):
        xi = x0 + dx
        yi = y0 + dy
        valid = (xi >= 0) & (xi < W) & (yi >= 0) & (yi < H)
        idxs.append(yi.clamp(0, H - 1) * W + xi.clamp(0, W - 1))  # (B, P)
        ws.append(w * valid)  # zero padding outside
    vals = _gather_pixels(x, torch.cat(idxs, 1)).view(N, C, 4, P)  # one gather, 4 neighbours
    w = torch.stack(ws, 1).to(x.dtype).unsqueeze(1)  # (B, 1, 4, P)
    return (vals * w).sum(2).view(N, C, H, W)


def _translate(x: Tensor, tx: Tensor, ty: Tensor) -> Tensor:
    """``out[n, :, i, j] = x[n, :, i + tx[n], j + ty[n]]`` (zero outside); tx, ty integer (B,), B in {1, N}."""
    N, C, H, W = x.shape
    rows = torch.arange(H, device=x.device).view(1, H, 1) + tx.view(-1, 1, 1)  # (B, H, 1)
    cols = torch.arange(W, device=x.device).view(1, 1, W) + ty.view(-1, 1, 1)  # (B, 1, W)
    valid = (rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)  # (B, H, W)
    idx = (rows.clamp(0, H - 1) * W + cols.clamp(0, W - 1)).reshape(-1, H * W)
    vals = _gather_pixels(x, idx)
    return vals.view(N, C, H, W) * valid.unsqueeze(1).to(x.dtype)


def _uniform_int(u: Tensor, k: int) -> Tensor:
    """Map variates in [0, 1) to integers uniform on {0, ..., k-1}."""
    return torch.floor(u.double() * k).long().clamp_(0, k - 1)


# ----------------------------------------------------------------------------------------------
# DSA
# ----------------------------------------------------------------------------------------------


class DSA:
    """Differentiable siamese augmentation for a strategy such as ``"color_crop_cutout_flip_scale_rotate"``.

    Example::

        g = torch.Generator().manual_seed(0)
        dsa = DSA(strategy_for("cifar10"))
        real_aug, syn_aug = dsa.siamese([real, syn], g)      # same transform for both batches
        x_aug = dsa(x, g)                                    # per-image parameters (evaluation)

    ``DSA("none")`` / ``DSA("")`` is the identity (returns its input, draws nothing).
    """

    def __init__(self, strategy: str, params: DSAParams = DSAParams(), mode: str = "single"):
        if not isinstance(params, DSAParams):
            raise ValueError(f"params must be a DSAParams, got {type(params).__name__}")
        if mode not in MODES:
            raise ValueError(f"unknown DSA mode {mode!r}; valid modes: {list(MODES)}")
        self.ops = parse_strategy(strategy)
        self.strategy = "_".join(self.ops) if self.ops else "none"
        self.params = params
        self.mode = mode

    def __repr__(self) -> str:
        return f"DSA(strategy={self.strategy!r}, mode={self.mode!r}, params={self.params!r})"

    @property
    def is_identity(self) -> bool:
        return not self.ops

    # -- sampling ------------------------------------------------------------------------------
    def sample(self, n: int, generator: torch.Generator, device: torch.device | str | None = None) -> AugSample:
        """Draw the op choice and per-image parameters for ``n`` images from ``generator``.

        Random numbers are drawn on the generator's device, then moved to ``device`` (if given).
        Use ``n=1`` for siamese use (one parameter set broadcast to every batch).
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        if not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        if not self.ops:
            return AugSample(n=n, ops=())
        gdev = generator.device
        p = self.params

        def rand(*shape: int) -> Tensor:
            return torch.rand(*shape, generator=generator, device=gdev, dtype=torch.float32)

        if self.mode == "single" and len(self.ops) > 1:
            k = int(torch.randint(len(self.ops), (1,), generator=generator, device=gdev).item())
            ops: tuple[str, ...] = (self.ops[k],)
        else:
            ops = self.ops
        draws: dict[str, Tensor] = {}
        for op in dict.fromkeys(ops):  # unique, in order (a repeated op reuses its parameters)
            if op == "color":
                draws["brightness"] = (rand(n) - 0.5) * p.brightness
                draws["saturation"] = rand(n) * p.saturation
                draws["contrast"] = rand(n) + p.contrast
            elif op == "crop":
                draws["crop_u"] = rand(n, 2)
            elif op == "cutout":
                draws["cutout_u"] = rand(n, 2)
            elif op == "flip":
                draws["flip"] = rand(n) < p.flip_p
            elif op == "scale":
                draws["scale"] = rand(n, 2) * (p.scale - 1.0 / p.scale) + 1.0 / p.scale
            elif op == "rotate":
                draws["angle"] = (rand(n) - 0.5) * 2.0 * (p.rotate / 180.0 * math.pi)
        s = AugSample(n=n, ops=ops, **draws)
        return s.to(device) if device is not None else s

    # -- applying ------------------------------------------------------------------------------
    def apply(self, x: Tensor, sample: AugSample) -> Tensor:
        """Apply ``sample`` to ``x`` (N, C, H, W); a sample of size 1 broadcasts, else its size must be N."""
        if not sample.ops:
            return x
        if not isinstance(x, Tensor) or x.dim() != 4:
            raise ValueError(f"DSA expects images of shape (N, C, H, W), got {getattr(x, 'shape', type(x))}")
        if sample.n not in (1, x.shape[0]):
            raise ValueError(
                f"AugSample of size {sample.n} cannot be applied to a batch of {x.shape[0]} images "
                f"(use a sample of size 1 to share one transform, or of size {x.shape[0]})"
            )
        s = sample.to(x.device)
        for op in s.ops:
            x = getattr(self, f"_op_{op}")(x, s)
        return x

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Augment ``x`` with per-image parameters (one op choice per call in mode "single")."""
        if not self.ops:
            return x
        return self.apply(x, self.sample(x.shape[0], generator))

    def siamese(self, xs: Sequence[Tensor], generator: torch.Generator) -> list[Tensor]:
        """Apply ONE sampled transform (``sample(1)``) to every tensor in ``xs`` (e.g. real and synthetic)."""
        xs = list(xs)
        if not self.ops:
            return xs
        s = self.sample(1, generator)
        return [self.apply(x, s) for x in xs]

    # -- the ops (vectorised over the batch; parameters broadcast from size 1 or N) -------------
    @staticmethod
    def _col(t: Tensor, x: Tensor) -> Tensor:
        return t.to(dtype=x.dtype).view(-1, 1, 1, 1)

    def _op_color(self, x: Tensor, s: AugSample) -> Tensor:
        # brightness -> saturation -> contrast, composed in closed form (one pass instead of three):
        #   y1 = x + b;  y2 = m_c + (y1 - m_c(y1)) * s;  y3 = m_a(y2) + (y2 - m_a(y2)) * c
        # with m_c(y1) = m_c(x) + b and m_a(y2) = m_a(x) + b this is
        #   y3 = c*s*x + c*(1-s)*m_c(x) + (1-c)*m_a(x) + b.
        b, sat, con = self._col(s.brightness, x), self._col(s.saturation, x), self._col(s.contrast, x)
        m_c = x.mean(dim=1, keepdim=True)  # per-pixel channel mean (N, 1, H, W)
        m_a = m_c.mean(dim=(2, 3), keepdim=True)  # per-image mean (N, 1, 1, 1)
        return x * (con * sat) + (m_c * (con * (1 - sat)) + (m_a * (1 - con) + b))

    def _op_flip(self, x: Tensor, s: AugSample) -> Tensor:
        return torch.where(s.flip.view(-1, 1, 1, 1), x.flip(3), x)

    def _op_crop(self, x: Tensor, s: AugSample) -> Tensor:
        H, W = x.shape[2], x.shape[3]
        sh, sw = int(H * self.params.crop + 0.5), int(W * self.params.crop + 0.5)
        tx = _uniform_int(s.crop_u[:, 0], 2 * sh + 1) - sh
        ty = _uniform_int(s.crop_u[:, 1], 2 * sw + 1) - sw
        return _translate(x, tx, ty)

    def _op_cutout(self, x: Tensor, s: AugSample) -> Tensor:
        H, W = x.shape[2], x.shape[3]
        kh, kw = int(H * self.params.cutout + 0.5), int(W * self.params.cutout + 0.5)
        if kh == 0 or kw == 0:
            return x
        r0 = (_uniform_int(s.cutout_u[:, 0], H + 1 - kh % 2) - kh // 2).view(-1, 1, 1)  # first hole row
        c0 = (_uniform_int(s.cutout_u[:, 1], W + 1 - kw % 2) - kw // 2).view(-1, 1, 1)
        rows = torch.arange(H, device=x.device).view(1, H, 1)
        cols = torch.arange(W, device=x.device).view(1, 1, W)
        hole = (rows >= r0) & (rows < r0 + kh) & (cols >= c0) & (cols < c0 + kw)  # (B, H, W)
        return x * (~hole).unsqueeze(1).to(x.dtype)

    def _op_scale(self, x: Tensor, s: AugSample) -> Tensor:
        sc = s.scale.to(_coord_dtype(x))
        zero = torch.zeros_like(sc[:, 0])
        theta = torch.stack([torch.stack([sc[:, 0], zero, zero], 1), torch.stack([zero, sc[:, 1], zero], 1)], 1)
        return affine_warp(x, theta)

    def _op_rotate(self, x: Tensor, s: AugSample) -> Tensor:
        a = s.angle.to(_coord_dtype(x))
        c, si, zero = torch.cos(a), torch.sin(a), torch.zeros_like(a)
        theta = torch.stack([torch.stack([c, -si, zero], 1), torch.stack([si, c, zero], 1)], 1)
        return affine_warp(x, theta)

    def siamese_per_class(self, real: Tensor, syn: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Siamese augmentation with one transformation per class, shared by ``real[c]`` and ``syn[c]``.

        ``real`` (K, n, C, H, W) and ``syn`` (K, m, C, H, W), class-major. For every class ``c`` (in order) one
        transformation ``A_ω_c`` is drawn with ``sample(1, generator)`` (in mode "single" its op too) and
        ``real[c] ← A_ω_c(real[c])``, ``syn[c] ← A_ω_c(syn[c])``: a matching loss then compares both under the
        same view. Classes that drew the same op(s) are augmented together in one batched call (at most one call
        per op), with the same values as ``apply`` class by class.
        """
        if self.is_identity:
            return real, syn
        k, n, m = real.shape[0], real.shape[1], syn.shape[1]
        if real.dim() != 5 or syn.dim() != 5 or syn.shape[0] != k:
            raise ValueError(
                f"expected real (K, n, C, H, W) and synthetic (K, m, C, H, W) batches with the same K, got "
                f"{tuple(real.shape)} and {tuple(syn.shape)}"
            )
        # drawn on the generator's device; every index and parameter then reaches the images' device in one copy
        samples = [self.sample(1, generator) for _ in range(k)]
        groups: dict[tuple[str, ...], list[int]] = {}
        for c, smp in enumerate(samples):
            groups.setdefault(smp.ops, []).append(c)
        order = [c for classes in groups.values() for c in classes]
        group_samples = []
        for ops, classes in groups.items():
            group = [samples[c] for c in classes]
            params = {
                key: torch.cat([a, b])
                for (key, a), b in zip(_per_image(group, n).items(), _per_image(group, m).values())
            }
            group_samples.append(AugSample(n=len(classes) * (n + m), ops=ops, **params))
        order_t = torch.tensor(order)
        host = [order_t, torch.argsort(order_t)]
        for smp in group_samples:
            host += [getattr(smp, key) for key in AugSample._TENSORS if getattr(smp, key) is not None]
        moved = iter(to_device_together(host, real.device))
        perm, inverse = next(moved), next(moved)
        permuted = order != sorted(order)
        if permuted:  # classes that drew the same op(s) become neighbours
            real, syn = real.index_select(0, perm), syn.index_select(0, perm)
        shape_r, shape_s = real.shape[2:], syn.shape[2:]
        pieces_r, pieces_s, start = [], [], 0
        for classes, smp in zip(groups.values(), group_samples):
            keys = [key for key in AugSample._TENSORS if getattr(smp, key) is not None]
            smp = replace(smp, **{key: next(moved) for key in keys})
            stop = start + len(classes)
            xr = real[start:stop].reshape(-1, *shape_r)
            xs = syn[start:stop].reshape(-1, *shape_s)
            out = self.apply(torch.cat([xr, xs]), smp)
            pieces_r.append(out[: len(xr)].view(len(classes), n, *shape_r))
            pieces_s.append(out[len(xr) :].view(len(classes), m, *shape_s))
            start = stop
        real, syn = torch.cat(pieces_r), torch.cat(pieces_s)
        if permuted:
            real, syn = real.index_select(0, inverse), syn.index_select(0, inverse)
        return real, syn


def _per_image(samples: Sequence[AugSample], repeats: int) -> dict[str, Tensor]:
    """Concatenate size-1 samples' parameters, each repeated ``repeats`` times (one per image)."""
    out = {}
    for key in AugSample._TENSORS:
        values = [getattr(smp, key) for smp in samples]
        if values[0] is not None:
            out[key] = torch.cat(values).repeat_interleave(repeats, dim=0)
    return out


# ----------------------------------------------------------------------------------------------
# DSA's hyperparameters in a method's Config (DSA, DM)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DSAFields:
    """The siamese augmentation's hyperparameters, for the ``Config`` of every method that uses it (DSA, DM).

    ``strategy``: ops joined by "_" (``None``: ``strategy_for(dataset)``, filled in by ``resolved``; ``"none"``:
    no augmentation); ``dsa_params``: their magnitudes (``DSAParams()``, the reference's; a dict of its fields is
    accepted); ``dsa_mode``: ``"single"`` (one op per draw, the reference's) or ``"all"``. Mix it in FIRST,
    ``class Config(DSAFields, LoopConfig)``: its ``__post_init__`` runs the next class's, then checks its own fields.
    """

    strategy: str | None = None
    dsa_params: DSAParams = DSAParams()
    dsa_mode: str = "single"

    def __post_init__(self) -> None:
        parent = getattr(super(), "__post_init__", None)
        if parent is not None:
            parent()
        if self.strategy is not None:
            parse_strategy(self.strategy)
        if self.dsa_mode not in MODES:
            raise ValueError(f"dsa_mode={self.dsa_mode!r} is not valid; valid: {', '.join(MODES)}")
        if not isinstance(self.dsa_params, DSAParams):
            if not isinstance(self.dsa_params, Mapping):
                raise ValueError(f"dsa_params must be a DSAParams or a dict of its fields, got {self.dsa_params!r}")
            object.__setattr__(self, "dsa_params", DSAParams(**self.dsa_params))

    def resolved(self, dataset_name: str):
        """This config with ``strategy=None`` replaced by ``strategy_for(dataset_name)`` (so records name it)."""
        return self if self.strategy is not None else replace(self, strategy=strategy_for(dataset_name))

    def augmentation(self) -> DSA | None:
        """The ``DSA`` these fields describe, or ``None`` for no augmentation (call ``resolved`` first)."""
        if self.strategy is None:
            raise ValueError("strategy is None: call resolved(dataset_name) first to use the dataset's strategy")
        dsa = DSA(self.strategy, self.dsa_params, mode=self.dsa_mode)
        return None if dsa.is_identity else dsa


# ----------------------------------------------------------------------------------------------
# The DC paper's evaluation augmentation (not differentiable w.r.t. the pixels' positions; used to train
# evaluation networks only)
# ----------------------------------------------------------------------------------------------

#: The ops of ``DCAugment``; the DC protocol uses "crop_scale_rotate" on MNIST and no augmentation elsewhere.
DC_OPS: tuple[str, ...] = ("crop", "scale", "rotate", "noise")


class DCAugment:
    """Per-image augmentation of the DC paper's evaluation: every image gets ONE op drawn uniformly from the strategy.

    ``x`` (N, C, H, W), ``m_c`` the per-channel mean of the batch, ``U`` uniform:

    ``crop``    pad ``crop`` pixels on every side with ``m_c``, then cut an H×W window at a random offset: a shift
                by integers ``(t_r, t_c)`` uniform on ``{-crop, ..., crop - 1}``, ``m_c`` where the window leaves x
    ``scale``   resize (nearest neighbour) to ``h = ⌊U(1 - scale, 1 + scale)·H⌋`` × ``w = ⌊U(1 - scale, 1 + scale)·H⌋``,
                centre it on a zero canvas and cut the central H×W window
    ``rotate``  rotate about the centre by an integer angle uniform on ``{-rotate, ..., rotate - 1}`` degrees, the
                corners filled with the mean of ``m_c`` (bilinear interpolation; the reference uses a cubic spline)
    ``noise``   add ``noise · N(0, 1)`` per pixel

    All parameters are drawn for every image (from ``generator``, in a fixed order), so the stream does not
    depend on which op each image drew. Vectorised: each op runs once on the whole batch and each image keeps
    the result of its op.
    """

    def __init__(
        self,
        strategy: str = "crop_scale_rotate",
        *,
        crop: int = 4,
        scale: float = 0.2,
        rotate: int = 45,
        noise: float = 0.001,
    ):
        ops = tuple(strategy.split("_")) if strategy not in ("", "none") else ()
        bad = [op for op in ops if op not in DC_OPS]
        if bad:
            raise ValueError(f"unknown DC augmentation op(s) {bad} in {strategy!r}; valid ops: {list(DC_OPS)}")
        if isinstance(crop, bool) or not isinstance(crop, int) or crop < 1:
            raise ValueError(f"crop must be an integer >= 1 (pixels), got {crop!r}")
        if isinstance(rotate, bool) or not isinstance(rotate, int) or rotate < 1:
            raise ValueError(f"rotate must be an integer >= 1 (degrees), got {rotate!r}")
        if not 0 <= scale < 1:
            raise ValueError(f"scale must be in [0, 1), got {scale!r}")
        self.ops, self.crop, self.scale, self.rotate, self.noise = ops, crop, float(scale), rotate, float(noise)
        self.strategy = "_".join(ops) if ops else "none"

    def __repr__(self) -> str:
        return (
            f"DCAugment({self.strategy!r}, crop={self.crop}, scale={self.scale}, rotate={self.rotate}, "
            f"noise={self.noise})"
        )

    @property
    def is_identity(self) -> bool:
        return not self.ops

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        if not self.ops:
            return x
        if not isinstance(x, Tensor) or x.dim() != 4:
            raise ValueError(f"DCAugment expects images of shape (N, C, H, W), got {getattr(x, 'shape', type(x))}")
        n, _, H, W = x.shape
        gdev = generator.device
        choice = torch.randint(len(self.ops), (n,), generator=generator, device=gdev).to(x.device)
        out = x
        for k, op in enumerate(self.ops):
            u = torch.rand(n, 2, generator=generator, device=gdev).to(x.device)
            if op == "noise":
                z = torch.randn(x.shape, generator=generator, device=gdev).to(x.device, x.dtype)
                y = x + self.noise * z
            else:
                y = getattr(self, f"_{op}")(x, u)
            out = torch.where((choice == k).view(-1, 1, 1, 1), y, out)
        return out

    def _crop(self, x: Tensor, u: Tensor) -> Tensor:
        m = x.mean(dim=(0, 2, 3), keepdim=True)
        shift = _uniform_int(u, 2 * self.crop) - self.crop  # {-crop, ..., crop - 1}
        return _translate(x - m, shift[:, 0], shift[:, 1]) + m

    def _scale(self, x: Tensor, u: Tensor) -> Tensor:
        N, C, H, W = x.shape
        size = torch.floor(((1 - self.scale) + 2 * self.scale * u.double()) * H).long().clamp_(min=1)  # (N, 2): h, w
        h, w = size[:, 0].view(-1, 1), size[:, 1].view(-1, 1)
        canvas = torch.maximum(torch.maximum(h, w), torch.tensor(max(H, W), device=x.device))
        # output pixel i sits at canvas row i + (canvas - H)//2; the resized image starts at (canvas - h)//2
        rows = torch.arange(H, device=x.device).view(1, -1) + (canvas - H) // 2 - (canvas - h) // 2  # (N, H)
        cols = torch.arange(W, device=x.device).view(1, -1) + (canvas - W) // 2 - (canvas - w) // 2
        inside = ((rows >= 0) & (rows < h)).unsqueeze(2) & ((cols >= 0) & (cols < w)).unsqueeze(1)  # (N, H, W)
        src_r = (rows.clamp(min=0) * H // h).clamp(max=H - 1)  # nearest: floor(i · H / h)
        src_c = (cols.clamp(min=0) * W // w).clamp(max=W - 1)
        idx = (src_r.unsqueeze(2) * W + src_c.unsqueeze(1)).reshape(N, H * W)
        return _gather_pixels(x, idx).view(N, C, H, W) * inside.unsqueeze(1).to(x.dtype)

    def _rotate(self, x: Tensor, u: Tensor) -> Tensor:
        fill = x.mean(dim=(0, 2, 3)).mean()
        deg = (_uniform_int(u[:, 0], 2 * self.rotate) - self.rotate).to(_coord_dtype(x))
        a = deg / 180.0 * math.pi
        c, si, zero = torch.cos(a), torch.sin(a), torch.zeros_like(a)
        theta = torch.stack([torch.stack([c, -si, zero], 1), torch.stack([si, c, zero], 1)], 1)
        return affine_warp(x - fill, theta) + fill
