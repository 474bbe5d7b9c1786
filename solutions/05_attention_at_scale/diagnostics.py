"""Diagnostics of 05_attention_at_scale: the checks behind the tensor-aware feedback, and the misconceptions they name.

Read and run by the grader, in its own process, after the tests (autograder/diagnose.py explains the protocol):
the student's names are proxies of what they defined, kept in the kernel (autograder/remote.py), so a call runs
their code there and returns tensors here. What only the kernel can see is asked of the proxy: the torch
operations a call runs and the peak bytes of the tensors it creates (`proxy.watch`); the text of their
definitions is read from the notebook they handed in (`proxy.source`, `proxy.definitions`). Never released.
Every check runs on tiny fixed examples (those of the notebook's visible tests where they suffice), against
references written here (torch's own operators, formulas by hand), never against the notebook's solution.
Each part is graded on its own: CausalSelfAttention runs with a reference cache bound to KVCache.
"""
import io
import math
import textwrap
import tokenize
import warnings

import torch
import torch.nn.functional as F

from autograder.probes import Raised, attempt, describe, pair, pictures, same, swapped

# id: (the mistake, how to fix it, the MyST label of the book section that teaches it)
MISCONCEPTIONS = {
    # --- online_softmax_attention
    "online.accumulator-not-rescaled": (
        "the accumulator o is not rescaled when the running maximum changes",
        "multiply the accumulator by exp(m_old - m_new) before adding the new block's weights @ values: "
        "o = o * exp(m_old - m_new) + exp(s - m_new) @ v_block", "ch05-online-output"),
    "online.normaliser-not-rescaled": (
        "the normaliser l is not rescaled when the running maximum changes",
        "multiply the normaliser by exp(m_old - m_new) before adding the new block's sum: "
        "l = l * exp(m_old - m_new) + exp(s - m_new).sum(-1, keepdim=True)", "ch05-running-max"),
    "online.block-max-not-combined": (
        "each block subtracts its own maximum, and the blocks' sums are added as if they had the same reference",
        "keep a running maximum m_new = max(m_old, the block's maximum), subtract m_new from the block's scores, "
        "and rescale the normaliser and the accumulator by exp(m_old - m_new) before adding the block",
        "ch05-running-max"),
    "online.overflow": (
        "exp of the raw scores overflows for large scores (no maximum subtracted)",
        "keep a running maximum m, take exp(s - m_new) of the block's scores, and rescale the normaliser and "
        "the accumulator by exp(m_old - m_new) whenever the maximum changes", "ch05-softmax-whole-row"),
    "online.scaled-by-d-v": (
        "the scores are scaled by 1/sqrt(d_v), the width of the values",
        "scale by 1/sqrt(d), the width of queries and keys: query.size(-1), not value.size(-1)", "ch05-memory"),
    "online.causal-off-by-one": (
        "with causal=True a query also sees the key just after it",
        "mask key j for query i exactly when j > i (the key at the query's own position stays allowed)",
        "ch05-flash-blocks"),
    "online.causal-block-local": (
        "the causal mask compares the key's index within its block with the query's position",
        "compare the key's position in the whole sequence, start + j (torch.arange(start, start + block length)), "
        "with the query's position", "ch05-flash-blocks"),
    "online.no-value-error": (
        "causal=True with T_q != T_k is not refused",
        "raise ValueError when causal=True and query.size(-2) != key.size(-2)", "ch05-flash-blocks"),
    "online.block-size-ignored": (
        "the block_size argument is ignored",
        "walk over the keys in blocks of block_size: range(0, T_k, block_size) and slices "
        "[..., start:start + block_size, :]", "ch05-flash-blocks"),
    "online.full-score-matrix": (
        "the whole T_q x T_k matrix of scores is computed at once",
        "loop over the keys in blocks of block_size; for each block compute its scores only and update the "
        "running maximum, normaliser and accumulator (the old sums rescaled by exp(m_old - m_new))", "ch05-memory"),
    "online.keeps-every-block": (
        "every block's scores are kept (in a list) until the end, so a T_q x T_k matrix is alive",
        "update the running maximum, normaliser and accumulator as soon as a block's scores are computed, then "
        "let those scores go: keep nothing per block for a second pass", "ch05-memory"),
    "online.calls-fused-attention": (
        "torch's fused attention is called instead of computing the attention",
        "compute the attention yourself with matmul, exp and sums, one block of keys at a time, keeping a running "
        "maximum, normaliser and accumulator rescaled by exp(m_old - m_new): no F.scaled_dot_product_attention",
        "ch05-flash-blocks"),
    "online.leaves-torch": (
        "the computation leaves torch (numpy)",
        "compute with torch operations on the tensors themselves, one block of keys at a time with a running maximum, "
        "normaliser and accumulator rescaled by exp(m_old - m_new): no .numpy(), numpy or torch.from_numpy",
        "ch05-flash-blocks"),
    # --- KVCache
    "kvcache.wrong-axis": (
        "the new keys and values are appended along the wrong axis",
        "concatenate along the time axis: torch.cat([self.keys, k], dim=2) (or dim=-2), and the same for the values",
        "ch05-kv-cache"),
    "kvcache.returns-new-only": (
        "update returns only the new keys and values",
        "return every cached position so far: self.keys, self.values after the concatenation", "ch05-kv-cache"),
    "kvcache.prepended": (
        "the new positions are put before the cached ones",
        "put the cached positions first: torch.cat([self.keys, k], dim=2), not [k, self.keys], and the same for the "
        "values", "ch05-kv-cache"),
    "kvcache.keys-values-swapped": (
        "update returns (values, keys)",
        "return the keys first, then the values: return self.keys, self.values", "ch05-kv-cache"),
    "kvcache.len-counts-calls": (
        "len(cache) counts the calls to update, not the positions",
        "return the number of cached positions, self.keys.shape[2] (0 while empty)", "ch05-kv-cache"),
    "kvcache.len-batch-size": (
        "len(cache) returns the batch size",
        "return the size of the time axis, self.keys.shape[2] (0 while empty), not shape[0]", "ch05-kv-cache"),
    "kvcache.shared-storage": (
        "the storage is a class attribute, shared by every cache",
        "create the storage on self in __init__ (e.g. self.keys, self.values = [], [] for lists), not in the class "
        "body, so that each cache has its own",
        "ch05-kv-cache"),
    # --- CausalSelfAttention
    "csa.top-left-mask": (
        "is_causal=True is used with a cache: it aligns the mask top-left, so a new token sees only the first keys",
        "pass an explicit mask aligned bottom-right: attn_mask=torch.ones(t, n + t, dtype=torch.bool).tril(diagonal=n), "
        "with n = len(cache) read before the update", "ch05-cache-mask"),
    "csa.no-mask-after-prefill": (
        "once something is cached, no mask is used: right for one token, wrong for a chunk of several",
        "keep the causal mask with a cache: attn_mask=torch.ones(t, n + t, dtype=torch.bool).tril(diagonal=n), so that "
        "a chunk's queries see every cached key and, within the chunk, only earlier positions", "ch05-cache-mask"),
    "csa.offset-after-update": (
        "n = len(cache) is read after cache.update, so the offset also counts the new positions",
        "read n = len(cache) before calling cache.update(k, v)", "ch05-cache-mask"),
    "csa.cache-unused": (
        "the cache is updated but attention uses only the new keys and values",
        "attend to what the cache returns: read n = len(cache), then k, v = cache.update(k, v), with the mask "
        "attn_mask=torch.ones(t, n + t, dtype=torch.bool).tril(diagonal=n) (aligned bottom-right)", "ch05-kv-cache"),
    "csa.no-mask-without-cache": (
        "without a cache there is no causal mask: every position sees the future",
        "apply the causal mask without a cache too (n = 0): query i may attend to keys j <= i", "ch05-cache-mask"),
    "csa.strict-mask": (
        "the causal mask hides a query's own position",
        "allow key j for query i when j <= i, the diagonal included: .tril(diagonal=n), not diagonal=n - 1",
        "ch05-cache-mask"),
    "csa.scaled-by-d-model": (
        "the scores are scaled by 1/sqrt(D), the model width",
        "scale by 1/sqrt(d), the width of one head, d = D // num_heads", "ch05-small-decoder"),
    "csa.heads-without-transpose": (
        "the heads are made by a view to (B, H, t, d) without the transpose, which mixes positions and heads",
        "split with .view(B, t, H, d).transpose(1, 2), and merge back with .transpose(1, 2).reshape(B, t, D)",
        "ch05-small-decoder"),
    "csa.no-output-projection": (
        "W_o is never applied", "return self.W_o of the merged heads", "ch05-small-decoder"),
    # --- apply_rotary
    "rope.half-pairs": (
        "coordinate i is rotated with coordinate i + d/2 instead of its neighbour",
        "rotate the neighbouring pairs x[..., 0::2], x[..., 1::2] and interleave the results back "
        "(torch.stack(..., dim=-1).flatten(-2))", "ch05-rope"),
    "rope.frequency-exponent": (
        "the frequencies are base^(-i/d): the factor 2 of the exponent is missing",
        "use theta_i = base ** (-2i / d): base ** (-torch.arange(0, d, 2) / d)", "ch05-rope"),
    "rope.positions-shifted": (
        "the positions are counted from 1",
        "rotate the row at position p by p * theta_i, with the positions as given (do not add 1: position 0 is "
        "no rotation)",
        "ch05-rope"),
    "rope.positions-ignored": (
        "the positions argument is ignored: row t is rotated as position t",
        "compute the angles from the given positions: positions[:, None] * theta, not torch.arange(T)", "ch05-rope"),
    "rope.wrong-direction": (
        "the pairs are rotated by minus the angle",
        "rotate by +p theta_i: (x, y) becomes (x cos - y sin, x sin + y cos)", "ch05-rope"),
    "rope.sin-cos-swapped": (
        "sin and cos are swapped",
        "take cos of the angle for the cos terms and sin for the sin terms: (x cos - y sin, x sin + y cos)",
        "ch05-rope"),
    "rope.base-ignored": (
        "the base argument is ignored (10000 hard-coded)",
        "use the base argument in the frequencies: base ** (-2i / d)", "ch05-rope"),
    "rope.no-value-error": (
        "an odd d is not refused",
        "raise ValueError when x.size(-1) is odd", "ch05-rope"),
    # --- GroupedQueryAttention
    "gqa.repeat-not-interleave": (
        "the kv heads are tiled with repeat, so query head h reads kv head h % num_kv_heads",
        "expand the kv heads with k.repeat_interleave(g, dim=1) (heads 0, 0, 1, 1, ...), not repeat", "ch05-gqa"),
    "gqa.only-first-kv-head": (
        "every query head reads the first kv head",
        "let query head h read kv head h // g: k.repeat_interleave(g, dim=1) and the same for v, "
        "with g = num_heads // num_kv_heads", "ch05-gqa"),
    "gqa.full-width-kv": (
        "W_k and W_v project to the full width D, so no memory is saved",
        "make W_k and W_v nn.Linear(d_model, num_kv_heads * d), with d = d_model // num_heads, and use their "
        "whole output", "ch05-gqa"),
    "gqa.scaled-by-d-model": (
        "the scores are scaled by 1/sqrt(D), the model width",
        "scale by 1/sqrt(d), the width of one head, d = D // num_heads", "ch05-gqa"),
    "gqa.mask-ignored": (
        "the mask is never applied",
        "fill the scores where the mask is False before the softmax (scores.masked_fill(~mask, "
        "torch.finfo(scores.dtype).min)), then multiply the weights by the mask", "ch05-gqa"),
    "gqa.mask-inverted": (
        "the mask is read the wrong way round",
        "True means \"may attend\": fill the scores where ~mask, and multiply the weights by mask", "ch05-gqa"),
    "gqa.nan-fully-masked": (
        "a query whose keys are all masked gets NaN",
        "fill masked scores with torch.finfo(scores.dtype).min instead of -inf and multiply the weights by the mask, "
        "so that a fully masked query gets weights 0", "ch05-gqa"),
    "gqa.no-value-error": (
        "num_heads not divisible by num_kv_heads is accepted",
        "raise ValueError when d_model % num_heads != 0 or num_heads % num_kv_heads != 0", "ch05-gqa"),
    "gqa.heads-without-transpose": (
        "the heads are made by a view to (B, H, T, d) without the transpose, which mixes positions and heads",
        "split with .view(B, T, H, d).transpose(1, 2) (and H_kv for keys and values)", "ch05-gqa"),
}


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


