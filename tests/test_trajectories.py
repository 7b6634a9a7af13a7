"""Expert buffers: snapshots are copies, buffers are keyed and reused, a killed run resumes bit-identically, and
a buffer of other data, another model or too short a trajectory is refused with a clear error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from course_utils.evaluation import training
from course_utils.nets import samplers, trajectories
from course_utils.nets.trajectories import ExpertSpec
from course_utils.records import checkpoint

ROOT = Path(__file__).resolve().parent.parent
SPEC = dict(model=samplers.FreshInit("convnet", width=8), epochs=3, batch_size=64)


@pytest.fixture(scope="module")
def tiny(mnist):
    train, _ = mnist
    return train.balanced_subset(20, torch.Generator().manual_seed(0))


def test_snapshots_are_copies_that_differ_epoch_to_epoch(tiny, tmp_path):
    buf = trajectories.train_experts(tiny, 2, root=tmp_path, **SPEC)
    assert len(buf) == 2 and buf.epochs == 3
    for trajectory in buf.trajectories:
        assert trajectory.shape == (4, buf.num_params) and trajectory.dtype == torch.float32
        steps = (trajectory[1:] - trajectory[:-1]).abs().sum(1)
        assert bool((steps > 0).all()), "consecutive snapshots must differ (a view of live weights would not)"
    assert not torch.equal(buf.trajectories[0][0], buf.trajectories[1][0]), "each expert has its own init"
    # row 0 is the initialisation, the network that load_state_dict of the last row reproduces is the trained one
    net = buf.network(tiny.info, "cpu")
    assert [n for n, _ in net.named_parameters()] == buf.names


def test_flat_parameters_is_a_copy():
    net = torch.nn.Linear(3, 2)
    flat = trajectories.flat_parameters(net)
    with torch.no_grad():
        net.weight.add_(1.0)
    assert not torch.equal(flat, trajectories.flat_parameters(net))


def test_reused_when_present_and_grown_expert_by_expert(tiny, tmp_path, monkeypatch):
    one = trajectories.train_experts(tiny, 1, root=tmp_path, **SPEC)
    two = trajectories.train_experts(tiny, 2, root=tmp_path, **SPEC)  # trains expert 1 only
    assert torch.equal(one.trajectories[0], two.trajectories[0])

    def no_training(*args, **kwargs):
        raise AssertionError("a stored expert must be loaded, not trained again")

    monkeypatch.setattr(trajectories, "train_epoch", no_training)
    again = trajectories.train_experts(tiny, 2, root=tmp_path, **SPEC)
    assert all(torch.equal(a, b) for a, b in zip(two.trajectories, again.trajectories))
    loaded = trajectories.load(two.folder, model=samplers.FreshInit("convnet", width=8))
    assert len(loaded) == 2 and torch.equal(loaded.trajectories[1], two.trajectories[1])
    assert len(trajectories.load(two.folder, experts=1)) == 1


def test_keyed_by_everything_that_determines_them(tiny, mnist, tmp_path):
    base = ExpertSpec(**SPEC)
    folder = trajectories.buffer_folder(tiny, base, tmp_path)
    other_data = mnist[0].balanced_subset(20, torch.Generator().manual_seed(1))
    for changed in (
        trajectories.buffer_folder(tiny, ExpertSpec(**{**SPEC, "epochs": 4}), tmp_path),
        trajectories.buffer_folder(tiny, ExpertSpec(**{**SPEC, "lr": 0.02}), tmp_path),
        trajectories.buffer_folder(
            tiny, ExpertSpec(**{**SPEC, "model": samplers.FreshInit("convnet", width=16)}), tmp_path
        ),
        trajectories.buffer_folder(tiny, ExpertSpec(**{**SPEC, "strategy": "none"}), tmp_path),
        trajectories.buffer_folder(tiny, ExpertSpec(**{**SPEC, "seed": 1}), tmp_path),
        trajectories.buffer_folder(other_data, base, tmp_path),
    ):
        assert changed != folder
    identity = base.identity(tiny)
    assert identity["strategy"] == "color_crop_cutout_scale_rotate" and identity["data"] == tiny.fingerprint()
    assert "version" in identity


def test_a_file_of_another_run_is_refused(tiny, tmp_path):
    buf = trajectories.train_experts(tiny, 1, root=tmp_path, **SPEC)
    other = ExpertSpec(**{**SPEC, "lr": 0.02})
    other_folder = trajectories.buffer_folder(tiny, other, tmp_path)
    other_folder.mkdir(parents=True)
    (other_folder / "expert_000.pt").write_bytes((buf.folder / "expert_000.pt").read_bytes())
    with pytest.raises(checkpoint.CheckpointError, match="another run.*lr: saved 0.01, asked 0.02"):
        trajectories.train_experts(tiny, 1, other, root=tmp_path)


_KILLED_RUN = """
import os, signal, sys, torch
from course_utils import data, samplers, trajectories
train = data.load_dataset("mnist", root=sys.argv[1]).balanced_subset(20, torch.Generator().manual_seed(0))

