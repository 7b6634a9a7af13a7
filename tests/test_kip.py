"""KIP (kernel inducing points) with feature-map kernels: the loss against a brute-force computation, the loss
going down, class balance, determinism, checkpoint-resume and errors. Tiny problems, seconds."""

import pytest
import torch

from course_utils import methods
from course_utils.data.datasets import ImageSet
from course_utils.methods import feature_maps, kip, ridge

f64 = torch.float64


def _small_set(n_per_class=8, k=10, size=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    protos = torch.randn(k, 1, size, size, generator=g)
    labels = torch.arange(k).repeat_interleave(n_per_class)
    images = protos[labels] + 0.5 * torch.randn(len(labels), 1, size, size, generator=g)
    return ImageSet(images, labels, "mnist")


def test_loss_matches_the_kernel_formula_computed_by_hand():
    g = torch.Generator().manual_seed(0)
    F_S, Y_S = torch.randn(4, 7, generator=g, dtype=f64), torch.randn(4, 3, generator=g, dtype=f64)
    F_t, Y_t = torch.randn(9, 7, generator=g, dtype=f64), torch.randn(9, 3, generator=g, dtype=f64)
    reg = 1e-2
    K_SS, K_tS = F_S @ F_S.T, F_t @ F_S.T  # K(x, x') = φ(x)·φ(x')
    lam = reg * torch.trace(K_SS) / 4
    pred = K_tS @ torch.linalg.inv(K_SS + lam * torch.eye(4, dtype=f64)) @ Y_S
    assert torch.allclose(kip.krr_predict(F_S, Y_S, F_t, reg), pred, atol=1e-12)
    assert torch.allclose(kip.kip_loss(F_S, Y_S, F_t, Y_t, reg), ((Y_t - pred) ** 2).sum() / (9 * 3))
    # the KRR model of a support set, W = Y_S (K_SS + λ̃I)⁻¹ F_S, predicts the same scores
    fmap = feature_maps.make("identity", 7)
    W = kip.support_weights(F_S, Y_S, fmap, reg)
    assert torch.allclose(ridge.predict(W, F_t), pred, atol=1e-10)


def test_balanced_batches_hold_every_class_equally():
    train = _small_set()
    idx = train.sample_per_class(5, torch.Generator().manual_seed(0), replacement=True)
    assert idx.shape == (10, 5) and (train.labels[idx] == torch.arange(10).view(10, 1)).all()
    big = train.sample_per_class(20, torch.Generator().manual_seed(0), replacement=True)  # more than a class holds
    assert (train.labels[big] == torch.arange(10).view(10, 1)).all()


@pytest.mark.parametrize("name", ["random_network", "identity"])
def test_loss_decreases_and_the_set_is_class_balanced(name):
    train = _small_set()
    curve = []
    syn = kip.distill(
        train,
        2,
        generator=torch.Generator().manual_seed(0),
        feature_map=name,
        steps=40,
        batch_size=40,
        lr_img=0.01,
        callback=lambda event: curve.append(event.loss),
    )
    assert len(curve) == 40 and syn.meta["history"]["loss"] == curve
    assert sum(curve[-5:]) < 0.8 * sum(curve[:5])
    assert syn.images.shape == (20, 1, 5, 5) and syn.labels.shape == (20, 10)  # learned soft labels
    assert torch.bincount(torch.tensor(syn.meta["classes"]), minlength=10).tolist() == [2] * 10
    assert syn.meta["feature_map"]["name"] == name and syn.meta["method"] == "kip"


def test_same_seed_bit_identical_and_hard_labels_without_label_learning():
    train = _small_set()
    run = lambda seed: methods.distill(
        "kip",
        train,
        1,
        generator=torch.Generator().manual_seed(seed),
        steps=5,
        batch_size=20,
        learn_labels=False,
        init="noise",
    )
    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    assert a.labels.tolist() == list(range(10)) and a.ipc == 1


def test_errors_name_the_bad_value_and_divergence_names_the_step():
    train = _small_set()
    g = torch.Generator().manual_seed(0)
    for bad, message in (
        ({"steps": 0}, "steps must be an integer >= 1"),
        ({"lr_img": -1.0}, "lr_img must be a finite number"),
        ({"batch_size": 2.5}, "batch_size must be an integer"),
        ({"reg": float("nan")}, "reg must be"),
    ):
        with pytest.raises(ValueError, match=message):
            kip.distill(train, 1, generator=g, **bad)
    with pytest.raises(ValueError, match="batch_size=5 must be >= the number of classes \\(10\\)"):
        kip.distill(train, 1, generator=g, batch_size=5)
    with pytest.raises(ValueError, match="init='zeros' is not valid; valid: real, noise"):
        kip.distill(train, 1, generator=g, init="zeros")
    with pytest.raises(ValueError, match="unknown feature map 'rbf'"):
        kip.distill(train, 1, generator=g, feature_map="rbf")
    with pytest.raises(TypeError, match="kip: unknown hyperparameter.*'model'"):
        kip.distill(train, 1, generator=g, model="rbf")  # kernel methods take feature_map=
    broken = ImageSet(torch.full_like(train.images, float("nan")), train.labels, "mnist")
    with pytest.raises(FloatingPointError, match="kip diverged at step 1/3"):
        kip.distill(broken, 1, generator=g, steps=3, batch_size=20)


@pytest.mark.parametrize("name", feature_maps.FEATURE_MAPS)
def test_feature_maps_are_differentiable_for_kip(name):
    fmap = feature_maps.make(name, 6, seed=2)
    x = torch.randn(4, 6, dtype=f64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: fmap(v), (x,))