def _masked_softmax(scores, allowed=None):
    """Softmax over the keys where allowed (True = may attend); a row with no allowed key gets weights 0."""
    if allowed is None:
        return torch.softmax(scores, dim=-1)
    allowed = torch.broadcast_to(allowed, scores.shape)
    filled = torch.where(allowed.any(-1, keepdim=True), torch.where(allowed, scores, float("-inf")), 0.0)
    return torch.softmax(filled, dim=-1) * allowed


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


def _blocks(query, key, value, block, rescale_output=True, rescale_normaliser=True, running=True):
    """Blockwise attention, with one of the updates as a mistake makes it (the models of the mistakes)."""
    query = query / math.sqrt(query.shape[-1])
    m = torch.full(query.shape[:-1] + (1,), -math.inf, dtype=query.dtype)
    l = torch.zeros(query.shape[:-1] + (1,), dtype=query.dtype)
    o = torch.zeros(query.shape[:-1] + value.shape[-1:], dtype=query.dtype)
    for start in range(0, key.shape[-2], block):
        s = query @ key[..., start:start + block, :].mT
        v = value[..., start:start + block, :]
        if running:
            new = torch.maximum(m, s.amax(-1, keepdim=True))
            p, r = torch.exp(s - new), torch.exp(m - new)
            l = (l * r if rescale_normaliser else l) + p.sum(-1, keepdim=True)
            o = (o * r if rescale_output else o) + p @ v
            m = new
        else:
            p = torch.exp(s - s.amax(-1, keepdim=True))
            l, o = l + p.sum(-1, keepdim=True), o + p @ v
    return o / l


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
    facts["misconceptions"] = _online_misconceptions(function, output, causal)[:1]
    return facts


