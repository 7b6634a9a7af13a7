"""Batch reruns: a grid of notebooks × parameters, executed by papermill, resumable, in parallel or on SLURM.

    python -m course_utils.ops.sweep 03 04 05 -p dataset mnist,fashion_mnist -p ipcs "[1],[10],[50]" -p seed 0..4
    python -m course_utils.ops.sweep --grid grids/example.yaml --workers 2            # N local workers (CPU slots)
    python -m course_utils.ops.sweep --grid grids/example.yaml --gpus 0,1             # one worker per GPU, pinned
    python -m course_utils.ops.sweep --grid grids/example.yaml --slurm --partition gpu --gpus-per-job 1 --time-min 60

Every combination of the values is one run (``-p NAME V1,V2`` is an axis; ``a..b`` is the integers a to b; a list
value is written in brackets, ``[1,10]``; a scalar given to a list parameter means a one-element list). Before
anything starts, every run's parameter names are checked against the notebook's ``parameters`` cell and every value
against its type and the course's settings (``config.resolve``): a typo fails the sweep, it never runs defaults.

Layout under ``--out`` (default ``output/sweep``):

- ``notebooks/<notebook>/<profile>__<name>=<value>__....ipynb``: the executed notebook of a finished run. It is
  written as ``....partial.ipynb`` and renamed when the run succeeds, so a file with the final name is a finished run;
- ``....failed.ipynb`` and ``....failed.txt``: papermill's notebook of a failed run and its error line;
- ``results/``: the runs' result records (each run's ``COURSE_OUTPUT_DIR`` is ``--out``; caches such as expert
  trajectories are shared by the runs);
- ``logs/``: each run's log; ``table.csv`` and ``table.jsonl``: the gathered table (``course_utils.ops.gather``).

A finished run is skipped unless ``--force``; a failed one is reported with its error line and the sweep goes on;
rerunning the same command continues where it stopped (an interrupted sweep leaves no partial file behind).
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures as futures
import itertools
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..core.atomic import write_text
from ..course.config import PROFILE_NAMES
from ..records import results, summary
from . import notebook_runner, processes

__all__ = [
    "Grid",
    "Run",
    "SweepError",
    "execute",
    "expand",
    "load_grid",
    "parse_values",
    "pending_runs",
    "run_local",
    "run_submitit",
    "status",
    "validate",
]

#: Keys a grid file may hold.
GRID_KEYS = ("notebooks", "profile", "parameters")
_MAX_NAME = 150  # characters of a run's file name before it is shortened with a hash


class SweepError(ValueError):
    """A grid that cannot run as given (unknown notebook or parameter, bad value): nothing was started."""


# --------------------------------------------------------------------------- the grid


def parse_values(text: str) -> list:
    """The values of one axis: ``"a..b"`` is the integers a to b, else comma-separated values outside brackets and
    quotes, each read as a Python literal (``"[1,10]"`` is one list) or kept as text (``mnist``)."""
    text = str(text).strip()
    match = re.fullmatch(r"(-?\d+)\.\.(-?\d+)", text)
    if match:
        low, high = int(match[1]), int(match[2])
        if high < low:
            raise SweepError(f"empty range {text!r}: write low..high with low <= high")
        return list(range(low, high + 1))
    parts, depth, quote, current = [], 0, None, ""
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += char
    parts.append(current)
    if depth != 0 or quote:
        raise SweepError(f"unbalanced brackets or quotes in {text!r}")
    return [_literal(p.strip()) for p in parts if p.strip()]


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


@dataclass
class Grid:
    """Notebooks (number prefixes) × the product of ``axes`` (name -> values), all with ``profile`` unless an axis
    names ``profile``."""

    notebooks: list[str]
    profile: str = "quick"
    axes: dict[str, list] = field(default_factory=dict)


def _axis(name: str, value: Any) -> list:
    if isinstance(value, str):
        return parse_values(value)
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if not values:
        raise SweepError(f"parameter {name!r} has no values")
    return values


def load_grid(path: str | os.PathLike) -> Grid:
    """A grid file (YAML)::

    notebooks: ["03", "04", "05"]
    profile: quick
    parameters:
      dataset: [mnist, fashion_mnist]   # a list is an axis: one run per value
      ipcs: [[1], [10], [50]]           # so a list-valued parameter's values are lists
      seed: 0..4                        # a range
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise SweepError(f"no grid file {path}")
    spec = yaml.safe_load(path.read_text()) or {}
    if not isinstance(spec, dict):
        raise SweepError(f"{path}: a grid file is a mapping with keys {', '.join(GRID_KEYS)}")
    unknown = sorted(set(spec) - set(GRID_KEYS))
    if unknown:
        raise SweepError(f"{path}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(GRID_KEYS)}")
    notebooks = spec.get("notebooks") or []
    notebooks = [notebooks] if isinstance(notebooks, (str, int)) else notebooks
    parameters = spec.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise SweepError(f"{path}: 'parameters' must map names to values")
    return Grid(
        notebooks=[f"{n:02d}" if isinstance(n, int) else str(n) for n in notebooks],  # YAML reads 03 as 3
        profile=str(spec.get("profile", "quick")),
        axes={str(name): _axis(name, value) for name, value in parameters.items()},
    )


