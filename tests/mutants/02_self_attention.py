"""Wrong implementations of the graded components of 02_self_attention (see tests/mutants/__init__.py)."""
from tests.mutants import function_mutant, module_mutant

ASSIGNMENT = "02_self_attention"
# masked_softmax and scaled_dot_product_attention are pasted from assignment 01 and graded there.
NOT_GRADED_HERE = ("attention_helpers",)


def causal(body, why, fails=()):
    return function_mutant("causal_mask", "causal_mask(size, device=None)", body, why, fails)


def padding(body, why, fails=()):
    return function_mutant("padding_mask", "padding_mask(lengths, max_len)", body, why, fails)


def encoding(body, why, fails=()):
    return function_mutant("sinusoidal_positional_encoding", "sinusoidal_positional_encoding(max_len, d_model)",
                           body, why, fails)


PE_CHECK = """
    if d_model % 2:
        raise ValueError("d_model must be even")
"""

SELF_ATTENTION_INIT = """
        d_k = d_model if d_k is None else d_k
        d_v = d_model if d_v is None else d_v
        self.W_q = nn.Linear(d_model, d_k)
        self.W_k = nn.Linear(d_model, d_k)
        self.W_v = nn.Linear(d_model, d_v)
"""


def self_attention(why, forward, fails=(), init=SELF_ATTENTION_INIT):
    """A mutant of the SelfAttention cell with a wrong forward (or __init__) body."""
    return module_mutant("SelfAttention", "d_model, d_k=None, d_v=None", init, "x, mask=None", forward, why, fails)


