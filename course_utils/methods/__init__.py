"""One module per method, all with the same entry point::

    distill(train_set, ipc, *, generator, model=None, callback=None, **hparams) -> SyntheticSet

``train_set`` is a ``data.ImageSet``, ``ipc`` the images per class, ``generator`` the only source of randomness,
``model`` a network sampler (``course_utils.networks``; the same meaning in every method; the kernel methods take
``feature_map=`` instead), ``callback(event)`` receives a ``loop.StepEvent`` after every step, and ``hparams`` are
the fields of the module's ``Config`` dataclass: an unknown name is an ``UnknownHyperparameterError`` naming the
method and the valid names, so notebook 08 and the batch runner can loop over methods without special cases.
Iterative methods run on the shared loop (``course_utils.loop``: checkpoints, resume, divergence stop, history).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

__all__ = ["MethodInfo", "REGISTRY", "METHOD_NAMES", "get_method", "info", "distill"]


@dataclass(frozen=True)
class MethodInfo:
    """What the registry knows about a method (the contract test and the runners read it)."""

    name: str
    module: str  # under course_utils.methods
    iterative: bool  # runs on the shared loop: checkpoints, resume, divergence stop
    network_arg: str | None  # "model" (a network sampler), "experts" (model= expert trajectories, MTT),
    # "pool" (model= architecture families, a sampler or names, each becoming a pool member: ZEN),
    # "feature_map" (a kernel), or None (no network)
    notebook: str


REGISTRY: dict[str, MethodInfo] = {
    m.name: m
    for m in (
        MethodInfo("random", "random_subset", False, None, "00"),
        MethodInfo("herding", "herding", False, "model", "00"),
        MethodInfo("forgetting", "forgetting", False, "model", "00"),
        MethodInfo("krr_closed_form", "krr_closed_form", False, "feature_map", "01"),
        MethodInfo("kip", "kip", True, "feature_map", "01"),
        MethodInfo("dd", "bilevel", True, "model", "02"),
        MethodInfo("dc", "dc", True, "model", "03"),
        MethodInfo("dsa", "dsa", True, "model", "03"),
        MethodInfo("dm", "dm", True, "model", "04"),
        MethodInfo("mtt", "mtt", True, "experts", "05"),
        MethodInfo("accdd", "accdd", True, "model", "07"),
        MethodInfo("zen", "zen", True, "pool", "06"),
    )
}
METHOD_NAMES = tuple(REGISTRY)


def info(name: str) -> MethodInfo:
    key = name.lower() if isinstance(name, str) else name
    if key not in REGISTRY:
        raise ValueError(f"unknown method {name!r}; valid: {', '.join(METHOD_NAMES)}")
    return REGISTRY[key]


def get_method(name: str) -> ModuleType:
    """The module implementing ``name`` (it has ``distill`` and ``Config``)."""
    return importlib.import_module(f"{__name__}.{info(name).module}")


def distill(name: str, train_set, ipc: int, **kwargs):
    """``get_method(name).distill(train_set, ipc, **kwargs)``."""
    return get_method(name).distill(train_set, ipc, **kwargs)
