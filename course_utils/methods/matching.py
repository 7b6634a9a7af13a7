"""Gradient matching (DC, Zhao, Mopuri & Bilen, ICLR 2021): gradient distances and per-class gradients.

Dataset condensation makes the gradient that a synthetic class ``S_c`` induces in a network match the
gradient of the real class ``T_c``, for many networks ``θ`` along their training:

    L(S) = Σ_c D( ∇_θ ℓ(S_c; θ),  ∇_θ ℓ(T_c; θ) ),        ℓ = mean cross-entropy of one class's batch.

The distance ``D`` is a sum over the layers ``l`` of the network (``A = ∇_{θ_l} ℓ(S_c)``, ``B = ∇_{θ_l} ℓ(T_c)``):

``"layerwise"`` (the DC paper's layer-wise distance; its code calls it "ours")
    every parameter tensor is reshaped to ``(out_channels, -1)`` (a conv kernel ``(o, i, h, w)`` becomes ``o``
    rows of length ``i·h·w``, a linear weight ``(o, i)`` stays as it is) and
        d(A, B) = Σ_i ( 1 − ⟨A_i, B_i⟩ / (‖A_i‖ ‖B_i‖ + ε) ),      ε = 1e-6,
    one cosine per output channel ``i``. One-dimensional parameters (biases, normalisation scales and shifts)
    contribute 0, so their gradients are never computed.
``"mse"``
    d = Σ_l ‖A_l − B_l‖²_F   (every parameter, biases included).
``"cos"``
    one cosine over the concatenation of all parameters' gradients:
        d = 1 − ⟨vec A, vec B⟩ / (‖vec A‖ ‖vec B‖ + ε).

Per-class gradients come in two implementations with the same values (``tests/test_gradient_matching.py``):

* ``"loop"``: one forward/backward per class (the reference code's structure);
* ``"batched"``: ONE forward over every class's images and per-class gradients in one pass,
  ``torch.func.vmap(torch.func.grad(ℓ))`` over the class dimension. This is exact when the network treats
  images independently: instance norm (``GroupNorm(C, C)``, the DC ConvNet) is per-image; batch norm mixes
  the images of a batch, so the matching step runs batch-norm layers in eval mode with statistics frozen
  from a real batch (``freeze_batchnorm``), as the reference does.

Real-image gradients are computed without a graph (they are constants of the matching loss); synthetic
gradients keep their graph (``create_graph``) so that the distance can be differentiated w.r.t. the images
(a second-order derivative through ``∇_θ ℓ(S_c)``).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "DISTANCES",
    "IMPLEMENTATIONS",
    "EPS",
    "check_distance",
    "check_implementation",
    "matched_parameter_names",
    "class_distances",
    "gradient_distance",
    "class_gradients",
    "matching_loss",
    "freeze_batchnorm",
    "has_batchnorm",
]

#: Gradient distances: the DC paper's layer-wise one, squared error, one global cosine.
DISTANCES: tuple[str, ...] = ("layerwise", "mse", "cos")
#: How per-class gradients are computed: one pass over all classes (torch.func), or one pass per class.
IMPLEMENTATIONS: tuple[str, ...] = ("batched", "loop")
#: ε in the cosine denominators (the reference's value).
EPS = 1e-6


def check_distance(distance: str) -> str:
    if distance not in DISTANCES:
        raise ValueError(f"unknown gradient distance {distance!r}; valid: {', '.join(DISTANCES)}")
    return distance


def check_implementation(implementation: str) -> str:
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(
            f"unknown per-class gradient implementation {implementation!r}; valid: {', '.join(IMPLEMENTATIONS)}"
        )
    return implementation


def matched_parameter_names(model: nn.Module, distance: str = "layerwise") -> list[str]:
    """Names of the parameters whose gradients ``distance`` compares (``layerwise``: only those with ≥ 2 dims)."""
    check_distance(distance)
    return [n for n, p in model.named_parameters() if p.requires_grad and (distance != "layerwise" or p.dim() > 1)]


# ----------------------------------------------------------------------------------------------
# distances
# ----------------------------------------------------------------------------------------------


def class_distances(
    g_real: Sequence[Tensor], g_syn: Sequence[Tensor], distance: str = "layerwise", eps: float = EPS
) -> Tensor:
    """``D(g_syn[c], g_real[c])`` for every class ``c``: a tensor of shape ``(K,)``.

    ``g_real`` and ``g_syn`` list the gradients of the same parameters, each with a leading class
    dimension: ``(K, *param.shape)``. See the module docstring for the three distances.
    """
    check_distance(distance)
    if len(g_real) != len(g_syn) or not g_real:
        raise ValueError(
            f"need the same non-empty list of parameters on both sides, got {len(g_real)} real and "
            f"{len(g_syn)} synthetic gradients"
        )
    for a, b in zip(g_real, g_syn):
        if a.shape != b.shape or a.dim() < 2:
            raise ValueError(
                f"gradients must be (K, *param_shape) and agree: got {tuple(a.shape)} (real) and "
                f"{tuple(b.shape)} (synthetic)"
            )
    k = g_real[0].shape[0]
    total = g_syn[0].new_zeros(k)
    if distance == "layerwise":
        for a, b in zip(g_real, g_syn):
            if a.dim() == 2:  # a 1-D parameter (bias, norm scale/shift): contributes 0
                continue
            a, b = a.flatten(2), b.flatten(2)  # (K, out, rest)
            cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1) + eps)
            total = total + (1 - cos).sum(-1)
        return total
    if distance == "mse":
        for a, b in zip(g_real, g_syn):
            total = total + (b - a).pow(2).flatten(1).sum(1)
        return total
    dot = sum((a * b).flatten(1).sum(1) for a, b in zip(g_real, g_syn))
    na = sum(a.pow(2).flatten(1).sum(1) for a in g_real).sqrt()
    nb = sum(b.pow(2).flatten(1).sum(1) for b in g_syn).sqrt()
    return 1 - dot / (na * nb + eps)


def gradient_distance(
    g_real: Sequence[Tensor], g_syn: Sequence[Tensor], distance: str = "layerwise", eps: float = EPS
) -> Tensor:
    """``D(g_syn, g_real)`` for one class: lists of per-parameter gradients with the parameters' shapes."""
    return class_distances([a.unsqueeze(0) for a in g_real], [b.unsqueeze(0) for b in g_syn], distance, eps)[0]


