"""Training and testing a fresh network on a (synthetic) set: the loop behind every evaluation protocol.

Train a *fresh* network on a given image/label set and test it on the real test set, as a ``protocol.Protocol``
says (SGD with momentum and weight decay, a step learning-rate schedule, an optional augmentation of every
batch), then report the accuracy of the network after the LAST epoch (not the best one). Repeated over
``num_models`` model seeds and reported as mean ± std with wall times. The same loop trains full-data baselines.
The loop is kept close to its floor (forward+backward of each batch): tensors stay on the device, no
DataLoader, no per-sample Python work.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn as nn

from ..core import tables, validate
from ..core.cost import synchronized_time
from ..core.progress import progress
from ..core.repro import resolve_device, run_generator, run_seed
from ..data.datasets import ImageSet
from ..nets.fit import BatchHook, train_epoch
from ..nets.samplers import FreshInit, NetworkSampler, as_sampler
from ..records.synthetic import SyntheticSet
from .protocol import Protocol, resolve

__all__ = [
    "Protocol",
    "EvalResult",
    "BatchHook",
    "train",
    "train_epoch",
    "accuracy",
    "evaluate",
    "evaluate_set",
    "train_full",
    "check_set",
]


@dataclass
class EvalResult:
    """Accuracies (%) of ``num_models`` fresh networks trained on one set, with wall times."""

    accuracies: list[float]
    train_seconds: list[float]
    test_seconds: list[float]
    model: str
    epochs: int
    num_images: int
    settings: dict = field(default_factory=dict)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracies)

    @property
    def std(self) -> float | None:
        """Population std (as the reference reports ``np.std``); None for a single network (no spread to report)."""
        return statistics.pstdev(self.accuracies) if len(self.accuracies) > 1 else None

    @property
    def protocol(self) -> str:
        return self.settings.get("protocol", {}).get("label", "")

    @property
    def seconds(self) -> float:
        return sum(self.train_seconds) + sum(self.test_seconds)

    def as_dict(self) -> dict:
        return {
            "accuracies": self.accuracies,
            "mean": self.mean,
            "std": self.std,
            "train_seconds": self.train_seconds,
            "test_seconds": self.test_seconds,
            "model": self.model,
            "epochs": self.epochs,
            "num_images": self.num_images,
            "settings": self.settings,
        }

    def __str__(self) -> str:
        accuracy = tables.mean_std(self.mean, self.std)
        return (
            f"{accuracy} % ({len(self.accuracies)} × {self.model}, {self.num_images} images, "
            f"{self.protocol or f'{self.epochs} epochs'}, {self.seconds:.1f} s)"
        )


def train(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int | None = None,
    generator: torch.Generator,
    lr: float | None = None,
    protocol: Protocol = Protocol(),
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    on_batch: BatchHook | None = None,
    desc: str | None = None,
) -> list[float]:
    """Train ``model`` in place with ``protocol``'s SGD schedule; return the mean loss of each epoch.

    ``epochs`` (default the protocol's) passes; each visits the set in a random order drawn from ``generator``;
    ``augment(x, generator)`` (e.g. DSA) transforms every batch. Labels may be class indices or soft (N×K) targets.
    """
    epochs = protocol.epochs if epochs is None else validate.positive_int("epochs", epochs)
    lr = protocol.lr if lr is None else float(lr)
    decay_at = protocol.decay_at if epochs == protocol.epochs else epochs // 2

    def optimiser(rate: float) -> torch.optim.Optimizer:
        return torch.optim.SGD(
            model.parameters(), lr=rate, momentum=protocol.momentum, weight_decay=protocol.weight_decay
        )

    optimizer = optimiser(lr)
    losses = []
    for epoch in progress(range(epochs), desc=desc or "train", total=epochs):
        if epoch == decay_at and epoch > 0:
            if protocol.restart_optimizer:
                optimizer = optimiser(lr * protocol.lr_decay)
            else:
                for group in optimizer.param_groups:
                    group["lr"] = lr * protocol.lr_decay
        epoch_loss = train_epoch(
            model,
            optimizer,
            images,
            labels,
            generator=generator,
            batch_size=protocol.batch_size,
            augment=augment,
            on_batch=on_batch,
        )
        if not math.isfinite(epoch_loss):
            raise FloatingPointError(
                f"training loss became {epoch_loss} at epoch {epoch + 1}/{epochs} (lr={lr}): the learning rate "
                "is probably too high for this set, or the images hold NaN/inf values"
            )
        losses.append(epoch_loss)
    return losses


@torch.inference_mode()
def accuracy(model: nn.Module, test: ImageSet, batch_size: int = 500) -> float:
    """Top-1 accuracy (%) of ``model`` on ``test``."""
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=test.images.device)
    for start in range(0, len(test), batch_size):
        logits = model(test.images[start : start + batch_size])
        correct += (logits.argmax(1) == test.labels[start : start + batch_size]).sum()
    return 100.0 * int(correct) / len(test)


def check_set(images, labels, test: ImageSet) -> None:
    """A set a network can be trained on and tested against ``test``: tensors, images N×C×H×W shaped like the
    test images, N ≥ 1, labels one per image (class indices in range, or N×K soft labels). Errors name the value."""
    for name, value in (("images", images), ("labels", labels)):
        if not isinstance(value, torch.Tensor):
            hint = " (convert it with torch.from_numpy)" if type(value).__module__ == "numpy" else ""
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}{hint}")
    if images.dim() != 4:
        raise ValueError(f"images must be N×C×H×W, got shape {tuple(images.shape)}")
    if len(images) == 0:
        raise ValueError("the set is empty: nothing to train on")
    if tuple(images.shape[1:]) != tuple(test.images.shape[1:]):
        raise ValueError(
            f"images are {tuple(images.shape[1:])} (C×H×W) but the {test.name} test images are "
            f"{tuple(test.images.shape[1:])}"
        )
    if not images.is_floating_point():
        raise ValueError(f"images must be floating point (normalised pixels), got dtype {images.dtype}")
    K = test.num_classes
    if labels.dim() == 2 and labels.is_floating_point():
        if labels.shape != (len(images), K):
            raise ValueError(f"soft labels must be N×K = {(len(images), K)}, got {tuple(labels.shape)}")
        return
    if labels.dim() != 1 or len(labels) != len(images):
        raise ValueError(
            f"labels must be 1-D with one class per image ({len(images)}), got shape {tuple(labels.shape)}"
        )
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= K:
        raise ValueError(f"labels must lie in 0..{K - 1} for {test.name}, got values in {low}..{high}")


def evaluate(
    images: torch.Tensor,
    labels: torch.Tensor,
    test: ImageSet,
    *,
    protocol: Protocol | str = "plain",
    model: Any = "convnet",
    num_models: int = 5,
    epochs: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    on_batch: BatchHook | None = None,
) -> EvalResult:
    """Train ``num_models`` fresh networks of ``model`` on (images, labels) under ``protocol``; test each on ``test``.

    ``model``: a network sampler or what becomes one (``samplers.as_sampler``: a name, e.g. ``"lenet"``, or
    ``samplers.FreshInit("convnet", width=32)``; a fixed network trains a copy of itself every time).
    ``protocol``: a ``Protocol`` or a name (``protocol.PROTOCOL_NAMES``); ``epochs`` overrides its epochs (the result
    then says so), ``lr`` its learning rate (a set's learned one). Network ``i`` is initialised from
    ``repro.run_seed(seed, "evaluate", i, "init")`` and shuffles/augments with the CPU generator
    ``repro.run_generator(seed, "evaluate", i, "data")``: one call is bit-reproducible on a given machine, and a
    CPU and a GPU run make the same random draws.
    """
    check_set(images, labels, test)
    validate.positive_int("num_models", num_models)
    proto = resolve(protocol, test.name, epochs=epochs)
    device = resolve_device(device)
    sampler = as_sampler(model, "convnet").bind(test.info, device)
    images, labels = images.detach().to(device), labels.detach().to(device)
    test = test.to(device)
    augment = proto.augmenter()
    accs, train_s, test_s = [], [], []
    for i in range(num_models):
        net, gen = _network(sampler, seed, "evaluate", i)
        t0 = time.perf_counter()
        train(
            net,
            images,
            labels,
            generator=gen,
            lr=lr,
            protocol=proto,
            augment=augment,
            on_batch=on_batch,
            desc=f"{sampler.name if hasattr(sampler, 'name') else 'network'} {i + 1}/{num_models}",
        )
        t1 = synchronized_time(device)
        accs.append(accuracy(net, test, proto.test_batch_size))
        t2 = time.perf_counter()
        train_s.append(t1 - t0)
        test_s.append(t2 - t1)
    settings = {
        "protocol": proto.as_dict(),
        "lr": proto.lr if lr is None else lr,
        "model": sampler.spec(),
        "seed": seed,
        "device": str(device),
        "test_images": len(test),
    }
    return EvalResult(accs, train_s, test_s, _name(sampler), proto.epochs, len(images), settings)


def _name(sampler: NetworkSampler) -> str:
    """A short name of a sampler's networks for tables (``convnet``, ``lenet``, ``fixed lenet``)."""
    spec = sampler.spec()
    model = spec.get("model")
    name = model if isinstance(model, str) else type(sampler).__name__
    return f"fixed {name}" if spec.get("sampler") == "fixed" else name


def _network(sampler: NetworkSampler, seed: int, *parts: object) -> tuple[nn.Module, torch.Generator]:
    """The network of run ``(seed, *parts)`` and the CPU generator of its data order and augmentation: the one
    derivation of the evaluation's randomness (``repro.run_seed``). A fresh sampler builds from the run's seed; any
    other sampler draws from a generator of it."""
    if isinstance(sampler, FreshInit):
        net = sampler.build(run_seed(seed, *parts, "init"))
    else:
        net = sampler.sample(run_generator(seed, *parts, "init"))
    return net, run_generator(seed, *parts, "data")


def evaluate_set(syn: SyntheticSet, test: ImageSet, **kwargs) -> EvalResult:
    """``evaluate`` a ``SyntheticSet``, training with its learned lr when it has one."""
    if not isinstance(syn, SyntheticSet):
        raise TypeError(f"evaluate_set takes a SyntheticSet, got {type(syn).__name__} (use evaluate for tensors)")
    kwargs.setdefault("lr", syn.lr)
    return evaluate(syn.images, syn.labels, test, **kwargs)


def train_full(
    train_set: ImageSet,
    test: ImageSet,
    *,
    epochs: int,
    model: Any = "convnet",
    seed: int = 0,
    device: str | torch.device | None = None,
    protocol: Protocol | str = "plain",
    on_batch: BatchHook | None = None,
) -> tuple[nn.Module, EvalResult]:
    """Full-data baseline: one network of ``model`` (``samplers.as_sampler``) trained on the whole ``train_set`` for
    ``epochs`` with ``protocol``; its randomness is run ``(seed, "full data")`` of the evaluation's scheme.

    Returns the trained network (reused e.g. as a feature extractor for herding) and its result.
    """
    proto = resolve(protocol, train_set.name, epochs=epochs)
    device = resolve_device(device)
    sampler = as_sampler(model, "convnet").bind(train_set.info, device)
    net, gen = _network(sampler, seed, "full data")
    tr = train_set.to(device)
    t0 = time.perf_counter()
    train(
        net,
        tr.images,
        tr.labels,
        generator=gen,
        protocol=proto,
        augment=proto.augmenter(),
        on_batch=on_batch,
        desc=f"{_name(sampler)} full data",
    )
    t1 = synchronized_time(device)
    acc = accuracy(net, test.to(device), proto.test_batch_size)
    t2 = time.perf_counter()
    result = EvalResult(
        [acc],
        [t1 - t0],
        [t2 - t1],
        _name(sampler),
        proto.epochs,
        len(train_set),
        {
            "protocol": proto.as_dict(),
            "seed": seed,
            "device": str(device),
            "model": sampler.spec(),
            "test_images": len(test),
        },
    )
    return net, result
