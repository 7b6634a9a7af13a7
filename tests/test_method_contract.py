"""The contract every registered method keeps, checked on tiny real MNIST (a 20-per-class subset).

Shapes and balanced labels; the same seed gives bit-identical sets and the global RNG is left alone; unknown
hyperparameters and bad ipcs are errors that name them; ``model=`` means a network sampler or is refused; one
callback payload. Iterative methods (the shared loop) also: a divergence keeps the last good set; a run killed
midway resumes bit-identically; a checkpoint of another seed, other data or other settings, a truncated,
corrupted (same size) or foreign file, or one beyond the asked steps is refused with a clear error.
"""

from __future__ import annotations

import math
import tempfile

import pytest
import torch

from course_utils import methods
from course_utils.methods import loop
from course_utils.methods.hparams import UnknownHyperparameterError
from course_utils.methods.registry import TINY_CONVNET
from course_utils.nets import samplers
from course_utils.records import checkpoint

#: Every registered method, and the toy method of ``tests/toy_method.py`` (registered by the fixture below only for
#: its own cases): a method written in one module plus its registry line goes through the same checks.
NAMES = [*methods.METHOD_NAMES, "toy"]
ITERATIVE = [m for m in methods.METHOD_NAMES if methods.info(m).iterative] + ["toy"]
_ROOT = tempfile.TemporaryDirectory(prefix="contract_")  # what tiny settings train (MTT's experts), kept: reused
_KWARGS: dict = {}


@pytest.fixture(autouse=True)
def toy_registered(request, monkeypatch):
    """The toy method is in the registry during its own cases only (a test's registration ends with it)."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("name") == "toy":
        import toy_method

        monkeypatch.setattr(methods, "REGISTRY", dict(methods.REGISTRY))
        methods.register(toy_method)


def _tiny_kwargs(name, train):
    """The method's tiny settings (its registry entry), made once per training set (MTT trains an expert)."""
    key = (name, train.fingerprint())
    if key not in _KWARGS:
        _KWARGS[key] = methods.info(name).tiny.kwargs(train, _ROOT.name)
    return _KWARGS[key]


@pytest.fixture(scope="module")
def tiny(mnist):
    train, _ = mnist
    return train.balanced_subset(20, torch.Generator().manual_seed(0))


def _run(name, train, seed=0, ipc=1, **extra):
    kwargs = {**_tiny_kwargs(name, train), **extra}
    return methods.distill(name, train, ipc, generator=torch.Generator().manual_seed(seed), **kwargs)


def test_every_registered_method_is_under_contract():
    for name in methods.METHOD_NAMES:
        info = methods.info(name)
        module = methods.get_method(name)
        assert hasattr(module, "distill") and hasattr(module, "Config") and module.METHOD.name == name, name
        assert (info.tiny.diverge is not None) == info.iterative, f"{name}: an iterative method says how it diverges"


@pytest.mark.parametrize("name", NAMES)
def test_shapes_balance_determinism_and_meta(name, tiny):
    state = torch.get_rng_state()
    a, b, c = _run(name, tiny), _run(name, tiny), _run(name, tiny, seed=1)
    assert torch.equal(torch.get_rng_state(), state), "only the explicit generator may be drawn from"
    assert a.images.shape == (10, 1, 28, 28) and a.images.dtype == torch.float32
    assert torch.bincount(a.hard_labels, minlength=10).tolist() == [1] * 10 and a.ipc == 1
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels), "same seed: bit-identical"
    assert not torch.equal(a.images, c.images), "another seed: another set"
    meta = a.meta
    assert meta["method"] == name and meta["dataset"] == "mnist" and meta["ipc"] == 1
    assert set(meta["hparams"]) == set(methods.get_method(name).Config.__dataclass_fields__)
    assert len(meta["history"]["loss"]) == meta["steps_done"] >= 1 and meta["seconds"] >= 0
    assert not a.images.requires_grad


@pytest.mark.parametrize("name", NAMES)
def test_unknown_hyperparameter_and_bad_ipc_name_the_value(name, tiny):
    with pytest.raises(UnknownHyperparameterError, match=rf"{name}: unknown hyperparameter\(s\) 'lrr'; valid: "):
        _run(name, tiny, lrr=0.1)
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="ipc"):
            _run(name, tiny, ipc=bad)
    with pytest.raises(ValueError, match="ipc=21 is larger than the smallest class"):
        _run(name, tiny, ipc=21)


