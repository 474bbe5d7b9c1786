"""Diagnostics of 05_attention_at_scale: the checks behind the tensor-aware feedback, and the PROBES on which the
derived detector (autograder/mistakes.py) runs each declared mistake's own code against the student's.

Read and run by the grader, in its own process, after the tests (autograder/diagnose.py explains the protocol):
the student's names are proxies of what they defined, kept in the kernel (autograder/remote.py), so a call runs
their code there and returns tensors here. What only the kernel can see is asked of the proxy: the torch
operations a call runs and the peak bytes of the tensors it creates (`proxy.watch`); the text of their
definitions is read from the notebook they handed in (`proxy.source`, `proxy.definitions`). Never released.
Every check runs on tiny fixed examples (those of the notebook's visible tests where they suffice), against
references written here (torch's own operators, formulas by hand). What stays in the checks: the facts, and the
mistakes that running a mistake's code cannot show (Python loops, memory, the operations run, the source's text,
state shared between instances): those are declared detect=False in mistakes.py.
Each part is graded on its own: CausalSelfAttention runs with a reference cache bound to KVCache.
"""
import io
import math
import textwrap
import tokenize
import warnings

import torch
import torch.nn.functional as F

from autograder.remote import KernelGone, OutOfTime
from autograder.probes import (Raised, attempt, calls, describe, exception_name, modules_loop, pair, pictures, python_loop,
                               reference_masked_softmax, same, seeded, swapped)


# ---------------------------------------------------------------------------------------------------
# Shared helpers


def _watched(function, *args, **kwargs):
    """(output, Watch) of function(*args, **kwargs), measured in the kernel where the student's code runs
    (KeptProxy.watch: the torch operations it ran, how many, and the peak bytes of the tensors it created that
    were alive at once), or (None, None) when it raised."""
    try:
        return attempt(getattr(function, "watch", None), *args, **kwargs)
    except Raised:
        return None, None


def _source_names(function):
    """The names in the student's source of function and of the notebook functions it calls (comments and
    strings left out), read from the notebook they handed in (function.source, function.definitions)."""
    definitions = getattr(function, "definitions", {})
    todo, done, names = [getattr(function, "source", "")], set(), set()
    while todo:
        source = textwrap.dedent(todo.pop())
        try:
            tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
        except (tokenize.TokenError, IndentationError, SyntaxError):
            continue
        found = {token.string for token in tokens if token.type == tokenize.NAME}
        names |= found
        for name in sorted(found & set(definitions) - done):
            done.add(name)
            if definitions[name].lstrip().startswith(("def ", "async def ")):
                todo.append(definitions[name])
    return names


def _try(function, *args, **kwargs):
    """(result, None), or (None, the name of what it raised)."""
    try:
        return attempt(function, *args, **kwargs), None
    except Raised as error:
        return None, error.name


def _quiet(check):
    """The check, with the warnings of odd student tensors silenced (e.g. complex tensors cast to real in
    comparisons); what its facts may hold is fitted by probes.describe and probes.finish."""
    def quiet(namespace):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return check(namespace)
    quiet.__name__ = check.__name__
    return quiet


def _linear(layer, x):
    return x @ layer.weight.detach().to(x.dtype).T + layer.bias.detach().to(x.dtype)


def _unchanged(before, after):
    return all(isinstance(a, torch.Tensor) and torch.equal(a, b) for a, b in zip(before, after))


# ---------------------------------------------------------------------------------------------------
# online_softmax_attention


def _online_example():
    """The visible tests' inputs (seed 5): query (2, 3, 4), key (2, 6, 4), value (2, 6, 5), and x (1, 7, 4)."""
    generator = torch.Generator().manual_seed(5)
    query = torch.randn(2, 3, 4, dtype=torch.float64, generator=generator)
    key = torch.randn(2, 6, 4, dtype=torch.float64, generator=generator)
    value = torch.randn(2, 6, 5, dtype=torch.float64, generator=generator)
    x = torch.randn(1, 7, 4, dtype=torch.float64, generator=generator)
    return query, key, value, x


def _fused(watch):
    """Whether a Watch saw torch's fused attention run."""
    return any("scaled_dot_product" in op or "flash" in op or "_safe_softmax" in op for op in watch.ops)


