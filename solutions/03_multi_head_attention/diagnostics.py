"""Diagnostics of 03_multi_head_attention: the checks behind the tensor-aware feedback.

Read by the grader (autograder/diagnose.py explains the protocol) and run in the grader's process after
the tests, the student's names bound to proxies of what they defined in the kernel. Never released.
Every check runs on tiny fixed examples, the ones that the notebook's visible tests show, with the
other components swapped for the solution's (graded in isolation, as the hidden tests); the solution
notebook's code is the reference (autograder/mistakes.py `namespace`). The mistakes are recognised by
their own code on PROBES (autograder/mistakes.py `recognise`); the checks add only the Python loops.
The pasted helpers of assignment 01 (masked_softmax, scaled_dot_product_attention) are graded in 01.
"""
from pathlib import Path

import torch
from torch import nn

from autograder import mistakes
from autograder.probes import (Raised, attempt, builds, calls, describe, fresh, loops, modules_loop, pictures,
                               refuses, same, seeded, swapped)

FOLDER = Path(__file__).resolve().parent


def _solution(*names):
    """{name: the solution notebook's definition}, run in this process (the reference of the checks)."""
    namespace = mistakes.namespace(FOLDER)
    return {name: namespace[name] for name in names}


# ---------------------------------------------------------------------------------------------------
# split_heads


def _split_example():
    """The visible test's small random input (seed 1): (B, T, D) = (2, 5, 12), 3 heads of 4."""
    return torch.randn(2, 5, 12, generator=torch.Generator().manual_seed(1)), 3


def check_split_heads(namespace):
    function = namespace.get("split_heads")
    x, heads = _split_example()
    before = x.clone()
    try:
        out = attempt(function, x, heads)
    except Raised as error:
        return {"raised": error.name}
    expected = _solution("split_heads")["split_heads"](before, heads)
    facts = describe(out, expected)
    if not torch.equal(x, before):
        facts["modified_input"] = True
    generator = torch.Generator().manual_seed(12)
    if same(out, expected) and loops(function, lambda n: (torch.randn(1, 2, 2 * n, generator=generator), n)):
        facts["misconceptions"] = ["split.python-loop"]
    return facts


# ---------------------------------------------------------------------------------------------------
# merge_heads


def _merge_example():
    """The visible test's small random input (seed 2): (B, H, T, d) = (2, 3, 4, 5)."""
    return torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(2))


def check_merge_heads(namespace):
    function = namespace.get("merge_heads")
    x = _merge_example()
    before = x.clone()
    try:
        out = attempt(function, x)
    except Raised as error:
        return {"raised": error.name}
    expected = _solution("merge_heads")["merge_heads"](before)
    facts = describe(out, expected)
    if not torch.equal(x, before):
        facts["modified_input"] = True
    generator = torch.Generator().manual_seed(21)
    if same(out, expected) and loops(function, lambda n: (torch.randn(1, n, 3, 2, generator=generator),)):
        facts["misconceptions"] = ["merge.python-loop"]
    return facts


# ---------------------------------------------------------------------------------------------------
# MultiHeadAttention


def _mha_example():
    """The visible test's cross-attention (seed 3): query (3, 4, 8), memory (3, 6, 8), a (T_q, T_k) mask."""
    generator = torch.Generator().manual_seed(3)
    query, memory = torch.randn(3, 4, 8, generator=generator), torch.randn(3, 6, 8, generator=generator)
    mask = torch.rand(4, 6, generator=generator) < 0.6
    mask[:, 0] = True
    return query, memory, mask


def _adopting(cls, module, *args):
    """cls(*args) (the solution's class) with the parameters of the student's module, or None when they do not
    fit (other names or shapes)."""
    try:
        state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        with seeded(0):
            reference = cls(*args)
        reference.load_state_dict(state)
    except Exception:
        return None
    return reference


