"""The evaluation protocols: how a (synthetic) set is scored, as named, tested objects.

A number in the course is only comparable with a paper's when both come from the same protocol. Each
``Protocol`` says how a fresh network is trained on a set before it is tested: epochs, SGD settings, the
learning-rate schedule, and the augmentation of every training batch. The named protocols:

``"plain"``  no augmentation, ``epochs`` (default 300) with lr × 0.1 after half of them. The quick profile uses it
             with few epochs: cheap, but not a paper's protocol.
``"dc"``     the DC paper's ``evaluate_synset``: SGD (momentum 0.9, weight decay 5e-4, lr 0.01, batch 256), the
             reference's schedule (``E + 1`` epochs, lr × 0.1 and a new optimiser after epoch ``E//2 + 1``). On MNIST
             every training image gets ONE of crop (4 px) / scale (±20 %) / rotate (±45°) (``augment.DCAugment``) and
             E = 1000; on other datasets no augmentation and E = 300. The MNIST/DC-family tables rest on it.
``"dsa"``    the DSA paper's: the same SGD and schedule, E = 1000, DSA augmentation of every batch (one op per
             batch, per-image parameters; ``augment.strategy_for(dataset)``). DSA, DM and MTT report under it.

The protocol each method's paper reports under is a fact of the method (its registry entry, ``methods.registry``);
"paper" profiles evaluate every row as the paper it is compared with: ``resolve("paper", dataset, paper=<that
protocol's name>)``. ``epochs`` may be overridden (a profile that shortens evaluation): the protocol's ``label`` then
says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Callable

import torch

from ..core import validate
from ..data.augment import DSA, DCAugment, strategy_for

__all__ = ["Protocol", "PROTOCOL_NAMES", "named", "resolve"]

#: Names ``named`` accepts ("paper" is resolved per method by ``resolve``).
PROTOCOL_NAMES: tuple[str, ...] = ("plain", "dc", "dsa")


@dataclass(frozen=True)
class Protocol:
    """How a fresh network is trained on a set before it is tested (see the module docstring).

    ``epochs`` passes; ``lr`` × ``lr_decay`` from epoch ``decay_epoch`` on (None: ``epochs // 2``), with a new
    optimiser there when ``restart_optimizer`` (the reference re-creates it, dropping the momentum);
    ``augmentation``: ``"none"``, ``"dc:<ops>"`` (``DCAugment``) or ``"dsa:<ops>"`` (``DSA``, one op per batch).
    """

    name: str = "plain"
    epochs: int = 300
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    lr_decay: float = 0.1
    decay_epoch: int | None = None
    restart_optimizer: bool = False
    augmentation: str = "none"
    test_batch_size: int = 500

    def __post_init__(self) -> None:
        validate.positive_int("epochs", self.epochs)
        validate.positive_int("batch_size", self.batch_size)
        validate.positive_int("test_batch_size", self.test_batch_size)
        validate.positive_int("decay_epoch", self.decay_epoch, minimum=0, allow_none=True)
        validate.positive_number("lr", self.lr)
        validate.number_in("momentum", self.momentum, 0, 1)
        validate.positive_number("weight_decay", self.weight_decay, allow_zero=True)
        validate.positive_number("lr_decay", self.lr_decay)
        kind = self.augmentation.split(":")[0]
        validate.choice("augmentation kind", kind, ("none", "dc", "dsa"))

    @property
    def decay_at(self) -> int:
        """The first epoch (0-based) trained at the decayed learning rate."""
        return self.epochs // 2 if self.decay_epoch is None else self.decay_epoch

    def augmenter(self) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None:
        """The batch augmentation ``f(x, generator)``, or None."""
        kind, _, ops = self.augmentation.partition(":")
        if kind == "dc":
            return DCAugment(ops)
        if kind == "dsa":
            return DSA(ops)
        return None

    def with_epochs(self, epochs: int | None) -> "Protocol":
        """The same protocol trained for ``epochs`` (the reference's schedule keeps its shape: E + 1 epochs,
        decay after E//2 + 1); ``None`` leaves it unchanged."""
        if epochs is None:
            return self
        validate.positive_int("epochs", epochs)
        if self.restart_optimizer:  # the reference's schedule
            return replace(self, epochs=epochs + 1, decay_epoch=epochs // 2 + 2)
        return replace(self, epochs=epochs, decay_epoch=None)

    @property
    def label(self) -> str:
        """A short description for tables: ``dsa (1000 epochs, dsa:color_crop_cutout_scale_rotate)``."""
        epochs = self.epochs - 1 if self.restart_optimizer else self.epochs
        return f"{self.name} ({epochs} epochs, {self.augmentation})"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "label": self.label}


def _reference(name: str, epochs: int, augmentation: str) -> Protocol:
    """The DC/DSA reference schedule for E = ``epochs``: E + 1 passes, decay and a new optimiser after E//2 + 1."""
    return Protocol(
        name=name, epochs=epochs + 1, decay_epoch=epochs // 2 + 2, restart_optimizer=True, augmentation=augmentation
    )


def named(name: str, dataset: str, epochs: int | None = None) -> Protocol:
    """The protocol ``name`` (``PROTOCOL_NAMES``) for ``dataset``, with ``epochs`` overriding its own."""
    validate.choice("protocol", name, PROTOCOL_NAMES)
    if name == "plain":
        return Protocol(name="plain", epochs=300 if epochs is None else epochs)
    if name == "dc":
        mnist = dataset.lower() == "mnist"
        base = _reference("dc", 1000 if mnist else 300, "dc:crop_scale_rotate" if mnist else "none")
    else:
        base = _reference("dsa", 1000, f"dsa:{strategy_for(dataset)}")
    return base.with_epochs(epochs)


def resolve(protocol: "Protocol | str", dataset: str, epochs: int | None = None, paper: str | None = None) -> Protocol:
    """A ``Protocol`` from a protocol or a name; ``"paper"`` means ``paper``, the name of the protocol the paper of
    the method being scored reports under (its registry entry's ``paper_protocol``)."""
    if isinstance(protocol, Protocol):
        return protocol.with_epochs(epochs)
    if protocol == "paper":
        if paper is None:
            raise ValueError(
                "protocol='paper' needs the protocol of the method's paper (paper=, a method's registry entry)"
            )
        return named(paper, dataset, epochs)
    if not isinstance(protocol, str):
        raise TypeError(f"protocol must be a Protocol or one of {', '.join(PROTOCOL_NAMES)}, paper; got {protocol!r}")
    if protocol not in PROTOCOL_NAMES:
        raise ValueError(f"protocol={protocol!r} is not valid; valid: {', '.join(PROTOCOL_NAMES)}, paper")
    return named(protocol, dataset, epochs)
