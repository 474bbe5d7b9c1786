"""Unit tests of the scan of student code (autograder/scan.py), the canary (autograder/canary.py), the
feedback's message recognition and the spreadsheet-safe CSV fields. `pytest -m unit`."""
import nbformat
import pytest

from autograder.canary import new_canary
from autograder.feedback import authored_texts, is_authored
from autograder.report import spreadsheet_safe
from autograder.scan import Concern, scan_cells, scan_notebook

pytestmark = pytest.mark.unit

HONEST = {
    "eval mode": "model.eval()\nwith torch.no_grad():\n    out = model(x)",
    "re.compile": "import re\npattern = re.compile(r'\\d+')",
    "display": "from IPython.display import display\ndisplay(x)",
    "helpers and type hints": "def _scale(x: torch.Tensor, d: int) -> torch.Tensor:\n    return x / math.sqrt(d)\n",
    "torch.where and float masks": "w = torch.where(mask, scores, float('-inf'))\nw = w + (1.0 - mask.float()) * -1e9",
    "comprehensions": "heads = [h.transpose(1, 2) for h in x.chunk(4, dim=-1)]\nd = {k: v for k, v in zip('ab', 'cd')}",
    "a module with dunders": "class M(nn.Module):\n    def __init__(self, d):\n        super().__init__()\n"
                             "        self.W = nn.Linear(d, d)\n    def __repr__(self):\n        return 'M'\n"
                             "    def __len__(self):\n        return 1\n    def __call__(self, x):\n"
                             "        return super().__call__(x)\n",
    "timeit": "%timeit f(x)\n%matplotlib inline",
    "cell magic time": "%%time\ny = f(x)",
    "getattr with a constant": "layer = getattr(model, 'W_q')\nsetattr(self, 'scale', 1.0)",
    "underscore names": "out, _ = attention(q, k, v)\nfor _ in range(3):\n    pass",
    "numpy and matplotlib": "import numpy as np\nimport matplotlib.pyplot as plt\nplt.imshow(np.zeros((2, 2)))",
    "dataclass": "from dataclasses import dataclass\n@dataclass\nclass C:\n    x: int = 1",
    "syntax error": "def f(:\n    pass",
    "plots": "%matplotlib inline\n%config InlineBackend.figure_format = 'retina'\nplt.rcParams['figure.dpi'] = 90",
    "help and autoreload": "%load_ext autoreload\n%autoreload 2\ntorch.softmax?\nhelp(torch.softmax)",
    "IPython's display": "import IPython\nfrom IPython import display\nIPython.display.display(x)\ndisplay.display(x)",
    "future and class names": "from __future__ import annotations\nname = self.__class__.__name__",
}
HOSTILE = {
    "import os": ("import os\nos.listdir('/')", "imports os"),
    "get_ipython": ("get_ipython().events.register('post_run_cell', print)", "IPython's internals"),
    "In": ("print(In[-1])", "input history"),
    "_i3": ("print(_i3)", "history variables"),
    "_oh": ("x = _oh", "output history"),
    "frames": ("import sys\nf = sys._getframe(1).f_back", "imports sys"),
    "generator frame": ("def g():\n    yield\nx = g().gi_frame.f_back", "gi_frame"),
    "traceback frame": ("try:\n    1/0\nexcept Exception as e:\n    f = e.__traceback__.tb_frame", "tb_frame"),
    "co_consts": ("c = f.__code__.co_consts", "co_consts"),
    "dunder": ("x.__class__.__subclasses__()", "__subclasses__"),
    "computed getattr": ("name = 'all' + 'close'\nf = getattr(torch, name)", "computed name"),
    "globals": ("g = globals()", "global names"),
    "vars": ("v = vars(torch)", "namespace"),
    "exec": ("exec('x = 1')", "code from strings"),
    "eval builtin": ("y = eval('1 + 1')", "code from strings"),
    "compile builtin": ("c = compile('1', 'f', 'eval')", "compiles"),
    "open": ("t = open('/etc/passwd').read()", "opens files"),
    "__import__": ("m = __import__('os')", "imports by name"),
    "patch torch": ("torch.allclose = lambda *a, **k: True", "replaces an attribute"),
    "patch via alias": ("F.softmax = None", "replaces an attribute"),
    "patch a class": ("nn.Module.__call__ = None", "replaces an attribute"),
    "patch by setattr": ("setattr(torch, 'equal', None)", "replaces an attribute"),
    "threading": ("import threading", "imports threading"),
    "inspect": ("from inspect import currentframe", "imports from inspect"),
    "builtins": ("import builtins", "imports builtins"),
    "shell": ("!cat /etc/passwd", "shell command"),
    "code in a time cell": ("%%time\nimport ctypes", "imports ctypes"),
    # the Python inside an allowed magic is checked; other magics and other arguments are flagged
    "code in a time line": ("%time print(In)", "input history"),
    "code in a timeit line": ("%timeit -n 1 open('/etc/passwd')", "opens files"),
    "help on the history": ("In?", "input history"),
    "help does not hide a cell": ("torch.softmax?\nimport os", "imports os"),
    "code in a capture cell": ("%%capture out\nimport os", "imports os"),
    "config runs code": ("%config InlineBackend.figure_format = __import__('os').getcwd()", "IPython magic"),
    "config of the shell": ("%config InteractiveShell.ast_node_interactivity = 'all'", "IPython magic"),
    "other extensions": ("%load_ext evil", "IPython magic"),
    "run": ("%matplotlib inline\n%run evil.py", "IPython magic"),
    "who": ("%whos", "IPython magic"),
    "IPython's shell through the package": ("import IPython\nip = IPython.get_ipython()", "IPython's internals"),
    "get_ipython imported": ("from IPython import get_ipython", "imports from IPython"),
    "dunder by getattr": ("g = getattr(display, '__globals__')", "__globals__"),
    "frame by getattr": ("f = getattr(e, 'tb_frame')", "tb_frame"),
    "a class replaced": ("x.__class__ = Agreeable", "__class__"),
    "dunder of IPython's display": ("import IPython\ng = IPython.display.display.__globals__", "__globals__"),
}


