"""Run one method at one IPC under an evaluation protocol and record the result.

Notebooks call ``run_method`` in a loop over methods and IPCs; each call selects/distils the set, evaluates it
with ``training.evaluate`` under the profile's protocol (``eval_protocol``: "plain", "dc", "dsa", or "paper":
the protocol of the method's own paper), and writes one JSON record (``results.save_record``) so that a batch of
reruns ends with one table.

Randomness per run: unless a generator is passed, each run draws from its own generator derived from
``(seed, method, dataset, ipc, variant, purpose)`` (``repro.run_generator``), so a result does not depend on
which runs a notebook made before it. A random subset is a draw, not a method with one answer: it is drawn
``random_draws`` times and its record holds the accuracies of every draw (mean over draws).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from .. import methods
from ..core import repro, tables, validate
from ..data.datasets import ImageSet
from ..evaluation import protocol, training
from ..nets import samplers
from ..records import papers, results
from ..records.synthetic import SyntheticSet

__all__ = [
    "cross_architecture",
    "cross_architecture_grid",
    "cross_architecture_markdown",
    "worst_column",
    "MethodRun",
    "eval_protocol",
    "eval_kwargs",
    "distill_model",
    "run_method",
    "record_set",
    "run_full_data",
    "save_set",
    "save_result",
]


@dataclass
class MethodRun:
    method: str
    ipc: int
    synthetic: SyntheticSet  # the (first) set
    result: training.EvalResult  # every draw's networks together
    distill_seconds: float
    record_path: Path | None
    draws: list[training.EvalResult] = field(default_factory=list)


#: The protocol a full-data baseline is compared under when a profile scores every row as its paper does.
FULL_DATA_PROTOCOL = "plain"


def eval_protocol(cfg: Mapping[str, Any], method: str | None, dataset: str) -> protocol.Protocol:
    """The protocol of a profile (``cfg["eval_protocol"]``, ``cfg["eval_epochs"]`` overriding its epochs); "paper":
    ``method``'s paper's (its registry entry; ``"full_data"``: ``FULL_DATA_PROTOCOL``)."""
    paper = None
    if method == "full_data":
        paper = FULL_DATA_PROTOCOL
    elif method is not None:
        paper = methods.paper_protocol(method)  # an unknown method: ValueError naming the valid ones
    return protocol.resolve(cfg.get("eval_protocol", "plain"), dataset, epochs=cfg.get("eval_epochs"), paper=paper)


def eval_kwargs(cfg: Mapping[str, Any], method: str | None = None, dataset: str | None = None) -> dict:
    """The evaluation settings of a profile as keyword arguments of ``training.evaluate``.

    ``method`` picks the paper's protocol when the profile says "paper"; ``dataset`` defaults to ``cfg["dataset"]``.
    """
    dataset = dataset or cfg["dataset"]
    return {
        "protocol": eval_protocol(cfg, method, dataset),
        "model": distill_model(cfg),
        "num_models": cfg["eval_models"],
        "seed": cfg["seed"],
        "device": cfg["device"],
    }


def distill_model(cfg: Mapping[str, Any], name: str | None = None) -> samplers.FreshInit:
    """The sampler a profile distils and evaluates with: a fresh ``name`` (default ``cfg["model"]``) at the
    profile's ``model_width`` (``samplers.with_width``)."""
    return samplers.with_width(name or cfg["model"], cfg.get("model_width"))


def _merge(results_: list[training.EvalResult]) -> training.EvalResult:
    if len(results_) == 1:
        return results_[0]
    first = results_[0]
    settings = {**first.settings, "draws": len(results_), "draw_means": [r.mean for r in results_]}
    return training.EvalResult(
        [a for r in results_ for a in r.accuracies],
        [t for r in results_ for t in r.train_seconds],
        [t for r in results_ for t in r.test_seconds],
        first.model,
        first.epochs,
        first.num_images,
        settings,
    )