def _online_misconceptions(function, output, causal):
    query, key, value, x = _online_example()
    block, d_v = 3, value.shape[-1]
    models = [("online.scaled-by-d-v", F.scaled_dot_product_attention(query, key, value, scale=d_v ** -0.5)),
              ("online.accumulator-not-rescaled", _blocks(query, key, value, block, rescale_output=False)),
              ("online.normaliser-not-rescaled", _blocks(query, key, value, block, rescale_normaliser=False)),
              ("online.block-max-not-combined", _blocks(query, key, value, block, running=False))]
    for name, model in models:
        if same(output, model):
            return [name]
    T = x.shape[-2]
    rows, cols = torch.arange(T)[:, None], torch.arange(T)[None, :]
    for name, allowed in [("online.causal-off-by-one", cols <= rows + 1),
                          ("online.causal-block-local", cols % block <= rows)]:
        if same(causal, F.scaled_dot_product_attention(x, x, x, attn_mask=allowed)):
            return [name]
    # The properties, once the values are right on the small examples.
    if not (same(output, F.scaled_dot_product_attention(query, key, value))
            and same(causal, F.scaled_dot_product_attention(x, x, x, is_causal=True))):
        return []
    large, _ = _try(function, 100 * query, 100 * key, value, block_size=block)
    if isinstance(large, torch.Tensor) and large.is_floating_point() and not bool(torch.isfinite(large).all()):
        return ["online.overflow"]
    _, raised = _try(function, query, key, value, causal=True)
    if raised != "ValueError":
        return ["online.no-value-error"]
    # Measured in the kernel: the torch operations a call runs, and the peak bytes of the tensors it creates.
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
        return ["online.keeps-every-block"]
    return []


