"""Flags must mean something (issue 23, item 7): an honest corpus raises no flag.

The corpus is data: every assignment's solution notebook (correct, honest work), each time with one honest
habit of a student who plots, times, displays, checks, comments in Chinese, asks for help, ... in a cell of
their own or inside a solution cell, and the plotting notebook as VS Code and Colab save it. Its false-flag
rate is measured through the scan (autograder/scan.py, in this process: fast, a unit test) and, for a
sample, through the whole grader (the scan, the canaries and the feedback of a real run; `make test`).
"""
import nbformat
import pytest

from autograder.collect import parse_notebook
from autograder.grade import unmatched_flag
from autograder.repair import repair
from autograder.scan import scan_notebook
from tests import editors
from tests.conftest import ALL_ASSIGNMENTS, max_points, read_csv, release_path, run_grader, solution_path

PLOTTING = ("%matplotlib inline\n"
            "%config InlineBackend.figure_format = 'retina'\n"
            "import matplotlib.pyplot as plt\n"
            "\n"
            "# the weights of a random attention, as a heat map\n"
            "w = torch.softmax(torch.randn(6, 6), dim=-1)\n"
            "fig, ax = plt.subplots(figsize=(3, 3))\n"
            "im = ax.imshow(w.detach().numpy(), cmap='viridis')\n"
            "fig.colorbar(im, ax=ax)\n"
            "ax.set_title('attention weights')\n"
            "plt.show()")

