"""The mistakes of 06_language_model, each declared once: what the student believed, the fix, the book section, and the
wrong code (autograder/mistakes.py explains what is derived from them), with the probes that show them. Never released
to students. First the model's components (RMSNorm, SwiGLU, DecoderLayer, TinyLM), then decoding and training
(next_token_probs, generate, lm_loss, train_lm)."""
import math

import torch
from torch import nn

from autograder.mistakes import Mistake, Wrong, unrecorded
from autograder.probes import (calls as _decode_calls, gradients as _decode_gradients, refuses as _decode_refuses,
                               seeded as _decode_seeded, seeded as _model_seeded)

_RMS_ALL = ("rmsnorm_visible", "rmsnorm_matches_torch", "rmsnorm_half", "rmsnorm_no_builtin")
_SWIGLU_ALL = ("swiglu_visible", "swiglu_values", "swiglu_parameters")

MISTAKES = [
    # --- RMSNorm ---------------------------------------------------------------------------------------------
    Mistake("rmsnorm.mean-subtracted", "RMSNorm",
            believed="RMSNorm subtracts each row's mean first, as LayerNorm does",
            fix="do not subtract the mean: divide x itself by sqrt(mean(x**2, dim=-1, keepdim=True) + eps), then multiply by the weight",
            section="ch06-rmsnorm",
            wrong=[Wrong("rmsnorm/mean_subtracted",
                         edit=("        h = x.to(dtype)\n", "        h = x.to(dtype)\n        h = h - h.mean(dim=-1, keepdim=True)\n"),
                         fixed=("        h = h - h.mean(dim=-1, keepdim=True)\n", ""),
                         fails=_RMS_ALL)]),
    Mistake("rmsnorm.wrong-axis", "RMSNorm",
            believed="the mean of squares is taken over the first dimension (the batch)",
            fix="take the mean over the last dimension, the features of one row: h.pow(2).mean(dim=-1, keepdim=True)",
            section="ch06-rmsnorm",
            wrong=[Wrong("rmsnorm/over_batch",
                         edit=("h.pow(2).mean(dim=-1, keepdim=True)", "h.pow(2).mean(dim=0, keepdim=True)"),
                         fixed=("mean(dim=0, keepdim=True)", "mean(dim=-1, keepdim=True)"),
                         fails=_RMS_ALL)]),
    Mistake("rmsnorm.eps-outside-sqrt", "RMSNorm",
            believed="eps is added to the root mean square, outside the square root",
            fix="add eps inside the square root: x / sqrt(mean(x**2) + eps)",
            section="ch06-rmsnorm",
            wrong=[Wrong("rmsnorm/eps_outside_sqrt",
                         edit=("h = h * torch.rsqrt(h.pow(2).mean(dim=-1, keepdim=True) + self.eps)",
                               "h = h / (h.pow(2).mean(dim=-1, keepdim=True).sqrt() + self.eps)"),
                         fixed=("h = h / (h.pow(2).mean(dim=-1, keepdim=True).sqrt() + self.eps)",
                                "h = h / (h.pow(2).mean(dim=-1, keepdim=True) + self.eps).sqrt()"),
                         fails=("rmsnorm_matches_torch", "rmsnorm_no_builtin"))]),
    Mistake("rmsnorm.no-weight", "RMSNorm",
            believed="the normalised row is the output: the gain is not applied",
            fix="multiply the normalised row by self.weight (an nn.Parameter of ones at the start, learned)",
            section="ch06-rmsnorm",
            wrong=[Wrong("rmsnorm/no_weight",
                         edit=("return (h * self.weight.to(dtype)).to(x.dtype)", "return h.to(x.dtype)"),
                         fixed=("return h.to(x.dtype)", "return (h * self.weight.to(dtype)).to(x.dtype)"),
                         fails=_RMS_ALL)]),
    Mistake("rmsnorm.half-statistics", "RMSNorm",
            believed="the mean of squares can be computed in float16, the input's dtype",
            fix="compute the statistics in float32 at least (h = x.float() for float16 and bfloat16) and cast back to x.dtype at the end",
            section="ch06-rmsnorm",
            wrong=[Wrong("rmsnorm/half_statistics",
                         edit=("dtype = torch.promote_types(x.dtype, torch.float32)", "dtype = x.dtype"),
                         fixed=("dtype = x.dtype", "dtype = torch.promote_types(x.dtype, torch.float32)"),
                         fails=("rmsnorm_visible", "rmsnorm_half"))]),
    Mistake("rmsnorm.weight-dtype", "RMSNorm",
            believed="the output may take the weight's dtype (float32 weight times a float16 input gives float32)",
            fix="multiply by the weight in float32, then cast the result back to the input's dtype: (h * weight).to(x.dtype)",
            section="ch06-rmsnorm",
            wrong=[Wrong("rmsnorm/weight_dtype",
                         edit=("return (h * self.weight.to(dtype)).to(x.dtype)", "return h.to(x.dtype) * self.weight"),
                         fixed=("return h.to(x.dtype) * self.weight", "return (h * self.weight.to(dtype)).to(x.dtype)"),
                         fails=("rmsnorm_half",))]),
    Mistake("rmsnorm.no-sqrt", "RMSNorm",
            believed="x is divided by the mean of squares itself",
            fix="divide by the square root of the mean of squares (plus eps): torch.rsqrt(mean + eps)",
            section="ch06-rmsnorm",
            wrong=[Wrong("rmsnorm/no_sqrt",
                         edit=("h * torch.rsqrt(h.pow(2)", "h * torch.reciprocal(h.pow(2)"),
                         fixed=("torch.reciprocal(", "torch.rsqrt("),
                         fails=_RMS_ALL)]),
    Mistake("rmsnorm.sum-not-mean", "RMSNorm",
            believed="the norm of the row is used: the sum of squares, not their mean",
            fix="take the mean of the squares over the last dimension (divide their sum by D): h.pow(2).mean(dim=-1, keepdim=True)",
            section="ch06-rmsnorm",
            wrong=[Wrong("rmsnorm/sum_of_squares",
                         edit=("h.pow(2).mean(dim=-1, keepdim=True)", "h.pow(2).sum(dim=-1, keepdim=True)"),
                         fixed=("h.pow(2).sum(dim=-1, keepdim=True)", "h.pow(2).mean(dim=-1, keepdim=True)"),
                         fails=_RMS_ALL)]),
    Mistake("rmsnorm.eps-ignored", "RMSNorm",
            believed="eps is always 1e-6, whatever the constructor is given",
            fix="store the eps passed to __init__ (self.eps = eps) and use it",
            section="ch06-rmsnorm",
            wrong=[Wrong("rmsnorm/eps_ignored",
                         edit=("        self.eps = eps\n", "        self.eps = 1e-6\n"),
                         fixed=("self.eps = 1e-6", "self.eps = eps"),
                         fails=("rmsnorm_matches_torch", "rmsnorm_no_builtin"))]),

    # --- SwiGLU ----------------------------------------------------------------------------------------------
    Mistake("swiglu.silu-on-product", "SwiGLU",
            believed="the SiLU is applied to the product of the two projections",
            fix="apply the SiLU to the gate only, then multiply: F.silu(self.w_gate(x)) * self.w_up(x)",
            section="ch06-swiglu",
            wrong=[Wrong("swiglu/silu_on_product",
                         edit=("F.silu(self.w_gate(x)) * self.w_up(x)", "F.silu(self.w_gate(x) * self.w_up(x))"),
                         fixed=("F.silu(self.w_gate(x) * self.w_up(x))", "F.silu(self.w_gate(x)) * self.w_up(x)"),
                         fails=_SWIGLU_ALL)]),
    Mistake("swiglu.gate-up-swapped", "SwiGLU",
            believed="the SiLU goes on w_up(x), which multiplies w_gate(x)",
            fix="pass w_gate(x) through the SiLU and multiply it by w_up(x): F.silu(self.w_gate(x)) * self.w_up(x)",
            section="ch06-swiglu",
            wrong=[Wrong("swiglu/gate_up_swapped",
                         edit=("F.silu(self.w_gate(x)) * self.w_up(x)", "F.silu(self.w_up(x)) * self.w_gate(x)"),
                         fixed=("F.silu(self.w_up(x)) * self.w_gate(x)", "F.silu(self.w_gate(x)) * self.w_up(x)"),
                         fails=_SWIGLU_ALL)]),
    Mistake("swiglu.relu", "SwiGLU",
            believed="the gate is a ReLU, as in chapter 4's feed-forward network",
            fix="use the SiLU, z * sigmoid(z): F.silu(self.w_gate(x))",
            section="ch06-swiglu",
            wrong=[Wrong("swiglu/relu",
                         edit=("F.silu(self.w_gate(x))", "F.relu(self.w_gate(x))"),
                         fixed=("F.relu(", "F.silu("),
                         fails=_SWIGLU_ALL)]),
    Mistake("swiglu.gelu", "SwiGLU",
            believed="the gate is a GELU",
            fix="use the SiLU, z * sigmoid(z): F.silu(self.w_gate(x))",
            section="ch06-swiglu",
            wrong=[Wrong("swiglu/gelu",
                         edit=("F.silu(self.w_gate(x))", "F.gelu(self.w_gate(x))"),
                         fixed=("F.gelu(", "F.silu("),
                         fails=_SWIGLU_ALL)]),
    Mistake("swiglu.sigmoid-gate", "SwiGLU",
            believed="the gate is a sigmoid (GLU)",
            fix="use the SiLU, z * sigmoid(z), not the sigmoid alone: F.silu(self.w_gate(x))",
            section="ch06-swiglu",
            wrong=[Wrong("swiglu/sigmoid_gate",
                         edit=("F.silu(self.w_gate(x))", "torch.sigmoid(self.w_gate(x))"),
                         fixed=("torch.sigmoid(", "F.silu("),
                         fails=_SWIGLU_ALL)]),
    Mistake("swiglu.bias", "SwiGLU",
            believed="the three linear layers have biases",
            fix="build them without bias: nn.Linear(..., bias=False)",
            section="ch06-swiglu",
            wrong=[Wrong("swiglu/bias",
                         edit=("""        self.w_gate = nn.Linear(d_model, d_ff, bias=False)
        self.w_up = nn.Linear(d_model, d_ff, bias=False)
        self.w_down = nn.Linear(d_ff, d_model, bias=False)""", """        self.w_gate = nn.Linear(d_model, d_ff, bias=True)
        self.w_up = nn.Linear(d_model, d_ff, bias=True)
        self.w_down = nn.Linear(d_ff, d_model, bias=True)"""),
                         fixed=("bias=True", "bias=False"),
                         fails=("swiglu_visible", "swiglu_parameters"))]),
    Mistake("swiglu.no-gate", "SwiGLU",
            believed="the gate can be left out: w_down(silu(w_up(x)))",
            fix="multiply the gated projection by the other one: self.w_down(F.silu(self.w_gate(x)) * self.w_up(x))",
            section="ch06-swiglu",
            wrong=[Wrong("swiglu/no_gate",
                         edit=("F.silu(self.w_gate(x)) * self.w_up(x)", "F.silu(self.w_up(x))"),
                         fixed=("F.silu(self.w_up(x))", "F.silu(self.w_gate(x)) * self.w_up(x)"),
                         fails=_SWIGLU_ALL)]),
    Mistake("swiglu.silu-on-both", "SwiGLU",
            believed="both projections go through the SiLU",
            fix="only the gate goes through the SiLU: F.silu(self.w_gate(x)) * self.w_up(x)",
            section="ch06-swiglu",
            wrong=[Wrong("swiglu/silu_on_both",
                         edit=("F.silu(self.w_gate(x)) * self.w_up(x)", "F.silu(self.w_gate(x)) * F.silu(self.w_up(x))"),
                         fixed=("F.silu(self.w_gate(x)) * F.silu(self.w_up(x))", "F.silu(self.w_gate(x)) * self.w_up(x)"),
                         fails=_SWIGLU_ALL)]),
    Mistake("swiglu.flattened", "SwiGLU",
            believed="the input can be flattened to (N, D) and returned so",
            fix="let the linear layers act on the last dimension of x as it is (they accept any leading dimensions): return (..., D) with x's leading shape",
            section="ch06-swiglu",
            wrong=[Wrong("swiglu/flattened",
                         edit=("        return self.w_down(F.silu(self.w_gate(x)) * self.w_up(x))",
                               "        x = x.reshape(-1, x.shape[-1])\n        return self.w_down(F.silu(self.w_gate(x)) * self.w_up(x))"),
                         fixed=("        x = x.reshape(-1, x.shape[-1])\n", ""),
                         fails=("swiglu_visible", "swiglu_values"))]),
]

