"""Reproducibility in one call.

``seed_everything(seed)`` seeds Python, NumPy and torch, turns on deterministic algorithms and
returns a ``torch.Generator`` that every sampler and augmentation in the course takes explicitly.
Same seed, same machine, same profile => bit-identical synthetic sets and accuracies.
"""

from __future__ import annotations

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


def seed_everything(seed: int, device: str | torch.device | None = None, *, strict: bool = True,
                    threads: int | None = None) -> torch.Generator:
    """Seed python/numpy/torch, switch on deterministic kernels and return a generator on ``device``.

    strict=True also disables TF32 so GPU matmuls are full fp32. The returned generator lives on the
    device where random tensors are drawn (CPU here unless ``device`` is CUDA).
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
    return make_generator(seed, device)


def make_generator(seed: int, device: str | torch.device | None = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` seeded with ``seed`` (no global state touched)."""
    dev = resolve_device(device)
    g = torch.Generator(device=dev)
    g.manual_seed(seed)
    return g


def derive_seed(generator: torch.Generator) -> int:
    """Draw a 62-bit seed from ``generator`` (to hand independent streams to sub-steps)."""
    return int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
