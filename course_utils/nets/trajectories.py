r"""Expert trajectories for trajectory matching (MTT): trained once, stored keyed, reused, resumable.

An *expert* is a network trained on the real data with plain SGD (the reference's ``buffer.py``: lr 0.01, no
momentum, no weight decay, batches of 256, DSA augmentation of every batch, 50 epochs). Its *trajectory* is its
parameter vector after every epoch,

.. math::  \theta^*_0,\ \theta^*_1,\ \dots,\ \theta^*_E \qquad (\theta^*_0 = \text{the initialisation}),

stored as one ``(E + 1, P)`` float32 tensor per expert (``P`` parameters, flattened in ``named_parameters``
order). Trajectory matching starts a student at :math:`\theta^*_t` and asks the synthetic set to carry it to
:math:`\theta^*_{t+M}` (``methods/mtt.py``).

**Keyed.** A buffer lives in ``output/experts/<dataset>_<model>_<hash>/``; the hash is that of everything that
determines the trajectories (``ExpertSpec``: dataset and a fingerprint of its tensors (a ZCA-whitened set has
another), the model and its options (width, ...), epochs, lr, momentum, weight decay, batch size, augmentation,
seed; and the package version). Another setting is another folder; a file whose identity differs from the one
asked for is refused (``checkpoint.CheckpointError``), never reused.

**Reused.** Expert ``i`` is determined by the spec and ``i`` alone (its own seeds, ``repro.run_seed``), so a
buffer of 5 experts is grown to 10 by training experts 5..9, and asking for 3 of them loads 0..2.

**Atomic and resumable.** Expert ``i`` is written as ``expert_<i>.pt`` (checksummed, atomic) when it finishes; while
it trains, its snapshots so far (one small file per epoch) and ``expert_<i>.partial.pt`` (its weights, the
optimiser's and the generator's state) are saved after every epoch. A killed run continues with the next epoch
of the unfinished expert and ends bit-identical to an unbroken one (``tests/test_trajectories.py`` kills a process
and checks).

**Copies.** Every snapshot is a fresh flat copy of the weights. (Storing ``p.detach().cpu()`` — a view of the live
weight on a CPU — would make every snapshot of a trajectory the final weights, and the normalising distance
:math:`\lVert\theta^*_t-\theta^*_{t+M}\rVert^2` zero.)
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn as nn

from .. import __version__
from ..core import repro, validate
from ..core.atomic import write_json
from ..core.cost import synchronized_time
from ..core.progress import progress
from ..data.augment import DSA, strategy_for
from ..data.datasets import ImageSet
from ..records import checkpoint
from .fit import train_epoch
from .samplers import EarlyStagePool, FreshInit, NetworkSampler

__all__ = [
    "ExpertSpec",
    "ExpertBuffer",
    "ExpertEvent",
    "ExpertTrajectories",
    "ExpertSegment",
    "expert_sampler",
    "train_experts",
    "load",
    "flat_parameters",
    "buffer_folder",
]


@dataclass(frozen=True)
class ExpertSpec:
    """How experts are trained (defaults: the reference's ``buffer.py``). ``strategy``: the DSA strategy of every
    training batch (None: ``augment.strategy_for(dataset)``; ``"none"``: no augmentation)."""

    model: FreshInit | str = "convnet"  # the experts' architecture: a FreshInit (e.g. FreshInit("convnet", width=32))
    epochs: int = 50
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 256
    strategy: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        validate.positive_int("epochs", self.epochs)
        validate.positive_int("batch_size", self.batch_size)
        validate.positive_number("lr", self.lr)
        validate.number_in("momentum", self.momentum, 0, 1)
        validate.positive_number("weight_decay", self.weight_decay, allow_zero=True)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {self.seed!r}")
        if isinstance(self.model, str):  # a name: its fresh initialisation (an unknown name is refused here)
            object.__setattr__(self, "model", FreshInit(self.model))
        elif isinstance(self.model, dict):  # a stored spec (a buffer's manifest)
            object.__setattr__(self, "model", FreshInit.from_spec(self.model))
        elif not isinstance(self.model, FreshInit) or not isinstance(self.model.model, str):
            raise TypeError(
                f"model must be a model name or a samplers.FreshInit of a named model (experts are stored and "
                f"reloaded by name), got {self.model!r}"
            )

    def resolved(self, dataset: str) -> "ExpertSpec":
        """The spec with its augmentation strategy resolved for ``dataset``."""
        return self if self.strategy is not None else replace(self, strategy=strategy_for(dataset))

    def sampler(self) -> FreshInit:
        """The experts' architecture (unbound)."""
        return self.model

    def check_model(self, model: FreshInit | str) -> None:
        """Refuse experts of another model than ``model`` (a name, or a ``FreshInit`` with its options: another
        width is another model)."""
        asked = (FreshInit(model) if isinstance(model, str) else model).spec()
        have = self.model.spec()
        if asked != have:
            raise ValueError(
                f"this buffer holds trajectories of {have['model']} {have['kwargs']}, not of the asked "
                f"{asked['model']} {asked['kwargs']}: train experts of that model, or ask for the buffer's"
            )

    def identity(self, train_set: ImageSet) -> dict:
        """Everything that determines the experts trained on ``train_set`` (their files store it)."""
        spec = self.resolved(train_set.name)
        return {
            "kind": "expert trajectories",
            "dataset": train_set.name,
            "data": train_set.fingerprint(),
            **{k: getattr(spec, k) for k in EXPERT_FIELDS},
            "model": spec.model.spec(),
            "version": __version__,
        }


#: The fields of ``ExpertSpec`` besides the model (an identity stores the model by its ``spec()``).
EXPERT_FIELDS: tuple[str, ...] = ("epochs", "lr", "momentum", "weight_decay", "batch_size", "strategy", "seed")


def buffer_folder(train_set: ImageSet, spec: ExpertSpec, root: str | os.PathLike | None = None) -> Path:
    """``<root or output/experts>/<dataset>_<model>_<hash of the identity>``."""
    if root is None:
        from ..records.results import output_dir

        root = output_dir() / "experts"
    identity = spec.identity(train_set)
    return Path(root) / f"{train_set.name}_{spec.model.name}_{checkpoint.identity_hash(identity)}"


def flat_parameters(net: nn.Module) -> torch.Tensor:
    """The parameters of ``net`` as one new float32 vector on the CPU (a copy, never a view of live weights)."""
    return torch.cat([p.detach().reshape(-1) for p in net.parameters()]).to("cpu", torch.float32, copy=True)


@dataclass
class ExpertEvent:
    """What ``train_experts``'s callback receives after every saved epoch."""

    expert: int  # 0-based
    epoch: int  # 1-based epochs done by this expert
    epochs: int
    loss: float  # mean training loss of the epoch
    seconds: float  # training time of this expert so far (resumed parts included)


class ExpertBuffer:
    """The trajectories of ``len(self)`` experts of one ``ExpertSpec`` on one dataset.

    ``trajectories[e]``: ``(epochs + 1, P)`` float32 on the CPU, row ``t`` = θ*_t; ``names``/``shapes``: the
    parameters in ``named_parameters`` order; ``identity``: what determined them; ``folder``: where they live.
    """

    def __init__(
        self,
        spec: ExpertSpec,
        identity: Mapping[str, Any],
        trajectories: Sequence[torch.Tensor],
        names: Sequence[str],
        shapes: Sequence[Sequence[int]],
        folder: Path | None = None,
        losses: Sequence[Sequence[float]] = (),
        seconds: Sequence[float] = (),
    ):
        if not trajectories:
            raise ValueError("an expert buffer needs at least one trajectory")
        self.spec, self.identity, self.folder = spec, dict(identity), folder
        self.trajectories = list(trajectories)
        self.names, self.shapes = list(names), [tuple(s) for s in shapes]
        self.losses, self.seconds = [list(x) for x in losses], list(seconds)

    def __len__(self) -> int:
        return len(self.trajectories)

    def __repr__(self) -> str:
        return (
            f"ExpertBuffer({self.identity['dataset']}, {self.spec.model.name} {self.spec.model.kwargs}, "
            f"{len(self)} experts × {self.epochs} epochs, {self.num_params} parameters)"
        )

    @property
    def epochs(self) -> int:
        return int(self.trajectories[0].shape[0]) - 1

    @property
    def num_params(self) -> int:
        return int(self.trajectories[0].shape[1])

    def fingerprint(self) -> str:
        """A short hash of the identity and the number of experts (a checkpoint of a distillation records it)."""
        return checkpoint.identity_hash({**self.identity, "experts": len(self)})

    def spec_dict(self) -> dict:
        """A JSON-friendly description (a network sampler's ``spec``): model, data, settings, experts."""
        return {
            "sampler": "experts",
            "model": self.spec.sampler().spec(),
            "dataset": self.identity["dataset"],
            "data": self.identity["data"],
            "epochs": self.epochs,
            "experts": len(self),
            "buffer": self.fingerprint(),
        }

    def check_data(self, train_set: ImageSet) -> None:
        """Refuse to match trajectories of other data (another dataset, or the same one whitened or not)."""
        if train_set.name != self.identity["dataset"] or train_set.fingerprint() != self.identity["data"]:
            raise ValueError(
                f"these experts were trained on {self.identity['dataset']} (data {self.identity['data']}), not on "
                f"this {train_set.name} set (data {train_set.fingerprint()}): train experts on the same data "
                "(the same subset, the same whitening) with trajectories.train_experts"
            )

    def check_model(self, model: FreshInit | str) -> None:
        """Refuse a buffer of another model than ``model`` (``ExpertSpec.check_model``)."""
        self.spec.check_model(model)

    def network(self, info, device: str | torch.device) -> nn.Module:
        """A network of the experts' architecture (on ``device``) whose parameters match the stored ones."""
        net = self.spec.sampler().bind(info, device).build(0)
        names = [n for n, _ in net.named_parameters()]
        shapes = [tuple(p.shape) for p in net.parameters()]
        if names != self.names or shapes != self.shapes:
            raise ValueError(
                f"the stored parameters ({len(self.names)} tensors) do not fit {self.spec.model.name} "
                f"{self.spec.model.kwargs} for {info.name} ({len(names)} tensors): a buffer of another model"
            )
        return net

    def pool(
        self,
        epoch: int | None = None,
        *,
        magnitude: tuple[float, float] | None = (0.01, 0.09),
        directions: int = 2,
    ) -> EarlyStagePool:
        """The early-stage pool of these networks at ``epoch`` (None: the last one; Acc-DD): each stored flat snapshot
        θ*_epoch is loaded into a network of the buffer's architecture. Only parameters are stored in a buffer:
        batch-norm running statistics, if the architecture has any, start from their defaults."""
        from ..data.datasets import dataset_info

        epoch = self.epochs if epoch is None else epoch
        validate.positive_int("epoch", epoch, minimum=0)
        if epoch > self.epochs:
            raise ValueError(f"epoch={epoch} is beyond the buffer's {self.epochs} epochs: valid 0..{self.epochs}")
        net = self.network(dataset_info(self.identity["dataset"]), "cpu")
        states = []
        for trajectory in self.trajectories:
            torch.nn.utils.vector_to_parameters(trajectory[epoch], net.parameters())
            states.append({k: v.detach().clone() for k, v in net.state_dict().items()})
        return EarlyStagePool(
            self.spec.sampler(),
            states,
            magnitude=magnitude,
            directions=directions,
            pretrain_seconds=float(sum(self.seconds)) if self.seconds else None,
            source={"buffer": self.fingerprint(), "epoch": epoch, "networks": len(self)},
        )

    def subset(self, experts: int) -> "ExpertBuffer":
        """The first ``experts`` trajectories."""
        validate.positive_int("experts", experts)
        if experts > len(self):
            raise ValueError(f"experts={experts}: this buffer holds {len(self)}")
        return ExpertBuffer(
            self.spec,
            self.identity,
            self.trajectories[:experts],
            self.names,
            self.shapes,
            self.folder,
            self.losses[:experts],
            self.seconds[:experts],
        )


def _paths(folder: Path, i: int) -> tuple[Path, Path]:
    return folder / f"expert_{i:03d}.pt", folder / f"expert_{i:03d}.partial.pt"


def _snapshot_path(folder: Path, i: int, epoch: int) -> Path:
    return folder / f"expert_{i:03d}.epoch_{epoch:03d}.pt"


def _train_one(
    train_set: ImageSet,
    spec: ExpertSpec,
    identity: Mapping[str, Any],
    i: int,
    folder: Path,
    device: torch.device,
    callback: Callable[[ExpertEvent], None] | None,
    checkpoint_every: int,
) -> dict:
    """Train (or finish) expert ``i``; write ``expert_<i>.pt``; return its saved state.

    While it trains, every ``checkpoint_every`` epochs: the new snapshots, one small file each
    (``expert_<i>.epoch_<t>.pt``), then ``expert_<i>.partial.pt`` (weights, optimiser, generator, the epoch reached):
    a save costs the same at epoch 50 as at epoch 1, and the partial file only names snapshots already on disk.
    """
    final, partial = _paths(folder, i)
    key = {**identity, "expert": i}
    net = spec.sampler().bind(train_set.info, device).build(repro.run_seed(spec.seed, "expert", train_set.name, i))
    optimizer = torch.optim.SGD(net.parameters(), lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)
    generator = repro.run_generator(spec.seed, "expert data", train_set.name, i)
    augment = None if spec.strategy in (None, "none") else DSA(spec.strategy)
    snapshots, losses, seconds = [flat_parameters(net)], [], 0.0
    on_disk = 0  # snapshots 0..on_disk-1 have their files
    state = checkpoint.load(partial, key)
    if state is not None:  # continue after the last saved epoch
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        on_disk, losses, seconds = int(state["epoch"]) + 1, list(state["losses"]), float(state["seconds"])
        snapshots = [
            checkpoint.load(_snapshot_path(folder, i, t), {**key, "epoch": t})["snapshot"] for t in range(on_disk)
        ]
    images, labels = train_set.images, train_set.labels
    for epoch in range(len(snapshots), spec.epochs + 1):
        t0 = synchronized_time(device)
        loss = train_epoch(
            net, optimizer, images, labels, generator=generator, batch_size=spec.batch_size, augment=augment
        )
        snapshots.append(flat_parameters(net))
        seconds += synchronized_time(device) - t0
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"expert {i} diverged at epoch {epoch}/{spec.epochs} (training loss {loss}): lower lr={spec.lr}"
            )
        losses.append(loss)
        if epoch < spec.epochs and epoch % checkpoint_every == 0:
            for t in range(on_disk, epoch + 1):
                checkpoint.save(_snapshot_path(folder, i, t), {**key, "epoch": t}, {"snapshot": snapshots[t]})
            checkpoint.save(
                partial,
                key,
                {
                    "epoch": epoch,
                    "losses": losses,
                    "seconds": seconds,
                    "model": net.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "generator": generator.get_state(),
                },
            )
            on_disk = epoch + 1
        if callback is not None:
            callback(ExpertEvent(i, epoch, spec.epochs, loss, seconds))
    names = [n for n, _ in net.named_parameters()]
    done = {
        "trajectory": torch.stack(snapshots),
        "names": names,
        "shapes": [list(p.shape) for p in net.parameters()],
        "losses": losses,
        "seconds": seconds,
        "device": str(device),
    }
    checkpoint.save(final, key, done)
    _remove_partial(folder, i)
    return done


