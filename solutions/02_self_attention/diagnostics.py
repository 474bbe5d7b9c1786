"""Diagnostics of 02_self_attention: the checks behind the tensor-aware feedback, and the misconceptions they name.

Read by the grader (autograder/diagnose.py explains the protocol) and run in the grader's process after
the tests, the student's names bound to proxies of what they defined in the kernel. Never released. Every check runs on tiny fixed examples, the ones that the notebook's visible tests show, with
the other components swapped for references written here (graded in isolation, as the tests). A check
compares the student's result with models of each mistake (the result that this mistake gives, computed
by a small reference with the mistake), then with properties (dtype, ValueError, Python loops).
"""
import math

import torch

from autograder.probes import Raised, attempt, call, describe, pair, pictures, python_loop, same, swapped
from autograder.probes import reference_masked_softmax as _reference_masked_softmax, reference_attention as _reference_attention


# ---------------------------------------------------------------------------------------------------
# Helpers


def _guarded(check):
    """A check that never raises on odd student output: what the student's code raised is reported, anything
    else unforeseen gives no facts (what the facts may hold is fitted by probes.describe and probes.finish)."""
    def run(namespace):
        try:
            return check(namespace)
        except Raised as error:
            return {"raised": error.name}
        except Exception:
            return {}
    run.__name__ = check.__name__
    return run


def _is_bool(tensor, expected):
    return isinstance(tensor, torch.Tensor) and tensor.dtype == torch.bool and bool(torch.equal(tensor, expected))


def _is_float_copy(tensor, expected):
    """A float tensor with the values 0 / 1 of the boolean `expected`."""
    return (isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and tensor.shape == expected.shape
            and bool(torch.equal(tensor, expected.to(tensor.dtype))))


def _mask_facts(theirs, expected):
    """describe() for a boolean mask, with the first wrong entry as its largest error."""
    facts = describe(theirs, expected)
    facts["subject"] = "mask"
    if isinstance(theirs, torch.Tensor) and theirs.dtype == torch.bool and theirs.shape == expected.shape:
        wrong = theirs != expected
        facts["max_error"] = float(wrong.any())
        if wrong.any():
            facts["max_error_at"] = [int(i) for i in wrong.nonzero()[0]]
    return facts


def _close(tensor, expected, atol):
    return (isinstance(tensor, torch.Tensor) and tensor.shape == expected.shape and tensor.is_floating_point()
            and bool(((tensor.detach().double() - expected).abs() <= atol).all()))


# ---------------------------------------------------------------------------------------------------
# causal_mask


def _reference_causal_mask(size, device=None):
    return torch.ones(size, size, dtype=torch.bool, device=device).tril()


@_guarded
def check_causal_mask(namespace):
    function = namespace.get("causal_mask")
    try:
        mask = attempt(function, 3)
    except Raised as error:
        return {"subject": "mask", "raised": error.name}
    facts = _mask_facts(mask, _reference_causal_mask(3))
    facts["misconceptions"] = _causal_misconceptions(function)[:1]
    return facts


def _causal_misconceptions(function):
    mask = call(function, 5)
    ones = torch.ones(5, 5, dtype=torch.bool)
    expected = ones.tril()
    models = [("causal.upper-triangle", ones.triu()), ("causal.diagonal-masked", ones.tril(-1)),
              ("causal.one-step-ahead", ones.tril(1)), ("causal.inverted", ~expected)]
    for name, model in models:
        if _is_bool(mask, model):
            return [name]
    if _is_float_copy(mask, expected):
        return ["causal.float-mask"]
    additive = torch.zeros(5, 5).masked_fill(~expected, float("-inf"))
    if isinstance(mask, torch.Tensor) and mask.is_floating_point() and mask.shape == (5, 5) \
            and bool(torch.equal(mask.float(), additive)):
        return ["causal.additive-mask"]
    if _is_bool(mask, expected) and python_loop(function, (3,), (40,)):
        return ["causal.python-loop"]
    return []


# ---------------------------------------------------------------------------------------------------
# padding_mask


def _reference_padding_mask(lengths, max_len, left=False):
    real = torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]
    return real.flip(-1) if left else real


