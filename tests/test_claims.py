"""A notebook's claims: errors for the run its text describes, reports for a user's other parameters."""

import pytest

from course_utils.course import claims, config


def test_claims_that_hold_are_printed_and_pass(capsys):
    assert claims.check({"DC beats random": True, "labels balanced": 1 == 1}, strict=True)
    assert capsys.readouterr().out == "DC beats random: True\nlabels balanced: True\n"


def test_a_false_claim_is_an_error_for_the_run_the_text_describes(capsys):
    with pytest.raises(AssertionError, match="do not hold for the run it describes: DC beats random$"):
        claims.check({"DC beats random": False, "labels balanced": True}, strict=True)
    assert "DC beats random: False" in capsys.readouterr().out


def test_a_false_claim_is_reported_for_other_parameters(capsys):
    assert not claims.check({"DC beats random": False, "labels balanced": True}, strict=False)
    out = capsys.readouterr().out
    assert "DC beats random: False" in out and "1 claim(s) do not hold with these parameters" in out


def test_no_claims_is_an_error():
    with pytest.raises(ValueError, match="no claims"):
        claims.check({}, strict=False)


@pytest.mark.parametrize("notebook", sorted(config.NOTEBOOK_PROFILES))
def test_is_checked_recognises_the_runs_the_text_describes(notebook):
    for profile in config.PROFILE_NAMES:
        for dataset in config.CHECKED_DATASETS:
            cfg = config.resolve(profile, notebook=notebook, dataset=dataset, seed=0, ipcs=None)
            cfg["device"] = "cuda"  # the device aside: the same run on a GPU
            assert config.is_checked(cfg, notebook), (profile, dataset)
    for other in (
        {"dataset": "cifar10", "seed": 0},
        {"dataset": "mnist", "seed": 1},
        {"dataset": "fashion_mnist", "seed": 0, "ipcs": [3]},
    ):
        assert not config.is_checked(config.resolve("quick", notebook=notebook, **other), notebook), other