@dataclass(frozen=True)
class Run:
    """One notebook with one set of parameters (``params`` always holds ``profile``)."""

    notebook: Path
    params: tuple  # sorted (name, value) pairs, hashable

    @property
    def parameters(self) -> dict:
        return dict(self.params)

    @property
    def name(self) -> str:
        """``<profile>__<name>=<value>__...``: the parameters given, in name order, readable in a file listing."""
        params = self.parameters
        parts = [str(params["profile"])] + [f"{k}={_fmt(v)}" for k, v in sorted(params.items()) if k != "profile"]
        name = re.sub(r"[^A-Za-z0-9_.=+-]+", "-", "__".join(parts))
        if len(name) > _MAX_NAME:
            name = f"{name[:_MAX_NAME]}__{results.params_hash(params)}"
        return name

    @property
    def label(self) -> str:
        return f"{self.notebook.stem}/{self.name}"

    def paths(self, out: Path) -> dict[str, Path]:
        folder = out / "notebooks" / self.notebook.stem
        return {
            "done": folder / f"{self.name}.ipynb",
            "partial": folder / f"{self.name}.partial.ipynb",
            "failed": folder / f"{self.name}.failed.ipynb",
            "error": folder / f"{self.name}.failed.txt",
            "log": out / "logs" / self.notebook.stem / f"{self.name}.log",
        }


