r"""Fitting a network by SGD: the two loops every layer shares.

- ``train_epoch``: one pass over a set in a random order, in mini-batches, each augmented and followed by one step of
  a given optimiser. The evaluation protocols run their epochs on it (``evaluation.training``), and so do MTT's
  experts (``nets.trajectories``) and DC's inner loop on the synthetic set (``methods.dc``).
- ``sgd_steps``: plain SGD steps in place, :math:`\theta \leftarrow \theta - \eta_t\,\nabla_\theta\,\ell(x_{b(t)};
  \theta)`, with no optimiser state: ZEN's inner steps on the synthetic set (one step size, the whole set) and DD's
  learned schedule (one step size per step, a group of images per step).

Every random number comes from the generator passed in (the course's are CPU generators, so a CPU and a GPU run make
the same draws; indices are moved to the data's device).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["BatchHook", "train_epoch", "sgd_steps"]

#: ``on_batch(indices, logits, targets)``: called after every training step (e.g. to count forgetting events).
BatchHook = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    generator: torch.Generator,
    batch_size: int,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    on_batch: BatchHook | None = None,
) -> float:
    """One pass over (images, labels) in a random order drawn from ``generator``, in batches of ``batch_size``,
    each augmented by ``augment(x, generator)`` and followed by one ``optimizer`` step; the mean loss of the pass.
    Labels may be class indices or soft (N×K) targets."""
    n = len(images)
    model.train()
    order = torch.randperm(n, generator=generator, device=generator.device).to(images.device)
    total = torch.zeros((), device=images.device)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        x, y = images[idx], labels[idx]
        if augment is not None:
            x = augment(x, generator)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(idx)
        if on_batch is not None:
            on_batch(idx, logits.detach(), y)
    return float(total) / n


def sgd_steps(
    net: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    step_sizes: Sequence[float],
    batches: Sequence[torch.Tensor] | None = None,
) -> torch.Tensor:
    r""":math:`\theta_{t+1} = \theta_t - \eta_t\,\nabla_\theta\,\ell(x_{b(t)}; \theta_t)` in place, for every
    :math:`\eta_t` of ``step_sizes``: plain SGD (no momentum, no optimiser state) on the detached ``images``;
    ``batches[t % len(batches)]`` indexes the images of step ``t`` (None: all of them). Returns every step's loss
    (before its update) as one detached tensor, so a caller checks them without a sync per step."""
    params = [p for p in net.parameters() if p.requires_grad]
    x = images.detach()
    net.train()
    losses = []
    for t, eta in enumerate(step_sizes):
        if batches is None:
            xb, yb = x, labels
        else:
            idx = batches[t % len(batches)]
            xb, yb = x[idx], labels[idx]
        loss = F.cross_entropy(net(xb), yb)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.add_(g, alpha=-float(eta))
        losses.append(loss.detach())
    return torch.stack(losses) if losses else torch.zeros(0, device=x.device)
