"""Resumable runs: save a run's state atomically, and resume only a checkpoint of the same run.

A checkpoint stores the run's *identity* (everything that determines the result: method, hyperparameters, where
the random stream starts, the data's fingerprint, the model's spec, the package version) next to its state, and
a SHA-256 checksum of both. ``load`` returns ``None`` when there is no checkpoint yet and the state when the
identities agree. It raises ``CheckpointError`` (a ``ValueError``) naming the path and what to do when the file
is another run's (the differing settings are listed), truncated, corrupted (also a same-size corruption: the
checksum), or not a course checkpoint at all: resuming someone else's run silently would give a wrong result
that looks right.

File layout: the line ``MAGIC``, the SHA-256 of the payload (64 hex digits and a newline), then the payload: the
``torch.save`` of ``{"identity": ..., "state": ...}``. Written atomically (``atomic.write_bytes``), so a killed
run never leaves half a file; any later damage (a changed byte, a cut) fails the checksum.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch

from ..core.atomic import write_bytes

__all__ = ["MAGIC", "CheckpointError", "save", "load", "identity_hash", "differences"]

MAGIC = b"course_utils checkpoint v2\n"


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed: another run's, truncated, corrupted or foreign."""


def _advice(path: Path) -> str:
    return f"delete {path} to start the run afresh, or pass another checkpoint path"


def save(path: str | os.PathLike, identity: Mapping[str, Any], state: Mapping[str, Any]) -> Path:
    """Write ``identity`` and ``state`` to ``path`` atomically, with a checksum."""
    buffer = io.BytesIO()
    torch.save({"identity": dict(identity), "state": dict(state)}, buffer)
    payload = buffer.getvalue()
    return write_bytes(path, MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def differences(saved: Mapping[str, Any], asked: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{dotted.key: (saved, asked)}`` for every setting that differs (nested dicts are compared key by key)."""
    a, b = _flatten(dict(saved)), _flatten(dict(asked))
    missing = object()
    out = {}
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, missing), b.get(key, missing)
        if va != vb:
            out[key] = (None if va is missing else va, None if vb is missing else vb)
    return out


def load(
    path: str | os.PathLike | None, identity: Mapping[str, Any], map_location: str | torch.device = "cpu"
) -> dict | None:
    """The state saved at ``path`` by a run with the same ``identity``, or ``None`` if there is none yet."""
    if path is None or not Path(path).exists():
        return None
    path = Path(path)
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise CheckpointError(
            f"{path} is not a course_utils checkpoint (it does not start with {MAGIC!r}); {_advice(path)}"
        )
    head = len(MAGIC) + 65
    digest, payload = data[len(MAGIC) : head - 1].decode(errors="replace"), data[head:]
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CheckpointError(
            f"checkpoint {path} is damaged (truncated or corrupted: its checksum does not match its "
            f"contents); {_advice(path)}"
        )
    blob = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=False)
    saved = blob["identity"]
    differ = differences(saved, identity)
    if differ:
        listed = "; ".join(f"{k}: saved {v[0]!r}, asked {v[1]!r}" for k, v in differ.items())
        raise CheckpointError(f"checkpoint {path} was written by another run ({listed}); {_advice(path)}")
    return blob["state"]


def identity_hash(identity: Mapping[str, Any]) -> str:
    """A short hash of an identity (for file names that distinguish runs)."""
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
