"""Tests for course_utils.models: shapes, embed/classifier split, gradients, variants, errors, seeding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.nets.models import (
    ACTS,
    MLP,
    MODEL_NAMES,
    NORMS,
    POOLS,
    VGG11,
    AlexNet,
    ConvNet,
    LeNet,
    ResNet18,
    count_parameters,
    get_model,
)

INPUTS = [(1, 28), (3, 32)]  # (channels, image size): MNIST-like and CIFAR-like
BASE_NAMES = ("convnet", "lenet", "alexnet", "vgg11", "resnet18", "mlp")


def _batch(channels: int, size: int, n: int = 2, requires_grad: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(123)
    return torch.randn(n, channels, size, size, generator=g).requires_grad_(requires_grad)


def _seeded(name: str, *args, seed: int = 0, **kw) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return get_model(name, *args, **kw)


# --------------------------------------------------------------------------------------------------
# every registered name
# --------------------------------------------------------------------------------------------------
def test_model_names_cover_the_brief():
    expected = {
        "convnet",
        "lenet",
        "alexnet",
        "vgg11",
        "resnet18",
        "mlp",
        "vgg11_bn",
        "resnet18_bn",
        "convnet_bn",
        "convnet_ln",
        "convnet_gn",
        "convnet_nn",
        "convnet_mp",
        "convnet_np",
    }
    expected |= {f"convnet_d{d}" for d in range(1, 5)} | {f"convnet_w{w}" for w in (32, 64, 128, 256)}
    assert set(MODEL_NAMES) == expected
    assert isinstance(MODEL_NAMES, tuple) and len(MODEL_NAMES) == len(set(MODEL_NAMES))


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("channels,size", INPUTS)
def test_shape_embed_and_gradients(name, channels, size):
    model = _seeded(name, channels, 7, size)
    x = _batch(channels, size, requires_grad=True)
    out = model(x)
    assert out.shape == (2, 7)

    emb = model.embed(x)
    assert emb.shape == (2, model.feature_dim)
    assert isinstance(model.classifier, nn.Linear) and model.classifier.in_features == model.feature_dim
    assert torch.equal(model.classifier(emb), out)

    F.cross_entropy(out, torch.tensor([1, 5])).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient reached {pname}"
        assert torch.isfinite(p.grad).all(), pname
        if p.dim() > 1:  # biases in front of a norm layer get (numerically) zero gradient by design
            assert p.grad.abs().sum() > 0, f"{name}: zero gradient for {pname}"


@pytest.mark.parametrize("name", BASE_NAMES)
def test_names_case_insensitive(name):
    assert type(get_model(name.upper(), 3, 10)) is type(get_model(name, 3, 10))


def test_factory_classes_and_variant_settings():
    assert isinstance(get_model("lenet", 1, 10, 28), LeNet)
    assert isinstance(get_model("alexnet", 1, 10, 28), AlexNet)
    assert isinstance(get_model("mlp", 1, 10, 28), MLP)
    assert get_model("vgg11", 3, 10).hparams["norm"] == "instance"
    assert get_model("vgg11_bn", 3, 10).hparams["norm"] == "batch"
    assert isinstance(get_model("resnet18", 3, 10), ResNet18)
    assert get_model("resnet18_bn", 3, 10).hparams["norm"] == "batch"
    assert isinstance(get_model("VGG11", 3, 10), VGG11)
    hp = get_model("convnet", 3, 10).hparams
    assert (hp["width"], hp["depth"], hp["norm"], hp["pool"], hp["act"]) == (128, 3, "instance", "avg", "relu")
    assert get_model("convnet_d1", 3, 10).hparams["depth"] == 1
    assert get_model("convnet_w32", 3, 10).hparams["width"] == 32
    assert get_model("convnet_ln", 3, 10).hparams["norm"] == "layer"
    assert get_model("convnet_gn", 3, 10).hparams["norm"] == "group"
    assert get_model("convnet_nn", 3, 10).hparams["norm"] == "none"
    assert get_model("convnet_mp", 3, 10).hparams["pool"] == "max"
    assert get_model("convnet_np", 3, 10).hparams["pool"] == "none"


def test_overrides_win_over_variant():
    m = get_model("convnet", 1, 10, 28, width=32, depth=2)
    assert (m.hparams["width"], m.hparams["depth"]) == (32, 2)
    assert m.feature_dim == 32 * 8 * 8
    m = get_model("convnet_d1", 3, 10, depth=4, norm="batch", act="swish")
    assert (m.hparams["depth"], m.hparams["norm"], m.hparams["act"]) == (4, "batch", "swish")
    assert any(isinstance(mod, nn.BatchNorm2d) for mod in m.modules())
    assert get_model("vgg11_bn", 3, 10, norm="instance").hparams["norm"] == "instance"
    assert get_model("mlp", 3, 10, width=16).feature_dim == 16


# --------------------------------------------------------------------------------------------------
# ConvNet variants
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("channels,size", INPUTS)
def test_convnet_depth_feature_dim(depth, channels, size):
    m = ConvNet(channels, 10, size, width=16, depth=depth)
    assert m.feature_dim == 16 * (32 // 2**depth) ** 2
    assert m(_batch(channels, size)).shape == (2, 10)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("pool", POOLS)
def test_convnet_norm_pool(norm, pool):
    m = ConvNet(3, 10, 32, width=8, depth=2, norm=norm, pool=pool)
    out = m(_batch(3, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    side = 8 if pool != "none" else 32
    assert m.feature_dim == 8 * side * side


def test_convnet_norm_layers_are_the_right_kind():
    def norms(norm):
        return [
            mod
            for mod in ConvNet(3, 10, width=16, depth=1, norm=norm).modules()
            if isinstance(mod, (nn.GroupNorm, nn.BatchNorm2d))
        ]

    assert norms("none") == []
    (bn,) = norms("batch")
    assert isinstance(bn, nn.BatchNorm2d)
    (ln,) = norms("layer")
    assert isinstance(ln, nn.GroupNorm) and ln.num_groups == 1 and ln.affine
    (inn,) = norms("instance")
    assert isinstance(inn, nn.GroupNorm) and inn.num_groups == 16 and inn.affine
    (gn,) = norms("group")
    assert isinstance(gn, nn.GroupNorm) and gn.num_groups == 4


@pytest.mark.parametrize("act", ACTS)
def test_convnet_activations(act):
    m = ConvNet(1, 10, 28, width=8, depth=1, act=act)
    x = _batch(1, 28, requires_grad=True)
    m(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_convnet_pool_kinds_and_no_adaptive_pooling():
    for pool, kind in (("avg", nn.AvgPool2d), ("max", nn.MaxPool2d)):
        assert any(isinstance(mod, kind) for mod in ConvNet(3, 10, pool=pool).modules())
    for name in MODEL_NAMES:
        m = get_model(name, 3, 10)
        assert not any(isinstance(mod, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)) for mod in m.modules()), name


@pytest.mark.parametrize("name", [n for n in MODEL_NAMES if n != "mlp"])
def test_28_and_32_give_same_feature_dim(name):
    assert get_model(name, 1, 10, 28).feature_dim == get_model(name, 3, 10, 32).feature_dim


def test_convnet_28_pads_first_conv_by_3():
    convs = [mod for mod in ConvNet(1, 10, 28).modules() if isinstance(mod, nn.Conv2d)]
    assert convs[0].padding == (3, 3) and all(c.padding == (1, 1) for c in convs[1:])
    convs = [mod for mod in ConvNet(3, 10, 32).modules() if isinstance(mod, nn.Conv2d)]
    assert all(c.padding == (1, 1) for c in convs)


def test_convnet_default_parameter_count():
    w, c, classes = 128, 3, 10
    convs = (c * w * 9 + w) + 2 * (w * w * 9 + w)  # 3x3 convs with bias
    norms = 3 * 2 * w  # GroupNorm(128, 128) affine: weight + bias per channel
    head = (w * 4 * 4) * classes + classes  # 2048 -> 10
    assert convs + norms + head == 320_010
    assert count_parameters(get_model("convnet", c, classes, 32)) == convs + norms + head


def test_count_parameters_trainable_only():
    m = get_model("lenet", 1, 10, 28)
    total = count_parameters(m)
    m.classifier.weight.requires_grad_(False)
    assert count_parameters(m, trainable_only=True) == total - 84 * 10
    assert count_parameters(m) == total


def test_other_image_sizes():
    assert get_model("convnet", 3, 200, 64, depth=4).feature_dim == 128 * 4 * 4
    assert get_model("resnet18", 3, 10, 64)(_batch(3, 64)).shape == (2, 10)
    assert get_model("vgg11", 3, 10, 64).feature_dim == 512 * 2 * 2


# --------------------------------------------------------------------------------------------------
# seeding
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", BASE_NAMES + ("convnet_bn",))
def test_same_seed_same_weights(name):
    a, b = _seeded(name, 3, 10, seed=5), _seeded(name, 3, 10, seed=5)
    c = _seeded(name, 3, 10, seed=6)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)


def test_construction_uses_only_torch_global_rng():
    torch.manual_seed(0)
    get_model("convnet", 3, 10)
    after_first = torch.get_rng_state()
    torch.manual_seed(0)
    get_model("convnet", 3, 10)
    assert torch.equal(torch.get_rng_state(), after_first)


# --------------------------------------------------------------------------------------------------
# batch norm in train and eval mode
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["convnet_bn", "vgg11_bn", "resnet18_bn"])
def test_batchnorm_train_and_eval(name):
    m = _seeded(name, 3, 10)
    x = _batch(3, 32, n=4)
    bns = [mod for mod in m.modules() if isinstance(mod, nn.BatchNorm2d)]
    assert bns
    m.train()
    before = bns[0].running_mean.clone()
    out_train = m(x)
    assert out_train.shape == (4, 10)
    assert not torch.equal(bns[0].running_mean, before)  # running stats update in train mode
    m.eval()
    frozen = bns[0].running_mean.clone()
    with torch.no_grad():
        out_eval = m(x)
        assert torch.equal(m(x), out_eval)
    assert torch.equal(bns[0].running_mean, frozen)
    assert out_eval.shape == (4, 10) and torch.isfinite(out_eval).all()
    assert not torch.allclose(out_train, out_eval)


# --------------------------------------------------------------------------------------------------
# error messages
# --------------------------------------------------------------------------------------------------
def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as e:
        get_model("resnet50", 3, 10)
    msg = str(e.value)
    assert "resnet50" in msg
    assert all(n in msg for n in MODEL_NAMES)


@pytest.mark.parametrize(
    "kw,bad,valid",
    [
        ({"norm": "foo"}, "foo", NORMS),
        ({"pool": "median"}, "median", POOLS),
        ({"act": "x"}, "'x'", ACTS),
        ({"depth": 7}, "7", ("1", "2", "3", "4")),
    ],
)
def test_bad_option_value_names_value_and_valid_ones(kw, bad, valid):
    with pytest.raises(ValueError) as e:
        get_model("convnet", 3, 10, **kw)
    msg = str(e.value)
    assert bad in msg and next(iter(kw)) in msg
    assert all(v in msg for v in valid)


def test_bad_option_value_direct_construction():
    with pytest.raises(ValueError, match="norm='foo'"):
        ResNet18(3, 10, norm="foo")
    with pytest.raises(ValueError, match="depth"):
        ConvNet(3, 10, depth=0)
    with pytest.raises(ValueError, match="depth"):
        ConvNet(3, 10, depth=2.0)
    with pytest.raises(ValueError, match="width"):
        ConvNet(3, 10, width=0)
    with pytest.raises(ValueError, match="divisible by 4"):
        ConvNet(3, 10, width=6, norm="group")
    with pytest.raises(ValueError, match="image_size"):
        ConvNet(3, 10, image_size=8, depth=4, pool="avg")
    with pytest.raises(ValueError, match="num_classes"):
        get_model("mlp", 3, 0)


def test_unknown_keyword_lists_valid_keywords():
    with pytest.raises(ValueError) as e:
        get_model("convnet", 3, 10, widht=64)
    msg = str(e.value)
    assert "widht" in msg
    assert all(k in msg for k in ("width", "depth", "norm", "pool", "act"))
    with pytest.raises(ValueError, match="'depth'.*valid keywords: norm"):
        get_model("vgg11", 3, 10, depth=3)
    with pytest.raises(ValueError, match="width"):
        get_model("lenet", 1, 10, 28, width=3)


@pytest.mark.parametrize("name,default", [("alexnet", 128), ("vgg11", 64), ("resnet18", 64)])
def test_width_narrows_alexnet_vgg_resnet_and_defaults_are_unchanged(name, default):
    full = get_model(name, 1, 10, 28)
    assert full.hparams["width"] == default
    same = get_model(name, 1, 10, 28, width=default)
    assert count_parameters(same) == count_parameters(full)
    narrow = get_model(name, 1, 10, 28, width=default // 8)
    assert count_parameters(narrow) < count_parameters(full) / 20
    assert narrow(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="width"):
        get_model(name, 1, 10, 28, width=0)