def _fmt(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "-".join(_fmt(v) for v in value) or "empty"
    return str(value)


def expand(grid: Grid, notebook_dir: str | os.PathLike | None = None) -> list[Run]:
    """Every run of ``grid`` (notebooks in number order, then the axes' product in the order given), validated
    before any of them starts (``validate``)."""
    books = notebook_runner.list_notebooks(grid.notebooks or None, notebook_dir)
    axes = {"profile": [grid.profile], **grid.axes}
    names = list(axes)
    runs = []
    for book in books:
        for values in itertools.product(*(axes[n] for n in names)):
            runs.append(Run(book, tuple(sorted(zip(names, values)))))
    return validate(runs)


def validate(runs: Sequence[Run]) -> list[Run]:
    """Check every run's names and values against its notebook (``notebook_runner.check_parameters``); raise one
    ``SweepError`` listing every problem, so that nothing starts. Returns the runs with values coerced (a scalar
    given to a list parameter becomes a one-element list)."""
    problems: dict[str, list[str]] = {}  # message -> the runs it concerns
    checked, seen = [], set()
    for run in runs:
        try:
            params = notebook_runner.check_parameters(run.notebook, run.parameters, values=True)
        except (SystemExit, ValueError, TypeError) as err:
            problems.setdefault(str(err), []).append(run.label)
            continue
        coerced = Run(run.notebook, tuple(sorted(params.items())))
        if coerced.label in seen:
            problems.setdefault("two runs of the grid have the same parameters", []).append(coerced.label)
        seen.add(coerced.label)
        checked.append(coerced)
    if problems:
        lines = [
            f"{message} ({labels[0]}" + (f" and {len(labels) - 1} more run(s))" if len(labels) > 1 else ")")
            for message, labels in problems.items()
        ]
        raise SweepError("the grid cannot run; nothing was started:\n  " + "\n  ".join(lines))
    return checked


def status(run: Run, out: Path) -> str:
    """``done`` (its executed notebook exists), ``failed`` (its failure notebook or error line does) or ``pending``."""
    paths = run.paths(out)
    if paths["done"].exists():
        return "done"
    return "failed" if paths["error"].exists() or paths["failed"].exists() else "pending"


# --------------------------------------------------------------------------- one run


def spec(run: Run, out: Path, cell_timeout: int | None = None) -> dict:
    """What a worker needs to execute ``run`` (plain JSON: it crosses process and cluster boundaries)."""
    return {
        "notebook": str(run.notebook),
        "parameters": run.parameters,
        "label": run.label,
        "out": str(out),
        "paths": {k: str(v) for k, v in run.paths(out).items()},
        "cell_timeout": cell_timeout,
    }


def _remove(*paths: str | Path) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def execute(run_spec: Mapping[str, Any]) -> dict:
    """Execute one run with papermill (in this process: a worker subprocess or a SLURM job).

    The executed notebook is written as ``partial`` and renamed to its final name only when every cell succeeded;
    a failure keeps papermill's notebook as ``failed`` plus the error line. Returns ``{"label", "status" ("ok" or
    "failed"), "seconds", "error"}``.
    """
    import papermill as pm

    paths = {k: Path(v) for k, v in run_spec["paths"].items()}
    paths["done"].parent.mkdir(parents=True, exist_ok=True)
    _remove(paths["partial"], paths["failed"], paths["error"])
    os.environ["COURSE_OUTPUT_DIR"] = str(run_spec["out"])  # records and caches land where gather reads them
    t0 = time.perf_counter()
    error = None
    try:
        pm.execute_notebook(
            run_spec["notebook"],
            str(paths["partial"]),
            parameters=run_spec["parameters"],
            cwd=str(Path(run_spec["notebook"]).parent),
            kernel_name="python3",
            progress_bar=False,
            execution_timeout=run_spec.get("cell_timeout"),
        )
        os.replace(paths["partial"], paths["done"])
    except Exception as exc:  # the sweep goes on: the failure is recorded where status() finds it
        error = notebook_runner.describe_failure(exc)
        if paths["partial"].exists():
            os.replace(paths["partial"], paths["failed"])
        write_text(paths["error"], error + "\n")
    except BaseException:  # interrupted: leave nothing half-written
        _remove(paths["partial"])
        raise
    return {
        "label": run_spec["label"],
        "status": "failed" if error else "ok",
        "seconds": time.perf_counter() - t0,
        "error": error,
    }


# --------------------------------------------------------------------------- progress


class Progress:
    """Runs done / failed / left and the time elapsed: a tqdm bar on a terminal, and one line per finished run."""

    def __init__(self, total: int, skipped: int):
        from tqdm.auto import tqdm

        self.done = self.failed = 0
        self.total, self.skipped, self.t0 = total, skipped, time.perf_counter()
        self.failures: list[tuple[str, str]] = []
        self.bar = tqdm(total=total, unit="run", dynamic_ncols=True, file=sys.stderr)
        self._lock = threading.Lock()

    def finish(self, result: Mapping[str, Any]) -> None:
        with self._lock:
            if result["status"] == "ok":
                self.done += 1
            else:
                self.failed += 1
                self.failures.append((result["label"], result.get("error") or "?"))
            left = self.total - self.done - self.failed
            elapsed = time.strftime("%H:%M:%S", time.gmtime(time.perf_counter() - self.t0))
            self.bar.set_postfix_str(f"done {self.done}, failed {self.failed}, left {left}")
            self.bar.update(1)
            detail = "" if result["status"] == "ok" else f": {result.get('error')}"
            line = (
                f"[sweep] {result['status']} {result['label']} in {result.get('seconds', 0):.1f} s{detail} "
                f"(done {self.done}, failed {self.failed}, left {left}, elapsed {elapsed})"
            )
            self.bar.write(line, file=sys.stdout)  # above the bar, not inside it
            sys.stdout.flush()

    def close(self) -> None:
        self.bar.close()


# --------------------------------------------------------------------------- executors


def pending_runs(runs: Sequence[Run], out: Path, force: bool = False) -> list[Run]:
    """The runs still to do: all with ``force``, else those without a finished notebook."""
    return list(runs) if force else [r for r in runs if status(r, out) != "done"]


def run_local(
    runs: Sequence[Run],
    out: Path,
    *,
    workers: int = 1,
    gpus: Sequence[str] | None = None,
    threads: int | None = None,
    force: bool = False,
    cell_timeout: int | None = None,
) -> Progress:
    """Execute the pending runs on this machine, ``workers`` at a time, each in its own process.

    With ``gpus`` there is one worker per GPU and each run sees only its worker's GPU (``CUDA_VISIBLE_DEVICES``);
    otherwise the CPU is shared: each worker gets ``threads`` threads (default: cores // workers). Ctrl-C (or
    SIGTERM) stops every worker and removes their partial notebooks; the finished runs stay finished.
    """
    todo = pending_runs(runs, out, force)
    if gpus:
        workers = len(gpus)
    if workers < 1:
        raise SweepError(f"workers must be >= 1, got {workers}")
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    progress = Progress(len(todo), len(runs) - len(todo))
    slots: queue.Queue[int] = queue.Queue()
    for slot in range(workers):
        slots.put(slot)
    children: dict[int, subprocess.Popen] = {}
    stopping = threading.Event()

    def work(run: Run) -> dict:
        if stopping.is_set():
            return {"label": run.label, "status": "cancelled"}
        slot = slots.get()
        try:
            if stopping.is_set():
                return {"label": run.label, "status": "cancelled"}
            env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
            if gpus:
                env["CUDA_VISIBLE_DEVICES"] = str(gpus[slot])
            job = spec(run, out, cell_timeout)
            log = Path(job["paths"]["log"])
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "w") as fh:
                child = subprocess.Popen(
                    [sys.executable, "-m", "course_utils.ops.sweep", "--execute", json.dumps(job)],
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,  # its own process group: stopped with its kernel (processes.stop)
                )
                children[slot] = child
                child.wait()
                children.pop(slot, None)
            if stopping.is_set():
                return {"label": run.label, "status": "cancelled"}
            try:
                return json.loads(log.read_text().strip().splitlines()[-1])
            except (ValueError, IndexError):
                return {"label": run.label, "status": "failed", "error": f"the worker died (see {log})"}
        finally:
            slots.put(slot)

    pool = futures.ThreadPoolExecutor(max_workers=workers)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if _main_thread() else None
    try:
        pending = [pool.submit(work, run) for run in todo]
        for future in futures.as_completed(pending):
            result = future.result()
            if result["status"] != "cancelled":
                progress.finish(result)
    except KeyboardInterrupt:
        stopping.set()
        for child in list(children.values()):
            processes.stop(child, grace=5.0)
        pool.shutdown(wait=True, cancel_futures=True)
        for run in todo:
            _remove(run.paths(out)["partial"])
        progress.close()
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        pool.shutdown(wait=True)
    progress.close()
    return progress


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run_submitit(
    runs: Sequence[Run],
    out: Path,
    *,
    cluster: str = "slurm",
    array: bool = True,
    partition: str | None = None,
    gpus_per_job: int = 0,
    cpus_per_job: int = 1,
    mem_gb: float | None = None,
    time_min: int = 60,
    array_parallelism: int = 32,
    force: bool = False,
    cell_timeout: int | None = None,
    wait: bool = True,
    poll_s: float = 2.0,
) -> Progress | list:
    """Submit the pending runs through submitit: a SLURM job array (``array``) or one job per run; ``cluster="local"``
    runs the same jobs as local processes (how the tests exercise this path). Each job executes ``execute``.
    With ``wait`` it reports progress until every job ends; else it returns the submitted jobs."""
    import submitit

    if cluster not in ("slurm", "local"):
        raise SweepError(f"cluster must be slurm or local, got {cluster!r}")
    todo = pending_runs(runs, out, force)
    executor = submitit.AutoExecutor(folder=out / "submitit" / "%j", cluster=cluster)
    options: dict[str, Any] = {"timeout_min": time_min, "cpus_per_task": cpus_per_job, "name": "dd-course-sweep"}
    if gpus_per_job:
        options["gpus_per_node"] = gpus_per_job
    if mem_gb:
        options["mem_gb"] = mem_gb
    if cluster == "slurm":
        options["slurm_array_parallelism"] = array_parallelism
        if partition:
            options["slurm_partition"] = partition
    executor.update_parameters(**options)
    specs = [spec(run, out, cell_timeout) for run in todo]
    if array:
        jobs = executor.map_array(execute, specs) if specs else []
    else:
        jobs = [executor.submit(execute, s) for s in specs]
    for job, run in zip(jobs, todo):
        print(f"[sweep] submitted job {job.job_id}: {run.label}", flush=True)
    if not wait:
        return jobs
    progress = Progress(len(todo), len(runs) - len(todo))
    waiting = list(zip(jobs, todo))
    while waiting:
        still = []
        for job, run in waiting:
            if not job.done():
                still.append((job, run))
                continue
            try:
                result = job.result()
            except Exception as exc:  # the job itself died (time limit, node failure): report it, go on
                text = " ".join(str(exc).split())[-300:]
                result = {"label": run.label, "status": "failed", "error": f"job {job.job_id}: {text}"}
            progress.finish(result)
        waiting = still
        if waiting:
            time.sleep(poll_s)
    progress.close()
    return progress


