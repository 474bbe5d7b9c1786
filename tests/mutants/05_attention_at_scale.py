"""Wrong implementations of the graded components of 05_attention_at_scale (see tests/mutants/__init__.py)."""
from tests.mutants import Mutant, function_mutant, module_mutant

ASSIGNMENT = "05_attention_at_scale"

# --- online_softmax_attention ---------------------------------------------------------------------------
OS_SIGNATURE = "online_softmax_attention(query, key, value, block_size=128, causal=False, return_lse=False)"
OS_CHECK = """
    T_q, T_k = query.size(-2), key.size(-2)
    if causal and T_q != T_k:
        raise ValueError("causal attention needs T_q == T_k")
"""
OS_START = """
    q = query / math.sqrt(query.size(-1))
    m = q.new_full(q.shape[:-1] + (1,), -math.inf)
    l = q.new_zeros(q.shape[:-1] + (1,))
    o = q.new_zeros(q.shape[:-1] + value.shape[-1:])
    rows = torch.arange(T_q).unsqueeze(-1)
    for start in range(0, T_k, block_size):
        kb = key[..., start:start + block_size, :]
        vb = value[..., start:start + block_size, :]
        s = q @ kb.mT
"""
OS_CAUSAL = """
        if causal:
            cols = torch.arange(start, start + kb.size(-2))
            s = s.masked_fill(cols > rows, -math.inf)
"""
OS_UPDATE = """
        m_new = torch.maximum(m, s.amax(-1, keepdim=True))
        p = torch.exp(s - m_new)
        l = l * torch.exp(m - m_new) + p.sum(-1, keepdim=True)
        o = o * torch.exp(m - m_new) + p @ vb
        m = m_new
    return o / l
"""
# What every blockwise mutant returns after the walk (its "return o / l" is replaced by this): the lse on request.
OS_RETURN = """
    out = o / l.clamp_min(1.0)
    if return_lse:
        return out, (m + torch.log(l)).squeeze(-1)
    return out
"""
OS_BLOCKWISE = (OS_START.strip("\n") + "\n" + OS_CAUSAL.strip("\n") + "\n"
                + OS_UPDATE.replace("    return o / l\n", OS_RETURN.lstrip("\n")).strip("\n") + "\n")
OS_CELLS = ["online_softmax_visible", "online_softmax_matches_sdpa", "online_softmax_causal",
            "online_softmax_large_scores", "online_softmax_memory", "online_softmax_lse"]
OS_HIDDEN = OS_CELLS[1:]


def online(body, why, fails):
    return function_mutant("online_softmax_attention", OS_SIGNATURE, body, why, fails)


def blockwise(why, fails, start=OS_START, causal=OS_CAUSAL, update=OS_UPDATE, check=OS_CHECK):
    """The blockwise algorithm with one of its parts replaced."""
    update = update.replace("    return o / l\n", OS_RETURN.lstrip("\n"))
    return online(check.strip("\n") + "\n" + start.strip("\n") + "\n" + causal.strip("\n") + "\n" + update.strip("\n"),
                  why, fails)


# --- KVCache ----------------------------------------------------------------------------------------------
def cache(why, update, length, fails, init="        self.keys = None\n        self.values = None\n"):
    source = ("class KVCache:\n    def __init__(self):\n" + init.rstrip("\n") + "\n\n"
              "    def update(self, k, v):\n" + update.strip("\n") + "\n\n"
              "    def __len__(self):\n" + length.strip("\n") + "\n")
    return Mutant(cell="KVCache", source=source, why=why, fails=tuple(fails))


def cache_cat(dim, returned="self.keys, self.values", order="[self.keys, k]", vorder="[self.values, v]"):
    return f"""
        if self.keys is None:
            self.keys, self.values = k, v
        else:
            self.keys = torch.cat({order}, dim={dim})
            self.values = torch.cat({vorder}, dim={dim})
        return {returned}
"""


LEN_POSITIONS = "        return 0 if self.keys is None else self.keys.shape[2]"
CACHE_CELLS = ["kvcache_visible", "kvcache_appends", "kvcache_decoding"]

# --- CausalSelfAttention ----------------------------------------------------------------------------------
CSA_INIT = """
        self.num_heads = num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)
"""
CSA_HEADS = """
        B, t, D = x.shape
        H = self.num_heads
        q = self.W_q(x).view(B, t, H, D // H).transpose(1, 2)
        k = self.W_k(x).view(B, t, H, D // H).transpose(1, 2)
        v = self.W_v(x).view(B, t, H, D // H).transpose(1, 2)
"""
CSA_MERGE = """
        return self.W_o(out.transpose(1, 2).reshape(B, t, D))
"""


def causal_attention(why, body, fails, heads=CSA_HEADS, merge=CSA_MERGE):
    forward = heads.strip("\n") + "\n" + body.strip("\n") + "\n" + merge.strip("\n")
    return module_mutant("CausalSelfAttention", "d_model, num_heads", CSA_INIT, "x, cache=None", forward, why, fails)


# --- apply_rotary -----------------------------------------------------------------------------------------
ROPE_SIGNATURE = "apply_rotary(x, positions, base=10000.0)"
ROPE_CHECK = """
    d = x.size(-1)
    if d % 2:
        raise ValueError("d must be even")
"""
ROPE_ANGLES = """
    freqs = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = positions.double()[:, None] * freqs
"""
ROPE_ROTATE = """
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)
"""


def rotary(why, fails, check=ROPE_CHECK, angles=ROPE_ANGLES, rotate=ROPE_ROTATE):
    body = check.strip("\n") + "\n" + angles.strip("\n") + "\n" + rotate.strip("\n")
    return function_mutant("apply_rotary", ROPE_SIGNATURE, body, why, fails)


# --- GroupedQueryAttention --------------------------------------------------------------------------------
GQA_CHECK = """
        if d_model % num_heads or num_heads % num_kv_heads:
            raise ValueError("d_model % num_heads and num_heads % num_kv_heads must be 0")
"""
GQA_LAYERS = """
        self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
        self.head_dim = d_model // num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, num_kv_heads * self.head_dim)
        self.W_v = nn.Linear(d_model, num_kv_heads * self.head_dim)
        self.W_o = nn.Linear(d_model, d_model)
"""
GQA_PROJECT = """
        B, T, D = x.shape
        H, H_kv, d = self.num_heads, self.num_kv_heads, self.head_dim
        q = self.W_q(x).view(B, T, H, d).transpose(1, 2)
        k = self.W_k(x).view(B, T, H_kv, d).transpose(1, 2)
        v = self.W_v(x).view(B, T, H_kv, d).transpose(1, 2)
"""
GQA_SHARE = """
        k = k.repeat_interleave(H // H_kv, dim=1)
        v = v.repeat_interleave(H // H_kv, dim=1)
"""
GQA_SCORES = """
        s = q @ k.mT / math.sqrt(d)
"""
GQA_SOFTMAX = """
        if mask is not None:
            s = s.masked_fill(~mask, torch.finfo(s.dtype).min)
        w = torch.softmax(s, dim=-1)
        if mask is not None:
            w = w * mask
"""
GQA_OUT = """
        return self.W_o((w @ v).transpose(1, 2).reshape(B, T, D)), w
"""
GQA_CELLS = ["gqa_visible", "gqa_matches_sdpa", "gqa_masks", "gqa_parameters"]


