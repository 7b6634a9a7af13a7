"""Random real subset: ``ipc`` images drawn uniformly from every class (the baseline of every table)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from .. import loop
from ..data import ImageSet
from ..hparams import parse
from ..synthetic import SyntheticSet
from .selection import as_synthetic, check_ipc, no_network

__all__ = ["Config", "distill"]


@dataclass(frozen=True)
class Config:
    """A random subset has no hyperparameters."""


def distill(
    train_set: ImageSet,
    ipc: int,
    *,
    generator: torch.Generator,
    model: Any = None,
    callback: Callable[[loop.StepEvent], None] | None = None,
    **hparams: Any,
) -> SyntheticSet:
    """S = {x_i : i ∈ I_c, |I_c| = ipc, I_c ~ Uniform(subsets of class c)} for every class c."""
    config = parse("random", Config, hparams)
    no_network("random", model)
    check_ipc(ipc, train_set)
    return loop.one_shot(
        "random",
        lambda: as_synthetic(train_set, train_set.sample_balanced(ipc, generator)),
        train_set=train_set,
        ipc=ipc,
        config=config,
        spec={},
        callback=callback,
    )
