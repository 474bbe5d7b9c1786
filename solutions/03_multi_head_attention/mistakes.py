"""The mistakes of 03_multi_head_attention, each declared once: what the student believed, the fix, the book section, and the
wrong code (autograder/mistakes.py explains what is derived from them). Never released to students."""
from autograder.mistakes import Mistake, Wrong

MISTAKES = [
    # --- split_heads -----------------------------------------------------------------------------------------
    Mistake("split.view-without-transpose", "split_heads",
            believed="the heads are made by a reshape straight to (B, H, T, d), without a transpose, so a head mixes the features of several tokens",
            fix="split the features first, x.view(B, T, H, d) (or x.unflatten(-1, (H, d))), then move the heads before the tokens with .transpose(1, 2)",
            section="ch03-view-bug",
            wrong=[
                Wrong("split_heads/view_without_transpose",
                      source="""\
def split_heads(x, num_heads):
    if x.shape[-1] % num_heads:
        raise ValueError("D must be divisible by num_heads")
    B, T, D = x.shape
    return x.reshape(B, num_heads, T, D // num_heads)
""",
                      fixed=("x.reshape(B, num_heads, T, D // num_heads)", "x.reshape(B, T, num_heads, D // num_heads).transpose(1, 2)"),
                      fails=("split_heads_visible", "split_heads_values")),
            ]),
    Mistake("split.heads-interleaved", "split_heads",
            believed="the features are split as (d, H), so head h gets every H-th feature instead of a block of d",
            fix="split the last dimension as (H, d), heads first: x.view(B, T, H, d), so that head h owns features h*d to (h+1)*d - 1; then .transpose(1, 2)",
            section="ch03-reshapes",
            wrong=[
                Wrong("split_heads/heads_interleaved",
                      edit=("x.unflatten(-1, (num_heads, width // num_heads))", "x.unflatten(-1, (width // num_heads, num_heads)).transpose(-2, -1)"),
                      fixed=("x.unflatten(-1, (width // num_heads, num_heads)).transpose(-2, -1)", "x.unflatten(-1, (num_heads, width // num_heads))"),
                      fails=("split_heads_visible", "split_heads_values")),
            ]),
    Mistake("split.heads-not-moved", "split_heads",
            believed="the heads are left after the tokens: the result is (B, T, H, d)",
            fix="after x.view(B, T, H, d), move the heads before the tokens with .transpose(1, 2), to (B, H, T, d)",
            section="ch03-reshapes",
            wrong=[
                Wrong("split_heads/no_transpose_at_all",
                      edit=("return per_token.transpose(-3, -2)", "return per_token"),
                      fixed=("return per_token ", "return per_token.transpose(-3, -2) "),
                      fails=("split_heads_visible", "split_heads_values")),
                Wrong("split_heads/heads_last",
                      source="""\
def split_heads(x, num_heads):
    *lead, width = x.shape
    if width % num_heads:
        raise ValueError(f"{width} features cannot be split into {num_heads} heads")
    return x.view(*lead, num_heads, width // num_heads)
""",
                      fixed=("x.view(*lead, num_heads, width // num_heads)", "x.view(*lead, num_heads, width // num_heads).transpose(1, 2)"),
                      fails=("split_heads_visible", "split_heads_values"),
                      note="another student's: a view that keeps the leading dimensions, with no transpose"),
            ]),
    Mistake("split.wrong-axes-transposed", "split_heads",
            believed="the wrong two dimensions are swapped: (B, T, d, H) instead of (B, H, T, d)",
            fix="after x.view(B, T, H, d), swap the token and head dimensions, .transpose(1, 2), not the last two",
            section="ch03-reshapes",
            wrong=[
                Wrong("split_heads/wrong_axes_transposed",
                      edit=("per_token.transpose(-3, -2)", "per_token.transpose(-2, -1)"),
                      fixed=("per_token.transpose(-2, -1)", "per_token.transpose(-3, -2)"),
                      fails=("split_heads_visible", "split_heads_values")),
            ]),
    Mistake("split.tokens-split", "split_heads",
            believed="the tokens are cut into groups instead of the features",
            fix="cut the last dimension (dim=-1), the D features of every token, into H blocks of d, not the tokens (dim=1): x.view(B, T, H, d), then .transpose(1, 2) (or torch.stack(x.chunk(H, dim=-1), dim=1)); keep every token in every head",
            section="ch03-reshapes",
            wrong=[
                Wrong("split_heads/split_along_tokens",
                      source="""\
def split_heads(x, num_heads):
    if x.shape[-1] % num_heads:
        raise ValueError("D must be divisible by num_heads")
    B, T, D = x.shape
    return torch.stack(x.chunk(num_heads, dim=1), dim=1)
""",
                      fixed=("x.chunk(num_heads, dim=1)", "x.chunk(num_heads, dim=-1)"),
                      fails=("split_heads_visible", "split_heads_values")),
            ]),
    Mistake("split.no-value-error", "split_heads",
            believed="a width D that num_heads does not divide is not refused with a ValueError",
            fix="check x.shape[-1] % num_heads first and raise ValueError (with a message) when it is not 0",
            section="ch03-definition",
            wrong=[
                Wrong("split_heads/runtime_error_instead_of_value_error",
                      source="""\
def split_heads(x, num_heads):
    B, T, D = x.shape
    return x.view(B, T, num_heads, -1).transpose(1, 2)
""",
                      fixed=("    B, T, D = x.shape\n", "    if x.shape[-1] % num_heads != 0:\n        raise ValueError(\"the width must be divisible by num_heads\")\n    B, T, D = x.shape\n"),
                      fails=("split_heads_errors",),
                      note="no check: an indivisible width raises RuntimeError from view, not ValueError"),
                Wrong("split_heads/truncates_indivisible_width",
                      source="""\
def split_heads(x, num_heads):
    B, T, D = x.shape
    d = D // num_heads
    return x[..., :num_heads * d].reshape(B, T, num_heads, d).transpose(1, 2)
""",
                      fixed=("    B, T, D = x.shape\n", "    if x.shape[-1] % num_heads != 0:\n        raise ValueError(\"the width must be divisible by num_heads\")\n    B, T, D = x.shape\n"),
                      fails=("split_heads_errors",),
                      note="an indivisible width is silently truncated"),
            ]),
    Mistake("split.python-loop", "split_heads",
            believed="the heads are cut out one by one in a Python loop",
            fix="cut all heads at once with one view (or unflatten) and one transpose, with no loop over the heads",
            section="ch03-reshapes",
            detect=False,
            wrong=[
                Wrong("split_heads/stack_of_slices",
                      source="""\
def split_heads(x, num_heads):
    if x.shape[-1] % num_heads:
        raise ValueError("D must be divisible by num_heads")
    B, T, D = x.shape
    d = D // num_heads
    return torch.stack([x[..., h * d:(h + 1) * d] for h in range(num_heads)], dim=1)
""",
                      fixed=("torch.stack([x[..., h * d:(h + 1) * d] for h in range(num_heads)], dim=1)", "x.view(B, T, num_heads, d).transpose(1, 2)"),
                      fails=("split_heads_no_loops",)),
            ]),
    # --- merge_heads -----------------------------------------------------------------------------------------
    Mistake("merge.reshape-without-transpose", "merge_heads",
            believed="the heads are reshaped straight to (B, T, H d), without moving the tokens before the heads, so tokens are mixed",
            fix="first move the tokens before the heads with x.transpose(1, 2), to (B, T, H, d), then reshape to (B, T, H * d)",
            section="ch03-reshapes",
            wrong=[
                Wrong("merge_heads/reshape_without_transpose",
                      source="""\
def merge_heads(x):
    B, H, T, d = x.shape
    return x.reshape(B, T, H * d)
""",
                      fixed=("x.reshape(B, T, H * d)", "x.transpose(1, 2).reshape(B, T, H * d)"),
                      fails=("merge_heads_visible", "merge_heads_hidden")),
                Wrong("merge_heads/contiguous_view_without_transpose",
                      source="""\
def merge_heads(x):
    batch, heads, tokens, width = x.size()
    return x.contiguous().view(batch, tokens, heads * width)
""",
                      fixed=("x.contiguous().view(", "x.transpose(1, 2).contiguous().view("),
                      fails=("merge_heads_visible", "merge_heads_hidden"),
                      note="another student's: .contiguous().view(...) with other names, still without the transpose"),
            ]),
    Mistake("merge.view-not-contiguous", "merge_heads",
            believed="view is called on the transposed tensor, which is not contiguous in memory, and raises",
            fix="after the transpose, merge the last two dimensions with .reshape(B, T, H * d) (or .flatten(-2)), or call .contiguous() before .view",
            section="ch03-reshapes",
            wrong=[
                Wrong("merge_heads/view_needs_contiguous",
                      edit=("tokens_first.flatten(start_dim=-2)", "tokens_first.view(*tokens_first.shape[:-2], -1)"),
                      fixed=("tokens_first.view(*tokens_first.shape[:-2], -1)", "tokens_first.flatten(start_dim=-2)"),
                      fails=("merge_heads_visible", "merge_heads_hidden")),
            ]),
    Mistake("merge.heads-interleaved", "merge_heads",
            believed="the features are ordered (d, H): the heads are interleaved instead of side by side",
            fix="transpose to (B, T, H, d) with x.transpose(1, 2) and flatten the last two dimensions as they are (head first, then its d features), with no permute that puts d before H",
            section="ch03-reshapes",
            wrong=[
                Wrong("merge_heads/features_interleaved",
                      edit=("x.transpose(-3, -2)", "x.permute(0, 2, 3, 1)"),
                      fixed=("x.permute(0, 2, 3, 1)", "x.transpose(-3, -2)"),
                      fails=("merge_heads_visible", "merge_heads_hidden")),
            ]),
    Mistake("merge.heads-averaged", "merge_heads",
            believed="the heads are averaged (or summed) instead of put side by side",
            fix="concatenate the heads: x.transpose(1, 2).flatten(-2) (or .reshape(B, T, H * d)), with no mean or sum over the heads",
            section="ch03-definition",
            wrong=[
                Wrong("merge_heads/heads_averaged",
                      source="""\
def merge_heads(x):
    return x.mean(dim=1).repeat(1, 1, x.shape[1])
""",
                      fixed=("x.mean(dim=1).repeat(1, 1, x.shape[1])", "x.transpose(1, 2).flatten(-2)"),
                      fails=("merge_heads_visible", "merge_heads_hidden")),
            ]),
    Mistake("merge.heads-reversed", "merge_heads",
            believed="the heads are concatenated in reverse order",
            fix="keep the heads in order, head 0 first: x.transpose(1, 2).reshape(B, T, H * d), with no flip",
            section="ch03-definition",
            wrong=[
                Wrong("merge_heads/heads_in_reverse_order",
                      edit=("x.transpose(-3, -2)", "x.flip(1).transpose(-3, -2)"),
                      fixed=("x.flip(1)", "x"),
                      fails=("merge_heads_visible", "merge_heads_hidden")),
            ]),
    Mistake("merge.wrong-axes-transposed", "merge_heads",
            believed="the wrong two dimensions are swapped: (T, d) instead of (H, T)",
            fix="swap the head and token dimensions, x.transpose(1, 2), not the last two, then reshape to (B, T, H * d)",
            section="ch03-reshapes",
            wrong=[
                Wrong("merge_heads/wrong_axes_transposed",
                      source="""\
def merge_heads(x):
    B, H, T, d = x.shape
    return x.transpose(2, 3).reshape(B, T, H * d)
""",
                      fixed=("x.transpose(2, 3)", "x.transpose(1, 2)"),
                      fails=("merge_heads_visible", "merge_heads_hidden")),
            ]),
    Mistake("merge.python-loop", "merge_heads",
            believed="the heads are concatenated one by one in a Python loop",
            fix="merge all heads at once: one transpose, then one reshape (or flatten), with no loop over the heads",
            section="ch03-reshapes",
            detect=False,
            wrong=[
                Wrong("merge_heads/concatenated_one_by_one",
                      source="""\
def merge_heads(x):
    return torch.cat([x[:, h] for h in range(x.shape[1])], dim=-1)
""",
                      fixed=("torch.cat([x[:, h] for h in range(x.shape[1])], dim=-1)", "x.transpose(1, 2).flatten(-2)"),
                      fails=("merge_heads_no_loops",)),
            ]),
    # --- MultiHeadAttention ----------------------------------------------------------------------------------
    Mistake("mha.no-output-projection", "MultiHeadAttention",
            believed="the output projection W_o is never applied",
            fix="return self.W_o(merge_heads(output)): the merged heads go through W_o",
            section="ch03-definition",
            wrong=[
                Wrong("mha/missing_output_projection",
                      edit=("self.W_o(merge_heads(per_head))", "merge_heads(per_head)"),
                      fixed=("return merge_heads(per_head)", "return self.W_o(merge_heads(per_head))"),
                      fails=("mha_visible", "mha_matches_torch", "mha_gradients_batches")),
            ]),
    Mistake("mha.scaled-by-d-model", "MultiHeadAttention",
            believed="the scores are scaled by 1 / sqrt(d_model) instead of the width of a head",
            fix="scale each head's scores by 1 / sqrt(d), d = d_model / num_heads, the last dimension of the split heads (math.sqrt(q.size(-1)), not query.size(-1)), or call scaled_dot_product_attention on the split heads, which does it",
            section="ch03-definition",
            wrong=[
                Wrong("mha/scaled_by_d_model",
                      source="""\
class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, num_heads, bias=True):
        super().__init__()
        if d_model % num_heads:
            raise ValueError("d_model must be a multiple of num_heads")
        self.num_heads = num_heads
        self.W_q = nn.Linear(d_model, d_model, bias=bias)
        self.W_k = nn.Linear(d_model, d_model, bias=bias)
        self.W_v = nn.Linear(d_model, d_model, bias=bias)
        self.W_o = nn.Linear(d_model, d_model, bias=bias)

    def forward(self, query, key, value, mask=None):
        q = split_heads(self.W_q(query), self.num_heads)
        k = split_heads(self.W_k(key), self.num_heads)
        v = split_heads(self.W_v(value), self.num_heads)

        weights = masked_softmax(q @ k.transpose(-2, -1) / math.sqrt(query.size(-1)), mask)
        return self.W_o(merge_heads(weights @ v)), weights
""",
                      fixed=("math.sqrt(query.size(-1))", "math.sqrt(q.size(-1))"),
                      fails=("mha_visible", "mha_matches_torch")),
            ]),
    Mistake("mha.values-projection", "MultiHeadAttention",
            believed="the values are projected with the key projection W_k",
            fix="project the values with their own layer, self.W_v(value)",
            section="ch03-definition",
            wrong=[
                Wrong("mha/key_projection_for_values",
                      edit=("(self.W_v, value)", "(self.W_k, value)"),
                      fixed=("(self.W_k, value)", "(self.W_v, value)"),
                      fails=("mha_visible", "mha_matches_torch", "mha_gradients_batches")),
            ]),
    Mistake("mha.kv-from-query", "MultiHeadAttention",
            believed="the keys and values are computed from the query input",
            fix="compute the keys from the key argument and the values from the value argument, self.W_k(key) and self.W_v(value): in cross-attention they differ from query",
            section="ch03-cross-attention",
            wrong=[
                Wrong("mha/queries_for_keys_and_values",
                      edit=("(self.W_k, key), (self.W_v, value)", "(self.W_k, query), (self.W_v, query)"),
                      fixed=("(self.W_k, query), (self.W_v, query)", "(self.W_k, key), (self.W_v, value)"),
                      fails=("mha_visible", "mha_matches_torch")),
            ]),
    Mistake("mha.weights-averaged", "MultiHeadAttention",
            believed="the weights are averaged over the heads (nn.MultiheadAttention's default)",
            fix="return every head's weights, of shape (B, H, T_q, T_k), not their mean over the heads",
            section="ch03-torch-equivalence",
            wrong=[
                Wrong("mha/weights_averaged_over_heads",
                      edit=("merge_heads(per_head)), attention", "merge_heads(per_head)), attention.mean(dim=1)"),
                      fixed=("attention.mean(dim=1)", "attention"),
                      fails=("mha_visible", "mha_matches_torch")),
            ]),
    Mistake("mha.mask-inverted", "MultiHeadAttention",
            believed="True in the mask is taken to mean 'blocked' (nn.MultiheadAttention's convention)",
            fix="pass the mask on unchanged, without ~: in this course True means \"may attend\"",
            section="ch03-torch-equivalence",
            wrong=[
                Wrong("mha/torch_mask_convention",
                      edit=("(*heads, mask)", "(*heads, None if mask is None else ~mask)"),
                      fixed=("None if mask is None else ~mask", "mask"),
                      fails=("mha_visible", "mha_masks")),
                Wrong("mha/mask_logical_not",
                      source="""\
class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, num_heads, bias=True):
        super().__init__()
        if d_model % num_heads != 0:
            raise ValueError("num_heads must divide d_model")
        self.num_heads = num_heads
        self.W_q = nn.Linear(d_model, d_model, bias=bias)
        self.W_k = nn.Linear(d_model, d_model, bias=bias)
        self.W_v = nn.Linear(d_model, d_model, bias=bias)
        self.W_o = nn.Linear(d_model, d_model, bias=bias)

    def forward(self, query, key, value, mask=None):
        H = self.num_heads
        if mask is not None:
            mask = mask.logical_not()        # True = blocked, as in nn.MultiheadAttention
        Q, K, V = (split_heads(layer(t), H) for layer, t in ((self.W_q, query), (self.W_k, key), (self.W_v, value)))
        context, attn = scaled_dot_product_attention(Q, K, V, mask=mask)
        return self.W_o(merge_heads(context)), attn
""",
                      fixed=("mask.logical_not()", "mask"),
                      fails=("mha_visible", "mha_masks"),
                      note="another student's: the mask inverted with logical_not before the call, other names"),
            ]),
    Mistake("mha.heads-mix-tokens", "MultiHeadAttention",
            believed="the heads are made by a reshape to (B, H, T, d) without the transpose, so they mix tokens",
            fix="split the projections with split_heads (view(B, T, H, d), then transpose(1, 2)) and merge them back with merge_heads",
            section="ch03-view-bug",
            wrong=[
                Wrong("mha/split_without_transpose",
                      source="""\
class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, num_heads, bias=True):
        super().__init__()
        if d_model % num_heads:
            raise ValueError("d_model must be a multiple of num_heads")
        self.num_heads = num_heads
        self.W_q = nn.Linear(d_model, d_model, bias=bias)
        self.W_k = nn.Linear(d_model, d_model, bias=bias)
        self.W_v = nn.Linear(d_model, d_model, bias=bias)
        self.W_o = nn.Linear(d_model, d_model, bias=bias)

    def forward(self, query, key, value, mask=None):
        B, T_q, D = query.shape
        T_k = key.shape[1]
        H = self.num_heads
        q = self.W_q(query).reshape(B, H, T_q, D // H)
        k = self.W_k(key).reshape(B, H, T_k, D // H)
        v = self.W_v(value).reshape(B, H, T_k, D // H)
        out, weights = scaled_dot_product_attention(q, k, v, mask)
        return self.W_o(out.reshape(B, T_q, D)), weights
""",
                      fixed=("        q = self.W_q(query).reshape(B, H, T_q, D // H)\n        k = self.W_k(key).reshape(B, H, T_k, D // H)\n        v = self.W_v(value).reshape(B, H, T_k, D // H)\n        out, weights = scaled_dot_product_attention(q, k, v, mask)\n        return self.W_o(out.reshape(B, T_q, D)), weights\n", "        q = split_heads(self.W_q(query), H)\n        k = split_heads(self.W_k(key), H)\n        v = split_heads(self.W_v(value), H)\n        out, weights = scaled_dot_product_attention(q, k, v, mask)\n        return self.W_o(merge_heads(out)), weights\n"),
                      fails=("mha_visible", "mha_matches_torch", "mha_masks")),
            ]),
    Mistake("mha.mask-ignored", "MultiHeadAttention",
            believed="the mask is never passed on to the attention",
            fix="pass the mask to scaled_dot_product_attention: it broadcasts over the heads",
            section="ch03-head-by-head",
            wrong=[
                Wrong("mha/mask_ignored",
                      edit=("(*heads, mask)", "(*heads)"),
                      fixed=("(*heads)", "(*heads, mask)"),
                      fails=("mha_visible", "mha_masks")),
            ]),
    Mistake("mha.no-value-error", "MultiHeadAttention",
            believed="a d_model that num_heads does not divide is accepted",
            fix="in __init__, raise ValueError (with a message) when d_model % num_heads != 0",
            section="ch03-head-by-head",
            wrong=[
                Wrong("mha/no_value_error",
                      edit=("        if d_model % num_heads:\n            raise ValueError(f\"d_model={d_model} must be a multiple of num_heads={num_heads}\")\n", "        pass\n"),
                      fixed=("        pass\n", "        if d_model % num_heads != 0:\n            raise ValueError(\"d_model must be a multiple of num_heads\")\n"),
                      fails=("mha_visible", "mha_gradients_batches")),
            ]),
    Mistake("mha.python-loop", "MultiHeadAttention",
            believed="the heads are computed one at a time in a Python loop",
            fix="split each projection with split_heads, call the attention once on the (B, H, T, d) tensors with the mask as it is (it broadcasts over the heads), and merge the output with merge_heads: no loop over the heads",
            section="ch03-head-by-head",
            detect=False,
            wrong=[
                Wrong("mha/loop_over_heads",
                      source="""\
class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, num_heads, bias=True):
        super().__init__()
        if d_model % num_heads:
            raise ValueError("d_model must be a multiple of num_heads")
        self.num_heads = num_heads
        self.W_q = nn.Linear(d_model, d_model, bias=bias)
        self.W_k = nn.Linear(d_model, d_model, bias=bias)
        self.W_v = nn.Linear(d_model, d_model, bias=bias)
        self.W_o = nn.Linear(d_model, d_model, bias=bias)

    def forward(self, query, key, value, mask=None):
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
""",
                      fixed=("        full = None if mask is None else mask.expand(B, H, T_q, key.shape[1])\n        outputs, weights = [], []\n        for h in range(H):\n            cols = slice(h * d, (h + 1) * d)\n            out_h, w_h = scaled_dot_product_attention(q[..., cols], k[..., cols], v[..., cols],\n                                                      None if full is None else full[:, h])\n            outputs.append(out_h)\n            weights.append(w_h)\n        return self.W_o(torch.cat(outputs, dim=-1)), torch.stack(weights, dim=1)\n", "        out, weights = scaled_dot_product_attention(split_heads(q, H), split_heads(k, H), split_heads(v, H),\n                                                    mask)\n        return self.W_o(merge_heads(out)), weights\n"),
                      fails=("mha_no_loops",)),
            ]),
    # --- head_score_matrices ---------------------------------------------------------------------------------
    Mistake("scores.transposed", "head_score_matrices",
            believed="M^h is transposed: W_k^h (W_q^h)^T",
            fix="put the queries on the left: M^h = W_q^h (W_k^h)^T, e.g. torch.einsum(\"ahc,bhc->hab\", W_q, W_k) with W_q from mha.W_q and W_k from mha.W_k",
            section="ch03-bilinear-form",
            wrong=[
                Wrong("scores/transposed",
                      edit=("\"ahc,bhc->hab\"", "\"ahc,bhc->hba\""),
                      fixed=("\"ahc,bhc->hba\"", "\"ahc,bhc->hab\""),
                      fails=("scores_visible", "scores_values")),
                Wrong("scores/keys_times_queries",
                      source="""\
def head_score_matrices(mha):
    H = mha.num_heads
    D = mha.W_q.weight.shape[0]
    Wq = mha.W_q.weight.T.reshape(D, H, D // H).permute(1, 0, 2)    # (H, D, d)
    Wk = mha.W_k.weight.T.reshape(D, H, D // H).permute(1, 0, 2)    # (H, D, d)
    return Wk @ Wq.transpose(1, 2)
""",
                      fixed=("Wk @ Wq.transpose(1, 2)", "Wq @ Wk.transpose(1, 2)"),
                      fails=("scores_visible", "scores_values"),
                      note="another student's: a batched matmul over the heads, keys on the left"),
            ]),
    Mistake("scores.weight-not-transposed", "head_score_matrices",
            believed="nn.Linear's weight is taken for the W_q of the formulas",
            fix="use W_q = mha.W_q.weight.T and W_k = mha.W_k.weight.T (weight is stored (out_features, in_features)), then cut their columns into heads",
            section="ch03-head-by-head",
            wrong=[
                Wrong("scores/weight_not_transposed",
                      source="""\
def head_score_matrices(mha):
    W_q = mha.W_q.weight.unflatten(-1, (mha.num_heads, -1))
    W_k = mha.W_k.weight.unflatten(-1, (mha.num_heads, -1))
    return torch.einsum("ahc,bhc->hab", W_q, W_k)
""",
                      fixed=("W_q = mha.W_q.weight.unflatten(-1, (mha.num_heads, -1))\n    W_k = mha.W_k.weight.unflatten(", "W_q = mha.W_q.weight.T.unflatten(-1, (mha.num_heads, -1))\n    W_k = mha.W_k.weight.T.unflatten("),
                      fails=("scores_visible", "scores_values")),
            ]),
    Mistake("scores.heads-interleaved", "head_score_matrices",
            believed="head h gets every H-th column instead of a block of d columns",
            fix="give head h the block of d consecutive columns h*d .. (h+1)*d - 1 of weight.T: cut the columns with unflatten(-1, (H, d)), heads first, not (d, H), and index the head dimension accordingly",
            section="ch03-head-by-head",
            wrong=[
                Wrong("scores/heads_interleaved",
                      source="""\
def head_score_matrices(mha):
    W_q = mha.W_q.weight.T.unflatten(-1, (-1, mha.num_heads))
    W_k = mha.W_k.weight.T.unflatten(-1, (-1, mha.num_heads))
    return torch.einsum("ach,bch->hab", W_q, W_k)
""",
                      fixed=("    W_q = mha.W_q.weight.T.unflatten(-1, (-1, mha.num_heads))\n    W_k = mha.W_k.weight.T.unflatten(-1, (-1, mha.num_heads))\n    return torch.einsum(\"ach,bch->hab\", W_q, W_k)\n", "    W_q = mha.W_q.weight.T.unflatten(-1, (mha.num_heads, -1))\n    W_k = mha.W_k.weight.T.unflatten(-1, (mha.num_heads, -1))\n    return torch.einsum(\"ahc,bhc->hab\", W_q, W_k)\n"),
                      fails=("scores_visible", "scores_values")),
            ]),
    Mistake("scores.scaled", "head_score_matrices",
            believed="the 1 / sqrt(d) of the scores is folded into M^h",
            fix="return M^h = W_q^h (W_k^h)^T unscaled: the 1 / sqrt(d) divides the scores x_i M^h x_j^T, not M^h",
            section="ch03-bilinear-form",
            wrong=[
                Wrong("scores/scaled_inside",
                      edit=("torch.einsum(\"ahc,bhc->hab\", W_q, W_k)", "torch.einsum(\"ahc,bhc->hab\", W_q, W_k) / math.sqrt(W_q.shape[-1])"),
                      fixed=(" / math.sqrt(W_q.shape[-1])", ""),
                      fails=("scores_visible", "scores_values")),
            ]),
    Mistake("scores.queries-twice", "head_score_matrices",
            believed="the query projection is used for the keys too",
            fix="take the key blocks from mha.W_k.weight: M^h = W_q^h (W_k^h)^T",
            section="ch03-bilinear-form",
            wrong=[
                Wrong("scores/queries_twice",
                      edit=("W_q, W_k)", "W_q, W_q)"),
                      fixed=("W_q, W_q)", "W_q, W_k)"),
                      fails=("scores_visible", "scores_values")),
            ]),
    Mistake("scores.full-width", "head_score_matrices",
            believed="every head gets the full-width W_q W_k^T (or one summed matrix) instead of its own low-rank M^h",
            fix="give each head only its own d columns: cut W_q = mha.W_q.weight.T and W_k = mha.W_k.weight.T with unflatten(-1, (H, d)) and multiply every head at once, torch.einsum(\"ahc,bhc->hab\", W_q, W_k), into (H, D, D) (W_q W_k^T is the sum of these M^h)",
            section="ch03-bilinear-form",
            wrong=[
                Wrong("scores/full_width_for_every_head",
                      source="""\
def head_score_matrices(mha):
    full = mha.W_q.weight.T @ mha.W_k.weight
    return full.expand(mha.num_heads, -1, -1)
""",
                      fixed=("    full = mha.W_q.weight.T @ mha.W_k.weight\n    return full.expand(mha.num_heads, -1, -1)\n", "    W_q = mha.W_q.weight.T.unflatten(-1, (mha.num_heads, -1))\n    W_k = mha.W_k.weight.T.unflatten(-1, (mha.num_heads, -1))\n    return torch.einsum(\"ahc,bhc->hab\", W_q, W_k)\n"),
                      fails=("scores_visible", "scores_values", "scores_outcome"),
                      note="the full-width W_q W_k^T given to every head"),
                Wrong("scores/summed_over_heads",
                      source="""\
def head_score_matrices(mha):
    return mha.W_q.weight.T @ mha.W_k.weight
""",
                      fixed=("    return mha.W_q.weight.T @ mha.W_k.weight\n", "    W_q = mha.W_q.weight.T.unflatten(-1, (mha.num_heads, -1))\n    W_k = mha.W_k.weight.T.unflatten(-1, (mha.num_heads, -1))\n    return torch.einsum(\"ahc,bhc->hab\", W_q, W_k)\n"),
                      fails=("scores_visible", "scores_values", "scores_outcome"),
                      note="one (D, D) matrix, the sum over the heads, instead of one per head"),
            ]),
    Mistake("scores.python-loop", "head_score_matrices",
            believed="the heads are computed one at a time in a Python loop",
            fix="cut the weights into heads with one unflatten and multiply every head at once (einsum or a batched @), with no loop over the heads",
            section="ch03-bilinear-form",
            detect=False,
            wrong=[
                Wrong("scores/loop_over_heads",
                      source="""\
def head_score_matrices(mha):
    H = mha.num_heads
    d = mha.W_q.weight.shape[0] // H
    W_q, W_k = mha.W_q.weight.T, mha.W_k.weight.T
    return torch.stack([W_q[:, h * d:(h + 1) * d] @ W_k[:, h * d:(h + 1) * d].T for h in range(H)])
""",
                      fixed=("torch.stack([W_q[:, h * d:(h + 1) * d] @ W_k[:, h * d:(h + 1) * d].T for h in range(H)])", "torch.einsum(\"ahc,bhc->hab\", W_q.unflatten(-1, (H, d)), W_k.unflatten(-1, (H, d)))"),
                      fails=("scores_no_loops",)),
            ]),
]