@_guarded
def check_padding_mask(namespace):
    function = namespace.get("padding_mask")
    lengths = torch.tensor([3, 1])
    try:
        mask = attempt(function, lengths.clone(), 4)
    except Raised as error:
        return {"subject": "mask", "raised": error.name}
    facts = _mask_facts(mask, _reference_padding_mask(lengths, 4))
    if facts.get("max_error") == 0.0:                      # right padding right: show the left one
        left = call(function, lengths.clone(), 4, left=True)
        if left is not None:
            facts = _mask_facts(left, _reference_padding_mask(lengths, 4, left=True))
    facts["misconceptions"] = _padding_misconceptions(function)[:1]
    return facts


def _padding_misconceptions(function):
    lengths, max_len = torch.tensor([3, 0, 5, 1]), 6
    right = call(function, lengths.clone(), max_len)
    left = call(function, lengths.clone(), max_len, left=True)
    positions = torch.arange(max_len)[None, :]
    expected = positions < lengths[:, None]
    expected_left = positions >= (max_len - lengths)[:, None]
    models = [("padding.inverted", ~expected), ("padding.one-too-many", positions <= lengths[:, None]),
              ("padding.counts-from-one", positions + 1 < lengths[:, None]),
              ("padding.width-from-lengths", expected[:, :int(lengths.max())]), ("padding.transposed", expected.T)]
    for name, model in models:
        if _is_bool(right, model):
            return [name]
    if _is_float_copy(right, expected):
        return ["padding.float-mask"]
    if _is_bool(right, expected):
        if _is_bool(left, expected):
            return ["padding.left-ignored"]
        if _is_bool(left, positions > (max_len - lengths)[:, None]):
            return ["padding.left-off-by-one"]
        if _is_bool(left, expected_left) and (
                python_loop(function, (torch.tensor([1, 2]), 3), (torch.arange(12) % 7, 9))
                or python_loop(function, (torch.tensor([1, 2]), 3, True), (torch.arange(12) % 7, 9, True))):
            return ["padding.python-loop"]
    return []


# ---------------------------------------------------------------------------------------------------
# self_attention_mask


def _combined(lengths, max_len, causal=True, left=False, keys=True, queries=True, causal_part="tril", pad_left=None):
    """The mask of self_attention_mask, or of one of its mistakes (keys or queries not masked, ...)."""
    real = _reference_padding_mask(lengths, max_len, left=left if pad_left is None else pad_left)
    allowed = torch.ones(len(lengths), max_len, max_len, dtype=torch.bool)
    if keys:
        allowed = allowed & real[:, None, :]
    if queries:
        allowed = allowed & real[:, :, None]
    if causal_part == "tril":
        allowed = allowed & _reference_causal_mask(max_len)
    elif causal_part == "triu":
        allowed = allowed & _reference_causal_mask(max_len).T
    return allowed


@_guarded
def check_self_attention_mask(namespace):
    function = namespace.get("self_attention_mask")
    references = {"causal_mask": _reference_causal_mask, "padding_mask": _reference_padding_mask}
    with swapped(namespace, references):
        lengths = torch.tensor([3, 1])
        try:
            mask = attempt(function, lengths.clone(), 4)
        except Raised as error:
            return {"subject": "mask", "raised": error.name}
        facts = _mask_facts(mask, _combined(lengths, 4))
        for causal, left in ((False, False), (True, True), (False, True)):    # the visible tests' other cases
            if facts.get("max_error") != 0.0:
                break
            other = call(function, lengths.clone(), 4, causal=causal, left=left)
            if other is not None:
                facts = _mask_facts(other, _combined(lengths, 4, causal_part="tril" if causal else None, left=left))
        facts["misconceptions"] = _self_attention_mask_misconceptions(function)[:1]
    return facts


def _self_attention_mask_misconceptions(function):
    lengths, max_len = torch.tensor([4, 2, 0]), 5
    cases = [(causal, left) for causal in (True, False) for left in (False, True)]
    theirs = {case: call(function, lengths.clone(), max_len, causal=case[0], left=case[1]) for case in cases}

    def model(**change):
        def mask(causal, left):
            options = dict(causal_part="tril" if causal else None)
            options.update({k: v(causal, left) if callable(v) else v for k, v in change.items()})
            return _combined(lengths, max_len, left=left, **options)
        return mask

    expected = model()
    models = [
        ("sa-mask.inverted", lambda causal, left: ~expected(causal, left)),
        ("sa-mask.keys-only", model(queries=False)),
        ("sa-mask.queries-only", model(keys=False)),
        ("sa-mask.causal-ignored", model(causal_part=None)),
        ("sa-mask.always-causal", model(causal_part="tril")),
        ("sa-mask.causal-transposed", model(causal_part=lambda causal, left: "triu" if causal else None)),
        ("sa-mask.left-ignored", model(pad_left=False)),
    ]
    for name, mistake in models:
        if all(_is_bool(theirs[case], mistake(*case)) for case in cases):
            return [name]
    if all(_is_float_copy(theirs[case], expected(*case)) for case in cases):
        return ["sa-mask.float-mask"]
    if all(_is_bool(theirs[case], expected(*case)) for case in cases) and \
            python_loop(function, (torch.tensor([1, 2]), 3), (torch.arange(12) % 7, 8)):
        return ["sa-mask.python-loop"]
    return []


