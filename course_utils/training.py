"""THE evaluation protocol of the course (the DC family's ``evaluate_synset``), used by every notebook.

Train a *fresh* network on a given image/label set and test it on the real test set:

    SGD(momentum 0.9, weight decay 5e-4), lr 0.01 (or a learned lr), batch 256,
    lr <- 0.1·lr at half the epochs, optional DSA augmentation of every batch,
    accuracy of the network after the LAST epoch (not the best one),

repeated over ``num_models`` model seeds and reported as mean ± std with wall times. The same loop
trains full-data baselines. The loop is kept close to its floor (forward+backward of each batch):
tensors stay on the device, no DataLoader, no per-sample Python work.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .augment import DSA, strategy_for
from .data import ImageSet
from .models import get_model
from .progress import progress
from .repro import make_generator, resolve_device
from .synthetic import SyntheticSet

#: ``on_batch(indices, logits, targets)``: called after every training step (e.g. to count forgetting events).
BatchHook = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]


@dataclass(frozen=True)
class Protocol:
    """Hyperparameters of the evaluation protocol (DC family defaults)."""

    epochs: int = 300
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    lr_decay: float = 0.1          # multiply lr by this at epoch epochs // 2
    test_batch_size: int = 500

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")


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
    def std(self) -> float:
        # population std, as the reference reports np.std
        return statistics.pstdev(self.accuracies) if len(self.accuracies) > 1 else 0.0

    @property
    def seconds(self) -> float:
        return sum(self.train_seconds) + sum(self.test_seconds)

    def as_dict(self) -> dict:
        return {"accuracies": self.accuracies, "mean": self.mean, "std": self.std,
                "train_seconds": self.train_seconds, "test_seconds": self.test_seconds,
                "model": self.model, "epochs": self.epochs, "num_images": self.num_images,
                "settings": self.settings}

    def __str__(self) -> str:
        return (f"{self.mean:.2f} ± {self.std:.2f} % ({len(self.accuracies)} × {self.model}, "
                f"{self.num_images} images, {self.epochs} epochs, {self.seconds:.1f} s)")


def make_model(name: str, info, seed: int, device: str | torch.device = "cpu", **overrides) -> nn.Module:
    """Build ``name`` for dataset ``info`` with weights drawn from ``seed``.

    Initialisation uses torch's global RNG inside ``fork_rng``, so the caller's RNG state is left
    untouched and the same seed always gives the same initial weights.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = get_model(name, info.channels, info.num_classes, info.image_size, **overrides)
    return model.to(device)


def train(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, epochs: int,
          generator: torch.Generator, lr: float | None = None, protocol: Protocol = Protocol(),
          augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
          on_batch: BatchHook | None = None, desc: str | None = None) -> list[float]:
    """Train ``model`` in place with the protocol's SGD schedule; return the mean loss of each epoch.

    Each epoch visits the set in a random order drawn from ``generator``; ``augment(x, generator)``
    (e.g. DSA) transforms every batch. Labels may be class indices or soft (N×K) targets.
    """
    lr = protocol.lr if lr is None else float(lr)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=protocol.momentum,
                                weight_decay=protocol.weight_decay)
    n, bs = len(images), protocol.batch_size
    decay_epoch = epochs // 2
    losses = []
    model.train()
    for epoch in progress(range(epochs), desc=desc or "train", total=epochs):
        if epoch == decay_epoch and epoch > 0:
            for group in optimizer.param_groups:
                group["lr"] = lr * protocol.lr_decay
        order = torch.randperm(n, generator=generator, device=generator.device).to(images.device)
        total = torch.zeros((), device=images.device)
        for start in range(0, n, bs):
            idx = order[start:start + bs]
            x, y = images[idx], labels[idx]
            if augment is not None:
                x = augment(x, generator)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(idx)
            if on_batch is not None:
                on_batch(idx, logits.detach(), y)
        epoch_loss = float(total) / n
        if not math.isfinite(epoch_loss):
            raise FloatingPointError(
                f"training loss became {epoch_loss} at epoch {epoch + 1}/{epochs} (lr={lr}): the learning rate "
                "is probably too high for this set, or the images hold NaN/inf values")
        losses.append(epoch_loss)
    return losses


@torch.inference_mode()
def accuracy(model: nn.Module, test: ImageSet, batch_size: int = 500) -> float:
    """Top-1 accuracy (%) of ``model`` on ``test``."""
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=test.images.device)
    for start in range(0, len(test), batch_size):
        logits = model(test.images[start:start + batch_size])
        correct += (logits.argmax(1) == test.labels[start:start + batch_size]).sum()
    return 100.0 * int(correct) / len(test)


