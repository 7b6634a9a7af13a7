"""Batch reruns: a grid of notebooks × parameters, executed by papermill, resumable, in parallel or on SLURM; running
the course is the grid of one point.

    python -m course_utils run                                        # every notebook, quick profile (make course)
    python -m course_utils run --profile standard -p dataset fashion_mnist 00 01
    python -m course_utils sweep 03 04 05 -p dataset mnist,fashion_mnist -p ipcs "[1],[10],[50]" -p seed 0..4
    python -m course_utils sweep --grid grids/example.yaml --workers 2            # N local workers (CPU slots)
    python -m course_utils sweep --grid grids/example.yaml --gpus 0,1             # one worker per GPU, pinned
    python -m course_utils sweep --grid grids/example.yaml --slurm --partition gpu --gpus-per-job 1 --time-min 60

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
- ``logs/``: each run's log; ``table.csv`` and ``table.jsonl``: the gathered table (``python -m course_utils gather``).

A finished run is skipped unless ``--force``; a failed one is reported with its error line and the sweep goes on;
rerunning the same command continues where it stopped (an interrupted sweep leaves no partial file behind).

While notebooks run, a terminal shows a bar on stderr: runs done / failed / left and, for each running notebook, the
cell it is in (k/n) and its seconds. Without a terminal (CI sets ``TQDM_DISABLE``, a log file) there is a line per
finished run and, for each running notebook, a line with its cell at most every ``--progress-every`` seconds.
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..core.atomic import write_text
from ..core.progress import progress_enabled
from ..course.config import PROFILE_NAMES
from ..records import results, summary
from . import notebooks, processes
from .grid import Grid, Run, SweepError, expand, literal, load_grid, parse_values, status, validate

__all__ = [
    "Grid",
    "Progress",
    "Run",
    "SweepError",
    "execute",
    "expand",
    "load_grid",
    "main",
    "parse_values",
    "pending_runs",
    "run_local",
    "run_main",
    "run_submitit",
    "status",
    "validate",
]

#: The columns of the table ``run`` ends with, one row per record (every record has them: ``results`` keeps one schema).
RECORD_COLUMNS = [
    "experiment",
    "method",
    "params.variant",  # e.g. DC's noise-init row beside its real-init row
    "dataset",
    "params.ipc",
    "metrics.mean",
    "metrics.std",
    "protocol.label",
    "environment.device",
]


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


#: How a worker announces the code cell it starts (``[cell] k/n``): the local sweep reads these lines as progress,
#: a SLURM job keeps them in its log.
CELL_LINE = re.compile(r"\[cell\] (\d+)/(\d+)")


def _announce_cell(index: int, total: int) -> None:
    print(f"[cell] {index}/{total}", flush=True)


def execute(run_spec: Mapping[str, Any]) -> dict:
    """Execute one run (in this process: a worker subprocess or a SLURM job) with ``notebooks.execute``: the
    executed notebook appears under its final name only when every cell succeeded; a failure keeps papermill's
    notebook as ``failed`` plus the error line. Each code cell's start is printed (``CELL_LINE``). Returns
    ``{"label", "status" ("ok" or "failed"), "seconds", "error"}``.
    """
    paths = {k: Path(v) for k, v in run_spec["paths"].items()}
    notebooks.remove(paths["error"])
    os.environ["COURSE_OUTPUT_DIR"] = str(run_spec["out"])  # records and caches land where gather reads them
    outcome = notebooks.execute(
        run_spec["notebook"],
        paths["done"],
        run_spec["parameters"],
        failed=paths["failed"],
        cell_timeout=run_spec.get("cell_timeout"),
        on_cell=_announce_cell,
    )
    if outcome.error:  # the sweep goes on: the failure is recorded where status() finds it
        write_text(paths["error"], outcome.error + "\n")
    return {
        "label": run_spec["label"],
        "status": "ok" if outcome.ok else "failed",
        "seconds": outcome.seconds,
        "error": outcome.error,
    }


# --------------------------------------------------------------------------- progress


@dataclass
class _Running:
    """A running notebook as the progress shows it: since when, its code cell k of n, when a line last named it."""

    start: float
    said: float
    cell: int = 0
    cells: int = 0

    def text(self, now: float) -> str:
        return f"cell {self.cell}/{self.cells}, {now - self.start:.0f} s"


class Progress:
    """Runs done / failed / left, the time elapsed and the cell each running notebook is in.

    On a terminal: a tqdm bar on stderr whose text names each running notebook's cell (k/n) and seconds. Without
    one (``CI`` or ``TQDM_DISABLE`` set, output to a file): for each running notebook a line with its cell at most
    every ``every`` seconds. Either way one line per finished run on stdout, tagged ``[tag]``.
    """

    def __init__(self, total: int, skipped: int, *, tag: str = "sweep", every: float = 30.0):
        from tqdm.auto import tqdm

        self.done = self.failed = 0
        self.total, self.skipped, self.tag, self.every = total, skipped, tag, every
        self.t0 = time.perf_counter()
        self.failures: list[tuple[str, str]] = []
        self.running: dict[str, _Running] = {}  # label -> its state
        self.bars = progress_enabled() and sys.stderr.isatty()
        self.bar = tqdm(total=total, unit="run", dynamic_ncols=True, file=sys.stderr, disable=not self.bars)
        self._lock = threading.Lock()

    def _counts(self) -> str:
        return f"done {self.done}, failed {self.failed}, left {self.total - self.done - self.failed}"

    def start(self, label: str) -> None:
        """``label`` started running."""
        with self._lock:
            now = time.perf_counter()
            self.running[label] = _Running(start=now, said=now)

    def cell(self, label: str, index: int, total: int) -> None:
        """``label`` started its code cell ``index`` of ``total``."""
        with self._lock:
            if label in self.running:
                self.running[label].cell, self.running[label].cells = index, total
            self._show_running()

    def tick(self) -> None:
        """Refresh the running notebooks' seconds (called about once a second while runs execute)."""
        with self._lock:
            self._show_running()

    def _show_running(self) -> None:
        now = time.perf_counter()
        started = {label: run for label, run in self.running.items() if run.cells}
        if self.bars:
            self.bar.set_postfix_str("; ".join([self._counts(), *(f"{k} {r.text(now)}" for k, r in started.items())]))
            return
        for label, run in started.items():
            if now - run.said >= self.every:
                run.said = now
                print(f"[{self.tag}] {label}: {run.text(now)}", file=sys.stderr, flush=True)

    def finish(self, result: Mapping[str, Any]) -> None:
        with self._lock:
            self.running.pop(result["label"], None)
            if result["status"] == "ok":
                self.done += 1
            else:
                self.failed += 1
                self.failures.append((result["label"], result.get("error") or "?"))
            elapsed = time.strftime("%H:%M:%S", time.gmtime(time.perf_counter() - self.t0))
            self.bar.set_postfix_str(self._counts())
            self.bar.update(1)
            detail = "" if result["status"] == "ok" else f": {result.get('error')}"
            line = (
                f"[{self.tag}] {result['status']} {result['label']} in {result.get('seconds', 0):.1f} s{detail} "
                f"({self._counts()}, elapsed {elapsed})"
            )
            self.bar.write(line, file=sys.stdout)  # above the bar, not inside it
            sys.stdout.flush()

    def close(self) -> None:
        self.bar.close()