# name -> (code, where): "added" a cell of the student's own, "inside" appended to a solution cell,
# "both" either (two notebooks), "first" a cell of their own before everything else
HABITS = {
    "plotting": (PLOTTING, "both"),
    "plotting first": ("%matplotlib inline\n%config InlineBackend.figure_format = 'retina'", "first"),
    "plotting, other forms": ("%matplotlib\n%matplotlib inline\n%config InlineBackend.figure_formats = ['svg']\n"
                              "%config InlineBackend.rc = {'figure.dpi': 100}\n"
                              "%config InlineBackend.close_figures = True\n"
                              "import matplotlib as mpl\nfrom matplotlib import pyplot as plt\n"
                              "plt.rcParams['figure.figsize'] = (4, 3)\nmpl.rcParams['font.size'] = 9\n"
                              "plt.rcParams.update({'axes.grid': True})\n"
                              "x = torch.linspace(0, 1, 20)\nplt.plot(x, x ** 2, label='x squared')\nplt.legend()\n"
                              "plt.close('all')", "both"),
    "display": ("from IPython.display import display, Markdown, HTML\n"
                "x = torch.randn(2, 3)\ndisplay(x)\ndisplay(Markdown(f'**shape** `{tuple(x.shape)}`'))\n"
                "display(HTML('<b>done</b>'))", "both"),
    "display, other imports": ("import IPython\nimport IPython.display as ipd\nfrom IPython import display as disp\n"
                               "from IPython.core.display import HTML\n"
                               "IPython.display.display(torch.eye(2))\nipd.display(ipd.Markdown('*ok*'))\n"
                               "disp.display(HTML('<i>ok</i>'))\ndisplay(torch.zeros(2))", "both"),
    "line timing": ("x = torch.randn(64, 32)\n%time y = torch.softmax(x, dim=-1)\n"
                    "%timeit -n 10 -r 3 torch.softmax(x, dim=-1)\nt = %timeit -o -q -n 5 -r 1 x @ x.T\n"
                    "for _ in range(2):\n    %time torch.softmax(x, dim=0)", "both"),
    "%%timeit": ("%%timeit -n 5 -r 2 x = torch.randn(64, 64)\ntorch.softmax(x, dim=-1)", "added"),
    "%%time": ("%%time\n# a demo of my own: a few products\nfor _ in range(3):\n    y = torch.randn(128, 128) @ torch.randn(128, 128)\n"
               "print(y.shape)", "added"),
    "%%capture": ("%%capture captured --no-stderr\nprint('a long log I do not want to see')", "added"),
    "perf_counter": ("import time\nfrom time import perf_counter\n\nstart = time.perf_counter()\n"
                     "y = torch.randn(256, 256) @ torch.randn(256, 256)\n"
                     "print(f'{perf_counter() - start:.4f} s, {time.time():.0f}')", "both"),
    "type hints": ("from __future__ import annotations\n\nfrom typing import Optional, Sequence\n\n\n"
                   "def scaled(x: torch.Tensor, d: int, eps: Optional[float] = None) -> torch.Tensor:\n"
                   "    return x / math.sqrt(d + (eps or 0.0))\n\n\n"
                   "lengths: list[int] = [1, 2, 3]\nsizes: dict[str, tuple[int, ...]] = {'x': (2, 3)}\n\n\n"
                   "def total(xs: Sequence[int]) -> int:\n    return sum(xs)\n\n\nprint(scaled(torch.ones(2), 4), total(lengths))",
                   "both"),
    "helpers and classes": ("from dataclasses import dataclass, field\n\n\n"
                            "def _check_shape(t, *shape):\n    assert tuple(t.shape) == shape, f'{tuple(t.shape)} != {shape}'\n"
                            "    return t\n\n\n@dataclass\nclass Config:\n    d_model: int = 16\n    heads: list = field(default_factory=list)\n\n"
                            "    def __post_init__(self):\n        assert self.d_model > 0\n\n\n"
                            "class Timer:\n    \"\"\"A context manager of my own.\"\"\"\n\n    def __init__(self, name='block'):\n"
                            "        self.name = name\n\n    def __enter__(self):\n        return self\n\n"
                            "    def __exit__(self, *exc):\n        return False\n\n    def __repr__(self):\n"
                            "        return f'{self.__class__.__name__}({self.name!r})'\n\n    @property\n    def label(self):\n"
                            "        return self.name.upper()\n\n    @staticmethod\n    def unit():\n        return 's'\n\n\n"
                            "class Toy(nn.Module):\n    def __init__(self, d):\n        super().__init__()\n"
                            "        self.proj = nn.Linear(d, d)\n\n    def forward(self, x):\n        return self.proj(x)\n\n\n"
                            "with Timer('demo') as t:\n    _check_shape(Toy(4)(torch.randn(2, 4)), 2, 4)\nprint(t, type(t).__name__, Config())",
                            "both"),
    "own asserts": ("x = torch.randn(2, 4, 8)\nassert x.shape == (2, 4, 8), x.shape\nassert torch.isfinite(x).all()\n"
                    "assert torch.allclose(x, x.clone()), 'a copy is equal'\ntorch.testing.assert_close(x, x + 0)\n"
                    "assert not torch.equal(x, x + 1)", "both"),
    "printing shapes": ("x = torch.randn(2, 5, 8)\nprint(x.shape, x.dtype, x.device)\nprint(f'{x.shape=}')\n"
                        "print(type(x).__name__, x.ndim, x.numel())\nx.shape", "both"),
    "seeds and no_grad": ("import random\ntorch.manual_seed(0)\nrandom.seed(0)\n"
                          "torch.backends.cudnn.deterministic = True\ntorch.backends.cudnn.benchmark = False\n"
                          "g = torch.Generator().manual_seed(1)\n\n\n@torch.no_grad()\ndef evaluate(x):\n    return x * 2\n\n\n"
                          "with torch.no_grad():\n    y = evaluate(torch.randn(3, generator=g))\n"
                          "with torch.inference_mode():\n    z = y + 1\nprint(y.requires_grad, z)", "both"),
    "chinese": ("# 注意力权重：每一行的和为 1（自己写的检查）\n\n\ndef 行和(权重):\n    \"\"\"返回每一行的和。\n\n"
                "    参数：权重，形状为 (..., T, S) 的张量\n    \"\"\"\n    return 权重.sum(dim=-1)  # 按最后一维求和\n\n\n"
                "print(行和(torch.softmax(torch.randn(3, 4), dim=-1)))  # 应该全是 1", "both"),
    "help": ("help(torch.softmax)\ntorch.softmax?\n?torch.nn.Linear\ntorch.matmul??\n%pinfo torch.tanh", "both"),
    "autoreload": ("%load_ext autoreload\n%autoreload 2", "both"),
    "autoreload, other forms": ("%reload_ext autoreload\n%autoreload\n%autoreload 3\n%autoreload off\n%autoreload -p 2", "added"),
    "numpy for printing": ("import numpy as np\nnp.set_printoptions(precision=3, suppress=True)\n"
                           "w = torch.softmax(torch.randn(3, 3), dim=-1)\nprint(np.round(w.numpy(), 3))\n"
                           "print(np.array2string(w.numpy()))", "both"),
    "printing options": ("%precision 3\ntorch.set_printoptions(precision=3, sci_mode=False)\n"
                         "import warnings\nwarnings.filterwarnings('ignore', category=UserWarning)\nprint(torch.randn(2, 2))",
                         "both"),
    "epochs": ("# a demo of my own: fit a linear layer for a few epochs (no tqdm)\n"
               "torch.manual_seed(0)\nmodel = nn.Linear(4, 1)\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
               "x, y = torch.randn(32, 4), torch.randn(32, 1)\nlosses = []\nfor epoch in range(3):\n"
               "    model.train()\n    opt.zero_grad()\n    loss = nn.functional.mse_loss(model(x), y)\n    loss.backward()\n"
               "    opt.step()\n    losses.append(loss.item())\n    print(f'epoch {epoch}: loss {loss.item():.4f}')\n"
               "model.eval()\nwith torch.no_grad():\n    print(model(x[:2]))", "both"),
    "jupyter settings": ("%config Completer.use_jedi = False\n%config IPCompleter.greedy = True", "added"),
    "main guard": ("if __name__ == '__main__':\n    print('run as a notebook')", "inside"),
}


def _first_solution(notebook):
    return next(i for i, c in enumerate(notebook.cells) if c.metadata.get("nbgrader", {}).get("solution"))


