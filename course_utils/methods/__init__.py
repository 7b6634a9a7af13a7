"""One module per method, all with the same entry point::

    distill(train_set, ipc, *, generator, model=None, callback=None, **hparams) -> SyntheticSet

``train_set`` is a ``data.ImageSet``, ``ipc`` the images per class, ``generator`` the only source of randomness,
``model`` what the method draws its networks from (``nets.model_argument``: a network sampler, architecture
families or expert trajectories, as its registry entry says; the kernel methods take ``feature_map=`` instead),
``callback(event)`` receives a ``loop.StepEvent`` after every step, and ``hparams`` are the fields of the module's
``Config`` dataclass: an unknown name is an ``UnknownHyperparameterError`` naming the method and the valid names, so
notebook 08 and the batch runner can loop over methods without special cases. Iterative methods run on the shared
loop (``methods.loop``: checkpoints, resume, divergence stop, history).

Each module also holds its facts, ``METHOD`` (``registry.MethodInfo``): family, notebook, what ``model=`` accepts,
its paper's evaluation protocol, tiny settings, notebook 08's budget per profile and its one-off preparation. The
registry below is one line per method; every other table derives from it.
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from types import ModuleType

from .registry import MethodInfo

__all__ = ["MethodInfo", "REGISTRY", "METHOD_NAMES", "register", "get_method", "info", "distill", "paper_protocol"]

#: The registry: the modules of the methods, in the course's order (one line per method).
MODULES: tuple[str, ...] = (
    "random_subset",
    "herding",
    "forgetting",
    "krr_closed_form",
    "kip",
    "bilevel",
    "dc",
    "dsa",
    "dm",
    "mtt",
    "accdd",
    "zen",
)

REGISTRY: dict[str, MethodInfo] = {}


def register(module: str | ModuleType) -> MethodInfo:
    """Add the method of ``module`` (a module of this package by name, any importable module by its dotted name, or
    a module object) to ``REGISTRY``; it needs ``METHOD``, ``Config`` and ``distill``. Returns its entry."""
    if isinstance(module, str):
        module = importlib.import_module(module if "." in module else f"{__name__}.{module}")
    missing = [name for name in ("METHOD", "Config", "distill") if not hasattr(module, name)]
    if missing:
        raise TypeError(f"{module.__name__} is not a method module: it lacks {', '.join(missing)}")
    entry = replace(module.METHOD, module=module)
    if entry.name in REGISTRY and REGISTRY[entry.name].module is not module:
        raise ValueError(f"a method named {entry.name!r} is registered already ({REGISTRY[entry.name].module})")
    REGISTRY[entry.name] = entry
    return entry


for _name in MODULES:
    register(_name)


def __getattr__(name: str):
    if name == "METHOD_NAMES":  # read at use: a method registered later is in it
        return tuple(REGISTRY)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def info(name: str) -> MethodInfo:
    """The registry entry of ``name``; an unknown name is a ``ValueError`` listing the valid ones."""
    key = name.lower() if isinstance(name, str) else name
    if key not in REGISTRY:
        raise ValueError(f"unknown method {name!r}; valid: {', '.join(REGISTRY)}")
    return REGISTRY[key]


def get_method(name: str) -> ModuleType:
    """The module implementing ``name`` (it has ``distill``, ``Config`` and ``METHOD``)."""
    return info(name).module


def distill(name: str, train_set, ipc: int, **kwargs):
    """``get_method(name).distill(train_set, ipc, **kwargs)``."""
    return get_method(name).distill(train_set, ipc, **kwargs)


def paper_protocol(name: str) -> str:
    """The evaluation protocol ``name``'s paper reports under (``evaluation.protocol.PROTOCOL_NAMES``)."""
    return info(name).paper_protocol
