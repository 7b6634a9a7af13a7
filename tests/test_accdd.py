"""Acc-DD: the early-stage pool (from a buffer, reused, resumable), the three samplers, the network trained on real
data between matching steps, determinism, the last good set on divergence, and errors that name the bad value."""

from __future__ import annotations

import copy

import pytest
import torch

from course_utils import methods
from course_utils.methods import accdd, loop
from course_utils.nets import samplers, trajectories
from course_utils.records.synthetic import initial_images

TINY = samplers.FreshInit("convnet", width=8)
#: a few seconds per run: 2 outer steps of 3 matching steps, 2 network updates between them
SMALL = {"steps": 2, "outer_loop": 3, "inner_loop": 2, "batch_real": 8, "batch_net": 16}
POOL = {"model": samplers.FreshInit("convnet", width=8), "batch_size": 64}


@pytest.fixture(scope="module")
def tiny(mnist):
    train, _ = mnist
    return train.balanced_subset(20, torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def pool_root(tmp_path_factory):
    return tmp_path_factory.mktemp("pools")


@pytest.fixture(scope="module")
def pool(tiny, pool_root):
    return accdd.early_stage_pool(tiny, 2, 2, root=pool_root, **POOL)


def _run(train, model, seed=0, **extra):
    generator = torch.Generator().manual_seed(seed)
    return methods.distill("accdd", train, 1, generator=generator, model=model, **{**SMALL, **extra})


# ----------------------------------------------------------------------------------------------
# the pool
# ----------------------------------------------------------------------------------------------


def test_pool_from_buffer_holds_the_stored_snapshots(tiny, tmp_path):
    buffer = trajectories.train_experts(tiny, 2, root=tmp_path, epochs=2, **POOL)
    for epoch in (None, 1):
        pool = buffer.pool(epoch, magnitude=None).bind(tiny.info, "cpu")
        e = buffer.epochs if epoch is None else epoch
        for state, trajectory in zip(pool.states, buffer.trajectories):
            net = pool.model.build(0)
            net.load_state_dict(state)
            assert torch.equal(trajectories.flat_parameters(net), trajectory[e])
        assert pool.spec()["source"] == {"buffer": buffer.fingerprint(), "epoch": e, "networks": 2}
        assert pool.spec()["magnitude"] is None and pool.pretrain_seconds == pytest.approx(sum(buffer.seconds))
    # a draw is one of the stored networks, as it is without perturbation
    drawn = pool.sample(torch.Generator().manual_seed(0))
    flat = trajectories.flat_parameters(drawn)
    assert any(torch.equal(flat, t[1]) for t in buffer.trajectories)
    with pytest.raises(ValueError, match="epoch=3 is beyond the buffer's 2 epochs"):
        buffer.pool(3)


def test_pool_is_reused_not_retrained(tiny, pool, pool_root, monkeypatch):
    first, seconds = pool
    assert seconds > 0 and first.pretrain_seconds == seconds and len(first.states) == 2

    def no_training(*args, **kwargs):
        raise AssertionError("a stored pool must be loaded, not trained again")

    monkeypatch.setattr(trajectories, "train_epoch", no_training)
    again, seconds_again = accdd.early_stage_pool(tiny, 2, 2, root=pool_root, **POOL)
    assert again.spec() == first.spec() and seconds_again == seconds  # the seconds of the training that made them
    plain, _ = accdd.early_stage_pool(tiny, 2, 2, root=pool_root, perturb=False, **POOL)  # the same networks
    assert plain.spec()["weights"] == first.spec()["weights"] and plain.magnitude is None
    assert accdd.variant(plain) == "early_stage" and accdd.variant(first) == "early_stage_perturbed"


def test_pool_training_resumes_after_a_kill(tiny, pool, tmp_path):
    def kill(event):
        if (event.expert, event.epoch) == (1, 1):
            raise KeyboardInterrupt  # killed in the middle of the second network

    with pytest.raises(KeyboardInterrupt):
        accdd.early_stage_pool(tiny, 2, 2, root=tmp_path, callback=kill, **POOL)
    trained = []
    resumed, _ = accdd.early_stage_pool(
        tiny, 2, 2, root=tmp_path, callback=lambda e: trained.append((e.expert, e.epoch)), **POOL
    )
    assert trained == [(1, 2)], "only the unfinished network's last epoch is trained again"
    assert resumed.spec()["weights"] == pool[0].spec()["weights"], "bit-identical to an unbroken run"


# ----------------------------------------------------------------------------------------------
# the perturbation
# ----------------------------------------------------------------------------------------------


def test_a_drawn_network_is_a_pool_network_moved_by_rho_times_each_filter_norm(tiny, pool):
    pool_ = samplers.EarlyStagePool(pool[0].model, pool[0].states, magnitude=(0.05, 0.05), directions=1)
    pool_ = pool_.bind(tiny.info, "cpu")
    g = torch.Generator().manual_seed(3)
    replay = torch.Generator().set_state(g.get_state())
    net = pool_.sample(g)
    k = int(torch.randint(len(pool_.states), (1,), generator=replay))
    base = pool_.states[k]
    for name, p in net.named_parameters():
        if p.dim() == 1:
            assert torch.equal(p, base[name]), name  # biases and norm parameters untouched
        else:
            step = (p.detach() - base[name]).view(len(p), -1).norm(dim=1)
            torch.testing.assert_close(step, 0.05 * base[name].view(len(p), -1).norm(dim=1), rtol=1e-4, atol=1e-7)


# ----------------------------------------------------------------------------------------------
# the method
# ----------------------------------------------------------------------------------------------


def test_the_three_variants_run_and_say_which_they_are(tiny, pool):
    pool_, seconds = pool
    for model, name, pretrain in (
        (TINY, "fresh", 0.0),
        (pool_.without_perturbation(), "early_stage", seconds),
        (pool_, "early_stage_perturbed", seconds),
    ):
        syn = _run(tiny, model)
        assert syn.images.shape == (10, 1, 28, 28) and torch.isfinite(syn.images).all()
        assert syn.meta["variant"] == name and syn.meta["pretrain_seconds"] == pretrain
        assert syn.meta["model"] == model.spec() and syn.meta["outer_loop"] == 3 and syn.meta["inner_loop"] == 2
        assert len(syn.meta["history"]["net_loss_first"]) == 2


def test_default_model_builds_the_pool_under_the_output_folder_once(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(tmp_path))
    settings = {"pool_networks": 1, "pool_epochs": 1, "steps": 1, "outer_loop": 2}
    a = methods.distill("accdd", tiny, 1, generator=torch.Generator().manual_seed(0), batch_real=4, **settings)
    assert a.meta["variant"] == "early_stage_perturbed" and a.meta["pretrain_seconds"] > 0
    assert a.meta["model"]["model"]["model"] == "convnet" and a.meta["model"]["states"] == 1
    assert len(list((tmp_path / "early_stage_pools").glob("mnist_convnet_*/expert_000.pt"))) == 1
    monkeypatch.setattr(trajectories, "train_epoch", lambda *a, **k: pytest.fail("the pool must be reused"))
    b = methods.distill("accdd", tiny, 1, generator=torch.Generator().manual_seed(0), batch_real=4, **settings)
    assert torch.equal(a.images, b.images) and a.meta["pretrain_seconds"] == b.meta["pretrain_seconds"]


def test_a_buffer_as_model_is_perturbed_with_the_configs_settings(tiny, tmp_path, mnist):
    buffer = trajectories.train_experts(tiny, 1, root=tmp_path, epochs=1, **POOL)
    syn = _run(tiny, buffer, magnitude=(0.02, 0.03), directions=1)
    assert syn.meta["variant"] == "early_stage_perturbed" and syn.meta["model"]["magnitude"] == [0.02, 0.03]
    assert _run(tiny, buffer, perturb=False).meta["variant"] == "early_stage"
    other = mnist[0].balanced_subset(20, torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match="these experts were trained on"):
        _run(other, buffer)
    with pytest.raises(TypeError, match="pass the ExpertBuffer itself"):
        _run(tiny, trajectories.ExpertTrajectories(buffer, max_start_epoch=1, expert_epochs=1))


def test_same_seed_same_set_bit_for_bit(tiny, pool):
    a, b, c = _run(tiny, pool[0]), _run(tiny, pool[0]), _run(tiny, pool[0], seed=1)
    assert torch.equal(a.images, b.images) and a.meta["history"] == b.meta["history"]
    assert not torch.equal(a.images, c.images)


def test_the_network_trains_on_real_data_between_matching_steps(tiny, monkeypatch):
    fixed_x, fixed_y = tiny.images[::4], tiny.labels[::4]
    seen = []  # at every matching step: the network's weights and its loss on a fixed real batch
    match = accdd.ModelAugmentedMatching.match

    def spy(self, net):
        with torch.no_grad():
            seen.append(
                (trajectories.flat_parameters(net), float(torch.nn.functional.cross_entropy(net(fixed_x), fixed_y)))
            )
        return match(self, net)

    monkeypatch.setattr(accdd.ModelAugmentedMatching, "match", spy)
    syn = methods.distill(
        "accdd",
        tiny,
        1,
        generator=torch.Generator().manual_seed(0),
        model=TINY,
        steps=1,
        outer_loop=6,
        inner_loop=10,
        batch_net=32,
        lr_net=0.05,
        cutmix=0.0,
        strategy="none",
        batch_real=8,
    )
    assert len(seen) == 6
    assert all(not torch.equal(p, q) for (p, _), (q, _) in zip(seen, seen[1:])), "trained between matching steps"
    assert seen[-1][1] < seen[0][1] - 0.2, f"the real-data loss falls: {[round(loss, 3) for _, loss in seen]}"
    history = syn.meta["history"]
    assert history["net_loss_last"][0] < history["net_loss_first"][0]


def test_divergence_keeps_the_set_from_before_the_step(tiny):
    with pytest.raises(loop.DivergenceError, match="accdd diverged at step 1/2.*matching step 2/3") as err:
        _run(tiny, TINY, lr_img=1e30)
    start = initial_images(tiny, 1, "real", torch.Generator().manual_seed(0))  # what the run started from
    assert torch.equal(err.value.synthetic.images, start), "the images after step 0, not a half-done step 1"


def test_cutmix_pastes_a_box_and_reports_the_kept_share():
    x = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 8, 8).contiguous()
    mixed, perm, share = accdd.cutmix(x, torch.Generator().manual_seed(0))
    for i in range(4):
        own = (mixed[i] == x[i]).float().mean().item()
        assert own == pytest.approx(share) or perm[i] == i
    again = accdd.cutmix(x, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], mixed) and torch.equal(again[1], perm)


