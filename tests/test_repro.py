"""Seeding in one call; generators instead of global state."""

import pytest
import torch

from course_utils import repro


def test_same_seed_same_stream_and_deterministic_flags():
    a = torch.rand(5, generator=repro.seed_everything(3))
    b = torch.rand(5, generator=repro.seed_everything(3))
    assert torch.equal(a, b)
    assert torch.are_deterministic_algorithms_enabled()
    assert not torch.backends.cudnn.benchmark
    assert not torch.equal(a, torch.rand(5, generator=repro.seed_everything(4)))


def test_global_rng_is_seeded_too():
    repro.seed_everything(11)
    x = torch.rand(3)
    repro.seed_everything(11)
    assert torch.equal(x, torch.rand(3))


@pytest.mark.parametrize("bad", [-1, 1.5, "0", True])
def test_bad_seed(bad):
    with pytest.raises(ValueError, match="seed"):
        repro.seed_everything(bad)


def test_cuda_requested_without_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="CUDA is not available"):
        repro.resolve_device("cuda")
    assert repro.resolve_device("auto").type == "cpu"


def test_derive_seed_is_reproducible():
    assert repro.derive_seed(repro.make_generator(5)) == repro.derive_seed(repro.make_generator(5))
