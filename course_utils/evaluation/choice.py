"""Choices made on validation data, never on the test split.

A notebook that picks a learning rate, a pool or a variant scores each option on a validation split
(:func:`course_utils.data.splits.carve_validation`) through :func:`choose`; the test split is refused there, so test
accuracy can only be the number reported for what was chosen.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from ..data.datasets import ImageSet

__all__ = ["Choice", "choose", "refuse_test"]


@dataclass(frozen=True)
class Choice:
    """What :func:`choose` picked, the score of every option and the data they were measured on."""

    best: Hashable
    scores: dict[Hashable, float]
    measured_on: str

    def __str__(self) -> str:
        shown = ", ".join(f"{k}: {v:.2f}" for k, v in self.scores.items())
        return f"chose {self.best} on the {self.measured_on} split ({shown})"


def refuse_test(dataset: Any, what: str) -> None:
    """Raise if ``dataset`` is the test split: ``what`` is a choice and the test split only reports numbers."""
    if getattr(dataset, "role", None) == "test":
        raise ValueError(
            f"{what} would be chosen on the test split; valid: a validation split carved from the training set "
            "(course_utils.data.splits.carve_validation); the test split is scored once, for the numbers reported"
        )


def choose(
    options: Iterable[Hashable],
    score: Callable[[Hashable, ImageSet], float],
    validation: ImageSet,
    *,
    what: str = "an option",
    higher_is_better: bool = True,
) -> Choice:
    r""":math:`\arg\max_{o} \text{score}(o, V)` over ``options`` (:math:`\arg\min` when ``higher_is_better`` is
    False) on the validation set :math:`V`; ties go to the option listed first. The test split is refused before any
    option is scored, and so is a score that is not a finite number."""
    if not isinstance(validation, ImageSet):
        raise TypeError(f"validation must be an ImageSet, got {type(validation).__name__}")
    refuse_test(validation, what)
    options = list(options)
    if not options:
        raise ValueError(f"no options to choose {what} from")
    if len(set(options)) != len(options):
        raise ValueError(f"options to choose {what} from must be distinct, got {options}")
    scores = {}
    for option in options:
        value = score(option, validation)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"the score of {what} {option!r} must be a finite number, got {value!r}")
        scores[option] = float(value)
    sign = 1.0 if higher_is_better else -1.0
    best = max(options, key=lambda o: (sign * scores[o], -options.index(o)))
    return Choice(best, scores, validation.role or "unnamed")
