"""Notebooks for calibrating the copied-work detector, built in code.

STYLES[assignment][style] is one independently written, correct solution: {grade_id: cell}, where a
cell is `fill(*bodies, before="", after="")`: the bodies replace the release's stubs (`# YOUR CODE HERE`
/ `raise NotImplementedError()`) in order, as a student fills them in, and `before`/`after` are code the
student wrote around the stub (helper functions). ADDED[assignment][style] is a cell a student added.
COPIES[assignment][name] = (original style, transformation): planted copies (renamed variables,
reordered functions and cells, changed comments and whitespace).
"""
import re
import textwrap

import nbformat

from tests.conftest import release_path, solution_path

STUB = re.compile(r"^( *)# YOUR CODE HERE\n\1raise NotImplementedError\(\)", re.MULTILINE)
MARKER = re.compile(r"^ *### (BEGIN|END) SOLUTION\n", re.MULTILINE)


def fill(*bodies, before="", after=""):
    return tuple(textwrap.dedent(b).strip("\n") for b in bodies), textwrap.dedent(before).strip("\n"), \
        textwrap.dedent(after).strip("\n")


# ------------------------------------------------------------------------------------------ 01_attention

A01 = {
    "nadaraya_watson": fill("""
        diff = queries[:, None] - keys[None, :]
        scores = -(diff ** 2) / (2.0 * bandwidth * bandwidth)
        scores = scores - scores.max(dim=1, keepdim=True).values
        w = torch.exp(scores)
        w = w / w.sum(dim=1, keepdim=True)
        pred = torch.einsum("qk,k->q", w, values)
        return pred, w
        """),
    "masked_softmax": fill("""
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        top = scores.max(dim=-1, keepdim=True).values
        top = top.masked_fill(torch.isneginf(top), 0.0)
        e = torch.exp(scores - top)
        denom = e.sum(dim=-1, keepdim=True)
        return e / denom.clamp(min=torch.finfo(scores.dtype).tiny)
        """),
    "scaled_dot_product_attention": fill("""
        scale = 1.0 / math.sqrt(query.size(-1))
        logits = torch.einsum("...qd,...kd->...qk", query, key) * scale
        attn = masked_softmax(logits, mask)
        out = torch.einsum("...qk,...kv->...qv", attn, value)
        return out, attn
        """),
    "AdditiveAttention": fill("""
        q = self.W_q(query).unsqueeze(2)
        k = self.W_k(key).unsqueeze(1)
        e = self.w_v(torch.tanh(q + k)).squeeze(-1)
        a = masked_softmax(e, mask)
        return torch.einsum("bqk,bkv->bqv", a, value), a
        """),
    "choose_bandwidth": fill("""
        errs = torch.stack([((nadaraya_watson(x_valid, x_train, y_train, b)[0] - y_valid) ** 2).mean()
                            for b in bandwidths])
        best = bandwidths[int(torch.argmin(errs))]
        return float(best), errs
        """),
}

B01 = {
    "nadaraya_watson": fill("""
        # pairwise squared distances between queries and keys
        d2 = (queries.reshape(-1, 1) - keys.reshape(1, -1)).pow(2)
        weights = torch.softmax(-d2 / (2 * bandwidth**2), dim=1)
        predictions = weights.matmul(values)
        return predictions, weights
        """),
    "masked_softmax": fill("""
        if mask is None:
            return torch.softmax(scores, dim=-1)
        filled = scores.masked_fill(mask.logical_not(), torch.finfo(scores.dtype).min)
        probs = torch.softmax(filled, dim=-1)
        probs = probs * mask           # zero the masked entries, and the rows that are fully masked
        return probs
        """),
    "scaled_dot_product_attention": fill("""
        d_k = key.shape[-1]
        scores = query @ key.transpose(-1, -2) / math.sqrt(d_k)
        weights = masked_softmax(scores, mask)
        return weights @ value, weights
        """),
    "AdditiveAttention": fill("""
        projected_q = self.W_q(query)
        projected_k = self.W_k(key)
        features = torch.tanh(projected_q.unsqueeze(-2) + projected_k.unsqueeze(-3))
        scores = self.w_v(features).squeeze(-1)
        weights = masked_softmax(scores, mask)
        output = torch.bmm(weights, value)
        return output, weights
        """),
    "choose_bandwidth": fill("""
        errors = torch.zeros(len(bandwidths), dtype=y_valid.dtype)
        for i, h in enumerate(bandwidths):
            pred, _ = nadaraya_watson(x_valid, x_train, y_train, h)
            errors[i] = torch.mean((pred - y_valid) ** 2)
        best = bandwidths[0]
        best_error = errors[0]
        for h, err in zip(bandwidths, errors):
            if err < best_error:
                best, best_error = h, err
        return float(best), errors
        """),
}