def run_method(
    method: str,
    train_set: ImageSet,
    test_set: ImageSet,
    ipc: int,
    *,
    cfg: Mapping[str, Any],
    experiment: str,
    generator: torch.Generator | None = None,
    variant: str = "",
    draws: int | None = None,
    save: bool = True,
    extra_timings: Mapping[str, float] | None = None,
    **method_kwargs,
) -> MethodRun:
    """Distil (or select) ``ipc`` images per class with ``method``, evaluate them, record the run.

    ``variant`` names a setting of the same method (e.g. "noise-init") in the record and in the run's seed.
    ``draws``: sets made and evaluated (default ``cfg["random_draws"]`` for "random", else 1); every draw uses
    its own run generator (or continues ``generator`` when one is passed). ``extra_timings``: more seconds for the
    record's ``timings_s`` (e.g. ``prepare``: training the experts a method distils from).
    """
    methods.info(method)
    draws = (cfg.get("random_draws", 1) if method == "random" else 1) if draws is None else draws
    validate.positive_int("draws", draws)
    kwargs = eval_kwargs(cfg, method, train_set.name)
    sets, evals, distill_seconds = [], [], 0.0
    for d in range(draws):
        gen = (
            generator
            if generator is not None
            else repro.run_generator(cfg["seed"], method, train_set.name, ipc, variant, f"draw{d}")
        )
        t0 = time.perf_counter()
        syn = methods.distill(method, train_set, ipc, generator=gen, **method_kwargs)
        distill_seconds += time.perf_counter() - t0
        sets.append(syn)
        evals.append(training.evaluate_set(syn, test_set, **kwargs))
    result = _merge(evals)
    path = None
    if save:
        path = _record(
            experiment,
            method,
            sets[0],
            result,
            evals,
            cfg=cfg,
            seconds=distill_seconds,
            variant=variant,
            num_models=kwargs["num_models"],
            test_images=len(test_set),
            extra_timings=extra_timings,
        )
    return MethodRun(method, ipc, sets[0], result, distill_seconds, path, evals)


def _record(
    experiment: str,
    method: str,
    syn: SyntheticSet,
    result: training.EvalResult,
    evals: list[training.EvalResult],
    *,
    cfg: Mapping[str, Any],
    seconds: float,
    variant: str,
    num_models: int,
    test_images: int,
    extra_timings: Mapping[str, float] | None,
) -> Path:
    """The record of a run (``run_method``'s and ``record_set``'s): the set, its evaluation, every draw's mean."""
    evaluation = {"model": distill_model(cfg).spec(), "num_models": num_models}
    return save_set(
        experiment,
        method,
        syn,
        cfg=cfg,
        seconds=seconds,
        params={"variant": variant, "draws": len(evals), "eval": evaluation, "test_images": test_images},
        result=result,
        metrics_extra={"draw_means": [r.mean for r in evals]} if len(evals) > 1 else {},
        timings={
            "evaluate_train": sum(result.train_seconds),
            "evaluate_test": sum(result.test_seconds),
            **dict(extra_timings or {}),
        },
    )


def record_set(
    method: str,
    syn: SyntheticSet,
    test_set: ImageSet,
    *,
    cfg: Mapping[str, Any],
    experiment: str,
    variant: str = "",
    result: training.EvalResult | None = None,
    seconds: float | None = None,
    save: bool = True,
    extra_timings: Mapping[str, float] | None = None,
) -> MethodRun:
    """``run_method`` for a set distilled elsewhere (e.g. by ``loop.run_interleaved``): evaluate it under the
    profile's protocol (or take ``result``, an evaluation of this very set already made, e.g. the last point of a
    curve) and write the same record. ``seconds``: its distillation time (default: the set's ``meta["seconds"]``)."""
    methods.info(method)
    kwargs = eval_kwargs(cfg, method, syn.meta.get("dataset", test_set.name))
    if result is None:
        result = training.evaluate_set(syn, test_set, **kwargs)
    seconds = float(syn.meta.get("seconds", 0.0)) if seconds is None else float(seconds)
    path = None
    if save:
        path = _record(
            experiment,
            method,
            syn,
            result,
            [result],
            cfg=cfg,
            seconds=seconds,
            variant=variant,
            num_models=len(result.accuracies),
            test_images=len(test_set),
            extra_timings=extra_timings,
        )
    return MethodRun(method, syn.ipc, syn, result, seconds, path, [result])


