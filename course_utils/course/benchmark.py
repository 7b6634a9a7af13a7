"""Every method under ONE evaluation protocol: the benchmark of notebook 08.

A *cell* is (method, dataset, IPC). Every cell runs through ``experiment.run_method`` with the profile's protocol
(``cfg["eval_protocol"]``, the same for every method), so the records share the course's schema and experiment name
``EXPERIMENT``. Everything method-specific comes from the method's registry entry (``methods.registry.MethodInfo``):
its hyperparameters per profile (``benchmark``; integer keys hold per-IPC overrides) and what it needs made once per
dataset (``prepare`` with ``prepare_settings``: MTT's experts, Acc-DD's early-stage pool, ZEN's families, the ridge
fit behind the closed form, forgetting's statistics, herding's embedding network), made by ``Preparation`` with the
functions the method's own notebook calls; its seconds are kept apart from the distillation's (``prepare_seconds``).
A method added to the registry is in the benchmark with no edit here.

Recorded results: when ``results.COMMITTED_DIR`` holds records of ``EXPERIMENT`` for the same method, dataset, IPC,
profile and protocol, the cell reads them instead of recomputing, and its row says so (``source``: "recorded on
<device>" or "computed now"). Rows aggregate seeds with ``summary.summarise``; each carries the paper's number
(``papers.reported``, None where the paper has none) and the gain over the random real subset of the same dataset,
IPC and protocol (``gain``): the fair measure, since augmentation, soft labels or a longer evaluation lift a random
subset as much as a distilled set. ``gain_interval`` puts a bootstrap interval on it from the networks' accuracies.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch

from .. import methods
from ..core import repro, tables
from ..data.datasets import ImageSet
from ..methods import registry
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
    "network_accuracies",
    "gain_interval",
    "markdown",
    "time_points",
]

EXPERIMENT = "08_benchmark_and_applications"
#: How ``summary.summarise`` groups the records of one cell (seeds are averaged).
KEYS = ("method", "variant", "dataset", "ipc", "profile", "protocol")
COMPUTED = "computed now"


def _method(name: str) -> str:
    return methods.info(name).name  # an unknown method: ValueError naming the valid ones


def budget_table(cfg: Mapping[str, Any], method: str) -> Mapping[Any, Any]:
    """The benchmark hyperparameters of ``method`` (integer keys: per-IPC entries): ``cfg["hparams"][method]`` when a
    caller gives its own table, else the method's registry entry for the profile ``cfg["profile"]``."""
    entry = methods.info(method)
    own = (cfg.get("hparams") or {}).get(entry.name)
    if own is not None:
        return own
    profile = cfg.get("profile")
    if profile not in entry.benchmark:
        raise ValueError(
            f"{entry.name} has no benchmark budget for profile {profile!r} (its budgets: {', '.join(entry.benchmark)});"
            f" or give one in cfg['hparams'][{entry.name!r}]"
        )
    return entry.benchmark[profile]


def listed_ipcs(cfg: Mapping[str, Any], method: str) -> tuple[int, ...] | None:
    """The IPCs ``method`` has its own settings for (None: one setting for every IPC)."""
    return tuple(sorted(k for k in budget_table(cfg, method) if isinstance(k, int))) or None


def hparams_for(cfg: Mapping[str, Any], method: str, ipc: int) -> dict:
    """The hyperparameters of ``method`` at ``ipc`` (``budget_table``): the common ones, overridden by the per-IPC
    entry of the listed IPC nearest to ``ipc``, the smaller on a tie (``registry.at_ipc``: IPC 3 runs with IPC 1's
    budget, IPC 20 with IPC 10's). ``ipc`` must be a positive int."""
    return registry.at_ipc(budget_table(cfg, method), ipc)


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
    ridge fit). Each method says how (``MethodInfo.prepare`` with its ``prepare_settings`` of the profile, or
    ``cfg["prepare"][method]`` when a caller gives its own)."""

    train: ImageSet
    cfg: Mapping[str, Any]
    root: str | Path | None = None  # where experts and pools are stored (None: under the output folder)
    seconds: dict[str, float] = field(default_factory=dict)
    _made: dict[str, dict] = field(default_factory=dict)

    def kwargs(self, method: str) -> dict:
        method = _method(method)
        if method not in self._made:
            t0 = time.perf_counter()
            made, seconds = self._make(method)
            self._made[method] = made
            self.seconds[method] = time.perf_counter() - t0 if seconds is None else seconds
        return dict(self._made[method])

    def _make(self, method: str) -> tuple[dict, float | None]:
        entry, cfg = methods.info(method), self.cfg
        model = experiment.distill_model(cfg)
        if entry.prepare is None:  # the profile's network for the methods that draw one, else nothing
            return ({"model": model} if entry.network == "sampler" else {}), 0.0
        own = (cfg.get("prepare") or {}).get(method)
        settings = own if own is not None else entry.prepare_settings.get(cfg["profile"], {})
        return entry.prepare(
            registry.Preparation(
                train=self.train,
                model=model,
                width=cfg.get("model_width"),
                seed=cfg["seed"],
                device=cfg["device"],
                root=None if self.root is None else Path(self.root),
                generator=repro.run_generator(cfg["seed"], method, self.train.name, "prepare"),
                settings=dict(settings),
                hparams={k: v for k, v in budget_table(cfg, method).items() if not isinstance(k, int)},
            )
        )


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
    gain_ci: tuple[float, float] | None = None  # its 95 % bootstrap interval (``gain_interval``)
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
        return tables.mean_std(self.mean, self.std)


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


def network_accuracies(row: Row) -> list[float]:
    """The test accuracy of every network trained on the row's set(s), over all its records (seeds, draws)."""
    return [float(a) for r in row.records for a in (r.get("metrics") or {}).get("accuracies") or ()]


