r"""Long notebook cells that a student's copy replays from a small recorded result.

A cell of an instructor notebook that runs for tens of seconds starts with the marker comment

    # long_run: dc_ipc1 --outputs runs,history

and runs as usual (without ``%load_ext course_utils.ops.replay`` the line is only a comment, and linters see the cell as
the Python it is). With ``$COURSE_RECORD_DIR`` set (``python -m course_utils grading record``), it also writes
``<dir>/dc_ipc1.pt``: the values of the named outputs after the cell, what the cell printed and displayed (figures
included), and its provenance (seconds, device, versions, commit, date, settings). The student release adds
``--recorded`` to the marker; the cell then loads that record instead of computing, assigns the outputs, shows the
recorded output, and says where it came from. It computes after all, saying why, when the record is missing or was
made for other settings (``cfg``, the notebook's resolved parameters) or another cell body: a record is never reused
for a run it does not describe. Deleting ``--recorded`` computes the cell as written.

Records are looked up in ``$COURSE_RECORDED_DIR``, else in the package's ``recorded/`` folder. The extension
(``%load_ext course_utils.ops.replay``) turns a marked cell into a call of the ``%%long_run`` cell magic, which can also
be written directly.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import shlex
import time
from pathlib import Path
from typing import Any

import torch

from ..core import atomic
from ..records import results

FORMAT = 1
PACKAGE_RECORDS = Path(__file__).parent / "recorded"
RECORD_ENV = "COURSE_RECORD_DIR"  # set: computed long cells write their records there
RECORDED_ENV = "COURSE_RECORDED_DIR"  # set: where --recorded cells look for records
MAX_RECORD_BYTES = 8 * 2**20  # "small": a record that grows past this names its largest output
MARKER = "# long_run:"  # first line of a long cell


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="long_run", add_help=False, exit_on_error=False)
    parser.add_argument("name")
    parser.add_argument("-o", "--outputs", default="")
    parser.add_argument("--recorded", action="store_true")
    return parser


def parse_line(line: str) -> argparse.Namespace:
    """``name``, ``outputs`` (a list of identifiers) and ``recorded`` of a ``%%long_run`` line."""
    try:
        args = _parser().parse_args(shlex.split(line, comments=True))
    except (argparse.ArgumentError, SystemExit, ValueError) as exc:
        usage = "`# long_run: NAME --outputs a,b [--recorded]`"
        raise ValueError(f"long_run {line.strip()!r}: expected {usage} ({exc})") from None
    if not args.name.replace("_", "").isalnum():
        raise ValueError(f"long_run: the record name {args.name!r} must be letters, digits and '_'")
    args.outputs = [o.strip() for o in args.outputs.split(",") if o.strip()]
    bad = [o for o in args.outputs if not o.isidentifier()]
    if bad:
        raise ValueError(f"long_run {args.name}: outputs {bad} are not Python names")
    return args


def source_hash(body: str) -> str:
    """sha256 of the cell body with trailing whitespace of each line ignored."""
    text = "\n".join(line.rstrip() for line in body.strip().splitlines())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def settings_of(namespace: dict) -> dict[str, str]:
    """The notebook's resolved parameters (``cfg``), as text, that a record must match."""
    cfg = namespace.get("cfg")
    if cfg is None:
        return {}
    return {str(k): repr(v) for k, v in sorted(dict(cfg).items(), key=lambda kv: str(kv[0]))}


def record_path(name: str, folder: str | os.PathLike | None = None) -> Path:
    folder = folder if folder is not None else os.environ.get(RECORDED_ENV) or PACKAGE_RECORDS
    return Path(folder) / f"{name}.pt"


def read(path: str | os.PathLike) -> dict:
    """A record written by a long cell (objects of this package inside: trusted files only)."""
    record = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError(f"{path} is not a long_run record of format {FORMAT}")
    return record


def mismatch(record: dict, body: str, settings: dict[str, str]) -> str | None:
    """Why ``record`` does not describe this cell run (None: it does)."""
    if record["source"] != source_hash(body):
        return "the cell's code differs from the recorded one"
    if record["settings"] != settings:
        old = record["settings"]
        diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        shown = ", ".join(f"{k}={settings.get(k, '—')} (recorded {old.get(k, '—')})" for k in diff[:4])
        return f"the parameters differ: {shown}"
    return None


def _show(record: dict) -> None:
    import sys

    from IPython.display import publish_display_data

    if record["stdout"]:
        sys.stdout.write(record["stdout"])
    if record["stderr"]:
        sys.stderr.write(record["stderr"])
    for data, metadata in record["displays"]:
        publish_display_data(data, metadata)


_explained = False  # whether this kernel has said once what a recorded result is


def _provenance_line(record: dict) -> str:
    """Where a replayed result comes from; the first replayed cell of a session also says, once, what that means and
    how to compute it instead."""
    global _explained
    p = record["provenance"]
    line = (
        f"[recorded result of `{record['name']}`: computed in {p['seconds']:.0f} s on {p['device_name']} "
        f"({p['device']}, torch {p['torch']}, {p['date'][:10]}, commit {p['commit'] or 'unknown'})]"
    )
    if _explained:
        return line
    _explained = True
    return (
        f"{line}\nThis cell takes long to compute, so what it printed and drew above was loaded from a recording of "
        "it, made with the same code and the same parameters. To compute it on your machine, delete `--recorded` in "
        "the cell's first line and run the cell again. Every cell whose output ends with a line like the first one was "
        "loaded this way."
    )