def _remove_partial(folder: Path, i: int) -> None:
    """Delete the partial file first (it names the snapshot files), then the snapshot files."""
    _paths(folder, i)[1].unlink(missing_ok=True)
    for path in folder.glob(f"expert_{i:03d}.epoch_*.pt"):
        path.unlink(missing_ok=True)


def train_experts(
    train_set: ImageSet,
    experts: int,
    spec: ExpertSpec | None = None,
    *,
    root: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    callback: Callable[[ExpertEvent], None] | None = None,
    checkpoint_every: int = 1,
    **spec_fields: Any,
) -> ExpertBuffer:
    """The trajectories of experts ``0..experts-1`` of ``spec`` (or ``ExpertSpec(**spec_fields)``) on ``train_set``.

    Finished experts are loaded from the buffer's folder (``buffer_folder``), an unfinished one is resumed from its
    partial file, missing ones are trained (on ``device``; default the data's) and written atomically.
    ``callback(event)``: an ``ExpertEvent`` after every epoch. ``checkpoint_every``: epochs between partial saves.
    """
    if spec is None:
        spec = ExpertSpec(**spec_fields)
    elif spec_fields:
        raise TypeError(f"pass either spec or its fields, not both (got spec and {sorted(spec_fields)})")
    if not isinstance(spec, ExpertSpec):
        raise TypeError(f"spec must be a trajectories.ExpertSpec, got {type(spec).__name__}")
    validate.positive_int("experts", experts)
    validate.positive_int("checkpoint_every", checkpoint_every)
    spec = spec.resolved(train_set.name)
    device = repro.resolve_device(device) if device is not None else train_set.device
    data = train_set.to(device)
    identity = spec.identity(train_set)
    folder = buffer_folder(train_set, spec, root)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "manifest.json", {**identity, "files": "expert_<i>.pt: checkpoint.save(identity, state)"})
    states = []
    for i in progress(range(experts), desc=f"experts ({spec.model.name}, {spec.epochs} epochs)", total=experts):
        final, _ = _paths(folder, i)
        state = checkpoint.load(final, {**identity, "expert": i})
        if state is not None:
            _remove_partial(folder, i)  # left over if a run was killed between the final write and the cleanup
        else:
            state = _train_one(data, spec, identity, i, folder, device, callback, checkpoint_every)
        states.append(state)
    return _buffer(spec, identity, states, folder)