def gqa(why, fails, check=GQA_CHECK, layers=GQA_LAYERS, project=GQA_PROJECT, share=GQA_SHARE,
        scores=GQA_SCORES, softmax=GQA_SOFTMAX, out=GQA_OUT):
    init = check.strip("\n") + "\n" + layers.strip("\n")
    forward = "\n".join(part.strip("\n") for part in (project, share, scores, softmax, out))
    return module_mutant("GroupedQueryAttention", "d_model, num_heads, num_kv_heads", init, "x, mask=None", forward,
                         why, fails)


MUTANTS = {
    # --- online_softmax_attention ------------------------------------------------------------------------
    "online_softmax/accumulator_not_rescaled": blockwise(
        "the accumulator is not rescaled when the running maximum changes", OS_CELLS, update="""
        m_new = torch.maximum(m, s.amax(-1, keepdim=True))
        p = torch.exp(s - m_new)
        l = l * torch.exp(m - m_new) + p.sum(-1, keepdim=True)
        o = o + p @ vb
        m = m_new
    return o / l
"""),
    "online_softmax/normaliser_not_rescaled": blockwise(
        "the normaliser is not rescaled when the running maximum changes", OS_CELLS, update="""
        m_new = torch.maximum(m, s.amax(-1, keepdim=True))
        p = torch.exp(s - m_new)
        l = l + p.sum(-1, keepdim=True)
        o = o * torch.exp(m - m_new) + p @ vb
        m = m_new
    return o / l
"""),
    "online_softmax/block_max_never_combined": blockwise(
        "each block uses its own maximum, never combined into a running maximum", OS_CELLS, update="""
        p = torch.exp(s - s.amax(-1, keepdim=True))
        l = l + p.sum(-1, keepdim=True)
        o = o + p @ vb
    return o / l
"""),
    "online_softmax/no_maximum_subtracted": blockwise(
        "no maximum subtracted: exp of the raw scores overflows for large scores", ["online_softmax_large_scores"], update="""
        p = torch.exp(s)
        l = l + p.sum(-1, keepdim=True)
        o = o + p @ vb
    return o / l
"""),
    "online_softmax/causal_off_by_one": blockwise(
        "causal blocks off by one: query i also sees key i + 1",
        ["online_softmax_visible", "online_softmax_causal", "online_softmax_large_scores", "online_softmax_memory"],
        causal="""
        if causal:
            cols = torch.arange(start, start + kb.size(-2))
            s = s.masked_fill(cols > rows + 1, -math.inf)
"""),
    "online_softmax/causal_mask_ignores_block_start": blockwise(
        "the causal mask compares the key's index within its block, not its position in the sequence",
        ["online_softmax_visible", "online_softmax_causal", "online_softmax_large_scores", "online_softmax_memory"], causal="""
        if causal:
            cols = torch.arange(kb.size(-2))
            s = s.masked_fill(cols > rows, -math.inf)
"""),
    "online_softmax/no_value_error": blockwise(
        "causal=True with T_q != T_k is not refused", ["online_softmax_visible", "online_softmax_causal"],
        check="    T_q, T_k = query.size(-2), key.size(-2)\n"),
    "online_softmax/scaled_by_value_width": blockwise(
        "scores scaled by 1/sqrt(d_v), the value width, instead of 1/sqrt(d)",
        ["online_softmax_visible", "online_softmax_matches_sdpa", "online_softmax_causal", "online_softmax_memory"],
        start=OS_START.replace("math.sqrt(query.size(-1))", "math.sqrt(value.size(-1))")),
    "online_softmax/block_size_ignored": blockwise(
        "block_size ignored: always blocks of 128 keys", ["online_softmax_memory"],
        start=OS_START.replace("for start in range(0, T_k, block_size):", "for start in range(0, T_k, 128):")
                      .replace("start:start + block_size", "start:start + 128")),
    "online_softmax/materialises_the_full_matrix": online(OS_CHECK + """
    scores = query @ key.mT / math.sqrt(query.size(-1))
    if causal:
        scores = scores.masked_fill(torch.ones(T_q, T_k, dtype=torch.bool).triu(1), -math.inf)
    return torch.softmax(scores, dim=-1) @ value
""", "the full T_q x T_k matrix of scores is computed at once (right values, no memory saved)",
        ["online_softmax_visible", "online_softmax_memory"]),
    "online_softmax/keeps_every_block": online(OS_CHECK + """
    q = query / math.sqrt(query.size(-1))
    blocks = [q @ key[..., start:start + block_size, :].mT for start in range(0, T_k, block_size)]
    if causal:
        blocks = [b.masked_fill(torch.arange(i * block_size, i * block_size + b.size(-1)) > torch.arange(T_q)[:, None], -math.inf)
                  for i, b in enumerate(blocks)]
    m = torch.stack([b.amax(-1) for b in blocks], dim=-1).amax(-1, keepdim=True)
    p = [torch.exp(b - m) for b in blocks]
    l = sum(x.sum(-1, keepdim=True) for x in p)
    o = sum(x @ value[..., i * block_size:(i + 1) * block_size, :] for i, x in enumerate(p))
    return o / l
""", "blockwise, but every block's scores are kept in a list until the end (two passes, T_q x T_k numbers alive)",
        ["online_softmax_visible", "online_softmax_memory"]),
    "online_softmax/query_chunks": online(OS_CHECK + """
    q = query / math.sqrt(query.size(-1))
    outs, lses = [], []
    for start in range(0, T_q, block_size):
        s = q[..., start:start + block_size, :] @ key.mT
        if causal:
            s = s.masked_fill(torch.arange(T_k) > torch.arange(start, start + s.size(-2))[:, None], -math.inf)
        outs.append(torch.softmax(s, dim=-1) @ value)
        lses.append(torch.logsumexp(s, dim=-1))
    out = torch.cat(outs, dim=-2) if outs else q.new_zeros(q.shape[:-1] + value.shape[-1:])
    if return_lse:
        return out, torch.cat(lses, dim=-1)
    return out
""", "the queries cut into chunks of block_size, each with an ordinary softmax over every key",
        ["online_softmax_memory", "online_softmax_lse"]),
    "online_softmax/loops_over_query_rows": online(OS_CHECK + """
    q = query / math.sqrt(query.size(-1))
    outs, lses = [], []
    for i in range(T_q):
        s = q[..., i:i + 1, :] @ key.mT
        if causal:
            s = s.masked_fill(torch.arange(T_k) > i, -math.inf)
        outs.append(torch.softmax(s, dim=-1) @ value)
        lses.append(torch.logsumexp(s, dim=-1))
    out = torch.cat(outs, dim=-2) if outs else q.new_zeros(q.shape[:-1] + value.shape[-1:])
    if return_lse:
        return out, torch.cat(lses, dim=-1)
    return out
""", "a Python loop over the query rows, each with an ordinary softmax over its whole row of keys",
        ["online_softmax_memory"]),
    "online_softmax/lse_is_the_running_max": online(OS_CHECK + OS_BLOCKWISE.replace(
        "(m + torch.log(l)).squeeze(-1)", "m.squeeze(-1)"),
        "return_lse gives the running maximum m, without log(l)", ["online_softmax_visible", "online_softmax_lse"]),
    "online_softmax/lse_in_log2": online(OS_CHECK + OS_BLOCKWISE.replace(
        "(m + torch.log(l)).squeeze(-1)", "((m + torch.log(l)) / math.log(2)).squeeze(-1)"),
        "the lse in base 2 (log2 of the sum of e^s)", ["online_softmax_visible", "online_softmax_lse"]),
    "online_softmax/lse_from_a_full_row": online(OS_CHECK + OS_BLOCKWISE.replace(
        "(m + torch.log(l)).squeeze(-1)", "torch.logsumexp((q @ key.mT).masked_fill(torch.ones(T_q, T_k, dtype=torch.bool).triu(1) & causal, -math.inf), dim=-1)"),
        "the lse computed at the end from the full row of scores", ["online_softmax_lse"]),
    "online_softmax/nan_without_keys": online(OS_CHECK + OS_BLOCKWISE.replace("out = o / l.clamp_min(1.0)", "out = o / l"),
        "T_k = 0 gives 0 / 0: a NaN output", ["online_softmax_visible", "online_softmax_lse"]),
    "online_softmax/calls_fused_attention": online(OS_CHECK + """
    return F.scaled_dot_product_attention(query, key, value, is_causal=causal)
""", "calls torch's fused attention instead of computing it", OS_CELLS),
    "online_softmax/leaves_torch_for_numpy": online(OS_CHECK + """
    import numpy as np
    q, k, v = query.detach().numpy(), key.detach().numpy(), value.detach().numpy()
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if causal:
        s = np.where(np.tril(np.ones((T_q, T_k), dtype=bool)), s, -np.inf)
    w = np.exp(s - s.max(-1, keepdims=True))
    return torch.from_numpy(w / w.sum(-1, keepdims=True) @ v)
""", "computes in numpy (leaves torch)", OS_HIDDEN),

    # --- KVCache ---------------------------------------------------------------------------------------------
    "kvcache/appended_along_heads": cache("appended along the head axis (dim 1) instead of time",
                                          cache_cat(1), LEN_POSITIONS, CACHE_CELLS),
    "kvcache/appended_along_features": cache("appended along the feature axis (dim -1) instead of time",
                                             cache_cat(-1), LEN_POSITIONS, CACHE_CELLS),
    "kvcache/returns_only_the_new_positions": cache("update returns only the new keys and values",
                                                    cache_cat(2, returned="k, v"), LEN_POSITIONS, CACHE_CELLS),
    "kvcache/new_positions_prepended": cache("new keys put before the cached ones",
                                             cache_cat(2, order="[k, self.keys]", vorder="[v, self.values]"),
                                             LEN_POSITIONS, ["kvcache_visible", "kvcache_appends"]),
    "kvcache/keys_and_values_swapped": cache("update returns (values, keys)",
                                             cache_cat(2, returned="self.values, self.keys"), LEN_POSITIONS, CACHE_CELLS),
    "kvcache/len_counts_calls": cache("len counts calls to update, not positions", """
        self.calls += 1
""" + cache_cat(2), "        return self.calls", ["kvcache_visible", "kvcache_appends", "kvcache_decoding"],
        init="        self.keys = None\n        self.values = None\n        self.calls = 0\n"),
    "kvcache/len_is_the_batch_size": cache("len returns the batch size", cache_cat(2),
                                           "        return 0 if self.keys is None else self.keys.shape[0]",
                                           ["kvcache_visible", "kvcache_appends", "kvcache_decoding"]),
    "kvcache/shared_class_attribute": Mutant(cell="KVCache", source="""class KVCache:
    keys = []
    values = []

    def update(self, k, v):
        self.keys.append(k)
        self.values.append(v)
        return torch.cat(self.keys, dim=2), torch.cat(self.values, dim=2)

    def __len__(self):
        return sum(k.shape[2] for k in self.keys)
""", why="lists created once as class attributes: every cache shares them", fails=("kvcache_appends", "kvcache_decoding")),

    # --- CausalSelfAttention ---------------------------------------------------------------------------------
    "causal_attention/top_left_alignment": causal_attention(
        "is_causal=True with a cache: the mask is aligned top-left, a new token sees only key 0", """
        if cache is not None:
            k, v = cache.update(k, v)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
""", ["causal_attention_visible", "causal_attention_decoding"]),
    "causal_attention/mask_dropped_after_prefill": causal_attention(
        "no mask once something is cached: right for one token, wrong for a chunk", """
        n = 0 if cache is None else len(cache)
        if cache is not None:
            k, v = cache.update(k, v)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=(n == 0))
""", ["causal_attention_decoding"]),
    "causal_attention/offset_read_after_update": causal_attention(
        "len(cache) read after the update: the offset counts the new positions too", """
        if cache is not None:
            k, v = cache.update(k, v)
        n = 0 if cache is None else len(cache)
        allowed = torch.ones(t, k.shape[2], dtype=torch.bool).tril(diagonal=n)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
""", ["causal_attention_visible", "causal_attention_decoding"]),
    "causal_attention/cached_keys_unused": causal_attention(
        "the cache is updated but attention uses only the new keys and values", """
        if cache is not None:
            cache.update(k, v)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
""", ["causal_attention_visible", "causal_attention_decoding"]),
    "causal_attention/no_mask_without_cache": causal_attention(
        "without a cache no causal mask: every position sees the future", """
        n = 0 if cache is None else len(cache)
        if cache is None:
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            k, v = cache.update(k, v)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(t, n + t, dtype=torch.bool).tril(diagonal=n))
""", ["causal_attention_visible", "causal_attention_full"]),
    "causal_attention/scaled_by_d_model": causal_attention(
        "scores scaled by 1/sqrt(D) instead of 1/sqrt(d)", """
        n = 0 if cache is None else len(cache)
        if cache is not None:
            k, v = cache.update(k, v)
        s = q @ k.mT / math.sqrt(D)
        s = s.masked_fill(~torch.ones(t, n + t, dtype=torch.bool).tril(diagonal=n), -math.inf)
        out = torch.softmax(s, dim=-1) @ v
""", ["causal_attention_full", "causal_attention_decoding"]),
    "causal_attention/query_cannot_see_itself": causal_attention(
        "strict causal mask: query i sees keys j < i only", """
        n = 0 if cache is None else len(cache)
        if cache is not None:
            k, v = cache.update(k, v)
        allowed = torch.ones(t, n + t, dtype=torch.bool).tril(diagonal=n - 1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
""", ["causal_attention_visible", "causal_attention_full", "causal_attention_decoding"]),
    "causal_attention/heads_without_transpose": causal_attention(
        "heads made by a view to (B, H, t, d) without the transpose", """
        n = 0 if cache is None else len(cache)
        if cache is not None:
            k, v = cache.update(k, v)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(t, n + t, dtype=torch.bool).tril(diagonal=n))
""", ["causal_attention_visible", "causal_attention_full", "causal_attention_decoding"], heads="""
        B, t, D = x.shape
        H = self.num_heads
        q = self.W_q(x).view(B, H, t, D // H)
        k = self.W_k(x).view(B, H, t, D // H)
        v = self.W_v(x).view(B, H, t, D // H)
""", merge="""
        return self.W_o(out.reshape(B, t, D))
"""),
    "causal_attention/missing_output_projection": causal_attention(
        "W_o never applied", """
        n = 0 if cache is None else len(cache)
        if cache is not None:
            k, v = cache.update(k, v)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(t, n + t, dtype=torch.bool).tril(diagonal=n))
""", ["causal_attention_full", "causal_attention_decoding"], merge="""
        return out.transpose(1, 2).reshape(B, t, D)
"""),
    "causal_attention/loops_over_heads": causal_attention(
        "a Python loop over the heads, one attention per head", """
        n = 0 if cache is None else len(cache)
        if cache is not None:
            k, v = cache.update(k, v)
        allowed = torch.ones(t, n + t, dtype=torch.bool).tril(diagonal=n)
        heads = []
        for h in range(H):
            heads.append(F.scaled_dot_product_attention(q[:, h], k[:, h], v[:, h], attn_mask=allowed))
        out = torch.stack(heads, dim=1)
""", ["causal_attention_full"]),
    "causal_attention/loops_over_query_positions": causal_attention(
        "a Python loop over the new positions, each query attending to the keys up to its own position", """
        n = 0 if cache is None else len(cache)
        if cache is not None:
            k, v = cache.update(k, v)
        rows = []
        for i in range(t):
            rows.append(F.scaled_dot_product_attention(q[:, :, i:i + 1], k[:, :, :n + i + 1], v[:, :, :n + i + 1]))
        out = torch.cat(rows, dim=2)
""", ["causal_attention_full"]),

    # --- apply_rotary ----------------------------------------------------------------------------------------
    "rotary/pairs_i_and_i_plus_half": rotary(
        "pairs (i, i + d/2) rotated together instead of (2i, 2i+1)", ["rotary_visible", "rotary_values"], rotate="""
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    a, b = x[..., :d // 2], x[..., d // 2:]
    return torch.cat((a * cos - b * sin, a * sin + b * cos), dim=-1)
"""),
    "rotary/exponent_off_by_two": rotary(
        "frequencies base^(-i/d): the exponent's factor 2 forgotten", ["rotary_visible", "rotary_values"], angles="""
    freqs = base ** (-torch.arange(0, d // 2, dtype=torch.float64) / d)
    angles = positions.double()[:, None] * freqs
"""),
    "rotary/positions_start_at_one": rotary(
        "positions counted from 1", ["rotary_visible", "rotary_values"], angles="""
    freqs = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = (positions.double()[:, None] + 1) * freqs
"""),
    "rotary/positions_ignored": rotary(
        "the positions argument ignored: row t rotated as position t", ["rotary_values"], angles="""
    freqs = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = torch.arange(x.size(-2), dtype=torch.float64)[:, None] * freqs
"""),
    "rotary/rotated_the_wrong_way": rotary(
        "rotation by minus the angle", ["rotary_visible", "rotary_values"], rotate="""
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((a * cos + b * sin, -a * sin + b * cos), dim=-1).flatten(-2)
"""),
    "rotary/sin_and_cos_swapped": rotary(
        "sin and cos swapped", ["rotary_visible", "rotary_values"], rotate="""
    cos, sin = angles.sin().to(x.dtype), angles.cos().to(x.dtype)
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)
"""),
    "rotary/base_ignored": rotary(
        "the base argument ignored (10000 hard-coded)", ["rotary_visible", "rotary_values"], angles="""
    freqs = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = positions.double()[:, None] * freqs
"""),
    "rotary/no_value_error": rotary(
        "an odd d is not refused (the last coordinate is dropped)", ["rotary_visible", "rotary_properties"],
        check="    d = x.size(-1) // 2 * 2\n    x = x[..., :d]\n"),
    "rotary/float32_angles": rotary(
        "angles computed in float32 whatever the input (as Meta's Llama reference does)",
        ["rotary_visible", "rotary_values", "rotary_properties"], angles="""
    freqs = base ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)
    angles = positions.float()[:, None] * freqs
"""),
    "rotary/loops_over_positions": rotary(
        "a Python loop over the positions, one row rotated at a time", ["rotary_properties"], angles="""
    freqs = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
""", rotate="""
    rows = []
    for row, p in enumerate(positions.tolist()):
        angles = p * freqs
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        a, b = x[..., row, 0::2], x[..., row, 1::2]
        rows.append(torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2))
    return torch.stack(rows, dim=-2)
"""),
    "rotary/loops_over_pairs": rotary(
        "a Python loop over the pairs of coordinates, one pair rotated at a time", ["rotary_properties"], rotate="""
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    out = x.clone()
    for i in range(d // 2):
        a, b = x[..., 2 * i], x[..., 2 * i + 1]
        out[..., 2 * i] = a * cos[:, i] - b * sin[:, i]
        out[..., 2 * i + 1] = a * sin[:, i] + b * cos[:, i]
    return out
"""),

    # --- GroupedQueryAttention -------------------------------------------------------------------------------
    "gqa/repeat_instead_of_repeat_interleave": gqa(
        "kv heads tiled with repeat: query head h reads kv head h % num_kv_heads", ["gqa_matches_sdpa", "gqa_masks"],
        share="""
        k = k.repeat(1, H // H_kv, 1, 1)
        v = v.repeat(1, H // H_kv, 1, 1)
"""),
    "gqa/every_query_head_reads_kv_head_0": gqa(
        "only the first kv head used, for every query head", ["gqa_matches_sdpa", "gqa_masks"], share="""
        k = k[:, :1].expand(B, H, T, d)
        v = v[:, :1].expand(B, H, T, d)
"""),
    "gqa/full_width_key_value_projections": gqa(
        "W_k and W_v of full width D (no memory saved), sliced in forward", GQA_CELLS,
        layers=GQA_LAYERS.replace("num_kv_heads * self.head_dim", "d_model"), project="""
        B, T, D = x.shape
        H, H_kv, d = self.num_heads, self.num_kv_heads, self.head_dim
        q = self.W_q(x).view(B, T, H, d).transpose(1, 2)
        k = self.W_k(x)[..., :H_kv * d].reshape(B, T, H_kv, d).transpose(1, 2)
        v = self.W_v(x)[..., :H_kv * d].reshape(B, T, H_kv, d).transpose(1, 2)
"""),
    "gqa/scaled_by_d_model": gqa(
        "scores scaled by 1/sqrt(D) instead of 1/sqrt(d)", ["gqa_matches_sdpa", "gqa_masks"], scores="""
        s = q @ k.mT / math.sqrt(D)
"""),
    "gqa/mask_ignored": gqa("the mask is never applied", ["gqa_masks"], softmax="""
        w = torch.softmax(s, dim=-1)
"""),
    "gqa/mask_inverted": gqa("True taken to mean 'blocked'", ["gqa_masks"], softmax="""
        if mask is not None:
            s = s.masked_fill(mask, torch.finfo(s.dtype).min)
        w = torch.softmax(s, dim=-1)
        if mask is not None:
            w = w * ~mask
"""),
    "gqa/fully_masked_query_gives_nan": gqa("-inf and a plain softmax: a fully masked query gives NaN", ["gqa_masks"],
                                            softmax="""
        if mask is not None:
            s = s.masked_fill(~mask, -math.inf)
        w = torch.softmax(s, dim=-1)
"""),
    "gqa/no_value_error_for_groups": gqa(
        "num_heads not divisible by num_kv_heads is accepted", ["gqa_visible", "gqa_parameters"], check="""
        if d_model % num_heads:
            raise ValueError("d_model % num_heads must be 0")
"""),
    "gqa/heads_without_transpose": gqa(
        "heads made by a view to (B, H, T, d) without the transpose", ["gqa_matches_sdpa", "gqa_masks"], project="""
        B, T, D = x.shape
        H, H_kv, d = self.num_heads, self.num_kv_heads, self.head_dim
        q = self.W_q(x).view(B, H, T, d)
        k = self.W_k(x).view(B, H_kv, T, d)
        v = self.W_v(x).view(B, H_kv, T, d)
"""),
    "gqa/loops_over_query_heads": gqa(
        "a Python loop over the query heads, each with its kv head", ["gqa_no_loops"], share="", scores="", softmax="", out="""
        outs, ws = [], []
        for h in range(H):
            s = q[:, h] @ k[:, h // (H // H_kv)].mT / math.sqrt(d)
            if mask is not None:
                allowed = torch.broadcast_to(mask, (B, H, T, T))[:, h]
                s = s.masked_fill(~allowed, torch.finfo(s.dtype).min)
            w = torch.softmax(s, dim=-1)
            if mask is not None:
                w = w * allowed
            outs.append(w @ v[:, h // (H // H_kv)])
            ws.append(w)
        return self.W_o(torch.stack(outs, dim=1).transpose(1, 2).reshape(B, T, D)), torch.stack(ws, dim=1)
"""),
}


