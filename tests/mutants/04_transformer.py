"""Wrong implementations of the graded components of 04_transformer (see tests/mutants/__init__.py)."""
from tests.mutants import module_mutant

ASSIGNMENT = "04_transformer"
# MultiHeadAttention and what it needs are pasted from assignments 01 and 03 and graded there; the
# hidden tests of the blocks swap in reference versions of it and of PositionWiseFFN.
NOT_GRADED_HERE = ("attention_helpers",)

# --- PositionWiseFFN -----------------------------------------------------------------------------
FFN_INIT = """
        self.linear1 = nn.Linear(d_model, d_ff)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ff, d_model)
"""
FFN_FORWARD = """
        return self.linear2(self.dropout(F.relu(self.linear1(x))))
"""


def ffn(why, forward=FFN_FORWARD, fails=(), init=FFN_INIT):
    return module_mutant("PositionWiseFFN", "d_model, d_ff, dropout=0.0", init, "x", forward, why, fails)


# --- TransformerEncoderBlock ---------------------------------------------------------------------
ENC_INIT = """
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.ffn = PositionWiseFFN(d_model, d_ff, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.norm_first = norm_first
"""
ENC_PRE = """
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.dropout1(self.self_attn(h, h, h, mask)[0])
            return x + self.dropout2(self.ffn(self.norm2(x)))
"""
ENC_POST = """
        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask)[0]))
        return self.norm2(x + self.dropout2(self.ffn(x)))
"""


def encoder(why, pre=ENC_PRE, post=ENC_POST, fails=(), init=ENC_INIT):
    return module_mutant("TransformerEncoderBlock", "d_model, num_heads, d_ff, dropout=0.0, norm_first=False",
                         init, "x, mask=None", pre.strip("\n") + "\n" + post.strip("\n"), why, fails)


# --- TransformerDecoderBlock ---------------------------------------------------------------------
DEC_INIT = """
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.cross_attn = MultiHeadAttention(d_model, num_heads)
        self.ffn = PositionWiseFFN(d_model, d_ff, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.norm_first = norm_first
"""
DEC_PRE = """
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.dropout1(self.self_attn(h, h, h, self_mask)[0])
            h = self.norm2(x)
            x = x + self.dropout2(self.cross_attn(h, memory, memory, memory_mask)[0])
            return x + self.dropout3(self.ffn(self.norm3(x)))
"""
DEC_POST = """
        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, self_mask)[0]))
        x = self.norm2(x + self.dropout2(self.cross_attn(x, memory, memory, memory_mask)[0]))
        return self.norm3(x + self.dropout3(self.ffn(x)))
"""


def decoder(why, pre=DEC_PRE, post=DEC_POST, fails=(), init=DEC_INIT):
    return module_mutant("TransformerDecoderBlock", "d_model, num_heads, d_ff, dropout=0.0, norm_first=False",
                         init, "x, memory, self_mask=None, memory_mask=None",
                         pre.strip("\n") + "\n" + post.strip("\n"), why, fails)


