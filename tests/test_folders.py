"""Tests for course_utils.folders: datasets from the user's own image folders and from MHIST's layout.

Every image is written by the tests (PIL, 20 x 24 pixels, a colour per class plus noise), so nothing is downloaded.
Covered: shapes, labels and class names; the seeded, stratified split and the train/ + test/ layout; normalisation
with the training statistics only; grayscale, formats, 16-bit images; registration by name (built-in names
protected); every error; and that the sets work with the rest of the package (protocols, evaluation, methods).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from course_utils import methods
from course_utils.data import augment
from course_utils.data import datasets as data
from course_utils.data.datasets import DatasetInfo
from course_utils.data.folders import IMAGE_EXTENSIONS, load_image_folder, load_mhist
from course_utils.evaluation import protocol, training
from course_utils.nets import samplers, trajectories
from course_utils.nets.models import get_model

# Sorted order is Mango < apple < zebra (upper case first): labels 0, 1, 2.
COLOURS = {"zebra": (230, 40, 40), "apple": (40, 200, 40), "Mango": (40, 40, 230)}
CLASSES = sorted(COLOURS)
FORMATS = ("png", "jpg", "JPEG", "bmp", "gif", "tif", "webp")


def _pixels(colour, seed: int, shape=(20, 24)) -> np.ndarray:
    """An H x W x 3 uint8 image: ``colour`` plus uniform noise of +-20 (seeded)."""
    noise = np.random.default_rng(seed).integers(-20, 21, (*shape, 3))
    return np.clip(np.array(colour)[None, None] + noise, 0, 255).astype(np.uint8)


def _write_class(folder: Path, colour, n: int, seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(_pixels(colour, seed * 1000 + i)).save(folder / f"img{i:02d}.png")


def _write_folder(root: Path, counts: dict[str, int] | None = None, seed: int = 0) -> Path:
    """``root/<class>/img*.png`` with ``counts[class]`` images (default 6 of each of COLOURS)."""
    for c, (name, colour) in enumerate(COLOURS.items()):
        n = 6 if counts is None else counts.get(name, 0)
        if n:
            _write_class(root / name, colour, n, seed=seed + c)
    return root


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    """3 classes x 6 images of 20 x 24 pixels."""
    return _write_folder(tmp_path_factory.mktemp("folders") / "My Shapes")


def _p(path: Path) -> str:
    """A path as a regular expression that matches it literally."""
    return re.escape(str(path))


def _mean_colour(s) -> torch.Tensor:
    """Per-image mean RGB in [0, 1] (the normalisation undone)."""
    return s.denormalise(s.images).mean(dim=(2, 3))


# --------------------------------------------------------------------------- shapes, labels, names


def test_shapes_dtype_labels_and_class_names(shapes):
    train, test = load_image_folder(shapes, image_size=16)
    assert train.images.shape == (15, 3, 16, 16) and test.images.shape == (3, 3, 16, 16)
    assert train.images.dtype == torch.float32 and train.labels.dtype == torch.int64
    assert train.info.class_names == ("Mango", "apple", "zebra") and train.num_classes == 3
    assert torch.bincount(train.labels).tolist() == [5, 5, 5] and torch.bincount(test.labels).tolist() == [1, 1, 1]
    info = train.info
    assert (info.name, info.channels, info.image_size) == ("my_shapes", 3, 16) and test.info is info
    # each label carries its folder's colour: the brightest channel of class k's images is its colour's
    for s in (train, test):
        brightest = _mean_colour(s).argmax(1)
        expected = torch.tensor([int(np.argmax(COLOURS[CLASSES[int(y)]])) for y in s.labels])
        assert torch.equal(brightest, expected)


def test_every_format_any_case_hidden_and_other_files_ignored(tmp_path):
    root = tmp_path / "formats"
    for c, (name, colour) in enumerate(list(COLOURS.items())[:2]):
        for i, ext in enumerate(FORMATS):
            (root / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(_pixels(colour, 10 * c + i)).save(root / name / f"i{i}.{ext}")  # format from the extension
        (root / name / "notes.txt").write_text("not an image")
        (root / name / ".DS_Store").write_bytes(b"\0\1junk")
        (root / name / "._i0.png").write_bytes(b"macOS resource fork, not an image")
    (root / ".ipynb_checkpoints").mkdir()
    rgba = np.dstack([_pixels(COLOURS["zebra"], 99), np.full((20, 24), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(root / "zebra" / "alpha.PNG")
    train, test = load_image_folder(root, image_size=12, test_fraction=0.25, name="formats")
    assert len(train) + len(test) == 2 * len(FORMATS) + 1 and train.info.class_names == ("apple", "zebra")
    assert {ext.lower() for ext in FORMATS} <= {e.lstrip(".") for e in IMAGE_EXTENSIONS}


def test_grayscale(shapes):
    train, test = load_image_folder(shapes, image_size=10, channels=1, name="shapes_gray")
    assert train.images.shape == (15, 1, 10, 10) and test.images.shape == (3, 1, 10, 10)
    assert train.info.channels == 1 and len(train.info.mean) == len(train.info.std) == 1


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    for name, value in (("dark", 16384), ("bright", 65535)):
        (tmp_path / name).mkdir()
        for i in range(2):
            Image.fromarray(np.full((8, 8), value, np.uint16)).save(tmp_path / name / f"{i}.png")
    train, test = load_image_folder(tmp_path, image_size=8, channels=1, name="sixteen_bit")
    raw = train.denormalise(train.images).mean(dim=(1, 2, 3))
    assert torch.allclose(raw.sort().values, torch.tensor([64 / 255, 1.0]), atol=1e-3)


# --------------------------------------------------------------------------- the split


def _held_out(test, cls: str | None = None) -> list[tuple]:
    """The test images (of class ``cls``) as sorted pixel tuples in 0..255: which files went to the test split,
    whatever the normalisation (the statistics change with the split)."""
    pixels = test.denormalise(test.images).mul(255).round()
    if cls is not None:
        pixels = pixels[test.labels == test.info.class_names.index(cls)]
    return sorted(tuple(p.flatten().tolist()) for p in pixels)


def test_split_is_seeded_and_deterministic(shapes):
    a = load_image_folder(shapes, image_size=8, test_fraction=0.5, split_seed=3, name="split")
    b = load_image_folder(shapes, image_size=8, test_fraction=0.5, split_seed=3, name="split")
    c = load_image_folder(shapes, image_size=8, test_fraction=0.5, split_seed=4, name="split")
    for x, y in zip(a, b):
        assert torch.equal(x.images, y.images) and torch.equal(x.labels, y.labels)
    assert _held_out(a[1]) != _held_out(c[1]), "another seed holds other images out"


def test_split_of_a_class_does_not_depend_on_the_other_classes(tmp_path, shapes):
    """Removing a class leaves the other classes' test images where they were."""
    _, test_all = load_image_folder(shapes, image_size=8, test_fraction=0.5, name="indep")
    two = tmp_path / "two"
    for c, (name, colour) in enumerate(COLOURS.items()):  # the same files as shapes' apple and zebra
        if name != "Mango":
            _write_class(two / name, colour, 6, seed=c)
    _, test_two = load_image_folder(two, image_size=8, test_fraction=0.5, name="indep")
    for cls in ("apple", "zebra"):
        assert _held_out(test_all, cls) == _held_out(test_two, cls)


