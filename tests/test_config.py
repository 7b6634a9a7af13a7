"""Profiles, parameter validation and papermill's unknown-parameter guard."""

import dataclasses

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
            assert all(
                cfg[k] == v or isinstance(v, list) or v is None for k, v in entry[profile].items()
            )  # None: filled
    with pytest.raises(ValueError, match="notebook='99_nothing'"):
        config.resolve("quick", notebook="99_nothing")


def test_settings_show_the_notebooks_parameters_only():
    cfg = config.resolve("quick", notebook="03_gradient_matching", dataset="mnist", seed=0, ipcs=None, device="cpu")
    assert list(cfg.parameters()) == ["profile", "dataset", "seed", "ipcs", "device"]
    assert "coreset_pool_per_class" in cfg and cfg.parameters()["ipcs"] == (1, 10)  # the profile's value, shown


# ---------------------------------------------------------------------------------------------------- the rules
def test_every_setting_of_every_notebook_has_a_check():
    """Each setting has a rule (``rules.RULES``) or sets a method's hyperparameter, checked by that ``Config``."""
    from course_utils import methods
    from course_utils.course import profiles, rules

    assert set(profiles.METHOD_PARAMETERS) <= set(config.NOTEBOOK_PROFILES)
    assert set(profiles.DATA) == set(config.NOTEBOOK_PROFILES)
    for notebook in config.NOTEBOOK_PROFILES:
        names = config.setting_names(notebook)
        for profile in config.PROFILE_NAMES:  # every profile of a notebook has the same settings
            assert set(config.resolve(profile, notebook=notebook, **config.NOTEBOOK_DEFAULTS)) == names, profile
        fed = set()
        for method, fields in profiles.METHOD_PARAMETERS.get(notebook, {}).items():
            valid = {f.name for f in dataclasses.fields(methods.get_method(method).Config)}
            assert set(fields) <= valid, (notebook, method, set(fields) - valid)
            fed |= {n for s in fields.values() for n in ((s,) if isinstance(s, str) else s)}
        assert fed <= names, (notebook, fed - names)
        assert not (names - fed - set(rules.RULES)), (notebook, names - fed - set(rules.RULES))


@pytest.mark.parametrize(
    "notebook, kwargs, message",
    [
        ("04_distribution_matching", {"dm_iterations": 0}, "dm_iterations=0: steps must be an integer >= 1, got 0"),
        ("04_distribution_matching", {"lr_img": -1.0}, "lr_img=-1.0: lr_img must be a finite number > 0, got -1.0"),
        ("02_bilevel_distillation", {"dd_random_steps": 0}, "dd_random_steps=0: steps must be an integer >= 1"),
        ("03_gradient_matching", {"large_ipc_inner_loop": 0}, "large_ipc_inner_loop=0: inner_loop must be an integer"),
        ("05_trajectory_matching", {"lr_teacher": 0.0}, "lr_teacher=0.0: lr_teacher must be a finite number > 0"),
        ("06_zen_cross_architecture", {"neumann_terms": -1}, "neumann_terms=-1: neumann_terms must be an integer >= 0"),
        ("07_model_augmentation", {"magnitude": [0.5, 0.1]}, "magnitude=(0.5, 0.1): magnitude must be (low, high)"),
        ("00_introduction_and_baselines", {"forgetting_epochs": 0}, "forgetting_epochs=0: epochs must be an integer"),
    ],
)
def test_a_methods_hyperparameter_is_checked_by_its_config_naming_the_parameter(notebook, kwargs, message):
    with pytest.raises(ValueError) as err:
        config.resolve("quick", notebook=notebook, **kwargs)
    assert message in str(err.value)


