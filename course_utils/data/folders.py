"""Datasets from your own images: a folder per class, or the MHIST layout, as a normalised train/test pair.

Two layouts of image files (png, jpg, jpeg, bmp, gif, tif, tiff, webp; any case)::

    root/<class>/<image>                     load_image_folder: split per class by ``split_seed``
    root/train/<class>/<image>               load_image_folder: this split is used as it is
    root/test/<class>/<image>
    root/images/<image> + root/annotations.csv   load_mhist (columns Image Name, Majority Vote Label, Partition)

Each image is converted to RGB (``channels=3``) or grayscale (``channels=1``; alpha is dropped, a GIF gives its first
frame, a 16-bit image is scaled to 8 bits) and resized to ``image_size`` × ``image_size`` pixels with PIL's bilinear
filter, which antialiases when it shrinks. Images are stretched, not cropped, to the square: every network in
``models`` takes square inputs, so ``image_size`` is one int. Pixels are scaled to [0, 1] and normalised per channel
with the mean and std of the TRAINING split only; the test split is normalised with those same training statistics,
so nothing about the test images leaks into training.

The result is two :class:`~course_utils.data.ImageSet` objects whose :class:`~course_utils.data.DatasetInfo` is
registered (``data.register_dataset``), so every part of the package that looks a dataset up by name (protocols,
augmentation, methods, expert buffers) works on them::

    train, test = load_image_folder("my_photos", image_size=32)
    syn = methods.distill("dm", train, 10, generator=torch.Generator().manual_seed(0))
    training.evaluate_set(syn, test, protocol="dsa")

Files and folders whose names start with "." (``.ipynb_checkpoints``, ``.DS_Store``, macOS ``._*`` files) are
ignored, and so are files with other extensions; subfolders inside a class folder are not searched.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from . import datasets as data
from ..core import validate
from .datasets import DatasetInfo, ImageSet

__all__ = ["IMAGE_EXTENSIONS", "MHIST_COLUMNS", "load_image_folder", "load_mhist"]

#: File extensions read as images (compared in lower case).
IMAGE_EXTENSIONS: tuple[str, ...] = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")

#: The columns of MHIST's ``annotations.csv`` that ``load_mhist`` reads (others are ignored).
MHIST_COLUMNS: tuple[str, ...] = ("Image Name", "Majority Vote Label", "Partition")
_PARTITIONS = ("train", "test")

# A class's files paired with its label; one such list per split.
_Listing = list[tuple[Path, int]]


# --------------------------------------------------------------------------- public API


def load_image_folder(
    root: str | os.PathLike,
    *,
    image_size: int,
    channels: int = 3,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    name: str | None = None,
) -> tuple[ImageSet, ImageSet]:
    """``(train, test)`` ImageSets from a folder with one subfolder of images per class.

    Class names are the subfolder names, sorted; labels are 0..K-1 in that order (at least 2 classes). When
    ``root`` holds exactly ``train/`` and ``test/`` (each with the same class subfolders) that split is used and
    ``test_fraction`` / ``split_seed`` play no part. Otherwise each class is split on its own: ``round(n ×
    test_fraction)`` of its n images (at least 1, at most n - 1) go to the test set, drawn by a permutation that
    depends only on ``split_seed``, the class name and its sorted file names (so adding a class does not move the
    others' images). A class needs at least 2 images.

    Images become ``channels`` (3: RGB, 1: grayscale) × ``image_size`` × ``image_size`` (one int: square), scaled
    to [0, 1] and normalised per channel with the mean and std of the training split only; the test split uses the
    training statistics too (no test leakage). The statistics are in ``train.info.mean`` / ``.std``
    (``denormalise`` undoes them). The dataset is registered under ``name`` (default: the folder's name as a slug,
    e.g. "My Photos" -> "my_photos"; re-loading replaces the earlier registration); a built-in dataset's name is
    refused. Errors name the bad path or value and what is valid.
    """
    root = _existing_folder(root, "image folder")
    image_size, channels = _check_size(image_size), _check_channels(channels)
    _check_fraction(test_fraction)
    validate.non_negative_int("split_seed", split_seed)
    name = _dataset_name(name, root)
    layout = _split_layout(root)
    if layout is not None:
        class_names, train_files, test_files = _listing_from_split(*layout)
    else:
        class_names, train_files, test_files = _listing_by_seed(root, test_fraction, split_seed)
    return _build(name, class_names, train_files, test_files, image_size, channels)


def load_mhist(
    root: str | os.PathLike, *, image_size: int = 224, channels: int = 3, name: str = "mhist"
) -> tuple[ImageSet, ImageSet]:
    """``(train, test)`` ImageSets in MHIST's layout: ``root/images/<files>`` and ``root/annotations.csv``.

    The CSV's ``Image Name`` is a file in ``images/``, ``Majority Vote Label`` its class (MHIST: ``HP``, ``SSA``;
    the classes are the sorted labels found in the CSV, so ``HP`` = 0, ``SSA`` = 1) and ``Partition`` its split
    (``train`` or ``test``, any case); other columns are ignored. Images are prepared and normalised as in
    :func:`load_image_folder` (training statistics only). Errors: a missing CSV, images folder or listed image, a
    missing column, an unknown partition, an image listed twice, an empty split, fewer than 2 classes.

    ``image_size=224`` is MHIST's own resolution; its 3,152 images then take about 1.9 GB as float32, and a
    ConvNet's cost grows with the pixel count: 64 or 128 is far cheaper for a first run. MHIST itself is
    distributed under a data-use agreement, so it is never downloaded here.
    """
    root = _existing_folder(root, "MHIST folder")
    image_size, channels = _check_size(image_size), _check_channels(channels)
    name = _dataset_name(name, root)
    images = root / "images"
    if not images.is_dir():
        raise FileNotFoundError(
            f"MHIST images folder {images} not found (expected root/images/ and root/annotations.csv)"
        )
    rows = _read_mhist_csv(root / "annotations.csv")
    class_names = tuple(sorted({label for _, label, _ in rows}))
    _check_class_count(class_names, root / "annotations.csv")
    label_of = {c: i for i, c in enumerate(class_names)}
    splits: dict[str, _Listing] = {p: [] for p in _PARTITIONS}
    for file, label, partition in rows:
        splits[partition].append((images / file, label_of[label]))
    missing = [str(path) for path, _ in splits["train"] + splits["test"] if not path.is_file()]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise FileNotFoundError(f"image listed in annotations.csv but missing: {', '.join(missing[:3])}{more}")
    for partition, listing in splits.items():
        if not listing:
            raise ValueError(f"{root / 'annotations.csv'}: no image has Partition {partition!r} (the split is empty)")
    return _build(name, class_names, splits["train"], splits["test"], image_size, channels)


# --------------------------------------------------------------------------- checks


def _existing_folder(root: str | os.PathLike, what: str) -> Path:
    path = Path(root).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist")
    if not path.is_dir():
        raise NotADirectoryError(f"{what} {path} is not a folder")
    return path


def _check_size(image_size: int) -> int:
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(
            f"image_size must be one positive int (images are made square: every model takes square inputs), "
            f"got {image_size!r}"
        )
    return image_size


def _check_channels(channels: int) -> int:
    if isinstance(channels, bool) or channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
    return channels


def _check_fraction(test_fraction: float) -> float:
    """The share of each class held out for testing: strictly between 0 and 1 (checked even for a given split)."""
    if not validate.is_number(test_fraction) or not 0 < test_fraction < 1:
        raise ValueError(
            f"test_fraction (the share of each class held out for testing) must be in (0, 1), got {test_fraction!r}"
        )
    return test_fraction


def _check_class_count(class_names: Sequence[str], where: Path) -> None:
    if len(class_names) < 2:
        raise ValueError(f"{where}: a classification dataset needs at least 2 classes, found {list(class_names)}")


def _dataset_name(name: str | None, root: Path) -> str:
    """``name``, or a slug of the folder's name; checked early so a bad name costs no image reading."""
    if name is None:
        name = re.sub(r"[^a-z0-9]+", "_", root.resolve().name.lower()).strip("_") or "images"
    data.check_dataset_name(name)
    try:
        builtin = data.dataset_info(name).name in data.DATASETS
    except ValueError:  # not a known name: free
        builtin = False
    if builtin:
        raise ValueError(
            f"dataset name {name!r} is reserved for the built-in dataset {data.dataset_info(name).name!r}; "
            "pass name= another name"
        )
    return name


