"""Networks of the dataset-distillation literature behind one factory, ``get_model``.

Every model ``m`` has

- ``m.embed(x)``   the features before the last linear layer, shape ``(N, m.feature_dim)``
- ``m.classifier`` that last ``nn.Linear``, so ``m(x) == m.classifier(m.embed(x))``
- ``m.feature_dim`` and ``m.hparams`` (the constructor arguments, for result records)

Input is ``(N, in_channels, image_size, image_size)``. A 28x28 input gets extra padding in the first
layer so it behaves like a 32x32 one (as in the DC family's MNIST setting). Models draw their initial
weights from torch's global RNG with PyTorch's default init and nothing else: seed (or
``torch.random.fork_rng`` + ``manual_seed``) around ``get_model`` for reproducible weights.

    >>> net = get_model("convnet", in_channels=1, num_classes=10, image_size=28)
    >>> net = get_model("convnet_bn", 3, 10, width=64, act="swish")   # overrides beat the variant
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ConvNet",
    "LeNet",
    "AlexNet",
    "VGG11",
    "ResNet18",
    "MLP",
    "get_model",
    "MODEL_NAMES",
    "count_parameters",
    "NORMS",
    "POOLS",
    "ACTS",
]

NORMS = ("none", "batch", "layer", "instance", "group")
POOLS = ("avg", "max", "none")
ACTS = ("relu", "leaky_relu", "sigmoid", "swish", "silu", "tanh")
CONVNET_DEPTHS = (1, 2, 3, 4)


# --------------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------------
def _choice(param: str, value: Any, valid: tuple) -> Any:
    """Return ``value`` (lower-cased if a string) when it is in ``valid``, else a clear ValueError."""
    key = value.lower() if isinstance(value, str) else value
    if not any(type(key) is type(v) and key == v for v in valid):
        raise ValueError(f"{param}={value!r} is not valid; choose one of: {', '.join(map(repr, valid))}")
    return key


def _positive_int(param: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{param} must be a positive int, got {value!r}")
    return value


def _check_common(in_channels: Any, num_classes: Any, image_size: Any) -> None:
    _positive_int("in_channels", in_channels)
    _positive_int("num_classes", num_classes)
    _positive_int("image_size", image_size)


def _norm_and_width(
    net: nn.Module, in_channels: Any, num_classes: Any, image_size: Any, norm: Any, width: Any
) -> tuple[str, int]:
    """The checked ``norm`` and ``width`` of a network with both (AlexNet, VGG11, ResNet18), its ``hparams`` set."""
    _check_common(in_channels, num_classes, image_size)
    norm, width = _choice("norm", norm, NORMS), _positive_int("width", width)
    net.hparams = dict(in_channels=in_channels, num_classes=num_classes, image_size=image_size, norm=norm, width=width)
    return norm, width


def _shrink(size: int, what: str, model: str, image_size: int) -> int:
    if size < 1:
        raise ValueError(f"{model}: image_size={image_size} is too small; the feature map vanishes at {what}")
    return size


def _first_pad(image_size: int, pad28: int, pad_other: int) -> int:
    """Padding of the first conv: 28x28 inputs get ``pad28`` so they behave like 32x32."""
    return pad28 if image_size == 28 else pad_other


def make_norm(norm: str, channels: int) -> nn.Module:
    """Normalisation layer by name (see ``NORMS``); "instance" is GroupNorm(C, C) as in the DC code."""
    norm = _choice("norm", norm, NORMS)
    if norm == "none":
        return nn.Identity()
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "layer":
        return nn.GroupNorm(1, channels, affine=True)
    if norm == "instance":
        return nn.GroupNorm(channels, channels, affine=True)
    if channels % 4:
        raise ValueError(f"norm='group' uses 4 groups and needs a channel count divisible by 4, got {channels}")
    return nn.GroupNorm(4, channels, affine=True)


def make_act(act: str) -> nn.Module:
    """Activation by name (see ``ACTS``); leaky_relu has slope 0.01, swish == silu."""
    act = _choice("act", act, ACTS)
    if act == "relu":
        return nn.ReLU()
    if act == "leaky_relu":
        return nn.LeakyReLU(0.01)
    if act == "sigmoid":
        return nn.Sigmoid()
    if act in ("swish", "silu"):
        return nn.SiLU()
    return nn.Tanh()


def make_pool(pool: str) -> nn.Module | None:
    pool = _choice("pool", pool, POOLS)
    if pool == "avg":
        return nn.AvgPool2d(2)
    if pool == "max":
        return nn.MaxPool2d(2)
    return None


class _Base(nn.Module):
    """``forward = classifier ∘ embed``; subclasses define ``embed``, ``classifier``, ``feature_dim``."""

    classifier: nn.Linear
    feature_dim: int
    hparams: dict

    def embed(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))

    def extra_repr(self) -> str:
        return f"feature_dim={self.feature_dim}"


# --------------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------------
class ConvNet(_Base):
    """DC-family ConvNet: ``[conv3x3 → norm → act → pool2x2] × depth → flatten → linear``.

    Defaults (width 128, depth 3, instance norm = GroupNorm(C, C), ReLU, avg pool) are the DC/DM/MTT
    ConvNet; a 32x32 input gives ``feature_dim = 128·4·4 = 2048``. For 28x28 inputs the first conv pads
    by 3, so the feature map and ``feature_dim`` match the 32x32 case.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int = 32,
        width: int = 128,
        depth: int = 3,
        norm: str = "instance",
        pool: str = "avg",
        act: str = "relu",
    ):
        super().__init__()
        _check_common(in_channels, num_classes, image_size)
        width = _positive_int("width", width)
        depth = _choice("depth", depth, CONVNET_DEPTHS)
        norm, pool, act = _choice("norm", norm, NORMS), _choice("pool", pool, POOLS), _choice("act", act, ACTS)
        self.hparams = dict(
            in_channels=in_channels,
            num_classes=num_classes,
            image_size=image_size,
            width=width,
            depth=depth,
            norm=norm,
            pool=pool,
            act=act,
        )
        layers: list[nn.Module] = []
        size, channels = image_size, in_channels
        for d in range(depth):
            pad = _first_pad(image_size, 3, 1) if d == 0 else 1
            layers += [nn.Conv2d(channels, width, kernel_size=3, padding=pad), make_norm(norm, width), make_act(act)]
            size = size + 2 * pad - 2
            p = make_pool(pool)
            if p is not None:
                layers.append(p)
                size = _shrink(size // 2, f"pooling block {d + 1}", "ConvNet", image_size)
            channels = width
        self.features = nn.Sequential(*[m for m in layers if not isinstance(m, nn.Identity)])
        self.feature_dim = width * size * size
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)