C01 = {
    "nadaraya_watson": fill("""
        logits = _gaussian_logits(queries, keys, bandwidth)
        weights = torch.nn.functional.softmax(logits, dim=-1)
        return (weights * values).sum(dim=-1), weights
        """, before='''
        def _gaussian_logits(q, k, h):
            """log of the unnormalised Gaussian kernel between every query and every key"""
            return -0.5 * ((q[:, None] - k[None, :]) / h) ** 2
        '''),
    "masked_softmax": fill("""
        if mask is None:
            mask = torch.ones_like(scores, dtype=torch.bool)
        masked = torch.where(mask, scores, torch.full_like(scores, -float("inf")))
        row_max = masked.amax(dim=-1, keepdim=True)
        row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max)).detach()
        exps = torch.exp(masked - row_max)
        total = exps.sum(-1, keepdim=True)
        return exps / torch.where(total == 0, torch.ones_like(total), total)
        """),
    "scaled_dot_product_attention": fill("""
        d = query.shape[-1]
        q_scaled = query / d ** 0.5
        weights = masked_softmax(q_scaled.matmul(key.mT), mask)
        return weights.matmul(value), weights
        """),
    "AdditiveAttention": fill("""
        B, Tq, _ = query.shape
        Tk = key.shape[1]
        q = self.W_q(query)[:, :, None, :].expand(-1, -1, Tk, -1)
        k = self.W_k(key)[:, None, :, :].expand(-1, Tq, -1, -1)
        scores = self.w_v(torch.tanh(q + k)).view(B, Tq, Tk)
        attn = masked_softmax(scores, mask)
        return attn @ value, attn
        """),
    "choose_bandwidth": fill("""
        errors = torch.tensor([mse(nadaraya_watson(x_valid, x_train, y_train, bw)[0], y_valid).item()
                               for bw in bandwidths], dtype=y_valid.dtype)
        index = torch.argmin(errors).item()
        return float(bandwidths[index]), errors
        """, before="""
        def mse(prediction, target):
            return torch.mean(torch.square(prediction - target))
        """),
}

D01 = {
    "nadaraya_watson": fill("""
        # Gaussian kernel: weights proportional to exp(-(q - k)^2 / (2 h^2))
        distances = torch.cdist(queries.unsqueeze(1), keys.unsqueeze(1),
                                compute_mode="donot_use_mm_for_euclid_dist")  # (n_q, n_k)
        kernel_logits = distances.square().neg().div(2 * bandwidth ** 2)
        attention_weights = kernel_logits.softmax(dim=-1)
        # the prediction is the weighted average of the values
        return attention_weights.mv(values), attention_weights
        """),
    "masked_softmax": fill("""
        # numerically stable: subtract the row maximum before exponentiating
        if mask is not None:
            scores = scores.masked_fill(~mask, -math.inf)
        shift = scores.amax(-1, keepdim=True).nan_to_num(0.0, posinf=0.0, neginf=0.0)
        numerators = (scores - shift.detach()).exp()
        # a row with one allowed key sums to at least 1; a fully masked row sums to 0 and stays 0
        return numerators / numerators.sum(-1, keepdim=True).clamp_min(1.0)
        """),
    "scaled_dot_product_attention": fill("""
        scale = query.size(-1) ** -0.5
        attention_scores = torch.matmul(query, key.transpose(-2, -1)).mul(scale)
        attention_weights = masked_softmax(attention_scores, mask)
        context = torch.matmul(attention_weights, value)
        return context, attention_weights
        """),
    "AdditiveAttention": fill("""
        # broadcast every query against every key: (B, T_q, 1, h) + (B, 1, T_k, h)
        energy = torch.tanh(self.W_q(query).unsqueeze(-2) + self.W_k(key).unsqueeze(-3))
        scores = self.w_v(energy).squeeze(-1)       # (B, T_q, T_k)
        weights = masked_softmax(scores, mask)
        return torch.einsum("...qk,...kd->...qd", weights, value), weights
        """),
    "choose_bandwidth": fill("""
        losses = []
        for h in bandwidths:
            prediction = nadaraya_watson(x_valid, x_train, y_train, h)[0]
            losses.append(torch.nn.functional.mse_loss(prediction, y_valid))
        losses = torch.stack(losses)
        return float(bandwidths[losses.argmin().item()]), losses
        """),
}

