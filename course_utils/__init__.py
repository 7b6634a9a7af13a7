"""course_utils: the small, tested package behind the dataset-distillation course notebooks.

Its face: ``from course_utils import data, samplers, training, viz, ...`` gives the modules the notebooks use,
wherever they live. The package is layered; a layer imports only the layers above it in this list:

- ``core``        checks of user values, seeds and generators, atomic writes, progress bars, timing
- ``records``     result records, checkpoints, synthetic sets, the papers' reported numbers
- ``data``        datasets (and your own image folders), ZCA whitening, augmentation (DSA, the DC paper's)
- ``nets``        the models, network samplers (what ``model=`` means everywhere), expert trajectories
- ``evaluation``  the named evaluation protocols, training and testing fresh networks, NAS proxy, rankings
- ``methods``     the one outer loop and one module per method, each owning its facts (``methods.REGISTRY``)
- ``course``      profiles and the one-call notebook setup, claims, figures, experiments, notebook 08's benchmark
- ``ops``         course operations: batch reruns, the results table, graded assignments, replayed long cells

``python -m course_utils`` lists the command-line tools.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__version__ = "0.2.0"

#: The face: a short name for each module the notebooks import, and where it lives.
FACE: dict[str, str] = {
    "validate": "core.validate",
    "repro": "core.repro",
    "cost": "core.cost",
    "results": "records.results",
    "checkpoint": "records.checkpoint",
    "synthetic": "records.synthetic",
    "papers": "records.papers",
    "summary": "records.summary",
    "data": "data",
    "folders": "data.folders",
    "zca": "data.zca",
    "augment": "data.augment",
    "models": "nets.models",
    "samplers": "nets.samplers",
    "trajectories": "nets.trajectories",
    "protocol": "evaluation.protocol",
    "training": "evaluation.training",
    "nas": "evaluation.nas",
    "ranking": "evaluation.ranking",
    "methods": "methods",
    "loop": "methods.loop",
    "matching": "methods.matching",
    "hypergrad": "methods.hypergrad",
    "ridge": "methods.ridge",
    "feature_maps": "methods.feature_maps",
    "course": "course",
    "config": "course.config",
    "claims": "course.claims",
    "viz": "course.viz",
    "experiment": "course.experiment",
    "benchmark": "course.benchmark",
    "gather": "ops.gather",
}

__all__ = ["__version__", "FACE", *FACE]


def __getattr__(name: str) -> ModuleType:
    """``course_utils.<face name>``: the module, imported on first use (PEP 562)."""
    if name in FACE:
        module = importlib.import_module(f"{__name__}.{FACE[name]}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}; the face offers {', '.join(FACE)}")


def __dir__() -> list[str]:
    return sorted({*globals(), *FACE})
