"""Diagnostics of 01_attention: the checks behind the tensor-aware feedback, and the misconceptions they name.

Read by the grader (autograder/diagnose.py explains the protocol) and run in the grader's process after
the tests, the student's names bound to proxies of what they defined in the kernel. Never released.
Every check runs on tiny fixed examples, the ones that the notebook's visible tests show, with the
other components swapped for references (graded in isolation, as the tests).
"""
import math

import torch

from autograder.probes import Raised, attempt, call, describe, loops, pair, pictures, same, swapped
from autograder.probes import reference_masked_softmax as _reference_masked_softmax

# id: (the mistake, how to fix it, the MyST label of the book section that teaches it)
MISCONCEPTIONS = {
    # --- nadaraya_watson
    "nw.bandwidth-not-squared": ("the squared distances are divided by 2h instead of 2h²", "divide by 2 * bandwidth ** 2: "
                                 "-(q - k) ** 2 / (2 * bandwidth ** 2)", "ch01-nadaraya-watson"),
    "nw.missing-factor-two": ("the squared distances are divided by h² instead of 2h²", "divide by 2 * bandwidth ** 2, "
                              "with the factor 2 of the Gaussian kernel", "ch01-nadaraya-watson"),
    "nw.bandwidth-ignored": ("the bandwidth is never used", "divide the squared distances by 2 * bandwidth ** 2, with "
                             "the bandwidth argument", "ch01-nadaraya-watson"),
    "nw.absolute-distance": ("the kernel uses |q - k| instead of the squared distance (q - k)²", "square the "
                             "differences: -(q - k) ** 2 / (2 * bandwidth ** 2)", "ch01-nadaraya-watson"),
    "nw.sign-flipped": ("the minus sign is missing, so the farthest keys get the most weight", "negate the scores: "
                        "-(q - k) ** 2 / (2 * bandwidth ** 2), the closer the key the higher the score",
                        "ch01-nadaraya-watson"),
    "nw.softmax-over-queries": ("the softmax runs over the queries", "take the softmax over the keys, the last "
                                "dimension (dim=-1) of the (n_q, n_k) scores", "ch01-lookup"),
    "nw.weights-transposed": ("the weights are returned as (n_k, n_q)", "return the weights with one row per query, "
                              "shape (n_q, n_k): scores from queries[:, None] - keys[None, :], softmax over dim=-1, "
                              "predictions weights @ values", "ch01-nadaraya-watson"),
    "nw.averages-keys": ("the weights average the keys instead of the values", "return weights @ values",
                         "ch01-lookup"),
    "nw.nan-far-query": ("normalising exp(...) by hand gives 0 / 0 = NaN for a query far from every key",
                         "compute the weights as torch.softmax(-(q - k) ** 2 / (2 * bandwidth ** 2), dim=-1), which "
                         "subtracts the row maximum first", "ch01-softmax-stability"),
    "nw.python-loop": ("a Python loop over the queries", "compare every query with every key at once by "
                       "broadcasting, queries[:, None] - keys[None, :] of shape (n_q, n_k), and take the softmax "
                       "over the keys (dim=-1)", "ch01-nadaraya-watson"),
    # --- masked_softmax
    "ms.wrong-dim": ("the softmax runs over another dimension than the keys", "take the softmax over the last "
                     "dimension (dim=-1), the keys", "ch01-lookup"),
    "ms.not-normalised": ("the exponentials are never divided by their sum", "divide the exponentials by their sum "
                          "over the last dimension (keepdim=True), replaced by 1 where it is 0", "ch01-lookup"),
    "ms.mask-inverted": ("the mask is read the wrong way round (True taken for \"blocked\")", "True means \"may "
                         "attend\": set the scores to -inf where the mask is False (~mask)", "ch01-mask-conventions"),
    "ms.mask-ignored": ("the mask is never used", "set the scores to -inf where the mask is False "
                        "(scores.masked_fill(~mask, float(\"-inf\"))), then subtract the row maximum (0 where it "
                        "is -inf) before torch.exp and divide by the row sum (1 where it is 0), so that a fully "
                        "masked row gets weights of 0", "ch01-masking"),
    "ms.mask-after-softmax": ("the mask is applied after the softmax, so the kept weights no longer sum to 1", "apply "
                              "the mask before the exponentials: set masked scores to -inf "
                              "(scores.masked_fill(~mask, float(\"-inf\"))), then subtract the row maximum (0 "
                              "where it is -inf) before torch.exp and divide by the row sum (1 where it is 0), so "
                              "that a fully masked row gets weights of 0", "ch01-masking"),
    "ms.fill-zero": ("masked scores become 0 (filled with 0, or multiplied by the mask), and exp(0) = 1 keeps "
                     "weight on masked keys", "set masked scores to -inf (torch.where(mask, scores, -inf)), not 0, "
                     "then subtract the row maximum (0 where it is -inf) before torch.exp and divide by the row "
                     "sum (1 where it is 0), so that a fully masked row gets weights of 0", "ch01-masking"),
    "ms.fill-large-negative": ("masked scores are set to a large negative number, so a fully masked row gets "
                               "uniform weights", "fill masked scores with -inf, not a large negative number, then "
                               "subtract the row maximum (0 where it is -inf) before torch.exp and divide by the "
                               "row sum (1 where it is 0), so that a fully masked row gets weights of 0",
                               "ch01-fully-masked"),
    "ms.nan-fully-masked": ("a row whose keys are all masked gets NaN (softmax of all -inf)", "instead of "
                            "torch.softmax, subtract the row maximum (0 where it is -inf) before torch.exp and "
                            "divide by the row sum (1 where it is 0), so that a fully masked row gets weights of 0",
                            "ch01-fully-masked"),
    "ms.overflow": ("the exponentials of large scores overflow", "set masked scores to -inf before torch.exp, and "
                    "subtract the row maximum (0 where it is -inf, a row with no kept key) from the scores first: "
                    "the softmax does not change", "ch01-softmax-stability"),
    "ms.dtype-not-kept": ("the weights do not keep the dtype of the scores", "do not convert the scores (no .float()); "
                          "make every constant with dtype=scores.dtype", "ch01-sdpa-formula"),
    "ms.in-place": ("the caller's scores are modified in place", "use masked_fill or torch.where, which return a new "
                    "tensor, not masked_fill_ or another in-place operation", "ch01-masking"),
    "ms.no-gradient": ("the scores are cut from the autograd graph, so no gradient flows back", "do not call "
                       ".detach(), .data or torch.no_grad() on the scores", "ch01-lookup"),
    "ms.python-loop": ("a Python loop over the rows", "work on whole tensors: torch.where, torch.softmax(..., "
                       "dim=-1), amax(dim=-1, keepdim=True) and sum(dim=-1, keepdim=True) act on every row at once",
                       "ch01-masking"),
    # --- scaled_dot_product_attention
    "sdpa.unscaled": ("the scores Q Kᵀ are not scaled", "divide the scores by sqrt(d_k) before the softmax",
                      "ch01-sdpa-scaling"),
    "sdpa.scaled-by-d-k": ("the scores are divided by d_k", "divide by sqrt(d_k), not by d_k", "ch01-sdpa-scaling"),
    "sdpa.scaled-by-d-v": ("the scores are scaled by the width of the values", "scale by 1 / sqrt(d_k), the width "
                           "of queries and keys (query.shape[-1])", "ch01-sdpa-scaling"),
    "sdpa.softmax-over-queries": ("the softmax runs over the queries", "take the softmax over the keys, the last "
                                  "dimension, with masked_softmax(scores, mask)", "ch01-sdpa-formula"),
    "sdpa.averages-keys": ("the weights average the keys instead of the values", "return weights @ value",
                           "ch01-sdpa-formula"),
    "sdpa.key-t": ("key.T reverses every dimension of a batched tensor", "transpose only the last two dimensions: "
                   "key.transpose(-2, -1)", "ch01-sdpa-formula"),
    "sdpa.mask-inverted": ("the mask is read the wrong way round", "True means \"may attend\": pass the mask on to "
                           "masked_softmax as it is, without ~", "ch01-mask-conventions"),
    "sdpa.mask-ignored": ("the mask is never used", "pass the mask on to masked_softmax", "ch01-masking"),
    "sdpa.nan-fully-masked": ("a query whose keys are all masked gets NaN", "compute the weights with "
                              "masked_softmax(scores, mask), which gives a fully masked row weights of 0",
                              "ch01-fully-masked"),
    "sdpa.overflow": ("large scores overflow (exp of raw scores)", "compute the weights with "
                      "masked_softmax(scores, mask), which subtracts the row maximum first", "ch01-softmax-stability"),
    "sdpa.no-gradient": ("part of the computation is cut from the autograd graph", "do not call .detach(), .data "
                         "or torch.no_grad() on the way to the output", "ch01-sdpa-formula"),
    "sdpa.python-loop": ("a Python loop over the batch", "remove the loop over the batch: @ (torch.matmul), "
                         "transpose(-2, -1) and masked_softmax work on any leading dimensions", "ch01-sdpa-formula"),
    # --- AdditiveAttention
    "add.bias": ("the layers have biases (the default of nn.Linear)", "create W_q, W_k and w_v with bias=False",
                 "scoring-functions"),
    "add.no-tanh": ("the tanh is missing, so the score is linear", "apply torch.tanh to W_q q + W_k k before w_v",
                    "scoring-functions"),
    "add.relu-not-tanh": ("ReLU is used instead of tanh", "apply torch.tanh, not torch.relu, to W_q q + W_k k",
                          "scoring-functions"),
    "add.sum-not-w-v": ("the hidden features are summed instead of scored by w_v", "reduce the hidden features with "
                        "the learned vector: self.w_v(torch.tanh(hidden))[..., 0]", "scoring-functions"),
    "add.pairs-by-position": ("each query is scored only against the key at its own position", "score every "
                              "(query, key) pair by broadcasting, hidden = self.W_q(query)[..., :, None, :] + "
                              "self.W_k(key)[..., None, :, :] of shape (B, T_q, T_k, hidden_dim), and take its "
                              "scores self.w_v(torch.tanh(hidden))[..., 0] without expand", "scoring-functions"),
    "add.softmax-over-queries": ("the softmax runs over the queries", "take masked_softmax(scores, mask), over the "
                                 "keys, the last dimension", "ch01-lookup"),
    "add.mask-ignored": ("the mask is never used", "pass the mask on: masked_softmax(scores, mask)", "ch01-masking"),
    "add.no-gradient": ("the scores are cut from the autograd graph, so W_q, W_k and w_v never learn", "do not call "
                        ".detach(), .data or torch.no_grad() on the way to the output", "ch01-lookup"),
    "add.python-loop": ("a Python loop over the queries and keys", "form the (B, T_q, T_k, hidden_dim) tensor of "
                        "every pair at once by broadcasting, self.W_q(query).unsqueeze(2) + "
                        "self.W_k(key).unsqueeze(1), and score it with self.w_v(torch.tanh(...))[..., 0]",
                        "scoring-functions"),
    # --- choose_bandwidth
    "bw.training-error": ("the error is measured on the training points, where the smallest bandwidth always wins",
                          "predict at x_valid (keys x_train, values y_train) and compare with y_valid",
                          "ch01-nadaraya-watson"),
    "bw.roles-swapped": ("the validation points are used as keys and the training points as queries", "call "
                         "nadaraya_watson(x_valid, x_train, y_train, h): queries x_valid, keys x_train, values y_train, "
                         "and compare with y_valid", "ch01-nadaraya-watson"),
    "bw.rmse": ("the errors are root mean squared errors", "take the mean of the squared errors, without the square root",
                "ch01-nadaraya-watson"),
    "bw.sum-not-mean": ("the squared errors are summed instead of averaged", "take the mean of the squared errors "
                        "(.mean()), not their sum", "ch01-nadaraya-watson"),
    "bw.absolute-error": ("the mean absolute error is used instead of the mean squared error", "square the differences "
                          "before the mean: ((predictions - y_valid) ** 2).mean()", "ch01-nadaraya-watson"),
    "bw.errors-not-a-tensor": ("the errors are returned as a Python list", "keep each error a tensor (no float()) "
                               "and return torch.stack(errors), of shape (len(bandwidths),)", "ch01-nadaraya-watson"),
    "bw.returns-index": ("the index of the best bandwidth is returned instead of the bandwidth", "return "
                         "float(bandwidths[index]), the bandwidth itself", "ch01-nadaraya-watson"),
    "bw.largest-error": ("the bandwidth with the largest error is chosen", "choose the smallest error: argmin, not "
                         "argmax", "ch01-nadaraya-watson"),
}


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
            result = attempt(function, *_fresh(query, key, value, mask))
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
        facts["misconceptions"] = _sdpa_misconceptions(function, output, weights)[:1]
    return facts