@pytest.mark.parametrize("fraction,n_test", [(0.01, 1), (0.5, 3), (0.6, 4), (0.99, 5)])
def test_split_is_stratified_and_keeps_one_of_each(shapes, fraction, n_test):
    train, test = load_image_folder(shapes, image_size=8, test_fraction=fraction, name="strat")
    assert torch.bincount(test.labels, minlength=3).tolist() == [n_test] * 3
    assert torch.bincount(train.labels, minlength=3).tolist() == [6 - n_test] * 3


def test_train_and_test_subfolders_are_used_as_given(tmp_path):
    root = tmp_path / "given"
    _write_folder(root / "train", {"apple": 4, "zebra": 3})
    _write_folder(root / "test", {"apple": 2, "zebra": 5}, seed=7)
    runs = [load_image_folder(root, image_size=8, test_fraction=f, split_seed=s) for f, s in ((0.2, 0), (0.9, 5))]
    train, test = runs[0]
    assert train.name == "given" and train.info.class_names == ("apple", "zebra")
    assert torch.bincount(train.labels).tolist() == [4, 3] and torch.bincount(test.labels).tolist() == [2, 5]
    assert torch.equal(runs[1][1].images, test.images), "test_fraction and split_seed play no part"


# --------------------------------------------------------------------------- normalisation


