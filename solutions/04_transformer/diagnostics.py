"""Diagnostics of 04_transformer: the checks behind the tensor-aware feedback, and the misconceptions they name.

Read by the grader (autograder/diagnose.py explains the protocol) and run in the grader's own process,
after the tests: each class of the student's is a proxy (autograder/remote.py), and a module built from it
stays in the kernel, seen here as a ModuleProxy (its parameters mirrored, by attribute path). Never released.

Every check builds the student's module on tiny fixed examples. The blocks are built, as in the hidden
tests, while `MultiHeadAttention` and `PositionWiseFFN` are reference classes of this file (graded in
isolation): the grader builds and runs them for the student's code, and the attention records what it
receives, so that the wiring of a block (which tensor goes where, which mask, in which order) can be read
off directly. The expected values come from the formulas written here with torch's functional operators.
The facts (largest error, shape) are those of the small examples of the visible tests: the FFN by hand, and
the blocks with stand-in sub-layers that return fixed vectors (here: the reference sub-layers with their
output projection set to 0 and its bias to that vector).
"""
import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from autograder.probes import Raised, attempt, describe, same, swapped
from autograder.remote import KernelGone, ModuleProxy, OutOfTime

_FFN = "ch04-ffn"
_RESIDUAL = "ch04-residual"
_NORM = "ch04-layer-norm"
_BLOCK = "ch04-block"
_DECODER = "ch04-decoder"


# ---------------------------------------------------------------------------------------------------
# References


def _masked_softmax(scores, mask):
    if mask is None:
        return torch.softmax(scores, dim=-1)
    allowed = torch.broadcast_to(mask, scores.shape)
    some = allowed.any(dim=-1, keepdim=True)
    return torch.softmax(scores.masked_fill(~(allowed | ~some), float("-inf")), dim=-1) * some


_CALLS = []   # (module, query, key, value, mask) of every call of the reference attention, in order
_SERIALS = itertools.count(1)


class _ReferenceMHA(nn.Module):
    """Assignment 03's MultiHeadAttention, written here; it records what it receives. Its `serial` (a plain
    attribute, so the student's module in the kernel shows it too) tells which of the student's sub-layers
    a recorded call came from."""

    def __init__(self, d_model, num_heads, bias=True):
        super().__init__()
        self.built_with, self.num_heads, self.serial = (d_model, num_heads), num_heads, next(_SERIALS)
        self.W_q, self.W_k, self.W_v, self.W_o = [nn.Linear(d_model, d_model, bias=bias) for _ in "qkvo"]

    def forward(self, query, key, value, mask=None):
        _CALLS.append((self, query, key, value, mask))
        B, T_q, D = query.shape
        split = lambda t: t.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)            # (B, H, T, d)
        q, k, v = split(self.W_q(query)), split(self.W_k(key)), split(self.W_v(value))
        weights = _masked_softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), mask)
        return self.W_o((weights @ v).transpose(1, 2).reshape(B, T_q, D)), weights


class _ReferenceFFN(nn.Module):
    def __init__(self, d_model, d_ff, dropout=0.0):
        super().__init__()
        self.built_with = (d_model, d_ff, dropout)
        self.linear1, self.dropout, self.linear2 = nn.Linear(d_model, d_ff), nn.Dropout(dropout), nn.Linear(d_ff, d_model)

    def forward(self, x):
        return self.linear2(self.dropout(torch.relu(self.linear1(x))))


_LIMITS = (KernelGone, OutOfTime)   # the grader's limits: never the student's mistake, never caught here


def _build(namespace, name, *args, **kwargs):
    """The student's module, built after a fixed seed, with the reference sub-layers (the global RNG is restored)."""
    cls = namespace.get(name)
    references = {"MultiHeadAttention": _ReferenceMHA}
    if name != "PositionWiseFFN":
        references["PositionWiseFFN"] = _ReferenceFFN
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(4)
        with swapped(namespace, references):
            module = attempt(cls, *args, **kwargs)
    if not isinstance(module, ModuleProxy):   # a module of the student's stays in the kernel
        raise Raised("TypeError")
    return module


def _is_module(module):
    """Whether an attribute of the student's module is a module (a view of a submodule in the kernel)."""
    return isinstance(module, ModuleProxy)


