"""KIP, Kernel Inducing Points (Nguyen, Chen & Lee, ICLR 2021): the iterative baseline of notebook 01.

The support set (X_S, Y_S), m = k·ipc images with label vectors, is optimised with Adam so that kernel ridge
regression on it predicts a target batch (X_t, Y_t) of real images:

    L(X_S, Y_S) = 1/(b·k) ‖Y_t − K_tS (K_SS + λ̃ I)⁻¹ Y_S‖²_F,     λ̃ = reg · tr(K_SS) / m,

with the kernel of a feature map, K(x, x') = φ(x)·φ(x') (``feature_maps``; the same maps as the closed form),
so K_SS = F_S F_Sᵀ (m×m) and K_tS (K_SS + λ̃I)⁻¹Y_S = F_t (F_Sᵀ α), α = (K_SS + λ̃I)⁻¹Y_S: the b×m kernel
block is never formed. Target batches hold b/k images of every class (``ImageSet.sample_per_class`` with replacement);
the targets' features do not change, so they are computed once for the whole training set and cached.
The model a KIP set defines is the KRR predictor f(x) = Y_S(K_SS + λ̃I)⁻¹ K_Sx, i.e. W = Y_S(K_SS + λ̃I)⁻¹F_S
(``support_weights``). Settings of the reference runs: Adam, lr_img 0.01 (MNIST), 30 000 steps, b = 5000.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import torch
from torch import Generator

from ..core import validate
from ..core.repro import derive_seed
from ..data.datasets import ImageSet
from ..records.synthetic import INITS, SyntheticSet, class_labels, initial_images
from . import feature_maps, loop, ridge
from .feature_maps import FeatureMap
from .hparams import LoopConfig, parse
from .registry import MethodInfo, Preparation, Tiny, by_profile

__all__ = ["Config", "distill", "kip_loss", "krr_predict", "regulariser", "support_weights"]

DEFAULT_FEATURE_MAP = "random_network"


def regulariser(K_SS: torch.Tensor, reg: float) -> torch.Tensor:
    """λ̃ = reg · tr(K_SS) / m (scale-free: the same ``reg`` suits every feature map)."""
    return reg * torch.diagonal(K_SS, dim1=-2, dim2=-1).sum(-1) / K_SS.shape[-1]


def krr_predict(F_S: torch.Tensor, Y_S: torch.Tensor, F_t: torch.Tensor, reg: float) -> torch.Tensor:
    """K_tS (K_SS + λ̃I)⁻¹ Y_S for support features F_S (m×p), labels Y_S (m×k), target features F_t (b×p)."""
    K = F_S @ F_S.T
    K = K + regulariser(K, reg) * torch.eye(len(K), dtype=K.dtype, device=K.device)
    alpha = torch.linalg.solve(K, Y_S)  # m×k
    return F_t @ (F_S.T @ alpha)  # b×k, never forming the b×m block


def kip_loss(F_S: torch.Tensor, Y_S: torch.Tensor, F_t: torch.Tensor, Y_t: torch.Tensor, reg: float) -> torch.Tensor:
    """1/(b·k) ‖Y_t − K_tS (K_SS + λ̃ I)⁻¹ Y_S‖²_F."""
    return (Y_t - krr_predict(F_S, Y_S, F_t, reg)).pow(2).mean()


def support_weights(
    images: torch.Tensor,
    labels: torch.Tensor,
    feature_map: feature_maps.FeatureMap,
    reg: float,
    num_classes: int | None = None,
) -> torch.Tensor:
    """W = Y_S (K_SS + λ̃ I)⁻¹ F_S (k×p, float64): the KRR model of a support set (labels: indices or m×k)."""
    F_S = feature_map(images, torch.float64)
    Y = labels.to(torch.float64) if labels.ndim == 2 else ridge.one_hot(labels, num_classes or int(labels.max()) + 1).T
    K = F_S @ F_S.T
    return ridge.support_model(F_S, Y.T, float(regulariser(K, reg)))


@dataclass(frozen=True)
class Config(LoopConfig):
    """Hyperparameters of KIP (the reference's: Adam, lr_img 0.01 on MNIST, 30 000 steps, b = 5000)."""

    steps: int = 1000
    checkpoint_every: int = 1000
    batch_size: int = 5000  # target images per step, batch_size // k per class
    lr_img: float = 0.01  # Adam on the images (and labels)
    reg: float = 1e-6  # λ̃ = reg · tr(K_SS) / m
    learn_labels: bool = True  # also learn Y_S (soft labels)
    init: str = "real"  # real | noise

    def __post_init__(self) -> None:
        super().__post_init__()
        validate.positive_int("batch_size", self.batch_size)
        validate.positive_number("lr_img", self.lr_img)
        validate.positive_number("reg", self.reg)
        validate.choice("learn_labels", self.learn_labels, (True, False))
        validate.choice("init", self.init, INITS)

    def image_optimizer(self, params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
        """Adam on the images (and the labels when they are learned), ``lr_img``."""
        return torch.optim.Adam(list(params), lr=self.lr_img)


class Kip(loop.Distiller):
    """KIP's state: the support images X_S and labels Y_S, their Adam optimiser, the cached target features."""

    method = "kip"

    def __init__(self, train_set: ImageSet, ipc: int, *, generator: Generator, config: Config, fmap: FeatureMap):
        super().__init__(train_set, ipc, generator=generator, config=config)
        k = self.num_classes
        if config.batch_size < k:
            raise ValueError(
                f"batch_size={config.batch_size} must be >= the number of classes ({k}) for class-balanced batches"
            )
        self.fmap = fmap
        self.divergence_hint = (
            f"lr_img={config.lr_img} is probably too high for this feature map, or K_SS + λ̃I became "
            f"singular (raise reg={config.reg})"
        )
        # the targets' features never change: computed once for the whole training set
        self.F_all = torch.cat(
            [fmap(train_set.images[s : s + 8192], torch.float32) for s in range(0, len(train_set), 8192)]
        )
        self.Y_all = torch.nn.functional.one_hot(train_set.labels, k).float()
        self.per_class = config.batch_size // k
        self.labels0 = class_labels(k, ipc, train_set.device)
        self.X_S = initial_images(train_set, ipc, config.init, generator).float().requires_grad_(True)
        self.Y_S = torch.nn.functional.one_hot(self.labels0, k).float().requires_grad_(config.learn_labels)
        self.params = [self.X_S, self.Y_S] if config.learn_labels else [self.X_S]
        self.optimizer = config.image_optimizer(self.params)

    def step(self, k: int) -> tuple[float, dict[str, float]]:
        idx = self.train_set.sample_per_class(self.per_class, self.generator, replacement=True).flatten()
        with ridge.single_thread():  # every step is small dense algebra (m <= a few hundred)
            loss = kip_loss(self.fmap(self.X_S), self.Y_S, self.F_all[idx], self.Y_all[idx], self.config.reg)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            value = loop.check_finite("the KIP loss", loss, *self.params)
            self.optimizer.step()
        return value, {}

    def state_dict(self) -> dict:
        return {
            "X_S": self.X_S.detach().cpu(),
            "Y_S": self.Y_S.detach().cpu(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        with torch.no_grad():
            self.X_S.copy_(state["X_S"].to(self.X_S.device))
            self.Y_S.copy_(state["Y_S"].to(self.Y_S.device))
        self.optimizer.load_state_dict(state["optimizer"])

    def current_images(self) -> torch.Tensor:
        return self.X_S.detach()

    def spec(self) -> dict:
        return {"feature_map": self.fmap.spec}

    def synthetic_set(self) -> SyntheticSet:
        labels = self.Y_S.detach().clone() if self.config.learn_labels else self.labels0.clone()
        return SyntheticSet(
            self.X_S.detach().clone(), labels, None, {"reg": self.config.reg, "classes": self.labels0.tolist()}
        )


def distill(train_set: ImageSet, ipc: int, *, generator: Generator, feature_map=None, callback=None, **hparams):
    """KIP: minimise 1/(b·k)‖Y_t − K_tS(K_SS + λ̃I)⁻¹Y_S‖² over (X_S, Y_S) with Adam for ``steps`` steps.

    ``feature_map``: the kernel's feature map (name, ``FeatureMap`` or spec; None: ``random_network``, drawn from
    ``generator``). ``hparams``: the fields of ``Config`` (``steps``, ``batch_size``: target images per step,
    ``batch_size // k`` per class; ``reg``: λ̃ = reg·tr(K_SS)/m; ``learn_labels``: also learn Y_S, returned as an
    m×k matrix of soft labels, else class indices; ``init``; ``checkpoint``). ``meta['feature_map']`` holds the map's
    spec and ``meta['reg']`` the regulariser, so ``support_weights`` rebuilds the KRR model of the set.
    """
    config = parse("kip", Config, hparams)
    fmap = feature_maps.resolve(feature_map, train_set.images[0].numel(), derive_seed(generator), DEFAULT_FEATURE_MAP)
    return loop.run(Kip, train_set, ipc, generator=generator, config=config, callback=callback, fmap=fmap)


def prepare(p: Preparation) -> tuple[dict, float]:
    """Notebook 08: the kernel's feature map, ``settings["feature_map"]``."""
    return {"feature_map": p.settings["feature_map"]}, 0.0


TINY = Tiny({"steps": 3, "batch_size": 50}, {"lr_img": 1e30})

BUDGETS = by_profile(
    quick={"steps": 100, "batch_size": 500, "lr_img": 0.1, "learn_labels": False},
    standard={"steps": 3000, "batch_size": 5000, "lr_img": 0.01, "learn_labels": False},
    full={"steps": 30000},
)

PREPARE = by_profile({"feature_map": "random_network"}, {"feature_map": "random_network"})

METHOD = MethodInfo("kip", "kernel", "01", "feature_map", "dc", TINY, BUDGETS, DEFAULT_FEATURE_MAP, prepare, PREPARE)
