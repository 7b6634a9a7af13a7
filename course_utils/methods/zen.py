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
(``aggregate="max"``); ``"mean"`` averages all families' (the average-case ablation).

**Which family is the worst** (``worst_case``). With ``"raw"`` each family's criterion is
:math:`c_i = L_T^i(\theta^i_J(\mathcal S))`. After :math:`J` steps a family that learns slowly (LeNet: real loss
:math:`\approx\ln 10` after 10 steps) is the worst at every step whatever :math:`\mathcal S` is, and the max
optimises for an untrained network. ``"relative"`` measures each family against what the same :math:`J` steps
reach on real data:

.. math::

    c_i(\mathcal S) = L_T^i\big(\theta^i_J(\mathcal S)\big) - L_T^i\big(\theta^i_J(R)\big),

with :math:`R` a fixed random real subset of the same IPC (drawn once, at the start of the run), and
:math:`\theta^i_J(R)` the same freshly drawn weights after the same :math:`J` SGD steps on :math:`R`, evaluated on
the same real batch. The reference does not depend on :math:`\mathcal S`, so each family's hypergradient is still
that of :math:`L_T^i(\mathcal S)`; only which families are followed, and with what weights, changes.

**How the families are combined** (``aggregate``): with :math:`\mathcal S \leftarrow` Adam along
:math:`\sum_i w_i\, dL_T^i/d\mathcal S`, ``"max"`` takes :math:`w = e_{\arg\max_i c_i}` (one hypergradient),
``"mean"`` :math:`w_i = 1/A`, and ``"softmax"`` the gradient of the smoothed max

.. math::

    \tau\log\sum_{i=1}^{A} e^{c_i/\tau}, \qquad w = \mathrm{softmax}(c/\tau)

(``temperature`` :math:`\tau`; :math:`\tau\to 0` gives the max, :math:`\tau\to\infty` the mean). The softmax is
exact: it computes all :math:`A` hypergradients, however small their weight (the cost of ``"mean"``, :math:`A`
times that of ``"max"``). The step's value is :math:`\max_i c_i`, the mean, or the smoothed max.

The public ZEN code picks the worst model by its synthetic training loss (:math:`L_S`), not by the real loss.

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
real-batch forwards (both doubled when relative) and one IFT hypergradient (:math:`A` with ``"mean"`` or
``"softmax"``; each K Hessian-vector products, the real batch's gradient and two more backward passes: 10.6
HVP units measured with K = 5 and 320 real images, ``benchmarks/bench_zen.py``), and its memory does not grow with
:math:`J` (same script), unlike unrolling the :math:`J` steps (DD).

After :math:`J` steps from a random initialisation the weights are not at a minimum, so :math:`H` may have negative
eigenvalues and the Neumann terms may grow: every step records ``neumann_diverged`` (1 if the series grew by more
than ``hypergrad.DIVERGENCE_GROWTH``), and the run warns once at the end with the fraction of such steps.
``hypergradient_cosines`` measures, at one draw, how far the variants (and the exact unrolled hypergradient) point
apart, with the extreme eigenvalues of :math:`H` (``hypergrad.extreme_eigenvalues``).

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
from ..records.synthetic import INITS, SyntheticSet, initial_images
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
    "WORST_CASES",
    "Config",
    "WorstCaseDistiller",
    "train_inner",
    "family_hypergradient",
    "smoothed_max",
    "unrolled_hypergradient",
    "HypergradientCost",
    "measure_hypergradient_cost",
    "VARIANTS",
    "cosine",
    "hypergradient_cosines",
    "distill",
]

#: The architecture families of the reference MNIST run (VGG11 standing for its VGG16).
DEFAULT_POOL: tuple[str, ...] = ("convnet", "lenet", "vgg11", "resnet18")
AGGREGATES: tuple[str, ...] = ("max", "mean", "softmax")
WORST_CASES: tuple[str, ...] = ("raw", "relative")


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
    worst_case: str = "raw"  # raw: criterion L_T^i(S) | relative: L_T^i(S) - L_T^i(R), R a fixed random real subset
    aggregate: str = "max"  # max (ZEN's worst case) | mean | softmax (weights softmax(criterion / temperature))
    temperature: float = 0.1  # τ of the softmax aggregate
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
        validate.choice("worst_case", self.worst_case, WORST_CASES)
        validate.choice("aggregate", self.aggregate, AGGREGATES)
        validate.positive_number("temperature", self.temperature)
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