def test_normalised_with_training_statistics_only(tmp_path):
    """Dark training images, bright test images: the test split keeps the training statistics (no leakage)."""
    root = tmp_path / "stats"
    for split, scale in (("train", 0.4), ("test", 1.0)):
        for name, colour in list(COLOURS.items())[:2]:
            _write_class(root / split / name, tuple(int(v * scale) for v in colour), 4, seed=len(name))
    train, test = load_image_folder(root, image_size=16, name="stats")
    assert train.images.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    assert (train.images.std(dim=(0, 2, 3), correction=0) - 1).abs().max() < 1e-4
    assert test.images.mean(dim=(0, 2, 3)).min() > 0.5, "brighter test images stay brighter than the training ones"
    # the stored statistics are the training pixels' own, and denormalise gives back the test pixels
    raw_test = np.stack([np.asarray(Image.open(p).resize((16, 16), Image.Resampling.BILINEAR)) for p in
                         sorted((root / "test").glob("*/*.png"))]) / 255.0  # fmt: skip
    raw_train = np.stack([np.asarray(Image.open(p).resize((16, 16), Image.Resampling.BILINEAR)) for p in
                          sorted((root / "train").glob("*/*.png"))]) / 255.0  # fmt: skip
    assert np.allclose(train.info.mean, raw_train.mean(axis=(0, 1, 2)), atol=1e-5)
    assert np.allclose(train.info.std, raw_train.std(axis=(0, 1, 2)), atol=1e-5)
    back = test.denormalise(test.images).permute(0, 2, 3, 1).numpy()
    assert np.allclose(back, raw_test, atol=1e-5)


# --------------------------------------------------------------------------- registration by name


def test_the_dataset_is_resolvable_by_name(shapes):
    train, _ = load_image_folder(shapes, image_size=16, name="by-name")
    assert data.dataset_info("by-name") == train.info and data.dataset_info("BY_NAME") == train.info
    assert "by-name" in data.registered_datasets()
    assert augment.strategy_for("by-name") == augment.USER_DATASET_STRATEGY
    assert protocol.named("dsa", "by-name").augmentation == f"dsa:{augment.USER_DATASET_STRATEGY}"
    assert protocol.named("dc", "by-name").augmentation == "none"
    assert data.ImageSet(train.images[:2], train.labels[:2], "by-name").info == train.info
    with pytest.raises(ValueError, match=r"'by-name' is a dataset registered from your own images.*folders"):
        data.load("by-name")
    with pytest.raises(ValueError, match=r"unknown dataset 'nope'; valid: mnist, .*by-name"):
        data.dataset_info("nope")


def test_reloading_replaces_the_registration(shapes):
    load_image_folder(shapes, image_size=16, name="resized")
    small, _ = load_image_folder(shapes, image_size=8, name="resized")
    assert data.dataset_info("resized").image_size == 8 and small.info.image_size == 8


def test_built_in_names_are_protected(tmp_path):
    mnist = data.dataset_info("mnist")
    assert data.register_dataset(mnist) is mnist, "the built-in's own facts change nothing"
    other = DatasetInfo("MNIST", 3, 3, 16, (0.5,) * 3, (0.2,) * 3, ("a", "b", "c"))
    with pytest.raises(ValueError, match=r"'MNIST' is the built-in dataset 'mnist' and the facts differ \(num_class"):
        data.register_dataset(other)
    assert data.dataset_info("mnist") is mnist
    folder = _write_folder(tmp_path / "cifar-10", {"apple": 2, "zebra": 2})
    with pytest.raises(ValueError, match=r"'cifar_10' is reserved for the built-in dataset 'cifar10'; pass name="):
        load_image_folder(folder, image_size=8)
    with pytest.raises(ValueError, match=r"dataset name must start with a letter.*got 'my/data'"):
        load_image_folder(folder, image_size=8, name="my/data")