@pytest.mark.parametrize("name", NAMES)
def test_model_argument_means_a_network_sampler(name, tiny):
    arg = methods.info(name).network
    if arg is None:
        with pytest.raises(TypeError, match="uses no network"):
            _run(name, tiny, model="convnet")
    elif arg == "feature_map":
        with pytest.raises(UnknownHyperparameterError, match="'model'"):
            _run(name, tiny, model="convnet")
    elif arg == "experts":
        with pytest.raises(TypeError, match="needs expert trajectories"):
            _run(name, tiny, model=TINY_CONVNET)
        buffer = _tiny_kwargs(name, tiny)["model"]
        assert _run(name, tiny, model=buffer).meta["model"]["buffer"] == buffer.fingerprint()
    elif arg == "pool":  # one sampler is a pool of one family
        syn = _run(name, tiny, model=TINY_CONVNET)
        assert syn.meta["model"] == samplers.ArchitecturePool([TINY_CONVNET]).spec()
        with pytest.raises(TypeError, match="architecture pool"):
            _run(name, tiny, model=samplers.FixedInit(torch.nn.Linear(2, 2)))
    else:
        syn = _run(name, tiny, model=TINY_CONVNET)
        assert syn.meta["model"] == TINY_CONVNET.spec()


@pytest.mark.parametrize("name", NAMES)
def test_one_callback_payload(name, tiny):
    events = []
    syn = _run(name, tiny, callback=events.append)
    steps = syn.meta["steps_done"]
    assert [e.step for e in events] == list(range(1, steps + 1)), "1-based, every step"
    assert all(isinstance(e, loop.StepEvent) and e.method == name and e.steps == steps for e in events)
    assert events[-1].images.shape == syn.images.shape
    finite = [e.loss for e in events if math.isfinite(e.loss)]
    assert finite == [x for x in syn.meta["history"]["loss"] if math.isfinite(x)]


@pytest.mark.parametrize("name", ITERATIVE)
def test_divergence_keeps_the_last_good_set(name, tiny):
    diverging = methods.info(name).tiny.diverge
    with pytest.raises(loop.DivergenceError, match=rf"{name} diverged at step \d+/3.*Likely cause") as err:
        _run(name, tiny, **diverging)
    good = err.value.synthetic
    assert torch.isfinite(good.images).all() and good.images.shape == (10, 1, 28, 28)
    assert len(good.meta["history"]["loss"]) == err.value.step - 1
    assert isinstance(err.value, FloatingPointError)


@pytest.mark.parametrize("name", ITERATIVE)
def test_checkpoint_kill_resume_and_refusals(name, tiny, mnist, tmp_path):
    straight = _run(name, tiny)
    path = tmp_path / f"{name}.pt"

    def kill(event):
        if event.step == 2:
            raise KeyboardInterrupt  # killed after step 2, before its checkpoint

    with pytest.raises(KeyboardInterrupt):
        _run(name, tiny, checkpoint=path, checkpoint_every=1, callback=kill)
    resumed = _run(name, tiny, checkpoint=path, checkpoint_every=1)
    assert torch.equal(straight.images, resumed.images) and torch.equal(straight.labels, resumed.labels)
    assert straight.meta["history"] == resumed.meta["history"]

    # another seed, other data, other settings, fewer steps: refused, naming what differs
    with pytest.raises(checkpoint.CheckpointError, match=rf"{path}.*another run.*generator"):
        _run(name, tiny, seed=1, checkpoint=path)
    other = mnist[0].balanced_subset(20, torch.Generator().manual_seed(1))
    with pytest.raises(checkpoint.CheckpointError, match="another run.*data"):
        _run(name, other, checkpoint=path)
    first_hparam = {"dd": {"lr_img": 0.02}}.get(name, {"lr_img": 0.2})
    with pytest.raises(checkpoint.CheckpointError, match="another run.*hparams"):
        _run(name, tiny, checkpoint=path, **first_hparam)
    with pytest.raises(checkpoint.CheckpointError, match="holds step 3 of this run, beyond steps=2"):
        _run(name, tiny, checkpoint=path, steps=2)
    longer = _run(name, tiny, checkpoint=path, steps=4)  # continuing a finished run is allowed
    assert len(longer.meta["history"]["loss"]) == 4

    # damaged files: one clear error naming the path and what to do
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # same size, one byte changed
    path.write_bytes(bytes(blob))
    with pytest.raises(checkpoint.CheckpointError, match=rf"{path} is damaged.*corrupted.*delete"):
        _run(name, tiny, checkpoint=path, steps=4)
    path.write_bytes(bytes(blob[: len(blob) // 3]))
    with pytest.raises(checkpoint.CheckpointError, match="is damaged.*truncated.*delete"):
        _run(name, tiny, checkpoint=path, steps=4)
    torch.save({"step": 3}, path)
    with pytest.raises(checkpoint.CheckpointError, match="not a course_utils checkpoint"):
        _run(name, tiny, checkpoint=path, steps=4)


@pytest.mark.parametrize("name", ITERATIVE)
def test_automatic_checkpoint_path_names_the_run(name, tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(tmp_path))
    _run(name, tiny, checkpoint=True)
    _run(name, tiny, seed=1, checkpoint=True)  # another run: another file, never the first one's
    files = sorted((tmp_path / "checkpoints" / name).glob("mnist_ipc1_*.pt"))
    assert len(files) == 2
