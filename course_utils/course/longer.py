"""Longer runs: a method of notebooks 03–07 at a budget where its claim can show, on a laptop CPU within about an hour,
recorded under ``results/``: ``python -m course_utils.course.longer 04``.

The quick profile runs every method for seconds, too short for several of the papers' claims to show. A longer run
(``RUNS``) distils once on the whole training set at the paper's IPC-10 setting and network width, for as many outer
steps as fit in about an hour on 2 CPU cores, and scores the set by the paper's evaluation protocol
(``eval_protocol="paper"``: its augmentation and epochs). The distillation checkpoints as it goes (``loop.run``'s
``checkpoint``): a run cut short resumes where it stopped when the same command is given again, and a checkpoint of
another seed, dataset or setting is refused. The record (``results/<notebook>_longer/``, the course's one schema)
holds the parameters, seed, device, library versions, the code's commit and the wall time of every part; the notebook
shows it beside its quick numbers and the paper's (:func:`show`).

    python -m course_utils.course.longer 04 [--seed 0] [--device cpu]   # run (or resume) notebook 04's longer run
    python -m course_utils.course.longer --list                           # what each run is, and whether it exists
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import methods
from ..core import repro
from ..data import datasets
from ..records import results
from . import experiment
from .setup import notebook_name

__all__ = ["Longer", "RUNS", "entry", "settings", "run", "recorded", "show", "main"]


@dataclass(frozen=True)
class Longer:
    """One longer run: ``method`` of ``notebook`` at ``ipc`` on ``dataset`` with ``hparams`` (its steps included), a
    ConvNet of width ``model_width`` for the distillation and the evaluation, scored by ``eval_protocol`` with
    ``eval_models`` fresh networks on the whole test set. ``train_per_class``: None for the whole training set.
    ``why``: what the run should show, for the notebook."""

    notebook: str
    method: str
    hparams: Mapping[str, Any]
    ipc: int = 10
    dataset: str = "mnist"
    model_width: int | None = 128
    train_per_class: int | None = None
    eval_protocol: str = "paper"
    eval_epochs: int | None = None
    eval_models: int = 3
    why: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def experiment(self) -> str:
        return f"{self.notebook}_longer"


#: One run per notebook. Budgets are set by the hour a 2-core CPU may take (a figure of the benchmarks: one DM
#: iteration at width 128, IPC 10 and 256 real images per class costs about 2.6 s there), not chosen on accuracy.
RUNS: tuple[Longer, ...] = (
    Longer(
        "04_distribution_matching",
        "dm",
        {"steps": 1000, "batch_real": 256, "lr_img": 1.0, "init": "real", "checkpoint_every": 50},
        why=(
            "DM with the paper's network (ConvNet-128), real batch (256 per class), image rate (1.0) and evaluation "
            "(DSA, 1000 epochs) for 1000 of its 20 000 iterations"
        ),
    ),
)


def entry(notebook: str) -> Longer:
    """The longer run of ``notebook`` (name or number); a clear error naming the notebooks that have one."""
    name = notebook_name(notebook)
    found = [r for r in RUNS if r.notebook == name]
    if not found:
        raise ValueError(f"{name} has no longer run; valid: {', '.join(r.notebook for r in RUNS)}")
    return found[0]


def settings(run_: Longer, seed: int, device: str) -> dict:
    """The settings ``experiment.run_method`` and the record read (a profile of its own: ``"longer"``)."""
    return {
        "profile": "longer",
        "dataset": run_.dataset,
        "seed": seed,
        "device": str(repro.resolve_device(device)),
        "model": "convnet",
        "model_width": run_.model_width,
        "eval_protocol": run_.eval_protocol,
        "eval_epochs": run_.eval_epochs,
        "eval_models": run_.eval_models,
    }


def recorded(notebook: str, root: str | Path | None = None, seed: int | None = None) -> list[dict]:
    """The records of ``notebook``'s longer run under ``root`` (default ``results/``), of ``seed`` if given, whose
    settings are the run's current ones (a record of other settings is not this run's)."""
    run_ = entry(notebook)
    folder = Path(root) if root is not None else results.COMMITTED_DIR
    found = results.load_records(folder, experiment=run_.experiment, skipped=[])
    current = _identity(run_)
    return [r for r in found if r["params"].get("longer") == current and (seed is None or r["seed"] == seed)]


def _identity(run_: Longer) -> dict:
    """What the record keeps of the run's definition (as JSON gives it back)."""
    keys = ("method", "hparams", "ipc", "dataset", "model_width", "train_per_class", "eval_protocol", "eval_epochs")
    return json.loads(json.dumps({k: getattr(run_, k) for k in (*keys, "eval_models", "extra")}))


