"""Child processes of the course operations: run one with a time limit, and stop one with everything it started.

A notebook's kernel starts a session of its own (jupyter_client does so to interrupt it), so it is outside the
process group of the worker that runs the notebook: stopping a worker means its group *and* its descendants, found
before anything is signalled (a descendant whose parent died is no longer found). The sweep stops its workers with
this, and grading kills a student's grading run that ran past its time limit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

__all__ = ["run_python", "stop"]


def stop(process: subprocess.Popen, grace: float = 0.0) -> None:
    """Stop ``process`` (the leader of a process group: started with ``start_new_session=True``), its group and every
    descendant: with ``grace`` > 0, SIGTERM to the group first and up to ``grace`` seconds for the leader to end
    cleanly (a sweep worker then removes its partial notebook); then SIGKILL to the group and to every descendant
    still alive. The caller reaps ``process`` (``wait`` or ``communicate``)."""
    import psutil

    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    if grace > 0:
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    _signal_group(process.pid, signal.SIGKILL)
    for child in descendants:
        try:
            child.kill()  # psutil checks the pid still names the same process
        except psutil.NoSuchProcess:
            pass


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:  # the group has ended
        pass


def run_python(
    args: list[str], cwd: Path, timeout: float | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``python args`` (this interpreter) in ``cwd``, in a process group of its own, output captured (stderr into
    stdout); after ``timeout`` seconds the whole tree is killed (``stop``), the return code is -9 and the output ends
    with ``[killed after N s]``. This environment's scripts come first on ``PATH`` (nbgrader calls ``alembic`` by
    name)."""
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={
            **os.environ,
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        },
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        out, _ = proc.communicate()
        return subprocess.CompletedProcess(proc.args, -9, f"{out}\n[killed after {timeout:.0f} s]")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out)