# --- merge_attention --------------------------------------------------------------------------------------
MERGE_SIGNATURE = "merge_attention(out_a, lse_a, out_b, lse_b)"
MERGE_REFERENCE = """
    m = torch.maximum(lse_a, lse_b)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
"""
MERGE_WEIGHTS = """
    w_a, w_b = torch.exp(lse_a - m), torch.exp(lse_b - m)
    total = w_a + w_b
    lse = m + torch.log(total)
"""
MERGE_OUT = """
    out = (w_a[..., None] * out_a + w_b[..., None] * out_b) / total.clamp_min(1.0)[..., None]
    return out, lse
"""
MERGE_CELLS = ["merge_attention_visible", "merge_attention_folds", "merge_attention_edges"]


def merge(why, fails, reference=MERGE_REFERENCE, weights=MERGE_WEIGHTS, out=MERGE_OUT):
    body = "\n".join(part.strip("\n") for part in (reference, weights, out) if part.strip())
    return function_mutant("merge_attention", MERGE_SIGNATURE, body, why, fails)


MERGE_MUTANTS = {
    "merge/max_instead_of_logsumexp": merge("the merged lse is the larger of the two lse", MERGE_CELLS, weights="""
    w_a, w_b = torch.exp(lse_a - m), torch.exp(lse_b - m)
    total = w_a + w_b
    lse = torch.maximum(lse_a, lse_b)
"""),
    "merge/weights_not_renormalised": merge("the outputs weighed by exp(lse - max) but not divided by their sum",
                                            MERGE_CELLS, out="""
    out = w_a[..., None] * out_a + w_b[..., None] * out_b
    return out, lse
"""),
    "merge/nan_on_empty_rows": merge("the larger lse subtracted even when it is -inf: NaN where neither side has a key",
                                     ["merge_attention_visible", "merge_attention_edges"],
                                     reference="    m = torch.maximum(lse_a, lse_b)\n"),
    "merge/lse_in_log2": merge("base 2 mixed in: weights 2^(lse - max) and log2 of their sum", MERGE_CELLS, weights="""
    w_a, w_b = torch.pow(2.0, lse_a - m), torch.pow(2.0, lse_b - m)
    total = w_a + w_b
    lse = m + torch.log2(total)
"""),
    "merge/no_maximum_subtracted": merge("exp of the raw lse: overflows for large scores",
                                         ["merge_attention_visible", "merge_attention_edges"], reference="", weights="""
    w_a, w_b = torch.exp(lse_a), torch.exp(lse_b)
    total = w_a + w_b
    lse = torch.log(total)
""", out="""
    out = (w_a[..., None] * out_a + w_b[..., None] * out_b) / torch.where(total > 0, total, 1.0)[..., None]
    return out, lse
"""),
    "merge/outputs_averaged": merge("the two outputs averaged with equal weights", MERGE_CELLS, out="""
    out = torch.where(torch.isfinite(lse_a)[..., None] & torch.isfinite(lse_b)[..., None], (out_a + out_b) / 2, out_a + out_b)
    return out, lse
"""),
    "merge/lse_added": merge("the two lse added (as if the sums were multiplied)", MERGE_CELLS, weights="""
    w_a, w_b = torch.exp(lse_a - m), torch.exp(lse_b - m)
    total = w_a + w_b
    lse = lse_a + lse_b
"""),
    "merge/loops_over_rows": function_mutant("merge_attention", MERGE_SIGNATURE, """
    out, lse = torch.zeros_like(out_a), torch.full_like(lse_a, -math.inf)
    for i in range(lse_a.shape[-1]):
        la, lb = lse_a[..., i], lse_b[..., i]
        m = torch.maximum(la, lb)
        m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
        w_a, w_b = torch.exp(la - m), torch.exp(lb - m)
        lse[..., i] = m + torch.log(w_a + w_b)
        out[..., i, :] = (w_a[..., None] * out_a[..., i, :] + w_b[..., None] * out_b[..., i, :]) / (w_a + w_b).clamp_min(1.0)[..., None]
    return out, lse
""", "a Python loop over the query rows", ["merge_attention_edges"]),
}
MUTANTS.update(MERGE_MUTANTS)

