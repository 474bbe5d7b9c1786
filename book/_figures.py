"""Conceptual diagrams that open the chapters (drawing code, not the lesson; each chapter calls one
function in a hidden cell). Colours come from viridis, which stays readable for colour-blind readers."""
import matplotlib.pyplot as plt
import torch
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

QUERY, KEY, VALUE, OUTPUT = (plt.cm.viridis(x) for x in (0.15, 0.45, 0.75, 0.95))


def _box(ax, x, y, w, h, text, colour, fontsize=10, text_colour="black"):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                facecolor=(*colour[:3], 0.35), edgecolor=colour, linewidth=1.5))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize, color=text_colour)


def _arrow(ax, start, end, text=None, offset=(0, 0.15), fontsize=8, colour="0.3", bend=0.0):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, color=colour, linewidth=1.2,
                                 shrinkA=2, shrinkB=2, connectionstyle=f"arc3,rad={bend}"))
    if text:
        ax.text((start[0] + end[0]) / 2 + offset[0], (start[1] + end[1]) / 2 + offset[1], text,
                ha="center", va="bottom", fontsize=fontsize, color="0.2")


def _canvas(width, height, size):
    fig, ax = plt.subplots(figsize=size)
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    return fig, ax


def attention_pooling():
    """Chapter 1: a query scored against every key, softmax weights, a weighted average of the values."""
    fig, ax = _canvas(12, 6, (10, 4.4))
    _box(ax, 0.2, 2.6, 1.6, 0.8, "query $q$", QUERY, 11)
    weights = torch.softmax(torch.tensor([0.3, 2.0, -0.5, 0.8]), dim=0).tolist()
    for j, (y, w) in enumerate(zip([4.6, 3.3, 2.0, 0.7], weights), start=1):
        _box(ax, 3.4, y, 1.2, 0.7, f"key $k_{j}$", KEY)
        _arrow(ax, (1.8, 3.0), (3.4, y + 0.35))
        ax.text(5.0, y + 0.35, f"$s_{j} = a(q, k_{j})$", va="center", fontsize=9)
        ax.add_patch(FancyBboxPatch((7.0, y + 0.1), 1.6 * w, 0.5, boxstyle="square,pad=0", color=QUERY, alpha=0.8))
        ax.text(7.0 + 1.6 * w + 0.1, y + 0.35, f"$\\alpha_{j}$ = {w:.2f}", va="center", fontsize=9)
        _box(ax, 9.0, y, 1.1, 0.7, f"$v_{j}$", VALUE)
        _arrow(ax, (10.1, y + 0.35), (10.8, 3.0))
    ax.text(7.0, 5.6, "softmax over the keys:\nweights $\\alpha_j > 0$, $\\sum_j \\alpha_j = 1$", fontsize=9, va="center")
    ax.text(3.4, 5.6, "scores", fontsize=9, va="center")
    ax.text(9.0, 5.6, "values", fontsize=9, va="center")
    _box(ax, 10.8, 2.4, 1.15, 1.2, "output\n$\\sum_j \\alpha_j v_j$", OUTPUT, 9)
    fig.tight_layout()
    return fig


