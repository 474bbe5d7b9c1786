"""The mistakes of 01_attention, each declared once: what the student believed, the fix, the book section, and the
wrong code (autograder/mistakes.py explains what is derived from them). Never released to students."""
from autograder.mistakes import Mistake, Wrong

MISTAKES = [
    # --- nadaraya_watson -------------------------------------------------------------------------------------
    Mistake("nw.bandwidth-not-squared", "nadaraya_watson",
            believed="the squared distances are divided by 2h instead of 2h²",
            fix="divide by 2 * bandwidth ** 2: -(q - k) ** 2 / (2 * bandwidth ** 2)",
            section="ch01-nadaraya-watson",
            wrong=[
                Wrong("nadaraya_watson/bandwidth_not_squared",
                      source="""\
def nadaraya_watson(queries, keys, values, bandwidth=1.0):
    logits = -(queries[:, None] - keys[None, :]) ** 2 / (2 * bandwidth)
    weights = torch.softmax(logits, dim=1)
    return weights @ values, weights
""",
                      fixed=("(2 * bandwidth)", "(2 * bandwidth ** 2)"),
                      fails=("nadaraya_watson_visible", "nadaraya_watson_values")),
            ]),
    Mistake("nw.missing-factor-two", "nadaraya_watson",
            believed="the squared distances are divided by h² instead of 2h²",
            fix="divide by 2 * bandwidth ** 2, with the factor 2 of the Gaussian kernel",
            section="ch01-nadaraya-watson",
            wrong=[
                Wrong("nadaraya_watson/missing_factor_two",
                      source="""\
def nadaraya_watson(queries, keys, values, bandwidth=1.0):
    logits = -(queries[:, None] - keys[None, :]) ** 2 / bandwidth ** 2
    weights = torch.softmax(logits, dim=1)
    return weights @ values, weights
""",
                      fixed=("/ bandwidth ** 2", "/ (2 * bandwidth ** 2)"),
                      fails=("nadaraya_watson_visible", "nadaraya_watson_values")),
            ]),
    Mistake("nw.bandwidth-ignored", "nadaraya_watson",
            believed="the bandwidth is never used",
            fix="divide the squared distances by 2 * bandwidth ** 2, with the bandwidth argument",
            section="ch01-nadaraya-watson",
            wrong=[
                Wrong("nadaraya_watson/bandwidth_ignored",
                      source="""\
def nadaraya_watson(queries, keys, values, bandwidth=1.0):
    logits = -(queries[:, None] - keys[None, :]) ** 2 / 2
    weights = torch.softmax(logits, dim=1)
    return weights @ values, weights
""",
                      fixed=("** 2 / 2\n", "** 2 / (2 * bandwidth ** 2)\n"),
                      fails=("nadaraya_watson_visible", "nadaraya_watson_values")),
            ]),
    Mistake("nw.absolute-distance", "nadaraya_watson",
            believed="the kernel uses |q - k| instead of the squared distance (q - k)²",
            fix="square the differences: -(q - k) ** 2 / (2 * bandwidth ** 2)",
            section="ch01-nadaraya-watson",
            wrong=[
                Wrong("nadaraya_watson/absolute_distance",
                      source="""\
def nadaraya_watson(queries, keys, values, bandwidth=1.0):
    logits = -(queries[:, None] - keys[None, :]).abs() / (2 * bandwidth ** 2)
    weights = torch.softmax(logits, dim=1)
    return weights @ values, weights
""",
                      fixed=(".abs()", " ** 2"),
                      fails=("nadaraya_watson_visible", "nadaraya_watson_values")),
            ]),
    Mistake("nw.sign-flipped", "nadaraya_watson",
            believed="the minus sign is missing, so the farthest keys get the most weight",
            fix="negate the scores: -(q - k) ** 2 / (2 * bandwidth ** 2), the closer the key the higher the score",
            section="ch01-nadaraya-watson",
            wrong=[
                Wrong("nadaraya_watson/sign_flipped",
                      source="""\
def nadaraya_watson(queries, keys, values, bandwidth=1.0):
    logits = (queries[:, None] - keys[None, :]) ** 2 / (2 * bandwidth ** 2)
    weights = torch.softmax(logits, dim=1)
    return weights @ values, weights
""",
                      fixed=("logits = (", "logits = -("),
                      fails=("nadaraya_watson_visible", "nadaraya_watson_values")),
            ]),
    Mistake("nw.softmax-over-queries", "nadaraya_watson",
            believed="the softmax runs over the queries",
            fix="take the softmax over the keys, the last dimension (dim=-1) of the (n_q, n_k) scores",
            section="ch01-lookup",
            wrong=[
                Wrong("nadaraya_watson/softmax_over_queries",
                      source="""\
def nadaraya_watson(queries, keys, values, bandwidth=1.0):
    logits = -(queries[:, None] - keys[None, :]) ** 2 / (2 * bandwidth ** 2)
    weights = torch.softmax(logits, dim=0)
    return weights @ values, weights
""",
                      fixed=("dim=0", "dim=-1"),
                      fails=("nadaraya_watson_visible", "nadaraya_watson_values")),
            ]),
    Mistake("nw.weights-transposed", "nadaraya_watson",
            believed="the weights are returned as (n_k, n_q)",
            fix="return the weights with one row per query, shape (n_q, n_k): scores from queries[:, None] - keys[None, :], softmax over dim=-1, predictions weights @ values",
            section="ch01-nadaraya-watson",
            wrong=[
                Wrong("nadaraya_watson/transposed_weights",
                      source="""\
def nadaraya_watson(queries, keys, values, bandwidth=1.0):
    logits = -(keys[:, None] - queries[None, :]) ** 2 / (2 * bandwidth ** 2)
    weights = torch.softmax(logits, dim=0)
    return weights.T @ values, weights
""",
                      fixed=("-(keys[:, None] - queries[None, :]) ** 2 / (2 * bandwidth ** 2)\n    weights = torch.softmax(logits, dim=0)\n    return weights.T @ values", "-(queries[:, None] - keys[None, :]) ** 2 / (2 * bandwidth ** 2)\n    weights = torch.softmax(logits, dim=-1)\n    return weights @ values"),
                      fails=("nadaraya_watson_visible", "nadaraya_watson_values")),
            ]),
    Mistake("nw.averages-keys", "nadaraya_watson",
            believed="the weights average the keys instead of the values",
            fix="return weights @ values",
            section="ch01-lookup",
            wrong=[
                Wrong("nadaraya_watson/averages_the_keys",
                      source="""\
def nadaraya_watson(queries, keys, values, bandwidth=1.0):
    logits = -(queries[:, None] - keys[None, :]) ** 2 / (2 * bandwidth ** 2)
    weights = torch.softmax(logits, dim=1)
    return weights @ keys, weights
""",
                      fixed=("weights @ keys", "weights @ values"),
                      fails=("nadaraya_watson_visible", "nadaraya_watson_values")),
            ]),
    Mistake("nw.nan-far-query", "nadaraya_watson",
            believed="normalising exp(...) by hand gives 0 / 0 = NaN for a query far from every key",
            fix="compute the weights as torch.softmax(-(q - k) ** 2 / (2 * bandwidth ** 2), dim=-1), which subtracts the row maximum first",
            section="ch01-softmax-stability",
            wrong=[
                Wrong("nadaraya_watson/unstable_normalised_kernel",
                      source="""\
def nadaraya_watson(queries, keys, values, bandwidth=1.0):
    kernel = torch.exp(-(queries[:, None] - keys[None, :]) ** 2 / (2 * bandwidth ** 2))
    weights = kernel / kernel.sum(dim=1, keepdim=True)
    return weights @ values, weights
""",
                      fixed=("kernel = torch.exp(-(queries[:, None] - keys[None, :]) ** 2 / (2 * bandwidth ** 2))\n    weights = kernel / kernel.sum(dim=1, keepdim=True)", "weights = torch.softmax(-(queries[:, None] - keys[None, :]) ** 2 / (2 * bandwidth ** 2), dim=-1)"),
                      fails=("nadaraya_watson_visible", "nadaraya_watson_far_queries")),
            ]),
    Mistake("nw.python-loop", "nadaraya_watson",
            believed="a Python loop over the queries",
            fix="compare every query with every key at once by broadcasting, queries[:, None] - keys[None, :] of shape (n_q, n_k), and take the softmax over the keys (dim=-1)",
            section="ch01-nadaraya-watson",
            detect=False,
            wrong=[
                Wrong("nadaraya_watson/loop_over_queries",
                      source="""\
def nadaraya_watson(queries, keys, values, bandwidth=1.0):
    rows = [torch.softmax(-(q - keys) ** 2 / (2 * bandwidth ** 2), dim=0) for q in queries]
    weights = torch.stack(rows) if rows else torch.zeros(0, len(keys), dtype=keys.dtype)
    return weights @ values, weights
""",
                      fixed=("rows = [torch.softmax(-(q - keys) ** 2 / (2 * bandwidth ** 2), dim=0) for q in queries]\n    weights = torch.stack(rows) if rows else torch.zeros(0, len(keys), dtype=keys.dtype)", "weights = torch.softmax(-(queries[:, None] - keys[None, :]) ** 2 / (2 * bandwidth ** 2), dim=-1)"),
                      fails=("nadaraya_watson_no_loops",)),
            ]),
    # --- masked_softmax --------------------------------------------------------------------------------------
    Mistake("ms.wrong-dim", "masked_softmax",
            believed="the softmax runs over another dimension than the keys",
            fix="take the softmax over the last dimension (dim=-1), the keys",
            section="ch01-lookup",
            wrong=[
                Wrong("masked_softmax/softmax_over_first_dim",
                      source="""\
def masked_softmax(scores, mask=None):
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=0).nan_to_num(0.0)
""",
                      fixed=("dim=0", "dim=-1"),
                      fails=("masked_softmax_visible", "masked_softmax_values")),
            ]),
    Mistake("ms.not-normalised", "masked_softmax",
            believed="the exponentials are never divided by their sum",
            fix="divide the exponentials by their sum over the last dimension (keepdim=True), replaced by 1 where it is 0",
            section="ch01-lookup",
            wrong=[
                Wrong("masked_softmax/not_normalised",
                      source="""\
def masked_softmax(scores, mask=None):
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.exp(scores - scores.amax(dim=-1, keepdim=True)).nan_to_num(0.0)
""",
                      fixed=("    return torch.exp(scores - scores.amax(dim=-1, keepdim=True)).nan_to_num(0.0)\n", "    unnormalised = torch.exp(scores - scores.amax(dim=-1, keepdim=True)).nan_to_num(0.0)\n    total = unnormalised.sum(dim=-1, keepdim=True)\n    return unnormalised / torch.where(total > 0, total, torch.ones_like(total))\n"),
                      fails=("masked_softmax_visible", "masked_softmax_values")),
            ]),
    Mistake("ms.mask-inverted", "masked_softmax",
            believed="the mask is read the wrong way round (True taken for \"blocked\")",
            fix="True means \"may attend\": set the scores to -inf where the mask is False (~mask)",
            section="ch01-mask-conventions",
            wrong=[
                Wrong("masked_softmax/inverted_mask",
                      source="""\
def masked_softmax(scores, mask=None):
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    return torch.softmax(scores, dim=-1).nan_to_num(0.0)
""",
                      fixed=("masked_fill(mask,", "masked_fill(~mask,"),
                      fails=("masked_softmax_visible", "masked_softmax_masks")),
            ]),
    Mistake("ms.mask-ignored", "masked_softmax",
            believed="the mask is never used",
            fix="set the scores to -inf where the mask is False (scores.masked_fill(~mask, float(\"-inf\"))), then subtract the row maximum (0 where it is -inf) before torch.exp and divide by the row sum (1 where it is 0), so that a fully masked row gets weights of 0",
            section="ch01-masking",
            wrong=[
                Wrong("masked_softmax/mask_ignored",
                      source="""\
def masked_softmax(scores, mask=None):
    return torch.softmax(scores, dim=-1)
""",
                      fixed=("    return torch.softmax(scores, dim=-1)\n", "    if mask is not None:\n        scores = scores.masked_fill(~mask, float(\"-inf\"))\n    row_max = scores.amax(dim=-1, keepdim=True)\n    unnormalised = torch.exp(scores - torch.where(row_max == float(\"-inf\"), 0.0, row_max))\n    total = unnormalised.sum(dim=-1, keepdim=True)\n    return unnormalised / torch.where(total > 0, total, torch.ones_like(total))\n"),
                      fails=("masked_softmax_visible", "masked_softmax_masks")),
            ]),
    Mistake("ms.mask-after-softmax", "masked_softmax",
            believed="the mask is applied after the softmax, so the kept weights no longer sum to 1",
            fix="apply the mask before the exponentials: set masked scores to -inf (scores.masked_fill(~mask, float(\"-inf\"))), then subtract the row maximum (0 where it is -inf) before torch.exp and divide by the row sum (1 where it is 0), so that a fully masked row gets weights of 0",
            section="ch01-masking",
            wrong=[
                Wrong("masked_softmax/mask_after_softmax",
                      source="""\
def masked_softmax(scores, mask=None):
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = weights * mask
    return weights
""",
                      fixed=("    weights = torch.softmax(scores, dim=-1)\n    if mask is not None:\n        weights = weights * mask\n    return weights\n", "    if mask is not None:\n        scores = scores.masked_fill(~mask, float(\"-inf\"))\n    row_max = scores.amax(dim=-1, keepdim=True)\n    unnormalised = torch.exp(scores - torch.where(row_max == float(\"-inf\"), 0.0, row_max))\n    total = unnormalised.sum(dim=-1, keepdim=True)\n    return unnormalised / torch.where(total > 0, total, torch.ones_like(total))\n"),
                      fails=("masked_softmax_visible", "masked_softmax_masks")),
            ]),
    Mistake("ms.fill-zero", "masked_softmax",
            believed="masked scores become 0 (filled with 0, or multiplied by the mask), and exp(0) = 1 keeps weight on masked keys",
            fix="set masked scores to -inf (torch.where(mask, scores, -inf)), not 0, then subtract the row maximum (0 where it is -inf) before torch.exp and divide by the row sum (1 where it is 0), so that a fully masked row gets weights of 0",
            section="ch01-masking",
            wrong=[
                Wrong("masked_softmax/fill_with_zero",
                      source="""\
def masked_softmax(scores, mask=None):
    if mask is not None:
        scores = scores.masked_fill(~mask, 0.0)
    return torch.softmax(scores, dim=-1)
""",
                      fixed=("0.0)\n    return torch.softmax(scores, dim=-1)\n", "float(\"-inf\"))\n    row_max = scores.amax(dim=-1, keepdim=True)\n    unnormalised = torch.exp(scores - torch.where(row_max == float(\"-inf\"), 0.0, row_max))\n    total = unnormalised.sum(dim=-1, keepdim=True)\n    return unnormalised / torch.where(total > 0, total, torch.ones_like(total))\n"),
                      fails=("masked_softmax_visible", "masked_softmax_masks"),
                      note="masked scores set to 0 instead of -inf (exp(0) = 1, so masked keys keep weight)"),
                Wrong("masked_softmax/multiply_scores_by_mask",
                      source="""\
def masked_softmax(scores, mask=None):
    if mask is not None:
        scores = scores * mask
    return torch.softmax(scores, dim=-1)
""",
                      fixed=("scores * mask\n    return torch.softmax(scores, dim=-1)\n", "torch.where(mask, scores, float(\"-inf\"))\n    row_max = scores.amax(dim=-1, keepdim=True)\n    unnormalised = torch.exp(scores - torch.where(row_max == float(\"-inf\"), 0.0, row_max))\n    total = unnormalised.sum(dim=-1, keepdim=True)\n    return unnormalised / torch.where(total > 0, total, torch.ones_like(total))\n"),
                      fails=("masked_softmax_visible", "masked_softmax_masks"),
                      note="scores multiplied by the mask, which sets masked scores to 0, not -inf"),
            ]),
    Mistake("ms.fill-large-negative", "masked_softmax",
            believed="masked scores are set to a large negative number, so a fully masked row gets uniform weights",
            fix="fill masked scores with -inf, not a large negative number, then subtract the row maximum (0 where it is -inf) before torch.exp and divide by the row sum (1 where it is 0), so that a fully masked row gets weights of 0",
            section="ch01-fully-masked",
            wrong=[
                Wrong("masked_softmax/fill_with_minus_1e9",
                      source="""\
def masked_softmax(scores, mask=None):
    if mask is not None:
        scores = scores.masked_fill(~mask, -1e9)
    return torch.softmax(scores, dim=-1)
""",
                      fixed=("-1e9)\n    return torch.softmax(scores, dim=-1)\n", "float(\"-inf\"))\n    row_max = scores.amax(dim=-1, keepdim=True)\n    unnormalised = torch.exp(scores - torch.where(row_max == float(\"-inf\"), 0.0, row_max))\n    total = unnormalised.sum(dim=-1, keepdim=True)\n    return unnormalised / torch.where(total > 0, total, torch.ones_like(total))\n"),
                      fails=("masked_softmax_visible", "masked_softmax_fully_masked")),
            ]),
    Mistake("ms.nan-fully-masked", "masked_softmax",
            believed="a row whose keys are all masked gets NaN (softmax of all -inf)",
            fix="instead of torch.softmax, subtract the row maximum (0 where it is -inf) before torch.exp and divide by the row sum (1 where it is 0), so that a fully masked row gets weights of 0",
            section="ch01-fully-masked",
            wrong=[
                Wrong("masked_softmax/nan_on_fully_masked_rows",
                      source="""\
def masked_softmax(scores, mask=None):
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1)
""",
                      fixed=("    return torch.softmax(scores, dim=-1)\n", "    row_max = scores.amax(dim=-1, keepdim=True)\n    unnormalised = torch.exp(scores - torch.where(row_max == float(\"-inf\"), 0.0, row_max))\n    total = unnormalised.sum(dim=-1, keepdim=True)\n    return unnormalised / torch.where(total > 0, total, torch.ones_like(total))\n"),
                      fails=("masked_softmax_visible", "masked_softmax_fully_masked")),
            ]),
    Mistake("ms.overflow", "masked_softmax",
            believed="the exponentials of large scores overflow",
            fix="set masked scores to -inf before torch.exp, and subtract the row maximum (0 where it is -inf, a row with no kept key) from the scores first: the softmax does not change",
            section="ch01-softmax-stability",
            wrong=[
                Wrong("masked_softmax/no_max_subtraction",
                      source="""\
def masked_softmax(scores, mask=None):
    unnormalised = torch.exp(scores)
    if mask is not None:
        unnormalised = unnormalised * mask
    total = unnormalised.sum(dim=-1, keepdim=True)
    return unnormalised / torch.where(total > 0, total, torch.ones_like(total))
""",
                      fixed=("    unnormalised = torch.exp(scores)\n", "    if mask is not None:\n        scores = scores.masked_fill(~mask, float(\"-inf\"))\n    row_max = scores.amax(dim=-1, keepdim=True)\n    unnormalised = torch.exp(scores - torch.where(row_max == float(\"-inf\"), 0.0, row_max))\n"),
                      fails=("masked_softmax_visible", "masked_softmax_stability")),
            ]),
    Mistake("ms.dtype-not-kept", "masked_softmax",
            believed="the weights do not keep the dtype of the scores",
            fix="do not convert the scores (no .float()); make every constant with dtype=scores.dtype",
            section="ch01-sdpa-formula",
            wrong=[
                Wrong("masked_softmax/dtype_not_kept",
                      source="""\
def masked_softmax(scores, mask=None):
    scores = scores.float()
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1).nan_to_num(0.0)
""",
                      fixed=("    scores = scores.float()\n", ""),
                      fails=("masked_softmax_values",)),
            ]),
    Mistake("ms.in-place", "masked_softmax",
            believed="the caller's scores are modified in place",
            fix="use masked_fill or torch.where, which return a new tensor, not masked_fill_ or another in-place operation",
            section="ch01-masking",
            wrong=[
                Wrong("masked_softmax/modifies_input_in_place",
                      source="""\
def masked_softmax(scores, mask=None):
    if mask is not None:
        scores.masked_fill_(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1).nan_to_num(0.0)
""",
                      fixed=("scores.masked_fill_(", "scores = scores.masked_fill("),
                      fails=("masked_softmax_masks",)),
            ]),
    Mistake("ms.no-gradient", "masked_softmax",
            believed="the scores are cut from the autograd graph, so no gradient flows back",
            fix="do not call .detach(), .data or torch.no_grad() on the scores",
            section="ch01-lookup",
            wrong=[
                Wrong("masked_softmax/detached_from_graph",
                      source="""\
def masked_softmax(scores, mask=None):
    scores = scores.detach()
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1).nan_to_num(0.0)
""",
                      fixed=("    scores = scores.detach()\n", ""),
                      fails=("masked_softmax_fully_masked",)),
            ]),
    Mistake("ms.python-loop", "masked_softmax",
            believed="a Python loop over the rows",
            fix="work on whole tensors: torch.where, torch.softmax(..., dim=-1), amax(dim=-1, keepdim=True) and sum(dim=-1, keepdim=True) act on every row at once",
            section="ch01-masking",
            detect=False,
            wrong=[
                Wrong("masked_softmax/loop_over_rows",
                      source="""\
def masked_softmax(scores, mask=None):
    allowed = torch.ones_like(scores, dtype=torch.bool) if mask is None else mask.expand_as(scores)
    rows, keep = scores.reshape(-1, scores.shape[-1]), allowed.reshape(-1, scores.shape[-1])
    out = []
    for row, kept in zip(rows, keep):
        out.append(torch.softmax(row.masked_fill(~kept, float("-inf")), dim=0).nan_to_num(0.0))
    return torch.stack(out).reshape(scores.shape)
""",
                      fixed=("    rows, keep = scores.reshape(-1, scores.shape[-1]), allowed.reshape(-1, scores.shape[-1])\n    out = []\n    for row, kept in zip(rows, keep):\n        out.append(torch.softmax(row.masked_fill(~kept, float(\"-inf\")), dim=0).nan_to_num(0.0))\n    return torch.stack(out).reshape(scores.shape)\n", "    return torch.softmax(torch.where(allowed, scores, float(\"-inf\")), dim=-1).nan_to_num(0.0)\n"),
                      fails=("masked_softmax_no_loops",)),
            ]),
    # --- scaled_dot_product_attention ------------------------------------------------------------------------
    Mistake("sdpa.unscaled", "scaled_dot_product_attention",
            believed="the scores Q Kᵀ are not scaled",
            fix="divide the scores by sqrt(d_k) before the softmax",
            section="ch01-sdpa-scaling",
            wrong=[
                Wrong("sdpa/unscaled",
                      source="""\
def scaled_dot_product_attention(query, key, value, mask=None):
    weights = masked_softmax(query @ key.transpose(-2, -1), mask)
    return weights @ value, weights
""",
                      fixed=("key.transpose(-2, -1), mask)", "key.transpose(-2, -1) / math.sqrt(query.size(-1)), mask)"),
                      fails=("sdpa_visible", "sdpa_values")),
            ]),
    Mistake("sdpa.scaled-by-d-k", "scaled_dot_product_attention",
            believed="the scores are divided by d_k",
            fix="divide by sqrt(d_k), not by d_k",
            section="ch01-sdpa-scaling",
            wrong=[
                Wrong("sdpa/scaled_by_d_k",
                      source="""\
def scaled_dot_product_attention(query, key, value, mask=None):
    weights = masked_softmax(query @ key.transpose(-2, -1) / query.size(-1), mask)
    return weights @ value, weights
""",
                      fixed=("/ query.size(-1)", "/ math.sqrt(query.size(-1))"),
                      fails=("sdpa_visible", "sdpa_values")),
            ]),
    Mistake("sdpa.scaled-by-d-v", "scaled_dot_product_attention",
            believed="the scores are scaled by the width of the values",
            fix="scale by 1 / sqrt(d_k), the width of queries and keys (query.shape[-1])",
            section="ch01-sdpa-scaling",
            wrong=[
                Wrong("sdpa/scaled_by_d_v",
                      source="""\
def scaled_dot_product_attention(query, key, value, mask=None):
    weights = masked_softmax(query @ key.transpose(-2, -1) / math.sqrt(value.size(-1)), mask)
    return weights @ value, weights
""",
                      fixed=("math.sqrt(value.size(-1))", "math.sqrt(query.size(-1))"),
                      fails=("sdpa_visible", "sdpa_values")),
            ]),
    Mistake("sdpa.softmax-over-queries", "scaled_dot_product_attention",
            believed="the softmax runs over the queries",
            fix="take the softmax over the keys, the last dimension, with masked_softmax(scores, mask)",
            section="ch01-sdpa-formula",
            wrong=[
                Wrong("sdpa/softmax_over_queries",
                      source="""\
def scaled_dot_product_attention(query, key, value, mask=None):
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.size(-1))
    weights = torch.softmax(scores, dim=-2)
    if mask is not None:
        weights = weights * mask
    return weights @ value, weights
""",
                      fixed=("weights = torch.softmax(scores, dim=-2)\n    if mask is not None:\n        weights = weights * mask\n", "weights = masked_softmax(scores, mask)\n"),
                      fails=("sdpa_visible", "sdpa_values")),
            ]),
    Mistake("sdpa.averages-keys", "scaled_dot_product_attention",
            believed="the weights average the keys instead of the values",
            fix="return weights @ value",
            section="ch01-sdpa-formula",
            wrong=[
                Wrong("sdpa/averages_the_keys",
                      source="""\
def scaled_dot_product_attention(query, key, value, mask=None):
    weights = masked_softmax(query @ key.transpose(-2, -1) / math.sqrt(query.size(-1)), mask)
    return weights @ key[..., :value.size(-1)], weights
""",
                      fixed=("weights @ key[..., :value.size(-1)]", "weights @ value"),
                      fails=("sdpa_visible", "sdpa_values")),
            ]),
    Mistake("sdpa.key-t", "scaled_dot_product_attention",
            believed="key.T reverses every dimension of a batched tensor",
            fix="transpose only the last two dimensions: key.transpose(-2, -1)",
            section="ch01-sdpa-formula",
            wrong=[
                Wrong("sdpa/key_dot_T",
                      source="""\
def scaled_dot_product_attention(query, key, value, mask=None):
    weights = masked_softmax(query @ key.T / math.sqrt(query.size(-1)), mask)
    return weights @ value, weights
""",
                      fixed=("key.T", "key.transpose(-2, -1)"),
                      fails=("sdpa_visible", "sdpa_values")),
            ]),
    Mistake("sdpa.mask-inverted", "scaled_dot_product_attention",
            believed="the mask is read the wrong way round",
            fix="True means \"may attend\": pass the mask on to masked_softmax as it is, without ~",
            section="ch01-mask-conventions",
            wrong=[
                Wrong("sdpa/inverted_mask",
                      source="""\
def scaled_dot_product_attention(query, key, value, mask=None):
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.size(-1))
    weights = masked_softmax(scores, None if mask is None else ~mask)
    return weights @ value, weights
""",
                      fixed=("None if mask is None else ~mask", "mask"),
                      fails=("sdpa_visible", "sdpa_masks")),
            ]),
    Mistake("sdpa.mask-ignored", "scaled_dot_product_attention",
            believed="the mask is never used",
            fix="pass the mask on to masked_softmax",
            section="ch01-masking",
            wrong=[
                Wrong("sdpa/mask_ignored",
                      source="""\
def scaled_dot_product_attention(query, key, value, mask=None):
    weights = masked_softmax(query @ key.transpose(-2, -1) / math.sqrt(query.size(-1)))
    return weights @ value, weights
""",
                      fixed=("math.sqrt(query.size(-1)))", "math.sqrt(query.size(-1)), mask)"),
                      fails=("sdpa_visible", "sdpa_masks", "sdpa_gradients")),
            ]),
    Mistake("sdpa.nan-fully-masked", "scaled_dot_product_attention",
            believed="a query whose keys are all masked gets NaN",
            fix="compute the weights with masked_softmax(scores, mask), which gives a fully masked row weights of 0",
            section="ch01-fully-masked",
            wrong=[
                Wrong("sdpa/nan_for_fully_masked_query",
                      source="""\
def scaled_dot_product_attention(query, key, value, mask=None):
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ value, weights
""",
                      fixed=("    if mask is not None:\n        scores = scores.masked_fill(~mask, float(\"-inf\"))\n    weights = torch.softmax(scores, dim=-1)\n", "    weights = masked_softmax(scores, mask)\n"),
                      fails=("sdpa_masks",)),
            ]),
    Mistake("sdpa.overflow", "scaled_dot_product_attention",
            believed="large scores overflow (exp of raw scores)",
            fix="compute the weights with masked_softmax(scores, mask), which subtracts the row maximum first",
            section="ch01-softmax-stability",
            wrong=[
                Wrong("sdpa/unstable_exponentials",
                      source="""\
def scaled_dot_product_attention(query, key, value, mask=None):
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.size(-1))
    unnormalised = torch.exp(scores)
    if mask is not None:
        unnormalised = unnormalised * mask
    total = unnormalised.sum(dim=-1, keepdim=True)
    weights = unnormalised / torch.where(total > 0, total, torch.ones_like(total))
    return weights @ value, weights
""",
                      fixed=("    unnormalised = torch.exp(scores)\n    if mask is not None:\n        unnormalised = unnormalised * mask\n    total = unnormalised.sum(dim=-1, keepdim=True)\n    weights = unnormalised / torch.where(total > 0, total, torch.ones_like(total))\n", "    weights = masked_softmax(scores, mask)\n"),
                      fails=("sdpa_large_scores",)),
            ]),
    Mistake("sdpa.no-gradient", "scaled_dot_product_attention",
            believed="part of the computation is cut from the autograd graph",
            fix="do not call .detach(), .data or torch.no_grad() on the way to the output",
            section="ch01-sdpa-formula",
            wrong=[
                Wrong("sdpa/detached_values",
                      source="""\
def scaled_dot_product_attention(query, key, value, mask=None):
    weights = masked_softmax(query @ key.transpose(-2, -1) / math.sqrt(query.size(-1)), mask)
    return weights @ value.detach(), weights
""",
                      fixed=("value.detach()", "value"),
                      fails=("sdpa_gradients",)),
            ]),
    Mistake("sdpa.python-loop", "scaled_dot_product_attention",
            believed="a Python loop over the batch",
            fix="remove the loop over the batch: @ (torch.matmul), transpose(-2, -1) and masked_softmax work on any leading dimensions",
            section="ch01-sdpa-formula",
            detect=False,
            wrong=[
                Wrong("sdpa/loop_over_batch",
                      source="""\
def scaled_dot_product_attention(query, key, value, mask=None):
    if query.dim() > 2:
        B = query.shape[0]
        def pick(t, i):
            return t[i] if t is not None and t.dim() == query.dim() and t.shape[0] == B else t
        pairs = [scaled_dot_product_attention(query[i], pick(key, i), pick(value, i), pick(mask, i)) for i in range(B)]
        return torch.stack([o for o, _ in pairs]), torch.stack([w for _, w in pairs])
    weights = masked_softmax(query @ key.transpose(-2, -1) / math.sqrt(query.size(-1)), mask)
    return weights @ value, weights
""",
                      fixed=("    if query.dim() > 2:\n        B = query.shape[0]\n        def pick(t, i):\n            return t[i] if t is not None and t.dim() == query.dim() and t.shape[0] == B else t\n        pairs = [scaled_dot_product_attention(query[i], pick(key, i), pick(value, i), pick(mask, i)) for i in range(B)]\n        return torch.stack([o for o, _ in pairs]), torch.stack([w for _, w in pairs])\n", ""),
                      fails=("sdpa_no_loops",)),
            ]),
    # --- AdditiveAttention -----------------------------------------------------------------------------------
    Mistake("add.bias", "AdditiveAttention",
            believed="the layers have biases (the default of nn.Linear)",
            fix="create W_q, W_k and w_v with bias=False",
            section="scoring-functions",
            wrong=[
                Wrong("additive/layers_with_bias",
                      source="""\
class AdditiveAttention(nn.Module):
    def __init__(self, query_dim, key_dim, hidden_dim):
        super().__init__()
        self.W_q = nn.Linear(query_dim, hidden_dim)
        self.W_k = nn.Linear(key_dim, hidden_dim)
        self.w_v = nn.Linear(hidden_dim, 1)

    def forward(self, query, key, value, mask=None):
        hidden = self.W_q(query)[..., :, None, :] + self.W_k(key)[..., None, :, :]
        scores = self.w_v(torch.tanh(hidden))[..., 0]
        alpha = masked_softmax(scores, mask)
        return torch.matmul(alpha, value), alpha
""",
                      fixed=("hidden_dim)\n        self.W_k = nn.Linear(key_dim, hidden_dim)\n        self.w_v = nn.Linear(hidden_dim, 1)\n", "hidden_dim, bias=False)\n        self.W_k = nn.Linear(key_dim, hidden_dim, bias=False)\n        self.w_v = nn.Linear(hidden_dim, 1, bias=False)\n"),
                      fails=("additive_visible", "additive_values")),
            ]),
    Mistake("add.no-tanh", "AdditiveAttention",
            believed="the tanh is missing, so the score is linear",
            fix="apply torch.tanh to W_q q + W_k k before w_v",
            section="scoring-functions",
            wrong=[
                Wrong("additive/no_tanh",
                      source="""\
class AdditiveAttention(nn.Module):
    def __init__(self, query_dim, key_dim, hidden_dim):
        super().__init__()
        self.W_q = nn.Linear(query_dim, hidden_dim, bias=False)
        self.W_k = nn.Linear(key_dim, hidden_dim, bias=False)
        self.w_v = nn.Linear(hidden_dim, 1, bias=False)

    def forward(self, query, key, value, mask=None):
        hidden = self.W_q(query)[..., :, None, :] + self.W_k(key)[..., None, :, :]
        scores = self.w_v(hidden)[..., 0]
        alpha = masked_softmax(scores, mask)
        return torch.matmul(alpha, value), alpha
""",
                      fixed=("self.w_v(hidden)", "self.w_v(torch.tanh(hidden))"),
                      fails=("additive_visible", "additive_values")),
            ]),
    Mistake("add.relu-not-tanh", "AdditiveAttention",
            believed="ReLU is used instead of tanh",
            fix="apply torch.tanh, not torch.relu, to W_q q + W_k k",
            section="scoring-functions",
            wrong=[
                Wrong("additive/relu_instead_of_tanh",
                      source="""\
class AdditiveAttention(nn.Module):
    def __init__(self, query_dim, key_dim, hidden_dim):
        super().__init__()
        self.W_q = nn.Linear(query_dim, hidden_dim, bias=False)
        self.W_k = nn.Linear(key_dim, hidden_dim, bias=False)
        self.w_v = nn.Linear(hidden_dim, 1, bias=False)

    def forward(self, query, key, value, mask=None):
        hidden = self.W_q(query)[..., :, None, :] + self.W_k(key)[..., None, :, :]
        scores = self.w_v(torch.relu(hidden))[..., 0]
        alpha = masked_softmax(scores, mask)
        return torch.matmul(alpha, value), alpha
""",
                      fixed=("torch.relu", "torch.tanh"),
                      fails=("additive_visible", "additive_values")),
            ]),
    Mistake("add.sum-not-w-v", "AdditiveAttention",
            believed="the hidden features are summed instead of scored by w_v",
            fix="reduce the hidden features with the learned vector: self.w_v(torch.tanh(hidden))[..., 0]",
            section="scoring-functions",
            wrong=[
                Wrong("additive/sum_instead_of_w_v",
                      source="""\
class AdditiveAttention(nn.Module):
    def __init__(self, query_dim, key_dim, hidden_dim):
        super().__init__()
        self.W_q = nn.Linear(query_dim, hidden_dim, bias=False)
        self.W_k = nn.Linear(key_dim, hidden_dim, bias=False)
        self.w_v = nn.Linear(hidden_dim, 1, bias=False)

    def forward(self, query, key, value, mask=None):
        hidden = self.W_q(query)[..., :, None, :] + self.W_k(key)[..., None, :, :]
        scores = torch.tanh(hidden).sum(-1)
        alpha = masked_softmax(scores, mask)
        return torch.matmul(alpha, value), alpha
""",
                      fixed=("torch.tanh(hidden).sum(-1)", "self.w_v(torch.tanh(hidden))[..., 0]"),
                      fails=("additive_visible", "additive_values", "additive_gradients")),
            ]),
    Mistake("add.pairs-by-position", "AdditiveAttention",
            believed="each query is scored only against the key at its own position",
            fix="score every (query, key) pair by broadcasting, hidden = self.W_q(query)[..., :, None, :] + self.W_k(key)[..., None, :, :] of shape (B, T_q, T_k, hidden_dim), and take its scores self.w_v(torch.tanh(hidden))[..., 0] without expand",
            section="scoring-functions",
            wrong=[
                Wrong("additive/pairs_position_by_position",
                      source="""\
class AdditiveAttention(nn.Module):
    def __init__(self, query_dim, key_dim, hidden_dim):
        super().__init__()
        self.W_q = nn.Linear(query_dim, hidden_dim, bias=False)
        self.W_k = nn.Linear(key_dim, hidden_dim, bias=False)
        self.w_v = nn.Linear(hidden_dim, 1, bias=False)

    def forward(self, query, key, value, mask=None):
        hidden = self.W_q(query) + self.W_k(key)[..., :query.size(-2), :]
        scores = self.w_v(torch.tanh(hidden))
        alpha = masked_softmax(scores.expand(*scores.shape[:-1], key.size(-2)), mask)
        return torch.matmul(alpha, value), alpha
""",
                      fixed=("        hidden = self.W_q(query) + self.W_k(key)[..., :query.size(-2), :]\n        scores = self.w_v(torch.tanh(hidden))\n        alpha = masked_softmax(scores.expand(*scores.shape[:-1], key.size(-2)), mask)\n", "        hidden = self.W_q(query)[..., :, None, :] + self.W_k(key)[..., None, :, :]\n        scores = self.w_v(torch.tanh(hidden))[..., 0]\n        alpha = masked_softmax(scores, mask)\n"),
                      fails=("additive_visible", "additive_values")),
            ]),
    Mistake("add.softmax-over-queries", "AdditiveAttention",
            believed="the softmax runs over the queries",
            fix="take masked_softmax(scores, mask), over the keys, the last dimension",
            section="ch01-lookup",
            wrong=[
                Wrong("additive/softmax_over_queries",
                      source="""\
class AdditiveAttention(nn.Module):
    def __init__(self, query_dim, key_dim, hidden_dim):
        super().__init__()
        self.W_q = nn.Linear(query_dim, hidden_dim, bias=False)
        self.W_k = nn.Linear(key_dim, hidden_dim, bias=False)
        self.w_v = nn.Linear(hidden_dim, 1, bias=False)

    def forward(self, query, key, value, mask=None):
        hidden = self.W_q(query)[..., :, None, :] + self.W_k(key)[..., None, :, :]
        scores = self.w_v(torch.tanh(hidden))[..., 0]
        alpha = torch.softmax(scores, dim=-2)
        if mask is not None:
            alpha = alpha * mask
        return torch.matmul(alpha, value), alpha
""",
                      fixed=("torch.softmax(scores, dim=-2)\n        if mask is not None:\n            alpha = alpha * mask\n", "masked_softmax(scores, mask)\n"),
                      fails=("additive_visible", "additive_values")),
            ]),
    Mistake("add.mask-ignored", "AdditiveAttention",
            believed="the mask is never used",
            fix="pass the mask on: masked_softmax(scores, mask)",
            section="ch01-masking",
            wrong=[
                Wrong("additive/mask_ignored",
                      source="""\
class AdditiveAttention(nn.Module):
    def __init__(self, query_dim, key_dim, hidden_dim):
        super().__init__()
        self.W_q = nn.Linear(query_dim, hidden_dim, bias=False)
        self.W_k = nn.Linear(key_dim, hidden_dim, bias=False)
        self.w_v = nn.Linear(hidden_dim, 1, bias=False)

    def forward(self, query, key, value, mask=None):
        hidden = self.W_q(query)[..., :, None, :] + self.W_k(key)[..., None, :, :]
        scores = self.w_v(torch.tanh(hidden))[..., 0]
        alpha = torch.softmax(scores, dim=-1)
        return torch.matmul(alpha, value), alpha
""",
                      fixed=("torch.softmax(scores, dim=-1)", "masked_softmax(scores, mask)"),
                      fails=("additive_visible", "additive_masks")),
            ]),
    Mistake("add.no-gradient", "AdditiveAttention",
            believed="the scores are cut from the autograd graph, so W_q, W_k and w_v never learn",
            fix="do not call .detach(), .data or torch.no_grad() on the way to the output",
            section="ch01-lookup",
            wrong=[
                Wrong("additive/detached_scores",
                      source="""\
class AdditiveAttention(nn.Module):
    def __init__(self, query_dim, key_dim, hidden_dim):
        super().__init__()
        self.W_q = nn.Linear(query_dim, hidden_dim, bias=False)
        self.W_k = nn.Linear(key_dim, hidden_dim, bias=False)
        self.w_v = nn.Linear(hidden_dim, 1, bias=False)

    def forward(self, query, key, value, mask=None):
        hidden = self.W_q(query)[..., :, None, :] + self.W_k(key)[..., None, :, :]
        scores = self.w_v(torch.tanh(hidden))[..., 0].detach()
        alpha = masked_softmax(scores, mask)
        return torch.matmul(alpha, value), alpha
""",
                      fixed=("[..., 0].detach()", "[..., 0]"),
                      fails=("additive_gradients",)),
            ]),
    Mistake("add.python-loop", "AdditiveAttention",
            believed="a Python loop over the queries and keys",
            fix="form the (B, T_q, T_k, hidden_dim) tensor of every pair at once by broadcasting, self.W_q(query).unsqueeze(2) + self.W_k(key).unsqueeze(1), and score it with self.w_v(torch.tanh(...))[..., 0]",
            section="scoring-functions",
            detect=False,
            wrong=[
                Wrong("additive/loop_over_pairs",
                      source="""\
class AdditiveAttention(nn.Module):
    def __init__(self, query_dim, key_dim, hidden_dim):
        super().__init__()
        self.W_q = nn.Linear(query_dim, hidden_dim, bias=False)
        self.W_k = nn.Linear(key_dim, hidden_dim, bias=False)
        self.w_v = nn.Linear(hidden_dim, 1, bias=False)

    def forward(self, query, key, value, mask=None):
        B, T_q, T_k = query.shape[0], query.shape[1], key.shape[1]
        rows = []
        for i in range(T_q):
            row = [self.w_v(torch.tanh(self.W_q(query[:, i]) + self.W_k(key[:, j])))[..., 0] for j in range(T_k)]
            rows.append(torch.stack(row, dim=-1))
        alpha = masked_softmax(torch.stack(rows, dim=-2), mask)
        return torch.matmul(alpha, value), alpha
""",
                      fixed=("        B, T_q, T_k = query.shape[0], query.shape[1], key.shape[1]\n        rows = []\n        for i in range(T_q):\n            row = [self.w_v(torch.tanh(self.W_q(query[:, i]) + self.W_k(key[:, j])))[..., 0] for j in range(T_k)]\n            rows.append(torch.stack(row, dim=-1))\n        alpha = masked_softmax(torch.stack(rows, dim=-2), mask)\n", "        hidden = self.W_q(query).unsqueeze(2) + self.W_k(key).unsqueeze(1)\n        alpha = masked_softmax(self.w_v(torch.tanh(hidden))[..., 0], mask)\n"),
                      fails=("additive_no_loops",)),
            ]),
    # --- choose_bandwidth ------------------------------------------------------------------------------------
    Mistake("bw.training-error", "choose_bandwidth",
            believed="the error is measured on the training points, where the smallest bandwidth always wins",
            fix="predict at x_valid (keys x_train, values y_train) and compare with y_valid",
            section="ch01-nadaraya-watson",
            wrong=[
                Wrong("bandwidth/error_on_training_points",
                      source="""\
def choose_bandwidth(x_train, y_train, x_valid, y_valid, bandwidths):
    errors = torch.stack([((nadaraya_watson(x_train, x_train, y_train, h)[0] - y_train) ** 2).mean() for h in bandwidths])
    return float(bandwidths[int(errors.argmin())]), errors
""",
                      fixed=("nadaraya_watson(x_train, x_train, y_train, h)[0] - y_train", "nadaraya_watson(x_valid, x_train, y_train, h)[0] - y_valid"),
                      fails=("bandwidth_visible", "bandwidth_errors", "bandwidth_outcome")),
            ]),
    Mistake("bw.roles-swapped", "choose_bandwidth",
            believed="the validation points are used as keys and the training points as queries",
            fix="call nadaraya_watson(x_valid, x_train, y_train, h): queries x_valid, keys x_train, values y_train, and compare with y_valid",
            section="ch01-nadaraya-watson",
            wrong=[
                Wrong("bandwidth/roles_swapped",
                      source="""\
def choose_bandwidth(x_train, y_train, x_valid, y_valid, bandwidths):
    errors = torch.stack([((nadaraya_watson(x_train, x_valid, y_valid, h)[0] - y_train) ** 2).mean() for h in bandwidths])
    return float(bandwidths[int(errors.argmin())]), errors
""",
                      fixed=("nadaraya_watson(x_train, x_valid, y_valid, h)[0] - y_train", "nadaraya_watson(x_valid, x_train, y_train, h)[0] - y_valid"),
                      fails=("bandwidth_visible", "bandwidth_errors")),
            ]),
    Mistake("bw.rmse", "choose_bandwidth",
            believed="the errors are root mean squared errors",
            fix="take the mean of the squared errors, without the square root",
            section="ch01-nadaraya-watson",
            wrong=[
                Wrong("bandwidth/root_mean_squared_error",
                      source="""\
def choose_bandwidth(x_train, y_train, x_valid, y_valid, bandwidths):
    errors = torch.stack([((nadaraya_watson(x_valid, x_train, y_train, h)[0] - y_valid) ** 2).mean().sqrt() for h in bandwidths])
    return float(bandwidths[int(errors.argmin())]), errors
""",
                      fixed=(".mean().sqrt()", ".mean()"),
                      fails=("bandwidth_visible", "bandwidth_errors")),
            ]),
    Mistake("bw.sum-not-mean", "choose_bandwidth",
            believed="the squared errors are summed instead of averaged",
            fix="take the mean of the squared errors (.mean()), not their sum",
            section="ch01-nadaraya-watson",
            wrong=[
                Wrong("bandwidth/sum_not_mean",
                      source="""\
def choose_bandwidth(x_train, y_train, x_valid, y_valid, bandwidths):
    errors = torch.stack([((nadaraya_watson(x_valid, x_train, y_train, h)[0] - y_valid) ** 2).sum() for h in bandwidths])
    return float(bandwidths[int(errors.argmin())]), errors
""",
                      fixed=(".sum() for", ".mean() for"),
                      fails=("bandwidth_visible", "bandwidth_errors")),
            ]),
    Mistake("bw.absolute-error", "choose_bandwidth",
            believed="the mean absolute error is used instead of the mean squared error",
            fix="square the differences before the mean: ((predictions - y_valid) ** 2).mean()",
            section="ch01-nadaraya-watson",
            wrong=[
                Wrong("bandwidth/absolute_error",
                      source="""\
def choose_bandwidth(x_train, y_train, x_valid, y_valid, bandwidths):
    errors = torch.stack([(nadaraya_watson(x_valid, x_train, y_train, h)[0] - y_valid).abs().mean() for h in bandwidths])
    return float(bandwidths[int(errors.argmin())]), errors
""",
                      fixed=("(nadaraya_watson(x_valid, x_train, y_train, h)[0] - y_valid).abs().mean()", "((nadaraya_watson(x_valid, x_train, y_train, h)[0] - y_valid) ** 2).mean()"),
                      fails=("bandwidth_visible", "bandwidth_errors")),
            ]),
    Mistake("bw.errors-not-a-tensor", "choose_bandwidth",
            believed="the errors are returned as a Python list",
            fix="keep each error a tensor (no float()) and return torch.stack(errors), of shape (len(bandwidths),)",
            section="ch01-nadaraya-watson",
            wrong=[
                Wrong("bandwidth/errors_as_a_list",
                      source="""\
def choose_bandwidth(x_train, y_train, x_valid, y_valid, bandwidths):
    errors = [float(((nadaraya_watson(x_valid, x_train, y_train, h)[0] - y_valid) ** 2).mean()) for h in bandwidths]
    return float(bandwidths[errors.index(min(errors))]), errors
""",
                      fixed=("[float(((nadaraya_watson(x_valid, x_train, y_train, h)[0] - y_valid) ** 2).mean()) for h in bandwidths]\n    return float(bandwidths[errors.index(min(errors))]), errors\n", "[((nadaraya_watson(x_valid, x_train, y_train, h)[0] - y_valid) ** 2).mean() for h in bandwidths]\n    return float(bandwidths[errors.index(min(errors))]), torch.stack(errors)\n"),
                      fails=("bandwidth_visible", "bandwidth_errors")),
            ]),
    Mistake("bw.returns-index", "choose_bandwidth",
            believed="the index of the best bandwidth is returned instead of the bandwidth",
            fix="return float(bandwidths[index]), the bandwidth itself",
            section="ch01-nadaraya-watson",
            wrong=[
                Wrong("bandwidth/returns_the_index",
                      source="""\
def choose_bandwidth(x_train, y_train, x_valid, y_valid, bandwidths):
    errors = torch.stack([((nadaraya_watson(x_valid, x_train, y_train, h)[0] - y_valid) ** 2).mean() for h in bandwidths])
    return int(errors.argmin()), errors
""",
                      fixed=("return int(errors.argmin())", "return float(bandwidths[int(errors.argmin())])"),
                      fails=("bandwidth_visible", "bandwidth_errors")),
            ]),
    Mistake("bw.largest-error", "choose_bandwidth",
            believed="the bandwidth with the largest error is chosen",
            fix="choose the smallest error: argmin, not argmax",
            section="ch01-nadaraya-watson",
            wrong=[
                Wrong("bandwidth/largest_error",
                      source="""\
def choose_bandwidth(x_train, y_train, x_valid, y_valid, bandwidths):
    errors = torch.stack([((nadaraya_watson(x_valid, x_train, y_train, h)[0] - y_valid) ** 2).mean() for h in bandwidths])
    return float(bandwidths[int(errors.argmax())]), errors
""",
                      fixed=("argmax", "argmin"),
                      fails=("bandwidth_visible", "bandwidth_errors", "bandwidth_outcome")),
            ]),
]
