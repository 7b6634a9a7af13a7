"""What a valid setting is, for the settings no method's ``Config`` checks.

``RULES``: one rule per setting name (a name means the same in every notebook: ``cross_ipc`` is an IPC in 03 and
08). A rule raises ``ValueError`` naming the setting, its value and what is valid, and returns the value (a name
with several spellings comes back in its own: ``feature_map="RFF"`` is ``"random_fourier"``).
``CROSS_CHECKS``: per notebook, the checks that relate its settings to each other; they run after every single
value passed, still before any work. ``config.resolve`` runs both.
"""

from __future__ import annotations

from typing import Any, Callable, Collection

from .. import methods
from ..core import validate
from ..data import datasets
from ..evaluation import protocol
from ..nets import models
from .profiles import PROFILE_NAMES

__all__ = ["Rule", "RULES", "CROSS_CHECKS"]

Rule = Callable[[str, Any], Any]


def _positive(key: str, value: Any) -> int:
    return validate.positive_int(key, value)


def _positive_or_all(key: str, value: Any) -> int | None:
    """None: every image (a ``*_per_class``), or the protocol's own (``eval_epochs``)."""
    return validate.positive_int(key, value, allow_none=True)


def _listed(key: str, value: Any) -> tuple:
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{key} must list at least one value, got {value!r}")
    return value


def _positive_list(key: str, value: Any) -> tuple:
    for i, v in enumerate(_listed(key, value)):
        validate.positive_int(f"{key}[{i}]", v)
    return value


def _ipc_list(key: str, value: Any) -> tuple:
    for v in _listed(key, value):
        try:
            validate.positive_int("ipc", v)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
    return value


def _widths(key: str, value: Any) -> tuple:
    """One width per architecture; None: the architecture's own."""
    for i, v in enumerate(_listed(key, value)):
        validate.positive_int(f"{key}[{i}]", v, allow_none=True)
    return value


def _models(key: str, value: Any) -> Any:
    for name in [value] if isinstance(value, str) else _listed(key, value):
        if str(name).lower() not in models.MODEL_NAMES:
            raise ValueError(f"{key}: unknown model {name!r}; valid: {', '.join(models.MODEL_NAMES)}")
    return value


def _datasets(key: str, value: Any) -> Any:
    for name in [value] if isinstance(value, str) else _listed(key, value):
        datasets.dataset_info(name)  # raises with the list of valid datasets
    return value


def _datasets_or_none(key: str, value: Any) -> Any:
    """None: the notebook's dataset only."""
    return None if value is None else _datasets(key, value)


def _methods(key: str, value: Any) -> tuple | None:
    if value is None and key == "methods":  # the benchmark table: every registered method
        return None
    for name in _listed(key, value):
        methods.info(name)  # raises with the list of valid methods
    return value


def _one_of(*valid: Any) -> Rule:
    return lambda key, value: validate.choice(key, value, valid)


def _some_of(*valid: str) -> Rule:
    def rule(key: str, value: Any) -> tuple:
        for name in _listed(key, value):
            if name not in valid:
                raise ValueError(f"{key}: {name!r} is not valid; valid: {', '.join(valid)}")
        return value

    return rule


def _bool_or_none(key: str, value: Any) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"{key} must be True, False or None (the paper's choice for the dataset), got {value!r}")
    return value


