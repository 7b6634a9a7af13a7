"""Forgetting (Toneva et al., ICLR 2019): keep the examples a network forgets most often.

A forgetting event for example i happens when it was classified correctly at its previous
presentation and incorrectly now: acc_i^{t-1} = 1 and acc_i^t = 0. Examples never learned
during training count as forgotten infinitely often (Toneva et al.'s convention). For every class
the ``ipc`` examples with the most events are kept, ties broken at random.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data import ImageSet
from ..repro import derive_seed
from ..synthetic import SyntheticSet
from ..training import Protocol, make_model, train
from .selection import as_synthetic, candidate_pool, check_ipc, top_per_class


class ForgettingTracker:
    """``on_batch`` hook for ``training.train`` that counts forgetting events per example."""

    def __init__(self, num_examples: int, device: str | torch.device = "cpu") -> None:
        self.previous = torch.zeros(num_examples, dtype=torch.bool, device=device)
        self.learned = torch.zeros(num_examples, dtype=torch.bool, device=device)
        self.events = torch.zeros(num_examples, dtype=torch.long, device=device)

    def __call__(self, indices: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        labels = targets if targets.dim() == 1 else targets.argmax(1)
        correct = logits.argmax(1) == labels
        self.events[indices] += (self.previous[indices] & ~correct).long()
        self.learned[indices] |= correct
        self.previous[indices] = correct

    def scores(self) -> torch.Tensor:
        """Forgetting events per example, +inf for examples never learned."""
        return self.events.float().masked_fill(~self.learned, float("inf"))


@dataclass
class ForgettingStatistics:
    """Forgetting scores of the candidate pool (computed once, reused for every ipc)."""

    pool: torch.Tensor        # indices into the training set
    scores: torch.Tensor      # forgetting events per pool image, +inf if never learned
    epochs: int
    model: str
    never_learned: int


def compute_statistics(train_set: ImageSet, *, generator: torch.Generator, model: str = "convnet",
                       epochs: int = 10, pool_per_class: int | None = None, model_kwargs: dict | None = None,
                       protocol: Protocol = Protocol()) -> ForgettingStatistics:
    """Train ``model`` on the pool for ``epochs`` epochs with the protocol, counting forgetting events."""
    if not isinstance(model, str):
        raise TypeError(f"forgetting trains its own network: pass a model name, got {type(model).__name__}")
    pool = candidate_pool(train_set, pool_per_class, generator)
    images, labels = train_set.images[pool], train_set.labels[pool]
    net = make_model(model, train_set.info, derive_seed(generator), images.device, **dict(model_kwargs or {}))
    tracker = ForgettingTracker(len(pool), images.device)
    train(net, images, labels, epochs=epochs, generator=generator, protocol=protocol, on_batch=tracker,
          desc="forgetting statistics")
    return ForgettingStatistics(pool, tracker.scores(), epochs, model, int((~tracker.learned).sum()))


def distill(train_set: ImageSet, ipc: int, *, generator: torch.Generator, model: str = "convnet",
            callback=None, epochs: int = 10, pool_per_class: int | None = None,
            model_kwargs: dict | None = None, statistics: ForgettingStatistics | None = None) -> SyntheticSet:
    """Keep the ``ipc`` most-forgotten images of every class (statistics computed here unless given)."""
    check_ipc(ipc, train_set)
    if statistics is None:
        statistics = compute_statistics(train_set, generator=generator, model=model, epochs=epochs,
                                        pool_per_class=pool_per_class, model_kwargs=model_kwargs)
    labels = train_set.labels[statistics.pool]
    picks = top_per_class(statistics.scores, labels, ipc, train_set.num_classes, generator)
    if callback is not None:
        callback(statistics.epochs, {"never_learned": statistics.never_learned})
    return as_synthetic(train_set, statistics.pool[picks], "forgetting", ipc, epochs=statistics.epochs,
                        pool_per_class=pool_per_class, model=statistics.model)