def test_network_updates_swap_cutout_for_cutmix():
    config = accdd.Config()
    assert config.augmentation().strategy == "color_crop_cutout"
    assert config.network_augmentation().strategy == "color_crop"
    assert accdd.Config(cutmix=0.0).network_augmentation().strategy == "color_crop_cutout"
    assert accdd.Config(strategy="none").network_augmentation() is None


@pytest.mark.parametrize(
    "hparams, message",
    [
        ({"steps": -1}, "steps must be an integer >= 1, got -1"),
        ({"outer_loop": 0}, "outer_loop must be an integer >= 1, got 0"),
        ({"inner_loop": -2}, "inner_loop must be an integer >= 0, got -2"),
        ({"magnitude": (0.09, 0.01)}, r"magnitude must be \(low, high\) with 0 <= low <= high, got \(0.09, 0.01\)"),
        ({"magnitude": (-0.1, 0.1)}, r"magnitude must be .*got \(-0.1, 0.1\)"),
        ({"directions": 0}, "directions must be an integer >= 1, got 0"),
        ({"cutmix": 1.5}, r"cutmix must be in \[0, 1\], got 1.5"),
        ({"distance": "l2"}, "unknown gradient distance 'l2'"),
        ({"perturb": "yes"}, "perturb must be True or False, got 'yes'"),
    ],
)
def test_bad_hyperparameters_name_the_value(tiny, hparams, message):
    with pytest.raises(ValueError, match=message):
        _run(tiny, TINY, **hparams)


