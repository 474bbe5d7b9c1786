"""The mistakes of 05_attention_at_scale, each declared once: what the student believed, the fix, the book section, and the
wrong code (autograder/mistakes.py explains what is derived from them). Never released to students."""
from autograder.mistakes import Mistake, Wrong

MISTAKES = [
    # --- online_softmax_attention ----------------------------------------------------------------------------
    Mistake("online.accumulator-not-rescaled", "online_softmax_attention",
            believed="the accumulator o is not rescaled when the running maximum changes",
            fix="multiply the accumulator by exp(m_old - m_new) before adding the new block's weights @ values: o = o * exp(m_old - m_new) + exp(s - m_new) @ v_block",
            section="ch05-online-output",
            wrong=[
                Wrong("online_softmax/accumulator_not_rescaled",
                      source="""\
def online_softmax_attention(query, key, value, block_size=128, causal=False, return_lse=False):
    T_q, T_k = query.size(-2), key.size(-2)
    if causal and T_q != T_k:
        raise ValueError("causal attention needs T_q == T_k")
    q = query / math.sqrt(query.size(-1))
    m = q.new_full(q.shape[:-1] + (1,), -math.inf)
    l = q.new_zeros(q.shape[:-1] + (1,))
    o = q.new_zeros(q.shape[:-1] + value.shape[-1:])
    rows = torch.arange(T_q).unsqueeze(-1)
    for start in range(0, T_k, block_size):
        kb = key[..., start:start + block_size, :]
        vb = value[..., start:start + block_size, :]
        s = q @ kb.mT
        if causal:
            cols = torch.arange(start, start + kb.size(-2))
            s = s.masked_fill(cols > rows, -math.inf)
        m_new = torch.maximum(m, s.amax(-1, keepdim=True))
        p = torch.exp(s - m_new)
        l = l * torch.exp(m - m_new) + p.sum(-1, keepdim=True)
        o = o + p @ vb
        m = m_new
    out = o / l.clamp_min(1.0)
    if return_lse:
        return out, (m + torch.log(l)).squeeze(-1)
    return out
""",
                      fixed=("        o = o + p @ vb\n", "        o = o * torch.exp(m - m_new) + p @ vb\n"),
                      fails=("online_softmax_visible", "online_softmax_matches_sdpa", "online_softmax_causal", "online_softmax_large_scores", "online_softmax_memory", "online_softmax_lse")),
            ]),
    Mistake("online.normaliser-not-rescaled", "online_softmax_attention",
            believed="the normaliser l is not rescaled when the running maximum changes",
            fix="multiply the normaliser by exp(m_old - m_new) before adding the new block's sum: l = l * exp(m_old - m_new) + exp(s - m_new).sum(-1, keepdim=True)",
            section="ch05-running-max",
            wrong=[
                Wrong("online_softmax/normaliser_not_rescaled",
                      source="""\
def online_softmax_attention(query, key, value, block_size=128, causal=False, return_lse=False):
    T_q, T_k = query.size(-2), key.size(-2)
    if causal and T_q != T_k:
        raise ValueError("causal attention needs T_q == T_k")
    q = query / math.sqrt(query.size(-1))
    m = q.new_full(q.shape[:-1] + (1,), -math.inf)
    l = q.new_zeros(q.shape[:-1] + (1,))
    o = q.new_zeros(q.shape[:-1] + value.shape[-1:])
    rows = torch.arange(T_q).unsqueeze(-1)
    for start in range(0, T_k, block_size):
        kb = key[..., start:start + block_size, :]
        vb = value[..., start:start + block_size, :]
        s = q @ kb.mT
        if causal:
            cols = torch.arange(start, start + kb.size(-2))
            s = s.masked_fill(cols > rows, -math.inf)
        m_new = torch.maximum(m, s.amax(-1, keepdim=True))
        p = torch.exp(s - m_new)
        l = l + p.sum(-1, keepdim=True)
        o = o * torch.exp(m - m_new) + p @ vb
        m = m_new
    out = o / l.clamp_min(1.0)
    if return_lse:
        return out, (m + torch.log(l)).squeeze(-1)
    return out
""",
                      fixed=("        l = l + p.sum(-1, keepdim=True)\n", "        l = l * torch.exp(m - m_new) + p.sum(-1, keepdim=True)\n"),
                      fails=("online_softmax_visible", "online_softmax_matches_sdpa", "online_softmax_causal", "online_softmax_large_scores", "online_softmax_memory", "online_softmax_lse")),
            ]),
    Mistake("online.block-max-not-combined", "online_softmax_attention",
            believed="each block subtracts its own maximum, and the blocks' sums are added as if they had the same reference",
            fix="keep a running maximum m_new = max(m_old, the block's maximum), subtract m_new from the block's scores, and rescale the normaliser and the accumulator by exp(m_old - m_new) before adding the block",
            section="ch05-running-max",
            wrong=[
                Wrong("online_softmax/block_max_never_combined",
                      source="""\
def online_softmax_attention(query, key, value, block_size=128, causal=False, return_lse=False):
    T_q, T_k = query.size(-2), key.size(-2)
    if causal and T_q != T_k:
        raise ValueError("causal attention needs T_q == T_k")
    q = query / math.sqrt(query.size(-1))
    m = q.new_full(q.shape[:-1] + (1,), -math.inf)
    l = q.new_zeros(q.shape[:-1] + (1,))
    o = q.new_zeros(q.shape[:-1] + value.shape[-1:])
    rows = torch.arange(T_q).unsqueeze(-1)
    for start in range(0, T_k, block_size):
        kb = key[..., start:start + block_size, :]
        vb = value[..., start:start + block_size, :]
        s = q @ kb.mT
        if causal:
            cols = torch.arange(start, start + kb.size(-2))
            s = s.masked_fill(cols > rows, -math.inf)
        p = torch.exp(s - s.amax(-1, keepdim=True))
        l = l + p.sum(-1, keepdim=True)
        o = o + p @ vb
    out = o / l.clamp_min(1.0)
    if return_lse:
        return out, (m + torch.log(l)).squeeze(-1)
    return out
""",
                      fixed=("\n        p = torch.exp(s - s.amax(-1, keepdim=True))\n        l = l + p.sum(-1, keepdim=True)\n        o = o + p @ vb\n", "\n        m_new = torch.maximum(m, s.amax(-1, keepdim=True))\n        p = torch.exp(s - m_new)\n        l = l * torch.exp(m - m_new) + p.sum(-1, keepdim=True)\n        o = o * torch.exp(m - m_new) + p @ vb\n        m = m_new\n"),
                      fails=("online_softmax_visible", "online_softmax_matches_sdpa", "online_softmax_causal", "online_softmax_large_scores", "online_softmax_memory", "online_softmax_lse")),
            ]),
    Mistake("online.overflow", "online_softmax_attention",
            believed="exp of the raw scores overflows for large scores (no maximum subtracted)",
            fix="keep a running maximum m, take exp(s - m_new) of the block's scores, and rescale the normaliser and the accumulator by exp(m_old - m_new) whenever the maximum changes",
            section="ch05-softmax-whole-row",
            wrong=[
                Wrong("online_softmax/no_maximum_subtracted",
                      source="""\
def online_softmax_attention(query, key, value, block_size=128, causal=False, return_lse=False):
    T_q, T_k = query.size(-2), key.size(-2)
    if causal and T_q != T_k:
        raise ValueError("causal attention needs T_q == T_k")
    q = query / math.sqrt(query.size(-1))
    m = q.new_full(q.shape[:-1] + (1,), -math.inf)
    l = q.new_zeros(q.shape[:-1] + (1,))
    o = q.new_zeros(q.shape[:-1] + value.shape[-1:])
    rows = torch.arange(T_q).unsqueeze(-1)
    for start in range(0, T_k, block_size):
        kb = key[..., start:start + block_size, :]
        vb = value[..., start:start + block_size, :]
        s = q @ kb.mT
        if causal:
            cols = torch.arange(start, start + kb.size(-2))
            s = s.masked_fill(cols > rows, -math.inf)
        p = torch.exp(s)
        l = l + p.sum(-1, keepdim=True)
        o = o + p @ vb
    out = o / l.clamp_min(1.0)
    if return_lse:
        return out, (m + torch.log(l)).squeeze(-1)
    return out
""",
                      fixed=("\n        p = torch.exp(s)\n        l = l + p.sum(-1, keepdim=True)\n        o = o + p @ vb\n", "\n        m_new = torch.maximum(m, s.amax(-1, keepdim=True))\n        p = torch.exp(s - m_new)\n        l = l * torch.exp(m - m_new) + p.sum(-1, keepdim=True)\n        o = o * torch.exp(m - m_new) + p @ vb\n        m = m_new\n"),
                      fails=("online_softmax_large_scores",)),
            ]),
    Mistake("online.scaled-by-d-v", "online_softmax_attention",
            believed="the scores are scaled by 1/sqrt(d_v), the width of the values",
            fix="scale by 1/sqrt(d), the width of queries and keys: query.size(-1), not value.size(-1)",
            section="ch05-memory",
            wrong=[
                Wrong("online_softmax/scaled_by_value_width",
                      edit=('query = query / math.sqrt(query.size(-1))',
                            'query = query / math.sqrt(value.size(-1))'),
                      fixed=('math.sqrt(value.size(-1))', 'math.sqrt(query.size(-1))'),
                      fails=("online_softmax_visible", "online_softmax_matches_sdpa", "online_softmax_causal", "online_softmax_memory")),
            ]),
    Mistake("online.causal-off-by-one", "online_softmax_attention",
            believed="with causal=True a query also sees the key just after it",
            fix="mask key j for query i exactly when j > i (the key at the query's own position stays allowed)",
            section="ch05-flash-blocks",
            wrong=[
                Wrong("online_softmax/causal_off_by_one",
                      source="""\
def online_softmax_attention(query, key, value, block_size=128, causal=False, return_lse=False):
    T_q, T_k = query.size(-2), key.size(-2)
    if causal and T_q != T_k:
        raise ValueError("causal attention needs T_q == T_k")
    q = query / math.sqrt(query.size(-1))
    m = q.new_full(q.shape[:-1] + (1,), -math.inf)
    l = q.new_zeros(q.shape[:-1] + (1,))
    o = q.new_zeros(q.shape[:-1] + value.shape[-1:])
    rows = torch.arange(T_q).unsqueeze(-1)
    for start in range(0, T_k, block_size):
        kb = key[..., start:start + block_size, :]
        vb = value[..., start:start + block_size, :]
        s = q @ kb.mT
        if causal:
            cols = torch.arange(start, start + kb.size(-2))
            s = s.masked_fill(cols > rows + 1, -math.inf)
        m_new = torch.maximum(m, s.amax(-1, keepdim=True))
        p = torch.exp(s - m_new)
        l = l * torch.exp(m - m_new) + p.sum(-1, keepdim=True)
        o = o * torch.exp(m - m_new) + p @ vb
        m = m_new
    out = o / l.clamp_min(1.0)
    if return_lse:
        return out, (m + torch.log(l)).squeeze(-1)
    return out
""",
                      fixed=("cols > rows + 1", "cols > rows"),
                      fails=("online_softmax_visible", "online_softmax_causal", "online_softmax_large_scores", "online_softmax_memory")),
            ]),
    Mistake("online.causal-block-local", "online_softmax_attention",
            believed="the causal mask compares the key's index within its block with the query's position",
            fix="compare the key's position in the whole sequence, start + j (torch.arange(start, start + block length)), with the query's position",
            section="ch05-flash-blocks",
            wrong=[
                Wrong("online_softmax/causal_mask_ignores_block_start",
                      source="""\
def online_softmax_attention(query, key, value, block_size=128, causal=False, return_lse=False):
    T_q, T_k = query.size(-2), key.size(-2)
    if causal and T_q != T_k:
        raise ValueError("causal attention needs T_q == T_k")
    q = query / math.sqrt(query.size(-1))
    m = q.new_full(q.shape[:-1] + (1,), -math.inf)
    l = q.new_zeros(q.shape[:-1] + (1,))
    o = q.new_zeros(q.shape[:-1] + value.shape[-1:])
    rows = torch.arange(T_q).unsqueeze(-1)
    for start in range(0, T_k, block_size):
        kb = key[..., start:start + block_size, :]
        vb = value[..., start:start + block_size, :]
        s = q @ kb.mT
        if causal:
            cols = torch.arange(kb.size(-2))
            s = s.masked_fill(cols > rows, -math.inf)
        m_new = torch.maximum(m, s.amax(-1, keepdim=True))
        p = torch.exp(s - m_new)
        l = l * torch.exp(m - m_new) + p.sum(-1, keepdim=True)
        o = o * torch.exp(m - m_new) + p @ vb
        m = m_new
    out = o / l.clamp_min(1.0)
    if return_lse:
        return out, (m + torch.log(l)).squeeze(-1)
    return out
""",
                      fixed=("cols = torch.arange(kb.size(-2))", "cols = torch.arange(start, start + kb.size(-2))"),
                      fails=("online_softmax_visible", "online_softmax_causal", "online_softmax_large_scores", "online_softmax_memory")),
            ]),
    Mistake("online.no-value-error", "online_softmax_attention",
            believed="causal=True with T_q != T_k is not refused",
            fix="raise ValueError when causal=True and query.size(-2) != key.size(-2)",
            section="ch05-flash-blocks",
            wrong=[
                Wrong("online_softmax/no_value_error",
                      source="""\
def online_softmax_attention(query, key, value, block_size=128, causal=False, return_lse=False):
    T_q, T_k = query.size(-2), key.size(-2)
    q = query / math.sqrt(query.size(-1))
    m = q.new_full(q.shape[:-1] + (1,), -math.inf)
    l = q.new_zeros(q.shape[:-1] + (1,))
    o = q.new_zeros(q.shape[:-1] + value.shape[-1:])
    rows = torch.arange(T_q).unsqueeze(-1)
    for start in range(0, T_k, block_size):
        kb = key[..., start:start + block_size, :]
        vb = value[..., start:start + block_size, :]
        s = q @ kb.mT
        if causal:
            cols = torch.arange(start, start + kb.size(-2))
            s = s.masked_fill(cols > rows, -math.inf)
        m_new = torch.maximum(m, s.amax(-1, keepdim=True))
        p = torch.exp(s - m_new)
        l = l * torch.exp(m - m_new) + p.sum(-1, keepdim=True)
        o = o * torch.exp(m - m_new) + p @ vb
        m = m_new
    out = o / l.clamp_min(1.0)
    if return_lse:
        return out, (m + torch.log(l)).squeeze(-1)
    return out
""",
                      fixed=("    T_q, T_k = query.size(-2), key.size(-2)\n", "    T_q, T_k = query.size(-2), key.size(-2)\n    if causal and T_q != T_k:\n        raise ValueError(\"causal attention needs T_q == T_k\")\n"),
                      fails=("online_softmax_visible", "online_softmax_causal")),
            ]),
    Mistake("online.block-size-ignored", "online_softmax_attention",
            believed="the block_size argument is ignored",
            fix="walk over the keys in blocks of block_size: range(0, T_k, block_size) and slices [..., start:start + block_size, :]",
            section="ch05-flash-blocks",
            detect=False,
            wrong=[
                Wrong("online_softmax/block_size_ignored",
                      source="""\
def online_softmax_attention(query, key, value, block_size=128, causal=False, return_lse=False):
    T_q, T_k = query.size(-2), key.size(-2)
    if causal and T_q != T_k:
        raise ValueError("causal attention needs T_q == T_k")
    q = query / math.sqrt(query.size(-1))
    m = q.new_full(q.shape[:-1] + (1,), -math.inf)
    l = q.new_zeros(q.shape[:-1] + (1,))
    o = q.new_zeros(q.shape[:-1] + value.shape[-1:])
    rows = torch.arange(T_q).unsqueeze(-1)
    for start in range(0, T_k, 128):
        kb = key[..., start:start + 128, :]
        vb = value[..., start:start + 128, :]
        s = q @ kb.mT
        if causal:
            cols = torch.arange(start, start + kb.size(-2))
            s = s.masked_fill(cols > rows, -math.inf)
        m_new = torch.maximum(m, s.amax(-1, keepdim=True))
        p = torch.exp(s - m_new)
        l = l * torch.exp(m - m_new) + p.sum(-1, keepdim=True)
        o = o * torch.exp(m - m_new) + p @ vb
        m = m_new
    out = o / l.clamp_min(1.0)
    if return_lse:
        return out, (m + torch.log(l)).squeeze(-1)
    return out
""",
                      fixed=("\n    for start in range(0, T_k, 128):\n        kb = key[..., start:start + 128, :]\n        vb = value[..., start:start + 128, :]\n", "\n    for start in range(0, T_k, block_size):\n        kb = key[..., start:start + block_size, :]\n        vb = value[..., start:start + block_size, :]\n"),
                      fails=("online_softmax_memory",)),
            ]),
    Mistake("online.full-score-matrix", "online_softmax_attention",
            believed="the whole T_q x T_k matrix of scores is computed at once",
            fix="loop over the keys in blocks of block_size; for each block compute its scores only and update the running maximum, normaliser and accumulator (the old sums rescaled by exp(m_old - m_new))",
            section="ch05-memory",
            detect=False,
            wrong=[
                Wrong("online_softmax/materialises_the_full_matrix",
                      source="""\
def online_softmax_attention(query, key, value, block_size=128, causal=False, return_lse=False):
    T_q, T_k = query.size(-2), key.size(-2)
    if causal and T_q != T_k:
        raise ValueError("causal attention needs T_q == T_k")

    scores = query @ key.mT / math.sqrt(query.size(-1))
    if causal:
        scores = scores.masked_fill(torch.ones(T_q, T_k, dtype=torch.bool).triu(1), -math.inf)
    return torch.softmax(scores, dim=-1) @ value
""",
                      fixed=("\n    scores = query @ key.mT / math.sqrt(query.size(-1))\n    if causal:\n        scores = scores.masked_fill(torch.ones(T_q, T_k, dtype=torch.bool).triu(1), -math.inf)\n    return torch.softmax(scores, dim=-1) @ value\n", "\n    q = query / math.sqrt(query.size(-1))\n    m = q.new_full(q.shape[:-1] + (1,), -math.inf)\n    l = q.new_zeros(q.shape[:-1] + (1,))\n    o = q.new_zeros(q.shape[:-1] + value.shape[-1:])\n    rows = torch.arange(T_q).unsqueeze(-1)\n    for start in range(0, T_k, block_size):\n        kb = key[..., start:start + block_size, :]\n        vb = value[..., start:start + block_size, :]\n        s = q @ kb.mT\n        if causal:\n            cols = torch.arange(start, start + kb.size(-2))\n            s = s.masked_fill(cols > rows, -math.inf)\n        m_new = torch.maximum(m, s.amax(-1, keepdim=True))\n        p = torch.exp(s - m_new)\n        l = l * torch.exp(m - m_new) + p.sum(-1, keepdim=True)\n        o = o * torch.exp(m - m_new) + p @ vb\n        m = m_new\n    out = o / l.clamp_min(1.0)\n    if return_lse:\n        return out, (m + torch.log(l)).squeeze(-1)\n    return out\n"),
                      fails=("online_softmax_visible", "online_softmax_memory")),
            ]),
    Mistake("online.keeps-every-block", "online_softmax_attention",
            believed="every block's scores are kept (in a list) until the end, so a T_q x T_k matrix is alive",
            fix="update the running maximum, normaliser and accumulator as soon as a block's scores are computed, then let those scores go: keep nothing per block for a second pass",
            section="ch05-memory",
            detect=False,
            wrong=[
                Wrong("online_softmax/keeps_every_block",
                      source="""\
def online_softmax_attention(query, key, value, block_size=128, causal=False, return_lse=False):
    T_q, T_k = query.size(-2), key.size(-2)
    if causal and T_q != T_k:
        raise ValueError("causal attention needs T_q == T_k")

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
""",
                      fixed=("\n    blocks = [q @ key[..., start:start + block_size, :].mT for start in range(0, T_k, block_size)]\n    if causal:\n        blocks = [b.masked_fill(torch.arange(i * block_size, i * block_size + b.size(-1)) > torch.arange(T_q)[:, None], -math.inf)\n                  for i, b in enumerate(blocks)]\n    m = torch.stack([b.amax(-1) for b in blocks], dim=-1).amax(-1, keepdim=True)\n    p = [torch.exp(b - m) for b in blocks]\n    l = sum(x.sum(-1, keepdim=True) for x in p)\n    o = sum(x @ value[..., i * block_size:(i + 1) * block_size, :] for i, x in enumerate(p))\n    return o / l\n", "\n    m = q.new_full(q.shape[:-1] + (1,), -math.inf)\n    l = q.new_zeros(q.shape[:-1] + (1,))\n    o = q.new_zeros(q.shape[:-1] + value.shape[-1:])\n    for start in range(0, T_k, block_size):\n        b = q @ key[..., start:start + block_size, :].mT\n        if causal:\n            b = b.masked_fill(torch.arange(start, start + b.size(-1)) > torch.arange(T_q)[:, None], -math.inf)\n        m_new = torch.maximum(m, b.amax(-1, keepdim=True))\n        x = torch.exp(b - m_new)\n        l = l * torch.exp(m - m_new) + x.sum(-1, keepdim=True)\n        o = o * torch.exp(m - m_new) + x @ value[..., start:start + block_size, :]\n        m = m_new\n    out = o / l.clamp_min(1.0)\n    if return_lse:\n        return out, (m + torch.log(l)).squeeze(-1)\n    return out\n"),
                      fails=("online_softmax_visible", "online_softmax_memory")),
            ]),
    Mistake("online.calls-fused-attention", "online_softmax_attention",
            believed="torch's fused attention is called instead of computing the attention",
            fix="compute the attention yourself with matmul, exp and sums, one block of keys at a time, keeping a running maximum, normaliser and accumulator rescaled by exp(m_old - m_new): no F.scaled_dot_product_attention",
            section="ch05-flash-blocks",
            detect=False,
            wrong=[
                Wrong("online_softmax/calls_fused_attention",
                      source="""\
def online_softmax_attention(query, key, value, block_size=128, causal=False, return_lse=False):
    T_q, T_k = query.size(-2), key.size(-2)
    if causal and T_q != T_k:
        raise ValueError("causal attention needs T_q == T_k")

    return F.scaled_dot_product_attention(query, key, value, is_causal=causal)
""",
                      fixed=("    return F.scaled_dot_product_attention(query, key, value, is_causal=causal)\n", "    q = query / math.sqrt(query.size(-1))\n    m = q.new_full(q.shape[:-1] + (1,), -math.inf)\n    l = q.new_zeros(q.shape[:-1] + (1,))\n    o = q.new_zeros(q.shape[:-1] + value.shape[-1:])\n    rows = torch.arange(T_q).unsqueeze(-1)\n    for start in range(0, T_k, block_size):\n        kb = key[..., start:start + block_size, :]\n        vb = value[..., start:start + block_size, :]\n        s = q @ kb.mT\n        if causal:\n            cols = torch.arange(start, start + kb.size(-2))\n            s = s.masked_fill(cols > rows, -math.inf)\n        m_new = torch.maximum(m, s.amax(-1, keepdim=True))\n        p = torch.exp(s - m_new)\n        l = l * torch.exp(m - m_new) + p.sum(-1, keepdim=True)\n        o = o * torch.exp(m - m_new) + p @ vb\n        m = m_new\n    out = o / l.clamp_min(1.0)\n    if return_lse:\n        return out, (m + torch.log(l)).squeeze(-1)\n    return out\n"),
                      fails=("online_softmax_visible", "online_softmax_matches_sdpa", "online_softmax_causal", "online_softmax_large_scores", "online_softmax_memory", "online_softmax_lse")),
            ]),
    Mistake("online.leaves-torch", "online_softmax_attention",
            believed="the computation leaves torch (numpy)",
            fix="compute with torch operations on the tensors themselves, one block of keys at a time with a running maximum, normaliser and accumulator rescaled by exp(m_old - m_new): no .numpy(), numpy or torch.from_numpy",
            section="ch05-flash-blocks",
            detect=False,
            wrong=[
                Wrong("online_softmax/leaves_torch_for_numpy",
                      source="""\
def online_softmax_attention(query, key, value, block_size=128, causal=False, return_lse=False):
    T_q, T_k = query.size(-2), key.size(-2)
    if causal and T_q != T_k:
        raise ValueError("causal attention needs T_q == T_k")

    import numpy as np
    q, k, v = query.detach().numpy(), key.detach().numpy(), value.detach().numpy()
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if causal:
        s = np.where(np.tril(np.ones((T_q, T_k), dtype=bool)), s, -np.inf)
    w = np.exp(s - s.max(-1, keepdims=True))
    return torch.from_numpy(w / w.sum(-1, keepdims=True) @ v)
""",
                      fixed=("\n    import numpy as np\n    q, k, v = query.detach().numpy(), key.detach().numpy(), value.detach().numpy()\n    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])\n    if causal:\n        s = np.where(np.tril(np.ones((T_q, T_k), dtype=bool)), s, -np.inf)\n    w = np.exp(s - s.max(-1, keepdims=True))\n    return torch.from_numpy(w / w.sum(-1, keepdims=True) @ v)\n", "\n    q = query / math.sqrt(query.size(-1))\n    m = q.new_full(q.shape[:-1] + (1,), -math.inf)\n    l = q.new_zeros(q.shape[:-1] + (1,))\n    o = q.new_zeros(q.shape[:-1] + value.shape[-1:])\n    rows = torch.arange(T_q).unsqueeze(-1)\n    for start in range(0, T_k, block_size):\n        kb = key[..., start:start + block_size, :]\n        vb = value[..., start:start + block_size, :]\n        s = q @ kb.mT\n        if causal:\n            cols = torch.arange(start, start + kb.size(-2))\n            s = s.masked_fill(cols > rows, -math.inf)\n        m_new = torch.maximum(m, s.amax(-1, keepdim=True))\n        p = torch.exp(s - m_new)\n        l = l * torch.exp(m - m_new) + p.sum(-1, keepdim=True)\n        o = o * torch.exp(m - m_new) + p @ vb\n        m = m_new\n    out = o / l.clamp_min(1.0)\n    if return_lse:\n        return out, (m + torch.log(l)).squeeze(-1)\n    return out\n"),
                      fails=("online_softmax_matches_sdpa", "online_softmax_causal", "online_softmax_large_scores", "online_softmax_memory", "online_softmax_lse")),
            ]),
    Mistake("online.query-chunks", "online_softmax_attention",
            believed="the queries are cut into chunks, and each chunk takes an ordinary softmax over every key",
            fix="walk over blocks of keys, not of queries: for each block of keys compute the scores of every query, and update the running maximum, normaliser and accumulator (rescaled by exp(m_old - m_new)); no row of scores is ever whole",
            section="ch05-flash-blocks",
            detect=False,
            wrong=[
                Wrong("online_softmax/query_chunks",
                      source="""\
def online_softmax_attention(query, key, value, block_size=128, causal=False, return_lse=False):
    T_q, T_k = query.size(-2), key.size(-2)
    if causal and T_q != T_k:
        raise ValueError("causal attention needs T_q == T_k")

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
""",
                      fixed=("\n\n    q = query / math.sqrt(query.size(-1))\n    outs, lses = [], []\n    for start in range(0, T_q, block_size):\n        s = q[..., start:start + block_size, :] @ key.mT\n        if causal:\n            s = s.masked_fill(torch.arange(T_k) > torch.arange(start, start + s.size(-2))[:, None], -math.inf)\n        outs.append(torch.softmax(s, dim=-1) @ value)\n        lses.append(torch.logsumexp(s, dim=-1))\n    out = torch.cat(outs, dim=-2) if outs else q.new_zeros(q.shape[:-1] + value.shape[-1:])\n    if return_lse:\n        return out, torch.cat(lses, dim=-1)\n    return out\n", "\n    q = query / math.sqrt(query.size(-1))\n    m = q.new_full(q.shape[:-1] + (1,), -math.inf)\n    l = q.new_zeros(q.shape[:-1] + (1,))\n    o = q.new_zeros(q.shape[:-1] + value.shape[-1:])\n    rows = torch.arange(T_q).unsqueeze(-1)\n    for start in range(0, T_k, block_size):\n        kb = key[..., start:start + block_size, :]\n        vb = value[..., start:start + block_size, :]\n        s = q @ kb.mT\n        if causal:\n            cols = torch.arange(start, start + kb.size(-2))\n            s = s.masked_fill(cols > rows, -math.inf)\n        m_new = torch.maximum(m, s.amax(-1, keepdim=True))\n        p = torch.exp(s - m_new)\n        l = l * torch.exp(m - m_new) + p.sum(-1, keepdim=True)\n        o = o * torch.exp(m - m_new) + p @ vb\n        m = m_new\n    out = o / l.clamp_min(1.0)\n    if return_lse:\n        return out, (m + torch.log(l)).squeeze(-1)\n    return out\n"),
                      fails=("online_softmax_memory", "online_softmax_lse")),
            ]),
    Mistake("online.loops-over-queries", "online_softmax_attention",
            believed="a Python loop over the query rows (or batches, or heads), each with a softmax over its whole row",
            fix="loop over blocks of keys only, and inside a block handle every query, batch and head at once: scores = query @ key_block.mT for all queries, with a running maximum, normaliser and accumulator",
            section="ch05-flash-blocks",
            detect=False,
            wrong=[
                Wrong("online_softmax/loops_over_query_rows",
                      source="""\
def online_softmax_attention(query, key, value, block_size=128, causal=False, return_lse=False):
    T_q, T_k = query.size(-2), key.size(-2)
    if causal and T_q != T_k:
        raise ValueError("causal attention needs T_q == T_k")

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
""",
                      fixed=("\n\n    q = query / math.sqrt(query.size(-1))\n    outs, lses = [], []\n    for i in range(T_q):\n        s = q[..., i:i + 1, :] @ key.mT\n        if causal:\n            s = s.masked_fill(torch.arange(T_k) > i, -math.inf)\n        outs.append(torch.softmax(s, dim=-1) @ value)\n        lses.append(torch.logsumexp(s, dim=-1))\n    out = torch.cat(outs, dim=-2) if outs else q.new_zeros(q.shape[:-1] + value.shape[-1:])\n    if return_lse:\n        return out, torch.cat(lses, dim=-1)\n    return out\n", "\n    q = query / math.sqrt(query.size(-1))\n    m = q.new_full(q.shape[:-1] + (1,), -math.inf)\n    l = q.new_zeros(q.shape[:-1] + (1,))\n    o = q.new_zeros(q.shape[:-1] + value.shape[-1:])\n    rows = torch.arange(T_q).unsqueeze(-1)\n    for start in range(0, T_k, block_size):\n        kb = key[..., start:start + block_size, :]\n        vb = value[..., start:start + block_size, :]\n        s = q @ kb.mT\n        if causal:\n            cols = torch.arange(start, start + kb.size(-2))\n            s = s.masked_fill(cols > rows, -math.inf)\n        m_new = torch.maximum(m, s.amax(-1, keepdim=True))\n        p = torch.exp(s - m_new)\n        l = l * torch.exp(m - m_new) + p.sum(-1, keepdim=True)\n        o = o * torch.exp(m - m_new) + p @ vb\n        m = m_new\n    out = o / l.clamp_min(1.0)\n    if return_lse:\n        return out, (m + torch.log(l)).squeeze(-1)\n    return out\n"),
                      fails=("online_softmax_memory",)),
            ]),
    Mistake("online.lse-is-max", "online_softmax_attention",
            believed="return_lse gives the running maximum m, not the log-sum-exp",
            fix="return m + log(l): the log of the sum of e^(s_j), with the normaliser l measured from the maximum m",
            section="ch05-lse",
            wrong=[
                Wrong("online_softmax/lse_is_the_running_max",
                      source="""\
def online_softmax_attention(query, key, value, block_size=128, causal=False, return_lse=False):
    T_q, T_k = query.size(-2), key.size(-2)
    if causal and T_q != T_k:
        raise ValueError("causal attention needs T_q == T_k")
    q = query / math.sqrt(query.size(-1))
    m = q.new_full(q.shape[:-1] + (1,), -math.inf)
    l = q.new_zeros(q.shape[:-1] + (1,))
    o = q.new_zeros(q.shape[:-1] + value.shape[-1:])
    rows = torch.arange(T_q).unsqueeze(-1)
    for start in range(0, T_k, block_size):
        kb = key[..., start:start + block_size, :]
        vb = value[..., start:start + block_size, :]
        s = q @ kb.mT
        if causal:
            cols = torch.arange(start, start + kb.size(-2))
            s = s.masked_fill(cols > rows, -math.inf)
        m_new = torch.maximum(m, s.amax(-1, keepdim=True))
        p = torch.exp(s - m_new)
        l = l * torch.exp(m - m_new) + p.sum(-1, keepdim=True)
        o = o * torch.exp(m - m_new) + p @ vb
        m = m_new
    out = o / l.clamp_min(1.0)
    if return_lse:
        return out, m.squeeze(-1)
    return out
""",
                      fixed=("m.squeeze(-1)", "(m + torch.log(l)).squeeze(-1)"),
                      fails=("online_softmax_visible", "online_softmax_lse")),
            ]),
    Mistake("online.lse-log2", "online_softmax_attention",
            believed="the lse is a base-2 logarithm",
            fix="use natural logarithms: lse = m + torch.log(l), with the scores in e^s",
            section="ch05-lse",
            wrong=[
                Wrong("online_softmax/lse_in_log2",
                      source="""\
def online_softmax_attention(query, key, value, block_size=128, causal=False, return_lse=False):
    T_q, T_k = query.size(-2), key.size(-2)
    if causal and T_q != T_k:
        raise ValueError("causal attention needs T_q == T_k")
    q = query / math.sqrt(query.size(-1))
    m = q.new_full(q.shape[:-1] + (1,), -math.inf)
    l = q.new_zeros(q.shape[:-1] + (1,))
    o = q.new_zeros(q.shape[:-1] + value.shape[-1:])
    rows = torch.arange(T_q).unsqueeze(-1)
    for start in range(0, T_k, block_size):
        kb = key[..., start:start + block_size, :]
        vb = value[..., start:start + block_size, :]
        s = q @ kb.mT
        if causal:
            cols = torch.arange(start, start + kb.size(-2))
            s = s.masked_fill(cols > rows, -math.inf)
        m_new = torch.maximum(m, s.amax(-1, keepdim=True))
        p = torch.exp(s - m_new)
        l = l * torch.exp(m - m_new) + p.sum(-1, keepdim=True)
        o = o * torch.exp(m - m_new) + p @ vb
        m = m_new
    out = o / l.clamp_min(1.0)
    if return_lse:
        return out, ((m + torch.log(l)) / math.log(2)).squeeze(-1)
    return out
""",
                      fixed=("((m + torch.log(l)) / math.log(2)).squeeze(-1)", "(m + torch.log(l)).squeeze(-1)"),
                      fails=("online_softmax_visible", "online_softmax_lse")),
            ]),
    Mistake("online.lse-from-full-row", "online_softmax_attention",
            believed="the lse is computed from the full row of scores at the end",
            fix="read the lse from the walk: m + log(l), from the running maximum and normaliser after the last block",
            section="ch05-lse",
            detect=False,
            wrong=[
                Wrong("online_softmax/lse_from_a_full_row",
                      source="""\
def online_softmax_attention(query, key, value, block_size=128, causal=False, return_lse=False):
    T_q, T_k = query.size(-2), key.size(-2)
    if causal and T_q != T_k:
        raise ValueError("causal attention needs T_q == T_k")
    q = query / math.sqrt(query.size(-1))
    m = q.new_full(q.shape[:-1] + (1,), -math.inf)
    l = q.new_zeros(q.shape[:-1] + (1,))
    o = q.new_zeros(q.shape[:-1] + value.shape[-1:])
    rows = torch.arange(T_q).unsqueeze(-1)
    for start in range(0, T_k, block_size):
        kb = key[..., start:start + block_size, :]
        vb = value[..., start:start + block_size, :]
        s = q @ kb.mT
        if causal:
            cols = torch.arange(start, start + kb.size(-2))
            s = s.masked_fill(cols > rows, -math.inf)
        m_new = torch.maximum(m, s.amax(-1, keepdim=True))
        p = torch.exp(s - m_new)
        l = l * torch.exp(m - m_new) + p.sum(-1, keepdim=True)
        o = o * torch.exp(m - m_new) + p @ vb
        m = m_new
    out = o / l.clamp_min(1.0)
    if return_lse:
        return out, torch.logsumexp((q @ key.mT).masked_fill(torch.ones(T_q, T_k, dtype=torch.bool).triu(1) & causal, -math.inf), dim=-1)
    return out
""",
                      fixed=("torch.logsumexp((q @ key.mT).masked_fill(torch.ones(T_q, T_k, dtype=torch.bool).triu(1) & causal, -math.inf), dim=-1)", "(m + torch.log(l)).squeeze(-1)"),
                      fails=("online_softmax_lse",)),
            ]),
    Mistake("online.nan-without-keys", "online_softmax_attention",
            believed="with no key at all (T_k = 0) the output is 0 / 0, NaN",
            fix="divide by the normaliser only where it is positive (it is at least 1 once a key is seen, e.g. l.clamp_min(1.0)), so that T_k = 0 gives an output 0 and an lse of -inf",
            section="ch05-lse",
            wrong=[
                Wrong("online_softmax/nan_without_keys",
                      source="""\
def online_softmax_attention(query, key, value, block_size=128, causal=False, return_lse=False):
    T_q, T_k = query.size(-2), key.size(-2)
    if causal and T_q != T_k:
        raise ValueError("causal attention needs T_q == T_k")
    q = query / math.sqrt(query.size(-1))
    m = q.new_full(q.shape[:-1] + (1,), -math.inf)
    l = q.new_zeros(q.shape[:-1] + (1,))
    o = q.new_zeros(q.shape[:-1] + value.shape[-1:])
    rows = torch.arange(T_q).unsqueeze(-1)
    for start in range(0, T_k, block_size):
        kb = key[..., start:start + block_size, :]
        vb = value[..., start:start + block_size, :]
        s = q @ kb.mT
        if causal:
            cols = torch.arange(start, start + kb.size(-2))
            s = s.masked_fill(cols > rows, -math.inf)
        m_new = torch.maximum(m, s.amax(-1, keepdim=True))
        p = torch.exp(s - m_new)
        l = l * torch.exp(m - m_new) + p.sum(-1, keepdim=True)
        o = o * torch.exp(m - m_new) + p @ vb
        m = m_new
    out = o / l
    if return_lse:
        return out, (m + torch.log(l)).squeeze(-1)
    return out
""",
                      fixed=("out = o / l\n", "out = o / l.clamp_min(1.0)\n"),
                      fails=("online_softmax_visible", "online_softmax_lse")),
            ]),
    # --- merge_attention -------------------------------------------------------------------------------------
    Mistake("merge.max-not-logsumexp", "merge_attention",
            believed="the merged lse is the larger of the two, not the log of the sum of their exponentials",
            fix="lse = m + log(exp(lse_a - m) + exp(lse_b - m)), with m the larger of the two",
            section="ch05-merge",
            wrong=[
                Wrong("merge/max_instead_of_logsumexp",
                      source="""\
def merge_attention(out_a, lse_a, out_b, lse_b):
    m = torch.maximum(lse_a, lse_b)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    w_a, w_b = torch.exp(lse_a - m), torch.exp(lse_b - m)
    total = w_a + w_b
    lse = torch.maximum(lse_a, lse_b)
    out = (w_a[..., None] * out_a + w_b[..., None] * out_b) / total.clamp_min(1.0)[..., None]
    return out, lse
""",
                      fixed=("lse = torch.maximum(lse_a, lse_b)", "lse = m + torch.log(total)"),
                      fails=("merge_attention_visible", "merge_attention_folds", "merge_attention_edges")),
            ]),
    Mistake("merge.not-renormalised", "merge_attention",
            believed="the outputs are weighed by exp(lse - m) but not divided by the sum of those weights",
            fix="divide by the sum of the weights, or weigh each side by exp(lse_side - lse) with lse the merged one",
            section="ch05-merge",
            wrong=[
                Wrong("merge/weights_not_renormalised",
                      source="""\
def merge_attention(out_a, lse_a, out_b, lse_b):
    m = torch.maximum(lse_a, lse_b)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    w_a, w_b = torch.exp(lse_a - m), torch.exp(lse_b - m)
    total = w_a + w_b
    lse = m + torch.log(total)
    out = w_a[..., None] * out_a + w_b[..., None] * out_b
    return out, lse
""",
                      fixed=("out = w_a[..., None] * out_a + w_b[..., None] * out_b\n", "out = (w_a[..., None] * out_a + w_b[..., None] * out_b) / total.clamp_min(1.0)[..., None]\n"),
                      fails=("merge_attention_visible", "merge_attention_folds", "merge_attention_edges")),
                Wrong("merge/outputs_weighed_not_renormalised_logaddexp",
                      source="""\
def merge_attention(out_a, lse_a, out_b, lse_b):
    lse = torch.logaddexp(lse_a, lse_b)
    top = torch.maximum(lse_a, lse_b)
    top = torch.where(top == -math.inf, torch.zeros_like(top), top)
    scale_a = (lse_a - top).exp().unsqueeze(-1)
    scale_b = (lse_b - top).exp().unsqueeze(-1)
    return scale_a * out_a + scale_b * out_b, lse
""",
                      fixed=("    return scale_a * out_a + scale_b * out_b, lse\n",
                             "    return (scale_a * out_a + scale_b * out_b) / (scale_a + scale_b).clamp_min(1.0), lse\n"),
                      fails=("merge_attention_visible", "merge_attention_folds", "merge_attention_edges"),
                      note="the merged lse by torch.logaddexp, the weights by .exp() and unsqueeze: another student's code"),
            ]),
    Mistake("merge.nan-empty-rows", "merge_attention",
            believed="where neither side has a key, -inf - (-inf) gives NaN",
            fix="subtract the larger lse only where it is finite (0 where both are -inf: torch.where(torch.isfinite(m), m, 0)), so that such a row gets weights 0, an output 0 and an lse of -inf",
            section="ch05-merge",
            wrong=[
                Wrong("merge/nan_on_empty_rows",
                      source="""\
def merge_attention(out_a, lse_a, out_b, lse_b):
    m = torch.maximum(lse_a, lse_b)
    w_a, w_b = torch.exp(lse_a - m), torch.exp(lse_b - m)
    total = w_a + w_b
    lse = m + torch.log(total)
    out = (w_a[..., None] * out_a + w_b[..., None] * out_b) / total.clamp_min(1.0)[..., None]
    return out, lse
""",
                      fixed=("    m = torch.maximum(lse_a, lse_b)\n", "    m = torch.maximum(lse_a, lse_b)\n    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))\n"),
                      fails=("merge_attention_visible", "merge_attention_edges")),
            ]),
    Mistake("merge.log2", "merge_attention",
            believed="base 2 is mixed with natural logarithms",
            fix="the lse is a natural log: weights exp(lse_side - m) and lse = m + log(their sum)",
            section="ch05-merge",
            wrong=[
                Wrong("merge/lse_in_log2",
                      source="""\
def merge_attention(out_a, lse_a, out_b, lse_b):
    m = torch.maximum(lse_a, lse_b)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    w_a, w_b = torch.pow(2.0, lse_a - m), torch.pow(2.0, lse_b - m)
    total = w_a + w_b
    lse = m + torch.log2(total)
    out = (w_a[..., None] * out_a + w_b[..., None] * out_b) / total.clamp_min(1.0)[..., None]
    return out, lse
""",
                      fixed=("\n    w_a, w_b = torch.pow(2.0, lse_a - m), torch.pow(2.0, lse_b - m)\n    total = w_a + w_b\n    lse = m + torch.log2(total)\n", "\n    w_a, w_b = torch.exp(lse_a - m), torch.exp(lse_b - m)\n    total = w_a + w_b\n    lse = m + torch.log(total)\n"),
                      fails=("merge_attention_visible", "merge_attention_folds", "merge_attention_edges")),
            ]),
    Mistake("merge.overflow", "merge_attention",
            believed="exp of the raw lse overflows for large scores",
            fix="subtract the larger lse m before exp: exp(lse_a - m), exp(lse_b - m), and lse = m + log(their sum)",
            section="ch05-merge",
            wrong=[
                Wrong("merge/no_maximum_subtracted",
                      source="""\
def merge_attention(out_a, lse_a, out_b, lse_b):
    w_a, w_b = torch.exp(lse_a), torch.exp(lse_b)
    total = w_a + w_b
    lse = torch.log(total)
    out = (w_a[..., None] * out_a + w_b[..., None] * out_b) / torch.where(total > 0, total, 1.0)[..., None]
    return out, lse
""",
                      fixed=("    w_a, w_b = torch.exp(lse_a), torch.exp(lse_b)\n    total = w_a + w_b\n    lse = torch.log(total)\n    out = (w_a[..., None] * out_a + w_b[..., None] * out_b) / torch.where(total > 0, total, 1.0)[..., None]\n    return out, lse\n", "    m = torch.maximum(lse_a, lse_b)\n    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))\n    w_a, w_b = torch.exp(lse_a - m), torch.exp(lse_b - m)\n    total = w_a + w_b\n    lse = m + torch.log(total)\n    out = (w_a[..., None] * out_a + w_b[..., None] * out_b) / total.clamp_min(1.0)[..., None]\n    return out, lse\n"),
                      fails=("merge_attention_visible", "merge_attention_edges")),
            ]),
    Mistake("merge.equal-weights", "merge_attention",
            believed="the two outputs are averaged with equal weights",
            fix="weigh each side by its share of the total mass, exp(lse_side - lse), with lse the merged log-sum-exp",
            section="ch05-merge",
            wrong=[
                Wrong("merge/outputs_averaged",
                      source="""\
def merge_attention(out_a, lse_a, out_b, lse_b):
    m = torch.maximum(lse_a, lse_b)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    w_a, w_b = torch.exp(lse_a - m), torch.exp(lse_b - m)
    total = w_a + w_b
    lse = m + torch.log(total)
    out = torch.where(torch.isfinite(lse_a)[..., None] & torch.isfinite(lse_b)[..., None], (out_a + out_b) / 2, out_a + out_b)
    return out, lse
""",
                      fixed=("    m = torch.maximum(lse_a, lse_b)\n    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))\n    w_a, w_b = torch.exp(lse_a - m), torch.exp(lse_b - m)\n    total = w_a + w_b\n    lse = m + torch.log(total)\n    out = torch.where(torch.isfinite(lse_a)[..., None] & torch.isfinite(lse_b)[..., None], (out_a + out_b) / 2, out_a + out_b)\n    return out, lse\n", "    m = torch.maximum(lse_a, lse_b)\n    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))\n    w_a, w_b = torch.exp(lse_a - m), torch.exp(lse_b - m)\n    total = w_a + w_b\n    lse = m + torch.log(total)\n    out = (w_a[..., None] * out_a + w_b[..., None] * out_b) / total.clamp_min(1.0)[..., None]\n    return out, lse\n"),
                      fails=("merge_attention_visible", "merge_attention_folds", "merge_attention_edges")),
            ]),
    Mistake("merge.lse-added", "merge_attention",
            believed="the two lse are added, as if the sums of exponentials were multiplied",
            fix="the sums add, so the lse combine as log(exp(lse_a) + exp(lse_b)): m + log(exp(lse_a - m) + exp(lse_b - m))",
            section="ch05-merge",
            wrong=[
                Wrong("merge/lse_added",
                      edit=('lse = reference + torch.log(total)',
                            'lse = lse_a + lse_b'),
                      fixed=('lse = lse_a + lse_b', 'lse = reference + torch.log(total)'),
                      fails=("merge_attention_visible", "merge_attention_folds", "merge_attention_edges")),
            ]),
    Mistake("merge.python-loop", "merge_attention",
            believed="a Python loop over the query rows",
            fix="compute every row at once: the weights exp(lse - m) are tensors (..., T_q), broadcast over d_v with [..., None]",
            section="ch05-merge",
            detect=False,
            wrong=[
                Wrong("merge/loops_over_rows",
                      source="""\
def merge_attention(out_a, lse_a, out_b, lse_b):
    out, lse = torch.zeros_like(out_a), torch.full_like(lse_a, -math.inf)
    for i in range(lse_a.shape[-1]):
        la, lb = lse_a[..., i], lse_b[..., i]
        m = torch.maximum(la, lb)
        m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
        w_a, w_b = torch.exp(la - m), torch.exp(lb - m)
        lse[..., i] = m + torch.log(w_a + w_b)
        out[..., i, :] = (w_a[..., None] * out_a[..., i, :] + w_b[..., None] * out_b[..., i, :]) / (w_a + w_b).clamp_min(1.0)[..., None]
    return out, lse
""",
                      fixed=("    out, lse = torch.zeros_like(out_a), torch.full_like(lse_a, -math.inf)\n    for i in range(lse_a.shape[-1]):\n        la, lb = lse_a[..., i], lse_b[..., i]\n        m = torch.maximum(la, lb)\n        m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))\n        w_a, w_b = torch.exp(la - m), torch.exp(lb - m)\n        lse[..., i] = m + torch.log(w_a + w_b)\n        out[..., i, :] = (w_a[..., None] * out_a[..., i, :] + w_b[..., None] * out_b[..., i, :]) / (w_a + w_b).clamp_min(1.0)[..., None]\n    return out, lse\n", "    m = torch.maximum(lse_a, lse_b)\n    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))\n    w_a, w_b = torch.exp(lse_a - m), torch.exp(lse_b - m)\n    total = w_a + w_b\n    lse = m + torch.log(total)\n    out = (w_a[..., None] * out_a + w_b[..., None] * out_b) / total.clamp_min(1.0)[..., None]\n    return out, lse\n"),
                      fails=("merge_attention_edges",)),
            ]),
    # --- KVCache ---------------------------------------------------------------------------------------------
    Mistake("kvcache.wrong-axis", "KVCache",
            believed="the new keys and values are appended along the wrong axis",
            fix="concatenate along the time axis: torch.cat([self.keys, k], dim=2) (or dim=-2), and the same for the values",
            section="ch05-kv-cache",
            wrong=[
                Wrong("kvcache/appended_along_heads",
                      source="""\
class KVCache:
    def __init__(self):
        self.keys = None
        self.values = None

    def update(self, k, v):
        if self.keys is None:
            self.keys, self.values = k, v
        else:
            self.keys = torch.cat([self.keys, k], dim=1)
            self.values = torch.cat([self.values, v], dim=1)
        return self.keys, self.values

    def __len__(self):
        return 0 if self.keys is None else self.keys.shape[2]
""",
                      fixed=("dim=1)\n            self.values = torch.cat([self.values, v], dim=1)", "dim=2)\n            self.values = torch.cat([self.values, v], dim=2)"),
                      fails=("kvcache_visible", "kvcache_appends", "kvcache_decoding"),
                      note="appended along the head axis (dim 1) instead of time"),
                Wrong("kvcache/appended_along_features",
                      source="""\
class KVCache:
    def __init__(self):
        self.keys = None
        self.values = None

    def update(self, k, v):
        if self.keys is None:
            self.keys, self.values = k, v
        else:
            self.keys = torch.cat([self.keys, k], dim=-1)
            self.values = torch.cat([self.values, v], dim=-1)
        return self.keys, self.values

    def __len__(self):
        return 0 if self.keys is None else self.keys.shape[2]
""",
                      fixed=("dim=-1)\n            self.values = torch.cat([self.values, v], dim=-1)", "dim=2)\n            self.values = torch.cat([self.values, v], dim=2)"),
                      fails=("kvcache_visible", "kvcache_appends", "kvcache_decoding"),
                      note="appended along the feature axis (dim -1) instead of time"),
            ]),
    Mistake("kvcache.returns-new-only", "KVCache",
            believed="update returns only the new keys and values",
            fix="return every cached position so far: self.keys, self.values after the concatenation",
            section="ch05-kv-cache",
            wrong=[
                Wrong("kvcache/returns_only_the_new_positions",
                      source="""\
class KVCache:
    def __init__(self):
        self.keys = None
        self.values = None

    def update(self, k, v):
        if self.keys is None:
            self.keys, self.values = k, v
        else:
            self.keys = torch.cat([self.keys, k], dim=2)
            self.values = torch.cat([self.values, v], dim=2)
        return k, v

    def __len__(self):
        return 0 if self.keys is None else self.keys.shape[2]
""",
                      fixed=("return k, v", "return self.keys, self.values"),
                      fails=("kvcache_visible", "kvcache_appends", "kvcache_decoding")),
            ]),
    Mistake("kvcache.prepended", "KVCache",
            believed="the new positions are put before the cached ones",
            fix="put the cached positions first: torch.cat([self.keys, k], dim=2), not [k, self.keys], and the same for the values",
            section="ch05-kv-cache",
            wrong=[
                Wrong("kvcache/new_positions_prepended",
                      source="""\
class KVCache:
    def __init__(self):
        self.keys = None
        self.values = None

    def update(self, k, v):
        if self.keys is None:
            self.keys, self.values = k, v
        else:
            self.keys = torch.cat([k, self.keys], dim=2)
            self.values = torch.cat([v, self.values], dim=2)
        return self.keys, self.values

    def __len__(self):
        return 0 if self.keys is None else self.keys.shape[2]
""",
                      fixed=("torch.cat([k, self.keys], dim=2)\n            self.values = torch.cat([v, self.values], dim=2)", "torch.cat([self.keys, k], dim=2)\n            self.values = torch.cat([self.values, v], dim=2)"),
                      fails=("kvcache_visible", "kvcache_appends")),
            ]),
    Mistake("kvcache.keys-values-swapped", "KVCache",
            believed="update returns (values, keys)",
            fix="return the keys first, then the values: return self.keys, self.values",
            section="ch05-kv-cache",
            wrong=[
                Wrong("kvcache/keys_and_values_swapped",
                      source="""\
class KVCache:
    def __init__(self):
        self.keys = None
        self.values = None

    def update(self, k, v):
        if self.keys is None:
            self.keys, self.values = k, v
        else:
            self.keys = torch.cat([self.keys, k], dim=2)
            self.values = torch.cat([self.values, v], dim=2)
        return self.values, self.keys

    def __len__(self):
        return 0 if self.keys is None else self.keys.shape[2]
""",
                      fixed=("return self.values, self.keys", "return self.keys, self.values"),
                      fails=("kvcache_visible", "kvcache_appends", "kvcache_decoding")),
            ]),
    Mistake("kvcache.len-counts-calls", "KVCache",
            believed="len(cache) counts the calls to update, not the positions",
            fix="return the number of cached positions, self.keys.shape[2] (0 while empty)",
            section="ch05-kv-cache",
            wrong=[
                Wrong("kvcache/len_counts_calls",
                      source="""\
class KVCache:
    def __init__(self):
        self.keys = None
        self.values = None
        self.calls = 0

    def update(self, k, v):
        self.calls += 1

        if self.keys is None:
            self.keys, self.values = k, v
        else:
            self.keys = torch.cat([self.keys, k], dim=2)
            self.values = torch.cat([self.values, v], dim=2)
        return self.keys, self.values

    def __len__(self):
        return self.calls
""",
                      fixed=("        return self.calls\n", "        return 0 if self.keys is None else self.keys.shape[2]\n"),
                      fails=("kvcache_visible", "kvcache_appends", "kvcache_decoding")),
            ]),
    Mistake("kvcache.len-batch-size", "KVCache",
            believed="len(cache) returns the batch size",
            fix="return the size of the time axis, self.keys.shape[2] (0 while empty), not shape[0]",
            section="ch05-kv-cache",
            wrong=[
                Wrong("kvcache/len_is_the_batch_size",
                      source="""\
class KVCache:
    def __init__(self):
        self.keys = None
        self.values = None

    def update(self, k, v):
        if self.keys is None:
            self.keys, self.values = k, v
        else:
            self.keys = torch.cat([self.keys, k], dim=2)
            self.values = torch.cat([self.values, v], dim=2)
        return self.keys, self.values

    def __len__(self):
        return 0 if self.keys is None else self.keys.shape[0]
""",
                      fixed=("self.keys.shape[0]", "self.keys.shape[2]"),
                      fails=("kvcache_visible", "kvcache_appends", "kvcache_decoding")),
            ]),
    Mistake("kvcache.shared-storage", "KVCache",
            believed="the storage is a class attribute, shared by every cache",
            fix="create the storage on self in __init__ (e.g. self.keys, self.values = [], [] for lists), not in the class body, so that each cache has its own",
            section="ch05-kv-cache",
            detect=False,
            wrong=[
                Wrong("kvcache/shared_class_attribute",
                      source="""\
class KVCache:
    keys = []
    values = []

    def update(self, k, v):
        self.keys.append(k)
        self.values.append(v)
        return torch.cat(self.keys, dim=2), torch.cat(self.values, dim=2)

    def __len__(self):
        return sum(k.shape[2] for k in self.keys)
""",
                      fixed=("    keys = []\n    values = []\n", "    def __init__(self):\n        self.keys, self.values = [], []\n"),
                      fails=("kvcache_appends", "kvcache_decoding")),
            ]),
    # --- CausalSelfAttention ---------------------------------------------------------------------------------
    Mistake("csa.top-left-mask", "CausalSelfAttention",
            believed="is_causal=True is used with a cache: it aligns the mask top-left, so a new token sees only the first keys",
            fix="pass an explicit mask aligned bottom-right: attn_mask=torch.ones(t, n + t, dtype=torch.bool).tril(diagonal=n), with n = len(cache) read before the update",
            section="ch05-cache-mask",
            wrong=[
                Wrong("causal_attention/top_left_alignment",
                      source="""\
class CausalSelfAttention(nn.Module):
    def __init__(self, d_model, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)

    def forward(self, x, cache=None):
        B, t, D = x.shape
        H = self.num_heads
        q = self.W_q(x).view(B, t, H, D // H).transpose(1, 2)
        k = self.W_k(x).view(B, t, H, D // H).transpose(1, 2)
        v = self.W_v(x).view(B, t, H, D // H).transpose(1, 2)
        if cache is not None:
            k, v = cache.update(k, v)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.W_o(out.transpose(1, 2).reshape(B, t, D))
""",
                      fixed=("\n        if cache is not None:\n            k, v = cache.update(k, v)\n        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)\n", "\n        n = 0 if cache is None else len(cache)\n        if cache is not None:\n            k, v = cache.update(k, v)\n        out = F.scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(t, n + t, dtype=torch.bool).tril(diagonal=n))\n"),
                      fails=("causal_attention_visible", "causal_attention_decoding")),
            ]),
    Mistake("csa.no-mask-after-prefill", "CausalSelfAttention",
            believed="once something is cached, no mask is used: right for one token, wrong for a chunk of several",
            fix="keep the causal mask with a cache: attn_mask=torch.ones(t, n + t, dtype=torch.bool).tril(diagonal=n), so that a chunk's queries see every cached key and, within the chunk, only earlier positions",
            section="ch05-cache-mask",
            wrong=[
                Wrong("causal_attention/mask_dropped_after_prefill",
                      source="""\
class CausalSelfAttention(nn.Module):
    def __init__(self, d_model, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)

    def forward(self, x, cache=None):
        B, t, D = x.shape
        H = self.num_heads
        q = self.W_q(x).view(B, t, H, D // H).transpose(1, 2)
        k = self.W_k(x).view(B, t, H, D // H).transpose(1, 2)
        v = self.W_v(x).view(B, t, H, D // H).transpose(1, 2)
        n = 0 if cache is None else len(cache)
        if cache is not None:
            k, v = cache.update(k, v)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=(n == 0))
        return self.W_o(out.transpose(1, 2).reshape(B, t, D))
""",
                      fixed=("is_causal=(n == 0)", "attn_mask=torch.ones(t, n + t, dtype=torch.bool).tril(diagonal=n)"),
                      fails=("causal_attention_decoding",)),
            ]),
    Mistake("csa.offset-after-update", "CausalSelfAttention",
            believed="n = len(cache) is read after cache.update, so the offset also counts the new positions",
            fix="read n = len(cache) before calling cache.update(k, v)",
            section="ch05-cache-mask",
            wrong=[
                Wrong("causal_attention/offset_read_after_update",
                      source="""\
class CausalSelfAttention(nn.Module):
    def __init__(self, d_model, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)

    def forward(self, x, cache=None):
        B, t, D = x.shape
        H = self.num_heads
        q = self.W_q(x).view(B, t, H, D // H).transpose(1, 2)
        k = self.W_k(x).view(B, t, H, D // H).transpose(1, 2)
        v = self.W_v(x).view(B, t, H, D // H).transpose(1, 2)
        if cache is not None:
            k, v = cache.update(k, v)
        n = 0 if cache is None else len(cache)
        allowed = torch.ones(t, k.shape[2], dtype=torch.bool).tril(diagonal=n)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        return self.W_o(out.transpose(1, 2).reshape(B, t, D))
""",
                      fixed=("\n        if cache is not None:\n            k, v = cache.update(k, v)\n        n = 0 if cache is None else len(cache)\n", "\n        n = 0 if cache is None else len(cache)\n        if cache is not None:\n            k, v = cache.update(k, v)\n"),
                      fails=("causal_attention_visible", "causal_attention_decoding")),
            ]),
    Mistake("csa.cache-unused", "CausalSelfAttention",
            believed="the cache is updated but attention uses only the new keys and values",
            fix="attend to what the cache returns: read n = len(cache), then k, v = cache.update(k, v), with the mask attn_mask=torch.ones(t, n + t, dtype=torch.bool).tril(diagonal=n) (aligned bottom-right)",
            section="ch05-kv-cache",
            wrong=[
                Wrong("causal_attention/cached_keys_unused",
                      source="""\
class CausalSelfAttention(nn.Module):
    def __init__(self, d_model, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)

    def forward(self, x, cache=None):
        B, t, D = x.shape
        H = self.num_heads
        q = self.W_q(x).view(B, t, H, D // H).transpose(1, 2)
        k = self.W_k(x).view(B, t, H, D // H).transpose(1, 2)
        v = self.W_v(x).view(B, t, H, D // H).transpose(1, 2)
        if cache is not None:
            cache.update(k, v)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.W_o(out.transpose(1, 2).reshape(B, t, D))
""",
                      fixed=("\n        if cache is not None:\n            cache.update(k, v)\n        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)\n", "\n        n = 0 if cache is None else len(cache)\n        if cache is not None:\n            k, v = cache.update(k, v)\n        out = F.scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(t, n + t, dtype=torch.bool).tril(diagonal=n))\n"),
                      fails=("causal_attention_visible", "causal_attention_decoding")),
            ]),
    Mistake("csa.no-mask-without-cache", "CausalSelfAttention",
            believed="without a cache there is no causal mask: every position sees the future",
            fix="apply the causal mask without a cache too (n = 0): query i may attend to keys j <= i",
            section="ch05-cache-mask",
            wrong=[
                Wrong("causal_attention/no_mask_without_cache",
                      source="""\
class CausalSelfAttention(nn.Module):
    def __init__(self, d_model, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)

    def forward(self, x, cache=None):
        B, t, D = x.shape
        H = self.num_heads
        q = self.W_q(x).view(B, t, H, D // H).transpose(1, 2)
        k = self.W_k(x).view(B, t, H, D // H).transpose(1, 2)
        v = self.W_v(x).view(B, t, H, D // H).transpose(1, 2)
        n = 0 if cache is None else len(cache)
        if cache is None:
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            k, v = cache.update(k, v)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(t, n + t, dtype=torch.bool).tril(diagonal=n))
        return self.W_o(out.transpose(1, 2).reshape(B, t, D))
""",
                      fixed=("            out = F.scaled_dot_product_attention(q, k, v)\n", "            out = F.scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(t, n + t, dtype=torch.bool).tril(diagonal=n))\n"),
                      fails=("causal_attention_visible", "causal_attention_full")),
            ]),
    Mistake("csa.strict-mask", "CausalSelfAttention",
            believed="the causal mask hides a query's own position",
            fix="allow key j for query i when j <= i, the diagonal included: .tril(diagonal=n), not diagonal=n - 1",
            section="ch05-cache-mask",
            wrong=[
                Wrong("causal_attention/query_cannot_see_itself",
                      edit=('tril(diagonal=n)',
                            'tril(diagonal=n - 1)'),
                      fixed=('diagonal=n - 1', 'diagonal=n'),
                      fails=("causal_attention_visible", "causal_attention_full", "causal_attention_decoding")),
            ]),
    Mistake("csa.scaled-by-d-model", "CausalSelfAttention",
            believed="the scores are scaled by 1/sqrt(D), the model width",
            fix="scale by 1/sqrt(d), the width of one head, d = D // num_heads",
            section="ch05-small-decoder",
            wrong=[
                Wrong("causal_attention/scaled_by_d_model",
                      source="""\
class CausalSelfAttention(nn.Module):
    def __init__(self, d_model, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)

    def forward(self, x, cache=None):
        B, t, D = x.shape
        H = self.num_heads
        q = self.W_q(x).view(B, t, H, D // H).transpose(1, 2)
        k = self.W_k(x).view(B, t, H, D // H).transpose(1, 2)
        v = self.W_v(x).view(B, t, H, D // H).transpose(1, 2)
        n = 0 if cache is None else len(cache)
        if cache is not None:
            k, v = cache.update(k, v)
        s = q @ k.mT / math.sqrt(D)
        s = s.masked_fill(~torch.ones(t, n + t, dtype=torch.bool).tril(diagonal=n), -math.inf)
        out = torch.softmax(s, dim=-1) @ v
        return self.W_o(out.transpose(1, 2).reshape(B, t, D))
""",
                      fixed=("math.sqrt(D)", "math.sqrt(D // H)"),
                      fails=("causal_attention_full", "causal_attention_decoding")),
            ]),
    Mistake("csa.heads-without-transpose", "CausalSelfAttention",
            believed="the heads are made by a view to (B, H, t, d) without the transpose, which mixes positions and heads",
            fix="split with .view(B, t, H, d).transpose(1, 2), and merge back with .transpose(1, 2).reshape(B, t, D)",
            section="ch05-small-decoder",
            wrong=[
                Wrong("causal_attention/heads_without_transpose",
                      source="""\
class CausalSelfAttention(nn.Module):
    def __init__(self, d_model, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)

    def forward(self, x, cache=None):
        B, t, D = x.shape
        H = self.num_heads
        q = self.W_q(x).view(B, H, t, D // H)
        k = self.W_k(x).view(B, H, t, D // H)
        v = self.W_v(x).view(B, H, t, D // H)
        n = 0 if cache is None else len(cache)
        if cache is not None:
            k, v = cache.update(k, v)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(t, n + t, dtype=torch.bool).tril(diagonal=n))
        return self.W_o(out.reshape(B, t, D))
""",
                      fixed=("\n        q = self.W_q(x).view(B, H, t, D // H)\n        k = self.W_k(x).view(B, H, t, D // H)\n        v = self.W_v(x).view(B, H, t, D // H)\n        n = 0 if cache is None else len(cache)\n        if cache is not None:\n            k, v = cache.update(k, v)\n        out = F.scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(t, n + t, dtype=torch.bool).tril(diagonal=n))\n        return self.W_o(out.reshape(B, t, D))\n", "\n        q = self.W_q(x).view(B, t, H, D // H).transpose(1, 2)\n        k = self.W_k(x).view(B, t, H, D // H).transpose(1, 2)\n        v = self.W_v(x).view(B, t, H, D // H).transpose(1, 2)\n        n = 0 if cache is None else len(cache)\n        if cache is not None:\n            k, v = cache.update(k, v)\n        out = F.scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(t, n + t, dtype=torch.bool).tril(diagonal=n))\n        return self.W_o(out.transpose(1, 2).reshape(B, t, D))\n"),
                      fails=("causal_attention_visible", "causal_attention_full", "causal_attention_decoding")),
            ]),
    Mistake("csa.no-output-projection", "CausalSelfAttention",
            believed="W_o is never applied",
            fix="return self.W_o of the merged heads",
            section="ch05-small-decoder",
            wrong=[
                Wrong("causal_attention/missing_output_projection",
                      edit=('return self.W_o(out.transpose(1, 2).reshape(B, t, D))',
                            'return out.transpose(1, 2).reshape(B, t, D)'),
                      fixed=('return out.transpose(1, 2).reshape(B, t, D)', 'return self.W_o(out.transpose(1, 2).reshape(B, t, D))'),
                      fails=("causal_attention_full", "causal_attention_decoding")),
            ]),
    Mistake("csa.loops-over-heads", "CausalSelfAttention",
            believed="a Python loop over the heads, one attention per head",
            fix="run every head in one batched product: F.scaled_dot_product_attention(q, k, v, attn_mask=allowed) on the (B, H, t, d) tensors, with no loop over h",
            section="ch05-small-decoder",
            detect=False,
            wrong=[
                Wrong("causal_attention/loops_over_heads",
                      source="""\
class CausalSelfAttention(nn.Module):
    def __init__(self, d_model, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)

    def forward(self, x, cache=None):
        B, t, D = x.shape
        H = self.num_heads
        q = self.W_q(x).view(B, t, H, D // H).transpose(1, 2)
        k = self.W_k(x).view(B, t, H, D // H).transpose(1, 2)
        v = self.W_v(x).view(B, t, H, D // H).transpose(1, 2)
        n = 0 if cache is None else len(cache)
        if cache is not None:
            k, v = cache.update(k, v)
        allowed = torch.ones(t, n + t, dtype=torch.bool).tril(diagonal=n)
        heads = []
        for h in range(H):
            heads.append(F.scaled_dot_product_attention(q[:, h], k[:, h], v[:, h], attn_mask=allowed))
        out = torch.stack(heads, dim=1)
        return self.W_o(out.transpose(1, 2).reshape(B, t, D))
""",
                      fixed=("\n        heads = []\n        for h in range(H):\n            heads.append(F.scaled_dot_product_attention(q[:, h], k[:, h], v[:, h], attn_mask=allowed))\n        out = torch.stack(heads, dim=1)\n", "\n        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)\n"),
                      fails=("causal_attention_full",)),
            ]),
    Mistake("csa.loops-over-positions", "CausalSelfAttention",
            believed="a Python loop over the new positions (or the cached ones), each query attending to the keys up to its own",
            fix="let every query attend at once, through one mask of shape (t, n + t): F.scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(t, n + t, dtype=torch.bool).tril(diagonal=n)), with no loop over positions",
            section="ch05-cache-mask",
            detect=False,
            wrong=[
                Wrong("causal_attention/loops_over_query_positions",
                      source="""\
class CausalSelfAttention(nn.Module):
    def __init__(self, d_model, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)

    def forward(self, x, cache=None):
        B, t, D = x.shape
        H = self.num_heads
        q = self.W_q(x).view(B, t, H, D // H).transpose(1, 2)
        k = self.W_k(x).view(B, t, H, D // H).transpose(1, 2)
        v = self.W_v(x).view(B, t, H, D // H).transpose(1, 2)
        n = 0 if cache is None else len(cache)
        if cache is not None:
            k, v = cache.update(k, v)
        rows = []
        for i in range(t):
            rows.append(F.scaled_dot_product_attention(q[:, :, i:i + 1], k[:, :, :n + i + 1], v[:, :, :n + i + 1]))
        out = torch.cat(rows, dim=2)
        return self.W_o(out.transpose(1, 2).reshape(B, t, D))
""",
                      fixed=("\n        rows = []\n        for i in range(t):\n            rows.append(F.scaled_dot_product_attention(q[:, :, i:i + 1], k[:, :, :n + i + 1], v[:, :, :n + i + 1]))\n        out = torch.cat(rows, dim=2)\n", "\n        out = F.scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(t, n + t, dtype=torch.bool).tril(diagonal=n))\n"),
                      fails=("causal_attention_full",)),
            ]),
    # --- apply_rotary ----------------------------------------------------------------------------------------
    Mistake("rope.half-pairs", "apply_rotary",
            believed="coordinate i is rotated with coordinate i + d/2 instead of its neighbour",
            fix="rotate the neighbouring pairs x[..., 0::2], x[..., 1::2] and interleave the results back (torch.stack(..., dim=-1).flatten(-2))",
            section="ch05-rope",
            wrong=[
                Wrong("rotary/pairs_i_and_i_plus_half",
                      source="""\
def apply_rotary(x, positions, base=10000.0):
    d = x.size(-1)
    if d % 2:
        raise ValueError("d must be even")
    freqs = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = positions.double()[:, None] * freqs
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    a, b = x[..., :d // 2], x[..., d // 2:]
    return torch.cat((a * cos - b * sin, a * sin + b * cos), dim=-1)
""",
                      fixed=("\n    a, b = x[..., :d // 2], x[..., d // 2:]\n    return torch.cat((a * cos - b * sin, a * sin + b * cos), dim=-1)\n", "\n    a, b = x[..., 0::2], x[..., 1::2]\n    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)\n"),
                      fails=("rotary_visible", "rotary_values")),
            ]),
    Mistake("rope.frequency-exponent", "apply_rotary",
            believed="the frequencies are base^(-i/d): the factor 2 of the exponent is missing",
            fix="use theta_i = base ** (-2i / d): base ** (-torch.arange(0, d, 2) / d)",
            section="ch05-rope",
            wrong=[
                Wrong("rotary/exponent_off_by_two",
                      source="""\
def apply_rotary(x, positions, base=10000.0):
    d = x.size(-1)
    if d % 2:
        raise ValueError("d must be even")
    freqs = base ** (-torch.arange(0, d // 2, dtype=torch.float64) / d)
    angles = positions.double()[:, None] * freqs
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)
""",
                      fixed=("torch.arange(0, d // 2, dtype", "torch.arange(0, d, 2, dtype"),
                      fails=("rotary_visible", "rotary_values")),
            ]),
    Mistake("rope.positions-shifted", "apply_rotary",
            believed="the positions are counted from 1",
            fix="rotate the row at position p by p * theta_i, with the positions as given (do not add 1: position 0 is no rotation)",
            section="ch05-rope",
            wrong=[
                Wrong("rotary/positions_start_at_one",
                      edit=('positions.to(torch.float64).unsqueeze(-1)',
                            '(positions.to(torch.float64) + 1).unsqueeze(-1)'),
                      fixed=('(positions.to(torch.float64) + 1).unsqueeze(-1)', 'positions.to(torch.float64).unsqueeze(-1)'),
                      fails=("rotary_visible", "rotary_values")),
            ]),
    Mistake("rope.positions-ignored", "apply_rotary",
            believed="the positions argument is ignored: row t is rotated as position t",
            fix="compute the angles from the given positions: positions[:, None] * theta, not torch.arange(T)",
            section="ch05-rope",
            wrong=[
                Wrong("rotary/positions_ignored",
                      source="""\
def apply_rotary(x, positions, base=10000.0):
    d = x.size(-1)
    if d % 2:
        raise ValueError("d must be even")
    freqs = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = torch.arange(x.size(-2), dtype=torch.float64)[:, None] * freqs
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)
""",
                      fixed=("torch.arange(x.size(-2), dtype=torch.float64)[:, None]", "positions.double()[:, None]"),
                      fails=("rotary_values",)),
            ]),
    Mistake("rope.wrong-direction", "apply_rotary",
            believed="the pairs are rotated by minus the angle",
            fix="rotate by +p theta_i: (x, y) becomes (x cos - y sin, x sin + y cos)",
            section="ch05-rope",
            wrong=[
                Wrong("rotary/rotated_the_wrong_way",
                      edit=('(even * cos - odd * sin, even * sin + odd * cos)',
                            '(even * cos + odd * sin, -even * sin + odd * cos)'),
                      fixed=('(even * cos + odd * sin, -even * sin + odd * cos)', '(even * cos - odd * sin, even * sin + odd * cos)'),
                      fails=("rotary_visible", "rotary_values")),
                Wrong("rotary/rotated_the_wrong_way_by_slices",
                      source="""\
def apply_rotary(x, positions, base=10000.0):
    d = x.shape[-1]
    if d % 2 != 0:
        raise ValueError("need an even d")
    inv_freq = 1.0 / base ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    theta = torch.outer(positions.to(torch.float64), inv_freq)
    c, s = torch.cos(theta).to(x.dtype), torch.sin(theta).to(x.dtype)
    x1, x2 = x[..., ::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., ::2] = x1 * c + x2 * s
    out[..., 1::2] = x2 * c - x1 * s
    return out
""",
                      fixed=("    out[..., ::2] = x1 * c + x2 * s\n    out[..., 1::2] = x2 * c - x1 * s\n",
                             "    out[..., ::2] = x1 * c - x2 * s\n    out[..., 1::2] = x1 * s + x2 * c\n"),
                      fails=("rotary_visible", "rotary_values"),
                      note="torch.outer for the angles, the pairs written into slices of a new tensor"),
            ]),
    Mistake("rope.sin-cos-swapped", "apply_rotary",
            believed="sin and cos are swapped",
            fix="take cos of the angle for the cos terms and sin for the sin terms: (x cos - y sin, x sin + y cos)",
            section="ch05-rope",
            wrong=[
                Wrong("rotary/sin_and_cos_swapped",
                      source="""\
def apply_rotary(x, positions, base=10000.0):
    d = x.size(-1)
    if d % 2:
        raise ValueError("d must be even")
    freqs = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = positions.double()[:, None] * freqs
    cos, sin = angles.sin().to(x.dtype), angles.cos().to(x.dtype)
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)
""",
                      fixed=("cos, sin = angles.sin().to(x.dtype), angles.cos().to(x.dtype)", "cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)"),
                      fails=("rotary_visible", "rotary_values")),
            ]),
    Mistake("rope.base-ignored", "apply_rotary",
            believed="the base argument is ignored (10000 hard-coded)",
            fix="use the base argument in the frequencies: base ** (-2i / d)",
            section="ch05-rope",
            wrong=[
                Wrong("rotary/base_ignored",
                      source="""\
def apply_rotary(x, positions, base=10000.0):
    d = x.size(-1)
    if d % 2:
        raise ValueError("d must be even")
    freqs = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = positions.double()[:, None] * freqs
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)
""",
                      fixed=("freqs = 10000.0 **", "freqs = base **"),
                      fails=("rotary_visible", "rotary_values")),
            ]),
    Mistake("rope.no-value-error", "apply_rotary",
            believed="an odd d is not refused",
            fix="raise ValueError when x.size(-1) is odd",
            section="ch05-rope",
            wrong=[
                Wrong("rotary/no_value_error",
                      source="""\
def apply_rotary(x, positions, base=10000.0):
    d = x.size(-1) // 2 * 2
    x = x[..., :d]
    freqs = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = positions.double()[:, None] * freqs
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)
""",
                      fixed=("    d = x.size(-1) // 2 * 2\n", "    if x.size(-1) % 2:\n        raise ValueError(\"d must be even\")\n    d = x.size(-1) // 2 * 2\n"),
                      fails=("rotary_visible", "rotary_properties")),
            ]),
    Mistake("rope.float32-angles", "apply_rotary",
            believed="the angles are computed in float32 whatever the input, which loses precision at large positions",
            fix="compute the angles in the input's dtype or a wider one: positions.to(torch.float64) times float64 frequencies, then cast only cos and sin to x.dtype",
            section="ch05-rope-precision",
            wrong=[
                Wrong("rotary/float32_angles",
                      source="""\
def apply_rotary(x, positions, base=10000.0):
    d = x.size(-1)
    if d % 2:
        raise ValueError("d must be even")
    freqs = base ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)
    angles = positions.float()[:, None] * freqs
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)
""",
                      fixed=("\n    freqs = base ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)\n    angles = positions.float()[:, None] * freqs\n", "\n    freqs = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)\n    angles = positions.double()[:, None] * freqs\n"),
                      fails=("rotary_visible", "rotary_values", "rotary_properties")),
            ]),
    Mistake("rope.loops-over-positions", "apply_rotary",
            believed="a Python loop over the positions, one row rotated at a time",
            fix="compute every angle at once, positions.double()[:, None] * theta of shape (T, d/2), and rotate every row together: cos and sin broadcast over the leading dimensions",
            section="ch05-rope",
            detect=False,
            wrong=[
                Wrong("rotary/loops_over_positions",
                      source="""\
def apply_rotary(x, positions, base=10000.0):
    d = x.size(-1)
    if d % 2:
        raise ValueError("d must be even")
    freqs = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    rows = []
    for row, p in enumerate(positions.tolist()):
        angles = p * freqs
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        a, b = x[..., row, 0::2], x[..., row, 1::2]
        rows.append(torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2))
    return torch.stack(rows, dim=-2)
""",
                      fixed=("\n    freqs = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)\n    rows = []\n    for row, p in enumerate(positions.tolist()):\n        angles = p * freqs\n        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)\n        a, b = x[..., row, 0::2], x[..., row, 1::2]\n        rows.append(torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2))\n    return torch.stack(rows, dim=-2)\n", "\n    freqs = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)\n    angles = positions.double()[:, None] * freqs\n    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)\n    a, b = x[..., 0::2], x[..., 1::2]\n    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)\n"),
                      fails=("rotary_properties",)),
            ]),
    Mistake("rope.loops-over-pairs", "apply_rotary",
            believed="a Python loop over the pairs of coordinates, one pair rotated at a time",
            fix="rotate every pair together: a, b = x[..., 0::2], x[..., 1::2], then torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)",
            section="ch05-rope",
            detect=False,
            wrong=[
                Wrong("rotary/loops_over_pairs",
                      source="""\
def apply_rotary(x, positions, base=10000.0):
    d = x.size(-1)
    if d % 2:
        raise ValueError("d must be even")
    freqs = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = positions.double()[:, None] * freqs
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    out = x.clone()
    for i in range(d // 2):
        a, b = x[..., 2 * i], x[..., 2 * i + 1]
        out[..., 2 * i] = a * cos[:, i] - b * sin[:, i]
        out[..., 2 * i + 1] = a * sin[:, i] + b * cos[:, i]
    return out
""",
                      fixed=("\n    out = x.clone()\n    for i in range(d // 2):\n        a, b = x[..., 2 * i], x[..., 2 * i + 1]\n        out[..., 2 * i] = a * cos[:, i] - b * sin[:, i]\n        out[..., 2 * i + 1] = a * sin[:, i] + b * cos[:, i]\n    return out\n", "\n    a, b = x[..., 0::2], x[..., 1::2]\n    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)\n"),
                      fails=("rotary_properties",)),
            ]),
    # --- GroupedQueryAttention -------------------------------------------------------------------------------
    Mistake("gqa.repeat-not-interleave", "GroupedQueryAttention",
            believed="the kv heads are tiled with repeat, so query head h reads kv head h % num_kv_heads",
            fix="expand the kv heads with k.repeat_interleave(g, dim=1) (heads 0, 0, 1, 1, ...), not repeat",
            section="ch05-gqa",
            wrong=[
                Wrong("gqa/repeat_instead_of_repeat_interleave",
                      source="""\
class GroupedQueryAttention(nn.Module):
    def __init__(self, d_model, num_heads, num_kv_heads):
        super().__init__()
        if d_model % num_heads or num_heads % num_kv_heads:
            raise ValueError("d_model % num_heads and num_heads % num_kv_heads must be 0")
        self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
        self.head_dim = d_model // num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, num_kv_heads * self.head_dim)
        self.W_v = nn.Linear(d_model, num_kv_heads * self.head_dim)
        self.W_o = nn.Linear(d_model, d_model)

    def forward(self, x, mask=None):
        B, T, D = x.shape
        H, H_kv, d = self.num_heads, self.num_kv_heads, self.head_dim
        q = self.W_q(x).view(B, T, H, d).transpose(1, 2)
        k = self.W_k(x).view(B, T, H_kv, d).transpose(1, 2)
        v = self.W_v(x).view(B, T, H_kv, d).transpose(1, 2)
        k = k.repeat(1, H // H_kv, 1, 1)
        v = v.repeat(1, H // H_kv, 1, 1)
        s = q @ k.mT / math.sqrt(d)
        if mask is not None:
            s = s.masked_fill(~mask, torch.finfo(s.dtype).min)
        w = torch.softmax(s, dim=-1)
        if mask is not None:
            w = w * mask
        return self.W_o((w @ v).transpose(1, 2).reshape(B, T, D)), w
""",
                      fixed=("\n        k = k.repeat(1, H // H_kv, 1, 1)\n        v = v.repeat(1, H // H_kv, 1, 1)\n", "\n        k = k.repeat_interleave(H // H_kv, dim=1)\n        v = v.repeat_interleave(H // H_kv, dim=1)\n"),
                      fails=("gqa_matches_sdpa", "gqa_masks")),
            ]),
    Mistake("gqa.only-first-kv-head", "GroupedQueryAttention",
            believed="every query head reads the first kv head",
            fix="let query head h read kv head h // g: k.repeat_interleave(g, dim=1) and the same for v, with g = num_heads // num_kv_heads",
            section="ch05-gqa",
            wrong=[
                Wrong("gqa/every_query_head_reads_kv_head_0",
                      source="""\
class GroupedQueryAttention(nn.Module):
    def __init__(self, d_model, num_heads, num_kv_heads):
        super().__init__()
        if d_model % num_heads or num_heads % num_kv_heads:
            raise ValueError("d_model % num_heads and num_heads % num_kv_heads must be 0")
        self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
        self.head_dim = d_model // num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, num_kv_heads * self.head_dim)
        self.W_v = nn.Linear(d_model, num_kv_heads * self.head_dim)
        self.W_o = nn.Linear(d_model, d_model)

    def forward(self, x, mask=None):
        B, T, D = x.shape
        H, H_kv, d = self.num_heads, self.num_kv_heads, self.head_dim
        q = self.W_q(x).view(B, T, H, d).transpose(1, 2)
        k = self.W_k(x).view(B, T, H_kv, d).transpose(1, 2)
        v = self.W_v(x).view(B, T, H_kv, d).transpose(1, 2)
        k = k[:, :1].expand(B, H, T, d)
        v = v[:, :1].expand(B, H, T, d)
        s = q @ k.mT / math.sqrt(d)
        if mask is not None:
            s = s.masked_fill(~mask, torch.finfo(s.dtype).min)
        w = torch.softmax(s, dim=-1)
        if mask is not None:
            w = w * mask
        return self.W_o((w @ v).transpose(1, 2).reshape(B, T, D)), w
""",
                      fixed=("\n        k = k[:, :1].expand(B, H, T, d)\n        v = v[:, :1].expand(B, H, T, d)\n", "\n        k = k.repeat_interleave(H // H_kv, dim=1)\n        v = v.repeat_interleave(H // H_kv, dim=1)\n"),
                      fails=("gqa_matches_sdpa", "gqa_masks")),
            ]),
    Mistake("gqa.full-width-kv", "GroupedQueryAttention",
            believed="W_k and W_v project to the full width D, so no memory is saved",
            fix="make W_k and W_v nn.Linear(d_model, num_kv_heads * d), with d = d_model // num_heads, and use their whole output",
            section="ch05-gqa",
            wrong=[
                Wrong("gqa/full_width_key_value_projections",
                      source="""\
class GroupedQueryAttention(nn.Module):
    def __init__(self, d_model, num_heads, num_kv_heads):
        super().__init__()
        if d_model % num_heads or num_heads % num_kv_heads:
            raise ValueError("d_model % num_heads and num_heads % num_kv_heads must be 0")
        self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
        self.head_dim = d_model // num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)

    def forward(self, x, mask=None):
        B, T, D = x.shape
        H, H_kv, d = self.num_heads, self.num_kv_heads, self.head_dim
        q = self.W_q(x).view(B, T, H, d).transpose(1, 2)
        k = self.W_k(x)[..., :H_kv * d].reshape(B, T, H_kv, d).transpose(1, 2)
        v = self.W_v(x)[..., :H_kv * d].reshape(B, T, H_kv, d).transpose(1, 2)
        k = k.repeat_interleave(H // H_kv, dim=1)
        v = v.repeat_interleave(H // H_kv, dim=1)
        s = q @ k.mT / math.sqrt(d)
        if mask is not None:
            s = s.masked_fill(~mask, torch.finfo(s.dtype).min)
        w = torch.softmax(s, dim=-1)
        if mask is not None:
            w = w * mask
        return self.W_o((w @ v).transpose(1, 2).reshape(B, T, D)), w
""",
                      fixed=("\n        self.W_k = nn.Linear(d_model, d_model)\n        self.W_v = nn.Linear(d_model, d_model)\n        self.W_o = nn.Linear(d_model, d_model)\n\n    def forward(self, x, mask=None):\n        B, T, D = x.shape\n        H, H_kv, d = self.num_heads, self.num_kv_heads, self.head_dim\n        q = self.W_q(x).view(B, T, H, d).transpose(1, 2)\n        k = self.W_k(x)[..., :H_kv * d].reshape(B, T, H_kv, d).transpose(1, 2)\n        v = self.W_v(x)[..., :H_kv * d].reshape(B, T, H_kv, d).transpose(1, 2)\n", "\n        self.W_k = nn.Linear(d_model, num_kv_heads * self.head_dim)\n        self.W_v = nn.Linear(d_model, num_kv_heads * self.head_dim)\n        self.W_o = nn.Linear(d_model, d_model)\n\n    def forward(self, x, mask=None):\n        B, T, D = x.shape\n        H, H_kv, d = self.num_heads, self.num_kv_heads, self.head_dim\n        q = self.W_q(x).view(B, T, H, d).transpose(1, 2)\n        k = self.W_k(x).reshape(B, T, H_kv, d).transpose(1, 2)\n        v = self.W_v(x).reshape(B, T, H_kv, d).transpose(1, 2)\n"),
                      fails=("gqa_visible", "gqa_matches_sdpa", "gqa_masks", "gqa_parameters")),
            ]),
    Mistake("gqa.scaled-by-d-model", "GroupedQueryAttention",
            believed="the scores are scaled by 1/sqrt(D), the model width",
            fix="scale by 1/sqrt(d), the width of one head, d = D // num_heads",
            section="ch05-gqa",
            wrong=[
                Wrong("gqa/scaled_by_d_model",
                      edit=('q @ k.mT / math.sqrt(self.head_dim)',
                            'q @ k.mT / math.sqrt(D)'),
                      fixed=('q @ k.mT / math.sqrt(D)', 'q @ k.mT / math.sqrt(self.head_dim)'),
                      fails=("gqa_matches_sdpa", "gqa_masks")),
            ]),
    Mistake("gqa.mask-ignored", "GroupedQueryAttention",
            believed="the mask is never applied",
            fix="fill the scores where the mask is False before the softmax (scores.masked_fill(~mask, torch.finfo(scores.dtype).min)), then multiply the weights by the mask",
            section="ch05-gqa",
            wrong=[
                Wrong("gqa/mask_ignored",
                      source="""\
class GroupedQueryAttention(nn.Module):
    def __init__(self, d_model, num_heads, num_kv_heads):
        super().__init__()
        if d_model % num_heads or num_heads % num_kv_heads:
            raise ValueError("d_model % num_heads and num_heads % num_kv_heads must be 0")
        self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
        self.head_dim = d_model // num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, num_kv_heads * self.head_dim)
        self.W_v = nn.Linear(d_model, num_kv_heads * self.head_dim)
        self.W_o = nn.Linear(d_model, d_model)

    def forward(self, x, mask=None):
        B, T, D = x.shape
        H, H_kv, d = self.num_heads, self.num_kv_heads, self.head_dim
        q = self.W_q(x).view(B, T, H, d).transpose(1, 2)
        k = self.W_k(x).view(B, T, H_kv, d).transpose(1, 2)
        v = self.W_v(x).view(B, T, H_kv, d).transpose(1, 2)
        k = k.repeat_interleave(H // H_kv, dim=1)
        v = v.repeat_interleave(H // H_kv, dim=1)
        s = q @ k.mT / math.sqrt(d)
        w = torch.softmax(s, dim=-1)
        return self.W_o((w @ v).transpose(1, 2).reshape(B, T, D)), w
""",
                      fixed=("\n        w = torch.softmax(s, dim=-1)\n", "\n        if mask is not None:\n            s = s.masked_fill(~mask, torch.finfo(s.dtype).min)\n        w = torch.softmax(s, dim=-1)\n        if mask is not None:\n            w = w * mask\n"),
                      fails=("gqa_masks",)),
            ]),
    Mistake("gqa.mask-inverted", "GroupedQueryAttention",
            believed="the mask is read the wrong way round",
            fix="True means \"may attend\": fill the scores where ~mask, and multiply the weights by mask",
            section="ch05-gqa",
            wrong=[
                Wrong("gqa/mask_inverted",
                      source="""\
class GroupedQueryAttention(nn.Module):
    def __init__(self, d_model, num_heads, num_kv_heads):
        super().__init__()
        if d_model % num_heads or num_heads % num_kv_heads:
            raise ValueError("d_model % num_heads and num_heads % num_kv_heads must be 0")
        self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
        self.head_dim = d_model // num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, num_kv_heads * self.head_dim)
        self.W_v = nn.Linear(d_model, num_kv_heads * self.head_dim)
        self.W_o = nn.Linear(d_model, d_model)

    def forward(self, x, mask=None):
        B, T, D = x.shape
        H, H_kv, d = self.num_heads, self.num_kv_heads, self.head_dim
        q = self.W_q(x).view(B, T, H, d).transpose(1, 2)
        k = self.W_k(x).view(B, T, H_kv, d).transpose(1, 2)
        v = self.W_v(x).view(B, T, H_kv, d).transpose(1, 2)
        k = k.repeat_interleave(H // H_kv, dim=1)
        v = v.repeat_interleave(H // H_kv, dim=1)
        s = q @ k.mT / math.sqrt(d)
        if mask is not None:
            s = s.masked_fill(mask, torch.finfo(s.dtype).min)
        w = torch.softmax(s, dim=-1)
        if mask is not None:
            w = w * ~mask
        return self.W_o((w @ v).transpose(1, 2).reshape(B, T, D)), w
""",
                      fixed=("\n            s = s.masked_fill(mask, torch.finfo(s.dtype).min)\n        w = torch.softmax(s, dim=-1)\n        if mask is not None:\n            w = w * ~mask\n", "\n            s = s.masked_fill(~mask, torch.finfo(s.dtype).min)\n        w = torch.softmax(s, dim=-1)\n        if mask is not None:\n            w = w * mask\n"),
                      fails=("gqa_masks",)),
                Wrong("gqa/mask_inverted_with_where",
                      source="""\
class GroupedQueryAttention(nn.Module):
    def __init__(self, d_model, num_heads, num_kv_heads):
        super().__init__()
        if d_model % num_heads != 0 or num_heads % num_kv_heads != 0:
            raise ValueError("bad head counts")
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = d_model // num_heads
        self.W_q = nn.Linear(d_model, num_heads * self.head_dim)
        self.W_k = nn.Linear(d_model, num_kv_heads * self.head_dim)
        self.W_v = nn.Linear(d_model, num_kv_heads * self.head_dim)
        self.W_o = nn.Linear(num_heads * self.head_dim, d_model)

    def forward(self, x, mask=None):
        B, T, _ = x.shape
        hd = self.head_dim
        queries = self.W_q(x).reshape(B, T, self.num_heads, hd).permute(0, 2, 1, 3)
        keys = self.W_k(x).reshape(B, T, self.num_kv_heads, hd).permute(0, 2, 1, 3)
        values = self.W_v(x).reshape(B, T, self.num_kv_heads, hd).permute(0, 2, 1, 3)
        reps = self.num_heads // self.num_kv_heads
        keys = torch.repeat_interleave(keys, reps, dim=1)
        values = torch.repeat_interleave(values, reps, dim=1)
        scores = torch.matmul(queries, keys.transpose(-2, -1)) * hd ** -0.5
        if mask is not None:
            blocked = mask                      # True = padding, to hide
            scores = torch.where(blocked, torch.full_like(scores, -1e9), scores)
        attn = scores.softmax(dim=-1)
        if mask is not None:
            attn = torch.where(blocked, torch.zeros_like(attn), attn)
        out = torch.matmul(attn, values).permute(0, 2, 1, 3).reshape(B, T, -1)
        return self.W_o(out), attn
""",
                      fixed=("            blocked = mask                      # True = padding, to hide\n",
                             "            blocked = ~mask                     # True = may not attend\n"),
                      fails=("gqa_masks",),
                      note="torch.where with -1e9 and zeros, permute and torch.matmul: another student's code"),
            ]),
    Mistake("gqa.nan-fully-masked", "GroupedQueryAttention",
            believed="a query whose keys are all masked gets NaN",
            fix="fill masked scores with torch.finfo(scores.dtype).min instead of -inf and multiply the weights by the mask, so that a fully masked query gets weights 0",
            section="ch05-gqa",
            wrong=[
                Wrong("gqa/fully_masked_query_gives_nan",
                      source="""\
class GroupedQueryAttention(nn.Module):
    def __init__(self, d_model, num_heads, num_kv_heads):
        super().__init__()
        if d_model % num_heads or num_heads % num_kv_heads:
            raise ValueError("d_model % num_heads and num_heads % num_kv_heads must be 0")
        self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
        self.head_dim = d_model // num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, num_kv_heads * self.head_dim)
        self.W_v = nn.Linear(d_model, num_kv_heads * self.head_dim)
        self.W_o = nn.Linear(d_model, d_model)

    def forward(self, x, mask=None):
        B, T, D = x.shape
        H, H_kv, d = self.num_heads, self.num_kv_heads, self.head_dim
        q = self.W_q(x).view(B, T, H, d).transpose(1, 2)
        k = self.W_k(x).view(B, T, H_kv, d).transpose(1, 2)
        v = self.W_v(x).view(B, T, H_kv, d).transpose(1, 2)
        k = k.repeat_interleave(H // H_kv, dim=1)
        v = v.repeat_interleave(H // H_kv, dim=1)
        s = q @ k.mT / math.sqrt(d)
        if mask is not None:
            s = s.masked_fill(~mask, -math.inf)
        w = torch.softmax(s, dim=-1)
        return self.W_o((w @ v).transpose(1, 2).reshape(B, T, D)), w
""",
                      fixed=("\n            s = s.masked_fill(~mask, -math.inf)\n        w = torch.softmax(s, dim=-1)\n", "\n            s = s.masked_fill(~mask, torch.finfo(s.dtype).min)\n        w = torch.softmax(s, dim=-1)\n        if mask is not None:\n            w = w * mask\n"),
                      fails=("gqa_masks",)),
            ]),
    Mistake("gqa.no-value-error", "GroupedQueryAttention",
            believed="num_heads not divisible by num_kv_heads is accepted",
            fix="raise ValueError when d_model % num_heads != 0 or num_heads % num_kv_heads != 0",
            section="ch05-gqa",
            wrong=[
                Wrong("gqa/no_value_error_for_groups",
                      source="""\
class GroupedQueryAttention(nn.Module):
    def __init__(self, d_model, num_heads, num_kv_heads):
        super().__init__()
        if d_model % num_heads:
            raise ValueError("d_model % num_heads must be 0")
        self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
        self.head_dim = d_model // num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, num_kv_heads * self.head_dim)
        self.W_v = nn.Linear(d_model, num_kv_heads * self.head_dim)
        self.W_o = nn.Linear(d_model, d_model)

    def forward(self, x, mask=None):
        B, T, D = x.shape
        H, H_kv, d = self.num_heads, self.num_kv_heads, self.head_dim
        q = self.W_q(x).view(B, T, H, d).transpose(1, 2)
        k = self.W_k(x).view(B, T, H_kv, d).transpose(1, 2)
        v = self.W_v(x).view(B, T, H_kv, d).transpose(1, 2)
        k = k.repeat_interleave(H // H_kv, dim=1)
        v = v.repeat_interleave(H // H_kv, dim=1)
        s = q @ k.mT / math.sqrt(d)
        if mask is not None:
            s = s.masked_fill(~mask, torch.finfo(s.dtype).min)
        w = torch.softmax(s, dim=-1)
        if mask is not None:
            w = w * mask
        return self.W_o((w @ v).transpose(1, 2).reshape(B, T, D)), w
""",
                      fixed=("\n        if d_model % num_heads:\n            raise ValueError(\"d_model % num_heads must be 0\")\n", "\n        if d_model % num_heads or num_heads % num_kv_heads:\n            raise ValueError(\"d_model % num_heads and num_heads % num_kv_heads must be 0\")\n"),
                      fails=("gqa_visible", "gqa_parameters")),
            ]),
    Mistake("gqa.heads-without-transpose", "GroupedQueryAttention",
            believed="the heads are made by a view to (B, H, T, d) without the transpose, which mixes positions and heads",
            fix="split with .view(B, T, H, d).transpose(1, 2) (and H_kv for keys and values)",
            section="ch05-gqa",
            wrong=[
                Wrong("gqa/heads_without_transpose",
                      source="""\
class GroupedQueryAttention(nn.Module):
    def __init__(self, d_model, num_heads, num_kv_heads):
        super().__init__()
        if d_model % num_heads or num_heads % num_kv_heads:
            raise ValueError("d_model % num_heads and num_heads % num_kv_heads must be 0")
        self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
        self.head_dim = d_model // num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, num_kv_heads * self.head_dim)
        self.W_v = nn.Linear(d_model, num_kv_heads * self.head_dim)
        self.W_o = nn.Linear(d_model, d_model)

    def forward(self, x, mask=None):
        B, T, D = x.shape
        H, H_kv, d = self.num_heads, self.num_kv_heads, self.head_dim
        q = self.W_q(x).view(B, H, T, d)
        k = self.W_k(x).view(B, H_kv, T, d)
        v = self.W_v(x).view(B, H_kv, T, d)
        k = k.repeat_interleave(H // H_kv, dim=1)
        v = v.repeat_interleave(H // H_kv, dim=1)
        s = q @ k.mT / math.sqrt(d)
        if mask is not None:
            s = s.masked_fill(~mask, torch.finfo(s.dtype).min)
        w = torch.softmax(s, dim=-1)
        if mask is not None:
            w = w * mask
        return self.W_o((w @ v).transpose(1, 2).reshape(B, T, D)), w
""",
                      fixed=("\n        q = self.W_q(x).view(B, H, T, d)\n        k = self.W_k(x).view(B, H_kv, T, d)\n        v = self.W_v(x).view(B, H_kv, T, d)\n", "\n        q = self.W_q(x).view(B, T, H, d).transpose(1, 2)\n        k = self.W_k(x).view(B, T, H_kv, d).transpose(1, 2)\n        v = self.W_v(x).view(B, T, H_kv, d).transpose(1, 2)\n"),
                      fails=("gqa_matches_sdpa", "gqa_masks")),
            ]),
    Mistake("gqa.python-loop", "GroupedQueryAttention",
            believed="a Python loop over the query heads",
            fix="give every query head its kv head at once, k.repeat_interleave(H // H_kv, dim=1) (and v), and run every head in one batched product",
            section="ch05-gqa",
            detect=False,
            wrong=[
                Wrong("gqa/loops_over_query_heads",
                      source="""\
class GroupedQueryAttention(nn.Module):
    def __init__(self, d_model, num_heads, num_kv_heads):
        super().__init__()
        if d_model % num_heads or num_heads % num_kv_heads:
            raise ValueError("d_model % num_heads and num_heads % num_kv_heads must be 0")
        self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
        self.head_dim = d_model // num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, num_kv_heads * self.head_dim)
        self.W_v = nn.Linear(d_model, num_kv_heads * self.head_dim)
        self.W_o = nn.Linear(d_model, d_model)

    def forward(self, x, mask=None):
        B, T, D = x.shape
        H, H_kv, d = self.num_heads, self.num_kv_heads, self.head_dim
        q = self.W_q(x).view(B, T, H, d).transpose(1, 2)
        k = self.W_k(x).view(B, T, H_kv, d).transpose(1, 2)
        v = self.W_v(x).view(B, T, H_kv, d).transpose(1, 2)



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
""",
                      fixed=("\n\n\n        outs, ws = [], []\n        for h in range(H):\n            s = q[:, h] @ k[:, h // (H // H_kv)].mT / math.sqrt(d)\n            if mask is not None:\n                allowed = torch.broadcast_to(mask, (B, H, T, T))[:, h]\n                s = s.masked_fill(~allowed, torch.finfo(s.dtype).min)\n            w = torch.softmax(s, dim=-1)\n            if mask is not None:\n                w = w * allowed\n            outs.append(w @ v[:, h // (H // H_kv)])\n            ws.append(w)\n        return self.W_o(torch.stack(outs, dim=1).transpose(1, 2).reshape(B, T, D)), torch.stack(ws, dim=1)\n", "        k = k.repeat_interleave(H // H_kv, dim=1)\n        v = v.repeat_interleave(H // H_kv, dim=1)\n        s = q @ k.mT / math.sqrt(d)\n        if mask is not None:\n            s = s.masked_fill(~mask, torch.finfo(s.dtype).min)\n        w = torch.softmax(s, dim=-1)\n        if mask is not None:\n            w = w * mask\n        return self.W_o((w @ v).transpose(1, 2).reshape(B, T, D)), w\n"),
                      fails=("gqa_no_loops",)),
            ]),
]
