"""The course around the package: the profiles' values (``profiles``), merging and checking them (``config``, with
the rules of ``rules``), claims a notebook makes about its run (``claims``), figures (``viz``), running and recording
a method (``experiment``) and notebook 08's benchmark (``benchmark``)."""