MUTANTS = {
    # --- PositionWiseFFN -------------------------------------------------------------------------
    "ffn/no_relu": ffn("no activation: the two layers collapse into one linear map", """
        return self.linear2(self.dropout(self.linear1(x)))
""", fails=["ffn_visible", "ffn_matches_formula", "ffn_gradients"]),
    "ffn/gelu_instead_of_relu": ffn("GELU instead of the ReLU of the 2017 block and of torch's default", """
        return self.linear2(self.dropout(F.gelu(self.linear1(x))))
""", fails=["ffn_visible", "ffn_matches_formula", "ffn_gradients"]),
    "ffn/relu_on_the_output_too": ffn("a ReLU after linear2 as well: the output can no longer be negative", """
        return F.relu(self.linear2(self.dropout(F.relu(self.linear1(x)))))
""", fails=["ffn_matches_formula"]),
    "ffn/no_bias": ffn("linear layers without bias", init="""
        self.linear1 = nn.Linear(d_model, d_ff, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ff, d_model, bias=False)
""", fails=["ffn_visible", "ffn_matches_formula", "ffn_gradients"]),
    "ffn/hidden_width_4d": ffn("the hidden width fixed at 4 * d_model instead of d_ff", init="""
        self.linear1 = nn.Linear(d_model, 4 * d_model)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(4 * d_model, d_model)
""", fails=["ffn_visible", "ffn_matches_formula"]),
    "ffn/dropout_after_linear2": ffn("dropout on the FFN's output instead of its hidden activations", """
        return self.dropout(self.linear2(F.relu(self.linear1(x))))
""", fails=["ffn_dropout"]),
    "ffn/dropout_on_the_input": ffn("dropout on the input x instead of the hidden activations", """
        return self.linear2(F.relu(self.linear1(self.dropout(x))))
""", fails=["ffn_dropout"]),
    "ffn/dropout_in_eval_mode": ffn("F.dropout(..., training=True): dropout also in evaluation mode", """
        return self.linear2(F.dropout(F.relu(self.linear1(x)), self.dropout.p, training=True))
""", fails=["ffn_dropout"]),
    "ffn/dropout_never_applied": ffn("self.dropout created but never used", """
        return self.linear2(F.relu(self.linear1(x)))
""", fails=["ffn_dropout"]),
    "ffn/dropout_without_rescaling": ffn("a hand-made dropout mask without the 1 / (1 - p) scaling", """
        hidden = F.relu(self.linear1(x))
        if self.training:
            hidden = hidden * (torch.rand_like(hidden) >= self.dropout.p)
        return self.linear2(hidden)
""", fails=["ffn_dropout"]),

    # --- TransformerEncoderBlock -----------------------------------------------------------------
    "encoder/no_attention_residual": encoder("no residual connection around self-attention", """
        if self.norm_first:
            h = self.norm1(x)
            x = self.dropout1(self.self_attn(h, h, h, mask)[0])
            return x + self.dropout2(self.ffn(self.norm2(x)))
""", """
        x = self.norm1(self.dropout1(self.self_attn(x, x, x, mask)[0]))
        return self.norm2(x + self.dropout2(self.ffn(x)))
""", fails=["encoder_visible", "encoder_matches_torch", "encoder_dropout"]),
    "encoder/no_ffn_residual": encoder("no residual connection around the FFN", """
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.dropout1(self.self_attn(h, h, h, mask)[0])
            return self.dropout2(self.ffn(self.norm2(x)))
""", """
        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask)[0]))
        return self.norm2(self.dropout2(self.ffn(x)))
""", fails=["encoder_visible", "encoder_matches_torch", "encoder_dropout"]),
    "encoder/post_norm_before_the_residual": encoder("post-norm written as x + norm(sublayer(x)): the sum is never normalised", post="""
        x = x + self.norm1(self.dropout1(self.self_attn(x, x, x, mask)[0]))
        return x + self.norm2(self.dropout2(self.ffn(x)))
""", fails=["encoder_visible", "encoder_matches_torch"]),
    "encoder/pre_norm_residual_from_the_normalised_input": encoder("pre-norm adds the sub-layer to norm(x) instead of x", pre="""
        if self.norm_first:
            h = self.norm1(x)
            x = h + self.dropout1(self.self_attn(h, h, h, mask)[0])
            h = self.norm2(x)
            return h + self.dropout2(self.ffn(h))
""", fails=["encoder_visible", "encoder_matches_torch"]),
    "encoder/norm_first_ignored": encoder("norm_first ignored: always post-norm", pre="", fails=["encoder_visible", "encoder_matches_torch"]),
    "encoder/one_shared_layernorm": encoder("one LayerNorm used for both sub-layers", init=ENC_INIT.replace(
        "self.norm2 = nn.LayerNorm(d_model)", "self.norm2 = self.norm1"),
        fails=["encoder_visible", "encoder_matches_torch", "encoder_gradients"]),
    "encoder/dropout_in_eval_mode": encoder("F.dropout(..., training=True): dropout also in evaluation mode", """
        if self.norm_first:
            h = self.norm1(x)
            x = x + F.dropout(self.self_attn(h, h, h, mask)[0], self.dropout1.p, training=True)
            return x + F.dropout(self.ffn(self.norm2(x)), self.dropout2.p, training=True)
""", """
        x = self.norm1(x + F.dropout(self.self_attn(x, x, x, mask)[0], self.dropout1.p, training=True))
        return self.norm2(x + F.dropout(self.ffn(x), self.dropout2.p, training=True))
""", fails=["encoder_dropout"]),
    "encoder/no_dropout": encoder("dropout1 and dropout2 never applied", """
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.self_attn(h, h, h, mask)[0]
            return x + self.ffn(self.norm2(x))
""", """
        x = self.norm1(x + self.self_attn(x, x, x, mask)[0])
        return self.norm2(x + self.ffn(x))
""", fails=["encoder_dropout"]),
    "encoder/dropout_on_the_residual_sum": encoder("dropout applied to x + sublayer(x) instead of the sub-layer's output", post="""
        x = self.norm1(self.dropout1(x + self.self_attn(x, x, x, mask)[0]))
        return self.norm2(self.dropout2(x + self.ffn(x)))
""", fails=["encoder_dropout"]),
    "encoder/ffn_built_without_dropout": encoder("the FFN built without the block's dropout rate", init=ENC_INIT.replace(
        "PositionWiseFFN(d_model, d_ff, dropout)", "PositionWiseFFN(d_model, d_ff)"), fails=["encoder_dropout"]),
    "encoder/ffn_width_4d": encoder("the FFN built with 4 * d_model hidden units instead of d_ff", init=ENC_INIT.replace(
        "PositionWiseFFN(d_model, d_ff, dropout)", "PositionWiseFFN(d_model, 4 * d_model, dropout)"),
        fails=["encoder_matches_torch"]),
    "encoder/mask_ignored": encoder("the mask is never passed to self-attention", """
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.dropout1(self.self_attn(h, h, h)[0])
            return x + self.dropout2(self.ffn(self.norm2(x)))
""", """
        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x)[0]))
        return self.norm2(x + self.dropout2(self.ffn(x)))
""", fails=["encoder_visible", "encoder_matches_torch", "encoder_masks"]),
    "encoder/mask_inverted": encoder("torch's convention: the mask inverted before self-attention", """
        mask = None if mask is None else ~mask
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.dropout1(self.self_attn(h, h, h, mask)[0])
            return x + self.dropout2(self.ffn(self.norm2(x)))
""", fails=["encoder_visible", "encoder_matches_torch", "encoder_masks"]),

    # --- TransformerDecoderBlock -----------------------------------------------------------------
    "decoder/queries_from_memory": decoder("cross-attention takes its queries from the memory", post="""
        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, self_mask)[0]))
        x = self.norm2(x + self.dropout2(self.cross_attn(memory, x, x, memory_mask)[0]))
        return self.norm3(x + self.dropout3(self.ffn(x)))
""", fails=["decoder_visible", "decoder_matches_torch", "decoder_masks"]),
    "decoder/keys_and_values_from_x": decoder("cross-attention reads the decoder's own stream instead of the memory", """
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.dropout1(self.self_attn(h, h, h, self_mask)[0])
            h = self.norm2(x)
            x = x + self.dropout2(self.cross_attn(h, h, h, memory_mask)[0])
            return x + self.dropout3(self.ffn(self.norm3(x)))
""", """
        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, self_mask)[0]))
        x = self.norm2(x + self.dropout2(self.cross_attn(x, x, x, memory_mask)[0]))
        return self.norm3(x + self.dropout3(self.ffn(x)))
""", fails=["decoder_visible", "decoder_matches_torch", "decoder_masks"]),
    "decoder/causal_mask_on_cross_attention": decoder("a causal mask applied to cross-attention as well", """
        T, S = x.shape[1], memory.shape[1]
        causal = torch.ones(T, S, dtype=torch.bool, device=x.device).tril()
        memory_mask = causal if memory_mask is None else memory_mask & causal
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.dropout1(self.self_attn(h, h, h, self_mask)[0])
            h = self.norm2(x)
            x = x + self.dropout2(self.cross_attn(h, memory, memory, memory_mask)[0])
            return x + self.dropout3(self.ffn(self.norm3(x)))
""", fails=["decoder_visible", "decoder_matches_torch", "decoder_masks"]),
    "decoder/masks_swapped": decoder("self_mask given to cross-attention and memory_mask to self-attention", """
        self_mask, memory_mask = memory_mask, self_mask
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.dropout1(self.self_attn(h, h, h, self_mask)[0])
            h = self.norm2(x)
            x = x + self.dropout2(self.cross_attn(h, memory, memory, memory_mask)[0])
            return x + self.dropout3(self.ffn(self.norm3(x)))
""", fails=["decoder_visible", "decoder_matches_torch", "decoder_masks"]),
    "decoder/cross_attention_before_self_attention": decoder("the sub-layers in the wrong order: cross-attention first", """
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.dropout1(self.cross_attn(h, memory, memory, memory_mask)[0])
            h = self.norm2(x)
            x = x + self.dropout2(self.self_attn(h, h, h, self_mask)[0])
            return x + self.dropout3(self.ffn(self.norm3(x)))
""", """
        x = self.norm1(x + self.dropout1(self.cross_attn(x, memory, memory, memory_mask)[0]))
        x = self.norm2(x + self.dropout2(self.self_attn(x, x, x, self_mask)[0]))
        return self.norm3(x + self.dropout3(self.ffn(x)))
""", fails=["decoder_visible", "decoder_matches_torch", "decoder_masks"]),
    "decoder/no_cross_attention_residual": decoder("no residual connection around cross-attention", post="""
        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, self_mask)[0]))
        x = self.norm2(self.dropout2(self.cross_attn(x, memory, memory, memory_mask)[0]))
        return self.norm3(x + self.dropout3(self.ffn(x)))
""", fails=["decoder_visible", "decoder_matches_torch", "decoder_dropout"]),
    "decoder/post_norm_before_the_residual": decoder("post-norm written as x + norm(sublayer(x))", post="""
        x = x + self.norm1(self.dropout1(self.self_attn(x, x, x, self_mask)[0]))
        x = x + self.norm2(self.dropout2(self.cross_attn(x, memory, memory, memory_mask)[0]))
        return x + self.norm3(self.dropout3(self.ffn(x)))
""", fails=["decoder_visible", "decoder_matches_torch"]),
    "decoder/norm_first_ignored": decoder("norm_first ignored: always post-norm", pre="",
                                          fails=["decoder_visible", "decoder_matches_torch"]),
    "decoder/memory_normalised": decoder("pre-norm normalises the memory too before cross-attention", pre="""
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.dropout1(self.self_attn(h, h, h, self_mask)[0])
            h, m = self.norm2(x), self.norm2(memory)
            x = x + self.dropout2(self.cross_attn(h, m, m, memory_mask)[0])
            return x + self.dropout3(self.ffn(self.norm3(x)))
""", fails=["decoder_visible", "decoder_matches_torch"]),
    "decoder/one_shared_layernorm": decoder("norm2 and norm3 are one LayerNorm", init=DEC_INIT.replace(
        "self.norm3 = nn.LayerNorm(d_model)", "self.norm3 = self.norm2"),
        fails=["decoder_visible", "decoder_matches_torch", "decoder_gradients"]),
    "decoder/one_shared_attention": decoder("cross-attention is the self-attention module again", init=DEC_INIT.replace(
        "self.cross_attn = MultiHeadAttention(d_model, num_heads)", "self.cross_attn = self.self_attn"),
        fails=["decoder_visible", "decoder_matches_torch", "decoder_gradients"]),
    "decoder/dropout_in_eval_mode": decoder("F.dropout(..., training=True) on the cross-attention output", """
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.dropout1(self.self_attn(h, h, h, self_mask)[0])
            h = self.norm2(x)
            x = x + F.dropout(self.cross_attn(h, memory, memory, memory_mask)[0], self.dropout2.p, training=True)
            return x + self.dropout3(self.ffn(self.norm3(x)))
""", """
        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, self_mask)[0]))
        x = self.norm2(x + F.dropout(self.cross_attn(x, memory, memory, memory_mask)[0], self.dropout2.p, training=True))
        return self.norm3(x + self.dropout3(self.ffn(x)))
""", fails=["decoder_dropout"]),
    "decoder/self_mask_ignored": decoder("self_mask never passed to self-attention: the future leaks", """
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.dropout1(self.self_attn(h, h, h)[0])
            h = self.norm2(x)
            x = x + self.dropout2(self.cross_attn(h, memory, memory, memory_mask)[0])
            return x + self.dropout3(self.ffn(self.norm3(x)))
""", """
        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x)[0]))
        x = self.norm2(x + self.dropout2(self.cross_attn(x, memory, memory, memory_mask)[0]))
        return self.norm3(x + self.dropout3(self.ffn(x)))
""", fails=["decoder_visible", "decoder_matches_torch", "decoder_masks"]),

    # --- Python loops (the conventions: no loop over batch, heads or positions) -------------------------
    "ffn/loop_over_the_batch": ffn("one sequence of the batch at a time, in a Python loop", """        if x.dim() < 3:
            return self.linear2(self.dropout(F.relu(self.linear1(x))))
        outputs = []
        for sequence in x.reshape(-1, *x.shape[-2:]):      # one sequence of the batch at a time
            outputs.append(self.linear2(self.dropout(F.relu(self.linear1(sequence)))))
        return torch.stack(outputs).reshape(x.shape)""",
                                   fails=["ffn_gradients"]),
    "encoder/layernorm_position_by_position": encoder("the last LayerNorm applied to one position at a time, in a Python loop", """        def norm(layer, h):
            outputs = []
            for t in range(h.shape[1]):                     # one position at a time
                outputs.append(layer(h[:, t]))
            return torch.stack(outputs, dim=1)
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.dropout1(self.self_attn(h, h, h, mask)[0])
            return x + self.dropout2(self.ffn(norm(self.norm2, x)))
""", post="""
        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask)[0]))
        return norm(self.norm2, x + self.dropout2(self.ffn(x)))
""", fails=["encoder_gradients"]),
    "decoder/layernorm_position_by_position": decoder("the last LayerNorm applied to one position at a time, in a Python loop", """        def norm(layer, h):
            outputs = []
            for t in range(h.shape[1]):                     # one position at a time
                outputs.append(layer(h[:, t]))
            return torch.stack(outputs, dim=1)
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.dropout1(self.self_attn(h, h, h, self_mask)[0])
            h = self.norm2(x)
            x = x + self.dropout2(self.cross_attn(h, memory, memory, memory_mask)[0])
            return x + self.dropout3(self.ffn(norm(self.norm3, x)))
""", post="""
        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, self_mask)[0]))
        x = self.norm2(x + self.dropout2(self.cross_attn(x, memory, memory, memory_mask)[0]))
        return norm(self.norm3, x + self.dropout3(self.ffn(x)))
""", fails=["decoder_gradients"]),
}