def _sdpa_raised(function, error):
    query, key, value, _ = _sdpa_example()
    try:
        attempt(function, *_fresh(query[0, 0], key[0, 0], value[0, 0]))
        return {"raised": error.name, "misconceptions": ["sdpa.key-t"]}
    except Raised:
        return {"raised": error.name}


def _sdpa_misconceptions(function, output, weights):
    query, key, value, mask = _sdpa_example()
    d_k, d_v = query.shape[-1], value.shape[-1]
    unmasked = pair(_call(function, query, key, value))[1]
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
    one = (query[0, 0], key[0, 0], value[0, 0])    # one matrix each: key.T is right there, wrong with batches
    if not same(weights, expected) and same(pair(_call(function, *one))[1], _attention(*one)[1]):
        return ["sdpa.key-t"]
    found = []
    blocked = mask.clone()
    blocked[1] = False                      # query 1 may attend to nothing
    w = pair(_call(function, query, key, value, blocked))[1]
    if isinstance(w, torch.Tensor) and not _finite(w):
        found.append("sdpa.nan-fully-masked")
    w = pair(_call(function, query * 30, key * 30, value))[1]
    if isinstance(w, torch.Tensor) and not _finite(w):
        found.append("sdpa.overflow")
    q, k, v = (t.clone().requires_grad_() for t in (query, key, value))
    out = pair(_call(function, q, k, v))[0]
    if isinstance(out, torch.Tensor) and not _has_gradient(out, (q, k, v)):
        found.append("sdpa.no-gradient")
    generator = torch.Generator().manual_seed(13)
    if loops(function, lambda n: (torch.randn(n, 3, 4, generator=generator), torch.randn(n, 5, 4, generator=generator),
                                  torch.randn(n, 5, 2, generator=generator))):
        found.append("sdpa.python-loop")
    return found



