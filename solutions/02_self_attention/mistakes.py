"""The mistakes of 02_self_attention, each declared once: what the student believed, the fix, the book section, and the
wrong code (autograder/mistakes.py explains what is derived from them). Never released to students."""
from autograder.mistakes import Mistake, Wrong

MISTAKES = [
    # --- causal_mask -----------------------------------------------------------------------------------------
    Mistake("causal.upper-triangle", "causal_mask",
            believed="the causal mask is the upper triangle: each query sees the future",
            fix="keep the lower triangle, True where the key index j <= the query index i: torch.ones(size, size, dtype=torch.bool).tril(), not triu()",
            section="ch02-causal-mask",
            wrong=[
                Wrong("causal_mask/upper_triangular",
                      edit=('>= rows.view(1, -1)', '<= rows.view(1, -1)'),
                      fixed=('<= rows.view(1, -1)', '>= rows.view(1, -1)'),
                      fails=("causal_mask_visible", "causal_mask_hidden")),
            ]),
    Mistake("causal.diagonal-masked", "causal_mask",
            believed="the diagonal is masked: a token may not attend to itself",
            fix="keep the diagonal: True where j <= i, that is tril() with no offset (tril(-1) drops the diagonal)",
            section="ch02-causal-mask",
            wrong=[
                Wrong("causal_mask/diagonal_masked",
                      edit=('>= rows.view(1, -1)', '> rows.view(1, -1)'),
                      fixed=('> rows.view(1, -1)', '>= rows.view(1, -1)'),
                      fails=("causal_mask_visible", "causal_mask_hidden")),
            ]),
    Mistake("causal.one-step-ahead", "causal_mask",
            believed="each query also sees the next token",
            fix="stop at the diagonal: True where j <= i, that is tril() with no offset (tril(1) lets each query see one key ahead)",
            section="ch02-causal-mask",
            wrong=[
                Wrong("causal_mask/one_step_ahead",
                      edit=('rows.view(-1, 1) >=', 'rows.view(-1, 1) + 1 >='),
                      fixed=(' + 1 >=', ' >='),
                      fails=("causal_mask_visible", "causal_mask_hidden")),
            ]),
    Mistake("causal.inverted", "causal_mask",
            believed="True marks the blocked entries (nn.MultiheadAttention's convention)",
            fix="return True where attending is allowed (j <= i): drop the ~ or compare the other way round",
            section="ch02-masks",
            wrong=[
                Wrong("causal_mask/inverted",
                      edit=('rows.view(-1, 1) >= rows', 'rows.view(-1, 1) < rows'),
                      fixed=('rows.view(-1, 1) < rows', 'rows.view(-1, 1) >= rows'),
                      fails=("causal_mask_visible", "causal_mask_hidden")),
                Wrong("causal_mask/triu_of_ones_above_the_diagonal",
                      source="""\
def causal_mask(size, device=None):
    return torch.triu(torch.ones(size, size, device=device), diagonal=1).bool()
""",
                      fixed=("torch.triu(torch.ones(size, size, device=device), diagonal=1)", "torch.tril(torch.ones(size, size, device=device))"),
                      fails=("causal_mask_visible", "causal_mask_hidden"),
                      note="the future keys marked with triu(diagonal=1) of a float tensor, turned to bool"),
            ]),
    Mistake("causal.float-mask", "causal_mask",
            believed="the mask is a float tensor of 0 and 1",
            fix="return a boolean mask: dtype=torch.bool (or a comparison such as key index <= query index), with no .float()",
            section="ch02-masks",
            wrong=[
                Wrong("causal_mask/float_mask",
                      edit=('return rows.view(-1, 1) >= rows.view(1, -1)', 'return (rows.view(-1, 1) >= rows.view(1, -1)).float()'),
                      fixed=('.float()', ''),
                      fails=("causal_mask_visible", "causal_mask_hidden")),
            ]),
    Mistake("causal.additive-mask", "causal_mask",
            believed="the mask is an additive float mask of 0 and -inf",
            fix="return the boolean mask itself, True where j <= i, not the 0 / -inf scores of generate_square_subsequent_mask",
            section="ch02-causal-mask",
            wrong=[
                Wrong("causal_mask/additive_float_mask",
                      edit=('return rows.view(-1, 1) >= rows.view(1, -1)', 'allowed = rows.view(-1, 1) >= rows.view(1, -1)\n    return torch.zeros(size, size, device=device).masked_fill(~allowed, float("-inf"))'),
                      fixed=('return torch.zeros(size, size, device=device).masked_fill(~allowed, float("-inf"))', 'return allowed'),
                      fails=("causal_mask_visible", "causal_mask_hidden")),
            ]),
    Mistake("causal.python-loop", "causal_mask",
            believed="the mask is built entry by entry in Python loops",
            fix="compare a column of query indices with a row of key indices, torch.arange(size)[None, :] <= torch.arange(size)[:, None], or use tril()",
            section="ch02-causal-mask",
            detect=False,
            wrong=[
                Wrong("causal_mask/nested_loops",
                      source="""\
def causal_mask(size, device=None):
    return torch.tensor([[j <= i for j in range(size)] for i in range(size)], dtype=torch.bool, device=device)
""",
                      fixed=("torch.tensor([[j <= i for j in range(size)] for i in range(size)], dtype=torch.bool, device=device)", "torch.arange(size, device=device)[None, :] <= torch.arange(size, device=device)[:, None]"),
                      fails=("causal_mask_no_loops",)),
            ]),
    # --- padding_mask ----------------------------------------------------------------------------------------
    Mistake("padding.inverted", "padding_mask",
            believed="True marks the padding instead of the real tokens",
            fix="return True at the real tokens: position < length (left=True: position >= max_len - length)",
            section="ch02-padding-mask",
            wrong=[
                Wrong("padding_mask/inverted",
                      source="""\
def padding_mask(lengths, max_len, left=False):
    real = torch.arange(max_len)[None, :] >= lengths[:, None]
    return real.flip(-1) if left else real
""",
                      fixed=(">= lengths[:, None]", "< lengths[:, None]"),
                      fails=("padding_mask_visible", "padding_mask_hidden")),
            ]),
    Mistake("padding.one-too-many", "padding_mask",
            believed="one padding position is counted as real (<= instead of <)",
            fix="positions count from 0: position j is real when j < length, strictly",
            section="ch02-padding-mask",
            wrong=[
                Wrong("padding_mask/off_by_one",
                      source="""\
def padding_mask(lengths, max_len, left=False):
    real = torch.arange(max_len)[None, :] <= lengths[:, None]
    return real.flip(-1) if left else real
""",
                      fixed=("<= lengths[:, None]", "< lengths[:, None]"),
                      fails=("padding_mask_visible", "padding_mask_hidden")),
            ]),
    Mistake("padding.counts-from-one", "padding_mask",
            believed="positions are counted from 1, so the last real token is masked",
            fix="count positions from 0: compare torch.arange(max_len) < length",
            section="ch02-padding-mask",
            wrong=[
                Wrong("padding_mask/counts_from_one",
                      source="""\
def padding_mask(lengths, max_len, left=False):
    real = torch.arange(1, max_len + 1)[None, :] < lengths[:, None]
    return real.flip(-1) if left else real
""",
                      fixed=("torch.arange(1, max_len + 1)", "torch.arange(max_len)"),
                      fails=("padding_mask_visible", "padding_mask_hidden")),
            ]),
    Mistake("padding.width-from-lengths", "padding_mask",
            believed="the mask is as wide as the longest sequence, not max_len",
            fix="make the mask max_len wide: use torch.arange(max_len), whatever the lengths",
            section="ch02-padding-mask",
            wrong=[
                Wrong("padding_mask/longest_length_instead_of_max_len",
                      source="""\
def padding_mask(lengths, max_len, left=False):
    real = torch.arange(int(lengths.max()))[None, :] < lengths[:, None]
    return real.flip(-1) if left else real
""",
                      fixed=("torch.arange(int(lengths.max()))", "torch.arange(max_len)"),
                      fails=("padding_mask_hidden",)),
            ]),
    Mistake("padding.transposed", "padding_mask",
            believed="the mask has shape (max_len, B) instead of (B, max_len)",
            fix="compare a row of positions with a column of lengths, torch.arange(max_len)[None, :] < lengths[:, None], which gives (B, max_len), and flip (left=True) along the positions, dim -1, not dim 0",
            section="ch02-padding-mask",
            wrong=[
                Wrong("padding_mask/transposed",
                      source="""\
def padding_mask(lengths, max_len, left=False):
    real = torch.arange(max_len)[:, None] < lengths[None, :]
    return real.flip(0) if left else real
""",
                      fixed=("torch.arange(max_len)[:, None] < lengths[None, :]\n    return real.flip(0)", "torch.arange(max_len)[None, :] < lengths[:, None]\n    return real.flip(-1)"),
                      fails=("padding_mask_visible", "padding_mask_hidden")),
            ]),
    Mistake("padding.float-mask", "padding_mask",
            believed="the mask is a float tensor of 0 and 1",
            fix="return the boolean comparison itself: no .float() (dtype torch.bool)",
            section="ch02-masks",
            wrong=[
                Wrong("padding_mask/float_mask",
                      source="""\
def padding_mask(lengths, max_len, left=False):
    real = (torch.arange(max_len)[None, :] < lengths[:, None]).float()
    return real.flip(-1) if left else real
""",
                      fixed=(".float()", ""),
                      fails=("padding_mask_visible", "padding_mask_hidden")),
            ]),
    Mistake("padding.left-ignored", "padding_mask",
            believed="left=True gives the mask of right padding",
            fix="with left=True put the padding first: True where position >= max_len - length",
            section="ch02-padding-mask",
            wrong=[
                Wrong("padding_mask/left_ignored",
                      edit=('    if left:\n        return positions.unsqueeze(0) >= (max_len - lengths).unsqueeze(1)\n', ''),
                      fixed=('    return positions.unsqueeze(0) < lengths', '    if left:\n        return positions.unsqueeze(0) >= (max_len - lengths).unsqueeze(1)\n    return positions.unsqueeze(0) < lengths'),
                      fails=("padding_mask_visible", "padding_mask_left")),
            ]),
    Mistake("padding.left-off-by-one", "padding_mask",
            believed="with left padding, the first real token is taken for padding (> instead of >=)",
            fix="with left=True, position j is real when j >= max_len - length (>=, not >)",
            section="ch02-padding-mask",
            wrong=[
                Wrong("padding_mask/left_off_by_one",
                      edit=('>= (max_len - lengths)', '> (max_len - lengths)'),
                      fixed=('> (max_len - lengths)', '>= (max_len - lengths)'),
                      fails=("padding_mask_visible", "padding_mask_left")),
            ]),
    Mistake("padding.python-loop", "padding_mask",
            believed="the mask is built one sequence at a time in a Python loop",
            fix="compare a row of positions (1, max_len) with a column of lengths (B, 1), or of max_len - lengths when left=True, in one broadcast comparison",
            section="ch02-padding-mask",
            detect=False,
            wrong=[
                Wrong("padding_mask/loop_over_batch",
                      source="""\
def padding_mask(lengths, max_len, left=False):
    rows = [torch.arange(max_len) >= max_len - n if left else torch.arange(max_len) < n for n in lengths.tolist()]
    return torch.stack(rows) if rows else torch.zeros(0, max_len, dtype=torch.bool)
""",
                      fixed=("rows = [torch.arange(max_len) >= max_len - n if left else torch.arange(max_len) < n for n in lengths.tolist()]\n    return torch.stack(rows) if rows else torch.zeros(0, max_len, dtype=torch.bool)", "positions = torch.arange(max_len)[None, :]\n    return positions >= max_len - lengths[:, None] if left else positions < lengths[:, None]"),
                      fails=("padding_mask_no_loops",)),
            ]),
    # --- self_attention_mask ---------------------------------------------------------------------------------
    Mistake("sa-mask.keys-only", "self_attention_mask",
            believed="only the padded keys are masked: the padded queries still attend to the real tokens",
            fix="also remove the padded queries: & the padding mask as a column, real[:, :, None] (B, T, 1)",
            section="ch02-padding-mask",
            wrong=[
                Wrong("self_attention_mask/keys_only",
                      edit=('real.unsqueeze(-1) & real.unsqueeze(-2)', 'real.unsqueeze(-2).expand(-1, max_len, -1)'),
                      fixed=('real.unsqueeze(-2).expand(-1, max_len, -1)', 'real.unsqueeze(-2).expand(-1, max_len, -1) & real.unsqueeze(-1)'),
                      fails=("self_attention_mask_visible", "self_attention_mask_right", "self_attention_mask_left")),
                Wrong("self_attention_mask/key_row_repeated",
                      source="""\
def self_attention_mask(lengths, max_len, causal=True, left=False):
    keys = padding_mask(lengths, max_len, left=left)[:, None, :]
    allowed = keys.repeat(1, max_len, 1)
    if causal:
        allowed = torch.logical_and(allowed, causal_mask(max_len))
    return allowed
""",
                      fixed=("keys.repeat(1, max_len, 1)", "keys & keys.transpose(1, 2)"),
                      fails=("self_attention_mask_visible", "self_attention_mask_right", "self_attention_mask_left"),
                      note="the row of real keys repeated for every query, with logical_and"),
            ]),
    Mistake("sa-mask.queries-only", "self_attention_mask",
            believed="only the padded queries are masked: the real tokens attend to the padding",
            fix="also mask the padded keys: & the padding mask as a row, real[:, None, :] (B, 1, T)",
            section="ch02-padding-mask",
            wrong=[
                Wrong("self_attention_mask/queries_only",
                      edit=('real.unsqueeze(-1) & real.unsqueeze(-2)', 'real.unsqueeze(-1).expand(-1, -1, max_len)'),
                      fixed=('real.unsqueeze(-1).expand(-1, -1, max_len)', 'real.unsqueeze(-1).expand(-1, -1, max_len) & real.unsqueeze(-2)'),
                      fails=("self_attention_mask_visible", "self_attention_mask_right")),
            ]),
    Mistake("sa-mask.causal-ignored", "self_attention_mask",
            believed="the causal part is forgotten",
            fix="when causal is True, & the result with causal_mask(max_len)",
            section="ch02-padding-mask",
            wrong=[
                Wrong("self_attention_mask/causal_ignored",
                      edit=('    if causal:\n        allowed = allowed & causal_mask(max_len, device=lengths.device)  # & (T, T)\n', ''),
                      fixed=('    return allowed', '    if causal:\n        allowed = allowed & causal_mask(max_len)\n    return allowed'),
                      fails=("self_attention_mask_visible", "self_attention_mask_right", "self_attention_mask_left")),
            ]),
    Mistake("sa-mask.always-causal", "self_attention_mask",
            believed="causal=False is ignored: the mask is always causal",
            fix="apply causal_mask only when causal is True",
            section="ch02-padding-mask",
            wrong=[
                Wrong("self_attention_mask/always_causal",
                      edit=('    if causal:\n        allowed = allowed & causal_mask', '    allowed = allowed & causal_mask'),
                      fixed=('    allowed = allowed & causal_mask', '    if causal:\n        allowed = allowed & causal_mask'),
                      fails=("self_attention_mask_visible", "self_attention_mask_right")),
            ]),
    Mistake("sa-mask.causal-transposed", "self_attention_mask",
            believed="the causal mask is transposed: each query sees the future",
            fix="& with causal_mask(max_len) itself, not its transpose: query i sees keys j <= i",
            section="ch02-causal-mask",
            wrong=[
                Wrong("self_attention_mask/future_instead_of_past",
                      edit=('causal_mask(max_len, device=lengths.device)', 'causal_mask(max_len, device=lengths.device).T'),
                      fixed=('lengths.device).T', 'lengths.device)'),
                      fails=("self_attention_mask_visible", "self_attention_mask_right", "self_attention_mask_left")),
            ]),
    Mistake("sa-mask.left-ignored", "self_attention_mask",
            believed="left=True is ignored: the padding is taken to be at the end",
            fix="pass left on: padding_mask(lengths, max_len, left=left)",
            section="ch02-padding-mask",
            wrong=[
                Wrong("self_attention_mask/left_ignored",
                      edit=('padding_mask(lengths, max_len, left=left)', 'padding_mask(lengths, max_len)'),
                      fixed=('padding_mask(lengths, max_len)', 'padding_mask(lengths, max_len, left=left)'),
                      fails=("self_attention_mask_visible", "self_attention_mask_left")),
            ]),
    Mistake("sa-mask.inverted", "self_attention_mask",
            believed="True marks the blocked entries",
            fix="return True where attending is allowed: drop the final ~",
            section="ch02-masks",
            wrong=[
                Wrong("self_attention_mask/inverted",
                      edit=('    return allowed', '    return ~allowed'),
                      fixed=('return ~allowed', 'return allowed'),
                      fails=("self_attention_mask_visible", "self_attention_mask_right", "self_attention_mask_left")),
            ]),
    Mistake("sa-mask.float-mask", "self_attention_mask",
            believed="the mask is a float tensor of 0 and 1",
            fix="return the boolean mask: no .float() (combine the boolean masks with &)",
            section="ch02-masks",
            wrong=[
                Wrong("self_attention_mask/float_mask",
                      edit=('    return allowed', '    return allowed.float()'),
                      fixed=('.float()', ''),
                      fails=("self_attention_mask_visible", "self_attention_mask_right")),
            ]),
    Mistake("sa-mask.python-loop", "self_attention_mask",
            believed="the mask is built one sequence at a time in a Python loop",
            fix="combine the whole padding mask as a column (B, T, 1), as a row (B, 1, T) and, when causal, causal_mask(max_len) (T, T) with & in one broadcast, with no loop over the batch",
            section="ch02-padding-mask",
            detect=False,
            wrong=[
                Wrong("self_attention_mask/loop_over_batch",
                      source="""\
def self_attention_mask(lengths, max_len, causal=True, left=False):
    out = []
    for row in padding_mask(lengths, max_len, left=left):
        allowed = row[:, None] & row[None, :]
        out.append(allowed & causal_mask(max_len) if causal else allowed)
    return torch.stack(out)
""",
                      fixed=("out = []\n    for row in padding_mask(lengths, max_len, left=left):\n        allowed = row[:, None] & row[None, :]\n        out.append(allowed & causal_mask(max_len) if causal else allowed)\n    return torch.stack(out)", "real = padding_mask(lengths, max_len, left=left)\n    allowed = real[:, :, None] & real[:, None, :]\n    return allowed & causal_mask(max_len) if causal else allowed"),
                      fails=("self_attention_mask_no_loops",)),
            ]),
    # --- sinusoidal_positional_encoding ----------------------------------------------------------------------
    Mistake("pe.sin-cos-swapped", "sinusoidal_positional_encoding",
            believed="cosines in the even columns, sines in the odd ones",
            fix="put the sines in the even columns 2i and the cosines in the odd columns 2i + 1",
            section="ch02-sinusoidal",
            wrong=[
                Wrong("pe/sin_cos_swapped",
                      edit=('(angle.sin(), angle.cos())', '(angle.cos(), angle.sin())'),
                      fixed=('(angle.cos(), angle.sin())', '(angle.sin(), angle.cos())'),
                      fails=("pe_visible", "pe_values")),
            ]),
    Mistake("pe.halves", "sinusoidal_positional_encoding",
            believed="sines and cosines fill two halves instead of being interleaved",
            fix="interleave them: torch.stack((sin, cos), dim=-1).flatten(1) puts sin in column 2i and cos in column 2i + 1 (not torch.cat of the two halves)",
            section="ch02-sinusoidal",
            wrong=[
                Wrong("pe/halves_concatenated",
                      edit=('torch.stack((angle.sin(), angle.cos()), dim=-1)', 'torch.cat((angle.sin(), angle.cos()), dim=-1)'),
                      fixed=('torch.cat((angle.sin(), angle.cos()), dim=-1)', 'torch.stack((angle.sin(), angle.cos()), dim=-1)'),
                      fails=("pe_visible", "pe_values")),
            ]),
    Mistake("pe.column-frequency", "sinusoidal_positional_encoding",
            believed="every column gets its own frequency 10000^(j / d_model)",
            fix="give both columns of pair i the same frequency 10000^(-2i / d_model): put the pair's even column 2 * (j // 2) in the exponent, not the column j itself",
            section="ch02-sinusoidal",
            wrong=[
                Wrong("pe/column_index_in_exponent",
                      source="""\
def sinusoidal_positional_encoding(max_len, d_model):
    if d_model % 2:
        raise ValueError("d_model must be even")

    column = torch.arange(d_model)
    angle = torch.arange(max_len)[:, None] / 10000 ** (column / d_model)
    return torch.where(column % 2 == 0, angle.sin(), angle.cos()).float()
""",
                      fixed=("(column / d_model)", "(2 * (column // 2) / d_model)"),
                      fails=("pe_visible", "pe_values")),
            ]),
    Mistake("pe.exponent-without-2", "sinusoidal_positional_encoding",
            believed="the exponent is i / d_model instead of 2i / d_model",
            fix="use the exponent 2i / d_model: torch.arange(0, d_model, 2) / d_model",
            section="ch02-sinusoidal",
            wrong=[
                Wrong("pe/exponent_without_factor_two",
                      edit=('torch.arange(0, d_model, 2, dtype=torch.float64)', 'torch.arange(d_model // 2, dtype=torch.float64)'),
                      fixed=('torch.arange(d_model // 2, dtype=torch.float64)', 'torch.arange(0, d_model, 2, dtype=torch.float64)'),
                      fails=("pe_visible", "pe_values")),
            ]),
    Mistake("pe.wrong-base", "sinusoidal_positional_encoding",
            believed="the base is 1000 instead of 10000",
            fix="use the base 10000: p / 10000^(2i / d_model)",
            section="ch02-sinusoidal",
            wrong=[
                Wrong("pe/base_1000",
                      edit=('10000.0 **', '1000.0 **'),
                      fixed=('1000.0 **', '10000.0 **'),
                      fails=("pe_visible", "pe_values")),
            ]),
    Mistake("pe.multiplies", "sinusoidal_positional_encoding",
            believed="the position is multiplied by 10000^(2i / d_model) instead of divided",
            fix="divide the position by 10000^(2i / d_model) (multiply by 10000^(-2i / d_model))",
            section="ch02-sinusoidal",
            wrong=[
                Wrong("pe/multiplies_instead_of_divides",
                      edit=('10000.0 ** (-torch', '10000.0 ** (torch'),
                      fixed=('10000.0 ** (torch', '10000.0 ** (-torch'),
                      fails=("pe_visible", "pe_values")),
            ]),
    Mistake("pe.not-float32", "sinusoidal_positional_encoding",
            believed="the encoding is not float32",
            fix="return a float32 tensor: .to(torch.float32) at the end",
            section="ch02-exercises",
            wrong=[
                Wrong("pe/float64_returned",
                      edit=('.to(torch.float32)', ''),
                      fixed=('encoding.flatten(start_dim=1)', 'encoding.flatten(start_dim=1).to(torch.float32)'),
                      fails=("pe_visible", "pe_values")),
            ]),
    Mistake("pe.odd-width", "sinusoidal_positional_encoding",
            believed="an odd d_model does not raise ValueError",
            fix="raise ValueError when d_model % 2 != 0, before computing anything",
            section="ch02-sinusoidal",
            wrong=[
                Wrong("pe/odd_width_accepted",
                      edit=('    if d_model % 2 != 0:\n        raise ValueError(f"d_model must be even for a sinusoidal encoding, got {d_model}")\n', ''),
                      fixed=('    position = ', '    if d_model % 2 != 0:\n        raise ValueError("d_model must be even")\n    position = '),
                      fails=("pe_errors",)),
                Wrong("pe/odd_width_fails_on_slices",
                      source="""\
def sinusoidal_positional_encoding(max_len, d_model):
    table = torch.zeros(max_len, d_model)
    position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(-math.log(10000.0) * torch.arange(0, d_model, 2) / d_model)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)
    return table
""",
                      fixed=("    table = torch.zeros", "    if d_model % 2:\n        raise ValueError(\"d_model must be even\")\n    table = torch.zeros"),
                      fails=("pe_errors",),
                      note="no check: an odd width fails on the slices with a RuntimeError, not ValueError"),
            ]),
    Mistake("pe.python-loop", "sinusoidal_positional_encoding",
            believed="the table is filled entry by entry in Python loops",
            fix="multiply a column of positions (max_len, 1) by a row of frequencies 10000^(-2i / d_model) (1, d_model / 2), then fill the even columns with the sin and the odd columns with the cos of that whole tensor (table[:, 0::2], table[:, 1::2])",
            section="ch02-sinusoidal",
            detect=False,
            wrong=[
                Wrong("pe/double_loop",
                      source="""\
def sinusoidal_positional_encoding(max_len, d_model):
    if d_model % 2:
        raise ValueError("d_model must be even")

    table = torch.zeros(max_len, d_model)
    for p in range(max_len):
        for i in range(d_model // 2):
            angle = p / 10000 ** (2 * i / d_model)
            table[p, 2 * i] = math.sin(angle)
            table[p, 2 * i + 1] = math.cos(angle)
    return table
""",
                      fixed=("    for p in range(max_len):\n        for i in range(d_model // 2):\n            angle = p / 10000 ** (2 * i / d_model)\n            table[p, 2 * i] = math.sin(angle)\n            table[p, 2 * i + 1] = math.cos(angle)\n", "    angle = torch.arange(max_len)[:, None] / 10000 ** (torch.arange(0, d_model, 2)[None, :] / d_model)\n    table[:, 0::2] = angle.sin()\n    table[:, 1::2] = angle.cos()\n"),
                      fails=("pe_no_loops",)),
            ]),
    # --- offset_matrix ---------------------------------------------------------------------------------------
    Mistake("offset.transposed", "offset_matrix",
            believed="each block is R_i(k) transposed, that is R_i(-k): it moves back",
            fix="row 2i is [cos kω_i, sin kω_i] and row 2i + 1 is [-sin kω_i, cos kω_i]: transpose your blocks",
            section="ch02-offset",
            wrong=[
                Wrong("offset/transposed_rotation",
                      edit=('    return rotation', '    return rotation.T'),
                      fixed=('rotation.T', 'rotation'),
                      fails=("offset_visible", "offset_values")),
            ]),
    Mistake("offset.exponent-without-2", "offset_matrix",
            believed="the frequencies are 10000^(-i / d_model)",
            fix="use ω_i = 10000^(-2i / d_model): torch.arange(0, d_model, 2) / d_model in the exponent",
            section="ch02-offset",
            wrong=[
                Wrong("offset/exponent_without_factor_two",
                      edit=('torch.arange(0, d_model, 2, dtype=torch.float64)', 'torch.arange(d_model // 2, dtype=torch.float64)'),
                      fixed=('torch.arange(d_model // 2, dtype=torch.float64)', 'torch.arange(0, d_model, 2, dtype=torch.float64)'),
                      fails=("offset_visible", "offset_values")),
            ]),
    Mistake("offset.k-ignored", "offset_matrix",
            believed="the angle is ω_i instead of k ω_i",
            fix="rotate by the angle k * ω_i: multiply the frequencies by k",
            section="ch02-offset",
            wrong=[
                Wrong("offset/offset_ignored",
                      edit=('torch.cos(k * omega), torch.sin(k * omega)', 'torch.cos(omega), torch.sin(omega)'),
                      fixed=('torch.cos(omega), torch.sin(omega)', 'torch.cos(k * omega), torch.sin(k * omega)'),
                      fails=("offset_visible", "offset_values")),
            ]),
    Mistake("offset.sin-cos-swapped", "offset_matrix",
            believed="the sines are where the cosines go in each block",
            fix="put cos kω_i on the diagonal of each block and ±sin kω_i off it: [[cos, sin], [-sin, cos]]",
            section="ch02-offset",
            wrong=[
                Wrong("offset/sin_and_cos_swapped",
                      edit=('cos, sin = torch.cos(k * omega)', 'sin, cos = torch.cos(k * omega)'),
                      fixed=('sin, cos = torch.cos(k * omega)', 'cos, sin = torch.cos(k * omega)'),
                      fails=("offset_visible", "offset_values")),
            ]),
    Mistake("offset.pairs-in-halves", "offset_matrix",
            believed="the pairs are (i, i + D/2) instead of the interleaved (2i, 2i + 1)",
            fix="build each 2 x 2 block R_i(k) = [[cos kω_i, sin kω_i], [-sin kω_i, cos kω_i]] from the vectors of cosines and sines (not diagonal matrices) and put it on the diagonal, at rows and columns 2i and 2i + 1, with torch.block_diag",
            section="ch02-offset",
            wrong=[
                Wrong("offset/pairs_split_in_halves",
                      source="""\
def offset_matrix(k, d_model):
    if d_model % 2:
        raise ValueError("d_model must be even")
    omega = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    c, s = torch.diag(torch.cos(k * omega)), torch.diag(torch.sin(k * omega))
    return torch.cat((torch.cat((c, s), 1), torch.cat((-s, c), 1)), 0)
""",
                      fixed=("c, s = torch.diag(torch.cos(k * omega)), torch.diag(torch.sin(k * omega))\n    return torch.cat((torch.cat((c, s), 1), torch.cat((-s, c), 1)), 0)", "c, s = torch.cos(k * omega), torch.sin(k * omega)\n    return torch.block_diag(*torch.stack((torch.stack((c, s), -1), torch.stack((-s, c), -1)), -2))"),
                      fails=("offset_visible", "offset_values")),
            ]),
    Mistake("offset.frequencies-increase", "offset_matrix",
            believed="the frequencies are 10000^(2i / d_model), which grow with i",
            fix="use the negative exponent: ω_i = 10000^(-2i / d_model)",
            section="ch02-offset",
            wrong=[
                Wrong("offset/frequencies_multiplied",
                      edit=('10000.0 ** (-torch', '10000.0 ** (torch'),
                      fixed=('10000.0 ** (torch', '10000.0 ** (-torch'),
                      fails=("offset_visible", "offset_values")),
            ]),
    Mistake("offset.not-float64", "offset_matrix",
            believed="the matrix is not float64",
            fix="compute in float64: dtype=torch.float64 for the frequencies and the matrix",
            section="ch02-offset",
            wrong=[
                Wrong("offset/float32",
                      edit=('torch.zeros(d_model, d_model, dtype=torch.float64)', 'torch.zeros(d_model, d_model)'),
                      fixed=('torch.zeros(d_model, d_model)', 'torch.zeros(d_model, d_model, dtype=torch.float64)'),
                      fails=("offset_visible", "offset_values")),
            ]),
    Mistake("offset.odd-width", "offset_matrix",
            believed="an odd d_model does not raise ValueError",
            fix="raise ValueError when d_model % 2 != 0",
            section="ch02-sinusoidal",
            wrong=[
                Wrong("offset/no_value_error",
                      edit=('    if d_model % 2 != 0:\n        raise ValueError(f"d_model must be even, got {d_model}")\n', ''),
                      fixed=('    omega = ', '    if d_model % 2 != 0:\n        raise ValueError("d_model must be even")\n    omega = '),
                      fails=("offset_values",)),
            ]),
    # --- SelfAttention ---------------------------------------------------------------------------------------
    Mistake("sa.unscaled", "SelfAttention",
            believed="the scores Q Kᵀ are not scaled",
            fix="divide the scores q @ kᵀ by math.sqrt(d_k) before the softmax, where d_k = k.size(-1) is the width of the keys",
            section="ch02-scaling",
            wrong=[
                Wrong("self_attention/unscaled_scores",
                      source="""\
class SelfAttention(nn.Module):
    def __init__(self, d_model, d_k=None, d_v=None):
        super().__init__()
        d_k = d_model if d_k is None else d_k
        d_v = d_model if d_v is None else d_v
        self.W_q = nn.Linear(d_model, d_k)
        self.W_k = nn.Linear(d_model, d_k)
        self.W_v = nn.Linear(d_model, d_v)

    def forward(self, x, mask=None):
        q, k, v = self.W_q(x), self.W_k(x), self.W_v(x)
        weights = masked_softmax(q @ k.transpose(-2, -1), mask)
        return weights @ v, weights
""",
                      fixed=("q @ k.transpose(-2, -1)", "q @ k.transpose(-2, -1) / math.sqrt(k.size(-1))"),
                      fails=("self_attention_visible", "self_attention_values")),
                Wrong("self_attention/unscaled_einsum",
                      source="""\
class SelfAttention(nn.Module):
    def __init__(self, d_model, d_k=None, d_v=None):
        super().__init__()
        d_k = d_model if d_k is None else d_k
        d_v = d_model if d_v is None else d_v
        self.W_q = nn.Linear(d_model, d_k)
        self.W_k = nn.Linear(d_model, d_k)
        self.W_v = nn.Linear(d_model, d_v)

    def forward(self, x, mask=None):
        queries, keys, values = self.W_q(x), self.W_k(x), self.W_v(x)
        scores = torch.einsum("...qd,...kd->...qk", queries, keys)
        attention = masked_softmax(scores, mask)
        return torch.einsum("...qk,...kv->...qv", attention, values), attention
""",
                      fixed=("queries, keys)", "queries, keys) / math.sqrt(keys.size(-1))"),
                      fails=("self_attention_visible", "self_attention_values"),
                      note="the scores and the average by torch.einsum, with names of its own"),
            ]),
    Mistake("sa.scaled-by-d-model", "SelfAttention",
            believed="the scores are scaled by 1 / sqrt(d_model)",
            fix="scale by 1 / sqrt(d_k), the width of the queries and keys (q.size(-1))",
            section="ch02-self-attention",
            wrong=[
                Wrong("self_attention/scaled_by_d_model",
                      source="""\
class SelfAttention(nn.Module):
    def __init__(self, d_model, d_k=None, d_v=None):
        super().__init__()
        d_k = d_model if d_k is None else d_k
        d_v = d_model if d_v is None else d_v
        self.W_q = nn.Linear(d_model, d_k)
        self.W_k = nn.Linear(d_model, d_k)
        self.W_v = nn.Linear(d_model, d_v)

    def forward(self, x, mask=None):
        q, k, v = self.W_q(x), self.W_k(x), self.W_v(x)
        weights = masked_softmax(q @ k.transpose(-2, -1) / math.sqrt(x.size(-1)), mask)
        return weights @ v, weights
""",
                      fixed=("math.sqrt(x.size(-1))", "math.sqrt(q.size(-1))"),
                      fails=("self_attention_visible", "self_attention_values")),
            ]),
    Mistake("sa.keys-are-queries", "SelfAttention",
            believed="one projection serves both queries and keys",
            fix="compute the keys with their own projection, k = self.W_k(x), and use them in the scores: q @ k.transpose(-2, -1), not q @ q.transpose(-2, -1)",
            section="ch02-self-attention",
            wrong=[
                Wrong("self_attention/queries_projection_used_for_keys",
                      edit=('self.W_k(x)', 'self.W_q(x)'),
                      fixed=('(self.W_q(x), self.W_q(x),', '(self.W_q(x), self.W_k(x),'),
                      fails=("self_attention_visible", "self_attention_values", "self_attention_gradients")),
            ]),
    Mistake("sa.no-projections", "SelfAttention",
            believed="the queries, keys and values are the raw inputs",
            fix="project x first, q, k, v = self.W_q(x), self.W_k(x), self.W_v(x), then use q, k and v instead of x in the scores, the scale (math.sqrt(k.size(-1))) and the weighted average",
            section="ch02-self-attention",
            wrong=[
                Wrong("self_attention/no_projections",
                      edit=('(self.W_q(x), self.W_k(x), self.W_v(x))', '(x, x, x)'),
                      fixed=('(x, x, x)', '(self.W_q(x), self.W_k(x), self.W_v(x))'),
                      fails=("self_attention_visible", "self_attention_values", "self_attention_gradients")),
            ]),
    Mistake("sa.values-not-projected", "SelfAttention",
            believed="the weights average the raw inputs instead of the values",
            fix="average the projected values: weights @ self.W_v(x)",
            section="ch02-self-attention",
            wrong=[
                Wrong("self_attention/values_not_projected",
                      edit=('self.W_v(x))', 'x)'),
                      fixed=('self.W_k(x), x)', 'self.W_k(x), self.W_v(x))'),
                      fails=("self_attention_visible", "self_attention_values")),
            ]),
    Mistake("sa.no-biases", "SelfAttention",
            believed="the projections have no biases",
            fix="keep nn.Linear's default bias=True for W_q, W_k and W_v, as created for you",
            section="ch02-self-attention",
            wrong=[
                Wrong("self_attention/no_biases",
                      edit=('self.W_q = nn.Linear(d_model, d_k)\n        self.W_k = nn.Linear(d_model, d_k)\n        self.W_v = nn.Linear(d_model, d_v)', 'self.W_q = nn.Linear(d_model, d_k, bias=False)\n        self.W_k = nn.Linear(d_model, d_k, bias=False)\n        self.W_v = nn.Linear(d_model, d_v, bias=False)'),
                      fixed=(', bias=False', ''),
                      fails=("self_attention_visible", "self_attention_gradients")),
            ]),
    Mistake("sa.mask-ignored", "SelfAttention",
            believed="the mask is never passed on",
            fix="pass the mask on: scaled_dot_product_attention(q, k, v, mask)",
            section="ch02-masks",
            wrong=[
                Wrong("self_attention/mask_ignored",
                      edit=('scaled_dot_product_attention(*projected, mask)', 'scaled_dot_product_attention(*projected)'),
                      fixed=('scaled_dot_product_attention(*projected)', 'scaled_dot_product_attention(*projected, mask)'),
                      fails=("self_attention_visible", "self_attention_masks")),
            ]),
    Mistake("sa.weights-transposed", "SelfAttention",
            believed="the weights are returned as (keys, queries)",
            fix="return the weights as scaled_dot_product_attention gives them, (queries, keys): no transpose",
            section="ch02-self-attention",
            wrong=[
                Wrong("self_attention/weights_transposed",
                      edit=('        return scaled_dot_product_attention(*projected, mask)', '        output, weights = scaled_dot_product_attention(*projected, mask)\n        return output, weights.transpose(-2, -1)'),
                      fixed=('weights.transpose(-2, -1)', 'weights'),
                      fails=("self_attention_visible", "self_attention_values")),
            ]),
    Mistake("sa.softmax-over-queries", "SelfAttention",
            believed="the softmax runs over the queries",
            fix="take the weights from masked_softmax(scores, mask), a softmax over the keys (dim=-1), or call scaled_dot_product_attention",
            section="ch02-self-attention",
            wrong=[
                Wrong("self_attention/softmax_over_queries",
                      source="""\
class SelfAttention(nn.Module):
    def __init__(self, d_model, d_k=None, d_v=None):
        super().__init__()
        d_k = d_model if d_k is None else d_k
        d_v = d_model if d_v is None else d_v
        self.W_q = nn.Linear(d_model, d_k)
        self.W_k = nn.Linear(d_model, d_k)
        self.W_v = nn.Linear(d_model, d_v)

    def forward(self, x, mask=None):
        q, k, v = self.W_q(x), self.W_k(x), self.W_v(x)
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
        weights = torch.softmax(scores, dim=-2)
        if mask is not None:
            weights = weights * mask
        return weights @ v, weights
""",
                      fixed=("torch.softmax(scores, dim=-2)", "masked_softmax(scores, mask)"),
                      fails=("self_attention_visible", "self_attention_values")),
            ]),
    Mistake("sa.python-loop", "SelfAttention",
            believed="a Python loop over the batch",
            fix="apply the projections and scaled_dot_product_attention to the whole batch at once: nn.Linear and matrix products work on any leading dimensions",
            section="ch02-self-attention",
            detect=False,
            wrong=[
                Wrong("self_attention/loop_over_batch",
                      source="""\
class SelfAttention(nn.Module):
    def __init__(self, d_model, d_k=None, d_v=None):
        super().__init__()
        d_k = d_model if d_k is None else d_k
        d_v = d_model if d_v is None else d_v
        self.W_q = nn.Linear(d_model, d_k)
        self.W_k = nn.Linear(d_model, d_k)
        self.W_v = nn.Linear(d_model, d_v)

    def forward(self, x, mask=None):
        if x.dim() > 2:
            pairs = [self(x[i], mask if mask is None or mask.dim() < x.dim() else mask[i]) for i in range(x.shape[0])]
            return torch.stack([o for o, _ in pairs]), torch.stack([w for _, w in pairs])
        return scaled_dot_product_attention(self.W_q(x), self.W_k(x), self.W_v(x), mask)
""",
                      fixed=("        if x.dim() > 2:\n            pairs = [self(x[i], mask if mask is None or mask.dim() < x.dim() else mask[i]) for i in range(x.shape[0])]\n            return torch.stack([o for o, _ in pairs]), torch.stack([w for _, w in pairs])\n", ""),
                      fails=("self_attention_no_loops",)),
            ]),
    # --- equivariance_gap ------------------------------------------------------------------------------------
    Mistake("equivariance.positions-moved", "equivariance_gap",
            believed="the positions are permuted together with the tokens",
            fix="add the positions after permuting the tokens: layer(x[perm] + positions)",
            section="ch02-positions",
            wrong=[
                Wrong("equivariance/positions_moved_with_the_tokens",
                      edit=('layer(x[perm] + added)', 'layer((x + added)[perm])'),
                      fixed=('layer((x + added)[perm])', 'layer(x[perm] + added)'),
                      fails=("equivariance_visible", "equivariance_values", "equivariance_outcome")),
            ]),
    Mistake("equivariance.not-permuted", "equivariance_gap",
            believed="f(P x) is compared with f(x) instead of P f(x)",
            fix="permute the first outputs: compare with output[perm] and weights[perm][:, perm]",
            section="ch02-equivariance",
            wrong=[
                Wrong("equivariance/outputs_not_permuted",
                      source="""\
def equivariance_gap(layer, x, perm, positions=None):
    added = 0 if positions is None else positions
    output, weights = layer(x + added)
    output_p, weights_p = layer(x[perm] + added)
    return max((output_p - output).abs().max().item(), (weights_p - weights).abs().max().item())
""",
                      fixed=("(output_p - output).abs().max().item(), (weights_p - weights)", "(output_p - output[perm]).abs().max().item(), (weights_p - weights[perm][:, perm])"),
                      fails=("equivariance_visible", "equivariance_values", "equivariance_outcome")),
            ]),
    Mistake("equivariance.rows-only", "equivariance_gap",
            believed="the weights are compared with P W instead of P W Pᵀ",
            fix="permute the columns of the weights too (the keys move): weights[perm][:, perm]",
            section="ch02-equivariance",
            wrong=[
                Wrong("equivariance/weights_rows_only",
                      edit=('weights[perm][:, perm]', 'weights[perm]'),
                      fixed=('weights[perm])', 'weights[perm][:, perm])'),
                      fails=("equivariance_visible", "equivariance_values", "equivariance_outcome")),
            ]),
    Mistake("equivariance.weights-ignored", "equivariance_gap",
            believed="only the outputs are compared, not the weights",
            fix="also compare the weights with weights[perm][:, perm] and return the larger of the two gaps",
            section="ch02-equivariance",
            wrong=[
                Wrong("equivariance/weights_ignored",
                      edit=('return max(output_gap.item(), weights_gap.item())', 'return output_gap.item()'),
                      fixed=('return output_gap.item()', 'return max(output_gap.item(), weights_gap.item())'),
                      fails=("equivariance_visible", "equivariance_values")),
            ]),
    Mistake("equivariance.mean", "equivariance_gap",
            believed="the mean absolute difference is returned instead of the largest",
            fix="take the largest absolute difference: .abs().max()",
            section="ch02-equivariance",
            wrong=[
                Wrong("equivariance/mean_instead_of_max",
                      source="""\
def equivariance_gap(layer, x, perm, positions=None):
    added = 0 if positions is None else positions
    output, weights = layer(x + added)
    output_p, weights_p = layer(x[perm] + added)
    return max((output_p - output[perm]).abs().mean().item(), (weights_p - weights[perm][:, perm]).abs().mean().item())
""",
                      fixed=(".abs().mean()", ".abs().max()"),
                      fails=("equivariance_values",)),
            ]),
    Mistake("equivariance.inverse-permutation", "equivariance_gap",
            believed="the outputs are permuted by the inverse permutation",
            fix="permute with perm itself: output[perm] and weights[perm][:, perm]",
            section="ch02-equivariance",
            wrong=[
                Wrong("equivariance/inverse_permutation",
                      source="""\
def equivariance_gap(layer, x, perm, positions=None):
    added = 0 if positions is None else positions
    inverse = torch.argsort(perm)
    output, weights = layer(x + added)
    output_p, weights_p = layer(x[perm] + added)
    return max((output_p - output[inverse]).abs().max().item(), (weights_p - weights[inverse][:, inverse]).abs().max().item())
""",
                      fixed=("inverse]", "perm]"),
                      fails=("equivariance_visible", "equivariance_values", "equivariance_outcome")),
            ]),
    Mistake("equivariance.signed", "equivariance_gap",
            believed="the largest signed difference, without the absolute value",
            fix="take the absolute value before the maximum: (a - b).abs().max()",
            section="ch02-equivariance",
            wrong=[
                Wrong("equivariance/signed_difference",
                      source="""\
def equivariance_gap(layer, x, perm, positions=None):
    added = 0 if positions is None else positions
    output, weights = layer(x + added)
    output_p, weights_p = layer(x[perm] + added)
    return max((output_p - output[perm]).max().item(), (weights_p - weights[perm][:, perm]).max().item())
""",
                      fixed=(").max()", ").abs().max()"),
                      fails=("equivariance_values",)),
                Wrong("equivariance/signed_torch_max",
                      source="""\
def equivariance_gap(layer, x, perm, positions=None):
    pos = torch.zeros_like(x) if positions is None else positions
    out_a, w_a = layer(x + pos)
    out_b, w_b = layer(x[perm] + pos)
    gaps = [torch.max(out_b - out_a[perm]), torch.max(w_b - w_a[perm][:, perm])]
    return float(max(gaps))
""",
                      fixed=("torch.max(out_b - out_a[perm]), torch.max(w_b - w_a[perm][:, perm])", "torch.max((out_b - out_a[perm]).abs()), torch.max((w_b - w_a[perm][:, perm]).abs())"),
                      fails=("equivariance_values",),
                      note="torch.max of the differences, with names of its own"),
            ]),
    Mistake("equivariance.not-a-float", "equivariance_gap",
            believed="the gap is returned as a tensor, not a Python float",
            fix="return a Python float: call .item() on the gaps (or float(...))",
            section="ch02-exercises",
            wrong=[
                Wrong("equivariance/returns_a_tensor",
                      edit=('return max(output_gap.item(), weights_gap.item())', 'return torch.maximum(output_gap, weights_gap)'),
                      fixed=('torch.maximum(output_gap, weights_gap)', 'torch.maximum(output_gap, weights_gap).item()'),
                      fails=("equivariance_visible", "equivariance_values")),
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
    row_max = kept.amax(dim=-1, keepdim=True).nan_to_num(0.0, neginf=0.0)
    exponentials = (kept - row_max).exp()
    return exponentials / exponentials.sum(dim=-1, keepdim=True).clamp_min(1e-30)

def scaled_dot_product_attention(query, key, value, mask=None):
    weights = masked_softmax(query @ key.mT, mask)
    return weights @ value, weights
""",
          note="a pasted attention that never divides by sqrt(d_k)"),
    Wrong("attention_helpers/inverted_mask",
          cell="attention_helpers",
          source="""\

def masked_softmax(scores, mask=None):
    allowed = torch.ones((), dtype=torch.bool) if mask is None else mask
    kept = torch.where(allowed, scores, float("-inf"))
    row_max = kept.amax(dim=-1, keepdim=True).nan_to_num(0.0, neginf=0.0)
    exponentials = (kept - row_max).exp()
    return exponentials / exponentials.sum(dim=-1, keepdim=True).clamp_min(1e-30)

def scaled_dot_product_attention(query, key, value, mask=None):
    weights = masked_softmax(query @ key.mT / math.sqrt(key.size(-1)), None if mask is None else ~mask)
    return weights @ value, weights
""",
          note="a pasted attention that takes True to mean 'blocked'"),
]
