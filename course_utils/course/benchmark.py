"""Every method under ONE evaluation protocol: the benchmark of notebook 08.

A *cell* is (method, dataset, IPC). Every cell runs through ``experiment.run_method`` with the profile's protocol
(``cfg["eval_protocol"]``, the same for every method), so the records share the course's schema and experiment name
``EXPERIMENT``. A method's hyperparameters come from the profile (``profiles.NOTEBOOK_PROFILES[EXPERIMENT]``, key
``hparams``: per method a dict of hyperparameters whose integer keys hold per-IPC overrides); what a method needs
besides its hyperparameters is made once per dataset by ``Preparation`` with the functions the method's own notebook
calls (MTT's expert trajectories: ``trajectories.train_experts``; Acc-DD's early-stage pool:
``accdd.early_stage_pool``; ZEN's architecture pool: ``samplers.ArchitecturePool``; the ridge fit behind the closed
form: ``krr_closed_form.fit_full_model``; forgetting's statistics; herding's embedding network), and its seconds are
kept apart from the distillation's (``prepare_seconds``).

Recorded results: when ``results.COMMITTED_DIR`` holds records of ``EXPERIMENT`` for the same method, dataset, IPC,
profile and protocol, the cell reads them instead of recomputing, and its row says so (``source``: "recorded on
<device>" or "computed now"). Rows aggregate seeds with ``summary.summarise``; each carries the paper's number
(``papers.reported``, None where the paper has none) and the gain over the random real subset of the same dataset,
IPC and protocol (``gain``): the fair measure, since augmentation, soft labels or a longer evaluation lift a random
subset as much as a distilled set.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .. import methods
from ..core import repro
from ..data.datasets import ImageSet
from ..evaluation import training
from ..nets import samplers, trajectories
from ..records import papers, results, summary
from ..records.synthetic import SyntheticSet
from . import experiment

__all__ = [
    "EXPERIMENT",
    "KEYS",
    "Row",
    "Preparation",
    "check_grid",
    "hparams_for",
    "recorded_records",
    "run_cell",
    "run_grid",
    "add_gains",
    "markdown",
    "time_points",
]

EXPERIMENT = "08_benchmark_and_applications"
#: How ``summary.summarise`` groups the records of one cell (seeds are averaged).
KEYS = ("method", "variant", "dataset", "ipc", "profile", "protocol")
COMPUTED = "computed now"


def _method(name: str) -> str:
    if not isinstance(name, str) or name.lower() not in methods.REGISTRY:
        raise ValueError(f"unknown method {name!r}; valid: {', '.join(methods.METHOD_NAMES)}")
    return name.lower()


def _settings(cfg: Mapping[str, Any], method: str) -> dict:
    table = cfg.get("hparams") or {}
    if method not in table:
        raise ValueError(
            f"the {cfg.get('profile')} profile has no benchmark settings for {method!r}; "
            f"methods with settings: {', '.join(table)}"
        )
    return dict(table[method])


def listed_ipcs(cfg: Mapping[str, Any], method: str) -> tuple[int, ...] | None:
    """The IPCs ``method`` has its own settings for (None: one setting for every IPC)."""
    per_ipc = sorted(k for k in _settings(cfg, _method(method)) if isinstance(k, int))
    return tuple(per_ipc) or None


def hparams_for(cfg: Mapping[str, Any], method: str, ipc: int) -> dict:
    """The hyperparameters of ``method`` at ``ipc``: the profile's common ones, overridden by its per-IPC entry.

    An IPC without its own entry takes the entry of the largest listed IPC below it (the smallest listed one below
    them all): IPC 3 runs with IPC 1's budget, IPC 20 with IPC 10's. ``ipc`` must be a positive int.
    """
    method = _method(method)
    if isinstance(ipc, bool) or not isinstance(ipc, int) or ipc < 1:
        raise ValueError(f"ipc must be an integer >= 1, got {ipc!r}")
    table = _settings(cfg, method)
    listed = listed_ipcs(cfg, method)
    common = {k: v for k, v in table.items() if not isinstance(k, int)}
    if listed is None:
        return common
    entry = max((k for k in listed if k <= ipc), default=listed[0])
    return {**common, **dict(table[entry])}


def check_grid(cfg: Mapping[str, Any], methods_: Sequence[str], ipcs: Sequence[int]) -> list[str]:
    """Check a grid before any work: every method known, with settings, at valid IPCs. Returns the method names
    (lower case) in order, random first (every other row is measured against it)."""
    names = [_method(m) for m in methods_]
    if not ipcs:
        raise ValueError("ipcs must list at least one images-per-class value")
    for m in names:
        for ipc in ipcs:
            hparams_for(cfg, m, ipc)
    return ["random"] + [m for m in dict.fromkeys(names) if m != "random"]


# ------------------------------------------------------------------------------------------------ preparation
@dataclass
class Preparation:
    """What the methods need on one training set besides their hyperparameters, made on first use and reused by
    every IPC: ``kwargs(method)`` gives the extra arguments of ``methods.distill``, ``seconds[method]`` what making
    them took (training the experts, the pool or the embedding network; counting forgetting events; the full-data
    ridge fit). ``cfg["prepare"]`` holds the settings (per method)."""

    train: ImageSet
    cfg: Mapping[str, Any]
    root: str | Path | None = None  # where experts and pools are stored (None: under the output folder)
    seconds: dict[str, float] = field(default_factory=dict)
    _made: dict[str, dict] = field(default_factory=dict)

    def _opts(self, method: str) -> dict:
        return dict((self.cfg.get("prepare") or {}).get(method, {}))

    def _width(self, opts: Mapping[str, Any]) -> dict:
        return {"width": opts.get("width", self.cfg["model_width"])}

    def kwargs(self, method: str) -> dict:
        method = _method(method)
        if method not in self._made:
            t0 = time.perf_counter()
            made, seconds = self._make(method)
            self._made[method] = made
            self.seconds[method] = time.perf_counter() - t0 if seconds is None else seconds
        return dict(self._made[method])

    def _make(self, method: str) -> tuple[dict, float | None]:
        opts, train, cfg = self._opts(method), self.train, self.cfg
        gen = repro.run_generator(cfg["seed"], method, train.name, "prepare")
        if method in ("random",):
            return {}, 0.0
        if method == "herding":  # features of a ConvNet trained briefly on the training set (None epochs: pixels)
            if not opts.get("epochs"):
                return {}, 0.0
            net, result = training.train_full(
                train,
                train,  # its accuracy on the training set is not used
                epochs=opts["epochs"],
                model=cfg["model"],
                model_kwargs=self._width(opts),
                seed=cfg["seed"],
                device=cfg["device"],
            )
            return {"model": net}, sum(result.train_seconds)
        if method == "forgetting":
            from ..methods import forgetting

            own = _settings(cfg, "forgetting")  # the statistics follow the method's own hyperparameters
            stats = forgetting.compute_statistics(
                train,
                generator=gen,
                model=experiment.distill_model(cfg),
                epochs=own.get("epochs", forgetting.Config.epochs),
                pool_per_class=own.get("pool_per_class"),
            )
            return {"statistics": stats}, None
        if method == "krr_closed_form":
            from ..methods import krr_closed_form

            full = krr_closed_form.fit_full_model(train, opts.get("feature_map", "random_network"), generator=gen)
            return {"full_model": full, "feature_map": full.feature_map}, None
        if method == "kip":
            return {"feature_map": opts.get("feature_map", "random_network")}, 0.0
        if method in ("dc", "dsa", "dm"):
            return {"model": experiment.distill_model(cfg)}, 0.0
        if method == "dd":
            name = opts.get("model", "lenet")
            return {"model": experiment.distill_model(cfg, name)}, 0.0
        if method == "mtt":
            buffer = trajectories.train_experts(
                train,
                opts.get("experts", 2),
                model=cfg["model"],
                model_kwargs=self._width(opts),
                epochs=opts.get("epochs", 5),
                seed=cfg["seed"],
                root=None if self.root is None else Path(self.root) / "experts",
                device=cfg["device"],
            )
            return {"model": buffer}, float(sum(buffer.seconds))
        if method == "accdd":
            from ..methods import accdd

            pool, seconds = accdd.early_stage_pool(
                train,
                opts.get("networks", 2),
                opts.get("epochs", 1),
                model=cfg["model"],
                model_kwargs=self._width(opts),
                seed=cfg["seed"],
                root=None if self.root is None else Path(self.root) / "pools",
                device=cfg["device"],
            )
            return {"model": pool}, float(seconds)
        if method == "zen":
            pool = opts.get("pool", ("convnet", "lenet"))
            widths = opts.get("pool_width", (None,) * len(pool))
            if len(widths) != len(pool):
                raise ValueError(f"zen pool_width has {len(widths)} entries for {len(pool)} families: one per family")
            members = [samplers.FreshInit(n, **({} if w is None else {"width": w})) for n, w in zip(pool, widths)]
            return {"model": samplers.ArchitecturePool(members)}, 0.0
        raise AssertionError(f"no preparation rule for {method}")  # every registered method has one above


# ------------------------------------------------------------------------------------------------------- rows
@dataclass
class Row:
    """One cell of the benchmark: seeds aggregated (``summary.summarise``), where it came from, the paper beside it."""

    method: str
    dataset: str
    ipc: int
    profile: str | None
    protocol: str
    mean: float | None
    std: float | None
    std_over: str
    n: int
    seeds: list
    distill_seconds: float | None
    prepare_seconds: float | None
    device: str  # the device(s) the records were made on: cpu, or cuda:0 (<GPU name>)
    source: str  # "computed now" or "recorded on <device>"
    paper: papers.Reported | None = None
    gain: float | None = None  # mean − the random subset's mean (same dataset, IPC, protocol)
    synthetic: SyntheticSet | None = None  # the set, when computed now
    records: list = field(default_factory=list, repr=False)

    @property
    def recorded(self) -> bool:
        return self.source != COMPUTED

    @property
    def total_seconds(self) -> float | None:
        """Distillation plus preparation: the time from the data to the set."""
        if self.distill_seconds is None:
            return None
        return self.distill_seconds + (self.prepare_seconds or 0.0)

    def accuracy(self) -> str:
        if self.mean is None:
            return "–"
        return f"{self.mean:.2f}" + (f" ± {self.std:.2f}" if self.std is not None else "")


def _device_names(records: Iterable[Mapping[str, Any]]) -> str:
    """``cpu``, or ``cuda:0 (<GPU name>)``, for each device the records were made on."""
    names = set()
    for r in records:
        env = r.get("environment") or {}
        device, name = str(env.get("device") or "?"), env.get("device_name")
        names.add(f"{device} ({name})" if device.startswith("cuda") and name else device)
    return ", ".join(sorted(names))


def _row(records: list[dict], source: str | None, synthetic: SyntheticSet | None = None) -> Row:
    groups = summary.summarise(records, keys=KEYS)
    if len(groups) != 1:
        raise ValueError(f"the records of one cell form {len(groups)} groups, expected 1: {groups}")
    s = groups[0]
    prepare = [r.get("timings_s", {}).get("prepare") for r in records]
    prepare = [p for p in prepare if p is not None]
    device = _device_names(records)
    return Row(
        method=s["method"],
        dataset=s["dataset"],
        ipc=s["ipc"],
        profile=s["profile"],
        protocol=s["protocol"],
        mean=s["mean"],
        std=s["std"],
        std_over=s["std_over"],
        n=s["n"],
        seeds=s["seeds"],
        distill_seconds=s["distill_seconds"],
        prepare_seconds=sum(prepare) / len(prepare) if prepare else None,
        device=device,
        source=source or f"recorded on {device}",
        paper=papers.reported(s["method"], s["dataset"], s["ipc"]),
        synthetic=synthetic,
        records=records,
    )


def recorded_records(
    method: str,
    dataset: str,
    ipc: int,
    *,
    profile: str,
    protocol: str,
    experiment_name: str = EXPERIMENT,
    folder: str | Path | None = None,
) -> list[dict]:
    """The committed records (``folder``, default ``results.COMMITTED_DIR``) of one cell: same experiment, method,
    dataset, IPC, profile and protocol label, no variant. Empty when there are none."""
    folder = Path(folder) if folder is not None else results.COMMITTED_DIR
    if not (folder / experiment_name).is_dir():
        return []
    out = []
    for r in results.load_records(folder, experiment=experiment_name, skipped=[]):
        params = r.get("params") or {}
        if (
            r.get("method") == method
            and r.get("dataset") == dataset
            and params.get("ipc") == ipc
            and params.get("profile") == profile
            and not params.get("variant")
            and (r.get("protocol") or {}).get("label") == protocol
        ):
            out.append(r)
    return out


def run_cell(
    method: str,
    train: ImageSet,
    test: ImageSet,
    ipc: int,
    *,
    cfg: Mapping[str, Any],
    preparation: Preparation | None = None,
    use_recorded: bool = True,
    experiment_name: str = EXPERIMENT,
) -> Row:
    """One cell: the committed records when they exist (``use_recorded``), else distil/select with the profile's
    settings, evaluate by the profile's protocol and record (``experiment.run_method``)."""
    method = _method(method)
    kwargs = hparams_for(cfg, method, ipc)
    protocol = experiment.eval_protocol(cfg, method, train.name).label
    if use_recorded:
        kept = recorded_records(
            method, train.name, ipc, profile=cfg.get("profile"), protocol=protocol, experiment_name=experiment_name
        )
        if kept:
            return _row(kept, None)
    preparation = preparation if preparation is not None else Preparation(train, cfg)
    extra = preparation.kwargs(method)
    run = experiment.run_method(
        method,
        train,
        test,
        ipc,
        cfg=cfg,
        experiment=experiment_name,
        extra_timings={"prepare": preparation.seconds[method]},
        **extra,
        **kwargs,
    )
    return _row([results.read_record(run.record_path)], COMPUTED, run.synthetic)


