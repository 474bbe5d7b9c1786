"""Diagnostics of 01_attention: the checks behind the tensor-aware feedback, and the misconceptions they name.

Read by the grader (autograder/diagnose.py explains the protocol) and run in the grader's process after
the tests, the student's names bound to proxies of what they defined in the kernel. Never released.
Every check runs on tiny fixed examples, the ones that the notebook's visible tests show, with the
other components swapped for references (graded in isolation, as the tests).
"""
import math

import torch

from autograder.probes import (Raised, attempt, builds, call, calls, describe, fresh, gradients, loops, pair,
                             parameter_gradients, pictures, same, swapped)
from autograder.probes import reference_masked_softmax as _reference_masked_softmax


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
            result = attempt(function, *fresh(query, key, value, mask))
        except Raised as error:
            return _sdpa_raised(function, error)
        output, weights = pair(result)
        if not isinstance(weights, torch.Tensor):
            return {"not_a_tensor": True, "subject": "weights"}
        expected_output, expected = _attention(query, key, value, mask)
        facts = describe(weights, expected, weights=True, allowed=mask)
        facts.update(subject="weights", **pictures(weights, expected))
        if same(weights, expected) and isinstance(output, torch.Tensor):
            facts.update(describe(output, expected_output), subject="output")
        facts["misconceptions"] = _sdpa_loops(function)
    return facts


def _sdpa_raised(function, error):
    query, key, value, _ = _sdpa_example()
    try:
        attempt(function, *fresh(query[0, 0], key[0, 0], value[0, 0]))
        return {"raised": error.name, "misconceptions": ["sdpa.key-t"]}
    except Raised:
        return {"raised": error.name}


def _sdpa_loops(function):
    generator = torch.Generator().manual_seed(13)
    if loops(function, lambda n: (torch.randn(n, 3, 4, generator=generator), torch.randn(n, 5, 4, generator=generator),
                                  torch.randn(n, 5, 2, generator=generator))):
        return ["sdpa.python-loop"]
    return []


# ---------------------------------------------------------------------------------------------------
# Shared helpers


def _call(function, *args):
    """function on copies of args; None if it raised (for the property checks)."""
    return call(function, *fresh(*args))


def _finite(tensor):
    return isinstance(tensor, torch.Tensor) and bool(torch.isfinite(tensor.detach()).all())


# ---------------------------------------------------------------------------------------------------
# nadaraya_watson


def _nw_example():
    """The visible tests' small random input (seed 1): 4 queries, 6 keys, bandwidth 0.8."""
    generator = torch.Generator().manual_seed(1)
    queries, keys, values = (2 * torch.randn(n, generator=generator) for n in (4, 6, 6))
    return queries, keys, values, 0.8


def _nw_weights(queries, keys, h):
    return torch.softmax(-(queries[:, None] - keys[None, :]) ** 2 / (2 * h ** 2), dim=-1)


def check_nadaraya_watson(namespace):
    function = namespace.get("nadaraya_watson")
    queries, keys, values, h = _nw_example()
    try:
        result = attempt(function, *fresh(queries, keys, values), h)
    except Raised as error:
        return {"raised": error.name}
    predictions, weights = pair(result)
    expected = _nw_weights(queries, keys, h)
    if not isinstance(weights, torch.Tensor):
        return {"not_a_tensor": True, "subject": "weights"}
    facts = describe(weights, expected, weights=True)
    facts.update(subject="weights", **pictures(weights, expected))
    if same(weights, expected):
        facts.update(describe(predictions, expected @ values), subject="output")
    facts["misconceptions"] = _nw_far_query(function, weights, expected, facts)
    return facts


def _nw_far_query(function, weights, expected, facts):
    """Describes the weights of the visible far query when they are not finite and the example's are right; the
    ids of the loops found."""
    far_queries, far_keys, far_values, far_h = _nw_far()
    far_predictions, far_weights = pair(_call(function, far_queries, far_keys, far_values, far_h))
    if isinstance(far_weights, torch.Tensor) and not (_finite(far_weights) and _finite(far_predictions)) \
            and same(weights, expected):
        far_expected = _nw_weights(far_queries, far_keys, far_h)
        facts.update(describe(far_weights, far_expected, weights=True), subject="weights",
                     **pictures(far_weights, far_expected))
    generator = torch.Generator().manual_seed(11)
    if loops(function, lambda n: (torch.randn(n, generator=generator), torch.randn(n + 1, generator=generator),
                                  torch.randn(n + 1, generator=generator), 0.7)):
        return ["nw.python-loop"]
    return []


def _nw_far():
    """The visible tests' far query: 50, far from the keys 0 and 1."""
    return torch.tensor([50.0]), torch.tensor([0.0, 1.0]), torch.tensor([1.0, 2.0]), 0.5