def results_table(runs: Mapping[tuple[str, int], MethodRun], dataset: str) -> str:
    """A notebook's runs in markdown, ``{(label, ipc): MethodRun}``: accuracy (mean ± std), the protocol that scored
    it, the paper's number with its own protocol (``papers.cite``) and the distillation seconds."""
    head = ["method", "ipc", "this run (%)", "scored by", "paper (%)", "distil (s)"]
    return tables.markdown_table(
        head,
        (
            [
                label,
                ipc,
                tables.mean_std(run.result.mean, run.result.std),
                run.result.protocol,
                papers.cite(run.method, dataset, ipc),
                tables.cell(run.distill_seconds, 1),
            ]
            for (label, ipc), run in runs.items()
        ),
    )


def run_full_data(
    train_set: ImageSet, test_set: ImageSet, *, cfg: Mapping[str, Any], experiment: str, save: bool = True
) -> tuple[torch.nn.Module, training.EvalResult, Path | None]:
    """Train the full-data baseline for ``cfg['full_epochs']`` epochs (no augmentation) and record it
    (method ``full_data``). Returns the trained network, its result and the record's path."""
    model = distill_model(cfg)
    net, result = training.train_full(
        train_set, test_set, epochs=cfg["full_epochs"], model=model, seed=cfg["seed"], device=cfg["device"]
    )
    path = None
    if save:
        params = {
            "profile": cfg.get("profile"),
            "model": model.spec(),
            "epochs": cfg["full_epochs"],
            "train_images": len(train_set),
            "test_images": len(test_set),
        }
        path = save_result(
            experiment,
            method="full_data",
            dataset=train_set.name,
            cfg=cfg,
            params=params,
            result=result,
            timings={"train": result.train_seconds[0], "test": result.test_seconds[0]},
        )
    return net, result, path


def save_set(
    experiment: str,
    method: str,
    syn: SyntheticSet,
    *,
    cfg: Mapping[str, Any],
    seconds: float,
    params: Mapping[str, Any] | None = None,
    timings: Mapping[str, float] | None = None,
    **evaluation: Any,
) -> Path:
    """Record how a distilled set scored: its parameters come from the set itself (ipc, hyperparameters, model or
    feature map, as ``loop.run`` wrote them into its meta) plus ``params``; ``seconds`` is the distillation time;
    ``evaluation`` is ``save_result``'s ``result=`` or ``accuracies=`` / ``protocol_info=``, and ``metrics_extra=``."""
    meta = syn.meta
    own = {"ipc": syn.ipc, "profile": cfg.get("profile"), "hparams": meta.get("hparams", {})}
    own.update({k: meta.get(k) for k in ("model", "feature_map")})
    return save_result(
        experiment,
        method=method,
        dataset=meta.get("dataset", cfg.get("dataset")),
        cfg=cfg,
        params={**own, **dict(params or {})},
        timings={"distill": seconds, **dict(timings or {})},
        **evaluation,
    )


