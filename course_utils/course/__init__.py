"""The course around the package: profiles and notebook settings (``config``), claims a notebook makes about its
run (``claims``), figures (``viz``), running and recording a method (``experiment``) and notebook 08's benchmark
(``benchmark``)."""
