"""The quick profile's learning rates, chosen on validation data: ``python -m course_utils.course.tuning``.

The quick profile shortens every method to seconds on a laptop CPU, and at such budgets the papers' learning rates are
not always the right ones (notebook 03's DC takes 30 outer iterations instead of 1000). Where a quick value is a choice
of this kind (not a paper's value kept as it is, nor a budget set by the CPU time a notebook may take), ``CHOICES``
names it with its candidates, and :func:`tune` makes the choice the way a choice must be made:

- for every candidate, distil with the notebook's quick settings (the candidate in place of the profile's value) on the
  notebook's training images, for each dataset and IPC of the entry;
- score each set on a validation split: ``VALIDATION_PER_CLASS`` training images per class that the distillation
  never sees (``NotebookSettings.load_data``), never a test image;
- choose the candidate with the best mean validation accuracy over datasets and IPCs
  (:func:`course_utils.evaluation.choice.choose`, which refuses the test split); a candidate whose run diverges (a
  non-finite loss) is never chosen, and the record says so.

Notebook 08 runs every method for a few outer steps (``MethodInfo.benchmark``); the images' learning rate of each
method's quick budget is a choice of the same kind, one entry per method (``budget=True``), scored with notebook 08's
own runs at its IPCs and recorded as ``<notebook>.<method>.json``.

The record (``course_utils/records/choices/<notebook>.json``) holds every score, the settings the runs used, the seed,
device and library versions. ``tests/test_tuning.py`` checks that the profile holds the value its record chose, and
that the record was made with the profile's current settings: change a setting a choice depends on and the test asks
for a rerun. Each candidate's score is written as soon as it is known (atomically), so an interrupted run resumes; a
record made with other settings is refused, never mixed with new scores (``--restart`` discards it).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import methods
from ..core import atomic, repro
from ..data.datasets import ImageSet
from ..evaluation import choice, training
from ..methods import accdd, bilevel, hypergrad, loop
from ..nets import samplers, trajectories
from ..records import results
from . import benchmark, config, experiment
from .setup import NotebookSettings, notebook_name

__all__ = [
    "CHOICES",
    "Tuned",
    "RECORD_DIR",
    "VALIDATION_PER_CLASS",
    "record_path",
    "tune",
    "read_choice",
    "describe",
    "main",
]

#: Where the records are committed: package data, so that a notebook can say where its values come from wherever the
#: package is installed.
RECORD_DIR = Path(__file__).resolve().parents[1] / "records" / "choices"
#: Training images per class set aside as the validation split of every choice.
VALIDATION_PER_CLASS = 100
FORMAT = 1
DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}

Distil = Callable[[NotebookSettings, ImageSet, int, Any], Any]


def _dc(cfg: NotebookSettings, train: ImageSet, ipc: int, gen: Any) -> Any:
    steps = cfg.ipc1_iterations if ipc == 1 else cfg.large_ipc_iterations
    extra = {} if ipc == 1 else {"inner_loop": cfg.large_ipc_inner_loop}
    model = experiment.distill_model(cfg)
    return methods.distill("dc", train, ipc, generator=gen, model=model, steps=steps, **cfg.hparams("dc"), **extra)


def _dm(cfg: NotebookSettings, train: ImageSet, ipc: int, gen: Any) -> Any:
    model = experiment.distill_model(cfg)
    return methods.distill("dm", train, ipc, generator=gen, model=model, steps=cfg.dm_iterations, **cfg.hparams("dm"))


def _mtt(cfg: NotebookSettings, train: ImageSet, ipc: int, gen: Any) -> Any:
    buffer = trajectories.train_experts(
        train, cfg.experts, model=experiment.distill_model(cfg), epochs=cfg.expert_train_epochs, seed=cfg.seed
    )  # stored: the same experts for every candidate (and notebook 05's, on the same images)
    return methods.distill(
        "mtt", train, ipc, generator=gen, model=buffer, steps=cfg.mtt_iterations, **cfg.hparams("mtt")
    )


def _accdd(cfg: NotebookSettings, train: ImageSet, ipc: int, gen: Any) -> Any:
    hp = cfg.hparams("accdd")
    pool, _ = accdd.early_stage_pool(
        train,
        hp.pop("pool_networks"),
        hp.pop("pool_epochs"),
        model=experiment.distill_model(cfg),
        magnitude=hp.pop("magnitude"),
        directions=hp.pop("directions"),
        seed=cfg.seed,
    )
    return methods.distill("accdd", train, ipc, generator=gen, model=pool, steps=cfg.accdd_iterations, **hp)


def _zen_pool(cfg: NotebookSettings) -> dict:
    """Notebook 06's families: ``{name: sampler}`` (a width of None keeps the architecture's own)."""
    return {name: samplers.sized(name, w) for name, w in zip(cfg.pool, cfg.pool_width)}


def _zen(cfg: NotebookSettings, train: ImageSet, ipc: int, gen: Any) -> Any:
    """Notebook 06's ZEN run as published (the raw max over the families, Neumann hypergradient)."""
    with warnings.catch_warnings():  # a step whose series grew is part of the run being scored
        warnings.simplefilter("ignore", hypergrad.NeumannDivergenceWarning)
        return methods.distill(
            "zen",
            train,
            ipc,
            generator=gen,
            model=samplers.ArchitecturePool(list(_zen_pool(cfg).values())),
            steps=cfg.zen_iterations,
            inner_steps=cfg.inner_steps,
            lr_net=cfg.lr_net,
            lr_img=cfg.lr_img,
            neumann_terms=cfg.neumann_terms,
            neumann_alpha=cfg.lr_net,
        )


