"""The course around the package: a notebook's setup in one call (``setup``: ``cfg = course.setup(globals(),
notebook=...)``), the profiles' values (``profiles``), merging and checking them (``config``, with the rules of
``rules``), claims a notebook makes about its run (``claims``), figures (``viz``), running and recording a method
(``experiment``) and notebook 08's benchmark (``benchmark``)."""

from .setup import setup

__all__ = ["setup"]
