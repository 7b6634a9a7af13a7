"""What the course knows about a method, written once, in the method's own module (``METHOD = MethodInfo(...)``).

Every table that lists methods derives from these entries (``methods.REGISTRY``): the papers' protocols, the
contract test's and the GPU check's tiny settings, notebook 08's budgets per profile and what a method needs made
once per dataset. Adding a method is one module with ``Config``, ``distill`` and ``METHOD``, plus one line in
``methods/__init__.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Mapping

import torch

from ..core import validate
from ..data.datasets import ImageSet
from ..evaluation.protocol import PROTOCOL_NAMES
from ..nets.model_argument import KINDS, model_argument
from ..nets.samplers import FreshInit, with_width
from . import loop
from .hparams import LoopConfig

__all__ = [
    "PROFILES",
    "NETWORKS",
    "TINY_CONVNET",
    "Tiny",
    "Preparation",
    "MethodInfo",
    "by_profile",
    "at_ipc",
    "listed_ipc",
]

#: The profiles a benchmark budget is given for (``course.config`` has the same three).
PROFILES: tuple[str, ...] = ("quick", "standard", "full")
#: What ``model=`` (or ``feature_map=``) of a method takes: ``nets.model_argument.KINDS``, and "feature_map" for the
#: kernel methods (``feature_map=`` instead of ``model=``).
NETWORKS: tuple[str | None, ...] = (*KINDS, "feature_map")


def listed_ipc(ipc: int, listed: Any) -> int:
    """The listed IPC whose settings an unlisted ``ipc`` takes: the nearest one, the smaller on a tie (IPC 3 runs as
    IPC 1, IPC 7 as IPC 10, IPC 30 as IPC 10, IPC 100 as IPC 50). The one rule for every per-IPC table (DC's
    schedule, notebook 08's budgets)."""
    validate.positive_int("ipc", ipc)
    listed = sorted(listed)
    if not listed:
        raise ValueError("no IPC is listed")
    return min(listed, key=lambda k: (abs(k - ipc), k))


def at_ipc(table: Mapping[Any, Any], ipc: int) -> dict:
    """The settings of ``table`` at ``ipc``: its common entries, overridden by the per-IPC entry (integer keys) of
    the listed IPC ``listed_ipc`` picks."""
    common = {k: v for k, v in table.items() if not isinstance(k, int)}
    listed = [k for k in table if isinstance(k, int)]
    if not listed:
        validate.positive_int("ipc", ipc)
        return common
    return {**common, **dict(table[listed_ipc(ipc, listed)])}


def by_profile(
    quick: Mapping[Any, Any], standard: Mapping[Any, Any], full: Mapping[Any, Any] | None = None
) -> dict[str, dict]:
    """Settings per profile: ``quick``, ``standard``, and ``full`` written as what changes from ``standard`` (a key
    of ``full`` replaces the standard one: an integer key, a per-IPC entry, is replaced whole)."""
    return {"quick": dict(quick), "standard": dict(standard), "full": {**standard, **dict(full or {})}}


@dataclass(frozen=True)
class Tiny:
    """Settings that run the method in seconds on a 20-per-class subset (the contract test, the GPU check).

    ``hparams``: its hyperparameters; ``diverge``: hyperparameters that make an iterative method diverge (None: it
    cannot); ``model``: the ``model=`` of a tiny run (None: the default), or a function ``model(train_set, root)``
    that makes it (e.g. experts trained under the folder ``root``)."""

    hparams: Mapping[str, Any] = field(default_factory=dict)
    diverge: Mapping[str, Any] | None = None
    model: Any = None

    def kwargs(self, train_set: ImageSet, root: str | Path) -> dict:
        """The keyword arguments of a tiny ``distill`` call (hyperparameters and ``model=``)."""
        if self.model is None:
            return dict(self.hparams)
        model = self.model(train_set, Path(root)) if callable(self.model) else self.model
        return {**self.hparams, "model": model}


#: The network of tiny runs: a ConvNet of width 8.
TINY_CONVNET = FreshInit("convnet", width=8)


@dataclass
class Preparation:
    """What notebook 08 hands a method's ``prepare``: the training set, the profile's distillation network (a fresh
    ConvNet of the profile's width) and width, seed, device, a folder for stored networks (None: the output folder), a
    generator of its own, the method's preparation settings of the profile and its budget's hyperparameters."""

    train: ImageSet
    model: FreshInit
    width: int | None
    seed: int
    device: str | torch.device
    root: Path | None
    generator: torch.Generator
    settings: Mapping[str, Any]
    hparams: Mapping[str, Any]

    def folder(self, name: str) -> Path | None:
        """Where the method stores what it trains (``root/name``; None: under the output folder)."""
        return None if self.root is None else Path(self.root) / name

    def stored(self, name: str) -> dict:
        """The arguments that train stored networks (experts, pools) as the profile asks: its network, seed, device
        and folder ``name``."""
        return {"model": self.model, "seed": self.seed, "root": self.folder(name), "device": self.device}

    def network(self, name: str) -> FreshInit:
        """A fresh ``name`` at the profile's width rule (``samplers.with_width``)."""
        return with_width(name, self.width)


#: ``prepare(preparation) -> (extra distill arguments, seconds or None)``: made once per dataset; None seconds means
#: "time the call" (the caller does), a number is the time already spent (e.g. stored networks' training).
Prepare = Callable[[Preparation], "tuple[dict, float | None]"]


@dataclass(frozen=True)
class MethodInfo:
    """A method's facts (``METHOD`` in its module; ``methods.REGISTRY`` holds them by name), written
    ``MethodInfo(name, family, notebook, network, paper_protocol, tiny, benchmark, default_model, prepare,
    prepare_settings)``.

    ``notebook``: where the course teaches it. ``network``: what ``model=`` accepts (``NETWORKS``;
    ``nets.model_argument``) and ``default_model`` what ``None`` means ("convnet", architecture families, ...; None:
    no network or the method's own default, said in ``distill``'s docstring). ``paper_protocol``: the evaluation
    protocol its paper reports under. ``tiny``: its seconds-long settings. ``benchmark``: notebook 08's
    hyperparameters per profile (``by_profile``; integer keys hold per-IPC overrides, an unlisted IPC takes
    ``listed_ipc``'s); ``prepare`` and ``prepare_settings`` (per profile): what is made once per dataset (experts, a
    pool, a trained embedding network; None: ``model=`` is the profile's network for the methods that take one
    sampler, nothing for the others). Whether it is ``iterative`` follows from its ``Config``."""

    name: str
    family: str
    notebook: str
    network: str | None
    paper_protocol: str
    tiny: Tiny
    benchmark: Mapping[str, Mapping[Any, Any]]
    default_model: Any = None
    prepare: Prepare | None = None
    prepare_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    module: ModuleType | None = None  # filled in by the registry

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier() or self.name != self.name.lower():
            raise ValueError(f"a method's name is a lower-case identifier, got {self.name!r}")
        validate.choice(f"{self.name}: network", self.network, NETWORKS)
        validate.choice(f"{self.name}: paper_protocol", self.paper_protocol, PROTOCOL_NAMES)
        missing = [p for p in PROFILES if p not in self.benchmark]
        if missing:
            raise ValueError(f"{self.name}: no benchmark budget for profile(s) {missing}; give {', '.join(PROFILES)}")

    @property
    def iterative(self) -> bool:
        """Whether the method runs on the shared loop (its ``Config`` is a ``hparams.LoopConfig``)."""
        return self.module is not None and issubclass(self.module.Config, LoopConfig)

    def budget(self, profile: str, ipc: int) -> dict:
        """Notebook 08's hyperparameters at ``ipc`` in ``profile``: the common ones, overridden by the per-IPC entry
        of the listed IPC ``listed_ipc`` picks."""
        validate.choice("profile", profile, PROFILES)
        return at_ipc(self.benchmark[profile], ipc)

    def sampler(self, model: Any, **options: Any) -> Any:
        """``model=`` of this method as what it draws from (``nets.model_argument`` with this entry's ``network``
        and ``default_model``)."""
        return model_argument(self.name, model, self.network, self.default_model, **options)

    def run(
        self, distiller: type, config: Any, train_set: ImageSet, ipc: int, generator, model, callback, **options: Any
    ):
        """``loop.run`` of ``distiller`` with ``model=`` read by ``sampler`` (with the training set, which experts and
        pools are checked against, and ``options``): the last line of an iterative method's ``distill``."""
        sampler = self.sampler(model, train_set=train_set, **options)
        return loop.run(
            distiller, train_set, ipc, generator=generator, config=config, callback=callback, sampler=sampler
        )

    def listed_ipcs(self, profile: str) -> tuple[int, ...] | None:
        """The IPCs with their own budget in ``profile`` (None: one budget for every IPC)."""
        listed = sorted(k for k in self.benchmark[profile] if isinstance(k, int))
        return tuple(listed) or None