# ---------------------------------------------------------------------------------------------------
# sinusoidal_positional_encoding


def _encoding(max_len, d_model, layout="interleaved", frequency="pairs", base=10000.0, sign=-1.0, first="sin"):
    """Float64 sinusoidal encoding, or one of its mistakes."""
    position = torch.arange(max_len, dtype=torch.float64)[:, None]
    if frequency == "columns":                              # column j gets 10000^(-j / d_model)
        angle = position * base ** (sign * torch.arange(d_model, dtype=torch.float64) / d_model)
        return torch.where(torch.arange(d_model) % 2 == 0, angle.sin(), angle.cos())
    exponent = torch.arange(0, d_model, 2, dtype=torch.float64) / d_model
    if frequency == "half":                                 # i / d_model instead of 2i / d_model
        exponent = exponent / 2
    angle = position * base ** (sign * exponent)            # (max_len, d_model / 2)
    sin, cos = (angle.sin(), angle.cos()) if first == "sin" else (angle.cos(), angle.sin())
    if layout == "halves":
        return torch.cat((sin, cos), dim=-1)
    return torch.stack((sin, cos), dim=-1).flatten(1)


@_guarded
def check_encoding(namespace):
    function = namespace.get("sinusoidal_positional_encoding")
    try:
        encoding = attempt(function, 4, 6)
    except Raised as error:
        return {"subject": "encoding", "raised": error.name}
    facts = describe(encoding, _encoding(4, 6).float())
    facts["subject"] = "encoding"
    facts["misconceptions"] = _encoding_misconceptions(function)[:1]
    return facts


def _encoding_misconceptions(function):
    encoding = call(function, 6, 8)
    expected = _encoding(6, 8)
    if not _close(encoding, expected, 1e-5):
        models = [("pe.sin-cos-swapped", _encoding(6, 8, first="cos")), ("pe.halves", _encoding(6, 8, layout="halves")),
                  ("pe.column-frequency", _encoding(6, 8, frequency="columns")),
                  ("pe.exponent-without-2", _encoding(6, 8, frequency="half")),
                  ("pe.wrong-base", _encoding(6, 8, base=1000.0)), ("pe.multiplies", _encoding(6, 8, sign=1.0))]
        return [name for name, model in models if _close(encoding, model, 5e-3)][:1]
    found = []
    if encoding.dtype != torch.float32:
        found.append("pe.not-float32")
    try:
        attempt(function, 5, 3)
        found.append("pe.odd-width")
    except Raised as error:
        if error.name != "ValueError":
            found.append("pe.odd-width")
    if python_loop(function, (4, 8), (16, 8)):
        found.append("pe.python-loop")
    return found


# ---------------------------------------------------------------------------------------------------
# offset_matrix