MISCONCEPTION_OF = {
    "online_softmax/accumulator_not_rescaled": "online.accumulator-not-rescaled",
    "online_softmax/normaliser_not_rescaled": "online.normaliser-not-rescaled",
    "online_softmax/block_max_never_combined": "online.block-max-not-combined",
    "online_softmax/no_maximum_subtracted": "online.overflow",
    "online_softmax/causal_off_by_one": "online.causal-off-by-one",
    "online_softmax/causal_mask_ignores_block_start": "online.causal-block-local",
    "online_softmax/no_value_error": "online.no-value-error",
    "online_softmax/scaled_by_value_width": "online.scaled-by-d-v",
    "online_softmax/block_size_ignored": "online.block-size-ignored",
    "online_softmax/materialises_the_full_matrix": "online.full-score-matrix",
    "online_softmax/keeps_every_block": "online.keeps-every-block",
    "online_softmax/calls_fused_attention": "online.calls-fused-attention",
    "online_softmax/leaves_torch_for_numpy": "online.leaves-torch",
    "online_softmax/query_chunks": "online.query-chunks",
    "online_softmax/loops_over_query_rows": "online.loops-over-queries",
    "online_softmax/lse_is_the_running_max": "online.lse-is-max",
    "online_softmax/lse_in_log2": "online.lse-log2",
    "online_softmax/lse_from_a_full_row": "online.lse-from-full-row",
    "online_softmax/nan_without_keys": "online.nan-without-keys",
    "merge/max_instead_of_logsumexp": "merge.max-not-logsumexp",
    "merge/weights_not_renormalised": "merge.not-renormalised",
    "merge/nan_on_empty_rows": "merge.nan-empty-rows",
    "merge/lse_in_log2": "merge.log2",
    "merge/no_maximum_subtracted": "merge.overflow",
    "merge/outputs_averaged": "merge.equal-weights",
    "merge/lse_added": "merge.lse-added",
    "merge/loops_over_rows": "merge.python-loop",
    "kvcache/appended_along_heads": "kvcache.wrong-axis",
    "kvcache/appended_along_features": "kvcache.wrong-axis",
    "kvcache/returns_only_the_new_positions": "kvcache.returns-new-only",
    "kvcache/new_positions_prepended": "kvcache.prepended",
    "kvcache/keys_and_values_swapped": "kvcache.keys-values-swapped",
    "kvcache/len_counts_calls": "kvcache.len-counts-calls",
    "kvcache/len_is_the_batch_size": "kvcache.len-batch-size",
    "kvcache/shared_class_attribute": "kvcache.shared-storage",
    "causal_attention/top_left_alignment": "csa.top-left-mask",
    "causal_attention/mask_dropped_after_prefill": "csa.no-mask-after-prefill",
    "causal_attention/offset_read_after_update": "csa.offset-after-update",
    "causal_attention/cached_keys_unused": "csa.cache-unused",
    "causal_attention/no_mask_without_cache": "csa.no-mask-without-cache",
    "causal_attention/scaled_by_d_model": "csa.scaled-by-d-model",
    "causal_attention/query_cannot_see_itself": "csa.strict-mask",
    "causal_attention/heads_without_transpose": "csa.heads-without-transpose",
    "causal_attention/missing_output_projection": "csa.no-output-projection",
    "causal_attention/loops_over_heads": "csa.loops-over-heads",
    "causal_attention/loops_over_query_positions": "csa.loops-over-positions",
    "rotary/pairs_i_and_i_plus_half": "rope.half-pairs",
    "rotary/exponent_off_by_two": "rope.frequency-exponent",
    "rotary/positions_start_at_one": "rope.positions-shifted",
    "rotary/positions_ignored": "rope.positions-ignored",
    "rotary/rotated_the_wrong_way": "rope.wrong-direction",
    "rotary/sin_and_cos_swapped": "rope.sin-cos-swapped",
    "rotary/base_ignored": "rope.base-ignored",
    "rotary/no_value_error": "rope.no-value-error",
    "rotary/float32_angles": "rope.float32-angles",
    "rotary/loops_over_positions": "rope.loops-over-positions",
    "rotary/loops_over_pairs": "rope.loops-over-pairs",
    "gqa/repeat_instead_of_repeat_interleave": "gqa.repeat-not-interleave",
    "gqa/every_query_head_reads_kv_head_0": "gqa.only-first-kv-head",
    "gqa/full_width_key_value_projections": "gqa.full-width-kv",
    "gqa/scaled_by_d_model": "gqa.scaled-by-d-model",
    "gqa/mask_ignored": "gqa.mask-ignored",
    "gqa/mask_inverted": "gqa.mask-inverted",
    "gqa/fully_masked_query_gives_nan": "gqa.nan-fully-masked",
    "gqa/no_value_error_for_groups": "gqa.no-value-error",
    "gqa/heads_without_transpose": "gqa.heads-without-transpose",
    "gqa/loops_over_query_heads": "gqa.python-loop",
}