def smoothed_max(criterion: Sequence[float], temperature: float) -> tuple[float, Tensor]:
    r"""The smoothed max :math:`\tau\log\sum_i e^{c_i/\tau}` of the families' criteria and its gradient
    :math:`\mathrm{softmax}(c/\tau)` (float64, CPU): the weights of the families' hypergradients. :math:`\tau\to 0`
    gives the max (one-hot on the argmax), :math:`\tau\to\infty` the mean plus :math:`\tau\log A`
    (weights :math:`1/A`)."""
    validate.positive_number("temperature", temperature)
    scaled = torch.tensor([float(v) for v in criterion], dtype=torch.float64) / temperature
    return float(temperature * torch.logsumexp(scaled, 0)), torch.softmax(scaled, 0)


class WorstCaseDistiller(loop.ImageDistiller):
    """The state of a ZEN run (images, their Adam optimiser, the bound pool) and its outer ``step``."""

    method = "zen"
    divergence_hint = (
        "the inner training diverged (lower lr_net), or the hypergradient blew up (lower neumann_alpha or "
        "neumann_terms, or use hypergradient='cg')"
    )

    def setup(self) -> None:
        """The families' labels, the labels of the real batches and, for ``worst_case="relative"``, the reference
        subset R: ``ipc`` random real images per class, class-major like the images (so ``labels`` labels it)."""
        self.families = family_labels(self.sampler)
        K = self.num_classes
        self.real_labels = torch.arange(K, device=self.device).repeat_interleave(self.batch_real)
        # drawn only when used, so a raw run makes exactly the draws it made before R existed; drawn at construction
        # (before a checkpoint is loaded), so a resumed run redraws the same R
        self.reference = (
            initial_images(self.train_set, self.ipc, "real", self.generator)
            if self.config.worst_case == "relative"
            else None
        )

    def real_loss(self, net: nn.Module, real: Tensor) -> float:
        """:math:`L_T`: the cross-entropy of ``net`` on the real batch (no graph)."""
        with torch.no_grad():
            return float(F.cross_entropy(net(real), self.real_labels))

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
        r"""Fresh weights for every family, ``inner_steps`` SGD steps each on the images (and, when relative, the
        same weights' steps on R), every family's criterion :math:`c_i` (:math:`L_T^i(\mathcal S)`, or
        :math:`L_T^i(\mathcal S) - L_T^i(R)`), and one Adam step along
        :math:`\sum_i w_i\,dL_T^i(\mathcal S)/d\mathcal S` with :math:`w` one-hot on :math:`\arg\max_i c_i` (max),
        :math:`1/A` (mean) or :math:`\mathrm{softmax}(c/\tau)` (softmax). Returns :math:`\max_i c_i`, the mean, or
        :math:`\tau\log\sum_i e^{c_i/\tau}`; metrics: every family's real loss (and reference loss), the argmax
        family's index, whether the series grew."""
        c = self.config
        nets = self.sampler.sample_all(self.generator)
        real = self.sample_real(self.batch_real).flatten(0, 1)
        losses, refs = [], []
        for label, net in zip(self.families, nets):
            if self.reference is not None:  # the same fresh weights trained on R: what J steps on real data reach
                ref_net = copy.deepcopy(net)
                last = train_inner(ref_net, self.reference, self.labels, c.inner_steps, c.lr_net)
                loop.check_finite(f"training {label} on the reference subset", last)
                refs.append(self.real_loss(ref_net, real))
            last = train_inner(net, self.images, self.labels, c.inner_steps, c.lr_net)
            loop.check_finite(f"training {label} on the synthetic set", last)
            losses.append(self.real_loss(net, real))
        # L_T^i(R) is a constant in S: each family's hypergradient is still that of L_T^i(S)
        criterion = [s - r for s, r in zip(losses, refs)] if refs else losses
        worst = max(range(len(nets)), key=lambda i: criterion[i])
        weights = None
        if c.aggregate == "max":
            chosen, value = [worst], criterion[worst]
        elif c.aggregate == "mean":
            chosen, value = list(range(len(nets))), sum(criterion) / len(criterion)
        else:  # exact: every family's hypergradient, even those of negligible weight (A of them)
            chosen = list(range(len(nets)))
            value, weights = smoothed_max(criterion, c.temperature)
        total = torch.zeros_like(self.images)
        diverged = False
        for i in chosen:
            grad, _, grew = self.hypergradient(nets[i], real)
            total += grad if weights is None else float(weights[i]) * grad
            diverged |= grew
        self.optimizer.zero_grad(set_to_none=True)
        self.images.grad = total / len(chosen) if weights is None else total
        loop.check_finite("the worst-case real loss", value, self.images)
        self.optimizer.step()
        metrics = {f"loss_{label}": v for label, v in zip(self.families, losses)}
        metrics.update({f"ref_{label}": v for label, v in zip(self.families, refs)})
        metrics.update({"worst": float(worst), "neumann_diverged": float(diverged)})
        return value, metrics

    def synthetic_set(self) -> SyntheticSet:
        c = self.config
        meta = {
            "families": list(self.families),
            "hypergradient": c.hypergradient,
            "worst_case": c.worst_case,
            "aggregate": c.aggregate,
            "temperature": c.temperature,
        }
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
    r"""ZEN: learn ``ipc`` images per class that minimise the worst real-data loss over architecture families.

    ``model``: the families (``samplers.as_pool``: default ``DEFAULT_POOL``; e.g.
    ``samplers.ArchitecturePool(["convnet", samplers.FreshInit("resnet18", width=8)])``). ``hparams``: the fields of
    ``Config`` (``steps``, ``inner_steps``, ``lr_net``, ``hypergradient``, ``neumann_terms``, ``neumann_alpha``,
    ``worst_case``, ``aggregate``, ``temperature``, ``lr_img``, ``beta1``, ``checkpoint``, ...). ``worst_case``:
    ``"raw"`` ranks the families by their real loss :math:`L_T^i(\mathcal S)`, ``"relative"`` by
    :math:`L_T^i(\mathcal S) - L_T^i(R)` (R: a random real subset of the same IPC, drawn once). ``aggregate``:
    ``"max"`` follows the top-ranked family's hypergradient, ``"mean"`` the average of all, ``"softmax"`` their
    average weighted by softmax(criterion / ``temperature``). ``callback(event)``: a ``loop.StepEvent`` after every
    step (``metrics``: ``loss_<family>``, ``ref_<family>`` (:math:`L_T^i(R)`, when relative), ``worst`` (the
    argmax of the criterion), ``neumann_diverged``). ``meta["history"]["worst"]`` says which family was the worst at
    every step; ``meta`` records ``worst_case``, ``aggregate`` and ``temperature``.
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


def _trained_copy(net: nn.Module, images: Tensor, labels: Tensor, steps: int, lr: float) -> nn.Module:
    """A copy of ``net`` after ``train_inner`` (``steps`` SGD steps at ``lr``); ``net`` keeps θ0."""
    trained = copy.deepcopy(net)
    train_inner(trained, images, labels, steps, lr)
    return trained


def _quiet_hypergradient(trained: nn.Module, *args: Tensor, **kw: Any) -> Tensor:
    """``family_hypergradient`` without its NeumannDivergenceWarning: the measurements below take a growing
    series' cost and value as they are."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hypergrad.NeumannDivergenceWarning)
        return family_hypergradient(trained, *args, **kw)[0]


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
            return _quiet_hypergradient(trained, x, labels, real, real_labels, terms=terms, alpha=alpha)

        def ift(J: int = J) -> Tensor:
            return hypergradient_at(_trained_copy(net, x, labels, J, lr))

        def unrolled(J: int = J) -> Tensor:
            return unrolled_hypergradient(net, x, labels, real, real_labels, J, lr)

        # the J plain steps free each step's graph before the next: what the IFT keeps is its own step's
        trained = _trained_copy(net, x, labels, J, lr)
        ift_bytes = cost.saved_tensor_bytes(lambda trained=trained: hypergradient_at(trained))
        _, _, ift_s = cost.measure(ift, device, repeats)
        unrolled_bytes, _, unrolled_s = cost.measure(unrolled, device, repeats)
        out.append(HypergradientCost(J, ift_bytes, ift_s, unrolled_bytes, unrolled_s))
    return out