# ---------------------------------------------------------------------------------------------------
# KVCache


def _kv_chunks(chunks, B=3, H=2, d=4, d_v=3, seed=51):
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(B, H, t, d, generator=generator), torch.randn(B, H, t, d_v, generator=generator)) for t in chunks]


def _fill(cls, chunks):
    """(cache, [what each update returned]) or raise Raised."""
    cache = attempt(cls)
    returned = []
    for k, v in chunks:
        returned.append(attempt(lambda: cache.update(k, v)))
    return cache, returned


@_quiet
def check_kvcache(namespace):
    cls = namespace.get("KVCache")
    fresh, raised = _try(cls)
    if raised:
        return {"raised": raised}
    length, raised = _try(len, fresh)
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
        cache, returned = _fill(cls, chunks)
        keys, values = pair(returned[-1])
        facts.update(describe(keys, expected_keys))
        if same(keys, expected_keys) and isinstance(values, torch.Tensor):
            facts.update(describe(values, expected_values), subject="values")
    except Raised as error:
        facts["raised"] = error.name
    facts["modified_input"] = not all(torch.equal(a, b) and torch.equal(c, e) for (a, c), (b, e) in zip(chunks, copies))
    facts["misconceptions"] = _kvcache_misconceptions(cls)[:1]
    return facts


