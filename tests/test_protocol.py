"""The named evaluation protocols: each is the paper's, and records name them."""

import pytest

from course_utils import methods
from course_utils.data.augment import DSA, DCAugment
from course_utils.evaluation import protocol


def test_dc_protocol_is_the_dc_papers_evaluation():
    mnist = protocol.named("dc", "mnist")
    assert (mnist.epochs, mnist.decay_at, mnist.restart_optimizer) == (1001, 502, True)  # E + 1, decay after E//2+1
    assert (mnist.lr, mnist.momentum, mnist.weight_decay, mnist.batch_size) == (0.01, 0.9, 5e-4, 256)
    aug = mnist.augmenter()
    assert isinstance(aug, DCAugment) and aug.ops == ("crop", "scale", "rotate")
    assert (aug.crop, aug.scale, aug.rotate) == (4, 0.2, 45)
    cifar = protocol.named("dc", "cifar10")  # no augmentation off MNIST, 300 epochs
    assert cifar.augmenter() is None and cifar.label == "dc (300 epochs, none)"


def test_dsa_protocol_augments_with_the_datasets_strategy():
    p = protocol.named("dsa", "mnist")
    aug = p.augmenter()
    assert isinstance(aug, DSA) and "flip" not in aug.ops and aug.mode == "single"
    assert p.label == "dsa (1000 epochs, dsa:color_crop_cutout_scale_rotate)"
    assert "flip" in protocol.named("dsa", "fashion_mnist").augmentation


def test_paper_protocol_per_method_and_overridden_epochs():
    assert protocol.resolve("paper", "mnist", paper=methods.paper_protocol("dc")).name == "dc"
    assert protocol.resolve("paper", "mnist", paper=methods.paper_protocol("dsa")).name == "dsa"
    assert protocol.resolve("paper", "mnist", paper=methods.paper_protocol("random")).name == "dc"
    short = protocol.resolve("paper", "mnist", paper="dsa", epochs=300)
    assert short.label == "dsa (300 epochs, dsa:color_crop_cutout_scale_rotate)" and short.epochs == 301
    assert protocol.named("plain", "mnist", 50).label == "plain (50 epochs, none)"
    with pytest.raises(ValueError, match="protocol='paper' needs the protocol of the method's paper"):
        protocol.resolve("paper", "mnist")
    with pytest.raises(ValueError, match="protocol='dcc' is not valid; valid: plain, dc, dsa, paper"):
        protocol.resolve("dcc", "mnist")
    with pytest.raises(ValueError, match="augmentation kind='flip' is not valid"):
        protocol.Protocol(augmentation="flip:x")
    assert protocol.Protocol().as_dict()["label"] == "plain (300 epochs, none)"