class LeNet(_Base):
    """LeNet-5: ``conv6 5x5 → ReLU → maxpool2 → conv16 5x5 → ReLU → maxpool2 → fc120 → ReLU → fc84 → ReLU → fc``.

    The first conv pads by 2 for 28x28 inputs (none otherwise), so 28 and 32 both give 16·5·5 features
    into fc120. ``embed`` is the 84-d output of the second fully connected layer (after ReLU).
    """

    def __init__(self, in_channels: int, num_classes: int, image_size: int = 32):
        super().__init__()
        _check_common(in_channels, num_classes, image_size)
        self.hparams = dict(in_channels=in_channels, num_classes=num_classes, image_size=image_size)
        pad = _first_pad(image_size, 2, 0)
        size = _shrink((image_size + 2 * pad - 4) // 2, "conv1", "LeNet", image_size)
        size = _shrink((size - 4) // 2, "conv2", "LeNet", image_size)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=pad),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * size * size, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
        )
        self.feature_dim = 84
        self.classifier = nn.Linear(84, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class AlexNet(_Base):
    """Small 32x32 AlexNet of the DC family:
    ``conv128 5x5 → R → MP → conv192 5x5 → R → MP → conv256 3x3 → R → conv192 3x3 → R → conv192 3x3 → R → MP → linear``.

    The first conv pads by 4 for 28x28 inputs (2 otherwise); a 32x32 input gives 192·4·4 = 3072 features.
    ``norm`` (default "none") inserts a normalisation after every conv (norm="batch" is DC's AlexNetBN).
    ``width`` (default 128) is the first conv's channel count; the others scale with it (a narrow network for CPU runs).
    """

    def __init__(self, in_channels: int, num_classes: int, image_size: int = 32, norm: str = "none", width: int = 128):
        super().__init__()
        norm, width = _norm_and_width(self, in_channels, num_classes, image_size, norm, width)
        pad = _first_pad(image_size, 4, 2)
        c = [max(1, round(n * width / 128)) for n in (128, 192, 256, 192, 192)]
        spec = [(c[0], 5, pad, True), (c[1], 5, 2, True), (c[2], 3, 1, False), (c[3], 3, 1, False), (c[4], 3, 1, True)]
        layers: list[nn.Module] = []
        size, channels = image_size, in_channels
        for i, (out, k, p, pooled) in enumerate(spec):
            layers += [nn.Conv2d(channels, out, kernel_size=k, padding=p), make_norm(norm, out), nn.ReLU()]
            size = size + 2 * p - k + 1
            if pooled:
                layers.append(nn.MaxPool2d(2))
                size = _shrink(size // 2, f"conv{i + 1}", "AlexNet", image_size)
            channels = out
        self.features = nn.Sequential(*[m for m in layers if not isinstance(m, nn.Identity)])
        self.feature_dim = channels * size * size
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)


_VGG11_CFG = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG11(_Base):
    """CIFAR-style VGG11: ``[conv3x3 → norm → ReLU](64-M-128-M-256-256-M-512-512-M-512-512-M) → linear``.

    ``norm`` defaults to "instance" (GroupNorm(C, C)); "batch" is VGG11BN. The first conv pads by 3 for
    28x28 inputs; a 32x32 input gives 512 features. ``width`` (default 64) is the first conv's channel count; the
    others scale with it (64-128-256-512 at width 64; a narrow network for CPU runs).
    """

    def __init__(
        self, in_channels: int, num_classes: int, image_size: int = 32, norm: str = "instance", width: int = 64
    ):
        super().__init__()
        norm, width = _norm_and_width(self, in_channels, num_classes, image_size, norm, width)
        layers: list[nn.Module] = []
        size, channels, first = image_size, in_channels, True
        for v in _VGG11_CFG:
            if v != "M":
                v = v * width // 64
            if v == "M":
                layers.append(nn.MaxPool2d(2))
                size = _shrink(size // 2, "a max-pool", "VGG11", image_size)
                continue
            pad = _first_pad(image_size, 3, 1) if first else 1
            layers += [nn.Conv2d(channels, v, kernel_size=3, padding=pad), make_norm(norm, v), nn.ReLU()]
            size, channels, first = size + 2 * pad - 2, v, False
        self.features = nn.Sequential(*[m for m in layers if not isinstance(m, nn.Identity)])
        self.feature_dim = channels * size * size
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)


class _BasicBlock(nn.Module):
    """``relu(norm(conv3x3(relu(norm(conv3x3_s(x))))) + shortcut(x))``; shortcut = conv1x1_s → norm when shapes
    change."""

    def __init__(self, in_planes: int, planes: int, stride: int, norm: str):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = make_norm(norm, planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = make_norm(norm, planes)
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False), make_norm(norm, planes)
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(_Base):
    """32x32-style ResNet18: ``conv3x3 s1 → norm → ReLU → 4 stages × 2 BasicBlocks (64/128/256/512) → AvgPool →
    linear``.

    No initial max-pool; stages 2–4 stride 2. The final pool is a fixed ``nn.AvgPool2d`` over the whole
    remaining map (4x4 for 32x32 input), never adaptive pooling. ``norm`` defaults to "instance"
    (GroupNorm(C, C)); "batch" is ResNet18BN. The stem pads by 3 for 28x28 inputs. ``width`` (default 64) is the
    first stage's channel count (stages width·1/2/4/8; a narrow network for CPU runs); ``feature_dim`` = 8·width.
    """

    def __init__(
        self, in_channels: int, num_classes: int, image_size: int = 32, norm: str = "instance", width: int = 64
    ):
        super().__init__()
        norm, width = _norm_and_width(self, in_channels, num_classes, image_size, norm, width)
        pad = _first_pad(image_size, 3, 1)
        size = image_size + 2 * pad - 2
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, kernel_size=3, stride=1, padding=pad, bias=False),
            make_norm(norm, width),
            nn.ReLU(),
        )
        blocks: list[nn.Module] = []
        in_planes = width
        for planes, stride in ((width, 1), (2 * width, 2), (4 * width, 2), (8 * width, 2)):
            blocks += [_BasicBlock(in_planes, planes, stride, norm), _BasicBlock(planes, planes, 1, norm)]
            in_planes = planes
            size = (size - 1) // stride + 1  # 3x3 conv, padding 1
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AvgPool2d(_shrink(size, "the last stage", "ResNet18", image_size))
        self.feature_dim = 8 * width
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.layers(self.stem(x))).flatten(1)


