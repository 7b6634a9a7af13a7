"""One module per method, all with the same entry point::

    distill(train_set, ipc, *, generator, model=None, callback=None, **hparams) -> SyntheticSet

``train_set`` is a ``data.ImageSet``, ``ipc`` the images per class, ``generator`` the only source of
randomness, ``model`` the network the method uses (a name or a module, per method), ``callback(step, info)``
is called with progress. Unknown hyperparameters raise ``TypeError`` naming the valid ones, so
notebook 08 can loop over methods without special cases.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: method name -> module under course_utils.methods
_MODULES = {
    "random": "random_subset",
    "herding": "herding",
    "forgetting": "forgetting",
    "krr_closed_form": "krr_closed_form",   # notebook 01
    "kip": "kip",                           # notebook 01
    "dd": "bilevel",                        # notebook 02
    "dc": "dc",                             # notebook 03
    "dsa": "dsa",                           # notebook 03
}
METHOD_NAMES = tuple(_MODULES)


def get_method(name: str) -> ModuleType:
    """The module implementing ``name`` (it has ``distill``)."""
    key = name.lower()
    if key not in _MODULES:
        raise ValueError(f"unknown method {name!r}; valid: {', '.join(METHOD_NAMES)}")
    return importlib.import_module(f"{__name__}.{_MODULES[key]}")


def distill(name: str, train_set, ipc: int, **kwargs):
    """``get_method(name).distill(train_set, ipc, **kwargs)``."""
    return get_method(name).distill(train_set, ipc, **kwargs)
