"""``python -m course_utils.ops.grading``: the grading command line (``cli.main``); grading's own processes run
``_worker`` and ``_generate`` through it."""

import sys

from .cli import main

sys.exit(main())