_DEC_ALL = ("decoder_visible", "decoder_full", "decoder_cache", "decoder_no_loops")
_DEC_K_ROTATED = "        k = apply_rotary(self.W_k(h).view(B, t, H_kv, d).transpose(1, 2), positions)    # (B, H_kv, t, d)\n"
_DEC_V = "        v = self.W_v(h).view(B, t, H_kv, d).transpose(1, 2)                             # (B, H_kv, t, d)\n"
_DEC_UPDATE = "        if cache is not None:\n            k, v = cache.update(k, v)                                     # (B, H_kv, n + t, d)\n"
_DEC_REPEAT = ("        k = k.repeat_interleave(H // H_kv, dim=1)                         # (B, H, n + t, d): head h reads h // group\n"
               "        v = v.repeat_interleave(H // H_kv, dim=1)\n")
_DEC_TAIL = ("        x = x + self.W_o(out.transpose(1, 2).reshape(B, t, D))\n"
             "        return x + self.ffn(self.ffn_norm(x))\n")
_DEC_MIDDLE = '        q = apply_rotary(self.W_q(h).view(B, t, H, d).transpose(1, 2), positions)       # (B, H, t, d)\n        k = apply_rotary(self.W_k(h).view(B, t, H_kv, d).transpose(1, 2), positions)    # (B, H_kv, t, d)\n        v = self.W_v(h).view(B, t, H_kv, d).transpose(1, 2)                             # (B, H_kv, t, d)\n        if cache is not None:\n            k, v = cache.update(k, v)                                     # (B, H_kv, n + t, d)\n        k = k.repeat_interleave(H // H_kv, dim=1)                         # (B, H, n + t, d): head h reads h // group\n        v = v.repeat_interleave(H // H_kv, dim=1)\n        allowed = torch.ones(t, n + t, dtype=torch.bool, device=x.device).tril(diagonal=n)   # (t, n + t)\n        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)                    # (B, H, t, d)\n'   # q .. out, as in the solution
_DEC_ROTATED_AFTER = ("        k = self.W_k(h).view(B, t, H_kv, d).transpose(1, 2)\n" + _DEC_V
                      + "        if cache is not None:\n            k, v = cache.update(k, v)\n"
                      + "        k = apply_rotary(k, torch.arange(n + t, device=x.device))      # every key rotated again\n")
_DEC_POST_NORM_TAIL = ("        x = self.attn_norm(x + self.W_o(out.transpose(1, 2).reshape(B, t, D)))\n"
                       "        return self.ffn_norm(x + self.ffn(x))\n")
_DEC_REPEATED_CACHED = ("        k = k.repeat_interleave(H // H_kv, dim=1)\n        v = v.repeat_interleave(H // H_kv, dim=1)\n"
                        "        if cache is not None:\n            k, v = cache.update(k, v)\n")

