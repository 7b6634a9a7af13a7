"""Herding (Welling, ICML 2009): pick images whose running feature mean tracks the class mean.

For class c with features f_i and mean μ_c, after choosing S_{k-1} (sum s_{k-1}) take

    i_k = argmin_{i ∉ chosen} ‖ μ_c − (s_{k-1} + f_i) / k ‖²
        = argmin_i  ‖f_i‖² − 2 f_i·(k μ_c − s_{k-1})          (terms without i dropped)

All classes advance together: features are padded to C×n_max×d and each step is one batched
matrix-vector product. The DC paper herds in the feature space of a ConvNet trained on the full
data: pass that network as ``model`` (a fixed network, ``samplers.FixedInit``); ``model=None`` herds in pixel
space, and a name (a fresh random network) herds in the features of an untrained network.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from torch import Generator

from ..core import validate
from ..data.datasets import ImageSet
from ..evaluation.training import train_full
from ..records.synthetic import SyntheticSet
from . import loop
from .hparams import parse
from .registry import MethodInfo, Preparation, Tiny, by_profile
from .selection import as_synthetic, candidate_pool, check_ipc

__all__ = ["Config", "distill", "embed", "herd"]


@dataclass(frozen=True)
class Config:
    pool_per_class: int | None = None  # candidates per class (None: every image)

    def __post_init__(self) -> None:
        validate.positive_int("pool_per_class", self.pool_per_class, allow_none=True)


@torch.inference_mode()
def embed(images: torch.Tensor, model: nn.Module | None, batch_size: int = 500) -> torch.Tensor:
    """Features used for herding: ``model.embed`` in eval mode, or flattened pixels."""
    if model is None:
        return images.flatten(1).float()
    model.eval()
    device = next(model.parameters()).device
    return torch.cat(
        [model.embed(images[i : i + batch_size].to(device)).float() for i in range(0, len(images), batch_size)]
    ).to(images.device)


def herd(features: torch.Tensor, labels: torch.Tensor, ipc: int, num_classes: int) -> torch.Tensor:
    """Positions (into ``features``) of the ``ipc`` herding choices of every class, in choice order."""
    counts = torch.bincount(labels, minlength=num_classes)
    n_max = int(counts.max())
    order = torch.argsort(labels, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(len(labels), device=labels.device) - starts[labels[order]]
    feats = features.new_zeros(num_classes, n_max, features.shape[1])
    feats[labels[order], slot] = features[order]
    position = torch.full((num_classes, n_max), -1, dtype=torch.long, device=labels.device)
    position[labels[order], slot] = order
    valid = position >= 0
    mu = feats.sum(1) / counts.clamp(min=1).unsqueeze(1).to(feats.dtype)
    sq = (feats * feats).sum(2)
    running = torch.zeros_like(mu)
    taken = ~valid
    rows = torch.arange(num_classes, device=labels.device)
    chosen = []
    for k in range(1, ipc + 1):
        target = k * mu - running  # C×d
        score = sq - 2 * torch.bmm(feats, target.unsqueeze(2)).squeeze(2)
        score = score.masked_fill(taken, float("inf"))
        pick = score.argmin(1)  # C
        taken[rows, pick] = True
        running += feats[rows, pick]
        chosen.append(position[rows, pick])
    return torch.stack(chosen, 1).flatten()


def distill(train_set: ImageSet, ipc: int, *, generator: Generator, model=None, callback=None, **hparams):
    """Herding coreset of ``ipc`` images per class, chosen among ``pool_per_class`` per class (None = all).

    ``model``: the network whose ``embed`` gives the features (``nets.model_argument``: a trained ``nn.Module`` is
    used as it is); ``None``: pixels.
    """
    config = parse("herding", Config, hparams)
    check_ipc(ipc, train_set)
    sampler = METHOD.sampler(model)
    sampler = None if sampler is None else sampler.bind(train_set.info, train_set.device)

    def compute() -> SyntheticSet:
        pool = candidate_pool(train_set, config.pool_per_class, generator)
        net = None if sampler is None else sampler.sample(generator)
        feats = embed(train_set.images[pool], net)
        picks = herd(feats, train_set.labels[pool], ipc, train_set.num_classes)
        return as_synthetic(train_set, pool[picks], features="pixels" if net is None else "network")

    spec = {"model": None if sampler is None else sampler.spec()}
    return loop.one_shot("herding", compute, train_set, ipc, config, spec, callback)


def prepare(p: Preparation) -> tuple[dict, float]:
    """Notebook 08: the features of the profile's network trained ``settings["epochs"]`` epochs on the training set
    (no epochs: pixels); its training seconds."""
    epochs = p.settings.get("epochs")
    if not epochs:
        return {}, 0.0
    net, result = train_full(p.train, p.train, epochs=epochs, model=p.model, seed=p.seed, device=p.device)
    return {"model": net}, sum(result.train_seconds)  # its accuracy on the training set is not used


TINY = Tiny({"pool_per_class": 10})

BUDGETS = by_profile({}, {})

PREPARE = by_profile({"epochs": 1}, {"epochs": 10})

METHOD = MethodInfo("herding", "coreset", "00", "sampler", "dc", TINY, BUDGETS, None, prepare, PREPARE)