@pytest.mark.parametrize("name", sorted(HONEST))
def test_honest_unusual_code_is_not_flagged(name):
    assert scan_cells([("cell", HONEST[name])]) == []


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_what_no_solution_needs_is_flagged_with_its_line(name):
    source, expected = HOSTILE[name]
    found = scan_cells([("cell", source)])
    assert any(expected in f.what for f in found), [str(f) for f in found]
    assert all(f.where == "cell" and f.line >= 1 for f in found)


def test_locked_cells_are_decided_by_the_release_not_the_submission():
    def cell(grade_id, source, locked):
        c = nbformat.v4.new_code_cell(source)
        c.metadata["nbgrader"] = {"grade_id": grade_id, "locked": locked, "grade": False, "solution": not locked}
        return c
    release = nbformat.v4.new_notebook(cells=[cell("setup", "import torch", True), cell("f", "raise NotImplementedError()", False)])
    submitted = nbformat.v4.new_notebook(cells=[cell("setup", "import torch", True),
                                                cell("f", "import os", True)])     # claims to be locked
    assert [f.where for f in scan_notebook(submitted, release)] == ["f"]


def test_the_canary_differs_from_run_to_run_and_its_verdict_needs_its_nonce():
    first, second = new_canary(), new_canary()
    assert first.source != second.source and first.nonce != second.nonce
    assert new_canary("fixed").source == new_canary("fixed").source
    compile(first.source, "canary", "exec")
    ran = {"execution_count": 3, "outputs": []}
    assert first.verdict(ran) == ["exceptions are swallowed (a cell that raises shows no error)"]
    forged = {"execution_count": 3, "outputs": [{"output_type": "error", "evalue": "autograder canary: "}]}
    assert "altered" in first.verdict(forged)[0]
    clean = {"execution_count": 3, "outputs": [{"output_type": "error", "evalue": first.marker}]}
    assert first.verdict(clean) == [] and first.verdict({"execution_count": None}) is None


def test_a_tests_own_messages_are_recognised_with_short_fields_only():
    source = ('assert ok, f"weights must have shape {tuple(w.shape)}, got {got}: did you divide by sqrt(d_k)?"\n'
              'for _case, _why in [("cross first", "your sub-layers are in the wrong order")]:\n'
              '    raise AssertionError(f"{_case}: {_why}")\n'
              'raise AssertionError("rows of your weights do not sum to 1")')
    texts = authored_texts(source)
    assert is_authored("weights must have shape (2, 3), got torch.float32: did you divide by sqrt(d_k)?", texts)
    assert is_authored("rows of your weights do not sum to 1", texts)
    assert is_authored("B=2, T=5, float64: your sub-layers are in the wrong order", texts)
    assert not is_authored("x" * 200, texts), "no text of the author's at all"
    assert not is_authored("weights must have shape " + "x" * 121 + ", got 1: did you divide by sqrt(d_k)?", texts)
    assert not is_authored("weights must have shape (2,)\nimport os, got 1: did you divide by sqrt(d_k)?", texts)
    assert not is_authored("rows of your weights do not sum to 1 and here is a long text of my own choosing"
                           " which goes on and on and on and on and on and on and on and on and on and on and on", texts)


@pytest.mark.parametrize("value,safe", [("=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"), ("+1+1", "'+1+1"),
                                        ("@SUM(A1)", "'@SUM(A1)"), ("-2+3", "'-2+3"), ("\tx", "'\tx"),
                                        ("\rx", "'\rx"), ("-2", "-2"), ("32", "32"), ("alice", "alice"), ("", "")])
def test_csv_fields_are_safe_in_spreadsheets(value, safe):
    assert spreadsheet_safe(value) == safe


@pytest.mark.parametrize("assignment", __import__("tests.conftest", fromlist=["ASSIGNMENTS"]).ASSIGNMENTS)
def test_no_solution_is_flagged(assignment):
    """The course's own solutions are honest code: the scan finds nothing in them (nor in the stubs)."""
    from tests.conftest import release_path, solution_path
    release = nbformat.read(release_path(assignment), as_version=4)
    for notebook in (nbformat.read(solution_path(assignment), as_version=4), release):
        assert [str(f) for f in scan_notebook(notebook, release)] == []


@pytest.mark.parametrize("code,introspects", [
    ("import os", True),
    ("f.__globals__['x']", True),                 # a dunder attribute reaches the notebook's namespace
    ("getattr(f, 'f_' + 'back')", True),          # a computed name reaches anything
    ("setattr(torch, 'allclose', None)", True),
    ("exit()", False),
    ("class A:\n    def __getattribute__(self, name):\n        return 1", False),
])
def test_what_a_finding_may_do_is_a_field_not_a_phrase(code, introspects):
    """Finding.concern (an enum) decides whether the feedback hides the hidden tests' words and the diagnoses,
    never a word of the finding's text."""
    found = scan_cells([("cell", code)])
    assert found, code
    assert all(isinstance(f.concern, Concern) for f in found)
    assert any(f.introspects for f in found) == introspects, [(f.what, f.concern) for f in found]