# --------------------------------------------------------------------------- listing files


def _visible(path: Path) -> bool:
    """Not hidden: skips .ipynb_checkpoints, .DS_Store and macOS's ._ resource files (not images)."""
    return not path.name.startswith(".")


def _subfolders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and _visible(p))


def _image_files(folder: Path) -> list[Path]:
    """The images directly in ``folder``, sorted by name; an error naming the folder when there are none."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and _visible(p) and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        inside = _subfolders(folder)
        hint = f"; it holds only folders ({', '.join(inside[:5])}), which are not searched" if inside else ""
        raise ValueError(f"class folder {folder} holds no images (extensions: {', '.join(IMAGE_EXTENSIONS)}){hint}")
    return files


def _class_folders(root: Path) -> list[str]:
    classes = _subfolders(root)
    if not classes:
        raise ValueError(
            f"{root} holds no class subfolders; expected root/<class>/<images> (one folder per class) or "
            "root/train/<class>/ and root/test/<class>/"
        )
    _check_class_count(classes, root)
    return classes


def _split_layout(root: Path) -> tuple[Path, Path] | None:
    """``(root/train, root/test)`` when root holds that split, else None (a folder per class)."""
    folders = set(_subfolders(root))
    if not {"train", "test"} <= folders:
        return None
    extra = sorted(folders - {"train", "test"})
    if extra:
        raise ValueError(
            f"{root} holds train/ and test/ and also {', '.join(extra)}: use either the split layout (only "
            "train/ and test/, each with one folder per class) or one folder per class"
        )
    return root / "train", root / "test"


def _listing_from_split(train: Path, test: Path) -> tuple[tuple[str, ...], _Listing, _Listing]:
    classes = _class_folders(train)
    test_classes = _class_folders(test)
    if classes != test_classes:
        only_train = sorted(set(classes) - set(test_classes)) or "none"
        only_test = sorted(set(test_classes) - set(classes)) or "none"
        raise ValueError(
            f"train/ and test/ must hold the same class folders: only in {train}: {only_train}; "
            f"only in {test}: {only_test}"
        )

    def listing(split: Path) -> _Listing:
        return [(f, c) for c, name in enumerate(classes) for f in _image_files(split / name)]

    return tuple(classes), listing(train), listing(test)


def _listing_by_seed(root: Path, test_fraction: float, seed: int) -> tuple[tuple[str, ...], _Listing, _Listing]:
    classes = _class_folders(root)
    train, test = [], []
    for c, name in enumerate(classes):
        files = _image_files(root / name)
        if len(files) < 2:
            raise ValueError(
                f"class {name!r} ({root / name}) has {len(files)} image; a split needs at least 2 per class "
                "(one for training, one for testing)"
            )
        is_test = _test_mask(len(files), test_fraction, _class_seed(seed, name))
        train += [(f, c) for f, t in zip(files, is_test) if not t]
        test += [(f, c) for f, t in zip(files, is_test) if t]
    return tuple(classes), train, test


def _class_seed(seed: int, class_name: str) -> int:
    """A seed from (split seed, class name): a class's split does not depend on the other classes."""
    digest = hashlib.blake2b(f"{seed}\0{class_name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1  # manual_seed takes 63 bits


def _test_mask(n: int, test_fraction: float, seed: int) -> list[bool]:
    """Which of ``n`` files go to the test split: round(n × fraction) of them, at least 1 and at most n - 1."""
    n_test = min(n - 1, max(1, math.floor(n * test_fraction + 0.5)))
    chosen = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:n_test]
    mask = torch.zeros(n, dtype=torch.bool)
    mask[chosen] = True
    return mask.tolist()