def test_bad_models_and_pools_name_the_value(tiny, pool, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="model='resnet99' is not valid"):
        _run(tiny, "resnet99")
    with pytest.raises(ValueError, match=r"magnitude must be \(low, high\).*got \(0.2, 0.1\)"):
        samplers.EarlyStagePool("convnet", pool[0].states, magnitude=(0.2, 0.1))
    with pytest.raises(ValueError, match="directions must be an integer >= 1, got 0"):
        samplers.EarlyStagePool("convnet", pool[0].states, directions=0)
    monkeypatch.setattr(trajectories, "train_epoch", lambda *a, **k: pytest.fail("checked before any training"))
    with pytest.raises(ValueError, match=r"magnitude must be .*got \(0.2, 0.1\)"):
        accdd.early_stage_pool(tiny, 2, 1, root=tmp_path, magnitude=(0.2, 0.1))
    with pytest.raises(ValueError, match="networks must be an integer >= 1, got 0"):
        accdd.early_stage_pool(tiny, 0, 1, root=tmp_path)
    with pytest.raises(ValueError, match="model='resnet99' is not valid"):
        accdd.early_stage_pool(tiny, 1, 1, root=tmp_path, model="resnet99")
    with pytest.raises(ValueError, match="ipc=21 is larger than the smallest class"):
        methods.distill("accdd", tiny, 21, generator=torch.Generator(), steps=1)  # before a default pool is trained