def with_habit(assignment, code, where):
    """The assignment's solution notebook with `code` in a cell of the student's own (after the first solution
    cell, or first of all) or at the end of the first solution cell."""
    notebook = nbformat.read(solution_path(assignment), as_version=4)
    i = _first_solution(notebook)
    if where == "inside":
        notebook.cells[i].source += "\n\n" + code
    else:
        notebook.cells.insert(0 if where == "first" else i + 1, nbformat.v4.new_code_cell(code))
    return notebook


def saved_by(editor, notebook):
    """`notebook` as `editor` saves it (tests/editors/), read as the grader reads it."""
    read, why = parse_notebook(editors.saved(editor, notebook).encode("utf-8"))
    assert why is None, why
    return read


def corpus(in_jupyter=True, other_editors=True):
    """[(label, assignment, notebook as the student hands it in)]: each habit in Jupyter's notebook (`in_jupyter`),
    and the plotting notebook as other editors save it (`other_editors`, labelled "saved by")."""
    found = []
    for assignment in ALL_ASSIGNMENTS:
        for name, (code, where) in HABITS.items() if in_jupyter else ():
            for place in ("added", "inside") if where == "both" else (where,):
                found.append((f"{assignment} {name} ({place})", assignment, with_habit(assignment, code, place)))
        for editor in ("VS Code", "Colab") if other_editors else ():
            for place in ("added", "inside"):
                found.append((f"{assignment} plotting ({place}, saved by {editor})", assignment,
                               saved_by(editor, with_habit(assignment, PLOTTING, place))))
    return found


def flags_as_graded(notebook, assignment):
    """The flags that the grader raises on `notebook` without running it: the repair's (released cells not
    found) and the scan's, on the repaired notebook."""
    release = nbformat.read(release_path(assignment), as_version=4)
    repaired = repair(notebook, release)
    return [unmatched_flag(repaired.unmatched)] * bool(repaired.unmatched) + \
        [str(f) for f in scan_notebook(repaired.notebook, release)]


def _no_flag(notebooks):
    flagged = {label: flags_as_graded(nb, a) for label, a, nb in notebooks}
    flagged = {label: found for label, found in flagged.items() if found}
    rate = f"{len(flagged)}/{len(notebooks)} honest notebooks flagged ({100 * len(flagged) / len(notebooks):.1f}%)"
    assert not flagged, rate + ":\n" + "\n".join(f"{label}: {found}" for label, found in flagged.items())


def test_the_honest_corpus_raises_no_flag():
    notebooks = corpus(other_editors=False)   # each test builds only its own part of the corpus
    assert notebooks and not [label for label, _, _ in notebooks if "saved by" in label]
    _no_flag(notebooks)


def test_the_honest_corpus_saved_by_other_editors_raises_no_flag():
    """Colab's notebooks lost their nbgrader metadata: the repair finds the cells again (seconds each)."""
    notebooks = corpus(in_jupyter=False)
    assert notebooks and all("saved by" in label for label, _, _ in notebooks)
    _no_flag(notebooks)


def everything(assignment):
    """One notebook with every habit in cells of the student's own."""
    notebook = nbformat.read(solution_path(assignment), as_version=4)
    i = _first_solution(notebook)
    for code, _ in reversed(HABITS.values()):
        notebook.cells.insert(i + 1, nbformat.v4.new_code_cell(code))
    return notebook


def test_an_honest_sample_through_the_grader_gets_full_marks_and_no_flag(tmp_path):
    """A few honest notebooks through the whole grader (the scan, the canaries, the feedback): full marks, no
    flag, no error, what they displayed on their feedback page."""
    submissions, out = tmp_path / "submitted", tmp_path / "out"
    sample = {("all-habits", "01_attention"): everything("01_attention"),
              ("plotting-colab", "02_self_attention"): saved_by("Colab", with_habit("02_self_attention", PLOTTING, "added")),
              ("plotting-inside-vscode", "05_attention_at_scale"): saved_by(
                  "VS Code", with_habit("05_attention_at_scale", PLOTTING, "inside")),
              ("autoreload-timing", "03_multi_head_attention"): with_habit(
                  "03_multi_head_attention", HABITS["autoreload"][0] + "\n" + HABITS["line timing"][0], "inside")}
    for (student, assignment), notebook in sample.items():
        folder = submissions / student / assignment
        folder.mkdir(parents=True)
        nbformat.write(notebook, folder / f"{assignment}.ipynb")
    process = run_grader(submissions, out, 1)   # one worker: a few notebooks (a second zygote costs more than it saves)
    assert process.returncode == 0, process.stderr
    flags = [(r["student_id"], r["reason"]) for r in read_csv(out / "flags.csv")]
    assert not flags, f"{len({s for s, _ in flags})}/{len(sample)} honest notebooks flagged: {flags}"
    assert not [r for r in read_csv(out / "errors.csv") if r["reason"] != "no submission"]
    grades = {(r["student_id"], r["assignment"]): float(r["score"]) for r in read_csv(out / "grades.csv")}
    assert {key: grades[key] for key in sample} == {key: sum(max_points(key[1]).values()) for key in sample}
    page = out / "feedback" / "all-habits" / "01_attention" / "01_attention.html"
    assert "<strong>shape</strong>" in page.read_text(encoding="utf-8"), "what the student displayed is on their page"
