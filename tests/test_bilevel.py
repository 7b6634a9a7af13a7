"""Method "dd" (Wang et al. 2018): the unrolled hypergradient, the learned step sizes, the interface."""

import math

import pytest
import torch
import torch.nn.functional as F

from course_utils import methods
from course_utils.methods import bilevel
from course_utils.nets import samplers


def _linear_problem():
    """A tiny linear-regression unroll in float64: 4 synthetic points in 2 groups, 8 real points, T = 3."""
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Linear(3, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, 3, generator=g, dtype=torch.float64))
    images = torch.randn(4, 3, generator=g, dtype=torch.float64)
    targets = torch.randn(4, 1, generator=g, dtype=torch.float64)
    real_x = torch.randn(8, 3, generator=g, dtype=torch.float64)
    real_y = real_x @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=torch.float64)
    rho = torch.tensor([0.1, -0.5, 0.3], dtype=torch.float64)
    groups = [torch.tensor([0, 1]), torch.tensor([2, 3])]
    return model, images, targets, real_x, real_y, rho, groups


def _outer(model, images, targets, real_x, real_y, rho, groups):
    loss, _ = bilevel.unrolled_loss(
        model, images, targets, F.softplus(rho), groups, real_x, real_y, inner_loss=F.mse_loss, outer_loss=F.mse_loss
    )
    return loss


def test_unroll_matches_hand_written_sgd_on_linear_regression():
    model, images, targets, real_x, real_y, rho, groups = _linear_problem()
    w = model.weight.detach().t().clone()
    for t, eta in enumerate(F.softplus(rho)):
        x, y = images[groups[t % 2]], targets[groups[t % 2]]
        w = w - eta * (2 / len(x)) * x.t() @ (x @ w - y)  # ∇_w mean((xw − y)²)
    expected = ((real_x @ w - real_y) ** 2).mean()
    assert torch.allclose(_outer(model, images, targets, real_x, real_y, rho, groups), expected, rtol=1e-12)


def test_unrolled_hypergradient_of_a_tiny_linear_model_matches_finite_differences():
    model, images, targets, real_x, real_y, rho, groups = _linear_problem()
    images.requires_grad_(True)
    rho.requires_grad_(True)
    grad_x, grad_rho = torch.autograd.grad(_outer(model, images, targets, real_x, real_y, rho, groups), (images, rho))
    h = 1e-6
    base = {"images": images.detach(), "rho": rho.detach()}
    for name, grad in (("images", grad_x), ("rho", grad_rho)):
        fd = torch.zeros_like(grad)
        for i in range(grad.numel()):
            shifted = []
            for sign in (1, -1):
                args = {k: v.clone() for k, v in base.items()}
                args[name].view(-1)[i] += sign * h
                shifted.append(_outer(model, args["images"], targets, real_x, real_y, args["rho"], groups))
            fd.view(-1)[i] = (shifted[0] - shifted[1]).detach() / (2 * h)
        assert torch.allclose(grad, fd, rtol=1e-6, atol=1e-9), (grad, fd)
        assert grad.abs().min() > 0  # every coordinate is used by the unroll
    assert model.weight.grad is None  # θ₀ is copied: no gradient reaches the initial network


def test_images_and_step_sizes_receive_gradients(blob_set):
    train = blob_set(3)
    net = samplers.build_network("lenet", train.info, 0)
    images = torch.randn(20, 1, 28, 28, generator=torch.Generator().manual_seed(1), requires_grad=True)
    labels = torch.arange(10).repeat_interleave(2)
    rho = torch.full((4,), bilevel.softplus_inverse(0.05), requires_grad=True)
    groups = bilevel.step_groups(10, 2, 2)
    loss, inner = bilevel.unrolled_loss(net, images, labels, F.softplus(rho), groups, train.images, train.labels)
    loss.backward()
    assert inner.shape == (4,) and torch.isfinite(inner).all()
    assert images.grad is not None and (images.grad.flatten(1).abs().sum(1) > 0).all()
    assert rho.grad is not None and torch.isfinite(rho.grad).all() and (rho.grad != 0).all()


def test_step_groups_cycle_through_the_set_class_by_class():
    groups = bilevel.step_groups(num_classes=3, ipc=4, distill_steps=2)
    assert [g.tolist() for g in groups] == [[0, 1, 4, 5, 8, 9], [2, 3, 6, 7, 10, 11]]
    with pytest.raises(ValueError, match="distill_steps=3 must divide ipc=4; valid: 1, 2, 4"):
        bilevel.step_groups(3, 4, 3)


