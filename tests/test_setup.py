"""``course.setup``: a notebook's setup in one call, on a plain dict namespace as a notebook's ``globals()``."""

import pytest
import torch

from course_utils import course
from course_utils.course import config

PARAMETERS = """profile: str = "quick"  # quick | standard | full
dataset: str = "mnist"  # the dataset
seed: int = 0  # the seed
ipcs: list = None  # images per class
dm_iterations: int = None  # DM iterations
test_per_class: int = None  # test images per class
device: str = None  # auto | cpu | cuda
"""


def namespace(**values) -> dict:
    """The namespace a notebook has after its parameters cell: the annotated names land in ``__annotations__``."""
    ns: dict = {}
    exec(PARAMETERS, ns)
    ns.update(values)
    return ns


@pytest.fixture
def data_root(mnist_root, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_ROOT", str(mnist_root))
    return mnist_root


def test_setup_resolves_the_declared_parameters_and_prints_them(capsys):
    cfg = course.setup(namespace(ipcs=[1], device="cpu"), notebook="04_distribution_matching")
    assert isinstance(cfg, config.Settings) and cfg.notebook == "04_distribution_matching"
    assert cfg.ipcs == (1,) and cfg.dm_iterations == 200 and cfg.device == "cpu"  # the profile's where None
    assert list(cfg.parameters()) == ["profile", "dataset", "seed", "ipcs", "dm_iterations", "test_per_class", "device"]
    assert "'dm_iterations': 200" in capsys.readouterr().out
    assert course.setup(namespace(), notebook="04").notebook == "04_distribution_matching"  # or by its number


def test_setup_is_the_settings_resolve_gives():
    cfg = course.setup(namespace(seed=3), notebook="04_distribution_matching")
    expected = config.resolve("quick", notebook="04_distribution_matching", dataset="mnist", seed=3)
    assert {k: v for k, v in cfg.items() if k != "device"} == {k: v for k, v in expected.items() if k != "device"}
    assert cfg.device in ("cpu", "cuda")  # "auto", resolved


def test_a_bad_value_is_refused_naming_it():
    with pytest.raises(ValueError, match="dm_iterations=0: steps must be an integer >= 1, got 0"):
        course.setup(namespace(dm_iterations=0), notebook="04_distribution_matching")
    with pytest.raises(ValueError, match="device='tpu' is not valid; valid: auto, cpu, cuda"):
        course.setup(namespace(device="tpu"), notebook="04_distribution_matching")
    with pytest.raises(ValueError, match="notebook='99' is not valid; valid: 00_introduction_and_baselines"):
        course.setup(namespace(), notebook="99")


def test_an_undeclared_injected_parameter_is_refused():
    history = ["", "import torch", PARAMETERS, '# Parameters\nprofile = "quick"\ndm_iteration = 3\n', "setup"]
    with pytest.raises(ValueError, match="unknown parameter\\(s\\) 'dm_iteration': this notebook declares profile"):
        course.setup(namespace(In=history), notebook="04_distribution_matching")


def test_names_that_are_no_setting_stay_out_of_the_settings():
    ns = namespace()
    exec("use_recorded: bool = False  # a switch the notebook reads itself", ns)
    cfg = course.setup(ns, notebook="08_benchmark_and_applications")
    assert "use_recorded" not in cfg and "dm_iterations" not in cfg  # 08's own switch; 04's parameter
    exec("later: int = 3  # annotated in a later cell", ns)
    assert "later" not in course.setup(ns, notebook="04_distribution_matching")
    with pytest.raises(ValueError, match="no parameters cell declares `profile"):
        course.setup({"__annotations__": {}}, notebook="04_distribution_matching")


def test_seeding_gives_the_same_generator_and_global_state_twice():
    first = course.setup(namespace(), notebook="04_distribution_matching")
    a = (first.generator.get_state(), torch.rand(3))
    second = course.setup(namespace(), notebook="04_distribution_matching")
    b = (second.generator.get_state(), torch.rand(3))
    assert first.generator.device == torch.device("cpu")
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    other = course.setup(namespace(seed=1), notebook="04_distribution_matching")
    assert not torch.equal(other.generator.get_state(), a[0])


def test_load_data_draws_the_profiles_test_subset(data_root):
    cfg = course.setup(namespace(test_per_class=20, device="cpu"), notebook="04_distribution_matching")
    train, test = cfg.load_data()
    assert len(train) == 60000 and len(test) == 20 * 10
    assert torch.bincount(test.labels, minlength=10).tolist() == [20] * 10
    again = course.setup(namespace(test_per_class=20, seed=5, device="cpu"), notebook="04")
    assert torch.equal(again.load_data()[1].images, test.images)  # the same test images for every seed
    whole = course.setup(namespace(device="cpu"), notebook="01_ridge_regression_closed_form").load_data()[1]
    assert len(whole) == 10000  # notebook 01 predicts the whole test set


def test_load_data_draws_a_notebooks_training_subset(data_root):
    ns = namespace(device="cpu")
    cfg = course.setup(ns, notebook="06_zen_cross_architecture")
    train, test = cfg.load_data()
    assert len(train) == 300 * 10 and len(test) == 200 * 10  # quick: train_per_class 300, test_per_class 200
    assert torch.equal(cfg.load_data()[0].images, train.images)  # from the run's own generator: the same draw
    assert len(course.setup(ns, notebook="07").load_data()[0]) == 300 * 10
    assert train.zca is None
    fashion = course.setup(namespace(dataset="fashion_mnist", device="cpu"), notebook="06").load_data("fashion_mnist")
    assert fashion[0].name == "fashion_mnist" and len(fashion[0]) == 3000


def test_validation_holds_training_images_the_notebook_does_not_learn_from(data_root):
    cfg = course.setup(namespace(device="cpu"), notebook="06_zen_cross_architecture")
    train, test = cfg.load_data()
    again, val, test2 = cfg.load_data(validation_per_class=30)
    assert torch.equal(again.images, train.images) and torch.equal(test2.images, test.images)  # the subset is kept
    assert val.role == "validation" and torch.bincount(val.labels, minlength=10).tolist() == [30] * 10

    def rows(s):
        return {bytes(x.numpy().tobytes()) for x in s.images}

    assert not rows(val) & rows(train), "a validation image is one the notebook learns from"
    assert not rows(val) & rows(test), "a validation image is a test image"
    assert torch.equal(cfg.load_data(validation_per_class=30)[1].images, val.images)  # the same split every time
    other = course.setup(namespace(seed=3, device="cpu"), notebook="06").load_data(validation_per_class=30)[1]
    assert not torch.equal(other.images, val.images)  # drawn from the notebook's seed
    # a notebook that learns from the whole training set gives up the validation images
    whole, held, _ = course.setup(namespace(device="cpu"), notebook="04").load_data(validation_per_class=30)
    assert len(whole) == 60000 - 300 and held.role == "validation" and not rows(held) & rows(whole.subset(range(3000)))
