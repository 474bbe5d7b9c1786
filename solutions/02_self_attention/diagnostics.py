"""Diagnostics of 02_self_attention: the checks behind the tensor-aware feedback, and the misconceptions they name.

Read by the grader (autograder/diagnose.py explains the protocol) and run in the grader's process after
the tests, the student's names bound to proxies of what they defined in the kernel. Never released.
Every check runs on tiny fixed examples, the ones that the notebook's visible tests show, with the other
components swapped for references (graded in isolation, as the tests). The mistakes themselves are
recognised by their own code on PROBES (autograder/mistakes.py); a check adds only the Python loops.
"""
from pathlib import Path

import torch

from autograder.mistakes import namespace as _solution
from autograder.probes import (Raised, attempt, builds, call, calls, describe, pair, parameter_gradients,
                               pictures, python_loop, refuses, same, swapped)
from autograder.probes import reference_masked_softmax as _reference_masked_softmax, reference_attention as _reference_attention

FOLDER = Path(__file__).resolve().parent


def _reference(name):
    """The solution notebook's `name`, run in this process: the reference of the facts."""
    return _solution(FOLDER)[name]


# ---------------------------------------------------------------------------------------------------
# Helpers


def _guarded(check):
    """A check that never raises on odd student output: what the student's code raised is reported, anything
    else unforeseen gives no facts (what the facts may hold is fitted by probes.describe and probes.finish)."""
    def run(namespace):
        try:
            return check(namespace)
        except Raised as error:
            return {"raised": error.name}
        except Exception:
            return {}
    run.__name__ = check.__name__
    return run


def _mask_facts(theirs, expected):
    """describe() for a boolean mask, with the first wrong entry as its largest error."""
    facts = describe(theirs, expected)
    facts["subject"] = "mask"
    if isinstance(theirs, torch.Tensor) and theirs.dtype == torch.bool and theirs.shape == expected.shape:
        wrong = theirs != expected
        facts["max_error"] = float(wrong.any())
        if wrong.any():
            facts["max_error_at"] = [int(i) for i in wrong.nonzero()[0]]
    return facts


# ---------------------------------------------------------------------------------------------------
# causal_mask


@_guarded
def check_causal_mask(namespace):
    function = namespace.get("causal_mask")
    try:
        mask = attempt(function, 3)
    except Raised as error:
        return {"subject": "mask", "raised": error.name}
    facts = _mask_facts(mask, _reference("causal_mask")(3))
    if facts.get("max_error") == 0.0 and python_loop(function, (3,), (40,)):
        facts["misconceptions"] = ["causal.python-loop"]
    return facts


# ---------------------------------------------------------------------------------------------------
# padding_mask


@_guarded
def check_padding_mask(namespace):
    function = namespace.get("padding_mask")
    reference = _reference("padding_mask")
    lengths = torch.tensor([3, 1])
    try:
        mask = attempt(function, lengths.clone(), 4)
    except Raised as error:
        return {"subject": "mask", "raised": error.name}
    facts = _mask_facts(mask, reference(lengths, 4))
    if facts.get("max_error") == 0.0:                      # right padding right: show the left one
        left = call(function, lengths.clone(), 4, left=True)
        if left is not None:
            facts = _mask_facts(left, reference(lengths, 4, left=True))
    if facts.get("max_error") == 0.0 and (
            python_loop(function, (torch.tensor([1, 2]), 3), (torch.arange(12) % 7, 9))
            or python_loop(function, (torch.tensor([1, 2]), 3, True), (torch.arange(12) % 7, 9, True))):
        facts["misconceptions"] = ["padding.python-loop"]
    return facts


# ---------------------------------------------------------------------------------------------------
# self_attention_mask