def _shares_storage(cls):
    """Whether filling one cache changes the length of another."""
    one, _ = _try(cls)
    before, raised = _try(len, one)
    other, _ = _try(cls)
    _try(getattr(other, "update", None), torch.zeros(1, 1, 2, 1), torch.zeros(1, 1, 2, 1))
    after, raised_after = _try(len, one)
    return not (raised or raised_after) and before != after


def _kvcache_misconceptions(cls):
    chunks = _kv_chunks([2, 2])                             # equal chunks: any axis concatenates
    (k1, v1), (k2, v2) = chunks
    try:
        cache, returned = _fill(cls, chunks)
    except Raised:
        return []
    keys, values = pair(returned[-1])
    models = [("kvcache.returns-new-only", k2), ("kvcache.prepended", torch.cat([k2, k1], dim=2)),
              ("kvcache.keys-values-swapped", torch.cat([v1, v2], dim=2))]
    models += [("kvcache.wrong-axis", torch.cat([k1, k2], dim=dim)) for dim in (0, 1, 3)]
    for name, model in models:
        if same(keys, model):
            return [name]
    if not same(keys, torch.cat([k1, k2], dim=2)):
        return []
    length, _ = _try(len, cache)
    if length == len(chunks) and length != 4:
        return ["kvcache.len-counts-calls"]
    if length == k1.shape[0]:
        return ["kvcache.len-batch-size"]
    other, _ = _try(cls)
    first, _ = _try(getattr(other, "update", None), k1, v1)
    if first is not None and not same(pair(first)[0], k1):                   # a new cache that is not empty
        return ["kvcache.shared-storage"]
    return []


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