MUTANTS = {
    # --- causal_mask -----------------------------------------------------------------------------
    "causal_mask/upper_triangular": causal("""
    return torch.ones(size, size, dtype=torch.bool, device=device).triu()
""", "upper triangle: each query sees the future", fails=["causal_mask_visible", "causal_mask_hidden"]),
    "causal_mask/diagonal_masked": causal("""
    return torch.ones(size, size, dtype=torch.bool, device=device).tril(-1)
""", "off by one: a token may not attend to itself", fails=["causal_mask_visible", "causal_mask_hidden"]),
    "causal_mask/inverted": causal("""
    return ~torch.ones(size, size, dtype=torch.bool, device=device).tril()
""", "True where blocked (nn.MultiheadAttention's convention)", fails=["causal_mask_visible", "causal_mask_hidden"]),
    "causal_mask/one_step_ahead": causal("""
    return torch.ones(size, size, dtype=torch.bool, device=device).tril(1)
""", "off by one: each query also sees the next token", fails=["causal_mask_visible", "causal_mask_hidden"]),
    "causal_mask/float_mask": causal("""
    return torch.ones(size, size, device=device).tril()
""", "a float 0/1 mask instead of a boolean one", fails=["causal_mask_visible", "causal_mask_hidden"]),
    "causal_mask/additive_float_mask": causal("""
    allowed = torch.ones(size, size, dtype=torch.bool, device=device).tril()
    return torch.zeros(size, size, device=device).masked_fill(~allowed, float("-inf"))
""", "an additive float mask (0 / -inf) instead of a boolean one", fails=["causal_mask_visible", "causal_mask_hidden"]),

    # --- padding_mask ----------------------------------------------------------------------------
    "padding_mask/inverted": padding("""
    return torch.arange(max_len)[None, :] >= lengths[:, None]
""", "True at the padding instead of the real tokens", fails=["padding_mask_visible", "padding_mask_hidden"]),
    "padding_mask/off_by_one": padding("""
    return torch.arange(max_len)[None, :] <= lengths[:, None]
""", "one padding position too many counted as real", fails=["padding_mask_visible", "padding_mask_hidden"]),
    "padding_mask/longest_length_instead_of_max_len": padding("""
    return torch.arange(int(lengths.max()))[None, :] < lengths[:, None]
""", "max_len ignored: the mask is as wide as the longest sequence", fails=["padding_mask_hidden"]),
    "padding_mask/transposed": padding("""
    return torch.arange(max_len)[:, None] < lengths[None, :]
""", "shape (max_len, B) instead of (B, max_len)", fails=["padding_mask_visible", "padding_mask_hidden"]),
    "padding_mask/float_mask": padding("""
    return (torch.arange(max_len)[None, :] < lengths[:, None]).float()
""", "a float 0/1 mask instead of a boolean one", fails=["padding_mask_visible", "padding_mask_hidden"]),
    "padding_mask/counts_from_one": padding("""
    return torch.arange(1, max_len + 1)[None, :] < lengths[:, None]
""", "positions counted from 1: the last real token is masked", fails=["padding_mask_visible", "padding_mask_hidden"]),

    # --- sinusoidal_positional_encoding ----------------------------------------------------------
    "pe/sin_cos_swapped": encoding(PE_CHECK + """
    angle = torch.arange(max_len)[:, None] / 10000 ** (torch.arange(0, d_model, 2) / d_model)
    return torch.stack((angle.cos(), angle.sin()), dim=-1).flatten(1).float()
""", "cosines in the even columns, sines in the odd ones", fails=["pe_visible", "pe_values"]),
    "pe/halves_concatenated": encoding(PE_CHECK + """
    angle = torch.arange(max_len)[:, None] / 10000 ** (torch.arange(0, d_model, 2) / d_model)
    return torch.cat((angle.sin(), angle.cos()), dim=-1).float()
""", "sines and cosines in two halves instead of interleaved", fails=["pe_visible", "pe_values"]),
    "pe/column_index_in_exponent": encoding(PE_CHECK + """
    column = torch.arange(d_model)
    angle = torch.arange(max_len)[:, None] / 10000 ** (column / d_model)
    return torch.where(column % 2 == 0, angle.sin(), angle.cos()).float()
""", "exponent j / d_model with the column j instead of 2i / d_model", fails=["pe_values"]),
    "pe/exponent_without_factor_two": encoding(PE_CHECK + """
    angle = torch.arange(max_len)[:, None] / 10000 ** (torch.arange(d_model // 2) / d_model)
    return torch.stack((angle.sin(), angle.cos()), dim=-1).flatten(1).float()
""", "exponent i / d_model instead of 2i / d_model", fails=["pe_values"]),
    "pe/base_1000": encoding(PE_CHECK + """
    angle = torch.arange(max_len)[:, None] / 1000 ** (torch.arange(0, d_model, 2) / d_model)
    return torch.stack((angle.sin(), angle.cos()), dim=-1).flatten(1).float()
""", "base 1000 instead of 10000", fails=["pe_values"]),
    "pe/multiplies_instead_of_divides": encoding(PE_CHECK + """
    angle = torch.arange(max_len)[:, None] * 10000 ** (torch.arange(0, d_model, 2) / d_model)
    return torch.stack((angle.sin(), angle.cos()), dim=-1).flatten(1).float()
""", "p * 10000^(2i/d) instead of p / 10000^(2i/d)", fails=["pe_values"]),
    "pe/float64_returned": encoding(PE_CHECK + """
    angle = torch.arange(max_len, dtype=torch.float64)[:, None] / 10000 ** (torch.arange(0, d_model, 2) / d_model)
    return torch.stack((angle.sin(), angle.cos()), dim=-1).flatten(1)
""", "float64 returned instead of float32", fails=["pe_visible", "pe_values"]),
    "pe/odd_width_accepted": encoding("""
    angle = torch.arange(max_len)[:, None] / 10000 ** (torch.arange(0, d_model, 2) / d_model)
    return torch.stack((angle.sin(), angle.cos()), dim=-1).flatten(1)[:, :d_model].float()
""", "an odd d_model is silently truncated instead of raising ValueError", fails=["pe_errors"]),

    # --- SelfAttention ---------------------------------------------------------------------------
    "self_attention/seed_unscaled_scores": self_attention("the seed text's example: scores never divided by sqrt(d_k)", """
        q, k, v = self.W_q(x), self.W_k(x), self.W_v(x)
        weights = masked_softmax(q @ k.transpose(-2, -1), mask)
        return weights @ v, weights
""", fails=["self_attention_values"]),
    "self_attention/scaled_by_d_model": self_attention("scale 1/sqrt(d_model) instead of 1/sqrt(d_k)", """
        q, k, v = self.W_q(x), self.W_k(x), self.W_v(x)
        weights = masked_softmax(q @ k.transpose(-2, -1) / math.sqrt(x.size(-1)), mask)
        return weights @ v, weights
""", fails=["self_attention_values"]),
    "self_attention/queries_projection_used_for_keys": self_attention("one projection shared by queries and keys", """
        q, v = self.W_q(x), self.W_v(x)
        weights = masked_softmax(q @ q.transpose(-2, -1) / math.sqrt(q.size(-1)), mask)
        return weights @ v, weights
""", fails=["self_attention_values", "self_attention_equivariance_gradients"]),
    "self_attention/no_projections": self_attention("queries, keys and values are the raw inputs (no W_q, W_k, W_v)", """
        weights = masked_softmax(x @ x.transpose(-2, -1) / math.sqrt(x.size(-1)), mask)
        return weights @ x, weights
""", fails=["self_attention_visible", "self_attention_values", "self_attention_equivariance_gradients"]),
    "self_attention/values_not_projected": self_attention("the values are the raw inputs (no W_v)", """
        q, k = self.W_q(x), self.W_k(x)
        weights = masked_softmax(q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)), mask)
        return weights @ x, weights
""", fails=["self_attention_visible", "self_attention_values"]),
    "self_attention/no_biases": self_attention("projections without biases", init="""
        d_k = d_model if d_k is None else d_k
        d_v = d_model if d_v is None else d_v
        self.W_q = nn.Linear(d_model, d_k, bias=False)
        self.W_k = nn.Linear(d_model, d_k, bias=False)
        self.W_v = nn.Linear(d_model, d_v, bias=False)
""", forward="""
        return scaled_dot_product_attention(self.W_q(x), self.W_k(x), self.W_v(x), mask)
""", fails=["self_attention_visible", "self_attention_equivariance_gradients"]),
    "self_attention/mask_ignored": self_attention("the mask is never passed on", """
        return scaled_dot_product_attention(self.W_q(x), self.W_k(x), self.W_v(x))
""", fails=["self_attention_masks"]),
    "self_attention/weights_transposed": self_attention("weights returned as (keys, queries)", """
        output, weights = scaled_dot_product_attention(self.W_q(x), self.W_k(x), self.W_v(x), mask)
        return output, weights.transpose(-2, -1)
""", fails=["self_attention_values"]),
    "self_attention/softmax_over_queries": self_attention("softmax over the queries (dim -2)", """
        q, k, v = self.W_q(x), self.W_k(x), self.W_v(x)
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
        weights = torch.softmax(scores, dim=-2)
        if mask is not None:
            weights = weights * mask
        return weights @ v, weights
""", fails=["self_attention_visible", "self_attention_values"]),
}
