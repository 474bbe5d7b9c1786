"""Wrong implementations of the graded functions of 01_attention (see tests/mutants/__init__.py)."""
from tests.mutants import Mutant

ASSIGNMENT = "01_attention"


def masked_softmax(body, why, fails=()):
    """A mutant of the masked_softmax solution cell with the given function body."""
    source = "def masked_softmax(scores, mask=None):\n" + body.strip("\n") + "\n"
    return Mutant(cell="masked_softmax", source=source, why=why, fails=tuple(fails))


MUTANTS = {
    "masked_softmax/softmax_over_first_dim": masked_softmax("""
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=0).nan_to_num(0.0)
""", "softmax over the first dimension instead of the last (keys)",
        fails=["masked_softmax_values"]),

    "masked_softmax/mask_after_softmax": masked_softmax("""
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = weights * mask
    return weights
""", "mask applied after the softmax, so the kept weights no longer sum to 1",
        fails=["masked_softmax_masks"]),

    "masked_softmax/fill_with_zero": masked_softmax("""
    if mask is not None:
        scores = scores.masked_fill(~mask, 0.0)
    return torch.softmax(scores, dim=-1)
""", "masked scores set to 0 instead of -inf (exp(0) = 1, so masked keys keep weight)",
        fails=["masked_softmax_masks"]),

    "masked_softmax/multiply_scores_by_mask": masked_softmax("""
    if mask is not None:
        scores = scores * mask
    return torch.softmax(scores, dim=-1)
""", "scores multiplied by the mask, which sets masked scores to 0, not -inf",
        fails=["masked_softmax_masks"]),

    "masked_softmax/inverted_mask": masked_softmax("""
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    return torch.softmax(scores, dim=-1).nan_to_num(0.0)
""", "mask convention inverted (True taken to mean 'blocked', as in nn.MultiheadAttention)",
        fails=["masked_softmax_masks"]),

    "masked_softmax/mask_ignored": masked_softmax("""
    return torch.softmax(scores, dim=-1)
""", "the mask is accepted but never used", fails=["masked_softmax_masks"]),

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
        fails=["masked_softmax_stability"]),

    "masked_softmax/not_normalised": masked_softmax("""
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.exp(scores - scores.amax(dim=-1, keepdim=True)).nan_to_num(0.0)
""", "exponentials never divided by their sum", fails=["masked_softmax_values"]),

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
}