# ---------------------------------------------------------------------------------------------------
# masked_softmax


def _ms_example():
    """The visible tests' small random input (seed 2): scores (2, 3, 5), a broadcast mask (3, 5)."""
    generator = torch.Generator().manual_seed(2)
    scores = 3 * torch.randn(2, 3, 5, generator=generator)
    mask = torch.rand(3, 5, generator=generator) < 0.6
    mask[:, 0] = True
    return scores, mask


def _ms_fully_masked():
    """The visible tests' example by hand: the second row has no key to attend to."""
    return torch.tensor([[0.0, math.log(3.0)], [1.0, 1.0]]), torch.tensor([[True, False], [False, False]])


def check_masked_softmax(namespace):
    function = namespace.get("masked_softmax")
    scores, mask = _ms_example()
    try:
        weights = attempt(function, *fresh(scores, mask))
    except Raised as error:
        return {"raised": error.name}
    expected = _reference_masked_softmax(scores, mask)
    facts = describe(weights, expected, weights=True, allowed=mask)
    facts.update(subject="weights", **pictures(weights, expected))
    if not isinstance(weights, torch.Tensor):
        return facts
    facts["misconceptions"] = _ms_properties(function, weights, facts)
    return facts


def _ms_properties(function, weights, facts):
    """Where the example's weights are right, describes the first of the visible tests' other inputs that shows a
    mistake (a fully masked row, huge scores, float64 scores, the caller's scores changed); the ids of the loops."""
    scores, mask = _ms_example()
    if same(weights, _reference_masked_softmax(scores, mask)):
        rows, blocked = _ms_fully_masked()
        full, rows_expected = _call(function, rows, blocked), _reference_masked_softmax(rows, blocked)
        big = _call(function, _HUGE)
        double = _call(function, scores.double(), mask)
        mine = scores.clone()
        call(function, mine, mask.clone())
        if isinstance(full, torch.Tensor) and full.shape == rows.shape and not same(full, rows_expected):
            facts.update(describe(full, rows_expected, weights=True, allowed=blocked), **pictures(full, rows_expected))
        elif isinstance(big, torch.Tensor) and not _finite(big):
            facts.update(describe(big, torch.softmax(_HUGE, dim=-1)))
        elif isinstance(double, torch.Tensor) and double.dtype != torch.float64:
            facts.update(dtype=str(double.dtype).replace("torch.", ""), expected_dtype="float64")
        elif not torch.equal(mine, scores):
            facts["modified_input"] = True
    generator = torch.Generator().manual_seed(12)
    if loops(function, lambda n: (torch.randn(n, 2, 3, generator=generator),
                                  torch.rand(n, 2, 3, generator=generator) < 0.5)):
        return ["ms.python-loop"]
    return []


_HUGE = torch.tensor([1000.0, 999.0, -1000.0])          # the visible test's huge scores


# ---------------------------------------------------------------------------------------------------
# AdditiveAttention


def _additive_example():
    """The visible tests' small random input (seed 4): B=2, T_q=3, T_k=4, a padding mask (B, 1, T_k)."""
    generator = torch.Generator().manual_seed(4)
    query = torch.randn(2, 3, 3, generator=generator)
    key = torch.randn(2, 4, 5, generator=generator)
    value = torch.randn(2, 4, 6, generator=generator)
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])[:, None, :]
    return query, key, value, mask


def _additive_parameters(module):
    """(W_q, W_k, w_v) weight matrices of the student's module, or None."""
    try:
        layers = [getattr(module, name) for name in ("W_q", "W_k", "w_v")]
        weights = [layer.weight for layer in layers]
    except Exception:
        return None
    if not all(isinstance(w, torch.Tensor) for w in weights):
        return None
    return weights


def _additive_scores(query, key, parameters):
    W_q, W_k, w_v = (p.detach() for p in parameters)
    hidden = torch.tanh((query @ W_q.T)[..., :, None, :] + (key @ W_k.T)[..., None, :, :])   # (B, T_q, T_k, h)
    return hidden @ w_v[0]


def check_additive(namespace):
    cls = namespace.get("AdditiveAttention")
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(4)
        with swapped(namespace, {"masked_softmax": _reference_masked_softmax}):
            return _check_additive(cls)
    finally:
        torch.random.set_rng_state(state)


def _check_additive(cls):
    query, key, value, mask = _additive_example()
    try:
        module = attempt(cls, 3, 5, 4)
        output, weights = pair(attempt(module, *fresh(query, key, value, mask)))
    except Raised as error:
        return {"raised": error.name}
    parameters = _additive_parameters(module)
    if parameters is None:
        return {"raised": "AttributeError"}
    try:
        scores = _additive_scores(query, key, parameters)
    except Exception:
        return {"raised": "RuntimeError"}
    expected = _reference_masked_softmax(scores, mask)
    if not isinstance(weights, torch.Tensor):
        return {"not_a_tensor": True, "subject": "weights"}
    facts = describe(weights, expected, weights=True, allowed=mask)
    facts.update(subject="weights", **pictures(weights, expected))
    if same(weights, expected):
        facts.update(describe(output, expected @ value), subject="output")
    facts["misconceptions"] = _additive_loops(module)
    return facts


