"""pytest configuration shared by the unit tests and nbval's notebook runs."""

import os

# Progress bars go to stderr; keep them out of CI logs (nbval ignores stderr anyway, below).
os.environ.setdefault("TQDM_DISABLE", "1")


def pytest_collectstart(collector):
    # nbval compares stderr by default; tqdm bars and warnings differ from machine to machine.
    if getattr(collector, "skip_compare", None) is not None:
        collector.skip_compare += ("text/html", "application/javascript", "stderr")