MISTAKES += [
    # --- DecoderLayer ----------------------------------------------------------------------------------------
    Mistake("decoder.positions-from-zero", "DecoderLayer",
            believed="the rows of x are at positions 0 .. t-1, also when the cache already holds n positions",
            fix="rotate at the absolute positions torch.arange(n, n + t), with n = len(cache) read before cache.update (0 without a cache)",
            section="ch06-rotary-cache",
            wrong=[Wrong("decoder/positions_from_zero",
                         edit=("positions = torch.arange(n, n + t, device=x.device)", "positions = torch.arange(t, device=x.device)"),
                         fixed=("positions = torch.arange(t, device=x.device)", "positions = torch.arange(n, n + t, device=x.device)"),
                         fails=("decoder_visible", "decoder_cache"))]),
    Mistake("decoder.keys-rotated-after-caching", "DecoderLayer",
            believed="the cache holds unrotated keys, and every key is rotated again after cache.update",
            fix="rotate the new keys at their positions before cache.update(k, v); the cached keys are already rotated and stay so",
            section="ch06-rotary-cache",
            wrong=[Wrong("decoder/keys_rotated_after_caching",
                         edit=(_DEC_K_ROTATED + _DEC_V + _DEC_UPDATE, _DEC_ROTATED_AFTER),
                         fixed=(_DEC_ROTATED_AFTER, _DEC_K_ROTATED + _DEC_V + _DEC_UPDATE),
                         fails=("decoder_cache",))]),
    Mistake("decoder.values-rotated", "DecoderLayer",
            believed="the values are rotated too",
            fix="rotate only the queries and the keys: v = self.W_v(h).view(B, t, H_kv, d).transpose(1, 2), without apply_rotary",
            section="ch06-rotary-cache",
            wrong=[Wrong("decoder/values_rotated",
                         edit=(_DEC_V, "        v = apply_rotary(self.W_v(h).view(B, t, H_kv, d).transpose(1, 2), positions)\n"),
                         fixed=("        v = apply_rotary(self.W_v(h).view(B, t, H_kv, d).transpose(1, 2), positions)\n",
                                "        v = self.W_v(h).view(B, t, H_kv, d).transpose(1, 2)\n"),
                         fails=("decoder_full", "decoder_cache"))]),
    Mistake("decoder.queries-not-rotated", "DecoderLayer",
            believed="only the keys carry positions: the queries are not rotated",
            fix="rotate the queries as well as the keys: q = apply_rotary(q, positions)",
            section="ch06-rotary-cache",
            wrong=[Wrong("decoder/queries_not_rotated",
                         edit=("q = apply_rotary(self.W_q(h).view(B, t, H, d).transpose(1, 2), positions)",
                               "q = self.W_q(h).view(B, t, H, d).transpose(1, 2)"),
                         fixed=("q = self.W_q(h).view(B, t, H, d).transpose(1, 2)",
                                "q = apply_rotary(self.W_q(h).view(B, t, H, d).transpose(1, 2), positions)"),
                         fails=("decoder_full", "decoder_cache", "decoder_no_loops"))]),
    Mistake("decoder.post-norm", "DecoderLayer",
            believed="the layer normalises after each residual addition (post-norm)",
            fix="normalise the input of each sub-layer and add its output to x itself: x = x + W_o(attn(attn_norm(x))), then x + ffn(ffn_norm(x))",
            section="ch06-decoder-layer",
            wrong=[Wrong("decoder/post_norm",
                         edit=("        h = self.attn_norm(x)\n" + _DEC_MIDDLE + _DEC_TAIL, "        h = x\n" + _DEC_MIDDLE + _DEC_POST_NORM_TAIL),
                         fixed=("        h = x\n" + _DEC_MIDDLE + _DEC_POST_NORM_TAIL, "        h = self.attn_norm(x)\n" + _DEC_MIDDLE + _DEC_TAIL),
                         fails=("decoder_full", "decoder_cache", "decoder_no_loops"))]),
    Mistake("decoder.no-attention-residual", "DecoderLayer",
            believed="the attention sub-layer's output replaces x",
            fix="add the attention sub-layer's output to x: x = x + self.W_o(...)",
            section="ch06-decoder-layer",
            wrong=[Wrong("decoder/no_attention_residual",
                         edit=("x = x + self.W_o(", "x = self.W_o("),
                         fixed=("x = self.W_o(", "x = x + self.W_o("),
                         fails=("decoder_full", "decoder_cache", "decoder_no_loops"))]),
    Mistake("decoder.repeat-not-interleave", "DecoderLayer",
            believed="the kv heads are tiled (repeat): query head h reads kv head h % num_kv_heads",
            fix="give neighbouring query heads the same kv head, h // (num_heads // num_kv_heads): k.repeat_interleave(H // H_kv, dim=1)",
            section="ch06-gqa",
            wrong=[Wrong("decoder/repeat_not_interleave",
                         edit=(_DEC_REPEAT, "        k = k.repeat(1, H // H_kv, 1, 1)\n        v = v.repeat(1, H // H_kv, 1, 1)\n"),
                         fixed=("        k = k.repeat(1, H // H_kv, 1, 1)\n        v = v.repeat(1, H // H_kv, 1, 1)\n",
                                "        k = k.repeat_interleave(H // H_kv, dim=1)\n        v = v.repeat_interleave(H // H_kv, dim=1)\n"),
                         fails=("decoder_full", "decoder_cache", "decoder_no_loops"))]),
    Mistake("decoder.top-left-causal", "DecoderLayer",
            believed="is_causal=True is the causal mask also with a cache",
            fix="build the mask aligned bottom-right, torch.ones(t, n + t, dtype=torch.bool).tril(diagonal=n), and pass it as attn_mask (is_causal aligns top-left when t != n + t)",
            section="ch06-kv-cache-decoding",
            wrong=[Wrong("decoder/top_left_causal",
                         edit=("F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)", "F.scaled_dot_product_attention(q, k, v, is_causal=True)"),
                         fixed=("is_causal=True)", "attn_mask=allowed)"),
                         fails=("decoder_visible", "decoder_cache"))]),
    Mistake("decoder.no-mask-with-cache", "DecoderLayer",
            believed="with a cache no mask is needed: the new tokens may see every key",
            fix="mask also with a cache: the query at position n + i sees keys 0 .. n + i, attn_mask=torch.ones(t, n + t, dtype=torch.bool).tril(diagonal=n)",
            section="ch06-kv-cache-decoding",
            wrong=[Wrong("decoder/no_mask_with_cache",
                         edit=("F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)",
                               "F.scaled_dot_product_attention(q, k, v, is_causal=cache is None)"),
                         fixed=("is_causal=cache is None)", "attn_mask=allowed)"),
                         fails=("decoder_visible", "decoder_cache"))]),
    Mistake("decoder.cache-not-read", "DecoderLayer",
            believed="cache.update only stores the new keys: attention uses the new positions' keys and values alone",
            fix="attend to what cache.update returns, the keys and values of all n + t positions: k, v = cache.update(k, v)",
            section="ch06-kv-cache-decoding",
            wrong=[Wrong("decoder/cache_not_read",
                         edit=("            k, v = cache.update(k, v)", "            cache.update(k, v)"),
                         fixed=("            cache.update(k, v)", "            k, v = cache.update(k, v)"),
                         fails=("decoder_visible", "decoder_cache"))]),
    Mistake("decoder.scaled-by-d-model", "DecoderLayer",
            believed="the scores are scaled by 1/sqrt(D), the model width",
            fix="scale by 1/sqrt(d), the width of one head (SDPA's default scale for heads of width d)",
            section="ch06-gqa",
            wrong=[Wrong("decoder/scaled_by_d_model",
                         edit=("F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)",
                               "F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=1 / math.sqrt(D))"),
                         fixed=(", scale=1 / math.sqrt(D))", ")"),
                         fails=("decoder_full", "decoder_cache", "decoder_no_loops"))]),
    Mistake("decoder.caches-repeated-heads", "DecoderLayer",
            believed="the cache holds the keys and values after repeat_interleave, one per query head",
            fix="cache the num_kv_heads key-value heads, (B, H_kv, t, d), and repeat them after cache.update (the cache is the memory GQA saves)",
            section="ch06-gqa",
            wrong=[Wrong("decoder/caches_repeated_heads",
                         edit=(_DEC_UPDATE + _DEC_REPEAT, _DEC_REPEATED_CACHED),
                         fixed=(_DEC_REPEATED_CACHED, "        if cache is not None:\n            k, v = cache.update(k, v)\n"
                                "        k = k.repeat_interleave(H // H_kv, dim=1)\n        v = v.repeat_interleave(H // H_kv, dim=1)\n"),
                         fails=("decoder_visible", "decoder_cache"))]),
]

_LM_TIE = "        self.lm_head.weight = self.embed.weight                  # tied: one Parameter, (V, D)\n"
_LM_HEAD = "        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)\n"
_LM_GENERIC = ("        for module in self.modules():\n"
               "            if isinstance(module, (nn.Linear, nn.Embedding)):\n"
               "                nn.init.normal_(module.weight, mean=0.0, std=0.02)\n")
_LM_SCALED = ("        for layer in self.layers:                                # the matrices that write into the residual stream\n"
              "            nn.init.normal_(layer.W_o.weight, mean=0.0, std=0.02 / math.sqrt(2 * num_layers))\n"
              "            nn.init.normal_(layer.ffn.w_down.weight, mean=0.0, std=0.02 / math.sqrt(2 * num_layers))\n")
_LM_COPY = "        self.lm_head.weight = nn.Parameter(self.embed.weight.detach().clone())\n"
_LM_LOOP = ("        for layer, cache in zip(self.layers, per_layer):         # layer i reads and fills caches[i]\n"
            "            hidden = layer(hidden, cache)\n")
_LM_ALL_INIT = ("tinylm_init",)
_LM_UNCHAINED = ("        for layer, cache in zip(self.layers, per_layer):\n"
                 "            out = layer(hidden, cache)\n"
                 "        return self.lm_head(self.norm(out))")
_LM_EVERY_SCALED = ("        for layer in self.layers:\n"
                    "            for linear in (layer.W_q, layer.W_k, layer.W_v, layer.W_o, layer.ffn.w_gate, layer.ffn.w_up, layer.ffn.w_down):\n"
                    "                nn.init.normal_(linear.weight, mean=0.0, std=0.02 / math.sqrt(2 * num_layers))\n")

