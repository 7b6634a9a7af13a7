"""Dataset Condensation with Differentiable Siamese Augmentation (DSA; Zhao & Bilen, ICML 2021).

DC's gradient matching with the real and the synthetic batch of every class augmented by the SAME
randomly drawn differentiable transformation ``A_ω`` (colour, crop, cutout, flip, scale, rotate):

    min_S  E_{θ_0} [ Σ_t Σ_c  D( ∇_θ ℓ(A_{ω_c}(S_c); θ_t),  ∇_θ ℓ(A_{ω_c}(T_c); θ_t) ) ],   ω_c ~ Ω

Because ``A_ω`` is differentiable in the pixels, ``∂D/∂S`` flows back through the augmentation. The inner
loop trains the network on ``A_ω(S)`` with a fresh ω per image. One ``ω_c`` is drawn per class and matching
step (``DSA.sample(1, generator)``, in mode "single" also which op), from the explicit generator only.

Everything else (schedule, distance, batch norm) is DC's ``GradientMatching`` on the shared loop;
this module only supplies the augmentation. Strategy per dataset: ``augment.strategy_for`` (no flip on MNIST).
"""

from __future__ import annotations

from torch import Generator

from ..data.datasets import ImageSet
from .dc import METHOD as DC
from .dc import DSAConfig, GradientMatching
from .hparams import parse
from .registry import MethodInfo

__all__ = ["METHOD", "Config", "SiameseGradientMatching", "distill"]

Config = DSAConfig


class SiameseGradientMatching(GradientMatching):
    """DC's state and moves (``dc.GradientMatching``) with the augmentation ``dsa`` drawn for every matching step."""

    method = "dsa"


def distill(train_set: ImageSet, ipc: int, *, generator: Generator, model=None, callback=None, **hparams):
    """DSA: DC (``dc.distill``, the same hyperparameters) with siamese augmentation of real and synthetic batches.

    Extra hyperparameters (``dc.DSAConfig``): ``strategy`` (ops joined by "_"; default ``strategy_for(dataset)``,
    e.g. MNIST ``"color_crop_cutout_scale_rotate"``), ``dsa_params`` (their magnitudes; ``DSAParams()``, the
    reference's) and ``dsa_mode`` (``"single"``: one op per draw, the reference's; or ``"all"``).
    """
    config = parse("dsa", DSAConfig, hparams).resolved(train_set.name)
    return METHOD.run(SiameseGradientMatching, config, train_set, ipc, generator, model, callback)


TINY = DC.tiny

METHOD = MethodInfo("dsa", "gradient matching", "03", "sampler", "dsa", TINY, DC.benchmark, "convnet")
