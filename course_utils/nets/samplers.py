"""Network samplers: one answer to "which network does this step of a method use?".

Every distillation method that trains or differentiates a network takes ``model=``, and it always means the same
thing: a **network sampler**, or something that becomes one (``as_sampler``):

=============================  ==================================================================================
``"convnet"`` (a model name)   ``FreshInit("convnet")``: a new random initialisation at every draw
a function returning a module  ``FreshInit(fn)``: ``fn()`` under a seed from the generator at every draw
an ``nn.Module``               ``FixedInit(module)``: its weights θ0 at every draw (a copy each time)
a ``NetworkSampler``           itself
=============================  ==================================================================================

The samplers of the course's methods:

- ``FreshInit``: ``θ0 ~ p(θ0)`` of one architecture (DC, DSA, DM; DD's random-init variant);
- ``FixedInit``: one fixed ``θ0`` (DD's fixed-init variant);
- ``ArchitecturePool``: several architecture families (ZEN draws one of each, or one at random);
- ``EarlyStagePool``: networks trained a few epochs on real data, perturbed along random filter-normalised
  directions at every draw (Acc-DD's model augmentation);
- ``trajectories.ExpertTrajectories``: snapshots of experts trained on real data; a draw is a start epoch and a
  target (MTT; it lives with the expert buffers in ``nets.trajectories``).

A sampler is *bound* to a dataset and a device (``bind(info, device)``) before it draws, draws only from the
generator it is given (weights are initialised under ``torch.random.fork_rng``, so the global RNG is untouched),
and has a ``spec()``: a JSON-friendly description that checkpoints and records use as the model's identity (a
callable by its qualified name and a hash of its code, a fixed θ0 by a hash of its weights; never a ``repr`` with a
memory address).
"""

from __future__ import annotations

import copy
import hashlib
import math
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn as nn

from ..core import validate
from ..core.repro import derive_seed
from .models import MODEL_NAMES, get_model

__all__ = [
    "WEIGHT_INITS",
    "NetworkSampler",
    "FreshInit",
    "FixedInit",
    "ArchitecturePool",
    "EarlyStagePool",
    "as_sampler",
    "as_pool",
    "build_network",
    "sized",
    "with_width",
    "callable_name",
    "weights_fingerprint",
    "initialise",
    "check_perturbation",
    "perturb",
]

#: How a fresh θ0 is drawn. "default": PyTorch's initialisation of every layer. "xavier": Xavier-normal weights
#: N(0, 2 / (fan_in + fan_out)) for every convolution and linear layer and zero biases (the original DD code's).
WEIGHT_INITS: tuple[str, ...] = ("default", "xavier")


def callable_name(fn: Callable) -> str:
    """``module.qualname`` of a function or class, with a hash of a function's code (two lambdas differ)."""
    name = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"
    code = getattr(fn, "__code__", None)
    if code is not None:
        digest = hashlib.blake2b(code.co_code + repr(code.co_consts).encode(), digest_size=6).hexdigest()
        name += f"#{digest}"
    return name


def weights_fingerprint(net: nn.Module) -> str:
    """A hash of a network's parameters and buffers (names, shapes and values)."""
    h = hashlib.blake2b(digest_size=12)
    for key, value in net.state_dict().items():
        h.update(f"{key}:{tuple(value.shape)}:{value.dtype}".encode())
        h.update(value.detach().contiguous().cpu().view(-1).view(torch.uint8).numpy().data)
    return h.hexdigest()


def initialise(net: nn.Module, weight_init: str) -> nn.Module:
    """Redraw ``net``'s weights with ``weight_init`` from torch's global RNG (seed it, e.g. in ``fork_rng``)."""
    validate.choice("weight_init", weight_init, WEIGHT_INITS)
    for module in net.modules():
        if weight_init == "xavier" and isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_normal_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif weight_init == "default" and hasattr(module, "reset_parameters") and module is not net:
            module.reset_parameters()
    return net


class NetworkSampler:
    """Base class. ``bind(info, device)`` returns a copy ready to ``sample(generator)``; ``spec()`` names it."""

    info: Any = None
    device: torch.device = torch.device("cpu")

    def bind(self, info, device: str | torch.device) -> "NetworkSampler":
        bound = copy.copy(self)
        bound.info, bound.device = info, torch.device(device)
        return bound

    def _check_bound(self) -> None:
        if self.info is None:
            raise RuntimeError(f"{type(self).__name__} is not bound to a dataset: call .bind(train_set.info, device)")

    def sample(self, generator: torch.Generator) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def spec(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec()})"