MISTAKES += [
    # --- TinyLM ----------------------------------------------------------------------------------------------
    Mistake("tinylm.untied", "TinyLM",
            believed="the head has a weight of its own, separate from the embedding",
            fix="tie them: self.lm_head.weight = self.embed.weight (one Parameter, counted and trained once)",
            section="ch06-tied-embeddings",
            wrong=[Wrong("tinylm/untied",
                         edit=(_LM_TIE, ""),
                         fixed=(_LM_HEAD, _LM_HEAD + "        self.lm_head.weight = self.embed.weight\n"),
                         fails=("tinylm_visible", "tinylm_structure"))]),
    Mistake("tinylm.copied-embedding", "TinyLM",
            believed="a copy of the embedding matrix ties the head to it",
            fix="assign the Parameter itself, self.lm_head.weight = self.embed.weight: a copy (clone, .data, a new nn.Parameter) starts equal and then trains apart",
            section="ch06-tied-embeddings",
            wrong=[Wrong("tinylm/copied_embedding",
                         edit=(_LM_TIE + _LM_GENERIC + _LM_SCALED, _LM_GENERIC + _LM_SCALED + _LM_COPY),
                         fixed=("nn.Parameter(self.embed.weight.detach().clone())", "self.embed.weight"),
                         fails=("tinylm_visible", "tinylm_structure"))]),
    Mistake("tinylm.no-scaled-init", "TinyLM",
            believed="every matrix is drawn with std 0.02, W_o and ffn.w_down too",
            fix="draw each layer's W_o and ffn.w_down with std 0.02 / sqrt(2 * num_layers), after the others (the loop "
                "over every nn.Linear, run last, overwrites them)",
            section="ch06-init",
            wrong=[Wrong("tinylm/no_scaled_init",
                         edit=(_LM_SCALED, ""),
                         fixed=(_LM_GENERIC, _LM_GENERIC + _LM_SCALED),
                         fails=_LM_ALL_INIT),
                   Wrong("tinylm/scaled_init_overwritten",
                         edit=(_LM_GENERIC + _LM_SCALED, _LM_SCALED + _LM_GENERIC),
                         fixed=(_LM_SCALED + _LM_GENERIC, _LM_GENERIC + _LM_SCALED),
                         fails=_LM_ALL_INIT,
                         note="the scaled initialisation is there, but the loop over every nn.Linear runs after it")]),
    Mistake("tinylm.scaled-by-sqrt-layers", "TinyLM",
            believed="the residual projections are scaled by 1/sqrt(num_layers)",
            fix="scale by 1/sqrt(2 * num_layers): each layer has two sub-layers (attention and feed-forward) adding to the residual stream",
            section="ch06-init",
            wrong=[Wrong("tinylm/scaled_by_sqrt_layers",
                         edit=(_LM_SCALED, _LM_SCALED.replace("math.sqrt(2 * num_layers)", "math.sqrt(num_layers)")),
                         fixed=("math.sqrt(num_layers)", "math.sqrt(2 * num_layers)"),
                         fails=_LM_ALL_INIT)]),
    Mistake("tinylm.scaled-wrong-matrices", "TinyLM",
            believed="every matrix of each layer gets the smaller std 0.02 / sqrt(2 * num_layers)",
            fix="give the smaller std to the matrices that write into the residual stream: each layer's W_o and ffn.w_down",
            section="ch06-init",
            wrong=[Wrong("tinylm/scaled_wrong_matrices",
                         edit=(_LM_SCALED, _LM_EVERY_SCALED),
                         fixed=("layer.W_q, layer.W_k, layer.W_v, layer.W_o, layer.ffn.w_gate, layer.ffn.w_up, layer.ffn.w_down",
                                "layer.W_o, layer.ffn.w_down"),
                         fails=_LM_ALL_INIT)]),
    Mistake("tinylm.default-init", "TinyLM",
            believed="PyTorch's default initialisation is fine (an embedding of std 1)",
            fix="draw every Linear and the embedding with nn.init.normal_(weight, mean=0.0, std=0.02), then W_o and ffn.w_down with 0.02 / sqrt(2 * num_layers)",
            section="ch06-init",
            wrong=[Wrong("tinylm/default_init",
                         edit=(_LM_GENERIC + _LM_SCALED, ""),
                         fixed=(_LM_TIE, _LM_TIE + _LM_GENERIC + _LM_SCALED),
                         fails=("tinylm_visible", "tinylm_init"))]),
    Mistake("tinylm.no-final-norm", "TinyLM",
            believed="the last layer's output goes straight to the head",
            fix="apply the final RMSNorm before the head: logits = self.lm_head(self.norm(hidden)) for the last layer's output",
            section="ch06-decoder-layer",
            wrong=[Wrong("tinylm/no_final_norm",
                         edit=("return self.lm_head(self.norm(hidden))", "return self.lm_head(hidden)"),
                         fixed=("return self.lm_head(hidden)", "return self.lm_head(self.norm(hidden))"),
                         fails=("tinylm_forward", "tinylm_cache"))]),
    Mistake("tinylm.embedding-scaled", "TinyLM",
            believed="the embeddings are multiplied by sqrt(d_model), as in the original Transformer",
            fix="feed self.embed(idx) to the first layer as it is (the tied head reads the same matrix, drawn with std 0.02)",
            section="ch06-tied-embeddings",
            wrong=[Wrong("tinylm/embedding_scaled",
                         edit=("hidden = self.embed(idx)", "hidden = self.embed(idx) * math.sqrt(self.embed.embedding_dim)"),
                         fixed=(" * math.sqrt(self.embed.embedding_dim)", ""),
                         fails=("tinylm_forward", "tinylm_cache"))]),
    Mistake("tinylm.caches-not-passed", "TinyLM",
            believed="the layers keep their own memory: forward need not hand them the caches",
            fix="pass the caches the caller gives: layer i gets caches[i] (None for every layer when caches is None); never make new ones inside forward",
            section="ch06-kv-cache-decoding",
            wrong=[Wrong("tinylm/caches_not_passed",
                         edit=("            hidden = layer(hidden, cache)", "            hidden = layer(hidden)"),
                         fixed=("            hidden = layer(hidden)", "            hidden = layer(hidden, cache)"),
                         fails=("tinylm_cache",))]),
    Mistake("tinylm.layers-not-chained", "TinyLM",
            believed="each layer reads the embeddings, and the last one's output is kept",
            fix="chain the layers: each layer in order reads the previous one's output (hidden = layer(hidden, cache))",
            section="ch06-decoder-layer",
            wrong=[Wrong("tinylm/layers_not_chained",
                         edit=(_LM_LOOP + "        return self.lm_head(self.norm(hidden))", _LM_UNCHAINED),
                         fixed=(_LM_UNCHAINED, _LM_LOOP + "        return self.lm_head(self.norm(hidden))"),
                         fails=("tinylm_forward", "tinylm_cache"))]),
]


# --- Probes: the inputs on which these mistakes show (autograder/probes.py; each run on the student's code and on each
# mistake's own, the other components being the solution's) ----------------------------------------------------------


def _model_gen(seed):
    return torch.Generator().manual_seed(seed)


def _rms_probe(init, x, weight=None, dtype=None):
    """RMSNorm(*init), moved to dtype, its weight set, on x (no gradient)."""
    def probe(names):
        module = names["RMSNorm"](*init)
        if dtype is not None:
            module = module.to(dtype)
        with torch.no_grad():
            if weight is not None:
                module.weight.copy_(weight)
            return module(x.clone())
    return probe


_RMS_X = torch.randn(2, 3, 8, generator=_model_gen(71), dtype=torch.float64)
_RMS_W = torch.rand(8, generator=_model_gen(72), dtype=torch.float64) + 0.5


def _swiglu_probe(x, then=None):
    """SwiGLU(8, 12) in float64 on x; `then(module)` instead of the output when given (its parameters)."""
    def probe(names):
        with _model_seeded(73):
            module = names["SwiGLU"](8, 12)
        if then is not None:
            return then(module)
        with torch.no_grad():
            return module.double()(x.clone())
    return probe


def _parameter_shapes(module):
    return {name: tuple(p.shape) for name, p in module.named_parameters()}


class _ModelProbeCache:
    """A reference KV cache for the probes: it records the shape of each update."""

    def __init__(self):
        self.k, self.v, self.appended = None, None, []

    def update(self, k, v):
        self.appended.append(tuple(k.shape))
        self.k = k if self.k is None else torch.cat([self.k, k], dim=-2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=-2)
        return self.k, self.v

    def __len__(self):
        return 0 if self.k is None else self.k.shape[-2]


_DEC_X = torch.randn(2, 6, 16, generator=_model_gen(74), dtype=torch.float64)


def _decoder_probe(chunks):
    """DecoderLayer(16, 4, 2, 32) in float64 with fixed weights of a trained scale, on the visible test's shapes: the output
    without a cache (chunks None), or cut into chunks with a reference cache (the output, the cached keys and values, the
    shapes cached)."""
    def probe(names):
        with _model_seeded(75):
            layer = names["DecoderLayer"](16, 4, 2, 32)
        layer = layer.double()
        gen = _model_gen(76)
        with torch.no_grad():
            for name, scale in (("W_q", 2.0), ("W_k", 2.0), ("W_v", 1.0), ("W_o", 1.0)):
                weight = getattr(layer, name).weight
                weight.copy_(torch.randn(tuple(weight.shape), generator=gen, dtype=torch.float64) * scale / 4)
            for name in ("attn_norm", "ffn_norm"):
                weight = getattr(layer, name).weight
                weight.copy_(torch.rand(tuple(weight.shape), generator=gen, dtype=torch.float64) + 0.5)
            x = _DEC_X.clone()
            if chunks is None:
                return layer(x)
            cache, outputs, n = _ModelProbeCache(), [], 0
            for t in chunks:
                outputs.append(layer(x[:, n:n + t], cache))
                n += t
        return torch.cat(outputs, dim=1), cache.k, cache.v, cache.appended
    return probe


_LM_SIZE = (64, 16, 2, 4, 2, 32)                  # vocab_size, d_model, num_layers, num_heads, num_kv_heads, d_ff
_LM_IDX = torch.randint(0, 32, (2, 6), generator=_model_gen(77))       # tokens of the first half of the vocabulary
_LM_E = torch.randn(64, 16, generator=_model_gen(78), dtype=torch.float64)


def _lm_built(names, embed=True):
    with _model_seeded(79):
        model = names["TinyLM"](*_LM_SIZE).double()
    if embed:                                      # an embedding of a trained scale, so that every part shows
        with torch.no_grad():
            model.embed.weight.copy_(_LM_E)
    return model


def _lm_logits(names):
    model = _lm_built(names)
    with torch.no_grad():
        return model(_LM_IDX.clone())


def _lm_head_reaches_embedding(names):
    """Whether the gradient of the logits reaches the rows of embed.weight of tokens never fed in (only a tied head does)."""
    model = _lm_built(names, embed=False)
    logits = model(_LM_IDX.clone())
    ramp = torch.arange(1, logits.numel() + 1, dtype=logits.dtype).reshape(logits.shape) / logits.numel()
    (logits * ramp).sum().backward()
    grad = model.embed.weight.grad
    return None if grad is None else bool(grad[32:].abs().sum() > 0)


def _lm_decoding(names):
    """The logits of a prefill of 3 tokens, then 1, then 2, with one reference cache per layer, and the caches' lengths."""
    model = _lm_built(names)
    caches, outputs, n = [_ModelProbeCache() for _ in range(_LM_SIZE[2])], [], 0
    with torch.no_grad():
        for t in (3, 1, 2):
            outputs.append(model(_LM_IDX[:, n:n + t].clone(), caches))
            n += t
    return torch.cat(outputs, dim=1), [len(cache) for cache in caches]


def _std_label(weight, num_layers):
    std = weight.detach().double().std().item()
    for label, value in (("0.02", 0.02), ("scaled", 0.02 / math.sqrt(2 * num_layers)), ("scaled-by-layers", 0.02 / math.sqrt(num_layers))):
        if abs(std / value - 1) < 0.1:
            return label
    return "other"


def _lm_initialisation(names):
    """Each matrix's standard deviation, as a label, on a model large enough for the label to be sure. Where the grader
    runs this, the layers are stand-ins of the solution's DecoderLayer (not nn.Linear), so a layer's matrices are told
    apart only as scaled, scaled by 1/sqrt(num_layers), or not scaled."""
    with _model_seeded(80):
        model = unrecorded(names["TinyLM"])(256, 64, 2, 4, 2, 128)   # its own initialisation, not the student's values
    found = {"embed": _std_label(model.embed.weight, 2),
             "tied_values": bool(torch.equal(model.lm_head.weight.detach(), model.embed.weight.detach()))}
    for i, layer in enumerate(model.layers):
        for name, linear in (("W_q", layer.W_q), ("W_k", layer.W_k), ("W_v", layer.W_v), ("W_o", layer.W_o),
                             ("w_gate", layer.ffn.w_gate), ("w_up", layer.ffn.w_up), ("w_down", layer.ffn.w_down)):
            label = _std_label(linear.weight, 2)
            found[f"{i}.{name}"] = "not-scaled" if label in ("0.02", "other") else label
    return found


