"""Diagnostics of 04_transformer: the checks behind the tensor-aware feedback, and the probes on which the derived
detector (autograder/mistakes.py) compares the student's modules with each declared mistake's own code.

Read by the grader (autograder/diagnose.py explains the protocol) and run in the grader's own process,
after the tests: each class of the student's is a proxy (autograder/remote.py), and a module built from it
stays in the kernel, seen here as a ModuleProxy (its parameters mirrored, by attribute path). Never released.

The checks report the facts of the visible tests' small examples (the FFN by hand; the blocks with stand-in
sub-layers that return fixed vectors: the solution's sub-layers with their output projection set to 0 and its
bias to that vector), built, as in the hidden tests, with the solution's `MultiHeadAttention` and
`PositionWiseFFN` (graded in isolation); and the one mistake of each component that no probe can show: a
Python loop. Every other mistake is named by the detector, from the PROBES at the end of this file.
"""
import math
import zlib
from pathlib import Path

import torch
import torch.nn.functional as F

from autograder import mistakes
from autograder.probes import Raised, attempt, describe, same, swapped
from autograder.remote import KernelGone, ModuleProxy, OutOfTime

_LIMITS = (KernelGone, OutOfTime)   # the grader's limits: never the student's mistake, never caught here


def _solution(name):
    """A class of the solution notebook, run in this process (autograder/mistakes.py `namespace`)."""
    return mistakes.namespace(Path(__file__).parent)[name]


def _build(namespace, name, *args, **kwargs):
    """The student's module, built after a fixed seed with the solution's sub-layers (the global RNG is restored)."""
    references = {"MultiHeadAttention": _solution("MultiHeadAttention")}
    if name != "PositionWiseFFN":
        references["PositionWiseFFN"] = _solution("PositionWiseFFN")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(4)
        with swapped(namespace, references):
            module = attempt(namespace.get(name), *args, **kwargs)
    if not isinstance(module, ModuleProxy):   # a module of the student's stays in the kernel
        raise Raised("TypeError")
    return module


def _run(module, *args):
    """module(*args) in evaluation mode, without gradients; the result, or Raised."""
    try:
        module.eval()                          # sent to the kernel: the student's module and its sub-layers
    except _LIMITS:
        raise
    except Exception:
        raise Raised("Exception") from None
    with torch.no_grad():
        return attempt(module, *args)


def _get(module, path):
    for part in path.split("."):
        module = getattr(module, part, None)
    return module


def _load(module, params):
    """Copy the parameters into the student's module where a parameter of that name and shape exists (into
    the mirror of its parameters, which the next call sends to the kernel)."""
    with torch.no_grad():
        for name, value in params.items():
            target = _get(module, name)
            if isinstance(target, torch.Tensor) and target.shape == value.shape:
                target.copy_(value)


def _fact_of(outcome, expected):
    """describe() of an outcome of _run (a value or a Raised)."""
    if isinstance(outcome, Raised):
        return {"raised": outcome.name}
    return describe(outcome, expected)


def _worst(cases):
    """The facts of the first case that is wrong, else of the first case."""
    for outcome, expected in cases:
        if not same(outcome, expected):
            return _fact_of(outcome, expected)
    return _fact_of(*cases[0])


def _visible_block(namespace, name, cases, *extra):
    """The facts of the visible tests' block examples: [(norm_first, x, {sub-layer: fixed vector}, expected,
    masks)], each run with stand-in sub-layers (the output projection's weight 0 and its bias the vector)."""
    found = []
    for norm_first, x, outputs, expected, masks in cases:
        try:
            block = _build(namespace, name, 4, 2, 8, norm_first=norm_first)
            params = {}
            for layer, vector in outputs.items():
                projection = f"{layer}.linear2" if layer == "ffn" else f"{layer}.W_o"
                weight = _get(block, projection + ".weight")
                if isinstance(weight, torch.Tensor):
                    params[projection + ".weight"] = torch.zeros_like(weight.detach())
                params[projection + ".bias"] = torch.tensor(vector)
            _load(block, params)
            outcome = _run(block, torch.tensor([[x]]), *extra, *masks)
        except Raised as error:
            outcome = error
        except _LIMITS:
            raise
        except Exception:
            outcome = Raised("Exception")
        found.append((outcome, expected))
    facts = _worst(found)
    facts["subject"] = "output"
    return facts


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


def _with_loops(facts, namespace, name, built_with, inputs, mistake):
    """The facts, with the loop named when the visible example is right (only then is a loop worth naming)."""
    right = not facts.get("raised") and facts.get("shape") == facts.get("expected_shape") and \
        facts.get("max_error", 1.0) <= 1e-4
    if right and _loops(namespace, name, built_with, inputs):
        facts["misconceptions"] = [mistake]
    return facts


# ---------------------------------------------------------------------------------------------------
# The checks


