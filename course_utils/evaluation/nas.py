"""A distilled set as a proxy for neural architecture search (notebooks 03 and 08).

Training each candidate architecture on a tiny set instead of the real data is orders of magnitude cheaper; the set
is a good proxy if it **ranks** the candidates as the real data does. ``reference_scores`` trains every candidate on
real data (``training.train_full``), ``proxy_scores`` on a set (``training.evaluate_set``, the caller's protocol),
and ``agreement`` compares the two scorings: Spearman's ρ and Kendall's τ (``course_utils.ranking``) and whether both
pick the same winner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..core import validate
from ..data.datasets import ImageSet
from ..nets.samplers import FreshInit
from ..records.synthetic import SyntheticSet
from . import ranking, training

__all__ = ["Agreement", "convnet_candidates", "reference_scores", "proxy_scores", "agreement"]


def convnet_candidates(depths: Sequence[int], widths: Sequence[int], width: int) -> dict[str, FreshInit]:
    """ConvNet candidates ``{"d<depth>-w<width>": a fresh ConvNet of that depth and width}``: every depth at
    ``width``, then depth 3 at each other width of ``widths``."""
    if not depths:
        raise ValueError("convnet_candidates needs at least one depth")
    for d in depths:
        validate.positive_int("depth", d)
    for w in (*widths, width):
        validate.positive_int("width", w)
    out = {f"d{d}-w{width}": FreshInit("convnet", depth=d, width=width) for d in depths}
    out.update({f"d3-w{w}": FreshInit("convnet", depth=3, width=w) for w in widths if w != width})
    return out


def reference_scores(
    train_set: ImageSet,
    test: ImageSet,
    candidates: Mapping[str, Any],
    *,
    epochs: int,
    seed: int = 0,
    device=None,
) -> tuple[dict[str, float], float]:
    """Each candidate (a network sampler or a model name) trained on ``train_set`` for ``epochs`` (plain training):
    ``({name: accuracy}, seconds)``."""
    scores, seconds = {}, 0.0
    for name, model in candidates.items():
        _, result = training.train_full(train_set, test, epochs=epochs, model=model, seed=seed, device=device)
        scores[name] = result.mean
        seconds += sum(result.train_seconds)
    return scores, seconds


def proxy_scores(
    syn: SyntheticSet,
    test: ImageSet,
    candidates: Mapping[str, Any],
    **evaluate_kwargs: Any,
) -> tuple[dict[str, float], float, str]:
    """Each candidate trained on the set ``syn`` (``training.evaluate_set`` with ``evaluate_kwargs``: protocol,
    num_models, seed, device, ...; ``model`` is the candidate): ``({name: accuracy}, seconds, protocol)``."""
    scores, seconds, protocol = {}, 0.0, ""
    for name, model in candidates.items():
        result = training.evaluate_set(syn, test, **{**evaluate_kwargs, "model": model})
        scores[name] = result.mean
        seconds += sum(result.train_seconds)
        protocol = str(result.protocol)
    return scores, seconds, protocol


@dataclass(frozen=True)
class Agreement:
    """How well a proxy scoring ranks the candidates as the reference does."""

    spearman: float
    kendall: float
    same_winner: bool
    proxy_ranking: list[str]
    reference_ranking: list[str]


def agreement(proxy: Mapping[str, float], reference: Mapping[str, float]) -> Agreement:
    """Spearman's ρ, Kendall's τ and the winners of two scorings of the same candidates (a ``ValueError`` names
    candidates that only one of them scored)."""
    if set(proxy) != set(reference):
        raise ValueError(f"the scorings differ in their candidates: {sorted(set(proxy) ^ set(reference))}")
    names = list(reference)
    x, y = [proxy[n] for n in names], [reference[n] for n in names]
    return Agreement(
        spearman=ranking.spearman(x, y),
        kendall=ranking.kendall_tau(x, y),
        same_winner=ranking.same_winner(x, y),
        proxy_ranking=ranking.ranking(names, x),
        reference_ranking=ranking.ranking(names, y),
    )
