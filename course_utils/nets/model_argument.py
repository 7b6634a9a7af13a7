"""What ``model=`` means, read in one place for every method.

Every method that uses networks takes ``model=``; what it accepts depends on the kind of network the method draws,
and the method's registry entry (``methods.registry.MethodInfo``: ``network`` and ``default_model``) names that
kind and what ``None`` means:

============  =====================================================================================================
``network``   ``model=`` accepts
============  =====================================================================================================
"sampler"     one network sampler (``samplers.as_sampler``): a name or a function (a fresh initialisation at every
              draw), an ``nn.Module`` (a fixed θ0), any ``NetworkSampler``; ``None``: a fresh ``default``
"pool"        architecture families (``samplers.as_pool``): names or ``FreshInit`` samplers, or an
              ``ArchitecturePool``; one of them is a pool of one; ``None``: the ``default`` families
"experts"     expert trajectories (``trajectories.expert_sampler``): an ``ExpertBuffer`` trained on the same data
"early_stage" a network sampler as "sampler", or an ``ExpertBuffer`` whose networks become an early-stage pool
              (``ExpertBuffer.pool``, perturbed with the given ``magnitude``/``directions`` when ``perturb``);
              ``None`` is the method's to build (Acc-DD trains its pool)
None          nothing: ``model`` must be ``None``
============  =====================================================================================================
"""

from __future__ import annotations

from typing import Any

from . import samplers, trajectories

__all__ = ["KINDS", "model_argument"]

KINDS: tuple[str | None, ...] = ("sampler", "pool", "experts", "early_stage", None)


def model_argument(method: str, model: Any, network: str | None, default: Any = None, **options: Any) -> Any:
    """``model=`` of ``method`` as the sampler it draws from (see the module docstring for each ``network`` kind).

    ``options``: ``weight_init`` ("sampler": the fresh initialisations built from a name); ``train_set``,
    ``max_start_epoch``, ``expert_epochs`` ("experts"); ``magnitude``, ``directions``, ``perturb`` ("early_stage").
    Errors name the method and what it accepts."""
    if network not in KINDS:
        raise ValueError(f"{method}: unknown network kind {network!r}; valid: {', '.join(map(str, KINDS))}")
    if network is None:
        if model is not None:
            raise TypeError(f"{method} uses no network: model= must be None, got {type(model).__name__}")
        return None
    if network == "pool":
        return samplers.as_pool(model, default)
    if network == "experts":
        return trajectories.expert_sampler(
            model,
            options["train_set"],
            max_start_epoch=options["max_start_epoch"],
            expert_epochs=options["expert_epochs"],
        )
    if network == "early_stage":
        if isinstance(model, trajectories.ExpertBuffer):
            if options.get("train_set") is not None:
                model.check_data(options["train_set"])
            perturbed = options.get("perturb", True)
            return model.pool(
                magnitude=options.get("magnitude", (0.01, 0.09)) if perturbed else None,
                directions=options.get("directions", 2),
            )
        if isinstance(model, trajectories.ExpertTrajectories):
            raise TypeError(
                f"{method} draws whole networks, not expert segments: pass the ExpertBuffer itself (it becomes an "
                "early-stage pool) or a pool made with buffer.pool()"
            )
    if model is None and default is None:
        return None  # the method's own meaning of None (herding: pixels; Acc-DD: a pool it trains)
    return samplers.as_sampler(model, default, weight_init=options.get("weight_init", "default"))