def _dd_random(cfg: NotebookSettings, train: ImageSet, ipc: int, gen: Any) -> Any:
    return bilevel.distill(
        train,
        ipc,
        generator=gen,
        model=cfg.model,
        steps=cfg.dd_random_steps,
        distill_steps=cfg.dd_random_distill_steps,
        **cfg.hparams("dd"),
    )


#: Notebook 08's preparations (experts, pools, ...), made once per method, dataset and seed and shared by every
#: candidate: they do not depend on the rate being chosen.
_PREPARED: dict[tuple, benchmark.Preparation] = {}


def _benchmark_run(method: str) -> Distil:
    """Notebook 08's run of ``method``: its benchmark budget at ``ipc`` (``benchmark.hparams_for``, where the candidate
    stands in ``cfg["hparams"]``) with what the method prepares once per dataset (``benchmark.Preparation``)."""

    def distil(cfg: NotebookSettings, train: ImageSet, ipc: int, gen: Any) -> Any:
        key = (method, train.name, len(train), cfg.seed, str(cfg.device))
        if key not in _PREPARED:
            _PREPARED[key] = benchmark.Preparation(train, {k: v for k, v in cfg.items() if k != "hparams"})
        extra = _PREPARED[key].kwargs(method)
        return methods.distill(method, train, ipc, generator=gen, **extra, **benchmark.hparams_for(cfg, method, ipc))

    return distil


def _score_protocol(cfg: NotebookSettings, method: str, syn: Any, validation: ImageSet) -> float:
    """Mean validation accuracy of ``syn`` under the profile's protocol (its networks, epochs and seed)."""
    return training.evaluate_set(syn, validation, **experiment.eval_kwargs(cfg, method)).mean


def _score_schedule(cfg: NotebookSettings, method: str, syn: Any, validation: ImageSet) -> float:
    """DD's own evaluation (notebook 02): ``dd_eval_models`` unseen initialisations trained with the learned steps."""
    return bilevel.evaluate_schedule(
        syn.images,
        syn.labels,
        validation,
        step_sizes=syn.meta["step_sizes"],
        distill_steps=syn.meta["groups"],
        num_models=cfg.dd_eval_models,
        seed=cfg.seed,
        model=cfg.model,
    ).mean


def _score_worst_family(cfg: NotebookSettings, method: str, syn: Any, validation: ImageSet) -> float:
    """ZEN's aim (notebook 06): the validation accuracy of the worst family of the pool, each trained on the set by
    the notebook's table protocol (``experiment.cross_architecture``, then ``worst_column``)."""
    cells = experiment.cross_architecture(
        {method: syn},
        validation,
        _zen_pool(cfg),
        protocol="plain",
        epochs=cfg.table_epochs,
        num_models=cfg.table_models,
        seed=cfg.seed,
        device=cfg.device,
    )
    return experiment.worst_column(cells)[method]


