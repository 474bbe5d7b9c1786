"""Diagnostics of 03_multi_head_attention: the checks behind the tensor-aware feedback, and the misconceptions
they name.

Read by the grader (autograder/diagnose.py explains the protocol) and run in the grader's process after
the tests, the student's names bound to proxies of what they defined in the kernel. Never released.
Every check runs on tiny fixed examples, the ones that the notebook's visible tests show, with the
other components swapped for references written here (graded in isolation, as the hidden tests).
The pasted helpers of assignment 01 (masked_softmax, scaled_dot_product_attention) are graded in 01.
"""
import contextlib
import math

import torch
from torch import nn

from autograder.probes import Raised, attempt, call, describe, loops, modules_loop, pictures, same, swapped
from autograder.probes import reference_masked_softmax as _reference_masked_softmax, reference_attention as _reference_attention


# ---------------------------------------------------------------------------------------------------
# References, written here (never the notebook's solution cells)


def _reference_split_heads(x, num_heads):
    if x.shape[-1] % num_heads:
        raise ValueError("D is not divisible by num_heads")
    return x.unflatten(-1, (num_heads, x.shape[-1] // num_heads)).transpose(-3, -2)


def _reference_merge_heads(x):
    return x.transpose(-3, -2).flatten(-2)


REFERENCES = {"split_heads": _reference_split_heads, "merge_heads": _reference_merge_heads,
              "masked_softmax": _reference_masked_softmax, "scaled_dot_product_attention": _reference_attention}


@contextlib.contextmanager
def _seeded(seed):
    """The global RNG seeded for a while (modules built here), the student's state restored after."""
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.set_rng_state(state)


def _raises_value_error(function, *args):
    try:
        attempt(function, *args)
    except Raised as error:
        return error.name == "ValueError"
    return False


def _first(models, theirs):
    for name, model in models:
        if same(theirs, model):
            return [name]
    return []


# ---------------------------------------------------------------------------------------------------
# split_heads


def _split_example():
    """The visible test's small random input (seed 1): (B, T, D) = (2, 5, 12), 3 heads of 4."""
    return torch.randn(2, 5, 12, generator=torch.Generator().manual_seed(1)), 3


def _by_slices(x, num_heads):
    d = x.shape[-1] // num_heads
    return torch.stack([x[..., h * d:(h + 1) * d] for h in range(num_heads)], dim=1)


def check_split_heads(namespace):
    function = namespace.get("split_heads")
    x, heads = _split_example()
    before = x.clone()
    try:
        out = attempt(function, x, heads)
    except Raised as error:
        facts = {"raised": error.name}
        if error.name == "NotImplementedError":
            return facts
    else:
        facts = describe(out, _by_slices(x, heads))
        if not torch.equal(x, before):
            facts["modified_input"] = True
    facts["subject"] = "output"
    facts["misconceptions"] = _split_misconceptions(function)[:1]
    return facts


def _split_misconceptions(function):
    # T divisible by H, so that a split along the tokens runs too; every wrong arrangement differs
    x = torch.randn(2, 6, 6, generator=torch.Generator().manual_seed(11))
    B, T, D, H = 2, 6, 6, 3
    d = D // H
    out = call(function, x.clone(), H)
    if not same(out, _by_slices(x, H)):
        return _first([
            ("split.view-without-transpose", x.reshape(B, H, T, d)),
            ("split.heads-interleaved", x.reshape(B, T, d, H).permute(0, 3, 1, 2)),
            ("split.heads-not-moved", x.reshape(B, T, H, d)),
            ("split.wrong-axes-transposed", x.reshape(B, T, H, d).transpose(2, 3)),
            ("split.tokens-split", x.reshape(B, H, T // H, D)),
        ], out)
    # right values: the properties the other tests ask for
    found = []
    if not all(_raises_value_error(function, torch.zeros(1, 2, D), H) for D, H in [(6, 4), (10, 3), (7, 2)]):
        found.append("split.no-value-error")
    generator = torch.Generator().manual_seed(12)
    if loops(function, lambda n: (torch.randn(1, 2, 2 * n, generator=generator), n)):
        found.append("split.python-loop")
    return found


# ---------------------------------------------------------------------------------------------------
# merge_heads


def _merge_example():
    """The visible test's small random input (seed 2): (B, H, T, d) = (2, 3, 4, 5)."""
    return torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(2))


def _side_by_side(x):
    return torch.cat([x[:, h] for h in range(x.shape[1])], dim=-1)


def check_merge_heads(namespace):
    function = namespace.get("merge_heads")
    x = _merge_example()
    before = x.clone()
    try:
        out = attempt(function, x)
    except Raised as error:
        if error.name == "NotImplementedError":
            return {"raised": error.name}
        facts, out = {"raised": error.name}, None
    else:
        facts = describe(out, _side_by_side(x))
        if not torch.equal(x, before):
            facts["modified_input"] = True
    facts["subject"] = "output"
    facts["misconceptions"] = _merge_misconceptions(function, x, out)[:1]
    return facts


def _merge_misconceptions(function, x, out):
    B, H, T, d = x.shape
    expected = _side_by_side(x)
    if out is None:
        # the same values laid out in memory as (B, T, H, d): after the transpose, view works on them
        laid_out = x.transpose(1, 2).contiguous().transpose(1, 2)
        if same(call(function, laid_out), expected):
            return ["merge.view-not-contiguous"]
        return []
    if not same(out, expected):
        mean = x.mean(dim=1)
        return _first([
            ("merge.reshape-without-transpose", x.reshape(B, T, H * d)),
            ("merge.heads-interleaved", x.permute(0, 2, 3, 1).reshape(B, T, H * d)),
            ("merge.heads-reversed", _side_by_side(x.flip(1))),
            ("merge.wrong-axes-transposed", x.transpose(2, 3).reshape(B, T, H * d)),
            ("merge.heads-averaged", mean.repeat(1, 1, H)),
            ("merge.heads-averaged", mean),
            ("merge.heads-averaged", x.sum(dim=1)),
            ("merge.heads-averaged", x.sum(dim=1).repeat(1, 1, H)),
        ], out)
    found = []
    generator = torch.Generator().manual_seed(21)
    if loops(function, lambda n: (torch.randn(1, n, 3, 2, generator=generator),)):
        found.append("merge.python-loop")
    return found


# ---------------------------------------------------------------------------------------------------
# MultiHeadAttention


def _mha_example():
    """The visible test's cross-attention (seed 3): query (3, 4, 8), memory (3, 6, 8), a (T_q, T_k) mask."""
    generator = torch.Generator().manual_seed(3)
    query, memory = torch.randn(3, 4, 8, generator=generator), torch.randn(3, 6, 8, generator=generator)
    mask = torch.rand(4, 6, generator=generator) < 0.6
    mask[:, 0] = True
    return query, memory, mask


def _parameters(module):
    """{name: (weight, bias or None)} of the four projections, in float64; None if they are not there."""
    try:
        found = {}
        for name in ("W_q", "W_k", "W_v", "W_o"):
            layer = getattr(module, name)
            bias = layer.bias.detach().double() if layer.bias is not None else None
            found[name] = (layer.weight.detach().double(), bias)
            if found[name][0].shape != (8, 8):
                return None
        return found
    except Exception:
        return None


def _model(parameters, query, key, value, mask=None, heads=2, scale=None, mix_tokens=False, output_projection=True,
           values_with="W_v", kv_from_query=False):
    """Multi-head attention by hand (float64), or the output that a named mistake would give."""
    def project(x, name):
        weight, bias = parameters[name]
        return x.double() @ weight.T + (0 if bias is None else bias)

    if kv_from_query:
        key = value = query
    q, k, v = project(query, "W_q"), project(key, "W_k"), project(value, values_with)
    (B, T_q, D), T_k = q.shape, k.shape[1]
    d = D // heads
    if mix_tokens:
        q, k, v = q.reshape(B, heads, T_q, d), k.reshape(B, heads, T_k, d), v.reshape(B, heads, T_k, d)
    else:
        q, k, v = (torch.stack(z.split(d, dim=-1), dim=1) for z in (q, k, v))      # (B, H, T, d), by slices
    scores = q @ k.transpose(-2, -1) * (d ** -0.5 if scale is None else scale)
    weights = _reference_masked_softmax(scores, mask)
    per_head = weights @ v                                                          # (B, H, T_q, d)
    merged = per_head.reshape(B, T_q, D) if mix_tokens else torch.cat(per_head.unbind(1), dim=-1)
    output = project(merged, "W_o") if output_projection else merged
    return output.to(query.dtype), weights.to(query.dtype)


def _pair(result):
    if isinstance(result, (tuple, list)) and len(result) == 2:
        return result
    return None


def check_mha(namespace):
    cls = namespace.get("MultiHeadAttention")
    query, memory, mask = _mha_example()
    with swapped(namespace, REFERENCES):
        try:
            with _seeded(0):
                module = attempt(cls, 8, 2)
        except Raised as error:
            return {"raised": error.name}
        parameters = _parameters(module)
        if parameters is None:
            return {}
        try:
            result = _pair(attempt(module, query, memory, memory, mask))
        except Raised as error:
            if error.name == "NotImplementedError":
                return {"raised": error.name}
            facts = {"raised": error.name}
            facts["misconceptions"] = _mha_misconceptions(cls, module, parameters, None, None)[:1]
            return facts
        if result is None:
            return {"not_a_tensor": True}
        output, weights = result
        expected_output, expected = _model(parameters, query, memory, memory, mask)
        facts = describe(weights, expected, weights=True, allowed=mask)
        facts["subject"] = "weights"
        facts.update(pictures(weights, expected))
        if same(weights, expected) and isinstance(output, torch.Tensor):
            facts.update(describe(output, expected_output), subject="output")
        facts["misconceptions"] = _mha_misconceptions(cls, module, parameters, output, weights)[:1]
    return facts


def _mha_misconceptions(cls, module, parameters, output, weights):
    query, memory, mask = _mha_example()
    unmasked = _pair(call(module, query, memory, memory))
    if unmasked is not None:
        expected_weights = _model(parameters, query, memory, memory)[1]
        if not same(unmasked[1], expected_weights):
            found = _first([
                ("mha.scaled-by-d-model", _model(parameters, query, memory, memory, scale=8 ** -0.5)[1]),
                ("mha.heads-mix-tokens", _model(parameters, query, memory, memory, mix_tokens=True)[1]),
                ("mha.weights-averaged", expected_weights.mean(dim=1)),
                ("mha.kv-from-query", _model(parameters, query, memory, memory, kv_from_query=True)[1]),
            ], unmasked[1])
            if found:
                return found
    if weights is None:
        return []
    expected_output, expected = _model(parameters, query, memory, memory, mask)
    if not same(weights, expected):
        return _first([
            ("mha.mask-inverted", _model(parameters, query, memory, memory, ~mask)[1]),
            ("mha.mask-ignored", _model(parameters, query, memory, memory)[1]),
        ], weights)
    if not same(output, expected_output):
        return _first([
            ("mha.no-output-projection", _model(parameters, query, memory, memory, mask, output_projection=False)[0]),
            ("mha.values-projection", _model(parameters, query, memory, memory, mask, values_with="W_k")[0]),
        ], output)
    # right output and weights: the properties the other tests ask for
    found = []
    with _seeded(1):
        if not _raises_value_error(cls, 10, 3):
            found.append("mha.no-value-error")
    if _mha_loops(cls):
        found.append("mha.python-loop")
    return found


def _mha_loops(cls):
    """Whether the forward of a module with more heads, tokens and batch runs more lines of Python (two modules
    of different widths, each one's forward measured in the kernel after a first call)."""
    generator = torch.Generator().manual_seed(31)
    with _seeded(2):
        few = cls(2, 1)                                   # 1 head of width 2
    with _seeded(6):
        many = cls(12, 6)                                 # 6 heads of width 2
    small = (torch.randn(1, 2, 2, generator=generator),) * 3       # (B=1, T=2, D=2)
    large = (torch.randn(6, 7, 12, generator=generator),) * 3      # (B=6, T=7, D=12)
    return modules_loop(few, small, many, large)


# ---------------------------------------------------------------------------------------------------
# head_score_matrices


class _Holder(nn.Module):
    """What head_score_matrices reads: W_q, W_k (nn.Linear(D, D), no bias) and num_heads."""

    def __init__(self, query_weight, key_weight, num_heads):
        super().__init__()
        D = query_weight.shape[0]
        self.num_heads = num_heads
        with _seeded(0):                                  # the layers' initial values are overwritten
            self.W_q, self.W_k = nn.Linear(D, D, bias=False), nn.Linear(D, D, bias=False)
        with torch.no_grad():
            self.W_q.weight.copy_(query_weight)
            self.W_k.weight.copy_(key_weight)


def _scores_example():
    """The visible test's random module (torch.manual_seed(4), nn.MultiheadAttention(8, 2)): D = 8, H = 2."""
    with _seeded(4):
        theirs = nn.MultiheadAttention(8, 2, bias=False, batch_first=True)
    weight = theirs.in_proj_weight.detach()
    return weight[:8].clone(), weight[8:16].clone(), 2


def _per_head(W_q, W_k, columns):
    """stack over h of W_q[:, columns(h)] @ W_k[:, columns(h)].T (W_q, W_k in the formulas' layout)."""
    return torch.stack([W_q[:, c] @ W_k[:, c].T for c in columns])


def check_scores(namespace):
    function = namespace.get("head_score_matrices")
    query_weight, key_weight, heads = _scores_example()
    D = query_weight.shape[0]
    d = D // heads
    blocks = [slice(h * d, (h + 1) * d) for h in range(heads)]
    W_q, W_k = query_weight.double().T, key_weight.double().T                 # Q = X W_q
    expected = _per_head(W_q, W_k, blocks).float()
    with swapped(namespace, {"split_heads": _reference_split_heads, "merge_heads": _reference_merge_heads}):
        try:
            M = attempt(function, _Holder(query_weight, key_weight, heads))
        except Raised as error:
            return {"raised": error.name}
        facts = describe(M, expected)
        facts["subject"] = "matrix"
        found = []
        if not same(M, expected):
            full = (W_q @ W_k.T).float()
            found = _first([
                ("scores.transposed", expected.transpose(-2, -1)),
                ("scores.weight-not-transposed", _per_head(W_q.T, W_k.T, blocks).float()),
                ("scores.heads-interleaved", _per_head(W_q, W_k, [slice(h, D, heads) for h in range(heads)]).float()),
                ("scores.scaled", expected / math.sqrt(d)),
                ("scores.queries-twice", _per_head(W_q, W_q, blocks).float()),
                ("scores.full-width", full.expand(heads, D, D)),
                ("scores.full-width", full),
            ], M)
        if not found and _scores_loops(function):
            found = ["scores.python-loop"]
        facts["misconceptions"] = found[:1]
    return facts


def _scores_loops(function):
    generator = torch.Generator().manual_seed(41)

    def make_args(n):                                     # n heads of width 2
        D = 2 * n
        return (_Holder(torch.randn(D, D, generator=generator), torch.randn(D, D, generator=generator), n),)

    return loops(function, make_args)


COMPONENTS = {
    "split_heads": check_split_heads,
    "merge_heads": check_merge_heads,
    "MultiHeadAttention": check_mha,
    "head_score_matrices": check_scores,
}
