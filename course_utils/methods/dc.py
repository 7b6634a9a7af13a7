"""Dataset Condensation with gradient matching (DC; Zhao, Mopuri & Bilen, ICLR 2021).

The synthetic set ``S`` (``ipc`` images per class, label ``c`` fixed) is learned so that, for networks ``θ``
met along training, each synthetic class induces the same gradient as the real class:

    min_S  E_{θ_0 ~ P_θ0} [ Σ_{t=0}^{T-1}  Σ_c  D( ∇_θ ℓ(A(S_c); θ_t),  ∇_θ ℓ(A(T_c); θ_t) ) ]

    S  ← S − η_S · ∇_S Σ_c D(...)                     (SGD, lr_img 0.1, momentum 0.5)      outer step
    θ_{t+1} ← θ_t − η_θ · ∇_θ ℓ(A(S); θ_t)            (plain SGD, lr_net 0.01, ς_θ steps)    inner loop

``D`` is the layer-wise distance of ``course_utils.matching`` (``"layerwise"``: per output channel 1 − cos; also
``"mse"`` and ``"cos"``), ``ℓ`` the mean cross-entropy of one class's batch (``batch_real`` real images of
class ``c``, all ``ipc`` synthetic ones), ``A`` the identity for DC and a siamese differentiable augmentation
for DSA (``course_utils.methods.dsa``; the same transformation for ``S_c`` and ``T_c``).

Schedule (the reference code's ``get_loops``): every one of the ``steps`` outer iterations draws a
FRESH network ``θ_0``; then ``T = outer_loop`` times: one matching step (all classes, one image update) and,
except after the last one, ``inner_loop`` epochs of training the network on the (detached, augmented for
DSA) synthetic set. Per IPC: 1 → (1, 1), 10 → (10, 50), 20 → (20, 25), 30 → (30, 20), 40 → (40, 15),
50 → (50, 10); any other IPC needs ``outer_loop`` and ``inner_loop`` given explicitly.

Batch norm: during a matching step batch-norm layers run in eval mode with statistics frozen from 16 real
images per class (``matching.freeze_batchnorm``); the inner loop trains them in train mode, as the reference.

One matching step costs, at its floor, the forward+backward passes of the real images (``K · batch_real``);
the synthetic side (``ipc`` images per class, second order) and the distance are small. Per-class gradients
are taken either class by class (``implementation="loop"``, the reference's structure) or for all classes in
one pass (``"batched"``: one forward, ``torch.func.vmap`` over classes). ``"auto"`` picks batched on CUDA, where
the per-class loop's many small kernels and autograd calls leave the device idle, and the loop on CPU, where the
passes cost the same however they are grouped and the vectorised backward's grouped kernels are slower
(``benchmarks/bench_gradient_matching.py``: on 2 CPU cores the loop reaches the floor, batched takes 3x as long).
Both give the same loss values. Only the parameters the distance compares are differentiated (``"layerwise"``: not
the 1-D ones),
and the second-order backward runs to the images only, never to the network's parameters.

One outer step of the shared loop (``course_utils.loop``) is one outer iteration: the loop owns checkpoints and
resume, the divergence stop, the callback and the history. ``model=`` is a network sampler (``networks``); the
default draws a fresh ConvNet (PyTorch's initialisation) every iteration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
import torch.nn as nn
from torch import Generator

from ..core import validate
from ..data.augment import DSAFields
from ..data.datasets import ImageSet
from ..nets.fit import train_epoch
from ..records.synthetic import INITS, SyntheticSet
from . import loop, matching
from .hparams import ImageSGD, LoopConfig, parse
from .registry import TINY_CONVNET, MethodInfo, Tiny, by_profile, listed_ipc

__all__ = ["LOOPS", "INITS", "METHOD", "Config", "DSAConfig", "GradientMatching", "loop_schedule", "distill"]

#: (outer_loop, inner_loop) per IPC, as in the reference code.
LOOPS: dict[int, tuple[int, int]] = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}
IMPLEMENTATION_CHOICES: tuple[str, ...] = ("auto",) + matching.IMPLEMENTATIONS


def loop_schedule(ipc: int, outer_loop: int | None = None, inner_loop: int | None = None) -> tuple[int, int]:
    """``(outer_loop, inner_loop)`` for ``ipc``: explicit values win, else the papers' table ``LOOPS``.

    An IPC the table does not list takes the schedule of the listed IPC ``registry.listed_ipc`` picks (the nearest,
    the smaller on a tie): IPC 3 runs as IPC 1 (1, 1), IPC 7 as IPC 10 (10, 50), IPC 100 as IPC 50 (50, 10).
    """
    default_outer, default_inner = LOOPS[listed_ipc(ipc, LOOPS)]
    return (
        default_outer if outer_loop is None else outer_loop,
        default_inner if inner_loop is None else inner_loop,
    )


@dataclass(frozen=True)
class Config(ImageSGD, LoopConfig):
    """Hyperparameters of DC (defaults: the reference code's, except ``init``; see ``distill``)."""

    steps: int = 1000  # outer iterations, each with a fresh network
    checkpoint_every: int = 10
    outer_loop: int | None = None  # matching steps per fresh network (None: LOOPS[ipc])
    inner_loop: int | None = None  # epochs of network training on S between matching steps (None: LOOPS[ipc])
    init: str = "real"  # real | noise
    distance: str = "layerwise"  # layerwise | mse | cos
    lr_img: float = 0.1  # SGD on the images
    momentum_img: float = 0.5
    lr_net: float = 0.01  # plain SGD of the inner loop
    batch_real: int = 256  # real images per class per matching step
    batch_train: int = 256  # batch of the inner loop
    bn_images_per_class: int = 16  # real images per class that set frozen batch-norm statistics
    implementation: str = "auto"  # auto | batched | loop

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("batch_real", "batch_train", "bn_images_per_class"):
            validate.positive_int(name, getattr(self, name))
        for name in ("outer_loop", "inner_loop"):
            validate.positive_int(name, getattr(self, name), allow_none=True)
        validate.choice("init", self.init, INITS)
        matching.check_distance(self.distance)
        validate.choice("implementation", self.implementation, IMPLEMENTATION_CHOICES)
        validate.positive_number("lr_img", self.lr_img)
        validate.positive_number("lr_net", self.lr_net)
        validate.number_in("momentum_img", self.momentum_img, 0, 1)

    def network_optimizer(self, params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
        """Plain SGD (``lr_net``) of the inner loop's network training."""
        return torch.optim.SGD(list(params), lr=self.lr_net)


@dataclass(frozen=True)
class DSAConfig(DSAFields, Config):
    """DC's hyperparameters plus the augmentation (``augment.DSAFields``): ``strategy`` (None:
    ``strategy_for(dataset)``), its magnitudes ``dsa_params`` and ``dsa_mode`` ("single": one op per draw, the
    reference's; "all")."""


class GradientMatching(loop.ImageDistiller):
    """The state of a DC/DSA run and its moves: ``match`` (one matching step), ``train_network`` and ``step``.

    Holds the synthetic images (a leaf tensor ``images``, class-major, ``(K·ipc, C, H, W)``) and their SGD
    optimiser (``loop.ImageDistiller``). Real batches come from ``ImageSet.sample_per_class`` (all classes in one
    draw).
    """

    method = "dc"
    divergence_hint = (
        "the image learning rate lr_img is too high, or the network's inner-loop training diverged (lr_net)"
    )

    def setup(self) -> None:
        """The schedule, the implementation of the per-class gradients and the labels of every matching step."""
        self.outer_loop, self.inner_loop = self.schedule(self.ipc)
        K = self.num_classes
        impl = self.config.implementation
        self.implementation = ("batched" if self.device.type == "cuda" else "loop") if impl == "auto" else impl
        self.real_labels = torch.arange(K, device=self.device).view(K, 1).expand(K, self.batch_real)
        self.syn_labels = self.labels.view(K, self.ipc)

    def schedule(self, ipc: int) -> tuple[int, int]:
        """``(outer_loop, inner_loop)``: matching steps per network, and epochs of network training between them
        (``loop_schedule``; a subclass that trains its networks otherwise says what its two numbers are)."""
        return loop_schedule(ipc, self.config.outer_loop, self.config.inner_loop)

    def match(self, net: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """The matching loss on ``net`` and its gradient w.r.t. the images (left in ``images.grad``).

        Returns the loss and the per-class distances ``(K,)``, detached; the caller checks the loss and steps
        ``optimizer`` (kept apart so that a non-finite loss stops the run before the images change).
        """
        K, ipc = self.num_classes, self.ipc
        if matching.has_batchnorm(net):
            matching.freeze_batchnorm(net, self.sample_real(self.config.bn_images_per_class).flatten(0, 1))
        real = self.sample_real(self.batch_real)
        syn = self.images.view(K, ipc, *self.images.shape[1:])
        if self.dsa is not None:
            real, syn = self.dsa.siamese_per_class(real, syn, self.generator)
        loss, per_class = matching.matching_loss(
            net,
            real,
            self.real_labels,
            syn,
            self.syn_labels,
            distance=self.config.distance,
            implementation=self.implementation,
        )
        (grad,) = torch.autograd.grad(loss, self.images)
        self.optimizer.zero_grad(set_to_none=True)
        self.images.grad = grad
        return loss.detach(), per_class.detach()

    def train_network(self, net: nn.Module, epochs: int) -> float:
        """``epochs`` passes of plain SGD (lr_net, batch_train) over the detached synthetic set
        (``nets.fit.train_epoch``; DSA per batch for DSA). Returns the last pass's mean loss."""
        opt = self.config.network_optimizer(net.parameters())
        loss = 0.0
        for _ in range(epochs):
            loss = train_epoch(
                net,
                opt,
                self.images.detach(),
                self.labels,
                generator=self.generator,
                batch_size=self.config.batch_train,
                augment=self.dsa,
            )
        return loss

    def step(self, k: int) -> tuple[float, dict[str, float]]:
        """One outer iteration: a fresh network, ``outer_loop`` matching steps with ``inner_loop`` epochs of
        network training between them. Returns the mean matching loss."""
        net = self.sampler.sample(self.generator)
        losses = []
        for ol in range(self.outer_loop):
            loss, _ = self.match(net)
            losses.append(loop.check_finite(f"the matching loss (outer step {ol + 1})", loss, self.images))
            self.optimizer.step()
            if ol < self.outer_loop - 1:
                last = self.train_network(net, self.inner_loop)
                loop.check_finite(f"training the network on the synthetic set (outer step {ol + 1})", last)
        return sum(losses) / len(losses), {}

    def synthetic_set(self) -> SyntheticSet:
        meta = {"outer_loop": self.outer_loop, "inner_loop": self.inner_loop, "batch_real_used": self.batch_real}
        if self.dsa is not None:
            meta["strategy"] = self.dsa.strategy
        return SyntheticSet(self.images.detach().clone(), self.labels.clone(), None, meta)


def distill(train_set: ImageSet, ipc: int, *, generator: Generator, model=None, callback=None, **hparams):
    """DC: learn ``ipc`` images per class by layer-wise gradient matching (no augmentation).

    ``model``: a network sampler or what becomes one (``samplers.as_sampler``; default a fresh ``"convnet"``
    every iteration, e.g. ``samplers.FreshInit("convnet", width=32)``). ``hparams``: the fields of ``Config``
    (``steps``, ``init``, ``distance``, ``lr_img``, ``batch_real``, ``checkpoint``, ...). ``callback(event)``: a
    ``loop.StepEvent`` after every iteration. Defaults follow the reference code, except ``init="real"`` (its
    default is noise; the DSA code uses real): short runs need the head start.
    """
    config = parse("dc", Config, hparams)
    return METHOD.run(GradientMatching, config, train_set, ipc, generator, model, callback)


# quick: lr_img 10x the papers' squeezes their 1000 iterations into seconds; standard: the papers' settings,
# 1000 iterations at IPC 1 and 100 above; full: 1000 everywhere
TINY = Tiny({"steps": 3, "batch_real": 8}, {"lr_img": 1e30}, TINY_CONVNET)

BUDGETS = by_profile(
    quick={
        "batch_real": 64,
        "lr_img": 3.0,
        1: {"steps": 15},
        10: {"steps": 1, "inner_loop": 5},
        50: {"steps": 1, "inner_loop": 2},
    },
    standard={"batch_real": 256, "lr_img": 0.1, 1: {"steps": 1000}, 10: {"steps": 100}, 50: {"steps": 100}},
    full={10: {"steps": 1000}, 50: {"steps": 1000}},
)

METHOD = MethodInfo("dc", "gradient matching", "03", "sampler", "dc", TINY, BUDGETS, "convnet")