def _size_check(name: str, outputs: dict[str, Any], total: int) -> None:
    if total <= MAX_RECORD_BYTES:
        return
    import io

    sizes = {}
    for key, value in outputs.items():
        buf = io.BytesIO()
        torch.save(value, buf)
        sizes[key] = buf.tell()
    biggest = max(sizes, key=sizes.get)
    raise ValueError(
        f"long_run {name}: the record would be {total / 2**20:.1f} MiB (> {MAX_RECORD_BYTES / 2**20:.0f}); "
        f"largest output {biggest!r} ({sizes[biggest] / 2**20:.1f} MiB): record something smaller"
    )


def _record(name: str, outputs: dict, captured, seconds: float, settings: dict, body: str, folder: Path) -> Path:
    import io

    device = "cpu"
    cfg_device = settings.get("device")
    if cfg_device and "cuda" in cfg_device:
        device = "cuda"
    env = results.environment(device)
    record = {
        "format": FORMAT,
        "name": name,
        "source": source_hash(body),
        "settings": settings,
        "outputs": outputs,
        "stdout": captured.stdout,
        "stderr": captured.stderr,
        "displays": [(o.data, o.metadata) for o in captured.outputs],
        "provenance": {
            "seconds": seconds,
            **env,
            "commit": results.code_commit(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        },
    }
    buf = io.BytesIO()
    try:
        torch.save(record, buf)
    except Exception as exc:  # an output that cannot be pickled: name it
        raise ValueError(f"long_run {name}: an output cannot be saved ({type(exc).__name__}: {exc})") from exc
    _size_check(name, outputs, buf.tell())
    return atomic.write_bytes(folder / f"{name}.pt", buf.getvalue())


def run_cell(line: str, body: str, shell) -> None:
    """The ``%%long_run`` cell magic, what a ``# long_run:`` cell runs (see the module's docstring)."""
    from IPython.utils.capture import capture_output

    args = parse_line(line)
    ns = shell.user_ns
    settings = settings_of(ns)
    if args.recorded:
        path = record_path(args.name)
        reason = None
        if not path.exists():
            reason = f"no record {path}"
        else:
            record = read(path)
            reason = mismatch(record, body, settings)
        if reason is None:
            missing = [o for o in args.outputs if o not in record["outputs"]]
            if missing:
                raise ValueError(f"long_run {args.name}: the record {path} lacks the outputs {missing}")
            ns.update({o: record["outputs"][o] for o in args.outputs})
            _show(record)
            print(_provenance_line(record))
            return
        print(f"[computing `{args.name}` instead of loading its record: {reason}]")
    folder = os.environ.get(RECORD_ENV)
    start = time.perf_counter()
    if folder:  # capture what the cell shows, figures included, to replay it
        with capture_output() as captured:
            result = shell.run_cell(body, store_history=False)
            import matplotlib.pyplot as plt

            if plt.get_fignums() and "inline" in plt.get_backend():
                plt.show()
        captured.show()
    else:  # live output
        result = shell.run_cell(body, store_history=False)
    seconds = time.perf_counter() - start
    result.raise_error()
    missing = [o for o in args.outputs if o not in ns]
    if missing:
        raise NameError(f"long_run {args.name}: the cell did not define its outputs {missing}")
    if folder:
        outputs = {o: ns[o] for o in args.outputs}
        # quietly: the cell's output stays what it is without recording (nbval compares some cells' outputs)
        _record(args.name, outputs, captured, seconds, settings, body, Path(folder))


def long_cell(source: str) -> tuple[str, str, str] | None:
    """``(head, arguments, body)`` of a long cell (marked ``# long_run:`` or written ``%%long_run``), else None."""
    first, _, body = source.partition("\n")
    for head in (MARKER, "%%long_run"):
        if first.startswith(head):
            return head, first[len(head) :], body
    return None


def _transform(lines: list[str]) -> list[str]:
    """IPython input transformer: a cell whose first line is the marker becomes a ``%%long_run`` call."""
    if not lines or not lines[0].startswith(MARKER):
        return lines
    line = lines[0][len(MARKER) :].strip()
    body = "".join(lines[1:])
    return [f"get_ipython().run_cell_magic('long_run', {line!r}, {body!r})\n"]


def load_ipython_extension(ipython) -> None:
    """``%load_ext course_utils.ops.replay``: registers ``%%long_run`` and the ``# long_run:`` marker."""
    ipython.register_magic_function(lambda line, cell: run_cell(line, cell, ipython), "cell", "long_run")
    if _transform not in ipython.input_transformers_cleanup:
        ipython.input_transformers_cleanup.append(_transform)


def summary(folder: str | os.PathLike | None = None) -> list[dict]:
    """Name, size, seconds and provenance of every record in ``folder`` (default: the package's)."""
    folder = Path(folder) if folder is not None else PACKAGE_RECORDS
    rows = []
    for path in sorted(folder.glob("*.pt")):
        record = read(path)
        p = record["provenance"]
        rows.append(
            {
                "name": record["name"],
                "kib": round(path.stat().st_size / 1024),
                "seconds": round(p["seconds"], 1),
                "device": p["device"],
                "torch": p["torch"],
                "commit": p["commit"],
                "date": p["date"],
                "outputs": sorted(record["outputs"]),
                "parameters": len(record["settings"]),
            }
        )
    return rows
