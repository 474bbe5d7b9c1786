"""Tensor checks that an assignment's diagnostics (solutions/<id>/diagnostics.py) run on a student's code.

It runs in the grader's process only (autograder/diagnose.py): the functions, classes and modules that
the checks call are proxies of the student's, kept in the kernel (autograder/remote.py), and what they
return is already here. A measurement that only the kernel can make (how many lines of Python a call
runs) is asked of the kernel through the proxy.

A diagnosis is a plain dict of numbers, shapes and names, in the fixed schema of autograder/diagnose.py
(which parses it strictly). The helpers here build its parts:

    describe(theirs, expected, ...)   shape, dtype, NaN/Inf, row sums, masked weight, largest error
    matrix(weights)                   a small 2-D picture of weights, rounded
    pictures(theirs, expected)        the pictures of theirs and the expected, where they differ most
    same(a, b)                        a tensor (or a tuple of them) equals another, within a tolerance
    attempt(function, *args)          the result, or the name of the exception it raised
    call(function, *args), pair(r)    the result or None; the two parts of a returned pair
    swapped(namespace, bindings)      the notebook's names bound to reference implementations for a while
    loops(function, make_args)        whether the lines of Python a call runs grow with the input size
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from autograder.mistakes import EXCEPTIONS, Incomparable, exception_name
from autograder.remote import KernelGone, OutOfTime

if TYPE_CHECKING:
    from autograder.mistakes import Probe

MATRIX_SIDE = 8      # the largest picture of weights: 8 x 8
MAX_DIMS = 8         # the longest shape or index reported
INDEX_FACTS = ("shape", "expected_shape", "nonfinite_at", "max_error_at", "row_sum_at", "masked_at")


DTYPES = ("float16", "bfloat16", "float32", "float64", "complex64", "complex128", "int8", "int16", "int32",
          "int64", "uint8", "bool")


class Raised(Exception):
    """The student's code raised; `name` is its type, among EXCEPTIONS (or "Exception")."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def attempt(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """function(*args, **kwargs), or raise Raised with the name of what it raised."""
    try:
        return function(*args, **kwargs)
    except (KernelGone, OutOfTime):   # the grader's limits, never the student's error
        raise
    except (Exception, SystemExit) as error:
        raise Raised(exception_name(error)) from None


@contextlib.contextmanager
def swapped(namespace: dict[str, Any], bindings: Mapping[str, Any]) -> Iterator[None]:
    """Bind notebook names to the given objects while the block runs (graded in isolation, as the tests)."""
    before = {name: namespace.get(name) for name in bindings}
    namespace.update(bindings)
    try:
        yield
    finally:
        namespace.update(before)


def call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """function(*args, **kwargs), or None when it raised (for the checks that only look at a result)."""
    try:
        return attempt(function, *args, **kwargs)
    except Raised:
        return None


def pair(result: Any) -> tuple[Any, Any]:
    """(first, second) of a pair that the student's code returned, else (None, None)."""
    if isinstance(result, (tuple, list)) and len(result) == 2:
        return result[0], result[1]
    return None, None


def same(a: Any, b: Any, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    """Whether a and b (tensors, or tuples/lists of tensors) have equal shapes and close values."""
    if isinstance(a, (tuple, list)) or isinstance(b, (tuple, list)):
        return (isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)) and len(a) == len(b)
                and all(same(x, y, atol, rtol) for x, y in zip(a, b)))
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.shape != b.shape:
        return False
    if a.dtype == torch.bool or b.dtype == torch.bool:
        return a.dtype == b.dtype and bool(torch.equal(a, b))
    a, b = a.detach().double(), b.detach().double()
    return bool(torch.allclose(a, b, atol=atol, rtol=rtol, equal_nan=True))


def _index(flat_position: int, shape: Sequence[int]) -> list[int]:
    index = []
    for size in reversed(shape):
        index.append(int(flat_position % size))
        flat_position //= size
    return index[::-1]


def _dtype(tensor: torch.Tensor) -> str:
    name = str(tensor.dtype).replace("torch.", "")
    return name if name in DTYPES else "other"


