"""One JSON record per run, with everything needed to trust and redo it.

A record holds the experiment name, the method, the dataset, the parameters, the seed, the device,
the library versions, the metrics and the timings. Quick runs go to the git-ignored ``output/results``
folder; runs worth keeping (GPU standard/full) are committed under ``results/`` and notebooks read
them back with ``load_records``. Writes are atomic (``atomic.write_json``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import re
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch

from .atomic import write_json

REPO_ROOT = Path(__file__).resolve().parent.parent
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


def _plain(value: Any) -> Any:
    """JSON-friendly copy of numbers/tensors/tuples."""
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def make_record(experiment: str, *, method: str, dataset: str, params: Mapping[str, Any], seed: int,
                device: str | torch.device, metrics: Mapping[str, Any],
                timings: Mapping[str, float] | None = None) -> dict:
    """Assemble one run record (nothing is written)."""
    return {
        "experiment": experiment,
        "method": method,
        "dataset": dataset,
        "params": _plain(params),
        "seed": seed,
        "metrics": _plain(metrics),
        "timings_s": _plain(timings or {}),
        "environment": environment(device),
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
        return json.load(fh)


def load_records(folder: str | os.PathLike | None = None, experiment: str | None = None) -> list[dict]:
    """All records under ``folder`` (default: the output folder), optionally of one experiment."""
    folder = Path(folder) if folder is not None else output_dir() / "results"
    if experiment is not None:
        folder = folder / _slug(experiment)
    return [read_record(path) for path in sorted(folder.rglob("*.json"))]


def _get(record: Mapping[str, Any], dotted: str) -> Any:
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return ""
        value = value[part]
    return value


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def markdown_table(records: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A markdown table with one row per record; columns are dotted paths (``metrics.mean``)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for record in records:
        lines.append("| " + " | ".join(_fmt(_get(record, c)) for c in columns) + " |")
    return "\n".join(lines)
