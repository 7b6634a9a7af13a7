"""Datasets under one data root, held in memory as normalised tensors.

The four datasets of the dataset-distillation literature (MNIST, Fashion-MNIST,
CIFAR-10, CIFAR-100) are read through torchvision and converted *once*, as
whole arrays, into an :class:`ImageSet`: ``images`` (float32, N x C x H x W,
normalised with the DC-family constants) and ``labels`` (int64, N). Everything
downstream (per-class sampling, real-image initialisation, evaluation) works on
these tensors; there are no per-item transforms or DataLoaders here.

Where the files live is decided by :func:`data_root`: an explicit argument,
else ``$COURSE_DATA_ROOT``, else the repository's ``data/`` folder. Nothing is
downloaded silently into the working directory, and a missing dataset raises
:class:`DatasetNotAvailableError` saying which files to put where.

Datasets built from the user's own images (``course_utils.folders``) are added with :func:`register_dataset`,
so that :func:`dataset_info` and everything that looks a dataset up by name (protocols, augmentation, expert
buffers) knows them; the four built-in names stay reserved for the built-in datasets.

Typical use::

    train, test = load("mnist")
    gen = torch.Generator().manual_seed(0)
    init = train.balanced_subset(10, gen)      # 10 real images per class
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import io
import math
import os
import re
import shutil
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Sequence

import torch
from torchvision import datasets as tv_datasets

from .zca import ZCA

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "DatasetNotAvailableError",
    "ImageSet",
    "ROLES",
    "check_dataset_name",
    "clear_cache",
    "copy_shared_data",
    "data_root",
    "dataset_info",
    "load",
    "load_dataset",
    "main",
    "register_dataset",
    "registered_datasets",
    "whiten",
]

DATASETS: tuple[str, ...] = ("mnist", "fashion_mnist", "cifar10", "cifar100")

#: What part of the data an :class:`ImageSet` is (None: a set built by hand).
ROLES: tuple[str | None, ...] = ("train", "validation", "test", None)

#: Environment variable that overrides the default data root.
ENV_DATA_ROOT = "COURSE_DATA_ROOT"

# Seconds a single network operation may stall before torchvision's download
# gives up. Without it, urllib waits forever on a network that drops packets.
_DOWNLOAD_TIMEOUT_S = 20.0


class DatasetNotAvailableError(FileNotFoundError):
    """The dataset's files are not on disk and could not (or may not) be downloaded."""