@_quiet
def check_online_softmax(namespace):
    function = namespace.get("online_softmax_attention")
    query, key, value, x = _online_example()
    block = 3                                               # two blocks of the six keys
    names = _source_names(function)
    if any("scaled_dot_product" in n or "flash" in n.lower() for n in names):
        return {"misconceptions": ["online.calls-fused-attention"]}
    if names & {"numpy", "from_numpy", "np"}:
        return {"misconceptions": ["online.leaves-torch"]}
    inputs = (query.clone(), key.clone(), value.clone())
    output, raised = _try(function, *inputs, block_size=block)
    if raised:
        return {"raised": raised}
    expected = F.scaled_dot_product_attention(query, key, value)
    facts = describe(output, expected)
    facts.update(subject="output", modified_input=not _unchanged(inputs, (query, key, value)))
    _, watch = _watched(function, query, key, value, block_size=block)
    if watch is not None and _fused(watch):
        facts["misconceptions"] = ["online.calls-fused-attention"]
        return facts
    if watch is not None and watch.peak == 0 and same(output, expected):
        facts["misconceptions"] = ["online.leaves-torch"]   # the right values, yet torch made no tensor: made elsewhere
        return facts
    if not isinstance(output, torch.Tensor):
        return facts
    causal, _ = _try(function, x, x, x, block_size=block, causal=True)
    causal_expected = F.scaled_dot_product_attention(x, x, x, is_causal=True)
    if same(output, expected) and not same(causal, causal_expected):
        facts = describe(causal, causal_expected)
        facts["subject"] = "output"
    if same(output, expected) and same(causal, causal_expected):
        facts["misconceptions"] = _online_costs(function)[:1]
    return facts


def _online_costs(function):
    """What only the kernel can measure once the values are right: the lines of Python (no loop but over blocks of
    keys), the torch operations a call runs, and the peak bytes of the tensors it creates."""
    query, key, value, _ = _online_example()
    if python_loop(function, (query[:1, :1], key[:1], value[:1], 3), (query, key, value, 3)):
        return ["online.loops-over-queries"]
    (_, one), (_, whole) = _watched(function, query, key, value, block_size=1), _watched(function, query, key, value, block_size=6)
    if one is not None and whole is not None and one.count == whole.count:
        long_key, long_value = key.repeat(1, 25, 1), value.repeat(1, 25, 1)         # 150 keys: over 128
        _, longer = _watched(function, query, long_key, long_value, block_size=1)
        if longer is not None and longer.count > one.count:
            return ["online.block-size-ignored"]
        return ["online.full-score-matrix"]
    generator = torch.Generator().manual_seed(55)
    q = torch.randn(1, 16, 4, generator=generator)
    k, v = (torch.randn(1, 256, 4, generator=generator) for _ in range(2))
    _, watch = _watched(function, q, k, v, block_size=16)
    if watch is not None and watch.peak >= 16 * 256 * 4:                           # one (T_q, T_k) float32 matrix
        _, longer = _watched(function, q, k.repeat(1, 2, 1), v.repeat(1, 2, 1), block_size=16)
        if longer is not None and longer.count == watch.count:                      # as many steps for twice the keys
            return ["online.query-chunks"]
        return ["online.keeps-every-block"]
    _, with_lse = _watched(function, q, k, v, block_size=16, return_lse=True)
    if with_lse is not None and with_lse.peak >= 16 * 256 * 4 > (watch.peak if watch is not None else 0):
        return ["online.lse-from-full-row"]
    return []


# ---------------------------------------------------------------------------------------------------
# KVCache


def _kv_chunks(chunks, B=3, H=2, d=4, d_v=3, seed=51):
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(B, H, t, d, generator=generator), torch.randn(B, H, t, d_v, generator=generator)) for t in chunks]


