"""Result records summarised: one row per setting, mean ± std over seeds, as markdown, CSV and JSON lines.

A row is one *setting*: experiment, method, variant, dataset, IPC, profile, evaluation protocol and a hash of the
parameters that determine a run besides its seed (``SETTING_PARAMS``: runs with other hyperparameters never merge).
Its ``mean`` is the mean over seeds of each run's accuracy and ``std`` the (population) standard deviation over
seeds; with a single seed, ``std`` is that run's spread over its evaluation networks and ``std_over`` says so.
Records made by different code (package version or git commit) are flagged per row (``mixed_versions``). Read a
written table back with ``pandas.read_csv(path)`` or ``pandas.read_json(path, lines=True)``. The command-line tool
is ``course_utils.ops.gather``.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..core import tables
from ..core.atomic import write_text
from . import results

#: The grouping of ``summarise``: one row per distinct value of these (``settings`` hashes the other parameters).
DEFAULT_KEYS = ("experiment", "method", "variant", "dataset", "ipc", "profile", "protocol", "settings")
#: The columns of a summary row besides its keys.
SUMMARY_COLUMNS = (
    "mean",
    "std",
    "std_over",
    "n",
    "seeds",
    "distill_seconds",
    "device",
    "versions",
    "mixed_versions",
)
#: The parameters that make two runs of one method another setting (``settings`` hashes them); other parameters
#: may be outcomes of a run (e.g. a count it measured) and must not split its seeds.
SETTING_PARAMS = ("hparams", "model", "model_kwargs", "feature_map", "eval", "epochs", "draws", "test_images")


def _key(record: Mapping[str, Any], name: str) -> Any:
    params = record.get("params") or {}
    if name == "variant":
        return params.get("variant") or ""
    if name in ("ipc", "profile"):
        return params.get(name)
    if name == "protocol":
        return (record.get("protocol") or {}).get("label")
    if name == "settings":
        return results.params_hash({k: params[k] for k in SETTING_PARAMS if k in params})
    if name not in record:
        raise ValueError(f"unknown grouping key {name!r}; valid: {', '.join(DEFAULT_KEYS)} or a top-level record field")
    return record[name]


def code_version(record: Mapping[str, Any]) -> str:
    """``<package version>@<git commit>`` (``unknown`` for a record made outside a checkout or before commits were
    recorded)."""
    return f"{record.get('version', '?')}@{record.get('commit') or 'unknown'}"


def summarise(records: Iterable[Mapping[str, Any]], keys: Sequence[str] = DEFAULT_KEYS) -> list[dict]:
    """One row per distinct ``keys``: mean and std over seeds of the records' ``metrics.mean``.

    Per seed the newest record counts (a rerun replaces an older one); ``distill_seconds`` is the mean over seeds of
    ``timings_s.distill`` (None when the method records none); ``device`` lists the devices that produced the row.
    """
    groups: dict[tuple, dict[int, Mapping[str, Any]]] = {}
    for record in records:
        group = groups.setdefault(tuple(_key(record, k) for k in keys), {})
        seed = record.get("seed")
        if seed not in group or str(record.get("created", "")) >= str(group[seed].get("created", "")):
            group[seed] = record
    rows = []
    for key, by_seed in groups.items():
        runs = [by_seed[s] for s in sorted(by_seed, key=lambda s: (s is None, s))]
        means = [r["metrics"]["mean"] for r in runs if r["metrics"].get("mean") is not None]
        if len(means) > 1:
            std, over = statistics.pstdev(means), "seeds"
        else:
            std, over = (runs[0]["metrics"].get("std") if means else None), "networks"
        seconds = [r.get("timings_s", {}).get("distill") for r in runs]
        seconds = [s for s in seconds if s is not None]
        versions = sorted({code_version(r) for r in runs})
        rows.append(
            {
                **dict(zip(keys, key)),
                "mean": statistics.fmean(means) if means else None,
                "std": std,
                "std_over": over,
                "n": len(runs),
                "seeds": [r.get("seed") for r in runs],
                "distill_seconds": statistics.fmean(seconds) if seconds else None,
                "device": ", ".join(sorted({str(r.get("environment", {}).get("device", "?")) for r in runs})),
                "versions": versions,
                "mixed_versions": len(versions) > 1,
            }
        )
    return sorted(rows, key=lambda row: tuple(_sortable(row[k]) for k in keys))


def _sortable(value: Any) -> tuple:
    return (value is None, str(type(value).__name__), value if isinstance(value, (int, float, str)) else str(value))


def _cell(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return ";".join(map(str, value))
    return "" if value is None else value


def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as CSV text (lists joined by ``;``; None as an empty cell)."""
    if not rows:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return buffer.getvalue()


def to_jsonl(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as JSON lines (strict JSON, one object per line)."""
    return "".join(json.dumps(row, allow_nan=False) + "\n" for row in rows)


def write_tables(rows: Sequence[Mapping[str, Any]], stem: str | Path) -> list[Path]:
    """Write ``<stem>.csv`` and ``<stem>.jsonl`` atomically; returns both paths."""
    stem = Path(stem)
    return [
        write_text(stem.with_suffix(".csv"), to_csv(rows)),
        write_text(stem.with_suffix(".jsonl"), to_jsonl(rows)),
    ]


def markdown(rows: Sequence[Mapping[str, Any]], keys: Sequence[str] = DEFAULT_KEYS) -> str:
    """A markdown table: the keys (without the settings hash), accuracy as mean ± std, seeds, time and device."""
    shown = [k for k in keys if k != "settings"]
    head = [*shown, "accuracy (%)", "n", "distill s", "device", "flag"]
    return tables.markdown_table(
        head,
        (
            [
                *(str(_cell(row[k])) for k in shown),
                tables.mean_std(row["mean"], row["std"]),
                row["n"],
                tables.cell(row["distill_seconds"], 1),
                row["device"],
                "mixed code versions" if row["mixed_versions"] else "",
            ]
            for row in rows
        ),
    )