def _buffer(spec: ExpertSpec, identity: Mapping[str, Any], states: Sequence[Mapping], folder: Path) -> ExpertBuffer:
    return ExpertBuffer(
        spec,
        identity,
        [s["trajectory"] for s in states],
        states[0]["names"],
        states[0]["shapes"],
        folder,
        [s["losses"] for s in states],
        [s["seconds"] for s in states],
    )


def load(
    folder: str | os.PathLike, *, experts: int | None = None, model: FreshInit | str | None = None
) -> ExpertBuffer:
    """The finished experts stored in ``folder`` (all of them, or the first ``experts``), checked against their
    manifest. With ``model`` (a name, or a ``FreshInit`` with its options such as ``width=128``), a buffer of
    another model is refused."""
    folder = Path(folder)
    manifest = folder / "manifest.json"
    if not manifest.exists():
        raise FileNotFoundError(f"{folder} holds no expert buffer (no manifest.json); train one with train_experts")
    identity = json.loads(manifest.read_text())
    identity.pop("files", None)
    fields = {k: identity[k] for k in ExpertSpec.__dataclass_fields__}
    spec = ExpertSpec(**fields)
    if model is not None:
        spec.check_model(model)
    states, i = [], 0
    while (experts is None or i < experts) and _paths(folder, i)[0].exists():
        states.append(checkpoint.load(_paths(folder, i)[0], {**identity, "expert": i}))
        i += 1
    if not states or (experts is not None and len(states) < experts):
        raise ValueError(
            f"{folder} holds {len(states)} finished experts, {experts or 1} asked: train them with train_experts"
        )
    return _buffer(spec, identity, states, folder)


