"""Wrong implementations of the graded components of 03_multi_head_attention (see tests/mutants/__init__.py)."""
from tests.mutants import Mutant, function_mutant, module_mutant

ASSIGNMENT = "03_multi_head_attention"
# masked_softmax and scaled_dot_product_attention are pasted from assignment 01 and graded there.
NOT_GRADED_HERE = ("attention_helpers",)


def helpers(source, why):
    """A wrong paste of the helpers of assignment 01: it must cost nothing here (graded in 01)."""
    return Mutant(cell="attention_helpers", source=source, why=why)


def scores(body, why, fails=()):
    return function_mutant("head_score_matrices", "head_score_matrices(mha)", body, why, fails)


GOOD_ATTENTION = '''
def scaled_dot_product_attention(query, key, value, mask=None):
    weights = masked_softmax(query @ key.mT / math.sqrt(key.size(-1)), mask)
    return weights @ value, weights
'''


WIDTH_CHECK = """
    if x.shape[-1] % num_heads:
        raise ValueError("D must be divisible by num_heads")
    B, T, D = x.shape
"""


def split(body, why, fails=(), check=WIDTH_CHECK):
    source = "def split_heads(x, num_heads):\n" + check.strip("\n") + "\n" + body.strip("\n") + "\n"
    return Mutant(cell="split_heads", source=source, why=why, fails=tuple(fails))


def merge(body, why, fails=()):
    return Mutant(cell="merge_heads", source="def merge_heads(x):\n" + body.strip("\n") + "\n",
                  why=why, fails=tuple(fails))


MHA_CHECK = """
        if d_model % num_heads:
            raise ValueError("d_model must be a multiple of num_heads")
"""
MHA_LAYERS = """
        self.num_heads = num_heads
        self.W_q = nn.Linear(d_model, d_model, bias=bias)
        self.W_k = nn.Linear(d_model, d_model, bias=bias)
        self.W_v = nn.Linear(d_model, d_model, bias=bias)
        self.W_o = nn.Linear(d_model, d_model, bias=bias)
"""
MHA_FORWARD = """
        q = split_heads(self.W_q(query), self.num_heads)
        k = split_heads(self.W_k(key), self.num_heads)
        v = split_heads(self.W_v(value), self.num_heads)
"""


def mha(why, forward, fails=(), check=MHA_CHECK):
    """A mutant of the MultiHeadAttention cell with a wrong forward (or a missing check)."""
    init = check.strip("\n") + "\n" + MHA_LAYERS.strip("\n")
    return module_mutant("MultiHeadAttention", "d_model, num_heads, bias=True", init,
                         "query, key, value, mask=None", forward, why, fails)


