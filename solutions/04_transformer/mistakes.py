"""The mistakes of 04_transformer, each declared once: what the student believed, the fix, the book section, and the
wrong code (autograder/mistakes.py explains what is derived from them). Never released to students."""
from autograder.mistakes import Mistake, Wrong

# The attention functions pasted from assignment 01 are graded there: every test here swaps in a reference.
GRADED_ELSEWHERE = ("attention_helpers",)

MISTAKES = [
    # --- PositionWiseFFN -------------------------------------------------------------------------------------
    Mistake("ffn.no-activation", "PositionWiseFFN",
            believed="there is no activation between the two linear layers, so they collapse into one linear map",
            fix="apply F.relu to the output of linear1, before dropout and linear2",
            section="ch04-ffn",
            wrong=[
                Wrong("ffn/no_relu",
                      edit=('F.relu(self.linear1(x))', 'self.linear1(x)'),
                      fixed=('hidden = self.linear1(x)', 'hidden = F.relu(self.linear1(x))'),
                      fails=("ffn_visible", "ffn_matches_formula", "ffn_gradients")),
            ]),
    Mistake("ffn.gelu", "PositionWiseFFN",
            believed="the hidden layer uses GELU instead of ReLU",
            fix="use F.relu (torch.relu) between the two layers, not F.gelu",
            section="ch04-ffn",
            wrong=[
                Wrong("ffn/gelu_instead_of_relu",
                      edit=('F.relu(', 'F.gelu('),
                      fixed=("F.gelu(", "F.relu("),
                      fails=("ffn_visible", "ffn_matches_formula", "ffn_gradients")),
                Wrong("ffn/gelu_by_its_formula",
                      edit=("hidden = F.relu(self.linear1(x))",
                            "pre = self.linear1(x)\n        hidden = 0.5 * pre * (1 + torch.erf(pre / math.sqrt(2)))"),
                      fixed=("0.5 * pre * (1 + torch.erf(pre / math.sqrt(2)))", "F.relu(pre)"),
                      fails=("ffn_visible", "ffn_matches_formula", "ffn_gradients"),
                      note="GELU written out with torch.erf, in the solution's own layout"),
            ]),
    Mistake("ffn.relu-on-output", "PositionWiseFFN",
            believed="a ReLU is also applied to the output of linear2, so the output cannot be negative",
            fix="return the output of linear2 as it is, with no activation after it",
            section="ch04-ffn",
            wrong=[
                Wrong("ffn/relu_on_the_output_too",
                      edit=('return self.linear2(self.dropout(hidden))', 'return F.relu(self.linear2(self.dropout(hidden)))'),
                      fixed=('return F.relu(self.linear2(self.dropout(hidden)))', 'return self.linear2(self.dropout(hidden))'),
                      fails=("ffn_matches_formula",)),
            ]),
    Mistake("ffn.no-bias", "PositionWiseFFN",
            believed="the linear layers have no bias",
            fix="build linear1 and linear2 with nn.Linear's default bias (do not pass bias=False)",
            section="ch04-ffn",
            wrong=[
                Wrong("ffn/no_bias",
                      source="""\
class PositionWiseFFN(nn.Module):
    def __init__(self, d_model, d_ff, dropout=0.0):
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ff, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x):
        return self.linear2(self.dropout(F.relu(self.linear1(x))))
""",
                      fixed=("self.linear1 = nn.Linear(d_model, d_ff, bias=False)\n        self.dropout = nn.Dropout(dropout)\n        self.linear2 = nn.Linear(d_ff, d_model, bias=False)", "self.linear1 = nn.Linear(d_model, d_ff)\n        self.dropout = nn.Dropout(dropout)\n        self.linear2 = nn.Linear(d_ff, d_model)"),
                      fails=("ffn_visible", "ffn_matches_formula", "ffn_gradients")),
            ]),
    Mistake("ffn.hidden-width", "PositionWiseFFN",
            believed="the hidden width is not the d_ff argument",
            fix="build linear1 = nn.Linear(d_model, d_ff) and linear2 = nn.Linear(d_ff, d_model), with the d_ff given to __init__",
            section="ch04-ffn",
            wrong=[
                Wrong("ffn/hidden_width_4d",
                      source="""\
class PositionWiseFFN(nn.Module):
    def __init__(self, d_model, d_ff, dropout=0.0):
        super().__init__()
        self.linear1 = nn.Linear(d_model, 4 * d_model)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(4 * d_model, d_model)

    def forward(self, x):
        return self.linear2(self.dropout(F.relu(self.linear1(x))))
""",
                      fixed=("self.linear1 = nn.Linear(d_model, 4 * d_model)\n        self.dropout = nn.Dropout(dropout)\n        self.linear2 = nn.Linear(4 * d_model, d_model)", "self.linear1 = nn.Linear(d_model, d_ff)\n        self.dropout = nn.Dropout(dropout)\n        self.linear2 = nn.Linear(d_ff, d_model)"),
                      fails=("ffn_visible", "ffn_matches_formula")),
            ]),
    Mistake("ffn.dropout-misplaced", "PositionWiseFFN",
            believed="dropout acts on the input or on the output of the FFN, not on its hidden activations",
            fix="apply self.dropout to the hidden activations only: linear2(dropout(relu(linear1(x))))",
            section="ch04-block",
            wrong=[
                Wrong("ffn/dropout_after_linear2",
                      edit=('return self.linear2(self.dropout(hidden))', 'return self.dropout(self.linear2(hidden))'),
                      fixed=('return self.dropout(self.linear2(hidden))', 'return self.linear2(self.dropout(hidden))'),
                      fails=("ffn_dropout",),
                      note="dropout on the FFN's output instead of its hidden activations"),
                Wrong("ffn/dropout_on_the_input",
                      source="""\
class PositionWiseFFN(nn.Module):
    def __init__(self, d_model, d_ff, dropout=0.0):
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ff)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ff, d_model)

    def forward(self, x):
        return self.linear2(F.relu(self.linear1(self.dropout(x))))
""",
                      fixed=("return self.linear2(F.relu(self.linear1(self.dropout(x))))", "return self.linear2(self.dropout(F.relu(self.linear1(x))))"),
                      fails=("ffn_dropout",),
                      note="dropout on the input x instead of the hidden activations"),
            ]),
    Mistake("ffn.dropout-in-eval", "PositionWiseFFN",
            believed="dropout is also applied in evaluation mode",
            fix="use self.dropout (nn.Dropout), which does nothing after model.eval(), or F.dropout(..., training=self.training)",
            section="ch04-block",
            wrong=[
                Wrong("ffn/dropout_in_eval_mode",
                      edit=('self.dropout(hidden)', 'F.dropout(hidden, self.dropout.p, training=True)'),
                      fixed=("training=True", "training=self.training"),
                      fails=("ffn_dropout",)),
            ]),
    Mistake("ffn.dropout-unused", "PositionWiseFFN",
            believed="self.dropout is created but never applied",
            fix="apply self.dropout to the hidden activations, after the ReLU and before linear2",
            section="ch04-block",
            wrong=[
                Wrong("ffn/dropout_never_applied",
                      edit=('self.linear2(self.dropout(hidden))', 'self.linear2(hidden)'),
                      fixed=('return self.linear2(hidden)', 'return self.linear2(self.dropout(hidden))'),
                      fails=("ffn_dropout",)),
            ]),
    Mistake("ffn.dropout-not-rescaled", "PositionWiseFFN",
            believed="the kept activations are not scaled by 1 / (1 - p) in training mode",
            fix="use self.dropout (nn.Dropout), which zeroes activations with probability p and multiplies the kept ones by 1 / (1 - p)",
            section="ch04-block",
            wrong=[
                Wrong("ffn/dropout_without_rescaling",
                      source="""\
class PositionWiseFFN(nn.Module):
    def __init__(self, d_model, d_ff, dropout=0.0):
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ff)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ff, d_model)

    def forward(self, x):
        hidden = F.relu(self.linear1(x))
        if self.training:
            hidden = hidden * (torch.rand_like(hidden) >= self.dropout.p)
        return self.linear2(hidden)
""",
                      fixed=("        if self.training:\n            hidden = hidden * (torch.rand_like(hidden) >= self.dropout.p)\n", "        hidden = self.dropout(hidden)\n"),
                      fails=("ffn_dropout",)),
            ]),
    Mistake("ffn.python-loop", "PositionWiseFFN",
            believed="the FFN runs in a Python loop over the sequences or the positions",
            fix="apply linear1, the ReLU, dropout and linear2 to the whole tensor at once: nn.Linear acts on the last dimension whatever the leading ones",
            section="ch04-ffn",
            detect=False,
            wrong=[
                Wrong("ffn/loop_over_the_batch",
                      source="""\
class PositionWiseFFN(nn.Module):
    def __init__(self, d_model, d_ff, dropout=0.0):
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ff)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ff, d_model)

    def forward(self, x):
        if x.dim() < 3:
            return self.linear2(self.dropout(F.relu(self.linear1(x))))
        outputs = []
        for sequence in x.reshape(-1, *x.shape[-2:]):      # one sequence of the batch at a time
            outputs.append(self.linear2(self.dropout(F.relu(self.linear1(sequence)))))
        return torch.stack(outputs).reshape(x.shape)
""",
                      fixed=("if x.dim() < 3:\n            return self.linear2(self.dropout(F.relu(self.linear1(x))))\n        outputs = []\n        for sequence in x.reshape(-1, *x.shape[-2:]):      # one sequence of the batch at a time\n            outputs.append(self.linear2(self.dropout(F.relu(self.linear1(sequence)))))\n        return torch.stack(outputs).reshape(x.shape)", "return self.linear2(self.dropout(F.relu(self.linear1(x))))"),
                      fails=("ffn_gradients",)),
            ]),
    # --- TransformerEncoderBlock -----------------------------------------------------------------------------
    Mistake("enc.no-residual", "TransformerEncoderBlock",
            believed="a sub-layer has no residual connection: its output replaces its input instead of being added to it",
            fix="add each sub-layer's output to its input: x + dropout1(SA(...)) and h + dropout2(FFN(...)), then normalise the sum in post-norm",
            section="ch04-residual",
            wrong=[
                Wrong("encoder/no_attention_residual",
                      source="""\
class TransformerEncoderBlock(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.ffn = PositionWiseFFN(d_model, d_ff, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x, mask=None):
        if self.norm_first:
            h = self.norm1(x)
            x = self.dropout1(self.self_attn(h, h, h, mask)[0])
            return x + self.dropout2(self.ffn(self.norm2(x)))
        x = self.norm1(self.dropout1(self.self_attn(x, x, x, mask)[0]))
        return self.norm2(x + self.dropout2(self.ffn(x)))
""",
                      fixed=("x = self.dropout1(self.self_attn(h, h, h, mask)[0])\n            return x + self.dropout2(self.ffn(self.norm2(x)))\n        x = self.norm1(self.dropout1(", "x = x + self.dropout1(self.self_attn(h, h, h, mask)[0])\n            return x + self.dropout2(self.ffn(self.norm2(x)))\n        x = self.norm1(x + self.dropout1("),
                      fails=("encoder_visible", "encoder_matches_torch", "encoder_dropout"),
                      note="no residual connection around self-attention"),
                Wrong("encoder/no_ffn_residual",
                      source="""\
class TransformerEncoderBlock(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.ffn = PositionWiseFFN(d_model, d_ff, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x, mask=None):
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.dropout1(self.self_attn(h, h, h, mask)[0])
            return self.dropout2(self.ffn(self.norm2(x)))
        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask)[0]))
        return self.norm2(self.dropout2(self.ffn(x)))
""",
                      fixed=("return self.dropout2(self.ffn(self.norm2(x)))\n        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask)[0]))\n        return self.norm2(self.dropout2(", "return x + self.dropout2(self.ffn(self.norm2(x)))\n        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask)[0]))\n        return self.norm2(x + self.dropout2("),
                      fails=("encoder_visible", "encoder_matches_torch", "encoder_dropout"),
                      note="no residual connection around the FFN"),
            ]),
    Mistake("enc.norm-before-residual", "TransformerEncoderBlock",
            believed="post-norm is written x + norm(sublayer(x)): the sum is never normalised",
            fix="in post-norm, normalise after the addition: norm1(x + dropout1(SA(x))) and norm2(h + dropout2(FFN(h)))",
            section="ch04-block",
            wrong=[
                Wrong("encoder/post_norm_before_the_residual",
                      source="""\
class TransformerEncoderBlock(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.ffn = PositionWiseFFN(d_model, d_ff, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x, mask=None):
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.dropout1(self.self_attn(h, h, h, mask)[0])
            return x + self.dropout2(self.ffn(self.norm2(x)))
        x = x + self.norm1(self.dropout1(self.self_attn(x, x, x, mask)[0]))
        return x + self.norm2(self.dropout2(self.ffn(x)))
""",
                      fixed=("x = x + self.norm1(self.dropout1(self.self_attn(x, x, x, mask)[0]))\n        return x + self.norm2(self.dropout2(self.ffn(x)))", "x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask)[0]))\n        return self.norm2(x + self.dropout2(self.ffn(x)))"),
                      fails=("encoder_visible", "encoder_matches_torch")),
            ]),
    Mistake("enc.pre-norm-residual-normalised", "TransformerEncoderBlock",
            believed="pre-norm adds the sub-layer's output to norm(x) instead of x",
            fix="in pre-norm, add to the un-normalised stream: x + dropout1(SA(norm1(x))), then h + dropout2(FFN(norm2(h)))",
            section="ch04-block",
            wrong=[
                Wrong("encoder/pre_norm_residual_from_the_normalised_input",
                      source="""\
class TransformerEncoderBlock(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.ffn = PositionWiseFFN(d_model, d_ff, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x, mask=None):
        if self.norm_first:
            h = self.norm1(x)
            x = h + self.dropout1(self.self_attn(h, h, h, mask)[0])
            h = self.norm2(x)
            return h + self.dropout2(self.ffn(h))
        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask)[0]))
        return self.norm2(x + self.dropout2(self.ffn(x)))
""",
                      fixed=("x = h + self.dropout1(self.self_attn(h, h, h, mask)[0])\n            h = self.norm2(x)\n            return h + self.dropout2(self.ffn(h))", "x = x + self.dropout1(self.self_attn(h, h, h, mask)[0])\n            h = self.norm2(x)\n            return x + self.dropout2(self.ffn(h))"),
                      fails=("encoder_visible", "encoder_matches_torch")),
            ]),
    Mistake("enc.norm-first-ignored", "TransformerEncoderBlock",
            believed="norm_first is ignored: the block is always post-norm",
            fix="when self.norm_first is True, compute pre-norm: h = x + dropout1(SA(norm1(x))), y = h + dropout2(FFN(norm2(h)))",
            section="ch04-block",
            wrong=[
                Wrong("encoder/norm_first_ignored",
                      source="""\
class TransformerEncoderBlock(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.ffn = PositionWiseFFN(d_model, d_ff, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x, mask=None):
        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask)[0]))
        return self.norm2(x + self.dropout2(self.ffn(x)))
""",
                      fixed=("    def forward(self, x, mask=None):\n", "    def forward(self, x, mask=None):\n        if self.norm_first:\n            n = self.norm1(x)\n            h = x + self.dropout1(self.self_attn(n, n, n, mask)[0])\n            return h + self.dropout2(self.ffn(self.norm2(h)))\n"),
                      fails=("encoder_visible", "encoder_matches_torch")),
            ]),
    Mistake("enc.shared-layernorm", "TransformerEncoderBlock",
            believed="one LayerNorm is used for both sub-layers",
            fix="create norm1 and norm2 as two separate nn.LayerNorm(d_model), each with its own parameters",
            section="ch04-layer-norm",
            wrong=[
                Wrong("encoder/one_shared_layernorm",
                      edit=('self.norm2 = nn.LayerNorm(d_model)', 'self.norm2 = self.norm1'),
                      fixed=("self.norm2 = self.norm1", "self.norm2 = nn.LayerNorm(d_model)"),
                      fails=("encoder_visible", "encoder_matches_torch", "encoder_gradients")),
            ]),
    Mistake("enc.dropout-in-eval", "TransformerEncoderBlock",
            believed="dropout is also applied in evaluation mode",
            fix="use self.dropout1 and self.dropout2 (nn.Dropout), which do nothing after model.eval(), not F.dropout(..., training=True)",
            section="ch04-block",
            wrong=[
                Wrong("encoder/dropout_in_eval_mode",
                      source="""\
class TransformerEncoderBlock(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.ffn = PositionWiseFFN(d_model, d_ff, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x, mask=None):
        if self.norm_first:
            h = self.norm1(x)
            x = x + F.dropout(self.self_attn(h, h, h, mask)[0], self.dropout1.p, training=True)
            return x + F.dropout(self.ffn(self.norm2(x)), self.dropout2.p, training=True)
        x = self.norm1(x + F.dropout(self.self_attn(x, x, x, mask)[0], self.dropout1.p, training=True))
        return self.norm2(x + F.dropout(self.ffn(x), self.dropout2.p, training=True))
""",
                      fixed=("x = x + F.dropout(self.self_attn(h, h, h, mask)[0], self.dropout1.p, training=True)\n            return x + F.dropout(self.ffn(self.norm2(x)), self.dropout2.p, training=True)\n        x = self.norm1(x + F.dropout(self.self_attn(x, x, x, mask)[0], self.dropout1.p, training=True))\n        return self.norm2(x + F.dropout(self.ffn(x), self.dropout2.p, training=True))", "x = x + self.dropout1(self.self_attn(h, h, h, mask)[0])\n            return x + self.dropout2(self.ffn(self.norm2(x)))\n        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask)[0]))\n        return self.norm2(x + self.dropout2(self.ffn(x)))"),
                      fails=("encoder_dropout",)),
            ]),
    Mistake("enc.no-dropout", "TransformerEncoderBlock",
            believed="dropout1 and dropout2 are never applied",
            fix="apply self.dropout1 and self.dropout2 to the sub-layers' outputs before adding them to the residual stream",
            section="ch04-block",
            wrong=[
                Wrong("encoder/no_dropout",
                      source="""\
class TransformerEncoderBlock(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.ffn = PositionWiseFFN(d_model, d_ff, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x, mask=None):
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.self_attn(h, h, h, mask)[0]
            return x + self.ffn(self.norm2(x))
        x = self.norm1(x + self.self_attn(x, x, x, mask)[0])
        return self.norm2(x + self.ffn(x))
""",
                      fixed=("x = x + self.self_attn(h, h, h, mask)[0]\n            return x + self.ffn(self.norm2(x))\n        x = self.norm1(x + self.self_attn(x, x, x, mask)[0])\n        return self.norm2(x + self.ffn(x))", "x = x + self.dropout1(self.self_attn(h, h, h, mask)[0])\n            return x + self.dropout2(self.ffn(self.norm2(x)))\n        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask)[0]))\n        return self.norm2(x + self.dropout2(self.ffn(x)))"),
                      fails=("encoder_dropout",)),
            ]),
    Mistake("enc.dropout-on-sum", "TransformerEncoderBlock",
            believed="dropout is applied to x + sublayer(x) instead of the sub-layer's output",
            fix="apply dropout to the sub-layer's output only, then add: norm1(x + dropout1(SA(x))) and norm2(h + dropout2(FFN(h)))",
            section="ch04-block",
            wrong=[
                Wrong("encoder/dropout_on_the_residual_sum",
                      source="""\
class TransformerEncoderBlock(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.ffn = PositionWiseFFN(d_model, d_ff, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x, mask=None):
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.dropout1(self.self_attn(h, h, h, mask)[0])
            return x + self.dropout2(self.ffn(self.norm2(x)))
        x = self.norm1(self.dropout1(x + self.self_attn(x, x, x, mask)[0]))
        return self.norm2(self.dropout2(x + self.ffn(x)))
""",
                      fixed=("x = self.norm1(self.dropout1(x + self.self_attn(x, x, x, mask)[0]))\n        return self.norm2(self.dropout2(x + self.ffn(x)))", "x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask)[0]))\n        return self.norm2(x + self.dropout2(self.ffn(x)))"),
                      fails=("encoder_dropout",)),
            ]),
    Mistake("enc.ffn-dropout", "TransformerEncoderBlock",
            believed="the FFN is built without the block's dropout rate",
            fix="build the FFN with the block's rate: PositionWiseFFN(d_model, d_ff, dropout)",
            section="ch04-block",
            wrong=[
                Wrong("encoder/ffn_built_without_dropout",
                      edit=('PositionWiseFFN(d_model, d_ff, dropout)', 'PositionWiseFFN(d_model, d_ff)'),
                      fixed=("PositionWiseFFN(d_model, d_ff)", "PositionWiseFFN(d_model, d_ff, dropout)"),
                      fails=("encoder_dropout",)),
            ]),
    Mistake("enc.ffn-width", "TransformerEncoderBlock",
            believed="the FFN is built with a hidden width other than d_ff",
            fix="build the FFN with the d_ff argument: PositionWiseFFN(d_model, d_ff, dropout)",
            section="ch04-ffn",
            wrong=[
                Wrong("encoder/ffn_width_4d",
                      edit=('PositionWiseFFN(d_model, d_ff, dropout)', 'PositionWiseFFN(d_model, 4 * d_model, dropout)'),
                      fixed=("PositionWiseFFN(d_model, 4 * d_model, dropout)", "PositionWiseFFN(d_model, d_ff, dropout)"),
                      fails=("encoder_matches_torch",)),
            ]),
    Mistake("enc.mask-ignored", "TransformerEncoderBlock",
            believed="the mask is never passed to self-attention",
            fix="pass the mask on: self_attn(h, h, h, mask)",
            section="ch04-block",
            wrong=[
                Wrong("encoder/mask_ignored",
                      source="""\
class TransformerEncoderBlock(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.ffn = PositionWiseFFN(d_model, d_ff, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x, mask=None):
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.dropout1(self.self_attn(h, h, h)[0])
            return x + self.dropout2(self.ffn(self.norm2(x)))
        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x)[0]))
        return self.norm2(x + self.dropout2(self.ffn(x)))
""",
                      fixed=("self.self_attn(h, h, h)[0])\n            return x + self.dropout2(self.ffn(self.norm2(x)))\n        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x)[0]))", "self.self_attn(h, h, h, mask)[0])\n            return x + self.dropout2(self.ffn(self.norm2(x)))\n        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask)[0]))"),
                      fails=("encoder_visible", "encoder_matches_torch", "encoder_masks")),
            ]),
    Mistake("enc.mask-inverted", "TransformerEncoderBlock",
            believed="the mask is inverted as for torch's layers",
            fix="pass the mask as it is: in this course True means \"may attend\" (only torch's nn.TransformerEncoderLayer wants it inverted)",
            section="ch04-block",
            wrong=[
                Wrong("encoder/mask_inverted",
                      edit=('        if self.norm_first:', '        mask = None if mask is None else ~mask\n        if self.norm_first:'),
                      fixed=("        mask = None if mask is None else ~mask\n", ""),
                      fails=("encoder_visible", "encoder_matches_torch", "encoder_masks")),
                Wrong("encoder/mask_compared_with_zero",
                      edit=("        if self.norm_first:",
                            "        if mask is not None:\n            mask = mask == 0                                  # True = blocked, as in torch\n"
                            "        if self.norm_first:"),
                      fixed=("        if mask is not None:\n            mask = mask == 0                                  # True = blocked, as in torch\n", ""),
                      fails=("encoder_visible", "encoder_matches_torch", "encoder_masks"),
                      note="the mask inverted by comparing it with 0, in the solution's own layout"),
            ]),
    Mistake("enc.python-loop", "TransformerEncoderBlock",
            believed="a sub-layer or a LayerNorm runs in a Python loop over the positions or the sequences",
            fix="call each sub-layer and each LayerNorm once on the whole (B, T, D) tensor: each acts on every position at once",
            section="ch04-block",
            detect=False,
            wrong=[
                Wrong("encoder/layernorm_position_by_position",
                      source="""\
class TransformerEncoderBlock(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.ffn = PositionWiseFFN(d_model, d_ff, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x, mask=None):
        def norm(layer, h):
            outputs = []
            for t in range(h.shape[1]):                     # one position at a time
                outputs.append(layer(h[:, t]))
            return torch.stack(outputs, dim=1)
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.dropout1(self.self_attn(h, h, h, mask)[0])
            return x + self.dropout2(self.ffn(norm(self.norm2, x)))
        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask)[0]))
        return norm(self.norm2, x + self.dropout2(self.ffn(x)))
""",
                      fixed=("def norm(layer, h):\n            outputs = []\n            for t in range(h.shape[1]):                     # one position at a time\n                outputs.append(layer(h[:, t]))\n            return torch.stack(outputs, dim=1)", "norm = lambda layer, h: layer(h)"),
                      fails=("encoder_gradients",)),
            ]),
    # --- TransformerDecoderBlock -----------------------------------------------------------------------------
    Mistake("dec.queries-from-memory", "TransformerDecoderBlock",
            believed="cross-attention takes its queries from the memory",
            fix="call cross_attn(h, memory, memory, memory_mask): the queries come from the decoder's stream, the keys and values from the memory",
            section="ch04-decoder",
            wrong=[
                Wrong("decoder/queries_from_memory",
                      edit=('self.cross_attn(x, memory, memory, memory_mask)', 'self.cross_attn(memory, x, x, memory_mask)'),
                      fixed=("self.cross_attn(memory, x, x, memory_mask)", "self.cross_attn(x, memory, memory, memory_mask)"),
                      fails=("decoder_visible", "decoder_matches_torch", "decoder_masks")),
            ]),
    Mistake("dec.kv-from-x", "TransformerDecoderBlock",
            believed="cross-attention reads the decoder's own stream instead of the memory",
            fix="pass the memory as the key and the value of cross-attention: cross_attn(h, memory, memory, memory_mask)",
            section="ch04-decoder",
            wrong=[
                Wrong("decoder/keys_and_values_from_x",
                      source="""\
class TransformerDecoderBlock(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.cross_attn = MultiHeadAttention(d_model, num_heads)
        self.ffn = PositionWiseFFN(d_model, d_ff, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x, memory, self_mask=None, memory_mask=None):
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.dropout1(self.self_attn(h, h, h, self_mask)[0])
            h = self.norm2(x)
            x = x + self.dropout2(self.cross_attn(h, h, h, memory_mask)[0])
            return x + self.dropout3(self.ffn(self.norm3(x)))
        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, self_mask)[0]))
        x = self.norm2(x + self.dropout2(self.cross_attn(x, x, x, memory_mask)[0]))
        return self.norm3(x + self.dropout3(self.ffn(x)))
""",
                      fixed=("self.cross_attn(h, h, h, memory_mask)[0])\n            return x + self.dropout3(self.ffn(self.norm3(x)))\n        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, self_mask)[0]))\n        x = self.norm2(x + self.dropout2(self.cross_attn(x, x, x, memory_mask)[0]))", "self.cross_attn(h, memory, memory, memory_mask)[0])\n            return x + self.dropout3(self.ffn(self.norm3(x)))\n        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, self_mask)[0]))\n        x = self.norm2(x + self.dropout2(self.cross_attn(x, memory, memory, memory_mask)[0]))"),
                      fails=("decoder_visible", "decoder_matches_torch", "decoder_masks")),
            ]),
    Mistake("dec.memory-normalised", "TransformerDecoderBlock",
            believed="pre-norm normalises the memory before cross-attention",
            fix="pass the memory to cross-attention as it is: only the decoder's stream goes through norm2",
            section="ch04-decoder",
            wrong=[
                Wrong("decoder/memory_normalised",
                      edit=('            x = x + self.dropout2(self.cross_attn(h, memory, memory, memory_mask)[0])', '            m = self.norm2(memory)\n            x = x + self.dropout2(self.cross_attn(h, m, m, memory_mask)[0])'),
                      fixed=('m = self.norm2(memory)', 'm = memory'),
                      fails=("decoder_visible", "decoder_matches_torch")),
            ]),
    Mistake("dec.causal-cross-mask", "TransformerDecoderBlock",
            believed="a causal mask is applied to cross-attention too",
            fix="pass memory_mask to cross-attention as it is: the causal mask belongs to self-attention (self_mask)",
            section="ch04-decoder",
            wrong=[
                Wrong("decoder/causal_mask_on_cross_attention",
                      edit=('        if self.norm_first:', '        T, S = x.shape[1], memory.shape[1]\n        causal = torch.ones(T, S, dtype=torch.bool, device=x.device).tril()\n        memory_mask = causal if memory_mask is None else memory_mask & causal\n        if self.norm_first:'),
                      fixed=("        T, S = x.shape[1], memory.shape[1]\n        causal = torch.ones(T, S, dtype=torch.bool, device=x.device).tril()\n        memory_mask = causal if memory_mask is None else memory_mask & causal\n", ""),
                      fails=("decoder_visible", "decoder_matches_torch", "decoder_masks")),
                Wrong("decoder/memory_mask_made_causal_with_logical_and",
                      edit=("        if self.norm_first:",
                            "        if memory_mask is not None:\n"
                            "            memory_mask = torch.logical_and(memory_mask, torch.tril(torch.ones(x.size(1), memory.size(1), dtype=torch.bool)))\n"
                            "        if self.norm_first:"),
                      fixed=("        if memory_mask is not None:\n"
                             "            memory_mask = torch.logical_and(memory_mask, torch.tril(torch.ones(x.size(1), memory.size(1), dtype=torch.bool)))\n", ""),
                      fails=("decoder_visible", "decoder_matches_torch", "decoder_masks"),
                      note="torch.logical_and with torch.tril, and no mask at all where none is given"),
            ]),
    Mistake("dec.masks-swapped", "TransformerDecoderBlock",
            believed="self_mask goes to cross-attention and memory_mask to self-attention",
            fix="give self_mask to self_attn and memory_mask to cross_attn",
            section="ch04-decoder",
            wrong=[
                Wrong("decoder/masks_swapped",
                      edit=('        if self.norm_first:', '        self_mask, memory_mask = memory_mask, self_mask\n        if self.norm_first:'),
                      fixed=("        self_mask, memory_mask = memory_mask, self_mask\n", ""),
                      fails=("decoder_visible", "decoder_matches_torch", "decoder_masks")),
            ]),
    Mistake("dec.self-mask-ignored", "TransformerDecoderBlock",
            believed="self_mask is never passed to self-attention, so the future leaks",
            fix="pass self_mask on: self_attn(h, h, h, self_mask)",
            section="ch04-decoder",
            wrong=[
                Wrong("decoder/self_mask_ignored",
                      source="""\
class TransformerDecoderBlock(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.cross_attn = MultiHeadAttention(d_model, num_heads)
        self.ffn = PositionWiseFFN(d_model, d_ff, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x, memory, self_mask=None, memory_mask=None):
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.dropout1(self.self_attn(h, h, h)[0])
            h = self.norm2(x)
            x = x + self.dropout2(self.cross_attn(h, memory, memory, memory_mask)[0])
            return x + self.dropout3(self.ffn(self.norm3(x)))
        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x)[0]))
        x = self.norm2(x + self.dropout2(self.cross_attn(x, memory, memory, memory_mask)[0]))
        return self.norm3(x + self.dropout3(self.ffn(x)))
""",
                      fixed=("self.self_attn(h, h, h)[0])\n            h = self.norm2(x)\n            x = x + self.dropout2(self.cross_attn(h, memory, memory, memory_mask)[0])\n            return x + self.dropout3(self.ffn(self.norm3(x)))\n        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x)[0]))", "self.self_attn(h, h, h, self_mask)[0])\n            h = self.norm2(x)\n            x = x + self.dropout2(self.cross_attn(h, memory, memory, memory_mask)[0])\n            return x + self.dropout3(self.ffn(self.norm3(x)))\n        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, self_mask)[0]))"),
                      fails=("decoder_visible", "decoder_matches_torch", "decoder_masks")),
            ]),
    Mistake("dec.sublayer-order", "TransformerDecoderBlock",
            believed="the sub-layers run in the wrong order",
            fix="run self-attention first, then cross-attention, then the FFN",
            section="ch04-decoder",
            wrong=[
                Wrong("decoder/cross_attention_before_self_attention",
                      source="""\
class TransformerDecoderBlock(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.cross_attn = MultiHeadAttention(d_model, num_heads)
        self.ffn = PositionWiseFFN(d_model, d_ff, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x, memory, self_mask=None, memory_mask=None):
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.dropout1(self.cross_attn(h, memory, memory, memory_mask)[0])
            h = self.norm2(x)
            x = x + self.dropout2(self.self_attn(h, h, h, self_mask)[0])
            return x + self.dropout3(self.ffn(self.norm3(x)))
        x = self.norm1(x + self.dropout1(self.cross_attn(x, memory, memory, memory_mask)[0]))
        x = self.norm2(x + self.dropout2(self.self_attn(x, x, x, self_mask)[0]))
        return self.norm3(x + self.dropout3(self.ffn(x)))
""",
                      fixed=("x = x + self.dropout1(self.cross_attn(h, memory, memory, memory_mask)[0])\n            h = self.norm2(x)\n            x = x + self.dropout2(self.self_attn(h, h, h, self_mask)[0])\n            return x + self.dropout3(self.ffn(self.norm3(x)))\n        x = self.norm1(x + self.dropout1(self.cross_attn(x, memory, memory, memory_mask)[0]))\n        x = self.norm2(x + self.dropout2(self.self_attn(x, x, x, self_mask)[0]))", "x = x + self.dropout1(self.self_attn(h, h, h, self_mask)[0])\n            h = self.norm2(x)\n            x = x + self.dropout2(self.cross_attn(h, memory, memory, memory_mask)[0])\n            return x + self.dropout3(self.ffn(self.norm3(x)))\n        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, self_mask)[0]))\n        x = self.norm2(x + self.dropout2(self.cross_attn(x, memory, memory, memory_mask)[0]))"),
                      fails=("decoder_visible", "decoder_matches_torch", "decoder_masks")),
            ]),
    Mistake("dec.no-residual", "TransformerDecoderBlock",
            believed="a sub-layer has no residual connection: its output replaces its input instead of being added to it",
            fix="add each sub-layer's output to its input: e.g. norm2(h1 + dropout2(CA(h1, memory))) in post-norm, h1 + dropout2(CA(norm2(h1), memory)) in pre-norm",
            section="ch04-residual",
            wrong=[
                Wrong("decoder/no_cross_attention_residual",
                      edit=('x = self.norm2(x + self.dropout2(read))', 'x = self.norm2(self.dropout2(read))'),
                      fixed=("x = self.norm2(self.dropout2(", "x = self.norm2(x + self.dropout2("),
                      fails=("decoder_visible", "decoder_matches_torch", "decoder_dropout")),
            ]),
    Mistake("dec.norm-before-residual", "TransformerDecoderBlock",
            believed="post-norm is written x + norm(sublayer(x)): the sum is never normalised",
            fix="in post-norm, normalise after each addition: norm1(x + dropout1(SA(x))), norm2(h1 + dropout2(CA(h1, memory))), norm3(h2 + dropout3(FFN(h2)))",
            section="ch04-decoder",
            wrong=[
                Wrong("decoder/post_norm_before_the_residual",
                      source="""\
class TransformerDecoderBlock(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.cross_attn = MultiHeadAttention(d_model, num_heads)
        self.ffn = PositionWiseFFN(d_model, d_ff, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x, memory, self_mask=None, memory_mask=None):
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.dropout1(self.self_attn(h, h, h, self_mask)[0])
            h = self.norm2(x)
            x = x + self.dropout2(self.cross_attn(h, memory, memory, memory_mask)[0])
            return x + self.dropout3(self.ffn(self.norm3(x)))
        x = x + self.norm1(self.dropout1(self.self_attn(x, x, x, self_mask)[0]))
        x = x + self.norm2(self.dropout2(self.cross_attn(x, memory, memory, memory_mask)[0]))
        return x + self.norm3(self.dropout3(self.ffn(x)))
""",
                      fixed=("x = x + self.norm1(self.dropout1(self.self_attn(x, x, x, self_mask)[0]))\n        x = x + self.norm2(self.dropout2(self.cross_attn(x, memory, memory, memory_mask)[0]))\n        return x + self.norm3(self.dropout3(self.ffn(x)))", "x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, self_mask)[0]))\n        x = self.norm2(x + self.dropout2(self.cross_attn(x, memory, memory, memory_mask)[0]))\n        return self.norm3(x + self.dropout3(self.ffn(x)))"),
                      fails=("decoder_visible", "decoder_matches_torch")),
            ]),
    Mistake("dec.norm-first-ignored", "TransformerDecoderBlock",
            believed="norm_first is ignored: the block is always post-norm",
            fix="when self.norm_first is True, compute pre-norm: h1 = x + dropout1(SA(norm1(x))), h2 = h1 + dropout2(CA(norm2(h1), memory)), y = h2 + dropout3(FFN(norm3(h2)))",
            section="ch04-decoder",
            wrong=[
                Wrong("decoder/norm_first_ignored",
                      source="""\
class TransformerDecoderBlock(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.cross_attn = MultiHeadAttention(d_model, num_heads)
        self.ffn = PositionWiseFFN(d_model, d_ff, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x, memory, self_mask=None, memory_mask=None):
        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, self_mask)[0]))
        x = self.norm2(x + self.dropout2(self.cross_attn(x, memory, memory, memory_mask)[0]))
        return self.norm3(x + self.dropout3(self.ffn(x)))
""",
                      fixed=("    def forward(self, x, memory, self_mask=None, memory_mask=None):\n", "    def forward(self, x, memory, self_mask=None, memory_mask=None):\n        if self.norm_first:\n            n = self.norm1(x)\n            h1 = x + self.dropout1(self.self_attn(n, n, n, self_mask)[0])\n            n = self.norm2(h1)\n            h2 = h1 + self.dropout2(self.cross_attn(n, memory, memory, memory_mask)[0])\n            return h2 + self.dropout3(self.ffn(self.norm3(h2)))\n"),
                      fails=("decoder_visible", "decoder_matches_torch")),
            ]),
    Mistake("dec.shared-layernorm", "TransformerDecoderBlock",
            believed="two sub-layers share one LayerNorm",
            fix="create norm1, norm2 and norm3 as three separate nn.LayerNorm(d_model)",
            section="ch04-layer-norm",
            wrong=[
                Wrong("decoder/one_shared_layernorm",
                      edit=('self.norm3 = nn.LayerNorm(d_model)', 'self.norm3 = self.norm2'),
                      fixed=("self.norm3 = self.norm2", "self.norm3 = nn.LayerNorm(d_model)"),
                      fails=("decoder_visible", "decoder_matches_torch", "decoder_gradients")),
            ]),
    Mistake("dec.shared-attention", "TransformerDecoderBlock",
            believed="cross-attention is the self-attention module again",
            fix="build cross_attn as a second MultiHeadAttention(d_model, num_heads), not self.self_attn",
            section="ch04-decoder",
            wrong=[
                Wrong("decoder/one_shared_attention",
                      edit=('self.cross_attn = MultiHeadAttention(d_model, num_heads)', 'self.cross_attn = self.self_attn'),
                      fixed=("self.cross_attn = self.self_attn", "self.cross_attn = MultiHeadAttention(d_model, num_heads)"),
                      fails=("decoder_visible", "decoder_matches_torch", "decoder_gradients")),
            ]),
    Mistake("dec.dropout-in-eval", "TransformerDecoderBlock",
            believed="dropout is also applied in evaluation mode",
            fix="use self.dropout1, self.dropout2 and self.dropout3 (nn.Dropout), which do nothing after model.eval(), not F.dropout(..., training=True)",
            section="ch04-block",
            wrong=[
                Wrong("decoder/dropout_in_eval_mode",
                      source="""\
class TransformerDecoderBlock(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.cross_attn = MultiHeadAttention(d_model, num_heads)
        self.ffn = PositionWiseFFN(d_model, d_ff, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x, memory, self_mask=None, memory_mask=None):
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.dropout1(self.self_attn(h, h, h, self_mask)[0])
            h = self.norm2(x)
            x = x + F.dropout(self.cross_attn(h, memory, memory, memory_mask)[0], self.dropout2.p, training=True)
            return x + self.dropout3(self.ffn(self.norm3(x)))
        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, self_mask)[0]))
        x = self.norm2(x + F.dropout(self.cross_attn(x, memory, memory, memory_mask)[0], self.dropout2.p, training=True))
        return self.norm3(x + self.dropout3(self.ffn(x)))
""",
                      fixed=("F.dropout(self.cross_attn(h, memory, memory, memory_mask)[0], self.dropout2.p, training=True)\n            return x + self.dropout3(self.ffn(self.norm3(x)))\n        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, self_mask)[0]))\n        x = self.norm2(x + F.dropout(self.cross_attn(x, memory, memory, memory_mask)[0], self.dropout2.p, training=True))", "self.dropout2(self.cross_attn(h, memory, memory, memory_mask)[0])\n            return x + self.dropout3(self.ffn(self.norm3(x)))\n        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, self_mask)[0]))\n        x = self.norm2(x + self.dropout2(self.cross_attn(x, memory, memory, memory_mask)[0]))"),
                      fails=("decoder_dropout",)),
            ]),
    Mistake("dec.python-loop", "TransformerDecoderBlock",
            believed="a sub-layer or a LayerNorm runs in a Python loop over the positions or the sequences",
            fix="call each sub-layer and each LayerNorm once on the whole tensors: each acts on every position at once",
            section="ch04-decoder",
            detect=False,
            wrong=[
                Wrong("decoder/layernorm_position_by_position",
                      source="""\
class TransformerDecoderBlock(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.cross_attn = MultiHeadAttention(d_model, num_heads)
        self.ffn = PositionWiseFFN(d_model, d_ff, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x, memory, self_mask=None, memory_mask=None):
        def norm(layer, h):
            outputs = []
            for t in range(h.shape[1]):                     # one position at a time
                outputs.append(layer(h[:, t]))
            return torch.stack(outputs, dim=1)
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.dropout1(self.self_attn(h, h, h, self_mask)[0])
            h = self.norm2(x)
            x = x + self.dropout2(self.cross_attn(h, memory, memory, memory_mask)[0])
            return x + self.dropout3(self.ffn(norm(self.norm3, x)))
        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, self_mask)[0]))
        x = self.norm2(x + self.dropout2(self.cross_attn(x, memory, memory, memory_mask)[0]))
        return norm(self.norm3, x + self.dropout3(self.ffn(x)))
""",
                      fixed=("def norm(layer, h):\n            outputs = []\n            for t in range(h.shape[1]):                     # one position at a time\n                outputs.append(layer(h[:, t]))\n            return torch.stack(outputs, dim=1)", "norm = lambda layer, h: layer(h)"),
                      fails=("decoder_gradients",)),
            ]),
]