MISCONCEPTION_OF = {
    "ffn/no_relu": "ffn.no-activation",
    "ffn/gelu_instead_of_relu": "ffn.gelu",
    "ffn/relu_on_the_output_too": "ffn.relu-on-output",
    "ffn/no_bias": "ffn.no-bias",
    "ffn/hidden_width_4d": "ffn.hidden-width",
    "ffn/dropout_after_linear2": "ffn.dropout-misplaced",
    "ffn/dropout_on_the_input": "ffn.dropout-misplaced",
    "ffn/dropout_in_eval_mode": "ffn.dropout-in-eval",
    "ffn/dropout_never_applied": "ffn.dropout-unused",
    "ffn/dropout_without_rescaling": "ffn.dropout-not-rescaled",
    "encoder/no_attention_residual": "enc.no-residual",
    "encoder/no_ffn_residual": "enc.no-residual",
    "encoder/post_norm_before_the_residual": "enc.norm-before-residual",
    "encoder/pre_norm_residual_from_the_normalised_input": "enc.pre-norm-residual-normalised",
    "encoder/norm_first_ignored": "enc.norm-first-ignored",
    "encoder/one_shared_layernorm": "enc.shared-layernorm",
    "encoder/dropout_in_eval_mode": "enc.dropout-in-eval",
    "encoder/no_dropout": "enc.no-dropout",
    "encoder/dropout_on_the_residual_sum": "enc.dropout-on-sum",
    "encoder/ffn_built_without_dropout": "enc.ffn-dropout",
    "encoder/ffn_width_4d": "enc.ffn-width",
    "encoder/mask_ignored": "enc.mask-ignored",
    "encoder/mask_inverted": "enc.mask-inverted",
    "decoder/queries_from_memory": "dec.queries-from-memory",
    "decoder/keys_and_values_from_x": "dec.kv-from-x",
    "decoder/causal_mask_on_cross_attention": "dec.causal-cross-mask",
    "decoder/masks_swapped": "dec.masks-swapped",
    "decoder/cross_attention_before_self_attention": "dec.sublayer-order",
    "decoder/no_cross_attention_residual": "dec.no-residual",
    "decoder/post_norm_before_the_residual": "dec.norm-before-residual",
    "decoder/norm_first_ignored": "dec.norm-first-ignored",
    "decoder/memory_normalised": "dec.memory-normalised",
    "decoder/one_shared_layernorm": "dec.shared-layernorm",
    "decoder/one_shared_attention": "dec.shared-attention",
    "decoder/dropout_in_eval_mode": "dec.dropout-in-eval",
    "decoder/self_mask_ignored": "dec.self-mask-ignored",
    "ffn/loop_over_the_batch": "ffn.python-loop",
    "encoder/layernorm_position_by_position": "enc.python-loop",
    "decoder/layernorm_position_by_position": "dec.python-loop",
}

