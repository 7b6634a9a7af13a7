"""Forgetting (Toneva et al., ICLR 2019): keep the examples a network forgets most often.

A forgetting event for example i happens when it was classified correctly at its previous
presentation and incorrectly now: acc_i^{t-1} = 1 and acc_i^t = 0. Examples never learned
during training count as forgotten infinitely often (Toneva et al.'s convention, ``never_learned="first"``) or
are ranked below every learned one (``never_learned="last"``). For every class the ``ipc`` examples with the
most events are kept, ties broken at random.

Which rule matters: after a few epochs on MNIST almost no example is ever forgotten, so "first" keeps the
never-learned examples, mostly mislabeled or unreadable digits, and "last" keeps a random subset of the learned
ones that leans towards the few forgotten once (notebook 00, section 6, measures both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Generator

from ..core import validate
from ..data.datasets import ImageSet
from ..evaluation.training import Protocol, train
from ..records.synthetic import SyntheticSet
from . import loop
from .hparams import parse
from .registry import TINY_CONVNET, MethodInfo, Preparation, Tiny, by_profile
from .selection import as_synthetic, candidate_pool, check_ipc, top_per_class

__all__ = ["Config", "ForgettingTracker", "ForgettingStatistics", "compute_statistics", "distill", "ranking_scores"]


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

    pool: torch.Tensor  # indices into the training set
    scores: torch.Tensor  # forgetting events per pool image, +inf if never learned
    epochs: int
    model: dict  # the spec of the network that was trained
    never_learned: int


#: Where examples that were never classified correctly rank.
NEVER_LEARNED: tuple[str, ...] = ("first", "last")


@dataclass(frozen=True)
class Config:
    epochs: int = 10  # epochs of the run that counts forgetting events
    pool_per_class: int | None = None  # candidates per class (None: every image)
    never_learned: str = "first"  # first: forgotten infinitely often (Toneva et al.) | last: below every learned one

    def __post_init__(self) -> None:
        validate.positive_int("epochs", self.epochs)
        validate.positive_int("pool_per_class", self.pool_per_class, allow_none=True)
        validate.choice("never_learned", self.never_learned, NEVER_LEARNED)


def ranking_scores(scores: torch.Tensor, never_learned: str = "first") -> torch.Tensor:
    """The scores the selection ranks by: events, with never-learned examples (+inf) first or last (-inf)."""
    validate.choice("never_learned", never_learned, NEVER_LEARNED)
    return scores if never_learned == "first" else scores.masked_fill(torch.isinf(scores), float("-inf"))


def compute_statistics(
    train_set: ImageSet,
    *,
    generator: torch.Generator,
    model: Any = "convnet",
    epochs: int = 10,
    pool_per_class: int | None = None,
    protocol: Protocol = Protocol(),
) -> ForgettingStatistics:
    """Train a network from ``model`` (a sampler or a name; ``nets.model_argument``) on the pool for ``epochs``
    epochs with the protocol's optimiser, counting forgetting events."""
    validate.positive_int("epochs", epochs)
    sampler = METHOD.sampler(model).bind(train_set.info, train_set.device)
    pool = candidate_pool(train_set, pool_per_class, generator)
    images, labels = train_set.images[pool], train_set.labels[pool]
    net = sampler.sample(generator)
    tracker = ForgettingTracker(len(pool), images.device)
    train(
        net,
        images,
        labels,
        epochs=epochs,
        generator=generator,
        protocol=protocol,
        on_batch=tracker,
        desc="forgetting statistics",
    )
    return ForgettingStatistics(pool, tracker.scores(), epochs, sampler.spec(), int((~tracker.learned).sum()))


def distill(
    train_set: ImageSet, ipc: int, *, generator: Generator, model=None, callback=None, statistics=None, **hparams
):
    """Keep the ``ipc`` most-forgotten images of every class.

    ``model``: the network that is trained to count events (default a fresh ``"convnet"``); ``statistics``: counts
    computed before (``compute_statistics``), reused for every ipc instead of training again.
    """
    config = parse("forgetting", Config, hparams)
    check_ipc(ipc, train_set)

    def compute() -> SyntheticSet:
        stats = statistics
        if stats is None:
            stats = compute_statistics(
                train_set, generator=generator, model=model, epochs=config.epochs, pool_per_class=config.pool_per_class
            )
        labels = train_set.labels[stats.pool]
        scores = ranking_scores(stats.scores, config.never_learned)
        picks = top_per_class(scores, labels, ipc, train_set.num_classes, generator)
        return as_synthetic(
            train_set,
            stats.pool[picks],
            statistics_epochs=stats.epochs,
            never_learned=stats.never_learned,
            counting_model=stats.model,
        )

    spec = {"model": METHOD.sampler(model).spec() if statistics is None else statistics.model}
    return loop.one_shot("forgetting", compute, train_set, ipc, config, spec, callback)


def prepare(p: Preparation) -> tuple[dict, None]:
    """Notebook 08: the forgetting statistics of the training set, counted as the budget's hyperparameters say
    (``epochs``, ``pool_per_class``), reused by every IPC."""
    stats = compute_statistics(
        p.train,
        generator=p.generator,
        model=p.model,
        epochs=p.hparams.get("epochs", Config.epochs),
        pool_per_class=p.hparams.get("pool_per_class"),
    )
    return {"statistics": stats}, None


TINY = Tiny({"epochs": 1}, None, TINY_CONVNET)

BUDGETS = by_profile({"epochs": 3}, {"epochs": 10})

METHOD = MethodInfo("forgetting", "coreset", "00", "sampler", "dc", TINY, BUDGETS, "convnet", prepare)