@_quiet
def check_kvcache(namespace):
    cls = namespace.get("KVCache")
    fresh, raised = _try(cls)
    if raised:
        return {"raised": raised}
    _, raised = _try(len, fresh)
    if raised:
        return {"raised": raised}
    if _shares_storage(cls):
        return {"misconceptions": ["kvcache.shared-storage"]}
    # The visible tests' shapes: 4 positions, then 1 more.
    chunks = _kv_chunks([4, 1], B=2, H=3, d=5, d_v=6, seed=52)
    (k1, v1), (k2, v2) = chunks
    copies = [(k.clone(), v.clone()) for k, v in chunks]
    facts = {"subject": "keys"}
    expected_keys, expected_values = torch.cat([k1, k2], dim=2), torch.cat([v1, v2], dim=2)
    try:
        cache = attempt(cls)
        returned = [attempt(lambda: cache.update(k, v)) for k, v in chunks]
        keys, values = pair(returned[-1])
        facts.update(describe(keys, expected_keys))
        if same(keys, expected_keys) and isinstance(values, torch.Tensor):
            facts.update(describe(values, expected_values), subject="values")
    except Raised as error:
        facts["raised"] = error.name
    facts["modified_input"] = not all(torch.equal(a, b) and torch.equal(c, e) for (a, c), (b, e) in zip(chunks, copies))
    return facts


def _shares_storage(cls):
    """Whether filling one cache changes the length of another (state that outlives an instance: what it returns
    depends on every call before, so no replay of the mistake's code can match it)."""
    one, _ = _try(cls)
    before, raised = _try(len, one)
    other, _ = _try(cls)
    _try(getattr(other, "update", None), torch.zeros(1, 1, 2, 1), torch.zeros(1, 1, 2, 1))
    after, raised_after = _try(len, one)
    return not (raised or raised_after) and before != after


def _fills(chunks):
    """A probe: the length of a new cache, then what each update of a chunk returned and the length after it, up
    to the name of what an update raised (a cache that shares its storage is not empty: it shows no other mistake)."""
    def probe(names):
        cache = names["KVCache"]()
        seen = [len(cache)]
        try:
            for k, v in chunks:
                seen.append((cache.update(k.clone(), v.clone()), len(cache)))
        except (KernelGone, OutOfTime):
            raise
        except Exception as error:
            seen.append(exception_name(error))
        return seen
    return probe


# ---------------------------------------------------------------------------------------------------
# CausalSelfAttention


class _ReferenceCache:
    """A cache known to be right (the tests use one of their own too)."""

    def __init__(self):
        self.k = self.v = None

    def update(self, k, v):
        self.k = k if self.k is None else torch.cat([self.k, k], dim=-2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=-2)
        return self.k, self.v

    def __len__(self):
        return 0 if self.k is None else self.k.shape[-2]


_CSA_X = torch.randn(2, 7, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(6))   # the visible shapes