MUTANTS = {
    # --- split_heads -----------------------------------------------------------------------------
    "split_heads/view_without_transpose": split("""
    return x.reshape(B, num_heads, T, D // num_heads)
""", "reshape to (B, H, T, d) without the transpose: heads mix tokens", fails=["split_heads_visible", "split_heads_values"]),
    "split_heads/heads_interleaved": split("""
    return x.reshape(B, T, D // num_heads, num_heads).permute(0, 3, 1, 2)
""", "D split as (d, H): head h gets every H-th feature", fails=["split_heads_visible", "split_heads_values"]),
    "split_heads/no_transpose_at_all": split("""
    return x.reshape(B, T, num_heads, D // num_heads)
""", "left as (B, T, H, d): the heads are not moved before the tokens", fails=["split_heads_visible", "split_heads_values"]),
    "split_heads/wrong_axes_transposed": split("""
    return x.reshape(B, T, num_heads, D // num_heads).transpose(2, 3)
""", "transposes the last two axes: (B, T, d, H)", fails=["split_heads_visible", "split_heads_values"]),
    "split_heads/split_along_tokens": split("""
    return torch.stack(x.chunk(num_heads, dim=1), dim=1)
""", "the tokens are split into groups instead of the features", fails=["split_heads_visible", "split_heads_values"]),
    "split_heads/runtime_error_instead_of_value_error": split("""
    return x.view(B, T, num_heads, -1).transpose(1, 2)
""", "no check: an indivisible width raises RuntimeError from view, not ValueError",
        fails=["split_heads_errors"], check="    B, T, D = x.shape"),
    "split_heads/truncates_indivisible_width": split("""
    d = D // num_heads
    return x[..., :num_heads * d].reshape(B, T, num_heads, d).transpose(1, 2)
""", "an indivisible width is silently truncated", fails=["split_heads_errors"], check="    B, T, D = x.shape"),

    # --- merge_heads -----------------------------------------------------------------------------
    "merge_heads/reshape_without_transpose": merge("""
    B, H, T, d = x.shape
    return x.reshape(B, T, H * d)
""", "reshape (B, H, T, d) to (B, T, H d) without the transpose: tokens mixed",
        fails=["merge_heads_visible", "merge_heads_hidden"]),
    "merge_heads/view_needs_contiguous": merge("""
    B, H, T, d = x.shape
    return x.transpose(1, 2).view(B, T, H * d)
""", "view on the transposed (non-contiguous) tensor raises",
        fails=["merge_heads_visible", "merge_heads_hidden"]),
    "merge_heads/features_interleaved": merge("""
    B, H, T, d = x.shape
    return x.permute(0, 2, 3, 1).reshape(B, T, H * d)
""", "features ordered (d, H): the heads interleaved instead of side by side", fails=["merge_heads_visible", "merge_heads_hidden"]),
    "merge_heads/heads_averaged": merge("""
    return x.mean(dim=1).repeat(1, 1, x.shape[1])
""", "the heads averaged instead of concatenated", fails=["merge_heads_visible", "merge_heads_hidden"]),
    "merge_heads/heads_in_reverse_order": merge("""
    return x.flip(1).transpose(1, 2).flatten(2)
""", "the heads concatenated in reverse order", fails=["merge_heads_visible", "merge_heads_hidden"]),
    "merge_heads/wrong_axes_transposed": merge("""
    B, H, T, d = x.shape
    return x.transpose(2, 3).reshape(B, T, H * d)
""", "transposes (T, d) instead of (H, T)", fails=["merge_heads_visible", "merge_heads_hidden"]),

    # --- MultiHeadAttention ----------------------------------------------------------------------
    "mha/missing_output_projection": mha("W_o never applied", MHA_FORWARD + """
        out, weights = scaled_dot_product_attention(q, k, v, mask)
        return merge_heads(out), weights
""", fails=["mha_visible", "mha_matches_torch", "mha_gradients_batches"]),
    "mha/scaled_by_d_model": mha("scores scaled by 1/sqrt(d_model) instead of the head width", MHA_FORWARD + """
        weights = masked_softmax(q @ k.transpose(-2, -1) / math.sqrt(query.size(-1)), mask)
        return self.W_o(merge_heads(weights @ v)), weights
""", fails=["mha_visible", "mha_matches_torch"]),
    "mha/key_projection_for_values": mha("the key projection used for the values", """
        q = split_heads(self.W_q(query), self.num_heads)
        k = split_heads(self.W_k(key), self.num_heads)
        v = split_heads(self.W_k(value), self.num_heads)
        out, weights = scaled_dot_product_attention(q, k, v, mask)
        return self.W_o(merge_heads(out)), weights
""", fails=["mha_visible", "mha_matches_torch", "mha_gradients_batches"]),
    "mha/weights_averaged_over_heads": mha("weights averaged over the heads (nn.MultiheadAttention's default)", MHA_FORWARD + """
        out, weights = scaled_dot_product_attention(q, k, v, mask)
        return self.W_o(merge_heads(out)), weights.mean(dim=1)
""", fails=["mha_visible", "mha_matches_torch"]),
    "mha/torch_mask_convention": mha("nn.MultiheadAttention's convention: True taken to mean 'blocked'", MHA_FORWARD + """
        out, weights = scaled_dot_product_attention(q, k, v, None if mask is None else ~mask)
        return self.W_o(merge_heads(out)), weights
""", fails=["mha_visible", "mha_masks"]),
    "mha/queries_for_keys_and_values": mha("the query input used for keys and values too", """
        q = split_heads(self.W_q(query), self.num_heads)
        k = split_heads(self.W_k(query), self.num_heads)
        v = split_heads(self.W_v(query), self.num_heads)
        out, weights = scaled_dot_product_attention(q, k, v, mask)
        return self.W_o(merge_heads(out)), weights
""", fails=["mha_visible", "mha_matches_torch"]),
    "mha/split_without_transpose": mha("heads made by a reshape without the transpose: tokens mixed", """
        B, T_q, D = query.shape
        T_k = key.shape[1]
        H = self.num_heads
        q = self.W_q(query).reshape(B, H, T_q, D // H)
        k = self.W_k(key).reshape(B, H, T_k, D // H)
        v = self.W_v(value).reshape(B, H, T_k, D // H)
        out, weights = scaled_dot_product_attention(q, k, v, mask)
        return self.W_o(out.reshape(B, T_q, D)), weights
""", fails=["mha_visible", "mha_matches_torch", "mha_masks"]),
    "mha/mask_ignored": mha("the mask is never passed on", MHA_FORWARD + """
        out, weights = scaled_dot_product_attention(q, k, v)
        return self.W_o(merge_heads(out)), weights
""", fails=["mha_visible", "mha_masks"]),
    "mha/no_value_error": mha("an indivisible d_model is accepted", MHA_FORWARD + """
        out, weights = scaled_dot_product_attention(q, k, v, mask)
        return self.W_o(merge_heads(out)), weights
""", fails=["mha_visible", "mha_gradients_batches"], check="        pass"),
    "mha/loop_over_heads": mha("one head at a time, in a Python loop over the heads", """
        B, T_q, D = query.shape
        H = self.num_heads
        d = D // H
        q, k, v = self.W_q(query), self.W_k(key), self.W_v(value)
        full = None if mask is None else mask.expand(B, H, T_q, key.shape[1])
        outputs, weights = [], []
        for h in range(H):
            cols = slice(h * d, (h + 1) * d)
            out_h, w_h = scaled_dot_product_attention(q[..., cols], k[..., cols], v[..., cols],
                                                      None if full is None else full[:, h])
            outputs.append(out_h)
            weights.append(w_h)
        return self.W_o(torch.cat(outputs, dim=-1)), torch.stack(weights, dim=1)
""", fails=["mha_no_loops"]),

    # --- loops over heads in the reshapes --------------------------------------------------------
    "split_heads/stack_of_slices": split("""
    d = D // num_heads
    return torch.stack([x[..., h * d:(h + 1) * d] for h in range(num_heads)], dim=1)
""", "the heads cut out one by one in a Python loop", fails=["split_heads_no_loops"]),
    "merge_heads/concatenated_one_by_one": merge("""
    return torch.cat([x[:, h] for h in range(x.shape[1])], dim=-1)
""", "the heads concatenated one by one in a Python loop", fails=["merge_heads_no_loops"]),

    # --- head_score_matrices ---------------------------------------------------------------------
    "scores/transposed": scores("""
    W_q = mha.W_q.weight.T.unflatten(-1, (mha.num_heads, -1))
    W_k = mha.W_k.weight.T.unflatten(-1, (mha.num_heads, -1))
    return torch.einsum("ahc,bhc->hba", W_q, W_k)
""", "M^h transposed: W_k^h (W_q^h)^T", fails=["scores_visible", "scores_values"]),
    "scores/weight_not_transposed": scores("""
    W_q = mha.W_q.weight.unflatten(-1, (mha.num_heads, -1))
    W_k = mha.W_k.weight.unflatten(-1, (mha.num_heads, -1))
    return torch.einsum("ahc,bhc->hab", W_q, W_k)
""", "nn.Linear's weight taken for the W_q of the formulas (it is its transpose)", fails=["scores_visible", "scores_values"]),
    "scores/heads_interleaved": scores("""
    W_q = mha.W_q.weight.T.unflatten(-1, (-1, mha.num_heads))
    W_k = mha.W_k.weight.T.unflatten(-1, (-1, mha.num_heads))
    return torch.einsum("ach,bch->hab", W_q, W_k)
""", "head h given every H-th column instead of a block of d columns", fails=["scores_visible", "scores_values"]),
    "scores/scaled_inside": scores("""
    H = mha.num_heads
    W_q = mha.W_q.weight.T.unflatten(-1, (H, -1))
    W_k = mha.W_k.weight.T.unflatten(-1, (H, -1))
    return torch.einsum("ahc,bhc->hab", W_q, W_k) / math.sqrt(W_q.shape[-1])
""", "the 1/sqrt(d) of the scores folded into M^h", fails=["scores_visible", "scores_values"]),
    "scores/queries_twice": scores("""
    W_q = mha.W_q.weight.T.unflatten(-1, (mha.num_heads, -1))
    return torch.einsum("ahc,bhc->hab", W_q, W_q)
""", "the query projection used for the keys too", fails=["scores_visible", "scores_values"]),
    "scores/full_width_for_every_head": scores("""
    full = mha.W_q.weight.T @ mha.W_k.weight
    return full.expand(mha.num_heads, -1, -1)
""", "the full-width W_q W_k^T given to every head", fails=["scores_visible", "scores_values", "scores_outcome"]),
    "scores/summed_over_heads": scores("""
    return mha.W_q.weight.T @ mha.W_k.weight
""", "one (D, D) matrix, the sum over the heads, instead of one per head", fails=["scores_visible", "scores_values", "scores_outcome"]),
    "scores/loop_over_heads": scores("""
    H = mha.num_heads
    d = mha.W_q.weight.shape[0] // H
    W_q, W_k = mha.W_q.weight.T, mha.W_k.weight.T
    return torch.stack([W_q[:, h * d:(h + 1) * d] @ W_k[:, h * d:(h + 1) * d].T for h in range(H)])
""", "one head at a time, in a Python loop over the heads", fails=["scores_no_loops"]),

    # --- attention_helpers: graded in 01; a wrong paste must cost nothing here --------------------
    "attention_helpers/nan_on_fully_masked_rows": helpers('''
def masked_softmax(scores, mask=None):
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1)
''' + GOOD_ATTENTION, "a pasted masked_softmax that gives NaN on fully masked rows"),
    "attention_helpers/not_pasted": helpers("pass\n", "the helpers of assignment 01 never pasted"),
    "attention_helpers/unscaled": helpers('''
def masked_softmax(scores, mask=None):
    allowed = torch.ones((), dtype=torch.bool) if mask is None else mask
    kept = torch.where(allowed, scores, float("-inf"))
    exponentials = (kept - kept.amax(dim=-1, keepdim=True).nan_to_num(0.0, neginf=0.0)).exp()
    return exponentials / exponentials.sum(dim=-1, keepdim=True).clamp_min(1e-30)


def scaled_dot_product_attention(query, key, value, mask=None):
    weights = masked_softmax(query @ key.mT, mask)
    return weights @ value, weights
''', "a pasted attention that never divides by sqrt(d_k)"),
    "attention_helpers/softmax_over_queries": helpers('''
def masked_softmax(scores, mask=None):
    return torch.softmax(scores, dim=-2)
''' + GOOD_ATTENTION, "a pasted masked_softmax over the wrong dimension, ignoring the mask"),
}