# --------------------------------------------------------------------------- MHIST's CSV


def _read_mhist_csv(path: Path) -> list[tuple[str, str, str]]:
    """``(file, label, partition)`` per row of MHIST's annotations.csv, checked (partition lower-cased)."""
    if not path.is_file():
        raise FileNotFoundError(f"MHIST annotations {path} not found (expected root/annotations.csv)")
    with open(path, newline="", encoding="utf-8-sig") as fh:  # -sig: a spreadsheet's byte-order mark
        reader = csv.DictReader(fh)
        found = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in MHIST_COLUMNS if c not in found]
        if missing:
            raise ValueError(
                f"{path} lacks column(s) {', '.join(missing)}; found: {', '.join(found) or '(none)'}; "
                f"needed: {', '.join(MHIST_COLUMNS)}"
            )
        reader.fieldnames = found  # stripped names, so " Partition" still matches
        rows, seen = [], set()
        for line, row in enumerate(reader, start=2):
            file, label, partition = ((row[c] or "").strip() for c in MHIST_COLUMNS)
            if not file or not label:
                raise ValueError(f"{path}, line {line}: empty Image Name or Majority Vote Label")
            if partition.lower() not in _PARTITIONS:
                raise ValueError(
                    f"{path}, line {line}: unknown Partition {partition!r} for {file}; valid: {', '.join(_PARTITIONS)}"
                )
            if file in seen:  # listed twice: it could land in both splits
                raise ValueError(f"{path}, line {line}: {file} is listed more than once")
            seen.add(file)
            rows.append((file, label, partition.lower()))
    if not rows:
        raise ValueError(f"{path} lists no images")
    return rows