def check_ffn(namespace):
    """The visible tests' example by hand: D = 2, d_ff = 3, x = (2, -3)."""
    W1, b1 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), torch.tensor([0.0, 0.0, -1.0])
    W2, b2 = torch.tensor([[1.0, 1.0, 1.0], [1.0, -1.0, 2.0]]), torch.tensor([0.5, 0.0])
    x = torch.tensor([2.0, -3.0])
    expected = F.linear(torch.relu(F.linear(x, W1, b1)), W2, b2)
    try:
        ffn = _build(namespace, "PositionWiseFFN", 2, 3)
        _load(ffn, {"linear1.weight": W1, "linear1.bias": b1, "linear2.weight": W2, "linear2.bias": b2})
        facts = _fact_of(_run(ffn, x), expected)
    except Raised as error:
        return {"raised": error.name, "subject": "output"}
    facts["subject"] = "output"
    return _with_loops(facts, namespace, "PositionWiseFFN", (4, 6), 1, "ffn.python-loop")


def _plain_ln(h):
    return F.layer_norm(h, h.shape[-1:])


def check_encoder(namespace):
    """The visible tests' example: the sub-layers replaced by stand-ins that return fixed vectors, one token."""
    x, sa, ffn = [1.0, -1.0, 1.0, -1.0], [6.0, 2.0, -2.0, -6.0], [-0.4, 0.8, -0.8, 0.4]
    x2, sa2, ffn2 = [3.0, 1.0, 3.0, 1.0], [0.75, 0.75, -0.75, -0.75], [0.25, 0.25, 0.75, 0.75]
    t, one = torch.tensor, (torch.ones(1, 1, dtype=torch.bool),)
    facts = _visible_block(namespace, "TransformerEncoderBlock", [
        (False, x, {"self_attn": sa, "ffn": ffn}, _plain_ln(_plain_ln(t([[x]]) + t(sa)) + t(ffn)), one),
        (True, x2, {"self_attn": sa2, "ffn": ffn2}, t([[x2]]) + t(sa2) + t(ffn2), one)])
    return _with_loops(facts, namespace, "TransformerEncoderBlock", (4, 2, 6), 1, "enc.python-loop")


def check_decoder(namespace):
    """The visible tests' example: stand-in sub-layers, one target token, two memory positions."""
    memory = torch.tensor([[[0.5, 1.5, 2.5, 3.5], [4.0, -4.0, 2.0, 0.0]]])
    x, sa, ca, ffn = [1.0, -1.0, 1.0, -1.0], [6.0, 2.0, -2.0, -6.0], [-0.4, 0.8, -0.8, 0.4], [0.0, -2.0, 2.0, 0.0]
    x2, sa2, ca2, ffn2 = [3.0, 1.0, 3.0, 1.0], [0.75, 0.75, -0.75, -0.75], [-1.5, -1.5, 1.5, 1.5], [0.75, 0.75, 0.25, 0.25]
    t, masks = torch.tensor, (torch.ones(1, 1, dtype=torch.bool), torch.tensor([[False, True]]))
    facts = _visible_block(namespace, "TransformerDecoderBlock", [
        (False, x, {"self_attn": sa, "cross_attn": ca, "ffn": ffn},
         _plain_ln(_plain_ln(_plain_ln(t([[x]]) + t(sa)) + t(ca)) + t(ffn)), masks),
        (True, x2, {"self_attn": sa2, "cross_attn": ca2, "ffn": ffn2}, t([[x2]]) + t(sa2) + t(ca2) + t(ffn2), ())],
        memory)
    return _with_loops(facts, namespace, "TransformerDecoderBlock", (4, 2, 6), 2, "dec.python-loop")


COMPONENTS = {
    "PositionWiseFFN": check_ffn,
    "TransformerEncoderBlock": check_encoder,
    "TransformerDecoderBlock": check_decoder,
}


# ---------------------------------------------------------------------------------------------------
# Probes: what the derived detector compares between the student's module and each mistake's own. Each builds
# the module (the student's parameters are copied into the mistake's), sets every parameter to a value fixed by
# its name and shape (`_parameters`: random, or a structure where given), and runs it on fixed inputs, in
# evaluation or training mode, after a fixed seed (the global generator travels with each call to the kernel, so
# that dropout draws the same masks there as here).
#
# A mistake written two ways (ffn.dropout-misplaced, enc.no-residual) is named for both only where every probe
# that shows the first way gives the same for the second: the FFN's dropout is probed through an FFN that is the
# identity (dropping its input or its output is then one thing), and the encoder's residuals through sub-layers
# whose attention returns 0 and whose FFN returns a fixed vector (then a block without either residual returns
# the same), its masks through which positions each output depends on.


def _random(name, shape):
    """A value fixed by the parameter's name and shape: LayerNorms near (1, 0), other weights ~ 1 / sqrt(fan-in)."""
    generator = torch.Generator().manual_seed(zlib.crc32(f"{name}{tuple(shape)}".encode()))
    noise = torch.randn(shape, generator=generator)
    if ".norm" in f".{name}":
        return (1 + 0.3 * noise) if name.endswith("weight") else 0.3 * noise
    return noise / math.sqrt(shape[-1]) if len(shape) > 1 else 0.3 * noise


