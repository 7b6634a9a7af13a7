"""Network samplers: what ``model=`` means in every method."""

import pytest
import torch
import torch.nn as nn

from course_utils.data import datasets as data
from course_utils.nets import samplers
from course_utils.nets.models import get_model

INFO = data.dataset_info("mnist")


def test_fresh_init_draws_from_the_generator_only():
    sampler = samplers.FreshInit("convnet", width=8).bind(INFO, "cpu")
    state = torch.get_rng_state()
    a = sampler.sample(torch.Generator().manual_seed(0))
    b = sampler.sample(torch.Generator().manual_seed(0))
    c = sampler.sample(torch.Generator().manual_seed(1))
    assert torch.equal(state, torch.get_rng_state())
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.classifier.weight, c.classifier.weight)
    assert a.training and sampler.spec() == {
        "sampler": "fresh",
        "model": "convnet",
        "kwargs": {"width": 8},
        "weight_init": "default",
    }


def test_specs_name_callables_by_qualified_name_never_by_address():
    def make():
        return get_model("mlp", 1, 10, 28, width=8)

    spec = samplers.FreshInit(make).spec()
    assert spec["model"].startswith(
        "test_networks.test_specs_name_callables_by_qualified_name_never_by_address.<locals>.make#"
    )
    assert "0x" not in spec["model"]
    assert samplers.FreshInit(make).spec() == spec  # stable
    other = samplers.FreshInit(lambda: get_model("mlp", 1, 10, 28, width=16)).spec()
    assert other["model"] != spec["model"]


def test_fixed_init_is_a_copy_and_is_named_by_its_weights():
    net = get_model("lenet", 1, 10, 28)
    fixed = samplers.FixedInit(net).bind(INFO, "cpu")
    drawn = fixed.sample(torch.Generator())
    assert drawn is not net and all(torch.equal(p, q) for p, q in zip(drawn.parameters(), net.parameters()))
    with torch.no_grad():
        drawn.classifier.weight.add_(1.0)
    assert not torch.equal(fixed.sample(torch.Generator()).classifier.weight, drawn.classifier.weight)
    other = samplers.FixedInit(get_model("lenet", 1, 10, 28))
    assert fixed.spec()["weights"] != other.spec()["weights"] and fixed.spec()["model"] == "lenet"


def test_as_sampler_gives_model_one_meaning():
    assert isinstance(samplers.as_sampler(None, "convnet"), samplers.FreshInit)
    assert samplers.as_sampler("lenet", "convnet").spec()["model"] == "lenet"
    assert isinstance(samplers.as_sampler(get_model("mlp", 1, 10, 28), "convnet"), samplers.FixedInit)
    pool = samplers.ArchitecturePool(["convnet", "lenet"])
    assert samplers.as_sampler(pool, "convnet") is pool
    with pytest.raises(TypeError, match="model must be a model name"):
        samplers.as_sampler(3.5, "convnet")
    with pytest.raises(ValueError, match="model='resnet99' is not valid"):
        samplers.FreshInit("resnet99")
    with pytest.raises(ValueError, match="weight_init='he' is not valid; valid: default, xavier"):
        samplers.FreshInit("lenet", weight_init="he")
    with pytest.raises(RuntimeError, match="not bound"):
        samplers.FreshInit("lenet").sample(torch.Generator())


def test_architecture_pool_draws_families():
    pool = samplers.ArchitecturePool(["convnet", "lenet", samplers.FreshInit("mlp", width=8)]).bind(INFO, "cpu")
    g = torch.Generator().manual_seed(0)
    names = {type(pool.sample(g)).__name__ for _ in range(20)}
    assert names == {"ConvNet", "LeNet", "MLP"}
    assert [type(n).__name__ for n in pool.sample_all(g)] == ["ConvNet", "LeNet", "MLP"]
    assert [m["model"] for m in pool.spec()["members"]] == ["convnet", "lenet", "mlp"]


def test_perturbation_is_filter_normalised_and_leaves_biases_alone():
    net = get_model("convnet", 1, 10, 28, width=8)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rhos = samplers.perturb(net, torch.Generator().manual_seed(0), magnitude=(0.05, 0.05), directions=1)
    assert len(rhos) == 1 and abs(rhos[0]) == pytest.approx(0.05)
    for name, p in net.named_parameters():
        if p.dim() == 1:
            assert torch.equal(p, before[name]), name  # biases and norm parameters untouched
        else:
            d = (p.detach() - before[name]).view(len(p), -1) / rhos[0]
            w = before[name].view(len(p), -1)
            torch.testing.assert_close(d.norm(dim=1), w.norm(dim=1), rtol=1e-4, atol=1e-6)  # filter norms match