# --------------------------------------------------------------------------- command line


def _report(progress: Progress, out: Path) -> int:
    print(
        f"[sweep] {progress.done} done, {progress.failed} failed, {progress.skipped} already finished (skipped); "
        f"executed notebooks in {out / 'notebooks'}"
    )
    for label, error in progress.failures:
        print(f"[sweep] FAILED {label}: {error} (papermill's notebook: {label}.failed.ipynb under {out / 'notebooks'})")
    records = results.load_records(out / "results", skipped=[]) if (out / "results").is_dir() else []
    if records:
        rows = summary.summarise(records)
        print(summary.markdown(rows))
        paths = summary.write_tables(rows, out / "table")
        print(f"[sweep] table of {len(records)} records: {', '.join(map(str, paths))}")
    return 1 if progress.failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", help="notebook number prefixes (default: the grid file's, or all)")
    parser.add_argument("--grid", type=Path, help="a YAML grid file (notebooks, profile, parameters)")
    parser.add_argument("--profile", choices=PROFILE_NAMES, help="profile of every run (default: the grid's, quick)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUES"))
    parser.add_argument("--out", type=Path, default=None, help="default: output/sweep")
    parser.add_argument("--notebook-dir", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--force", action="store_true", help="rerun finished runs too")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and their state, run nothing")
    parser.add_argument("--cell-timeout", type=int, default=None, help="seconds a cell may run (default: no limit)")
    local = parser.add_argument_group("local workers")
    local.add_argument("--workers", type=int, default=1)
    local.add_argument("--gpus", help="comma-separated GPU ids: one worker per GPU, each run pinned to it")
    local.add_argument("--threads", type=int, default=None, help="CPU threads per worker (default: cores/workers)")
    slurm = parser.add_argument_group("SLURM (submitit)")
    slurm.add_argument("--slurm", action="store_true", help="submit to SLURM instead of running here")
    slurm.add_argument("--submitit-local", action="store_true", help=argparse.SUPPRESS)  # the tests' path
    slurm.add_argument("--one-job-per-run", action="store_true", help="separate jobs instead of one job array")
    slurm.add_argument("--partition")
    slurm.add_argument("--gpus-per-job", type=int, default=0)
    slurm.add_argument("--cpus-per-job", type=int, default=4)
    slurm.add_argument("--mem-gb", type=float, default=None)
    slurm.add_argument("--time-min", type=int, default=60, help="time limit of each job in minutes")
    slurm.add_argument("--array-parallelism", type=int, default=32)
    slurm.add_argument("--no-wait", action="store_true", help="submit and exit; gather the table later")
    parser.add_argument("--execute", help=argparse.SUPPRESS)  # a worker: one run's JSON spec
    args = parser.parse_args(argv)

    if args.execute:
        signal.signal(signal.SIGTERM, _raise_interrupt)
        print(json.dumps(execute(json.loads(args.execute))), flush=True)
        return 0
    try:
        grid = load_grid(args.grid) if args.grid else Grid(notebooks=[])
        if args.notebooks:
            grid.notebooks = list(args.notebooks)
        if args.profile:
            grid.profile = args.profile
        for name, values in args.parameter:
            grid.axes[name] = parse_values(values)
        runs = expand(grid, args.notebook_dir)
    except SweepError as err:
        print(f"[sweep] {err}", file=sys.stderr)
        return 2
    out = (args.out or results.output_dir() / "sweep").resolve()
    states = [status(run, out) for run in runs]
    print(
        f"[sweep] {len(runs)} runs: {states.count('done')} finished, {states.count('failed')} failed before, "
        f"{states.count('pending')} new; output in {out}",
        flush=True,
    )
    if args.dry_run:
        for run, state in zip(runs, states):
            print(f"  {state:8s} {run.label}")
        return 0
    try:
        if args.slurm or args.submitit_local:
            progress = run_submitit(
                runs,
                out,
                cluster="local" if args.submitit_local else "slurm",
                array=not args.one_job_per_run,
                partition=args.partition,
                gpus_per_job=args.gpus_per_job,
                cpus_per_job=args.cpus_per_job,
                mem_gb=args.mem_gb,
                time_min=args.time_min,
                array_parallelism=args.array_parallelism,
                force=args.force,
                cell_timeout=args.cell_timeout,
                wait=not args.no_wait,
            )
            if args.no_wait:
                print(f"[sweep] submitted; when the jobs end: python -m course_utils.ops.gather {out / 'results'}")
                return 0
        else:
            gpus = [g.strip() for g in args.gpus.split(",") if g.strip()] if args.gpus else None
            progress = run_local(
                runs,
                out,
                workers=args.workers,
                gpus=gpus,
                threads=args.threads,
                force=args.force,
                cell_timeout=args.cell_timeout,
            )
    except KeyboardInterrupt:
        print("[sweep] interrupted: finished runs are kept; run the same command again to continue", flush=True)
        return 130
    return _report(progress, out)


if __name__ == "__main__":
    sys.exit(main())
