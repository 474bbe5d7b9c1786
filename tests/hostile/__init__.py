"""The corpus of hostile and broken submissions (of 01_attention), graded in one batch by
tests/test_hostile.py beside honest ones. Each case builds a notebook from the solution (SOLUTION) or
the released stubs (RELEASE) and says what the grader must make of it:

    max_score   the most it may score (an attack must not gain points)
    exact       the score it must get, where the outcome is certain
    flag        a text that flags.csv must hold for it (unless errors.csv lists it: it scored 0 anyway)
    error       a text that errors.csv must hold for it

Add a case when you think of a new way to cheat or to break the grader.
"""
from dataclasses import dataclass

import nbformat

from tests.conftest import max_points, nbgrader_cells, release_path, solution_path

ASSIGNMENT = "01_attention"
FULL = sum(max_points(ASSIGNMENT).values())
# The points of the first component's test cells (the cells up to the next solution cell).
NADARAYA_WATSON_POINTS = sum(points for grade_id, points in max_points(ASSIGNMENT).items()
                             if grade_id.startswith("nadaraya_watson_"))
SOLUTION, RELEASE = "solution", "release"


@dataclass(frozen=True)
class Case:
    base: str                   # SOLUTION or RELEASE
    prepend: dict = None        # grade_id -> code put before that cell's source
    append: dict = None         # grade_id -> code put after that cell's source
    edit: object = None         # a function(notebook) -> notebook, for the rest
    max_score: float = FULL
    exact: float = None
    flag: str = None
    error: str = None


def build(case):
    notebook = nbformat.read(solution_path(ASSIGNMENT) if case.base == SOLUTION else release_path(ASSIGNMENT), 4)
    cells = nbgrader_cells(notebook)
    for grade_id, code in (case.prepend or {}).items():
        cells[grade_id].source = code + "\n" + cells[grade_id].source
    for grade_id, code in (case.append or {}).items():
        cells[grade_id].source = cells[grade_id].source + "\n" + code
    return case.edit(notebook) if case.edit else notebook


def _tests(notebook):
    return [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade")]


def _blank_tests(notebook):
    for cell in _tests(notebook):
        cell.source = "pass"
    return notebook


def _delete_tests(notebook):
    notebook.cells = [c for c in notebook.cells if not c.metadata.get("nbgrader", {}).get("grade")]
    return notebook


def _inflate_points(notebook):
    for cell in _tests(notebook):
        cell.metadata["nbgrader"]["points"] = 1000
    return notebook


def _fake_outputs(notebook):
    for cell in _tests(notebook):
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="Visible tests passed.\n")]
        cell.execution_count = 1
    return notebook


def _loops_everywhere(notebook):
    """Every cell the student may write loops forever, and they add more such cells."""
    for cell in notebook.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = "while True:\n    pass\n" + cell.source
    notebook.cells += [nbformat.v4.new_code_cell("while True:\n    pass") for _ in range(4)]
    return notebook


def _tests_first(notebook):
    tests = _tests(notebook)
    notebook.cells = tests + [c for c in notebook.cells if c not in tests]
    return notebook


# Stubs that return tensors of the right shapes and nothing right: they pass only if the tests are fooled.
SHAPES_ONLY = {
    "nadaraya_watson": "def nadaraya_watson(queries, keys, values, bandwidth=1.0):\n"
                       "    return torch.zeros_like(queries), torch.zeros(len(queries), len(keys), dtype=queries.dtype)",
    "masked_softmax": "def masked_softmax(scores, mask=None):\n    return torch.zeros_like(scores)",
    "scaled_dot_product_attention": "def scaled_dot_product_attention(query, key, value, mask=None):\n"
                                    "    w = torch.zeros(*query.shape[:-1], key.shape[-2], dtype=query.dtype)\n"
                                    "    return w @ value, w",
}


def _shapes_only(notebook):
    cells = nbgrader_cells(notebook)
    for grade_id, source in SHAPES_ONLY.items():
        cells[grade_id].source = source
    return notebook


def _shapes_only_with(code):
    def edit(notebook):
        notebook = _shapes_only(notebook)
        nbgrader_cells(notebook)["nadaraya_watson"].source = code + "\n" + nbgrader_cells(notebook)["nadaraya_watson"].source
        return notebook
    return edit


