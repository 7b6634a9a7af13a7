"""Batch reruns (course_utils.ops.sweep) and the results table (course_utils.ops.gather), on a small real grid.

The grid's notebooks are written here: each loads real MNIST / Fashion-MNIST, selects a random subset with the
course's ``experiment.run_method`` and records it, so the table at the end holds real records. One run fails on
purpose, one sweep is interrupted and resumed, two workers share the CPU, and the SLURM path runs through
submitit's local executor.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from course_utils.ops import gather, notebooks, sweep
from course_utils.records import results, summary

PARAMETERS = """profile: str = "quick"  # quick | standard | full
dataset: str = "mnist"  # mnist | fashion_mnist
seed: int = 0  # drives the subset and the networks
ipcs: list = None  # images per class (quick [1])
fail_seed: int = -1  # the run with this seed raises (a planted failure)
sleep_s: float = 0.0  # seconds to wait first (lets a test interrupt a sweep)
"""

BODY = """import os
import time

from course_utils import config, data, experiment, repro
from course_utils.core import atomic

time.sleep(sleep_s)
if seed == fail_seed:
    raise RuntimeError(f"planted failure for seed {seed}")
cfg = config.resolve(profile, dataset=dataset, seed=seed, ipcs=ipcs or [1], eval_epochs=3, eval_models=1,
                     random_draws=1, device="cpu")
train, test = data.load(cfg.dataset, download=False)
gen = repro.make_generator(0)
run = experiment.run_method("random", train.balanced_subset(20, gen), test.balanced_subset(10, gen), cfg.ipcs[0],
                            cfg=cfg, experiment="99_sweep_test")
