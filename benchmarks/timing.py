"""Wall-clock timing shared by the benchmark scripts: the GPU's queue is drained before the clock starts and stops."""

from __future__ import annotations

import statistics

import torch

from course_utils.core.cost import synchronize as sync  # noqa: F401 (the scripts call timing.sync)
from course_utils.core.cost import synchronized_time


def timed(fn, device: torch.device) -> float:
    """Seconds of one call of ``fn()`` on ``device``."""
    t0 = synchronized_time(device)
    fn()
    return synchronized_time(device) - t0


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


def unit_floor_figures(times: dict[str, list[float]]) -> dict:
    """``unit_s``, ``floor_s`` (medians) and ``floor_units`` (the floor in units, paired per round)."""
    return {
        "unit_s": round(statistics.median(times["unit"]), 4),
        "floor_s": round(statistics.median(times["floor"]), 4),
        "floor_units": round(paired_ratio(times, "floor", "unit"), 2),
    }


def variant_figures(times: dict[str, list[float]], key: str, name: str) -> dict:
    """``{name}_s`` (median), ``{name}_units`` and ``{name}_over_floor`` (paired per round) of variant ``key``."""
    return {
        f"{name}_s": round(statistics.median(times[key]), 4),
        f"{name}_units": round(paired_ratio(times, key, "unit"), 2),
        f"{name}_over_floor": round(paired_ratio(times, key, "floor"), 3),
    }
