"""grading.forbid: what a graded exercise may not call is refused under every name, and restored afterwards."""

import functools

import pytest
import torch

from course_utils.methods import dm, hypergrad
from course_utils.nets import samplers
from course_utils.ops.grading.forbid import LINEAR_SOLVERS, forbidden


def test_a_package_function_is_refused_under_an_alias_taken_before_the_block_and_restored_after():
    from course_utils.methods.dm import class_mean_embeddings as alias

    x = torch.randn(2, 3, 1, 4, 4)

    class Net(torch.nn.Module):
        def embed(self, t):
            return t.flatten(1)

    expected = alias(Net(), x)
    with forbidden(dm.class_mean_embeddings):
        with pytest.raises(AssertionError, match="class_mean_embeddings"):
            alias(Net(), x)
        with pytest.raises(AssertionError, match="class_mean_embeddings"):
            dm.class_mean_embeddings(Net(), x)
    assert torch.equal(alias(Net(), x), expected)


def test_a_decorated_function_is_refused_through_the_function_its_wrapper_calls():
    net = torch.nn.Linear(3, 2)
    with forbidden(samplers.perturb):
        with pytest.raises(AssertionError, match="perturb"):
            samplers.perturb(net, torch.Generator().manual_seed(0), (0.1, 0.1), 1)
    samplers.perturb(net, torch.Generator().manual_seed(0), (0.1, 0.1), 1)  # restored


def test_the_code_is_restored_when_the_block_raises():
    code = hypergrad.hvp.__code__
    with pytest.raises(KeyError):
        with forbidden(hypergrad.hvp):
            raise KeyError("inside")
    assert hypergrad.hvp.__code__ is code


def test_torch_solvers_are_refused_whatever_their_name():
    from torch.linalg import solve as s

    A = 2 * torch.eye(3, dtype=torch.float64)
    b = torch.ones(3, dtype=torch.float64)
    with forbidden(torch_functions=LINEAR_SOLVERS):
        for call in (lambda: s(A, b), lambda: torch.inverse(A), lambda: A.inverse(), lambda: A.numpy()):
            with pytest.raises(AssertionError, match="may not call"):
                call()
        assert torch.equal(A @ b, 2 * b)  # everything else runs
    assert torch.equal(s(A, b), b / 2)


def test_a_closure_is_refused_with_a_clear_error():
    def outer():
        k = 3

        def inner(x):
            return x + k

        return inner

    with pytest.raises(TypeError, match="closure"):
        with forbidden(outer()):
            pass
    with pytest.raises(TypeError, match="Python functions"):
        with forbidden(functools.partial(max, 1)):
            pass