def _parameters(module, given=None):
    """Set every parameter of the module (the student's mirror, or the mistake's own) to given(name, shape), or
    to _random where that gives None."""
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            value = given(name, tuple(parameter.shape)) if given is not None else None
            parameter.copy_(_random(name, parameter.shape) if value is None else value)


def _runs(name, init, *args, train=False, given=None, seed=0, then=None, **kwargs):
    """A probe: names[name](*init, **kwargs) with _parameters(given), in training or evaluation mode, called on
    copies of args after torch.manual_seed(seed) (its result, or then(module, args) instead)."""
    def probe(names):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = names[name](*init, **kwargs)
            module.train(train)
            _parameters(module, given)
            inputs = tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)
            with torch.no_grad():
                return then(module, inputs) if then is not None else module(*inputs)
    probe.__qualname__ = f"runs({name})"
    return probe


def _depends(module, inputs):
    """Which positions of the output depend on which positions of the first input: (T, T) booleans, from one call
    on a batch of the input with each position changed in turn (the other inputs broadcast)."""
    x, rest = inputs[0][:1], inputs[1:]
    T = x.shape[1]
    batch = x.repeat(T + 1, 1, 1)
    batch[torch.arange(1, T + 1), torch.arange(T)] += 1.0
    out = module(batch, *(r.expand(T + 1, *r.shape[1:]) if isinstance(r, torch.Tensor) and r.dim() == 3 else r
                          for r in rest))
    return ((out[1:] - out[:1]).abs().amax(-1) > 1e-6).T      # [t, s]: output t changes with input s


def _ffn_identity(name, shape):
    """An FFN that returns its input (its hidden layer is the input plus 3, kept positive: the ReLU does nothing)."""
    layer, kind = name.split(".")
    if kind == "weight":
        return torch.eye(*shape)
    return torch.full(shape, 3.0 if layer == "linear1" else -3.0)


def _quiet_attention(name, shape):
    """Sub-layers of a block that return fixed vectors: attention 0 (its output projection 0), the FFN its second
    layer's bias; the first LayerNorm's bias 0 (so that a block without a residual gives one thing, either way)."""
    if name in ("self_attn.W_o.weight", "self_attn.W_o.bias", "ffn.linear2.weight", "norm1.bias"):
        return torch.zeros(shape)
    return None


_GENERATOR = torch.Generator().manual_seed(71)
_X = torch.randn(2, 3, 4, generator=_GENERATOR)
_SMALL = (0.5 * torch.randn(2, 3, 4, generator=_GENERATOR)).clamp(-2, 2)
_MEMORY = torch.randn(2, 5, 4, generator=_GENERATOR)
_CAUSAL = torch.ones(3, 3, dtype=torch.bool).tril()
_MEMORY_MASK = torch.ones(3, 5, dtype=torch.bool)
_MEMORY_MASK[0, 4] = _MEMORY_MASK[2, 1] = _MEMORY_MASK[1, 0] = False
_SQUARE_MEMORY, _SQUARE_MASK = _MEMORY[:, :3], _MEMORY_MASK[:, :3]   # S = T: swapped masks or memory still run
_ENCODER, _DECODER = "TransformerEncoderBlock", "TransformerDecoderBlock"

PROBES = {
    "PositionWiseFFN": [
        _runs("PositionWiseFFN", (4, 6, 0.5), _X, seed=1),                                  # evaluation
        _runs("PositionWiseFFN", (4, 6, 0.5), _SMALL, train=True, given=_ffn_identity, seed=2)],
    _ENCODER: [
        _runs(_ENCODER, (4, 2, 6, 0.5), _X, _CAUSAL, given=_quiet_attention, seed=3),
        _runs(_ENCODER, (4, 2, 6, 0.5), _X, _CAUSAL, given=_quiet_attention, seed=4, norm_first=True),
        _runs(_ENCODER, (4, 2, 6, 0.5), _X, _CAUSAL, train=True, given=_quiet_attention, seed=5),
        _runs(_ENCODER, (4, 2, 6, 0.5), _X, train=True, seed=6, then=lambda block, inputs: block.ffn(*inputs)),
        _runs(_ENCODER, (4, 2, 6), _X, _CAUSAL, then=_depends)],
    _DECODER: [
        _runs(_DECODER, (4, 2, 6, 0.5), _X, _MEMORY, _CAUSAL, _MEMORY_MASK, seed=7),
        _runs(_DECODER, (4, 2, 6, 0.5), _X, _MEMORY, _CAUSAL, _MEMORY_MASK, seed=8, norm_first=True),
        _runs(_DECODER, (4, 2, 6), _X, _SQUARE_MEMORY, _CAUSAL, _SQUARE_MASK)],
}
