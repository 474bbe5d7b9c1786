"""Wrong implementations of the graded functions of 01_attention (see tests/mutants/__init__.py)."""
from tests.mutants import function_mutant, module_mutant

ASSIGNMENT = "01_attention"


def nadaraya_watson(body, why, fails=()):
    return function_mutant("nadaraya_watson", "nadaraya_watson(queries, keys, values, bandwidth=1.0)",
                           body, why, fails)


def masked_softmax(body, why, fails=()):
    return function_mutant("masked_softmax", "masked_softmax(scores, mask=None)", body, why, fails)


def bandwidth(body, why, fails=()):
    return function_mutant("choose_bandwidth", "choose_bandwidth(x_train, y_train, x_valid, y_valid, bandwidths)",
                           body, why, fails)


def sdpa(body, why, fails=()):
    return function_mutant("scaled_dot_product_attention",
                           "scaled_dot_product_attention(query, key, value, mask=None)", body, why, fails)


ADDITIVE_INIT = """
        self.W_q = nn.Linear(query_dim, hidden_dim, bias=False)
        self.W_k = nn.Linear(key_dim, hidden_dim, bias=False)
        self.w_v = nn.Linear(hidden_dim, 1, bias=False)
"""
ADDITIVE_FORWARD = """
        hidden = self.W_q(query)[..., :, None, :] + self.W_k(key)[..., None, :, :]
        scores = self.w_v(torch.tanh(hidden))[..., 0]
        alpha = masked_softmax(scores, mask)
        return torch.matmul(alpha, value), alpha
"""


def additive(why, fails=(), init=ADDITIVE_INIT, forward=ADDITIVE_FORWARD):
    """A mutant of the AdditiveAttention cell with a wrong __init__ or forward body."""
    return module_mutant("AdditiveAttention", "query_dim, key_dim, hidden_dim", init,
                         "query, key, value, mask=None", forward, why, fails)


