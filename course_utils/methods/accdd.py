r"""Accelerating Dataset Distillation via Model Augmentation (Acc-DD; Zhang et al., CVPR 2023): method ``"accdd"``.

Gradient matching (DC, ``methods/dc.py``) learns the synthetic set :math:`\mathcal S` so that every synthetic class
induces the gradient the real class induces, on many networks met along their training:

.. math::

    \min_{\mathcal S}\ \mathbb E_{\theta_0}\Big[\sum_{t=0}^{T-1}\sum_c D\big(
        \nabla_\theta\ell(\mathcal A(\mathcal S_c);\theta_t),\ \nabla_\theta\ell(\mathcal A(\mathcal T_c);\theta_t)
    \big)\Big].

Its cost is the many networks: thousands of outer iterations, each from a fresh :math:`\theta_0 \sim p(\theta_0)`
(IDC, which Acc-DD builds on, trains each of them on real data between matching steps). Acc-DD changes only where
:math:`\theta_0` comes from (*model augmentation*):

* **early-stage models**: :math:`\tilde\theta_1, \dots, \tilde\theta_M` trained for a few epochs on the real data
  (the reference: 5 networks, 2 epochs on CIFAR). Their gradients already carry what the real data teaches early in
  training, where a random initialisation's gradients mostly say "leave the random start"; a set matched on them
  needs fewer outer iterations;
* **weight perturbation**: each draw moves the chosen network along ``directions`` random filter-normalised
  directions :math:`d_k` (Li et al., 2018; biases and normalisation parameters untouched),

  .. math::

      \theta_0 = \tilde\theta_m + \sum_k \rho_k d_k,\qquad
      d_{k,i} \leftarrow d_{k,i}\,\frac{\lVert\tilde\theta_{m,i}\rVert}{\lVert d_{k,i}\rVert},\qquad
      \rho_k = \pm U(\rho_{\min}, \rho_{\max}),

  for every filter :math:`i` (``samplers.perturb``; the reference's :math:`\rho \in [0.01, 0.09]`, random sign), so
  that a handful of trained networks becomes an unlimited supply of different ones near them, for free.

One outer step (``ModelAugmentedMatching.step``) draws :math:`\theta_0` from the sampler and runs
``outer_loop`` = :math:`T` times: one matching step (DC's ``GradientMatching.match``: per-class gradients,
``distance``, siamese DSA of each class's real and synthetic batch; one SGD step on the images),

.. math::  \mathcal S \leftarrow \mathcal S - \eta_{\mathcal S}\,\nabla_{\mathcal S}\sum_c D(\dots),

then, except after the last one, ``inner_loop`` SGD updates of the network on **real** batches (IDC's inner loop;
DC trains on :math:`\mathcal S` instead),

.. math::  \theta_{t+1} = \theta_t - \eta_\theta\,\nabla_\theta\,\ell(\mathcal A'(\mathcal T_b);\theta_t)
           \quad(\text{momentum } 0.9,\ \text{weight decay } 5\cdot10^{-4}),

on ``batch_net`` random real images, each augmented on its own (DSA with per-image parameters, cutout replaced by
CutMix with probability ``cutmix``, as the reference). The three samplers notebook 07 compares are just three values
of ``model=``: (a) ``samplers.FreshInit`` (IDC without multi-formation), (b) an ``EarlyStagePool`` without
perturbation, (c) with it (Acc-DD).

Defaults follow the reference code (``ncsu-dk-lab/Acc-DD``, IDC's ``argument.py``): ``outer_loop`` 100,
``inner_loop`` 8 (its 500 real images per inner step in batches of 64), ``batch_real`` 64, ``distance`` "mse",
image SGD momentum 0.5, augmentation ``color_crop_cutout`` with every op applied, a pool of 5 ConvNets trained 2
epochs with the network-training settings. Not the reference's: ``lr_img`` (its images are unnormalised pixels and
its MNIST metric is l1; here they are normalised and the distance is the squared error, so the value is ours: of 0.1,
0.3, 1, 10 and 100, 1 gave the best MNIST sets in short runs at IPC 10 with ConvNet-32, and it moves the images as
far per step at width 128); its ``mse`` compares only the convolution weights' gradients, the course's
``matching.gradient_distance`` every parameter's; and IDC's multi-formation (several small images decoded from one
stored image) is not implemented: the method here is Acc-DD on IDC-I. CutMix in the network updates is implemented.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Generator, Tensor

from ..core import validate
from ..data.augment import DSA, DSAFields, parse_strategy
from ..data.datasets import ImageSet
from ..nets import trajectories
from ..nets.samplers import (
    EarlyStagePool,
    FreshInit,
    NetworkSampler,
    check_perturbation,
)
from ..records.synthetic import INITS, SyntheticSet
from . import loop, matching
from .dc import IMPLEMENTATION_CHOICES, GradientMatching
from .hparams import ImageSGD, LoopConfig, parse
from .registry import TINY_CONVNET, MethodInfo, Preparation, Tiny, by_profile

__all__ = [
    "METHOD",
    "VARIANTS",
    "Config",
    "ModelAugmentedMatching",
    "cutmix",
    "class_gradient_cosines",
    "flat_class_gradients",
    "early_stage_pool",
    "pool_folder",
    "variant",
    "distill",
    "distill_interleaved",
]

#: What a run's sampler is, as the set's meta records it: (a) fresh random networks, (b) early-stage networks as
#: trained, (c) early-stage networks perturbed at every draw (Acc-DD).
VARIANTS: tuple[str, ...] = ("fresh", "early_stage", "early_stage_perturbed")


@dataclass(frozen=True)
class Config(DSAFields, ImageSGD, LoopConfig):
    """Hyperparameters of Acc-DD (defaults: the reference code's, except ``lr_img``; see the module docstring), with
    DSA's (``augment.DSAFields``; here ``strategy`` "color_crop_cutout" and ``dsa_mode`` "all", IDC's matching
    augmentation). ``pool_*``, ``perturb``, ``magnitude`` and ``directions`` say which pool ``model=None`` builds
    (and how ``model=<an ExpertBuffer>`` is perturbed); a sampler given as ``model`` carries its own settings."""

    steps: int = 500  # outer iterations, each with a newly drawn network
    checkpoint_every: int = 1  # an outer iteration holds outer_loop matching steps: save after each
    outer_loop: int = 100  # matching steps per network (T)
    inner_loop: int = 8  # SGD updates of the network on real batches after each matching step but the last
    batch_net: int = 64  # real images per network update
    lr_net: float = 0.01
    momentum_net: float = 0.9
    weight_decay_net: float = 5e-4
    cutmix: float = 0.5  # probability of CutMix on a network-update batch (0: never)
    init: str = "real"  # real | noise
    distance: str = "mse"  # mse | layerwise | cos (matching.DISTANCES)
    lr_img: float = 1.0  # SGD on the images (normalised pixels)
    momentum_img: float = 0.5
    batch_real: int = 64  # real images per class per matching step (clipped to the smallest class)
    bn_images_per_class: int = 16  # real images per class that set frozen batch-norm statistics
    implementation: str = "auto"  # auto | batched | loop (dc.GradientMatching)
    strategy: str | None = "color_crop_cutout"
    dsa_mode: str = "all"
    pool_networks: int = 5  # model=None: networks in the early-stage pool
    pool_epochs: int = 2  # model=None: epochs each is trained on the real data
    perturb: bool = True  # perturb every drawn pool network
    magnitude: tuple[float, float] = (0.01, 0.09)  # ρ ~ ±U(low, high)
    directions: int = 2  # random directions per perturbation

    def __post_init__(self) -> None:
        super().__post_init__()
        validate.positive_int("outer_loop", self.outer_loop)
        validate.non_negative_int("inner_loop", self.inner_loop)
        for name in ("batch_net", "batch_real", "bn_images_per_class", "pool_networks", "pool_epochs"):
            validate.positive_int(name, getattr(self, name))
        validate.positive_number("lr_net", self.lr_net)
        validate.number_in("momentum_net", self.momentum_net, 0, 1)
        validate.positive_number("weight_decay_net", self.weight_decay_net, allow_zero=True)
        validate.number_in("cutmix", self.cutmix, 0, 1, closed_high=True)
        validate.choice("init", self.init, INITS)
        matching.check_distance(self.distance)
        validate.positive_number("lr_img", self.lr_img)
        validate.number_in("momentum_img", self.momentum_img, 0, 1)
        validate.choice("implementation", self.implementation, IMPLEMENTATION_CHOICES)
        if not isinstance(self.perturb, bool):
            raise ValueError(f"perturb must be True or False, got {self.perturb!r}")
        magnitude, _ = check_perturbation(self.magnitude, self.directions)
        object.__setattr__(self, "magnitude", magnitude)  # a list (from JSON) becomes the tuple

    def network_optimizer(self, params: Iterable[Tensor]) -> torch.optim.Optimizer:
        """SGD (``lr_net``, ``momentum_net``, ``weight_decay_net``) of the network's updates on real data."""
        return torch.optim.SGD(
            list(params), lr=self.lr_net, momentum=self.momentum_net, weight_decay=self.weight_decay_net
        )

    def network_augmentation(self) -> DSA | None:
        """The per-image augmentation of the network updates' real batches: the matching strategy without cutout
        when CutMix is on (the reference's), None for none (call ``resolved`` first)."""
        matching_dsa = self.augmentation()
        ops = () if matching_dsa is None else parse_strategy(matching_dsa.strategy)
        if self.cutmix > 0:
            ops = tuple(op for op in ops if op != "cutout")
        dsa = DSA("_".join(ops) or "none", self.dsa_params, mode=self.dsa_mode)
        return None if dsa.is_identity else dsa