def describe(theirs: Any, expected: torch.Tensor, weights: bool = False,
             allowed: torch.Tensor | None = None) -> dict[str, Any]:
    """The facts about `theirs` against `expected` (a tensor): shape, dtype, NaN/Inf and where, and when
    the shapes agree, the largest error and where; for weights, rows that do not sum to 1 (rows with at
    least one allowed key) and the most weight on a masked position (`allowed`: True may attend)."""
    if not isinstance(theirs, torch.Tensor):
        return {"not_a_tensor": True}
    facts: dict[str, Any] = {"shape": list(theirs.shape), "expected_shape": list(expected.shape),
             "dtype": _dtype(theirs), "expected_dtype": _dtype(expected)}
    if not (theirs.is_floating_point() and theirs.numel()):
        return facts
    values = theirs.detach().double()
    bad = ~torch.isfinite(values)
    facts["nonfinite"] = int(bad.sum())
    if facts["nonfinite"]:
        facts["nonfinite_at"] = _index(int(bad.flatten().nonzero()[0]), values.shape)
    if theirs.shape != expected.shape or facts["nonfinite"]:   # NaN or Inf: their count and place say it
        return facts
    error = (values - expected.detach().double()).abs().nan_to_num(nan=math.inf)
    where = int(error.flatten().argmax())
    facts["max_error"] = float(error.flatten()[where])
    facts["max_error_at"] = _index(where, values.shape)
    if weights:
        keep = torch.ones(values.shape[:-1], dtype=torch.bool) if allowed is None else \
            torch.broadcast_to(allowed, values.shape).any(-1)
        row_error = ((values.sum(-1) - 1).abs() * keep).nan_to_num(nan=math.inf)
        row = int(row_error.flatten().argmax())
        facts["row_sum_error"] = float(row_error.flatten()[row])
        facts["row_sum_at"] = _index(row, row_error.shape)
        if allowed is not None:
            masked = (values.abs() * ~torch.broadcast_to(allowed, values.shape)).nan_to_num(nan=math.inf)
            spot = int(masked.flatten().argmax())
            facts["masked_weight"] = float(masked.flatten()[spot])
            facts["masked_at"] = _index(spot, values.shape)
    return facts


def matrix(weights: Any) -> list[list[float]] | None:
    """The last two dimensions of the first matrix of `weights`, at most MATRIX_SIDE x MATRIX_SIDE, as lists
    of floats (the picture the grader draws); None if it is not a float tensor of at least 2 dimensions."""
    if not isinstance(weights, torch.Tensor) or weights.dim() < 2 or not weights.is_floating_point():
        return None
    while weights.dim() > 2:
        weights = weights[0]
    picture = weights.detach().double()[:MATRIX_SIDE, :MATRIX_SIDE].nan_to_num(nan=0.0, posinf=9.0, neginf=-9.0)
    rows: list[list[float]] = picture.clamp(-9, 9).tolist()
    return rows


def pictures(theirs: Any, expected: Any) -> dict[str, list[list[float]] | None]:
    """{"weights", "expected_weights"}: the pictures of the matrix (over the leading dimensions) where theirs
    differs most from expected, or of the first one when the shapes differ; {} when either cannot be drawn."""
    if not all(isinstance(t, torch.Tensor) and t.dim() >= 2 and t.is_floating_point() for t in (theirs, expected)):
        return {}
    if theirs.shape == expected.shape and theirs.dim() > 2:
        error = (theirs.detach().double() - expected.detach().double()).abs().nan_to_num(nan=math.inf)
        where = _index(int(error.flatten(0, -3).amax(dim=(-2, -1)).argmax()), theirs.shape[:-2])
        theirs, expected = theirs[tuple(where)], expected[tuple(where)]
    found = {"weights": matrix(theirs), "expected_weights": matrix(expected)}
    return found if None not in found.values() else {}


def loops(function: Any, make_args: Callable[[int], Sequence[Any]], small: int = 2, large: int = 6) -> bool:
    """Whether a call runs more lines of the student's Python on a larger input (a Python loop over positions,
    batch or heads): make_args(n) gives the arguments for size n."""
    return python_loop(function, make_args(small), make_args(large))


def python_loop(function: Any, small: Sequence[Any], large: Sequence[Any]) -> bool:
    """Whether function(*large) runs more lines of the student's Python than function(*small), by more than
    two. `function` is a proxy of the student's function or module, which counts the lines in the kernel,
    after a first call (autograder/remote.py); False when it cannot be measured."""
    few: int
    many: int
    try:
        few, many = function.lines(tuple(small), tuple(large))
    except (KernelGone, OutOfTime):
        raise
    except Exception:
        return False
    return many > few + 2


def modules_loop(few: Any, small: Sequence[Any], many: Any, large: Sequence[Any]) -> bool:
    """Whether the forward of `many` on `large` runs more lines of the student's Python (by more than two) than
    the forward of `few` on `small`: two proxies of the student's modules (say, more heads), each measured in the
    kernel after a first call, as the hidden tests do; False when it cannot be measured."""
    lines_few: int
    lines_many: int
    try:
        (lines_few, _), (_, lines_many) = few.lines(tuple(small), tuple(small)), many.lines(tuple(large), tuple(large))
    except (KernelGone, OutOfTime):
        raise
    except Exception:
        return False
    return lines_many > lines_few + 2


def finish(facts: Any) -> Any:
    """The facts as JSON values: floats rounded to 4 significant digits and capped, tuples as lists, None
    left out."""
    if isinstance(facts, dict):   # a fact that is None (say, no picture), or an index of over 8 dimensions, is left out
        return {str(key): finish(value) for key, value in facts.items()
                if value is not None and not (key in INDEX_FACTS and len(value) > MAX_DIMS)}
    if isinstance(facts, (list, tuple)):
        return [finish(value) for value in facts]
    if isinstance(facts, bool) or facts is None or isinstance(facts, (int, str)):
        return facts
    value = float(facts)
    if math.isnan(value):
        return 1e30
    return float(f"{max(-1e30, min(1e30, value)):.4g}")


