r"""Hypergradients by the implicit function theorem (IFT), for ZEN's worst-case distillation over architectures.

Inner problem: network weights :math:`\theta` trained on the synthetic set :math:`\lambda` (the images), loss
:math:`L_S(\theta,\lambda)`; outer problem: the real-data loss :math:`L_T(\theta,\lambda)` at the trained weights.
At an inner optimum :math:`\partial L_S/\partial\theta\,(\theta^\star(\lambda),\lambda) = 0`, and differentiating that
identity in :math:`\lambda` (Lorraine, Vicol & Duvenaud, AISTATS 2020) gives

.. math::

    \frac{d L_T}{d\lambda} = \frac{\partial L_T}{\partial\lambda}
        - \frac{\partial^2 L_S}{\partial\lambda\,\partial\theta^\top}
          \Big[\frac{\partial^2 L_S}{\partial\theta\,\partial\theta^\top}\Big]^{-1} \frac{\partial L_T}{\partial\theta}
        \Big|_{\theta=\theta^\star(\lambda)} .

The Hessian :math:`H = \partial^2 L_S/\partial\theta\,\partial\theta^\top` is never formed: only products
:math:`Hv = \partial(g^\top v)/\partial\theta` with :math:`g = \partial L_S/\partial\theta` (double backward), and
:math:`p \approx H^{-1} v` is found from them by

- the Neumann series :math:`H^{-1} v \approx \alpha\sum_{k=0}^{K} (I-\alpha H)^k v` (Lorraine et al., Alg. 3),
  convergent when :math:`H` is positive definite and :math:`0<\alpha<2/\lambda_{\max}(H)`;
- conjugate gradients on :math:`Hx = v` (:math:`H` symmetric positive definite);
- ``"identity"``: :math:`p = v`, i.e. :math:`H \approx I` (what a Neumann loop that never updates its vector
  reduces to, up to a factor: the "gradient alignment" variant of the ZEN reference code, kept for comparison).

The mixed term is a second vector-Jacobian product: :math:`(\partial^2 L_S/\partial\lambda\partial\theta^\top)\,p
= \partial(g^\top p)/\partial\lambda`. Vectors are tuples of tensors shaped like ``params``; everything goes
through ``torch.autograd.grad``, so no ``.grad`` is ever written, and zeros are made with ``zeros_like`` so any
device works.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable, Sequence

import torch
from torch import Tensor

from ..core import validate

__all__ = [
    "METHODS",
    "NeumannDivergenceWarning",
    "hvp",
    "largest_eigenvalue",
    "extreme_eigenvalues",
    "neumann_inverse_hvp",
    "cg_inverse_hvp",
    "implicit_hypergradient",
]

METHODS = ("neumann", "cg", "identity")

#: The Neumann terms may grow this much (‖(I − αH)^K v‖ / ‖v‖) before a warning says the series diverges.
DIVERGENCE_GROWTH = 2.0


class NeumannDivergenceWarning(RuntimeWarning):
    """The Neumann series' terms grew: α ≥ 2/λ_max(H), or H has negative eigenvalues (θ far from an optimum)."""


def _tensors(name: str, values: Sequence[Tensor | None], *, allow_none: bool = False) -> tuple:
    """``values`` as a tuple, each a tensor (or None where allowed), else a TypeError naming the bad entry."""
    if isinstance(values, Tensor):  # a lone tensor would be iterated row by row: almost surely a mistake
        raise TypeError(f"{name} must be a sequence of tensors, got a single tensor of shape {tuple(values.shape)}")
    values = tuple(values)
    for i, x in enumerate(values):
        if not (isinstance(x, Tensor) or (x is None and allow_none)):
            raise TypeError(f"{name}[{i}] must be a tensor{' or None' if allow_none else ''}, got {type(x).__name__}")
    return values


def _like(name: str, values: Sequence[Tensor | None], params: tuple, *, allow_none: bool = False) -> tuple:
    """``values`` checked to be one tensor per parameter with the parameter's shape (ValueError otherwise)."""
    values = _tensors(name, values, allow_none=allow_none)
    if len(values) != len(params):
        raise ValueError(f"{name} has {len(values)} tensors but params has {len(params)}; they must match")
    for i, (x, p) in enumerate(zip(values, params)):
        if x is not None and x.shape != p.shape:
            raise ValueError(f"{name}[{i}] has shape {tuple(x.shape)}, params[{i}] has {tuple(p.shape)}; must match")
    return values