# The edit of each mutant that its misconception's `fix` describes, done literally (tests/mutants/__init__.py).
FIXES = {
    # --- PositionWiseFFN -------------------------------------------------------------------------
    "ffn/no_relu": ("self.dropout(self.linear1(x))", "self.dropout(F.relu(self.linear1(x)))"),
    "ffn/gelu_instead_of_relu": ("F.gelu(", "F.relu("),
    "ffn/relu_on_the_output_too": ("return F.relu(self.linear2(self.dropout(F.relu(self.linear1(x)))))",
                                   "return self.linear2(self.dropout(F.relu(self.linear1(x))))"),
    "ffn/no_bias": ("self.linear1 = nn.Linear(d_model, d_ff, bias=False)\n"
                    "        self.dropout = nn.Dropout(dropout)\n"
                    "        self.linear2 = nn.Linear(d_ff, d_model, bias=False)",
                    "self.linear1 = nn.Linear(d_model, d_ff)\n"
                    "        self.dropout = nn.Dropout(dropout)\n"
                    "        self.linear2 = nn.Linear(d_ff, d_model)"),
    "ffn/hidden_width_4d": ("self.linear1 = nn.Linear(d_model, 4 * d_model)\n"
                            "        self.dropout = nn.Dropout(dropout)\n"
                            "        self.linear2 = nn.Linear(4 * d_model, d_model)",
                            "self.linear1 = nn.Linear(d_model, d_ff)\n"
                            "        self.dropout = nn.Dropout(dropout)\n"
                            "        self.linear2 = nn.Linear(d_ff, d_model)"),
    "ffn/dropout_after_linear2": ("return self.dropout(self.linear2(F.relu(self.linear1(x))))",
                                  "return self.linear2(self.dropout(F.relu(self.linear1(x))))"),
    "ffn/dropout_on_the_input": ("return self.linear2(F.relu(self.linear1(self.dropout(x))))",
                                 "return self.linear2(self.dropout(F.relu(self.linear1(x))))"),
    "ffn/dropout_in_eval_mode": ("training=True", "training=self.training"),
    "ffn/dropout_never_applied": ("return self.linear2(F.relu(self.linear1(x)))",
                                  "return self.linear2(self.dropout(F.relu(self.linear1(x))))"),
    "ffn/dropout_without_rescaling": ("        if self.training:\n"
                                      "            hidden = hidden * (torch.rand_like(hidden) >= self.dropout.p)\n",
                                      "        hidden = self.dropout(hidden)\n"),

    # --- TransformerEncoderBlock -----------------------------------------------------------------
    "encoder/no_attention_residual": (
        "x = self.dropout1(self.self_attn(h, h, h, mask)[0])\n"
        "            return x + self.dropout2(self.ffn(self.norm2(x)))\n"
        "        x = self.norm1(self.dropout1(",
        "x = x + self.dropout1(self.self_attn(h, h, h, mask)[0])\n"
        "            return x + self.dropout2(self.ffn(self.norm2(x)))\n"
        "        x = self.norm1(x + self.dropout1("),
    "encoder/no_ffn_residual": (
        "return self.dropout2(self.ffn(self.norm2(x)))\n"
        "        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask)[0]))\n"
        "        return self.norm2(self.dropout2(",
        "return x + self.dropout2(self.ffn(self.norm2(x)))\n"
        "        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask)[0]))\n"
        "        return self.norm2(x + self.dropout2("),
    "encoder/post_norm_before_the_residual": (
        "x = x + self.norm1(self.dropout1(self.self_attn(x, x, x, mask)[0]))\n"
        "        return x + self.norm2(self.dropout2(self.ffn(x)))",
        "x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask)[0]))\n"
        "        return self.norm2(x + self.dropout2(self.ffn(x)))"),
    "encoder/pre_norm_residual_from_the_normalised_input": (
        "x = h + self.dropout1(self.self_attn(h, h, h, mask)[0])\n"
        "            h = self.norm2(x)\n"
        "            return h + self.dropout2(self.ffn(h))",
        "x = x + self.dropout1(self.self_attn(h, h, h, mask)[0])\n"
        "            h = self.norm2(x)\n"
        "            return x + self.dropout2(self.ffn(h))"),
    "encoder/norm_first_ignored": (
        "    def forward(self, x, mask=None):\n",
        "    def forward(self, x, mask=None):\n"
        "        if self.norm_first:\n"
        "            n = self.norm1(x)\n"
        "            h = x + self.dropout1(self.self_attn(n, n, n, mask)[0])\n"
        "            return h + self.dropout2(self.ffn(self.norm2(h)))\n"),
    "encoder/one_shared_layernorm": ("self.norm2 = self.norm1", "self.norm2 = nn.LayerNorm(d_model)"),
    "encoder/dropout_in_eval_mode": (
        "x = x + F.dropout(self.self_attn(h, h, h, mask)[0], self.dropout1.p, training=True)\n"
        "            return x + F.dropout(self.ffn(self.norm2(x)), self.dropout2.p, training=True)\n"
        "        x = self.norm1(x + F.dropout(self.self_attn(x, x, x, mask)[0], self.dropout1.p, training=True))\n"
        "        return self.norm2(x + F.dropout(self.ffn(x), self.dropout2.p, training=True))",
        "x = x + self.dropout1(self.self_attn(h, h, h, mask)[0])\n"
        "            return x + self.dropout2(self.ffn(self.norm2(x)))\n"
        "        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask)[0]))\n"
        "        return self.norm2(x + self.dropout2(self.ffn(x)))"),
    "encoder/no_dropout": (
        "x = x + self.self_attn(h, h, h, mask)[0]\n"
        "            return x + self.ffn(self.norm2(x))\n"
        "        x = self.norm1(x + self.self_attn(x, x, x, mask)[0])\n"
        "        return self.norm2(x + self.ffn(x))",
        "x = x + self.dropout1(self.self_attn(h, h, h, mask)[0])\n"
        "            return x + self.dropout2(self.ffn(self.norm2(x)))\n"
        "        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask)[0]))\n"
        "        return self.norm2(x + self.dropout2(self.ffn(x)))"),
    "encoder/dropout_on_the_residual_sum": (
        "x = self.norm1(self.dropout1(x + self.self_attn(x, x, x, mask)[0]))\n"
        "        return self.norm2(self.dropout2(x + self.ffn(x)))",
        "x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask)[0]))\n"
        "        return self.norm2(x + self.dropout2(self.ffn(x)))"),
    "encoder/ffn_built_without_dropout": ("PositionWiseFFN(d_model, d_ff)", "PositionWiseFFN(d_model, d_ff, dropout)"),
    "encoder/ffn_width_4d": ("PositionWiseFFN(d_model, 4 * d_model, dropout)", "PositionWiseFFN(d_model, d_ff, dropout)"),
    "encoder/mask_ignored": (
        "self.self_attn(h, h, h)[0])\n"
        "            return x + self.dropout2(self.ffn(self.norm2(x)))\n"
        "        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x)[0]))",
        "self.self_attn(h, h, h, mask)[0])\n"
        "            return x + self.dropout2(self.ffn(self.norm2(x)))\n"
        "        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask)[0]))"),
    "encoder/mask_inverted": ("        mask = None if mask is None else ~mask\n", ""),

    # --- TransformerDecoderBlock -----------------------------------------------------------------
    "decoder/queries_from_memory": ("self.cross_attn(memory, x, x, memory_mask)", "self.cross_attn(x, memory, memory, memory_mask)"),
    "decoder/keys_and_values_from_x": (
        "self.cross_attn(h, h, h, memory_mask)[0])\n"
        "            return x + self.dropout3(self.ffn(self.norm3(x)))\n"
        "        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, self_mask)[0]))\n"
        "        x = self.norm2(x + self.dropout2(self.cross_attn(x, x, x, memory_mask)[0]))",
        "self.cross_attn(h, memory, memory, memory_mask)[0])\n"
        "            return x + self.dropout3(self.ffn(self.norm3(x)))\n"
        "        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, self_mask)[0]))\n"
        "        x = self.norm2(x + self.dropout2(self.cross_attn(x, memory, memory, memory_mask)[0]))"),
    "decoder/causal_mask_on_cross_attention": (
        "        T, S = x.shape[1], memory.shape[1]\n"
        "        causal = torch.ones(T, S, dtype=torch.bool, device=x.device).tril()\n"
        "        memory_mask = causal if memory_mask is None else memory_mask & causal\n", ""),
    "decoder/masks_swapped": ("        self_mask, memory_mask = memory_mask, self_mask\n", ""),
    "decoder/cross_attention_before_self_attention": (
        "x = x + self.dropout1(self.cross_attn(h, memory, memory, memory_mask)[0])\n"
        "            h = self.norm2(x)\n"
        "            x = x + self.dropout2(self.self_attn(h, h, h, self_mask)[0])\n"
        "            return x + self.dropout3(self.ffn(self.norm3(x)))\n"
        "        x = self.norm1(x + self.dropout1(self.cross_attn(x, memory, memory, memory_mask)[0]))\n"
        "        x = self.norm2(x + self.dropout2(self.self_attn(x, x, x, self_mask)[0]))",
        "x = x + self.dropout1(self.self_attn(h, h, h, self_mask)[0])\n"
        "            h = self.norm2(x)\n"
        "            x = x + self.dropout2(self.cross_attn(h, memory, memory, memory_mask)[0])\n"
        "            return x + self.dropout3(self.ffn(self.norm3(x)))\n"
        "        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, self_mask)[0]))\n"
        "        x = self.norm2(x + self.dropout2(self.cross_attn(x, memory, memory, memory_mask)[0]))"),
    "decoder/no_cross_attention_residual": ("x = self.norm2(self.dropout2(", "x = self.norm2(x + self.dropout2("),
    "decoder/post_norm_before_the_residual": (
        "x = x + self.norm1(self.dropout1(self.self_attn(x, x, x, self_mask)[0]))\n"
        "        x = x + self.norm2(self.dropout2(self.cross_attn(x, memory, memory, memory_mask)[0]))\n"
        "        return x + self.norm3(self.dropout3(self.ffn(x)))",
        "x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, self_mask)[0]))\n"
        "        x = self.norm2(x + self.dropout2(self.cross_attn(x, memory, memory, memory_mask)[0]))\n"
        "        return self.norm3(x + self.dropout3(self.ffn(x)))"),
    "decoder/norm_first_ignored": (
        "    def forward(self, x, memory, self_mask=None, memory_mask=None):\n",
        "    def forward(self, x, memory, self_mask=None, memory_mask=None):\n"
        "        if self.norm_first:\n"
        "            n = self.norm1(x)\n"
        "            h1 = x + self.dropout1(self.self_attn(n, n, n, self_mask)[0])\n"
        "            n = self.norm2(h1)\n"
        "            h2 = h1 + self.dropout2(self.cross_attn(n, memory, memory, memory_mask)[0])\n"
        "            return h2 + self.dropout3(self.ffn(self.norm3(h2)))\n"),
    "decoder/memory_normalised": ("h, m = self.norm2(x), self.norm2(memory)", "h, m = self.norm2(x), memory"),
    "decoder/one_shared_layernorm": ("self.norm3 = self.norm2", "self.norm3 = nn.LayerNorm(d_model)"),
    "decoder/one_shared_attention": ("self.cross_attn = self.self_attn", "self.cross_attn = MultiHeadAttention(d_model, num_heads)"),
    "decoder/dropout_in_eval_mode": (
        "F.dropout(self.cross_attn(h, memory, memory, memory_mask)[0], self.dropout2.p, training=True)\n"
        "            return x + self.dropout3(self.ffn(self.norm3(x)))\n"
        "        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, self_mask)[0]))\n"
        "        x = self.norm2(x + F.dropout(self.cross_attn(x, memory, memory, memory_mask)[0], self.dropout2.p, training=True))",
        "self.dropout2(self.cross_attn(h, memory, memory, memory_mask)[0])\n"
        "            return x + self.dropout3(self.ffn(self.norm3(x)))\n"
        "        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, self_mask)[0]))\n"
        "        x = self.norm2(x + self.dropout2(self.cross_attn(x, memory, memory, memory_mask)[0]))"),
    "decoder/self_mask_ignored": (
        "self.self_attn(h, h, h)[0])\n"
        "            h = self.norm2(x)\n"
        "            x = x + self.dropout2(self.cross_attn(h, memory, memory, memory_mask)[0])\n"
        "            return x + self.dropout3(self.ffn(self.norm3(x)))\n"
        "        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x)[0]))",
        "self.self_attn(h, h, h, self_mask)[0])\n"
        "            h = self.norm2(x)\n"
        "            x = x + self.dropout2(self.cross_attn(h, memory, memory, memory_mask)[0])\n"
        "            return x + self.dropout3(self.ffn(self.norm3(x)))\n"
        "        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, self_mask)[0]))"),
    # --- Python loops ------------------------------------------------------------------------------
    "ffn/loop_over_the_batch": ('if x.dim() < 3:\n            return self.linear2(self.dropout(F.relu(self.linear1(x))))\n        outputs = []\n        for sequence in x.reshape(-1, *x.shape[-2:]):      # one sequence of the batch at a time\n            outputs.append(self.linear2(self.dropout(F.relu(self.linear1(sequence)))))\n        return torch.stack(outputs).reshape(x.shape)',
                                "return self.linear2(self.dropout(F.relu(self.linear1(x))))"),
    "encoder/layernorm_position_by_position": ('def norm(layer, h):\n            outputs = []\n            for t in range(h.shape[1]):                     # one position at a time\n                outputs.append(layer(h[:, t]))\n            return torch.stack(outputs, dim=1)', "norm = lambda layer, h: layer(h)"),
    "decoder/layernorm_position_by_position": ('def norm(layer, h):\n            outputs = []\n            for t in range(h.shape[1]):                     # one position at a time\n                outputs.append(layer(h[:, t]))\n            return torch.stack(outputs, dim=1)', "norm = lambda layer, h: layer(h)"),
}