# The edit of each mutant's source that does what its misconception's `fix` says, and nothing more
# (a student following the feedback's advice): the edited cell must be correct (tests/test_diagnostics.py).
OS_RUNNING_MAX = """
        m_new = torch.maximum(m, s.amax(-1, keepdim=True))
        p = torch.exp(s - m_new)
        l = l * torch.exp(m - m_new) + p.sum(-1, keepdim=True)
        o = o * torch.exp(m - m_new) + p @ vb
        m = m_new
"""
CSA_CAUSAL_MASK = "attn_mask=torch.ones(t, n + t, dtype=torch.bool).tril(diagonal=n)"

FIXES = {
    # --- online_softmax_attention
    "online_softmax/accumulator_not_rescaled": ("        o = o + p @ vb\n",
                                                "        o = o * torch.exp(m - m_new) + p @ vb\n"),
    "online_softmax/normaliser_not_rescaled": ("        l = l + p.sum(-1, keepdim=True)\n",
                                               "        l = l * torch.exp(m - m_new) + p.sum(-1, keepdim=True)\n"),
    "online_softmax/block_max_never_combined": ("""
        p = torch.exp(s - s.amax(-1, keepdim=True))
        l = l + p.sum(-1, keepdim=True)
        o = o + p @ vb
""", OS_RUNNING_MAX),
    "online_softmax/no_maximum_subtracted": ("""
        p = torch.exp(s)
        l = l + p.sum(-1, keepdim=True)
        o = o + p @ vb
""", OS_RUNNING_MAX),
    "online_softmax/causal_off_by_one": ("cols > rows + 1", "cols > rows"),
    "online_softmax/causal_mask_ignores_block_start": ("cols = torch.arange(kb.size(-2))",
                                                       "cols = torch.arange(start, start + kb.size(-2))"),
    "online_softmax/no_value_error": ("    T_q, T_k = query.size(-2), key.size(-2)\n",
                                      "    T_q, T_k = query.size(-2), key.size(-2)\n"
                                      "    if causal and T_q != T_k:\n"
                                      "        raise ValueError(\"causal attention needs T_q == T_k\")\n"),
    "online_softmax/scaled_by_value_width": ("math.sqrt(value.size(-1))", "math.sqrt(query.size(-1))"),
    "online_softmax/block_size_ignored": ("""
    for start in range(0, T_k, 128):
        kb = key[..., start:start + 128, :]
        vb = value[..., start:start + 128, :]
""", """
    for start in range(0, T_k, block_size):
        kb = key[..., start:start + block_size, :]
        vb = value[..., start:start + block_size, :]
"""),
    "online_softmax/materialises_the_full_matrix": ("""
    scores = query @ key.mT / math.sqrt(query.size(-1))
    if causal:
        scores = scores.masked_fill(torch.ones(T_q, T_k, dtype=torch.bool).triu(1), -math.inf)
    return torch.softmax(scores, dim=-1) @ value
""", "\n" + OS_BLOCKWISE),
    "online_softmax/keeps_every_block": ("""
    blocks = [q @ key[..., start:start + block_size, :].mT for start in range(0, T_k, block_size)]
    if causal:
        blocks = [b.masked_fill(torch.arange(i * block_size, i * block_size + b.size(-1)) > torch.arange(T_q)[:, None], -math.inf)
                  for i, b in enumerate(blocks)]
    m = torch.stack([b.amax(-1) for b in blocks], dim=-1).amax(-1, keepdim=True)
    p = [torch.exp(b - m) for b in blocks]
    l = sum(x.sum(-1, keepdim=True) for x in p)
    o = sum(x @ value[..., i * block_size:(i + 1) * block_size, :] for i, x in enumerate(p))
    return o / l
""", """
    m = q.new_full(q.shape[:-1] + (1,), -math.inf)
    l = q.new_zeros(q.shape[:-1] + (1,))
    o = q.new_zeros(q.shape[:-1] + value.shape[-1:])
    for start in range(0, T_k, block_size):
        b = q @ key[..., start:start + block_size, :].mT
        if causal:
            b = b.masked_fill(torch.arange(start, start + b.size(-1)) > torch.arange(T_q)[:, None], -math.inf)
        m_new = torch.maximum(m, b.amax(-1, keepdim=True))
        x = torch.exp(b - m_new)
        l = l * torch.exp(m - m_new) + x.sum(-1, keepdim=True)
        o = o * torch.exp(m - m_new) + x @ value[..., start:start + block_size, :]
        m = m_new
""" + OS_RETURN.lstrip("\n")),
    "online_softmax/calls_fused_attention": (
        "    return F.scaled_dot_product_attention(query, key, value, is_causal=causal)\n", OS_BLOCKWISE),
    "online_softmax/leaves_torch_for_numpy": ("""
    import numpy as np
    q, k, v = query.detach().numpy(), key.detach().numpy(), value.detach().numpy()
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if causal:
        s = np.where(np.tril(np.ones((T_q, T_k), dtype=bool)), s, -np.inf)
    w = np.exp(s - s.max(-1, keepdims=True))
    return torch.from_numpy(w / w.sum(-1, keepdims=True) @ v)
""", "\n" + OS_BLOCKWISE),
    "online_softmax/lse_is_the_running_max": ("m.squeeze(-1)", "(m + torch.log(l)).squeeze(-1)"),
    "online_softmax/lse_in_log2": ("((m + torch.log(l)) / math.log(2)).squeeze(-1)", "(m + torch.log(l)).squeeze(-1)"),
    "online_softmax/nan_without_keys": ("out = o / l\n", "out = o / l.clamp_min(1.0)\n"),
    # --- merge_attention
    "merge/max_instead_of_logsumexp": ("lse = torch.maximum(lse_a, lse_b)", "lse = m + torch.log(total)"),
    "merge/weights_not_renormalised": ("out = w_a[..., None] * out_a + w_b[..., None] * out_b\n",
                                       "out = (w_a[..., None] * out_a + w_b[..., None] * out_b) / total.clamp_min(1.0)[..., None]\n"),
    "merge/nan_on_empty_rows": ("    m = torch.maximum(lse_a, lse_b)\n", MERGE_REFERENCE.lstrip("\n")),
    "merge/lse_in_log2": ("""
    w_a, w_b = torch.pow(2.0, lse_a - m), torch.pow(2.0, lse_b - m)
    total = w_a + w_b
    lse = m + torch.log2(total)
""", MERGE_WEIGHTS),
    "merge/lse_added": ("lse = lse_a + lse_b", "lse = m + torch.log(total)"),
    # --- KVCache
    "kvcache/appended_along_heads": ("dim=1)\n            self.values = torch.cat([self.values, v], dim=1)",
                                     "dim=2)\n            self.values = torch.cat([self.values, v], dim=2)"),
    "kvcache/appended_along_features": ("dim=-1)\n            self.values = torch.cat([self.values, v], dim=-1)",
                                        "dim=2)\n            self.values = torch.cat([self.values, v], dim=2)"),
    "kvcache/returns_only_the_new_positions": ("return k, v", "return self.keys, self.values"),
    "kvcache/new_positions_prepended": ("torch.cat([k, self.keys], dim=2)\n"
                                        "            self.values = torch.cat([v, self.values], dim=2)",
                                        "torch.cat([self.keys, k], dim=2)\n"
                                        "            self.values = torch.cat([self.values, v], dim=2)"),
    "kvcache/keys_and_values_swapped": ("return self.values, self.keys", "return self.keys, self.values"),
    "kvcache/len_counts_calls": ("        return self.calls\n", LEN_POSITIONS + "\n"),
    "kvcache/len_is_the_batch_size": ("self.keys.shape[0]", "self.keys.shape[2]"),
    "kvcache/shared_class_attribute": ("    keys = []\n    values = []\n",
                                       "    def __init__(self):\n        self.keys, self.values = [], []\n"),
    # --- CausalSelfAttention
    "causal_attention/top_left_alignment": ("""
        if cache is not None:
            k, v = cache.update(k, v)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
""", f"""
        n = 0 if cache is None else len(cache)
        if cache is not None:
            k, v = cache.update(k, v)
        out = F.scaled_dot_product_attention(q, k, v, {CSA_CAUSAL_MASK})
"""),
    "causal_attention/mask_dropped_after_prefill": ("is_causal=(n == 0)", CSA_CAUSAL_MASK),
    "causal_attention/offset_read_after_update": ("""
        if cache is not None:
            k, v = cache.update(k, v)
        n = 0 if cache is None else len(cache)
""", """
        n = 0 if cache is None else len(cache)
        if cache is not None:
            k, v = cache.update(k, v)
"""),
    "causal_attention/cached_keys_unused": ("""
        if cache is not None:
            cache.update(k, v)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
""", f"""
        n = 0 if cache is None else len(cache)
        if cache is not None:
            k, v = cache.update(k, v)
        out = F.scaled_dot_product_attention(q, k, v, {CSA_CAUSAL_MASK})
"""),
    "causal_attention/no_mask_without_cache": ("            out = F.scaled_dot_product_attention(q, k, v)\n",
                                               f"            out = F.scaled_dot_product_attention(q, k, v, {CSA_CAUSAL_MASK})\n"),
    "causal_attention/scaled_by_d_model": ("math.sqrt(D)", "math.sqrt(D // H)"),
    "causal_attention/query_cannot_see_itself": ("diagonal=n - 1", "diagonal=n"),
    "causal_attention/heads_without_transpose": ("""
        q = self.W_q(x).view(B, H, t, D // H)
        k = self.W_k(x).view(B, H, t, D // H)
        v = self.W_v(x).view(B, H, t, D // H)
        n = 0 if cache is None else len(cache)
        if cache is not None:
            k, v = cache.update(k, v)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(t, n + t, dtype=torch.bool).tril(diagonal=n))
        return self.W_o(out.reshape(B, t, D))
""", """
        q = self.W_q(x).view(B, t, H, D // H).transpose(1, 2)
        k = self.W_k(x).view(B, t, H, D // H).transpose(1, 2)
        v = self.W_v(x).view(B, t, H, D // H).transpose(1, 2)
        n = 0 if cache is None else len(cache)
        if cache is not None:
            k, v = cache.update(k, v)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(t, n + t, dtype=torch.bool).tril(diagonal=n))
        return self.W_o(out.transpose(1, 2).reshape(B, t, D))
"""),
    "causal_attention/missing_output_projection": ("return out.transpose(1, 2).reshape(B, t, D)",
                                                   "return self.W_o(out.transpose(1, 2).reshape(B, t, D))"),
    "causal_attention/loops_over_heads": ("""
        heads = []
        for h in range(H):
            heads.append(F.scaled_dot_product_attention(q[:, h], k[:, h], v[:, h], attn_mask=allowed))
        out = torch.stack(heads, dim=1)
""", """
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
"""),
    "causal_attention/loops_over_query_positions": ("""
        rows = []
        for i in range(t):
            rows.append(F.scaled_dot_product_attention(q[:, :, i:i + 1], k[:, :, :n + i + 1], v[:, :, :n + i + 1]))
        out = torch.cat(rows, dim=2)
""", f"""
        out = F.scaled_dot_product_attention(q, k, v, {CSA_CAUSAL_MASK})
"""),
    # --- apply_rotary
    "rotary/pairs_i_and_i_plus_half": ("""
    a, b = x[..., :d // 2], x[..., d // 2:]
    return torch.cat((a * cos - b * sin, a * sin + b * cos), dim=-1)
""", """
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)
"""),
    "rotary/exponent_off_by_two": ("torch.arange(0, d // 2, dtype", "torch.arange(0, d, 2, dtype"),
    "rotary/positions_start_at_one": ("(positions.double()[:, None] + 1)", "positions.double()[:, None]"),
    "rotary/positions_ignored": ("torch.arange(x.size(-2), dtype=torch.float64)[:, None]", "positions.double()[:, None]"),
    "rotary/rotated_the_wrong_way": ("(a * cos + b * sin, -a * sin + b * cos)", "(a * cos - b * sin, a * sin + b * cos)"),
    "rotary/sin_and_cos_swapped": ("cos, sin = angles.sin().to(x.dtype), angles.cos().to(x.dtype)",
                                   "cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)"),
    "rotary/base_ignored": ("freqs = 10000.0 **", "freqs = base **"),
    "rotary/float32_angles": ("""
    freqs = base ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)
    angles = positions.float()[:, None] * freqs
""", ROPE_ANGLES),
    "rotary/loops_over_positions": ("""
    freqs = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    rows = []
    for row, p in enumerate(positions.tolist()):
        angles = p * freqs
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        a, b = x[..., row, 0::2], x[..., row, 1::2]
        rows.append(torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2))
    return torch.stack(rows, dim=-2)
""", ROPE_ANGLES + ROPE_ROTATE.lstrip("\n")),
    "rotary/loops_over_pairs": ("""
    out = x.clone()
    for i in range(d // 2):
        a, b = x[..., 2 * i], x[..., 2 * i + 1]
        out[..., 2 * i] = a * cos[:, i] - b * sin[:, i]
        out[..., 2 * i + 1] = a * sin[:, i] + b * cos[:, i]
    return out
""", """
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)
"""),
    "rotary/no_value_error": ("    d = x.size(-1) // 2 * 2\n",
                              "    if x.size(-1) % 2:\n        raise ValueError(\"d must be even\")\n"
                              "    d = x.size(-1) // 2 * 2\n"),
    # --- GroupedQueryAttention
    "gqa/repeat_instead_of_repeat_interleave": ("""
        k = k.repeat(1, H // H_kv, 1, 1)
        v = v.repeat(1, H // H_kv, 1, 1)
""", GQA_SHARE),
    "gqa/every_query_head_reads_kv_head_0": ("""
        k = k[:, :1].expand(B, H, T, d)
        v = v[:, :1].expand(B, H, T, d)
""", GQA_SHARE),
    "gqa/full_width_key_value_projections": ("""
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)

    def forward(self, x, mask=None):
        B, T, D = x.shape
        H, H_kv, d = self.num_heads, self.num_kv_heads, self.head_dim
        q = self.W_q(x).view(B, T, H, d).transpose(1, 2)
        k = self.W_k(x)[..., :H_kv * d].reshape(B, T, H_kv, d).transpose(1, 2)
        v = self.W_v(x)[..., :H_kv * d].reshape(B, T, H_kv, d).transpose(1, 2)
""", """
        self.W_k = nn.Linear(d_model, num_kv_heads * self.head_dim)
        self.W_v = nn.Linear(d_model, num_kv_heads * self.head_dim)
        self.W_o = nn.Linear(d_model, d_model)

    def forward(self, x, mask=None):
        B, T, D = x.shape
        H, H_kv, d = self.num_heads, self.num_kv_heads, self.head_dim
        q = self.W_q(x).view(B, T, H, d).transpose(1, 2)
        k = self.W_k(x).reshape(B, T, H_kv, d).transpose(1, 2)
        v = self.W_v(x).reshape(B, T, H_kv, d).transpose(1, 2)
"""),
    "gqa/scaled_by_d_model": ("math.sqrt(D)", "math.sqrt(d)"),
    "gqa/mask_ignored": ("\n        w = torch.softmax(s, dim=-1)\n", GQA_SOFTMAX),
    "gqa/mask_inverted": ("""
            s = s.masked_fill(mask, torch.finfo(s.dtype).min)
        w = torch.softmax(s, dim=-1)
        if mask is not None:
            w = w * ~mask
""", """
            s = s.masked_fill(~mask, torch.finfo(s.dtype).min)
        w = torch.softmax(s, dim=-1)
        if mask is not None:
            w = w * mask
"""),
    "gqa/fully_masked_query_gives_nan": ("""
            s = s.masked_fill(~mask, -math.inf)
        w = torch.softmax(s, dim=-1)
""", """
            s = s.masked_fill(~mask, torch.finfo(s.dtype).min)
        w = torch.softmax(s, dim=-1)
        if mask is not None:
            w = w * mask
"""),
    "gqa/no_value_error_for_groups": ("""
        if d_model % num_heads:
            raise ValueError("d_model % num_heads must be 0")
""", """
        if d_model % num_heads or num_heads % num_kv_heads:
            raise ValueError("d_model % num_heads and num_heads % num_kv_heads must be 0")
"""),
    "gqa/heads_without_transpose": ("""
        q = self.W_q(x).view(B, H, T, d)
        k = self.W_k(x).view(B, H_kv, T, d)
        v = self.W_v(x).view(B, H_kv, T, d)
""", """
        q = self.W_q(x).view(B, T, H, d).transpose(1, 2)
        k = self.W_k(x).view(B, T, H_kv, d).transpose(1, 2)
        v = self.W_v(x).view(B, T, H_kv, d).transpose(1, 2)
"""),
}