def add_gains(rows: Sequence[Row]) -> list[Row]:
    """Set each row's ``gain``: its mean minus the random subset's of the same dataset, IPC and protocol (None when
    that row is missing)."""
    base = {(r.dataset, r.ipc, r.protocol): r.mean for r in rows if r.method == "random" and r.mean is not None}
    for r in rows:
        ref = base.get((r.dataset, r.ipc, r.protocol))
        r.gain = None if ref is None or r.mean is None else r.mean - ref
    return list(rows)


def run_grid(
    data: Mapping[str, tuple[ImageSet, ImageSet]],
    *,
    cfg: Mapping[str, Any],
    methods_: Sequence[str],
    ipcs: Sequence[int],
    use_recorded: bool = True,
    root: str | Path | None = None,
    experiment_name: str = EXPERIMENT,
    progress: bool = False,
) -> list[Row]:
    """Every (method, dataset, IPC) of the grid, random first in each dataset; ``data``: ``{name: (train, test)}``.
    Returns the rows with their gains over random; a method's preparation is shared by its IPCs."""
    names = check_grid(cfg, methods_, ipcs)
    rows = []
    for dataset, (train, test) in data.items():
        prep = Preparation(train, cfg, root=root)
        for method in names:
            for ipc in ipcs:
                t0 = time.perf_counter()
                row = run_cell(
                    method,
                    train,
                    test,
                    ipc,
                    cfg=cfg,
                    preparation=prep,
                    use_recorded=use_recorded,
                    experiment_name=experiment_name,
                )
                rows.append(row)
                if progress:
                    print(
                        f"{dataset} {method:>15} ipc {ipc:>2}: {row.accuracy():>14} %  "
                        f"({row.source}, {time.perf_counter() - t0:.1f} s)",
                        flush=True,
                    )
    return add_gains(rows)


