"""Fixtures shared by the unit tests: real MNIST from ../shared/data, tiny in-memory sets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from course_utils import data
from course_utils.data import ImageSet


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The original MNIST / Fashion-MNIST .gz files: $COURSE_SHARED_DATA, else ../shared/data next to the repository
    (as CI lays it out), else the repository's own data/ (a GPU machine gets the archives carried there).

    Skips the test, naming where it looked, when none holds ``MNIST/raw/*.gz``.
    """
    env = os.environ.get("COURSE_SHARED_DATA")
    repo = Path(__file__).resolve().parents[1]
    candidates = [Path(env)] if env else [repo.parent / "shared" / "data", repo / "data"]
    for src in candidates:
        if any((src / "MNIST" / "raw").glob("*.gz")):
            return src
    pytest.skip(
        f"original MNIST .gz files not found (looked for MNIST/raw/*.gz under {', '.join(map(str, candidates))}; "
        "set COURSE_SHARED_DATA to point elsewhere)"
    )


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory, shared_data_dir) -> Path:
    """A temporary data root holding copies of the original MNIST / Fashion-MNIST .gz files."""
    root = tmp_path_factory.mktemp("data_root")
    data.copy_shared_data(shared_data_dir, root)
    return root


@pytest.fixture(scope="session")
def mnist(mnist_root) -> tuple[ImageSet, ImageSet]:
    return data.load("mnist", root=mnist_root, download=False)


def _blob_set(n_per_class: int = 20, num_classes: int = 10, seed: int = 0, name: str = "mnist") -> ImageSet:
    """A learnable toy set: each class is a fixed random 28×28 pattern plus noise (no files needed)."""
    g = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(num_classes, 1, 28, 28, generator=g)
    labels = torch.arange(num_classes).repeat_interleave(n_per_class)
    images = prototypes[labels] + 0.5 * torch.randn(len(labels), 1, 28, 28, generator=g)
    return ImageSet(images, labels, name)


@pytest.fixture
def blob_set():
    """Factory of learnable toy sets: ``blob_set(n_per_class=20, num_classes=10, seed=0)``."""
    return _blob_set


@pytest.fixture
def tiny_cfg() -> dict:
    """Settings for a run that takes seconds: a width-8 ConvNet, one network, one epoch, no augmentation."""
    return {
        "model": "convnet",
        "model_width": 8,
        "eval_models": 1,
        "eval_epochs": 1,
        "eval_protocol": "plain",
        "seed": 0,
        "device": "cpu",
        "profile": "test",
        "dataset": "mnist",
        "random_draws": 2,
    }