@_guarded
def check_self_attention_mask(namespace):
    function = namespace.get("self_attention_mask")
    reference = _reference("self_attention_mask")
    with swapped(namespace, {"causal_mask": _reference("causal_mask"), "padding_mask": _reference("padding_mask")}):
        lengths = torch.tensor([3, 1])
        try:
            mask = attempt(function, lengths.clone(), 4)
        except Raised as error:
            return {"subject": "mask", "raised": error.name}
        facts = _mask_facts(mask, reference(lengths, 4))
        for causal, left in ((False, False), (True, True), (False, True)):    # the visible tests' other cases
            if facts.get("max_error") != 0.0:
                break
            other = call(function, lengths.clone(), 4, causal=causal, left=left)
            if other is not None:
                facts = _mask_facts(other, reference(lengths, 4, causal=causal, left=left))
        if facts.get("max_error") == 0.0 and python_loop(function, (torch.tensor([1, 2]), 3), (torch.arange(12) % 7, 8)):
            facts["misconceptions"] = ["sa-mask.python-loop"]
    return facts


# ---------------------------------------------------------------------------------------------------
# sinusoidal_positional_encoding


@_guarded
def check_encoding(namespace):
    function = namespace.get("sinusoidal_positional_encoding")
    try:
        encoding = attempt(function, 4, 6)
    except Raised as error:
        return {"subject": "encoding", "raised": error.name}
    facts = describe(encoding, _reference("sinusoidal_positional_encoding")(4, 6))
    facts["subject"] = "encoding"
    if facts.get("max_error", 1.0) <= 1e-5 and python_loop(function, (4, 8), (16, 8)):
        facts["misconceptions"] = ["pe.python-loop"]
    return facts


# ---------------------------------------------------------------------------------------------------
# offset_matrix


@_guarded
def check_offset_matrix(namespace):
    function = namespace.get("offset_matrix")
    try:
        offset = attempt(function, 3, 4)
    except Raised as error:
        return {"subject": "matrix", "raised": error.name}
    facts = describe(offset, _reference("offset_matrix")(3, 4))
    facts["subject"] = "matrix"
    return facts


# ---------------------------------------------------------------------------------------------------
# SelfAttention


def _self_attention_example():
    """The visible tests' input (seed 4): x (2, 5, 8), a causal mask (5, 5)."""
    x = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(4))
    return x, torch.ones(5, 5, dtype=torch.bool).tril()


@_guarded
def check_self_attention(namespace):
    cls = namespace.get("SelfAttention")
    references = {"masked_softmax": _reference_masked_softmax, "scaled_dot_product_attention": _reference_attention}
    with swapped(namespace, references), torch.no_grad():
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                layer = attempt(cls, 8, 4, 6)
        except Raised as error:
            return {"raised": error.name}
        x, causal = _self_attention_example()
        try:
            output, weights = pair(attempt(layer, x, causal))
        except Raised as error:
            return {"raised": error.name}
        try:
            q, k, v = layer.W_q(x), layer.W_k(x), layer.W_v(x)
        except Exception:
            return {"subject": "weights"}
        expected_output, expected = _reference_attention(q, k, v, causal)
        facts = describe(weights, expected, weights=True, allowed=causal)
        facts.update(subject="weights", **pictures(weights, expected))
        if same(weights, expected) and isinstance(output, torch.Tensor):
            facts.update(describe(output, expected_output), subject="output")
            if same(output, expected_output) and \
                    python_loop(layer, (x[:1, :3],), (torch.cat((x, x, x))[:, :3],)):
                facts["misconceptions"] = ["sa.python-loop"]
    return facts


# ---------------------------------------------------------------------------------------------------
# equivariance_gap