class FreshInit(NetworkSampler):
    """A new random initialisation of one architecture at every draw.

    ``model``: a name of ``models.MODEL_NAMES`` (options in ``kwargs``, e.g. ``width=32``) or a function returning a
    new ``nn.Module``. ``weight_init``: ``WEIGHT_INITS``. The draw takes one seed from the generator and builds
    the network under it.
    """

    def __init__(self, model: str | Callable[[], nn.Module] = "convnet", *, weight_init: str = "default", **kwargs):
        if isinstance(model, str):
            key = model.strip().lower()
            validate.choice("model", key, MODEL_NAMES)
            model = key
        elif not callable(model) or isinstance(model, nn.Module):
            raise TypeError(
                f"FreshInit takes a model name ({', '.join(MODEL_NAMES)}) or a function returning a new nn.Module, "
                f"got {type(model).__name__}"
            )
        elif kwargs:
            raise TypeError(f"model options {sorted(kwargs)} apply to a model name only, not to a function")
        self.model, self.kwargs = model, dict(kwargs)
        self.weight_init = validate.choice("weight_init", weight_init, WEIGHT_INITS)

    @property
    def name(self) -> str:
        return self.model if isinstance(self.model, str) else callable_name(self.model)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> "FreshInit":
        """The sampler a ``spec()`` of a named model describes (a stored spec: an expert buffer's manifest)."""
        if spec.get("sampler") != "fresh" or spec.get("model") not in MODEL_NAMES:
            raise ValueError(f"not the spec of a fresh initialisation of a named model: {dict(spec)!r}")
        return cls(spec["model"], weight_init=spec.get("weight_init", "default"), **dict(spec.get("kwargs") or {}))

    def build(self, seed: int) -> nn.Module:
        """The network of ``seed`` (same seed, same weights), on the bound device, in train mode."""
        self._check_bound()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if isinstance(self.model, str):
                info = self.info
                net = get_model(self.model, info.channels, info.num_classes, info.image_size, **self.kwargs)
            else:
                net = self.model()
                if not isinstance(net, nn.Module):
                    raise TypeError(f"the model function returned {type(net).__name__}, not an nn.Module")
            if self.weight_init != "default":
                initialise(net, self.weight_init)
        return net.to(self.device).train()

    def sample(self, generator: torch.Generator) -> nn.Module:
        return self.build(derive_seed(generator))

    def spec(self) -> dict:
        return {"sampler": "fresh", "model": self.name, "kwargs": dict(self.kwargs), "weight_init": self.weight_init}


class FixedInit(NetworkSampler):
    """The same θ0 at every draw: a copy of ``network`` (its weights are never changed by a method)."""

    def __init__(self, network: nn.Module):
        if not isinstance(network, nn.Module):
            raise TypeError(f"FixedInit takes an nn.Module, got {type(network).__name__}")
        self.network = copy.deepcopy(network)
        self._fingerprint = weights_fingerprint(self.network)

    @classmethod
    def draw(
        cls,
        model: str | Callable[[], nn.Module],
        info,
        generator: torch.Generator,
        device: str | torch.device = "cpu",
        *,
        weight_init: str = "default",
        **kwargs,
    ) -> "FixedInit":
        """A fixed θ0 drawn once from ``generator`` (as ``FreshInit(model, ...)`` would draw it)."""
        return cls(FreshInit(model, weight_init=weight_init, **kwargs).bind(info, device).sample(generator))

    def bind(self, info, device: str | torch.device) -> "FixedInit":
        bound = super().bind(info, device)
        bound.network = copy.deepcopy(self.network).to(bound.device)  # Module.to moves in place: never the caller's
        return bound

    def sample(self, generator: torch.Generator) -> nn.Module:
        return copy.deepcopy(self.network).to(self.device).train()

    def state_dict(self) -> dict:
        """θ0 on the CPU (to store with a distilled set that is meant to train exactly this network)."""
        return {k: v.detach().cpu().clone() for k, v in self.network.state_dict().items()}

    def spec(self) -> dict:
        name = getattr(self.network, "model_name", type(self.network).__name__)
        return {"sampler": "fixed", "model": name, "weights": self._fingerprint}


class ArchitecturePool(NetworkSampler):
    """Several architecture families: ``sample`` draws one family uniformly, ``sample_all`` one of each (ZEN)."""

    def __init__(self, members: Sequence[str | FreshInit]):
        members = [m if isinstance(m, FreshInit) else FreshInit(m) for m in members]
        if not members:
            raise ValueError("an ArchitecturePool needs at least one architecture")
        self.members = members

    def bind(self, info, device: str | torch.device) -> "ArchitecturePool":
        bound = super().bind(info, device)
        bound.members = [m.bind(info, device) for m in self.members]
        return bound

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.members]

    def sample(self, generator: torch.Generator) -> nn.Module:
        k = int(torch.randint(len(self.members), (1,), generator=generator, device=generator.device))
        return self.members[k].sample(generator)

    def sample_all(self, generator: torch.Generator) -> list[nn.Module]:
        return [m.sample(generator) for m in self.members]

    def spec(self) -> dict:
        return {"sampler": "pool", "members": [m.spec() for m in self.members]}


