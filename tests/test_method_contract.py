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
from course_utils.nets import samplers, trajectories
from course_utils.records import checkpoint

TINY_CONVNET = samplers.FreshInit("convnet", width=8)

#: Per method: small hyperparameters (a few seconds at most), extra arguments, and hyperparameters that diverge.
SETUP = {
    "random": ({}, {}, None),
    "herding": ({"pool_per_class": 10}, {}, None),  # a random pool: the set depends on the seed
    "forgetting": ({"epochs": 1}, {"model": TINY_CONVNET}, None),
    "krr_closed_form": ({"lam": 1.0}, {}, None),
    "kip": ({"steps": 3, "batch_size": 50}, {}, {"lr_img": 1e30}),
    "dd": ({"steps": 3, "batch_size": 32}, {}, {"lr_init": 1e30}),
    "dc": ({"steps": 3, "batch_real": 8}, {"model": TINY_CONVNET}, {"lr_img": 1e30}),
    "dsa": ({"steps": 3, "batch_real": 8}, {"model": TINY_CONVNET}, {"lr_img": 1e30}),
    "dm": ({"steps": 3, "batch_real": 8}, {"model": TINY_CONVNET}, {"lr_img": 1e30}),
    "mtt": (
        {"steps": 3, "syn_steps": 2, "expert_epochs": 1, "max_start_epoch": 1, "lr_img": 10.0},
        {},
        {"lr_img": 1e30},
    ),
    "zen": (
        {"steps": 3, "inner_steps": 2, "hypergradient": "identity"},
        {"model": samplers.ArchitecturePool([TINY_CONVNET, samplers.FreshInit("mlp", width=16)])},
        {"lr_net": 1e30},
    ),
    # fresh networks (its pool samplers and model=None: tests/test_accdd.py)
    "accdd": (
        {"steps": 3, "outer_loop": 2, "inner_loop": 2, "batch_real": 8, "batch_net": 16},
        {"model": TINY_CONVNET},
        {"lr_img": 1e30},
    ),
}
_EXPERTS = tempfile.TemporaryDirectory(prefix="contract_experts_")


def _experts(train):
    """MTT's ``model=``: one tiny expert trained on ``train`` (kept on disk for the session: reused, not retrained)."""
    return trajectories.train_experts(
        train, 1, model="convnet", model_kwargs={"width": 8}, epochs=2, root=_EXPERTS.name
    )


ITERATIVE = [m for m in methods.METHOD_NAMES if methods.info(m).iterative]


@pytest.fixture(scope="module")
def tiny(mnist):
    train, _ = mnist
    return train.balanced_subset(20, torch.Generator().manual_seed(0))


def _run(name, train, seed=0, ipc=1, **extra):
    hparams, kwargs, _ = SETUP[name]
    if methods.info(name).network_arg == "experts" and "model" not in extra:
        kwargs = {"model": _experts(train)}
    return methods.distill(
        name, train, ipc, generator=torch.Generator().manual_seed(seed), **{**hparams, **kwargs, **extra}
    )


def test_every_registered_method_is_under_contract():
    assert set(SETUP) == set(methods.METHOD_NAMES)
    for name in methods.METHOD_NAMES:
        module = methods.get_method(name)
        assert hasattr(module, "distill") and hasattr(module, "Config"), name


@pytest.mark.parametrize("name", methods.METHOD_NAMES)
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


@pytest.mark.parametrize("name", methods.METHOD_NAMES)
def test_unknown_hyperparameter_and_bad_ipc_name_the_value(name, tiny):
    with pytest.raises(UnknownHyperparameterError, match=rf"{name}: unknown hyperparameter\(s\) 'lrr'; valid: "):
        _run(name, tiny, lrr=0.1)
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="ipc"):
            _run(name, tiny, ipc=bad)
    with pytest.raises(ValueError, match="ipc=21 is larger than the smallest class"):
        _run(name, tiny, ipc=21)


@pytest.mark.parametrize("name", methods.METHOD_NAMES)
def test_model_argument_means_a_network_sampler(name, tiny):
    arg = methods.info(name).network_arg
    if arg is None:
        with pytest.raises(TypeError, match="uses no network"):
            _run(name, tiny, model="convnet")
    elif arg == "feature_map":
        with pytest.raises(UnknownHyperparameterError, match="'model'"):
            _run(name, tiny, model="convnet")
    elif arg == "experts":
        with pytest.raises(TypeError, match="needs expert trajectories"):
            _run(name, tiny, model=TINY_CONVNET)
        buffer = _experts(tiny)
        assert _run(name, tiny, model=buffer).meta["model"]["buffer"] == buffer.fingerprint()
    elif arg == "pool":  # one sampler is a pool of one family
        syn = _run(name, tiny, model=TINY_CONVNET)
        assert syn.meta["model"] == samplers.ArchitecturePool([TINY_CONVNET]).spec()
        with pytest.raises(TypeError, match="architecture pool"):
            _run(name, tiny, model=samplers.FixedInit(torch.nn.Linear(2, 2)))
    else:
        syn = _run(name, tiny, model=TINY_CONVNET)
        assert syn.meta["model"] == TINY_CONVNET.spec()


@pytest.mark.parametrize("name", methods.METHOD_NAMES)
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
    diverging = SETUP[name][2]
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
