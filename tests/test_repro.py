"""Seeding in one call; generators instead of global state."""

import pytest
import torch

from course_utils.core import repro


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


def test_generators_are_on_the_cpu_even_when_a_gpu_is_visible(monkeypatch):
    """seed_everything used to hand out a CUDA generator whenever CUDA was visible (device None -> auto -> cuda),
    which broke every CPU draw made with it."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert repro.seed_everything(3).device.type == "cpu"
    assert repro.make_generator(3).device.type == "cpu"
    assert repro.run_generator(0, "dc", "mnist", 1).device.type == "cpu"


def test_run_generators_depend_on_the_run_only():
    a = torch.rand(3, generator=repro.run_generator(0, "dc", "mnist", 1, "distill"))
    torch.rand(100, generator=repro.make_generator(0))  # other draws in between change nothing
    b = torch.rand(3, generator=repro.run_generator(0, "dc", "mnist", 1, "distill"))
    assert torch.equal(a, b)
    assert not torch.equal(a, torch.rand(3, generator=repro.run_generator(0, "dc", "mnist", 10, "distill")))
    assert not torch.equal(a, torch.rand(3, generator=repro.run_generator(1, "dc", "mnist", 1, "distill")))
    with pytest.raises(ValueError, match="seed"):
        repro.run_seed(-1, "dc")
