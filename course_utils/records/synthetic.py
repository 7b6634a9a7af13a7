"""``SyntheticSet``: what every method returns, saved and loaded as one file.

A distilled (or selected) set outlives the notebook that made it: images, labels, an optional
learned learning rate (trajectory matching learns one) and metadata (method, dataset, ipc,
hyperparameters, seed, source indices for coresets).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..core.atomic import save_torch

#: How synthetic images start: random real images of each class, or standard-normal noise (normalised space).
INITS: tuple[str, ...] = ("real", "noise")


@dataclass
class SyntheticSet:
    images: torch.Tensor  # N×C×H×W, normalised like the dataset it imitates
    labels: torch.Tensor  # N, int64 class indices (or N×K soft labels)
    lr: float | None = None  # learned learning rate to train with, if the method learns one
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.images) != len(self.labels):
            raise ValueError(f"images ({len(self.images)}) and labels ({len(self.labels)}) differ in length")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        if "num_classes" in self.meta:
            return int(self.meta["num_classes"])
        return self.labels.shape[1] if self.labels.dim() == 2 else int(self.labels.max()) + 1

    @property
    def hard_labels(self) -> torch.Tensor:
        """Class index of every image (the most likely class for soft N×K labels)."""
        return self.labels.argmax(1) if self.labels.dim() == 2 else self.labels.long()

    @property
    def ipc(self) -> int:
        """Images per class: the IPC the set was made with (``meta["ipc"]``), else the smallest class count.

        A method that learns soft labels (KIP) may end with a class that no image's arg-max names: the set still
        has the IPC it was distilled at."""
        if "ipc" in self.meta:
            return int(self.meta["ipc"])
        return int(torch.bincount(self.hard_labels, minlength=self.num_classes).min())

    def to(self, device: str | torch.device) -> "SyntheticSet":
        return SyntheticSet(self.images.to(device), self.labels.to(device), self.lr, dict(self.meta))

    def detach(self) -> "SyntheticSet":
        return SyntheticSet(self.images.detach().clone(), self.labels.clone(), self.lr, dict(self.meta))

    def save(self, path: str | os.PathLike) -> Path:
        """One ``.pt`` file, written atomically."""
        return save_torch(
            path, {"images": self.images.detach().cpu(), "labels": self.labels.cpu(), "lr": self.lr, "meta": self.meta}
        )

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> "SyntheticSet":
        blob = torch.load(path, map_location=device, weights_only=False)
        return cls(blob["images"], blob["labels"], blob.get("lr"), blob.get("meta", {}))


def class_labels(num_classes: int, ipc: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """``[0]*ipc + [1]*ipc + ...``: the labels of a class-major set."""
    return torch.arange(num_classes, device=device).repeat_interleave(ipc)


def initial_images(train_set, ipc: int, init: str, generator: torch.Generator) -> torch.Tensor:
    """``ipc`` starting images per class, class by class (a copy, on the data's device).

    ``init="real"``: random real images of each class (drawn without replacement); ``"noise"``: N(0, 1) pixels in
    the dataset's normalised space. Random numbers come from ``generator`` only.
    """
    from ..core.validate import choice

    choice("init", init, INITS)
    if init == "real":
        return train_set.images[train_set.sample_balanced(ipc, generator)].clone()
    shape = (train_set.num_classes * ipc, *train_set.images.shape[1:])
    return torch.randn(shape, generator=generator, device=generator.device).to(train_set.device)
