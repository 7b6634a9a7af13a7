"""The foundation every layer uses: checks of user values (``validate``), seeds and generators (``repro``), atomic
writes (``atomic``), progress bars (``progress``) and the cost of a step (``cost``). Imports nothing of the course."""