def check_perturbation(magnitude: Any, directions: Any) -> tuple[tuple[float, float], int]:
    """``(magnitude, directions)`` of a weight perturbation, checked: ``magnitude = (low, high)`` with
    ``0 <= low <= high`` (finite numbers) and ``directions`` an integer ``>= 1``; errors name the bad value."""
    ok = (
        isinstance(magnitude, (tuple, list))
        and len(magnitude) == 2
        and all(validate.is_number(m) and math.isfinite(m) for m in magnitude)
        and 0 <= magnitude[0] <= magnitude[1]
    )
    if not ok:
        raise ValueError(f"magnitude must be (low, high) with 0 <= low <= high, got {magnitude!r}")
    validate.positive_int("directions", directions)
    return (float(magnitude[0]), float(magnitude[1])), directions


@torch.no_grad()
def perturb(
    net: nn.Module, generator: torch.Generator, magnitude: tuple[float, float] = (0.01, 0.09), directions: int = 2
) -> list[float]:
    r"""Move ``net``'s weights along random filter-normalised directions (Acc-DD's model augmentation), in place.

    For each of ``directions`` directions ``d_k`` and every weight ``W`` with ≥ 2 dims (biases and normalisation
    parameters are left alone): ``d_k ~ N(0, I)`` of W's shape, then every filter (row ``i`` of the output
    dimension) is rescaled to the norm of the *unperturbed* W's filter (Li et al.'s filter normalisation),

        d_{k,i} ← d_{k,i} · ‖W_i‖ / ‖d_{k,i}‖,        W ← W + Σ_k ρ_k d_k,        ρ_k = ±U(magnitude), random sign,

    so filter ``i`` moves by ``|ρ_k|·‖W_i‖`` along each direction: a step relative to its own scale (a filter
    followed by a normalisation layer is scale-invariant, so an absolute step would mean little). Returns the
    step sizes ρ_k. All random numbers come from ``generator``.
    """
    (lo, hi), directions = check_perturbation(magnitude, directions)
    gdev = generator.device
    u = torch.rand(directions, 2, generator=generator, device=gdev).cpu()
    rhos = [float((lo + (hi - lo) * a) * (1 if b < 0.5 else -1)) for a, b in u.tolist()]
    weights = [p for p in net.parameters() if p.dim() > 1]
    norms = [w.view(len(w), -1).norm(dim=1, keepdim=True) for w in weights]  # ‖W_i‖ before any step
    for rho in rhos:
        for w, w_norm in zip(weights, norms):
            d = torch.randn(w.shape, generator=generator, device=gdev).to(w.device, w.dtype)
            d_rows = d.view(len(d), -1)
            w.add_((d_rows * (w_norm / (d_rows.norm(dim=1, keepdim=True) + 1e-10))).view_as(w), alpha=rho)
    return rhos


