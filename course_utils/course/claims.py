"""The claims a notebook's text makes about its own run, printed and checked in one place.

A notebook says "DC beats random real images by more than 10 points"; the cell after the run states that claim as a
boolean. For the runs the text was written for (the profile's default settings on every dataset of
``config.CHECKED_DATASETS``, on any device: see ``config.is_checked``) a false claim is an error, because the text
would be wrong; a margin that differs between those datasets is stated per dataset. With other parameters (another
dataset, IPC or budget) a claim may honestly not hold: it is reported and the notebook goes on, so a batch rerun
still finishes and keeps its records. Facts that hold for any settings (a theorem, balanced labels) are always strict.
"""

from __future__ import annotations

from typing import Mapping

__all__ = ["check"]


def check(claims: Mapping[str, bool], *, strict: bool) -> bool:
    """Print ``claim: True/False`` for each claim; raise ``AssertionError`` naming the false ones when ``strict``.

    Returns whether every claim held.
    """
    if not claims:
        raise ValueError("no claims to check")
    for text, held in claims.items():
        print(f"{text}: {bool(held)}")
    failed = [text for text, held in claims.items() if not held]
    if failed and strict:
        raise AssertionError(f"the text's claim(s) do not hold for the run it describes: {'; '.join(failed)}")
    if failed:
        print(f"-> {len(failed)} claim(s) do not hold with these parameters (reported, not an error)")
    return not failed