seen = {k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "COURSE_OUTPUT_DIR")}
atomic.write_json(os.path.join(os.environ["COURSE_OUTPUT_DIR"], "env", f"{dataset}_{seed}.json"), seen)
print(run.result.mean)
"""


def _notebook(folder: Path, name: str = "98_tiny.ipynb", body: str = BODY) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(PARAMETERS)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# tiny"), params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    nbformat.write(nb, path)
    return path


@pytest.fixture
def grid_env(tmp_path, mnist_root, monkeypatch):
    """A notebook folder with the tiny notebook, an output folder, the data root for the runs."""
    monkeypatch.setenv("COURSE_DATA_ROOT", str(mnist_root))
    books = tmp_path / "books"
    _notebook(books)
    return books, tmp_path / "sweep"


def _main(books, out, *args):
    return sweep.main(["--notebook-dir", str(books), "--out", str(out), *args])


def _finished(out: Path) -> list[Path]:
    return sorted(
        p for p in (out / "notebooks").rglob("*.ipynb") if not p.name.endswith(("partial.ipynb", "failed.ipynb"))
    )


# --------------------------------------------------------------------------- the grid, no execution


def test_parse_values_reads_ranges_lists_and_text():
    assert sweep.parse_values("0..4") == [0, 1, 2, 3, 4]
    assert sweep.parse_values("mnist,fashion_mnist") == ["mnist", "fashion_mnist"]
    assert sweep.parse_values("[1],[10],[50]") == [[1], [10], [50]]
    assert sweep.parse_values("[1,10]") == [[1, 10]]
    assert sweep.parse_values("0.5, 'a,b'") == [0.5, "a,b"]
    with pytest.raises(sweep.SweepError, match="empty range '4..0'"):
        sweep.parse_values("4..0")
    with pytest.raises(sweep.SweepError, match="unbalanced"):
        sweep.parse_values("[1,2")


def test_grid_file_expands_to_named_runs(tmp_path):
    books = tmp_path / "books"
    _notebook(books)
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        "notebooks: [98]\nprofile: quick\nparameters:\n  dataset: [mnist, fashion_mnist]\n"
        "  ipcs: [[1], [10]]\n  seed: 0..1\n"
    )
    runs = sweep.expand(sweep.load_grid(grid), books)
    assert len(runs) == 8
    names = {r.name for r in runs}
    assert "quick__dataset=mnist__ipcs=10__seed=1" in names and len(names) == 8
    # a scalar given to a list parameter is a one-element list
    (run,) = sweep.expand(sweep.Grid(["98"], axes={"ipcs": [10]}), books)
    assert run.parameters["ipcs"] == [10] and run.paths(tmp_path)["done"].name == "quick__ipcs=10.ipynb"


def test_the_committed_example_grid_is_valid():
    root = Path(__file__).resolve().parents[1]
    runs = sweep.expand(sweep.load_grid(root / "grids" / "example.yaml"))
    assert len(runs) == 3 * 2 * 3 * 5  # notebooks 03 04 05 × datasets × ipcs × seeds


@pytest.mark.parametrize(
    "axes, message",
    [
        ({"eval_epoch": [3]}, "unknown parameter\\(s\\) eval_epoch; declared: profile, dataset"),
        ({"dataset": ["mnsit"]}, "unknown dataset 'mnsit'; valid: mnist, fashion_mnist"),
        ({"seed": ["zero"]}, "seed='zero' is not of type int"),
        ({"ipcs": [[0]]}, "ipc must be an integer >= 1, got 0"),
        ({"profile": ["fast"]}, "profile"),
    ],
)
def test_bad_names_and_values_fail_before_anything_starts(tmp_path, axes, message, capsys):
    books = tmp_path / "books"
    _notebook(books)
    with pytest.raises(sweep.SweepError, match=message):
        sweep.expand(sweep.Grid(["98"], axes={"seed": [0, 1], **axes}), books)
    name, values = next(iter(axes.items()))
    assert _main(books, tmp_path / "out", "98", "-p", name, ",".join(map(repr, values))) == 2
    assert "nothing was started" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_unknown_grid_keys_and_notebooks_are_named(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text("notebook: [3]\n")
    with pytest.raises(sweep.SweepError, match="unknown key\\(s\\) notebook; valid: notebooks, profile, parameters"):
        sweep.load_grid(grid)
    with pytest.raises(sweep.SweepError, match="no notebook matches \\['42'\\]"):
        sweep.expand(sweep.Grid(["42"]), tmp_path)


# --------------------------------------------------------------------------- real runs


@pytest.mark.slow
def test_grid_runs_records_fails_one_and_resumes(grid_env, capsys):
    books, out = grid_env
    args = ("98", "-p", "dataset", "mnist,fashion_mnist", "-p", "seed", "0..1", "-p", "fail_seed", "1")
    assert _main(books, out, *args, "--workers", "2") == 1  # one run per dataset fails on purpose
    text = capsys.readouterr().out
    assert "RuntimeError: planted failure for seed 1" in text and "done 2, failed 2" in text
    done = _finished(out)
    assert [p.name for p in done] == [
        "quick__dataset=fashion_mnist__fail_seed=1__seed=0.ipynb",
        "quick__dataset=mnist__fail_seed=1__seed=0.ipynb",
    ]
    failed = sorted((out / "notebooks").rglob("*.failed.ipynb"))
    assert len(failed) == 2 and all(p.with_name(p.name.replace(".ipynb", ".txt")).exists() for p in failed)
    assert not list(out.rglob("*.partial.ipynb"))
    # the two workers shared the 2... cores: each got its own thread count
    seen = json.loads((out / "env" / "mnist_0.json").read_text())
    assert seen["OMP_NUM_THREADS"] == str(max(1, (os.cpu_count() or 1) // 2)) and seen["COURSE_OUTPUT_DIR"] == str(out)

    # rerun: the finished runs are skipped, the failed ones run again (and fail again)
    mtimes = {p: p.stat().st_mtime_ns for p in done}
    assert _main(books, out, *args) == 1
    text = capsys.readouterr().out
    assert "2 finished, 2 failed before, 0 new" in text and "2 already finished (skipped)" in text
    assert {p: p.stat().st_mtime_ns for p in done} == mtimes

    # the table: one row per (dataset), two... seeds? only seed 0 succeeded: n = 1, std over networks
    rows = summary.summarise(results.load_records(out / "results"))
    assert [(r["dataset"], r["n"], r["std_over"]) for r in rows] == [
        ("fashion_mnist", 1, "networks"),
        ("mnist", 1, "networks"),
    ]
    assert (out / "table.csv").exists() and (out / "table.jsonl").exists()

    # with the failure fixed (another fail_seed) the whole grid completes: mean ± std over the two seeds
    assert _main(books, out, "98", "-p", "dataset", "mnist", "-p", "seed", "0..1") == 0
    rows = [r for r in summary.summarise(results.load_records(out / "results")) if r["dataset"] == "mnist"]
    assert rows[0]["n"] == 2 and rows[0]["std_over"] == "seeds" and rows[0]["seeds"] == [0, 1]


@pytest.mark.slow
def test_interrupted_sweep_leaves_nothing_half_written_and_resumes(grid_env):
    books, out = grid_env
    cmd = [sys.executable, "-m", "course_utils", "sweep", "--notebook-dir", str(books), "--out", str(out), "98",
           "-p", "seed", "0..2", "-p", "sleep_s", "3"]  # fmt: skip
    # Ctrl-C reaches the sweep however pytest was started (a shell's background job inherits SIGINT ignored)
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 120
    while not _finished(out) and time.time() < deadline:  # wait for the first run to finish
        time.sleep(0.2)
    assert _finished(out), "the first run did not finish"
    proc.send_signal(signal.SIGINT)  # Ctrl-C in the middle of the second run
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    assert "interrupted" in output
    first = _finished(out)
    assert len(first) == 1 and not list(out.rglob("*.partial.ipynb")) and not list(out.rglob("*.failed.*"))
    mtime = first[0].stat().st_mtime_ns
    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "3 runs: 1 finished, 0 failed before, 2 new" in resumed.stdout
    assert len(_finished(out)) == 3 and first[0].stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_one_worker_per_gpu_pins_each_run(grid_env):
    books, out = grid_env
    assert _main(books, out, "98", "-p", "seed", "0..1", "--gpus", "3,5") == 0
    pinned = {json.loads((out / "env" / f"mnist_{s}.json").read_text())["CUDA_VISIBLE_DEVICES"] for s in (0, 1)}
    assert pinned == {"3", "5"}  # two workers, each run sees only its worker's GPU


@pytest.mark.slow
def test_submitit_path_runs_the_same_jobs(grid_env, capsys):
    books, out = grid_env
    assert _main(books, out, "98", "-p", "seed", "0..1", "-p", "fail_seed", "1", "--submitit-local") == 1
    text = capsys.readouterr().out
    assert text.count("[sweep] submitted job") == 2 and "planted failure for seed 1" in text
    assert [p.name for p in _finished(out)] == ["quick__fail_seed=1__seed=0.ipynb"]
    assert _main(books, out, "98", "-p", "seed", "0..1", "-p", "fail_seed", "1", "--submitit-local",
                 "--one-job-per-run") == 1  # fmt: skip
    assert "1 finished, 1 failed before, 0 new" in capsys.readouterr().out


# --------------------------------------------------------------------------- the table


def _record(seed, mean, experiment="e", method="dc", ipc=10, commit="abc", **hparams):
    rec = results.make_record(
        experiment,
        method=method,
        dataset="mnist",
        params={"ipc": ipc, "profile": "quick", "hparams": hparams, "never_learned": seed * 7},
        seed=seed,
        device="cpu",
        metrics=results.metrics([mean - 1, mean + 1]),
        protocol="plain",
        timings={"distill": 10.0 + seed},
    )
    rec["commit"] = commit
    return rec


def test_summarise_over_seeds_and_flag_mixed_code():
    records = [_record(0, 80.0), _record(1, 84.0), _record(2, 70.0, lr=2.0), _record(0, 60.0, ipc=1, commit="def")]
    rows = summary.summarise(records)
    by = {(r["ipc"], r["n"]): r for r in rows}
    pair = by[10, 2]  # the seeds of one setting; an outcome stored in params does not split them
    assert pair["mean"] == 82.0 and pair["std"] == 2.0 and pair["std_over"] == "seeds" and pair["seeds"] == [0, 1]
    assert pair["distill_seconds"] == 10.5 and not pair["mixed_versions"]
    other = [r for r in rows if r["ipc"] == 10 and r["n"] == 1][0]  # other hyperparameters: another row
    assert other["mean"] == 70.0 and other["std"] == 1.0 and other["std_over"] == "networks"
    mixed = summary.summarise([_record(0, 80.0), _record(1, 84.0, commit="zzz")])
    assert mixed[0]["mixed_versions"] and mixed[0]["versions"] == [
        f"{results.__version__}@abc",
        f"{results.__version__}@zzz",
    ]


def test_newest_record_of_a_seed_counts(tmp_path):
    old, new = _record(0, 50.0), _record(0, 90.0)
    old["created"], new["created"] = "2026-01-01T00:00:00+00:00", "2026-02-01T00:00:00+00:00"
    assert summary.summarise([new, old])[0]["mean"] == 90.0


def test_gather_command_writes_csv_and_jsonl(tmp_path, capsys):
    folder = tmp_path / "records"
    for rec in (_record(0, 80.0), _record(1, 84.0, commit="other")):
        results.save_record(rec, folder)
    (folder / "e" / "broken.json").write_text("{")
    assert gather.main([str(folder), "--out", str(tmp_path / "table")]) == 0
    text = capsys.readouterr().out
    assert "82.00 ± 2.00" in text and "WARNING: records come from 2 code versions" in text and "broken.json" in text
    lines = (tmp_path / "table.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["n"] == 2
    csv_text = (tmp_path / "table.csv").read_text().splitlines()
    assert csv_text[0].startswith("experiment,method,variant,dataset,ipc,profile,protocol,settings,mean,std")
    assert gather.main([str(tmp_path / "missing")]) == 2


def test_records_carry_the_code_commit():
    rec = _record(0, 1.0)
    assert "commit" in results.make_record("x", method="m", dataset="mnist", params={}, seed=0, device="cpu",
                                           metrics=results.metrics([1.0]), protocol="p")  # fmt: skip
    assert summary.code_version(rec).endswith("@abc")


def test_a_bad_value_is_refused_before_running(tmp_path):
    book = _notebook(tmp_path)
    with pytest.raises(ValueError, match="unknown dataset 'cifar11'"):
        notebooks.check_parameters(book, {"profile": "quick", "dataset": "cifar11"}, values=True)


def test_slurm_submission_writes_the_requested_job_array(tmp_path, monkeypatch, capsys):
    """No cluster here: stand-in ``srun``/``sbatch`` commands record what submitit would hand to SLURM."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\ncp "$1" {tmp_path}/job.sh\necho "Submitted batch job 4242"\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    books = tmp_path / "books"
    _notebook(books)
    args = ["98", "-p", "seed", "0..2", "--slurm", "--partition", "gpu", "--gpus-per-job", "1", "--cpus-per-job", "8"]
    assert _main(books, tmp_path / "out", *args, "--time-min", "30", "--array-parallelism", "2", "--no-wait") == 0
    script = (tmp_path / "job.sh").read_text()
    for line in ("#SBATCH --array=0-2%2", "#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --time=30"):  # fmt: skip
        assert line in script, script
    assert capsys.readouterr().out.count("submitted job 4242_") == 3