def _body(name):
    """Everything after the def line of a mutant's source (for fixes that rewrite the whole body)."""
    return MUTANTS[name].source.split(":\n", 1)[1]


def _after_check(name):
    return MUTANTS[name].source.split(OS_CHECK.strip("\n"), 1)[1]


MERGE_BODY = "\n".join(part.strip("\n") for part in (MERGE_REFERENCE, MERGE_WEIGHTS, MERGE_OUT)) + "\n"
FIXES.update({
    "online_softmax/query_chunks": (_after_check("online_softmax/query_chunks"), "\n" + OS_BLOCKWISE),
    "online_softmax/loops_over_query_rows": (_after_check("online_softmax/loops_over_query_rows"), "\n" + OS_BLOCKWISE),
    "online_softmax/lse_from_a_full_row": (
        "torch.logsumexp((q @ key.mT).masked_fill(torch.ones(T_q, T_k, dtype=torch.bool).triu(1) & causal, -math.inf), dim=-1)",
        "(m + torch.log(l)).squeeze(-1)"),
    "gqa/loops_over_query_heads": (
        MUTANTS["gqa/loops_over_query_heads"].source.split("v = self.W_v(x).view(B, T, H_kv, d).transpose(1, 2)\n", 1)[1],
        "\n".join(part.strip("\n") for part in (GQA_SHARE, GQA_SCORES, GQA_SOFTMAX, GQA_OUT)) + "\n"),
    "merge/loops_over_rows": (_body("merge/loops_over_rows"), MERGE_BODY),
    "merge/no_maximum_subtracted": (_body("merge/no_maximum_subtracted"), MERGE_BODY),
    "merge/outputs_averaged": (_body("merge/outputs_averaged"), MERGE_BODY),
})