def test_step_sizes_stay_positive_even_when_pushed_down(blob_set):
    for eta in (1e-4, 0.02, 3.0):
        assert math.isclose(
            F.softplus(torch.tensor(bilevel.softplus_inverse(eta), dtype=torch.float64)).item(), eta, rel_tol=1e-9
        )
    train = blob_set(4)
    # a huge Adam step on ρ drives some ρ_t far negative; softplus keeps every η_t > 0
    syn = methods.distill(
        "dd",
        train,
        1,
        generator=torch.Generator().manual_seed(0),
        model=_fixed(train),
        steps=3,
        step_lr=20.0,
        batch_size=16,
        distill_epochs=2,
    )
    assert len(syn.meta["step_sizes"]) == 2 and all(s > 0 for s in syn.meta["step_sizes"])
    assert syn.lr is None  # a schedule, not a learning rate for the protocol


def _fixed(train, seed=0):
    return samplers.FixedInit.draw("lenet", train.info, torch.Generator().manual_seed(seed), weight_init="xavier")


def _run(train, seed, init="random", **kwargs):
    kwargs = {"steps": 2, "batch_size": 16, "distill_epochs": 1, **kwargs}
    if init == "fixed":
        kwargs.setdefault("model", _fixed(train))
    return methods.distill("dd", train, 2, generator=torch.Generator().manual_seed(seed), **kwargs)


@pytest.mark.parametrize("init", ["fixed", "random"])
def test_fixed_and_random_variants(blob_set, init):
    train = blob_set(4)
    a, b, c = _run(train, 0, init=init), _run(train, 0, init=init), _run(train, 1, init=init)
    assert a.images.shape == (20, 1, 28, 28) and a.labels.tolist() == [k for k in range(10) for _ in range(2)]
    assert a.ipc == 2 and a.meta["method"] == "dd" and a.meta["theta0"] == init and a.meta["T"] == 2
    assert torch.equal(a.images, b.images) and a.meta["step_sizes"] == b.meta["step_sizes"]
    assert a.meta["history"] == b.meta["history"]
    assert not torch.equal(a.images, c.images)
    assert ("fixed_init" in a.meta) == (init == "fixed")
    assert not a.images.requires_grad


def test_errors_name_the_bad_value(blob_set):
    train = blob_set(2)
    g = torch.Generator().manual_seed(0)
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match=r"ipc \(images per class\) must be an integer >= 1"):
            methods.distill("dd", train, bad, generator=g)
    with pytest.raises(ValueError, match="init='fixed' is not valid; valid: real, noise"):
        methods.distill("dd", train, 1, generator=g, init="fixed")  # init is the images'; a fixed θ0 is model=FixedInit
    with pytest.raises(ValueError, match="init='zeros'.*valid: real, noise"):
        methods.distill("dd", train, 1, generator=g, init="zeros")
    with pytest.raises(ValueError, match="weight_init='kaiming'.*valid: default, xavier"):
        methods.distill("dd", train, 1, generator=g, weight_init="kaiming")
    with pytest.raises(ValueError, match="distill_steps=2 must divide ipc=3"):
        methods.distill("dd", blob_set(3), 3, generator=g, distill_steps=2)
    with pytest.raises(ValueError, match="ipc=3 is larger than the smallest class"):
        methods.distill("dd", train, 3, generator=g, init="real")
    with pytest.raises(ValueError, match="lr_init must be a finite number > 0, got -0.1"):
        methods.distill("dd", train, 1, generator=g, lr_init=-0.1)
    with pytest.raises(ValueError, match="model='lenet9' is not valid"):
        methods.distill("dd", train, 1, generator=g, model="lenet9")
    with pytest.raises(TypeError):
        methods.distill("dd", train, 1, generator=g, lr=0.1)  # unknown hyperparameter


def test_divergence_names_the_step_and_the_cause(blob_set):
    train = blob_set(2)
    with pytest.raises(FloatingPointError, match=r"dd diverged at step 1/5.*step sizes grew too large") as err:
        methods.distill(
            "dd",
            train,
            1,
            generator=torch.Generator().manual_seed(0),
            model=_fixed(train),
            steps=5,
            lr_init=1e30,
            batch_size=8,
        )
    assert err.value.step == 1 and torch.isfinite(err.value.synthetic.images).all()  # the set before the bad step


