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

Two variants (``init``):

- ``"fixed"``: one initialisation :math:`\theta_0` (drawn once from ``generator``, or the weights of the ``model``
  you pass) is used at every outer step; the result is meant to train *that* network (``meta["fixed_init"]``).
- ``"random"``: a fresh :math:`\theta_0\sim p(\theta_0)` at every outer step; the result should train unseen
  initialisations.

The method's own evaluation (``evaluate_schedule``) replays the unroll: :math:`T` plain SGD steps with the learned
:math:`\tilde\eta_t` on the groups in order, from the fixed :math:`\theta_0` or from fresh ones. The course's
protocol (``training.evaluate``: many epochs, momentum, a constant lr) is a different training procedure.

Facts from the paper's reference setting (see ``shared/reference/methods.md`` §7): Adam(betas 0.5, 0.999) on images
and step sizes, initial step size 0.02, 1 image per class per step, 10 steps × 3 epochs, real batches of 1024,
images initialised from Gaussian noise, networks from Xavier-normal weights and zero biases (``weight_init``);
MNIST/LeNet reaches 93.8 % (fixed init, 10 images) and 79.5 ± 8.1 % (random init, 100 images).
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import checkpoint as checkpoint_io
from ..data import ImageSet
from ..repro import derive_seed, resolve_device
from ..synthetic import SyntheticSet
from ..training import EvalResult, accuracy, make_model, model_seed

try:  # the differentiable-optimiser library; imported lazily so course_utils works without it
    import higher
except ImportError:  # pragma: no cover - exercised only when higher is missing
    higher = None

__all__ = [
    "INIT_VARIANTS", "IMAGE_INITS", "distill", "unrolled_loss", "step_groups", "softplus_inverse",
    "train_with_schedule", "evaluate_schedule", "measure_unroll_cost", "UnrollCost",
]

INIT_VARIANTS = ("fixed", "random")
IMAGE_INITS = ("noise", "real")


# --------------------------------------------------------------------------------------------------
# the core: one unrolled inner loop, differentiable w.r.t. the images and the step sizes
# --------------------------------------------------------------------------------------------------
def softplus_inverse(eta: float) -> float:
    """ρ with softplus(ρ) = η, i.e. ρ = log(e^η − 1) (η > 0)."""
    if not eta > 0:
        raise ValueError(f"a step size must be > 0, got {eta!r}")
    return eta + math.log(-math.expm1(-eta))  # = log(e^η − 1), stable for small and large η


def step_groups(num_classes: int, ipc: int, distill_steps: int, device: str | torch.device = "cpu") -> list[torch.Tensor]:
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


def unrolled_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, step_sizes: torch.Tensor,
                  groups: Sequence[torch.Tensor], real_x: torch.Tensor, real_y: torch.Tensor, *,
                  inner_loss: Callable = F.cross_entropy, outer_loss: Callable = F.cross_entropy
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
# networks: a name or a module, and how to draw θ₀ from the generator only
# --------------------------------------------------------------------------------------------------
#: How θ₀ is drawn. "xavier" (the reference's): Xavier-normal weights of every convolution and linear layer,
#: N(0, 2 / (fan_in + fan_out)), zero biases. "default": PyTorch's (uniform, ±1/sqrt(fan_in)), whose ~5x smaller
#: fully connected weights make the 3-step unroll learn far more slowly (notebook 02 shows both).
WEIGHT_INITS: tuple[str, ...] = ("xavier", "default")


