"""Atomic file writes: write a temporary file in the same folder, then rename it into place.

A run killed mid-write therefore never leaves a half-written checkpoint or record behind:
``os.replace`` is atomic on POSIX and Windows when source and target share a filesystem.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch


def _atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return _atomic_write(
        path, lambda fh: json.dump(obj, fh, indent=2, sort_keys=True, default=str, allow_nan=False), "w"
    )


def save_torch(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save`` to ``path`` atomically (checkpoints, synthetic sets)."""
    return _atomic_write(path, lambda fh: torch.save(obj, fh), "wb")


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return _atomic_write(path, lambda fh: fh.write(data), "wb")


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    return write_bytes(path, text.encode("utf-8"))
