"""Honest but unusual implementations of 04_transformer's components get full marks (issue 23).

The contract names the attributes (linear1, norm1, self_attn, ...), not how a module holds them: a student
may keep the layers in an nn.Sequential, an nn.ModuleList or an nn.ModuleDict and name them by aliases,
or register a submodule under two names. The hidden tests (and the diagnostics) find a student's parameters
by identity, so each of these styles keeps every point and shows no misconception. Graded in-process
(tests/fastpath.py), each in one solution cell of the solution notebook.
"""
import nbformat
import pytest

from tests.conftest import solution_path, with_cell_replaced
from tests.fastpath import diagnose_in_process, grade_in_process

ASSIGNMENT = "04_transformer"

FFN_SEQUENTIAL = '''
class PositionWiseFFN(nn.Module):
    def __init__(self, d_model, d_ff, dropout=0.0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model))
        self.linear1, self.dropout, self.linear2 = self.net[0], self.net[2], self.net[3]

    def forward(self, x):
        return self.net(x)
'''

FFN_MODULE_LIST = '''
class PositionWiseFFN(nn.Module):
    def __init__(self, d_model, d_ff, dropout=0.0):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(d_model, d_ff), nn.Dropout(dropout), nn.Linear(d_ff, d_model)])
        self.linear1, self.dropout, self.linear2 = self.layers

    def forward(self, x):
        expand, drop, project = self.layers
        return project(drop(torch.relu(expand(x))))
'''

FFN_MODULE_DICT = '''
class PositionWiseFFN(nn.Module):
    def __init__(self, d_model, d_ff, dropout=0.0):
        super().__init__()
        self.parts = nn.ModuleDict({"up": nn.Linear(d_model, d_ff), "drop": nn.Dropout(dropout),
                                    "down": nn.Linear(d_ff, d_model)})
        self.linear1 = self.parts["up"]
        self.dropout = self.parts["drop"]
        self.linear2 = self.parts["down"]

    def forward(self, x):
        return self.parts["down"](self.parts["drop"](F.relu(self.parts["up"](x))))
'''

ENCODER_NORMS_IN_A_LIST = '''
class TransformerEncoderBlock(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.ffn = PositionWiseFFN(d_model, d_ff, dropout)
        self.norms = nn.ModuleList([nn.LayerNorm(d_model) for _ in range(2)])
        self.norm1, self.norm2 = self.norms
        self.dropouts = nn.ModuleList([nn.Dropout(dropout) for _ in range(2)])
        self.dropout1, self.dropout2 = self.dropouts
        self.norm_first = norm_first

    def forward(self, x, mask=None):
        sublayers = (lambda h: self.self_attn(h, h, h, mask)[0], self.ffn)
        for sublayer, norm, drop in zip(sublayers, self.norms, self.dropouts):   # two sub-layers, not positions
            x = x + drop(sublayer(norm(x))) if self.norm_first else norm(x + drop(sublayer(x)))
        return x
'''

ENCODER_SUBLAYERS_FIRST = '''
class TransformerEncoderBlock(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.sublayers = nn.ModuleList([MultiHeadAttention(d_model, num_heads), PositionWiseFFN(d_model, d_ff, dropout)])
        self.wrappers = nn.ModuleDict({"norm1": nn.LayerNorm(d_model), "norm2": nn.LayerNorm(d_model),
                                       "dropout1": nn.Dropout(dropout), "dropout2": nn.Dropout(dropout)})
        self.self_attn, self.ffn = self.sublayers[0], self.sublayers[1]
        self.norm1, self.norm2 = self.wrappers["norm1"], self.wrappers["norm2"]
        self.dropout1, self.dropout2 = self.wrappers["dropout1"], self.wrappers["dropout2"]
        self.norm_first = norm_first

    def forward(self, x, mask=None):
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.dropout1(self.self_attn(h, h, h, mask)[0])
            return x + self.dropout2(self.ffn(self.norm2(x)))
        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask)[0]))
        return self.norm2(x + self.dropout2(self.ffn(x)))
'''

DECODER_CONTAINERS = '''
class TransformerDecoderBlock(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.attention = nn.ModuleDict({"self": MultiHeadAttention(d_model, num_heads),
                                        "cross": MultiHeadAttention(d_model, num_heads)})
        self.self_attn, self.cross_attn = self.attention["self"], self.attention["cross"]
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(3))
        self.norm1, self.norm2, self.norm3 = self.norms
        self.drops = nn.ModuleList(nn.Dropout(dropout) for _ in range(3))
        self.dropout1, self.dropout2, self.dropout3 = self.drops
        self.ffn = PositionWiseFFN(d_model, d_ff, dropout)
        self.norm_first = norm_first

    def forward(self, x, memory, self_mask=None, memory_mask=None):
        sublayers = (lambda h: self.self_attn(h, h, h, self_mask)[0],
                     lambda h: self.cross_attn(h, memory, memory, memory_mask)[0],
                     self.ffn)
        for sublayer, norm, drop in zip(sublayers, self.norms, self.drops):   # three sub-layers, not positions
            x = x + drop(sublayer(norm(x))) if self.norm_first else norm(x + drop(sublayer(x)))
        return x
'''

