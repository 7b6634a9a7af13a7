"""The papers' reported numbers, read from one cited data file (``papers.json``), never retyped in a notebook.

Every entry names its source (a key of ``SOURCES``: citation, link, reference code), where in it the number stands
(a table), and the evaluation protocol that reproduces the paper's (``course_utils.protocol``), so a table can put
the paper's number beside the course's and say under which protocol each was measured.

>>> reported("dc", "mnist", 1).accuracy
91.7
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["Reported", "Source", "SOURCES", "reported", "cite", "numbers", "references"]

_FILE = Path(__file__).with_name("papers.json")


@dataclass(frozen=True)
class Source:
    key: str
    cite: str
    url: str | None = None
    code: str | None = None

    def markdown(self) -> str:
        """One reference line: the citation, its link, and the reference code if there is one."""
        link = f" [{self.url}]({self.url})" if self.url else ""
        code = f" Reference code: [{self.code}]({self.code})." if self.code else ""
        return f"{self.cite}{link}.{code}"


@dataclass(frozen=True)
class Reported:
    """One number a paper reports: accuracy (%) ± std for ``method`` on ``dataset`` at ``ipc`` images per class."""

    method: str
    dataset: str
    ipc: int | None
    accuracy: float
    std: float | None
    source: str
    where: str
    protocol: str  # a course protocol name, "dd" or "krr" (the method's own), or "unstated" (the ZEN slides)
    setting: str | None = None
    hours: float | None = None  # the distillation time the paper reports (GPU hours), where it does

    def __str__(self) -> str:
        spread = f" ± {self.std}" if self.std is not None else ""
        return f"{self.accuracy}{spread}"

    def cited(self, protocol: bool = False) -> str:
        """``91.7 ± 0.5 (DC paper, Table 1)``; with ``protocol``, ``91.7 ± 0.5 (DC paper, Table 1, protocol dc)``."""
        return f"{self} ({self.source.upper()} paper, {self.where}{f', protocol {self.protocol}' if protocol else ''})"


@lru_cache(maxsize=1)
def _load() -> tuple[dict[str, Source], tuple[Reported, ...]]:
    raw = json.loads(_FILE.read_text())
    sources = {k: Source(k, **v) for k, v in raw["sources"].items()}
    entries = tuple(Reported(**e) for e in raw["numbers"])
    for e in entries:
        if e.source not in sources:
            raise ValueError(f"{_FILE}: {e.method}/{e.dataset}/{e.ipc} cites unknown source {e.source!r}")
    return sources, entries


SOURCES: dict[str, Source] = _load()[0]


def numbers(dataset: str | None = None, method: str | None = None) -> list[Reported]:
    """Every reported number, optionally of one dataset and/or one method."""
    return [e for e in _load()[1] if dataset in (None, e.dataset) and method in (None, e.method)]


def reported(method: str, dataset: str, ipc: int | None, setting: str | None = None) -> Reported | None:
    """The paper's number for ``method`` on ``dataset`` at ``ipc`` (``None`` for the full data) in ``setting`` (e.g.
    "evaluated on LeNet"; ``None``: the first listed), or ``None``."""
    hits = [e for e in numbers(dataset, method) if e.ipc == ipc and setting in (None, e.setting)]
    return hits[0] if hits else None


def cite(method: str, dataset: str, ipc: int | None, *, protocol: bool = True, setting: str | None = None) -> str:
    """The paper's number for a table cell: ``reported(...).cited(protocol)``, or ``"–"`` where the paper has none."""
    found = reported(method, dataset, ipc, setting)
    return "–" if found is None else found.cited(protocol)


def references(*keys: str) -> str:
    """A markdown list of the sources ``keys`` (for a notebook's References cell)."""
    unknown = [k for k in keys if k not in SOURCES]
    if unknown:
        raise ValueError(f"unknown source(s) {unknown}; valid: {', '.join(SOURCES)}")
    return "\n".join(f"- **{k.upper()}**: {SOURCES[k].markdown()}" for k in keys)
