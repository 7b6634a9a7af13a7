"""The one process-tree killer (course_utils.ops.processes): a worker, its group and what it started in a session
of its own (as a notebook kernel does) all end; a command past its time limit is killed whole."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil

from course_utils.ops import processes

#: A worker that starts a "kernel" in a session of its own (outside the worker's group), prints its pid and waits.
TREE = """
import subprocess, sys, time
kernel = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
print(kernel.pid, flush=True)
time.sleep(600)
"""


def _gone(pid: int, within: float = 10.0) -> bool:
    """``pid`` ended (or is a zombie nobody reaped yet) within ``within`` seconds."""
    deadline = time.time() + within
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.time() > deadline:
            return False
        time.sleep(0.1)


def _tree() -> tuple[subprocess.Popen, int]:
    worker = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True, start_new_session=True)
    kernel = int(worker.stdout.readline())
    assert psutil.Process(kernel).ppid() == worker.pid and os.getpgid(kernel) != worker.pid  # outside the group
    return worker, kernel


def test_stop_kills_the_group_and_descendants_in_other_sessions():
    worker, kernel = _tree()
    try:
        t0 = time.perf_counter()
        processes.stop(worker)
        assert worker.wait(timeout=10) == -9 and time.perf_counter() - t0 < 5
        assert _gone(kernel), "the kernel in its own session survived its worker"
    finally:
        for pid in (worker.pid, kernel):  # never leave a sleeper behind, whatever failed
            if not _gone(pid, 0):
                psutil.Process(pid).kill()


def test_stop_with_grace_asks_first():
    worker = subprocess.Popen(
        [sys.executable, "-c", "import signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *a: sys.exit(7))\n"
         "print('ready', flush=True)\ntime.sleep(600)"],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    assert worker.stdout.readline().strip() == "ready"
    processes.stop(worker, grace=5.0)
    assert worker.wait(timeout=10) == 7  # it ended on SIGTERM, cleanly, before any SIGKILL
    processes.stop(worker, grace=1.0)  # an ended process: nothing to do, no error


def test_run_python_kills_a_command_past_its_time_limit(tmp_path):
    t0 = time.perf_counter()
    done = processes.run_python(["-c", TREE], tmp_path, timeout=2)
    assert done.returncode == -9 and done.stdout.rstrip().endswith("[killed after 2 s]")
    assert time.perf_counter() - t0 < 30
    assert _gone(int(done.stdout.split()[0])), "the kernel outlived the time limit"
    ok = processes.run_python(["-c", "import os; print(os.getcwd())"], tmp_path, timeout=30)
    assert ok.returncode == 0 and ok.stdout.strip() == str(tmp_path)
