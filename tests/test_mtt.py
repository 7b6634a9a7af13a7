"""MTT: the normalised trajectory loss against a hand computation, the learned learning rate's (and the images')
gradient against finite differences, the learned lr travelling with the set into the evaluation, bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_utils.data import datasets as data
from course_utils.evaluation import training
from course_utils.methods import mtt
from course_utils.nets import samplers, trajectories

SPEC = dict(model=samplers.FreshInit("convnet", width=8), epochs=3, batch_size=64)


@pytest.fixture(scope="module")
def tiny(mnist):
    train, _ = mnist
    return train.balanced_subset(20, torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def buffer(tiny, tmp_path_factory):
    return trajectories.train_experts(tiny, 2, root=tmp_path_factory.mktemp("experts"), **SPEC)


def _distiller(tiny, buffer, **hparams):
    config = mtt.Config(**{"strategy": "none", "expert_epochs": 2, "max_start_epoch": 1, **hparams}).resolved("mnist")
    sampler = trajectories.ExpertTrajectories(buffer, max_start_epoch=config.max_start_epoch, expert_epochs=2)
    return mtt.TrajectoryMatching(tiny, 2, generator=torch.Generator().manual_seed(0), config=config, sampler=sampler)


def test_normalised_loss_matches_a_hand_computation(tiny, buffer):
    """N = 2 plain SGD steps of an ordinary nn.Module (its own parameters, autograd by hand), then the ratio."""
    m = _distiller(tiny, buffer, syn_steps=2)
    start, target = buffer.trajectories[0][0], buffer.trajectories[0][2]
    loss = m.match(start, target)

    net = buffer.network(tiny.info, "cpu")
    torch.nn.utils.vector_to_parameters(start.clone(), net.parameters())
    lr = 0.01
    for _ in range(2):
        ce = F.cross_entropy(net(m.images.detach()), m.labels)
        grads = torch.autograd.grad(ce, list(net.parameters()))
        with torch.no_grad():
            for p, g in zip(net.parameters(), grads):
                p.sub_(lr * g)
    theta = torch.nn.utils.parameters_to_vector(net.parameters()).detach()
    expected = ((theta - target) ** 2).sum() / ((start - target) ** 2).sum()
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    assert m.images.grad is not None and m.syn_lr.grad is not None


def test_identical_start_and_target_is_a_clear_error():
    v = torch.ones(5)
    with pytest.raises(ValueError, match="identical.*not copies"):
        mtt.normalised_distance(v, v, v.clone())


def _loss64(student, start, target, images, labels, lr, steps=3):
    theta = mtt.student_trajectory(student, start, images, labels, lr, [None] * steps)
    return mtt.normalised_distance(theta, start, target)


def test_learned_lr_and_image_gradients_match_finite_differences(tiny, buffer):
    net = buffer.network(tiny.info, "cpu").double()
    student = mtt.FunctionalStudent(net)
    start, target = buffer.trajectories[1][0].double(), buffer.trajectories[1][2].double()
    images = tiny.images[::10][:10].double().clone().requires_grad_(True)  # 10 images
    labels = tiny.labels[::10][:10]
    lr = torch.tensor(0.05, dtype=torch.float64, requires_grad=True)
    loss = _loss64(student, start, target, images, labels, lr)
    g_lr, g_img = torch.autograd.grad(loss, (lr, images))
    h = 1e-6
    images, lr = images.detach(), lr.detach()  # the inner steps still differentiate w.r.t. θ
    up = _loss64(student, start, target, images, labels, lr + h)
    down = _loss64(student, start, target, images, labels, lr - h)
    assert float(g_lr) == pytest.approx(float((up - down).detach() / (2 * h)), rel=1e-5)
    direction = torch.randn(images.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    up = _loss64(student, start, target, images + h * direction, labels, lr)
    down = _loss64(student, start, target, images - h * direction, labels, lr)
    assert float((g_img * direction).sum()) == pytest.approx(float((up - down).detach() / (2 * h)), rel=1e-5)


def test_the_learned_lr_travels_with_the_set_into_evaluation(tiny, buffer, mnist, tmp_path):
    syn = mtt.distill(
        tiny, 1, generator=torch.Generator().manual_seed(0), model=buffer, steps=3, syn_steps=2, expert_epochs=2,
        max_start_epoch=1, lr_img=10.0, lr_lr=1e-3,
    )  # fmt: skip
    assert syn.lr is not None and syn.lr != 0.01, "α is learned"
    assert syn.lr == syn.meta["learned_lr"] == syn.meta["history"]["syn_lr"][-1]
    result = training.evaluate_set(
        syn, mnist[1].subset(range(200)), epochs=2, num_models=1, model=samplers.FreshInit("convnet", width=8)
    )
    assert result.settings["lr"] == syn.lr
    assert type(syn).load(syn.save(tmp_path / "mtt.pt")).lr == syn.lr, "saved and loaded with the set"


def test_minibatches_cover_the_set_and_whole_set_uses_no_draws(tiny, buffer):
    m = _distiller(tiny, buffer, syn_steps=5, batch_syn=8)
    batches = m.batches()
    assert len(batches) == 5 and [len(b) for b in batches[:2]] == [8, 8]
    assert sorted(torch.cat(batches[:2]).tolist()) != list(range(16))  # a random permutation, not the order
    assert len(set(torch.cat(batches[:2] + [batches[2][:4]]).tolist())) == 20, "one permutation before the next"
    whole = _distiller(tiny, buffer, syn_steps=3)
    state = whole.generator.get_state()
    assert whole.batches() == [None, None, None] and torch.equal(whole.generator.get_state(), state)


def test_bad_input_is_refused_with_a_clear_error(tiny, buffer, mnist):
    kw = dict(generator=torch.Generator().manual_seed(0), steps=1, syn_steps=2)
    with pytest.raises(ValueError, match=r"expert_epochs=5 is beyond the 3-epoch trajectories"):
        mtt.distill(tiny, 1, model=buffer, expert_epochs=5, max_start_epoch=1, **kw)
    with pytest.raises(ValueError, match=r"max_start_epoch=25 is beyond the buffer.*1..1"):
        mtt.distill(tiny, 1, model=buffer, expert_epochs=3, max_start_epoch=25, **kw)
    with pytest.raises(TypeError, match="needs expert trajectories"):
        mtt.distill(tiny, 1, model="convnet", **kw)
    with pytest.raises(TypeError, match="needs expert trajectories"):
        mtt.distill(tiny, 1, **kw)
    other = mnist[0].balanced_subset(20, torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match="trained on mnist.*not on this mnist set"):
        mtt.distill(other, 1, model=buffer, expert_epochs=2, max_start_epoch=1, **kw)
    for bad, match in (
        ({"syn_steps": 0}, "syn_steps"),
        ({"lr_img": -1.0}, "lr_img"),
        ({"batch_syn": 0}, "batch_syn"),
        ({"init": "zeros"}, "zeros"),
    ):
        with pytest.raises(ValueError, match=match):
            mtt.Config(**bad)


def test_cifar_whitened_end_to_end(tmp_path, fake_cifar):
    """CIFAR by parameter with ZCA, as the paper: whitened data, experts on it, MTT from them; a buffer of the raw
    data is refused for the whitened set (a buffer belongs to its data)."""
    fake_cifar(tmp_path, "cifar10", 100, 20)
    raw, raw_test = data.load("cifar10", root=tmp_path, download=False)
    train, _ = data.whiten(raw, raw_test)
    spec = dict(model=samplers.FreshInit("convnet", width=8), epochs=2, batch_size=32, root=tmp_path / "experts")
    buffer = trajectories.train_experts(train, 1, **spec)
    syn = mtt.distill(
        train, 1, generator=torch.Generator().manual_seed(0), model=buffer, steps=2, syn_steps=2, expert_epochs=1,
        max_start_epoch=1, lr_img=10.0,
    )  # fmt: skip
    assert syn.images.shape == (10, 3, 32, 32) and syn.meta["zca"] == train.zca.fingerprint()
    assert syn.meta["strategy"] == "color_crop_cutout_flip_scale_rotate"
    shown = train.denormalise(syn.images)  # undoes the whitening, then the normalisation
    assert shown.shape == syn.images.shape and 0 <= float(shown.min()) and float(shown.max()) <= 1
    raw_buffer = trajectories.train_experts(raw, 1, **spec)
    with pytest.raises(ValueError, match="trained on cifar10.*not on this cifar10 set"):
        mtt.distill(
            train, 1, generator=torch.Generator(), model=raw_buffer, steps=1, expert_epochs=1, max_start_epoch=1
        )
