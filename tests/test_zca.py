"""ZCA whitening (course_utils.zca) and its use through course_utils.data.whiten."""

from __future__ import annotations

import math
import re

import pytest
import torch

from course_utils.data import datasets as data
from course_utils.data.zca import ZCA

SHAPE = (3, 4, 4)
D = 3 * 4 * 4


def _correlated(n: int = 2000, seed: int = 0) -> torch.Tensor:
    """N x 3 x 4 x 4 images with strongly correlated pixels (Z @ A, A random) and a non-zero mean."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(D, D, generator=g) * torch.logspace(0, -2, D).view(-1, 1)  # spread the spectrum
    z = torch.randn(n, D, generator=g)
    return (z @ a + 3.0).view(n, *SHAPE)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return _correlated()


@pytest.fixture(scope="module")
def zca(images) -> ZCA:
    return ZCA.fit(images, eps=0.1)


# --------------------------------------------------------------------------- the mathematics


def test_whitened_covariance_is_u_diag_s_over_s_plus_eps(images, zca):
    x = images.flatten(1).double()
    centred = x - x.mean(0)
    cov = centred.T @ centred / (len(x) - 1)
    s, u = torch.linalg.eigh(cov)
    s = s.clamp(min=0)
    expected = (u * (s / (s + 0.1))) @ u.T

    z = zca.transform(images).flatten(1).double()
    assert z.mean(0).abs().max() < 1e-4
    zc = z - z.mean(0)
    got = zc.T @ zc / (len(z) - 1)
    assert (got - expected).abs().max() < 1e-4
    # Where S >> eps the whitened data has unit variance along that eigenvector.
    big = s > 100 * 0.1
    assert big.sum() >= 5
    var_along = torch.einsum("di,de,ei->i", u[:, big], got, u[:, big])
    assert torch.allclose(var_along, torch.ones_like(var_along), atol=1e-2)
    assert torch.allclose(zca.mean.double(), x.mean(0), atol=1e-5)
    assert zca.mean.dtype == zca.transform_matrix.dtype == zca.inverse_matrix.dtype == torch.float32
    assert zca.shape == SHAPE and zca.eps == 0.1 and zca.transform_matrix.device.type == "cpu"


def test_inverse_undoes_transform_batch_and_single_image(images, zca):
    z = zca.transform(images)
    assert z.shape == images.shape and z.dtype == torch.float32
    assert torch.allclose(zca.inverse(z), images, atol=1e-4)
    one = images[7]
    z1 = zca.transform(one)
    assert z1.shape == SHAPE
    assert torch.allclose(z1, z[7], atol=1e-5)
    assert torch.allclose(zca.inverse(z1), one, atol=1e-4)


def test_chunked_apply_matches_one_block(zca, monkeypatch):
    from course_utils.data import zca as zca_module

    x = _correlated(50, seed=3)
    whole = zca.transform(x)
    monkeypatch.setattr(zca_module, "_APPLY_CHUNK", 7)
    assert torch.allclose(zca.transform(x), whole, atol=1e-6)
    assert torch.allclose(zca.inverse(whole), x, atol=1e-4)
    xg = x.clone().requires_grad_(True)
    zca.transform(xg).sum().backward()  # the chunked path with a graph (torch.cat) as well
    assert torch.allclose(xg.grad.flatten(1), zca.transform_matrix.sum(1).expand(50, D), atol=1e-6)


def test_chunked_fit_matches_one_block(images, zca, monkeypatch):
    from course_utils.data import zca as zca_module

    monkeypatch.setattr(zca_module, "_FIT_CHUNK", 300)  # 2000 rows: 7 blocks, the last one short
    chunked = ZCA.fit(images, eps=0.1)
    assert torch.allclose(chunked.transform_matrix, zca.transform_matrix, atol=1e-5)
    assert torch.allclose(chunked.mean, zca.mean, atol=1e-6)


def test_w_is_symmetric_zero_phase_and_inverts(zca):
    w, w_inv = zca.transform_matrix, zca.inverse_matrix
    assert torch.equal(w, w.T) and torch.equal(w_inv, w_inv.T)
    eye = torch.eye(D)
    assert torch.allclose(w.double() @ w_inv.double(), eye.double(), atol=1e-4)
    # A PCA whitening diag(...) U^T would also whiten but is not symmetric; ZCA is also positive definite.
    assert torch.linalg.eigvalsh(w.double()).min() > 0


def test_fit_is_deterministic(images, zca):
    again = ZCA.fit(images.clone(), eps=0.1)
    assert torch.equal(again.transform_matrix, zca.transform_matrix)
    assert torch.equal(again.inverse_matrix, zca.inverse_matrix)
    assert torch.equal(again.mean, zca.mean)
    assert again.fingerprint() == zca.fingerprint()
    assert ZCA.fit(images, eps=0.2).fingerprint() != zca.fingerprint()


def test_gradients_flow_through_transform(zca):
    x = _correlated(5, seed=1).requires_grad_(True)
    zca.transform(x).sum().backward()
    # d/dx sum((x - mu) W) = ones @ W^T for every image.
    expected = (torch.ones(5, D) @ zca.transform_matrix.T).view(5, *SHAPE)
    assert torch.allclose(x.grad, expected, atol=1e-6)
    single = _correlated(1, seed=2)[0].requires_grad_(True)
    zca.inverse(single).pow(2).sum().backward()
    assert single.grad is not None and single.grad.shape == SHAPE


def test_state_dict_round_trip(zca, tmp_path):
    path = tmp_path / "zca.pt"
    torch.save(zca.state_dict(), path)
    back = ZCA.from_state_dict(torch.load(path, weights_only=True))
    assert back.fingerprint() == zca.fingerprint() and len(zca.fingerprint()) == 16
    assert torch.equal(back.transform_matrix, zca.transform_matrix) and back.shape == zca.shape
    with pytest.raises(ValueError, match="inverse_matrix"):
        ZCA.from_state_dict({k: v for k, v in zca.state_dict().items() if k != "inverse_matrix"})


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("eps,shown", [(0, "0"), (-1, "-1"), (math.nan, "nan"), (math.inf, "inf"), (True, "True")])
def test_bad_eps_is_refused_naming_it(images, eps, shown):
    with pytest.raises(ValueError, match=rf"positive finite.*got {re.escape(shown)}$"):
        ZCA.fit(images[:10], eps=eps)


def test_bad_images_are_refused_naming_them(images, zca):
    with pytest.raises(ValueError, match=re.escape("(3, 4, 4)")):
        ZCA.fit(images[0])  # 3-D
    with pytest.raises(ValueError, match="torch.int64"):
        ZCA.fit(torch.zeros(5, *SHAPE, dtype=torch.long))
    with pytest.raises(ValueError, match="at least 2 images.*got 1"):
        ZCA.fit(images[:1])
    with pytest.raises(ValueError, match=re.escape("(3, 8, 8)") + ".*" + re.escape("(3, 4, 4)")):
        zca.transform(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match=re.escape("(1, 4, 4)") + ".*" + re.escape("(3, 4, 4)")):
        zca.inverse(torch.zeros(1, 4, 4))


# --------------------------------------------------------------------------- data.whiten on CIFAR-format files


@pytest.mark.parametrize("name,n_train", [("cifar10", 100), ("cifar100", 200)])
def test_whiten_cifar(tmp_path, fake_cifar, name, n_train):
    fake_cifar(tmp_path, name, n_train, 20)
    train, test = data.load(name, root=tmp_path, download=False)
    before = [(s.images.clone(), s.labels.clone(), s.fingerprint()) for s in (train, test)]

    wtrain, wtest = data.whiten(train, test, eps=0.1)

    for raw, white, (images, labels, fp) in zip((train, test), (wtrain, wtest), before):
        assert raw.zca is None and torch.equal(raw.images, images) and torch.equal(raw.labels, labels)
        assert raw.fingerprint() == fp
        assert white is not raw and white.zca is wtrain.zca and white.info is raw.info
        assert torch.equal(white.labels, raw.labels) and white.images.shape == raw.images.shape
        assert white.fingerprint() != fp
        assert torch.allclose(white.images, wtrain.zca.transform(raw.images))
    assert data.load(name, root=tmp_path, download=False)[0] is train  # the cache still holds the raw set
    assert wtrain.zca.shape == (3, 32, 32) and wtrain.zca.eps == 0.1
    assert wtrain.images.flatten(1).mean(0).abs().max() < 1e-3  # fitted on train: centred there

    sub = wtrain.subset([0, 3, 5])
    assert sub.zca is wtrain.zca
    assert wtrain.balanced_subset(1, torch.Generator().manual_seed(0)).zca is wtrain.zca
    assert wtrain.to("cpu").zca is wtrain.zca

    # Denormalising undoes the whitening too: the same pixels as the raw image.
    assert torch.allclose(wtest.denormalise(wtest.images[4]), test.denormalise(test.images[4]), atol=1e-4)
    assert torch.allclose(sub.denormalise(sub.images), train.denormalise(train.images[[0, 3, 5]]), atol=1e-4)

    with pytest.raises(ValueError, match="already whitened"):
        data.whiten(wtrain, wtest)
    with pytest.raises(ValueError, match="already whitened"):
        data.whiten(train, wtest)


# --------------------------------------------------------------------------- GPU


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_transform_matches_cpu(images, zca):
    cpu = zca.transform(images)
    gpu = zca.transform(images.cuda())
    assert gpu.device.type == "cuda"
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-4)
    assert torch.allclose(zca.inverse(gpu).cpu(), images, atol=1e-4)
    x = images[:3].cuda().requires_grad_(True)
    zca.transform(x).sum().backward()
    assert x.grad.device.type == "cuda"