def _csa_example(cls):
    """The visible tests' module and input: CausalSelfAttention(8, 2) in float64 after seed 6, x (2, 7, 8)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(6)
        module = attempt(cls, 8, 2).double()
        x = torch.randn(2, 7, 8, dtype=torch.float64)
    return module, x


def _correct(n, t):
    return torch.ones(t, n + t, dtype=torch.bool).tril(diagonal=n)


def _csa_model(module, x, chunks, H, rule=None, scale=None, transpose=True, project=True, only_new=False):
    """Causal self-attention by hand with module's weights, on x cut into chunks (None: no cache), with the
    mask rule(n, t, cached) and the other choices as a mistake makes them."""
    B, T, D = x.shape
    d = D // H
    rule = rule or (lambda n, t, cached: _correct(n, t))
    keys = values = None
    outputs, n = [], 0
    for t in (chunks or [T]):
        part = x[:, n:n + t]
        heads = [_linear(layer, part) for layer in (module.W_q, module.W_k, module.W_v)]
        if transpose:
            q, k, v = (h.view(B, t, H, d).transpose(1, 2) for h in heads)
        else:
            q, k, v = (h.view(B, H, t, d) for h in heads)
        keys = k if keys is None else torch.cat([keys, k], dim=2)
        values = v if values is None else torch.cat([values, v], dim=2)
        use_k, use_v = (k, v) if only_new else (keys, values)
        allowed = rule(n, t, chunks is not None)
        scores = q @ use_k.mT * (d ** -0.5 if scale is None else scale)
        out = _masked_softmax(scores, allowed) @ use_v
        merged = out.transpose(1, 2).reshape(B, t, D) if transpose else out.reshape(B, t, D)
        outputs.append(_linear(module.W_o, merged) if project else merged)
        n += t
    return torch.cat(outputs, dim=1)


_CSA_SCENARIOS = (None, [3, 1, 1, 1, 1], [2, 3, 2])      # no cache; the visible prefill then tokens; chunks


def _csa_run(module, x, chunks):
    """The student's output on x cut into chunks (None: no cache), or the name of what it raised."""
    try:
        with torch.no_grad():
            if chunks is None:
                return attempt(module, x), None
            cache, outputs, n = _ReferenceCache(), [], 0
            for t in chunks:
                outputs.append(attempt(module, x[:, n:n + t], cache))
                n += t
    except Raised as error:
        return None, error.name
    try:
        return torch.cat(outputs, dim=1), None
    except (TypeError, RuntimeError, ValueError):
        return outputs[0], None                             # not tensors that line up: compared, never equal


@_quiet
def check_causal_attention(namespace):
    cls = namespace.get("CausalSelfAttention")
    with swapped(namespace, {"KVCache": _ReferenceCache}):
        try:
            module, x = _csa_example(cls)
        except Raised as error:
            return {"raised": error.name}
        except Exception:
            return {"raised": "Exception"}
        H = 2
        copy = x.clone()
        try:
            with torch.no_grad():
                expected = _csa_model(module, x, None, H)
        except (AttributeError, TypeError, RuntimeError, ValueError):
            return {"raised": "AttributeError"}             # its layers are not nn.Linear(D, D) any more
        theirs, facts = [], {"subject": "output"}
        for chunks in _CSA_SCENARIOS:
            output, raised = _csa_run(module, x, chunks)
            if raised:
                facts["raised"] = raised
                break
            theirs.append(output)
            if not facts.get("shape") and not same(output, expected):
                facts.update(describe(output, expected))
        facts["modified_input"] = not torch.equal(x, copy)
        if len(theirs) == len(_CSA_SCENARIOS):
            facts["misconceptions"] = _csa_misconceptions(module, x, H, theirs)[:1]
    return facts


def _csa_misconceptions(module, x, H, theirs):
    D = x.shape[-1]
    ones = lambda n, t, cached: torch.ones(t, n + t, dtype=torch.bool)
    variants = [
        ("csa.no-mask-without-cache", dict(rule=lambda n, t, cached: _correct(n, t) if cached else ones(n, t, cached))),
        ("csa.strict-mask", dict(rule=lambda n, t, cached: torch.ones(t, n + t, dtype=torch.bool).tril(diagonal=n - 1))),
        ("csa.scaled-by-d-model", dict(scale=D ** -0.5)),
        ("csa.heads-without-transpose", dict(transpose=False)),
        ("csa.no-output-projection", dict(project=False)),
        ("csa.cache-unused", dict(only_new=True, rule=lambda n, t, cached: _correct(0, t))),
        ("csa.top-left-mask", dict(rule=lambda n, t, cached: torch.ones(t, n + t, dtype=torch.bool).tril())),
        ("csa.offset-after-update", dict(rule=lambda n, t, cached: ones(n, t, cached) if cached else _correct(n, t))),
        ("csa.no-mask-after-prefill", dict(rule=lambda n, t, cached: _correct(n, t) if n == 0 else ones(n, t, cached))),
    ]
    with torch.no_grad():
        for name, choices in variants:
            if all(same(output, _csa_model(module, x, chunks, H, **choices))
                   for output, chunks in zip(theirs, _CSA_SCENARIOS)):
                return [name]
    return []