def markdown(rows: Sequence[Row]) -> str:
    """The benchmark table: accuracy, gain over random, the paper's number and its protocol, time, source."""
    head = (
        "| dataset | method | ipc | accuracy (%) | gain over random | paper (%) | paper's protocol | "
        "distil (s) | + prepare (s) | device | scored by | source |"
    )
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in rows:
        gain = "–" if r.gain is None else f"{r.gain:+.2f}"
        paper = "–" if r.paper is None else f"{r.paper} ({r.paper.source.upper()} {r.paper.where})"
        paper_protocol = "–" if r.paper is None else r.paper.protocol
        distil = "–" if r.distill_seconds is None else f"{r.distill_seconds:.1f}"
        prep = "–" if not r.prepare_seconds else f"{r.prepare_seconds:.1f}"
        lines.append(
            f"| {r.dataset} | {r.method} | {r.ipc} | {r.accuracy()} | {gain} | {paper} | {paper_protocol} | "
            f"{distil} | {prep} | {r.device} | {r.protocol} | {r.source} |"
        )
    return "\n".join(lines)


def time_points(rows: Sequence[Row], dataset: str) -> dict[str, dict[int, tuple[float, float]]]:
    """``{method: {ipc: (seconds, accuracy)}}`` of one dataset for ``viz.plot_accuracy_vs_time``; seconds are
    distillation plus preparation."""
    out: dict[str, dict[int, tuple[float, float]]] = {}
    for r in rows:
        if r.dataset == dataset and r.mean is not None and r.total_seconds is not None:
            out.setdefault(r.method, {})[r.ipc] = (r.total_seconds, r.mean)
    return out
