"""Reproducibility: deterministic kernels, and one scheme for every random stream of the course.

``seed_everything(seed)`` seeds Python, NumPy and torch, turns on deterministic algorithms and returns a
``torch.Generator`` that every sampler and augmentation in the course takes explicitly.

**One convention for randomness.** Every random draw of the course (distillation, evaluation, experts, pools, subsets)
comes from a CPU generator, made by ``make_generator`` from a seed that ``run_seed`` derives from the run's seed and
the parts that name it (``run_generator(seed, method, dataset, ipc, purpose)``), or drawn from such a generator
(``derive_seed``). The numbers are drawn on the CPU and moved to the data's device, so a CPU and a GPU run make the
same draws, and a result does not depend on which runs were made before it. Same seed, same machine, same profile:
bit-identical synthetic sets and accuracies.
"""

from __future__ import annotations

import hashlib
import os
import random

# cuBLAS needs this before CUDA initialises to have deterministic GEMMs (harmless on CPU).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def default_device() -> torch.device:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """Turn ``None``/``"auto"`` into the default device; check an explicit one."""
    if device is None or device == "auto":
        return default_device()
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r} was asked for but CUDA is not available; use 'cpu' or 'auto'")
    return device


def seed_everything(seed: int, *, strict: bool = True, threads: int | None = None) -> torch.Generator:
    """Seed python/numpy/torch, switch on deterministic kernels and return the CPU generator of ``seed``.

    strict=True also disables TF32 so GPU matmuls are full fp32. The generator lives on the CPU whatever GPU is
    visible: the course draws its random numbers on the CPU (see the module docstring).
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True)
    if strict:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    if threads is not None:
        torch.set_num_threads(threads)
    return make_generator(seed)


def make_generator(seed: int) -> torch.Generator:
    """A fresh CPU ``torch.Generator`` seeded with ``seed`` (no global state touched)."""
    g = torch.Generator(device="cpu")
    g.manual_seed(seed)
    return g


def derive_seed(generator: torch.Generator) -> int:
    """Draw a 62-bit seed from ``generator`` (to hand independent streams to sub-steps)."""
    return int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())


def run_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed derived from ``seed`` and the parts that name a run, e.g. ``(method, dataset, ipc, purpose)``.

    A hash, not a stream: the seed of one run does not depend on which runs were made before it, so a
    notebook cell gives the same result whether or not the cells before it ran.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    text = "|".join([str(seed), *map(str, parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def run_generator(seed: int, *parts: object) -> torch.Generator:
    """``make_generator(run_seed(seed, *parts))``: the CPU generator of one named run.

    >>> g = run_generator(0, "dc", "mnist", 10, "distill")
    """
    return make_generator(run_seed(seed, *parts))


def generator_fingerprint(generator: torch.Generator) -> str:
    """A short hash of a generator's state (where a run's random stream starts)."""
    return hashlib.blake2b(generator.get_state().numpy().tobytes(), digest_size=12).hexdigest()