def _additive_loops(module):
    generator = torch.Generator().manual_seed(14)
    if loops(module, lambda n: (torch.randn(n, n, 3, generator=generator), torch.randn(n, n + 1, 5, generator=generator),
                                torch.randn(n, n + 1, 2, generator=generator))):
        return ["add.python-loop"]
    return []


# ---------------------------------------------------------------------------------------------------
# choose_bandwidth


def _reference_nadaraya_watson(queries, keys, values, bandwidth=1.0):
    weights = torch.softmax(-(queries[:, None] - keys[None, :]) ** 2 / (2 * bandwidth ** 2), dim=-1)
    return weights @ values, weights


def _bandwidth_example():
    """The visible tests' experiment (seed 5): noisy samples of sin(2x) + x/2, 60 training and 200 validation
    points, seven bandwidths (none equals its own index)."""
    generator = torch.Generator().manual_seed(5)
    x_train, x_valid = 5 * torch.rand(60, generator=generator), 5 * torch.rand(200, generator=generator)
    y_train = torch.sin(2 * x_train) + x_train / 2 + 0.3 * torch.randn(60, generator=generator)
    y_valid = torch.sin(2 * x_valid) + x_valid / 2 + 0.3 * torch.randn(200, generator=generator)
    return x_train, y_train, x_valid, y_valid, [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]


def _bandwidth_errors(queries, keys, values, targets, bandwidths, loss=lambda d: d ** 2, reduce=torch.mean):
    return torch.stack([reduce(loss(_reference_nadaraya_watson(queries, keys, values, h)[0] - targets))
                        for h in bandwidths])


def check_choose_bandwidth(namespace):
    function = namespace.get("choose_bandwidth")
    x_train, y_train, x_valid, y_valid, bandwidths = _bandwidth_example()
    with swapped(namespace, {"nadaraya_watson": _reference_nadaraya_watson}):
        try:
            best, errors = pair(attempt(function, *fresh(x_train, y_train, x_valid, y_valid), list(bandwidths)))
        except Raised as error:
            return {"raised": error.name, "subject": "errors"}
    expected = _bandwidth_errors(x_valid, x_train, y_train, y_valid, bandwidths)
    facts = describe(errors, expected)
    facts["subject"] = "errors"
    return facts


COMPONENTS = {
    "nadaraya_watson": check_nadaraya_watson,
    "masked_softmax": check_masked_softmax,
    "scaled_dot_product_attention": check_sdpa,
    "AdditiveAttention": check_additive,
    "choose_bandwidth": check_choose_bandwidth,
}

# What the derived detector compares between the student's code and each mistake's own (autograder/mistakes.py):
# the visible tests' examples, and the inputs that show a mistake of stability, dtype, gradients or the caller's
# tensors.
_SDPA = _sdpa_example()
_BLOCKED = _SDPA[3].clone()
_BLOCKED[1] = False                      # query 1 may attend to nothing
_MS = _ms_example()
PROBES = {
    "nadaraya_watson": [calls("nadaraya_watson", *_nw_example()), calls("nadaraya_watson", *_nw_far())],
    "masked_softmax": [calls("masked_softmax", *_MS), calls("masked_softmax", _MS[0]),
                       calls("masked_softmax", *_ms_fully_masked()), calls("masked_softmax", _HUGE),
                       calls("masked_softmax", _MS[0].double(), _MS[1]), gradients("masked_softmax", _MS[0], _MS[1])],
    "scaled_dot_product_attention": [
        calls("scaled_dot_product_attention", *_SDPA), calls("scaled_dot_product_attention", *_SDPA[:3]),
        calls("scaled_dot_product_attention", _SDPA[0][0, 0], _SDPA[1][0, 0], _SDPA[2][0, 0]),
        calls("scaled_dot_product_attention", *_SDPA[:3], _BLOCKED),
        calls("scaled_dot_product_attention", _SDPA[0] * 30, _SDPA[1] * 30, _SDPA[2]),
        gradients("scaled_dot_product_attention", *_SDPA[:3], pick=lambda result: result[0])],
    "AdditiveAttention": [builds("AdditiveAttention", (3, 5, 4), *_additive_example()),
                          builds("AdditiveAttention", (3, 5, 4), *_additive_example()[:3],
                                 then=parameter_gradients(lambda result: result[0]))],
    "choose_bandwidth": [calls("choose_bandwidth", *_bandwidth_example()[:4], _bandwidth_example()[4])],
}