#: The hypergradients ``hypergradient_cosines`` compares, in the order of its keys' pairs.
VARIANTS: tuple[str, ...] = (*hypergrad.METHODS, "unrolled")


def cosine(a: Tensor, b: Tensor) -> float:
    r""":math:`\cos(a, b) = \langle a, b\rangle / (\lVert a\rVert\,\lVert b\rVert)` over all entries, in float64,
    clipped to [-1, 1] (rounding may pass it); nan if either vector is zero."""
    a, b = a.detach().flatten().double(), b.detach().flatten().double()
    return float(((a @ b) / (a.norm() * b.norm())).clamp(-1.0, 1.0))


def hypergradient_cosines(
    net: nn.Module,
    images: Tensor,
    labels: Tensor,
    real: Tensor,
    real_labels: Tensor,
    *,
    inner_steps: int,
    lr: float,
    terms: int,
    alpha: float,
    iterations: int = 5,
    eigen_iterations: int = 100,
    generator: Generator,
) -> dict[str, float]:
    r"""How far apart the hypergradient variants point at one draw of :math:`\theta_0` (``net``, not changed).

    :math:`\theta_J`: ``inner_steps`` = J ``train_inner`` steps (lr ``lr``) on a copy of ``net``. At
    :math:`\theta_J`, the IFT hypergradients :math:`g_m = -(\partial^2 L_S/\partial\mathcal S\partial\theta^\top)
    p_m` (``family_hypergradient``) with :math:`p` from ``"neumann"`` (``terms`` K, ``alpha`` α), ``"cg"``
    (``iterations``) and ``"identity"``; from :math:`\theta_0`, the exact hypergradient of the J-step procedure
    (``unrolled_hypergradient``). Returns :math:`\cos(g_a, g_b)` (``cosine``) for every pair of ``VARIANTS``, keyed
    ``"a~b"`` in that order (``"neumann~cg"``, ..., ``"identity~unrolled"``; :math:`\cos` is symmetric, so each
    pair appears once), and ``"lambda_min"``, ``"lambda_max"``: the extreme eigenvalues of
    :math:`H = \partial^2 L_S/\partial\theta\partial\theta^\top` at :math:`\theta_J`
    (``hypergrad.extreme_eigenvalues``, ``eigen_iterations`` per end, random starts from the CPU ``generator``).
    A negative :math:`\lambda_{\min}` says :math:`\theta_J` is not at a minimum, where the IFT's premise fails."""
    validate.non_negative_int("terms", terms)  # all checked before any training is paid for
    validate.positive_number("alpha", alpha)
    validate.positive_int("iterations", iterations)
    validate.positive_int("eigen_iterations", eigen_iterations)
    x = images.detach().requires_grad_(True)
    trained = _trained_copy(net, x, labels, inner_steps, lr)
    kw = {"terms": terms, "alpha": alpha, "iterations": iterations}
    grads = {m: _quiet_hypergradient(trained, x, labels, real, real_labels, method=m, **kw) for m in hypergrad.METHODS}
    grads["unrolled"] = unrolled_hypergradient(net, x, labels, real, real_labels, inner_steps, lr)
    out = {f"{a}~{b}": cosine(grads[a], grads[b]) for i, a in enumerate(VARIANTS) for b in VARIANTS[i + 1 :]}
    params = [p for p in trained.parameters() if p.requires_grad]
    g_s = torch.autograd.grad(F.cross_entropy(trained(x), labels), params, create_graph=True, allow_unused=True)
    out["lambda_min"], out["lambda_max"] = hypergrad.extreme_eigenvalues(
        g_s, params, iterations=eigen_iterations, generator=generator
    )
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
        "lr_img": 0.15,
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
