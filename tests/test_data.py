"""Tests for course_utils.data: loading, caching, per-class sampling, errors, data root.

MNIST / Fashion-MNIST tests use the original .gz files from ../shared/data (copied
into a temporary root, never written in place). CIFAR tests write tiny fake
datasets in CIFAR's on-disk pickle format. No test touches the network.
"""

from __future__ import annotations

import socket
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import datasets as tv_datasets

from course_utils.data import datasets as data
from course_utils.data.datasets import DatasetNotAvailableError, ImageSet

REPO = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------- fixtures


def _toy_set(counts: list[int]) -> ImageSet:
    """A small in-memory ImageSet with ``counts[c]`` examples of class c, labels shuffled."""
    labels = torch.cat([torch.full((k,), c) for c, k in enumerate(counts)])
    labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))]
    images = labels.float().view(-1, 1, 1, 1).expand(-1, 1, 28, 28).clone()
    return ImageSet(images, labels, "mnist")


# --------------------------------------------------------------------------- fake CIFAR


@pytest.mark.parametrize("name,n_train,n_test", [("cifar10", 100, 20), ("cifar100", 200, 100)])
def test_fake_cifar_loads_with_right_layout(tmp_path, fake_cifar, name, n_train, n_test):
    written = fake_cifar(tmp_path, name, n_train, n_test)
    train, test = data.load(name, root=tmp_path, download=False)

    info = data.dataset_info(name)
    assert (len(train), len(test)) == (n_train, n_test)
    assert train.images.shape[1:] == (3, 32, 32) and train.images.dtype == torch.float32
    assert train.labels.dtype == torch.int64
    assert train.info.class_names == tuple(written["names"]) and len(info.class_names) == info.num_classes
    for split, loaded in (("train", train), ("test", test)):
        pixels, labels = written[split]
        assert torch.equal(loaded.labels, torch.from_numpy(labels).long())
        # Channel order: denormalised images must give back the CHW pattern we wrote.
        back = loaded.denormalise(loaded.images).mul(255).round().to(torch.uint8)
        assert torch.equal(back, torch.from_numpy(pixels))


def test_cifar_missing_names_tarball_and_folder(tmp_path):
    with pytest.raises(DatasetNotAvailableError) as err:
        data.load_dataset("cifar100", root=tmp_path, download=False)
    msg = str(err.value)
    assert str(tmp_path) in msg
    assert "cifar-100-python.tar.gz" in msg and "cifar-100-python/" in msg


# --------------------------------------------------------------------------- MNIST / Fashion-MNIST


def test_mnist_loads_from_gz_copies(mnist):
    train, test = mnist
    assert (len(train), len(test)) == (60000, 10000)
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.images.dtype == torch.float32 and train.labels.dtype == torch.int64
    assert (train.labels[0].item(), test.labels[0].item()) == (5, 7)
    assert abs(train.images.mean().item()) < 0.02
    assert abs(train.images.std().item() - 1) < 0.02
    assert train.name == "mnist" and train.num_classes == 10


def test_fashion_mnist_loads_and_is_normalised(mnist_root):
    train, test = data.load("FashionMNIST", root=mnist_root, download=False)
    assert (len(train), len(test)) == (60000, 10000)
    assert train.images.shape[1:] == (1, 28, 28)
    assert (train.labels[0].item(), test.labels[0].item()) == (9, 9)
    assert abs(train.images.mean().item()) < 0.02
    assert abs(train.images.std().item() - 1) < 0.02
    assert train.info.class_names[9] == "Ankle boot"


def test_second_load_returns_cached_object(mnist, mnist_root):
    train, test = mnist
    assert data.load_dataset("mnist", train=True, root=mnist_root) is train
    # Another spelling and an equivalent (unresolved) path hit the same cache entry.
    assert data.load_dataset("MNIST", train=False, root=str(mnist_root / "MNIST" / "..")) is test


def test_copy_shared_data_skips_existing_files(mnist_root, shared_data_dir):
    assert data.copy_shared_data(shared_data_dir, mnist_root) == []


def _copy_mnist(shared_data_dir, root):
    data.copy_shared_data(shared_data_dir, root)
    return root / "MNIST" / "raw"