def _seed(key: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{key} must be a non-negative integer, got {value!r}")
    return value


def _device(key: str, value: Any) -> str:
    if value != "auto" and value != "cpu" and not str(value).startswith("cuda"):
        raise ValueError(f"{key}={value!r} is not valid; valid: auto, cpu, cuda, cuda:N")
    return value


def _feature_map(key: str, value: Any) -> str:
    from ..methods import feature_maps

    return feature_maps.canonical_name(value)  # raises with the list of valid feature maps


#: The rule of every setting that no method's ``Config`` checks.
RULES: dict[str, Rule] = {
    # every notebook's
    "profile": _one_of(*PROFILE_NAMES),
    "dataset": _datasets,
    "seed": _seed,
    "device": _device,
    "model": _models,
    "model_width": _positive,
    "eval_protocol": _one_of(*protocol.PROTOCOL_NAMES, "paper"),
    "eval_epochs": _positive_or_all,
    "eval_models": _positive,
    "random_draws": _positive,
    "test_per_class": _positive_or_all,
    "full_epochs": _positive,
    "ipcs": _ipc_list,
    "ipc": _positive,
    "coreset_pool_per_class": _positive_or_all,
    "forgetting_epochs": _positive,
    "train_per_class": _positive_or_all,
    # 01
    "feature_map": _feature_map,
    "figure_datasets": _datasets,
    # 02
    "dd_random_ipc": _positive,
    "dd_eval_models": _positive,
    "dd_checkpoint": _one_of(True, False),
    "cost_unroll_lengths": _positive_list,
    "cost_batch_size": _positive,
    # 03 (and 08: the cross-architecture table, the architecture-search proxy)
    "large_ipc_methods": _some_of("dc", "dsa"),
    "cross_ipc": _positive,
    "cross_distil_archs": _models,
    "cross_train_archs": _models,
    "cross_eval_models": _positive,
    "cross_test_per_class": _positive_or_all,
    "nas_ipc": _positive,
    "nas_depths": _positive_list,
    "nas_widths": _positive_list,
    "nas_full_per_class": _positive_or_all,
    "nas_full_epochs": _positive,
    # 04
    "cost_ipcs": _ipc_list,
    "cost_iterations": _positive,
    # 05
    "experts": _positive,
    "expert_train_epochs": _positive,
    "expert_per_class": _positive_or_all,
    "zca": _bool_or_none,
    "cost_syn_steps": _positive_list,
    # 06
    "pool": _models,
    "pool_width": _widths,
    "baseline_methods": _some_of("dc", "dd", "dsa", "dm"),
    "table_epochs": _positive,
    "table_models": _positive,
    "cost_inner_steps": _positive_list,
    "validation_per_class": _positive,
    # 07
    "snapshots": _positive_list,
    "curve_models": _positive,
    # 08
    "datasets": _datasets_or_none,
    "methods": _methods,
    "cross_methods": _methods,
    "cross_archs": _models,
    "cross_widths": _widths,
    "cross_epochs": _positive,
    "cross_models": _positive,
    "nas_methods": _methods,
    "folder_per_class": _positive,
    "folder_ipc": _positive,
}


# ---------------------------------------------------------------------------------------------------- cross-checks
def _unroll_divides_ipc(settings: dict, given: Collection[str]) -> None:
    """02: the random-init run's groups must split its images evenly (it used to fail a minute in)."""
    from ..methods import bilevel

    try:
        bilevel.step_groups(1, settings["dd_random_ipc"], settings["dd_random_distill_steps"])
    except ValueError as exc:
        raise ValueError(f"dd_random_distill_steps and dd_random_ipc: {exc}") from None


def _one_width_per_family(settings: dict, given: Collection[str]) -> None:
    """06: ``pool_width`` has one entry per family of ``pool``."""
    if len(settings["pool_width"]) != len(settings["pool"]):
        raise ValueError(
            f"pool_width has {len(settings['pool_width'])} entries for {len(settings['pool'])} families: one per family"
        )


def _snapshots_within_the_run(settings: dict, given: Collection[str]) -> None:
    """07: every snapshot is an outer iteration of the run."""
    if max(settings["snapshots"]) > settings["accdd_iterations"]:
        raise ValueError(
            f"snapshots={list(settings['snapshots'])} lie beyond accdd_iterations={settings['accdd_iterations']}"
        )


def _one_table(settings: dict, given: Collection[str]) -> None:
    """08: one protocol for the whole table; every method and IPC of the grid has settings; sections 4 and 5 reuse
    the table's sets, so their IPC follows the table's IPCs when left to the profile, and their methods are the
    table's; one width per architecture of the cross-architecture table."""
    from . import benchmark

    if settings["eval_protocol"] == "paper":
        raise ValueError(
            "eval_protocol='paper' scores each row by its own paper's protocol: this table needs ONE protocol"
        )
    if settings["methods"] is None:  # every registered method (a method added to the registry is in the table)
        settings["methods"] = tuple(methods.REGISTRY)
    grid = benchmark.check_grid(settings, settings["methods"], settings["ipcs"])
    if "cross_ipc" not in given and settings["cross_ipc"] not in settings["ipcs"]:
        settings["cross_ipc"] = min(settings["ipcs"])
    if "nas_ipc" not in given and settings["nas_ipc"] not in settings["ipcs"]:
        settings["nas_ipc"] = max(settings["ipcs"])
    for key, ipc_key in (("cross_methods", "cross_ipc"), ("nas_methods", "nas_ipc")):
        missing = [m for m in settings[key] if m not in grid]
        if missing or settings[ipc_key] not in settings["ipcs"]:
            raise ValueError(
                f"{key} {missing} and {ipc_key}={settings[ipc_key]} must come from the table: methods {grid}, "
                f"ipcs {list(settings['ipcs'])}"
            )
    if len(settings["cross_widths"]) != len(settings["cross_archs"]):
        raise ValueError(
            f"cross_widths has {len(settings['cross_widths'])} entries for {len(settings['cross_archs'])} "
            "architectures: one each"
        )


#: ``{notebook: check(settings, given)}``; ``given``: the names of the parameters set explicitly (not None). A
#: cross-check may complete a setting left to the profile (08: the IPC of sections 4 and 5).
CROSS_CHECKS: dict[str, Callable[[dict, Collection[str]], None]] = {
    "02_bilevel_distillation": _unroll_divides_ipc,
    "06_zen_cross_architecture": _one_width_per_family,
    "07_model_augmentation": _snapshots_within_the_run,
    "08_benchmark_and_applications": _one_table,
}