# ---------------------------------------------------------------------------------------------------
# Shared helpers


def _fresh(*tensors):
    """Copies of the inputs for the student's code (which may modify them in place)."""
    return tuple(t.clone() if isinstance(t, torch.Tensor) else t for t in tensors)


def _call(function, *args):
    """function on copies of args; None if it raised (for the property checks)."""
    return call(function, *_fresh(*args))


def _finite(tensor):
    return isinstance(tensor, torch.Tensor) and bool(torch.isfinite(tensor.detach()).all())


def _has_gradient(output, leaves):
    """Whether a non-zero gradient of a weighted sum of output reaches every leaf (a weighted sum: the plain sum
    of softmax weights is constant)."""
    try:
        ramp = torch.arange(1, output.numel() + 1, dtype=output.dtype).reshape(output.shape)
        grads = torch.autograd.grad((output * ramp).sum(), leaves, allow_unused=True)
    except Exception:
        return False
    return all(g is not None and bool(g.abs().sum() > 0) for g in grads)


# ---------------------------------------------------------------------------------------------------
# nadaraya_watson


def _nw_example():
    """The visible tests' small random input (seed 1): 4 queries, 6 keys, bandwidth 0.8."""
    generator = torch.Generator().manual_seed(1)
    queries, keys, values = (2 * torch.randn(n, generator=generator) for n in (4, 6, 6))
    return queries, keys, values, 0.8