def test_resume_keeps_the_fixed_theta0_that_was_asked_for(blob_set, tmp_path):
    """A checkpoint of a run with another θ0 is refused (it used to replace the θ0 passed in silently)."""
    train = blob_set(3)
    ckpt = tmp_path / "dd.pt"
    _run(train, 0, init="fixed", model=_fixed(train, 1), checkpoint=ckpt)
    with pytest.raises(ValueError, match="written by another run.*model.weights"):
        _run(train, 0, init="fixed", model=_fixed(train, 2), checkpoint=ckpt)
    again = _run(train, 0, init="fixed", model=_fixed(train, 1), checkpoint=ckpt)
    assert all(torch.equal(v, _fixed(train, 1).state_dict()[k]) for k, v in again.meta["fixed_init"].items())


def test_replaying_the_schedule_reproduces_the_unroll(blob_set):
    train = blob_set(3)
    syn = _run(train, 0, init="fixed", distill_epochs=2)
    net = samplers.build_network("lenet", train.info, 0)
    net.load_state_dict(syn.meta["fixed_init"])
    groups = bilevel.step_groups(10, 2, syn.meta["groups"])
    eta = torch.tensor(syn.meta["step_sizes"])
    unrolled, _ = bilevel.unrolled_loss(net, syn.images, syn.labels, eta, groups, train.images, train.labels)
    bilevel.train_with_schedule(net, syn.images, syn.labels, syn.meta["step_sizes"], groups)
    with torch.no_grad():
        replayed = F.cross_entropy(net(train.images), train.labels)
    assert torch.allclose(unrolled, replayed, rtol=1e-5)
    res = bilevel.evaluate_schedule(
        syn.images,
        syn.labels,
        train,
        step_sizes=syn.meta["step_sizes"],
        distill_steps=syn.meta["groups"],
        fixed_init=syn.meta["fixed_init"],
    )
    assert len(res.accuracies) == 1 and res.epochs == 4 and res.settings["fixed_init"]


def test_unroll_cost_grows_linearly_with_T(blob_set):
    train = blob_set(3)
    costs = bilevel.measure_unroll_cost(
        train, [1, 2, 3, 5], generator=torch.Generator().manual_seed(0), batch_size=8, repeats=1
    )
    saved = [c.saved_bytes for c in costs]
    per_step = saved[1] - saved[0]
    assert per_step > 0 and all(c.seconds > 0 and c.peak_cuda_bytes is None for c in costs)
    for c, s in zip(costs, saved):
        assert s == pytest.approx(saved[0] + (c.T - 1) * per_step, rel=0.01)


def test_a_module_passed_as_model_is_the_fixed_initialisation(blob_set):
    train = blob_set(2)
    net = samplers.build_network("lenet", train.info, 7)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    syn = _run(train, 0, model=net)
    assert syn.meta["theta0"] == "fixed" and syn.meta["model"]["sampler"] == "fixed"
    assert all(torch.equal(syn.meta["fixed_init"][k], v) for k, v in before.items())
    assert all(torch.equal(net.state_dict()[k], v) for k, v in before.items())  # the caller's module is untouched
    rand = _run(train, 0, model="lenet")  # a name: fresh weights each step
    assert rand.meta["model"]["model"] == "lenet" and "fixed_init" not in rand.meta


def test_weight_init_xavier_is_the_references_and_default_is_pytorchs(blob_set):
    info = blob_set(1).info
    new_xavier = samplers.FreshInit("lenet", weight_init="xavier").bind(info, "cpu").build
    new_default = samplers.FreshInit("lenet").bind(info, "cpu").build
    a, b, c = new_xavier(3), new_xavier(3), new_xavier(4)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))  # same seed, same θ0
    assert not torch.equal(a.classifier.weight, c.classifier.weight)
    for layer in [m for m in a.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]:
        w = layer.weight
        fan_in, fan_out = w[0].numel(), w.shape[0] * w[0, 0].numel()
        assert torch.count_nonzero(layer.bias) == 0
        assert w.std().item() == pytest.approx(math.sqrt(2 / (fan_in + fan_out)), rel=0.15)
    default = samplers.build_network("lenet", info, 3)
    assert all(torch.equal(p, q) for p, q in zip(new_default(3).parameters(), default.parameters()))
    # the choice is part of the run's settings (and of its checkpoint's identity)
    assert _run(blob_set(2), 0, weight_init="default").meta["hparams"]["weight_init"] == "default"
