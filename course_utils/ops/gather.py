"""Every result record in one table: mean ± std over seeds, one row per setting, as CSV and JSON lines.

    python -m course_utils gather                          # output/results -> output/table.{csv,jsonl}
    python -m course_utils gather output/sweep/results --committed --out output/sweep/table

A row is one *setting*: experiment, method, variant, dataset, IPC, profile, evaluation protocol and a hash of the
parameters that determine a run besides its seed (``SETTING_PARAMS``: runs with other hyperparameters never merge).
Its ``mean`` is the mean over seeds of each run's accuracy and ``std`` the (population) standard deviation over
seeds; with a single seed, ``std`` is that run's spread over its evaluation networks and ``std_over`` says so.
Records made by different code (package version or git commit) are flagged per row (``mixed_versions``) and in the
printed summary. Read the table back with
``pandas.read_csv(path)`` or ``pandas.read_json(path, lines=True)``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from ..records import results
from ..records.summary import code_version, markdown, summarise, write_tables


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_utils gather", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folders", nargs="*", type=Path, help="folders of records (default: output/results)")
    parser.add_argument("--committed", action="store_true", help="also read the committed results/ folder")
    parser.add_argument("--experiment", help="only this experiment (e.g. 04_distribution_matching)")
    parser.add_argument("--out", type=Path, help="table path without suffix (default: output/table)")
    args = parser.parse_args(argv)
    folders = list(args.folders) or [results.output_dir() / "results"]
    if args.committed:
        folders.append(results.COMMITTED_DIR)
    records, skipped = [], []
    for folder in folders:
        if not folder.is_dir():
            print(f"[gather] no folder {folder}", file=sys.stderr)
            return 2
        records += results.load_records(folder, experiment=args.experiment, skipped=skipped)
    for path, reason in skipped:
        print(f"[gather] skipped {path}: not a readable result record ({reason})")
    rows = summarise(records)
    print(markdown(rows))
    paths = write_tables(rows, args.out or results.output_dir() / "table")
    versions = sorted({code_version(r) for r in records})
    print(f"[gather] {len(records)} records in {len(rows)} rows -> {', '.join(map(str, paths))}")
    if len(versions) > 1:
        mixed = sum(row["mixed_versions"] for row in rows)
        print(
            f"[gather] WARNING: records come from {len(versions)} code versions ({', '.join(versions)}); "
            f"{mixed} row(s) mix versions (column mixed_versions)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