MUTANTS = {
    # --- nadaraya_watson -------------------------------------------------------------------------
    "nadaraya_watson/bandwidth_not_squared": nadaraya_watson("""
    logits = -(queries[:, None] - keys[None, :]) ** 2 / (2 * bandwidth)
    weights = torch.softmax(logits, dim=1)
    return weights @ values, weights
""", "divides by 2h instead of 2h^2", fails=["nadaraya_watson_visible", "nadaraya_watson_values"]),

    "nadaraya_watson/missing_factor_two": nadaraya_watson("""
    logits = -(queries[:, None] - keys[None, :]) ** 2 / bandwidth ** 2
    weights = torch.softmax(logits, dim=1)
    return weights @ values, weights
""", "divides by h^2 instead of 2h^2", fails=["nadaraya_watson_visible", "nadaraya_watson_values"]),

    "nadaraya_watson/absolute_distance": nadaraya_watson("""
    logits = -(queries[:, None] - keys[None, :]).abs() / (2 * bandwidth ** 2)
    weights = torch.softmax(logits, dim=1)
    return weights @ values, weights
""", "a Laplace kernel |q - k| instead of the Gaussian (q - k)^2",
        fails=["nadaraya_watson_visible", "nadaraya_watson_values"]),

    "nadaraya_watson/softmax_over_queries": nadaraya_watson("""
    logits = -(queries[:, None] - keys[None, :]) ** 2 / (2 * bandwidth ** 2)
    weights = torch.softmax(logits, dim=0)
    return weights @ values, weights
""", "softmax over the queries instead of over the keys", fails=["nadaraya_watson_visible", "nadaraya_watson_values"]),

    "nadaraya_watson/sign_flipped": nadaraya_watson("""
    logits = (queries[:, None] - keys[None, :]) ** 2 / (2 * bandwidth ** 2)
    weights = torch.softmax(logits, dim=1)
    return weights @ values, weights
""", "the minus sign forgotten: far keys get the most weight",
        fails=["nadaraya_watson_visible", "nadaraya_watson_values"]),

    "nadaraya_watson/unstable_normalised_kernel": nadaraya_watson("""
    kernel = torch.exp(-(queries[:, None] - keys[None, :]) ** 2 / (2 * bandwidth ** 2))
    weights = kernel / kernel.sum(dim=1, keepdim=True)
    return weights @ values, weights
""", "kernel normalised by hand: 0 / 0 = NaN for a query far from every key",
        fails=["nadaraya_watson_visible", "nadaraya_watson_far_queries"]),

    "nadaraya_watson/transposed_weights": nadaraya_watson("""
    logits = -(keys[:, None] - queries[None, :]) ** 2 / (2 * bandwidth ** 2)
    weights = torch.softmax(logits, dim=0)
    return weights.T @ values, weights
""", "weights returned as (n_k, n_q)", fails=["nadaraya_watson_visible", "nadaraya_watson_values"]),

    "nadaraya_watson/averages_the_keys": nadaraya_watson("""
    logits = -(queries[:, None] - keys[None, :]) ** 2 / (2 * bandwidth ** 2)
    weights = torch.softmax(logits, dim=1)
    return weights @ keys, weights
""", "averages the keys instead of the values", fails=["nadaraya_watson_visible", "nadaraya_watson_values"]),

    "nadaraya_watson/bandwidth_ignored": nadaraya_watson("""
    logits = -(queries[:, None] - keys[None, :]) ** 2 / 2
    weights = torch.softmax(logits, dim=1)
    return weights @ values, weights
""", "the bandwidth argument is never used", fails=["nadaraya_watson_visible", "nadaraya_watson_values"]),

    # --- masked_softmax --------------------------------------------------------------------------
    "masked_softmax/softmax_over_first_dim": masked_softmax("""
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=0).nan_to_num(0.0)
""", "softmax over the first dimension instead of the last (keys)",
        fails=["masked_softmax_visible", "masked_softmax_values"]),

    "masked_softmax/mask_after_softmax": masked_softmax("""
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = weights * mask
    return weights
""", "mask applied after the softmax, so the kept weights no longer sum to 1",
        fails=["masked_softmax_visible", "masked_softmax_masks"]),

    "masked_softmax/fill_with_zero": masked_softmax("""
    if mask is not None:
        scores = scores.masked_fill(~mask, 0.0)
    return torch.softmax(scores, dim=-1)
""", "masked scores set to 0 instead of -inf (exp(0) = 1, so masked keys keep weight)",
        fails=["masked_softmax_visible", "masked_softmax_masks"]),

    "masked_softmax/multiply_scores_by_mask": masked_softmax("""
    if mask is not None:
        scores = scores * mask
    return torch.softmax(scores, dim=-1)
""", "scores multiplied by the mask, which sets masked scores to 0, not -inf",
        fails=["masked_softmax_visible", "masked_softmax_masks"]),

    "masked_softmax/inverted_mask": masked_softmax("""
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    return torch.softmax(scores, dim=-1).nan_to_num(0.0)
""", "mask convention inverted (True taken to mean 'blocked', as in nn.MultiheadAttention)",
        fails=["masked_softmax_visible", "masked_softmax_masks"]),

    "masked_softmax/mask_ignored": masked_softmax("""
    return torch.softmax(scores, dim=-1)
""", "the mask is accepted but never used", fails=["masked_softmax_visible", "masked_softmax_masks"]),

    "masked_softmax/nan_on_fully_masked_rows": masked_softmax("""
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1)
""", "a row with every key masked gives NaN (softmax of all -inf)",
        fails=["masked_softmax_visible", "masked_softmax_fully_masked"]),

    "masked_softmax/fill_with_minus_1e9": masked_softmax("""
    if mask is not None:
        scores = scores.masked_fill(~mask, -1e9)
    return torch.softmax(scores, dim=-1)
""", "masked scores set to -1e9: a fully masked row gets uniform weights instead of zeros",
        fails=["masked_softmax_visible", "masked_softmax_fully_masked"]),

    "masked_softmax/no_max_subtraction": masked_softmax("""
    unnormalised = torch.exp(scores)
    if mask is not None:
        unnormalised = unnormalised * mask
    total = unnormalised.sum(dim=-1, keepdim=True)
    return unnormalised / torch.where(total > 0, total, torch.ones_like(total))
""", "exponentials taken without subtracting the row maximum: overflow for large scores",
        fails=["masked_softmax_visible", "masked_softmax_stability"]),

    "masked_softmax/not_normalised": masked_softmax("""
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.exp(scores - scores.amax(dim=-1, keepdim=True)).nan_to_num(0.0)
""", "exponentials never divided by their sum", fails=["masked_softmax_visible", "masked_softmax_values"]),

    "masked_softmax/dtype_not_kept": masked_softmax("""
    scores = scores.float()
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1).nan_to_num(0.0)
""", "float64 scores turned into float32 weights", fails=["masked_softmax_values"]),

    "masked_softmax/modifies_input_in_place": masked_softmax("""
    if mask is not None:
        scores.masked_fill_(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1).nan_to_num(0.0)
""", "the caller's scores are overwritten in place (masked_fill_ instead of masked_fill)",
        fails=["masked_softmax_masks"]),

    "masked_softmax/detached_from_graph": masked_softmax("""
    scores = scores.detach()
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1).nan_to_num(0.0)
""", "the scores are detached, so no gradient flows back", fails=["masked_softmax_fully_masked"]),

    # --- scaled_dot_product_attention ------------------------------------------------------------
    "sdpa/unscaled": sdpa("""
    weights = masked_softmax(query @ key.transpose(-2, -1), mask)
    return weights @ value, weights
""", "scores never divided by sqrt(d_k) (the mistake of a widely copied example)",
        fails=["sdpa_visible", "sdpa_values"]),

    "sdpa/scaled_by_d_k": sdpa("""
    weights = masked_softmax(query @ key.transpose(-2, -1) / query.size(-1), mask)
    return weights @ value, weights
""", "scores divided by d_k instead of sqrt(d_k)", fails=["sdpa_visible", "sdpa_values"]),

    "sdpa/scaled_by_d_v": sdpa("""
    weights = masked_softmax(query @ key.transpose(-2, -1) / math.sqrt(value.size(-1)), mask)
    return weights @ value, weights
""", "scores divided by sqrt(d_v), the width of the values", fails=["sdpa_visible", "sdpa_values"]),

    "sdpa/softmax_over_queries": sdpa("""
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.size(-1))
    weights = torch.softmax(scores, dim=-2)
    if mask is not None:
        weights = weights * mask
    return weights @ value, weights
""", "softmax over the queries (dim -2) instead of the keys", fails=["sdpa_visible", "sdpa_values"]),

    "sdpa/key_dot_T": sdpa("""
    weights = masked_softmax(query @ key.T / math.sqrt(query.size(-1)), mask)
    return weights @ value, weights
""", "key.T reverses every dimension of a batched tensor", fails=["sdpa_visible", "sdpa_values"]),

    "sdpa/inverted_mask": sdpa("""
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.size(-1))
    weights = masked_softmax(scores, None if mask is None else ~mask)
    return weights @ value, weights
""", "True taken to mean 'blocked' (nn.MultiheadAttention's convention)",
        fails=["sdpa_visible", "sdpa_masks"]),

    "sdpa/mask_ignored": sdpa("""
    weights = masked_softmax(query @ key.transpose(-2, -1) / math.sqrt(query.size(-1)))
    return weights @ value, weights
""", "the mask is never passed on", fails=["sdpa_visible", "sdpa_masks", "sdpa_gradients"]),

    "sdpa/nan_for_fully_masked_query": sdpa("""
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ value, weights
""", "plain softmax after -inf: a fully masked query gives NaN", fails=["sdpa_masks"]),

    "sdpa/unstable_exponentials": sdpa("""
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.size(-1))
    unnormalised = torch.exp(scores)
    if mask is not None:
        unnormalised = unnormalised * mask
    total = unnormalised.sum(dim=-1, keepdim=True)
    weights = unnormalised / torch.where(total > 0, total, torch.ones_like(total))
    return weights @ value, weights
""", "exponentials of the raw scores: overflow for large queries and keys", fails=["sdpa_large_scores"]),

    "sdpa/averages_the_keys": sdpa("""
    weights = masked_softmax(query @ key.transpose(-2, -1) / math.sqrt(query.size(-1)), mask)
    return weights @ key[..., :value.size(-1)], weights
""", "the weights average the keys instead of the values", fails=["sdpa_visible", "sdpa_values"]),

    "sdpa/detached_values": sdpa("""
    weights = masked_softmax(query @ key.transpose(-2, -1) / math.sqrt(query.size(-1)), mask)
    return weights @ value.detach(), weights
""", "the values are detached, so they get no gradient", fails=["sdpa_gradients"]),

    # --- AdditiveAttention -----------------------------------------------------------------------
    "additive/no_tanh": additive("the tanh is forgotten: the score is linear", forward="""
        hidden = self.W_q(query)[..., :, None, :] + self.W_k(key)[..., None, :, :]
        scores = self.w_v(hidden)[..., 0]
        alpha = masked_softmax(scores, mask)
        return torch.matmul(alpha, value), alpha
""", fails=["additive_visible", "additive_values"]),

    "additive/relu_instead_of_tanh": additive("ReLU instead of tanh", forward="""
        hidden = self.W_q(query)[..., :, None, :] + self.W_k(key)[..., None, :, :]
        scores = self.w_v(torch.relu(hidden))[..., 0]
        alpha = masked_softmax(scores, mask)
        return torch.matmul(alpha, value), alpha
""", fails=["additive_visible", "additive_values"]),

    "additive/layers_with_bias": additive("the layers have biases (the default of nn.Linear)", init="""
        self.W_q = nn.Linear(query_dim, hidden_dim)
        self.W_k = nn.Linear(key_dim, hidden_dim)
        self.w_v = nn.Linear(hidden_dim, 1)
""", fails=["additive_visible", "additive_values"]),

    "additive/sum_instead_of_w_v": additive("the hidden features summed instead of scored by w_v", forward="""
        hidden = self.W_q(query)[..., :, None, :] + self.W_k(key)[..., None, :, :]
        scores = torch.tanh(hidden).sum(-1)
        alpha = masked_softmax(scores, mask)
        return torch.matmul(alpha, value), alpha
""", fails=["additive_visible", "additive_values", "additive_gradients"]),

    "additive/softmax_over_queries": additive("softmax over the queries instead of the keys", forward="""
        hidden = self.W_q(query)[..., :, None, :] + self.W_k(key)[..., None, :, :]
        scores = self.w_v(torch.tanh(hidden))[..., 0]
        alpha = torch.softmax(scores, dim=-2)
        if mask is not None:
            alpha = alpha * mask
        return torch.matmul(alpha, value), alpha
""", fails=["additive_visible", "additive_values"]),

    "additive/mask_ignored": additive("the mask is never used", forward="""
        hidden = self.W_q(query)[..., :, None, :] + self.W_k(key)[..., None, :, :]
        scores = self.w_v(torch.tanh(hidden))[..., 0]
        alpha = torch.softmax(scores, dim=-1)
        return torch.matmul(alpha, value), alpha
""", fails=["additive_visible", "additive_masks"]),

    "additive/pairs_position_by_position": additive("each query scored only against the key at its own position", forward="""
        hidden = self.W_q(query) + self.W_k(key)[..., :query.size(-2), :]
        scores = self.w_v(torch.tanh(hidden))
        alpha = masked_softmax(scores.expand(*scores.shape[:-1], key.size(-2)), mask)
        return torch.matmul(alpha, value), alpha
""", fails=["additive_visible", "additive_values"]),

    "additive/detached_scores": additive("the scores are detached, so W_q, W_k and w_v never learn", forward="""
        hidden = self.W_q(query)[..., :, None, :] + self.W_k(key)[..., None, :, :]
        scores = self.w_v(torch.tanh(hidden))[..., 0].detach()
        alpha = masked_softmax(scores, mask)
        return torch.matmul(alpha, value), alpha
""", fails=["additive_gradients"]),

    # --- Python loops (each loses the point of its component's no-loops cell only) ---------------
    "nadaraya_watson/loop_over_queries": nadaraya_watson("""
    rows = [torch.softmax(-(q - keys) ** 2 / (2 * bandwidth ** 2), dim=0) for q in queries]
    weights = torch.stack(rows) if rows else torch.zeros(0, len(keys), dtype=keys.dtype)
    return weights @ values, weights
""", "one query at a time in a Python loop", fails=["nadaraya_watson_no_loops"]),

    "masked_softmax/loop_over_rows": masked_softmax("""
    allowed = torch.ones_like(scores, dtype=torch.bool) if mask is None else mask.expand_as(scores)
    rows, keep = scores.reshape(-1, scores.shape[-1]), allowed.reshape(-1, scores.shape[-1])
    out = []
    for row, kept in zip(rows, keep):
        out.append(torch.softmax(row.masked_fill(~kept, float("-inf")), dim=0).nan_to_num(0.0))
    return torch.stack(out).reshape(scores.shape)
""", "a Python loop over the rows", fails=["masked_softmax_no_loops"]),

    "sdpa/loop_over_batch": sdpa("""
    if query.dim() > 2:
        B = query.shape[0]
        def pick(t, i):
            return t[i] if t is not None and t.dim() == query.dim() and t.shape[0] == B else t
        pairs = [scaled_dot_product_attention(query[i], pick(key, i), pick(value, i), pick(mask, i)) for i in range(B)]
        return torch.stack([o for o, _ in pairs]), torch.stack([w for _, w in pairs])
    weights = masked_softmax(query @ key.transpose(-2, -1) / math.sqrt(query.size(-1)), mask)
    return weights @ value, weights
""", "a recursive Python loop over the leading (batch) dimensions", fails=["sdpa_no_loops"]),

    "additive/loop_over_pairs": additive("every (query, key) pair scored in a double Python loop", forward="""
        B, T_q, T_k = query.shape[0], query.shape[1], key.shape[1]
        rows = []
        for i in range(T_q):
            row = [self.w_v(torch.tanh(self.W_q(query[:, i]) + self.W_k(key[:, j])))[..., 0] for j in range(T_k)]
            rows.append(torch.stack(row, dim=-1))
        alpha = masked_softmax(torch.stack(rows, dim=-2), mask)
        return torch.matmul(alpha, value), alpha
""", fails=["additive_no_loops"]),

    # --- choose_bandwidth ------------------------------------------------------------------------
    "bandwidth/error_on_training_points": bandwidth("""
    errors = torch.stack([((nadaraya_watson(x_train, x_train, y_train, h)[0] - y_train) ** 2).mean() for h in bandwidths])
    return float(bandwidths[int(errors.argmin())]), errors
""", "the error measured on the training points, where the smallest bandwidth always wins",
        fails=["bandwidth_visible", "bandwidth_errors", "bandwidth_outcome"]),

    "bandwidth/returns_the_index": bandwidth("""
    errors = torch.stack([((nadaraya_watson(x_valid, x_train, y_train, h)[0] - y_valid) ** 2).mean() for h in bandwidths])
    return int(errors.argmin()), errors
""", "the index of the best bandwidth returned instead of the bandwidth", fails=["bandwidth_visible", "bandwidth_errors"]),

    "bandwidth/largest_error": bandwidth("""
    errors = torch.stack([((nadaraya_watson(x_valid, x_train, y_train, h)[0] - y_valid) ** 2).mean() for h in bandwidths])
    return float(bandwidths[int(errors.argmax())]), errors
""", "argmax instead of argmin", fails=["bandwidth_visible", "bandwidth_errors", "bandwidth_outcome"]),

    "bandwidth/root_mean_squared_error": bandwidth("""
    errors = torch.stack([((nadaraya_watson(x_valid, x_train, y_train, h)[0] - y_valid) ** 2).mean().sqrt() for h in bandwidths])
    return float(bandwidths[int(errors.argmin())]), errors
""", "root mean squared errors returned instead of mean squared errors", fails=["bandwidth_visible", "bandwidth_errors"]),

    "bandwidth/sum_not_mean": bandwidth("""
    errors = torch.stack([((nadaraya_watson(x_valid, x_train, y_train, h)[0] - y_valid) ** 2).sum() for h in bandwidths])
    return float(bandwidths[int(errors.argmin())]), errors
""", "the squared errors summed instead of averaged", fails=["bandwidth_visible", "bandwidth_errors"]),

    "bandwidth/absolute_error": bandwidth("""
    errors = torch.stack([(nadaraya_watson(x_valid, x_train, y_train, h)[0] - y_valid).abs().mean() for h in bandwidths])
    return float(bandwidths[int(errors.argmin())]), errors
""", "the mean absolute error instead of the mean squared error", fails=["bandwidth_visible", "bandwidth_errors"]),

    "bandwidth/roles_swapped": bandwidth("""
    errors = torch.stack([((nadaraya_watson(x_train, x_valid, y_valid, h)[0] - y_train) ** 2).mean() for h in bandwidths])
    return float(bandwidths[int(errors.argmin())]), errors
""", "the validation points used as keys and the training points as queries", fails=["bandwidth_visible", "bandwidth_errors"]),

    "bandwidth/errors_as_a_list": bandwidth("""
    errors = [float(((nadaraya_watson(x_valid, x_train, y_train, h)[0] - y_valid) ** 2).mean()) for h in bandwidths]
    return float(bandwidths[errors.index(min(errors))]), errors
""", "the errors returned as a Python list instead of a tensor", fails=["bandwidth_visible", "bandwidth_errors"]),
}

