"""Random real subset: ``ipc`` images drawn uniformly from every class (the baseline of every table)."""

from __future__ import annotations

import torch

from ..data import ImageSet
from ..synthetic import SyntheticSet
from .selection import as_synthetic, check_ipc


def distill(train_set: ImageSet, ipc: int, *, generator: torch.Generator, model=None,
            callback=None) -> SyntheticSet:
    """S = {x_i : i ∈ I_c, |I_c| = ipc, I_c ~ Uniform(subsets of class c)} for every class c."""
    check_ipc(ipc, train_set)
    return as_synthetic(train_set, train_set.sample_balanced(ipc, generator), "random", ipc)
