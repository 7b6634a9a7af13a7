r"""ZCA whitening of image sets, as used by trajectory matching (MTT) on CIFAR-10/100.

Cazenavette et al. (CVPR 2022) whiten CIFAR with ZCA (``eps = 0.1``), fitted once on the
training set and applied to both splits; distillation, expert training and evaluation then all
work in the whitened space. This module implements that transform from its equations.

Equations (images flattened to row vectors, ``D = C * H * W``)::

    X  in R^{N x D}                          the N training images, one per row
    mu = (1/N) sum_i x_i                     per-pixel mean, shape (D,)
    Sigma = (X - mu)^T (X - mu) / (N - 1)    unbiased covariance, D x D
    Sigma = U diag(S) U^T                    eigendecomposition (S >= 0, U orthogonal)
    W     = U diag((S + eps)^(-1/2)) U^T     whitening matrix (symmetric)
    W^-1  = U diag((S + eps)^(+1/2)) U^T     its exact inverse

    transform(x) = (x - mu) W                inverse(z) = z W^-1 + mu

The whitened data has covariance ``W Sigma W = U diag(S / (S + eps)) U^T``: close to the identity
along directions with ``S >> eps``, shrunk (not blown up) along near-constant directions.

Why ZCA and not PCA whitening: both decorrelate, but PCA's ``diag(...) U^T`` leaves the data in
eigenvector coordinates, while ZCA rotates back with ``U`` ("zero phase"); of all whitening
matrices it changes the images least, so a whitened image is still an image (edges enhanced,
flat colour removed) that a ConvNet can read. ``W`` is symmetric, so ``x W = x W^T``.

Typical use::

    zca = ZCA.fit(train_images, eps=0.1)      # N x C x H x W, on the CPU
    z = zca.transform(images)                 # any device; differentiable
    x = zca.inverse(z)                        # back to the normalised pixel space
"""

from __future__ import annotations

import hashlib
import math
import numbers
from typing import Any

import torch

__all__ = ["ZCA"]

# Rows per block when accumulating the covariance (float64) and when transforming: bounds the
# extra memory to a block, e.g. 10 000 x 3072 x 8 bytes = 246 MB for CIFAR, not a copy of the set.
_FIT_CHUNK = 10_000
_APPLY_CHUNK = 8_192


def _check_eps(eps: Any) -> float:
    # bool is a numbers.Real too; eps=True is almost certainly a mistake.
    ok = isinstance(eps, numbers.Real) and not isinstance(eps, bool) and math.isfinite(eps) and eps > 0
    if not ok:
        raise ValueError(f"eps must be a positive finite number (e.g. 0.1), got {eps!r}")
    return float(eps)


