"""Argument swaps: every implementation that reads one tensor argument where the solution reads another.

The contract of the hidden tests (issue 23, item 4) is that every input matters: a test gives distinct random
tensors to every input, so that an implementation which reads `query` for `key`, `key` for `value`, `memory`
for `x`... at one place loses points. This module makes those implementations from the solutions' syntax
trees, for every graded component (a solution cell that graded cells follow, autograder/course.py):

* SAME_SHAPED names, per assignment, component and function (a top-level function, or `Class.method`), the
  groups of tensor arguments that could have the same shape (and dtype) in a valid call: the arguments a
  slip can confuse without the call failing on its face. Every graded component is in the table, those
  whose functions take no two such arguments with no group (so that nothing is left out unsaid). A bool mask
  is grouped with a float tensor only in masked_softmax (`scores` for `mask`, as issue 23 names it): elsewhere
  a mask read for `x`/`query`/`key`/`value`, or one of those for the mask, fails on its face (an nn.Linear of a
  bool tensor, torch.where of a float condition), as every such swap of 02-05's modules did when tried.
  Solution cells that no graded cell follows (the pasted `attention_helpers` of 02-04) are graded elsewhere and
  have no swaps here.
* swaps() yields, for every read (an `ast.Name` load) of such an argument in its function's body and every
  other argument of its group, the solution cell's source with that one identifier replaced: a text edit at
  the node's position, the rest of the cell byte-identical.

A read of a name the function has rebound (`query = query / ...`) is a read of that name all the same: the
swap is made there too.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass

import nbformat

from autograder import course
from tests.conftest import solution_path

# {assignment: {component (solution cell's grade_id): {function: (groups of same-shaped tensor arguments)}}}
SAME_SHAPED = {
    "01_attention": {
        "nadaraya_watson": {"nadaraya_watson": (("queries", "keys", "values"),)},    # (n_q,), (n_k,), (n_k,)
        "masked_softmax": {"masked_softmax": (("scores", "mask"),)},                # (..., T_k), bool broadcastable
        "scaled_dot_product_attention": {
            "scaled_dot_product_attention": (("query", "key", "value"),)},         # (..., T, d) each
        "AdditiveAttention": {"AdditiveAttention.forward": (("query", "key", "value"),)},
        "choose_bandwidth": {"choose_bandwidth": (("x_train", "y_train", "x_valid", "y_valid"),)},   # 1-d each
    },
    "02_self_attention": {
        "causal_mask": {"causal_mask": ()},                          # size: an int
        "padding_mask": {"padding_mask": ()},                        # one tensor (lengths)
        "self_attention_mask": {"self_attention_mask": ()},          # one tensor (lengths)
        "sinusoidal_positional_encoding": {"sinusoidal_positional_encoding": ()},   # ints
        "offset_matrix": {"offset_matrix": ()},                      # ints
        "SelfAttention": {"SelfAttention.forward": ()},              # x (float) and a bool mask
        "equivariance_gap": {"equivariance_gap": (("x", "positions"),)},   # (T, D) each; perm: int (T,)
    },
    "03_multi_head_attention": {
        "split_heads": {"split_heads": ()},                          # one tensor
        "merge_heads": {"merge_heads": ()},                          # one tensor
        "MultiHeadAttention": {"MultiHeadAttention.forward": (("query", "key", "value"),)},   # (B, T, D) each
        "head_score_matrices": {"head_score_matrices": ()},          # one module
    },
    "04_transformer": {
        "PositionWiseFFN": {"PositionWiseFFN.forward": ()},          # one tensor
        "TransformerEncoderBlock": {"TransformerEncoderBlock.forward": ()},   # x (float) and a bool mask
        "TransformerDecoderBlock": {"TransformerDecoderBlock.forward": (("x", "memory"),   # (B, T, D), (B, S, D)
                                                                        ("self_mask", "memory_mask"))},
    },
    "05_attention_at_scale": {
        "online_softmax_attention": {"online_softmax_attention": (("query", "key", "value"),)},
        "merge_attention": {"merge_attention": (("out_a", "out_b"), ("lse_a", "lse_b"))},   # (..., T_q, d_v), (..., T_q)
        "KVCache": {"KVCache.update": (("k", "v"),)},                 # (B, H, t, d), (B, H, t, d_v)
        "CausalSelfAttention": {"CausalSelfAttention.forward": ()},  # x and a cache
        "apply_rotary": {"apply_rotary": ()},                        # x (float) and int positions (T,)
        "GroupedQueryAttention": {"GroupedQueryAttention.forward": ()},   # x (float) and a bool mask
    },
    "06_language_model": {
        "RMSNorm": {"RMSNorm.forward": ()},                          # one tensor
        "SwiGLU": {"SwiGLU.forward": ()},                            # one tensor
        "DecoderLayer": {"DecoderLayer.forward": ()},                # x and a cache
        "TinyLM": {"TinyLM.forward": ()},                            # int ids (B, t) and caches
        "next_token_probs": {"next_token_probs": ()},                # one tensor of logits
        "generate": {"generate": ()},                                # a model and int ids
        "lm_loss": {"lm_loss": ()},                                  # float logits (B, T, V), int ids (B, T)
        "train_lm": {"train_lm": ()},                                # a model and batches of ids
    },
}


@dataclass(frozen=True)
class Swap:
    assignment: str
    component: str      # the solution cell's grade_id
    function: str       # "name" or "Class.method"
    name: str           # the argument read at the site
    occurrence: int     # which read of `name` in the function's body (0: the first, in source order)
    replacement: str    # the argument read there instead
    line: str           # the site's line of the solution, stripped (for messages)
    source: str         # the solution cell's source with that one read replaced

    @property
    def key(self):
        """What names the swap in the tables of tests/test_swaps.py."""
        return (self.component, self.function, f"{self.name}#{self.occurrence}", self.replacement)

    def __str__(self):
        return (f"{self.assignment} {self.component}: {self.function} reads `{self.replacement}` for its read "
                f"#{self.occurrence} of `{self.name}` in `{self.line}`")


def solution_cells(assignment):
    """{grade_id: source} of the assignment's solution cells."""
    notebook = nbformat.read(solution_path(assignment), as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in notebook.cells
            if c.metadata.get("nbgrader", {}).get("solution")}