def _reset_parameters(net: nn.Module, seed: int, weight_init: str = "default") -> nn.Module:
    """Redraw every submodule's initialisation (``weight_init``) from ``seed`` (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in net.modules():
            if weight_init == "xavier" and isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_normal_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif hasattr(module, "reset_parameters"):
                module.reset_parameters()
    return net


def _network_factory(model, info, device, weight_init: str = "xavier") -> tuple[Callable[[int], nn.Module], str]:
    """``seed -> fresh network`` (initialised by ``weight_init``) for a model name or a template module, and a
    name for records."""
    if weight_init not in WEIGHT_INITS:
        raise ValueError(f"weight_init={weight_init!r} is not valid; valid: {', '.join(WEIGHT_INITS)}")
    if model is None:
        model = "lenet"
    if isinstance(model, str):
        make_model(model, info, 0, "cpu")  # validates the name (ValueError listing the valid ones)
        if weight_init == "default":
            return (lambda seed: make_model(model, info, seed, device)), model
        return (lambda seed: _reset_parameters(make_model(model, info, seed, device), seed, weight_init)), model
    if isinstance(model, nn.Module):
        template = copy.deepcopy(model).to(device)
        return (lambda seed: _reset_parameters(copy.deepcopy(template), seed, weight_init)), \
            getattr(model, "model_name", type(model).__name__)
    raise TypeError(f"model must be a model name (e.g. 'lenet') or an nn.Module, got {type(model).__name__}")


# --------------------------------------------------------------------------------------------------
# distillation
# --------------------------------------------------------------------------------------------------
def _check_int(name: str, value, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def distill(train_set: ImageSet, ipc: int, *, generator: torch.Generator, model: str | nn.Module | None = None,
            callback: Callable[[int, dict], None] | None = None, init: str = "random", steps: int = 200,
            distill_steps: int | None = None, distill_epochs: int = 3, batch_size: int = 1024,
            lr_init: float = 0.02, image_lr: float = 0.01, step_lr: float = 0.01, decay_every: int | None = None,
            decay_factor: float = 0.5, image_init: str = "noise", weight_init: str = "xavier",
            checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 50) -> SyntheticSet:
    r"""Learn ``ipc`` images per class and T step sizes by backpropagating the real loss through T SGD steps.

    Each of ``steps`` outer iterations: θ₀ (fixed, or fresh for ``init="random"``), a real batch of
    ``batch_size`` images drawn uniformly with replacement, then

    .. math::
        L(\tilde x, \rho) = \ell\big(x_{real}; \theta_T\big),\quad
        \theta_{t+1} = \theta_t - \operatorname{softplus}(\rho_t)\,\nabla_\theta \ell(\tilde x_{g(t)}; \theta_t),\quad
        \tilde x \leftarrow \mathrm{Adam}(\nabla_{\tilde x} L),\ \rho \leftarrow \mathrm{Adam}(\nabla_\rho L).

    Parameters
    ----------
    model: a name from ``models.MODEL_NAMES`` (default ``"lenet"``, the paper's MNIST network) or a module
        (its weights are θ₀ for ``init="fixed"``; only its architecture is used for ``init="random"``).
    init: ``"fixed"`` (one θ₀ throughout) or ``"random"`` (a fresh θ₀ per outer step).
    steps: outer iterations. ``distill_steps`` (default ``ipc``: one image per class per step, as the paper) groups
        the set is split into; ``distill_epochs`` passes over them, T = distill_steps·distill_epochs.
    lr_init: initial step size η (all T the same). ``image_lr`` / ``step_lr``: Adam(betas 0.5, 0.999) learning
        rates of the images and of ρ, multiplied by ``decay_factor`` every ``decay_every`` outer steps (None: never).
    image_init: ``"noise"`` (standard normal in normalised pixel space, as the paper) or ``"real"`` (random real
        images of each class).
    weight_init: how every θ₀ is drawn (``WEIGHT_INITS``): ``"xavier"`` (the reference's) or ``"default"``
        (PyTorch's). A module passed as ``model`` with ``init="fixed"`` keeps its own weights.
    checkpoint: a file; the state is saved there atomically every ``checkpoint_every`` steps and at the end, and
        a run that finds a checkpoint of the same settings resumes from it (same final result as an unbroken run;
        ``steps`` may be larger than the checkpoint's, to continue a finished run).
    callback: ``callback(step, info)`` after every outer step, ``info`` = {"loss", "inner_loss", "step_sizes", "seconds"}.

    Returns a ``SyntheticSet`` (class by class) whose ``meta`` holds ``step_sizes`` (the T learned η_t), ``groups``
    (``distill_steps``), ``init``, the loss history and, for the fixed variant, ``fixed_init`` (θ₀'s state dict);
    ``lr`` is ``None``: the η_t are the steps of a T-step plain-SGD schedule (``evaluate_schedule`` replays it), not
    a learning rate for the course protocol's many epochs of momentum SGD, which keeps its own lr.
    """
    _check_int("ipc (images per class)", ipc)
    if init not in INIT_VARIANTS:
        raise ValueError(f"init={init!r} is not a DD variant; valid: {', '.join(INIT_VARIANTS)}")
    if image_init not in IMAGE_INITS:
        raise ValueError(f"image_init={image_init!r} is not valid; valid: {', '.join(IMAGE_INITS)}")
    distill_steps = ipc if distill_steps is None else distill_steps
    _check_int("distill_steps", distill_steps)
    for name, value in (("steps", steps), ("distill_epochs", distill_epochs), ("batch_size", batch_size),
                        ("checkpoint_every", checkpoint_every)):
        _check_int(name, value)
    for name, value in (("lr_init", lr_init), ("image_lr", image_lr), ("step_lr", step_lr),
                        ("decay_factor", decay_factor)):
        _check_positive(name, value)
    if decay_every is not None:
        _check_int("decay_every", decay_every)
    if image_init == "real" and ipc > int(train_set.class_counts.min()):
        raise ValueError(f"ipc={ipc} is larger than the smallest class of {train_set.name} "
                         f"({int(train_set.class_counts.min())} images) for image_init='real'")

    device = train_set.device
    info, K = train_set.info, train_set.num_classes
    groups = step_groups(K, ipc, distill_steps, device)  # also checks that distill_steps divides ipc
    T = distill_steps * distill_epochs
    new_network, model_name = _network_factory(model, info, device, weight_init)
    hparams = dict(init=init, steps=steps, distill_steps=distill_steps, distill_epochs=distill_epochs,
                   batch_size=batch_size, lr_init=lr_init, image_lr=image_lr, step_lr=step_lr,
                   decay_every=decay_every, decay_factor=decay_factor, image_init=image_init, model=model_name,
                   weight_init=weight_init)

    # ---- state: images, ρ, θ₀ (fixed variant), optimisers; drawn in this order from the generator
    labels = torch.arange(K, device=device).repeat_interleave(ipc)
    if image_init == "noise":
        images = torch.randn((K * ipc, *train_set.images.shape[1:]), generator=generator,
                             device=generator.device).to(device)
    else:
        images = train_set.images[train_set.sample_balanced(ipc, generator)].clone()
    images.requires_grad_(True)
    rho = torch.full((T,), softplus_inverse(lr_init), device=device, requires_grad=True)
    if init == "fixed":
        fixed_net = copy.deepcopy(model).to(device) if isinstance(model, nn.Module) else \
            new_network(derive_seed(generator))
    opt_images = torch.optim.Adam([images], lr=image_lr, betas=(0.5, 0.999))
    opt_rho = torch.optim.Adam([rho], lr=step_lr, betas=(0.5, 0.999))
    schedulers = [torch.optim.lr_scheduler.StepLR(o, decay_every, decay_factor)
                  for o in (opt_images, opt_rho)] if decay_every else []
    history = {"loss": [], "inner_loss": []}
    start = 0

    path = Path(checkpoint) if checkpoint is not None else None
    # A run may be continued with more steps, so the step count is not part of its identity.
    identity = {"hparams": {k: v for k, v in hparams.items() if k != "steps"}, "ipc": ipc, "dataset": train_set.name}
    state = checkpoint_io.load(path, identity, map_location=device)
    if state is not None:
        if state["step"] > steps:
            raise ValueError(f"checkpoint {path} is at outer step {state['step']}, beyond steps={steps}; "
                             f"pass steps >= {state['step']} (a run may be continued, not shortened)")
        with torch.no_grad():
            images.copy_(state["images"])
            rho.copy_(state["rho"])
        opt_images.load_state_dict(state["opt_images"])
        opt_rho.load_state_dict(state["opt_rho"])
        for s, sd in zip(schedulers, state["schedulers"]):
            s.load_state_dict(sd)
        if init == "fixed":
            fixed_net.load_state_dict(state["fixed_init"])
        generator.set_state(state["generator"])
        history, start = state["history"], state["step"]

    def save_checkpoint(step: int) -> None:
        checkpoint_io.save(path, identity, {"step": step,
                          "images": images.detach().cpu(), "rho": rho.detach().cpu(),
                          "opt_images": opt_images.state_dict(), "opt_rho": opt_rho.state_dict(),
                          "schedulers": [s.state_dict() for s in schedulers],
                          "fixed_init": {k: v.cpu() for k, v in fixed_net.state_dict().items()}
                          if init == "fixed" else None,
                          "generator": generator.get_state(), "history": history})

    n_real = len(train_set)
    for step in range(start, steps):
        t0 = time.perf_counter()
        net = fixed_net if init == "fixed" else new_network(derive_seed(generator))
        idx = torch.randint(n_real, (batch_size,), generator=generator, device=generator.device).to(device)
        real_x, real_y = train_set.images[idx], train_set.labels[idx]
        eta = F.softplus(rho)
        loss, inner = unrolled_loss(net, images, labels, eta, groups, real_x, real_y)
        if not torch.isfinite(loss) or not torch.isfinite(inner).all():
            bad = int(torch.nonzero(~torch.isfinite(inner)).flatten()[0]) if not torch.isfinite(inner).all() else None
            where = f"at inner step {bad + 1}/{T}" if bad is not None else "in the real-data loss after the unroll"
            kept = f"; the last good state is in {path}" if path is not None and path.exists() else ""
            raise FloatingPointError(
                f"dd diverged at outer step {step + 1}/{steps}: loss became non-finite {where} (largest step size "
                f"{float(eta.detach().max()):.4g}). Likely cause: the step sizes grew too large for the synthetic images "
                f"(lower step_lr={step_lr} or lr_init={lr_init}) or image_lr={image_lr} is too high{kept}")
        opt_images.zero_grad(set_to_none=True)
        opt_rho.zero_grad(set_to_none=True)
        loss.backward()
        opt_images.step()
        opt_rho.step()
        for s in schedulers:
            s.step()
        history["loss"].append(float(loss.detach()))
        history["inner_loss"].append(float(inner[-1]))
        if callback is not None:
            callback(step, {"loss": history["loss"][-1], "inner_loss": history["inner_loss"][-1],
                            "step_sizes": F.softplus(rho.detach()).tolist(), "seconds": time.perf_counter() - t0})
        if path is not None and ((step + 1) % checkpoint_every == 0 or step + 1 == steps):
            save_checkpoint(step + 1)

    step_sizes = F.softplus(rho.detach()).tolist()
    meta = {"method": "dd", "dataset": train_set.name, "ipc": ipc, "num_classes": K, "init": init,
            "model": model_name, "step_sizes": step_sizes, "groups": distill_steps, "T": T,
            "hparams": hparams, "history": history}
    if init == "fixed":
        meta["fixed_init"] = {k: v.detach().cpu().clone() for k, v in fixed_net.state_dict().items()}
    return SyntheticSet(images.detach().clone(), labels, None, meta)


# --------------------------------------------------------------------------------------------------
# the method's own evaluation: replay the unroll with the learned step sizes
# --------------------------------------------------------------------------------------------------
def train_with_schedule(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, step_sizes: Sequence[float],
                        groups: Sequence[torch.Tensor]) -> list[float]:
    """θ_{t+1} = θ_t − η_t ∇ℓ(x_{g(t)}; θ_t) in place for t = 0..T−1 (plain SGD, no momentum); inner losses."""
    params = [p for p in net.parameters() if p.requires_grad]
    losses = []
    net.train()
    for t, eta in enumerate(step_sizes):
        idx = groups[t % len(groups)]
        loss = F.cross_entropy(net(images[idx]), labels[idx])
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.sub_(float(eta) * g)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"training with the learned schedule diverged at step {t + 1}/{len(step_sizes)}"
                                     f" (η={float(eta):.4g}): loss {value}")
        losses.append(value)
    return losses


def evaluate_schedule(images: torch.Tensor, labels: torch.Tensor, test: ImageSet, *, step_sizes: Sequence[float],
                      distill_steps: int = 1, model: str | nn.Module = "lenet", fixed_init: dict | None = None,
                      num_models: int = 10, seed: int = 0, device: str | torch.device | None = None,
                      weight_init: str = "xavier") -> EvalResult:
    """DD's evaluation: train with the T learned step sizes on the groups in order, then test.

    With ``fixed_init`` (a state dict) every model starts from it (the fixed-init variant: ``num_models`` is then
    1, there is nothing random); otherwise model ``i`` starts from a fresh initialisation
    ``model_seed(seed, i)``, unseen during distillation, drawn like the ones distillation saw (``weight_init``).
    Works for any image set with the layout of ``step_groups`` (e.g. random real images, to compare).
    """
    device = resolve_device(device)
    images, labels, test = images.detach().to(device), labels.detach().to(device), test.to(device)
    K = test.num_classes
    ipc = len(images) // K
    groups = step_groups(K, ipc, distill_steps, device)
    new_network, name = _network_factory(model, test.info, device, weight_init)
    if fixed_init is not None:
        num_models = 1
    accs, train_s, test_s = [], [], []
    for i in range(num_models):
        net = new_network(2 * model_seed(seed, i))
        if fixed_init is not None:
            net.load_state_dict(fixed_init)
        t0 = time.perf_counter()
        train_with_schedule(net, images, labels, step_sizes, groups)
        t1 = time.perf_counter()
        accs.append(accuracy(net, test))
        test_s.append(time.perf_counter() - t1)
        train_s.append(t1 - t0)
    return EvalResult(accs, train_s, test_s, name, len(step_sizes), len(images),
                      {"protocol": "dd learned schedule", "fixed_init": fixed_init is not None, "seed": seed,
                       "distill_steps": distill_steps, "device": str(device), "test_images": len(test)})


# --------------------------------------------------------------------------------------------------
# cost of the unroll: memory saved for backward and seconds per outer step, against T
# --------------------------------------------------------------------------------------------------
@dataclass
class UnrollCost:
    """One outer step with ``T`` unrolled inner steps."""

    T: int
    saved_bytes: int            # bytes autograd keeps for the backward pass (unique storages), exact
    peak_cuda_bytes: int | None  # torch.cuda.max_memory_allocated growth during the step (CUDA only)
    seconds: float              # median wall time of forward unroll + backward


def measure_unroll_cost(train_set: ImageSet, unroll_lengths: Sequence[int], *, generator: torch.Generator,
                        model: str | nn.Module = "lenet", images_per_step: int = 10, batch_size: int = 256,
                        repeats: int = 3) -> list[UnrollCost]:
    """Memory and time of one outer step of ``distill`` for every T in ``unroll_lengths``.

    Memory: every tensor autograd saves for backward passes through a ``saved_tensors_hooks`` pack hook; the
    sizes of the distinct storages are summed (exact and device independent). On CUDA the growth of
    ``torch.cuda.max_memory_allocated`` is recorded too. Time: the median of ``repeats`` steps after one warm-up.
    """
    _check_int("repeats", repeats)
    device = train_set.device
    K = train_set.num_classes
    if images_per_step % K:
        raise ValueError(f"images_per_step={images_per_step} must be a multiple of the {K} classes")
    ipc = images_per_step // K
    new_network, _ = _network_factory(model, train_set.info, device)
    net = new_network(derive_seed(generator))
    images = torch.randn((images_per_step, *train_set.images.shape[1:]), generator=generator,
                         device=generator.device).to(device).requires_grad_(True)
    labels = torch.arange(K, device=device).repeat_interleave(ipc)
    groups = step_groups(K, ipc, 1, device)
    idx = torch.randint(len(train_set), (batch_size,), generator=generator, device=generator.device).to(device)
    real_x, real_y = train_set.images[idx], train_set.labels[idx]
    costs = []
    for T in unroll_lengths:
        _check_int("T (unroll length)", T)
        rho = torch.full((T,), softplus_inverse(0.02), device=device, requires_grad=True)

        def one_step() -> None:
            loss, _ = unrolled_loss(net, images, labels, F.softplus(rho), groups, real_x, real_y)
            loss.backward()

        storages: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            storage = t.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            one_step()
        peak = None
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            base = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            one_step()
            torch.cuda.synchronize(device)
            peak = torch.cuda.max_memory_allocated(device) - base
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            one_step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t0)
        images.grad = None
        costs.append(UnrollCost(T, sum(storages.values()), peak, sorted(times)[len(times) // 2]))
    return costs