# ---------------------------------------------------------------------------------------------------
# apply_rotary


def _rope(x, positions, base, pairs="neighbours", exponent=2.0, shift=0, sign=1.0, swap=False):
    """RoPE from its definition, with the choices a mistake changes."""
    d = x.shape[-1]
    theta = base ** (-exponent * torch.arange(d // 2, dtype=torch.float64) / d)
    angles = sign * (positions.double()[:, None] + shift) * theta
    cos, sin = (angles.sin(), angles.cos()) if swap else (angles.cos(), angles.sin())
    x = x.double()
    a, b = (x[..., 0::2], x[..., 1::2]) if pairs == "neighbours" else (x[..., :d // 2], x[..., d // 2:])
    first, second = a * cos - b * sin, a * sin + b * cos
    if pairs == "neighbours":
        return torch.stack((first, second), dim=-1).flatten(-2)
    return torch.cat((first, second), dim=-1)


@_quiet
def check_rotary(namespace):
    function = namespace.get("apply_rotary")
    visible = torch.tensor([[1.0, 0.0, 1.0, 0.0]] * 3, dtype=torch.float64)       # the visible tests' example
    visible_positions = torch.tensor([0, 1, 2])
    output, raised = _try(function, visible, visible_positions, base=100.0)
    if raised:
        return {"raised": raised}
    expected = _rope(visible, visible_positions, 100.0)
    facts = describe(output, expected)
    facts["subject"] = "encoding"
    generator = torch.Generator().manual_seed(53)
    x = torch.randn(2, 3, 8, dtype=torch.float64, generator=generator)
    positions, base = torch.tensor([5, 0, 3]), 100.0
    copy = x.clone()
    theirs, raised = _try(function, x, positions, base=base)
    facts["modified_input"] = not torch.equal(x, copy)
    if raised:
        facts["raised"] = raised
        return facts
    expected = _rope(x, positions, base)
    if same(output, _rope(visible, visible_positions, 100.0)) and not same(theirs, expected):
        facts.update(describe(theirs, expected))
    models = [("rope.half-pairs", dict(pairs="halves")), ("rope.frequency-exponent", dict(exponent=1.0)),
              ("rope.positions-shifted", dict(shift=1)), ("rope.wrong-direction", dict(sign=-1.0)),
              ("rope.sin-cos-swapped", dict(swap=True))]
    found = [name for name, choices in models if same(theirs, _rope(x, positions, base, **choices))]
    if not found and same(theirs, _rope(x, torch.arange(3), base)):
        found = ["rope.positions-ignored"]
    if not found and same(theirs, _rope(x, positions, 10000.0)):
        found = ["rope.base-ignored"]
    if not found and same(output, _rope(visible, visible_positions, 100.0)) and same(theirs, expected):
        _, raised = _try(function, torch.randn(3, 5, generator=generator), torch.arange(3))
        if raised != "ValueError":
            found = ["rope.no-value-error"]
    facts["misconceptions"] = found[:1]
    return facts


# ---------------------------------------------------------------------------------------------------
# GroupedQueryAttention


def _gqa_reference(module, x, H, H_kv, allowed=None, kv_head_of=None, scale=None, transpose=True):
    """(output, weights) of grouped-query attention with module's layers: query head h reads kv head kv_head_of[h]
    (h // g by default); torch's SDPA with enable_gqa=True gives the output of the right pairing."""
    B, T, D = x.shape
    d = D // H
    projections = [(_linear(layer, x), heads) for layer, heads in ((module.W_q, H), (module.W_k, H_kv), (module.W_v, H_kv))]
    if transpose:
        q, k, v = (p.view(B, T, h, d).transpose(1, 2) for p, h in projections)
    else:
        q, k, v = (p.view(B, h, T, d) for p, h in projections)
    index = torch.arange(H) // (H // H_kv) if kv_head_of is None else kv_head_of
    weights = _masked_softmax(q @ k[:, index].mT * (d ** -0.5 if scale is None else scale), allowed)
    heads = weights @ v[:, index]
    if kv_head_of is None and scale is None and transpose:
        heads = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, enable_gqa=True)
    return _linear(module.W_o, heads.transpose(1, 2).reshape(B, T, D)), weights


def _gqa_example(cls):
    """GroupedQueryAttention(16, 4, 2) in float64 after seed 9, and x (3, 5, 16) as in the visible tests."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(9)
        module = attempt(cls, 16, 4, 2).double()
    x = torch.randn(3, 5, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(54))
    return module, x


def _gqa_mask(B, T):
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    real = torch.arange(T)[None, :] < torch.tensor([5, 3, 2])[:, None]                   # (B, T): padding
    mask = (causal & real[:, None, None, :]).clone()                                    # (B, 1, T, T)
    mask[1, 0, 1] = False                                                               # a query that sees nothing
    return mask


def _raises_value_error(cls, *args):
    _, raised = _try(cls, *args)
    return raised == "ValueError"


@_quiet
def check_gqa(namespace):
    cls = namespace.get("GroupedQueryAttention")
    H, H_kv = 4, 2
    try:
        module, x = _gqa_example(cls)
    except Raised as error:
        return {"raised": error.name}
    except Exception:
        return {"raised": "Exception"}
    shapes = [tuple(getattr(getattr(getattr(module, name, None), "weight", None), "shape", ())) for name in ("W_k", "W_v")]
    if any(shape[:1] == (16,) for shape in shapes):
        return {"misconceptions": ["gqa.full-width-kv"]}
    with torch.no_grad():
        returned, raised = _try(module, x)
        if raised:
            return {"raised": raised}
        output, weights = pair(returned)
        if not isinstance(weights, torch.Tensor):
            return {"not_a_tensor": True, "subject": "weights"}
        try:
            expected_output, expected = _gqa_reference(module, x, H, H_kv)
            mask = _gqa_mask(3, 5)
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
        facts["misconceptions"] = _gqa_misconceptions(cls, module, x, output, weights, masked_weights, mask)[:1]
    return facts


def _gqa_misconceptions(cls, module, x, output, weights, masked_weights, mask):
    H, H_kv = 4, 2
    models = [("gqa.repeat-not-interleave", dict(kv_head_of=torch.arange(H) % H_kv)),
              ("gqa.only-first-kv-head", dict(kv_head_of=torch.zeros(H, dtype=torch.long))),
              ("gqa.scaled-by-d-model", dict(scale=16 ** -0.5)),
              ("gqa.heads-without-transpose", dict(transpose=False))]
    for name, choices in models:
        if same(weights, _gqa_reference(module, x, H, H_kv, **choices)[1]):
            return [name]
    expected = _gqa_reference(module, x, H, H_kv)[1]
    if same(weights, expected):
        if same(masked_weights, expected):
            return ["gqa.mask-ignored"]
        if same(masked_weights, _gqa_reference(module, x, H, H_kv, ~mask)[1]):
            return ["gqa.mask-inverted"]
        if isinstance(masked_weights, torch.Tensor) and masked_weights.is_floating_point() and \
                not bool(torch.isfinite(masked_weights).all()):
            return ["gqa.nan-fully-masked"]
    if same(weights, expected) and same(output, _gqa_reference(module, x, H, H_kv)[0]) and \
            not (_raises_value_error(cls, 16, 4, 3) and _raises_value_error(cls, 10, 4, 2)):
        return ["gqa.no-value-error"]
    return []


COMPONENTS = {
    "online_softmax_attention": check_online_softmax,
    "KVCache": check_kvcache,
    "CausalSelfAttention": check_causal_attention,
    "apply_rotary": check_rotary,
    "GroupedQueryAttention": check_gqa,
}