def save_result(
    experiment: str,
    *,
    method: str,
    dataset: str,
    cfg: Mapping[str, Any],
    params: Mapping[str, Any],
    result: training.EvalResult | None = None,
    accuracies: list[float] | None = None,
    protocol_info: Mapping[str, Any] | str | None = None,
    metrics_extra: Mapping[str, Any] | None = None,
    timings: Mapping[str, float] | None = None,
    folder: str | Path | None = None,
) -> Path:
    """Write one record in the course's schema, from an ``EvalResult`` (its protocol included) or from
    ``accuracies`` measured another way (then ``protocol_info`` says how, e.g. "krr predictor"). ``folder``:
    where (default ``output/results``; ``results.COMMITTED_DIR`` for runs worth keeping)."""
    if (result is None) == (accuracies is None):
        raise ValueError("pass exactly one of result= and accuracies=")
    if result is not None:
        accuracies, protocol_info = result.accuracies, result.settings.get("protocol", protocol_info)
        device = result.settings.get("device", cfg["device"])
    else:
        device = cfg["device"]
    if protocol_info is None:
        raise ValueError("say how the accuracies were measured: protocol_info=")
    record = results.make_record(
        experiment,
        method=method,
        dataset=dataset,
        params=params,
        seed=cfg["seed"],
        device=device,
        metrics=results.metrics(accuracies, **dict(metrics_extra or {})),
        protocol=protocol_info,
        timings=timings,
    )
    return results.save_record(record, folder)


def cross_architecture(
    sets: Mapping[str, SyntheticSet],
    test_set: ImageSet,
    architectures: Mapping[str, Any],
    *,
    protocol: protocol.Protocol | str = "plain",
    epochs: int | None = None,
    num_models: int = 1,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> dict[tuple[str, str], training.EvalResult]:
    """The C\\T table: every set (rows, ``{name: set}``) trained on every architecture (columns, ``{label: network
    sampler or model name}``, e.g. ``samplers.sized("vgg11", 16)``) by the same protocol, ``{(row, column):
    EvalResult}``. Each set trains with its own learned lr when it carries one (``training.evaluate_set``)."""
    if not sets or not architectures:
        raise ValueError("cross_architecture needs at least one set and one architecture")
    table = {}
    for row, syn in sets.items():
        for col, model in architectures.items():
            table[row, col] = training.evaluate_set(
                syn,
                test_set,
                protocol=protocol,
                model=model,
                num_models=num_models,
                epochs=epochs,
                seed=seed,
                device=device,
            )
    return table


def _cell_mean(value: Any) -> float:
    return float(value.mean if isinstance(value, training.EvalResult) else value)


def cross_architecture_grid(table: Mapping[tuple[str, str], Any]) -> tuple[list[str], list[str], list[list[float]]]:
    """``(rows, columns, means)`` of a C\\T table (``cross_architecture``'s ``{(row, column): EvalResult}``, or plain
    accuracies), rows and columns in first-seen order; ``means[i][j]`` is row i trained on column j."""
    rows = list(dict.fromkeys(r for r, _ in table))
    cols = list(dict.fromkeys(c for _, c in table))
    missing = [(r, c) for r in rows for c in cols if (r, c) not in table]
    if missing:
        raise ValueError(f"the table has no cell for {missing[:3]}: every row needs every column")
    return rows, cols, [[_cell_mean(table[r, c]) for c in cols] for r in rows]


def worst_column(table: Mapping[tuple[str, str], Any]) -> dict[str, float]:
    """Each row's lowest accuracy over the architectures: how well the set serves its weakest network."""
    rows, _, means = cross_architecture_grid(table)
    return {row: min(values) for row, values in zip(rows, means)}


def cross_architecture_markdown(table: Mapping[tuple[str, str], Any], *, worst: bool = True, digits: int = 1) -> str:
    """The C\\T table in markdown: one row per set, one column per architecture, and (``worst``) each row's worst."""
    rows, cols, means = cross_architecture_grid(table)
    head = ["set \\ trained on", *cols, *(["worst"] if worst else [])]
    body = ([row, *values, *([min(values)] if worst else [])] for row, values in zip(rows, means))
    return tables.markdown_table(head, ([row, *(tables.cell(v, digits) for v in cells)] for row, *cells in body))