def variant(sampler: NetworkSampler) -> str:
    """Which of ``VARIANTS`` a sampler is (another sampler: its spec's name)."""
    if isinstance(sampler, EarlyStagePool):
        return "early_stage" if sampler.magnitude is None else "early_stage_perturbed"
    if isinstance(sampler, FreshInit):
        return "fresh"
    return str(sampler.spec().get("sampler", type(sampler).__name__))


def cutmix(x: Tensor, generator: Generator) -> tuple[Tensor, Tensor, float]:
    """CutMix (Yun et al., ICCV 2019) with λ ~ Beta(1, 1) = U(0, 1): a box of area ≈ (1 − λ)·H·W around a uniform
    centre, clipped to the image, is pasted from a random permutation of the batch.

    Returns the mixed batch, the permutation and the share of every image that is still its own (after clipping):
    the loss is ``share · CE(out, y) + (1 − share) · CE(out, y[perm])``. All draws from ``generator``.
    """
    n, _, h, w = x.shape
    gdev = generator.device
    lam, cy, cx = torch.rand(3, generator=generator, device=gdev).tolist()
    perm = torch.randperm(n, generator=generator, device=gdev).to(x.device)
    cut = math.sqrt(1.0 - lam)
    ch, cw, cy, cx = int(h * cut), int(w * cut), int(cy * h), int(cx * w)
    y1, y2 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    x1, x2 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    mixed = x.clone()
    mixed[:, :, y1:y2, x1:x2] = x[perm, :, y1:y2, x1:x2]
    return mixed, perm, 1.0 - (y2 - y1) * (x2 - x1) / (h * w)


