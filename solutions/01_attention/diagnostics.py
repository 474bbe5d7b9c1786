"""Diagnostics of 01_attention: the checks behind the tensor-aware feedback, and the misconceptions they name.

Read by the grader (autograder/diagnose.py explains the protocol) and run in the student's kernel after
the tests, so this file imports only torch, the standard library and autograder.probes. Never released.
Every check runs on tiny fixed examples, the ones that the notebook's visible tests show, with the
other components swapped for references (graded in isolation, as the tests).
"""
import math

import torch

from autograder.probes import Raised, attempt, describe, loops, matrix, same, swapped

# id: (the mistake, how to fix it, the MyST label of the book section that teaches it)
MISCONCEPTIONS = {
    "sdpa.unscaled": ("the scores Q Kᵀ are not scaled", "divide the scores by sqrt(d_k) before the softmax",
                      "sdpa-scaling"),
    "sdpa.scaled-by-d-k": ("the scores are divided by d_k", "divide by sqrt(d_k), not by d_k", "sdpa-scaling"),
    "sdpa.scaled-by-d-v": ("the scores are scaled by the width of the values", "scale by 1 / sqrt(d_k), the width "
                           "of queries and keys (query.shape[-1])", "sdpa-scaling"),
    "sdpa.softmax-over-queries": ("the softmax runs over the queries", "take the softmax over the keys, the last "
                                  "dimension (dim=-1)", "sdpa-formula"),
    "sdpa.averages-keys": ("the weights average the keys instead of the values", "return weights @ value",
                           "sdpa-formula"),
    "sdpa.key-T": ("key.T reverses every dimension of a batched tensor", "transpose only the last two dimensions: "
                   "key.transpose(-2, -1)", "sdpa-formula"),
    "sdpa.mask-inverted": ("the mask is read the wrong way round", "True means \"may attend\": keep the scores "
                           "where the mask is True", "masking"),
    "sdpa.mask-ignored": ("the mask is never used", "pass the mask on to masked_softmax", "masking"),
    "sdpa.nan-fully-masked": ("a query whose keys are all masked gets NaN", "use masked_softmax, which gives a fully "
                              "masked row weights of 0", "masking"),
    "sdpa.overflow": ("large scores overflow (exp of raw scores)", "use masked_softmax (or torch.softmax), which "
                      "subtracts the row maximum first", "softmax-stability"),
    "sdpa.no-gradient": ("part of the computation is cut from the autograd graph", "do not call .detach(), .data "
                         "or torch.no_grad() on the way to the output", "sdpa-formula"),
    "sdpa.python-loop": ("a Python loop over the batch", "use batched operations (torch.matmul works on any "
                         "leading dimensions)", "sdpa-formula"),
}


def _reference_masked_softmax(scores, mask=None):
    if mask is None:
        return torch.softmax(scores, dim=-1)
    allowed = torch.broadcast_to(mask, torch.broadcast_shapes(mask.shape, scores.shape))
    filled = torch.where(allowed.any(-1, keepdim=True), torch.where(allowed, scores, float("-inf")), 0.0)
    return torch.softmax(filled, dim=-1) * allowed


def _sdpa_example():
    """The visible tests' small random inputs (seed 3): two batch dimensions, T_q != T_k, d_k != d_v."""
    generator = torch.Generator().manual_seed(3)
    query = torch.randn(2, 3, 4, 8, generator=generator)
    key = torch.randn(2, 3, 5, 8, generator=generator)
    value = torch.randn(2, 3, 5, 6, generator=generator)
    mask = torch.rand(4, 5, generator=generator) < 0.6
    mask[:, 0] = True
    return query, key, value, mask


def _attention(query, key, value, mask=None, scale=None, dim=-1):
    scores = query @ key.transpose(-2, -1) * (query.shape[-1] ** -0.5 if scale is None else scale)
    weights = _reference_masked_softmax(scores, mask) if dim == -1 else torch.softmax(scores, dim=dim)
    return weights @ value, weights


def check_sdpa(namespace):
    function = namespace.get("scaled_dot_product_attention")
    query, key, value, mask = _sdpa_example()
    with swapped(namespace, {"masked_softmax": _reference_masked_softmax}):
        try:
            output, weights = attempt(function, query, key, value, mask)
        except Raised as error:
            return _sdpa_raised(function, error)
        except (TypeError, ValueError):
            return {"not_a_tensor": True}
        expected_output, expected = _attention(query, key, value, mask)
        facts = describe(weights, expected, weights=True, allowed=mask)
        facts.update(subject="weights", weights=matrix(weights), expected_weights=matrix(expected))
        if same(weights, expected) and isinstance(output, torch.Tensor):
            facts.update(describe(output, expected_output), subject="output")
        facts["misconceptions"] = _sdpa_misconceptions(function, output, weights)[:1]
    return facts


def _sdpa_raised(function, error):
    query, key, value, _ = _sdpa_example()
    try:
        attempt(function, query[0, 0], key[0, 0], value[0, 0])
        return {"raised": error.name, "misconceptions": ["sdpa.key-T"]}
    except Raised:
        return {"raised": error.name}


def _sdpa_misconceptions(function, output, weights):
    query, key, value, mask = _sdpa_example()
    d_k, d_v = query.shape[-1], value.shape[-1]
    try:
        unmasked = attempt(function, query, key, value)[1]
    except Raised:
        unmasked = None
    models = [("sdpa.unscaled", 1.0, -1), ("sdpa.scaled-by-d-k", 1 / d_k, -1), ("sdpa.scaled-by-d-v", d_v ** -0.5, -1),
              ("sdpa.softmax-over-queries", None, -2)]
    for name, scale, dim in models:
        if same(unmasked, _attention(query, key, value, None, scale, dim)[1]):
            return [name]
    expected_output, expected = _attention(query, key, value, mask)
    if same(weights, _attention(query, key, value, ~mask)[1]):
        return ["sdpa.mask-inverted"]
    if same(weights, _attention(query, key, value)[1]):
        return ["sdpa.mask-ignored"]
    if same(weights, expected) and (same(output, expected @ key) or same(output, expected @ key[..., :d_v])):
        return ["sdpa.averages-keys"]
    if not same(weights, expected) and isinstance(output, torch.Tensor) and output.shape != expected_output.shape:
        return ["sdpa.key-T"]
    found = []
    blocked = mask.clone()
    blocked[1] = False                      # query 1 may attend to nothing
    try:
        _, w = attempt(function, query, key, value, blocked)
        if not bool(torch.isfinite(w).all()):
            found.append("sdpa.nan-fully-masked")
    except Raised:
        pass
    try:
        _, w = attempt(function, query * 30, key * 30, value)
        if not bool(torch.isfinite(w).all()):
            found.append("sdpa.overflow")
    except Raised:
        pass
    q, k, v = (t.clone().requires_grad_() for t in (query, key, value))
    try:
        out, _ = attempt(function, q, k, v)
        grads = torch.autograd.grad(out.sum(), (q, k, v), allow_unused=True)
        if any(g is None or not bool(g.abs().sum() > 0) for g in grads):
            found.append("sdpa.no-gradient")
    except (Raised, RuntimeError):
        found.append("sdpa.no-gradient")
    if loops(function, lambda n: (torch.randn(n, 3, 4), torch.randn(n, 5, 4), torch.randn(n, 5, 2))):
        found.append("sdpa.python-loop")
    return found


COMPONENTS = {
    "scaled_dot_product_attention": check_sdpa,
}