# ------------------------------------------------------------------------------ 03_multi_head_attention

A03 = {
    "split_heads": fill("""
        batch, length, width = x.shape
        if width % num_heads != 0:
            raise ValueError("width must be a multiple of num_heads")
        return x.reshape(batch, length, num_heads, width // num_heads).transpose(1, 2)
        """),
    "merge_heads": fill("""
        b, h, t, d = x.shape
        return x.transpose(1, 2).reshape(b, t, h * d)
        """),
    "MultiHeadAttention": fill("""
        if d_model % num_heads != 0:
            raise ValueError("d_model must be divisible by num_heads")
        """, """
        q = split_heads(self.W_q(query), self.num_heads)
        k = split_heads(self.W_k(key), self.num_heads)
        v = split_heads(self.W_v(value), self.num_heads)
        out, weights = scaled_dot_product_attention(q, k, v, mask)
        return self.W_o(merge_heads(out)), weights
        """),
    "head_score_matrices": fill("""
        H = mha.num_heads
        D = mha.W_q.weight.shape[0]
        d = D // H
        Wq = mha.W_q.weight.view(H, d, D)     # the rows of head h
        Wk = mha.W_k.weight.view(H, d, D)
        return Wq.transpose(1, 2) @ Wk
        """),
}

B03 = {
    "split_heads": fill("""
        B, T, D = x.size()
        d, rest = divmod(D, num_heads)
        if rest:
            raise ValueError(f"{D} is not divisible by {num_heads}")
        x = x.reshape(B, T, num_heads, d)
        return x.permute(0, 2, 1, 3)
        """),
    "merge_heads": fill("""
        x = x.permute(0, 2, 1, 3).contiguous()
        return x.view(x.size(0), x.size(1), -1)
        """),
    "MultiHeadAttention": fill("""
        if num_heads <= 0 or d_model % num_heads:
            raise ValueError("bad number of heads")
        """, """
        B, Tq, D = query.shape
        Tk = key.shape[1]
        H = self.num_heads
        d = D // H
        Q = self.W_q(query).view(B, Tq, H, d).permute(0, 2, 1, 3)
        K = self.W_k(key).view(B, Tk, H, d).permute(0, 2, 1, 3)
        V = self.W_v(value).view(B, Tk, H, d).permute(0, 2, 1, 3)
        context, attn = scaled_dot_product_attention(Q, K, V, mask)
        context = context.permute(0, 2, 1, 3).reshape(B, Tq, D)
        return self.W_o(context), attn
        """),
    "head_score_matrices": fill("""
        D = mha.W_q.weight.size(1)
        q_rows = mha.W_q.weight.reshape(mha.num_heads, -1, D)
        k_rows = mha.W_k.weight.reshape(mha.num_heads, -1, D)
        return torch.einsum("hdi,hdj->hij", q_rows, k_rows)
        """),
}

C03 = {
    "split_heads": fill("""
        if x.shape[-1] % num_heads:
            raise ValueError("d_model must be divisible by the number of heads")
        heads = x.unflatten(-1, (num_heads, -1))
        return heads.movedim(-2, -3)
        """),
    "merge_heads": fill("""
        return x.movedim(-3, -2).flatten(-2)
        """),
    "MultiHeadAttention": fill("""
        self.head_dim, remainder = divmod(d_model, num_heads)
        if remainder:
            raise ValueError("num_heads must divide d_model")
        """, """
        projected = [split_heads(layer(x), self.num_heads)
                     for layer, x in zip((self.W_q, self.W_k, self.W_v), (query, key, value))]
        heads, weights = scaled_dot_product_attention(projected[0], projected[1], projected[2], mask=mask)
        merged = merge_heads(heads)
        return self.W_o(merged), weights
        """),
    "head_score_matrices": fill("""
        heads = mha.num_heads
        wq = mha.W_q.weight.T.reshape(-1, heads, mha.W_q.weight.shape[0] // heads).permute(1, 0, 2)
        wk = mha.W_k.weight.T.reshape(-1, heads, mha.W_k.weight.shape[0] // heads).permute(1, 0, 2)
        return torch.bmm(wq, wk.transpose(1, 2))
        """),
}