# Wrong versions of cells graded in another assignment (pasted here): they must cost nothing here.
ELSEWHERE = [
    Wrong("attention_helpers/nan_on_fully_masked_rows",
          cell="attention_helpers",
          source="""\

def masked_softmax(scores, mask=None):
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1)

def scaled_dot_product_attention(query, key, value, mask=None):
    weights = masked_softmax(query @ key.mT / math.sqrt(key.size(-1)), mask)
    return weights @ value, weights
""",
          note="a pasted masked_softmax that gives NaN on fully masked rows"),
    Wrong("attention_helpers/not_pasted",
          cell="attention_helpers",
          source="""\
pass
""",
          note="the helpers of assignment 01 never pasted"),
    Wrong("attention_helpers/unscaled",
          cell="attention_helpers",
          source="""\

def masked_softmax(scores, mask=None):
    allowed = torch.ones((), dtype=torch.bool) if mask is None else mask
    kept = torch.where(allowed, scores, float("-inf"))
    exponentials = (kept - kept.amax(dim=-1, keepdim=True).nan_to_num(0.0, neginf=0.0)).exp()
    return exponentials / exponentials.sum(dim=-1, keepdim=True).clamp_min(1e-30)


def scaled_dot_product_attention(query, key, value, mask=None):
    weights = masked_softmax(query @ key.mT, mask)
    return weights @ value, weights
""",
          note="a pasted attention that never divides by sqrt(d_k)"),
    Wrong("attention_helpers/softmax_over_queries",
          cell="attention_helpers",
          source="""\

def masked_softmax(scores, mask=None):
    return torch.softmax(scores, dim=-2)

def scaled_dot_product_attention(query, key, value, mask=None):
    weights = masked_softmax(query @ key.mT / math.sqrt(key.size(-1)), mask)
    return weights @ value, weights
""",
          note="a pasted masked_softmax over the wrong dimension, ignoring the mask"),
]
