r"""Dataset Distillation by Matching Training Trajectories (MTT; Cazenavette et al., CVPR 2022): method ``"mtt"``.

Experts trained on the real data leave parameter trajectories :math:`\theta^*_0, \dots, \theta^*_E`
(``course_utils.trajectories``). MTT learns the synthetic set :math:`\mathcal S` and a learning rate
:math:`\alpha` such that :math:`N` SGD steps on :math:`\mathcal S` from an expert's epoch :math:`t` land where the
expert was :math:`M` epochs later:

.. math::

    \hat\theta_{t+0} = \theta^*_t, \qquad
    \hat\theta_{t+n+1} = \hat\theta_{t+n} - \alpha\, \nabla_\theta\,
        \ell\big(\mathcal A(\mathcal S_{b_n});\ \hat\theta_{t+n}\big), \quad n = 0..N-1,

    \mathcal L = \frac{\lVert \hat\theta_{t+N} - \theta^*_{t+M} \rVert^2}{\lVert \theta^*_t - \theta^*_{t+M} \rVert^2},

with :math:`t \sim U\{0, \dots, T^+-1\}` (``max_start_epoch``), an expert drawn uniformly, :math:`\mathcal S_{b_n}`
the mini-batch of step :math:`n` (the whole set when ``batch_syn`` is None, as in the reference's default) and
:math:`\mathcal A` a fresh DSA draw at every step. The denominator makes the loss scale-free across epochs (early
epochs move the weights more than late ones). :math:`\mathcal S` and :math:`\alpha` are updated by SGD (momentum
0.5) on :math:`\nabla_{\mathcal S}\mathcal L` and :math:`\nabla_\alpha\mathcal L`: the gradient flows back through
all :math:`N` steps (second-order terms included), so memory and time grow linearly in :math:`N`
(``measure_syn_steps_cost``). The student is a *functional* network: one flat parameter vector, reshaped into the
experts' architecture at every step (``torch.func.functional_call``), so the :math:`N` updates are plain tensor
arithmetic that autograd differentiates. The learned :math:`\alpha` travels with the set (``SyntheticSet.lr``) and
the evaluation protocol trains with it (``training.evaluate_set``).

Defaults are the reference's ``distill.py`` (5000 iterations, N = 20, M = 3, T⁺ = 25, lr_img 1000, lr_lr 1e-5,
initial α = lr_teacher 0.01, real initialisation, DSA on); the paper's per-setting values are ``PAPER_SETTINGS``
(CIFAR-10 IPC 10: N = 30, M = 2, T⁺ = 20, lr_img 100, α₀ 0.001, ZCA whitening). A single learning rate for the whole set
means a too-large ``lr_img`` makes the images explode: the loss becomes NaN and the run stops with the last good set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Generator, Tensor
from torch.func import functional_call

from ..core import cost, validate
from ..data.augment import DSA, DSAFields
from ..data.datasets import ImageSet
from ..nets.samplers import FreshInit
from ..nets.trajectories import ExpertBuffer, ExpertTrajectories, train_experts
from ..records.synthetic import INITS, SyntheticSet
from . import loop
from .hparams import ImageSGD, LoopConfig, parse
from .registry import MethodInfo, Preparation, Tiny, by_profile

__all__ = [
    "PAPER_SETTINGS",
    "Config",
    "TrajectoryMatching",
    "FunctionalStudent",
    "normalised_distance",
    "student_trajectory",
    "measure_syn_steps_cost",
    "SynStepsCost",
    "distill",
    "METHOD",
]


#: The paper's hyperparameters per (dataset, ipc) (its README's table, as transcribed by a third party: other copies
#: differ slightly, e.g. lr_img for CIFAR-10 IPC 10 given as 100, 1e3 or 1e5); ``zca``: whiten the data first.
_PAPER_COLUMNS = ("syn_steps", "expert_epochs", "max_start_epoch", "lr_img", "lr_lr", "lr_teacher", "zca", "batch_syn")
PAPER_SETTINGS: dict[tuple[str, int], dict[str, Any]] = {
    key: dict(zip(_PAPER_COLUMNS, row))
    for key, row in {
        ("cifar10", 1): (50, 2, 2, 100.0, 1e-7, 0.01, True, None),
        ("cifar10", 10): (30, 2, 20, 100.0, 1e-5, 0.001, True, None),
        ("cifar10", 50): (30, 2, 40, 1000.0, 1e-5, 0.001, False, None),
        ("cifar100", 1): (20, 3, 20, 1000.0, 1e-5, 0.01, True, None),
        ("cifar100", 10): (20, 2, 20, 1000.0, 1e-5, 0.01, False, None),
        ("cifar100", 50): (80, 2, 40, 1000.0, 1e-5, 0.01, True, 125),
    }.items()
}


@dataclass(frozen=True)
class Config(DSAFields, ImageSGD, LoopConfig):
    """Hyperparameters of MTT (defaults: the reference's ``distill.py``), with DSA's (``augment.DSAFields``)."""

    steps: int = 5000  # iterations (each: one expert segment, N student steps, one update)
    checkpoint_every: int = 10
    syn_steps: int = 20  # N: student steps on the synthetic set per iteration
    expert_epochs: int = 3  # M: the target is the expert M epochs after the start
    max_start_epoch: int = 25  # T+: start epochs are drawn from 0..T+-1
    init: str = "real"  # real | noise
    lr_img: float = 1000.0  # SGD on the images
    momentum_img: float = 0.5
    lr_lr: float = 1e-5  # SGD on the learned learning rate α
    momentum_lr: float = 0.5
    lr_teacher: float = 0.01  # α at the start (the experts' own learning rate)
    batch_syn: int | None = None  # synthetic images per student step; None: the whole set

    def __post_init__(self) -> None:
        super().__post_init__()
        validate.positive_int("syn_steps", self.syn_steps)
        validate.positive_int("expert_epochs", self.expert_epochs)
        validate.positive_int("max_start_epoch", self.max_start_epoch)
        validate.choice("init", self.init, INITS)
        validate.positive_number("lr_img", self.lr_img)
        validate.number_in("momentum_img", self.momentum_img, 0, 1)
        validate.positive_number("lr_lr", self.lr_lr)
        validate.number_in("momentum_lr", self.momentum_lr, 0, 1)
        validate.positive_number("lr_teacher", self.lr_teacher)
        validate.positive_int("batch_syn", self.batch_syn, allow_none=True)


class FunctionalStudent:
    """The experts' architecture as a function of one flat parameter vector: ``student(x, theta)`` is the network
    with its parameters read from ``theta`` (``P`` entries, in ``named_parameters`` order)."""

    def __init__(self, net: nn.Module):
        self.net = net
        self.names = [n for n, _ in net.named_parameters()]
        self.shapes = [p.shape for p in net.parameters()]
        self.numels = [p.numel() for p in net.parameters()]
        self.num_params = sum(self.numels)

    def parameters(self, theta: Tensor) -> dict[str, Tensor]:
        """``{name: view of theta}`` (views: autograd sees one flat vector)."""
        if theta.shape != (self.num_params,):
            raise ValueError(
                f"theta must be a flat vector of the {self.num_params} parameters, got {tuple(theta.shape)}"
            )
        return {n: v.view(s) for n, v, s in zip(self.names, theta.split(self.numels), self.shapes)}

    def __call__(self, x: Tensor, theta: Tensor) -> Tensor:
        return functional_call(self.net, self.parameters(theta), (x,))


def normalised_distance(student: Tensor, start: Tensor, target: Tensor) -> Tensor:
    """``‖student − target‖² / ‖start − target‖²`` (flat parameter vectors)."""
    denominator = (start - target).pow(2).sum()
    if not bool(denominator > 0):
        raise ValueError(
            "the expert's start and target parameters are identical (‖θ*_t − θ*_{t+M}‖² = 0): the trajectory's "
            "snapshots are not copies, or the expert did not train; rebuild the buffer with trajectories.train_experts"
        )
    return (student - target).pow(2).sum() / denominator


def student_trajectory(
    student: FunctionalStudent,
    start: Tensor,
    images: Tensor,
    labels: Tensor,
    lr: Tensor,
    batches: Sequence[Tensor | None],
    *,
    dsa: DSA | None = None,
    generator: Generator | None = None,
) -> Tensor:
    """``θ̂_{t+N}``: ``len(batches)`` SGD steps of ``student`` from ``start`` with learning rate ``lr``, step ``n`` on
    ``images[batches[n]]`` (None: all images), each augmented by a fresh ``dsa`` draw. Differentiable w.r.t.
    ``images`` and ``lr`` (every inner gradient is taken with ``create_graph=True``)."""
    theta = start.detach().requires_grad_(True)
    for idx in batches:
        x, y = (images, labels) if idx is None else (images[idx], labels[idx])
        if dsa is not None:
            x = dsa(x, generator)
        ce = F.cross_entropy(student(x, theta), y)
        (grad,) = torch.autograd.grad(ce, theta, create_graph=True)
        theta = theta - lr * grad
    return theta


class TrajectoryMatching(loop.ImageDistiller):
    """The state of an MTT run: the synthetic images and their SGD optimiser (``loop.ImageDistiller``), the
    learned learning rate α and its optimiser; ``step`` is one iteration (an expert segment, N student steps,
    one update of the images and of α)."""

    method = "mtt"
    divergence_hint = (
        "the image learning rate lr_img (or lr_lr) is too high for this dataset and IPC, or the learned learning rate "
        "grew until the student's steps overshoot; lower lr_img by 10x"
    )

    def setup(self) -> None:
        """The functional student, the learned learning rate α and its optimiser, the synthetic batches."""
        self.student = FunctionalStudent(self.sampler.network())
        self.syn_lr = torch.tensor(self.config.lr_teacher, device=self.device, requires_grad=True)
        self.lr_optimizer = torch.optim.SGD([self.syn_lr], lr=self.config.lr_lr, momentum=self.config.momentum_lr)
        n = len(self.images)
        self.batch_syn = None if self.config.batch_syn is None or self.config.batch_syn >= n else self.config.batch_syn

    def batches(self) -> list[Tensor | None]:
        """The mini-batch of every student step: all images (``batch_syn`` None), or successive chunks of random
        permutations of the set (a new permutation when one is used up, as the reference draws them)."""
        N = self.config.syn_steps
        if self.batch_syn is None:
            return [None] * N
        out: list[Tensor | None] = []
        gdev = self.generator.device
        while len(out) < N:
            perm = torch.randperm(len(self.images), generator=self.generator, device=gdev).to(self.device)
            out.extend(perm.split(self.batch_syn))
        return out[:N]

    def match(self, start: Tensor, target: Tensor) -> Tensor:
        """The loss of one expert segment; its gradients w.r.t. the images and α are left in their ``.grad``."""
        theta = student_trajectory(
            self.student,
            start,
            self.images,
            self.labels,
            self.syn_lr,
            self.batches(),
            dsa=self.dsa,
            generator=self.generator,
        )
        loss = normalised_distance(theta, start, target)
        grad_images, grad_lr = torch.autograd.grad(loss, (self.images, self.syn_lr))
        self.images.grad, self.syn_lr.grad = grad_images, grad_lr
        return loss.detach()

    def step(self, k: int) -> tuple[float, dict[str, float]]:
        """One iteration: draw an expert segment (θ*_t, θ*_{t+M}), N student steps, update the images and α."""
        segment = self.sampler.sample(self.generator)
        loss = self.match(segment.start_params, segment.target_params)
        value = loop.check_finite("the trajectory-matching loss", loss, self.images, self.syn_lr)
        self.optimizer.step()
        self.lr_optimizer.step()
        return value, {"syn_lr": float(self.syn_lr.detach()), "start_epoch": float(segment.start)}

    def state_dict(self) -> dict:
        return {
            **super().state_dict(),
            "syn_lr": self.syn_lr.detach().cpu(),
            "lr_optimizer": self.lr_optimizer.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        with torch.no_grad():
            self.syn_lr.copy_(state["syn_lr"].to(self.device))
        self.lr_optimizer.load_state_dict(state["lr_optimizer"])

    def synthetic_set(self) -> SyntheticSet:
        meta: dict[str, Any] = {"learned_lr": float(self.syn_lr.detach())}
        if self.dsa is not None:
            meta["strategy"] = self.dsa.strategy
        zca = getattr(self.train_set, "zca", None)
        if zca is not None:
            meta["zca"] = zca.fingerprint()
        return SyntheticSet(self.images.detach().clone(), self.labels.clone(), float(self.syn_lr.detach()), meta)


def distill(train_set: ImageSet, ipc: int, *, generator: Generator, model=None, callback=None, **hparams):
    """MTT: learn ``ipc`` images per class (and a learning rate) whose student steps follow the experts.

    ``model``: the expert trajectories (a ``trajectories.ExpertBuffer``, trained on this very ``train_set``).
    ``hparams``: the fields of ``Config`` (``steps``, ``syn_steps``, ``expert_epochs``, ``max_start_epoch``,
    ``lr_img``, ``lr_lr``, ``lr_teacher``, ``batch_syn``, ``init``, ``strategy``, ``checkpoint``, ...).
    ``callback(event)``: a ``loop.StepEvent`` after every iteration (``metrics``: ``syn_lr``, ``start_epoch``).
    """
    config = parse("mtt", Config, hparams).resolved(train_set.name)
    settings = {"max_start_epoch": config.max_start_epoch, "expert_epochs": config.expert_epochs}
    return METHOD.run(TrajectoryMatching, config, train_set, ipc, generator, model, callback, **settings)


@dataclass
class SynStepsCost:
    """One MTT iteration with ``syn_steps`` = N student steps."""

    syn_steps: int
    saved_bytes: int  # bytes autograd keeps for the meta-backward (distinct storages), exact
    peak_cuda_bytes: int | None  # growth of torch.cuda.max_memory_allocated (CUDA only)
    seconds: float  # median wall time of the N steps + the meta-backward


def measure_syn_steps_cost(
    train_set: ImageSet,
    buffer: ExpertBuffer,
    ipc: int,
    syn_steps: Sequence[int],
    *,
    generator: Generator,
    repeats: int = 3,
    strategy: str | None = "none",
) -> list[SynStepsCost]:
    """Memory and time of one iteration of ``distill`` for every N in ``syn_steps`` (the whole set per step),
    measured as ``cost.measure`` does: the saved tensors of the backward graph, and the median wall time."""
    costs = []
    for N in syn_steps:
        validate.positive_int("syn_steps", N)
        config = Config(syn_steps=N, expert_epochs=1, max_start_epoch=1, strategy=strategy).resolved(train_set.name)
        sampler = ExpertTrajectories(buffer, max_start_epoch=1, expert_epochs=1)
        m = TrajectoryMatching(train_set, ipc, generator=generator, config=config, sampler=sampler)
        segment = m.sampler.sample(generator)
        start, target = segment.start_params, segment.target_params
        saved, peak, seconds = cost.measure(lambda m=m, s=start, t=target: m.match(s, t), m.device, repeats)
        costs.append(SynStepsCost(N, saved, peak, seconds))
    return costs


def _tiny_experts(train_set: ImageSet, root: Path) -> ExpertBuffer:
    """One expert (ConvNet width 8, 2 epochs) on ``train_set``, stored under ``root`` (reused by later calls)."""
    return train_experts(train_set, 1, model=FreshInit("convnet", width=8), epochs=2, root=root / "experts")


def prepare(p: Preparation) -> tuple[dict, float]:
    """Notebook 08: ``settings["experts"]`` experts of the profile's network trained ``settings["epochs"]`` epochs
    (stored keyed, reused); their training seconds."""
    buffer = train_experts(p.train, p.settings["experts"], epochs=p.settings["epochs"], **p.stored("experts"))
    return {"model": buffer}, float(sum(buffer.seconds))


TINY = Tiny(
    {"steps": 3, "syn_steps": 2, "expert_epochs": 1, "max_start_epoch": 1, "lr_img": 10.0},
    {"lr_img": 1e30},
    _tiny_experts,
)

BUDGETS = by_profile(
    quick={
        "syn_steps": 10,
        "expert_epochs": 2,
        "max_start_epoch": 4,
        "lr_img": 100.0,
        "lr_lr": 1e-5,
        "lr_teacher": 0.01,
        1: {"steps": 40},
        10: {"steps": 6},
        50: {"steps": 3},
    },
    standard={
        "steps": 1000,
        "syn_steps": 20,
        "expert_epochs": 2,
        "max_start_epoch": 20,
        "lr_img": 1000.0,
        "lr_lr": 1e-5,
        "lr_teacher": 0.01,
    },
    full={"steps": 5000, "expert_epochs": 3, "max_start_epoch": 25},
)

PREPARE = by_profile({"experts": 2, "epochs": 6}, {"experts": 10, "epochs": 30}, {"experts": 100, "epochs": 50})

METHOD = MethodInfo("mtt", "trajectory matching", "05", "experts", "dsa", TINY, BUDGETS, None, prepare, PREPARE)
