r"""ZEN: one synthetic set for every architecture, by a worst case over architecture families: method ``"zen"``.

Dataset distillation as a bilevel problem over :math:`A` architecture families (an ``samplers.ArchitecturePool``),
each with its own inner problem:

.. math::

    \mathcal S^\star = \arg\min_{\mathcal S}\ \max_{i=1..A}\ L_T^i\big(\theta^{i\star}(\mathcal S)\big),
    \qquad \theta^{i\star}(\mathcal S) = \arg\min_\theta L_S^i(\theta, \mathcal S),

with :math:`L_S^i` the cross-entropy of family :math:`i` on the synthetic set and :math:`L_T^i` its cross-entropy
on real data. One outer step draws fresh initial weights for every family, approximates each inner solution by
:math:`J` (``inner_steps``) plain full-batch SGD steps on :math:`\mathcal S` (lr ``lr_net``), evaluates every
:math:`L_T^i` on one real batch, and follows the gradient of the max. A max of differentiable functions has as
(sub)gradient any convex combination of the active functions' gradients; ZEN takes the worst family's
(``aggregate="max"``); ``"mean"`` averages all families' (the average-case ablation). A smoothed max,
:math:`\tau\log\sum_i e^{L_T^i/\tau}`, weighs family :math:`i`'s gradient by :math:`\mathrm{softmax}(L_T/\tau)_i`
(notebook 06's exercise).

The hypergradient of one family is the implicit function theorem's (``course_utils.hypergrad``): at an inner
optimum :math:`\partial L_S/\partial\theta = 0`, so

.. math::

    \frac{d L_T}{d\mathcal S} = \frac{\partial L_T}{\partial\mathcal S}
        - \frac{\partial^2 L_S}{\partial\mathcal S\,\partial\theta^\top}
          \Big[\frac{\partial^2 L_S}{\partial\theta\,\partial\theta^\top}\Big]^{-1}\frac{\partial L_T}{\partial\theta},

where :math:`\partial L_T/\partial\mathcal S = 0` (the real loss does not see the images directly). The
inverse-Hessian-vector product comes from ``hypergradient``: ``"neumann"`` (``neumann_terms`` K,
``neumann_alpha`` α, by default ``lr_net``: an inner SGD stable at that rate has :math:`\lambda_{\max} < 2/\eta` along
its path; :math:`p = \alpha\sum_{k=0}^{K}(I-\alpha H)^k v`), ``"cg"`` (``cg_iterations``) or
``"identity"`` (:math:`H \approx I`: the gradient-alignment objective
:math:`-\nabla_{\mathcal S}(\nabla_\theta L_S\cdot\nabla_\theta L_T)` that the public ZEN code computes, because its
Neumann loop never updates its vector). No Hessian is formed: one outer step costs :math:`A\cdot J` SGD steps, :math:`A`
real-batch forwards and one IFT hypergradient (:math:`\le K+3` Hessian-vector products), and its memory does not
grow with :math:`J` (``benchmarks/bench_zen.py``), unlike unrolling the :math:`J` steps (DD).

After :math:`J` steps from a random initialisation the weights are not at a minimum, so :math:`H` may have negative
eigenvalues and the Neumann terms may grow: every step records ``neumann_diverged`` (1 if the series grew by more
than ``hypergrad.DIVERGENCE_GROWTH``), and the run warns once at the end with the fraction of such steps.

The images are updated by Adam (lr ``lr_img``, betas (``beta1``, 0.999)): it is invariant to the
hypergradient's scale, which differs by orders of magnitude between the IFT variants (:math:`H^{-1}` against
:math:`I`), so comparing them compares directions, not step sizes. The reference run (MNIST: LeNet, VGG, ResNet18,
ConvNet; 30 inner steps at lr 0.02; Neumann K = 5) is what the defaults follow, with real rather than noise
initialisation (short runs need the head start).
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Generator, Tensor

from ..core import cost, validate
from ..data.datasets import ImageSet
from ..nets.fit import sgd_steps
from ..nets.samplers import ArchitecturePool, FreshInit, sized
from ..records.synthetic import INITS, SyntheticSet
from . import hypergrad, loop
from .hparams import LoopConfig, parse
from .registry import TINY_CONVNET, MethodInfo, Preparation, Tiny, by_profile

try:  # for the unrolled comparison only; imported lazily so the method works without it
    import higher
except ImportError:  # pragma: no cover - exercised only when higher is missing
    higher = None

__all__ = [
    "METHOD",
    "DEFAULT_POOL",
    "AGGREGATES",
    "Config",
    "WorstCaseDistiller",
    "train_inner",
    "family_hypergradient",
    "unrolled_hypergradient",
    "HypergradientCost",
    "measure_hypergradient_cost",
    "distill",
]

#: The architecture families of the reference MNIST run (VGG11 standing for its VGG16).
DEFAULT_POOL: tuple[str, ...] = ("convnet", "lenet", "vgg11", "resnet18")
AGGREGATES: tuple[str, ...] = ("max", "mean")


@dataclass(frozen=True)
class Config(LoopConfig):
    """Hyperparameters of ZEN (see the module docstring)."""

    steps: int = 1000  # outer steps, each with fresh weights for every family
    checkpoint_every: int = 10
    init: str = "real"  # real | noise
    inner_steps: int = 30  # J: plain full-batch SGD steps of every family on the synthetic set
    lr_net: float = 0.02  # their learning rate
    batch_real: int = 32  # real images per class in the outer loss L_T
    hypergradient: str = "neumann"  # neumann | cg | identity
    neumann_terms: int = 5  # K
    neumann_alpha: float | None = None  # α (None: lr_net); the series converges for 0 < α < 2/λ_max(H) when H ≻ 0
    cg_iterations: int = 5
    aggregate: str = "max"  # max (ZEN's worst case) | mean
    lr_img: float = 0.01  # Adam on the images
    beta1: float = 0.5  # Adam's β1

    def __post_init__(self) -> None:
        super().__post_init__()
        validate.choice("init", self.init, INITS)
        validate.positive_int("inner_steps", self.inner_steps)
        validate.positive_number("lr_net", self.lr_net)
        validate.positive_int("batch_real", self.batch_real)
        validate.choice("hypergradient", self.hypergradient, hypergrad.METHODS)
        validate.non_negative_int("neumann_terms", self.neumann_terms)
        if self.neumann_alpha is not None:
            validate.positive_number("neumann_alpha", self.neumann_alpha)
        validate.positive_int("cg_iterations", self.cg_iterations)
        validate.choice("aggregate", self.aggregate, AGGREGATES)
        validate.positive_number("lr_img", self.lr_img)
        validate.number_in("beta1", self.beta1, 0, 1)

    def image_optimizer(self, params: Iterable[Tensor]) -> torch.optim.Optimizer:
        """Adam on the images (``lr_img``, betas (``beta1``, 0.999))."""
        return torch.optim.Adam(list(params), lr=self.lr_img, betas=(self.beta1, 0.999))


def family_labels(pool: ArchitecturePool) -> list[str]:
    """One unique label per family (``convnet``, ``lenet``, ...; a repeated name gets ``_2``, ``_3``)."""
    labels: list[str] = []
    for name in pool.names:
        label, n = name, 1
        while label in labels:
            n += 1
            label = f"{name}_{n}"
        labels.append(label)
    return labels


def train_inner(net: nn.Module, images: Tensor, labels: Tensor, steps: int, lr: float) -> float:
    r""":math:`J` plain full-batch SGD steps on the synthetic set, in place (``nets.fit.sgd_steps``):
    :math:`\theta \leftarrow \theta - \eta\,\nabla_\theta L_S(\theta, \mathcal S)` (images detached). Returns the last
    step's loss."""
    validate.positive_int("steps", steps)
    return float(sgd_steps(net, images, labels, [lr] * steps)[-1])


