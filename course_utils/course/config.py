"""Profiles (quick / standard / full) and the settings of a notebook: merged, checked, compared with the text's run.

Every notebook has one papermill ``parameters`` cell whose defaults are the quick profile's; ``course.setup`` passes
its values to ``resolve(profile, notebook=..., **parameters)``: a parameter left as ``None`` takes the profile's
value (``profiles.PROFILES`` and the notebook's entry of ``profiles.NOTEBOOK_PROFILES``), an explicit one overrides
it, and every value is checked before any work. A value that sets a method's hyperparameter
(``profiles.METHOD_PARAMETERS``) is checked by that method's ``Config``, the error naming the notebook's parameter
(``dm_iterations=0: steps must be an integer >= 1, got 0``); every other setting by its rule (``rules.RULES``); then
the notebook's cross-checks (``rules.CROSS_CHECKS``). Errors name the bad value and the valid ones.

papermill only *warns* about a parameter name the notebook does not declare, so a typo in a
sweep would silently run the defaults. ``check_notebook_parameters(globals())`` turns that into
an error: it reads the kernel's input history (``In``), finds the cell papermill injected
(it starts with ``# Parameters``) and compares its names with the annotated names of the
``parameters`` cell just before it.
"""

from __future__ import annotations

import ast
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from ..core import validate as checks
from . import rules
from .profiles import METHOD_PARAMETERS, NOTEBOOK_PROFILES, PROFILE_NAMES, PROFILES

__all__ = [
    "PROFILE_NAMES",
    "PROFILES",
    "NOTEBOOK_PROFILES",
    "NOTEBOOK_DEFAULTS",
    "CHECKED_DATASETS",
    "Settings",
    "setting_names",
    "validate",
    "resolve",
    "is_checked",
    "check_notebook_parameters",
]

#: The defaults every notebook's parameters cell declares besides its profile (a test checks that they agree).
NOTEBOOK_DEFAULTS: Mapping[str, Any] = MappingProxyType({"dataset": "mnist", "seed": 0})
#: The datasets every notebook's claims were measured on, each in every profile's default settings: a claim of the
#: text holds for each of them (a margin that differs is stated per dataset). CIFAR needs a download: unchecked here.
CHECKED_DATASETS: tuple[str, ...] = ("mnist", "fashion_mnist")


class Settings(dict):
    """A dict with attribute access (``cfg.eval_epochs``) that records what a run used."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no setting {name!r}; known: {', '.join(sorted(self))}") from None

    @property
    def notebook(self) -> str | None:
        """The notebook these settings belong to (None: the shared settings only)."""
        return self.__dict__.get("_notebook")

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.items()}

    def parameters(self) -> dict:
        """The settings a notebook's parameters cell can set (those ``resolve`` was given), e.g. to print them."""
        return {k: self[k] for k in getattr(self, "_parameters", self) if k in self}

    def hparams(self, method: str) -> dict:
        """``{Config field: value}``: the hyperparameters of ``method`` that the notebook's parameters set for every
        run of it (``profiles.METHOD_PARAMETERS``), e.g. ``dm.Config(**cfg.hparams("dm"))``. A field set run by run
        (the steps of two runs) is left to the notebook."""
        feeds = METHOD_PARAMETERS.get(self.notebook or "", {})
        if method not in feeds:
            raise ValueError(
                f"{self.notebook or 'the shared settings'} set no hyperparameter of {method!r}; "
                f"they set those of: {', '.join(feeds) or 'no method'}"
            )
        return {field: self[name] for field, name in feeds[method].items() if isinstance(name, str)}


def setting_names(notebook: str) -> set[str]:
    """The names of ``notebook``'s settings: the shared ones, its own, ``dataset``, ``seed`` and ``profile``."""
    checks.choice("notebook", notebook, tuple(NOTEBOOK_PROFILES))
    return {"profile", *NOTEBOOK_DEFAULTS, *PROFILES["quick"], *NOTEBOOK_PROFILES[notebook]["quick"]}


def _names(sources: str | Iterable[str]) -> tuple[str, ...]:
    return (sources,) if isinstance(sources, str) else tuple(sources)


def _check_hyperparameters(settings: Mapping[str, Any], notebook: str) -> None:
    """Each value that sets a method's hyperparameter, through the method's own ``Config`` (its other fields at their
    defaults): the error names the notebook's parameter and its value, then the ``Config``'s message."""
    from .. import methods

    for method, fields in METHOD_PARAMETERS.get(notebook, {}).items():
        config_cls = methods.get_method(method).Config
        for field, sources in fields.items():
            for name in _names(sources):
                try:
                    config_cls(**{field: settings[name]})
                except ValueError as exc:
                    raise ValueError(f"{name}={settings[name]!r}: {exc}") from None