D03 = {
    "split_heads": fill("""
        # each head gets a contiguous block of features
        size = x.shape[-1]
        if size % num_heads != 0:
            raise ValueError("cannot split %d features into %d heads" % (size, num_heads))
        return torch.stack(torch.chunk(x, num_heads, dim=-1), dim=1)
        """),
    "merge_heads": fill("""
        # put the heads' features side by side again
        return torch.cat(x.unbind(dim=1), dim=-1)
        """),
    "MultiHeadAttention": fill("""
        if d_model % num_heads:
            raise ValueError(f"num_heads={num_heads} does not divide d_model={d_model}")
        """, """
        def heads(layer, inputs):
            return split_heads(layer(inputs), self.num_heads)

        # (B, H, T, d) for queries, keys and values
        attended, weights = scaled_dot_product_attention(
            heads(self.W_q, query), heads(self.W_k, key), heads(self.W_v, value), mask)
        # back to (B, T_q, D), then the output projection
        output = self.W_o(merge_heads(attended))
        return output, weights
        """),
    "head_score_matrices": fill("""
        # head h owns rows h*d .. (h+1)*d - 1 of each weight
        q_blocks = torch.stack(mha.W_q.weight.chunk(mha.num_heads, dim=0))   # (H, d, D)
        k_blocks = torch.stack(mha.W_k.weight.chunk(mha.num_heads, dim=0))   # (H, d, D)
        return q_blocks.mT.matmul(k_blocks)
        """),
}

STYLES = {"01_attention": {"einsum": A01, "matmul": B01, "helpers": C01, "commented": D01},
          "03_multi_head_attention": {"reshape": A03, "permute": B03, "movedim": C03, "chunks": D03}}

ADDED = {"01_attention": {"commented": "# trying it out\nprint(masked_softmax(torch.randn(2, 3)))\n"
                                      "print(scaled_dot_product_attention(torch.randn(1, 2, 4), torch.randn(1, 3, 4),"
                                      " torch.randn(1, 3, 5))[0].shape)"},
         "03_multi_head_attention": {"chunks": "x = torch.randn(2, 3, 8)\n"
                                               "assert torch.equal(merge_heads(split_heads(x, 4)), x)"}}


# -------------------------------------------------------------------------------------------- notebooks

def reference_cells(assignment):
    """{grade_id: source} of the solution notebook's solution cells, markers removed (a fifth style)."""
    notebook = nbformat.read(solution_path(assignment), as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: MARKER.sub("", c.source) for c in notebook.cells
            if c.metadata.get("nbgrader", {}).get("solution")}


def filled_cells(assignment, style):
    """{grade_id: source} of every solution cell, as a student of `style` leaves them (the pasted
    helpers of the solution notebook as they are, the same for every student)."""
    reference = reference_cells(assignment)
    if style == "reference":
        return reference
    release = nbformat.read(release_path(assignment), as_version=4)
    cells = {}
    for cell in release.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if not cell.metadata.get("nbgrader", {}).get("solution"):
            continue
        if grade_id not in STYLES[assignment][style]:
            cells[grade_id] = reference[grade_id]  # a pasted helper
            continue
        bodies, before, after = STYLES[assignment][style][grade_id]
        source = cell.source
        for body in bodies:
            source = STUB.sub(lambda m: textwrap.indent(body, m.group(1)), source, count=1)
        cells[grade_id] = "\n\n\n".join(part for part in (before, source, after) if part)
    return cells


def notebook(assignment, cells, added=(), swap=None):
    """The release notebook with its solution cells' sources replaced by `cells` ({grade_id: source}),
    the `added` cells appended (no nbgrader metadata), and two cells swapped (swap=(grade_id, grade_id))."""
    nb = nbformat.read(release_path(assignment), as_version=4)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in cells:
            cell.source = cells[grade_id]
    nb.cells.extend(nbformat.v4.new_code_cell(source) for source in added)
    if swap:
        ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
        i, j = ids.index(swap[0]), ids.index(swap[1])
        nb.cells[i], nb.cells[j] = nb.cells[j], nb.cells[i]
    return nb