def _nw_weights(queries, keys, h, distance=lambda d: d ** 2, divisor=None, sign=-1.0, dim=-1):
    offsets = queries[:, None] - keys[None, :]
    divisor = 2 * h ** 2 if divisor is None else divisor
    return torch.softmax(sign * distance(offsets) / divisor, dim=dim)


def check_nadaraya_watson(namespace):
    function = namespace.get("nadaraya_watson")
    queries, keys, values, h = _nw_example()
    try:
        result = attempt(function, *_fresh(queries, keys, values), h)
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
    found = _nw_misconceptions(function, predictions, weights, facts)
    facts["misconceptions"] = found[:1]
    return facts


def _nw_misconceptions(function, predictions, weights, facts):
    queries, keys, values, h = _nw_example()
    expected = _nw_weights(queries, keys, h)
    models = [("nw.bandwidth-not-squared", dict(divisor=2 * h)), ("nw.missing-factor-two", dict(divisor=h ** 2)),
              ("nw.bandwidth-ignored", dict(divisor=2.0)), ("nw.absolute-distance", dict(distance=torch.abs)),
              ("nw.sign-flipped", dict(sign=1.0)), ("nw.softmax-over-queries", dict(dim=0))]
    for name, model in models:
        if same(weights, _nw_weights(queries, keys, h, **model)):
            return [name]
    if same(weights, expected.T) or same(weights.T if weights.dim() == 2 else None, expected):
        return ["nw.weights-transposed"]
    if same(weights, expected) and same(predictions, expected @ keys):
        return ["nw.averages-keys"]
    found = []
    far = (torch.tensor([50.0]), torch.tensor([0.0, 1.0]), torch.tensor([1.0, 2.0]), 0.5)   # the visible far query
    far_predictions, far_weights = pair(_call(function, *far))
    if isinstance(far_weights, torch.Tensor) and not (_finite(far_weights) and _finite(far_predictions)):
        found.append("nw.nan-far-query")
        if not found[1:] and not facts.get("nonfinite"):
            far_expected = _nw_weights(far[0], far[1], far[3])
            facts.update(describe(far_weights, far_expected, weights=True), subject="weights",
                         **pictures(far_weights, far_expected))
    generator = torch.Generator().manual_seed(11)
    if loops(function, lambda n: (torch.randn(n, generator=generator), torch.randn(n + 1, generator=generator),
                                  torch.randn(n + 1, generator=generator), 0.7)):
        found.append("nw.python-loop")
    return found


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
        weights = attempt(function, *_fresh(scores, mask))
    except Raised as error:
        return {"raised": error.name}
    expected = _reference_masked_softmax(scores, mask)
    facts = describe(weights, expected, weights=True, allowed=mask)
    facts.update(subject="weights", **pictures(weights, expected))
    if not isinstance(weights, torch.Tensor):
        return facts
    facts["misconceptions"] = _ms_misconceptions(function, weights, facts)[:1]
    return facts