def gain_interval(
    accuracies: Sequence[float],
    random_accuracies: Sequence[float],
    *,
    level: float = 0.95,
    resamples: int = 4000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of  gain = mean(accuracies) − mean(random_accuracies).

    Each side is resampled with replacement from its own networks' accuracies (independent trainings),
    ``resamples`` times, drawn from a CPU generator seeded with ``seed``; the interval runs between the
    (1 − level)/2 and (1 + level)/2 quantiles of the resampled gains. It shows the spread over network
    initialisations only, and with a handful of networks per side it is itself rough: two networks give three
    distinct resampled means.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 100:
        raise ValueError(f"resamples must be an int >= 100, got {resamples!r}")
    sides = []
    for name, accs in (("accuracies", accuracies), ("random_accuracies", random_accuracies)):
        if len(accs) == 0:
            raise ValueError(f"{name} is empty: a bootstrap needs at least one network's accuracy")
        sides.append(torch.as_tensor(list(accs), dtype=torch.float64))
    g = torch.Generator().manual_seed(seed)
    means = [x[torch.randint(len(x), (resamples, len(x)), generator=g)].mean(1) for x in sides]
    lo, hi = torch.quantile(means[0] - means[1], torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64))
    return float(lo), float(hi)


def add_gains(rows: Sequence[Row]) -> list[Row]:
    """Set each row's ``gain``: its mean minus the random subset's of the same dataset, IPC and protocol (None when
    that row is missing), and ``gain_ci``, its bootstrap interval from the networks' accuracies (None without them)."""
    base = {(r.dataset, r.ipc, r.protocol): r for r in rows if r.method == "random" and r.mean is not None}
    for r in rows:
        ref = base.get((r.dataset, r.ipc, r.protocol))
        r.gain = None if ref is None or r.mean is None else r.mean - ref.mean
        mine, theirs = network_accuracies(r), [] if ref is None else network_accuracies(ref)
        paired = r.gain is not None and r is not ref and mine and theirs  # the random row's gain is 0 by definition
        r.gain_ci = gain_interval(mine, theirs) if paired else None
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
    """The benchmark table: accuracy, gain over random with its bootstrap interval, the paper's number and its
    protocol, time, source."""
    head = (
        *("dataset", "method", "ipc", "accuracy (%)", "gain over random", "95 % interval", "paper (%)"),
        "paper's protocol",
        *("distil (s)", "+ prepare (s)", "device", "scored by", "source"),
    )
    return tables.markdown_table(
        head,
        (
            [
                *(r.dataset, r.method, r.ipc, r.accuracy()),
                tables.MISSING if r.gain is None else f"{r.gain:+.2f}",
                tables.MISSING if r.gain_ci is None else f"[{r.gain_ci[0]:+.1f}, {r.gain_ci[1]:+.1f}]",
                tables.MISSING if r.paper is None else r.paper.cited(),
                tables.MISSING if r.paper is None else r.paper.protocol,
                tables.cell(r.distill_seconds, 1),
                tables.cell(r.prepare_seconds or None, 1),
                *(r.device, r.protocol, r.source),
            ]
            for r in rows
        ),
    )


def time_points(rows: Sequence[Row], dataset: str) -> dict[str, dict[int, tuple[float, float]]]:
    """``{method: {ipc: (seconds, accuracy)}}`` of one dataset for ``viz.plot_accuracy_vs_time``; seconds are
    distillation plus preparation."""
    out: dict[str, dict[int, tuple[float, float]]] = {}
    for r in rows:
        if r.dataset == dataset and r.mean is not None and r.total_seconds is not None:
            out.setdefault(r.method, {})[r.ipc] = (r.total_seconds, r.mean)
    return out