def _number(value):
    """A gap as a float: a Python number, or a tensor of one element (None otherwise)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype != torch.bool:
        return float(value.detach())
    return None


def _toy_layers():
    """Two small layers that are not equivariant: one whose outputs differ most, one whose weights do."""
    generator = torch.Generator().manual_seed(11)
    bias = torch.randn(4, 4, generator=generator, dtype=torch.float64) * 2
    mix = torch.randn(2, 2, generator=generator, dtype=torch.float64)

    def outputs(z):
        ramp = torch.arange(len(z), dtype=z.dtype)[:, None]
        return (z @ mix + ramp * z.flip(0)), torch.softmax(z @ z.T / 4 + bias * 0.1, -1)

    def weights(z):
        return 0.01 * z.cumsum(0), torch.softmax(3 * z @ z.T + bias, -1)

    return outputs, weights


def _gap(*example):
    """A probe: the gap of equivariance_gap(*example) as a number, and whether it is a Python float (the layers
    are functions here: `calls` would compare them as objects)."""
    def probe(names):
        layer, x, perm, positions = example
        value = names["equivariance_gap"](layer, x.clone(), perm.clone(), None if positions is None else positions.clone())
        return isinstance(value, float), _number(value)
    return probe


@_guarded
def check_equivariance(namespace):
    function = namespace.get("equivariance_gap")
    perm = torch.tensor([1, 0])                                         # the visible tests' examples
    x = torch.tensor([[1.0], [3.0]])
    double = lambda z: (2 * z, torch.eye(2))
    first_only = lambda z: (z, torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    positions = torch.tensor([[0.0], [10.0]])
    examples = [(double, x, perm, None), (first_only, x, perm, None), (double, x, perm, positions)]
    try:
        theirs = [attempt(function, *example) for example in examples]
    except Raised as error:
        return {"raised": error.name}
    values = [_number(value) for value in theirs]
    facts = {}
    if all(value is not None for value in values):
        expected = torch.tensor([_reference("equivariance_gap")(*example) for example in examples], dtype=torch.float64)
        facts = describe(torch.tensor(values, dtype=torch.float64), expected)
        facts.pop("dtype", None), facts.pop("expected_dtype", None)
    facts["subject"] = "output"
    return facts


COMPONENTS = {
    "causal_mask": check_causal_mask,
    "padding_mask": check_padding_mask,
    "self_attention_mask": check_self_attention_mask,
    "sinusoidal_positional_encoding": check_encoding,
    "offset_matrix": check_offset_matrix,
    "SelfAttention": check_self_attention,
    "equivariance_gap": check_equivariance,
}

# What the derived detector compares between the student's code and each mistake's own (autograder/mistakes.py):
# the visible tests' examples, larger ones that tell the mistakes apart (lengths of 0 and max_len, a permutation
# that is not its own inverse, d_k != d_model), and an odd width (whether ValueError is raised: any other exception
# is the mistake too). Encodings stay small: a float32 angle of thousands is off by more than the tolerance.
_LENGTHS = torch.tensor([4, 2, 0, 5])
_X, _CAUSAL = _self_attention_example()
_EQUIVARIANCE = torch.randn(4, 2, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
_POSITIONS = 3 * torch.randn(4, 2, generator=torch.Generator().manual_seed(13), dtype=torch.float64)
_PERM = torch.tensor([1, 2, 3, 0])
PROBES = {
    "causal_mask": [calls("causal_mask", 5)],
    "padding_mask": [calls("padding_mask", _LENGTHS, 6), calls("padding_mask", _LENGTHS, 6, left=True)],
    "self_attention_mask": [calls("self_attention_mask", _LENGTHS, 5, causal=causal, left=left)
                            for causal in (True, False) for left in (False, True)],
    "sinusoidal_positional_encoding": [calls("sinusoidal_positional_encoding", 5, 4),
                                       calls("sinusoidal_positional_encoding", 3, 8),
                                       refuses("sinusoidal_positional_encoding", "ValueError", (5, 3))],
    "offset_matrix": [calls("offset_matrix", 3, 6), calls("offset_matrix", 2, 4),
                      refuses("offset_matrix", "ValueError", (1, 3))],
    "SelfAttention": [builds("SelfAttention", (8, 4, 6), _X, _CAUSAL), builds("SelfAttention", (8, 4, 6), _X),
                      builds("SelfAttention", (8, 4, 6), _X, then=parameter_gradients(lambda result: result[0]))],
    "equivariance_gap": [_gap(layer, _EQUIVARIANCE, _PERM, positions)
                         for layer in _toy_layers() for positions in (None, _POSITIONS)],
}
