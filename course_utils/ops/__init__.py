"""Course operations, apart from what students learn, each a tool of ``python -m course_utils``: running the
notebooks (``notebooks``: the one papermill runner) and batch reruns of a grid (``grid``, ``sweep``; running the
course is the grid of one point), the results table (``gather``), graded assignments (the ``grading`` package),
long cells replayed from records (``replay``), and stopping a child process with everything it started
(``processes``)."""
