"""A toy method for the tests, written as a course method is: one module (``Config``, ``distill``, ``METHOD``), run
through the contract test, notebook 08's benchmark, the GPU check's identity list and the record schema by
registering it (``methods.register``) with no other edit.

Its images start as noise and are pulled towards the mean real image of their class:
``L = mean_c ‖S_c − mean(B_c)‖²`` over a fresh real batch ``B_c`` of every class at every step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Generator

from course_utils.data.datasets import ImageSet
from course_utils.methods import loop
from course_utils.methods.hparams import ImageSGD, LoopConfig, parse
from course_utils.methods.registry import MethodInfo, Tiny, by_profile
from course_utils.records.synthetic import SyntheticSet


@dataclass(frozen=True)
class Config(ImageSGD, LoopConfig):
    steps: int = 5
    init: str = "noise"
    lr_img: float = 0.5
    momentum_img: float = 0.0
    batch_real: int = 16


class MeanPull(loop.ImageDistiller):
    method = "toy"
    divergence_hint = "lower lr_img"

    def step(self, k: int) -> tuple[float, dict[str, float]]:
        K = self.num_classes
        target = self.sample_real(self.batch_real).mean(1, keepdim=True)  # (K, 1, C, H, W)
        syn = self.images.view(K, self.ipc, *self.images.shape[1:])
        loss = (syn - target).pow(2).mean()
        (grad,) = torch.autograd.grad(loss, self.images)
        self.optimizer.zero_grad(set_to_none=True)
        self.images.grad = grad
        value = loop.check_finite("the toy loss", loss, self.images)
        self.optimizer.step()
        return value, {}

    def synthetic_set(self) -> SyntheticSet:
        return SyntheticSet(self.images.detach().clone(), self.labels.clone(), None, {})


def distill(train_set: ImageSet, ipc: int, *, generator: Generator, model=None, callback=None, **hparams):
    config = parse("toy", Config, hparams)
    return METHOD.run(MeanPull, config, train_set, ipc, generator, model, callback)


TINY = Tiny({"steps": 3, "batch_real": 4}, {"lr_img": 1e30})

BUDGETS = by_profile({"steps": 3, "batch_real": 8}, {"steps": 20, "batch_real": 64})

METHOD = MethodInfo("toy", "toy", "08", None, "dc", TINY, BUDGETS)
