r"""Dataset distillation by unrolled bilevel optimisation (Wang, Zhu, Torralba & Efros, 2018): method ``"dd"``.

The synthetic images :math:`\tilde x` (with fixed, class-balanced labels :math:`\tilde y`) and one step size per
unrolled step are learned so that a network trained on them for :math:`T` plain SGD steps does well on real data:

.. math::

    \tilde x^\star, \tilde\eta^\star = \arg\min_{\tilde x,\tilde\eta}\;
        \mathbb E_{\theta_0\sim p(\theta_0)}\; \ell\big(x_{\text{real}}, y_{\text{real}};\ \theta_T\big),
    \qquad
    \theta_{t+1} = \theta_t - \tilde\eta_t\, \nabla_\theta\, \ell\big(\tilde x_{g(t)}, \tilde y_{g(t)};\ \theta_t\big),
    \quad t = 0..T-1,

with :math:`\tilde\eta_t = \operatorname{softplus}(\rho_t) = \log(1+e^{\rho_t}) > 0` (the positive
parametrisation; :math:`\rho` is what the optimiser sees). The synthetic set is split into ``distill_steps``
groups (each ``ipc / distill_steps`` images per class); step :math:`t` uses group
:math:`g(t) = t \bmod \text{distill\_steps}`, and the set is passed over ``distill_epochs`` times, so
:math:`T = \text{distill\_steps}\cdot\text{distill\_epochs}`.

The hypergradient is reverse-mode differentiation *through the whole unroll*: with
:math:`L = \ell(x_{\text{real}};\theta_T)` and :math:`g_t = \nabla_\theta \ell(\tilde x_{g(t)};\theta_t)`,

.. math::

    \frac{\partial L}{\partial \tilde\eta_t} = -\Big(\frac{\partial L}{\partial \theta_{t+1}}\Big)^{\!\top} g_t,
    \qquad
    \frac{\partial L}{\partial \theta_t} = \Big(I - \tilde\eta_t \nabla^2_\theta \ell(\tilde x_{g(t)};\theta_t)\Big)
        \frac{\partial L}{\partial \theta_{t+1}},
    \qquad
    \frac{\partial L}{\partial \tilde x_{g(t)}} \mathrel{+}= -\tilde\eta_t\,
        \Big(\frac{\partial^2 \ell(\tilde x_{g(t)};\theta_t)}{\partial \tilde x\,\partial\theta}\Big)
        \frac{\partial L}{\partial \theta_{t+1}} .

Autograd computes these Hessian-vector products when every inner gradient is taken with ``create_graph=True``;
``higher.innerloop_ctx`` does that bookkeeping (a functional copy of the network and a differentiable SGD whose
learning rate is overridden by the tensor :math:`\tilde\eta_t` at each step). Every :math:`\theta_t` and the
activations of every inner step stay alive until the outer backward pass, so memory and time grow linearly
in :math:`T` (``measure_unroll_cost``): this is why later methods (gradient matching, trajectory matching, implicit
gradients) avoid long unrolls.

Two variants, chosen by the network sampler ``model=`` (``course_utils.networks``):

- fixed init (``samplers.FixedInit``, or an ``nn.Module``: its weights): one initialisation :math:`\theta_0` at
  every outer step; the result is meant to train *that* network (``meta["fixed_init"]`` holds it);
- random init (a model name or ``samplers.FreshInit``): a fresh :math:`\theta_0\sim p(\theta_0)` at every outer
  step; the result should train unseen initialisations.

The method's own evaluation (``evaluate_schedule``) replays the unroll: :math:`T` plain SGD steps with the learned
:math:`\tilde\eta_t` on the groups in order, from the fixed :math:`\theta_0` or from fresh ones. The course's
protocol (``training.evaluate``: many epochs, momentum, a constant lr) is a different training procedure.

Facts from the paper's reference setting: Adam(betas 0.5, 0.999) on images
and step sizes, initial step size 0.02, 1 image per class per step, 10 steps × 3 epochs, real batches of 1024,
images initialised from Gaussian noise, networks from Xavier-normal weights and zero biases (``weight_init``);
MNIST/LeNet reaches 93.8 % (fixed init, 10 images) and 79.5 ± 8.1 % (random init, 100 images).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Generator

from ..core import cost, validate
from ..core.repro import resolve_device, run_seed
from ..data.datasets import ImageSet
from ..evaluation.training import EvalResult, accuracy
from ..nets import samplers
from ..nets.fit import sgd_steps
from ..nets.samplers import NetworkSampler as Sampler
from ..records.synthetic import INITS, SyntheticSet, class_labels, initial_images
from . import loop
from .hparams import LoopConfig, parse
from .registry import MethodInfo, Preparation, Tiny, by_profile

try:  # the differentiable-optimiser library; imported lazily so course_utils works without it
    import higher
except ImportError:  # pragma: no cover - exercised only when higher is missing
    higher = None

__all__ = [
    "Config",
    "distill",
    "unrolled_loss",
    "step_groups",
    "softplus_inverse",
    "train_with_schedule",
    "evaluate_schedule",
    "measure_unroll_cost",
    "UnrollCost",
]


# --------------------------------------------------------------------------------------------------
# the core: one unrolled inner loop, differentiable w.r.t. the images and the step sizes
# --------------------------------------------------------------------------------------------------
def softplus_inverse(eta: float) -> float:
    """ρ with softplus(ρ) = η, i.e. ρ = log(e^η − 1) (η > 0)."""
    if not eta > 0:
        raise ValueError(f"a step size must be > 0, got {eta!r}")
    return eta + math.log(-math.expm1(-eta))  # = log(e^η − 1), stable for small and large η


def step_groups(
    num_classes: int, ipc: int, distill_steps: int, device: str | torch.device = "cpu"
) -> list[torch.Tensor]:
    """Positions of the images each inner step uses, for a set ordered class by class (``ipc`` per class).

    Group ``s`` holds, for every class c, the ``ipc // distill_steps`` images at per-class slots
    ``s·m .. (s+1)·m − 1`` (m = ipc // distill_steps), i.e. positions ``c·ipc + s·m + j``.
    """
    if ipc % distill_steps:
        valid = [d for d in range(1, ipc + 1) if ipc % d == 0]
        raise ValueError(f"distill_steps={distill_steps} must divide ipc={ipc}; valid: {', '.join(map(str, valid))}")
    m = ipc // distill_steps
    classes = torch.arange(num_classes, device=device).view(-1, 1) * ipc
    return [(classes + s * m + torch.arange(m, device=device)).flatten() for s in range(distill_steps)]


def unrolled_loss(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    step_sizes: torch.Tensor,
    groups: Sequence[torch.Tensor],
    real_x: torch.Tensor,
    real_y: torch.Tensor,
    *,
    inner_loss: Callable = F.cross_entropy,
    outer_loss: Callable = F.cross_entropy,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Outer loss after ``len(step_sizes)`` differentiable SGD steps from ``model``'s weights θ₀.

    .. math::
        \theta_{t+1} = \theta_t - \eta_t \nabla_\theta\, \ell_{in}(f(\tilde x_{g(t)};\theta_t), \tilde y_{g(t)}),\quad
        L = \ell_{out}(f(x_{real};\theta_T), y_{real}),\quad g(t) = t \bmod |\text{groups}|.

    θ₀ is copied and detached (``copy_initial_weights=True``): no gradient reaches ``model``. ``L`` is
    differentiable w.r.t. ``images`` and ``step_sizes`` (both may require grad). Returns ``(L, inner losses)``,
    the inner losses detached (one per step).
    """
    if higher is None:  # pragma: no cover
        raise ImportError("method 'dd' needs the library `higher` (pip install higher>=0.2.1)")
    inner_opt = torch.optim.SGD(model.parameters(), lr=1.0)  # lr is overridden by η_t at every step
    losses = []
    with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=True) as (fmodel, diffopt):
        for t in range(len(step_sizes)):
            idx = groups[t % len(groups)]
            loss = inner_loss(fmodel(images[idx]), labels[idx])
            diffopt.step(loss, override={"lr": [step_sizes[t]]})
            losses.append(loss.detach())
        outer = outer_loss(fmodel(real_x), real_y)
    return outer, torch.stack(losses)


