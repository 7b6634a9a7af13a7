"""A validation split carved from the training set.

Every choice a notebook or a benchmark makes (a learning rate, a pool of networks, a budget, which variant to show)
is made on validation accuracy; the test split is scored once, for the numbers reported. The split is drawn per class
from a CPU run generator, so the same seed carves the same images on every device.
"""

from __future__ import annotations

import torch

from ..core import repro, validate
from .datasets import ImageSet

__all__ = ["carve_validation"]


def carve_validation(train: ImageSet, per_class: int, seed: int) -> tuple[ImageSet, ImageSet]:
    r"""``(rest, validation)``: ``per_class`` images of every class set aside from ``train``.

    .. math:: V = \bigcup_c S_c,\quad S_c \subset \{i : y_i = c\},\ |S_c| = \text{per\_class},\qquad R = T \setminus V

    with each :math:`S_c` uniform over the class, drawn from ``repro.run_generator(seed, "validation", dataset,
    per_class)``. ``rest`` keeps ``train``'s order and role, ``validation`` (role ``"validation"``) lists class 0
    first. The two are disjoint and together are ``train``. A class with no more than ``per_class`` images (nothing
    left to learn from) and the test split are refused.
    """
    if not isinstance(train, ImageSet):
        raise TypeError(f"train must be an ImageSet, got {type(train).__name__}")
    if train.role not in ("train", None):
        raise ValueError(
            f"a validation split is carved from the training set, got a set with role={train.role!r}; "
            "valid: a set with role 'train' (or None: built by hand)"
        )
    validate.positive_int("per_class", per_class)
    validate.non_negative_int("seed", seed)
    counts = train.class_counts.tolist()
    short = {c: k for c, k in enumerate(counts) if k <= per_class}
    if short:
        listed = ", ".join(f"class {c} has {k}" for c, k in list(short.items())[:10])
        raise ValueError(
            f"per_class={per_class} leaves no training image in some classes of {train.name} ({listed}); "
            f"valid: 1 <= per_class < {min(counts)}"
        )
    g = repro.run_generator(seed, "validation", train.name, per_class)
    picked = train.sample_per_class(per_class, g).flatten()
    keep = torch.ones(len(train), dtype=torch.bool, device=train.device)
    keep[picked] = False
    rest = train.subset(keep.nonzero().flatten())
    held = train.subset(picked)
    held.role = "validation"
    return rest, held