MISCONCEPTION_OF = {
    "split_heads/view_without_transpose": "split.view-without-transpose",
    "split_heads/heads_interleaved": "split.heads-interleaved",
    "split_heads/no_transpose_at_all": "split.heads-not-moved",
    "split_heads/wrong_axes_transposed": "split.wrong-axes-transposed",
    "split_heads/split_along_tokens": "split.tokens-split",
    "split_heads/runtime_error_instead_of_value_error": "split.no-value-error",
    "split_heads/truncates_indivisible_width": "split.no-value-error",
    "split_heads/stack_of_slices": "split.python-loop",
    "merge_heads/reshape_without_transpose": "merge.reshape-without-transpose",
    "merge_heads/view_needs_contiguous": "merge.view-not-contiguous",
    "merge_heads/features_interleaved": "merge.heads-interleaved",
    "merge_heads/heads_averaged": "merge.heads-averaged",
    "merge_heads/heads_in_reverse_order": "merge.heads-reversed",
    "merge_heads/wrong_axes_transposed": "merge.wrong-axes-transposed",
    "merge_heads/concatenated_one_by_one": "merge.python-loop",
    "mha/missing_output_projection": "mha.no-output-projection",
    "mha/scaled_by_d_model": "mha.scaled-by-d-model",
    "mha/key_projection_for_values": "mha.values-projection",
    "mha/weights_averaged_over_heads": "mha.weights-averaged",
    "mha/torch_mask_convention": "mha.mask-inverted",
    "mha/queries_for_keys_and_values": "mha.kv-from-query",
    "mha/split_without_transpose": "mha.heads-mix-tokens",
    "mha/mask_ignored": "mha.mask-ignored",
    "mha/no_value_error": "mha.no-value-error",
    "mha/loop_over_heads": "mha.python-loop",
    "scores/transposed": "scores.transposed",
    "scores/weight_not_transposed": "scores.weight-not-transposed",
    "scores/heads_interleaved": "scores.heads-interleaved",
    "scores/scaled_inside": "scores.scaled",
    "scores/queries_twice": "scores.queries-twice",
    "scores/full_width_for_every_head": "scores.full-width",
    "scores/summed_over_heads": "scores.full-width",
    "scores/loop_over_heads": "scores.python-loop",
}