# The misconception that the grader's feedback names for each mutant (solutions/01_attention/diagnostics.py).
MISCONCEPTION_OF = {
    "nadaraya_watson/bandwidth_not_squared": "nw.bandwidth-not-squared",
    "nadaraya_watson/missing_factor_two": "nw.missing-factor-two",
    "nadaraya_watson/absolute_distance": "nw.absolute-distance",
    "nadaraya_watson/softmax_over_queries": "nw.softmax-over-queries",
    "nadaraya_watson/sign_flipped": "nw.sign-flipped",
    "nadaraya_watson/unstable_normalised_kernel": "nw.nan-far-query",
    "nadaraya_watson/transposed_weights": "nw.weights-transposed",
    "nadaraya_watson/averages_the_keys": "nw.averages-keys",
    "nadaraya_watson/bandwidth_ignored": "nw.bandwidth-ignored",
    "nadaraya_watson/loop_over_queries": "nw.python-loop",
    "masked_softmax/softmax_over_first_dim": "ms.wrong-dim",
    "masked_softmax/mask_after_softmax": "ms.mask-after-softmax",
    "masked_softmax/fill_with_zero": "ms.fill-zero",
    "masked_softmax/multiply_scores_by_mask": "ms.fill-zero",
    "masked_softmax/inverted_mask": "ms.mask-inverted",
    "masked_softmax/mask_ignored": "ms.mask-ignored",
    "masked_softmax/nan_on_fully_masked_rows": "ms.nan-fully-masked",
    "masked_softmax/fill_with_minus_1e9": "ms.fill-large-negative",
    "masked_softmax/no_max_subtraction": "ms.overflow",
    "masked_softmax/not_normalised": "ms.not-normalised",
    "masked_softmax/dtype_not_kept": "ms.dtype-not-kept",
    "masked_softmax/modifies_input_in_place": "ms.in-place",
    "masked_softmax/detached_from_graph": "ms.no-gradient",
    "masked_softmax/loop_over_rows": "ms.python-loop",
    "sdpa/unscaled": "sdpa.unscaled",
    "sdpa/scaled_by_d_k": "sdpa.scaled-by-d-k",
    "sdpa/scaled_by_d_v": "sdpa.scaled-by-d-v",
    "sdpa/softmax_over_queries": "sdpa.softmax-over-queries",
    "sdpa/key_dot_T": "sdpa.key-t",
    "sdpa/inverted_mask": "sdpa.mask-inverted",
    "sdpa/mask_ignored": "sdpa.mask-ignored",
    "sdpa/nan_for_fully_masked_query": "sdpa.nan-fully-masked",
    "sdpa/unstable_exponentials": "sdpa.overflow",
    "sdpa/averages_the_keys": "sdpa.averages-keys",
    "sdpa/detached_values": "sdpa.no-gradient",
    "sdpa/loop_over_batch": "sdpa.python-loop",
    "additive/no_tanh": "add.no-tanh",
    "additive/relu_instead_of_tanh": "add.relu-not-tanh",
    "additive/layers_with_bias": "add.bias",
    "additive/sum_instead_of_w_v": "add.sum-not-w-v",
    "additive/softmax_over_queries": "add.softmax-over-queries",
    "additive/mask_ignored": "add.mask-ignored",
    "additive/pairs_position_by_position": "add.pairs-by-position",
    "additive/detached_scores": "add.no-gradient",
    "additive/loop_over_pairs": "add.python-loop",
    "bandwidth/error_on_training_points": "bw.training-error",
    "bandwidth/returns_the_index": "bw.returns-index",
    "bandwidth/largest_error": "bw.largest-error",
    "bandwidth/root_mean_squared_error": "bw.rmse",
    "bandwidth/sum_not_mean": "bw.sum-not-mean",
    "bandwidth/absolute_error": "bw.absolute-error",
    "bandwidth/roles_swapped": "bw.roles-swapped",
    "bandwidth/errors_as_a_list": "bw.errors-not-a-tensor",
}

