"""Dataset Condensation with gradient matching (DC; Zhao, Mopuri & Bilen, ICLR 2021).

The synthetic set ``S`` (``ipc`` images per class, label ``c`` fixed) is learned so that, for networks ``θ``
met along training, each synthetic class induces the same gradient as the real class:

    min_S  E_{θ_0 ~ P_θ0} [ Σ_{t=0}^{T-1}  Σ_c  D( ∇_θ ℓ(A(S_c); θ_t),  ∇_θ ℓ(A(T_c); θ_t) ) ]

    S  ← S − η_S · ∇_S Σ_c D(...)                     (SGD, lr_img 0.1, momentum 0.5)      outer step
    θ_{t+1} ← θ_t − η_θ · ∇_θ ℓ(A(S); θ_t)            (plain SGD, lr_net 0.01, ς_θ steps)    inner loop

``D`` is the layer-wise distance of ``course_utils.matching`` (``"ours"``: per output channel 1 − cos; also
``"mse"`` and ``"cos"``), ``ℓ`` the mean cross-entropy of one class's batch (``batch_real`` real images of
class ``c``, all ``ipc`` synthetic ones), ``A`` the identity for DC and a siamese differentiable augmentation
for DSA (``course_utils.methods.dsa``; the same transformation for ``S_c`` and ``T_c``).

Schedule (the reference code's ``get_loops``): every one of the ``iterations`` outer iterations draws a
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
Both give the same loss values. Only the parameters the distance compares are differentiated (``"ours"``: not the 1-D ones),
and the second-order backward runs to the images only, never to the network's parameters.

Long runs checkpoint (``checkpoint=path``, every ``checkpoint_every`` iterations, written atomically): the images,
the image optimiser's momentum, the generator's state and the loss history. Calling ``distill`` again with
the same path resumes where the run stopped and ends with the same result as an uninterrupted run.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import matching
from .. import checkpoint as checkpoint_io
from ..augment import DSA
from ..data import ImageSet
from ..models import get_model
from ..repro import derive_seed
from ..synthetic import SyntheticSet
from .selection import check_ipc

__all__ = ["LOOPS", "INITS", "GradientMatchingConfig", "GradientMatcher", "loop_schedule", "distill",
           "gradient_matching"]

#: (outer_loop, inner_loop) per IPC, as in the reference code.
LOOPS: dict[int, tuple[int, int]] = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}
#: Initialisations of the synthetic images: random real images of the class, or standard Gaussian noise.
INITS: tuple[str, ...] = ("real", "noise")
IMPLEMENTATION_CHOICES: tuple[str, ...] = ("auto",) + matching.IMPLEMENTATIONS


def loop_schedule(ipc: int, outer_loop: int | None = None, inner_loop: int | None = None) -> tuple[int, int]:
    """``(outer_loop, inner_loop)`` for ``ipc``: the reference's table, or the explicit values."""
    if outer_loop is None or inner_loop is None:
        if ipc not in LOOPS:
            raise ValueError(f"ipc={ipc} has no outer/inner loop schedule; scheduled ipcs: "
                             f"{', '.join(map(str, LOOPS))}; pass outer_loop= and inner_loop= for other values")
        default_outer, default_inner = LOOPS[ipc]
        outer_loop = default_outer if outer_loop is None else outer_loop
        inner_loop = default_inner if inner_loop is None else inner_loop
    return outer_loop, inner_loop