STEAL = r'''
import os, json, socket
stolen = []
for root in ("/", "/work", "/tmp", "/root", "/home", os.path.expanduser("~"), "/job", ".."):
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in ("proc", "sys", "dev", "usr", "lib", "lib64", "site-packages")]
        for name in files:
            path = os.path.join(folder, name)
            if name.endswith((".ipynb", ".db")):
                try:
                    text = open(path, errors="ignore").read()
                except OSError:
                    continue
                if "BEGIN SOLUTION" in text or "BEGIN HIDDEN TESTS" in text:
                    stolen.append(path)
for path in stolen:
    if path.endswith(".ipynb"):
        for cell in json.load(open(path))["cells"]:
            code = "".join(cell["source"])
            if "BEGIN SOLUTION" in code:
                exec(code.replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", ""))
try:
    socket.create_connection(("127.0.0.1", 47615), timeout=2).sendall(b"escaped")
except OSError:
    pass
'''

CASES = {
    "honest": Case(SOLUTION, exact=FULL),
    "honest-too": Case(SOLUTION, exact=FULL),
    "infinite-loop": Case(SOLUTION, prepend={"nadaraya_watson": "while True:\n    pass"},
                          exact=FULL - NADARAYA_WATSON_POINTS),
    "every-cell-loops": Case(SOLUTION, edit=_loops_everywhere, exact=0, error="timeout"),
    "os-exit": Case(SOLUTION, prepend={"nadaraya_watson": "import os\nos._exit(0)"}, exact=0),
    "system-exit": Case(SOLUTION, prepend={"nadaraya_watson": "raise SystemExit(0)"},
                        max_score=FULL - NADARAYA_WATSON_POINTS),
    # IPython's exit() ends the kernel a moment after the cell: how many of the next (honest, correct)
    # tests still run depends on timing, never more than the first function's; the rest score 0.
    "exit-builtin": Case(SOLUTION, prepend={"nadaraya_watson": "exit()"}, max_score=NADARAYA_WATSON_POINTS,
                         flag="exits"),
    "segfault": Case(SOLUTION, prepend={"nadaraya_watson": "import ctypes\nctypes.string_at(0)"}, exact=0),
    "huge-tensor": Case(SOLUTION, prepend={"nadaraya_watson": "hog = torch.empty(2 ** 40)"},
                        exact=FULL - NADARAYA_WATSON_POINTS),
    "huge-bytes": Case(SOLUTION, prepend={"nadaraya_watson": "hog = bytearray(16 * 2 ** 30)"},
                       exact=FULL - NADARAYA_WATSON_POINTS),
    "print-megabytes": Case(SOLUTION, append={"nadaraya_watson": 'print("x" * 20_000_000)'}, exact=FULL),
    "print-flood": Case(SOLUTION, append={"nadaraya_watson": 'for _ in range(20_000):\n    print("x" * 50, flush=True)'},
                        exact=FULL),
    "patch-allclose": Case(RELEASE, edit=_shapes_only_with(
        "torch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True"), exact=0, flag="tampering"),
    "patch-assert-close": Case(RELEASE, edit=_shapes_only_with(
        "torch.testing.assert_close = lambda *a, **k: None\ntorch.allclose = lambda *a, **k: True"), exact=0, flag="tampering"),
    "patch-tensor-all": Case(RELEASE, edit=_shapes_only_with(
        "torch.Tensor.all = lambda self, *a, **k: torch.tensor(True)\n"
        "torch.Tensor.__bool__ = lambda self: True\ntorch.allclose = lambda *a, **k: True"), exact=0, flag="tampering"),
    "patch-builtins": Case(RELEASE, edit=_shapes_only_with(
        "import builtins\nbuiltins.all = lambda *a: True\nbuiltins.isinstance = lambda *a: True\n"
        "torch.allclose = lambda *a, **k: True"), exact=0, flag="tampering"),
    "swallow-exceptions": Case(RELEASE, edit=_shapes_only_with(
        "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)"), exact=0, flag="IPython"),
    "spy-hook": Case(SOLUTION, prepend={"nadaraya_watson": "get_ipython().events.register("
                                        "'post_run_cell', lambda result: print(result.info.raw_cell))"},
                     exact=FULL, flag="hooks"),
    "history-spy": Case(SOLUTION, append={"AdditiveAttention": "print(In)\nprint(_ih)"}, exact=FULL),
    "steal-solutions": Case(RELEASE, prepend={"nadaraya_watson": STEAL}, exact=0, flag="reads or lists files"),
    "blank-tests": Case(RELEASE, edit=_blank_tests, exact=0),
    "delete-tests": Case(RELEASE, edit=_delete_tests, exact=0),
    "inflate-points": Case(RELEASE, edit=_inflate_points, exact=0),
    "fake-outputs": Case(RELEASE, edit=_fake_outputs, exact=0),
    "tests-first": Case(SOLUTION, edit=_tests_first, max_score=0),
}