def graded_components(assignment):
    """The solution cells that graded cells follow (a cell with none, such as pasted helpers, is graded elsewhere)."""
    notebook = nbformat.read(solution_path(assignment), as_version=4)
    return sorted(set(course.components(notebook).values()))


def functions(tree):
    """{"name" or "Class.method": FunctionDef} of a cell's top-level functions and its classes' methods."""
    found = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found[node.name] = node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    found[f"{node.name}.{item.name}"] = item
    return found


def reads(function, name):
    """The ast.Name loads of `name` in the body of `function` (nested scopes included), in source order."""
    loads = [node for statement in function.body for node in ast.walk(statement)
             if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Load)]
    return sorted(loads, key=lambda n: (n.lineno, n.col_offset))


def replaced(source, node, new):
    """`source` with the identifier at `node`'s position replaced by `new`; every other byte kept."""
    lines = source.splitlines(keepends=True)
    line = lines[node.lineno - 1].encode()      # ast's columns are UTF-8 byte offsets
    assert line[node.col_offset:node.end_col_offset].decode() == node.id, (node.id, line)
    lines[node.lineno - 1] = (line[:node.col_offset] + new.encode() + line[node.end_col_offset:]).decode()
    return "".join(lines)


def swaps(assignment, component=None):
    """Every Swap of an assignment's graded components (or of one), in a fixed order."""
    cells = solution_cells(assignment)
    for grade_id in graded_components(assignment):
        if component is not None and grade_id != component:
            continue
        source = cells[grade_id]
        defined = functions(ast.parse(source))
        for function, groups in SAME_SHAPED[assignment][grade_id].items():
            node = defined[function]
            arguments = {a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs}
            for group in groups:
                assert set(group) <= arguments, f"{assignment} {function} has no argument {set(group) - arguments}"
                for name in group:
                    for occurrence, site in enumerate(reads(node, name)):
                        for other in group:
                            if other != name:
                                yield Swap(assignment, grade_id, function, name, occurrence, other,
                                           source.splitlines()[site.lineno - 1].strip(),
                                           replaced(source, site, other))