def validate(settings: dict[str, Any], notebook: str | None = None) -> None:
    """Check every value of ``settings`` (in place: a rule may spell a value its own way); raise ``ValueError``
    naming the bad one. A name that is neither a method's hyperparameter in ``notebook`` nor has a rule is an error
    in a course notebook and left alone outside one (a notebook of your own may have settings of its own)."""
    fed = {
        n for fields in METHOD_PARAMETERS.get(notebook or "", {}).values() for s in fields.values() for n in _names(s)
    }
    for key, value in settings.items():
        if key in fed:
            continue
        rule = rules.RULES.get(key)
        if rule is not None:
            settings[key] = rule(key, value)
        elif notebook is not None:
            raise ValueError(
                f"{notebook}: the setting {key!r} has no check; give it a rule (rules.RULES) or make it a method's "
                "hyperparameter (profiles.METHOD_PARAMETERS)"
            )
    if notebook is not None:
        _check_hyperparameters(settings, notebook)


def resolve(profile: str = "quick", notebook: str | None = None, **parameters: Any) -> Settings:
    """Settings of ``profile`` (and of ``notebook``'s own entry) with every non-``None`` parameter overriding, each
    value checked, then the notebook's cross-checks.

    >>> resolve("quick", dataset="fashion_mnist").eval_epochs
    50
    """
    checks.choice("profile", profile, PROFILE_NAMES)
    settings = Settings(PROFILES[profile])
    if notebook is not None:
        known = setting_names(notebook)
        unknown = [k for k in parameters if k not in known]
        if unknown:
            raise ValueError(
                f"{notebook} has no setting {', '.join(map(repr, unknown))}; its settings: {', '.join(sorted(known))}"
            )
        settings.update(NOTEBOOK_PROFILES[notebook][profile])
    settings["profile"] = profile
    settings._parameters = ("profile", *parameters)
    settings._notebook = notebook
    for key, value in parameters.items():
        if value is not None:
            settings[key] = tuple(value) if isinstance(value, list) else value
    validate(settings, notebook)
    cross_check = rules.CROSS_CHECKS.get(notebook or "")
    if cross_check is not None:
        cross_check(settings, {k for k, v in parameters.items() if v is not None})
    return settings


def is_checked(settings: Mapping[str, Any], notebook: str | None = None) -> bool:
    """Whether the text's claims were measured for ``settings``: ``notebook``'s defaults for their profile with any
    device and any dataset of ``CHECKED_DATASETS``. ``claims.check`` is strict there and reports elsewhere.

    >>> is_checked(resolve("quick", dataset="fashion_mnist", seed=0)), is_checked(resolve("quick", seed=0, ipcs=[3]))
    (True, False)
    """
    if settings.get("dataset") not in CHECKED_DATASETS:
        return False
    defaults = {**NOTEBOOK_DEFAULTS, "dataset": settings["dataset"]}
    reference = resolve(settings["profile"], notebook=notebook, **defaults)
    return {k: v for k, v in settings.items() if k != "device"} == {k: v for k, v in reference.items() if k != "device"}


def _assigned_names(source: str, *, annotated_only: bool) -> list[str]:
    names = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
        elif isinstance(node, ast.Assign) and not annotated_only:
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
    return names


def check_notebook_parameters(namespace: Mapping[str, Any]) -> list[str]:
    """Raise if papermill injected a parameter that the notebook's ``parameters`` cell does not declare.

    Returns the declared names (empty when the notebook was not run by papermill). Works from the
    kernel's input history: papermill executes the injected cell (first line ``# Parameters``)
    right after the tagged ``parameters`` cell, whose parameters are annotated (``name: type = value``).
    """
    history = namespace.get("In")
    if not isinstance(history, list):
        return []
    for i in range(len(history) - 1, 0, -1):
        if history[i].lstrip().startswith("# Parameters"):
            injected = _assigned_names(history[i], annotated_only=False)
            declared = _assigned_names(history[i - 1], annotated_only=True)
            unknown = [n for n in injected if n not in declared]
            if unknown:
                raise ValueError(
                    f"unknown parameter(s) {', '.join(map(repr, unknown))}: this notebook declares "
                    f"{', '.join(declared)}"
                )
            return declared
    return []
