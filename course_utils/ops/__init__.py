"""Course operations, apart from what students learn: running notebooks and batch reruns (``notebook_runner``,
``sweep``), the results table (``gather``), graded assignments (``grading``) and long cells replayed from records
(``replay``)."""