def test_copy_compares_checksums_not_sizes(tmp_path, shared_data_dir):
    raw = _copy_mnist(shared_data_dir, tmp_path)
    target = raw / "t10k-labels-idx1-ubyte.gz"
    blob = bytearray(target.read_bytes())
    blob[100] ^= 0xFF  # a same-size corrupt copy used to be kept
    target.write_bytes(bytes(blob))
    written = data.copy_shared_data(shared_data_dir, tmp_path)
    assert written == [target] and target.read_bytes() == (shared_data_dir / "MNIST" / "raw" / target.name).read_bytes()


def test_corrupt_source_is_refused_naming_it(tmp_path, shared_data_dir):
    src = tmp_path / "src"
    _copy_mnist(shared_data_dir, src)
    bad = src / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:-10])
    with pytest.raises(ValueError, match=f"{bad}: md5 mismatch.*not copied"):
        data.copy_shared_data(src, tmp_path / "root")


def test_corrupt_gz_names_the_file_and_the_fix(tmp_path, shared_data_dir):
    raw = _copy_mnist(shared_data_dir, tmp_path)
    bad = raw / "t10k-images-idx3-ubyte.gz"
    blob = bytearray(bad.read_bytes())
    blob[5000] ^= 0x01
    bad.write_bytes(bytes(blob))
    with pytest.raises(
        DatasetNotAvailableError, match=f"{bad} is corrupt: md5 mismatch \\(expected .*Delete it"
    ) as err:
        data.load_dataset("mnist", train=False, root=tmp_path, download=False)
    assert "not found" not in str(err.value)


def test_corrupt_extracted_file_is_extracted_again_from_its_verified_archive(tmp_path, shared_data_dir):
    raw = _copy_mnist(shared_data_dir, tmp_path)
    first = data.load_dataset("mnist", train=False, root=tmp_path, download=False)
    data.clear_cache()
    extracted = raw / "t10k-images-idx3-ubyte"
    assert extracted.is_file() and (raw / "t10k-images-idx3-ubyte.md5").is_file()
    blob = bytearray(extracted.read_bytes())
    blob[-1000:] = bytes(1000)  # same size, last rows of pixels zeroed: torchvision alone would read garbage
    extracted.write_bytes(bytes(blob))
    again = data.load_dataset("mnist", train=False, root=tmp_path, download=False)
    data.clear_cache()
    assert torch.equal(first.images, again.images)
    extracted.write_bytes(extracted.read_bytes()[:-5000])  # truncated
    assert torch.equal(data.load_dataset("mnist", train=False, root=tmp_path, download=False).images, first.images)
    data.clear_cache()


def test_extracted_files_without_archives_are_checked_against_their_record(tmp_path, shared_data_dir):
    raw = _copy_mnist(shared_data_dir, tmp_path)
    data.load_dataset("mnist", train=False, root=tmp_path, download=False)
    data.clear_cache()
    for gz in raw.glob("*.gz"):
        gz.unlink()
    assert len(data.load_dataset("mnist", train=False, root=tmp_path, download=False)) == 10000
    data.clear_cache()
    labels = raw / "t10k-labels-idx1-ubyte"
    blob = bytearray(labels.read_bytes())
    blob[-1] ^= 0x01
    labels.write_bytes(bytes(blob))
    with pytest.raises(DatasetNotAvailableError, match="has changed since it was extracted.*not there"):
        data.load_dataset("mnist", train=False, root=tmp_path, download=False)


def test_labels_out_of_range_are_an_error():
    with pytest.raises(ValueError, match=r"labels out of range for mnist: \[10, 12\] \(valid: 0..9\)"):
        ImageSet(torch.zeros(3, 1, 28, 28), torch.tensor([0, 10, 12]), "mnist")
    with pytest.raises(ValueError, match="labels out of range for mnist: \\[-1\\]"):
        ImageSet(torch.zeros(2, 1, 28, 28), torch.tensor([-1, 3]), "mnist")
    with pytest.raises(ValueError, match="integer class indices"):
        ImageSet(torch.zeros(2, 1, 28, 28), torch.tensor([0.0, 1.0]), "mnist")
    with pytest.raises(TypeError, match="must be torch tensors, got ndarray"):
        ImageSet(np.zeros((2, 1, 28, 28), dtype=np.float32), torch.tensor([0, 1]), "mnist")


