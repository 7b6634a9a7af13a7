"""Dataset Condensation with Distribution Matching (DM; Zhao & Bilen, WACV 2023).

The synthetic set ``S`` (``ipc`` images per class, label ``c`` fixed) is learned so that, in the embedding space of
randomly initialised networks, every synthetic class has the same mean embedding as the real class:

    min_S  E_{ψ_ϑ ~ P_ϑ, ω ~ Ω} [ L ],
    L = Σ_c ‖ (1/|B_c|) Σ_{x ∈ B_c} ψ_ϑ(A_{ω_c}(x))  −  (1/|S_c|) Σ_{s ∈ S_c} ψ_ϑ(A_{ω_c}(s)) ‖²

    S  ← S − η_S · ∇_S L                                      (SGD, lr_img 1.0, momentum 0.5)

``ψ_ϑ`` is the embedding of a network (``model.embed``: the features before the last linear layer) with FRESH
random weights ``ϑ`` at every iteration; it is never trained and its parameters are frozen (no gradient is taken
w.r.t. them). ``B_c`` are ``batch_real`` random real images of class ``c`` (the reference's 256, clipped to the
smallest class), ``A_{ω_c}`` one differentiable siamese augmentation per class and iteration, the SAME for the real
and the synthetic images of the class (``augment.DSA.siamese_per_class``; strategy ``augment.strategy_for(dataset)``,
``strategy="none"`` switches it off). The squared L2 distance of the two means is summed over the classes; this
is the linear-kernel maximum mean discrepancy between the two embedded distributions. Real embeddings are
constants (computed without a graph); the gradient reaches ``S`` through ``ψ_ϑ`` and ``A_{ω_c}``.

One iteration (``DistributionMatching.step``): draw ``ψ_ϑ`` (``model=``, a network sampler; default a fresh
``"convnet"``: width 128, depth 3, instance norm, as in DC), draw the real batches of all classes (one draw,
``ImageSet.sample_per_class``), augment, compute ``L``, one image step. There is no inner loop and no second-order
derivative: an iteration costs, at its floor, one forward of the ``K · batch_real`` real images (no graph) plus one
forward and backward of the ``K · ipc`` synthetic ones. Defaults follow the reference code (``main_DM.py``):
20 000 iterations, real initialisation, DSA on. The history's loss is ``L`` (the reference prints ``L / K``).

Implementations (the same random draws, the same loss values up to float rounding; ``tests/test_dm.py``):

* ``"batched"`` (default): ONE forward of all classes' real images (``K · batch_real``, under ``torch.no_grad``;
  on a CPU in pieces of ``CPU_CHUNK`` images, which stay in cache) and ONE forward of all synthetic images
  (``K · ipc``), with each class's augmentation parameters inside the batch; per-class means by a view
  ``(K, n, D).mean(1)``. No per-class forward (only the augmentation draws, ``DSA.siamese_per_class``, go class by
  class).
* ``"loop"``: the reference's structure: class by class, one augmentation draw, one forward of the real and one of
  the synthetic images, the distance accumulated; one backward (``benchmarks/bench_dm.py`` times both).

Batch norm: the networks of the DC family with instance norm embed every image independently of the batch, so
per-class and all-class forwards agree. A batch-norm layer normalises by its batch's statistics instead. The
reference runs such a network in train mode with ALL classes in one batch (one real batch, one synthetic
batch), not class by class; ``"batched"`` does exactly that, and ``"loop"`` with a batch-norm network follows the
reference's batch-norm branch too (augmentation class by class, then one forward of all classes), so the two
implementations agree for every network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch import Generator, Tensor

from ..core import validate
from ..data.augment import DSA, DSAFields
from ..data.datasets import ImageSet
from ..records.synthetic import INITS, SyntheticSet
from . import loop, matching
from .hparams import ImageSGD, LoopConfig, parse
from .registry import TINY_CONVNET, MethodInfo, Tiny, by_profile

__all__ = [
    "IMPLEMENTATIONS",
    "INITS",
    "Config",
    "DistributionMatching",
    "class_mean_embeddings",
    "distribution_matching_loss",
    "distill",
    "METHOD",
]

#: How the embeddings are computed: one forward per side for all classes, or class by class (the reference's).
IMPLEMENTATIONS: tuple[str, ...] = ("batched", "loop")


@dataclass(frozen=True)
class Config(DSAFields, ImageSGD, LoopConfig):
    """Hyperparameters of DM (defaults: the reference code's ``main_DM.py``), with DSA's (``augment.DSAFields``:
    ``strategy`` None = ``strategy_for(dataset)``, ``"none"`` = no augmentation; ``dsa_params``; ``dsa_mode``)."""

    steps: int = 20000  # iterations, each with a fresh random network
    checkpoint_every: int = 100  # an iteration is cheap (no inner loop): save less often than DC
    init: str = "real"  # real | noise
    lr_img: float = 1.0  # SGD on the images
    momentum_img: float = 0.5
    batch_real: int = 256  # real images per class per iteration (clipped to the smallest class)
    implementation: str = "batched"  # batched | loop

    def __post_init__(self) -> None:
        super().__post_init__()
        validate.positive_int("batch_real", self.batch_real)
        validate.choice("init", self.init, INITS)
        validate.choice("implementation", self.implementation, IMPLEMENTATIONS)
        validate.positive_number("lr_img", self.lr_img)
        validate.number_in("momentum_img", self.momentum_img, 0, 1)


def _embed(net: nn.Module, x: Tensor) -> Tensor:
    embed = getattr(net, "embed", None)
    if not callable(embed):
        raise TypeError(
            f"distribution matching needs the network's embedding net.embed(x) (the features before the last "
            f"linear layer, as every course_utils.models network has); {type(net).__name__} has no embed method"
        )
    return embed(x)


#: Images per forward of the real side on a CPU. One forward of all K·256 real images holds ~1 GB per activation
#: (ConvNet-128) and runs out of cache: measured on 2 cores, 2 560 images took 5.9 s in one pass, 4.9 s in pieces of
#: 256 and 3.4 s in pieces of 32 (every image is embedded on its own: the same values). A GPU takes them at once.
CPU_CHUNK = 32


def class_mean_embeddings(net: nn.Module, images: Tensor, chunk: int | None = None) -> Tensor:
    """Per-class mean embeddings ``(K, D)`` of class-major ``images`` ``(K, n, C, H, W)``: one forward of all
    images (or of pieces of ``chunk`` images, the same values: every image is embedded on its own)."""
    K, n = images.shape[:2]
    flat = images.flatten(0, 1)
    if chunk is None or chunk >= len(flat):
        return _embed(net, flat).view(K, n, -1).mean(1)
    return torch.cat([_embed(net, piece) for piece in flat.split(chunk)]).view(K, n, -1).mean(1)


def distribution_matching_loss(
    net: nn.Module,
    real: Tensor,
    syn: Tensor,
    *,
    dsa: DSA | None = None,
    generator: Generator | None = None,
    implementation: str = "batched",
) -> tuple[Tensor, Tensor]:
    """``L = Σ_c ‖mean_i ψ(A_c(real[c, i])) − mean_j ψ(A_c(syn[c, j]))‖²`` and the per-class terms ``(K,)``.

    ``real`` ``(K, n, C, H, W)`` and ``syn`` ``(K, m, C, H, W)`` are class-major; ``ψ = net.embed``; ``A_c`` one
    siamese DSA draw per class from ``generator`` (in class order; ``dsa=None``: no augmentation). The real side
    is computed without a graph, so the loss is differentiable w.r.t. ``syn`` only (and ``net``'s parameters if
    they require grad; a method freezes them). ``implementation``: ``IMPLEMENTATIONS`` (see the module docstring).
    """
    validate.choice("implementation", implementation, IMPLEMENTATIONS)
    if real.dim() != 5 or syn.dim() != 5 or real.shape[0] != syn.shape[0] or real.shape[2:] != syn.shape[2:]:
        raise ValueError(
            f"expected real (K, n, C, H, W) and synthetic (K, m, C, H, W) batches with the same K and image shape, "
            f"got {tuple(real.shape)} and {tuple(syn.shape)}"
        )
    if dsa is not None and dsa.is_identity:
        dsa = None
    if dsa is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"augmentation needs a torch.Generator to draw from, got generator={generator!r}")
    if implementation == "batched":
        if dsa is not None:
            real, syn = dsa.siamese_per_class(real, syn, generator)
        return _mean_distance(net, real, syn)
    # "loop": the reference's structure, class by class (the same draws as siamese_per_class)
    bn = matching.has_batchnorm(net)
    reals, syns, per_class = [], [], []
    for c in range(real.shape[0]):
        x_real, x_syn = real[c], syn[c]
        if dsa is not None:
            s = dsa.sample(1, generator)
            x_real, x_syn = dsa.apply(x_real, s), dsa.apply(x_syn, s)
        if bn:  # the reference's batch-norm branch: one forward of all classes (below)
            reals.append(x_real)
            syns.append(x_syn)
            continue
        with torch.no_grad():
            mean_real = _embed(net, x_real).mean(0)
        per_class.append((mean_real - _embed(net, x_syn).mean(0)).pow(2).sum())
    if bn:
        return _mean_distance(net, torch.stack(reals), torch.stack(syns))
    per_class_t = torch.stack(per_class)
    return per_class_t.sum(), per_class_t


def _mean_distance(net: nn.Module, real: Tensor, syn: Tensor) -> tuple[Tensor, Tensor]:
    """One forward per side for all classes; ``(L, per-class terms)``."""
    with torch.no_grad():  # no graph is kept, so pieces cost nothing on a GPU either way
        mean_real = class_mean_embeddings(net, real, CPU_CHUNK if real.device.type == "cpu" else None)
    per_class = (mean_real - class_mean_embeddings(net, syn)).pow(2).sum(1)
    return per_class.sum(), per_class


class DistributionMatching(loop.ImageDistiller):
    """The state of a DM run (the synthetic images and their SGD optimiser, ``loop.ImageDistiller``) and its
    moves: ``match`` (the loss on one network and its gradient w.r.t. the images) and ``step`` (one iteration)."""

    method = "dm"
    divergence_hint = "the image learning rate lr_img is too high (the reference uses 1.0 for ConvNet; try 0.1)"

    def setup(self) -> None:
        """The implementation of the embeddings."""
        self.implementation = self.config.implementation

    def match(self, net: nn.Module) -> tuple[Tensor, Tensor]:
        """The DM loss on ``net`` (its parameters frozen here) and its gradient w.r.t. the images (left in
        ``images.grad``). Returns the loss and the per-class terms ``(K,)``, detached; the caller checks the loss
        and steps ``optimizer`` (so that a non-finite loss stops the run before the images change)."""
        net.requires_grad_(False)
        real = self.sample_real(self.batch_real)
        syn = self.images.view(self.num_classes, self.ipc, *self.images.shape[1:])
        loss, per_class = distribution_matching_loss(
            net, real, syn, dsa=self.dsa, generator=self.generator, implementation=self.implementation
        )
        (grad,) = torch.autograd.grad(loss, self.images)
        self.optimizer.zero_grad(set_to_none=True)
        self.images.grad = grad
        return loss.detach(), per_class.detach()

    def step(self, k: int) -> tuple[float, dict[str, float]]:
        """One iteration: a fresh network, the loss over all classes, one image update. Returns ``L``."""
        net = self.sampler.sample(self.generator)
        loss, _ = self.match(net)
        value = loop.check_finite("the distribution-matching loss", loss, self.images)
        self.optimizer.step()
        return value, {}

    def synthetic_set(self) -> SyntheticSet:
        meta: dict[str, Any] = {"batch_real_used": self.batch_real, "implementation": self.implementation}
        if self.dsa is not None:
            meta["strategy"] = self.dsa.strategy
        return SyntheticSet(self.images.detach().clone(), self.labels.clone(), None, meta)


def distill(train_set: ImageSet, ipc: int, *, generator: Generator, model=None, callback=None, **hparams):
    """DM: learn ``ipc`` images per class by matching mean embeddings of randomly initialised networks.

    ``model``: a network sampler or what becomes one (``samplers.as_sampler``; default a fresh ``"convnet"`` every
    iteration, e.g. ``samplers.FreshInit("convnet", width=32)``); its networks need ``embed``. ``hparams``: the
    fields of ``Config`` (``steps``, ``init``, ``lr_img``, ``batch_real``, ``strategy``, ``implementation``,
    ``checkpoint``, ...). ``callback(event)``: a ``loop.StepEvent`` after every iteration.
    """
    config = parse("dm", Config, hparams).resolved(train_set.name)
    return METHOD.run(DistributionMatching, config, train_set, ipc, generator, model, callback)


# quick: seconds; standard: the paper's settings with a quarter of its iterations; full: its 20 000
TINY = Tiny({"steps": 3, "batch_real": 8}, {"lr_img": 1e30}, TINY_CONVNET)

BUDGETS = by_profile(
    quick={"batch_real": 64, "lr_img": 3.0, 1: {"steps": 50}, 10: {"steps": 30}, 50: {"steps": 10}},
    standard={"steps": 5000, "batch_real": 256, "lr_img": 1.0},
    full={"steps": 20000},
)

METHOD = MethodInfo("dm", "distribution matching", "04", "sampler", "dsa", TINY, BUDGETS, "convnet")