def _zeros_for_none(grads: Sequence[Tensor | None], like: Sequence[Tensor]) -> tuple[Tensor, ...]:
    """``allow_unused`` gives None where a tensor has no influence: its derivative is zero."""
    return tuple(torch.zeros_like(t) if g is None else g for g, t in zip(grads, like))


def _vjp(outputs: Sequence[Tensor | None], inputs: tuple, vectors: Sequence[Tensor]) -> tuple[Tensor, ...]:
    r"""``∂(Σ_i outputs_i·vectors_i)/∂inputs``, zeros where nothing depends on an input; graphs are kept."""
    # An entry of g with no graph is constant in every input (e.g. a parameter L_S does not use): it adds nothing.
    pairs = [(o, u) for o, u in zip(outputs, vectors) if o is not None and o.requires_grad]
    if not pairs:
        return tuple(torch.zeros_like(x) for x in inputs)
    outs, vecs = zip(*pairs)
    grads = torch.autograd.grad(outs, inputs, grad_outputs=vecs, retain_graph=True, allow_unused=True)
    return _zeros_for_none(grads, inputs)


def _dot(a: Sequence[Tensor], b: Sequence[Tensor]) -> Tensor:
    """⟨a, b⟩ summed over all tensors (a 0-d tensor on their device)."""
    return sum((x * y).sum() for x, y in zip(a, b))


def hvp(loss_grad: Sequence[Tensor], params: Sequence[Tensor], v: Sequence[Tensor]) -> tuple[Tensor, ...]:
    r"""Hessian-vector product :math:`Hv = \partial(g^\top v)/\partial\theta`, :math:`g = \partial L_S/\partial\theta`.

    ``loss_grad`` must come from ``torch.autograd.grad(L_S, params, create_graph=True)`` (None entries, from
    ``allow_unused``, count as zero); its graph is retained so it can be reused. Entries of :math:`Hv` for
    parameters :math:`g` does not depend on are zeros. The result carries no graph.
    """
    params = _tensors("params", params)
    loss_grad = _like("loss_grad", loss_grad, params, allow_none=True)
    v = _like("v", v, params)
    return _vjp(loss_grad, params, v)


def neumann_inverse_hvp(
    loss_grad: Sequence[Tensor], params: Sequence[Tensor], v: Sequence[Tensor], *, terms: int, alpha: float
) -> tuple[Tensor, ...]:
    r""":math:`H^{-1}v \approx \alpha\sum_{k=0}^{K}(I-\alpha H)^k v` with :math:`K` = ``terms``.

    Computed as :math:`p \leftarrow v,\ c \leftarrow v`; K times :math:`c \leftarrow c - \alpha Hc,\ p \leftarrow p+c`;
    return :math:`\alpha p`. The error is :math:`H^{-1}(I-\alpha H)^{K+1}v`: it shrinks geometrically iff every
    eigenvalue of :math:`H` lies in :math:`(0, 2/\alpha)`, i.e. :math:`H \succ 0` and :math:`0<\alpha<2/\lambda_{\max}`;
    beyond that the series diverges.
    """
    validate.non_negative_int("terms", terms)
    validate.positive_number("alpha", alpha)
    params = _tensors("params", params)
    loss_grad = _like("loss_grad", loss_grad, params, allow_none=True)
    p = cur = tuple(x.detach() for x in _like("v", v, params))
    for _ in range(terms):
        hc = _vjp(loss_grad, params, cur)
        cur = tuple(c - alpha * h for c, h in zip(cur, hc))
        p = tuple(a + c for a, c in zip(p, cur))
    if terms:
        _check_series(float(_dot(cur, cur)), float(_dot(v, v)), terms, alpha)
    return tuple(alpha * a for a in p)


def _check_series(last_sq: float, first_sq: float, terms: int, alpha: float) -> None:
    """Warn (or raise, when it overflowed) if the K-th term (I − αH)^K v outgrew v: the series is diverging."""
    if not math.isfinite(last_sq):
        raise ValueError(
            f"the Neumann series overflowed after {terms} terms with alpha={alpha}: alpha must be below "
            "2/lambda_max(H) (estimate lambda_max with hypergrad.largest_eigenvalue) and H positive definite"
        )
    if first_sq > 0 and last_sq > DIVERGENCE_GROWTH**2 * first_sq:
        growth = math.sqrt(last_sq / first_sq)
        warnings.warn(
            f"the Neumann series is diverging: its {terms}-th term is {growth:.3g}x the first with alpha={alpha}; "
            "alpha must be below 2/lambda_max(H) (estimate lambda_max with hypergrad.largest_eigenvalue), and H "
            "must be positive definite (the inner weights near a minimum): lower alpha or the number of terms",
            NeumannDivergenceWarning,
            stacklevel=3,
        )


