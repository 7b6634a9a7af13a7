"""A notebook's setup in one call, right after its parameters cell::

    cfg = course.setup(globals(), notebook="04_distribution_matching")
    train, test_eval = cfg.load_data()

``setup`` reads the values of the parameters the ``parameters`` cell declares (its annotated names, which Python
and IPython keep in ``namespace["__annotations__"]``), refuses a name papermill injected that the cell does not
declare (``config.check_notebook_parameters``), resolves the profile and checks every value before any work
(``config.resolve``), seeds everything (``repro.seed_everything``; the CPU generator it returns is
``cfg.generator``), resolves the device and prints the settings. ``cfg.load_data()`` gives the notebook's data, drawn
as ``profiles.DATA`` says, on the device.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from ..core import repro
from ..data import datasets, splits
from ..data.datasets import ImageSet
from . import config, profiles

__all__ = ["NotebookSettings", "setup", "notebook_name"]


class NotebookSettings(config.Settings):
    """A notebook's settings (``config.Settings``: its items are the settings) with the CPU generator that seeding
    returned (``generator``) and its data (``load_data``)."""

    generator: Any = None

    @classmethod
    def of(cls, settings: config.Settings) -> NotebookSettings:
        """``settings`` (from ``config.resolve``) as a notebook's settings, with what they know of their notebook."""
        cfg = cls(settings)
        cfg.__dict__.update(settings.__dict__)
        return cfg

    def load_data(self, dataset: str | None = None, *, validation_per_class: int | None = None) -> tuple[ImageSet, ...]:
        """``(train, test)`` of ``dataset`` (default: the notebook's), both on the device; with
        ``validation_per_class``, ``(train, validation, test)``.

        ``train`` is what the notebook learns from: the whole training set, or where the notebook has one
        (``profiles.DATA``), its class-balanced subset of ``train_per_class`` images per class, drawn from the run
        generator ``(seed, stream, dataset, "subset")`` (ZCA-whitened first where the notebook whitens: its ``zca``
        setting, None meaning CIFAR only). ``test`` is what accuracy is measured on: ``test_per_class`` images per
        class drawn from ``repro.make_generator(0)`` (the same images for every seed), or the whole test set.
        ``validation`` (role ``"validation"``) is what the notebook's choices are made on: ``validation_per_class``
        training images per class that ``train`` does not hold (``splits.carve_validation``, seeded by the notebook's
        seed): taken from the training images outside the subset, or, where the notebook learns from the whole
        training set, set aside from it (``train`` is then the rest). Never a test image.
        """
        name, full, test, picked = self._split(dataset)
        how = profiles.DATA[self.notebook]
        if how["test_subset"] and self.test_per_class is not None:
            test = test.balanced_subset(self.test_per_class, repro.make_generator(0))
        train = full if picked is None else full.subset(picked)
        if validation_per_class is None:
            return train.to(self.device), test.to(self.device)
        if picked is None:
            train, held = splits.carve_validation(full, validation_per_class, self.seed)
        else:
            rest = torch.ones(len(full), dtype=torch.bool, device=full.device)
            rest[picked] = False
            _, held = splits.carve_validation(full.subset(rest.nonzero().flatten()), validation_per_class, self.seed)
        return train.to(self.device), held.to(self.device), test.to(self.device)

    def _split(self, dataset: str | None) -> tuple[str, ImageSet, ImageSet, torch.Tensor | None]:
        """The dataset's name, its (whitened where the notebook whitens) training and test sets, and the positions
        of the notebook's training subset in the training set (None: the whole set)."""
        name = self.dataset if dataset is None else dataset
        how = profiles.DATA[self.notebook]
        train, test = datasets.load(name)
        if how.get("zca") is not None:
            whiten = self[how["zca"]]
            if whiten if whiten is not None else name.startswith("cifar"):  # the paper whitens CIFAR
                train, test = datasets.whiten(train, test)
        per_class = self[how["train_per_class"]] if how.get("train_per_class") else None
        if per_class is None:
            return name, train, test, None
        picked = train.sample_balanced(per_class, repro.run_generator(self.seed, how["stream"], name, "subset"))
        return name, train, test, picked


def notebook_name(notebook: str) -> str:
    """The notebook's file name without ``.ipynb`` (``"04_distribution_matching"``), from it or its number."""
    known = tuple(profiles.NOTEBOOK_PROFILES)
    if notebook in known:
        return notebook
    found = [name for name in known if isinstance(notebook, str) and name.split("_")[0] == notebook.zfill(2)]
    if len(found) != 1:
        raise ValueError(f"notebook={notebook!r} is not valid; valid: {', '.join(known)} (or their numbers)")
    return found[0]


def setup(namespace: Mapping[str, Any], notebook: str) -> NotebookSettings:
    """The settings of ``notebook`` for the parameter values in ``namespace`` (a notebook's ``globals()``), checked,
    with everything seeded and the device resolved; prints them. See the module docstring."""
    notebook = notebook_name(notebook)
    config.check_notebook_parameters(namespace)  # papermill only warns about unknown names: make it an error
    declared = namespace.get("__annotations__", {})
    if "profile" not in declared:
        raise ValueError(f"{notebook}: no parameters cell declares `profile: str = ...` before this call")
    # names annotated in later cells, and the notebook's own switches (profiles.OWN_PARAMETERS), are no settings
    names = config.setting_names(notebook)
    values = {name: namespace[name] for name in declared if name in names and name != "profile"}
    settings = config.resolve(namespace["profile"], notebook=notebook, **values)
    cfg = NotebookSettings.of(settings)
    cfg.generator = repro.seed_everything(cfg.seed)
    cfg["device"] = str(repro.resolve_device(cfg.device))
    print(cfg.parameters())
    return cfg