def self_attention():
    """Chapter 2: queries, keys and values projected from one sequence; a T x T matrix of weights."""
    fig, ax = _canvas(13, 5, (10.5, 4.0))
    for i in range(4):
        _box(ax, 0.2, 3.9 - 1.15 * i, 1.2, 0.75, f"$x_{i + 1}$", (0.6, 0.6, 0.6, 1.0))
    ax.text(0.8, 4.85, "tokens $X$ $(T, D)$", ha="center", fontsize=9)
    for k, (name, colour, label) in enumerate([("Q", QUERY, "$W_q$"), ("K", KEY, "$W_k$"), ("V", VALUE, "$W_v$")]):
        y = 3.7 - 1.5 * k
        _arrow(ax, (1.5, 2.4), (3.0, y + 0.4), label, offset=(-0.1, 0.05))
        _box(ax, 3.0, y, 1.5, 0.8, f"${name}$ $(T, d)$", colour)
    _arrow(ax, (4.5, 4.1), (6.0, 2.9))
    _arrow(ax, (4.5, 2.6), (6.0, 2.6))
    ax.text(5.0, 3.75, "$QK^\\top / \\sqrt{d_k}$", fontsize=9)
    scores = torch.randn(5, 5, generator=torch.Generator().manual_seed(1)) * 1.5
    inset = ax.inset_axes([6.1, 1.2, 2.6, 2.6], transform=ax.transData)
    inset.imshow(torch.softmax(scores, dim=-1), cmap="viridis", vmin=0, vmax=1)
    inset.set_xticks([])
    inset.set_yticks([])
    inset.set_xlabel("key $j$", fontsize=8)
    inset.set_ylabel("query $i$", fontsize=8)
    ax.text(7.4, 4.2, "softmax, row by row:\n$\\alpha$ $(T, T)$", ha="center", fontsize=9)
    _arrow(ax, (8.8, 2.5), (10.2, 2.5), "$\\alpha V$")
    _arrow(ax, (4.5, 1.1), (10.2, 2.2), bend=0.25)
    _box(ax, 10.2, 1.9, 2.5, 1.2, "outputs $(T, d_v)$:\none per token", OUTPUT, 9)
    fig.tight_layout()
    return fig


def multi_head():
    """Chapter 3: projections split into H heads, one attention (own softmax) per head, concatenated, W_o."""
    fig, ax = _canvas(14, 6, (10.5, 4.5))
    _box(ax, 0.1, 3.6, 1.5, 0.8, "$X_q$ $(T_q, D)$", QUERY, 9)
    _box(ax, 0.1, 1.6, 1.5, 0.8, "$X_{kv}$ $(T_k, D)$", KEY, 9)
    for k, (name, y) in enumerate([("$W_q$", 4.3), ("$W_k$", 3.0), ("$W_v$", 1.7)]):
        _box(ax, 2.4, y - 0.35, 1.1, 0.7, name, (0.5, 0.5, 0.5, 1.0))
        _arrow(ax, (1.6, 4.0 if k == 0 else 2.0), (2.4, y))
    heads = 3
    for h in range(heads):
        dx, dy = 0.25 * h, -0.25 * h
        _box(ax, 4.4 + dx, 3.3 + dy, 1.7, 1.3, "$(H, T, d)$" if h == heads - 1 else "", QUERY, 9)
    ax.text(5.4, 5.0, "split into $H$ heads of\nwidth $d = D/H$", ha="center", fontsize=9)
    for y in (4.3, 3.0, 1.7):
        _arrow(ax, (3.5, y), (4.4, 3.6))
    generator = torch.Generator().manual_seed(3)
    for h in range(heads):
        inset = ax.inset_axes([7.2 + 0.35 * h, 1.6 - 0.35 * h, 1.8, 1.8], transform=ax.transData)
        inset.imshow(torch.softmax(2 * torch.randn(5, 5, generator=generator), -1), cmap="viridis", vmin=0, vmax=1)
        inset.set_xticks([])
        inset.set_yticks([])
    ax.text(8.3, 4.4, "one attention per head,\neach with its own softmax", ha="center", fontsize=9)
    _arrow(ax, (6.4, 3.4), (7.2, 2.6))
    _box(ax, 10.0, 2.0, 1.5, 1.1, "concatenate\n$(T_q, H d)$", VALUE, 9)
    _arrow(ax, (9.8, 2.5), (10.0, 2.5))
    _box(ax, 12.0, 2.0, 1.8, 1.1, "$W_o$: output\n$(T_q, D)$", OUTPUT, 9)
    _arrow(ax, (11.5, 2.55), (12.0, 2.55))
    fig.tight_layout()
    return fig