def _random_vector(params: tuple, generator: torch.Generator) -> tuple[Tensor, ...]:
    """N(0, 1) entries shaped like ``params``, drawn on ``generator``'s device (the CPU, by the course's convention)
    and moved to each parameter's device and dtype: a CPU and a GPU run start from the same vector."""
    return tuple(torch.randn(t.shape, generator=generator, device=generator.device).to(t) for t in params)


def _power_iteration(apply: Callable[[tuple], tuple], u: tuple, iterations: int) -> float:
    r"""The Rayleigh quotient :math:`u^\top Mu` after ``iterations`` steps :math:`u \leftarrow Mu/\lVert Mu\rVert`
    (:math:`M` symmetric, given by ``apply``): the eigenvalue of :math:`M` of largest magnitude. 0 when :math:`Mu`
    vanishes (then :math:`u` is in the null space: :math:`M` has eigenvalue 0)."""
    value = 0.0
    for _ in range(iterations):
        norm = torch.sqrt(_dot(u, u))
        if norm == 0:
            return 0.0
        u = tuple(x / norm for x in u)
        mu = apply(u)
        value = float(_dot(u, mu))
        u = mu
    return value


def largest_eigenvalue(
    loss_grad: Sequence[Tensor],
    params: Sequence[Tensor],
    *,
    iterations: int = 20,
    generator: torch.Generator | None = None,
) -> float:
    r"""The eigenvalue of largest magnitude of :math:`H` by power iteration (``iterations`` Hessian-vector products
    from a random start drawn from ``generator``): :math:`u \leftarrow Hu/\lVert Hu\rVert`, return :math:`u^\top Hu`.
    The Neumann series converges for :math:`0 < \alpha < 2/\lambda_{\max}` when :math:`H \succ 0`."""
    validate.positive_int("iterations", iterations)
    params = _tensors("params", params)
    loss_grad = _like("loss_grad", loss_grad, params, allow_none=True)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    return _power_iteration(lambda u: _vjp(loss_grad, params, u), _random_vector(params, gen), iterations)


def extreme_eigenvalues(
    loss_grad: Sequence[Tensor],
    params: Sequence[Tensor],
    *,
    iterations: int = 100,
    generator: torch.Generator,
) -> tuple[float, float]:
    r""":math:`(\lambda_{\min}, \lambda_{\max})` of the Hessian :math:`H` whose gradient ``loss_grad`` is (from
    ``torch.autograd.grad(L, params, create_graph=True)``), from Hessian-vector products only.

    Power iteration on :math:`H` gives the eigenvalue of largest magnitude :math:`\lambda_a` (one end of the
    spectrum). The eigenvalues of :math:`H - \lambda_a I` are :math:`\lambda_i - \lambda_a`; the one of largest
    magnitude, :math:`\mu`, belongs to the eigenvalue farthest from :math:`\lambda_a`, the other end, so power
    iteration on :math:`H - \lambda_a I` gives it as :math:`\lambda_b = \mu + \lambda_a`; return
    :math:`(\min(\lambda_a,\lambda_b), \max(\lambda_a,\lambda_b))`. Each power iteration makes ``iterations``
    Hessian-vector products from its own random start drawn from ``generator`` (a CPU generator; the vectors are
    moved to the parameters' device). The error of each falls like :math:`|\lambda'/\lambda|^{2k}` in the ratio
    of its two largest magnitudes: slow when an end is not separated (e.g. :math:`\lambda_{\min} \approx
    -\lambda_{\max}`, where the first iteration cannot pick a side)."""
    validate.positive_int("iterations", iterations)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator (on the CPU), got {type(generator).__name__}")
    params = _tensors("params", params)
    loss_grad = _like("loss_grad", loss_grad, params, allow_none=True)
    lam_a = _power_iteration(lambda u: _vjp(loss_grad, params, u), _random_vector(params, generator), iterations)

    def shifted(u: tuple) -> tuple:  # (H − λ_a I) u
        return tuple(h - lam_a * x for h, x in zip(_vjp(loss_grad, params, u), u))

    lam_b = _power_iteration(shifted, _random_vector(params, generator), iterations) + lam_a
    return min(lam_a, lam_b), max(lam_a, lam_b)


