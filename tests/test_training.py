"""The evaluation protocol: N accuracies, reproducibility, schedule, errors."""

import pytest
import torch

from course_utils.core import repro
from course_utils.evaluation import training
from course_utils.nets import samplers
from course_utils.records.synthetic import SyntheticSet

SMALL = {"width": 8, "depth": 2}
NET = samplers.FreshInit("convnet", **SMALL)


def test_evaluate_returns_one_accuracy_per_model(blob_set):
    train, test = blob_set(5), blob_set(10, seed=0)
    result = training.evaluate(train.images, train.labels, test, model=NET, num_models=3, epochs=3, seed=0)
    assert len(result.accuracies) == 3 and len(result.train_seconds) == 3
    assert all(0 <= a <= 100 for a in result.accuracies)
    assert result.std >= 0 and min(result.accuracies) <= result.mean <= max(result.accuracies)
    assert result.seconds > 0 and result.num_images == 50 and result.epochs == 3
    assert "±" in str(result) and result.as_dict()["mean"] == result.mean
    assert result.protocol == "plain (3 epochs, none)"
    one = training.evaluate(train.images, train.labels, test, model=NET, num_models=1, epochs=1)
    assert one.std is None and "±" not in str(one)  # one network: no spread to report


def test_training_learns_a_separable_set(blob_set):
    train = blob_set(10)
    result = training.evaluate(train.images, train.labels, train, model=NET, num_models=1, epochs=15)
    assert result.mean > 90  # prototypes + noise: trivially learnable, so the loop really trains


def test_same_seed_bit_identical_different_seed_differs(blob_set):
    train, test = blob_set(5), blob_set(10, seed=1)
    run = lambda seed: training.evaluate(
        train.images, train.labels, test, model=NET, num_models=2, epochs=2, seed=seed, protocol="dsa"
    )
    a, b, c = run(0), run(0), run(1)
    assert a.accuracies == b.accuracies
    assert a.accuracies != c.accuracies or a.train_seconds != c.train_seconds


def test_model_init_is_reproducible_and_leaves_global_rng_alone(blob_set):
    info = blob_set(1).info
    state = torch.get_rng_state()
    m1, m2 = samplers.build_network("convnet", info, 7), samplers.build_network("convnet", info, 7)
    assert torch.equal(state, torch.get_rng_state())
    assert all(torch.equal(p, q) for p, q in zip(m1.parameters(), m2.parameters()))


def test_evaluation_draws_come_from_cpu_run_generators(blob_set, monkeypatch):
    """Every draw of an evaluation comes from a CPU generator of the one derivation scheme (``repro.run_generator``),
    so a GPU run makes the draws a CPU run makes: network i's batch order is the permutation stream of
    ``run_generator(seed, "evaluate", i, "data")``, whatever the device (the GPU check compares the two devices)."""
    made = []
    real = training.run_generator

    def spy(*parts):
        made.append(real(*parts))
        return made[-1]

    monkeypatch.setattr(training, "run_generator", spy)
    train = blob_set(3)  # 30 images: one batch per epoch
    order = []
    training.evaluate(
        train.images,
        train.labels,
        train,
        model=NET,
        num_models=2,
        epochs=2,
        seed=5,
        on_batch=lambda idx, *_: order.append(idx.cpu()),
    )
    assert made and all(g.device.type == "cpu" for g in made)
    for i in range(2):
        g = repro.run_generator(5, "evaluate", i, "data")
        expected = [torch.randperm(30, generator=g) for _ in range(2)]
        assert all(torch.equal(a, b) for a, b in zip(order[2 * i : 2 * i + 2], expected))