@pytest.mark.parametrize(
    "change,message",
    [
        ({"name": "a b"}, "dataset name must"),
        ({"num_classes": 0}, "num_classes must be a positive int"),
        ({"image_size": (8, 8)}, "image_size must be a positive int"),
        ({"class_names": ("a",)}, "1 class names for 2 classes"),
        ({"mean": (0.5,)}, "one value per channel"),
        ({"std": (0.2, 0.0, 0.2)}, r"every std finite and > 0"),
        ({"mean": (0.5, float("nan"), 0.5)}, r"mean must be finite"),
    ],
)
def test_register_dataset_checks_the_facts(change, message):
    facts = dict(name="ok", num_classes=2, channels=3, image_size=8, mean=(0.5,) * 3, std=(0.2,) * 3)
    with pytest.raises(ValueError, match=message):
        data.register_dataset(DatasetInfo(**{**facts, "class_names": ("a", "b"), **change}))


# --------------------------------------------------------------------------- errors


def test_missing_root_and_no_class_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"image folder {_p(tmp_path / 'absent')} does not exist"):
        load_image_folder(tmp_path / "absent", image_size=8)
    (tmp_path / "loose.png").write_bytes(b"")
    with pytest.raises(NotADirectoryError, match="is not a folder"):
        load_image_folder(tmp_path / "loose.png", image_size=8)
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.fromarray(_pixels((0, 0, 0), 0)).save(flat / "a.png")
    with pytest.raises(ValueError, match=rf"{_p(flat)} holds no class subfolders; expected root/<class>/<images>"):
        load_image_folder(flat, image_size=8)


def test_one_class_is_not_a_classification_dataset(tmp_path):
    root = _write_folder(tmp_path / "one", {"apple": 4})
    with pytest.raises(ValueError, match=r"needs at least 2 classes, found \['apple'\]"):
        load_image_folder(root, image_size=8)


def test_a_class_without_images_or_with_one_image_is_named(tmp_path):
    root = _write_folder(tmp_path / "empty", {"apple": 3, "zebra": 3})
    (root / "Mango").mkdir()
    (root / "Mango" / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match=rf"class folder {_p(root / 'Mango')} holds no images \(extensions: .bmp"):
        load_image_folder(root, image_size=8)
    (root / "Mango" / "nested").mkdir()
    with pytest.raises(ValueError, match=r"holds only folders \(nested\), which are not searched"):
        load_image_folder(root, image_size=8)
    _write_class(root / "Mango", (0, 0, 255), 1)
    with pytest.raises(ValueError, match=r"class 'Mango' .* has 1 image; a split needs at least 2 per class"):
        load_image_folder(root, image_size=8)


@pytest.mark.parametrize("content", [b"not an image at all", "truncated"])
def test_a_corrupt_image_is_named(tmp_path, content):
    root = _write_folder(tmp_path / "corrupt", {"apple": 3, "zebra": 3})
    good = (root / "apple" / "img00.png").read_bytes()
    bad = root / "zebra" / "broken.png"
    bad.write_bytes(good[: len(good) // 2] if content == "truncated" else content)
    with pytest.raises(ValueError, match=rf"cannot read image {_p(bad)}"):
        load_image_folder(root, image_size=8)


@pytest.mark.parametrize("size", [0, -3, 16.0, True, (16, 16), "16"])
def test_bad_image_size(shapes, size):
    with pytest.raises(ValueError, match=rf"image_size must be one positive int .*square.*got {re.escape(repr(size))}"):
        load_image_folder(shapes, image_size=size)


@pytest.mark.parametrize("channels", [0, 2, 4, True, "3"])
def test_bad_channels(shapes, channels):
    expected = rf"channels must be 1 \(grayscale\) or 3 \(RGB\), got {re.escape(repr(channels))}"
    with pytest.raises(ValueError, match=expected):
        load_image_folder(shapes, image_size=8, channels=channels)


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1, "0.2", float("nan")])
def test_bad_test_fraction(shapes, fraction):
    with pytest.raises(ValueError, match=r"test_fraction .* must be in \(0, 1\), got"):
        load_image_folder(shapes, image_size=8, test_fraction=fraction)