def cg_inverse_hvp(
    loss_grad: Sequence[Tensor], params: Sequence[Tensor], v: Sequence[Tensor], *, iterations: int, tol: float = 1e-10
) -> tuple[Tensor, ...]:
    r"""Conjugate gradients on :math:`Hx = v` from :math:`x_0 = 0` (:math:`H` symmetric positive definite).

    Stops when :math:`\|r\|^2 <` ``tol`` :math:`\cdot\|v\|^2` or after ``iterations`` steps (exact after
    :math:`\dim\theta` steps in exact arithmetic). A direction with :math:`d^\top H d \le 0` (an indefinite
    :math:`H`, as for a network away from its optimum) stops it with the current iterate, as in truncated CG.
    """
    validate.positive_int("iterations", iterations)
    validate.positive_number("tol", tol, allow_zero=True)
    params = _tensors("params", params)
    loss_grad = _like("loss_grad", loss_grad, params, allow_none=True)
    v = tuple(x.detach() for x in _like("v", v, params))
    x = tuple(torch.zeros_like(t) for t in v)
    vv = _dot(v, v)
    if vv == 0:  # H⁻¹0 = 0; also avoids 0/0 in the first step size
        return x
    r, d, rr = v, v, vv  # residual r = v − Hx, search direction d
    for _ in range(iterations):
        hd = _vjp(loss_grad, params, d)
        dhd = _dot(d, hd)
        if dhd <= 0:  # no descent direction for the quadratic: H is not positive definite along d
            break
        step = rr / dhd
        x = tuple(a + step * b for a, b in zip(x, d))
        r = tuple(a - step * b for a, b in zip(r, hd))
        rr_new = _dot(r, r)
        if rr_new < tol * vv:
            break
        d = tuple(a + (rr_new / rr) * b for a, b in zip(r, d))
        rr = rr_new
    return x


def _scalar_loss(name: str, loss: Tensor) -> None:
    if not isinstance(loss, Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(loss).__name__}")
    if loss.numel() != 1:
        raise ValueError(f"{name} must be a scalar (one element), got shape {tuple(loss.shape)}")
    if not loss.requires_grad:
        raise ValueError(f"{name} does not require grad: it must be computed from params (and hyper) with autograd on")


def implicit_hypergradient(
    inner_loss: Tensor,
    outer_loss: Tensor,
    params: Sequence[Tensor],
    hyper: Sequence[Tensor],
    *,
    method: str = "neumann",
    terms: int = 10,
    alpha: float = 0.01,
    iterations: int = 10,
) -> tuple[Tensor, ...]:
    r"""IFT hypergradient :math:`\partial L_T/\partial\lambda - (\partial^2 L_S/\partial\lambda\partial\theta^\top)p`,
    :math:`p \approx H^{-1}\,\partial L_T/\partial\theta`, one tensor per entry of ``hyper``.

    ``params`` (θ, evaluated at an approximate inner optimum) and ``hyper`` (λ) must require grad; ``inner_loss``
    is :math:`L_S(\theta,\lambda)`, ``outer_loss`` is :math:`L_T(\theta[,\lambda])`. ``method`` picks how :math:`p`
    is found (``METHODS``): ``"neumann"`` (``terms``, ``alpha``), ``"cg"`` (``iterations``) or ``"identity"``
    (:math:`p = \partial L_T/\partial\theta`). Nothing is written to ``.grad``; the result carries no graph.
    """
    validate.choice("method", method, METHODS)
    validate.non_negative_int("terms", terms)  # all checked up front, before any backward pass is paid for
    validate.positive_number("alpha", alpha)
    validate.positive_int("iterations", iterations)
    _scalar_loss("inner_loss", inner_loss)
    _scalar_loss("outer_loss", outer_loss)
    params, hyper = _tensors("params", params), _tensors("hyper", hyper)
    for name, group in (("params", params), ("hyper", hyper)):
        for i, t in enumerate(group):
            if not t.requires_grad:  # autograd's own error would not say which tensor
                raise ValueError(f"{name}[{i}] (shape {tuple(t.shape)}) must require grad")
    g_s = torch.autograd.grad(inner_loss, params, create_graph=True, allow_unused=True)
    # retain: outer_loss is differentiated again w.r.t. λ for the direct term
    v = _zeros_for_none(torch.autograd.grad(outer_loss, params, retain_graph=True, allow_unused=True), params)
    if method == "neumann":
        p = neumann_inverse_hvp(g_s, params, v, terms=terms, alpha=alpha)
    elif method == "cg":
        p = cg_inverse_hvp(g_s, params, v, iterations=iterations)
    else:
        p = v
    indirect = _vjp(g_s, hyper, p)
    direct = _zeros_for_none(torch.autograd.grad(outer_loss, hyper, allow_unused=True), hyper)
    return tuple(d - i for d, i in zip(direct, indirect))