@pytest.mark.parametrize(
    "notebook, kwargs, words",
    [
        ("03_gradient_matching", {"cross_train_archs": ["convnet", "convnett"]}, ["convnett", "lenet"]),
        ("03_gradient_matching", {"large_ipc_methods": ["dm"]}, ["large_ipc_methods", "'dm'", "dc, dsa"]),
        ("01_ridge_regression_closed_form", {"feature_map": "fourier"}, ["fourier", "random_network"]),
        ("01_ridge_regression_closed_form", {"figure_datasets": ["mnist", "svhn"]}, ["svhn", "cifar10"]),
        ("05_trajectory_matching", {"zca": "yes"}, ["zca", "'yes'"]),
        ("06_zen_cross_architecture", {"pool_width": [32, 0, 8]}, ["pool_width[1]", "0"]),
        ("08_benchmark_and_applications", {"methods": ["dc", "dcc"]}, ["dcc", "mtt"]),
        ("04_distribution_matching", {"cost_ipcs": []}, ["cost_ipcs", "at least one"]),
    ],
)
def test_other_settings_are_checked_by_their_rule(notebook, kwargs, words):
    with pytest.raises(ValueError) as err:
        config.resolve("quick", notebook=notebook, **kwargs)
    for word in words:
        assert word in str(err.value)


def test_a_notebook_refuses_a_setting_it_does_not_have():
    with pytest.raises(
        ValueError, match="04_distribution_matching has no setting 'ipc'; its settings: .*dm_iterations"
    ):
        config.resolve("quick", notebook="04_distribution_matching", ipc=3)
    assert config.resolve("quick", fail_seed=-1).fail_seed == -1  # outside a course notebook: its own names pass


@pytest.mark.parametrize(
    "notebook, kwargs, message",
    [
        ("02_bilevel_distillation", {"dd_random_ipc": 3}, "distill_steps=2 must divide ipc=3; valid: 1, 3"),
        ("06_zen_cross_architecture", {"pool_width": [32, 8]}, "pool_width has 2 entries for 3 families"),
        ("07_model_augmentation", {"snapshots": [3, 7]}, "snapshots=[3, 7] lie beyond accdd_iterations=6"),
        ("08_benchmark_and_applications", {"eval_protocol": "paper"}, "this table needs ONE protocol"),
        ("08_benchmark_and_applications", {"cross_widths": [32]}, "cross_widths has 1 entries for 4 architectures"),
        ("08_benchmark_and_applications", {"methods": ["random", "dc"]}, "cross_methods ['dm', 'mtt', 'zen'] and"),
        ("08_benchmark_and_applications", {"cross_ipc": 50}, "cross_ipc=50 must come from the table"),
    ],
)
def test_cross_checks_refuse_settings_that_do_not_fit_together(notebook, kwargs, message):
    with pytest.raises(ValueError) as err:
        config.resolve("quick", notebook=notebook, **kwargs)
    assert message in str(err.value)


def test_notebook_08_sections_follow_the_tables_ipcs_when_left_to_the_profile():
    cfg = config.resolve("quick", notebook="08_benchmark_and_applications", ipcs=[3], cross_ipc=None)
    assert (cfg.cross_ipc, cfg.nas_ipc) == (3, 3)
    assert config.resolve("quick", notebook="08_benchmark_and_applications").cross_ipc == 1  # the profile's


def test_hparams_are_the_config_fields_the_notebook_sets_for_every_run():
    cfg = config.resolve("quick", notebook="04_distribution_matching", lr_img=2.0)
    assert cfg.hparams("dm") == {"batch_real": 64, "lr_img": 2.0}  # steps: per run (the dm_iterations of each run)
    dd = config.resolve("quick", notebook="02_bilevel_distillation").hparams("dd")
    assert dd == {
        "distill_epochs": 3,
        "batch_size": 256,
        "lr_img": 0.03,
        "step_lr": 0.02,
        "lr_init": 0.1,
        "decay_every": 400,
    }
    assert config.resolve("quick", notebook="01_ridge_regression_closed_form").hparams("kip") == {
        "steps": 200,
        "batch_size": 1000,
        "lr_img": 0.01,
    }
    with pytest.raises(ValueError, match="set no hyperparameter of 'dc'; they set those of: dm"):
        cfg.hparams("dc")