def test_cli_copies_and_reports(tmp_path, capsys, mnist_root):
    assert data.main(["--copy-from", str(mnist_root), "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "copied 8 file(s)" in out and str(tmp_path) in out
    assert (tmp_path / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").is_file()


# --------------------------------------------------------------------------- per-class access


def test_indices_by_class_and_counts():
    counts = [5, 3, 7, 1, 4, 6, 2, 8, 3, 5]
    ds = _toy_set(counts)
    assert ds.class_counts.tolist() == counts
    by_class = ds.indices_by_class
    assert by_class is ds.indices_by_class  # cached
    for c, idx in enumerate(by_class):
        assert idx.dtype == torch.int64 and len(idx) == counts[c]
        assert (ds.labels[idx] == c).all()
        assert torch.equal(idx, idx.sort().values)
    assert torch.equal(torch.cat(by_class).sort().values, torch.arange(len(ds)))
    assert (ds.images_of_class(2) == 2).all() and len(ds.images_of_class(2)) == 7


def test_sample_class_without_replacement():
    ds = _toy_set([4] * 10)
    x = ds.sample_class(3, 4, torch.Generator().manual_seed(0))
    assert x.shape == (4, 1, 28, 28) and (x == 3).all()
    with pytest.raises(ValueError, match="class 3 has 4"):
        ds.sample_class(3, 5, torch.Generator())
    with pytest.raises(IndexError):
        ds.sample_class(10, 1, torch.Generator())


def test_sample_balanced_on_mnist(mnist):
    train, _ = mnist
    n = 10
    idx = train.sample_balanced(n, torch.Generator().manual_seed(0))
    assert idx.dtype == torch.int64 and len(idx) == n * 10
    assert len(torch.unique(idx)) == len(idx)
    assert torch.equal(train.labels[idx], torch.arange(10).repeat_interleave(n))  # class by class
    assert torch.bincount(train.labels[idx], minlength=10).tolist() == [n] * 10

    same = train.sample_balanced(n, torch.Generator().manual_seed(0))
    other = train.sample_balanced(n, torch.Generator().manual_seed(1))
    assert torch.equal(idx, same)
    assert not torch.equal(idx, other)


def test_sample_per_class_draws_every_class_at_once():
    ds = _toy_set([5, 3, 7, 4, 4, 6, 5, 8, 3, 5])
    g = torch.Generator().manual_seed(0)
    idx = ds.sample_per_class(3, g)
    assert idx.shape == (10, 3) and (ds.labels[idx] == torch.arange(10).view(10, 1)).all()
    assert all(len(set(row.tolist())) == 3 for row in idx)  # without replacement within a class
    with_rep = ds.sample_per_class(9, g, replacement=True)  # more than any class holds
    assert (ds.labels[with_rep] == torch.arange(10).view(10, 1)).all()
    assert torch.equal(ds.sample_per_class(3, torch.Generator().manual_seed(0)), idx)
    with pytest.raises(ValueError, match="class 1 has 3"):
        ds.sample_per_class(4, g)
    # every example can be drawn: over many draws each index of the smallest class shows up
    seen = set(ds.sample_per_class(3, g).flatten().tolist())
    for _ in range(30):
        seen |= set(ds.sample_per_class(3, g).flatten().tolist())
    assert seen >= set(ds.indices_by_class[1].tolist())


def test_fingerprint_tells_data_apart():
    a, b = _toy_set([2] * 10), _toy_set([2] * 10)
    assert a.fingerprint() == b.fingerprint() and len(a.fingerprint()) == 32
    c = ImageSet(a.images.clone(), a.labels.clone(), "fashion_mnist")
    assert c.fingerprint() != a.fingerprint()
    d = ImageSet(a.images + 1e-3, a.labels, "mnist")
    assert d.fingerprint() != a.fingerprint()


def test_balanced_subset_and_subset():
    ds = _toy_set([6] * 10)
    sub = ds.balanced_subset(2, torch.Generator().manual_seed(0))
    assert len(sub) == 20 and sub.class_counts.tolist() == [2] * 10
    assert sub.info is ds.info and sub.name == "mnist"
    assert (sub.images[:, 0, 0, 0] == sub.labels.float()).all()  # images travel with their labels
    picked = ds.subset([0, 5])
    assert torch.equal(picked.labels, ds.labels[[0, 5]])


def test_sample_balanced_errors():
    ds = _toy_set([5, 5, 5, 2, 5, 5, 5, 5, 5, 5])
    with pytest.raises(ValueError, match=">= 1"):
        ds.sample_balanced(0, torch.Generator())
    with pytest.raises(ValueError, match="class 3 has 2"):
        ds.sample_balanced(3, torch.Generator())


def test_to_and_denormalise():
    ds = _toy_set([2] * 10)
    assert ds.to("cpu") is ds and ds.device == torch.device("cpu")
    x = torch.randn(3, 1, 28, 28) * 5
    out = ds.denormalise(x)
    assert out.min() >= 0 and out.max() <= 1
    assert torch.allclose(ds.denormalise(torch.zeros(1, 28, 28)), torch.full((1, 28, 28), 0.1307))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_generator_with_data_on_gpu():
    ds = _toy_set([4] * 10).to("cuda")
    idx = ds.sample_balanced(2, torch.Generator().manual_seed(0))
    assert idx.device.type == "cuda"
    assert torch.equal(idx.cpu(), _toy_set([4] * 10).sample_balanced(2, torch.Generator().manual_seed(0)))
    assert ds.sample_class(1, 3, torch.Generator()).device.type == "cuda"


# --------------------------------------------------------------------------- names and errors


def test_dataset_names_and_info():
    assert data.DATASETS == ("mnist", "fashion_mnist", "cifar10", "cifar100")
    for spelling, name in [("MNIST", "mnist"), ("FashionMNIST", "fashion_mnist"),
                           ("fashion-mnist", "fashion_mnist"), ("CIFAR10", "cifar10"),
                           ("cifar100", "cifar100")]:  # fmt: skip
        assert data.dataset_info(spelling).name == name
    info = data.dataset_info("cifar10")
    assert (info.num_classes, info.channels, info.image_size) == (10, 3, 32)
    assert info.mean == (0.4914, 0.4822, 0.4465) and info.std == (0.2023, 0.1994, 0.2010)
    assert data.dataset_info("cifar100").num_classes == len(data.dataset_info("cifar100").class_names) == 100
    with pytest.raises(AttributeError):
        info.num_classes = 3  # frozen


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError) as err:
        data.load_dataset("mnsit")
    msg = str(err.value)
    assert "'mnsit'" in msg
    assert all(name in msg for name in data.DATASETS)


def test_missing_files_without_download(tmp_path):
    with pytest.raises(DatasetNotAvailableError) as err:
        data.load_dataset("fashion_mnist", root=tmp_path, download=False)
    assert isinstance(err.value, FileNotFoundError)
    msg = str(err.value)
    assert str(tmp_path / "FashionMNIST" / "raw") in msg
    for f in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):  # fmt: skip
        assert f in msg


def test_unreadable_files_are_a_clear_error(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):  # fmt: skip
        (raw / f).write_bytes(b"not an idx file")
    with pytest.raises(DatasetNotAvailableError, match="could not be read") as err:
        data.load_dataset("mnist", root=tmp_path, download=False)
    assert err.value.__cause__ is not None and str(raw) in str(err.value)


def test_failed_download_is_a_clear_error(tmp_path, monkeypatch):
    """A network failure inside torchvision becomes DatasetNotAvailableError, bounded by a timeout."""
    seen = {}

    def offline_download(self):
        seen["timeout"] = socket.getdefaulttimeout()
        raise urllib.error.URLError("no network in this test")

    monkeypatch.setattr(tv_datasets.MNIST, "download", offline_download)
    before = socket.getdefaulttimeout()
    with pytest.raises(DatasetNotAvailableError) as err:
        data.load_dataset("mnist", root=tmp_path, download=True)
    assert isinstance(err.value.__cause__, urllib.error.URLError)
    assert "could not be downloaded" in str(err.value) and "no network" in str(err.value)
    assert str(tmp_path / "MNIST" / "raw") in str(err.value)
    assert seen["timeout"] is not None and seen["timeout"] <= 60
    assert socket.getdefaulttimeout() == before  # restored


# --------------------------------------------------------------------------- data root


def test_data_root_explicit_and_env(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_ROOT", str(tmp_path / "env"))
    assert data.data_root() == tmp_path / "env"
    assert data.data_root(tmp_path / "explicit") == tmp_path / "explicit"


def test_data_root_default_ignores_cwd(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_DATA_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    assert data.data_root() == REPO / "data"