def reference_masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The course's masked softmax, the reference of the checks: softmax over the last dimension where the
    mask is True; a row with no key allowed gets weights of 0."""
    if mask is None:
        return torch.softmax(scores, dim=-1)
    allowed = torch.broadcast_to(mask, torch.broadcast_shapes(mask.shape, scores.shape))
    filled = torch.where(allowed.any(-1, keepdim=True), torch.where(allowed, scores, float("-inf")), 0.0)
    return torch.softmax(filled, dim=-1) * allowed


def reference_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                        mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention with reference_masked_softmax: (output, weights)."""
    weights = reference_masked_softmax(query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1]), mask)
    return weights @ value, weights


# ---------------------------------------------------------------------------------------------------
# Probes: what the derived detector (autograder/mistakes.py `recognise`) compares between the student's code
# and each mistake's own. A probe takes a namespace of the component's names and returns what to compare.


def fresh(*values: Any) -> tuple[Any, ...]:
    """Copies of the tensors among values, for the student's code (which may change its inputs in place)."""
    return tuple(v.clone() if isinstance(v, torch.Tensor) else v for v in values)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """The global random generator seeded with `seed` while the block runs (modules built here), the caller's
    random state restored after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def calls(name: str, *args: Any, **kwargs: Any) -> Probe:
    """A probe: names[name](*args, **kwargs) on fresh copies of the tensors, and the copies after the call (so a
    change of the caller's tensors in place shows as well as the result)."""
    def probe(names: dict[str, Any]) -> Any:
        inputs = fresh(*args)
        return names[name](*inputs, **kwargs), inputs
    probe.__qualname__ = f"calls({name})"
    return probe


def gradients(name: str, *args: Any, pick: Callable[[Any], Any] = lambda result: result, **kwargs: Any) -> Probe:
    """A probe: which floating-point inputs of names[name](*args, **kwargs) a gradient reaches, from a weighted sum
    of pick(result) (a plain sum of softmax weights is constant): True/False per input, None for the others."""
    def probe(names: dict[str, Any]) -> tuple[bool | None, ...]:
        inputs = tuple(a.clone().requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                       for a in fresh(*args))
        out = pick(names[name](*inputs, **kwargs))
        if not isinstance(out, torch.Tensor) or not out.requires_grad:
            return tuple(False if isinstance(a, torch.Tensor) and a.requires_grad else None for a in inputs)
        ramp = torch.arange(1, out.numel() + 1, dtype=out.dtype).reshape(out.shape)
        leaves = [a for a in inputs if isinstance(a, torch.Tensor) and a.requires_grad]
        grads = iter(torch.autograd.grad((out * ramp).sum(), leaves, allow_unused=True))
        return tuple((lambda g: g is not None and bool(g.abs().sum() > 0))(next(grads))
                     if isinstance(a, torch.Tensor) and a.requires_grad else None for a in inputs)
    probe.__qualname__ = f"gradients({name})"
    return probe


def builds(name: str, init: Sequence[Any], *args: Any, then: Callable[[Any, Any], Any] | None = None,
           **kwargs: Any) -> Probe:
    """A probe: the module names[name](*init), called on fresh copies of args; `then(module, result)`, when given,
    says what to compare instead of the result and the inputs (say, the gradients of its parameters)."""
    def probe(names: dict[str, Any]) -> Any:
        module = names[name](*init)
        inputs = fresh(*args)
        result = module(*inputs, **kwargs)
        return then(module, result) if then is not None else (result, inputs)
    probe.__qualname__ = f"builds({name})"
    return probe


def parameter_gradients(pick: Callable[[Any], Any] = lambda result: result) -> Callable[[Any, Any], dict[str, bool]]:
    """For builds(..., then=...): which parameters of the module a gradient of a weighted sum of pick(result)
    reaches, by name."""
    def then(module: Any, result: Any) -> dict[str, bool]:
        out = pick(result)
        if not isinstance(out, torch.Tensor) or not out.requires_grad:
            return {name: False for name, _ in module.named_parameters()}
        ramp = torch.arange(1, out.numel() + 1, dtype=out.dtype).reshape(out.shape)
        (out * ramp).sum().backward()
        return {name: p.grad is not None and bool(p.grad.abs().sum() > 0) for name, p in module.named_parameters()}
    return then


def refuses(name: str, error: str, *cases: Sequence[Any]) -> Probe:
    """A probe: for each argument tuple of `cases`, whether names[name](*args) raises `error` (by name): raising
    anything else and returning are one same answer, "does not refuse as asked"."""

    def probe(names: dict[str, Any]) -> tuple[bool, ...]:
        found: list[bool] = []
        for args in cases:
            try:
                names[name](*fresh(*args))
                found.append(False)
            except (KernelGone, OutOfTime, Incomparable):
                raise
            except (Exception, SystemExit) as raised:
                found.append(exception_name(raised) == error)
        return tuple(found)
    probe.__qualname__ = f"refuses({name}, {error})"
    return probe