def _augmenter(dsa: bool | str | DSA | None, dataset: str) -> DSA | None:
    if dsa is None or dsa is False:
        return None
    if dsa is True:
        return DSA(strategy_for(dataset))
    if isinstance(dsa, str):
        return DSA(dsa)
    return dsa


def model_seed(seed: int, index: int) -> int:
    """Seed of the ``index``-th evaluation model of a run seeded ``seed``."""
    return seed * 1_000_003 + index


def evaluate(images: torch.Tensor, labels: torch.Tensor, test: ImageSet, *, model: str = "convnet",
             model_kwargs: dict | None = None, num_models: int = 5, epochs: int | None = None,
             lr: float | None = None, dsa: bool | str | DSA | None = None, seed: int = 0,
             device: str | torch.device | None = None, protocol: Protocol = Protocol(),
             on_batch: BatchHook | None = None) -> EvalResult:
    """Train ``num_models`` fresh ``model``s on (images, labels); test each on ``test``.

    Model ``i`` is initialised from ``model_seed(seed, i)`` and shuffles/augments with its own
    generator, so one call is bit-reproducible on a given machine.
    """
    if num_models < 1:
        raise ValueError(f"num_models must be >= 1, got {num_models}")
    device = resolve_device(device)
    epochs = protocol.epochs if epochs is None else epochs
    images, labels = images.detach().to(device), labels.detach().to(device)
    test = test.to(device)
    augment = _augmenter(dsa, test.name)
    model_kwargs = dict(model_kwargs or {})
    accs, train_s, test_s = [], [], []
    for i in range(num_models):
        s = model_seed(seed, i)
        net = make_model(model, test.info, 2 * s, device, **model_kwargs)
        gen = make_generator(2 * s + 1, device)
        t0 = time.perf_counter()
        train(net, images, labels, epochs=epochs, generator=gen, lr=lr, protocol=protocol,
              augment=augment, on_batch=on_batch, desc=f"{model} {i + 1}/{num_models}")
        _sync(device)
        t1 = time.perf_counter()
        accs.append(accuracy(net, test, protocol.test_batch_size))
        t2 = time.perf_counter()
        train_s.append(t1 - t0)
        test_s.append(t2 - t1)
    settings = {"lr": protocol.lr if lr is None else lr, "dsa": augment.strategy if augment else None,
                "model_kwargs": model_kwargs, "seed": seed, "device": str(device),
                "batch_size": protocol.batch_size, "momentum": protocol.momentum,
                "weight_decay": protocol.weight_decay, "test_images": len(test)}
    return EvalResult(accs, train_s, test_s, model, epochs, len(images), settings)


def evaluate_set(syn: SyntheticSet, test: ImageSet, **kwargs) -> EvalResult:
    """``evaluate`` a ``SyntheticSet``, training with its learned lr when it has one."""
    kwargs.setdefault("lr", syn.lr)
    return evaluate(syn.images, syn.labels, test, **kwargs)


def train_full(train_set: ImageSet, test: ImageSet, *, epochs: int, model: str = "convnet",
               model_kwargs: dict | None = None, seed: int = 0, device: str | torch.device | None = None,
               protocol: Protocol = Protocol(), dsa: bool | str | DSA | None = None,
               on_batch: BatchHook | None = None) -> tuple[nn.Module, EvalResult]:
    """Full-data baseline: one network trained on the whole ``train_set`` with the same protocol.

    Returns the trained network (reused e.g. as a feature extractor for herding) and its result.
    """
    device = resolve_device(device)
    net = make_model(model, train_set.info, 2 * model_seed(seed, 0), device, **dict(model_kwargs or {}))
    gen = make_generator(2 * model_seed(seed, 0) + 1, device)
    tr = train_set.to(device)
    t0 = time.perf_counter()
    train(net, tr.images, tr.labels, epochs=epochs, generator=gen, protocol=protocol,
          augment=_augmenter(dsa, train_set.name), on_batch=on_batch, desc=f"{model} full data")
    _sync(device)
    t1 = time.perf_counter()
    acc = accuracy(net, test.to(device), protocol.test_batch_size)
    t2 = time.perf_counter()
    result = EvalResult([acc], [t1 - t0], [t2 - t1], model, epochs, len(train_set),
                        {"seed": seed, "device": str(device), "model_kwargs": dict(model_kwargs or {})})
    return net, result


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
