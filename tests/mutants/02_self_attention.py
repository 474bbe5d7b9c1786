"""Wrong implementations of the graded components of 02_self_attention (see tests/mutants/__init__.py)."""
from tests.mutants import Mutant, function_mutant, module_mutant

ASSIGNMENT = "02_self_attention"
# masked_softmax and scaled_dot_product_attention are pasted from assignment 01 and graded there.
NOT_GRADED_HERE = ("attention_helpers",)


def causal(body, why, fails=()):
    return function_mutant("causal_mask", "causal_mask(size, device=None)", body, why, fails)


def padding(body, why, fails=()):
    return function_mutant("padding_mask", "padding_mask(lengths, max_len, left=False)", body, why, fails)


def combined(body, why, fails=()):
    return function_mutant("self_attention_mask", "self_attention_mask(lengths, max_len, causal=True, left=False)",
                           body, why, fails)


def encoding(body, why, fails=()):
    return function_mutant("sinusoidal_positional_encoding", "sinusoidal_positional_encoding(max_len, d_model)",
                           body, why, fails)


def offset(body, why, fails=(), check=True):
    prefix = '    if d_model % 2:\n        raise ValueError("d_model must be even")\n' if check else ""
    return function_mutant("offset_matrix", "offset_matrix(k, d_model)", prefix + body.strip("\n"), why, fails)


def gap(body, why, fails=()):
    return function_mutant("equivariance_gap", "equivariance_gap(layer, x, perm, positions=None)", body, why, fails)


def helpers(source, why):
    """A wrong paste of the helpers of assignment 01: it must cost nothing here (graded in 01)."""
    return Mutant(cell="attention_helpers", source=source, why=why)


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


GOOD_SOFTMAX = '''
def masked_softmax(scores, mask=None):
    allowed = torch.ones((), dtype=torch.bool) if mask is None else mask
    kept = torch.where(allowed, scores, float("-inf"))
    row_max = kept.amax(dim=-1, keepdim=True).nan_to_num(0.0, neginf=0.0)
    exponentials = (kept - row_max).exp()
    return exponentials / exponentials.sum(dim=-1, keepdim=True).clamp_min(1e-30)
'''
GOOD_ATTENTION = '''
def scaled_dot_product_attention(query, key, value, mask=None):
    weights = masked_softmax(query @ key.mT / math.sqrt(key.size(-1)), mask)
    return weights @ value, weights
'''