def _run(module, *args, train=False, ffn_train=None, **kwargs):
    """module(*args) in evaluation (or training) mode, without gradients; the result, or Raised."""
    _CALLS.clear()
    try:
        module.train(train)                    # sent to the kernel: the student's module and its sub-layers
        if ffn_train is not None and _is_module(getattr(module, "ffn", None)):
            module.ffn.train(ffn_train)
    except _LIMITS:
        raise
    except Exception:
        raise Raised("Exception") from None
    with torch.no_grad():
        return attempt(module, *args, **kwargs)


def _get(module, path):
    for part in path.split("."):
        module = getattr(module, part, None)
    return module


def _block_params(names, D, d_ff, seed):
    """Random parameters under this file's names: LayerNorms near (1, 0), so that two of them differ."""
    generator = torch.Generator().manual_seed(seed)
    shapes = {"W_q": (D, D), "W_k": (D, D), "W_v": (D, D), "W_o": (D, D), "linear1": (d_ff, D), "linear2": (D, d_ff)}
    params = {}
    for name in names:
        layer, kind = name.rsplit(".", 1)[0].split(".")[-1], name.rsplit(".", 1)[1]
        if layer.startswith("norm"):
            noise = torch.randn(D, generator=generator, dtype=torch.float64)
            params[name] = 1 + 0.3 * noise if kind == "weight" else 0.3 * noise
        else:
            shape = shapes[layer] if kind == "weight" else shapes[layer][:1]
            params[name] = torch.randn(shape, generator=generator, dtype=torch.float64) / math.sqrt(shapes[layer][1])
    return params


def _load(module, params):
    """Copy the parameters into the student's module where a parameter of that name and shape exists (into
    the mirror of its parameters, which the next call sends to the kernel)."""
    with torch.no_grad():
        for name, value in params.items():
            target = _get(module, name)
            if isinstance(target, torch.Tensor) and target.shape == value.shape:
                target.copy_(value)