def _ms_misconceptions(function, weights, facts):
    scores, mask = _ms_example()
    unmasked = _call(function, scores)
    if isinstance(unmasked, torch.Tensor) and unmasked.shape == scores.shape and unmasked.is_floating_point() \
            and not same(unmasked, torch.softmax(scores, dim=-1)):
        if same(unmasked, torch.softmax(scores, dim=0)) or same(unmasked, torch.softmax(scores, dim=-2)):
            return ["ms.wrong-dim"]
        totals = unmasked.detach().double().sum(-1, keepdim=True)
        if same(unmasked / totals, torch.softmax(scores, dim=-1)):
            return ["ms.not-normalised"]
    models = [("ms.mask-inverted", _reference_masked_softmax(scores, ~mask)),
              ("ms.mask-ignored", torch.softmax(scores, dim=-1)),
              ("ms.mask-after-softmax", torch.softmax(scores, dim=-1) * mask),
              ("ms.fill-zero", torch.softmax(scores.masked_fill(~mask, 0.0), dim=-1)),
              ("ms.wrong-dim", torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=0).nan_to_num(0.0))]
    for name, model in models:
        if same(weights, model):
            return [name]
    found = []
    rows, blocked = _ms_fully_masked()
    full = _call(function, rows, blocked)
    rows_expected = _reference_masked_softmax(rows, blocked)
    if isinstance(full, torch.Tensor) and full.shape == rows.shape and not same(full, rows_expected):
        if not _finite(full[1]):
            found.append("ms.nan-fully-masked")
        elif same(full[1], torch.full((2,), 0.5)):
            found.append("ms.fill-large-negative")
        if found and same(weights, _reference_masked_softmax(scores, mask)):
            facts.update(describe(full, rows_expected, weights=True, allowed=blocked),
                         **pictures(full, rows_expected))
    huge = torch.tensor([1000.0, 999.0, -1000.0])          # the visible test's huge scores
    big = _call(function, huge)
    if isinstance(big, torch.Tensor) and not _finite(big):
        found.append("ms.overflow")
        if len(found) == 1:
            facts.update(describe(big, torch.softmax(huge, dim=-1)))
    double = _call(function, scores.double(), mask)
    if isinstance(double, torch.Tensor) and double.dtype != torch.float64:
        found.append("ms.dtype-not-kept")
        if len(found) == 1:
            facts.update(dtype=str(double.dtype).replace("torch.", ""), expected_dtype="float64")
    mine = scores.clone()
    try:
        attempt(function, mine, mask.clone())
    except Raised:
        pass
    if not torch.equal(mine, scores):
        found.append("ms.in-place")
        facts["modified_input"] = True
    leaf = scores.clone().requires_grad_()
    out = _call(function, leaf * 1.0, mask)
    if isinstance(out, torch.Tensor) and not _has_gradient(out, (leaf,)):
        found.append("ms.no-gradient")
    generator = torch.Generator().manual_seed(12)
    if loops(function, lambda n: (torch.randn(n, 2, 3, generator=generator),
                                  torch.rand(n, 2, 3, generator=generator) < 0.5)):
        found.append("ms.python-loop")
    return found


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


