"""Resumable runs: save a method's state atomically, and resume only a checkpoint of the same run.

A checkpoint stores the run's *identity* (the settings that must agree for a resume to be the same
computation: hyperparameters, ipc, dataset, ...) next to its state. ``load`` returns ``None`` when there is no
checkpoint yet, the state when the identities agree, and raises ``ValueError`` naming the settings that differ
otherwise: resuming someone else's run silently would give a wrong result that looks right.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import torch

from .atomic import save_torch


def save(path: str | os.PathLike, identity: Mapping[str, Any], state: Mapping[str, Any]) -> Path:
    """Write ``{"identity": identity, **state}`` to ``path`` atomically."""
    return save_torch(path, {"identity": dict(identity), **state})


def load(path: str | os.PathLike | None, identity: Mapping[str, Any],
         map_location: str | torch.device = "cpu") -> dict | None:
    """The state saved at ``path`` by a run with the same ``identity``, or ``None`` if there is none yet."""
    if path is None or not Path(path).exists():
        return None
    state = torch.load(path, map_location=map_location, weights_only=False)
    saved = state.get("identity", {})
    if saved != dict(identity):
        differ = {k: (saved.get(k), identity.get(k)) for k in sorted(set(saved) | set(identity))
                  if saved.get(k) != identity.get(k)}
        raise ValueError(f"checkpoint {path} was written by another run (setting: (saved, asked) = {differ}); "
                         "delete it or pass another checkpoint path")
    return state