def _mha(p, name, query, key, value, mask, H):
    proj = lambda x, w: F.linear(x, p[f"{name}.{w}.weight"], p[f"{name}.{w}.bias"])
    B, T_q, D = query.shape
    split = lambda t: t.unflatten(-1, (H, D // H)).transpose(1, 2)
    q, k, v = split(proj(query, "W_q")), split(proj(key, "W_k")), split(proj(value, "W_v"))
    weights = _masked_softmax(q @ k.transpose(-2, -1) / math.sqrt(D // H), mask)
    return proj((weights @ v).transpose(1, 2).reshape(B, T_q, D), "W_o")


def _ffn(p, h, prefix="ffn."):
    return F.linear(torch.relu(F.linear(h, p[prefix + "linear1.weight"], p[prefix + "linear1.bias"])),
                    p[prefix + "linear2.weight"], p[prefix + "linear2.bias"])


def _ln(p, name, h):
    return F.layer_norm(h, h.shape[-1:], p[name + ".weight"], p[name + ".bias"])


def _plain_ln(h):
    return F.layer_norm(h, h.shape[-1:])


def _fact_of(outcome, expected):
    """describe() of an outcome of _run (a value or a Raised)."""
    if isinstance(outcome, Raised):
        return {"raised": outcome.name}
    return describe(outcome, expected)


def _safely(find, namespace):
    """The misconceptions that find() names; none if the student's code does something unforeseen."""
    try:
        return find(namespace)
    except _LIMITS:
        raise
    except Exception:
        return []


def _attempted(run):
    try:
        return run()
    except Raised as error:
        return error


# ---------------------------------------------------------------------------------------------------
# PositionWiseFFN


def _ffn_visible(namespace):
    """The visible tests' example by hand: D = 2, d_ff = 3, x = (2, -3)."""
    W1, b1 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), torch.tensor([0.0, 0.0, -1.0])
    W2, b2 = torch.tensor([[1.0, 1.0, 1.0], [1.0, -1.0, 2.0]]), torch.tensor([0.5, 0.0])
    x = torch.tensor([2.0, -3.0])
    expected = F.linear(torch.relu(F.linear(x, W1, b1)), W2, b2)
    try:
        ffn = _build(namespace, "PositionWiseFFN", 2, 3)
        _load(ffn, {"linear1.weight": W1, "linear1.bias": b1, "linear2.weight": W2, "linear2.bias": b2})
        return _fact_of(_attempted(lambda: _run(ffn, x)), expected)
    except Raised as error:
        return {"raised": error.name}


def check_ffn(namespace):
    facts = _ffn_visible(namespace)
    facts["subject"] = "output"
    if facts.get("raised"):
        return facts
    found = _safely(_ffn_misconceptions, namespace)
    if found:
        facts["misconceptions"] = found[:1]
    return facts


def _linears(ffn):
    return _get(ffn, "linear1"), _get(ffn, "linear2")


def _ffn_misconceptions(namespace):
    D, d_ff = 4, 6
    try:
        ffn = _build(namespace, "PositionWiseFFN", D, d_ff).double()
    except _LIMITS:
        raise
    except Exception:
        return []
    first, second = _linears(ffn)
    if isinstance(first, nn.Linear) and isinstance(second, nn.Linear):
        if first.out_features != d_ff or second.in_features != d_ff:
            return ["ffn.hidden-width"]
        if first.bias is None or second.bias is None:
            return ["ffn.no-bias"]
    generator = torch.Generator().manual_seed(41)
    p = {"linear1.weight": torch.randn(d_ff, D, generator=generator, dtype=torch.float64),
         "linear1.bias": torch.randn(d_ff, generator=generator, dtype=torch.float64),
         "linear2.weight": torch.randn(D, d_ff, generator=generator, dtype=torch.float64),
         "linear2.bias": torch.randn(D, generator=generator, dtype=torch.float64)}
    _load(ffn, p)
    x = torch.randn(2, 3, D, generator=generator, dtype=torch.float64)
    try:
        out = _run(ffn, x)
    except Raised:
        return []
    pre = F.linear(x, p["linear1.weight"], p["linear1.bias"])
    after = lambda hidden: F.linear(hidden, p["linear2.weight"], p["linear2.bias"])
    if not same(out, after(torch.relu(pre))):
        for name, model in [("ffn.no-activation", after(pre)), ("ffn.gelu", after(F.gelu(pre))),
                            ("ffn.relu-on-output", torch.relu(after(torch.relu(pre))))]:
            if same(out, model):
                return [name]
        return []
    return _ffn_dropout(namespace) or (["ffn.python-loop"] if _loops(namespace, "PositionWiseFFN", (D, d_ff), 1) else [])


def _loops(namespace, name, built_with, inputs):
    """Whether the student's module runs more lines of Python (counted in the kernel, after a first call) for
    5 sequences of 7 positions than for 1 sequence of 1 position: a loop over the batch or the positions.
    `inputs`: how many (B, T, D) tensors its forward takes (x, or x and the memory)."""
    generator = torch.Generator().manual_seed(44)
    D = built_with[0]
    small = tuple(torch.randn(1, 1, D, generator=generator, dtype=torch.float64) for _ in range(inputs))
    large = tuple(torch.randn(5, 7, D, generator=generator, dtype=torch.float64) for _ in range(inputs))
    try:
        module = _build(namespace, name, *built_with).double()
        module.eval()
        few, many = module.lines(small, large)
    except _LIMITS:
        raise
    except Exception:
        return False
    return many > few + 2


def _ffn_dropout(namespace):
    """Dropout, on a FFN with d_ff = 3 < D = 4 and positive hidden activations: the hidden layer after dropout
    can be read back from the output (least squares through W_2), so the kept activations' scale shows."""
    D, d_ff = 4, 3
    generator = torch.Generator().manual_seed(42)
    p = {"linear1.weight": torch.randn(d_ff, D, generator=generator, dtype=torch.float64) * 0.3,
         "linear1.bias": torch.full((d_ff,), 3.0, dtype=torch.float64),
         "linear2.weight": torch.randn(D, d_ff, generator=generator, dtype=torch.float64),
         "linear2.bias": torch.randn(D, generator=generator, dtype=torch.float64)}
    x = torch.randn(64, D, generator=generator, dtype=torch.float64)
    hidden = torch.relu(F.linear(x, p["linear1.weight"], p["linear1.bias"]))          # all positive
    plain = F.linear(hidden, p["linear2.weight"], p["linear2.bias"])
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(43)
            ffn = _build(namespace, "PositionWiseFFN", D, d_ff, 0.5).double()
            _load(ffn, p)
            if not same(_run(ffn, x), plain):
                return ["ffn.dropout-in-eval"]
            ffn = _build(namespace, "PositionWiseFFN", D, d_ff, 1.0).double()
            _load(ffn, p)
            out = _run(ffn, x, train=True)
            if not same(out, p["linear2.bias"].expand_as(plain)):
                if same(out, plain):
                    return ["ffn.dropout-unused"]
                on_input = F.linear(torch.relu(p["linear1.bias"]), p["linear2.weight"], p["linear2.bias"])
                if same(out, torch.zeros_like(plain)) or same(out, on_input.expand_as(plain)):
                    return ["ffn.dropout-misplaced"]
                return []
            ffn = _build(namespace, "PositionWiseFFN", D, d_ff, 0.5).double()
            _load(ffn, p)
            out = _run(ffn, x, train=True)
    except Raised:
        return []
    if not isinstance(out, torch.Tensor) or out.shape != plain.shape:
        return []
    recovered = torch.linalg.lstsq(p["linear2.weight"], (out.detach().double() - p["linear2.bias"]).T).solution.T
    ratio = recovered / hidden                                                         # 0 or 1 / (1 - p) = 2
    dropped, kept_unscaled = (ratio.abs() < 1e-6), ((ratio - 1).abs() < 1e-6)
    if bool(dropped.any()) and bool(kept_unscaled.any()) and bool((dropped | kept_unscaled).all()):
        return ["ffn.dropout-not-rescaled"]
    return []


# ---------------------------------------------------------------------------------------------------
# The blocks: shared pieces

_D, _H, _D_FF = 4, 2, 6
_ENC_NAMES = [f"self_attn.{w}.{k}" for w in ("W_q", "W_k", "W_v", "W_o") for k in ("weight", "bias")] + \
             [f"ffn.{w}.{k}" for w in ("linear1", "linear2") for k in ("weight", "bias")] + \
             [f"{n}.{k}" for n in ("norm1", "norm2") for k in ("weight", "bias")]
_DEC_NAMES = _ENC_NAMES + [name.replace("self_attn", "cross_attn") for name in _ENC_NAMES[:8]] + \
             ["norm3.weight", "norm3.bias"]


def _calls_of(attention):
    """The recorded calls of the reference attention that `attention` (the student's sub-layer) stands for."""
    serial = getattr(attention, "serial", None)
    return [call for call in _CALLS if serial is not None and call[0].serial == serial]


def _stand_in(block, outputs):
    """Make the block's reference sub-layers return fixed vectors, as the visible tests' stand-ins do:
    {sub-layer: vector}, through the output projection (weight 0, bias the vector)."""
    params = {}
    for name, vector in outputs.items():
        projection = f"{name}.linear2" if name == "ffn" else f"{name}.W_o"
        weight = _get(block, projection + ".weight")                       # (D, D) or (D, d_ff)
        if isinstance(weight, torch.Tensor):
            params[projection + ".weight"] = torch.zeros_like(weight.detach())
        params[projection + ".bias"] = torch.tensor(vector)                 # (D,)
    _load(block, params)


def _mask_as(received, mask):
    """How a mask reached an attention: "same", "none", "inverted" or "other"."""
    if received is None:
        return "none"
    if received is mask or same(received, mask):
        return "same"
    if isinstance(received, torch.Tensor) and same(received, ~mask):
        return "inverted"
    return "other"


# ---------------------------------------------------------------------------------------------------
# TransformerEncoderBlock


def _encoder_reference(p, x, mask, norm_first, mistake=None):
    sa = lambda h: _mha(p, "self_attn", h, h, h, mask, _H)
    ffn = lambda h: _ffn(p, h)
    if norm_first:
        if mistake == "enc.pre-norm-residual-normalised":
            h = _ln(p, "norm1", x)
            h = h + sa(h)
            h2 = _ln(p, "norm2", h)
            return h2 + ffn(h2)
        if mistake == "enc.no-residual":
            return [sa(_ln(p, "norm1", x)) + ffn(_ln(p, "norm2", sa(_ln(p, "norm1", x)))),
                    ffn(_ln(p, "norm2", x + sa(_ln(p, "norm1", x))))]
        h = x + sa(_ln(p, "norm1", x))
        return h + ffn(_ln(p, "norm2", h))
    if mistake == "enc.norm-before-residual":
        h = x + _ln(p, "norm1", sa(x))
        return h + _ln(p, "norm2", ffn(h))
    if mistake == "enc.no-residual":
        h = _ln(p, "norm1", x + sa(x))
        without = _ln(p, "norm1", sa(x))
        return [_ln(p, "norm2", without + ffn(without)), _ln(p, "norm2", ffn(h))]
    h = _ln(p, "norm1", x + sa(x))
    return _ln(p, "norm2", h + ffn(h))


def _encoder_visible(namespace):
    """The visible tests' example: the sub-layers replaced by stand-ins that return fixed vectors, one token."""
    cases = []
    for norm_first, x, attention, ffn in [(False, [1.0, -1.0, 1.0, -1.0], [6.0, 2.0, -2.0, -6.0], [-0.4, 0.8, -0.8, 0.4]),
                                          (True, [3.0, 1.0, 3.0, 1.0], [0.75, 0.75, -0.75, -0.75], [0.25, 0.25, 0.75, 0.75])]:
        x = torch.tensor([[x]])
        a, f = torch.tensor(attention), torch.tensor(ffn)
        if norm_first:
            h = x + a
            expected = h + f
        else:
            h = _plain_ln(x + a)
            expected = _plain_ln(h + f)
        try:
            block = _build(namespace, "TransformerEncoderBlock", _D, _H, 8, norm_first=norm_first)
            _stand_in(block, {"self_attn": attention, "ffn": ffn})
            outcome = _attempted(lambda: _run(block, x, torch.ones(1, 1, dtype=torch.bool)))
        except Raised as error:
            outcome = error
        except _LIMITS:
            raise
        except Exception:
            outcome = Raised("Exception")
        cases.append((outcome, expected))
    return _worst(cases)


def _worst(cases):
    """The facts of the first case that is wrong, else of the first case."""
    for outcome, expected in cases:
        if not same(outcome, expected):
            return _fact_of(outcome, expected)
    return _fact_of(*cases[0])


def check_encoder(namespace):
    facts = _encoder_visible(namespace)
    facts["subject"] = "output"
    found = _safely(_encoder_misconceptions, namespace)
    if found:
        facts["misconceptions"] = found[:1]
    return facts


def _encoder_misconceptions(namespace):
    try:
        block = _build(namespace, "TransformerEncoderBlock", _D, _H, _D_FF, dropout=0.3)
    except Raised:
        return []
    built_with = getattr(getattr(block, "ffn", None), "built_with", None)   # (d_model, d_ff, dropout) of _ReferenceFFN
    if built_with is not None:
        if built_with[1] != _D_FF:
            return ["enc.ffn-width"]
        if built_with[2] != 0.3:
            return ["enc.ffn-dropout"]
    norm1, norm2 = getattr(block, "norm1", None), getattr(block, "norm2", None)
    if _is_module(norm1) and norm1 is norm2:   # one module of the kernel under two names: one view
        return ["enc.shared-layernorm"]
    p = _block_params(_ENC_NAMES, _D, _D_FF, 51)
    generator = torch.Generator().manual_seed(52)
    x = torch.randn(2, 3, _D, generator=generator, dtype=torch.float64)
    mask = torch.ones(3, 3, dtype=torch.bool).tril()
    for norm_first in (False, True):
        try:
            block = _build(namespace, "TransformerEncoderBlock", _D, _H, _D_FF, norm_first=norm_first).double()
            _load(block, p)
            out = _attempted(lambda: _run(block, x, mask))
        except Raised:
            return []
        calls = _calls_of(getattr(block, "self_attn", None))
        if calls:
            received = _mask_as(calls[0][4], mask)
            if received == "none":
                return ["enc.mask-ignored"]
            if received == "inverted":
                return ["enc.mask-inverted"]
        if same(out, _encoder_reference(p, x, mask, norm_first)):
            continue
        mistakes = ["enc.no-residual"] + (["enc.pre-norm-residual-normalised"] if norm_first else
                                          ["enc.norm-before-residual"])
        for mistake in mistakes:
            models = _encoder_reference(p, x, mask, norm_first, mistake)
            if any(same(out, model) for model in (models if isinstance(models, list) else [models])):
                return [mistake]
        if norm_first and same(out, _encoder_reference(p, x, mask, False)):
            return ["enc.norm-first-ignored"]
        return []
    return _block_dropout(namespace, "TransformerEncoderBlock", "enc", p, (x, mask),
                          lambda norm_first: x if norm_first else _ln(p, "norm2", _ln(p, "norm1", x)),
                          lambda: _encoder_reference(p, x, mask, False), "norm2") or \
        (["enc.python-loop"] if _loops(namespace, "TransformerEncoderBlock", (_D, _H, _D_FF), 1) else [])


def _block_dropout(namespace, name, prefix, p, args, dropped, reference, last_norm):
    """Dropout: a no-op in evaluation mode; with p = 1 in training mode only the residual path is left."""
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(53)
            block = _build(namespace, name, _D, _H, _D_FF, dropout=0.5).double()
            _load(block, p)
            if not same(_run(block, *args), reference()):
                return [f"{prefix}.dropout-in-eval"]
            if prefix != "enc":
                return []
            for norm_first in (False, True):
                block = _build(namespace, name, _D, _H, _D_FF, dropout=1.0, norm_first=norm_first).double()
                _load(block, p)
                out = _run(block, *args, train=True, ffn_train=False)   # the FFN's own dropout off
                if same(out, dropped(norm_first)):
                    continue
                if same(out, _run(block, *args)):
                    return [f"{prefix}.no-dropout"]
                if same(out, p[last_norm + ".bias"].expand_as(args[0])):
                    return [f"{prefix}.dropout-on-sum"]
                return []
    except Raised:
        return []
    return []


# ---------------------------------------------------------------------------------------------------
# TransformerDecoderBlock


def _decoder_reference(p, x, memory, self_mask, memory_mask, norm_first, mistake=None):
    sa = lambda h: _mha(p, "self_attn", h, h, h, self_mask, _H)
    ca = lambda h: _mha(p, "cross_attn", h, memory, memory, memory_mask, _H)
    ffn = lambda h: _ffn(p, h)
    if norm_first:
        h1 = x + sa(_ln(p, "norm1", x))
        h2 = h1 + ca(_ln(p, "norm2", h1))
        return h2 + ffn(_ln(p, "norm3", h2))
    if mistake == "dec.norm-before-residual":
        h1 = x + _ln(p, "norm1", sa(x))
        h2 = h1 + _ln(p, "norm2", ca(h1))
        return h2 + _ln(p, "norm3", ffn(h2))
    h1 = _ln(p, "norm1", x + sa(x))
    h2 = _ln(p, "norm2", (0 if mistake == "dec.no-residual" else h1) + ca(h1))
    return _ln(p, "norm3", h2 + ffn(h2))


def _decoder_visible(namespace):
    """The visible tests' example: stand-in sub-layers, one target token, two memory positions."""
    memory = torch.tensor([[[0.5, 1.5, 2.5, 3.5], [4.0, -4.0, 2.0, 0.0]]])
    cases = []
    for norm_first, x, sa, ca, ffn in [
            (False, [1.0, -1.0, 1.0, -1.0], [6.0, 2.0, -2.0, -6.0], [-0.4, 0.8, -0.8, 0.4], [0.0, -2.0, 2.0, 0.0]),
            (True, [3.0, 1.0, 3.0, 1.0], [0.75, 0.75, -0.75, -0.75], [-1.5, -1.5, 1.5, 1.5], [0.75, 0.75, 0.25, 0.25])]:
        x = torch.tensor([[x]])
        s, c, f = torch.tensor(sa), torch.tensor(ca), torch.tensor(ffn)
        if norm_first:
            expected = x + s + c + f
        else:
            expected = _plain_ln(_plain_ln(_plain_ln(x + s) + c) + f)
        try:
            block = _build(namespace, "TransformerDecoderBlock", _D, _H, 8, norm_first=norm_first)
            _stand_in(block, {"self_attn": sa, "cross_attn": ca, "ffn": ffn})
            masks = (torch.ones(1, 1, dtype=torch.bool), torch.tensor([[False, True]])) if not norm_first else ()
            outcome = _attempted(lambda: _run(block, x, memory, *masks))
        except Raised as error:
            outcome = error
        except _LIMITS:
            raise
        except Exception:
            outcome = Raised("Exception")
        cases.append((outcome, expected))
    return _worst(cases)


def check_decoder(namespace):
    facts = _decoder_visible(namespace)
    facts["subject"] = "output"
    found = _safely(_decoder_misconceptions, namespace)
    if found:
        facts["misconceptions"] = found[:1]
    return facts


def _decoder_wiring(block, x, memory, self_mask, memory_mask, p, norm_first):
    """What the two attentions received, and in which order."""
    self_attn, cross_attn = getattr(block, "self_attn", None), getattr(block, "cross_attn", None)
    serials = {getattr(self_attn, "serial", None), getattr(cross_attn, "serial", None)} - {None}
    calls = [call for call in _CALLS if call[0].serial in serials]
    if not calls:
        return []
    if calls[0][0].serial == getattr(cross_attn, "serial", None) or same(calls[0][2], memory):
        return ["dec.sublayer-order"]
    self_calls, cross_calls = _calls_of(self_attn), _calls_of(cross_attn)
    if self_calls:
        received = _mask_as(self_calls[0][4], self_mask)
        if received == "none":
            return ["dec.self-mask-ignored"]
        if _mask_as(self_calls[0][4], memory_mask) == "same":
            return ["dec.masks-swapped"]
    if cross_calls:
        _, query, key, value, mask = cross_calls[0]
        if same(query, memory):
            return ["dec.queries-from-memory"]
        if not same(key, memory):
            if norm_first and same(key, _ln(p, "norm2", memory)):
                return ["dec.memory-normalised"]
            return ["dec.kv-from-x"]
        T, S = memory_mask.shape
        causal = torch.ones(T, S, dtype=torch.bool).tril()
        if isinstance(mask, torch.Tensor) and mask.dtype == torch.bool and not same(mask, memory_mask):
            try:
                if torch.equal(torch.broadcast_to(mask, (x.shape[0], _H, T, S)),
                               torch.broadcast_to(memory_mask & causal, (x.shape[0], _H, T, S))):
                    return ["dec.causal-cross-mask"]
            except RuntimeError:
                pass
    return []


def _decoder_misconceptions(namespace):
    try:
        block = _build(namespace, "TransformerDecoderBlock", _D, _H, _D_FF)
    except Raised:
        return []
    self_attn = getattr(block, "self_attn", None)
    if _is_module(self_attn) and self_attn is getattr(block, "cross_attn", None):   # one module, one view
        return ["dec.shared-attention"]
    norms = [getattr(block, n, None) for n in ("norm1", "norm2", "norm3")]
    if all(_is_module(n) for n in norms) and len({id(n) for n in norms}) < 3:
        return ["dec.shared-layernorm"]
    p = _block_params(_DEC_NAMES, _D, _D_FF, 61)
    generator = torch.Generator().manual_seed(62)
    x = torch.randn(2, 3, _D, generator=generator, dtype=torch.float64)
    memory = torch.randn(2, 4, _D, generator=generator, dtype=torch.float64)
    self_mask = torch.ones(3, 3, dtype=torch.bool).tril()
    memory_mask = torch.ones(3, 4, dtype=torch.bool)
    memory_mask[0, 3] = memory_mask[2, 1] = False
    for norm_first in (False, True):
        try:
            block = _build(namespace, "TransformerDecoderBlock", _D, _H, _D_FF, norm_first=norm_first).double()
            _load(block, p)
            out = _attempted(lambda: _run(block, x, memory, self_mask, memory_mask))
        except Raised:
            return []
        wiring = _decoder_wiring(block, x, memory, self_mask, memory_mask, p, norm_first)
        if wiring:
            return wiring
        args = (p, x, memory, self_mask, memory_mask)
        if same(out, _decoder_reference(*args, norm_first)):
            continue
        if not norm_first:
            for mistake in ("dec.no-residual", "dec.norm-before-residual"):
                if same(out, _decoder_reference(*args, False, mistake)):
                    return [mistake]
        elif same(out, _decoder_reference(*args, False)):
            return ["dec.norm-first-ignored"]
        return []
    return _block_dropout(namespace, "TransformerDecoderBlock", "dec", p, (x, memory, self_mask, memory_mask),
                          None, lambda: _decoder_reference(p, x, memory, self_mask, memory_mask, False), "norm3") or \
        (["dec.python-loop"] if _loops(namespace, "TransformerDecoderBlock", (_D, _H, _D_FF), 2) else [])


COMPONENTS = {
    "PositionWiseFFN": check_ffn,
    "TransformerEncoderBlock": check_encoder,
    "TransformerDecoderBlock": check_decoder,
}