@dataclass
class ExpertSegment:
    """One draw of ``ExpertTrajectories``: expert ``expert``'s parameters at epoch ``start`` and ``epochs`` later."""

    start_params: torch.Tensor  # θ*_start, flat (P,), on the bound device
    target_params: torch.Tensor  # θ*_{start + epochs}
    expert: int
    start: int


class ExpertTrajectories(NetworkSampler):
    """Snapshots of experts trained on real data (an ``ExpertBuffer``): a draw is an expert, uniform, and a start
    epoch ``t`` uniform on ``{0, ..., max_start_epoch - 1}``, with the target θ*_{t + expert_epochs} (MTT).
    ``network()`` is the experts' architecture, for a functional forward with the flat parameters."""

    def __init__(self, buffer: ExpertBuffer, *, max_start_epoch: int, expert_epochs: int):
        if not isinstance(buffer, ExpertBuffer):
            raise TypeError(
                f"ExpertTrajectories takes a trajectories.ExpertBuffer (from trajectories.train_experts or "
                f"trajectories.load), got {type(buffer).__name__}"
            )
        validate.positive_int("expert_epochs", expert_epochs)
        validate.positive_int("max_start_epoch", max_start_epoch)
        E = buffer.epochs
        if expert_epochs > E:
            raise ValueError(
                f"expert_epochs={expert_epochs} is beyond the {E}-epoch trajectories of this buffer: valid 1..{E}"
            )
        if max_start_epoch - 1 + expert_epochs > E:
            raise ValueError(
                f"max_start_epoch={max_start_epoch} is beyond the buffer: a start epoch t < max_start_epoch needs "
                f"the target t + expert_epochs ({expert_epochs}) <= {E} epochs, so max_start_epoch must be in "
                f"1..{E - expert_epochs + 1}"
            )
        self.buffer, self.max_start_epoch, self.expert_epochs = buffer, max_start_epoch, expert_epochs

    def network(self) -> nn.Module:
        self._check_bound()
        return self.buffer.network(self.info, self.device)

    def sample(self, generator: torch.Generator) -> ExpertSegment:
        self._check_bound()
        gdev = generator.device
        e = int(torch.randint(len(self.buffer), (1,), generator=generator, device=gdev))
        t = int(torch.randint(self.max_start_epoch, (1,), generator=generator, device=gdev))
        trajectory = self.buffer.trajectories[e]
        start, target = trajectory[t], trajectory[t + self.expert_epochs]
        return ExpertSegment(start.to(self.device), target.to(self.device), e, t)

    def spec(self) -> dict:
        return {
            **self.buffer.spec_dict(),
            "max_start_epoch": self.max_start_epoch,
            "expert_epochs": self.expert_epochs,
        }


