"""Re-recording the long cells (``# long_run: ...``) whose results the student release loads instead of computing.

The instructor notebooks are executed in place with nbconvert (not papermill: the committed notebooks carry their
outputs and no run metadata, see CONTRIBUTING), with ``$COURSE_RECORD_DIR`` pointing at the package's records.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from .. import replay
from .cells import NOTEBOOKS, choose

__all__ = ["record"]


def record(selectors: list[str], cell_timeout: int = 1800) -> None:
    """Run the chosen instructor notebooks in place (their defaults) with ``$COURSE_RECORD_DIR`` set, so every long
    cell rewrites its record in the package's ``recorded/`` folder; a fresh output folder, so no checkpoint of an
    earlier run shortens a timing."""
    chosen = choose(selectors, {p.stem: p for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))})
    for name, path in chosen.items():
        with tempfile.TemporaryDirectory() as scratch:
            env = {**os.environ, replay.RECORD_ENV: str(replay.PACKAGE_RECORDS), "COURSE_OUTPUT_DIR": scratch}
            env.update(CI="true", TQDM_DISABLE="1")  # no progress bars in the records
            t0 = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "jupyter",
                    "nbconvert",
                    "--to",
                    "notebook",
                    "--execute",
                    "--inplace",
                    f"--ExecutePreprocessor.timeout={cell_timeout}",
                    str(path),
                ],
                cwd=NOTEBOOKS,
                env=env,
                check=True,
            )
            print(f"{name}: recorded in {time.perf_counter() - t0:.0f} s")