# --------------------------------------------------------------------------- metadata


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about one dataset: shape, classes and normalisation constants."""

    name: str
    num_classes: int
    channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...]


_CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip

# Fine label names in the order of CIFAR-100's ``meta`` file (alphabetical).
_CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle",
    "bicycle", "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel",
    "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock",
    "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster",
    "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse",
    "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear",
    "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine",
    "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea",
    "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip",
    "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)  # fmt: skip

_INFO: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        "mnist", 10, 1, 28, (0.1307,), (0.3081,), tuple(str(d) for d in range(10))
    ),
    "fashion_mnist": DatasetInfo(
        "fashion_mnist", 10, 1, 28, (0.2861,), (0.3530,),
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
    "cifar10": DatasetInfo(
        "cifar10", 10, 3, 32,
        (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010), _CIFAR10_CLASSES,
    ),
    "cifar100": DatasetInfo(
        "cifar100", 100, 3, 32,
        (0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762), _CIFAR100_CLASSES,
    ),
}  # fmt: skip

# The torchvision class behind each name; file names, md5s and folder names are
# read from these classes so they always match the installed torchvision.
_TV_CLASS = {
    "mnist": tv_datasets.MNIST,
    "fashion_mnist": tv_datasets.FashionMNIST,
    "cifar10": tv_datasets.CIFAR10,
    "cifar100": tv_datasets.CIFAR100,
}

# Accepted spellings, compared after lower-casing and dropping "-", "_" and spaces.
_ALIASES = {
    "mnist": "mnist",
    "fashionmnist": "fashion_mnist",
    "fmnist": "fashion_mnist",
    "cifar10": "cifar10",
    "cifar100": "cifar100",
}


# Datasets registered at run time (``register_dataset``; ``course_utils.folders`` registers every set it
# loads), keyed like ``_ALIASES``. Not persisted: a new process registers them again by loading the folder.
_REGISTERED: dict[str, DatasetInfo] = {}


def _key(name: str) -> str:
    """Spelling-insensitive key: lower case without "-", "_" and spaces."""
    return str(name).lower().replace("-", "").replace("_", "").replace(" ", "")


def _canonical_name(name: str) -> str:
    """Map a user spelling ("FashionMNIST", "fashion-mnist", ...) to a name in DATASETS or a registered name."""
    key = _key(name)
    if key in _ALIASES:
        return _ALIASES[key]
    if key in _REGISTERED:
        return _REGISTERED[key].name
    raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS + registered_datasets())}")


def dataset_info(name: str) -> DatasetInfo:
    """Return the :class:`DatasetInfo` of ``name`` (spelling is case-insensitive); registered datasets too."""
    canonical = _canonical_name(name)
    return _INFO[canonical] if canonical in _INFO else _REGISTERED[_key(canonical)]


def registered_datasets() -> tuple[str, ...]:
    """Names of the datasets registered with :func:`register_dataset` in this process (sorted)."""
    return tuple(sorted(info.name for info in _REGISTERED.values()))


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    """Make ``info`` resolvable by name (:func:`dataset_info`, protocols, augmentation); returns the stored info.

    The built-in names (any spelling of them) are reserved: registering one with facts other than the built-in's is
    an error naming it (the built-in's own facts are accepted and change nothing). Registering a name again replaces
    the earlier facts, so reloading a folder at another image size works; sets already built keep their own info.
    """
    if not isinstance(info, DatasetInfo):
        raise TypeError(f"register_dataset takes a DatasetInfo, got {type(info).__name__}")
    _check_info(info)
    key = _key(info.name)
    if key in _ALIASES:
        builtin = _INFO[_ALIASES[key]]
        if replace(info, name=builtin.name) == builtin:
            return builtin
        raise ValueError(
            f"dataset name {info.name!r} is the built-in dataset {builtin.name!r} and the facts differ "
            f"({_differences(builtin, info)}); register it under another name"
        )
    _REGISTERED[key] = info
    return info


def check_dataset_name(name: str) -> str:
    """``name`` if it can name a dataset: a letter or digit, then letters, digits, "_" and "-" (else ValueError).

    The name becomes part of file names (checkpoints, result records, expert buffers), hence the restriction.
    """
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name):
        raise ValueError(
            f"dataset name must start with a letter or digit and hold only letters, digits, '_' and '-', got {name!r}"
        )
    return name


def _check_info(info: DatasetInfo) -> None:
    """Facts every consumer relies on: a name, >= 1 class with one name each, one mean and one std > 0 per channel."""
    check_dataset_name(info.name)
    for field in ("num_classes", "channels", "image_size"):
        value = getattr(info, field)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{info.name}: {field} must be a positive int, got {value!r}")
    if len(info.class_names) != info.num_classes:
        raise ValueError(f"{info.name}: {len(info.class_names)} class names for {info.num_classes} classes")
    if len(info.mean) != info.channels or len(info.std) != info.channels:
        raise ValueError(
            f"{info.name}: mean {info.mean} and std {info.std} need one value per channel ({info.channels})"
        )
    if not all(math.isfinite(m) for m in info.mean) or not all(0 < s < math.inf for s in info.std):  # NaN fails too
        raise ValueError(f"{info.name}: mean must be finite and every std finite and > 0, got {info.mean}, {info.std}")


def _differences(a: DatasetInfo, b: DatasetInfo) -> str:
    """``field a-value vs b-value`` for every field where two infos differ (class names abbreviated)."""
    out = []
    for field in ("num_classes", "channels", "image_size", "mean", "std", "class_names"):
        x, y = getattr(a, field), getattr(b, field)
        if x != y:
            out.append(f"{field} {x} vs {y}" if field != "class_names" else "class_names differ")
    return ", ".join(out)


# --------------------------------------------------------------------------- data root


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Folder that holds the datasets.

    Order: ``root`` if given, else ``$COURSE_DATA_ROOT`` if set, else the
    repository's ``data/`` folder (found from this file, so it does not depend
    on the current working directory).
    """
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(ENV_DATA_ROOT)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2] / "data"