class MLP(_Base):
    """``flatten → fc(width) → ReLU → fc(width) → ReLU → fc(classes)``, width 128 by default."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int = 32, width: int = 128):
        super().__init__()
        _check_common(in_channels, num_classes, image_size)
        width = _positive_int("width", width)
        self.hparams = dict(in_channels=in_channels, num_classes=num_classes, image_size=image_size, width=width)
        self.features = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_channels * image_size * image_size, width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.ReLU(),
        )
        self.feature_dim = width
        self.classifier = nn.Linear(width, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


# --------------------------------------------------------------------------------------------------
# factory
# --------------------------------------------------------------------------------------------------
# name -> (class, settings of the variant); overrides passed to get_model win over these settings.
_REGISTRY: dict[str, tuple[type, dict]] = {
    "convnet": (ConvNet, {}),
    **{f"convnet_d{d}": (ConvNet, {"depth": d}) for d in CONVNET_DEPTHS},
    **{f"convnet_w{w}": (ConvNet, {"width": w}) for w in (32, 64, 128, 256)},
    "convnet_bn": (ConvNet, {"norm": "batch"}),
    "convnet_ln": (ConvNet, {"norm": "layer"}),
    "convnet_gn": (ConvNet, {"norm": "group"}),
    "convnet_nn": (ConvNet, {"norm": "none"}),
    "convnet_mp": (ConvNet, {"pool": "max"}),
    "convnet_np": (ConvNet, {"pool": "none"}),
    "lenet": (LeNet, {}),
    "alexnet": (AlexNet, {}),
    "vgg11": (VGG11, {}),
    "vgg11_bn": (VGG11, {"norm": "batch"}),
    "resnet18": (ResNet18, {}),
    "resnet18_bn": (ResNet18, {"norm": "batch"}),
    "mlp": (MLP, {}),
}

MODEL_NAMES: tuple[str, ...] = tuple(_REGISTRY)

# keywords each class accepts beyond (in_channels, num_classes, image_size)
_KEYWORDS: dict[type, tuple[str, ...]] = {
    ConvNet: ("width", "depth", "norm", "pool", "act"),
    LeNet: (),
    AlexNet: ("norm", "width"),
    VGG11: ("norm", "width"),
    ResNet18: ("norm", "width"),
    MLP: ("width",),
}


def get_model(name: str, in_channels: int, num_classes: int, image_size: int = 32, **overrides: Any) -> nn.Module:
    """Build a fresh, randomly initialised model by name (case-insensitive; see ``MODEL_NAMES``).

    ``overrides`` replace the variant's settings, e.g. ``get_model("convnet_d2", 1, 10, 28, width=32)``.
    Weights come from torch's global RNG (default PyTorch init); seed around this call to reproduce them.
    """
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in _REGISTRY:
        raise ValueError(f"unknown model name {name!r}; valid names: {', '.join(MODEL_NAMES)}")
    cls, settings = _REGISTRY[key]
    valid = _KEYWORDS[cls]
    bad = [k for k in overrides if k not in valid]
    if bad:
        listed = ", ".join(valid) if valid else "(none)"
        raise ValueError(f"unknown keyword(s) {', '.join(map(repr, bad))} for model {key!r}; valid keywords: {listed}")
    model = cls(in_channels, num_classes, image_size, **{**settings, **overrides})
    model.model_name = key
    return model


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters (only those with ``requires_grad`` when ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
