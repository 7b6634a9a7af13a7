"""Dataset Condensation with Differentiable Siamese Augmentation (DSA; Zhao & Bilen, ICML 2021).

DC's gradient matching with the real and the synthetic batch of every class augmented by the SAME
randomly drawn differentiable transformation ``A_ω`` (colour, crop, cutout, flip, scale, rotate):

    min_S  E_{θ_0} [ Σ_t Σ_c  D( ∇_θ ℓ(A_{ω_c}(S_c); θ_t),  ∇_θ ℓ(A_{ω_c}(T_c); θ_t) ) ],   ω_c ~ Ω

Because ``A_ω`` is differentiable in the pixels, ``∂D/∂S`` flows back through the augmentation. The inner
loop trains the network on ``A_ω(S)`` with a fresh ω per image. One ``ω_c`` is drawn per class and matching
step (``DSA.sample(1, generator)``, in mode "single" also which op), from the explicit generator only.

Everything else (schedule, distance, batch norm, checkpoints) is DC's loop in ``course_utils.methods.dc``;
this module only supplies the augmentation. Strategy per dataset: ``augment.strategy_for`` (no flip on MNIST).
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from ..augment import DSA, DSAParams, MODES, strategy_for
from ..data import ImageSet
from ..synthetic import SyntheticSet
from .dc import GradientMatchingConfig, ModelSpec, gradient_matching

__all__ = ["distill"]


def distill(train_set: ImageSet, ipc: int, *, generator: torch.Generator, model: ModelSpec | None = None,
            callback: Callable[[int, dict], None] | None = None, strategy: str | None = None,
            dsa_params: DSAParams | None = None, dsa_mode: str = "single", **hparams: Any) -> SyntheticSet:
    """DSA: DC (``dc.distill``, same ``hparams``) with siamese augmentation of real and synthetic batches.

    ``strategy``: ops joined by "_" (default ``strategy_for(dataset)``, e.g. MNIST
    ``"color_crop_cutout_scale_rotate"``); ``dsa_params``: their ranges (``DSAParams()``, the reference's);
    ``dsa_mode``: ``"single"`` (one op per draw, the reference's) or ``"all"``.
    """
    if dsa_mode not in MODES:
        raise ValueError(f"unknown dsa_mode {dsa_mode!r}; valid: {', '.join(MODES)}")
    strategy = strategy_for(train_set.name) if strategy is None else strategy
    augment = DSA(strategy, dsa_params or DSAParams(), mode=dsa_mode)
    config = GradientMatchingConfig.from_hparams("dsa", **hparams)
    extra = {"strategy": augment.strategy, "dsa_mode": dsa_mode, "dsa_params": repr(augment.params)}
    return gradient_matching(train_set, ipc, generator=generator, model=model, callback=callback, config=config,
                             dsa=augment, method="dsa", extra_meta=extra)
