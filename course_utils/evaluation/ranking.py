"""Rank agreement between two scorings of the same candidates (e.g. architectures in a NAS proxy).

A distilled set is a good *proxy* for architecture search when training candidates on it ranks them as
training on the full data would. With scores ``x`` (proxy) and ``y`` (full data) of ``n`` candidates:

``rankdata``      average ranks, 1 = smallest; tied values share the mean of the ranks they occupy
                  (``[10, 20, 20, 30] → [1, 2.5, 2.5, 4]``).
``spearman``      Spearman's ρ = the Pearson correlation of the two rank vectors,
                      ρ = Σ (r_i − r̄)(s_i − s̄) / sqrt(Σ (r_i − r̄)² · Σ (s_i − s̄)²),
                  which without ties equals ``1 − 6 Σ d_i² / (n (n² − 1))``, ``d_i = r_i − s_i``.
``kendall_tau``   Kendall's τ_b = (P − Q) / sqrt((P + Q + T_x)(P + Q + T_y)) over the pairs i < j: P concordant,
                  Q discordant, T_x (T_y) tied only in x (only in y).
``same_winner``   whether both scorings put the same candidate first (the one a search would pick).

Plain Python (no SciPy); inputs are sequences of numbers (lists, tuples, 1-D tensors or arrays).
"""

from __future__ import annotations

import math
from typing import Sequence

__all__ = ["rankdata", "spearman", "kendall_tau", "same_winner", "ranking"]


def _values(x: Sequence[float], name: str) -> list[float]:
    try:
        values = [float(v) for v in x]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of numbers, got {x!r}") from None
    if any(math.isnan(v) for v in values):
        raise ValueError(f"{name} contains NaN: {values}")
    return values


def _pair(x: Sequence[float], y: Sequence[float]) -> tuple[list[float], list[float]]:
    xs, ys = _values(x, "x"), _values(y, "y")
    if len(xs) != len(ys):
        raise ValueError(f"x and y must score the same candidates, got {len(xs)} and {len(ys)} values")
    if len(xs) < 2:
        raise ValueError(f"a rank correlation needs at least 2 candidates, got {len(xs)}")
    return xs, ys


def rankdata(x: Sequence[float]) -> list[float]:
    """Average ranks (1-based; ties get the mean of the ranks they span)."""
    values = _values(x, "x")
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _pearson(a: list[float], b: list[float]) -> float:
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    cov = sum((u - ma) * (v - mb) for u, v in zip(a, b))
    va = sum((u - ma) ** 2 for u in a)
    vb = sum((v - mb) ** 2 for v in b)
    if va == 0 or vb == 0:
        raise ValueError("a rank correlation is undefined when one scoring gives every candidate the same value")
    return cov / math.sqrt(va * vb)


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation ρ ∈ [−1, 1] (ties: average ranks)."""
    xs, ys = _pair(x, y)
    return _pearson(rankdata(xs), rankdata(ys))


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's τ_b ∈ [−1, 1] (accounts for ties)."""
    xs, ys = _pair(x, y)
    p = q = tx = ty = 0
    for i in range(len(xs)):
        for j in range(i + 1, len(xs)):
            dx, dy = xs[i] - xs[j], ys[i] - ys[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                tx += 1
            elif dy == 0:
                ty += 1
            elif (dx > 0) == (dy > 0):
                p += 1
            else:
                q += 1
    denom = math.sqrt((p + q + tx) * (p + q + ty))
    if denom == 0:
        raise ValueError("Kendall's tau is undefined when one scoring gives every candidate the same value")
    return (p - q) / denom


def same_winner(x: Sequence[float], y: Sequence[float]) -> bool:
    """Whether the highest score of ``x`` and of ``y`` belong to the same candidate (a shared tie for first counts)."""
    xs, ys = _pair(x, y)
    best_x = {i for i, v in enumerate(xs) if v == max(xs)}
    best_y = {i for i, v in enumerate(ys) if v == max(ys)}
    return bool(best_x & best_y)


def ranking(names: Sequence[str], scores: Sequence[float]) -> list[str]:
    """``names`` ordered from the highest score to the lowest (stable for ties)."""
    values = _values(scores, "scores")
    if len(values) != len(names):
        raise ValueError(f"got {len(names)} names and {len(values)} scores")
    return [names[i] for i in sorted(range(len(values)), key=lambda i: -values[i])]