@dataclass(frozen=True)
class Tuned:
    """A quick-profile value chosen on validation: ``parameter`` of ``notebook`` among ``candidates``, scored by
    distilling with ``method`` at each of ``ipcs`` (``distil``) and scoring on the validation split (``score``).
    ``uses``: the other settings the runs depend on (the record keeps them; a change makes it stale)."""

    notebook: str
    parameter: str
    candidates: tuple[float, ...]
    method: str
    ipcs: tuple[int, ...]
    uses: tuple[str, ...]
    distil: Distil
    score: Callable[[NotebookSettings, str, Any, ImageSet], float] = _score_protocol
    why: str = ""
    #: What the score is, in the sentence ``describe`` writes.
    measure: str = "mean validation accuracy"
    #: True: ``parameter`` is in ``method``'s benchmark budget (``MethodInfo.benchmark``, notebook 08), not a setting.
    budget: bool = False

    @property
    def name(self) -> str:
        """The record's name: the notebook's, or ``<notebook>.<method>`` for a benchmark budget."""
        return f"{self.notebook}.{self.method}" if self.budget else self.notebook

    def current(self, cfg: Any) -> Any:
        """The value ``cfg`` (a notebook's settings) holds for the parameter."""
        return benchmark.budget_table(cfg, self.method)[self.parameter] if self.budget else cfg[self.parameter]


_EVAL = ("model", "model_width", "eval_protocol", "eval_epochs", "eval_models")

#: Every quick-profile value that is a choice. The candidates span the papers' value and the profile's.
CHOICES: tuple[Tuned, ...] = (
    Tuned(
        "02_bilevel_distillation",
        "dd_lr_img",
        (0.01, 0.03, 0.1, 0.3),
        "dd",
        (2,),
        (
            "model",
            "dd_random_ipc",
            "dd_random_steps",
            "dd_random_distill_steps",
            "dd_distill_epochs",
            "dd_batch_size",
            "dd_step_lr",
            "dd_lr_init",
            "dd_decay_every",
            "dd_eval_models",
        ),
        _dd_random,
        _score_schedule,
        "Adam's rate on the pixels of the random-init run (the paper: 0.01 for ~23 000 steps; quick: 600)",
    ),
    Tuned(
        "03_gradient_matching",
        "lr_img",
        (0.1, 0.3, 1.0, 3.0, 10.0),
        "dc",
        (1,),
        (*_EVAL, "ipc1_iterations", "batch_real"),
        _dc,
        why="SGD's rate on the pixels (the papers: 0.1 for 1000 outer iterations; quick: 30)",
    ),
    Tuned(
        "04_distribution_matching",
        "lr_img",
        (0.3, 1.0, 3.0, 10.0, 30.0),
        "dm",
        (1, 10),
        (*_EVAL, "dm_iterations", "batch_real"),
        _dm,
        why="SGD's rate on the pixels (the paper: 1.0 for 20 000 iterations; quick: 200)",
    ),
    Tuned(
        "05_trajectory_matching",
        "lr_img",
        (100.0, 1000.0, 10000.0),
        "mtt",
        (1,),
        (
            *_EVAL,
            "experts",
            "expert_train_epochs",
            "expert_per_class",
            "mtt_iterations",
            "syn_steps",
            "expert_epochs",
            "max_start_epoch",
            "lr_lr",
            "lr_teacher",
            "zca",
        ),
        _mtt,
        why="SGD's rate on the pixels (the reference: 1000 for 5000 iterations; quick: 60)",
    ),
    Tuned(
        "06_zen_cross_architecture",
        "lr_img",
        (0.015, 0.05, 0.15, 0.5),
        "zen",
        (1,),
        (
            "train_per_class",
            "pool",
            "pool_width",
            "zen_iterations",
            "inner_steps",
            "lr_net",
            "neumann_terms",
            "table_epochs",
            "table_models",
        ),
        _zen,
        _score_worst_family,
        "Adam's rate on the pixels, scored by the worst family on validation (the reference steps SGD with Nesterov "
        "momentum at 0.5 for 1000 epochs; quick: 40 outer steps)",
        measure="mean worst-family validation accuracy",
    ),
    Tuned(
        "07_model_augmentation",
        "lr_img",
        (0.3, 1.0, 3.0),
        "accdd",
        (10,),
        (
            *_EVAL,
            "train_per_class",
            "pool_networks",
            "pool_epochs",
            "accdd_iterations",
            "outer_loop",
            "inner_loop",
            "batch_real",
            "magnitude",
            "directions",
        ),
        _accdd,
        why="SGD's rate on the pixels (the reference: 0.1 per class with momentum for 500 iterations; quick: 6)",
    ),
    *(
        Tuned(
            benchmark.EXPERIMENT,
            "lr_img",
            candidates,
            method,
            (1, 10),
            (*_EVAL, "train_per_class"),
            _benchmark_run(method),
            why=f"the image rate of notebook 08's {method} budget (a few outer steps per IPC; {paper})",
            budget=True,
        )
        for method, candidates, paper in (
            (
                "kip",
                (0.003, 0.01, 0.03, 0.1, 0.3, 1.0),
                "a public KIP baseline's default: Adam 0.01 for 30 000 iterations",
            ),
            ("dd", (0.01, 0.03, 0.1, 0.3), "the paper: 0.01 with Adam for ~23 000 steps"),
            ("dc", (0.3, 1.0, 3.0, 10.0), "the paper: 0.1 for 1000 outer iterations"),
            ("dsa", (0.3, 1.0, 3.0, 10.0), "the paper: 0.1 for 1000 outer iterations"),
            ("dm", (0.3, 1.0, 3.0, 10.0), "the paper: 1.0 for 20 000 iterations"),
            ("mtt", (30.0, 100.0, 1000.0, 10000.0), "the reference: 1000 for 5000 iterations"),
            ("accdd", (0.3, 1.0, 3.0), "the reference: 0.1 per class with momentum"),
            (
                "zen",
                (0.015, 0.05, 0.15, 0.5),
                "Adam's rate; notebook 06's quick value: 0.05 (the reference steps SGD with Nesterov momentum at 0.5)",
            ),
        )
    ),
)