# --------------------------------------------------------------------------- ImageSet


class ImageSet:
    """A labelled image dataset held in memory as two tensors.

    ``images`` is float32 N x C x H x W, normalised with ``info.mean``/``info.std``;
    ``labels`` is int64 N. Sampling methods take an explicit ``torch.Generator``
    so results are reproducible; the generator may live on the CPU while the
    data lives on another device. ``zca`` is the :class:`~course_utils.zca.ZCA`
    the images were whitened with (see :func:`whiten`), or None.

    ``role`` says which part of the data the set is: ``"train"`` (what methods learn from), ``"validation"`` (carved
    from the training set to make choices: :func:`course_utils.data.splits.carve_validation`), ``"test"`` (for the
    numbers reported, never for a choice) or None (a set built by hand). Subsets, copies and whitened versions keep it.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        info: DatasetInfo | str,
        zca: ZCA | None = None,
        role: str | None = None,
    ):
        if role not in ROLES:
            raise ValueError(f"role={role!r} is not valid; valid: {', '.join(map(repr, ROLES))}")
        if isinstance(info, str):
            info = dataset_info(info)
        if not isinstance(images, torch.Tensor) or not isinstance(labels, torch.Tensor):
            raise TypeError(
                f"images and labels must be torch tensors, got {type(images).__name__} and {type(labels).__name__}"
            )
        if images.ndim != 4:
            raise ValueError(f"images must be N x C x H x W, got shape {tuple(images.shape)}")
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(f"labels must be 1-D with {images.shape[0]} entries, got shape {tuple(labels.shape)}")
        if labels.device != images.device:
            raise ValueError(f"images on {images.device} but labels on {labels.device}")
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= info.num_classes):
            bad = labels[(labels < 0) | (labels >= info.num_classes)]
            raise ValueError(
                f"labels out of range for {info.name}: {sorted(set(bad.tolist()))[:10]} "
                f"(valid: 0..{info.num_classes - 1})"
            )
        if zca is not None and tuple(zca.shape) != tuple(images.shape[1:]):
            raise ValueError(f"zca was fitted on images of shape {zca.shape}, not {tuple(images.shape[1:])}")
        self.images = images
        self.labels = labels.long()
        self.info = info
        self.name = info.name
        self.num_classes = info.num_classes
        self._indices_by_class: list[torch.Tensor] | None = None
        self._class_table: tuple | None = None
        self._fingerprint: str | None = None
        self.zca = zca
        self.role = role

    def __len__(self) -> int:
        return self.images.shape[0]

    def __repr__(self) -> str:
        shape = "x".join(str(s) for s in self.images.shape[1:])
        role = "" if self.role is None else f", role={self.role!r}"
        return f"ImageSet({self.name!r}, n={len(self)}, shape={shape}, device={self.device}{role})"

    @property
    def device(self) -> torch.device:
        """Device of ``images`` and ``labels``."""
        return self.images.device

    def to(self, device: str | torch.device) -> ImageSet:
        """Copy to ``device`` (returns ``self`` if already there)."""
        device = torch.device(device)
        if device == self.device:
            return self
        moved = ImageSet(self.images.to(device), self.labels.to(device), self.info, zca=self.zca, role=self.role)
        if self._indices_by_class is not None:
            moved._indices_by_class = [idx.to(device) for idx in self._indices_by_class]
        moved._fingerprint = self._fingerprint  # the same data
        return moved

    def fingerprint(self) -> str:
        """A hash of the images, labels and dataset name (computed once): checkpoints use it to refuse other data."""
        if self._fingerprint is None:
            h = hashlib.blake2b(digest_size=16)
            h.update(f"{self.name}|{tuple(self.images.shape)}|{self.images.dtype}".encode())
            for t in (self.images, self.labels):
                h.update(t.detach().contiguous().cpu().view(-1).view(torch.uint8).numpy().data)
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    # ---- per-class access

    @property
    def class_counts(self) -> torch.Tensor:
        """Number of examples of each class (LongTensor of length ``num_classes``)."""
        return torch.bincount(self.labels, minlength=self.num_classes)

    @property
    def indices_by_class(self) -> list[torch.Tensor]:
        """One ascending LongTensor of example indices per class (computed once, cached)."""
        if self._indices_by_class is None:
            # A stable sort groups indices by label and keeps them ascending within a class.
            order = torch.argsort(self.labels, stable=True)
            counts = self.class_counts.tolist()
            self._indices_by_class = list(torch.split(order, counts))
        return self._indices_by_class

    def images_of_class(self, c: int) -> torch.Tensor:
        """All images of class ``c``."""
        return self.images[self._class_indices(c)]

    def sample_class(self, c: int, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` random images of class ``c``, drawn without replacement."""
        idx = self._class_indices(c)
        self._check_sample_size(n, {c: idx.numel()})
        return self.images[idx[self._randperm(idx.numel(), generator)[:n]]]

    def sample_per_class(
        self, n: int, generator: torch.Generator | None = None, *, replacement: bool = False
    ) -> torch.Tensor:
        """Indices of ``n`` random examples of every class, as a ``(num_classes, n)`` tensor (row c: class c).

        One draw for all classes at once (no Python loop over classes): without replacement, each class's
        examples get random keys and the ``n`` smallest win; with replacement, ``n`` uniform picks per class.
        """
        index, counts, pad, available = self._table()
        if replacement:
            self._check_sample_size(1 if int(n) >= 1 else n, available)  # n >= 1 and no empty class
            u = torch.rand(len(counts), int(n), generator=generator, device=_device_of(generator)).to(self.device)
            pick = torch.minimum((u * counts.view(-1, 1)).long(), (counts - 1).view(-1, 1))
        else:
            self._check_sample_size(n, available)
            keys = torch.rand(pad.shape, generator=generator, device=_device_of(generator)).to(self.device)
            pick = keys.masked_fill(pad, 2.0).topk(int(n), dim=1, largest=False, sorted=True).indices
        return index.gather(1, pick)

    def sample_balanced(self, n_per_class: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Indices of a class-balanced random subset: ``n_per_class`` from every class.

        Drawn without replacement within each class and ordered class by class
        (class 0 first), so ``labels[result]`` is ``[0]*n + [1]*n + ...``.
        """
        return self.sample_per_class(n_per_class, generator).flatten()

    def subset(self, indices: torch.Tensor | Sequence[int]) -> ImageSet:
        """A new ImageSet with the examples at ``indices`` (copies the tensors)."""
        indices = torch.as_tensor(indices, dtype=torch.long, device=self.device)
        return ImageSet(self.images[indices], self.labels[indices], self.info, zca=self.zca, role=self.role)

    def balanced_subset(self, n_per_class: int, generator: torch.Generator | None = None) -> ImageSet:
        """``subset(sample_balanced(n_per_class, generator))``."""
        return self.subset(self.sample_balanced(n_per_class, generator))

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        """Undo the normalisation of ``x`` (C x H x W or N x C x H x W), clamped to [0, 1].

        For a whitened set (``zca`` set) the whitening is undone first, so the result is viewable pixels.
        """
        if self.zca is not None:
            x = self.zca.inverse(x)
        shape = (len(self.info.mean), 1, 1)
        mean = torch.tensor(self.info.mean, dtype=x.dtype, device=x.device).view(shape)
        std = torch.tensor(self.info.std, dtype=x.dtype, device=x.device).view(shape)
        return (x * std + mean).clamp(0.0, 1.0)

    # ---- internals

    def _class_indices(self, c: int) -> torch.Tensor:
        if not 0 <= int(c) < self.num_classes:
            raise IndexError(f"class {c} out of range for {self.name} ({self.num_classes} classes)")
        return self.indices_by_class[int(c)]

    def _check_sample_size(self, n: int, available: dict[int, int]) -> None:
        """Reject n < 1 and classes with fewer than n examples, naming the offenders."""
        if int(n) < 1:
            raise ValueError(f"number of samples per class must be >= 1, got {n}")
        short = {c: k for c, k in available.items() if k < n}
        if short:
            listed = ", ".join(f"class {c} has {k}" for c, k in list(short.items())[:10])
            raise ValueError(
                f"cannot draw {n} examples per class without replacement from "
                f"{self.name} ({len(self)} examples): {listed}"
            )

    def _table(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[int, int]]:
        """(index, counts, pad, {class: count}): every class's indices in a row of a padded table, built once."""
        if self._class_table is None:
            by_class = self.indices_by_class
            counts = torch.tensor([len(i) for i in by_class], device=self.device)
            index = torch.zeros(len(by_class), max(1, int(counts.max())), dtype=torch.long, device=self.device)
            for c, idx in enumerate(by_class):
                index[c, : len(idx)] = idx
            pad = torch.arange(index.shape[1], device=self.device).view(1, -1) >= counts.view(-1, 1)
            self._class_table = (index, counts, pad, {c: len(i) for c, i in enumerate(by_class)})
        return self._class_table

    def _randperm(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        # randperm must run on the generator's device; the result is moved to the data.
        gen_device = generator.device if generator is not None else torch.device("cpu")
        return torch.randperm(n, generator=generator, device=gen_device).to(self.device)


def whiten(train: ImageSet, test: ImageSet, eps: float = 0.1) -> tuple[ImageSet, ImageSet]:
    """ZCA-whiten ``train`` and ``test`` with a :class:`~course_utils.zca.ZCA` fitted on ``train`` (as MTT does).

    Returns two NEW ImageSets (same info and labels, whitened images, ``zca`` set); the inputs are left
    untouched (:func:`load_dataset` shares its objects). The fit runs on the CPU; the images are whitened
    on the device they are on. A whitened set's ``fingerprint()`` differs from the raw set's (it hashes the
    whitened images), so checkpoints and expert buffers keyed by it tell the two apart. ``denormalise``
    of a whitened set undoes the whitening first. Refuses sets that are already whitened.
    """
    for role, s in (("train", train), ("test", test)):
        if s.zca is not None:
            raise ValueError(f"{role} set {s!r} is already whitened (zca {s.zca.fingerprint()}); whiten raw sets")
    if train.name != test.name:
        raise ValueError(f"train is {train.name} but test is {test.name}; whiten the two splits of one dataset")
    zca = ZCA.fit(train.images.cpu(), eps=eps)
    with torch.no_grad():
        white_train = ImageSet(zca.transform(train.images), train.labels, train.info, zca=zca, role=train.role)
        white_test = ImageSet(zca.transform(test.images), test.labels, test.info, zca=zca, role=test.role)
    return white_train, white_test


# --------------------------------------------------------------------------- loading

# (name, train, resolved root) -> ImageSet. Shared objects: callers must not
# modify them in place (use .subset() / .to() / tensor.clone() to get copies).
_CACHE: dict[tuple[str, bool, str], ImageSet] = {}


def _device_of(generator: torch.Generator | None) -> torch.device:
    """Random numbers are drawn on the generator's device (then moved to the data)."""
    return generator.device if generator is not None else torch.device("cpu")


def clear_cache() -> None:
    """Forget all ImageSets cached by :func:`load_dataset` (frees their memory)."""
    _CACHE.clear()


def load_dataset(
    name: str,
    train: bool = True,
    root: str | os.PathLike | None = None,
    download: bool = True,
) -> ImageSet:
    """Load one split of a dataset as an :class:`ImageSet`.

    The result is cached per (name, split, resolved root): a second call returns
    the *same object*, so do not modify its tensors in place.

    Raises :class:`DatasetNotAvailableError` if the files are missing and
    ``download`` is False or the download fails; the message says which files
    to put where.
    """
    name = _canonical_name(name)
    if name not in _TV_CLASS:
        raise ValueError(
            f"{name!r} is a dataset registered from your own images, not one under the data root: load it again "
            "with course_utils.folders (load_image_folder or load_mhist)"
        )
    folder = data_root(root).resolve()
    key = (name, bool(train), str(folder))
    if key not in _CACHE:
        raw = _open_torchvision(name, folder, bool(train), download)
        _CACHE[key] = _to_imageset(raw, dataset_info(name), "train" if train else "test")
    return _CACHE[key]


def load(name: str, root: str | os.PathLike | None = None, download: bool = True) -> tuple[ImageSet, ImageSet]:
    """``(train, test)`` ImageSets of ``name``; see :func:`load_dataset`."""
    return (
        load_dataset(name, train=True, root=root, download=download),
        load_dataset(name, train=False, root=root, download=download),
    )


def _to_imageset(raw, info: DatasetInfo, role: str) -> ImageSet:
    """Convert a torchvision dataset's whole ``.data`` array at once into an ImageSet."""
    data = raw.data
    if isinstance(data, torch.Tensor):  # MNIST family: uint8 tensor N x H x W
        x = data.unsqueeze(1)
    else:  # CIFAR family: numpy uint8 N x H x W x C
        x = torch.from_numpy(data).permute(0, 3, 1, 2)
    x = x.float().div_(255)  # .float() makes a fresh contiguous copy, so in-place ops are safe
    mean = torch.tensor(info.mean).view(1, -1, 1, 1)
    std = torch.tensor(info.std).view(1, -1, 1, 1)
    x.sub_(mean).div_(std)
    labels = torch.as_tensor(raw.targets, dtype=torch.long)
    return ImageSet(x, labels, info, role=role)


def _open_torchvision(name: str, folder: Path, train: bool, download: bool):
    """Construct the torchvision dataset, turning every failure into DatasetNotAvailableError.

    MNIST-family files are checked first (``_verify_mnist_files``): a corrupt archive is named, a corrupt
    extracted file is extracted again from its verified archive.
    """
    cls = _TV_CLASS[name]
    state = _verify_mnist_files(cls, folder) if not _is_cifar(cls) else _cifar_state(cls, folder)
    if state is None and not download:
        problem = f"{cls.__name__} not found under {folder} and download=False"
        raise DatasetNotAvailableError(_missing_message(cls, folder, problem))
    # CIFAR "archive": the verified tarball is on disk; torchvision's download()
    # then only extracts it (it checks the md5 and skips the network).
    tv_download = state not in ("extracted", "verified")
    try:
        with _quiet_stdout(), _socket_timeout(None if state else _DOWNLOAD_TIMEOUT_S):
            dataset = cls(str(folder), train=train, download=tv_download)
        if tv_download and not _is_cifar(cls):  # freshly downloaded: record the extracted files' checksums
            _verify_mnist_files(cls, folder)
        return dataset
    except DatasetNotAvailableError:
        raise
    except Exception as exc:  # URLError, RuntimeError, OSError, bad pickle/gzip, ...
        if state is None:
            problem = f"{cls.__name__} not found under {folder} and it could not be downloaded"
        else:
            problem = f"{cls.__name__} files under {folder} could not be read (incomplete or corrupted?)"
        problem += f" ({_describe(exc)})"
        raise DatasetNotAvailableError(_missing_message(cls, folder, problem)) from exc


def _md5(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _corrupt_archive(cls, folder: Path, path: Path, expected: str, actual: str) -> DatasetNotAvailableError:
    problem = (
        f"{path} is corrupt: md5 mismatch (expected {expected}, got {actual}); it is not the original file. "
        f"Delete it (it is downloaded again when a network is available) or replace it with the original"
    )
    return DatasetNotAvailableError(_missing_message(cls, folder, problem))


def _extract(gz_path: Path, target: Path, sidecar: Path) -> None:
    """Decompress ``gz_path`` to ``target`` atomically and record the result's md5 in ``sidecar``."""
    partial = target.with_name(target.name + ".part")
    h = hashlib.md5()
    with gzip.open(gz_path, "rb") as src, open(partial, "wb") as dst:
        for block in iter(lambda: src.read(1 << 20), b""):
            h.update(block)
            dst.write(block)
    os.replace(partial, target)
    sidecar.write_text(h.hexdigest() + "\n")


def _verify_mnist_files(cls, folder: Path) -> str | None:
    """Check an MNIST-family folder; return "verified", "extracted" or None (files missing: download needed).

    Every ``.gz`` present must have the original md5 (else ``DatasetNotAvailableError`` names it). Each extracted
    file made from a verified archive has a ``.md5`` record beside it; a missing record or a mismatch (a truncated
    or overwritten file) extracts the file again from the archive. Extracted files without archives are
    trusted as given ("extracted"), unless their record says they changed.
    """
    raw = folder / cls.__name__ / "raw"
    states = []
    for gz, md5 in cls.resources:
        gz_path, target = raw / gz, raw / gz[: -len(".gz")]
        sidecar = target.with_name(target.name + ".md5")
        recorded = sidecar.read_text().strip() if sidecar.is_file() else None
        if gz_path.is_file():
            actual = _md5(gz_path)
            if actual != md5:
                raise _corrupt_archive(cls, folder, gz_path, md5, actual)
            if recorded is None or not target.is_file() or _md5(target) != recorded:
                _extract(gz_path, target, sidecar)
            states.append("verified")
        elif target.is_file():
            if recorded is not None and _md5(target) != recorded:
                problem = (
                    f"{target} has changed since it was extracted (md5 differs from {sidecar.name}) and its "
                    f"archive {gz} is not there to extract it again"
                )
                raise DatasetNotAvailableError(_missing_message(cls, folder, problem))
            states.append("extracted")
        else:
            return None
    return "verified" if all(st == "verified" for st in states) else "extracted"


def _describe(exc: BaseException, limit: int = 300) -> str:
    """One-line summary of an exception for an error message (torchvision's can span lines)."""
    text = " ".join(str(exc).split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _is_cifar(cls) -> bool:
    return issubclass(cls, tv_datasets.CIFAR10)


def _cifar_state(cls, folder: Path) -> str | None:
    """What is on disk for a CIFAR class under ``folder``.

    "extracted": the batch files torchvision reads are there (torchvision checks each one's md5 when it loads);
    "archive": the original tarball is there with the right md5 (torchvision extracts it without network);
    None: a download is needed. A tarball with another md5 is an error naming it. Checking this ourselves lets
    us forbid the network when download=False and bound it with a timeout otherwise.
    """
    base = folder / cls.base_folder
    needed = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    if all((base / f).is_file() for f in needed):
        return "extracted"
    tarball = folder / cls.filename
    if tarball.is_file():
        actual = _md5(tarball)
        if actual != cls.tgz_md5:
            raise _corrupt_archive(cls, folder, tarball, cls.tgz_md5, actual)
        return "archive"
    return None


def _missing_message(cls, folder: Path, problem: str) -> str:
    """``problem``, followed by exactly which files to put where for ``cls``."""
    if _is_cifar(cls):
        what = f"{cls.filename} or the extracted {cls.base_folder}/ folder"
        where = f"{folder}{os.sep}"
    else:
        what = ", ".join(gz for gz, _ in cls.resources)
        where = f"{folder / cls.__name__ / 'raw'}{os.sep}"
    return f"{problem}. Put {what} into {where} (or set {ENV_DATA_ROOT})"


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Hide torchvision's "Downloading ..." lines, printed even when it only extracts."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


@contextlib.contextmanager
def _socket_timeout(seconds: float | None) -> Iterator[None]:
    """Temporarily set the default socket timeout (None: leave it alone)."""
    if seconds is None:
        yield
        return
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


# --------------------------------------------------------------------------- shared copies

_SHARED_FOLDERS = ("MNIST", "FashionMNIST")


def copy_shared_data(src: str | os.PathLike, root: str | os.PathLike | None = None) -> list[Path]:
    """Copy ``src/{MNIST,FashionMNIST}/raw/*.gz`` into the data root, verifying md5 checksums.

    A target that already holds the original file (its md5 is the dataset's) is skipped; any other target (missing,
    truncated, or a same-size corrupt copy) is replaced. A source whose md5 is wrong is an error naming it: it is
    never copied. Returns the paths that were written. Raises FileNotFoundError if ``src`` holds none of them.
    """
    src = Path(src).expanduser()
    dest_root = data_root(root)
    sources = [p for sub in _SHARED_FOLDERS for p in sorted((src / sub / "raw").glob("*.gz"))]
    if not sources:
        raise FileNotFoundError(
            f"no {'/'.join(_SHARED_FOLDERS)} .gz files under {src} (expected {src / 'MNIST' / 'raw' / '*.gz'})"
        )
    expected = {
        (cls.__name__, gz): md5 for cls in (tv_datasets.MNIST, tv_datasets.FashionMNIST) for gz, md5 in cls.resources
    }
    written = []
    for path in sources:
        rel = path.relative_to(src)
        md5 = expected.get((rel.parts[0], path.name))
        if md5 is not None and _md5(path) != md5:
            raise ValueError(
                f"{path}: md5 mismatch (expected {md5}, got {_md5(path)}): the source is corrupt; not copied"
            )
        target = dest_root / rel
        if target.is_file() and md5 is not None and _md5(target) == md5:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        # Copy contents only (not the read-only mode of the shared files), and
        # rename into place so an interrupted copy never looks complete.
        partial = target.with_name(target.name + ".part")
        shutil.copyfile(path, partial)
        os.replace(partial, target)
        written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m course_utils.data [--copy-from SRC] [--root DIR]``."""
    parser = argparse.ArgumentParser(
        prog="python -m course_utils.data",
        description="Show the data root, or copy shared MNIST/Fashion-MNIST files into it.",
    )
    parser.add_argument("--copy-from", metavar="SRC", help="folder laid out as SRC/MNIST/raw/*.gz")
    parser.add_argument("--root", help=f"data root (default: ${ENV_DATA_ROOT} or <repo>/data)")
    args = parser.parse_args(argv)

    root = data_root(args.root)
    if args.copy_from:
        written = copy_shared_data(args.copy_from, root)
        print(f"copied {len(written)} file(s) into {root}")
    print(f"data root: {root}")
    for name in DATASETS:
        cls = _TV_CLASS[name]
        try:
            state = (_cifar_state(cls, root) if _is_cifar(cls) else _verify_mnist_files(cls, root)) or "missing"
        except DatasetNotAvailableError as err:
            state = f"CORRUPT: {err}"
        print(f"  {name:14s} {state}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
