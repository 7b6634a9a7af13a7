"""Run the course's notebooks with papermill and print a table of every result at the end.

    python -m course_utils.ops.notebook_runner --profile quick                # every notebook (make course)
    python -m course_utils.ops.notebook_runner --profile standard -p dataset fashion_mnist 00 01

Executed notebooks go to ``output/notebooks`` (git-ignored), result records to ``output/results``.
Parameter names are checked against each notebook's ``parameters`` cell before anything runs:
papermill itself would only warn about a typo and silently run the defaults. A value given for a list
parameter on its own (``-p ipcs 10``) means a one-element list (``[10]``). A notebook that fails is reported
with its error (``cell N: Error: message``) and the others still run; the table at the end reads every
record, and a file that is not a readable record is named and skipped.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import time
from pathlib import Path

from ..course.config import PROFILE_NAMES
from ..records import results

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
#: The columns of the final table (every record has them: ``results`` keeps one schema).
TABLE_COLUMNS = [
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


def list_notebooks(selection: list[str] | None = None, folder: str | os.PathLike | None = None) -> list[Path]:
    """Numbered notebooks (of ``folder``, default the course's), optionally only those whose name starts with one
    of ``selection``."""
    books = sorted(p for p in Path(folder or NOTEBOOK_DIR).glob("[0-9][0-9]_*.ipynb"))
    if selection:
        chosen = [p for p in books if any(p.name.startswith(s) for s in selection)]
        missing = [s for s in selection if not any(p.name.startswith(s) for p in books)]
        if missing:
            raise SystemExit(f"no notebook matches {missing}; available: {', '.join(p.stem for p in books)}")
        books = chosen
    return books


def declared_parameters(path: Path) -> dict:
    import papermill as pm

    return pm.inspect_notebook(str(path))


#: The Python types of the annotations a parameters cell uses (``name: type = value``).
_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "list": (list, tuple), "dict": (dict,)}


def check_parameters(path: Path, parameters: dict, values: bool = False) -> dict:
    """``parameters`` checked against the notebook's declarations; a scalar for a list parameter becomes a list.

    With ``values``, each value must also have its declared type (``None`` always means the profile's value) and
    pass the course's checks (``config.resolve``: a valid dataset, IPCs >= 1, ...); a bad one raises ``ValueError``
    naming it.
    """
    declared = declared_parameters(path)
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise SystemExit(f"{path.name}: unknown parameter(s) {', '.join(unknown)}; declared: {', '.join(declared)}")
    out = dict(parameters)
    for name, value in parameters.items():
        kind = declared[name]["inferred_type_name"]
        if kind == "list" and value is not None and not isinstance(value, (list, tuple)):
            out[name] = value = [value]
        types = _TYPES.get(kind)
        if values and value is not None and types:
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                raise ValueError(f"{name}={value!r} is not of type {kind}, as {path.name} declares it")
    if values:
        from ..course import config, profiles

        notebook = path.stem if path.stem in profiles.NOTEBOOK_PROFILES else None
        own = profiles.OWN_PARAMETERS.get(path.stem, ())  # read by the notebook itself: no setting
        settings = {k: v for k, v in out.items() if k != "profile" and k not in own}
        config.resolve(out.get("profile", "quick"), notebook=notebook, **settings)  # raises naming a bad value
    return out


def describe_failure(exc: BaseException) -> str:
    """One line for a failed notebook: the cell and the error papermill reports (``ename: evalue``)."""
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename:
        cell = getattr(exc, "exec_count", None)
        where = f"cell {cell}: " if cell is not None else ""
        return f"{where}{ename}: {evalue}"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def _value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def run(profile: str, parameters: dict, selection: list[str] | None, out: Path) -> int:
    import papermill as pm

    books = list_notebooks(selection)
    try:  # every notebook's names and values first: a typo fails before anything runs
        checked = {book: check_parameters(book, {"profile": profile, **parameters}, values=True) for book in books}
    except ValueError as err:
        raise SystemExit(str(err)) from None
    out.mkdir(parents=True, exist_ok=True)
    failures = 0
    for book in books:
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(
                str(book),
                str(out / book.name),
                parameters=checked[book],
                cwd=str(NOTEBOOK_DIR),
                progress_bar=False,
                kernel_name="python3",
            )
            status = "ok"
        except Exception as exc:  # keep going: the table shows what ran
            failures += 1
            status = f"FAILED ({describe_failure(exc)}; the executed notebook is {out / book.name})"
        print(f"[course] {book.stem}: {status} in {time.perf_counter() - t0:.1f} s", flush=True)
    skipped: list = []
    records = results.load_records(skipped=skipped)
    for path, reason in skipped:
        print(f"[course] skipped {path}: not a readable result record ({reason})")
    if records:
        print(results.markdown_table(records, TABLE_COLUMNS))
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", help="notebook number prefixes (default: all)")
    parser.add_argument("--profile", default="quick", choices=PROFILE_NAMES)
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    parser.add_argument("--out", type=Path, default=results.output_dir() / "notebooks")
    args = parser.parse_args(argv)
    os.environ.setdefault("COURSE_OUTPUT_DIR", str(results.output_dir()))
    params = {name: _value(value) for name, value in args.parameter}
    return run(args.profile, params, args.notebooks or None, args.out)


if __name__ == "__main__":
    sys.exit(main())