def test_train_and_test_class_sets_must_match(tmp_path):
    root = tmp_path / "mismatch"
    _write_folder(root / "train", {"apple": 2, "zebra": 2, "Mango": 2})
    _write_folder(root / "test", {"apple": 2, "zebra": 2})
    (root / "test" / "pear").mkdir()
    with pytest.raises(
        ValueError, match=r"same class folders: only in .*train: \['Mango'\]; only in .*test: \['pear'\]"
    ):
        load_image_folder(root, image_size=8)
    (root / "extra").mkdir()
    with pytest.raises(ValueError, match=r"holds train/ and test/ and also extra"):
        load_image_folder(root, image_size=8)


# --------------------------------------------------------------------------- MHIST


def _write_mhist(root: Path, rows: list[tuple[str, str, str]], header=None, skip_images=()) -> Path:
    """MHIST's layout: images/<name> and annotations.csv with (name, label, partition) plus MHIST's extra column."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    header = header or ["Image Name", "Majority Vote Label", "Number of Annotators who Selected SSA (Out of 7)",
                        "Partition"]  # fmt: skip
    with open(root / "annotations.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for i, (file, label, partition) in enumerate(rows):
            writer.writerow([file, label, str(i % 8), partition])
            if file not in skip_images:
                colour = (200, 80, 160) if label == "HP" else (120, 40, 200)
                Image.fromarray(_pixels(colour, i, (24, 24))).save(root / "images" / file)
    return root


def _mhist_rows(n_train=6, n_test=4) -> list[tuple[str, str, str]]:
    rows = [(f"MHIST_{i:03d}.png", "SSA" if i % 3 == 0 else "HP", "train") for i in range(n_train)]
    return rows + [(f"MHIST_{100 + i:03d}.png", "HP" if i % 2 else "SSA", "test") for i in range(n_test)]


def test_mhist_layout(tmp_path):
    root = _write_mhist(tmp_path / "mhist", _mhist_rows())
    train, test = load_mhist(root, image_size=16)
    assert train.images.shape == (6, 3, 16, 16) and test.images.shape == (4, 3, 16, 16)
    assert train.info.class_names == ("HP", "SSA") and train.name == "mhist"
    assert train.labels.tolist() == [1, 0, 0, 1, 0, 0] and test.labels.tolist() == [1, 0, 1, 0]
    assert train.images.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    assert data.dataset_info("mhist") == train.info
    gray, _ = load_mhist(root, channels=1, name="mhist_gray")  # MHIST's own size by default
    assert gray.images.shape == (6, 1, 224, 224)


def test_mhist_errors(tmp_path):
    root = tmp_path / "m"
    with pytest.raises(FileNotFoundError, match="MHIST folder .* does not exist"):
        load_mhist(root)
    root.mkdir()
    with pytest.raises(FileNotFoundError, match=r"MHIST images folder .*images not found"):
        load_mhist(root)
    (root / "images").mkdir()
    with pytest.raises(FileNotFoundError, match=r"MHIST annotations .*annotations.csv not found"):
        load_mhist(root)


@pytest.mark.parametrize(
    "rows,kwargs,error,message",
    [
        (
            _mhist_rows(),
            {"header": ["Image Name", "Label", "x", "Partition"]},
            ValueError,
            r"lacks column\(s\) Majority Vote Label; found: Image Name, Label, x, Partition; needed: Image Name, "
            r"Majority Vote Label, Partition",
        ),
        (
            _mhist_rows() + [("MHIST_900.png", "HP", "validation")],
            {},
            ValueError,
            r"line 12: unknown Partition 'validation' for MHIST_900.png; valid: train, test",
        ),
        (_mhist_rows(), {"skip_images": ("MHIST_003.png",)}, FileNotFoundError, r"missing: .*MHIST_003.png"),
        (_mhist_rows(n_test=0), {}, ValueError, r"no image has Partition 'test' \(the split is empty\)"),
        (_mhist_rows() + [("MHIST_001.png", "HP", "test")], {}, ValueError, "MHIST_001.png is listed more than once"),
        ([(f"{i}.png", "HP", "train" if i else "test") for i in range(3)], {}, ValueError, r"at least 2 classes"),
    ],
)
def test_mhist_csv_errors(tmp_path, rows, kwargs, error, message):
    root = _write_mhist(tmp_path / "m", rows, **kwargs)
    with pytest.raises(error, match=message):
        load_mhist(root, image_size=8)


# --------------------------------------------------------------------------- usable by the package


@pytest.mark.parametrize("size", [16, 20, 24])
def test_convnets_take_other_sizes_and_two_classes(size):
    for name in ("convnet", "convnet_d2", "convnet_bn", "convnet_np", "lenet", "alexnet", "resnet18", "mlp"):
        kwargs = {} if name == "lenet" else {"width": 8}
        net = get_model(name, 3, 2, size, **kwargs)
        assert net(torch.randn(2, 3, size, size)).shape == (2, 2), name
    assert get_model("convnet", 3, 2, size, width=8).feature_dim == 8 * (size // 8) ** 2


@pytest.fixture(scope="module")
def two_class(tmp_path_factory):
    root = _write_folder(tmp_path_factory.mktemp("two") / "pets", {"apple": 12, "zebra": 12})
    return load_image_folder(root, image_size=16, test_fraction=0.25, name="pets")


def test_evaluation_on_a_folder_dataset(two_class):
    train, test = two_class
    syn = methods.distill("random", train, 3, generator=torch.Generator().manual_seed(0))
    assert syn.images.shape == (6, 3, 16, 16)
    for proto in ("plain", "dsa"):
        result = training.evaluate_set(
            syn,
            test,
            protocol=proto,
            epochs=2,
            num_models=1,
            model=samplers.FreshInit("convnet", width=8),
            device="cpu",
        )
        assert len(result.accuracies) == 1 and 0 <= result.mean <= 100
    assert "dsa:color_crop_cutout_flip_scale_rotate" in result.protocol


TINY = samplers.FreshInit("convnet", width=8)
#: Per method: tiny hyperparameters and arguments ("experts": a buffer trained on the folder set; "pool": an
#: early-stage pool built from it, which looks the dataset up by name). A method not listed runs with its defaults.
FOLDER_SETUP = {
    "random": {},
    "herding": {"pool_per_class": 4},
    "forgetting": {"epochs": 1, "model": TINY},
    "krr_closed_form": {"lam": 1.0},
    "kip": {"steps": 2, "batch_size": 8},
    "dd": {"steps": 2, "batch_size": 8},
    "dc": {"steps": 2, "batch_real": 4, "model": TINY},
    "dsa": {"steps": 2, "batch_real": 4, "model": TINY},
    "dm": {"steps": 2, "batch_real": 4, "model": TINY},
    "mtt": {"steps": 2, "syn_steps": 2, "expert_epochs": 1, "max_start_epoch": 1, "lr_img": 10.0, "model": "experts"},
    "zen": {"steps": 2, "inner_steps": 2, "hypergradient": "identity", "model": TINY},
    "accdd": {"steps": 2, "outer_loop": 2, "inner_loop": 2, "batch_real": 4, "batch_net": 8, "model": "pool"},
}


@pytest.mark.parametrize("name", methods.METHOD_NAMES)
def test_every_method_distils_a_folder_dataset(two_class, tmp_path, name):
    train, _ = two_class
    hparams = dict(FOLDER_SETUP.get(name, {}))
    if hparams.get("model") in ("experts", "pool"):
        experts = trajectories.train_experts(
            train, 1, model=samplers.FreshInit("convnet", width=8), epochs=2, root=tmp_path
        )
        pool = hparams["model"] == "pool"
        hparams["model"] = experts.pool() if pool else experts
    syn = methods.distill(name, train, 2, generator=torch.Generator().manual_seed(0), **hparams)
    assert syn.images.shape == (4, 3, 16, 16) and torch.isfinite(syn.images).all()
    assert syn.hard_labels.tolist() == [0, 0, 1, 1] and syn.meta["dataset"] == "pets"