def _csa_expected(module, x, H):
    """Causal self-attention with module's layers, by torch's SDPA."""
    B, T, D = x.shape
    q, k, v = (_linear(layer, x).view(B, T, H, D // H).transpose(1, 2) for layer in (module.W_q, module.W_k, module.W_v))
    return _linear(module.W_o, F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, D))


_CSA_SCENARIOS = (None, [3, 1, 1, 1, 1], [2, 3, 2])      # no cache; the visible prefill then tokens; chunks


def _csa_run(module, x, chunks):
    """The output of module on x cut into chunks (None: no cache), each chunk a call with a reference cache."""
    with torch.no_grad():
        if chunks is None:
            return module(x)
        cache, outputs, n = _ReferenceCache(), [], 0
        for t in chunks:
            outputs.append(module(x[:, n:n + t], cache))
            n += t
    try:
        return torch.cat(outputs, dim=1)
    except (TypeError, RuntimeError, ValueError):
        return outputs[0]                                   # not tensors that line up: compared, never equal


@_quiet
def check_causal_attention(namespace):
    cls = namespace.get("CausalSelfAttention")
    with swapped(namespace, {"KVCache": _ReferenceCache}):
        try:
            with seeded(6):
                module = attempt(cls, 8, 2).double()
        except Raised as error:
            return {"raised": error.name}
        except Exception:
            return {"raised": "Exception"}
        x = _CSA_X.clone()
        copy = x.clone()
        try:
            with torch.no_grad():
                expected = _csa_expected(module, x, 2)
        except (AttributeError, TypeError, RuntimeError, ValueError):
            return {"raised": "AttributeError"}             # its layers are not nn.Linear(D, D) any more
        facts, right = {"subject": "output"}, True
        for chunks in _CSA_SCENARIOS:
            output, raised = _try(_csa_run, module, x, chunks)
            if raised:
                facts["raised"] = raised
                right = False
                break
            if not same(output, expected):
                right = False
                if not facts.get("shape"):
                    facts.update(describe(output, expected))
        facts["modified_input"] = not torch.equal(x, copy)
        if right:
            facts["misconceptions"] = _csa_loops(cls)[:1]
    return facts


def _csa_loops(cls):
    """["csa.loops-over-heads"] when the forward runs more lines for more heads (the same input), else
    ["csa.loops-over-positions"] when it runs more for more positions, new or cached (the same module), else []."""
    generator = torch.Generator().manual_seed(58)
    try:
        with seeded(11):
            one_head, heads = attempt(cls, 8, 1), attempt(cls, 8, 8)
    except (KernelGone, OutOfTime):
        raise
    except Exception:
        return []
    x = (torch.randn(2, 3, 8, generator=generator),)
    if modules_loop(one_head, x, heads, x):
        return ["csa.loops-over-heads"]
    if python_loop(heads, (torch.randn(2, 2, 8, generator=generator),), (torch.randn(2, 8, 8, generator=generator),)):
        return ["csa.loops-over-positions"]
    few, many = _ReferenceCache(), _ReferenceCache()
    few.update(torch.randn(2, 8, 1, 1, generator=generator), torch.randn(2, 8, 1, 1, generator=generator))
    many.update(torch.randn(2, 8, 9, 1, generator=generator), torch.randn(2, 8, 9, 1, generator=generator))
    if modules_loop(heads, (torch.randn(2, 1, 8, generator=generator), few),
                   heads, (torch.randn(2, 4, 8, generator=generator), many)):
        return ["csa.loops-over-positions"]
    return []


def _csa_probe(chunks):
    """A probe: CausalSelfAttention(8, 2) in float64 on the visible input cut into chunks, with a reference cache."""
    def probe(names):
        return _csa_run(names["CausalSelfAttention"](8, 2).double(), _CSA_X.clone(), chunks)
    return probe


# ---------------------------------------------------------------------------------------------------
# apply_rotary


def _rope(x, positions, base):
    """RoPE from its definition: the pair (2i, 2i+1) at position p rotated by p * base ** (-2i / d)."""
    d = x.shape[-1]
    angles = positions.double()[:, None] * base ** (-2.0 * torch.arange(d // 2, dtype=torch.float64) / d)
    x = x.double()
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((a * angles.cos() - b * angles.sin(), a * angles.sin() + b * angles.cos()), dim=-1).flatten(-2)


_ROPE_VISIBLE = (torch.tensor([[1.0, 0.0, 1.0, 0.0]] * 3, dtype=torch.float64), torch.tensor([0, 1, 2]))
_ROPE_X = (torch.randn(2, 3, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(53)), torch.tensor([5, 0, 3]))


@_quiet
def check_rotary(namespace):
    function = namespace.get("apply_rotary")
    visible, visible_positions = _ROPE_VISIBLE
    output, raised = _try(function, visible.clone(), visible_positions, base=100.0)
    if raised:
        return {"raised": raised}
    expected = _rope(visible, visible_positions, 100.0)
    facts = describe(output, expected)
    facts["subject"] = "encoding"
    x, positions = _ROPE_X[0].clone(), _ROPE_X[1]
    theirs, raised = _try(function, x, positions, base=100.0)
    facts["modified_input"] = not torch.equal(x, _ROPE_X[0])
    if raised:
        facts["raised"] = raised
        return facts
    expected_x = _rope(x, positions, 100.0)
    if same(output, expected) and not same(theirs, expected_x):
        facts.update(describe(theirs, expected_x))
    if same(output, expected) and same(theirs, expected_x):
        facts["misconceptions"] = _rope_loops(function)
    return facts


def _rope_loops(function):
    """["rope.loops-over-positions"] when a call runs more lines of Python for more positions (the same d), else
    ["rope.loops-over-pairs"] when it runs more for more pairs (the same positions), else []."""
    generator = torch.Generator().manual_seed(59)
    rows = lambda T, d: torch.randn(2, T, d, dtype=torch.float64, generator=generator)
    if python_loop(function, (rows(1, 4), torch.tensor([2])), (rows(8, 4), torch.randperm(20, generator=generator)[:8])):
        return ["rope.loops-over-positions"]
    positions = torch.tensor([4, 1, 7])
    if python_loop(function, (rows(3, 2), positions), (rows(3, 16), positions)):
        return ["rope.loops-over-pairs"]
    return []


# ---------------------------------------------------------------------------------------------------
# GroupedQueryAttention


def _gqa_reference(module, x, H, H_kv, allowed=None):
    """(output, weights) of grouped-query attention with module's layers (query head h reads kv head h // g);
    torch's SDPA with enable_gqa=True gives the output."""
    B, T, D = x.shape
    d = D // H
    q, k, v = (_linear(layer, x).view(B, T, h, d).transpose(1, 2)
               for layer, h in ((module.W_q, H), (module.W_k, H_kv), (module.W_v, H_kv)))
    weights = reference_masked_softmax(q @ k.repeat_interleave(H // H_kv, dim=1).mT * d ** -0.5, allowed)
    heads = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, enable_gqa=True)
    return _linear(module.W_o, heads.transpose(1, 2).reshape(B, T, D)), weights


_GQA_X = torch.randn(3, 5, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(54))


def _gqa_mask(B, T):
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    real = torch.arange(T)[None, :] < torch.tensor([5, 3, 2])[:, None]                   # (B, T): padding
    mask = (causal & real[:, None, None, :]).clone()                                    # (B, 1, T, T)
    mask[1, 0, 1] = False                                                               # a query that sees nothing
    return mask


_GQA_MASK = _gqa_mask(3, 5)


@_quiet
def check_gqa(namespace):
    cls = namespace.get("GroupedQueryAttention")
    H, H_kv, x, mask = 4, 2, _GQA_X.clone(), _GQA_MASK.clone()
    try:
        with seeded(9):
            module = attempt(cls, 16, 4, 2).double()
    except Raised as error:
        return {"raised": error.name}
    except Exception:
        return {"raised": "Exception"}
    with torch.no_grad():
        returned, raised = _try(module, x)
        if raised:
            return {"raised": raised}
        output, weights = pair(returned)
        if not isinstance(weights, torch.Tensor):
            return {"not_a_tensor": True, "subject": "weights"}
        try:
            expected_output, expected = _gqa_reference(module, x, H, H_kv)
            masked_expected_output, masked_expected = _gqa_reference(module, x, H, H_kv, mask)
        except (AttributeError, TypeError, RuntimeError, ValueError, IndexError):
            return {"subject": "weights"}                    # its layers are not those that the exercise creates
        facts = describe(weights, expected, weights=True)
        facts.update(subject="weights", **pictures(weights, expected))
        masked, masked_raised = _try(module, x, mask)
        masked_output, masked_weights = pair(masked)
        if masked_raised:
            facts["raised"] = masked_raised
        elif same(weights, expected):
            if not same(output, expected_output):
                facts.update(describe(output, expected_output), subject="output")
            elif not same(masked_weights, masked_expected):
                facts.update(describe(masked_weights, masked_expected, weights=True, allowed=mask))
            else:
                facts.update(describe(masked_output, masked_expected_output), subject="output")
                facts["misconceptions"] = ["gqa.python-loop"] if _gqa_loops(cls) else []
    return facts


def _gqa_loops(cls):
    """Whether the forward of a module with more heads, tokens and batch runs more lines of Python (two modules,
    each one's forward measured in the kernel after a first call), as the hidden test measures it."""
    generator = torch.Generator().manual_seed(56)
    try:
        with seeded(10):
            few, many = attempt(cls, 4, 1, 1), attempt(cls, 32, 8, 2)
    except Raised:
        return False
    small, large = (torch.randn(1, 2, 4, generator=generator),), (torch.randn(5, 9, 32, generator=generator),)
    return modules_loop(few, small, many, large)


def _gqa_probe(*args):
    """A probe: GroupedQueryAttention(16, 4, 2) in float64 on args."""
    def probe(names):
        with torch.no_grad():
            return names["GroupedQueryAttention"](16, 4, 2).double()(*(a.clone() for a in args))
    return probe


def _constructs(name, *init):
    """A probe: whether names[name](*init) builds (what it raises, when it does not)."""
    def probe(names):
        return names[name](*init) is not None
    return probe


# ---------------------------------------------------------------------------------------------------
# merge_attention


def _with_lse(q, k, v):
    scores = q @ k.mT / math.sqrt(q.shape[-1])
    return torch.softmax(scores, dim=-1) @ v, torch.logsumexp(scores, dim=-1)


def _merge_example():
    """The visible tests' shapes: q (2, 3, 4), keys 0-2 and 3-6 of 7, values of width 5, in float64."""
    generator = torch.Generator().manual_seed(57)
    q = torch.randn(2, 3, 4, dtype=torch.float64, generator=generator)
    k = torch.randn(2, 7, 4, dtype=torch.float64, generator=generator)
    v = torch.randn(2, 7, 5, dtype=torch.float64, generator=generator)
    return _with_lse(q, k[:, :3], v[:, :3]), _with_lse(q, k[:, 3:], v[:, 3:]), _with_lse(q, k, v)


@_quiet
def check_merge(namespace):
    function = namespace.get("merge_attention")
    (out_a, lse_a), (out_b, lse_b), (full_out, full_lse) = _merge_example()
    returned, raised = _try(function, out_a, lse_a, out_b, lse_b)
    if raised:
        return {"raised": raised}
    out, lse = pair(returned)
    facts = describe(out, full_out)
    facts["subject"] = "output"
    if same(out, full_out) and not same(lse, full_lse):
        facts.update(describe(lse, full_lse), subject="lse")
    if same(out, full_out) and same(lse, full_lse) and \
            python_loop(function, (out_a[:1, :1], lse_a[:1, :1], out_b[:1, :1], lse_b[:1, :1]),
                        (out_a.repeat(1, 8, 1), lse_a.repeat(1, 8), out_b.repeat(1, 8, 1), lse_b.repeat(1, 8))):
        facts["misconceptions"] = ["merge.python-loop"]
    return facts


COMPONENTS = {
    "online_softmax_attention": check_online_softmax,
    "merge_attention": check_merge,
    "KVCache": check_kvcache,
    "CausalSelfAttention": check_causal_attention,
    "apply_rotary": check_rotary,
    "GroupedQueryAttention": check_gqa,
}

# What the derived detector compares between the student's code and each mistake's own (autograder/mistakes.py):
# the visible tests' examples, and the inputs that show a mistake of causality, stability, errors or the lse.
_Q, _K, _V, _X = _online_example()
(_A, _B, _) = _merge_example()
_EMPTY = (torch.zeros_like(_A[0]), torch.full_like(_A[1], -math.inf))
_FAR = torch.tensor([[1.0, 0.0] * 32], dtype=torch.float64)           # (cos, sin) of the angles at 10^4
PROBES = {
    "online_softmax_attention": [
        calls("online_softmax_attention", _Q, _K, _V, block_size=3),
        calls("online_softmax_attention", _X, _X, _X, block_size=3, causal=True),
        calls("online_softmax_attention", 100 * _Q, 100 * _K, _V, block_size=3),
        calls("online_softmax_attention", _Q, _K, _V, causal=True),
        calls("online_softmax_attention", _Q, _K, _V, block_size=3, return_lse=True),
        calls("online_softmax_attention", _Q, _K[:, :0], _V[:, :0], block_size=3, return_lse=True)],
    "merge_attention": [calls("merge_attention", *_A, *_B), calls("merge_attention", *_EMPTY, *_EMPTY),
                        calls("merge_attention", _A[0], _A[1] + 1000, _B[0], _B[1] + 1000)],
    "KVCache": [_fills(_kv_chunks([4, 1], B=2, H=3, d=5, d_v=6, seed=52)), _fills(_kv_chunks([2, 3]))],   # chunks of
    # unequal lengths: appending along any other axis than time raises, whichever axis it is
    "CausalSelfAttention": [_csa_probe(chunks) for chunks in _CSA_SCENARIOS],
    "apply_rotary": [calls("apply_rotary", *_ROPE_VISIBLE, base=100.0), calls("apply_rotary", *_ROPE_X, base=100.0),
                     calls("apply_rotary", torch.randn(3, 5, generator=torch.Generator().manual_seed(60)), torch.arange(3)),
                     calls("apply_rotary", _FAR, torch.tensor([10_000]))],
    "GroupedQueryAttention": [_gqa_probe(_GQA_X), _gqa_probe(_GQA_X, _GQA_MASK),
                              _constructs("GroupedQueryAttention", 16, 4, 3),
                              _constructs("GroupedQueryAttention", 10, 4, 2)],
}