DECODER_SUBLAYERS_FIRST = '''
class TransformerDecoderBlock(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.blocks = nn.Sequential(MultiHeadAttention(d_model, num_heads), nn.LayerNorm(d_model),
                                    MultiHeadAttention(d_model, num_heads), nn.LayerNorm(d_model),
                                    PositionWiseFFN(d_model, d_ff, dropout), nn.LayerNorm(d_model))
        self.self_attn, self.norm1, self.cross_attn, self.norm2, self.ffn, self.norm3 = self.blocks
        self.dropout1, self.dropout2, self.dropout3 = (nn.Dropout(dropout) for _ in range(3))
        self.norm_first = norm_first

    def forward(self, x, memory, self_mask=None, memory_mask=None):
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.dropout1(self.self_attn(h, h, h, self_mask)[0])
            h = self.norm2(x)
            x = x + self.dropout2(self.cross_attn(h, memory, memory, memory_mask)[0])
            return x + self.dropout3(self.ffn(self.norm3(x)))
        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, self_mask)[0]))
        x = self.norm2(x + self.dropout2(self.cross_attn(x, memory, memory, memory_mask)[0]))
        return self.norm3(x + self.dropout3(self.ffn(x)))
'''

HONEST = {
    "ffn/nn.Sequential with aliases": ("PositionWiseFFN", FFN_SEQUENTIAL),
    "ffn/nn.ModuleList unpacked into aliases": ("PositionWiseFFN", FFN_MODULE_LIST),
    "ffn/nn.ModuleDict with aliases": ("PositionWiseFFN", FFN_MODULE_DICT),
    "encoder/LayerNorms and dropouts in nn.ModuleLists, a loop over the two sub-layers": ("TransformerEncoderBlock", ENCODER_NORMS_IN_A_LIST),
    "encoder/sub-layers in an nn.ModuleList and an nn.ModuleDict, registered before their aliases": ("TransformerEncoderBlock", ENCODER_SUBLAYERS_FIRST),
    "decoder/attentions in an nn.ModuleDict, norms and dropouts in nn.ModuleLists": ("TransformerDecoderBlock", DECODER_CONTAINERS),
    "decoder/everything in one nn.Sequential, unpacked into aliases": ("TransformerDecoderBlock", DECODER_SUBLAYERS_FIRST),
}


@pytest.mark.parametrize("name", sorted(HONEST))
def test_an_honest_style_gets_full_marks(name):
    cell, source = HONEST[name]
    notebook = with_cell_replaced(ASSIGNMENT, cell, source.strip("\n") + "\n")
    reference = nbformat.read(solution_path(ASSIGNMENT), as_version=4)
    failed = {g: v.message for g, v in grade_in_process(notebook, reference).items() if not v.passed}
    assert failed == {}, f"'{name}' is correct but loses {sorted(failed)}"


# A wrong decoder whose output does depend on the memory: post-norm cross-attention takes its queries from x
# (the block's input) instead of h1. decoder_masks hides memory position S - 1 from every query in one case;
# changing only that position once made the tests say the output "does not depend on the memory".
QUERIES_FROM_THE_INPUT = '''
class TransformerDecoderBlock(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.cross_attn = MultiHeadAttention(d_model, num_heads)
        self.ffn = PositionWiseFFN(d_model, d_ff, dropout)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model) for _ in range(3))
        self.dropout1, self.dropout2, self.dropout3 = (nn.Dropout(dropout) for _ in range(3))
        self.norm_first = norm_first

    def forward(self, x, memory, self_mask=None, memory_mask=None):
        if self.norm_first:
            h = self.norm1(x)
            h1 = x + self.dropout1(self.self_attn(h, h, h, self_mask)[0])
            h2 = h1 + self.dropout2(self.cross_attn(self.norm2(x), memory, memory, memory_mask)[0])
            return h2 + self.dropout3(self.ffn(self.norm3(h2)))
        h1 = self.norm1(x + self.dropout1(self.self_attn(x, x, x, self_mask)[0]))
        h2 = self.norm2(h1 + self.dropout2(self.cross_attn(x, memory, memory, memory_mask)[0]))
        return self.norm3(h2 + self.dropout3(self.ffn(h2)))
'''


def test_no_false_claim_that_the_output_ignores_the_memory():
    notebook = with_cell_replaced(ASSIGNMENT, "TransformerDecoderBlock", QUERIES_FROM_THE_INPUT.strip("\n") + "\n")
    reference = nbformat.read(solution_path(ASSIGNMENT), as_version=4)
    verdicts = grade_in_process(notebook, reference)
    failed = {g: v.message for g, v in verdicts.items() if not v.passed}
    assert {"decoder_matches_torch", "decoder_masks"} <= set(failed), "the wrong decoder keeps its points"
    for cell, message in failed.items():
        assert "does not depend on the memory" not in message, f"{cell} says what is false: {message}"


@pytest.mark.parametrize("name", sorted(HONEST))
def test_an_honest_style_shows_no_misconception(name):
    from pathlib import Path
    cell, source = HONEST[name]
    notebook = with_cell_replaced(ASSIGNMENT, cell, source.strip("\n") + "\n")
    reference = nbformat.read(solution_path(ASSIGNMENT), as_version=4)
    found = diagnose_in_process(notebook, reference, Path(solution_path(ASSIGNMENT)).parent, only=cell)
    assert cell in found and not found[cell].misconceptions, \
        f"'{name}' is correct but is taken for {found.get(cell) and found[cell].misconceptions}"