PROBES = {
    "RMSNorm": [_rms_probe((8, 1e-5), _RMS_X, _RMS_W, torch.float64),
                _rms_probe((8, 0.1), 0.3 * _RMS_X, _RMS_W, torch.float64),
                _rms_probe((8,), (300 * _RMS_X[0]).half(), None, torch.float16),
                _rms_probe((8,), _RMS_X[1].half(), _RMS_W.float(), None)],
    "SwiGLU": [_swiglu_probe(torch.randn(2, 3, 8, generator=_model_gen(81), dtype=torch.float64)),
               _swiglu_probe(None, then=_parameter_shapes),
               _swiglu_probe(torch.randn(8, generator=_model_gen(82), dtype=torch.float64))],
    "DecoderLayer": [_decoder_probe(None), _decoder_probe([3, 1, 1, 1]), _decoder_probe([2, 4])],
    "TinyLM": [_lm_logits, _lm_head_reaches_embedding, _lm_decoding, _lm_initialisation],
}


# ====================================================================================================
# Decoding and training: next_token_probs, generate, lm_loss, train_lm

_PROBS_ALL = ("probs_visible", "probs_temperature", "probs_top_k", "probs_top_p", "probs_order")
_GEN_ALL = ("generate_sampling",)
_LOSS_ALL = ("loss_visible", "loss_values", "loss_dtypes", "loss_gradients")
_TRAIN_ALL = ("train_matches_reference",)


# train_lm's loop, as the solution writes it (a wrong moves model.train() from before it to after it)
_TRAIN_LOOP = """\
    stream, losses = iter(batches), []
    for step_number in range(steps):
        idx = next(stream)                                                   # (B, T)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step_number)
        loss = lm_loss(model(idx), idx)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, clip)
        optimizer.step()
        losses.append(loss.item())                                           # a Python float: no graph kept
"""


def _decode_edit(name, old, new, fails, note=""):
    """A wrong made by one edit of the solution cell, fixed by undoing it."""
    return Wrong(name, edit=(old, new), fixed=(new, old), fails=fails, note=note)


# A student's next_token_probs written in probability space (zeroing, then renormalising): top-k not renormalised.
_DECODE_PROBS_SPACE = '''\
def next_token_probs(logits, temperature=1.0, top_k=None, top_p=None):
    if temperature < 0 or (top_k is not None and top_k < 1) or (top_p is not None and not 0 < top_p <= 1):
        raise ValueError("bad sampling parameters")
    if temperature == 0:
        return F.one_hot(logits.argmax(-1), logits.size(-1)).to(logits.dtype)
    probs = torch.softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)) / temperature, dim=-1)
    if top_k is not None and top_k < probs.size(-1):
        kth = probs.topk(top_k, dim=-1).values[:, -1:]
        probs = probs.masked_fill(probs < kth, 0.0)
        probs = probs / probs.sum(-1, keepdim=True)
    if top_p is not None and top_p < 1:
        ordered = probs.sort(dim=-1, descending=True).values
        before = ordered.double().cumsum(-1) - ordered.double()
        crossing = (before < top_p).sum(-1, keepdim=True) - 1
        probs = probs.masked_fill(probs < ordered.gather(-1, crossing), 0.0)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs.to(logits.dtype)
'''

_DECODE_CHECKS = """\
    if temperature < 0 or (top_k is not None and top_k < 1) or (top_p is not None and not 0 < top_p <= 1):
        raise ValueError("bad sampling parameters")
"""
_DECODE_GREEDY = """\
    if temperature == 0:
        return F.one_hot(logits.argmax(-1), logits.size(-1)).to(logits.dtype)
"""

# A student's generate without try/finally: the training mode is restored only when nothing raises.
_DECODE_GENERATE_HEAD = '''\
def generate(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, generator=None, use_cache=True):
    was_training = model.training
    model.eval()
'''
_DECODE_GENERATE_LOOP = '''\
        caches = [KVCache() for _ in model.layers] if use_cache else None
        sequence, new = idx, idx
        for _step in range(max_new_tokens):
            logits = model(new, caches) if use_cache else model(sequence)
            probs = next_token_probs(logits[:, -1], temperature, top_k, top_p)
            if temperature == 0:
                token = probs.argmax(dim=-1, keepdim=True)
            else:
                token = torch.multinomial(probs, 1, generator=generator)
            sequence = torch.cat([sequence, token], dim=1)
            new = token
'''
_DECODE_NO_FINALLY = "    with torch.no_grad():\n" + _DECODE_GENERATE_LOOP + "    model.train(was_training)\n"
_DECODE_FINALLY = ("    try:\n     with torch.no_grad():\n" + _DECODE_GENERATE_LOOP.replace("\n    ", "\n     ").replace("        caches", "         caches", 1)
                   + "    finally:\n        model.train(was_training)\n")
_DECODE_GENERATE_NO_FINALLY = _DECODE_GENERATE_HEAD + _DECODE_NO_FINALLY + "    return sequence\n"

# A student's lm_loss in one line: each wrong changes the line, the fix restores it.
_DECODE_LOSS = '''\
def lm_loss(logits, idx):
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    V = logits.size(-1)
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), idx[:, 1:].reshape(-1))
'''
_DECODE_LOSS_LINE = "F.cross_entropy(logits[:, :-1].reshape(-1, V), idx[:, 1:].reshape(-1))"


def _decode_loss(name, line, fails, note=""):
    return Wrong(name, source=_DECODE_LOSS.replace(_DECODE_LOSS_LINE, line), fixed=(line, _DECODE_LOSS_LINE), fails=fails,
                 note=note)


_DECODE_LR_AT = '''\
        if step < warmup_steps:
            return lr * (step + 1) / warmup_steps                            # linear warm-up
        progress = (step - warmup_steps) / (steps - warmup_steps)            # 0 at the end of the warm-up, 1 at `steps`
'''
_DECODE_NO_WARMUP = '''\
        progress = step / steps
'''

