"""Random real subset: ``ipc`` images drawn uniformly from every class (the baseline of every table)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Generator

from ..data.datasets import ImageSet
from ..records.synthetic import SyntheticSet
from . import loop
from .hparams import parse
from .registry import MethodInfo, Tiny, by_profile
from .selection import as_synthetic, check_ipc

__all__ = ["METHOD", "Config", "distill"]


@dataclass(frozen=True)
class Config:
    """A random subset has no hyperparameters."""


def distill(train_set: ImageSet, ipc: int, *, generator: Generator, model=None, callback=None, **hparams):
    """S = {x_i : i ∈ I_c, |I_c| = ipc, I_c ~ Uniform(subsets of class c)} for every class c."""
    config = parse("random", Config, hparams)
    METHOD.sampler(model)  # refuses a network: a random subset uses none
    check_ipc(ipc, train_set)

    def compute() -> SyntheticSet:
        return as_synthetic(train_set, train_set.sample_balanced(ipc, generator))

    return loop.one_shot("random", compute, train_set, ipc, config, {}, callback)


TINY = Tiny()

BUDGETS = by_profile({}, {})

METHOD = MethodInfo("random", "coreset", "00", None, "dc", TINY, BUDGETS)
