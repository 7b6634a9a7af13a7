"""What every coreset method shares: drawing a candidate pool, ranking per class, packing the selection."""

from __future__ import annotations

import torch

from ..core import validate
from ..data.datasets import ImageSet
from ..records.synthetic import SyntheticSet


def check_ipc(ipc: int, train_set: ImageSet) -> None:
    validate.ipc(ipc, train_set)


def candidate_pool(train_set: ImageSet, pool_per_class: int | None, generator: torch.Generator) -> torch.Tensor:
    """Indices of the images a method may choose from: all, or ``pool_per_class`` random ones per class."""
    if pool_per_class is None:
        return torch.arange(len(train_set), device=train_set.labels.device)
    return train_set.sample_balanced(pool_per_class, generator)


def top_per_class(
    scores: torch.Tensor, labels: torch.Tensor, ipc: int, num_classes: int, generator: torch.Generator
) -> torch.Tensor:
    """Positions of the ``ipc`` highest ``scores`` of every class, class by class; ties broken at random.

    Vectorised: one random key breaks ties, a stable sort by score then by label groups each class's
    candidates best-first, and each class keeps its first ``ipc``.
    """
    tiebreak = torch.rand(len(scores), generator=generator, device=generator.device).to(scores.device)
    order = torch.argsort(tiebreak)
    order = order[torch.argsort(scores[order], descending=True, stable=True)]
    order = order[torch.argsort(labels[order], stable=True)]
    counts = torch.bincount(labels, minlength=num_classes)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(order), device=order.device) - starts[labels[order]]
    return order[rank < ipc]


def as_synthetic(train_set: ImageSet, indices: torch.Tensor, **meta) -> SyntheticSet:
    """The chosen real images as a ``SyntheticSet`` (ordered class by class), remembering their indices."""
    indices = indices[torch.argsort(train_set.labels[indices], stable=True)]
    return SyntheticSet(
        train_set.images[indices].clone(),
        train_set.labels[indices].clone(),
        None,
        {"indices": indices.tolist(), **meta},
    )
