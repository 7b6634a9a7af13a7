"""The papers' numbers come from one cited file: every entry has a known source, a place in it and a protocol."""

import json
from pathlib import Path

import pytest

from course_utils.evaluation import protocol
from course_utils.records import papers

RAW = json.loads((Path(papers.__file__).with_name("papers.json")).read_text())


def test_every_number_cites_a_source_a_place_and_a_protocol():
    assert len(papers.numbers()) == len(RAW["numbers"]) > 20
    for e in papers.numbers():
        assert e.source in papers.SOURCES and e.where
        assert e.protocol in (*protocol.PROTOCOL_NAMES, "dd", "krr", "unstated"), e  # unstated: the ZEN slides
        assert 0 < e.accuracy < 100 and (e.std is None or 0 <= e.std < 20)
    keys = [(e.method, e.dataset, e.ipc, e.setting) for e in papers.numbers()]
    assert len(keys) == len(set(keys)), "one number per method, dataset, IPC and setting"


def test_lookups_and_references():
    dc1 = papers.reported("dc", "mnist", 1)
    assert (dc1.accuracy, dc1.std, dc1.where) == (91.7, 0.5, "Table 1") and str(dc1) == "91.7 ± 0.5"
    assert dc1.cited() == "91.7 ± 0.5 (DC paper, Table 1)"
    assert papers.reported("dc", "mnist", 3) is None and papers.reported("dc", "fashion_mnist", 1) is None
    assert papers.reported("full_data", "mnist", None).accuracy == 99.6
    text = papers.references("dc", "dsa")
    assert text.count("\n") == 1 and "https://arxiv.org/abs/2006.05929" in text
    with pytest.raises(ValueError, match="unknown source.*'nope'.*valid: dc"):
        papers.references("nope")


#: Names in papers.json that are not registered methods, and why the course quotes them.
NOT_REGISTERED = {
    "full_data": "the full-data baseline of every table",
    "dd_fixed_init": "DD's fixed-initialisation variant (method dd, model=FixedInit)",
    "dd_random_init": "DD's random-initialisation variant (method dd, a fresh sampler)",
    "idc": "the method Acc-DD builds on, quoted in notebook 07",
}


def test_every_number_names_a_registered_method_or_says_why_not():
    """A number quoted for a method name the registry does not know is a typo unless it is listed above: a method
    added to the registry needs no edit here, and one that is removed leaves its numbers flagged."""
    from course_utils import methods

    named = {e.method for e in papers.numbers()}
    assert named - set(methods.REGISTRY) <= set(NOT_REGISTERED), sorted(named - set(methods.REGISTRY))
    assert set(NOT_REGISTERED) <= named, "an entry above that papers.json no longer quotes"