def _entries(spec: str) -> list[Tuned]:
    """The entries ``spec`` names: a notebook (name or number: all its entries) or ``<notebook>.<method>``."""
    notebook, _, method = str(spec).partition(".")
    name = notebook_name(notebook)
    found = [t for t in CHOICES if t.notebook == name and (not method or t.method == method)]
    if not found:
        valid = ", ".join(dict.fromkeys(t.name for t in CHOICES))
        raise ValueError(f"{name}{'.' + method if method else ''} has no quick-profile choice to make; valid: {valid}")
    return found


def _entry(spec: str) -> Tuned:
    found = _entries(spec)
    if len(found) > 1:
        raise ValueError(f"{spec} makes {len(found)} choices: name one of {', '.join(t.name for t in found)}")
    return found[0]


def record_path(spec: str, root: str | Path | None = None) -> Path:
    """``<root>/<entry name>.json`` (default root: ``RECORD_DIR``)."""
    return Path(root if root is not None else RECORD_DIR) / f"{_entry(spec).name}.json"


def _settings(entry: Tuned, dataset: str, seed: int, device: str, value: float | None = None) -> NotebookSettings:
    overrides = {} if value is None or entry.budget else {entry.parameter: value}
    cfg = NotebookSettings.of(config.resolve("quick", notebook=entry.notebook, dataset=dataset, seed=seed, **overrides))
    cfg["device"] = str(repro.resolve_device(device))
    if value is not None and entry.budget:  # the candidate in place of the budget's value (``benchmark.budget_table``)
        cfg["hparams"] = {entry.method: {**benchmark.budget_table(cfg, entry.method), entry.parameter: value}}
    return cfg


def _plain(value: Any) -> Any:
    """``value`` as JSON gives it back (tuples as lists, integer keys as strings), so that records compare equal."""
    return json.loads(json.dumps(value))