MISTAKES += [
    # --- next_token_probs ------------------------------------------------------------------------------------
    Mistake("probs.temperature-after-softmax", "next_token_probs",
            believed="the temperature divides the probabilities, after the softmax",
            fix="divide the logits by the temperature before the softmax: softmax(logits / temperature)",
            section="ch06-temperature",
            wrong=[_decode_edit("next_token_probs/temperature_after_softmax",
                                "scores = logits.to(torch.promote_types(logits.dtype, torch.float32)) / temperature",
                                "scores = torch.softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1) / temperature",
                                _PROBS_ALL)]),
    Mistake("probs.temperature-zero-divides", "next_token_probs",
            believed="temperature 0 is handled by the same division as any other temperature",
            fix="treat temperature == 0 first: return the one-hot of logits.argmax(dim=-1) (F.one_hot), never divide by 0",
            section="ch06-temperature",
            wrong=[_decode_edit("next_token_probs/divides_by_zero",
                                "    if temperature == 0:                                                     # greedy",
                                "    if False:                                                     # greedy",
                                ("probs_visible", "probs_temperature"))]),
    Mistake("probs.argmax-ties-last", "next_token_probs",
            believed="at temperature 0 a tie may go to any of the tied tokens",
            fix="on a tie take the lowest index: logits.argmax(dim=-1) returns the first maximum",
            section="ch06-temperature",
            wrong=[_decode_edit("next_token_probs/ties_last",
                                "F.one_hot(logits.argmax(dim=-1), logits.size(-1))",
                                "F.one_hot(logits.size(-1) - 1 - logits.flip(-1).argmax(dim=-1), logits.size(-1))",
                                ("probs_visible", "probs_temperature"))]),
    Mistake("probs.half-precision", "next_token_probs",
            believed="the softmax can run in the logits' own dtype, float16 included",
            fix="compute in float32 at least (logits.to(torch.promote_types(logits.dtype, torch.float32))) and cast the result back",
            section="ch06-temperature",
            wrong=[_decode_edit("next_token_probs/half_precision",
                                "scores = logits.to(torch.promote_types(logits.dtype, torch.float32)) / temperature",
                                "scores = logits / temperature", ("probs_temperature",))]),
    Mistake("probs.top-k-ties-dropped", "next_token_probs",
            believed="top-k keeps exactly k tokens, the first k of torch.topk's indices",
            fix="keep every token whose score is >= the k-th largest score (scores.topk(k).values[:, -1:]): ties with the k-th stay",
            section="ch06-top-k",
            wrong=[_decode_edit("next_token_probs/top_k_by_index",
                                "scores = scores.masked_fill(scores < kth, -math.inf)",
                                "scores = scores.masked_fill(~torch.zeros_like(scores, dtype=torch.bool).scatter(-1, scores.topk(top_k, dim=-1).indices, True), -math.inf)",
                                ("probs_visible", "probs_top_k"))]),
    Mistake("probs.top-k-not-renormalised", "next_token_probs",
            believed="zeroing the dropped tokens is enough: what top-k keeps already sums to 1",
            fix="divide what top-k keeps by its sum (or set the dropped logits to -inf before the softmax) so each row sums to 1",
            section="ch06-top-k",
            wrong=[Wrong("next_token_probs/top_k_not_renormalised",
                         source=_DECODE_PROBS_SPACE.replace(
                             "        probs = probs.masked_fill(probs < kth, 0.0)\n        probs = probs / probs.sum(-1, keepdim=True)\n",
                             "        probs = probs.masked_fill(probs < kth, 0.0)\n"),
                         fixed=("        probs = probs.masked_fill(probs < kth, 0.0)\n",
                                "        probs = probs.masked_fill(probs < kth, 0.0)\n        probs = probs / probs.sum(-1, keepdim=True)\n"),
                         fails=("probs_visible", "probs_top_k", "probs_order"))]),
    Mistake("probs.top-p-drops-crossing", "next_token_probs",
            believed="top-p keeps the tokens whose running sum stays below p, without the token that crosses p",
            fix="keep a token while the mass BEFORE it is < p: the token whose probability makes the sum reach p is kept",
            section="ch06-top-p",
            wrong=[_decode_edit("next_token_probs/top_p_drops_crossing",
                                "before = ordered.double().cumsum(dim=-1) - ordered.double()",
                                "before = ordered.double().cumsum(dim=-1)", ("probs_visible", "probs_top_p", "probs_order"))]),
    Mistake("probs.top-p-ties-by-position", "next_token_probs",
            believed="top-p keeps a prefix of the sorted tokens, so a token tied with the crossing one may be dropped",
            fix="compare probabilities with the crossing token's (probs >= its probability): every token tied with it is kept",
            section="ch06-top-p",
            wrong=[_decode_edit("next_token_probs/top_p_ties_by_position",
                                "scores = scores.masked_fill(probs < threshold, -math.inf)",
                                "scores = scores.masked_fill(probs.argsort(dim=-1, descending=True, stable=True).argsort(dim=-1) > crossing, -math.inf)",
                                ("probs_visible", "probs_top_p"))]),
    Mistake("probs.top-p-before-top-k", "next_token_probs",
            believed="top-p measures the mass on the probabilities of every token, before top-k dropped some",
            fix="apply top-p to the renormalised probabilities of the tokens top-k kept: softmax of the scores top-k left",
            section="ch06-top-p",
            wrong=[_decode_edit("next_token_probs/top_p_before_top_k",
                                "probs = torch.softmax(scores, dim=-1)                                # what top-k kept",
                                "probs = torch.softmax(logits.to(scores.dtype) / temperature, dim=-1)  # what top-k kept",
                                ("probs_order",))]),
    Mistake("probs.no-argument-checks", "next_token_probs",
            believed="invalid sampling parameters need no check",
            fix="raise ValueError first for temperature < 0, top_k < 1 or top_p outside (0, 1]",
            section="ch06-temperature",
            wrong=[Wrong("next_token_probs/no_checks", source=_DECODE_PROBS_SPACE.replace(_DECODE_CHECKS, ""),
                         fixed=(_DECODE_GREEDY, _DECODE_CHECKS + _DECODE_GREEDY), fails=("probs_visible", "probs_errors"))]),
    Mistake("probs.checks-after-greedy", "next_token_probs",
            believed="at temperature 0 top_k and top_p are not used, so they need no check",
            fix="check every argument before anything else, temperature 0 included",
            section="ch06-temperature",
            wrong=[Wrong("next_token_probs/checks_after_greedy",
                         source=_DECODE_PROBS_SPACE.replace(
                             '''    if temperature < 0 or (top_k is not None and top_k < 1) or (top_p is not None and not 0 < top_p <= 1):
        raise ValueError("bad sampling parameters")
    if temperature == 0:
        return F.one_hot(logits.argmax(-1), logits.size(-1)).to(logits.dtype)
''', '''    if temperature == 0:
        return F.one_hot(logits.argmax(-1), logits.size(-1)).to(logits.dtype)
    if temperature < 0 or (top_k is not None and top_k < 1) or (top_p is not None and not 0 < top_p <= 1):
        raise ValueError("bad sampling parameters")
'''),
                         fixed=('''    if temperature == 0:
        return F.one_hot(logits.argmax(-1), logits.size(-1)).to(logits.dtype)
    if temperature < 0 or (top_k is not None and top_k < 1) or (top_p is not None and not 0 < top_p <= 1):
        raise ValueError("bad sampling parameters")
''', '''    if temperature < 0 or (top_k is not None and top_k < 1) or (top_p is not None and not 0 < top_p <= 1):
        raise ValueError("bad sampling parameters")
    if temperature == 0:
        return F.one_hot(logits.argmax(-1), logits.size(-1)).to(logits.dtype)
'''),
                         fails=("probs_visible", "probs_errors"))]),

    # --- generate --------------------------------------------------------------------------------------------
    Mistake("generate.cache-never-read", "generate",
            believed="with a cache the model still gets the whole sequence at every step",
            fix="after the prefill, call the model with the new token only, model(token, caches): the caches hold the rest",
            section="ch06-kv-cache-decoding",
            wrong=[_decode_edit("generate/cache_never_read", "logits = model(new, caches) if use_cache",
                                "logits = model(sequence, caches) if use_cache",
                                ("generate_visible", "generate_sampling", "generate_cache_calls"))]),
    Mistake("generate.new-cache-each-step", "generate",
            believed="each step needs fresh caches, filled again from the whole sequence",
            fix="make the caches once, before the loop (one KVCache per layer), and feed them one new token per call",
            section="ch06-kv-cache-decoding",
            wrong=[_decode_edit("generate/new_cache_each_step", "logits = model(new, caches) if use_cache",
                                "logits = model(sequence, [KVCache() for _ in model.layers]) if use_cache",
                                ("generate_visible", "generate_cache_calls"))]),
    Mistake("generate.caches-shared", "generate",
            believed="one cache object can serve every layer",
            fix="make one KVCache per layer: [KVCache() for _ in model.layers] (a list times n repeats one object)",
            section="ch06-kv-cache-decoding",
            wrong=[_decode_edit("generate/caches_shared", "[KVCache() for _ in model.layers] if use_cache",
                                "[KVCache()] * len(model.layers) if use_cache",
                                ("generate_visible", "generate_sampling", "generate_cache_calls"))]),
    Mistake("generate.last-token-without-cache", "generate",
            believed="without a cache, feeding the last token is enough",
            fix="without a cache the model sees only what it is given: call it on the whole sequence so far at every step",
            section="ch06-sampling-loop",
            wrong=[_decode_edit("generate/last_token_without_cache", "if use_cache else model(sequence)",
                                "if use_cache else model(new)",
                                ("generate_visible", "generate_sampling", "generate_cache_calls"))]),
    Mistake("generate.first-position-logits", "generate",
            believed="the next token is read from the logits of the first position",
            fix="draw from the logits of the last position, logits[:, -1]: it is the one that has seen the whole sequence",
            section="ch06-sampling-loop",
            wrong=[_decode_edit("generate/first_position", "next_token_probs(logits[:, -1],", "next_token_probs(logits[:, 0],",
                                _GEN_ALL)]),
    Mistake("generate.argmax-always", "generate",
            believed="the next token is always the most likely one",
            fix="at a temperature > 0 draw it: torch.multinomial(probs, 1, generator=generator); the argmax is for temperature 0",
            section="ch06-sampling-loop",
            wrong=[_decode_edit("generate/argmax_always", "token = torch.multinomial(probs, 1, generator=generator)",
                                "token = probs.argmax(-1, keepdim=True)", _GEN_ALL)]),
    Mistake("generate.samples-logits", "generate",
            believed="torch.multinomial can draw from the logits",
            fix="draw from probabilities: torch.multinomial(next_token_probs(logits[:, -1], ...), 1, generator=generator)",
            section="ch06-sampling-loop",
            wrong=[_decode_edit("generate/samples_logits", "token = torch.multinomial(probs, 1, generator=generator)",
                                "token = torch.multinomial(logits[:, -1], 1, generator=generator)", _GEN_ALL)]),
    Mistake("generate.generator-ignored", "generate",
            believed="the generator argument need not reach torch.multinomial",
            fix="pass it on: torch.multinomial(probs, 1, generator=generator), so that one seed gives one text",
            section="ch06-sampling-loop",
            wrong=[_decode_edit("generate/generator_ignored", "token = torch.multinomial(probs, 1, generator=generator)",
                                "token = torch.multinomial(probs, 1)", _GEN_ALL)]),
    Mistake("generate.greedy-draws", "generate",
            believed="at temperature 0 drawing from the one-hot probabilities is as good as the argmax",
            fix="at temperature 0 take the argmax and draw nothing, so that the generator is left untouched",
            section="ch06-sampling-loop",
            wrong=[_decode_edit("generate/greedy_draws", "                if temperature == 0:\n",
                                "                if temperature is None:\n", ("generate_visible", "generate_greedy"))]),
    Mistake("generate.eval-missing", "generate",
            believed="torch.no_grad() is all that inference needs",
            fix="also call model.eval() (dropout and other training-only behaviour off), and restore the mode after",
            section="ch06-sampling-loop",
            wrong=[_decode_edit("generate/eval_missing", "    model.eval()\n    try:", "    try:", ("generate_visible", "generate_modes"))]),
    Mistake("generate.no-grad-missing", "generate",
            believed="eval mode turns gradients off",
            fix="run the loop under `with torch.no_grad():` (eval mode does not stop autograd from recording)",
            section="ch06-sampling-loop",
            wrong=[_decode_edit("generate/no_grad_missing", "with torch.no_grad():", "with torch.enable_grad():",
                                ("generate_visible", "generate_modes"))]),
    Mistake("generate.training-not-restored", "generate",
            believed="leaving the model in eval mode after generating is harmless",
            fix="remember was_training = model.training and call model.train(was_training) at the end, in a finally block",
            section="ch06-sampling-loop",
            wrong=[_decode_edit("generate/training_not_restored", "        model.train(was_training)\n", "        pass\n",
                                ("generate_visible", "generate_modes"))]),
    Mistake("generate.always-train-after", "generate",
            believed="after generating, the model goes back to training mode",
            fix="restore the mode the model had: model.train(was_training), not model.train()",
            section="ch06-sampling-loop",
            wrong=[_decode_edit("generate/always_train_after", "        model.train(was_training)\n", "        model.train()\n",
                                ("generate_modes",))]),
    Mistake("generate.not-restored-on-error", "generate",
            believed="the training mode need only be restored when generation ends normally",
            fix="wrap the loop in try: ... finally: model.train(was_training), so an error leaves the mode restored too",
            section="ch06-sampling-loop",
            wrong=[Wrong("generate/not_restored_on_error", source=_DECODE_GENERATE_NO_FINALLY,
                         fixed=(_DECODE_NO_FINALLY, _DECODE_FINALLY), fails=("generate_modes",))]),

    # --- lm_loss ---------------------------------------------------------------------------------------------
    Mistake("loss.not-shifted", "lm_loss",
            believed="the logits at position t are compared with the token at position t",
            fix="the logits at position t predict the token at t + 1: compare logits[:, :-1] with idx[:, 1:]",
            section="ch06-loss-shift",
            wrong=[_decode_loss("lm_loss/not_shifted", "F.cross_entropy(logits.reshape(-1, V), idx.reshape(-1))", _LOSS_ALL)]),
    Mistake("loss.shifted-wrong-way", "lm_loss",
            believed="the logits of the later positions predict the earlier tokens",
            fix="compare logits[:, :-1] (positions 0 .. T-2) with idx[:, 1:] (tokens 1 .. T-1)",
            section="ch06-loss-shift",
            wrong=[_decode_loss("lm_loss/shifted_wrong_way",
                                "F.cross_entropy(logits[:, 1:].reshape(-1, V), idx[:, :-1].reshape(-1))", _LOSS_ALL)]),
    Mistake("loss.sum", "lm_loss",
            believed="the loss adds the cross-entropies of every prediction",
            fix="take the mean over the B (T - 1) predictions (F.cross_entropy's default reduction)",
            section="ch06-loss-shift",
            wrong=[_decode_loss("lm_loss/sum",
                                'F.cross_entropy(logits[:, :-1].reshape(-1, V), idx[:, 1:].reshape(-1), reduction="sum")',
                                _LOSS_ALL)]),
    Mistake("loss.mean-over-batch-only", "lm_loss",
            believed="the loss of a sequence is the sum over its positions, averaged over the batch",
            fix="average over every prediction, B (T - 1) of them",
            section="ch06-loss-shift",
            wrong=[_decode_loss("lm_loss/mean_over_batch_only",
                                'F.cross_entropy(logits[:, :-1].reshape(-1, V), idx[:, 1:].reshape(-1), reduction="none").view(idx.size(0), -1).sum(-1).mean()',
                                _LOSS_ALL)]),
    Mistake("loss.ignores-token-zero", "lm_loss",
            believed="token 0 is padding, to be ignored",
            fix="every token is a target here: no ignore_index",
            section="ch06-loss-shift",
            wrong=[_decode_loss("lm_loss/ignores_token_zero",
                                "F.cross_entropy(logits[:, :-1].reshape(-1, V), idx[:, 1:].reshape(-1), ignore_index=0)",
                                ("loss_values", "loss_gradients"))]),
    Mistake("loss.softmax-first", "lm_loss",
            believed="F.cross_entropy takes probabilities",
            fix="give F.cross_entropy the raw logits: it applies the log-softmax itself",
            section="ch06-loss-shift",
            wrong=[_decode_loss("lm_loss/softmax_first",
                                "F.cross_entropy(torch.softmax(logits[:, :-1], dim=-1).reshape(-1, V), idx[:, 1:].reshape(-1))",
                                _LOSS_ALL)]),
    Mistake("loss.nll-on-logits", "lm_loss",
            believed="F.nll_loss computes the cross-entropy of logits",
            fix="F.nll_loss needs log-probabilities (log_softmax first); F.cross_entropy does both",
            section="ch06-loss-shift",
            wrong=[_decode_loss("lm_loss/nll_on_logits", "F.nll_loss(logits[:, :-1].reshape(-1, V), idx[:, 1:].reshape(-1))",
                                _LOSS_ALL)]),
    Mistake("loss.classes-last", "lm_loss",
            believed="F.cross_entropy reads the classes from the last dimension of (B, T, V) logits",
            fix="F.cross_entropy wants the classes on dimension 1: flatten to (B (T - 1), V) logits and (B (T - 1),) targets",
            section="ch06-loss-shift",
            wrong=[_decode_loss("lm_loss/classes_last", "F.cross_entropy(logits[:, :-1], idx[:, 1:])", _LOSS_ALL)]),
    Mistake("loss.half-precision", "lm_loss",
            believed="the cross-entropy of float16 logits can be computed in float16",
            fix="cast float16 and bfloat16 logits to float32 first (logits.float()): the loss is float32 at least",
            section="ch06-loss-shift",
            wrong=[Wrong("lm_loss/half_precision",
                         source=_DECODE_LOSS.replace("    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))\n", ""),
                         fixed=("    V = logits.size(-1)\n",
                                "    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))\n    V = logits.size(-1)\n"),
                         fails=("loss_visible", "loss_dtypes"))]),
    Mistake("loss.detached", "lm_loss",
            believed="the loss is a number, read with .item()",
            fix="return the tensor F.cross_entropy gives: training back-propagates through it",
            section="ch06-loss-shift",
            wrong=[_decode_loss("lm_loss/detached",
                                "torch.tensor(F.cross_entropy(logits[:, :-1].reshape(-1, V), idx[:, 1:].reshape(-1)).item())",
                                ("loss_values", "loss_gradients"))]),

    # --- train_lm --------------------------------------------------------------------------------------------
    Mistake("train.no-warmup", "train_lm",
            believed="the learning rate can start at its peak, with the cosine from step 0",
            fix="warm up first: lr * (s + 1) / warmup_steps for s < warmup_steps, then the cosine from (s - warmup_steps) / (steps - warmup_steps)",
            section="ch06-training",
            wrong=[Wrong("train_lm/no_warmup", edit=(_DECODE_LR_AT, _DECODE_NO_WARMUP), fixed=(_DECODE_NO_WARMUP, _DECODE_LR_AT),
                         fails=("train_matches_reference", "train_schedule"))]),
    Mistake("train.warmup-from-zero", "train_lm",
            believed="the warm-up starts from a learning rate of 0 at step 0",
            fix="at step s < warmup_steps use lr * (s + 1) / warmup_steps: the first step moves, step warmup_steps - 1 uses lr",
            section="ch06-training",
            wrong=[_decode_edit("train_lm/warmup_from_zero", "return lr * (step + 1) / warmup_steps",
                                "return lr * step / warmup_steps", ("train_matches_reference", "train_schedule"))]),
    Mistake("train.cosine-to-zero", "train_lm",
            believed="the cosine brings the learning rate down to 0",
            fix="the cosine goes from lr down to lr / 10: min_lr + (lr - min_lr) * 0.5 * (1 + cos(pi * progress)), min_lr = lr / 10",
            section="ch06-training",
            wrong=[_decode_edit("train_lm/cosine_to_zero", "min_lr = lr / 10", "min_lr = 0.0",
                                ("train_matches_reference", "train_schedule"))]),
    Mistake("train.cosine-ends-early", "train_lm",
            believed="the cosine reaches lr / 10 at the last step",
            fix="it reaches lr / 10 at `steps`, one past the last: progress = (s - warmup_steps) / (steps - warmup_steps)",
            section="ch06-training",
            wrong=[_decode_edit("train_lm/cosine_ends_early", "/ (steps - warmup_steps)", "/ (steps - 1 - warmup_steps)",
                                ("train_matches_reference", "train_schedule"))]),
    Mistake("train.decay-everything", "train_lm",
            believed="weight decay applies to every parameter",
            fix="two parameter groups: weight_decay on the parameters with dim >= 2, 0 on the norms' weights and biases (dim < 2)",
            section="ch06-training",
            wrong=[_decode_edit("train_lm/decay_everything", 'torch.optim.AdamW([group for group in groups if group["params"]], lr=lr)',
                                "torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)",
                                ("train_matches_reference", "train_schedule"))]),
    Mistake("train.adam-l2", "train_lm",
            believed="Adam's weight_decay is the same as AdamW's",
            fix="use torch.optim.AdamW: its decay is decoupled from the gradient (Adam's adds an L2 term that Adam then rescales)",
            section="ch06-training",
            wrong=[_decode_edit("train_lm/adam_l2", "optimizer = torch.optim.AdamW(", "optimizer = torch.optim.Adam(",
                                ("train_matches_reference", "train_schedule"))]),
    Mistake("train.no-clipping", "train_lm",
            believed="the gradients need no clipping, or clipping them after the optimizer's step is as good",
            fix="clip between loss.backward() and optimizer.step(): torch.nn.utils.clip_grad_norm_(model.parameters(), clip)",
            section="ch06-training",
            wrong=[_decode_edit("train_lm/no_clipping", "loss.backward()\n        torch.nn.utils.clip_grad_norm_(parameters, clip)\n",
                                "loss.backward()\n", ("train_clipping",)),
                   _decode_edit("train_lm/clip_after_step",
                                "        torch.nn.utils.clip_grad_norm_(parameters, clip)\n        optimizer.step()\n",
                                "        optimizer.step()\n        torch.nn.utils.clip_grad_norm_(parameters, clip)\n",
                                ("train_clipping",),
                                note="clipped after the step, which then used the unclipped gradients: the same as no clipping")]),
    Mistake("train.no-zero-grad", "train_lm",
            believed="backward() replaces the previous gradients",
            fix="backward() adds to .grad: call optimizer.zero_grad() before each backward()",
            section="ch06-training",
            wrong=[_decode_edit("train_lm/no_zero_grad", "        optimizer.zero_grad(set_to_none=True)\n        loss.backward()",
                                "        loss.backward()",
                                ("train_matches_reference", "train_clipping", "train_batches"))]),
    Mistake("train.appends-tensor", "train_lm",
            believed="the list of losses can hold the loss tensors",
            fix="append loss.item() (or float(loss)), a Python float: a tensor keeps its whole graph (and every activation) alive",
            section="ch06-training",
            wrong=[_decode_edit("train_lm/appends_tensor", "losses.append(loss.item())", "losses.append(loss)",
                                ("train_visible", "train_matches_reference", "train_batches"))]),
    Mistake("train.same-batch", "train_lm",
            believed="next(iter(batches)) gives the next batch at every step",
            fix="make the iterator once, stream = iter(batches), and call next(stream) at each step",
            section="ch06-training",
            wrong=[_decode_edit("train_lm/same_batch", "idx = next(stream)", "idx = next(iter(batches))",
                                ("train_matches_reference", "train_batches"))]),
    Mistake("train.no-train-mode", "train_lm",
            believed="a model is always in training mode when training starts",
            fix="call model.train() before the loop: a model handed over after an evaluation or generate() is in eval "
                "mode, where dropout is off",
            section="ch06-training",
            wrong=[_decode_edit("train_lm/no_train_mode", "    model.train()\n    stream, losses", "    stream, losses",
                                ("train_batches",)),
                   _decode_edit("train_lm/train_mode_after_loop", "    model.train()\n" + _TRAIN_LOOP + "    return losses",
                                _TRAIN_LOOP + "    model.train()\n    return losses", ("train_batches",),
                                note="model.train() after the loop: the model is left in training mode, but it was "
                                     "trained in eval mode")]),
]