def check_mha(namespace):
    cls = namespace.get("MultiHeadAttention")
    query, memory, mask = _mha_example()
    solution = _solution("split_heads", "merge_heads", "masked_softmax", "scaled_dot_product_attention",
                         "MultiHeadAttention")
    with swapped(namespace, {n: f for n, f in solution.items() if n != "MultiHeadAttention"}):
        try:
            with seeded(0):
                module = attempt(cls, 8, 2)
        except Raised as error:
            return {"raised": error.name}
        reference = _adopting(solution["MultiHeadAttention"], module, 8, 2)
        if reference is None:
            return {}
        try:
            result = attempt(module, *fresh(query, memory, memory, mask))
        except Raised as error:
            return {"raised": error.name}
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            return {"not_a_tensor": True}
        output, weights = result
        with torch.no_grad():
            expected_output, expected = reference(query, memory, memory, mask)
        facts = describe(weights, expected, weights=True, allowed=mask)
        facts.update(subject="weights", **pictures(weights, expected))
        if same(weights, expected) and isinstance(output, torch.Tensor):
            facts.update(describe(output, expected_output), subject="output")
            if same(output, expected_output) and _mha_loops(cls):
                facts["misconceptions"] = ["mha.python-loop"]
    return facts


def _mha_loops(cls):
    """Whether the forward of a module with more heads, tokens and batch runs more lines of Python (two modules
    of different widths, each one's forward measured in the kernel after a first call)."""
    generator = torch.Generator().manual_seed(31)
    with seeded(2):
        few = cls(2, 1)                                   # 1 head of width 2
    with seeded(6):
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
        with seeded(0):                                  # the layers' initial values are overwritten
            self.W_q, self.W_k = nn.Linear(D, D, bias=False), nn.Linear(D, D, bias=False)
        with torch.no_grad():
            self.W_q.weight.copy_(query_weight)
            self.W_k.weight.copy_(key_weight)


def _scores_example():
    """The visible test's random module (torch.manual_seed(4), nn.MultiheadAttention(8, 2)): D = 8, H = 2."""
    with seeded(4):
        theirs = nn.MultiheadAttention(8, 2, bias=False, batch_first=True)
    weight = theirs.in_proj_weight.detach()
    return _Holder(weight[:8].clone(), weight[8:16].clone(), 2)


def check_scores(namespace):
    function = namespace.get("head_score_matrices")
    holder = _scores_example()
    with torch.no_grad():
        expected = _solution("head_score_matrices")["head_score_matrices"](holder)
    with swapped(namespace, _solution("split_heads", "merge_heads")):
        try:
            M = attempt(function, holder)
        except Raised as error:
            return {"raised": error.name}
        facts = describe(M, expected)
        facts["subject"] = "matrix"
        if same(M, expected) and _scores_loops(function):
            facts["misconceptions"] = ["scores.python-loop"]
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


# ---------------------------------------------------------------------------------------------------
# What the derived detector compares between the student's code and each mistake's own (autograder/mistakes.py):
# the visible tests' examples, and the inputs that show the other tests' properties (a width that the heads do
# not divide, a merge's input already laid out as (B, T, H, d) in memory).


def _per_head(name, argument, heads):
    """A probe: names[name](argument), a single (D, D) matrix given to every head, (heads, D, D)."""
    def probe(names):
        result = names[name](argument)
        if isinstance(result, torch.Tensor) and result.dim() == 2:
            result = result.expand(heads, *result.shape)
        return result
    probe.__qualname__ = f"per_head({name})"
    return probe


_SPLIT, _MERGE, _MHA = _split_example(), _merge_example(), _mha_example()
_EVEN = torch.randn(2, 6, 6, generator=torch.Generator().manual_seed(11))    # T divisible by H: a split of the tokens runs
_SELF = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(13))
PROBES = {
    "split_heads": [calls("split_heads", *_SPLIT), calls("split_heads", _EVEN, 3),
                    refuses("split_heads", "ValueError", (torch.zeros(1, 2, 6), 4), (torch.zeros(1, 2, 10), 3), (torch.zeros(1, 2, 7), 2))],
    "merge_heads": [calls("merge_heads", _MERGE),
                    calls("merge_heads", _MERGE.transpose(1, 2).contiguous().transpose(1, 2))],   # view works on it
    "MultiHeadAttention": [builds("MultiHeadAttention", (8, 2), _MHA[0], _MHA[1], _MHA[1], _MHA[2]),
                           builds("MultiHeadAttention", (8, 2), _SELF, _SELF, _SELF),
                           refuses("MultiHeadAttention", "ValueError", (10, 3), (12, 5))],
    "head_score_matrices": [_per_head("head_score_matrices", _scores_example(), 2)],
}