def family_hypergradient(
    net: nn.Module,
    images: Tensor,
    labels: Tensor,
    real: Tensor,
    real_labels: Tensor,
    *,
    method: str = "neumann",
    terms: int = 5,
    alpha: float = 0.01,
    iterations: int = 5,
) -> tuple[Tensor, float]:
    r"""One family's IFT hypergradient :math:`-(\partial^2 L_S/\partial\mathcal S\partial\theta^\top)\,p`,
    :math:`p \approx H^{-1}\partial L_T/\partial\theta`, at the network's current weights, and :math:`L_T`.

    ``images`` must require grad; :math:`L_S` = cross-entropy of ``net`` on ``(images, labels)``, :math:`L_T` on
    ``(real, real_labels)``. Nothing is written to ``.grad``."""
    params = [p for p in net.parameters() if p.requires_grad]
    inner = F.cross_entropy(net(images), labels)
    outer = F.cross_entropy(net(real), real_labels)
    (grad,) = hypergrad.implicit_hypergradient(
        inner, outer, params, [images], method=method, terms=terms, alpha=alpha, iterations=iterations
    )
    return grad, float(outer.detach())


class WorstCaseDistiller(loop.ImageDistiller):
    """The state of a ZEN run (images, their Adam optimiser, the bound pool) and its outer ``step``."""

    method = "zen"
    divergence_hint = (
        "the inner training diverged (lower lr_net), or the hypergradient blew up (lower neumann_alpha or "
        "neumann_terms, or use hypergradient='cg')"
    )

    def setup(self) -> None:
        """The families' labels and the labels of the real batches."""
        self.families = family_labels(self.sampler)
        K = self.num_classes
        self.real_labels = torch.arange(K, device=self.device).repeat_interleave(self.batch_real)

    def hypergradient(self, net: nn.Module, real: Tensor) -> tuple[Tensor, float, bool]:
        """``family_hypergradient`` with the config's settings; also whether the Neumann series grew."""
        c = self.config
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", hypergrad.NeumannDivergenceWarning)
            grad, outer = family_hypergradient(
                net,
                self.images,
                self.labels,
                real,
                self.real_labels,
                method=c.hypergradient,
                terms=c.neumann_terms,
                alpha=c.lr_net if c.neumann_alpha is None else c.neumann_alpha,
                iterations=c.cg_iterations,
            )
        diverged = any(issubclass(w.category, hypergrad.NeumannDivergenceWarning) for w in caught)
        for w in caught:  # anything else is passed on
            if not issubclass(w.category, hypergrad.NeumannDivergenceWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return grad, outer, diverged

    def step(self, k: int) -> tuple[float, dict[str, float]]:
        """Fresh weights for every family, ``inner_steps`` SGD steps each, the real losses, and one Adam step along
        the worst family's IFT hypergradient (or the mean of all, ``aggregate="mean"``). Returns the max (or mean)
        real loss; metrics: every family's real loss, the worst family's index, whether the series grew."""
        c = self.config
        nets = self.sampler.sample_all(self.generator)
        real = self.sample_real(self.batch_real).flatten(0, 1)
        losses = []
        for label, net in zip(self.families, nets):
            last = train_inner(net, self.images, self.labels, c.inner_steps, c.lr_net)
            loop.check_finite(f"training {label} on the synthetic set", last)
            with torch.no_grad():
                losses.append(float(F.cross_entropy(net(real), self.real_labels)))
        worst = max(range(len(nets)), key=lambda i: losses[i])
        chosen = [worst] if c.aggregate == "max" else list(range(len(nets)))
        total = torch.zeros_like(self.images)
        diverged = False
        for i in chosen:
            grad, _, grew = self.hypergradient(nets[i], real)
            total += grad
            diverged |= grew
        value = max(losses) if c.aggregate == "max" else sum(losses) / len(losses)
        self.optimizer.zero_grad(set_to_none=True)
        self.images.grad = total / len(chosen)
        loop.check_finite("the worst-case real loss", value, self.images)
        self.optimizer.step()
        metrics = {f"loss_{label}": v for label, v in zip(self.families, losses)}
        metrics.update({"worst": float(worst), "neumann_diverged": float(diverged)})
        return value, metrics

    def synthetic_set(self) -> SyntheticSet:
        meta = {"families": list(self.families), "hypergradient": self.config.hypergradient}
        return SyntheticSet(self.images.detach().clone(), self.labels.clone(), None, meta)


def distill(
    train_set: ImageSet,
    ipc: int,
    *,
    generator: Generator,
    model: Any = None,
    callback: Callable[[loop.StepEvent], None] | None = None,
    **hparams,
) -> SyntheticSet:
    """ZEN: learn ``ipc`` images per class that minimise the worst real-data loss over architecture families.

    ``model``: the families (``samplers.as_pool``: default ``DEFAULT_POOL``; e.g.
    ``samplers.ArchitecturePool(["convnet", samplers.FreshInit("resnet18", width=8)])``). ``hparams``: the fields of
    ``Config`` (``steps``, ``inner_steps``, ``lr_net``, ``hypergradient``, ``neumann_terms``, ``neumann_alpha``,
    ``aggregate``, ``lr_img``, ``beta1``, ``checkpoint``, ...). ``callback(event)``: a ``loop.StepEvent`` after every
    step (``metrics``: ``loss_<family>``, ``worst``, ``neumann_diverged``). ``meta["history"]["worst"]`` says which
    family was the worst at every step.
    """
    config = parse("zen", Config, hparams)
    syn = METHOD.run(WorstCaseDistiller, config, train_set, ipc, generator, model, callback)
    grew = syn.meta["history"].get("neumann_diverged", [])
    if config.hypergradient == "neumann" and grew and sum(grew) > 0:
        alpha = config.lr_net if config.neumann_alpha is None else config.neumann_alpha
        warnings.warn(
            f"zen: the Neumann series grew in {int(sum(grew))} of {len(grew)} steps (neumann_alpha={alpha}, "
            f"neumann_terms={config.neumann_terms}): the Hessian at the inner weights is not "
            "positive definite or alpha >= 2/lambda_max; see hypergrad.largest_eigenvalue",
            hypergrad.NeumannDivergenceWarning,
            stacklevel=2,
        )
    return syn


def unrolled_hypergradient(
    net: nn.Module, images: Tensor, labels: Tensor, real: Tensor, real_labels: Tensor, steps: int, lr: float
) -> Tensor:
    r"""The exact hypergradient of the :math:`J`-step inner loop, by differentiating through it (``higher``, as DD):
    :math:`\theta_{j+1} = \theta_j - \eta\nabla_\theta L_S(\theta_j, \mathcal S)` with every gradient kept in the graph,
    then :math:`dL_T(\theta_J)/d\mathcal S`. ``net`` holds :math:`\theta_0` and is not changed. Memory and time grow
    with :math:`J`."""
    if higher is None:  # pragma: no cover
        raise ImportError("the unrolled comparison needs the library `higher` (pip install higher>=0.2.1)")
    validate.positive_int("steps", steps)
    x = images.detach().requires_grad_(True)
    with higher.innerloop_ctx(net, torch.optim.SGD(net.parameters(), lr=lr), copy_initial_weights=True) as (
        fmodel,
        diffopt,
    ):
        for _ in range(steps):
            diffopt.step(F.cross_entropy(fmodel(x), labels))
        (grad,) = torch.autograd.grad(F.cross_entropy(fmodel(real), real_labels), x)
    return grad


@dataclass
class HypergradientCost:
    """One outer step's hypergradient for ``inner_steps`` = J: the IFT's (J plain steps, then K Neumann terms) and
    the unrolled one's: bytes autograd saves for backward (``cost.saved_tensor_bytes``; for the IFT, its step at
    the trained weights: each plain step frees its graph before the next) and median seconds (the IFT's with its J
    steps)."""

    inner_steps: int
    ift_bytes: int
    ift_seconds: float
    unrolled_bytes: int
    unrolled_seconds: float


def measure_hypergradient_cost(
    net: nn.Module,
    images: Tensor,
    labels: Tensor,
    real: Tensor,
    real_labels: Tensor,
    *,
    inner_steps: Sequence[int] = (1, 2, 5, 10, 20),
    lr: float = 0.02,
    terms: int = 5,
    alpha: float = 0.01,
    repeats: int = 3,
) -> list[HypergradientCost]:
    """For each J: the IFT hypergradient (``train_inner`` J steps on a copy of ``net``, then
    ``family_hypergradient`` with K = ``terms``) against ``unrolled_hypergradient`` (J differentiable steps), from
    the same θ0, on the images' device."""
    device = images.device
    x = images.detach().requires_grad_(True)
    out = []
    for J in inner_steps:
        validate.positive_int("inner_steps", J)

        def hypergradient_at(trained: nn.Module) -> Tensor:
            with warnings.catch_warnings():  # a growing series costs the same; its value is not used here
                warnings.simplefilter("ignore", hypergrad.NeumannDivergenceWarning)
                return family_hypergradient(trained, x, labels, real, real_labels, terms=terms, alpha=alpha)[0]

        def ift(J: int = J) -> Tensor:
            trained = copy.deepcopy(net)
            train_inner(trained, x, labels, J, lr)
            return hypergradient_at(trained)

        def unrolled(J: int = J) -> Tensor:
            return unrolled_hypergradient(net, x, labels, real, real_labels, J, lr)

        # the J plain steps free each step's graph before the next: what the IFT keeps is its own step's
        trained = copy.deepcopy(net)
        train_inner(trained, x, labels, J, lr)
        ift_bytes = cost.saved_tensor_bytes(lambda trained=trained: hypergradient_at(trained))
        _, _, ift_s = cost.measure(ift, device, repeats)
        unrolled_bytes, _, unrolled_s = cost.measure(unrolled, device, repeats)
        out.append(HypergradientCost(J, ift_bytes, ift_s, unrolled_bytes, unrolled_s))
    return out


def prepare(p: Preparation) -> tuple[dict, float]:
    """Notebook 08: the families ``settings["pool"]``, each at its ``settings["pool_width"]`` (None: its own)."""
    pool, widths = p.settings["pool"], p.settings["pool_width"]
    if len(widths) != len(pool):
        raise ValueError(f"zen pool_width has {len(widths)} entries for {len(pool)} families: one per family")
    members = [sized(n, w) for n, w in zip(pool, widths)]
    return {"model": ArchitecturePool(members)}, 0.0


TINY = Tiny(
    {"steps": 3, "inner_steps": 2, "hypergradient": "identity"},
    {"lr_net": 1e30},
    ArchitecturePool([TINY_CONVNET, FreshInit("mlp", width=16)]),
)

BUDGETS = by_profile(
    quick={
        "inner_steps": 10,
        "lr_net": 0.02,
        "lr_img": 0.05,
        "neumann_terms": 5,
        "neumann_alpha": 0.02,
        1: {"steps": 15},
        10: {"steps": 4},
        50: {"steps": 2},
    },
    standard={
        "steps": 500,
        "inner_steps": 30,
        "lr_net": 0.02,
        "lr_img": 0.05,
        "neumann_terms": 5,
        "neumann_alpha": 0.02,
    },
    full={"steps": 1000},
)

PREPARE = by_profile(
    {"pool": ("convnet", "lenet", "vgg11"), "pool_width": (32, None, 8)},
    {"pool": DEFAULT_POOL, "pool_width": (None, None, None, None)},
)

METHOD = MethodInfo(
    "zen", "worst case over architectures", "06", "pool", "dc", TINY, BUDGETS, DEFAULT_POOL, prepare, PREPARE
)
