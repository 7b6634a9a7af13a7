"""Wall-clock timing shared by the benchmark scripts: the GPU's queue is drained before the clock starts and stops."""

from __future__ import annotations

import statistics
import time

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    """Seconds of one call of ``fn()`` on ``device``."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def interleaved(fns: dict, device: torch.device, repeats: int, unit_passes: int = 3) -> dict[str, list[float]]:
    """Seconds of every function per round: ``{name: [one value per round]}``.

    Each round (after one warm-up round) calls every function once, back to back, in the given order; ``"unit"``,
    if present, counts as the median of ``unit_passes`` calls. Ratios taken within a round (``paired_ratio``) are
    then hit alike by load from other processes.
    """
    times: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(repeats + 1):  # round 0 warms up
        row = {
            k: statistics.median(timed(fn, device) for _ in range(unit_passes)) if k == "unit" else timed(fn, device)
            for k, fn in fns.items()
        }
        if r:
            for k, t in row.items():
                times[k].append(t)
    return times


def paired_ratio(times: dict[str, list[float]], key: str, base: str) -> float:
    """The median over rounds of ``times[key] / times[base]`` measured in the same round."""
    return statistics.median(a / b for a, b in zip(times[key], times[base]))
