"""``python -m course_utils.data``: the data tool (``datasets.main``)."""

from .datasets import main

raise SystemExit(main())