@dataclass(frozen=True)
class GradientMatchingConfig:
    """Hyperparameters of DC / DSA (defaults: the reference code's, except ``init``; see ``distill``)."""

    iterations: int = 1000            # outer iterations, each with a fresh network
    outer_loop: int | None = None     # matching steps per fresh network (None: LOOPS[ipc])
    inner_loop: int | None = None     # epochs of network training on S between matching steps (None: LOOPS[ipc])
    init: str = "real"                # real | noise
    distance: str = "ours"            # ours | mse | cos
    lr_img: float = 0.1               # SGD on the images
    momentum_img: float = 0.5
    lr_net: float = 0.01              # plain SGD of the inner loop
    batch_real: int = 256             # real images per class per matching step
    batch_train: int = 256            # batch of the inner loop
    bn_images_per_class: int = 16     # real images per class that set frozen batch-norm statistics
    model_kwargs: dict | None = None  # e.g. {"width": 32}
    implementation: str = "auto"      # auto | batched | loop
    checkpoint: str | None = None     # path of the checkpoint file (None: no checkpoints)
    checkpoint_every: int = 10        # iterations between checkpoints

    def __post_init__(self) -> None:
        for name in ("iterations", "batch_real", "batch_train", "bn_images_per_class", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("outer_loop", "inner_loop"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be an integer >= 1 or None (the schedule of the ipc), got {value!r}")
        if self.init not in INITS:
            raise ValueError(f"unknown init {self.init!r}; valid: {', '.join(INITS)}")
        matching.check_distance(self.distance)
        if self.implementation not in IMPLEMENTATION_CHOICES:
            raise ValueError(f"unknown implementation {self.implementation!r}; valid: {', '.join(IMPLEMENTATION_CHOICES)}")
        for name in ("lr_img", "lr_net"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0 or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if not isinstance(self.momentum_img, (int, float)) or not 0 <= self.momentum_img < 1:
            raise ValueError(f"momentum_img must be in [0, 1), got {self.momentum_img!r}")

    @classmethod
    def from_hparams(cls, method: str, **hparams: Any) -> "GradientMatchingConfig":
        """Build from keyword arguments; an unknown name is a TypeError listing the valid ones."""
        valid = [f.name for f in fields(cls)]
        unknown = [k for k in hparams if k not in valid]
        if unknown:
            raise TypeError(f"{method}: unknown hyperparameter(s) {', '.join(map(repr, unknown))}; "
                            f"valid: {', '.join(valid)}")
        if hparams.get("checkpoint") is not None:
            hparams["checkpoint"] = os.fspath(hparams["checkpoint"])
        return cls(**hparams)

    def as_dict(self) -> dict:
        return asdict(self)


ModelSpec = Union[str, Callable[[], nn.Module]]


class GradientMatcher:
    """The state of a DC/DSA run and its two moves: ``step`` (one outer matching step) and ``train_network``.

    Holds the synthetic images (a leaf tensor ``images``, class-major, ``(K·ipc, C, H, W)``), their SGD
    optimiser, and a per-class index of the real images for vectorised class-balanced sampling.
    """

    def __init__(self, train_set: ImageSet, ipc: int, *, generator: torch.Generator,
                 config: GradientMatchingConfig, dsa: DSA | None = None, model: ModelSpec = "convnet"):
        check_ipc(ipc, train_set)
        if isinstance(model, nn.Module):
            raise TypeError("DC/DSA draw a fresh network every iteration: pass a model name (e.g. 'convnet') or a "
                            "function returning a new nn.Module, not a module instance")
        if not isinstance(model, str) and not callable(model):
            raise TypeError(f"model must be a model name or a callable returning an nn.Module, got {model!r}")
        self.train_set, self.ipc, self.generator, self.config, self.model = train_set, ipc, generator, config, model
        self.dsa = None if dsa is None or dsa.is_identity else dsa
        self.outer_loop, self.inner_loop = loop_schedule(ipc, config.outer_loop, config.inner_loop)
        self.device = train_set.device
        info = train_set.info
        self.num_classes = K = train_set.num_classes
        impl = config.implementation
        self.implementation = ("batched" if self.device.type == "cuda" else "loop") if impl == "auto" else impl
        # padded (K, n_max) table of each class's indices, for drawing all classes' batches at once
        by_class = train_set.indices_by_class
        counts = torch.tensor([len(i) for i in by_class])
        self._class_index = torch.zeros(K, int(counts.max()), dtype=torch.long, device=self.device)
        for c, idx in enumerate(by_class):
            self._class_index[c, :len(idx)] = idx
        self._pad = (torch.arange(self._class_index.shape[1]).view(1, -1) >= counts.view(-1, 1)).to(generator.device)
        self.smallest_class = int(counts.min())
        self.batch_real = min(config.batch_real, self.smallest_class)
        # the synthetic set
        if config.init == "real":
            images = train_set.images[train_set.sample_balanced(ipc, generator)].clone()
        else:
            shape = (K * ipc, info.channels, info.image_size, info.image_size)
            images = torch.randn(shape, generator=generator, device=generator.device).to(self.device)
        self.images = images.requires_grad_(True)
        self.labels = torch.arange(K, device=self.device).repeat_interleave(ipc)
        self.optimizer = torch.optim.SGD([self.images], lr=config.lr_img, momentum=config.momentum_img)
        self.real_labels = torch.arange(K, device=self.device).view(K, 1).expand(K, self.batch_real)
        self.syn_labels = self.labels.view(K, ipc)

    # -- pieces ------------------------------------------------------------------------------------
    def fresh_network(self) -> nn.Module:
        """A new randomly initialised network, its weights drawn from a seed taken from the generator."""
        seed = derive_seed(self.generator)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if isinstance(self.model, str):
                info = self.train_set.info
                net = get_model(self.model, info.channels, info.num_classes, info.image_size,
                                **dict(self.config.model_kwargs or {}))
            else:
                net = self.model()
        if not isinstance(net, nn.Module):
            raise TypeError(f"the model factory returned {type(net).__name__}, not an nn.Module")
        return net.to(self.device).train()

    def sample_real(self, n: int) -> torch.Tensor:
        """``n`` random real images of every class, without replacement: ``(K, n, C, H, W)``, one draw for all classes."""
        keys = torch.rand(self._pad.shape, generator=self.generator, device=self.generator.device)
        pick = keys.masked_fill(self._pad, 2.0).topk(n, dim=1, largest=False).indices.to(self.device)
        return self.train_set.images[self._class_index.gather(1, pick)]

    # -- the two moves -----------------------------------------------------------------------------
    def step(self, net: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """The matching loss on ``net`` and its gradient w.r.t. the images (left in ``images.grad``).

        ``apply_update()`` then takes the image step (kept apart so a non-finite loss can stop the run first).
        Returns the loss and the per-class distances ``(K,)``, detached.
        """
        K, ipc = self.num_classes, self.ipc
        if matching.has_batchnorm(net):
            matching.freeze_batchnorm(net, self.sample_real(self.config.bn_images_per_class).flatten(0, 1))
        real = self.sample_real(self.batch_real)
        syn = self.images.view(K, ipc, *self.images.shape[1:])
        if self.dsa is not None:
            real, syn = matching.siamese_by_class(self.dsa, real, syn, self.generator)
        loss, per_class = matching.matching_loss(net, real, self.real_labels, syn, self.syn_labels,
                                                 distance=self.config.distance,
                                                 implementation=self.implementation)
        grad, = torch.autograd.grad(loss, self.images)
        self.optimizer.zero_grad(set_to_none=True)
        self.images.grad = grad
        return loss.detach(), per_class.detach()

    def apply_update(self) -> None:
        self.optimizer.step()

    def train_network(self, net: nn.Module, epochs: int) -> torch.Tensor:
        """``epochs`` passes of plain SGD (lr_net, batch_train) over the detached synthetic set; DSA per image for DSA.

        Returns the last batch's loss (detached).
        """
        x, y = self.images.detach(), self.labels
        opt = torch.optim.SGD(net.parameters(), lr=self.config.lr_net)
        net.train()
        n, bs = len(x), self.config.batch_train
        loss = torch.zeros((), device=self.device)
        for _ in range(epochs):
            order = torch.randperm(n, generator=self.generator, device=self.generator.device).to(self.device)
            for start in range(0, n, bs):
                idx = order[start:start + bs]
                xb = x[idx] if self.dsa is None else self.dsa(x[idx], self.generator)
                loss = F.cross_entropy(net(xb), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return loss.detach()

    # -- checkpoints ---------------------------------------------------------------------------------
    def state(self, iteration: int, history: list[float]) -> dict:
        return {"iteration": iteration, "images": self.images.detach().cpu(), "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state(), "history": list(history)}

    def load_state(self, state: dict) -> None:
        with torch.no_grad():
            self.images.copy_(state["images"].to(self.device))
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])

    def synthetic_set(self, method: str, history: list[float], extra: dict | None = None) -> SyntheticSet:
        return SyntheticSet(self.images.detach().clone(), self.labels.clone(), None,
                            {"method": method, "dataset": self.train_set.name, "ipc": self.ipc,
                             "num_classes": self.num_classes, "loss_history": list(history),
                             "hparams": {**self.config.as_dict(), "outer_loop": self.outer_loop,
                                         "inner_loop": self.inner_loop, "batch_real": self.batch_real,
                                         "model": self.model if isinstance(self.model, str) else repr(self.model),
                                         **(extra or {})}})


def _identity(method: str, matcher: GradientMatcher, extra: dict) -> dict:
    """What a checkpoint must agree on to be resumed (everything but the number of iterations and the path)."""
    cfg = {k: v for k, v in matcher.config.as_dict().items() if k not in ("iterations", "checkpoint", "checkpoint_every")}
    return {"method": method, "dataset": matcher.train_set.name, "ipc": matcher.ipc, "config": cfg,
            "model": matcher.model if isinstance(matcher.model, str) else repr(matcher.model), **extra}


def gradient_matching(train_set: ImageSet, ipc: int, *, generator: torch.Generator, model: ModelSpec | None,
                      callback: Callable[[int, dict], None] | None, config: GradientMatchingConfig,
                      dsa: DSA | None, method: str, extra_meta: dict | None = None) -> SyntheticSet:
    """The DC / DSA loop shared by ``dc.distill`` and ``dsa.distill`` (``dsa=None``: DC)."""
    matcher = GradientMatcher(train_set, ipc, generator=generator, config=config, dsa=dsa,
                              model="convnet" if model is None else model)
    identity = _identity(method, matcher, extra_meta or {})
    history: list[float] = []
    start = 0
    path = Path(config.checkpoint) if config.checkpoint is not None else None
    state = checkpoint_io.load(path, identity)
    if state is not None:
        matcher.load_state(state)
        start, history = state["iteration"], list(state["history"])
    t0 = time.perf_counter()
    for it in range(start, config.iterations):
        net = matcher.fresh_network()
        losses = []
        for ol in range(matcher.outer_loop):
            loss, per_class = matcher.step(net)
            value = float(loss)
            if not math.isfinite(value):
                err = FloatingPointError(
                    f"{method}: the matching loss became {value} at iteration {it + 1}, outer step {ol + 1} "
                    f"(lr_img={config.lr_img}, distance={config.distance!r}): the image learning rate is probably too "
                    "high, or the network's inner-loop training diverged (lr_net); the images before this step are "
                    "kept in err.synthetic" + (f" and the checkpoint {path}" if path else ""))
                err.synthetic = matcher.synthetic_set(method, history, extra_meta)
                raise err
            matcher.apply_update()
            losses.append(value)
            if ol == matcher.outer_loop - 1:
                break
            last = float(matcher.train_network(net, matcher.inner_loop))
            if not math.isfinite(last):
                raise FloatingPointError(
                    f"{method}: training the network on the synthetic set gave loss {last} at iteration {it + 1}, "
                    f"outer step {ol + 1}: lr_net={config.lr_net} is probably too high for these images")
        history.append(sum(losses) / len(losses))
        if callback is not None:
            callback(it + 1, {"loss": history[-1], "losses": losses, "seconds": time.perf_counter() - t0,
                              "images": matcher.images.detach()})
        if path is not None and ((it + 1) % config.checkpoint_every == 0 or it + 1 == config.iterations):
            checkpoint_io.save(path, identity, matcher.state(it + 1, history))
    return matcher.synthetic_set(method, history, extra_meta)


def distill(train_set: ImageSet, ipc: int, *, generator: torch.Generator, model: ModelSpec | None = None,
            callback: Callable[[int, dict], None] | None = None, **hparams: Any) -> SyntheticSet:
    """DC: learn ``ipc`` images per class by layer-wise gradient matching (no augmentation).

    ``model``: a model name of ``course_utils.models`` (default ``"convnet"``, options in ``model_kwargs``) or a
    function returning a new ``nn.Module``; a fresh one is drawn every iteration. ``hparams`` are the fields
    of ``GradientMatchingConfig`` (``iterations``, ``init``, ``distance``, ``lr_img``, ``batch_real``, ...).
    ``callback(iteration, {"loss", "losses", "seconds", "images"})`` runs after every iteration.
    Defaults follow the reference code, except ``init="real"`` (its default is noise; the DSA code uses real):
    the quick profile's short runs need the head start.
    """
    config = GradientMatchingConfig.from_hparams("dc", **hparams)
    return gradient_matching(train_set, ipc, generator=generator, model=model, callback=callback, config=config,
                             dsa=None, method="dc")
