"""What one differentiable step costs: the memory autograd keeps for its backward pass, and its wall time.

Methods that differentiate through an unrolled inner loop (DD's unrolled SGD, notebook 02; MTT's student steps,
notebook 05) keep every intermediate state alive until the outer backward pass, so their memory grows with the
unroll length. ``measure`` counts it exactly and on any device: every tensor autograd saves for a backward pass
goes through a ``saved_tensors_hooks`` pack hook, and the sizes of the distinct storages are summed. On CUDA the
growth of ``torch.cuda.max_memory_allocated`` is recorded too (it includes temporaries).
"""

from __future__ import annotations

import time
from typing import Callable

import torch

from . import validate

__all__ = ["saved_tensor_bytes", "measure", "synchronize", "synchronized_time"]


def saved_tensor_bytes(fn: Callable[[], object]) -> int:
    """Run ``fn()`` (forward and backward) and return the bytes of the distinct storages autograd saved."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(storages.values())


def synchronize(device: str | torch.device) -> None:
    """Wait for ``device``'s queued work (CUDA runs asynchronously; a CPU has nothing to wait for)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synchronized_time(device: str | torch.device) -> float:
    """``time.perf_counter()`` once ``device``'s queued work is done: the clock of every timed step in the course."""
    synchronize(device)
    return time.perf_counter()


def measure(fn: Callable[[], object], device: torch.device, repeats: int = 3) -> tuple[int, int | None, float]:
    """``(saved bytes, CUDA peak growth or None, median seconds of repeats runs)`` of ``fn()`` (forward + backward);
    the first run (the memory count) is the warm-up."""
    validate.positive_int("repeats", repeats)
    device = torch.device(device)
    saved = saved_tensor_bytes(fn)
    peak = None
    if device.type == "cuda":
        synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - base
    times = []
    for _ in range(repeats):
        t0 = synchronized_time(device)
        fn()
        times.append(synchronized_time(device) - t0)
    return saved, peak, sorted(times)[len(times) // 2]
