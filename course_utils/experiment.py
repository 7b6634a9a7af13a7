"""Run one method at one IPC under the evaluation protocol and record the result.

Notebooks call ``run_method`` in a loop over methods and IPCs; each call selects/distils the set,
evaluates it with ``training.evaluate`` under the profile's settings, and writes one JSON record
(``results.save_record``) so that a batch of reruns ends with one table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from . import methods, results, training
from .data import ImageSet
from .synthetic import SyntheticSet


@dataclass
class MethodRun:
    method: str
    ipc: int
    synthetic: SyntheticSet
    result: training.EvalResult
    distill_seconds: float
    record_path: Path | None


def eval_kwargs(cfg: Mapping[str, Any]) -> dict:
    """The protocol settings of a profile (``config.resolve``) as keyword arguments of ``training.evaluate``."""
    return {"model": cfg["model"], "model_kwargs": {"width": cfg["model_width"]} if cfg["model"].startswith("convnet") else {},
            "num_models": cfg["eval_models"], "epochs": cfg["eval_epochs"], "dsa": cfg["eval_dsa"],
            "seed": cfg["seed"], "device": cfg["device"]}


def run_method(method: str, train_set: ImageSet, test_set: ImageSet, ipc: int, *, cfg: Mapping[str, Any],
               generator: torch.Generator, experiment: str, save: bool = True, **method_kwargs) -> MethodRun:
    """Distil (or select) ``ipc`` images per class with ``method``, evaluate them, record the run."""
    t0 = time.perf_counter()
    syn = methods.distill(method, train_set, ipc, generator=generator, **method_kwargs)
    distill_seconds = time.perf_counter() - t0
    kwargs = eval_kwargs(cfg)
    result = training.evaluate_set(syn, test_set, **kwargs)
    path = None
    if save:
        params = {"ipc": ipc, "profile": cfg.get("profile"), **{k: v for k, v in kwargs.items() if k != "device"},
                  "method_kwargs": {k: v for k, v in method_kwargs.items() if not isinstance(v, torch.nn.Module)},
                  "test_images": len(test_set)}
        record = results.make_record(experiment, method=method, dataset=train_set.name, params=params,
                                     seed=cfg["seed"], device=result.settings["device"],
                                     metrics={"mean": result.mean, "std": result.std, "accuracies": result.accuracies},
                                     timings={"distill": distill_seconds, "evaluate_train": sum(result.train_seconds),
                                              "evaluate_test": sum(result.test_seconds)})
        path = results.save_record(record)
    return MethodRun(method, ipc, syn, result, distill_seconds, path)


def run_full_data(train_set: ImageSet, test_set: ImageSet, *, cfg: Mapping[str, Any], experiment: str,
                  save: bool = True) -> tuple[torch.nn.Module, training.EvalResult, Path | None]:
    """Train the full-data baseline for ``cfg['full_epochs']`` epochs and record it (method ``full_data``).

    Returns the trained network, its result and the record's path.
    """
    kwargs = eval_kwargs(cfg)
    net, result = training.train_full(train_set, test_set, epochs=cfg["full_epochs"], model=kwargs["model"],
                                      model_kwargs=kwargs["model_kwargs"], seed=cfg["seed"], device=cfg["device"],
                                      dsa=kwargs["dsa"])
    path = None
    if save:
        params = {"profile": cfg.get("profile"), "model": kwargs["model"], "model_kwargs": kwargs["model_kwargs"],
                  "epochs": cfg["full_epochs"], "dsa": kwargs["dsa"], "train_images": len(train_set),
                  "test_images": len(test_set)}
        record = results.make_record(experiment, method="full_data", dataset=train_set.name, params=params,
                                     seed=cfg["seed"], device=result.settings["device"],
                                     metrics={"mean": result.mean, "std": result.std, "accuracies": result.accuracies},
                                     timings={"train": result.train_seconds[0], "test": result.test_seconds[0]})
        path = results.save_record(record)
    return net, result, path