# ----------------------------------------------------------------------------------------------
# per-class gradients
# ----------------------------------------------------------------------------------------------


def _check_class_batch(images: Tensor, labels: Tensor) -> None:
    if images.dim() != 5 or labels.shape != images.shape[:2]:
        raise ValueError(
            f"expected images (K, n, C, H, W) and labels (K, n), got {tuple(images.shape)} and {tuple(labels.shape)}"
        )


def class_gradients(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    *,
    names: Sequence[str] | None = None,
    create_graph: bool = False,
    implementation: str = "batched",
) -> list[Tensor]:
    """``∇_θ ℓ(images[c], labels[c]; θ)`` for every class ``c``, for the parameters ``names`` (default: all).

    ``images`` is ``(K, n, C, H, W)`` (class-major), ``labels`` ``(K, n)``; ℓ is the mean cross-entropy over
    the ``n`` images of a class. Returns one tensor ``(K, *param.shape)`` per name, in the order of
    ``names``. With ``create_graph`` the result is differentiable w.r.t. ``images`` (never w.r.t. the
    network's parameters: the matching loss only moves the images); without it the result is detached.

    ``implementation="batched"`` runs one forward over the ``K·n`` images and takes the ``K`` gradients
    in one vectorised backward (``torch.func``); ``"loop"`` runs one forward/backward per class.
    The network must treat the images of a batch independently (eval-mode batch norm; see ``freeze_batchnorm``).
    """
    _check_class_batch(images, labels)
    check_implementation(implementation)
    named = dict(model.named_parameters())
    names = list(named) if names is None else list(names)
    unknown = [n for n in names if n not in named]
    if unknown:
        raise ValueError(f"unknown parameter name(s) {unknown}; the model has: {', '.join(named)}")
    if implementation == "loop":
        params = [named[n] for n in names]
        per_class = []
        for c in range(images.shape[0]):
            loss = F.cross_entropy(model(images[c]), labels[c])
            per_class.append(torch.autograd.grad(loss, params, create_graph=create_graph))
        return [torch.stack(g) for g in zip(*per_class)]

    from torch.func import functional_call, grad, vmap

    wanted = {n: named[n].detach() for n in names}
    fixed = {n: p.detach() for n, p in named.items() if n not in wanted}
    fixed.update(dict(model.named_buffers()))

    def loss(p: dict, x: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(functional_call(model, {**p, **fixed}, (x,)), y)

    grads = vmap(grad(loss), in_dims=(None, 0, 0))(wanted, images, labels)
    return [grads[n] if create_graph else grads[n].detach() for n in names]


def matching_loss(
    model: nn.Module,
    real: Tensor,
    real_labels: Tensor,
    syn: Tensor,
    syn_labels: Tensor,
    *,
    distance: str = "layerwise",
    implementation: str = "batched",
) -> tuple[Tensor, Tensor]:
    """The DC matching loss ``Σ_c D(∇_θ ℓ(S_c), ∇_θ ℓ(T_c))`` and its per-class terms ``(K,)``.

    ``real`` (K, n_real, C, H, W) and ``syn`` (K, ipc, C, H, W) are class-major. The real gradients are
    computed without a graph; the loss is differentiable w.r.t. ``syn`` (second order, through the
    synthetic gradients). Only the parameters that ``distance`` compares are differentiated; ``implementation``
    (``IMPLEMENTATIONS``) is how the per-class gradients of both sides are taken (``class_gradients``).
    """
    names = matched_parameter_names(model, distance)
    g_real = class_gradients(model, real, real_labels, names=names, create_graph=False, implementation=implementation)
    g_syn = class_gradients(model, syn, syn_labels, names=names, create_graph=True, implementation=implementation)
    per_class = class_distances(g_real, g_syn, distance)
    return per_class.sum(), per_class


# ----------------------------------------------------------------------------------------------
# batch norm
# ----------------------------------------------------------------------------------------------


def _batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def has_batchnorm(model: nn.Module) -> bool:
    return bool(_batchnorms(model))


@torch.no_grad()
def freeze_batchnorm(model: nn.Module, images: Tensor) -> bool:
    """Set every batch-norm layer's running statistics to those of ``images`` and switch it to eval mode.

    During a matching step a batch-norm layer must not mix the images of a batch (nor the real and the
    synthetic images): like the reference, we estimate its mean/variance from a real batch (16 images per
    class) and use them frozen (eval mode) while matching. Unlike the reference, whose running statistics
    after one momentum-0.1 update are still 90 % those of earlier batches, the statistics here are exactly
    the real batch's (reset, then one cumulative-average update). Returns whether the model has batch norm.
    ``model.train()`` (the inner loop) switches the layers back to batch statistics.
    """
    bns = _batchnorms(model)
    if not bns:
        return False
    momenta = [m.momentum for m in bns]
    was_training = model.training
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: after one batch, the batch's statistics
    model.train()
    model(images)
    model.train(was_training)
    for m, momentum in zip(bns, momenta):
        m.momentum = momentum
        m.eval()
    return True
