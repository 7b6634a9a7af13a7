"""KIP, Kernel Inducing Points (Nguyen, Chen & Lee, ICLR 2021): the iterative baseline of notebook 01.

The support set (X_S, Y_S), m = k·ipc images with label vectors, is optimised with Adam so that kernel ridge
regression on it predicts a target batch (X_t, Y_t) of real images:

    L(X_S, Y_S) = 1/(b·k) ‖Y_t − K_tS (K_SS + λ̃ I)⁻¹ Y_S‖²_F,     λ̃ = reg · tr(K_SS) / m,

with the kernel of a feature map, K(x, x') = φ(x)·φ(x') (``feature_maps``; the same maps as the closed form),
so K_SS = F_S F_Sᵀ (m×m) and K_tS (K_SS + λ̃I)⁻¹Y_S = F_t (F_Sᵀ α), α = (K_SS + λ̃I)⁻¹Y_S: the b×m kernel
block is never formed. Target batches hold b/k images of every class (drawn with replacement within a step);
the targets' features do not change, so they are computed once for the whole training set and cached.
The model a KIP set defines is the KRR predictor f(x) = Y_S(K_SS + λ̃I)⁻¹ K_Sx, i.e. W = Y_S(K_SS + λ̃I)⁻¹F_S
(``support_weights``). Settings of the reference runs: Adam, lr 0.01 (MNIST), 30 000 steps, b = 5000.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch

from .. import feature_maps, ridge
from .. import checkpoint as checkpoint_io
from ..data import ImageSet
from ..progress import progress
from ..repro import derive_seed
from ..synthetic import SyntheticSet
from .selection import check_ipc

INITS = ("real", "noise")
DEFAULT_FEATURE_MAP = "random_network"


def regulariser(K_SS: torch.Tensor, reg: float) -> torch.Tensor:
    """λ̃ = reg · tr(K_SS) / m (scale-free: the same ``reg`` suits every feature map)."""
    return reg * torch.diagonal(K_SS, dim1=-2, dim2=-1).sum(-1) / K_SS.shape[-1]


def krr_predict(F_S: torch.Tensor, Y_S: torch.Tensor, F_t: torch.Tensor, reg: float) -> torch.Tensor:
    """K_tS (K_SS + λ̃I)⁻¹ Y_S for support features F_S (m×p), labels Y_S (m×k), target features F_t (b×p)."""
    K = F_S @ F_S.T
    K = K + regulariser(K, reg) * torch.eye(len(K), dtype=K.dtype, device=K.device)
    alpha = torch.linalg.solve(K, Y_S)                      # m×k
    return F_t @ (F_S.T @ alpha)                            # b×k, never forming the b×m block


def kip_loss(F_S: torch.Tensor, Y_S: torch.Tensor, F_t: torch.Tensor, Y_t: torch.Tensor, reg: float) -> torch.Tensor:
    """1/(b·k) ‖Y_t − K_tS (K_SS + λ̃ I)⁻¹ Y_S‖²_F."""
    return (Y_t - krr_predict(F_S, Y_S, F_t, reg)).pow(2).mean()


def support_weights(images: torch.Tensor, labels: torch.Tensor, feature_map: feature_maps.FeatureMap,
                    reg: float, num_classes: int | None = None) -> torch.Tensor:
    """W = Y_S (K_SS + λ̃ I)⁻¹ F_S (k×p, float64): the KRR model of a support set (labels: indices or m×k)."""
    F_S = feature_map(images, torch.float64)
    Y = labels.to(torch.float64) if labels.ndim == 2 else \
        ridge.one_hot(labels, num_classes or int(labels.max()) + 1).T
    K = F_S @ F_S.T
    return ridge.support_model(F_S, Y.T, float(regulariser(K, reg)))


def _balanced_batch(order: torch.Tensor, starts: torch.Tensor, counts: torch.Tensor, per_class: int,
                    generator: torch.Generator) -> torch.Tensor:
    """``per_class`` random indices of every class (with replacement), vectorised over classes."""
    u = torch.rand(len(counts), per_class, generator=generator, device=generator.device).to(counts.device)
    pos = starts.unsqueeze(1) + (u * counts.unsqueeze(1)).long()
    pos = torch.minimum(pos, (starts + counts - 1).unsqueeze(1))
    return order[pos.flatten()]


def _check_positive(name: str, value, integer: bool) -> None:
    ok = (isinstance(value, int) and not isinstance(value, bool)) if integer else isinstance(value, (int, float))
    if not ok or not value > 0 or (not integer and not math.isfinite(value)):
        raise ValueError(f"{name} must be a positive {'integer' if integer else 'number'}, got {value!r}")


def distill(train_set: ImageSet, ipc: int, *, generator: torch.Generator, model=None, callback=None,
            steps: int = 1000, batch_size: int = 5000, lr: float = 0.01, reg: float = 1e-6,
            learn_labels: bool = True, init: str = "real", checkpoint: str | os.PathLike | None = None,
            checkpoint_every: int = 1000) -> SyntheticSet:
    """KIP: minimise 1/(b·k)‖Y_t − K_tS(K_SS + λ̃I)⁻¹Y_S‖² over (X_S, Y_S) with Adam for ``steps`` steps.

    ``model``: the feature map of the kernel (name, ``FeatureMap`` or spec; None: ``random_network``).
    ``batch_size``: target images per step, ``batch_size // k`` per class. ``reg``: λ̃ = reg·tr(K_SS)/m.
    ``learn_labels``: also learn Y_S (initialised one-hot); the returned labels are then the learned m×k
    matrix (soft labels), else class indices. ``init``: X_S starts from real images or N(0, 1) noise.
    ``checkpoint``: a file the state is saved to atomically every ``checkpoint_every`` steps; a run that finds
    one of the same settings resumes from it and ends bit-identical to an unbroken run.
    ``callback(step, {"loss": ...})`` after every step. ``meta['feature_map']`` holds the map's spec and
    ``meta['reg']`` the regulariser, so ``support_weights`` rebuilds the KRR model of the set.
    """
    t0 = time.perf_counter()
    check_ipc(ipc, train_set)
    for name, value, integer in (("steps", steps, True), ("batch_size", batch_size, True), ("lr", lr, False),
                                 ("reg", reg, False), ("checkpoint_every", checkpoint_every, True)):
        _check_positive(name, value, integer)
    if init not in INITS:
        raise ValueError(f"init={init!r} is not valid; valid: {', '.join(INITS)}")
    k, device = train_set.num_classes, train_set.device
    if batch_size < k:
        raise ValueError(f"batch_size={batch_size} must be >= the number of classes ({k}) for class-balanced batches")
    fmap = feature_maps.resolve(model, train_set.images[0].numel(), derive_seed(generator), DEFAULT_FEATURE_MAP)

    # Cached for the whole run: the targets' features, their one-hot labels, the class-sorted index.
    F_all = torch.cat([fmap(train_set.images[s:s + 8192], torch.float32) for s in range(0, len(train_set), 8192)])
    Y_all = torch.nn.functional.one_hot(train_set.labels, k).float()
    order = torch.argsort(train_set.labels, stable=True)
    counts = train_set.class_counts
    starts = torch.cumsum(counts, 0) - counts
    per_class = batch_size // k

    labels0 = torch.arange(k, device=device).repeat_interleave(ipc)
    if init == "real":
        X0 = train_set.images[train_set.sample_balanced(ipc, generator)]
    else:
        X0 = torch.randn((k * ipc, *train_set.images.shape[1:]), generator=generator, device=generator.device).to(device)
    X_S = X0.detach().clone().float().requires_grad_(True)
    Y_S = torch.nn.functional.one_hot(labels0, k).float().requires_grad_(learn_labels)
    params = [X_S, Y_S] if learn_labels else [X_S]
    opt = torch.optim.Adam(params, lr=lr)
    hparams = {"steps": steps, "batch_size": batch_size, "lr": lr, "reg": reg, "learn_labels": learn_labels,
               "init": init}
    losses: list[float] = []
    start = 0

    path = Path(checkpoint) if checkpoint is not None else None
    identity = {"hparams": hparams, "ipc": ipc, "dataset": train_set.name, "feature_map": fmap.spec}
    state = checkpoint_io.load(path, identity)   # the generator state stays on the CPU
    if state is not None:
        with torch.no_grad():
            X_S.copy_(state["X_S"])
            Y_S.copy_(state["Y_S"])
        opt.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        losses, start = list(state["losses"]), int(state["step"])

    def save(step: int) -> None:
        checkpoint_io.save(path, identity, {"X_S": X_S.detach(), "Y_S": Y_S.detach(), "optimizer": opt.state_dict(),
                          "generator": generator.get_state(), "losses": losses, "step": step})

    with ridge.single_thread():                       # every step is small dense algebra (m <= a few hundred)
        for step in progress(range(start, steps), desc=f"KIP ipc {ipc}", total=steps - start):
            idx = _balanced_batch(order, starts, counts, per_class, generator)
            loss = kip_loss(fmap(X_S), Y_S, F_all[idx], Y_all[idx], reg)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"KIP loss became {value} at step {step + 1}/{steps}: lr={lr} is probably too high for this "
                    f"feature map, or K_SS + λ̃I became singular (raise reg={reg})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(value)
            if callback is not None:
                callback(step, {"loss": value})
            if path is not None and ((step + 1) % checkpoint_every == 0 or step + 1 == steps):
                save(step + 1)

    X_out = X_S.detach().clone()
    labels = Y_S.detach().clone() if learn_labels else labels0
    stride = max(1, len(losses) // 500)
    meta = {"method": "kip", "dataset": train_set.name, "ipc": ipc, "num_classes": k, "hparams": hparams,
            "feature_map": fmap.spec, "reg": reg, "classes": labels0.tolist(),
            "loss_curve": {"step": list(range(1, len(losses) + 1, stride)), "loss": losses[::stride]},
            "seconds": time.perf_counter() - t0}
    return SyntheticSet(X_out, labels, None, meta)
