"""Fixtures shared by the unit tests: real MNIST from ../shared/data, tiny in-memory sets."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets.cifar as tv_cifar
from torchvision import datasets as tv_datasets

from course_utils.data import datasets as data
from course_utils.data.datasets import ImageSet


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


def _pixel_pattern(n: int) -> np.ndarray:
    """uint8 N x 3 x 32 x 32 pattern whose value depends on (example, channel, row, col)."""
    i, c, h, w = np.meshgrid(np.arange(n), np.arange(3), np.arange(32), np.arange(32), indexing="ij")
    return ((i * 11 + c * 80 + h * 3 + w * 5) % 256).astype(np.uint8)


def _write_pickle(path: Path, obj: dict) -> None:
    # The real files are Python 2 pickles with str keys; torchvision reads them with
    # encoding="latin1" and indexes entry["data"], so our fake dicts use str keys too.
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def _write_fake_cifar(root: Path, name: str, n_train: int, n_test: int) -> dict:
    """Write a tiny dataset in the layout torchvision's CIFAR10/CIFAR100 read; return what was written."""
    cls = {"cifar10": tv_datasets.CIFAR10, "cifar100": tv_datasets.CIFAR100}[name]
    num_classes = data.dataset_info(name).num_classes
    label_key = "labels" if name == "cifar10" else "fine_labels"
    folder = root / cls.base_folder
    folder.mkdir(parents=True)

    def split(files: list, n: int, offset: int):
        pixels = _pixel_pattern(n * len(files))
        labels = (np.arange(n * len(files)) + offset) % num_classes
        for k, (file_name, _md5) in enumerate(files):
            part = slice(k * n, (k + 1) * n)
            _write_pickle(
                folder / file_name,
                # CIFAR rows: 1024 red, then 1024 green, then 1024 blue values, each row-major 32x32.
                {"data": pixels[part].reshape(n, 3072), label_key: labels[part].tolist()},
            )
        return pixels, labels

    train = split(cls.train_list, n_train // len(cls.train_list), offset=0)
    test = split(cls.test_list, n_test, offset=3)
    names = list(data.dataset_info(name).class_names)
    _write_pickle(folder / cls.meta["filename"], {cls.meta["key"]: names})
    return {"train": train, "test": test, "names": names}


@pytest.fixture
def trust_cifar_files(monkeypatch):
    """Let torchvision accept our fake CIFAR files.

    torchvision checks every CIFAR file against the md5 of the real dataset, in
    ``CIFAR10._check_integrity`` and again in ``_load_meta`` (for the meta file),
    both through ``torchvision.datasets.cifar.check_integrity``. Fake files can
    never match those md5s, so for the test we replace that one function with an
    existence check. The reading and conversion code under test is unchanged.
    """
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))


@pytest.fixture
def fake_cifar(trust_cifar_files):
    """``fake_cifar(root, name, n_train, n_test)`` writes a tiny CIFAR-10/100 in its on-disk format (torchvision
    accepts it: ``trust_cifar_files``) and returns what was written (``_write_fake_cifar``)."""
    return _write_fake_cifar