def expert_sampler(model: Any, train_set: ImageSet, *, max_start_epoch: int, expert_epochs: int) -> ExpertTrajectories:
    """What ``model=`` means for trajectory matching: an ``ExpertBuffer`` trained on this very ``train_set`` (or an
    ``ExpertTrajectories`` sampler of one, drawing with the same ``max_start_epoch`` and ``expert_epochs``)."""
    if isinstance(model, ExpertTrajectories):
        if (model.max_start_epoch, model.expert_epochs) != (max_start_epoch, expert_epochs):
            raise ValueError(
                f"the ExpertTrajectories sampler draws max_start_epoch={model.max_start_epoch}, "
                f"expert_epochs={model.expert_epochs} but the hyperparameters say {max_start_epoch}, "
                f"{expert_epochs}: pass the buffer itself (model=buffer) and the hyperparameters"
            )
        model = model.buffer
    if not isinstance(model, ExpertBuffer):
        raise TypeError(
            "trajectory matching needs expert trajectories: pass model=trajectories.train_experts(train_set, "
            f"experts, ...) (or trajectories.load(folder)), got model={type(model).__name__}"
        )
    model.check_data(train_set)
    return ExpertTrajectories(model, max_start_epoch=max_start_epoch, expert_epochs=expert_epochs)
