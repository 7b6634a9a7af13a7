"""One JSON record per run, with everything needed to trust and redo it.

A record holds the experiment name, the method, the dataset, the parameters, the seed, the device,
the library versions, the evaluation protocol, the metrics and the timings. Every record has the same schema:
``metrics`` holds ``mean``, ``std`` (``null`` for a single accuracy) and ``accuracies`` (``metrics(...)`` builds
it), whatever the method (closed forms and DD included), so one table shows every result; NaN and infinities
are stored as ``null`` (strict JSON). Read every record into pandas in one line::

    pandas.json_normalize(course_utils.results.load_records()) Quick runs go to the git-ignored ``output/results``
folder; runs worth keeping (GPU standard/full) are committed under ``results/`` and notebooks read
them back with ``load_records``. Writes are atomic (``atomic.write_json``).
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch

from .. import __version__
from ..core import tables
from ..core.atomic import write_json

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Committed results of runs worth keeping (GPU standard/full profiles).
COMMITTED_DIR = REPO_ROOT / "results"


def output_dir() -> Path:
    """Where quick runs write: ``$COURSE_OUTPUT_DIR`` or ``<repo>/output`` (git-ignored)."""
    return Path(os.environ.get("COURSE_OUTPUT_DIR", REPO_ROOT / "output"))


def environment(device: str | torch.device | None = None) -> dict:
    """Versions and hardware a number was produced with."""
    import torchvision

    device = torch.device(device) if device is not None else torch.device("cpu")
    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "device_name": platform.processor() or platform.machine(),
    }
    if device.type == "cuda":
        env["device_name"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    return env


@functools.lru_cache(maxsize=1)
def code_commit() -> str | None:
    """The git commit the package runs from (``<hash>-dirty`` with uncommitted changes), None outside a checkout.

    Records carry it so that a table can flag results produced by different code (``gather``)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def _plain(value: Any) -> Any:
    """JSON-friendly copy of numbers/tensors/tuples/specs; NaN and infinities become None."""
    if isinstance(value, torch.Tensor):
        return _plain(value.tolist())
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "spec") and callable(value.spec):  # a network sampler
        return _plain(value.spec())
    if isinstance(value, (torch.nn.Module, torch.Generator)):
        return f"<{type(value).__name__}>"
    return value


def metrics(accuracies: Sequence[float], **extra: Any) -> dict:
    """The metrics of a record: ``mean``, ``std`` (population; None for one value) and ``accuracies`` (%)."""
    accs = [float(a) for a in accuracies]
    if not accs:
        raise ValueError("metrics need at least one accuracy")
    mean = statistics.fmean(accs)
    std = statistics.pstdev(accs) if len(accs) > 1 else None
    return {"mean": mean, "std": std, "accuracies": accs, **extra}


def make_record(
    experiment: str,
    *,
    method: str,
    dataset: str,
    params: Mapping[str, Any],
    seed: int,
    device: str | torch.device,
    metrics: Mapping[str, Any],
    protocol: Mapping[str, Any] | str,
    timings: Mapping[str, float] | None = None,
) -> dict:
    """Assemble one run record (nothing is written). ``metrics`` must hold ``mean``, ``std`` and ``accuracies``
    (see ``metrics``); ``protocol`` names how the accuracies were measured (a ``Protocol.as_dict()`` or a label)."""
    missing = [k for k in ("mean", "std", "accuracies") if k not in metrics]
    if missing:
        raise ValueError(f"a record's metrics need mean, std and accuracies; missing {missing} (use results.metrics)")
    if isinstance(protocol, str):
        protocol = {"name": protocol, "label": protocol}
    if "label" not in protocol:
        raise ValueError(f"protocol must name itself with a 'label', got {dict(protocol)}")
    return {
        "experiment": experiment,
        "method": method,
        "dataset": dataset,
        "params": _plain(params),
        "seed": seed,
        "protocol": _plain(protocol),
        "metrics": _plain(metrics),
        "timings_s": _plain(timings or {}),
        "environment": environment(device),
        "version": __version__,
        "commit": code_commit(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "argv": sys.argv[:1],
    }


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-")


def params_hash(params: Mapping[str, Any]) -> str:
    """Short stable hash of a parameter dict: reruns with the same parameters overwrite, others add a file."""
    text = json.dumps(_plain(params), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def save_record(record: Mapping[str, Any], folder: str | os.PathLike | None = None) -> Path:
    """Write ``record`` atomically as ``<folder>/<experiment>/<method>_<dataset>[_ipcN]_seedS_<hash>.json``."""
    folder = Path(folder) if folder is not None else output_dir() / "results"
    params = record.get("params", {})
    ipc = f"_ipc{params['ipc']}" if "ipc" in params else ""
    name = _slug(f"{record['method']}_{record['dataset']}{ipc}_seed{record['seed']}_{params_hash(params)}") + ".json"
    return write_json(folder / _slug(record["experiment"]) / name, dict(record))


def read_record(path: str | os.PathLike) -> dict:
    with open(path) as fh:
        record = json.load(fh)
    if not isinstance(record, dict) or "metrics" not in record or "method" not in record:
        raise ValueError(f"{path} is not a result record (no method/metrics)")
    return record


def load_records(
    folder: str | os.PathLike | None = None, experiment: str | None = None, skipped: list | None = None
) -> list[dict]:
    """All records under ``folder`` (default: the output folder), optionally of one experiment.

    A file that is not a readable record is skipped, never a crash: it is appended to ``skipped`` as
    ``(path, reason)`` when a list is given, else reported with a warning that names it.
    """
    folder = Path(folder) if folder is not None else output_dir() / "results"
    if experiment is not None:
        folder = folder / _slug(experiment)
    records = []
    for path in sorted(folder.rglob("*.json")):
        try:
            records.append(read_record(path))
        except (OSError, ValueError) as err:  # json.JSONDecodeError is a ValueError
            reason = f"{type(err).__name__}: {err}"
            if skipped is not None:
                skipped.append((path, reason))
            else:
                warnings.warn(f"skipped {path}, not a readable result record ({reason})", stacklevel=2)
    return records


def _get(record: Mapping[str, Any], dotted: str) -> Any:
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return ""
        value = value[part]
    return value


def markdown_table(records: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A markdown table with one row per record; columns are dotted paths (``metrics.mean``)."""
    return tables.markdown_table(columns, ([_get(record, c) for c in columns] for record in records))