def kill(event):
    if event.expert == 1 and event.epoch == 2:  # after expert 1's second epoch was saved
        os.kill(os.getpid(), signal.SIGKILL)

trajectories.train_experts(train, 2, root=sys.argv[2], callback=kill, model=samplers.FreshInit("convnet", width=8),
                           epochs=3, batch_size=64)
"""


def test_a_killed_run_resumes_bit_identical(tiny, mnist_root, tmp_path):
    straight = trajectories.train_experts(tiny, 2, root=tmp_path / "straight", **SPEC)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_KILLED_RUN), str(mnist_root), str(tmp_path / "killed")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    folder = trajectories.buffer_folder(tiny, ExpertSpec(**SPEC), tmp_path / "killed")
    assert (folder / "expert_000.pt").exists() and (folder / "expert_001.partial.pt").exists()
    assert not (folder / "expert_001.pt").exists()
    assert not list(folder.glob(".*.tmp")), "no half-written file is left behind"
    epochs_trained = []
    resumed = trajectories.train_experts(
        tiny, 2, root=tmp_path / "killed", callback=lambda e: epochs_trained.append((e.expert, e.epoch)), **SPEC
    )
    assert epochs_trained == [(1, 3)], "only the missing epoch of the unfinished expert is trained"
    assert all(torch.equal(a, b) for a, b in zip(straight.trajectories, resumed.trajectories))
    assert straight.losses == resumed.losses
    assert not (folder / "expert_001.partial.pt").exists()


def test_sampler_refuses_segments_beyond_the_buffer(tiny, tmp_path):
    buf = trajectories.train_experts(tiny, 1, root=tmp_path, **SPEC)  # 3 epochs
    with pytest.raises(ValueError, match=r"expert_epochs=4 is beyond the 3-epoch trajectories.*valid 1..3"):
        trajectories.ExpertTrajectories(buf, max_start_epoch=1, expert_epochs=4)
    with pytest.raises(ValueError, match=r"max_start_epoch=3 is beyond the buffer.*must be in 1..2"):
        trajectories.ExpertTrajectories(buf, max_start_epoch=3, expert_epochs=2)
    sampler = trajectories.ExpertTrajectories(buf, max_start_epoch=2, expert_epochs=2).bind(tiny.info, "cpu")
    g = torch.Generator().manual_seed(0)
    starts = set()
    for _ in range(20):
        seg = sampler.sample(g)
        starts.add(seg.start)
        assert torch.equal(seg.target_params, buf.trajectories[seg.expert][seg.start + 2])
    assert starts == {0, 1}
    with pytest.raises(TypeError, match="ExpertBuffer"):
        trajectories.ExpertTrajectories("convnet", max_start_epoch=1, expert_epochs=1)


def test_a_buffer_of_another_model_or_other_data_is_refused(tiny, mnist, tmp_path):
    buf = trajectories.train_experts(tiny, 1, root=tmp_path, **SPEC)
    with pytest.raises(ValueError, match=r"holds trajectories of convnet \{'width': 8\}.*convnet \{'width': 128\}"):
        trajectories.load(buf.folder, model=samplers.FreshInit("convnet", width=128))
    with pytest.raises(ValueError, match="holds trajectories of convnet.*not of the asked lenet"):
        buf.check_model("lenet")
    other = mnist[0].balanced_subset(20, torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match="trained on mnist.*not on this mnist set"):
        buf.check_data(other)
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        trajectories.load(tmp_path / "nothing")
    with pytest.raises(ValueError, match="holds 1 finished experts, 3 asked"):
        trajectories.load(buf.folder, experts=3)


def test_bad_settings_name_the_value():
    for bad, match in (
        ({"epochs": 0}, "epochs"),
        ({"lr": -1.0}, "lr"),
        ({"model": "resnet99"}, "resnet99"),
        ({"seed": -1}, "seed must be a non-negative int, got -1"),
        ({"batch_size": 0}, "batch_size"),
    ):
        with pytest.raises(ValueError, match=match):
            ExpertSpec(**bad)


def test_expert_epoch_is_the_training_epoch(tiny, tmp_path):
    """An expert's first epoch is ``training.train_epoch`` from the same init and stream (the snapshot adds a copy)."""
    spec = ExpertSpec(**{**SPEC, "epochs": 1, "strategy": "none"})
    buf = trajectories.train_experts(tiny, 1, spec, root=tmp_path)
    from course_utils.core import repro

    net = spec.sampler().bind(tiny.info, "cpu").build(repro.run_seed(0, "expert", "mnist", 0))
    assert torch.equal(trajectories.flat_parameters(net), buf.trajectories[0][0])
    opt = torch.optim.SGD(net.parameters(), lr=spec.lr, momentum=0, weight_decay=0)
    g = repro.run_generator(0, "expert data", "mnist", 0)
    training.train_epoch(net, opt, tiny.images, tiny.labels, generator=g, batch_size=spec.batch_size)
    assert torch.equal(trajectories.flat_parameters(net), buf.trajectories[0][1])
