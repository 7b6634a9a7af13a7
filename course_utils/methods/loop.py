"""The one outer loop every iterative distillation method runs on (DD, DC, DSA, KIP, DM; MTT, ZEN, Acc-DD next).

A method supplies a ``Distiller``: its state (synthetic images, optimisers, ...) and ``step(k)``, one outer step
that returns its loss. ``run`` owns what every method needs:

- **resume**: with ``checkpoint`` set, the state is saved atomically every ``checkpoint_every`` steps and at the
  end; a later call with the same identity continues from it and ends bit-identical to an unbroken run. The
  identity is everything that determines the result: method, hyperparameters (``hparams.identity_fields``), ipc,
  the dataset and a fingerprint of its tensors, the model (sampler or feature map) spec, where the generator's
  stream starts, and the package version. Any other checkpoint is refused (``checkpoint.CheckpointError``), and a
  checkpoint that went further than ``steps`` is refused too (a run may be continued, never shortened);
- **divergence**: a step calls ``check_finite`` before every update; a NaN/inf loss or gradient stops the run with
  a ``DivergenceError`` that names the step and the likely cause and carries the last good set (the state before
  the bad update) in ``err.synthetic``;
- **callback**: ``callback(event)`` after every step with one payload for every method, a ``StepEvent`` (1-based
  ``step``, ``steps``, ``loss``, per-method ``metrics``, elapsed ``seconds``, current ``images``);
- **history and timing**: ``meta["history"]`` ({"loss": [...], one list per metric}), ``meta["seconds"]``
  (distillation time, resumed parts included), ``meta["hparams"]`` and ``meta["model"]`` in the returned set.

``run_interleaved`` runs several distillations round-robin, one outer step of each in turn, each exactly as ``run``
would (its own generator: bit-identical images), so that their per-step seconds are measured alternately and a
machine whose speed drifts slows all of them alike.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from .. import __version__
from ..core import repro, validate
from ..core.progress import progress as progress_bar
from ..data.augment import DSAFields
from ..data.datasets import ImageSet
from ..records import checkpoint
from ..records.synthetic import SyntheticSet, class_labels, initial_images
from . import hparams

__all__ = [
    "Distiller",
    "ImageDistiller",
    "StepEvent",
    "DivergenceError",
    "NonFiniteError",
    "check_finite",
    "run",
    "run_interleaved",
    "one_shot",
    "checkpoint_path",
]


class NonFiniteError(FloatingPointError):
    """Raised inside a step by ``check_finite``; ``run`` turns it into a ``DivergenceError``."""

    def __init__(self, where: str, value: float):
        super().__init__(f"{where}: {value}")
        self.where, self.value = where, value


class DivergenceError(FloatingPointError):
    """A run stopped on a non-finite loss or gradient. ``synthetic``: the last good set; ``step``: the bad step."""

    def __init__(self, message: str, *, method: str, step: int, synthetic: SyntheticSet, path: Path | None):
        super().__init__(message)
        self.method, self.step, self.synthetic, self.checkpoint = method, step, synthetic, path


def check_finite(where: str, loss: torch.Tensor | float, *params: torch.Tensor) -> float:
    """``float(loss)`` if it and every ``p.grad`` are finite, else ``NonFiniteError`` (call before the update)."""
    value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
    if not math.isfinite(value):
        raise NonFiniteError(where, value)
    for p in params:
        if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
            raise NonFiniteError(f"{where} (gradient)", float("nan"))
    return value


@dataclass
class StepEvent:
    """What ``callback`` receives after every step, for every method."""

    method: str
    step: int  # 1-based
    steps: int
    loss: float
    metrics: dict[str, float]
    seconds: float  # distillation time so far (resumed parts included)
    images: torch.Tensor  # the current synthetic images (detached; do not modify)


class Distiller:
    """One method's state and its outer step. Subclasses set ``method`` and ``divergence_hint`` and implement:

    ``__init__(train_set, ipc, *, generator, config, ...)``   the state (``run`` constructs it, with the method's own
                                                keyword arguments, e.g. ``sampler=``)
    ``step(k) -> (loss, metrics)``   one outer step (calls ``check_finite`` before each update)
    ``state_dict() / load_state_dict(state)``   everything that changes during the run (the generator is saved by
                                                ``run``); tensors may be loaded on the CPU, move them
    ``current_images()``             the synthetic images now (detached)
    ``synthetic_set()``              the current set (a copy) with the method's own meta entries
    ``spec()``                       what the run's networks are, for its identity and meta (default: the sampler's)
    """

    method: str = ""
    divergence_hint: str = "lower the learning rate"

    def __init__(self, train_set: ImageSet, ipc: int, *, generator: torch.Generator, config: Any):
        """What every method's state starts from: the checked ``ipc``, the data, the generator and the settings."""
        validate.ipc(ipc, train_set)
        self.train_set, self.ipc, self.generator, self.config = train_set, ipc, generator, config
        self.device, self.num_classes = train_set.device, train_set.num_classes

    def step(self, k: int) -> tuple[float, dict[str, float]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def state_dict(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def load_state_dict(self, state: Mapping[str, Any]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def current_images(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def synthetic_set(self) -> SyntheticSet:  # pragma: no cover - abstract
        raise NotImplementedError

    def spec(self) -> dict:
        """``{"model": <the sampler's spec>}`` (None: no network; KIP overrides it with its feature map)."""
        sampler = getattr(self, "sampler", None)
        return {"model": None if sampler is None else sampler.spec()}


class ImageDistiller(Distiller):
    """A ``Distiller`` whose learned state is the synthetic images and their optimiser (DC, DSA, DM, MTT, ZEN, Acc-DD).

    Sets ``images`` (a leaf tensor, class-major ``(K·ipc, C, H, W)``, started by ``synthetic.initial_images`` with
    ``config.init``), ``labels`` (``synthetic.class_labels``), ``optimizer`` (``config.image_optimizer``),
    ``sampler`` (the given network sampler, bound to the data's device), ``dsa`` (the config's augmentation,
    ``augment.DSAFields``, resolved for the dataset; None for none or a config without one) and ``batch_real``
    (``config.batch_real`` clipped to the smallest class; None for a config without one), and implements
    ``sample_real``, ``state_dict`` / ``load_state_dict`` and ``current_images``. Subclasses add ``setup`` (their
    own state, made after this), ``step`` and ``synthetic_set``.
    """

    def __init__(
        self,
        train_set: ImageSet,
        ipc: int,
        *,
        generator: torch.Generator,
        config: Any,
        sampler: Any = None,
    ):
        if isinstance(config, DSAFields):  # the dataset's strategy when none is given, so records name it
            config = config.resolved(train_set.name)
        super().__init__(train_set, ipc, generator=generator, config=config)
        # the network sampler bound to the data's device, and the augmentation (None when it is the identity)
        self.sampler = None if sampler is None else sampler.bind(train_set.info, self.device)
        self.dsa = config.augmentation() if isinstance(config, DSAFields) else None
        batch_real = getattr(config, "batch_real", None)  # MTT draws no real images
        self.batch_real = None if batch_real is None else min(batch_real, int(train_set.class_counts.min()))
        self.images = initial_images(train_set, ipc, config.init, generator).requires_grad_(True)
        self.labels = class_labels(self.num_classes, ipc, self.device)
        self.optimizer = config.image_optimizer([self.images])
        self.setup()

    def setup(self) -> None:
        """The method's own state, made once the images, labels, optimiser, sampler and augmentation exist."""

    def sample_real(self, n: int) -> torch.Tensor:
        """``n`` random real images of every class: ``(K, n, C, H, W)``, one draw for all classes."""
        return self.train_set.images[self.train_set.sample_per_class(n, self.generator)]

    def state_dict(self) -> dict:
        return {"images": self.images.detach().cpu(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        with torch.no_grad():
            self.images.copy_(state["images"].to(self.device))
        self.optimizer.load_state_dict(state["optimizer"])

    def current_images(self) -> torch.Tensor:
        return self.images.detach()


@dataclass
class _Progress:
    step: int = 0
    seconds: float = 0.0
    history: dict[str, list[float]] = field(default_factory=lambda: {"loss": []})


def _describe(
    syn: SyntheticSet,
    method: str,
    train_set: ImageSet,
    ipc: int,
    config: Any,
    spec: Mapping[str, Any],
    progress: _Progress,
) -> SyntheticSet:
    """The meta entries every method's set carries (the method's own entries are kept)."""
    syn.meta.update(
        {
            "method": method,
            "dataset": train_set.name,
            "ipc": ipc,
            "num_classes": train_set.num_classes,
            "hparams": hparams.as_dict(config),
            **dict(spec),
            "history": {k: list(v) for k, v in progress.history.items()},
            "steps_done": progress.step,
            "seconds": progress.seconds,
        }
    )
    return syn


def one_shot(
    method: str,
    compute: Callable[[], SyntheticSet],
    train_set: ImageSet,
    ipc: int,
    config: Any,
    spec: Mapping[str, Any],
    callback: Callable[[StepEvent], None] | None = None,
    loss: Callable[[SyntheticSet], float] | None = None,
) -> SyntheticSet:
    """For methods without outer steps (coresets, closed forms): time ``compute()``, fill the same meta entries
    as ``run`` (one step; ``loss(syn)`` or NaN: such methods have no loss) and call ``callback`` once."""
    t0 = time.perf_counter()
    syn = compute()
    value = float("nan") if loss is None else float(loss(syn))
    progress = _Progress(1, time.perf_counter() - t0, {"loss": [value]})
    _describe(syn, method, train_set, ipc, config, spec, progress)
    if callback is not None:
        callback(StepEvent(method, 1, 1, value, {}, progress.seconds, syn.images))
    return syn


def checkpoint_path(method: str, dataset: str, ipc: int, identity: Mapping[str, Any]) -> Path:
    """The automatic checkpoint file of a run: ``output/checkpoints/<method>/<dataset>_ipc<ipc>_<hash>.pt``."""
    from ..records.results import output_dir

    return output_dir() / "checkpoints" / method / f"{dataset}_ipc{ipc}_{checkpoint.identity_hash(identity)}.pt"


class _Run:
    """One run between its outer steps: what ``run`` and ``run_interleaved`` share (construction, resume, one step
    with its timing, history, callback and checkpoint, the result)."""

    def __init__(
        self,
        distiller: type[Distiller],
        train_set: ImageSet,
        ipc: int,
        generator: torch.Generator,
        config: hparams.LoopConfig,
        callback: Callable[[StepEvent], None] | None,
        state: Mapping[str, Any],
    ):
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable (it receives a loop.StepEvent), got {type(callback).__name__}")
        start = repro.generator_fingerprint(generator)
        self.distiller = distiller(train_set, ipc, generator=generator, config=config, **state)
        self.method, self.spec = self.distiller.method, self.distiller.spec()
        self.train_set, self.ipc, self.generator, self.config, self.callback = (
            train_set,
            ipc,
            generator,
            config,
            callback,
        )
        self.path = None
        self.identity: dict[str, Any] = {}
        if config.checkpoint is not None:
            self.identity = {
                "method": self.method,
                "hparams": hparams.identity_fields(config),
                "ipc": ipc,
                "dataset": train_set.name,
                "data": train_set.fingerprint(),
                **dict(self.spec),
                "generator": start,
                "version": __version__,
            }
            self.path = (
                checkpoint_path(self.method, train_set.name, ipc, self.identity)
                if config.checkpoint is True
                else Path(config.checkpoint)
            )
        self.progress = _Progress()
        saved = checkpoint.load(self.path, self.identity)
        if saved is not None:
            if saved["step"] > config.steps:
                raise checkpoint.CheckpointError(
                    f"checkpoint {self.path} holds step {saved['step']} of this run, beyond steps={config.steps}: "
                    f"pass steps >= {saved['step']} to continue it (a run is continued, never shortened), or "
                    "another path"
                )
            self.distiller.load_state_dict(saved["distiller"])
            generator.set_state(saved["generator"])
            self.progress = _Progress(saved["step"], saved["seconds"], saved["history"])
        self.saved = self.progress.step if saved is not None else None

    @property
    def done(self) -> bool:
        return self.progress.step >= self.config.steps

    def result(self) -> SyntheticSet:
        syn = self.distiller.synthetic_set()
        return _describe(syn, self.method, self.train_set, self.ipc, self.config, self.spec, self.progress)

    def advance(self) -> StepEvent:
        """Run the next outer step (timed on its own), record it, call the callback, checkpoint; its event."""
        config, progress, distiller = self.config, self.progress, self.distiller
        k = progress.step + 1
        t0 = time.perf_counter()
        try:
            loss, metrics = distiller.step(k)
        except NonFiniteError as err:
            kept = f"; the checkpoint {self.path} holds step {self.saved}" if self.saved is not None else ""
            raise DivergenceError(
                f"{self.method} diverged at step {k}/{config.steps}: {err.where} became {err.value}. Likely cause: "
                f"{distiller.divergence_hint}. The set after step {k - 1} (the last good one) is in "
                f"err.synthetic{kept}",
                method=self.method,
                step=k,
                synthetic=self.result(),
                path=self.path,
            ) from None
        progress.seconds += time.perf_counter() - t0
        progress.step = k
        progress.history["loss"].append(float(loss))
        for key, value in metrics.items():
            progress.history.setdefault(key, []).append(float(value))
        event = StepEvent(
            self.method, k, config.steps, float(loss), dict(metrics), progress.seconds, distiller.current_images()
        )
        if self.callback is not None:
            self.callback(event)
        if self.path is not None and (k % config.checkpoint_every == 0 or k == config.steps):
            checkpoint.save(
                self.path,
                self.identity,
                {
                    "step": k,
                    "seconds": progress.seconds,
                    "history": progress.history,
                    "generator": self.generator.get_state(),
                    "distiller": distiller.state_dict(),
                },
            )
            self.saved = k
        return event


def run(
    distiller: type[Distiller],
    train_set: ImageSet,
    ipc: int,
    *,
    generator: torch.Generator,
    config: hparams.LoopConfig,
    callback: Callable[[StepEvent], None] | None = None,
    **state: Any,
) -> SyntheticSet:
    """Construct ``distiller(train_set, ipc, generator=..., config=..., **state)`` and run it for ``config.steps``
    outer steps; see the module docstring.

    The distiller is constructed after the generator's starting state is recorded (it draws the initial images, θ0,
    ...); its ``method`` names the run and its ``spec()`` describes the networks (``{"model": sampler.spec()}`` or
    ``{"feature_map": ...}``).
    """
    one = _Run(distiller, train_set, ipc, generator, config, callback, state)
    with progress_bar(total=config.steps, desc=f"{one.method} ipc {ipc}") as bar:
        bar.update(one.progress.step)
        while not one.done:
            one.advance()
            bar.update(1)
    return one.result()


def run_interleaved(
    runs: Mapping[str, tuple[type[Distiller], Mapping[str, Any]]],
    train_set: ImageSet,
    ipc: int,
    *,
    generators: Mapping[str, torch.Generator],
    configs: Mapping[str, hparams.LoopConfig],
    callback: Callable[[str, StepEvent], None] | None = None,
) -> dict[str, SyntheticSet]:
    """Several runs on the same data, round-robin: one outer step of each in turn (in ``runs``' order), until every
    one has done its ``configs[name].steps``; ``{name: its set}``.

    ``runs``: ``{name: (distiller class, its own keyword arguments, e.g. {"sampler": ...})}``; each run has its own
    generator (``generators[name]``) and config (``configs[name]``), so it gives bit-identical images to
    ``run(distiller, train_set, ipc, generator=generators[name], config=configs[name], **kwargs)`` alone (and resumes
    from its own checkpoint the same way). What interleaving buys is the timing: every step is timed on its own
    (``StepEvent.seconds``, ``meta["seconds"]``), and the runs' steps alternate, so a machine whose speed drifts
    (other jobs, clock scaling, a warming cache) slows all of them alike instead of the one that happened to run
    last. ``callback(name, event)`` after every step of every run.
    """
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable (name, loop.StepEvent), got {type(callback).__name__}")
    missing = [name for name in runs if name not in generators or name not in configs]
    if missing:
        raise ValueError(f"every run needs its own generator and config: none given for {missing}")
    state: dict[str, _Run] = {}
    for name, (distiller, kwargs) in runs.items():
        own = None if callback is None else (lambda event, name=name: callback(name, event))
        state[name] = _Run(distiller, train_set, ipc, generators[name], configs[name], own, dict(kwargs))
    total = sum(configs[name].steps for name in runs)
    with progress_bar(total=total, desc=f"{len(runs)} runs interleaved, ipc {ipc}") as bar:
        bar.update(sum(one.progress.step for one in state.values()))
        while not all(one.done for one in state.values()):
            for one in state.values():
                if not one.done:
                    one.advance()
                    bar.update(1)
    return {name: one.result() for name, one in state.items()}