class ModelAugmentedMatching(GradientMatching):
    """The state of an Acc-DD run: DC's gradient-matching state (``GradientMatching``: the images, their optimiser,
    ``match``), with networks drawn from a (pool) sampler and trained on real data between matching steps.

    ``outer_loop`` and ``inner_loop`` mean what they mean in DC: matching steps per network, and the network's
    training between them (here ``inner_loop`` SGD updates on real batches; DC: epochs on the synthetic set).
    """

    method = "accdd"
    divergence_hint = (
        "the image learning rate lr_img is too high (the mse distance grows with the square of the gradients), or "
        "the network's training on real data diverged (lr_net)"
    )

    def setup(self) -> None:
        """DC's state, plus the per-image augmentation of the network updates (``Config.network_augmentation``) and
        the real batch of each update."""
        super().setup()
        self.net_dsa = self.config.network_augmentation()
        self.batch_net = min(self.config.batch_net, len(self.train_set))

    def schedule(self, ipc: int) -> tuple[int, int]:
        return self.config.outer_loop, self.config.inner_loop

    def train_on_real(self, net: nn.Module, optimizer: torch.optim.Optimizer, steps: int) -> Tensor:
        """``steps`` SGD updates of ``net`` on batches of ``batch_net`` random real images (without replacement
        within a batch), each image augmented on its own (``net_dsa``), CutMix with probability ``cutmix``.
        Returns the mean loss (detached)."""
        net.train()
        g, gdev = self.generator, self.generator.device
        images, labels = self.train_set.images, self.train_set.labels
        total = torch.zeros((), device=self.device)
        for _ in range(steps):
            idx = torch.randperm(len(images), generator=g, device=gdev)[: self.batch_net].to(self.device)
            x, y = images[idx], labels[idx]
            if self.net_dsa is not None:
                x = self.net_dsa(x, g)
            if self.config.cutmix > 0 and float(torch.rand((), generator=g, device=gdev)) < self.config.cutmix:
                x, perm, share = cutmix(x, g)
                out = net(x)
                loss = share * F.cross_entropy(out, y) + (1 - share) * F.cross_entropy(out, y[perm])
            else:
                loss = F.cross_entropy(net(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach()
        return total / max(steps, 1)

    def step(self, k: int) -> tuple[float, dict[str, float]]:
        """One outer iteration: draw a network, then ``outer_loop`` matching steps with ``inner_loop`` real-data
        updates of the network between them. Returns the mean matching loss; ``metrics``: the mean real-data loss
        of the first and of the last block of network updates (when there are any).

        On a non-finite value the images and their optimiser go back to where this step started (the set after
        step k − 1), so the divergence error carries the last good set."""
        config = self.config
        net = self.sampler.sample(self.generator)
        optimizer = config.network_optimizer(net.parameters())
        start_images, start_optimizer = self.images.detach().clone(), copy.deepcopy(self.optimizer.state_dict())
        T = self.outer_loop
        losses, net_losses = [], []
        try:
            for t in range(T):
                loss, _ = self.match(net)
                losses.append(loop.check_finite(f"the matching loss (matching step {t + 1}/{T})", loss, self.images))
                self.optimizer.step()
                if t < T - 1 and self.inner_loop > 0:  # the last update would train a network no step uses
                    net_loss = self.train_on_real(net, optimizer, self.inner_loop)
                    net_losses.append(
                        loop.check_finite(f"training the network on real data (after matching step {t + 1})", net_loss)
                    )
        except loop.NonFiniteError:
            with torch.no_grad():
                self.images.copy_(start_images)
            self.optimizer.load_state_dict(start_optimizer)
            raise
        metrics = {"net_loss_first": net_losses[0], "net_loss_last": net_losses[-1]} if net_losses else {}
        return sum(losses) / len(losses), metrics

    def synthetic_set(self) -> SyntheticSet:
        seconds = getattr(self.sampler, "pretrain_seconds", None)
        meta: dict[str, Any] = {
            "variant": variant(self.sampler),
            "pretrain_seconds": 0.0 if isinstance(self.sampler, FreshInit) else seconds,
            "outer_loop": self.outer_loop,
            "inner_loop": self.inner_loop,
            "batch_real_used": self.batch_real,
            "batch_net_used": self.batch_net,
        }
        if self.dsa is not None:
            meta["strategy"] = self.dsa.strategy
        return SyntheticSet(self.images.detach().clone(), self.labels.clone(), None, meta)


def flat_class_gradients(net: nn.Module, images: Tensor, labels: Tensor) -> Tensor:
    r"""The real-data gradient of every class, all parameters flattened into one vector:  row c is
    :math:`g_c(\theta) = \nabla_\theta\,\ell(\mathcal T_c;\theta)`, for a class-major batch (``images``
    ``(K, n, C, H, W)``, ``labels`` ``(K, n)``). A ``(K, P)`` tensor, detached: the targets a matching step pulls the
    synthetic gradients towards on this network."""
    return torch.cat([g.flatten(1) for g in matching.class_gradients(net, images, labels)], dim=1)


def class_gradient_cosines(first: nn.Module, second: nn.Module, images: Tensor, labels: Tensor) -> Tensor:
    r"""How differently two networks ask the images to move: per class c, the cosine between their real-data gradients

    .. math::  \cos_c = \frac{\langle g_c(\theta), g_c(\theta')\rangle}{\lVert g_c(\theta)\rVert\,
               \lVert g_c(\theta')\rVert}

    (``flat_class_gradients``), on the same batch for both networks, so that only the networks differ. A cosine near
    1 means the second network gives the images the same targets as the first; model augmentation wants draws whose
    targets differ. Returns a ``(K,)`` tensor on the images' device. The networks must share an architecture."""
    shapes = [p.shape for p in first.parameters()], [p.shape for p in second.parameters()]
    if shapes[0] != shapes[1]:
        raise ValueError(
            f"the two networks must share an architecture to compare their gradients: {len(shapes[0])} parameters "
            f"of {sum(math.prod(s) for s in shapes[0])} numbers against {len(shapes[1])} of "
            f"{sum(math.prod(s) for s in shapes[1])}"
        )
    a, b = (flat_class_gradients(net, images, labels) for net in (first, second))
    return F.cosine_similarity(a, b, dim=1)


def pool_folder(root: str | os.PathLike | None = None) -> Path:
    """Where ``early_stage_pool`` keeps its networks: ``root``, or ``<output>/early_stage_pools``."""
    from ..records.results import output_dir

    return Path(root) if root is not None else output_dir() / "early_stage_pools"


def early_stage_pool(
    train_set: ImageSet,
    networks: int = 5,
    epochs: int = 2,
    *,
    model: FreshInit | str = "convnet",
    perturb: bool = True,
    magnitude: tuple[float, float] = (0.01, 0.09),
    directions: int = 2,
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    batch_size: int = 64,
    strategy: str | None = None,
    seed: int = 0,
    root: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    callback: Callable[[trajectories.ExpertEvent], None] | None = None,
) -> tuple[EarlyStagePool, float]:
    """An early-stage pool: ``networks`` networks of ``model`` (a name, or a ``FreshInit`` with its options such as
    ``width``) trained ``epochs`` epochs on ``train_set`` (SGD ``lr``,
    ``momentum``, ``weight_decay``, batches of ``batch_size``, DSA ``strategy`` per batch, None: the dataset's), and
    the seconds their training took.

    The networks are short experts (``trajectories.train_experts``): stored under ``pool_folder(root)`` in a folder
    keyed by everything that determines them, reused by the next call with the same settings (which trains
    nothing), grown when more networks are asked for, resumed after a kill. The seconds are those recorded when they
    were trained, also when they are loaded. ``perturb``: perturb every draw (``magnitude``, ``directions``).
    """
    validate.positive_int("networks", networks)
    magnitude, directions = check_perturbation(magnitude, directions)  # before any training
    if not isinstance(perturb, bool):
        raise ValueError(f"perturb must be True or False, got {perturb!r}")
    spec = trajectories.ExpertSpec(
        model=model,
        epochs=epochs,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        batch_size=batch_size,
        strategy=strategy,
        seed=seed,
    )
    folder = pool_folder(root)
    buffer = trajectories.train_experts(train_set, networks, spec, root=folder, device=device, callback=callback)
    pool = buffer.pool(magnitude=magnitude if perturb else None, directions=directions)
    return pool, float(pool.pretrain_seconds or 0.0)


def distill(train_set: ImageSet, ipc: int, *, generator: Generator, model=None, callback=None, **hparams):
    """Acc-DD: learn ``ipc`` images per class by gradient matching on early-stage networks, perturbed at every draw.

    ``model``: which networks the matching uses (``networks``):

    - ``None`` (default): an early-stage pool of ``pool_networks`` ConvNets (width 128) trained ``pool_epochs``
      epochs on ``train_set`` with the network-training settings (``lr_net``, ``momentum_net``,
      ``weight_decay_net``, ``batch_net``, the dataset's DSA), built by ``early_stage_pool`` and cached under
      ``<output>/early_stage_pools`` (the first call trains it, later ones load it), perturbed when ``perturb``;
    - a ``trajectories.ExpertBuffer`` (e.g. from ``early_stage_pool``'s folder or ``train_experts``): its networks
      at their last epoch, perturbed with this config's ``magnitude`` and ``directions`` when ``perturb``;
    - any network sampler or what becomes one (``nets.model_argument``): an ``EarlyStagePool`` as it is; a model name,
      a function or ``FreshInit`` draws fresh random networks (variant "fresh", IDC without multi-formation).

    ``hparams``: the fields of ``Config``. ``callback(event)``: a ``loop.StepEvent`` after every outer iteration
    (``metrics``: ``net_loss_first``, ``net_loss_last``). The set's meta records ``variant`` (``VARIANTS``) and
    ``pretrain_seconds`` (the pool's training time; 0 for fresh networks, None when unknown).
    """
    config = parse("accdd", Config, hparams).resolved(train_set.name)
    validate.ipc(ipc, train_set)  # before a pool is trained for nothing
    if model is None:
        model, _ = early_stage_pool(
            train_set,
            config.pool_networks,
            config.pool_epochs,
            perturb=config.perturb,
            magnitude=config.magnitude,
            directions=config.directions,
            lr=config.lr_net,
            momentum=config.momentum_net,
            weight_decay=config.weight_decay_net,
            batch_size=config.batch_net,
        )
    perturbation = {"perturb": config.perturb, "magnitude": config.magnitude, "directions": config.directions}
    return METHOD.run(ModelAugmentedMatching, config, train_set, ipc, generator, model, callback, **perturbation)


def distill_interleaved(
    train_set: ImageSet,
    ipc: int,
    models: Mapping[str, Any],
    *,
    generators: Mapping[str, Generator],
    callback: Callable[[str, loop.StepEvent], None] | None = None,
    **hparams,
) -> dict[str, SyntheticSet]:
    """Several Acc-DD runs with the same hyperparameters and different ``model=`` (``{name: model}``, read as
    ``distill`` reads it; None is not accepted: build the pool first), interleaved by ``loop.run_interleaved``: one
    outer iteration of each in turn, so that their per-iteration seconds are measured alternately and a drifting
    machine slows them alike. Each run's set is bit-identical to ``distill(train_set, ipc,
    generator=generators[name], model=models[name], **hparams)``. ``callback(name, event)`` after every iteration."""
    config = parse("accdd", Config, hparams).resolved(train_set.name)
    validate.ipc(ipc, train_set)
    if any(model is None for model in models.values()):
        raise ValueError(
            "distill_interleaved needs every model= given (a pool, a sampler, a name): build the pool first"
        )
    perturbation = {"perturb": config.perturb, "magnitude": config.magnitude, "directions": config.directions}
    runs = {
        name: (ModelAugmentedMatching, {"sampler": METHOD.sampler(model, train_set=train_set, **perturbation)})
        for name, model in models.items()
    }
    return loop.run_interleaved(
        runs, train_set, ipc, generators=generators, configs={name: config for name in models}, callback=callback
    )


def prepare(p: Preparation) -> tuple[dict, float]:
    """Notebook 08: a pool of ``settings["networks"]`` networks of the profile's architecture trained
    ``settings["epochs"]`` epochs (stored keyed, reused); their training seconds."""
    pool, seconds = early_stage_pool(p.train, p.settings["networks"], p.settings["epochs"], **p.stored("pools"))
    return {"model": pool}, float(seconds)


# fresh networks (its pool samplers and model=None: tests/test_accdd.py)
TINY = Tiny(
    {"steps": 3, "outer_loop": 2, "inner_loop": 2, "batch_real": 8, "batch_net": 16}, {"lr_img": 1e30}, TINY_CONVNET
)

BUDGETS = by_profile(
    quick={
        "outer_loop": 5,
        "inner_loop": 4,
        "batch_real": 64,
        "lr_img": 1.0,
        1: {"steps": 3},
        10: {"steps": 2},
        50: {"steps": 1},
    },
    standard={"steps": 100, "outer_loop": 100, "inner_loop": 8, "batch_real": 64, "lr_img": 1.0},
    full={"steps": 500},
)

PREPARE = by_profile({"networks": 2, "epochs": 1}, {"networks": 5, "epochs": 2})

METHOD = MethodInfo("accdd", "model augmentation", "07", "early_stage", "dsa", TINY, BUDGETS, None, prepare, PREPARE)