# --- probes: the inputs on which each mistake shows (the visible tests' examples, and the cases that tell them apart) --


def _decode_gen(seed):
    return torch.Generator().manual_seed(seed)


_DECODE_TIED = torch.tensor([[0.5, 0.2, 0.2, 0.1], [0.4, 0.3, 0.2, 0.1]], dtype=torch.float64).log()   # a tie at top-k/top-p
_DECODE_RANDOM = 1.5 * torch.randn(3, 8, generator=_decode_gen(61), dtype=torch.float64)
_DECODE_GRID = torch.randint(-4, 4, (3, 9), generator=_decode_gen(62)).double() / 2          # ties for temperature 0
_DECODE_ORDER = torch.tensor([[3.0, 2.0, 1.0, 0.0, 0.0], [0.0, 2.5, 2.0, -1.0, 1.0]], dtype=torch.float64)   # top-p after top-k
_DECODE_HALF = (100 + 0.7 * torch.randn(2, 6, generator=_decode_gen(63))).half()


class _DecodeProbeLM(nn.Module):
    """The probes' model, with TinyLM's interface: each layer attends over every position seen so far (keys and values
    in its cache), positions are embedded; each call is recorded (shape of idx, cache lengths, training, grad mode)."""

    def __init__(self, vocab_size=9, d=6, num_layers=2, seed=64, fail_at_call=None):
        super().__init__()
        generator = _decode_gen(seed)
        self.embed, self.position = nn.Embedding(vocab_size, d), nn.Embedding(32, d)
        self.layers = nn.ModuleList(nn.Linear(d, 2 * d, bias=False) for _ in range(num_layers))
        self.head = nn.Linear(d, vocab_size, bias=False)
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.8)
            self.head.weight.mul_(0.3)
        self.double()
        self.calls, self.fail_at_call = [], fail_at_call

    def forward(self, idx, caches=None):
        self.calls.append((tuple(idx.shape), None if caches is None else tuple(len(c) for c in caches), self.training,
                           torch.is_grad_enabled()))
        if self.fail_at_call == len(self.calls):
            raise RuntimeError("the probe's model fails on purpose")
        n = 0 if caches is None else len(caches[0])
        t = idx.size(1)
        x = self.embed(idx) + self.position(torch.arange(n, n + t))
        allowed = torch.ones(t, n + t, dtype=torch.bool).tril(diagonal=n)
        for i, layer in enumerate(self.layers):
            k, v = layer(x).unsqueeze(1).chunk(2, dim=-1)
            if caches is not None:
                k, v = caches[i].update(k, v)
            scores = (x.unsqueeze(1) @ k.mT / math.sqrt(x.size(-1))).masked_fill(~allowed, -math.inf)
            x = x + (torch.softmax(scores, dim=-1) @ v).squeeze(1)
        return self.head(x)