MUTANTS = {
    # --- attention_helpers: graded in 01; a wrong paste must cost nothing here --------------------------
    "attention_helpers/nan_on_fully_masked_rows": helpers('''
def masked_softmax(scores, mask=None):
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1)
''' + GOOD_ATTENTION, "a pasted masked_softmax that gives NaN on fully masked rows"),
    "attention_helpers/not_pasted": helpers("pass\n", "the helpers of assignment 01 never pasted"),
    "attention_helpers/unscaled": helpers(GOOD_SOFTMAX + '''
def scaled_dot_product_attention(query, key, value, mask=None):
    weights = masked_softmax(query @ key.mT, mask)
    return weights @ value, weights
''', "a pasted attention that never divides by sqrt(d_k)"),
    "attention_helpers/inverted_mask": helpers(GOOD_SOFTMAX + '''
def scaled_dot_product_attention(query, key, value, mask=None):
    weights = masked_softmax(query @ key.mT / math.sqrt(key.size(-1)), None if mask is None else ~mask)
    return weights @ value, weights
''', "a pasted attention that takes True to mean 'blocked'"),

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
    "causal_mask/nested_loops": causal("""
    return torch.tensor([[j <= i for j in range(size)] for i in range(size)], dtype=torch.bool, device=device)
""", "the mask built entry by entry in Python loops over the positions", fails=["causal_mask_no_loops"]),

    # --- padding_mask ----------------------------------------------------------------------------
    "padding_mask/inverted": padding("""
    real = torch.arange(max_len)[None, :] >= lengths[:, None]
    return real.flip(-1) if left else real
""", "True at the padding instead of the real tokens", fails=["padding_mask_visible", "padding_mask_hidden"]),
    "padding_mask/off_by_one": padding("""
    real = torch.arange(max_len)[None, :] <= lengths[:, None]
    return real.flip(-1) if left else real
""", "one padding position too many counted as real", fails=["padding_mask_visible", "padding_mask_hidden"]),
    "padding_mask/longest_length_instead_of_max_len": padding("""
    real = torch.arange(int(lengths.max()))[None, :] < lengths[:, None]
    return real.flip(-1) if left else real
""", "max_len ignored: the mask is as wide as the longest sequence", fails=["padding_mask_hidden"]),
    "padding_mask/transposed": padding("""
    real = torch.arange(max_len)[:, None] < lengths[None, :]
    return real.flip(0) if left else real
""", "shape (max_len, B) instead of (B, max_len)", fails=["padding_mask_visible", "padding_mask_hidden"]),
    "padding_mask/float_mask": padding("""
    real = (torch.arange(max_len)[None, :] < lengths[:, None]).float()
    return real.flip(-1) if left else real
""", "a float 0/1 mask instead of a boolean one", fails=["padding_mask_visible", "padding_mask_hidden"]),
    "padding_mask/counts_from_one": padding("""
    real = torch.arange(1, max_len + 1)[None, :] < lengths[:, None]
    return real.flip(-1) if left else real
""", "positions counted from 1: the last real token is masked", fails=["padding_mask_visible", "padding_mask_hidden"]),
    "padding_mask/left_ignored": padding("""
    return torch.arange(max_len)[None, :] < lengths[:, None]
""", "left=True gives the right-padded mask", fails=["padding_mask_visible", "padding_mask_left"]),
    "padding_mask/left_off_by_one": padding("""
    positions = torch.arange(max_len)[None, :]
    return positions > (max_len - lengths)[:, None] if left else positions < lengths[:, None]
""", "left padding off by one: the first real token is taken for padding", fails=["padding_mask_visible", "padding_mask_left"]),
    "padding_mask/loop_over_batch": padding("""
    rows = [torch.arange(max_len) >= max_len - n if left else torch.arange(max_len) < n for n in lengths.tolist()]
    return torch.stack(rows) if rows else torch.zeros(0, max_len, dtype=torch.bool)
""", "one sequence at a time in a Python loop", fails=["padding_mask_no_loops"]),

    # --- self_attention_mask ---------------------------------------------------------------------
    "self_attention_mask/keys_only": combined("""
    real = padding_mask(lengths, max_len, left=left)
    allowed = real[:, None, :].expand(-1, max_len, -1)
    return allowed & causal_mask(max_len) if causal else allowed
""", "only the keys masked: the padded queries still attend to the real tokens",
        fails=["self_attention_mask_visible", "self_attention_mask_right", "self_attention_mask_left"]),
    "self_attention_mask/queries_only": combined("""
    real = padding_mask(lengths, max_len, left=left)
    allowed = real[:, :, None].expand(-1, -1, max_len)
    return allowed & causal_mask(max_len) if causal else allowed
""", "only the queries masked: the real tokens attend to the padding",
        fails=["self_attention_mask_visible", "self_attention_mask_right"]),
    "self_attention_mask/causal_ignored": combined("""
    real = padding_mask(lengths, max_len, left=left)
    return real[:, :, None] & real[:, None, :]
""", "the causal part forgotten", fails=["self_attention_mask_visible", "self_attention_mask_right", "self_attention_mask_left"]),
    "self_attention_mask/always_causal": combined("""
    real = padding_mask(lengths, max_len, left=left)
    return real[:, :, None] & real[:, None, :] & causal_mask(max_len)
""", "causal=False ignored: the mask is always causal", fails=["self_attention_mask_visible", "self_attention_mask_right"]),
    "self_attention_mask/future_instead_of_past": combined("""
    real = padding_mask(lengths, max_len, left=left)
    allowed = real[:, :, None] & real[:, None, :]
    return allowed & causal_mask(max_len).T if causal else allowed
""", "the causal mask transposed: each query sees the future",
        fails=["self_attention_mask_visible", "self_attention_mask_right", "self_attention_mask_left"]),
    "self_attention_mask/left_ignored": combined("""
    real = padding_mask(lengths, max_len)
    allowed = real[:, :, None] & real[:, None, :]
    return allowed & causal_mask(max_len) if causal else allowed
""", "left=True ignored: the padding is taken to be at the end", fails=["self_attention_mask_visible", "self_attention_mask_left"]),
    "self_attention_mask/inverted": combined("""
    real = padding_mask(lengths, max_len, left=left)
    allowed = real[:, :, None] & real[:, None, :]
    return ~(allowed & causal_mask(max_len) if causal else allowed)
""", "True where blocked", fails=["self_attention_mask_visible", "self_attention_mask_right", "self_attention_mask_left"]),
    "self_attention_mask/float_mask": combined("""
    real = padding_mask(lengths, max_len, left=left)
    allowed = real[:, :, None] & real[:, None, :]
    return (allowed & causal_mask(max_len) if causal else allowed).float()
""", "a float 0/1 mask instead of a boolean one", fails=["self_attention_mask_visible", "self_attention_mask_right"]),
    "self_attention_mask/loop_over_batch": combined("""
    out = []
    for row in padding_mask(lengths, max_len, left=left):
        allowed = row[:, None] & row[None, :]
        out.append(allowed & causal_mask(max_len) if causal else allowed)
    return torch.stack(out)
""", "one sequence at a time in a Python loop", fails=["self_attention_mask_no_loops"]),

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
""", "exponent j / d_model with the column j instead of 2i / d_model", fails=["pe_visible", "pe_values"]),
    "pe/exponent_without_factor_two": encoding(PE_CHECK + """
    angle = torch.arange(max_len)[:, None] / 10000 ** (torch.arange(d_model // 2) / d_model)
    return torch.stack((angle.sin(), angle.cos()), dim=-1).flatten(1).float()
""", "exponent i / d_model instead of 2i / d_model", fails=["pe_visible", "pe_values"]),
    "pe/base_1000": encoding(PE_CHECK + """
    angle = torch.arange(max_len)[:, None] / 1000 ** (torch.arange(0, d_model, 2) / d_model)
    return torch.stack((angle.sin(), angle.cos()), dim=-1).flatten(1).float()
""", "base 1000 instead of 10000", fails=["pe_visible", "pe_values"]),
    "pe/multiplies_instead_of_divides": encoding(PE_CHECK + """
    angle = torch.arange(max_len)[:, None] * 10000 ** (torch.arange(0, d_model, 2) / d_model)
    return torch.stack((angle.sin(), angle.cos()), dim=-1).flatten(1).float()
""", "p * 10000^(2i/d) instead of p / 10000^(2i/d)", fails=["pe_visible", "pe_values"]),
    "pe/float64_returned": encoding(PE_CHECK + """
    angle = torch.arange(max_len, dtype=torch.float64)[:, None] / 10000 ** (torch.arange(0, d_model, 2) / d_model)
    return torch.stack((angle.sin(), angle.cos()), dim=-1).flatten(1)
""", "float64 returned instead of float32", fails=["pe_visible", "pe_values"]),
    "pe/odd_width_accepted": encoding("""
    angle = torch.arange(max_len)[:, None] / 10000 ** (torch.arange(0, d_model, 2) / d_model)
    return torch.stack((angle.sin(), angle.cos()), dim=-1).flatten(1)[:, :d_model].float()
""", "an odd d_model is silently truncated instead of raising ValueError", fails=["pe_errors"]),
    "pe/double_loop": encoding(PE_CHECK + """
    table = torch.zeros(max_len, d_model)
    for p in range(max_len):
        for i in range(d_model // 2):
            angle = p / 10000 ** (2 * i / d_model)
            table[p, 2 * i] = math.sin(angle)
            table[p, 2 * i + 1] = math.cos(angle)
    return table
""", "the table filled entry by entry in a double Python loop (the chapter's way of showing the formula)",
        fails=["pe_no_loops"]),

    # --- offset_matrix ---------------------------------------------------------------------------
    "offset/transposed_rotation": offset("""
    omega = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    c, s = torch.cos(k * omega), torch.sin(k * omega)
    return torch.block_diag(*torch.stack((torch.stack((c, -s), -1), torch.stack((s, c), -1)), -2))
""", "each block is R_i(k) transposed, that is R_i(-k): it moves back instead of forward",
        fails=["offset_visible", "offset_values"]),
    "offset/exponent_without_factor_two": offset("""
    omega = 10000.0 ** (-torch.arange(d_model // 2, dtype=torch.float64) / d_model)
    c, s = torch.cos(k * omega), torch.sin(k * omega)
    return torch.block_diag(*torch.stack((torch.stack((c, s), -1), torch.stack((-s, c), -1)), -2))
""", "frequencies 10000^(-i / d_model) instead of 10000^(-2i / d_model)", fails=["offset_visible", "offset_values"]),
    "offset/offset_ignored": offset("""
    omega = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    c, s = torch.cos(omega), torch.sin(omega)
    return torch.block_diag(*torch.stack((torch.stack((c, s), -1), torch.stack((-s, c), -1)), -2))
""", "the angle is omega_i, not k omega_i: always one step", fails=["offset_visible", "offset_values"]),
    "offset/sin_and_cos_swapped": offset("""
    omega = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    c, s = torch.cos(k * omega), torch.sin(k * omega)
    return torch.block_diag(*torch.stack((torch.stack((s, c), -1), torch.stack((-c, s), -1)), -2))
""", "sines where the cosines go in each block", fails=["offset_visible", "offset_values"]),
    "offset/pairs_split_in_halves": offset("""
    omega = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    c, s = torch.diag(torch.cos(k * omega)), torch.diag(torch.sin(k * omega))
    return torch.cat((torch.cat((c, s), 1), torch.cat((-s, c), 1)), 0)
""", "pairs (i, i + D/2) instead of the interleaved (2i, 2i + 1)", fails=["offset_visible", "offset_values"]),
    "offset/float32": offset("""
    omega = 10000.0 ** (-torch.arange(0, d_model, 2) / d_model)
    c, s = torch.cos(k * omega), torch.sin(k * omega)
    return torch.block_diag(*torch.stack((torch.stack((c, s), -1), torch.stack((-s, c), -1)), -2))
""", "float32 instead of float64", fails=["offset_visible", "offset_values"]),
    "offset/frequencies_multiplied": offset("""
    omega = 10000.0 ** (torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    c, s = torch.cos(k * omega), torch.sin(k * omega)
    return torch.block_diag(*torch.stack((torch.stack((c, s), -1), torch.stack((-s, c), -1)), -2))
""", "frequencies 10000^(2i / d_model) instead of 10000^(-2i / d_model)", fails=["offset_visible", "offset_values"]),
    "offset/no_value_error": offset("""
    omega = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    c, s = torch.cos(k * omega), torch.sin(k * omega)
    blocks = torch.block_diag(*torch.stack((torch.stack((c, s), -1), torch.stack((-s, c), -1)), -2))
    return torch.nn.functional.pad(blocks, (0, d_model % 2, 0, d_model % 2))
""", "an odd d_model accepted instead of raising ValueError", fails=["offset_values"], check=False),

    # --- SelfAttention ---------------------------------------------------------------------------
    "self_attention/unscaled_scores": self_attention("scores never divided by sqrt(d_k) (the widely copied example's mistake)", """
        q, k, v = self.W_q(x), self.W_k(x), self.W_v(x)
        weights = masked_softmax(q @ k.transpose(-2, -1), mask)
        return weights @ v, weights
""", fails=["self_attention_visible", "self_attention_values"]),
    "self_attention/scaled_by_d_model": self_attention("scale 1/sqrt(d_model) instead of 1/sqrt(d_k)", """
        q, k, v = self.W_q(x), self.W_k(x), self.W_v(x)
        weights = masked_softmax(q @ k.transpose(-2, -1) / math.sqrt(x.size(-1)), mask)
        return weights @ v, weights
""", fails=["self_attention_visible", "self_attention_values"]),
    "self_attention/queries_projection_used_for_keys": self_attention("one projection shared by queries and keys", """
        q, v = self.W_q(x), self.W_v(x)
        weights = masked_softmax(q @ q.transpose(-2, -1) / math.sqrt(q.size(-1)), mask)
        return weights @ v, weights
""", fails=["self_attention_visible", "self_attention_values", "self_attention_gradients"]),
    "self_attention/no_projections": self_attention("queries, keys and values are the raw inputs (no W_q, W_k, W_v)", """
        weights = masked_softmax(x @ x.transpose(-2, -1) / math.sqrt(x.size(-1)), mask)
        return weights @ x, weights
""", fails=["self_attention_visible", "self_attention_values", "self_attention_gradients"]),
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
""", fails=["self_attention_visible", "self_attention_gradients"]),
    "self_attention/mask_ignored": self_attention("the mask is never passed on", """
        return scaled_dot_product_attention(self.W_q(x), self.W_k(x), self.W_v(x))
""", fails=["self_attention_visible", "self_attention_masks"]),
    "self_attention/weights_transposed": self_attention("weights returned as (keys, queries)", """
        output, weights = scaled_dot_product_attention(self.W_q(x), self.W_k(x), self.W_v(x), mask)
        return output, weights.transpose(-2, -1)
""", fails=["self_attention_visible", "self_attention_values"]),
    "self_attention/softmax_over_queries": self_attention("softmax over the queries (dim -2)", """
        q, k, v = self.W_q(x), self.W_k(x), self.W_v(x)
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
        weights = torch.softmax(scores, dim=-2)
        if mask is not None:
            weights = weights * mask
        return weights @ v, weights
""", fails=["self_attention_visible", "self_attention_values"]),
    "self_attention/loop_over_batch": self_attention("one sequence of the batch at a time, in a Python loop", """
        if x.dim() > 2:
            pairs = [self(x[i], mask if mask is None or mask.dim() < x.dim() else mask[i]) for i in range(x.shape[0])]
            return torch.stack([o for o, _ in pairs]), torch.stack([w for _, w in pairs])
        return scaled_dot_product_attention(self.W_q(x), self.W_k(x), self.W_v(x), mask)
""", fails=["self_attention_no_loops"]),

    # --- equivariance_gap ------------------------------------------------------------------------
    "equivariance/positions_moved_with_the_tokens": gap("""
    added = 0 if positions is None else positions
    output, weights = layer(x + added)
    output_p, weights_p = layer((x + added)[perm])
    return max((output_p - output[perm]).abs().max().item(), (weights_p - weights[perm][:, perm]).abs().max().item())
""", "the positions permuted together with the tokens, so the gap is always 0",
        fails=["equivariance_visible", "equivariance_values", "equivariance_outcome"]),
    "equivariance/outputs_not_permuted": gap("""
    added = 0 if positions is None else positions
    output, weights = layer(x + added)
    output_p, weights_p = layer(x[perm] + added)
    return max((output_p - output).abs().max().item(), (weights_p - weights).abs().max().item())
""", "f(P x) compared with f(x) instead of P f(x)", fails=["equivariance_visible", "equivariance_values", "equivariance_outcome"]),
    "equivariance/weights_rows_only": gap("""
    added = 0 if positions is None else positions
    output, weights = layer(x + added)
    output_p, weights_p = layer(x[perm] + added)
    return max((output_p - output[perm]).abs().max().item(), (weights_p - weights[perm]).abs().max().item())
""", "the weights compared with P W instead of P W P^T (the keys move too)",
        fails=["equivariance_visible", "equivariance_values", "equivariance_outcome"]),
    "equivariance/weights_ignored": gap("""
    added = 0 if positions is None else positions
    output, _ = layer(x + added)
    output_p, _ = layer(x[perm] + added)
    return (output_p - output[perm]).abs().max().item()
""", "only the outputs compared, not the weights", fails=["equivariance_visible", "equivariance_values"]),
    "equivariance/mean_instead_of_max": gap("""
    added = 0 if positions is None else positions
    output, weights = layer(x + added)
    output_p, weights_p = layer(x[perm] + added)
    return max((output_p - output[perm]).abs().mean().item(), (weights_p - weights[perm][:, perm]).abs().mean().item())
""", "the mean absolute difference instead of the largest", fails=["equivariance_values"]),
    "equivariance/inverse_permutation": gap("""
    added = 0 if positions is None else positions
    inverse = torch.argsort(perm)
    output, weights = layer(x + added)
    output_p, weights_p = layer(x[perm] + added)
    return max((output_p - output[inverse]).abs().max().item(), (weights_p - weights[inverse][:, inverse]).abs().max().item())
""", "the outputs permuted by the inverse permutation", fails=["equivariance_visible", "equivariance_values", "equivariance_outcome"]),
    "equivariance/signed_difference": gap("""
    added = 0 if positions is None else positions
    output, weights = layer(x + added)
    output_p, weights_p = layer(x[perm] + added)
    return max((output_p - output[perm]).max().item(), (weights_p - weights[perm][:, perm]).max().item())
""", "the largest signed difference, without the absolute value", fails=["equivariance_values"]),
    "equivariance/returns_a_tensor": gap("""
    added = 0 if positions is None else positions
    output, weights = layer(x + added)
    output_p, weights_p = layer(x[perm] + added)
    return torch.maximum((output_p - output[perm]).abs().max(), (weights_p - weights[perm][:, perm]).abs().max())
""", "a 0-d tensor returned instead of a Python float", fails=["equivariance_visible", "equivariance_values"]),
}

# The misconception that the diagnostics (solutions/02_self_attention/diagnostics.py) name for each mutant.
MISCONCEPTION_OF = {
    "causal_mask/upper_triangular": "causal.upper-triangle",
    "causal_mask/diagonal_masked": "causal.diagonal-masked",
    "causal_mask/inverted": "causal.inverted",
    "causal_mask/one_step_ahead": "causal.one-step-ahead",
    "causal_mask/float_mask": "causal.float-mask",
    "causal_mask/additive_float_mask": "causal.additive-mask",
    "causal_mask/nested_loops": "causal.python-loop",
    "padding_mask/inverted": "padding.inverted",
    "padding_mask/off_by_one": "padding.one-too-many",
    "padding_mask/longest_length_instead_of_max_len": "padding.width-from-lengths",
    "padding_mask/transposed": "padding.transposed",
    "padding_mask/float_mask": "padding.float-mask",
    "padding_mask/counts_from_one": "padding.counts-from-one",
    "padding_mask/left_ignored": "padding.left-ignored",
    "padding_mask/left_off_by_one": "padding.left-off-by-one",
    "padding_mask/loop_over_batch": "padding.python-loop",
    "self_attention_mask/keys_only": "sa-mask.keys-only",
    "self_attention_mask/queries_only": "sa-mask.queries-only",
    "self_attention_mask/causal_ignored": "sa-mask.causal-ignored",
    "self_attention_mask/always_causal": "sa-mask.always-causal",
    "self_attention_mask/future_instead_of_past": "sa-mask.causal-transposed",
    "self_attention_mask/left_ignored": "sa-mask.left-ignored",
    "self_attention_mask/inverted": "sa-mask.inverted",
    "self_attention_mask/float_mask": "sa-mask.float-mask",
    "self_attention_mask/loop_over_batch": "sa-mask.python-loop",
    "pe/sin_cos_swapped": "pe.sin-cos-swapped",
    "pe/halves_concatenated": "pe.halves",
    "pe/column_index_in_exponent": "pe.column-frequency",
    "pe/exponent_without_factor_two": "pe.exponent-without-2",
    "pe/base_1000": "pe.wrong-base",
    "pe/multiplies_instead_of_divides": "pe.multiplies",
    "pe/float64_returned": "pe.not-float32",
    "pe/odd_width_accepted": "pe.odd-width",
    "pe/double_loop": "pe.python-loop",
    "offset/transposed_rotation": "offset.transposed",
    "offset/exponent_without_factor_two": "offset.exponent-without-2",
    "offset/offset_ignored": "offset.k-ignored",
    "offset/sin_and_cos_swapped": "offset.sin-cos-swapped",
    "offset/pairs_split_in_halves": "offset.pairs-in-halves",
    "offset/float32": "offset.not-float64",
    "offset/frequencies_multiplied": "offset.frequencies-increase",
    "offset/no_value_error": "offset.odd-width",
    "self_attention/unscaled_scores": "sa.unscaled",
    "self_attention/scaled_by_d_model": "sa.scaled-by-d-model",
    "self_attention/queries_projection_used_for_keys": "sa.keys-are-queries",
    "self_attention/no_projections": "sa.no-projections",
    "self_attention/values_not_projected": "sa.values-not-projected",
    "self_attention/no_biases": "sa.no-biases",
    "self_attention/mask_ignored": "sa.mask-ignored",
    "self_attention/weights_transposed": "sa.weights-transposed",
    "self_attention/softmax_over_queries": "sa.softmax-over-queries",
    "self_attention/loop_over_batch": "sa.python-loop",
    "equivariance/positions_moved_with_the_tokens": "equivariance.positions-moved",
    "equivariance/outputs_not_permuted": "equivariance.not-permuted",
    "equivariance/weights_rows_only": "equivariance.rows-only",
    "equivariance/weights_ignored": "equivariance.weights-ignored",
    "equivariance/mean_instead_of_max": "equivariance.mean",
    "equivariance/inverse_permutation": "equivariance.inverse-permutation",
    "equivariance/signed_difference": "equivariance.signed",
    "equivariance/returns_a_tensor": "equivariance.not-a-float",
}

# The edit of each mutant's source that follows its misconception's advice (`fix` in diagnostics.py): (old, new).
FIXES = {
    "causal_mask/upper_triangular": (".triu()", ".tril()"),
    "causal_mask/diagonal_masked": (".tril(-1)", ".tril()"),
    "causal_mask/inverted": ("return ~torch.ones", "return torch.ones"),
    "causal_mask/one_step_ahead": (".tril(1)", ".tril()"),
    "causal_mask/float_mask": ("torch.ones(size, size, device=device)",
                               "torch.ones(size, size, dtype=torch.bool, device=device)"),
    "causal_mask/additive_float_mask": ('return torch.zeros(size, size, device=device).masked_fill(~allowed, float("-inf"))',
                                        "return allowed"),
    "causal_mask/nested_loops": ("torch.tensor([[j <= i for j in range(size)] for i in range(size)], dtype=torch.bool, "
                                 "device=device)",
                                 "torch.arange(size, device=device)[None, :] <= torch.arange(size, device=device)[:, None]"),
    "padding_mask/inverted": (">= lengths[:, None]", "< lengths[:, None]"),
    "padding_mask/off_by_one": ("<= lengths[:, None]", "< lengths[:, None]"),
    "padding_mask/longest_length_instead_of_max_len": ("torch.arange(int(lengths.max()))", "torch.arange(max_len)"),
    "padding_mask/transposed": ("torch.arange(max_len)[:, None] < lengths[None, :]\n    return real.flip(0)",
                                "torch.arange(max_len)[None, :] < lengths[:, None]\n    return real.flip(-1)"),
    "padding_mask/float_mask": (".float()", ""),
    "padding_mask/counts_from_one": ("torch.arange(1, max_len + 1)", "torch.arange(max_len)"),
    "padding_mask/left_ignored": ("return torch.arange(max_len)[None, :] < lengths[:, None]",
                                  "positions = torch.arange(max_len)[None, :]\n"
                                  "    return positions >= (max_len - lengths)[:, None] if left else positions < lengths[:, None]"),
    "padding_mask/left_off_by_one": ("positions > (max_len", "positions >= (max_len"),
    "padding_mask/loop_over_batch": (
        "rows = [torch.arange(max_len) >= max_len - n if left else torch.arange(max_len) < n for n in lengths.tolist()]\n"
        "    return torch.stack(rows) if rows else torch.zeros(0, max_len, dtype=torch.bool)",
        "positions = torch.arange(max_len)[None, :]\n"
        "    return positions >= max_len - lengths[:, None] if left else positions < lengths[:, None]"),
    "self_attention_mask/keys_only": ("real[:, None, :].expand(-1, max_len, -1)",
                                      "real[:, None, :].expand(-1, max_len, -1) & real[:, :, None]"),
    "self_attention_mask/queries_only": ("real[:, :, None].expand(-1, -1, max_len)",
                                         "real[:, :, None].expand(-1, -1, max_len) & real[:, None, :]"),
    "self_attention_mask/causal_ignored": ("return real[:, :, None] & real[:, None, :]",
                                           "allowed = real[:, :, None] & real[:, None, :]\n"
                                           "    return allowed & causal_mask(max_len) if causal else allowed"),
    "self_attention_mask/always_causal": ("return real[:, :, None] & real[:, None, :] & causal_mask(max_len)",
                                          "allowed = real[:, :, None] & real[:, None, :]\n"
                                          "    return allowed & causal_mask(max_len) if causal else allowed"),
    "self_attention_mask/future_instead_of_past": ("causal_mask(max_len).T", "causal_mask(max_len)"),
    "self_attention_mask/left_ignored": ("padding_mask(lengths, max_len)", "padding_mask(lengths, max_len, left=left)"),
    "self_attention_mask/inverted": ("return ~(", "return ("),
    "self_attention_mask/float_mask": (".float()", ""),
    "self_attention_mask/loop_over_batch": (
        "out = []\n"
        "    for row in padding_mask(lengths, max_len, left=left):\n"
        "        allowed = row[:, None] & row[None, :]\n"
        "        out.append(allowed & causal_mask(max_len) if causal else allowed)\n"
        "    return torch.stack(out)",
        "real = padding_mask(lengths, max_len, left=left)\n"
        "    allowed = real[:, :, None] & real[:, None, :]\n"
        "    return allowed & causal_mask(max_len) if causal else allowed"),
    "pe/sin_cos_swapped": ("(angle.cos(), angle.sin())", "(angle.sin(), angle.cos())"),
    "pe/halves_concatenated": ("torch.cat((angle.sin(), angle.cos()), dim=-1)",
                               "torch.stack((angle.sin(), angle.cos()), dim=-1).flatten(1)"),
    "pe/column_index_in_exponent": ("(column / d_model)", "(2 * (column // 2) / d_model)"),
    "pe/exponent_without_factor_two": ("torch.arange(d_model // 2) / d_model", "torch.arange(0, d_model, 2) / d_model"),
    "pe/base_1000": ("/ 1000 **", "/ 10000 **"),
    "pe/multiplies_instead_of_divides": ("[:, None] * 10000 **", "[:, None] / 10000 **"),
    "pe/float64_returned": (".flatten(1)\n", ".flatten(1).to(torch.float32)\n"),
    "pe/odd_width_accepted": ("    angle = ", '    if d_model % 2 != 0:\n        raise ValueError("d_model must be even")\n'
                                           "    angle = "),
    "pe/double_loop": (
        "    for p in range(max_len):\n"
        "        for i in range(d_model // 2):\n"
        "            angle = p / 10000 ** (2 * i / d_model)\n"
        "            table[p, 2 * i] = math.sin(angle)\n"
        "            table[p, 2 * i + 1] = math.cos(angle)\n",
        "    angle = torch.arange(max_len)[:, None] / 10000 ** (torch.arange(0, d_model, 2)[None, :] / d_model)\n"
        "    table[:, 0::2] = angle.sin()\n"
        "    table[:, 1::2] = angle.cos()\n"),
    "offset/transposed_rotation": ("torch.stack((c, -s), -1), torch.stack((s, c), -1)",
                                   "torch.stack((c, s), -1), torch.stack((-s, c), -1)"),
    "offset/exponent_without_factor_two": ("torch.arange(d_model // 2, dtype=torch.float64)",
                                           "torch.arange(0, d_model, 2, dtype=torch.float64)"),
    "offset/offset_ignored": ("torch.cos(omega), torch.sin(omega)", "torch.cos(k * omega), torch.sin(k * omega)"),
    "offset/sin_and_cos_swapped": ("torch.stack((s, c), -1), torch.stack((-c, s), -1)",
                                   "torch.stack((c, s), -1), torch.stack((-s, c), -1)"),
    "offset/pairs_split_in_halves": (
        "c, s = torch.diag(torch.cos(k * omega)), torch.diag(torch.sin(k * omega))\n"
        "    return torch.cat((torch.cat((c, s), 1), torch.cat((-s, c), 1)), 0)",
        "c, s = torch.cos(k * omega), torch.sin(k * omega)\n"
        "    return torch.block_diag(*torch.stack((torch.stack((c, s), -1), torch.stack((-s, c), -1)), -2))"),
    "offset/float32": ("torch.arange(0, d_model, 2)", "torch.arange(0, d_model, 2, dtype=torch.float64)"),
    "offset/frequencies_multiplied": ("10000.0 ** (torch.arange", "10000.0 ** (-torch.arange"),
    "offset/no_value_error": ("    omega = ", '    if d_model % 2 != 0:\n        raise ValueError("d_model must be even")\n'
                                           "    omega = "),
    "self_attention/unscaled_scores": ("q @ k.transpose(-2, -1)", "q @ k.transpose(-2, -1) / math.sqrt(k.size(-1))"),
    "self_attention/scaled_by_d_model": ("math.sqrt(x.size(-1))", "math.sqrt(q.size(-1))"),
    "self_attention/queries_projection_used_for_keys": (
        "q, v = self.W_q(x), self.W_v(x)\n        weights = masked_softmax(q @ q.transpose",
        "q, k, v = self.W_q(x), self.W_k(x), self.W_v(x)\n        weights = masked_softmax(q @ k.transpose"),
    "self_attention/no_projections": (
        "        weights = masked_softmax(x @ x.transpose(-2, -1) / math.sqrt(x.size(-1)), mask)\n"
        "        return weights @ x, weights",
        "        q, k, v = self.W_q(x), self.W_k(x), self.W_v(x)\n"
        "        weights = masked_softmax(q @ k.transpose(-2, -1) / math.sqrt(k.size(-1)), mask)\n"
        "        return weights @ v, weights"),
    "self_attention/values_not_projected": ("weights @ x", "weights @ self.W_v(x)"),
    "self_attention/no_biases": (", bias=False", ""),
    "self_attention/mask_ignored": ("self.W_v(x))", "self.W_v(x), mask)"),
    "self_attention/weights_transposed": ("weights.transpose(-2, -1)", "weights"),
    "self_attention/softmax_over_queries": ("torch.softmax(scores, dim=-2)", "masked_softmax(scores, mask)"),
    "self_attention/loop_over_batch": (
        "        if x.dim() > 2:\n"
        "            pairs = [self(x[i], mask if mask is None or mask.dim() < x.dim() else mask[i]) for i in range(x.shape[0])]\n"
        "            return torch.stack([o for o, _ in pairs]), torch.stack([w for _, w in pairs])\n", ""),
    "equivariance/positions_moved_with_the_tokens": ("layer((x + added)[perm])", "layer(x[perm] + added)"),
    "equivariance/outputs_not_permuted": ("(output_p - output).abs().max().item(), (weights_p - weights)",
                                          "(output_p - output[perm]).abs().max().item(), (weights_p - weights[perm][:, perm])"),
    "equivariance/weights_rows_only": ("weights[perm])", "weights[perm][:, perm])"),
    "equivariance/weights_ignored": (
        "    output, _ = layer(x + added)\n"
        "    output_p, _ = layer(x[perm] + added)\n"
        "    return (output_p - output[perm]).abs().max().item()",
        "    output, weights = layer(x + added)\n"
        "    output_p, weights_p = layer(x[perm] + added)\n"
        "    return max((output_p - output[perm]).abs().max().item(), (weights_p - weights[perm][:, perm]).abs().max().item())"),
    "equivariance/mean_instead_of_max": (".abs().mean()", ".abs().max()"),
    "equivariance/inverse_permutation": ("inverse]", "perm]"),
    "equivariance/signed_difference": (").max()", ").abs().max()"),
    "equivariance/returns_a_tensor": ("abs().max())\n", "abs().max()).item()\n"),
}