class ZCA:
    """A fitted ZCA whitening: ``mean`` (D,), ``transform_matrix`` W and ``inverse_matrix`` W^-1 (D x D).

    All three are float32 CPU tensors, ``eps`` is the regulariser and ``shape`` the per-image
    ``(C, H, W)`` it was fitted on. Build one with :meth:`fit` or :meth:`from_state_dict`; the
    attributes are read-only (do not modify the tensors in place: copies moved to other devices
    are cached).
    """

    __slots__ = ("_mean", "_w", "_w_inv", "_eps", "_shape", "_moved")

    def __init__(
        self,
        mean: torch.Tensor,
        transform_matrix: torch.Tensor,
        inverse_matrix: torch.Tensor,
        eps: float,
        shape: tuple[int, int, int],
    ) -> None:
        eps = _check_eps(eps)
        shape = tuple(int(s) for s in shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"shape must be (C, H, W) with positive sizes, got {shape}")
        d = shape[0] * shape[1] * shape[2]
        for name, t, want in (
            ("mean", mean, (d,)),
            ("transform_matrix", transform_matrix, (d, d)),
            ("inverse_matrix", inverse_matrix, (d, d)),
        ):
            if not isinstance(t, torch.Tensor) or tuple(t.shape) != want:
                got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise ValueError(f"{name} must be a tensor of shape {want} for shape {shape}, got {got}")
        self._mean = mean.detach().to("cpu", torch.float32).contiguous()
        self._w = transform_matrix.detach().to("cpu", torch.float32).contiguous()
        self._w_inv = inverse_matrix.detach().to("cpu", torch.float32).contiguous()
        self._eps = eps
        self._shape: tuple[int, int, int] = shape  # type: ignore[assignment]
        # (device, dtype) -> (mean, W, W^-1) there, so repeated calls on a GPU copy the matrices once.
        self._moved: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    # ---- read-only attributes

    @property
    def mean(self) -> torch.Tensor:
        return self._mean

    @property
    def transform_matrix(self) -> torch.Tensor:
        return self._w

    @property
    def inverse_matrix(self) -> torch.Tensor:
        return self._w_inv

    @property
    def eps(self) -> float:
        return self._eps

    @property
    def shape(self) -> tuple[int, int, int]:
        return self._shape

    def __repr__(self) -> str:
        return f"ZCA(shape={self._shape}, eps={self._eps}, fingerprint={self.fingerprint()!r})"

    # ---- fitting

    @classmethod
    def fit(cls, images: torch.Tensor, eps: float = 0.1) -> ZCA:
        """Fit on ``images`` (float N x C x H x W, N >= 2, any device; the work is done on the CPU in float64).

        Deterministic: the same images give bit-identical matrices.
        """
        eps = _check_eps(eps)
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"images must be a torch tensor, got {type(images).__name__}")
        if images.ndim != 4 or not images.is_floating_point():
            raise ValueError(
                f"images must be a 4-D float tensor N x C x H x W, got shape {tuple(images.shape)} "
                f"and dtype {images.dtype}"
            )
        n = images.shape[0]
        if n < 2:
            raise ValueError(f"need at least 2 images to estimate a covariance, got {n}")
        shape = tuple(images.shape[1:])
        flat = images.detach().reshape(n, -1)
        d = flat.shape[1]

        def blocks():
            for start in range(0, n, _FIT_CHUNK):
                yield flat[start : start + _FIT_CHUNK].to("cpu", torch.float64)

        # Two passes (mean first, then centred products) rather than sum(x x^T) - N mu mu^T, which
        # loses precision when the mean is large next to the spread.
        total = torch.zeros(d, dtype=torch.float64)
        for block in blocks():
            if not torch.isfinite(block).all():
                raise ValueError("images contain NaN or infinite values; cannot fit a ZCA whitening")
            total += block.sum(0)
        mean = total / n
        cov = torch.zeros(d, d, dtype=torch.float64)
        for block in blocks():
            centred = block - mean
            cov.addmm_(centred.T, centred)
        cov /= n - 1
        cov = (cov + cov.T) / 2  # exactly symmetric before eigh (rounding in addmm_ may not be)

        s, u = torch.linalg.eigh(cov)
        s = s.clamp(min=0.0)  # tiny negative eigenvalues are rounding noise of a PSD matrix
        w = (u * (s + eps).rsqrt()) @ u.T
        w_inv = (u * (s + eps).sqrt()) @ u.T
        # Symmetrise so W == W^T holds bit for bit after the float32 cast (the zero-phase property).
        w = (w + w.T) / 2
        w_inv = (w_inv + w_inv.T) / 2
        return cls(mean, w, w_inv, eps, shape)  # type: ignore[arg-type]

    # ---- applying

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Whiten ``x`` (C x H x W or N x C x H x W, on any device): ``(x - mean) @ W``, same shape."""
        return self._apply(x, inverse=False)

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Undo :meth:`transform`: ``x @ W^-1 + mean``, same shape as ``x``."""
        return self._apply(x, inverse=True)

    def _on(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        key = (device, dtype)
        if key not in self._moved:
            self._moved[key] = tuple(t.to(device, dtype) for t in (self._mean, self._w, self._w_inv))  # type: ignore[assignment]
        return self._moved[key]

    def _apply(self, x: torch.Tensor, inverse: bool) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"expected a torch tensor, got {type(x).__name__}")
        if x.ndim not in (3, 4) or not x.is_floating_point():
            raise ValueError(
                f"expected a float C x H x W image or N x C x H x W batch, got shape {tuple(x.shape)} "
                f"and dtype {x.dtype}"
            )
        single = x.ndim == 3
        batch = x.unsqueeze(0) if single else x
        if tuple(batch.shape[1:]) != self._shape:
            raise ValueError(
                f"per-image shape {tuple(batch.shape[1:])} differs from the shape the ZCA was fitted on {self._shape}"
            )
        mean, w, w_inv = self._on(x.device, x.dtype)
        flat = batch.reshape(batch.shape[0], -1)

        def one(block: torch.Tensor) -> torch.Tensor:
            return block @ w_inv + mean if inverse else (block - mean) @ w

        n = flat.shape[0]
        if n <= _APPLY_CHUNK:
            out = one(flat)
        elif x.requires_grad and torch.is_grad_enabled():
            # torch.cat keeps the graph; the blocks only bound the temporaries of the subtraction.
            out = torch.cat([one(flat[i : i + _APPLY_CHUNK]) for i in range(0, n, _APPLY_CHUNK)])
        else:
            out = torch.empty_like(flat)  # fill in place: no second full-size copy from torch.cat
            for i in range(0, n, _APPLY_CHUNK):
                out[i : i + _APPLY_CHUNK] = one(flat[i : i + _APPLY_CHUNK])
        out = out.reshape(batch.shape)
        return out[0] if single else out

    # ---- saving and identifying

    def state_dict(self) -> dict[str, Any]:
        """Plain tensors and numbers (``torch.save``-able with ``weights_only``); see :meth:`from_state_dict`."""
        return {
            "mean": self._mean.clone(),
            "transform_matrix": self._w.clone(),
            "inverse_matrix": self._w_inv.clone(),
            "eps": self._eps,
            "shape": list(self._shape),
        }

    @classmethod
    def from_state_dict(cls, d: dict[str, Any]) -> ZCA:
        """Rebuild the ZCA saved by :meth:`state_dict` (the fingerprint is unchanged)."""
        keys = ("mean", "transform_matrix", "inverse_matrix", "eps", "shape")
        missing = [k for k in keys if k not in d]
        if missing:
            raise ValueError(f"ZCA state dict lacks {missing}; expected keys {list(keys)}, got {sorted(d)}")
        return cls(d["mean"], d["transform_matrix"], d["inverse_matrix"], d["eps"], tuple(d["shape"]))

    def fingerprint(self) -> str:
        """Short hash of ``mean``, ``W``, ``eps`` and ``shape``: checkpoints record which whitening they used."""
        h = hashlib.blake2b(digest_size=8)
        h.update(f"zca|{self._shape}|{self._eps!r}".encode())
        for t in (self._mean, self._w):
            h.update(t.contiguous().view(-1).view(torch.uint8).numpy().data)
        return h.hexdigest()