def _decode_generate_probe(use_cache=True, temperature=1.0, training=True, fail_at_call=None, **kwargs):
    """A probe: generate on the probes' model (seeded prompt and generator): the tokens (or what it raised), the calls
    the model got, its training mode after, and the generator's state after."""
    def probe(names):
        model = _DecodeProbeLM(fail_at_call=fail_at_call).train(training)
        prompt = torch.randint(0, 9, (2, 3), generator=_decode_gen(65))
        generator = _decode_gen(66)
        try:
            with torch.enable_grad(), _decode_seeded(70):   # the global generator too: a mistake that ignores `generator`
                tokens = names["generate"](model, prompt, 4, temperature=temperature, generator=generator,
                                           use_cache=use_cache, **kwargs)
        except Exception as error:     # the training mode after an error is what this probe is about
            if fail_at_call is None:
                raise
            tokens = type(error).__name__ == "RuntimeError" or getattr(error, "kind", "") == "RuntimeError"
        return tokens, tuple(model.calls), model.training, generator.get_state()
    probe.__qualname__ = f"generate_probe(use_cache={use_cache}, temperature={temperature}, training={training})"
    return probe


class _DecodeTrainLM(nn.Module):
    """The probes' model for train_lm: embedding, a 1-D norm weight, a linear layer with a bias, a head, and a matrix and
    a bias whose gradient is 0 (weight decay alone moves them)."""

    def __init__(self, seed=67):
        super().__init__()
        generator = _decode_gen(seed)
        self.embed, self.norm_weight = nn.Embedding(7, 6), nn.Parameter(torch.ones(6))
        self.mix, self.head = nn.Linear(6, 6), nn.Linear(6, 7)
        self.ghost_matrix, self.ghost_bias = nn.Parameter(torch.zeros(2, 3)), nn.Parameter(torch.zeros(4))
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5 + (parameter.dim() < 2))
        self.double()
        self.modes = []   # model.training at each call

    def forward(self, idx):
        self.modes.append(self.training)
        x = self.embed(idx) * self.norm_weight
        x = x + torch.tanh(self.mix(x.cumsum(1) / torch.arange(1, idx.size(1) + 1, dtype=x.dtype)[:, None]))
        return self.head(x) + 0 * (self.ghost_matrix.sum() + self.ghost_bias.sum())


def _decode_train_probe(steps, warmup_steps, clip, lr=5e-2, weight_decay=0.5, training=True):
    """A probe: train_lm on the probes' model and batches (the model in eval mode unless `training`): the losses it
    returns, every weight after, and the model's mode at each of its calls."""
    def probe(names):
        model = _DecodeTrainLM().train(training)
        generator = _decode_gen(68)
        batches = [torch.randint(0, 7, (2, 5), generator=generator) for _ in range(steps + 3)]
        losses = names["train_lm"](model, batches, steps, lr=lr, warmup_steps=warmup_steps, weight_decay=weight_decay,
                                   clip=clip)
        return losses, {name: p.detach().clone() for name, p in model.named_parameters()}, tuple(model.modes)
    probe.__qualname__ = f"train_probe(steps={steps}, warmup_steps={warmup_steps}, clip={clip}, training={training})"
    return probe


_DECODE_LOSS_LOGITS = torch.randn(2, 5, 4, generator=_decode_gen(69), dtype=torch.float64)
_DECODE_LOSS_IDX = torch.tensor([[0, 2, 0, 1, 3], [3, 0, 0, 2, 1]])

PROBES |= {
    "next_token_probs": [
        _decode_calls("next_token_probs", _DECODE_RANDOM),
        _decode_calls("next_token_probs", _DECODE_RANDOM, temperature=0.5),
        _decode_calls("next_token_probs", _DECODE_GRID, temperature=0),
        _decode_calls("next_token_probs", torch.tensor([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0]]), temperature=0),
        _decode_calls("next_token_probs", _DECODE_TIED, top_k=2),
        _decode_calls("next_token_probs", _DECODE_TIED, top_p=0.55),
        _decode_calls("next_token_probs", _DECODE_ORDER, top_k=2, top_p=0.7),
        _decode_calls("next_token_probs", _DECODE_HALF, temperature=0.3),
        _decode_refuses("next_token_probs", "ValueError", (_DECODE_TIED, -1.0), (_DECODE_TIED, 1.0, 0),
                        (_DECODE_TIED, 1.0, None, 1.5), (_DECODE_TIED, 0, 0), (_DECODE_TIED, 0, None, 0.0)),
    ],
    "generate": [
        _decode_generate_probe(),
        _decode_generate_probe(use_cache=False),
        _decode_generate_probe(temperature=0),
        _decode_generate_probe(training=False),
        _decode_generate_probe(fail_at_call=2),
    ],
    "lm_loss": [
        _decode_calls("lm_loss", _DECODE_LOSS_LOGITS, _DECODE_LOSS_IDX),
        _decode_calls("lm_loss", _DECODE_LOSS_LOGITS.half(), _DECODE_LOSS_IDX),
        _decode_gradients("lm_loss", _DECODE_LOSS_LOGITS, _DECODE_LOSS_IDX),
    ],
    "train_lm": [
        _decode_train_probe(8, 3, 0.05),
        _decode_train_probe(6, 0, 1.0),
        _decode_train_probe(3, 1, 1.0, training=False),
    ],
}
