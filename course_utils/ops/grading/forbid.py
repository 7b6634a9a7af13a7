"""What a graded exercise may not call, enforced whatever name the student calls it by.

A hidden test that only checks numbers against the package's implementation is passed by a wrapper around that
implementation. Inside ``forbidden(...)`` the package functions named raise instead, and so do the torch functions
named (a linear solve, an inverse), so that the exercise's tests see the student's own code:

* a Python function is disarmed by swapping its code object, so ``from course_utils.methods.dm import
  distribution_matching_loss as f`` (an alias taken before the block) raises too; a decorated function is disarmed
  through ``__wrapped__``, the function its wrapper calls;
* a torch function (``torch.linalg.solve``, ``Tensor.inverse``, ...) is refused by a ``TorchFunctionMode``, which sees
  the function itself however it was imported (``from torch.linalg import solve``).
"""

from __future__ import annotations

import contextlib
import types
from typing import Callable, Iterable, Iterator

import torch
from torch.overrides import TorchFunctionMode

__all__ = ["forbidden", "LINEAR_SOLVERS"]


#: A linear solve or an explicit inverse, in every spelling torch offers, and the ways out to numpy.
LINEAR_SOLVERS: tuple[Callable, ...] = tuple(
    f
    for f in (
        torch.linalg.solve,
        torch.linalg.solve_ex,
        torch.linalg.inv,
        torch.linalg.inv_ex,
        torch.linalg.pinv,
        torch.linalg.lstsq,
        torch.linalg.cholesky,
        torch.linalg.cholesky_ex,
        torch.linalg.eigh,
        torch.linalg.eig,
        torch.linalg.svd,
        torch.linalg.solve_triangular,
        torch.inverse,
        torch.pinverse,
        torch.cholesky_solve,
        torch.cholesky_inverse,
        torch.linalg.lu_factor,
        torch.Tensor.inverse,
        torch.Tensor.pinverse,
        torch.Tensor.cholesky_inverse,
        torch.Tensor.numpy,
        torch.Tensor.tolist,
        torch.Tensor.__array__,
    )
    if f is not None
)


def _name(f: Callable) -> str:
    return f"{getattr(f, '__module__', None) or ''}.{getattr(f, '__qualname__', repr(f))}".lstrip(".")


class _Refuse(TorchFunctionMode):
    def __init__(self, functions: Iterable[Callable]):
        super().__init__()
        self.functions = set(functions)

    def __torch_function__(self, func, types_, args=(), kwargs=None):
        if func in self.functions:
            raise AssertionError(f"the exercise may not call {_name(func)}: write it from the equation")
        return func(*args, **(kwargs or {}))


def _disarmed(name: str) -> types.CodeType:
    """The code of a function that raises AssertionError naming ``name``: the message is a constant of the code and
    AssertionError a builtin, so the code runs under any function's globals."""
    message = f"the exercise may not call {name}: write it from the equation"
    namespace: dict = {}
    exec(f"def refuse(*args, **kwargs):\n    raise AssertionError({message!r})\n", namespace)
    return namespace["refuse"].__code__


@contextlib.contextmanager
def forbidden(*package_functions: Callable, torch_functions: Iterable[Callable] = ()) -> Iterator[None]:
    """Within the block, each of ``package_functions`` (plain Python functions: every alias raises, its code is
    swapped) and each of ``torch_functions`` (seen by a torch function mode) raises AssertionError naming it.
    Everything is restored on exit, also when the block raises."""
    saved = []
    for f in package_functions:
        f = getattr(f, "__func__", f)  # a bound or class method: its function
        while hasattr(f, "__wrapped__"):  # a decorated function (torch.no_grad, functools.wraps): the one it calls
            f = f.__wrapped__
        if not isinstance(f, types.FunctionType):
            raise TypeError(f"forbidden() disarms Python functions; {f!r} is a {type(f).__name__}")
        if f.__code__.co_freevars:
            raise TypeError(f"{_name(f)} is a closure; forbidden() cannot swap its code")
        saved.append((f, f.__code__))
    name_of = {id(f): _name(f) for f, _ in saved}
    try:
        for f, _ in saved:
            f.__code__ = _disarmed(name_of[id(f)])
        with _Refuse(torch_functions) if torch_functions else contextlib.nullcontext():
            yield
    finally:
        for f, code in saved:
            f.__code__ = code