# --------------------------------------------------------------------------- images to tensors


def _build(
    name: str,
    class_names: tuple[str, ...],
    train_files: _Listing,
    test_files: _Listing,
    image_size: int,
    channels: int,
) -> tuple[ImageSet, ImageSet]:
    """Read both splits, normalise both with the training split's statistics, register the dataset."""
    train_x, test_x = _read_images(train_files, image_size, channels), _read_images(test_files, image_size, channels)
    mean, std = _channel_stats(train_x)
    info = data.register_dataset(
        DatasetInfo(name, len(class_names), channels, image_size, mean, std, tuple(class_names))
    )
    sets = []
    for x, files, role in ((train_x, train_files, "train"), (test_x, test_files, "test")):
        x.sub_(torch.tensor(mean).view(1, -1, 1, 1)).div_(torch.tensor(std).view(1, -1, 1, 1))
        sets.append(ImageSet(x, torch.tensor([c for _, c in files], dtype=torch.long), info, role=role))
    return sets[0], sets[1]


def _read_images(files: _Listing, size: int, channels: int) -> torch.Tensor:
    """N × C × size × size float32 in [0, 1]: read into one uint8 array, converted to float once."""
    mode = "RGB" if channels == 3 else "L"
    pixels = np.empty((len(files), size, size, channels), dtype=np.uint8)
    for i, (path, _) in enumerate(files):
        pixels[i] = _read_image(path, size, mode).reshape(size, size, channels)
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous().float().div_(255)


def _read_image(path: Path, size: int, mode: str) -> np.ndarray:
    """One image as ``mode`` (RGB or L), resized to size × size (bilinear, antialiased); errors name the file."""
    try:
        with Image.open(path) as image:
            image.draft(mode, (size, size))  # JPEG: decode at a reduced scale when it is much larger (fast)
            image = _to_mode(image, mode)
            return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from exc


def _to_mode(image: Image.Image, mode: str) -> Image.Image:
    """``image`` in ``mode``; 16-bit grayscale is scaled to 8 bits first (PIL's own conversion clips at 255)."""
    if image.mode.startswith("I;16"):
        image = Image.fromarray((np.asarray(image, dtype=np.float32) / 257).round().astype(np.uint8))
    return image.convert(mode)


def _channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of N × C × H × W pixels; a constant channel's std is taken as 1."""
    var, mean = torch.var_mean(x, dim=(0, 2, 3), correction=0)
    std = var.sqrt()
    std = torch.where(std > 1e-6, std, torch.ones_like(std))  # nothing to scale; avoids dividing by 0
    return tuple(mean.tolist()), tuple(std.tolist())