# The edit of each mutant's source that does what its misconception's fix says (tests/mutants/__init__.py).
_BY_HAND = """
    row_max = scores.amax(dim=-1, keepdim=True)
    unnormalised = torch.exp(scores - torch.where(row_max == float("-inf"), 0.0, row_max))
    total = unnormalised.sum(dim=-1, keepdim=True)
    return unnormalised / torch.where(total > 0, total, torch.ones_like(total))
"""
_NW_LOGITS = "-(queries[:, None] - keys[None, :]) ** 2 / (2 * bandwidth ** 2)"
_BW_ERROR = "((nadaraya_watson(x_valid, x_train, y_train, h)[0] - y_valid) ** 2).mean()"

FIXES = {
    # --- nadaraya_watson
    "nadaraya_watson/bandwidth_not_squared": ("(2 * bandwidth)", "(2 * bandwidth ** 2)"),
    "nadaraya_watson/missing_factor_two": ("/ bandwidth ** 2", "/ (2 * bandwidth ** 2)"),
    "nadaraya_watson/absolute_distance": (".abs()", " ** 2"),
    "nadaraya_watson/softmax_over_queries": ("dim=0", "dim=-1"),
    "nadaraya_watson/sign_flipped": ("logits = (", "logits = -("),
    "nadaraya_watson/unstable_normalised_kernel": (
        f"kernel = torch.exp({_NW_LOGITS})\n    weights = kernel / kernel.sum(dim=1, keepdim=True)",
        f"weights = torch.softmax({_NW_LOGITS}, dim=-1)"),
    "nadaraya_watson/transposed_weights": (
        "-(keys[:, None] - queries[None, :]) ** 2 / (2 * bandwidth ** 2)\n    weights = torch.softmax(logits, dim=0)\n"
        "    return weights.T @ values",
        f"{_NW_LOGITS}\n    weights = torch.softmax(logits, dim=-1)\n    return weights @ values"),
    "nadaraya_watson/averages_the_keys": ("weights @ keys", "weights @ values"),
    "nadaraya_watson/bandwidth_ignored": ("** 2 / 2\n", "** 2 / (2 * bandwidth ** 2)\n"),
    "nadaraya_watson/loop_over_queries": (
        "rows = [torch.softmax(-(q - keys) ** 2 / (2 * bandwidth ** 2), dim=0) for q in queries]\n"
        "    weights = torch.stack(rows) if rows else torch.zeros(0, len(keys), dtype=keys.dtype)",
        f"weights = torch.softmax({_NW_LOGITS}, dim=-1)"),
    # --- masked_softmax
    "masked_softmax/softmax_over_first_dim": ("dim=0", "dim=-1"),
    "masked_softmax/mask_after_softmax": (
        "    weights = torch.softmax(scores, dim=-1)\n    if mask is not None:\n        weights = weights * mask\n"
        "    return weights\n",
        '    if mask is not None:\n        scores = scores.masked_fill(~mask, float("-inf"))\n' + _BY_HAND.lstrip("\n")),
    "masked_softmax/fill_with_zero": ("0.0)\n    return torch.softmax(scores, dim=-1)\n",
                                      'float("-inf"))\n' + _BY_HAND.lstrip("\n")),
    "masked_softmax/multiply_scores_by_mask": ("scores * mask\n    return torch.softmax(scores, dim=-1)\n",
                                               'torch.where(mask, scores, float("-inf"))\n' + _BY_HAND.lstrip("\n")),
    "masked_softmax/inverted_mask": ("masked_fill(mask,", "masked_fill(~mask,"),
    "masked_softmax/mask_ignored": (
        "    return torch.softmax(scores, dim=-1)\n",
        '    if mask is not None:\n        scores = scores.masked_fill(~mask, float("-inf"))\n' + _BY_HAND.lstrip("\n")),
    "masked_softmax/nan_on_fully_masked_rows": ("    return torch.softmax(scores, dim=-1)\n", _BY_HAND.lstrip("\n")),
    "masked_softmax/fill_with_minus_1e9": ("-1e9)\n    return torch.softmax(scores, dim=-1)\n",
                                           'float("-inf"))\n' + _BY_HAND.lstrip("\n")),
    "masked_softmax/no_max_subtraction": (
        "    unnormalised = torch.exp(scores)\n",
        '    if mask is not None:\n        scores = scores.masked_fill(~mask, float("-inf"))\n'
        "    row_max = scores.amax(dim=-1, keepdim=True)\n"
        '    unnormalised = torch.exp(scores - torch.where(row_max == float("-inf"), 0.0, row_max))\n'),
    "masked_softmax/not_normalised": (
        "    return torch.exp(scores - scores.amax(dim=-1, keepdim=True)).nan_to_num(0.0)\n",
        "    unnormalised = torch.exp(scores - scores.amax(dim=-1, keepdim=True)).nan_to_num(0.0)\n"
        "    total = unnormalised.sum(dim=-1, keepdim=True)\n"
        "    return unnormalised / torch.where(total > 0, total, torch.ones_like(total))\n"),
    "masked_softmax/dtype_not_kept": ("    scores = scores.float()\n", ""),
    "masked_softmax/modifies_input_in_place": ("scores.masked_fill_(", "scores = scores.masked_fill("),
    "masked_softmax/detached_from_graph": ("    scores = scores.detach()\n", ""),
    "masked_softmax/loop_over_rows": (
        "    rows, keep = scores.reshape(-1, scores.shape[-1]), allowed.reshape(-1, scores.shape[-1])\n"
        "    out = []\n    for row, kept in zip(rows, keep):\n"
        '        out.append(torch.softmax(row.masked_fill(~kept, float("-inf")), dim=0).nan_to_num(0.0))\n'
        "    return torch.stack(out).reshape(scores.shape)\n",
        '    return torch.softmax(torch.where(allowed, scores, float("-inf")), dim=-1).nan_to_num(0.0)\n'),
    # --- scaled_dot_product_attention
    "sdpa/unscaled": ("key.transpose(-2, -1), mask)", "key.transpose(-2, -1) / math.sqrt(query.size(-1)), mask)"),
    "sdpa/scaled_by_d_k": ("/ query.size(-1)", "/ math.sqrt(query.size(-1))"),
    "sdpa/scaled_by_d_v": ("math.sqrt(value.size(-1))", "math.sqrt(query.size(-1))"),
    "sdpa/softmax_over_queries": (
        "weights = torch.softmax(scores, dim=-2)\n    if mask is not None:\n        weights = weights * mask\n",
        "weights = masked_softmax(scores, mask)\n"),
    "sdpa/key_dot_T": ("key.T", "key.transpose(-2, -1)"),
    "sdpa/inverted_mask": ("None if mask is None else ~mask", "mask"),
    "sdpa/mask_ignored": ("math.sqrt(query.size(-1)))", "math.sqrt(query.size(-1)), mask)"),
    "sdpa/nan_for_fully_masked_query": (
        '    if mask is not None:\n        scores = scores.masked_fill(~mask, float("-inf"))\n'
        "    weights = torch.softmax(scores, dim=-1)\n",
        "    weights = masked_softmax(scores, mask)\n"),
    "sdpa/unstable_exponentials": (
        "    unnormalised = torch.exp(scores)\n    if mask is not None:\n        unnormalised = unnormalised * mask\n"
        "    total = unnormalised.sum(dim=-1, keepdim=True)\n"
        "    weights = unnormalised / torch.where(total > 0, total, torch.ones_like(total))\n",
        "    weights = masked_softmax(scores, mask)\n"),
    "sdpa/averages_the_keys": ("weights @ key[..., :value.size(-1)]", "weights @ value"),
    "sdpa/detached_values": ("value.detach()", "value"),
    "sdpa/loop_over_batch": (
        "    if query.dim() > 2:\n        B = query.shape[0]\n        def pick(t, i):\n"
        "            return t[i] if t is not None and t.dim() == query.dim() and t.shape[0] == B else t\n"
        "        pairs = [scaled_dot_product_attention(query[i], pick(key, i), pick(value, i), pick(mask, i)) for i in range(B)]\n"
        "        return torch.stack([o for o, _ in pairs]), torch.stack([w for _, w in pairs])\n", ""),
    # --- AdditiveAttention
    "additive/no_tanh": ("self.w_v(hidden)", "self.w_v(torch.tanh(hidden))"),
    "additive/relu_instead_of_tanh": ("torch.relu", "torch.tanh"),
    "additive/layers_with_bias": (
        "hidden_dim)\n        self.W_k = nn.Linear(key_dim, hidden_dim)\n        self.w_v = nn.Linear(hidden_dim, 1)\n",
        "hidden_dim, bias=False)\n        self.W_k = nn.Linear(key_dim, hidden_dim, bias=False)\n"
        "        self.w_v = nn.Linear(hidden_dim, 1, bias=False)\n"),
    "additive/sum_instead_of_w_v": ("torch.tanh(hidden).sum(-1)", "self.w_v(torch.tanh(hidden))[..., 0]"),
    "additive/softmax_over_queries": (
        "torch.softmax(scores, dim=-2)\n        if mask is not None:\n            alpha = alpha * mask\n",
        "masked_softmax(scores, mask)\n"),
    "additive/mask_ignored": ("torch.softmax(scores, dim=-1)", "masked_softmax(scores, mask)"),
    "additive/pairs_position_by_position": (
        "        hidden = self.W_q(query) + self.W_k(key)[..., :query.size(-2), :]\n"
        "        scores = self.w_v(torch.tanh(hidden))\n"
        "        alpha = masked_softmax(scores.expand(*scores.shape[:-1], key.size(-2)), mask)\n",
        "        hidden = self.W_q(query)[..., :, None, :] + self.W_k(key)[..., None, :, :]\n"
        "        scores = self.w_v(torch.tanh(hidden))[..., 0]\n"
        "        alpha = masked_softmax(scores, mask)\n"),
    "additive/detached_scores": ("[..., 0].detach()", "[..., 0]"),
    "additive/loop_over_pairs": (
        "        B, T_q, T_k = query.shape[0], query.shape[1], key.shape[1]\n        rows = []\n"
        "        for i in range(T_q):\n"
        "            row = [self.w_v(torch.tanh(self.W_q(query[:, i]) + self.W_k(key[:, j])))[..., 0] for j in range(T_k)]\n"
        "            rows.append(torch.stack(row, dim=-1))\n"
        "        alpha = masked_softmax(torch.stack(rows, dim=-2), mask)\n",
        "        hidden = self.W_q(query).unsqueeze(2) + self.W_k(key).unsqueeze(1)\n"
        "        alpha = masked_softmax(self.w_v(torch.tanh(hidden))[..., 0], mask)\n"),
    # --- choose_bandwidth
    "bandwidth/error_on_training_points": ("nadaraya_watson(x_train, x_train, y_train, h)[0] - y_train",
                                           "nadaraya_watson(x_valid, x_train, y_train, h)[0] - y_valid"),
    "bandwidth/returns_the_index": ("return int(errors.argmin())", "return float(bandwidths[int(errors.argmin())])"),
    "bandwidth/largest_error": ("argmax", "argmin"),
    "bandwidth/root_mean_squared_error": (".mean().sqrt()", ".mean()"),
    "bandwidth/sum_not_mean": (".sum() for", ".mean() for"),
    "bandwidth/absolute_error": ("(nadaraya_watson(x_valid, x_train, y_train, h)[0] - y_valid).abs().mean()", _BW_ERROR),
    "bandwidth/roles_swapped": ("nadaraya_watson(x_train, x_valid, y_valid, h)[0] - y_train",
                                "nadaraya_watson(x_valid, x_train, y_train, h)[0] - y_valid"),
    "bandwidth/errors_as_a_list": (f"[float({_BW_ERROR}) for h in bandwidths]\n"
                                   "    return float(bandwidths[errors.index(min(errors))]), errors\n",
                                   f"[{_BW_ERROR} for h in bandwidths]\n"
                                   "    return float(bandwidths[errors.index(min(errors))]), torch.stack(errors)\n"),
}