def test_every_direction_is_normalised_to_the_unperturbed_filters():
    net = get_model("convnet", 1, 10, 28, width=8)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    g = torch.Generator().manual_seed(1)
    replay = torch.Generator().set_state(g.get_state())
    rhos = samplers.perturb(net, g, magnitude=(0.01, 0.09), directions=2)
    assert len(rhos) == 2 and all(0.01 <= abs(r) <= 0.09 for r in rhos)
    torch.rand(2, 2, generator=replay)  # the step sizes and signs, then one direction per weight and step
    weights = [n for n, p in net.named_parameters() if p.dim() > 1]
    expected = {n: before[n].clone() for n in weights}
    for rho in rhos:
        for n in weights:
            w = before[n].view(len(before[n]), -1)
            d = torch.randn(before[n].shape, generator=replay).view(len(w), -1)
            d = d / d.norm(dim=1, keepdim=True) * w.norm(dim=1, keepdim=True)  # ‖d_i‖ = ‖W_i‖ of the start
            expected[n] += rho * d.view_as(before[n])
    for n, p in net.named_parameters():
        torch.testing.assert_close(p.detach(), expected.get(n, before[n]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "magnitude, directions, message",
    [
        ((0.09, 0.01), 2, r"magnitude must be \(low, high\) with 0 <= low <= high, got \(0.09, 0.01\)"),
        ((-0.01, 0.01), 2, r"magnitude must be .*got \(-0.01, 0.01\)"),
        ((0.01,), 2, r"magnitude must be .*got \(0.01,\)"),
        ((0.01, float("nan")), 2, "magnitude must be"),
        ((0.01, 0.09), 0, "directions must be an integer >= 1, got 0"),
    ],
)
def test_perturbation_settings_are_checked(magnitude, directions, message):
    with pytest.raises(ValueError, match=message):
        samplers.perturb(get_model("mlp", 1, 10, 28, width=4), torch.Generator(), magnitude, directions)
    with pytest.raises(ValueError, match=message):
        samplers.EarlyStagePool("mlp", [{}], magnitude=magnitude, directions=directions)


def test_early_stage_pool_loads_a_trained_state_and_perturbs_it():
    trained = [get_model("convnet", 1, 10, 28, width=8).state_dict() for _ in range(2)]
    pool = samplers.EarlyStagePool(samplers.FreshInit("convnet", width=8), trained).bind(INFO, "cpu")
    net = pool.sample(torch.Generator().manual_seed(0))
    dists = [sum(float((p - s[k]).norm()) for k, p in net.state_dict().items()) for s in trained]
    assert min(dists) > 0, "perturbed"
    plain = samplers.EarlyStagePool("convnet", trained, magnitude=None)
    with pytest.raises(RuntimeError):
        plain.sample(torch.Generator())  # not bound
    with pytest.raises(ValueError, match="at least one trained state"):
        samplers.EarlyStagePool("convnet", [])


def test_expert_trajectories_give_start_and_target():
    from course_utils.nets import trajectories

    spec = trajectories.ExpertSpec(model=samplers.FreshInit("mlp", width=4), epochs=4)
    net = spec.sampler().bind(INFO, "cpu").build(0)
    base = trajectories.flat_parameters(net)
    flat = [torch.stack([base + e + t for t in range(5)]) for e in range(2)]  # expert e, epoch t: base + e + t
    names, shapes = [n for n, _ in net.named_parameters()], [p.shape for p in net.parameters()]
    buffer = trajectories.ExpertBuffer(spec, {"dataset": "mnist", "data": "-"}, flat, names, shapes)
    experts = trajectories.ExpertTrajectories(buffer, max_start_epoch=2, expert_epochs=2).bind(INFO, "cpu")
    seg = experts.sample(torch.Generator().manual_seed(0))
    assert seg.start in (0, 1) and seg.expert in (0, 1)
    torch.testing.assert_close(seg.start_params, base + seg.expert + seg.start)
    torch.testing.assert_close(seg.target_params - seg.start_params, torch.full_like(base, 2.0))
    assert isinstance(experts.network(), nn.Module) and experts.spec()["experts"] == 2
    with pytest.raises(ValueError, match="max_start_epoch=4 is beyond the buffer"):
        trajectories.ExpertTrajectories(buffer, max_start_epoch=4, expert_epochs=2)