# --------------------------------------------------------------------------------------------------
# distillation
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Config(LoopConfig):
    """Hyperparameters of DD (defaults: the reference code's; see ``distill``)."""

    steps: int = 200  # outer iterations
    checkpoint_every: int = 50
    distill_steps: int | None = None  # groups the set is split into, one per inner step (None: ipc)
    distill_epochs: int = 3  # passes over the groups; T = distill_steps * distill_epochs
    batch_size: int = 1024  # real images per outer step (uniform, with replacement)
    lr_init: float = 0.02  # initial step size of every inner step
    lr_img: float = 0.01  # Adam(betas 0.5, 0.999) on the images
    step_lr: float = 0.01  # Adam on ρ (η = softplus(ρ))
    decay_every: int | None = None  # multiply both Adam rates by decay_factor every this many steps
    decay_factor: float = 0.5
    init: str = "noise"  # noise | real
    weight_init: str = "xavier"  # how a model given by name draws θ0 (samplers.WEIGHT_INITS)

    def __post_init__(self) -> None:
        super().__post_init__()
        validate.positive_int("distill_steps", self.distill_steps, allow_none=True)
        validate.positive_int("distill_epochs", self.distill_epochs)
        validate.positive_int("batch_size", self.batch_size)
        validate.positive_int("decay_every", self.decay_every, allow_none=True)
        for name in ("lr_init", "lr_img", "step_lr", "decay_factor"):
            validate.positive_number(name, getattr(self, name))
        validate.choice("init", self.init, INITS)
        validate.choice("weight_init", self.weight_init, samplers.WEIGHT_INITS)

    def image_optimizer(self, params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
        """Adam (betas 0.5, 0.999) on the images, ``lr_img``."""
        return torch.optim.Adam(list(params), lr=self.lr_img, betas=(0.5, 0.999))

    def step_optimizer(self, params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
        """Adam (betas 0.5, 0.999) on ρ, ``step_lr``."""
        return torch.optim.Adam(list(params), lr=self.step_lr, betas=(0.5, 0.999))


class Bilevel(loop.Distiller):
    """DD's state: images, ρ (η = softplus(ρ)), their Adam optimisers and schedulers; ``step`` = one outer step."""

    method = "dd"

    def __init__(self, train_set: ImageSet, ipc: int, *, generator: Generator, config: Config, sampler: Sampler):
        super().__init__(train_set, ipc, generator=generator, config=config)
        device = self.device
        self.sampler = sampler.bind(train_set.info, device)
        K = train_set.num_classes
        self.distill_steps = ipc if config.distill_steps is None else config.distill_steps
        self.groups = step_groups(K, ipc, self.distill_steps, device)  # checks that distill_steps divides ipc
        self.T = self.distill_steps * config.distill_epochs
        self.divergence_hint = (
            f"the step sizes grew too large for the synthetic images (lower step_lr="
            f"{config.step_lr} or lr_init={config.lr_init}) or lr_img={config.lr_img} is "
            "too high"
        )
        self.labels = class_labels(K, ipc, device)
        self.images = initial_images(train_set, ipc, config.init, generator).requires_grad_(True)
        self.rho = torch.full((self.T,), softplus_inverse(config.lr_init), device=device, requires_grad=True)
        self.opt_images = config.image_optimizer([self.images])
        self.opt_rho = config.step_optimizer([self.rho])
        self.schedulers = (
            [
                torch.optim.lr_scheduler.StepLR(o, config.decay_every, config.decay_factor)
                for o in (self.opt_images, self.opt_rho)
            ]
            if config.decay_every
            else []
        )

    def step(self, k: int) -> tuple[float, dict[str, float]]:
        net = self.sampler.sample(self.generator)
        n_real = len(self.train_set)
        idx = torch.randint(
            n_real, (self.config.batch_size,), generator=self.generator, device=self.generator.device
        ).to(self.device)
        loss, inner = unrolled_loss(
            net,
            self.images,
            self.labels,
            F.softplus(self.rho),
            self.groups,
            self.train_set.images[idx],
            self.train_set.labels[idx],
        )
        bad = torch.nonzero(~torch.isfinite(inner)).flatten()
        if len(bad):
            raise loop.NonFiniteError(f"the inner loss at inner step {int(bad[0]) + 1}/{self.T}", float(inner[bad[0]]))
        self.opt_images.zero_grad(set_to_none=True)
        self.opt_rho.zero_grad(set_to_none=True)
        loss.backward()
        value = loop.check_finite("the real-data loss after the unroll", loss, self.images, self.rho)
        self.opt_images.step()
        self.opt_rho.step()
        for s in self.schedulers:
            s.step()
        return value, {"inner_loss": float(inner[-1])}

    def state_dict(self) -> dict:
        return {
            "images": self.images.detach().cpu(),
            "rho": self.rho.detach().cpu(),
            "opt_images": self.opt_images.state_dict(),
            "opt_rho": self.opt_rho.state_dict(),
            "schedulers": [s.state_dict() for s in self.schedulers],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        with torch.no_grad():
            self.images.copy_(state["images"].to(self.device))
            self.rho.copy_(state["rho"].to(self.device))
        self.opt_images.load_state_dict(state["opt_images"])
        self.opt_rho.load_state_dict(state["opt_rho"])
        for s, sd in zip(self.schedulers, state["schedulers"]):
            s.load_state_dict(sd)

    def current_images(self) -> torch.Tensor:
        return self.images.detach()

    def synthetic_set(self) -> SyntheticSet:
        fixed = isinstance(self.sampler, samplers.FixedInit)
        meta = {
            "theta0": "fixed" if fixed else "random",
            "step_sizes": F.softplus(self.rho.detach()).tolist(),
            "groups": self.distill_steps,
            "T": self.T,
        }
        if fixed:
            meta["fixed_init"] = self.sampler.state_dict()
        return SyntheticSet(self.images.detach().clone(), self.labels.clone(), None, meta)


def distill(train_set: ImageSet, ipc: int, *, generator: Generator, model=None, callback=None, **hparams):
    r"""Learn ``ipc`` images per class and T step sizes by backpropagating the real loss through T SGD steps.

    Each of ``steps`` outer iterations: θ₀ from the sampler (fixed, or fresh), a real batch of ``batch_size``
    images drawn uniformly with replacement, then

    .. math::
        L(\tilde x, \rho) = \ell\big(x_{real}; \theta_T\big),\quad
        \theta_{t+1} = \theta_t - \operatorname{softplus}(\rho_t)\,\nabla_\theta \ell(\tilde x_{g(t)}; \theta_t),\quad
        \tilde x \leftarrow \mathrm{Adam}(\nabla_{\tilde x} L),\ \rho \leftarrow \mathrm{Adam}(\nabla_\rho L).

    ``model``: a network sampler (``nets.model_argument``): a name (default ``"lenet"``, the paper's MNIST network;
    a fresh θ₀ per step drawn with ``weight_init``), ``samplers.FixedInit`` or an ``nn.Module`` (fixed θ₀).
    ``hparams``: the fields of ``Config``: ``steps``; ``distill_steps`` (default ``ipc``: one image per class per
    step, as the paper) groups and ``distill_epochs`` passes, T = distill_steps·distill_epochs; ``lr_init``;
    ``lr_img`` / ``step_lr`` (Adam rates, times ``decay_factor`` every ``decay_every`` steps); ``init``
    (``"noise"``, as the paper, or ``"real"``); ``weight_init``; ``checkpoint``.

    Returns a ``SyntheticSet`` (class by class) whose ``meta`` holds ``step_sizes`` (the T learned η_t), ``groups``,
    ``T``, ``theta0`` ("fixed"/"random") and, for a fixed θ₀, ``fixed_init`` (its state dict); ``lr`` is ``None``: the
    η_t are the steps of a T-step plain-SGD schedule (``evaluate_schedule`` replays it), not a learning rate for
    the course protocol's many epochs of momentum SGD.
    """
    config = parse("dd", Config, hparams)
    return METHOD.run(Bilevel, config, train_set, ipc, generator, model, callback, weight_init=config.weight_init)


# --------------------------------------------------------------------------------------------------
# the method's own evaluation: replay the unroll with the learned step sizes
# --------------------------------------------------------------------------------------------------
def train_with_schedule(
    net: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    step_sizes: Sequence[float],
    groups: Sequence[torch.Tensor],
) -> list[float]:
    """θ_{t+1} = θ_t − η_t ∇ℓ(x_{g(t)}; θ_t) in place for t = 0..T−1 (plain SGD, no momentum: ``nets.fit.sgd_steps``
    on the groups in order); the inner losses."""
    losses = sgd_steps(net, images, labels, step_sizes, groups)
    bad = torch.nonzero(~torch.isfinite(losses)).flatten()
    if len(bad):
        t = int(bad[0])
        raise FloatingPointError(
            f"training with the learned schedule diverged at step {t + 1}/{len(step_sizes)}"
            f" (η={float(step_sizes[t]):.4g}): loss {float(losses[t])}"
        )
    return losses.tolist()


def evaluate_schedule(
    images: torch.Tensor,
    labels: torch.Tensor,
    test: ImageSet,
    *,
    step_sizes: Sequence[float],
    distill_steps: int = 1,
    model: str | samplers.FreshInit = "lenet",
    fixed_init: dict | None = None,
    num_models: int = 10,
    seed: int = 0,
    device: str | torch.device | None = None,
    weight_init: str = "xavier",
) -> EvalResult:
    """DD's evaluation: train with the T learned step sizes on the groups in order, then test.

    With ``fixed_init`` (a state dict) every model starts from it (the fixed-init variant: ``num_models`` is then
    1, there is nothing random); otherwise model ``i`` starts from a fresh initialisation
    ``repro.run_seed(seed, "evaluate", i)``, unseen during distillation, drawn like the ones distillation saw
    (``weight_init``).
    Works for any image set with the layout of ``step_groups`` (e.g. random real images, to compare).
    """
    device = resolve_device(device)
    images, labels, test = images.detach().to(device), labels.detach().to(device), test.to(device)
    K = test.num_classes
    ipc = len(images) // K
    groups = step_groups(K, ipc, distill_steps, device)
    sampler = samplers.as_sampler(model, "lenet", weight_init=weight_init)
    if not isinstance(sampler, samplers.FreshInit):
        raise TypeError(f"evaluate_schedule needs an architecture (a name or FreshInit), got {sampler!r}")
    sampler = sampler.bind(test.info, device)
    name = sampler.name
    if fixed_init is not None:
        num_models = 1
    accs, train_s, test_s = [], [], []
    for i in range(num_models):
        net = sampler.build(run_seed(seed, "evaluate", i))
        if fixed_init is not None:
            net.load_state_dict(fixed_init)
        t0 = time.perf_counter()
        train_with_schedule(net, images, labels, step_sizes, groups)
        t1 = time.perf_counter()
        accs.append(accuracy(net, test))
        test_s.append(time.perf_counter() - t1)
        train_s.append(t1 - t0)
    label = f"dd learned schedule ({len(step_sizes)} plain SGD steps)"
    return EvalResult(
        accs,
        train_s,
        test_s,
        name,
        len(step_sizes),
        len(images),
        {
            "protocol": {"name": "dd_schedule", "label": label},
            "fixed_init": fixed_init is not None,
            "seed": seed,
            "distill_steps": distill_steps,
            "device": str(device),
            "test_images": len(test),
        },
    )


# --------------------------------------------------------------------------------------------------
# cost of the unroll: memory saved for backward and seconds per outer step, against T
# --------------------------------------------------------------------------------------------------
@dataclass
class UnrollCost:
    """One outer step with ``T`` unrolled inner steps."""

    T: int
    saved_bytes: int  # bytes autograd keeps for the backward pass (unique storages), exact
    peak_cuda_bytes: int | None  # torch.cuda.max_memory_allocated growth during the step (CUDA only)
    seconds: float  # median wall time of forward unroll + backward


def measure_unroll_cost(
    train_set: ImageSet,
    unroll_lengths: Sequence[int],
    *,
    generator: torch.Generator,
    model: str | nn.Module = "lenet",
    images_per_step: int = 10,
    batch_size: int = 256,
    repeats: int = 3,
) -> list[UnrollCost]:
    """Memory and time of one outer step of ``distill`` for every T in ``unroll_lengths``.

    Memory: every tensor autograd saves for backward passes through a ``saved_tensors_hooks`` pack hook; the
    sizes of the distinct storages are summed (exact and device independent). On CUDA the growth of
    ``torch.cuda.max_memory_allocated`` is recorded too. Time: the median of ``repeats`` steps after one warm-up.
    """
    validate.positive_int("repeats", repeats)
    device = train_set.device
    K = train_set.num_classes
    if images_per_step % K:
        raise ValueError(f"images_per_step={images_per_step} must be a multiple of the {K} classes")
    ipc = images_per_step // K
    net = samplers.as_sampler(model, "lenet", weight_init="xavier").bind(train_set.info, device).sample(generator)
    images = (
        torch.randn((images_per_step, *train_set.images.shape[1:]), generator=generator, device=generator.device)
        .to(device)
        .requires_grad_(True)
    )
    labels = torch.arange(K, device=device).repeat_interleave(ipc)
    groups = step_groups(K, ipc, 1, device)
    idx = torch.randint(len(train_set), (batch_size,), generator=generator, device=generator.device).to(device)
    real_x, real_y = train_set.images[idx], train_set.labels[idx]
    costs = []
    for T in unroll_lengths:
        validate.positive_int("T (unroll length)", T)
        rho = torch.full((T,), softplus_inverse(0.02), device=device, requires_grad=True)

        def one_step(rho: torch.Tensor = rho) -> None:
            loss, _ = unrolled_loss(net, images, labels, F.softplus(rho), groups, real_x, real_y)
            loss.backward()

        saved, peak, seconds = cost.measure(one_step, device, repeats)
        images.grad = None
        costs.append(UnrollCost(T, saved, peak, seconds))
    return costs


def prepare(p: Preparation) -> tuple[dict, float]:
    """Notebook 08: fresh networks of ``settings["model"]`` (the paper's LeNet) at the profile's width rule."""
    return {"model": p.network(p.settings["model"])}, 0.0


TINY = Tiny({"steps": 3, "batch_size": 32}, {"lr_init": 1e30})

BUDGETS = by_profile(
    quick={
        "batch_size": 256,
        "lr_img": 0.03,
        "step_lr": 0.02,
        "lr_init": 0.1,
        1: {"steps": 60},
        10: {"steps": 10},
        50: {"steps": 5},
    },
    standard={
        "steps": 5000,
        "batch_size": 1024,
        "lr_img": 0.05,
        "step_lr": 0.02,
        "lr_init": 0.1,
        "decay_every": 1500,
    },
)

PREPARE = by_profile({"model": "lenet"}, {"model": "lenet"})

METHOD = MethodInfo("dd", "bilevel (unrolled)", "02", "sampler", "dc", TINY, BUDGETS, "lenet", prepare, PREPARE)