def _what(entry: Tuned, datasets: Sequence[str], seed: int) -> dict:
    """What determines the record's scores: the entry and the settings it uses (for a benchmark budget, also the
    budget's other values and what the method prepares)."""
    cfg = _settings(entry, datasets[0], seed, "cpu")
    settings = {name: _plain(cfg[name]) for name in entry.uses}
    if entry.budget:
        info = methods.info(entry.method)
        table = benchmark.budget_table(cfg, entry.method)
        settings["budget"] = _plain({str(k): v for k, v in table.items() if k != entry.parameter})
        settings["prepare"] = _plain(info.prepare_settings.get("quick", {}))
    return {
        "format": FORMAT,
        "notebook": entry.notebook,
        "parameter": entry.parameter,
        "method": entry.method,
        "candidates": list(entry.candidates),
        "ipcs": list(entry.ipcs),
        "datasets": list(datasets),
        "seed": seed,
        "validation_per_class": VALIDATION_PER_CLASS,
        "settings": settings,
    }


def read_choice(spec: str, root: str | Path | None = None) -> dict:
    """The record of the choice ``spec`` names (``_entries``); a clear error when there is none or it cannot be
    read."""
    path = record_path(spec, root)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no record; make it with `python -m course_utils.course.tuning {_entry(spec).name}`"
        )
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path} is not a readable record ({exc}); rerun with --restart") from None


def describe(spec: str, cfg: Any, root: str | Path | None = None) -> str:
    """Where the value of the chosen parameter ``spec`` names (a notebook, or ``<notebook>.<method>``) in ``cfg``
    comes from, in a sentence for the notebook: the validation scores behind the quick profile's value, or that
    another profile or the reader set it."""
    entry = _entry(spec)
    record = read_choice(entry.name, root)
    value = entry.current(cfg)
    parameter = f"{entry.method}'s {entry.parameter}" if entry.budget else entry.parameter
    ordered = sorted(record["scores"].items(), key=lambda kv: float(kv[0]))
    scores = ", ".join(f"{float(k):g}: {v:.1f} %" for k, v in ordered)
    if record.get("diverged"):
        scores += "; diverged: " + ", ".join(f"{float(k):g}" for k in record["diverged"])
    data = " and ".join(DATASET_NAMES.get(d, d) for d in record["datasets"])
    ipcs = ", ".join(str(i) for i in record["ipcs"])
    measured = (
        f"the quick profile's {entry.parameter} = {record['best']:g} was chosen among {len(record['scores'])} "
        f"values by the {entry.measure} of {entry.method} (IPC {ipcs}, {data}, seed {record['seed']}; "
        f"{record['validation_per_class']} training images per class set aside, never a test image): {scores}"
    )
    if cfg.get("profile") == "quick" and value == record["best"]:
        head = f"{parameter} = {value:g}: "
    else:
        head = f"{parameter} = {value:g}, set by the {cfg.get('profile')} profile or by you; for comparison, "
    path = record_path(entry.name, root)
    shown = f"course_utils/records/choices/{path.name}" if root is None else str(path)
    return head + measured + f" ({shown})."