def _additive_scores(query, key, parameters, activation=torch.tanh, reduce=True):
    W_q, W_k, w_v = (p.detach() for p in parameters)
    hidden = activation((query @ W_q.T)[..., :, None, :] + (key @ W_k.T)[..., None, :, :])   # (B, T_q, T_k, h)
    return hidden @ w_v[0] if reduce else hidden.sum(-1)


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
        output, weights = pair(attempt(module, *_fresh(query, key, value, mask)))
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
    facts["misconceptions"] = _additive_misconceptions(module, parameters, weights)[:1]
    return facts


def _additive_misconceptions(module, parameters, weights):
    query, key, value, mask = _additive_example()
    if any(getattr(getattr(module, name, None), "bias", None) is not None for name in ("W_q", "W_k", "w_v")):
        return ["add.bias"]
    models = [("add.no-tanh", _additive_scores(query, key, parameters, activation=lambda x: x)),
              ("add.relu-not-tanh", _additive_scores(query, key, parameters, activation=torch.relu)),
              ("add.sum-not-w-v", _additive_scores(query, key, parameters, reduce=False)),
              ("add.pairs-by-position", torch.zeros(2, 3, 4))]
    for name, scores in models:
        if same(weights, _reference_masked_softmax(scores, mask)):
            return [name]
    scores = _additive_scores(query, key, parameters)
    if same(weights, torch.softmax(scores, dim=-2) * mask) or \
            same(pair(_call(module, query, key, value))[1], torch.softmax(scores, dim=-2)):
        return ["add.softmax-over-queries"]
    if same(weights, torch.softmax(scores, dim=-1)):
        return ["add.mask-ignored"]
    found = []
    q, k = query.clone().requires_grad_(), key.clone().requires_grad_()
    output, _ = pair(_call(module, q, k, value))
    if isinstance(output, torch.Tensor) and not _has_gradient(output, (q, k, *parameters)):
        found.append("add.no-gradient")
    generator = torch.Generator().manual_seed(14)
    if loops(module, lambda n: (torch.randn(n, n, 3, generator=generator), torch.randn(n, n + 1, 5, generator=generator),
                                torch.randn(n, n + 1, 2, generator=generator))):
        found.append("add.python-loop")
    return found


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
            best, errors = pair(attempt(function, *_fresh(x_train, y_train, x_valid, y_valid), list(bandwidths)))
        except Raised as error:
            return {"raised": error.name, "subject": "errors"}
    expected = _bandwidth_errors(x_valid, x_train, y_train, y_valid, bandwidths)
    facts = describe(errors, expected)
    facts["subject"] = "errors"
    facts["misconceptions"] = _bandwidth_misconceptions(best, errors, expected)[:1]
    return facts


def _bandwidth_misconceptions(best, errors, expected):
    x_train, y_train, x_valid, y_valid, bandwidths = _bandwidth_example()
    if isinstance(errors, (list, tuple)) and errors:
        try:
            as_tensor = torch.tensor([float(e) for e in errors])
        except Exception:
            as_tensor = None
        if same(as_tensor, expected):
            return ["bw.errors-not-a-tensor"]
    models = [("bw.training-error", _bandwidth_errors(x_train, x_train, y_train, y_train, bandwidths)),
              ("bw.roles-swapped", _bandwidth_errors(x_train, x_valid, y_valid, y_train, bandwidths)),
              ("bw.rmse", expected.sqrt()),
              ("bw.sum-not-mean", _bandwidth_errors(x_valid, x_train, y_train, y_valid, bandwidths, reduce=torch.sum)),
              ("bw.absolute-error", _bandwidth_errors(x_valid, x_train, y_train, y_valid, bandwidths, loss=torch.abs))]
    for name, model in models:
        if same(errors, model):
            return [name]
    if not same(errors, expected) or isinstance(best, bool):
        return []
    if isinstance(best, int) or (isinstance(best, torch.Tensor) and not best.is_floating_point()):
        return ["bw.returns-index"]
    try:
        chosen = float(best)
    except Exception:
        return []
    if math.isclose(chosen, bandwidths[int(expected.argmax())]):
        return ["bw.largest-error"]
    if chosen in range(len(bandwidths)) and not math.isclose(chosen, bandwidths[int(expected.argmin())]):
        return ["bw.returns-index"]
    return []


COMPONENTS = {
    "nadaraya_watson": check_nadaraya_watson,
    "masked_softmax": check_masked_softmax,
    "scaled_dot_product_attention": check_sdpa,
    "AdditiveAttention": check_additive,
    "choose_bandwidth": check_choose_bandwidth,
}
