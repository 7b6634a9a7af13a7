"""``python -m course_utils``: the course's command-line tools, one entry.

    python -m course_utils                     # the tools
    python -m course_utils run                 # every notebook, quick profile, then the results table (make course)
    python -m course_utils sweep --grid grids/example.yaml --workers 2
    python -m course_utils TOOL --help         # a tool's own options

A tool's module is imported only when that tool runs: listing the tools imports neither torch nor papermill.
"""

from __future__ import annotations

import importlib
import sys
from typing import Sequence

#: tool -> (module, its command-line function, what it does)
TOOLS: dict[str, tuple[str, str, str]] = {
    "run": ("course_utils.ops.sweep", "run_main", "run the notebooks (all, or NN ...) with papermill, then a table"),
    "sweep": ("course_utils.ops.sweep", "main", "batch reruns of a grid of notebooks × parameters (resumable, SLURM)"),
    "gather": ("course_utils.ops.gather", "main", "every result record in one table (mean ± std over seeds)"),
    "grading": ("course_utils.ops.grading.cli", "main", "graded assignments: release, grade, record"),
    "data": ("course_utils.data.datasets", "main", "the data root; --copy-from DIR copies the MNIST archives"),
}


def usage() -> str:
    width = max(map(len, TOOLS))
    lines = [f"  {name:{width}s}  {what}" for name, (_, _, what) in TOOLS.items()]
    return "usage: python -m course_utils TOOL [ARGS ...]\n\ntools:\n" + "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``argv[0]``'s tool with the rest of ``argv``; without a tool (or with ``-h``), list the tools."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    tool, rest = argv[0], argv[1:]
    if tool not in TOOLS:
        print(f"unknown tool {tool!r}; the tools are: {', '.join(TOOLS)}\n\n{usage()}", file=sys.stderr)
        return 2
    module, function, _ = TOOLS[tool]
    return getattr(importlib.import_module(module), function)(rest)


if __name__ == "__main__":
    sys.exit(main())