def tune(
    notebook: str,
    *,
    datasets: Sequence[str] = ("mnist", "fashion_mnist"),
    seed: int = 0,
    device: str = "cpu",
    root: str | Path | None = None,
    restart: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
    r"""Make ``notebook``'s choice (module docstring) and return its record.

    The score of candidate :math:`c` is
    :math:`\frac{1}{|D||I|}\sum_{d\in D}\sum_{i\in I} \mathrm{acc}_{V_d}(S_{c,d,i})`,
    the mean over datasets :math:`D` and IPCs :math:`I` of the validation accuracy of the set distilled with :math:`c`;
    the choice is its argmax (ties: the candidate listed first)."""
    entry = _entry(notebook)
    path = record_path(entry.name, root)
    what = _what(entry, datasets, seed)
    record: dict = {**what, "runs": {}}
    ran = False  # whether this call scored anything: a record finished earlier keeps its provenance
    if path.exists() and not restart:
        old = read_choice(entry.name, root)
        # the candidates may grow (a grid whose best is at its edge): a candidate's runs do not depend on the others
        differs = sorted(k for k in what if k != "candidates" and old.get(k) != what[k])
        if differs:
            raise ValueError(
                f"{path} was made with other {', '.join(differs)} than this run's; it is not mixed with new scores: "
                "pass --restart (restart=True) to discard it"
            )
        wanted = {f"{d}/ipc{i}/{v!r}" for d in datasets for i in entry.ipcs for v in entry.candidates}
        record["runs"] = {key: run for key, run in old.get("runs", {}).items() if key in wanted}
        record.update({k: old[k] for k in ("environment", "code_commit", "made") if k in old})
    for dataset in datasets:
        base = _settings(entry, dataset, seed, device)
        train, validation = base.load_data(validation_per_class=VALIDATION_PER_CLASS)[:2]
        choice.refuse_test(validation, f"{entry.name}'s {entry.parameter}")
        for value in entry.candidates:
            cfg = _settings(entry, dataset, seed, device, value)
            for ipc in entry.ipcs:
                key = f"{dataset}/ipc{ipc}/{value!r}"
                if key in record["runs"]:
                    continue
                t0 = time.perf_counter()
                gen = repro.run_generator(seed, "tuning", entry.method, dataset, ipc)  # the same for every candidate
                try:
                    syn = entry.distil(cfg, train, ipc, gen)
                except (loop.DivergenceError, FloatingPointError) as exc:  # a rate too high: never the choice
                    record["runs"][key] = {"diverged": str(exc).split(". ")[0], "seconds": time.perf_counter() - t0}
                    log(f"{entry.name} {entry.parameter}={value!r} {dataset} ipc {ipc}: diverged")
                else:
                    acc = entry.score(cfg, entry.method, syn, validation)
                    record["runs"][key] = {"validation_accuracy": acc, "seconds": time.perf_counter() - t0}
                    log(f"{entry.name} {entry.parameter}={value!r} {dataset} ipc {ipc}: {acc:.2f} % on validation")
                ran = True
                record["environment"] = results.environment(cfg.device)
                atomic.write_json(path, record)
    runs = record["runs"]
    keys = {v: [f"{d}/ipc{i}/{v!r}" for d in datasets for i in entry.ipcs] for v in entry.candidates}
    diverged = [v for v in entry.candidates if any("diverged" in runs[k] for k in keys[v])]
    usable = [v for v in entry.candidates if v not in diverged]
    if not usable:
        raise ValueError(f"{entry.name}: every candidate {entry.parameter} diverged ({list(entry.candidates)})")

    def mean_score(value: float, _validation: Any) -> float:
        accs = [runs[k]["validation_accuracy"] for k in keys[value]]
        return sum(accs) / len(accs)

    # every score was measured on validation splits; `choose` checks the split's role once more
    picked = choice.choose(usable, mean_score, validation, what=f"{entry.name}'s {entry.parameter}")
    record.update(
        best=picked.best,
        diverged=[repr(v) for v in diverged],
        scores={repr(k): v for k, v in picked.scores.items()},
        measured_on=picked.measured_on,
        why=entry.why,
    )
    if ran or "made" not in record:
        record.update(code_commit=results.code_commit(), made=time.strftime("%Y-%m-%d %H:%M:%S %Z"))
    atomic.write_json(path, record)
    log(f"{entry.name}: {entry.parameter} = {picked.best!r} ({picked})")
    return record


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.course.tuning", description=__doc__.split("\n")[0])
    parser.add_argument(
        "notebooks", nargs="*", help="notebooks (names or numbers) or <notebook>.<method>; default: all of CHOICES"
    )
    parser.add_argument("--datasets", nargs="+", default=["mnist", "fashion_mnist"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--root", default=None, help=f"where records go (default {RECORD_DIR})")
    parser.add_argument("--restart", action="store_true", help="discard a record made with other settings")
    args = parser.parse_args(argv)
    repro.seed_everything(args.seed)
    names = [t.name for spec in args.notebooks for t in _entries(spec)] if args.notebooks else [t.name for t in CHOICES]
    for name in names:
        tune(name, datasets=args.datasets, seed=args.seed, device=args.device, root=args.root, restart=args.restart)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