ADD_WIDTH_CHECK = ("    B, T, D = x.shape\n",
                   "    if x.shape[-1] % num_heads != 0:\n"
                   "        raise ValueError(\"the width must be divisible by num_heads\")\n"
                   "    B, T, D = x.shape\n")

# The edit of each mutant that its misconception's fix describes (see tests/mutants/__init__.py).
FIXES = {
    # split_heads
    "split_heads/view_without_transpose": ("x.reshape(B, num_heads, T, D // num_heads)",
                                           "x.reshape(B, T, num_heads, D // num_heads).transpose(1, 2)"),
    "split_heads/heads_interleaved": ("reshape(B, T, D // num_heads, num_heads).permute(0, 3, 1, 2)",
                                      "reshape(B, T, num_heads, D // num_heads).transpose(1, 2)"),
    "split_heads/no_transpose_at_all": ("x.reshape(B, T, num_heads, D // num_heads)",
                                        "x.reshape(B, T, num_heads, D // num_heads).transpose(1, 2)"),
    "split_heads/wrong_axes_transposed": (".transpose(2, 3)", ".transpose(1, 2)"),
    "split_heads/split_along_tokens": ("x.chunk(num_heads, dim=1)", "x.chunk(num_heads, dim=-1)"),
    "split_heads/runtime_error_instead_of_value_error": ADD_WIDTH_CHECK,
    "split_heads/truncates_indivisible_width": ADD_WIDTH_CHECK,
    "split_heads/stack_of_slices": ("torch.stack([x[..., h * d:(h + 1) * d] for h in range(num_heads)], dim=1)",
                                    "x.view(B, T, num_heads, d).transpose(1, 2)"),
    # merge_heads
    "merge_heads/reshape_without_transpose": ("x.reshape(B, T, H * d)", "x.transpose(1, 2).reshape(B, T, H * d)"),
    "merge_heads/view_needs_contiguous": (".view(B, T, H * d)", ".reshape(B, T, H * d)"),
    "merge_heads/features_interleaved": ("x.permute(0, 2, 3, 1)", "x.transpose(1, 2)"),
    "merge_heads/heads_averaged": ("x.mean(dim=1).repeat(1, 1, x.shape[1])", "x.transpose(1, 2).flatten(-2)"),
    "merge_heads/heads_in_reverse_order": ("x.flip(1).transpose(1, 2)", "x.transpose(1, 2)"),
    "merge_heads/wrong_axes_transposed": ("x.transpose(2, 3)", "x.transpose(1, 2)"),
    "merge_heads/concatenated_one_by_one": ("torch.cat([x[:, h] for h in range(x.shape[1])], dim=-1)",
                                            "x.transpose(1, 2).flatten(-2)"),
    # MultiHeadAttention
    "mha/missing_output_projection": ("return merge_heads(out), weights", "return self.W_o(merge_heads(out)), weights"),
    "mha/scaled_by_d_model": ("math.sqrt(query.size(-1))", "math.sqrt(q.size(-1))"),
    "mha/key_projection_for_values": ("split_heads(self.W_k(value)", "split_heads(self.W_v(value)"),
    "mha/weights_averaged_over_heads": ("weights.mean(dim=1)", "weights"),
    "mha/torch_mask_convention": ("None if mask is None else ~mask", "mask"),
    "mha/queries_for_keys_and_values": (
        "k = split_heads(self.W_k(query), self.num_heads)\n        v = split_heads(self.W_v(query), self.num_heads)",
        "k = split_heads(self.W_k(key), self.num_heads)\n        v = split_heads(self.W_v(value), self.num_heads)"),
    "mha/split_without_transpose": (
        "        q = self.W_q(query).reshape(B, H, T_q, D // H)\n"
        "        k = self.W_k(key).reshape(B, H, T_k, D // H)\n"
        "        v = self.W_v(value).reshape(B, H, T_k, D // H)\n"
        "        out, weights = scaled_dot_product_attention(q, k, v, mask)\n"
        "        return self.W_o(out.reshape(B, T_q, D)), weights\n",
        "        q = split_heads(self.W_q(query), H)\n"
        "        k = split_heads(self.W_k(key), H)\n"
        "        v = split_heads(self.W_v(value), H)\n"
        "        out, weights = scaled_dot_product_attention(q, k, v, mask)\n"
        "        return self.W_o(merge_heads(out)), weights\n"),
    "mha/mask_ignored": ("scaled_dot_product_attention(q, k, v)", "scaled_dot_product_attention(q, k, v, mask)"),
    "mha/no_value_error": ("        pass\n",
                           "        if d_model % num_heads != 0:\n"
                           "            raise ValueError(\"d_model must be a multiple of num_heads\")\n"),
    "mha/loop_over_heads": (
        "        full = None if mask is None else mask.expand(B, H, T_q, key.shape[1])\n"
        "        outputs, weights = [], []\n"
        "        for h in range(H):\n"
        "            cols = slice(h * d, (h + 1) * d)\n"
        "            out_h, w_h = scaled_dot_product_attention(q[..., cols], k[..., cols], v[..., cols],\n"
        "                                                      None if full is None else full[:, h])\n"
        "            outputs.append(out_h)\n"
        "            weights.append(w_h)\n"
        "        return self.W_o(torch.cat(outputs, dim=-1)), torch.stack(weights, dim=1)\n",
        "        out, weights = scaled_dot_product_attention(split_heads(q, H), split_heads(k, H), split_heads(v, H),\n"
        "                                                    mask)\n"
        "        return self.W_o(merge_heads(out)), weights\n"),
    # head_score_matrices
    "scores/transposed": ('"ahc,bhc->hba"', '"ahc,bhc->hab"'),
    "scores/weight_not_transposed": (
        "W_q = mha.W_q.weight.unflatten(-1, (mha.num_heads, -1))\n    W_k = mha.W_k.weight.unflatten(",
        "W_q = mha.W_q.weight.T.unflatten(-1, (mha.num_heads, -1))\n    W_k = mha.W_k.weight.T.unflatten("),
    "scores/heads_interleaved": (
        "    W_q = mha.W_q.weight.T.unflatten(-1, (-1, mha.num_heads))\n"
        "    W_k = mha.W_k.weight.T.unflatten(-1, (-1, mha.num_heads))\n"
        "    return torch.einsum(\"ach,bch->hab\", W_q, W_k)\n",
        "    W_q = mha.W_q.weight.T.unflatten(-1, (mha.num_heads, -1))\n"
        "    W_k = mha.W_k.weight.T.unflatten(-1, (mha.num_heads, -1))\n"
        "    return torch.einsum(\"ahc,bhc->hab\", W_q, W_k)\n"),
    "scores/scaled_inside": (" / math.sqrt(W_q.shape[-1])", ""),
    "scores/queries_twice": ("    return torch.einsum(\"ahc,bhc->hab\", W_q, W_q)\n",
                             "    W_k = mha.W_k.weight.T.unflatten(-1, (mha.num_heads, -1))\n"
                             "    return torch.einsum(\"ahc,bhc->hab\", W_q, W_k)\n"),
    "scores/full_width_for_every_head": (
        "    full = mha.W_q.weight.T @ mha.W_k.weight\n"
        "    return full.expand(mha.num_heads, -1, -1)\n",
        "    W_q = mha.W_q.weight.T.unflatten(-1, (mha.num_heads, -1))\n"
        "    W_k = mha.W_k.weight.T.unflatten(-1, (mha.num_heads, -1))\n"
        "    return torch.einsum(\"ahc,bhc->hab\", W_q, W_k)\n"),
    "scores/summed_over_heads": (
        "    return mha.W_q.weight.T @ mha.W_k.weight\n",
        "    W_q = mha.W_q.weight.T.unflatten(-1, (mha.num_heads, -1))\n"
        "    W_k = mha.W_k.weight.T.unflatten(-1, (mha.num_heads, -1))\n"
        "    return torch.einsum(\"ahc,bhc->hab\", W_q, W_k)\n"),
    "scores/loop_over_heads": (
        "torch.stack([W_q[:, h * d:(h + 1) * d] @ W_k[:, h * d:(h + 1) * d].T for h in range(H)])",
        "torch.einsum(\"ahc,bhc->hab\", W_q.unflatten(-1, (H, d)), W_k.unflatten(-1, (H, d)))"),
}
