"""Profiles, parameter validation and papermill's unknown-parameter guard."""

import pytest

from course_utils.course import config


def test_quick_profile_defaults_and_overrides():
    cfg = config.resolve("quick")
    assert cfg.profile == "quick" and cfg.model_width == 32 and cfg.ipcs == (1, 10, 50)
    cfg = config.resolve("quick", eval_epochs=7, model_width=None, ipcs=[1, 2])
    assert cfg.eval_epochs == 7  # explicit value overrides the profile
    assert cfg.model_width == 32  # None keeps the profile's value
    assert cfg.ipcs == (1, 2)
    assert config.resolve("standard").model_width == 128


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"profile": "fast"}, ["fast", "quick", "standard", "full"]),
        ({"dataset": "mnsit"}, ["mnsit", "fashion_mnist", "cifar10"]),
        ({"model": "convnett"}, ["convnett", "lenet", "resnet18"]),
        ({"ipcs": [1, 0]}, ["ipc", "0"]),
        ({"ipc": 0}, ["ipc", "0"]),
        ({"eval_epochs": -3}, ["eval_epochs", "-3"]),
        ({"seed": -1}, ["seed", "-1"]),
        ({"device": "tpu"}, ["tpu", "cpu", "cuda"]),
    ],
)
def test_bad_values_name_the_value_and_the_valid_ones(kwargs, words):
    profile = kwargs.pop("profile", "quick")
    with pytest.raises(ValueError) as err:
        config.resolve(profile, **kwargs)
    for word in words:
        assert word in str(err.value)


def test_settings_attribute_error_lists_known_names():
    with pytest.raises(AttributeError, match="eval_epochs"):
        _ = config.resolve("quick").no_such_setting


PARAMETERS_CELL = 'profile: str = "quick"  # quick | standard | full\nseed: int = 0  # the seed\n'


def test_unknown_injected_parameter_is_an_error():
    history = ["", "import x", PARAMETERS_CELL, '# Parameters\nprofile = "standard"\nsede = 3\n', "check"]
    with pytest.raises(ValueError) as err:
        config.check_notebook_parameters({"In": history})
    assert "'sede'" in str(err.value) and "profile, seed" in str(err.value)


def test_known_injected_parameters_pass_and_plain_runs_are_not_checked():
    history = ["", PARAMETERS_CELL, "# Parameters\nseed = 3\n"]
    assert config.check_notebook_parameters({"In": history}) == ["profile", "seed"]
    assert config.check_notebook_parameters({"In": ["", PARAMETERS_CELL]}) == []  # no papermill
    assert config.check_notebook_parameters({}) == []  # no IPython


def test_notebook_entries_merge_over_the_shared_profile():
    for notebook, entry in config.NOTEBOOK_PROFILES.items():
        assert set(entry) == set(config.PROFILE_NAMES), notebook
        for profile in config.PROFILE_NAMES:
            cfg = config.resolve(profile, notebook=notebook)
            assert all(cfg[k] == v or isinstance(v, list) for k, v in entry[profile].items())
    with pytest.raises(ValueError, match="notebook='99_nothing'"):
        config.resolve("quick", notebook="99_nothing")


def test_settings_show_the_notebooks_parameters_only():
    cfg = config.resolve("quick", notebook="03_gradient_matching", dataset="mnist", seed=0, ipcs=None, device="cpu")
    assert list(cfg.parameters()) == ["profile", "dataset", "seed", "ipcs", "device"]
    assert "coreset_pool_per_class" in cfg and cfg.parameters()["ipcs"] == (1, 10)  # the profile's value, shown