def test_lr_decays_tenfold_at_half_the_epochs(blob_set, monkeypatch):
    seen = []
    real_step = torch.optim.SGD.step

    def spy(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", spy)
    train = blob_set(2)  # 20 images: one batch per epoch
    net = samplers.build_network("convnet", train.info, 0, **SMALL)
    training.train(net, train.images, train.labels, epochs=4, generator=torch.Generator().manual_seed(0))
    assert seen == pytest.approx([0.01, 0.01, 0.001, 0.001])


def test_divergence_names_the_epoch_and_cause(blob_set):
    train = blob_set(2)
    bad = train.images.clone()
    bad[0] = float("nan")
    net = samplers.build_network("convnet", train.info, 0, **SMALL)
    with pytest.raises(FloatingPointError, match="epoch 1/2.*learning rate"):
        training.train(net, bad, train.labels, epochs=2, generator=torch.Generator().manual_seed(0))


def test_synthetic_set_trains_with_its_learned_lr(blob_set, monkeypatch):
    lrs = []
    real_train = training.train
    monkeypatch.setattr(training, "train", lambda *a, **k: lrs.append(k["lr"]) or real_train(*a, **k))
    train = blob_set(2)
    syn = SyntheticSet(train.images, train.labels, lr=0.005)
    training.evaluate_set(syn, train, model=NET, num_models=1, epochs=1)
    assert lrs == [0.005]


def test_full_data_baseline_returns_the_trained_network(blob_set):
    train, test = blob_set(10), blob_set(5, seed=0)
    net, result = training.train_full(train, test, epochs=2, model=NET)
    assert isinstance(net, torch.nn.Module) and len(result.accuracies) == 1 and result.num_images == 100
    assert result.protocol == "plain (2 epochs, none)"


def test_bad_arguments_name_the_value(blob_set):
    train = blob_set(1)
    x, y = train.images, train.labels
    with pytest.raises(ValueError, match="num_models"):
        training.evaluate(x, y, train, num_models=0)
    with pytest.raises(ValueError, match="epochs must be an integer >= 1, got 0"):
        training.Protocol(epochs=0)
    with pytest.raises(ValueError, match="epochs must be an integer >= 1, got 0"):
        training.evaluate(x, y, train, epochs=0)  # used to report an untrained network's accuracy
    with pytest.raises(ValueError, match="model='convnett' is not valid; valid: convnet"):
        training.evaluate(x, y, train, model="convnett", epochs=1)
    with pytest.raises(TypeError, match="images must be a torch.Tensor, got ndarray.*torch.from_numpy"):
        training.evaluate(x.numpy(), y, train, epochs=1)
    with pytest.raises(ValueError, match=r"images are \(1, 32, 32\).*test images are \(1, 28, 28\)"):
        training.evaluate(torch.zeros(10, 1, 32, 32), y, train, epochs=1)
    with pytest.raises(ValueError, match="images must be N×C×H×W"):
        training.evaluate(x[0], y, train, epochs=1)
    with pytest.raises(ValueError, match="the set is empty"):
        training.evaluate(x[:0], y[:0], train, epochs=1)
    with pytest.raises(ValueError, match="labels must be 1-D with one class per image \\(10\\)"):
        training.evaluate(x, y[:5], train, epochs=1)
    with pytest.raises(ValueError, match="labels must lie in 0..9 for mnist, got values in 3..12"):
        training.evaluate(x, torch.arange(10) + 3, train, epochs=1)
    with pytest.raises(ValueError, match="integer class indices, got dtype torch.float32"):
        training.evaluate(x, y.float(), train, epochs=1)
    with pytest.raises(ValueError, match="protocol='dcc' is not valid; valid: plain, dc, dsa, paper"):
        training.evaluate(x, y, train, protocol="dcc")
    soft = torch.nn.functional.one_hot(y, 10).float()  # N×K soft labels (KIP's) are accepted
    assert len(training.evaluate(x, soft, train, epochs=1, num_models=1, model=NET).accuracies) == 1


def test_reference_schedule_trains_e_plus_one_epochs_and_restarts_the_optimiser(blob_set, monkeypatch):
    """The DC/DSA protocols follow evaluate_synset: E + 1 epochs, lr × 0.1 and a NEW optimiser after E//2 + 1."""
    from course_utils.evaluation import protocol

    seen = []
    real_step = torch.optim.SGD.step

    def spy(self, *args, **kwargs):
        seen.append((id(self), self.param_groups[0]["lr"]))
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", spy)
    proto = protocol.named("dc", "fashion_mnist", epochs=4)  # no augmentation off MNIST
    assert (proto.epochs, proto.decay_at, proto.augmentation, proto.label) == (5, 4, "none", "dc (4 epochs, none)")
    train = blob_set(2)
    net = samplers.build_network("convnet", train.info, 0, **SMALL)
    training.train(net, train.images, train.labels, generator=torch.Generator().manual_seed(0), protocol=proto)
    assert [lr for _, lr in seen] == pytest.approx([0.01, 0.01, 0.01, 0.01, 0.001])
    assert len({opt for opt, _ in seen[:4]}) == 1 and seen[4][0] != seen[3][0]  # a fresh optimiser after the decay
