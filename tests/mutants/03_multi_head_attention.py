"""Wrong implementations of the graded components of 03_multi_head_attention (see tests/mutants/__init__.py)."""
from tests.mutants import Mutant, module_mutant

ASSIGNMENT = "03_multi_head_attention"
# masked_softmax and scaled_dot_product_attention are pasted from assignment 01 and graded there.
NOT_GRADED_HERE = ("attention_helpers",)

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
""", "reshape to (B, H, T, d) without the transpose: heads mix tokens", fails=["split_heads_visible", "split_heads_hidden"]),
    "split_heads/heads_interleaved": split("""
    return x.reshape(B, T, D // num_heads, num_heads).permute(0, 3, 1, 2)
""", "D split as (d, H): head h gets every H-th feature", fails=["split_heads_visible", "split_heads_hidden"]),
    "split_heads/no_transpose_at_all": split("""
    return x.reshape(B, T, num_heads, D // num_heads)
""", "left as (B, T, H, d): the heads are not moved before the tokens", fails=["split_heads_visible", "split_heads_hidden"]),
    "split_heads/wrong_axes_transposed": split("""
    return x.reshape(B, T, num_heads, D // num_heads).transpose(2, 3)
""", "transposes the last two axes: (B, T, d, H)", fails=["split_heads_visible", "split_heads_hidden"]),
    "split_heads/split_along_tokens": split("""
    return torch.stack(x.chunk(num_heads, dim=1), dim=1)
""", "the tokens are split into groups instead of the features", fails=["split_heads_visible", "split_heads_hidden"]),
    "split_heads/runtime_error_instead_of_value_error": split("""
    return x.view(B, T, num_heads, -1).transpose(1, 2)
""", "no check: an indivisible width raises RuntimeError from view, not ValueError",
        fails=["split_heads_hidden"], check="    B, T, D = x.shape"),
    "split_heads/truncates_indivisible_width": split("""
    d = D // num_heads
    return x[..., :num_heads * d].reshape(B, T, num_heads, d).transpose(1, 2)
""", "an indivisible width is silently truncated", fails=["split_heads_hidden"], check="    B, T, D = x.shape"),

    # --- merge_heads -----------------------------------------------------------------------------
    "merge_heads/reshape_without_transpose": merge("""
    B, H, T, d = x.shape
    return x.reshape(B, T, H * d)
""", "reshape (B, H, T, d) to (B, T, H d) without the transpose: tokens mixed", fails=["merge_heads_hidden"]),
    "merge_heads/view_needs_contiguous": merge("""
    B, H, T, d = x.shape
    return x.transpose(1, 2).view(B, T, H * d)
""", "view on the transposed (non-contiguous) tensor raises", fails=["merge_heads_hidden"]),
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
""", "transposes (T, d) instead of (H, T)", fails=["merge_heads_hidden"]),

    # --- MultiHeadAttention ----------------------------------------------------------------------
    "mha/missing_output_projection": mha("W_o never applied", MHA_FORWARD + """
        out, weights = scaled_dot_product_attention(q, k, v, mask)
        return merge_heads(out), weights
""", fails=["mha_matches_torch", "mha_gradients_batches"]),
    "mha/scaled_by_d_model": mha("scores scaled by 1/sqrt(d_model) instead of the head width", MHA_FORWARD + """
        weights = masked_softmax(q @ k.transpose(-2, -1) / math.sqrt(query.size(-1)), mask)
        return self.W_o(merge_heads(weights @ v)), weights
""", fails=["mha_matches_torch"]),
    "mha/key_projection_for_values": mha("the key projection used for the values", """
        q = split_heads(self.W_q(query), self.num_heads)
        k = split_heads(self.W_k(key), self.num_heads)
        v = split_heads(self.W_k(value), self.num_heads)
        out, weights = scaled_dot_product_attention(q, k, v, mask)
        return self.W_o(merge_heads(out)), weights
""", fails=["mha_matches_torch", "mha_gradients_batches"]),
    "mha/weights_averaged_over_heads": mha("weights averaged over the heads (nn.MultiheadAttention's default)", MHA_FORWARD + """
        out, weights = scaled_dot_product_attention(q, k, v, mask)
        return self.W_o(merge_heads(out)), weights.mean(dim=1)
""", fails=["mha_visible", "mha_matches_torch"]),
    "mha/torch_mask_convention": mha("nn.MultiheadAttention's convention: True taken to mean 'blocked'", MHA_FORWARD + """
        out, weights = scaled_dot_product_attention(q, k, v, None if mask is None else ~mask)
        return self.W_o(merge_heads(out)), weights
""", fails=["mha_masks"]),
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
""", fails=["mha_matches_torch", "mha_masks"]),
    "mha/mask_ignored": mha("the mask is never passed on", MHA_FORWARD + """
        out, weights = scaled_dot_product_attention(q, k, v)
        return self.W_o(merge_heads(out)), weights
""", fails=["mha_masks"]),
    "mha/no_value_error": mha("an indivisible d_model is accepted", MHA_FORWARD + """
        out, weights = scaled_dot_product_attention(q, k, v, mask)
        return self.W_o(merge_heads(out)), weights
""", fails=["mha_visible", "mha_gradients_batches"], check="        pass"),
}