def _offset(k, d_model, exponent_factor=2.0, sign=-1.0, angle_factor=None, block="rotation", layout="diagonal"):
    """Float64 M_k = diag(R_0(k), ..., R_{D/2-1}(k)), or one of its mistakes."""
    omega = 10000.0 ** (sign * exponent_factor * torch.arange(d_model // 2, dtype=torch.float64) / d_model)
    angle = (k if angle_factor is None else angle_factor) * omega
    c, s = angle.cos(), angle.sin()
    rows = {"rotation": ((c, s), (-s, c)), "transposed": ((c, -s), (s, c)), "swapped": ((s, c), (-c, s))}[block]
    if layout == "halves":
        (a, b), (e, f) = rows
        return torch.cat((torch.cat((a.diag(), b.diag()), 1), torch.cat((e.diag(), f.diag()), 1)), 0)
    blocks = torch.stack([torch.stack(row, -1) for row in rows], -2)        # (D/2, 2, 2)
    return torch.block_diag(*blocks)


@_guarded
def check_offset_matrix(namespace):
    function = namespace.get("offset_matrix")
    try:
        offset = attempt(function, 3, 4)
    except Raised as error:
        return {"subject": "matrix", "raised": error.name}
    facts = describe(offset, _offset(3, 4))
    facts["subject"] = "matrix"
    facts["misconceptions"] = _offset_misconceptions(function)[:1]
    return facts


def _offset_misconceptions(function):
    offset = call(function, 3, 6)
    if not _close(offset, _offset(3, 6), 1e-6):
        models = [("offset.transposed", _offset(3, 6, block="transposed")),
                  ("offset.exponent-without-2", _offset(3, 6, exponent_factor=1.0)),
                  ("offset.k-ignored", _offset(3, 6, angle_factor=1)),
                  ("offset.sin-cos-swapped", _offset(3, 6, block="swapped")),
                  ("offset.pairs-in-halves", _offset(3, 6, layout="halves")),
                  ("offset.frequencies-increase", _offset(3, 6, sign=1.0))]
        return [name for name, model in models if _close(offset, model, 1e-5)][:1]
    found = []
    if offset.dtype != torch.float64:
        found.append("offset.not-float64")
    try:
        attempt(function, 1, 3)
        found.append("offset.odd-width")
    except Raised as error:
        if error.name != "ValueError":
            found.append("offset.odd-width")
    return found


# ---------------------------------------------------------------------------------------------------
# SelfAttention


@_guarded
def check_self_attention(namespace):
    cls = namespace.get("SelfAttention")
    references = {"masked_softmax": _reference_masked_softmax, "scaled_dot_product_attention": _reference_attention}
    with swapped(namespace, references), torch.no_grad():
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                layer = attempt(cls, 8, 4, 6)
        except Raised as error:
            return {"raised": error.name}
        generator = torch.Generator().manual_seed(4)
        x = torch.randn(2, 5, 8, generator=generator)                   # the visible tests' input
        causal = torch.ones(5, 5, dtype=torch.bool).tril()
        try:
            output, weights = pair(attempt(layer, x, causal))
        except Raised as error:
            return {"raised": error.name}
        try:
            q, k, v = layer.W_q(x), layer.W_k(x), layer.W_v(x)
        except Exception:
            return {"subject": "weights", "misconceptions": []}
        expected_output, expected = _reference_attention(q, k, v, causal)
        facts = describe(weights, expected, weights=True, allowed=causal)
        facts.update(subject="weights", **pictures(weights, expected))
        if same(weights, expected) and isinstance(output, torch.Tensor):
            facts.update(describe(output, expected_output), subject="output")
        facts["misconceptions"] = _self_attention_misconceptions(layer, x, causal, (q, k, v), output, weights)[:1]
    return facts


def _self_attention_misconceptions(layer, x, causal, projections, output, weights):
    q, k, v = projections
    unmasked_output, unmasked = pair(call(layer, x))
    scores = q @ k.mT
    expected_output, expected = _reference_attention(q, k, v)
    models = [("sa.unscaled", torch.softmax(scores, -1)), ("sa.scaled-by-d-model", torch.softmax(scores / math.sqrt(8), -1)),
              ("sa.keys-are-queries", torch.softmax(q @ q.mT / 2, -1)),
              ("sa.no-projections", torch.softmax(x @ x.mT / math.sqrt(8), -1)),
              ("sa.softmax-over-queries", torch.softmax(scores / 2, -2)), ("sa.weights-transposed", expected.mT)]
    for name, model in models:
        if same(unmasked, model):
            return [name]
    if same(unmasked, expected):
        if same(unmasked_output, unmasked @ x):
            return ["sa.values-not-projected"]
        if same(weights, expected):                         # the mask never reaches the weights
            return ["sa.mask-ignored"]
    if any(getattr(getattr(layer, name, None), "bias", 0) is None for name in ("W_q", "W_k", "W_v")):
        return ["sa.no-biases"]
    if same(unmasked, expected) and same(unmasked_output, expected_output) and \
            python_loop(layer, (x[:1, :3],), (torch.cat((x, x, x))[:, :3],)):
        return ["sa.python-loop"]
    return []


# ---------------------------------------------------------------------------------------------------
# equivariance_gap


def _gap(layer, x, perm, positions=None, moved=False, permute="perm", weights="both", reduce="max"):
    """The reference gap, or the gap that one of the mistakes computes."""
    added = 0 if positions is None else positions
    output, alpha = layer(x + added)
    output_p, alpha_p = layer((x + added)[perm] if moved else x[perm] + added)
    order = {"perm": perm, "inverse": torch.argsort(perm), "none": torch.arange(len(perm))}[permute]
    target = alpha[order][:, order] if weights == "both" else alpha[order]
    parts = [output_p - output[order]] + ([] if weights == "none" else [alpha_p - target])
    measure = {"max": lambda d: d.abs().max(), "mean": lambda d: d.abs().mean(), "signed": lambda d: d.max()}[reduce]
    return max(float(measure(d)) for d in parts)


def _number(value):
    """A gap as a float: a Python number, or a tensor of one element (None otherwise)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1 and (value.is_floating_point() or not value.dtype == torch.bool):
        return float(value.detach())
    return None


def _toy_layers():
    """Two small layers that are not equivariant: one whose outputs differ most, one whose weights do."""
    generator = torch.Generator().manual_seed(11)
    bias = torch.randn(4, 4, generator=generator, dtype=torch.float64) * 2
    mix = torch.randn(2, 2, generator=generator, dtype=torch.float64)

    def outputs(z):
        ramp = torch.arange(len(z), dtype=z.dtype)[:, None]
        return (z @ mix + ramp * z.flip(0)), torch.softmax(z @ z.T / 4 + bias * 0.1, -1)

    def weights(z):
        return 0.01 * z.cumsum(0), torch.softmax(3 * z @ z.T + bias, -1)

    return outputs, weights


@_guarded
def check_equivariance(namespace):
    function = namespace.get("equivariance_gap")
    perm = torch.tensor([1, 0])                                         # the visible tests' examples
    x = torch.tensor([[1.0], [3.0]])
    double = lambda z: (2 * z, torch.eye(2))
    first_only = lambda z: (z, torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    positions = torch.tensor([[0.0], [10.0]])
    examples = [(double, x, perm, None), (first_only, x, perm, None), (double, x, perm, positions)]
    try:
        theirs = [attempt(function, *example) for example in examples]
    except Raised as error:
        return {"raised": error.name}
    values = [_number(value) for value in theirs]
    facts = {}
    if all(value is not None for value in values):
        expected = torch.tensor([_gap(*example) for example in examples], dtype=torch.float64)
        facts = describe(torch.tensor(values, dtype=torch.float64), expected)
        facts.pop("dtype", None), facts.pop("expected_dtype", None)
    facts["subject"] = "output"
    facts["misconceptions"] = _equivariance_misconceptions(function)[:1]
    return facts


def _equivariance_misconceptions(function):
    generator = torch.Generator().manual_seed(12)
    x = torch.randn(4, 2, generator=generator, dtype=torch.float64)
    positions = torch.randn(4, 2, generator=generator, dtype=torch.float64) * 3
    perm = torch.tensor([1, 2, 3, 0])                                   # not its own inverse
    cases = [(layer, x, perm, pos) for layer in _toy_layers() for pos in (None, positions)]
    theirs = []
    for case in cases:
        value = call(function, *case)
        theirs.append((value, _number(value)))
    numbers = [number for _, number in theirs]
    if any(number is None for number in numbers):
        return []

    def matches(**mistake):
        return all(abs(number - _gap(*case, **mistake)) <= 1e-6 * max(1.0, abs(number)) for number, case in zip(numbers, cases))

    if matches():
        return [] if all(isinstance(value, float) for value, _ in theirs) else ["equivariance.not-a-float"]
    models = [("equivariance.positions-moved", dict(moved=True)), ("equivariance.not-permuted", dict(permute="none")),
              ("equivariance.rows-only", dict(weights="rows")), ("equivariance.weights-ignored", dict(weights="none")),
              ("equivariance.mean", dict(reduce="mean")), ("equivariance.inverse-permutation", dict(permute="inverse")),
              ("equivariance.signed", dict(reduce="signed"))]
    return [name for name, mistake in models if matches(**mistake)][:1]


COMPONENTS = {
    "causal_mask": check_causal_mask,
    "padding_mask": check_padding_mask,
    "self_attention_mask": check_self_attention_mask,
    "sinusoidal_positional_encoding": check_encoding,
    "offset_matrix": check_offset_matrix,
    "SelfAttention": check_self_attention,
    "equivariance_gap": check_equivariance,
}
