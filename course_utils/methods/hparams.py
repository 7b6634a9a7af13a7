"""One parser for every method's hyperparameters.

Each method declares its hyperparameters as a frozen dataclass (names, defaults, checks in ``__post_init__``);
``parse(method, Config, hparams)`` builds it from keyword arguments. An unknown name is an
``UnknownHyperparameterError`` (a ``TypeError``, as Python's own for an unexpected keyword) that names the method
and lists the valid names, so notebook 08 and the batch runner can loop over methods without special cases.

Iterative methods extend ``LoopConfig``: ``steps`` (outer steps), ``checkpoint`` (a file path; ``True`` for a
path under ``output/checkpoints`` named after the run's identity; ``None``: no checkpoints) and
``checkpoint_every``. These three say how long and where a run goes, not what it computes, so they are left out of
a checkpoint's identity (a finished run can be continued with more steps).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from typing import Any, Iterable, Mapping, TypeVar

import torch

from ..core import validate

__all__ = [
    "UnknownHyperparameterError",
    "LoopConfig",
    "ImageSGD",
    "LOOP_FIELDS",
    "parse",
    "names",
    "as_dict",
    "identity_fields",
]

C = TypeVar("C")

#: Fields of ``LoopConfig``: how long and where a run goes (not part of what it computes).
LOOP_FIELDS: tuple[str, ...] = ("steps", "checkpoint", "checkpoint_every")


class UnknownHyperparameterError(TypeError):
    """A hyperparameter name that the method does not have."""


def names(config_cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(config_cls))


def parse(method: str, config_cls: type[C], hparams: Mapping[str, Any]) -> C:
    """``config_cls(**hparams)``, with unknown names reported as an error naming ``method`` and the valid names."""
    valid = names(config_cls)
    unknown = [k for k in hparams if k not in valid]
    if unknown:
        raise UnknownHyperparameterError(
            f"{method}: unknown hyperparameter(s) {', '.join(map(repr, unknown))}; valid: {', '.join(valid)}"
        )
    return config_cls(**hparams)


def as_dict(config: Any) -> dict:
    """The hyperparameters as a plain dict (tuples as lists, paths as strings)."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        return value

    return {k: plain(v) for k, v in asdict(config).items()}


def identity_fields(config: Any) -> dict:
    """The hyperparameters that determine a run's result: everything but ``LOOP_FIELDS``."""
    return {k: v for k, v in as_dict(config).items() if k not in LOOP_FIELDS}


@dataclass(frozen=True)
class LoopConfig:
    """Settings every iterative method shares (the shared loop reads them)."""

    steps: int = 100
    checkpoint: Any = None  # a path, True (a path named after the run under output/checkpoints) or None
    checkpoint_every: int = 10

    def __post_init__(self) -> None:
        validate.positive_int("steps", self.steps)
        validate.positive_int("checkpoint_every", self.checkpoint_every)
        if self.checkpoint is not None and self.checkpoint is not True:
            if isinstance(self.checkpoint, bool) or not isinstance(self.checkpoint, (str, os.PathLike)):
                raise ValueError(f"checkpoint must be a file path, True or None, got {self.checkpoint!r}")
            object.__setattr__(self, "checkpoint", os.fspath(self.checkpoint))


class ImageSGD:
    """For the ``Config`` of a method whose images are updated by SGD with ``lr_img`` and ``momentum_img`` (DC, DSA,
    DM, MTT, Acc-DD). Every iterative method's ``Config`` has ``image_optimizer``: the optimiser of its images is
    made there, in one place (ZEN, DD and KIP use Adam)."""

    def image_optimizer(self, params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
        return torch.optim.SGD(list(params), lr=self.lr_img, momentum=self.momentum_img)