class EarlyStagePool(NetworkSampler):
    """Networks trained a few epochs on real data (``states``), each draw one of them, perturbed (``perturb``).

    ``model``: the architecture (a name or ``FreshInit``) the state dicts belong to. ``magnitude``/``directions``:
    of the weight perturbation (``magnitude=None``: no perturbation). A draw takes one index (uniform over the
    states) and, when perturbing, the perturbation's random numbers from the generator. ``ExpertBuffer.pool``
    (``nets.trajectories``) builds a pool from networks trained by ``train_experts`` (stored keyed, reused,
    resumable); ``pretrain_seconds`` is then what training them took (``None`` for state dicts given directly).
    """

    def __init__(
        self,
        model: str | FreshInit,
        states: Sequence[Mapping[str, torch.Tensor]],
        *,
        magnitude: tuple[float, float] | None = (0.01, 0.09),
        directions: int = 2,
        pretrain_seconds: float | None = None,
        source: Mapping[str, Any] | None = None,
    ):
        if not states:
            raise ValueError("an EarlyStagePool needs at least one trained state dict")
        if magnitude is not None:
            magnitude, directions = check_perturbation(magnitude, directions)
        else:
            validate.positive_int("directions", directions)
        self.model = model if isinstance(model, FreshInit) else FreshInit(model)
        self.states = [{k: v.detach().cpu().clone() for k, v in s.items()} for s in states]
        self.magnitude, self.directions = magnitude, directions
        self.pretrain_seconds, self.source = pretrain_seconds, None if source is None else dict(source)
        h = hashlib.blake2b(digest_size=12)
        for state in self.states:
            for key, value in state.items():
                h.update(key.encode())
                h.update(value.contiguous().view(-1).view(torch.uint8).numpy().data)
        self._fingerprint = h.hexdigest()

    def bind(self, info, device: str | torch.device) -> "EarlyStagePool":
        bound = super().bind(info, device)
        bound.model = self.model.bind(info, device)
        return bound

    def without_perturbation(self) -> "EarlyStagePool":
        """The same networks drawn as they are (no perturbation)."""
        plain = copy.copy(self)
        plain.magnitude = None
        return plain

    def sample(self, generator: torch.Generator) -> nn.Module:
        k = int(torch.randint(len(self.states), (1,), generator=generator, device=generator.device))
        net = self.model.build(0)
        net.load_state_dict(self.states[k])
        if self.magnitude is not None:
            perturb(net, generator, self.magnitude, self.directions)
        return net.train()

    def spec(self) -> dict:
        spec = {
            "sampler": "early_stage",
            "model": self.model.spec(),
            "states": len(self.states),
            "weights": self._fingerprint,
            "magnitude": None if self.magnitude is None else list(self.magnitude),
            "directions": self.directions,
        }
        if self.source is not None:
            spec["source"] = dict(self.source)
        return spec


def as_sampler(model: Any, default: str | Callable[[], nn.Module], *, weight_init: str = "default") -> NetworkSampler:
    """One network sampler from what a caller gave: ``None`` → ``FreshInit(default)``; a name or a function →
    ``FreshInit(model)``; an ``nn.Module`` → ``FixedInit(model)``; a ``NetworkSampler`` → itself.
    ``weight_init`` applies to the fresh initialisations built here from a name or a function. (Methods read their
    ``model=`` through ``nets.model_argument``, which calls this for the methods that take one sampler.)"""
    if isinstance(model, NetworkSampler):
        return model
    if isinstance(model, nn.Module):
        return FixedInit(model)
    if model is None:
        model = default
    if isinstance(model, str) or callable(model):
        return FreshInit(model, weight_init=weight_init)
    raise TypeError(
        f"model must be a model name ({', '.join(MODEL_NAMES)}), a function returning an nn.Module, an nn.Module "
        f"(a fixed θ0) or a NetworkSampler, got {type(model).__name__}"
    )


def as_pool(model: Any, default: Sequence[str | FreshInit]) -> ArchitecturePool:
    """An architecture pool: ``None`` → ``ArchitecturePool(default)``; a name or a ``FreshInit`` → a pool of one; a
    sequence of them → a pool; an ``ArchitecturePool`` → itself. Anything else (a fixed network, another sampler)
    is refused: a pool draws fresh weights of every family at every draw."""
    if model is None:
        model = default
    if isinstance(model, ArchitecturePool):
        return model
    if isinstance(model, (str, FreshInit)):
        model = [model]
    if isinstance(model, (NetworkSampler, nn.Module)) or not isinstance(model, Sequence):
        raise TypeError(
            "model= is an architecture pool here: samplers.ArchitecturePool([...]), a list of model names or "
            f"samplers.FreshInit samplers, or one of them; got {type(model).__name__} (a pool draws fresh weights of "
            "every family at every step, so a fixed network or another sampler does not fit)"
        )
    return ArchitecturePool(list(model))


def build_network(
    model: str, info, seed: int, device: str | torch.device = "cpu", *, weight_init: str = "default", **options: Any
) -> nn.Module:
    """The network ``model`` (options such as ``width=32``) for dataset ``info`` with the weights of ``seed``, on
    ``device``, in train mode: ``FreshInit(model, **options).bind(info, device).build(seed)``. The same seed gives
    the same weights on every device (they are drawn on the CPU); the global RNG is left untouched."""
    return FreshInit(model, weight_init=weight_init, **options).bind(info, device).build(seed)


def sized(model: str, width: int | None) -> FreshInit:
    """A fresh ``model`` at ``width`` (None: the architecture's own width): a per-architecture width, as a pool or a
    cross-architecture table lists them."""
    return FreshInit(model, **({} if width is None else {"width": width}))


def with_width(model: str, width: int | None) -> FreshInit:
    """A fresh ``model`` whose width is ``width`` when the architecture has one that a profile sets (the ConvNet
    family: ``model_width`` of the profiles), else the architecture's own: the one place this rule is written."""
    key = model.strip().lower()
    return FreshInit(key, **({"width": width} if width is not None and key.startswith("convnet") else {}))