# --------------------------------------------------------------------------- executors


def pending_runs(runs: Sequence[Run], out: Path, force: bool = False) -> list[Run]:
    """The runs still to do: all with ``force``, else those without a finished notebook."""
    return list(runs) if force else [r for r in runs if status(r, out) != "done"]


def _follow(child: subprocess.Popen, log: Path, on_cell: Callable[[int, int], None]) -> str:
    """Copy a worker's output into ``log`` as it comes, hand its cell lines to ``on_cell``; its last other line (the
    worker's result)."""
    last = ""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        for line in child.stdout:
            fh.write(line)
            fh.flush()
            cell = CELL_LINE.fullmatch(line.strip())
            if cell:
                on_cell(int(cell[1]), int(cell[2]))
            elif line.strip():
                last = line
    child.wait()
    return last


def run_local(
    runs: Sequence[Run],
    out: Path,
    *,
    workers: int = 1,
    gpus: Sequence[str] | None = None,
    threads: int | None = None,
    force: bool = False,
    cell_timeout: int | None = None,
    tag: str = "sweep",
    progress_every: float = 30.0,
) -> Progress:
    """Execute the pending runs on this machine, ``workers`` at a time, each in its own process.

    With ``gpus`` there is one worker per GPU and each run sees only its worker's GPU (``CUDA_VISIBLE_DEVICES``);
    otherwise the CPU is shared: each worker gets ``threads`` threads (default: cores // workers). Progress as the
    cells run (``Progress``). Ctrl-C (or SIGTERM) stops every worker with its kernel and removes their partial
    notebooks; the finished runs stay finished.
    """
    todo = pending_runs(runs, out, force)
    if gpus:
        workers = len(gpus)
    if workers < 1:
        raise SweepError(f"workers must be >= 1, got {workers}")
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    progress = Progress(len(todo), len(runs) - len(todo), tag=tag, every=progress_every)
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
            child = subprocess.Popen(
                [sys.executable, "-m", "course_utils.ops.sweep", "--execute", json.dumps(job)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                env=env,
                start_new_session=True,  # its own process group: stopped with its kernel (processes.stop)
            )
            children[slot] = child
            if stopping.is_set():  # Ctrl-C came while it started: the main thread may have missed it
                processes.stop(child, grace=5.0)
            progress.start(run.label)
            log = Path(job["paths"]["log"])
            try:
                last = _follow(child, log, lambda index, total: progress.cell(run.label, index, total))
            finally:
                children.pop(slot, None)
            if stopping.is_set():
                return {"label": run.label, "status": "cancelled"}
            try:
                return json.loads(last)
            except ValueError:
                return {"label": run.label, "status": "failed", "error": f"the worker died (see {log})"}
        finally:
            slots.put(slot)

    pool = futures.ThreadPoolExecutor(max_workers=workers)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if _main_thread() else None
    try:
        pending = {pool.submit(work, run) for run in todo}
        while pending:
            finished, pending = futures.wait(pending, timeout=1.0, return_when=futures.FIRST_COMPLETED)
            for future in finished:
                result = future.result()
                if result["status"] != "cancelled":
                    progress.finish(result)
            progress.tick()
    except KeyboardInterrupt:
        stopping.set()
        for child in list(children.values()):
            processes.stop(child, grace=5.0)
        pool.shutdown(wait=True, cancel_futures=True)
        for run in todo:
            notebooks.remove(run.paths(out)["partial"])
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


def _load_records(out: Path, tag: str) -> list[dict]:
    """Every record under ``out/results``; a file that is not a readable record is named and skipped."""
    if not (out / "results").is_dir():
        return []
    skipped: list = []
    records = results.load_records(out / "results", skipped=skipped)
    for path, reason in skipped:
        print(f"[{tag}] skipped {path}: not a readable result record ({reason})")
    return records


def _summary_table(records: list[dict], out: Path, tag: str) -> None:
    """The sweep's table: one row per setting, mean ± std over seeds, also written as ``table.csv`` / ``.jsonl``."""
    rows = summary.summarise(records)
    print(summary.markdown(rows))
    paths = summary.write_tables(rows, out / "table")
    print(f"[{tag}] table of {len(records)} records: {', '.join(map(str, paths))}")


def _record_table(records: list[dict], out: Path, tag: str) -> None:
    """The course's table: one row per record (``RECORD_COLUMNS``)."""
    print(results.markdown_table(records, RECORD_COLUMNS))


def _report(progress: Progress, out: Path, table: Callable[[list[dict], Path, str], None]) -> int:
    tag = progress.tag
    skipped = f", {progress.skipped} already finished (skipped)" if progress.skipped else ""
    print(f"[{tag}] {progress.done} done, {progress.failed} failed{skipped}; executed notebooks in {out / 'notebooks'}")
    for label, error in progress.failures:
        print(f"[{tag}] FAILED {label}: {error} (papermill's notebook: {label}.failed.ipynb under {out / 'notebooks'})")
    records = _load_records(out, tag)
    if records:
        table(records, out, tag)
    return 1 if progress.failed else 0


def _parser(prog: str, description: str, values: str) -> argparse.ArgumentParser:
    """The arguments ``run`` and ``sweep`` share (``values``: what ``-p NAME ...`` takes)."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("notebooks", nargs="*", help="notebook number prefixes, e.g. 03 04 (default: all)")
    parser.add_argument(
        "--profile", choices=PROFILE_NAMES, help="profile of every run (default: quick, or a grid file's)"
    )
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", values))
    parser.add_argument("--notebook-dir", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cell-timeout", type=int, default=None, help="seconds a cell may run (default: no limit)")
    parser.add_argument(
        "--progress-every",
        type=float,
        default=30.0,
        metavar="S",
        help="without a terminal: seconds between two progress lines of a running notebook (default 30)",
    )
    local = parser.add_argument_group("local workers")
    local.add_argument("--workers", type=int, default=1)
    local.add_argument("--gpus", help="comma-separated GPU ids: one worker per GPU, each run pinned to it")
    local.add_argument("--threads", type=int, default=None, help="CPU threads per worker (default: cores/workers)")
    return parser


def _run_here(runs: list[Run], out: Path, args: argparse.Namespace, *, force: bool, tag: str) -> Progress:
    gpus = [g.strip() for g in args.gpus.split(",") if g.strip()] if args.gpus else None
    return run_local(
        runs,
        out,
        workers=args.workers,
        gpus=gpus,
        threads=args.threads,
        force=force,
        cell_timeout=args.cell_timeout,
        tag=tag,
        progress_every=args.progress_every,
    )


RUN_DESCRIPTION = """Run the course's notebooks (all, or those named) with papermill, then a table of every record.

    python -m course_utils run                                     # every notebook, quick profile (make course)
    python -m course_utils run --profile standard -p dataset fashion_mnist 00 01

A sweep of one point (course_utils.ops.sweep): the same checks of every name and value before anything runs
(``-p NAME VALUE``, one value each; a scalar for a list parameter is a one-element list), the same progress, every
notebook executed again. Under ``--out`` (default ``output/``, i.e. ``$COURSE_OUTPUT_DIR``): executed notebooks in
``notebooks/<notebook>/<profile>....ipynb``, records in ``results/``, logs in ``logs/``. A failed notebook is
reported with its error (``cell N: Error: message``) and the others still run.
"""


def run_main(argv: Sequence[str] | None = None) -> int:
    """``python -m course_utils run``: the course (``make course``), a sweep of one point."""
    parser = _parser("python -m course_utils run", RUN_DESCRIPTION, "VALUE")
    parser.add_argument("--out", type=Path, default=None, help="default: output/ ($COURSE_OUTPUT_DIR)")
    args = parser.parse_args(argv)
    grid = Grid(list(args.notebooks), args.profile or "quick", {name: [literal(v)] for name, v in args.parameter})
    try:
        runs = expand(grid, args.notebook_dir)
    except SweepError as err:
        print(f"[run] {err}", file=sys.stderr)
        return 2
    out = (args.out or results.output_dir()).resolve()
    try:
        progress = _run_here(runs, out, args, force=True, tag="run")
    except KeyboardInterrupt:
        print("[run] interrupted: the notebooks finished so far are kept", flush=True)
        return 130
    return _report(progress, out, _record_table)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m course_utils sweep``: a grid of runs, here or on SLURM, resumable."""
    parser = _parser("python -m course_utils sweep", __doc__, "VALUES")
    parser.add_argument("--grid", type=Path, help="a YAML grid file (notebooks, profile, parameters)")
    parser.add_argument("--out", type=Path, default=None, help="default: output/sweep")
    parser.add_argument("--force", action="store_true", help="rerun finished runs too")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and their state, run nothing")
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
                print(f"[sweep] submitted; when the jobs end: python -m course_utils gather {out / 'results'}")
                return 0
        else:
            progress = _run_here(runs, out, args, force=args.force, tag="sweep")
    except KeyboardInterrupt:
        print("[sweep] interrupted: finished runs are kept; run the same command again to continue", flush=True)
        return 130
    return _report(progress, out, _summary_table)


if __name__ == "__main__":  # the workers: python -m course_utils.ops.sweep --execute SPEC
    sys.exit(main())