# ----------------------------------------------------------------------------------------------
# gradient diversity: what model augmentation is meant to provide
# ----------------------------------------------------------------------------------------------


def _class_batch(train, n=6, seed=0):
    idx = train.sample_per_class(n, torch.Generator().manual_seed(seed))
    return train.images[idx], train.labels[idx]


def test_gradient_cosines_are_one_for_the_same_network_and_symmetric(tiny, pool):
    images, labels = _class_batch(tiny)
    net = pool[0].without_perturbation().bind(tiny.info, "cpu").sample(torch.Generator().manual_seed(0))
    same = accdd.class_gradient_cosines(net, net, images, labels)
    assert same.shape == (tiny.num_classes,) and torch.allclose(same, torch.ones_like(same), atol=1e-5)
    other = TINY.bind(tiny.info, "cpu").sample(torch.Generator().manual_seed(1))
    ab = accdd.class_gradient_cosines(net, other, images, labels)
    assert torch.allclose(ab, accdd.class_gradient_cosines(other, net, images, labels), atol=1e-6)
    assert bool((ab.abs() <= 1 + 1e-6).all()) and bool((ab < 0.999).all())  # a different network: other targets


def test_gradient_cosines_match_one_class_at_a_time_by_hand(tiny):
    images, labels = _class_batch(tiny, n=4)
    a, b = (TINY.bind(tiny.info, "cpu").sample(torch.Generator().manual_seed(s)) for s in (2, 3))
    got = accdd.class_gradient_cosines(a, b, images, labels)
    for c in range(tiny.num_classes):
        grads = []
        for net in (a, b):
            loss = torch.nn.functional.cross_entropy(net(images[c]), labels[c])
            grads.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(net.parameters()))]))
        want = torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0)
        assert torch.allclose(got[c], want, atol=1e-5), c


def test_a_larger_perturbation_moves_the_gradients_further(tiny, pool):
    images, labels = _class_batch(tiny)
    base = pool[0].without_perturbation().bind(tiny.info, "cpu").sample(torch.Generator().manual_seed(0))
    mean_cos = []
    for rho in (0.01, 0.3, 1.0):
        moved = copy.deepcopy(base)
        samplers.perturb(moved, torch.Generator().manual_seed(5), (rho, rho), 1)
        mean_cos.append(float(accdd.class_gradient_cosines(base, moved, images, labels).mean()))
    assert mean_cos[0] > mean_cos[1] > mean_cos[2], mean_cos


def test_gradient_cosines_need_one_architecture(tiny):
    images, labels = _class_batch(tiny)
    a = TINY.bind(tiny.info, "cpu").sample(torch.Generator().manual_seed(0))
    b = samplers.FreshInit("convnet", width=16).bind(tiny.info, "cpu").sample(torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="must share an architecture"):
        accdd.class_gradient_cosines(a, b, images, labels)