def independent(assignment):
    """{style: notebook} of the independent solutions (the four styles and the reference)."""
    styles = list(STYLES[assignment]) + ["reference"]
    return {s: notebook(assignment, filled_cells(assignment, s), [ADDED[assignment][s]] if s in ADDED[assignment]
                        else []) for s in styles}


# ---------------------------------------------------------------------------------------- transformations

def rename(mapping):
    def transform(cells):
        for old, new in mapping.items():
            cells = {g: re.sub(rf"\b{re.escape(old)}\b", new, s) for g, s in cells.items()}
        return cells
    return transform


def recomment(cells):
    """Every comment removed, and a comment of the copier's own above every return."""
    def one(source):
        source = re.sub(r"[ \t]*#[^\n]*", "", source)
        return re.sub(r"^( *)return ", r"\1# now return the result\n\1return ", source, flags=re.MULTILINE)
    return {g: one(s) for g, s in cells.items()}


def respace(cells):
    """Spaces around operators and commas changed, blank lines added."""
    def one(source):
        source = source.replace(" = ", "=").replace(", ", " ,  ").replace(" / ", "/").replace(" * ", "*")
        return re.sub(r"\n(?=[^\n]*=)", "\n\n", source)
    return {g: one(s) for g, s in cells.items()}


def reorder_helpers(cells):
    """In a cell that defines several top-level functions or classes, the last one moved first."""
    def one(source):
        blocks = re.split(r"\n\s*\n(?=(?:def|class) )", source.strip("\n"))
        return "\n\n\n".join(blocks[-1:] + blocks[:-1]) if len(blocks) > 1 else source
    return {g: one(s) for g, s in cells.items()}


def chain(*transforms):
    def transform(cells):
        for t in transforms:
            cells = t(cells)
        return cells
    return transform


# name -> (original style, transformation of the cells, cells to swap in the notebook)
COPIES = {
    "01_attention": {
        "copy-einsum-renamed": ("einsum", rename({"diff": "delta", "pred": "yhat", "w": "alpha", "top": "m",
                                                 "denom": "z", "logits": "s", "attn": "p", "errs": "mse"}), None),
        "copy-matmul-comments-spaces": ("matmul", chain(recomment, respace), None),
        "copy-helpers-reordered": ("helpers", reorder_helpers, ("masked_softmax", "nadaraya_watson")),
        "copy-commented-everything": ("commented", chain(rename({"distances": "dist", "numerators": "num",
                                                                 "losses": "errors", "energy": "h"}),
                                                         recomment, respace),
                                      ("choose_bandwidth", "AdditiveAttention")),
        "copy-reference-renamed": ("reference", chain(rename({"offsets": "gaps", "logits": "z", "kept": "s2",
                                                              "row_max": "mx", "alpha": "attn_w"}), recomment),
                                   None),
    },
    "03_multi_head_attention": {
        "copy-reshape-renamed": ("reshape", rename({"batch": "n", "length": "seq", "width": "dim", "out": "ctx",
                                                    "Wq": "A", "Wk": "Bm"}), None),
        "copy-permute-comments-spaces": ("permute", chain(recomment, respace), ("merge_heads", "split_heads")),
        "copy-movedim-everything": ("movedim", chain(rename({"projected": "proj", "merged": "m", "wq": "q",
                                                             "wk": "k"}), recomment, respace),
                                    ("head_score_matrices", "MultiHeadAttention")),
        "copy-chunks-reordered": ("chunks", chain(reorder_helpers, rename({"attended": "att", "q_blocks": "qb"})),
                                  ("split_heads", "head_score_matrices")),
    },
}


def copies(assignment):
    """{name: (original style, notebook)} of the planted copies."""
    found = {}
    for name, (style, transform, swap) in COPIES[assignment].items():
        added = [transform({"added": ADDED[assignment][style]})["added"]] if style in ADDED[assignment] else []
        found[name] = (style, notebook(assignment, transform(filled_cells(assignment, style)), added, swap))
    return found