def run(
    notebook: str,
    *,
    seed: int = 0,
    device: str = "cpu",
    root: str | Path | None = None,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
    """Make (or resume) ``notebook``'s longer run and record it under ``root`` (default ``results/``); returns the
    record. A record of the same run and seed is kept as it is unless ``force``."""
    run_ = entry(notebook)
    done = recorded(notebook, root, seed)
    if done and not force:
        log(f"{run_.experiment}: recorded already (seed {seed}); --force to make it again")
        return done[0]
    methods.info(run_.method)  # an unknown method fails before the data is loaded
    cfg = settings(run_, seed, device)
    t0 = time.perf_counter()
    train, test = datasets.load(run_.dataset)
    if run_.train_per_class is not None:
        train = train.balanced_subset(run_.train_per_class, repro.run_generator(seed, "longer", run_.dataset))
    train, test = train.to(cfg["device"]), test.to(cfg["device"])
    hparams = {**run_.hparams, "checkpoint": True}  # output/checkpoints/<method>/...: resumed, or refused if other
    log(f"{run_.experiment}: {run_.method} ipc {run_.ipc}, {hparams.get('steps')} steps, seed {seed}, {cfg['device']}")
    made = experiment.run_method(
        run_.method,
        train,
        test,
        run_.ipc,
        cfg=cfg,
        experiment=run_.experiment,
        save=False,
        model=experiment.distill_model(cfg),
        **hparams,
    )
    wall = time.perf_counter() - t0
    path = experiment.save_set(
        run_.experiment,
        run_.method,
        made.synthetic,
        cfg=cfg,
        seconds=made.synthetic.meta.get("seconds", made.distill_seconds),
        params={"longer": _identity(run_), "test_images": len(test)},
        timings={
            "evaluate_train": sum(made.result.train_seconds),
            "evaluate_test": sum(made.result.test_seconds),
            "this_call_wall": wall,
        },
        result=made.result,
        folder=root if root is not None else results.COMMITTED_DIR,
    )
    log(f"{run_.experiment}: {made.result} -> {path}")
    return results.read_record(path)


def show(notebook: str, root: str | Path | None = None) -> str:
    """The longer run of ``notebook`` for the notebook: what it is, and its record(s) as a table, or how to make it."""
    run_ = entry(notebook)
    found = recorded(notebook, root)
    head = f"Longer run: {run_.why}."
    if not found:
        return f"{head}\nNot recorded yet: `python -m course_utils.course.longer {run_.notebook[:2]}` makes it."
    columns = [
        "method",
        "dataset",
        "params.ipc",
        "seed",
        "metrics.mean",
        "metrics.std",
        "protocol.label",
        "timings_s.distill",
        "environment.device_name",
        "commit",
    ]
    return head + "\n\n" + results.markdown_table(found, columns)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.course.longer", description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", help="notebooks (names or numbers) whose longer run to make")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--root", default=None, help=f"where records go (default {results.COMMITTED_DIR})")
    parser.add_argument("--force", action="store_true", help="make a run again that is recorded already")
    parser.add_argument("--list", action="store_true", help="what each run is, and whether it is recorded")
    args = parser.parse_args(argv)
    if args.list or not args.notebooks:
        for r in RUNS:
            print(f"{r.notebook}: {len(recorded(r.notebook, args.root))} record(s). {r.why}")
        return 0
    repro.seed_everything(args.seed)
    for notebook in args.notebooks:
        run(notebook, seed=args.seed, device=args.device, root=args.root, force=args.force)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
