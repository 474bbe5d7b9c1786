"""Read the code a student wrote (as a syntax tree, never by running it) and name what a solution never needs.

Which cells are the student's is decided by the released notebook (the cells it does not lock, and
every cell the student added), never by the submitted metadata. Every line is checked against an
allowlist of what the exercises need (torch, math, a few standard modules, their own names) and of an
honest student's habits (plots, tables, timings, help, type hints, autoreload: IPython's magics in their
harmless forms, each with the arguments it may take; see MAGICS); what falls outside is flagged with its
line, for a person to look at. The Python inside a magic (`%time f(x)`, `%%timeit`'s cell, `f?`) is checked
like any other line. A flag never changes a score by itself, but it closes the feedback channel
(feedback.py): a notebook flagged for introspection gets no output of its own cells printed after the
hidden tests started. tests/test_honest_flags.py keeps honest habits unflagged.
"""
from __future__ import annotations

import ast
import functools
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nbformat import NotebookNode

ALLOWED_MODULES = ("torch", "math", "numpy", "typing", "collections", "functools", "itertools", "dataclasses",
                   "numbers", "re", "string", "warnings", "time", "random", "matplotlib", "__future__",
                   "IPython.display", "IPython.core.display", "IPython.core.display_functions")
# IPython itself: `import IPython` and `from IPython import display` are fine, and so is IPython.display.*; any
# other use of the name IPython (IPython.get_ipython(), IPython.core.interactiveshell) is flagged
IPYTHON_DISPLAY = (("display",), ("core", "display"), ("core", "display_functions"))
# Settings an honest notebook assigns: matplotlib's rcParams[...] and torch's reproducibility switches
SETTINGS = {"torch.backends.cudnn.deterministic", "torch.backends.cudnn.benchmark", "torch.backends.cudnn.allow_tf32",
            "torch.backends.cuda.matmul.allow_tf32"}
INTROSPECTION_NAMES = {
    "get_ipython": "uses IPython's internals", "In": "reads IPython's input history",
    "Out": "reads IPython's output history", "_ih": "reads IPython's input history",
    "_oh": "reads IPython's output history", "_dh": "reads IPython's history",
    "globals": "reads the notebook's global names", "vars": "reads an object's namespace",
    "locals": "reads a frame's local names", "__builtins__": "touches builtins", "__import__": "imports by name",
    "exec": "executes code from strings", "eval": "executes code from strings", "compile": "compiles code from strings",
    "open": "opens files", "breakpoint": "starts a debugger", "exit": "exits the process", "quit": "exits the process",
    "memoryview": "reads raw memory",
}
UNUSUAL_NAMES = {"exit", "quit"}   # the names above that read or alter nothing of the grading
HISTORY_NAME = re.compile(r"_i{1,3}\d*|_\d+|__{1,2}")       # _i, _ii, _iii, _i12, _12, __, ___
FRAME_ATTRIBUTES = {"f_back", "f_locals", "f_globals", "f_builtins", "f_code", "f_trace", "gi_frame", "cr_frame",
                    "ag_frame", "gi_code", "cr_code", "tb_frame", "tb_next", "co_consts", "co_code", "co_names",
                    "co_varnames", "co_filename"}
ORDINARY_DUNDERS = {"__init__", "__len__", "__call__", "__repr__", "__str__", "__name__", "__doc__", "__getitem__",
                    "__iter__", "__next__", "__contains__", "__eq__", "__hash__", "__enter__", "__exit__",
                    "__post_init__", "__class_getitem__"}
KNOWN_MODULE_NAMES = {"torch", "nn", "F", "math", "np", "numpy", "plt", "Tensor"}


class Concern(Enum):
    """What a finding may do: read or alter the grading (its feedback then shows no hidden test's words and
    no diagnosis), or merely be unusual."""
    INTROSPECTION = "reads or alters the grading"   # history, frames, hooks, threads, files, imports, patches,
    #                                                 dunder attributes (__globals__, __closure__) and computed names
    #                                                 (getattr(f, "f_" + "back")), which reach any of them
    UNUSUAL = "unusual"                             # special methods defined, exiting


@dataclass(frozen=True)
class Finding:
    where: str      # the cell's grade_id, or "a cell the student added"
    line: int       # line in that cell
    what: str       # what is unusual, in plain words
    code: str       # the line itself, shortened
    concern: Concern = Concern.INTROSPECTION

    def __str__(self) -> str:
        return f"{self.where} line {self.line} {self.what} ({self.code!r})"

    @property
    def introspects(self) -> bool:
        """Whether it could read or alter the grading (history, frames, hooks, threads, files, imports)."""
        return self.concern is Concern.INTROSPECTION


def _allowed(module: str) -> bool:
    return any(module == a or module.startswith(a + ".") for a in ALLOWED_MODULES)


# IPython's magics an honest notebook uses, in their harmless forms: {(kind, name): a function of the magic's
# arguments giving [(line offset, Python to check)], or None when these arguments are not allowed.
# Everything else (shell commands, %run, %load, %env, %who, %pdb, %%writefile, %%bash, `%config` of anything
# but the plots and the completer, extensions other than autoreload, ...) is flagged.
BACKENDS = {"", "inline", "agg", "notebook", "nbagg", "widget", "ipympl", "svg", "pdf", "ps", "cairo", "auto",
            "qt", "qt5", "qt6", "tk", "osx", "macosx", "gtk3", "gtk4", "wx"}
CONFIG = re.compile(r"\s*(?:(?:InlineBackend|IPCompleter|Completer)(?:\.\w+\s*=(?P<value>.+))?)?\s*", re.DOTALL)
AUTORELOAD = {"0", "1", "2", "3", "off", "explicit", "all", "complete", "now", "0-", "1-", "2-", "-p", "--print",
              "-l", "--log", "--hide-errors", "--full"}
TIMEIT_OPTIONS = re.compile(r"(?:\s*-(?:[nrp]\s*\d+(?:\.\d*)?|[tcqo]+)(?=\s|$))*\s*")
CAPTURE = re.compile(r"(?:\s*(?:--no-stderr|--no-stdout|--no-display|[A-Za-z_]\w*))*\s*")


def _literal(text: str) -> bool:
    """Whether `text` is a Python literal (%config evaluates its value in the notebook: only data may be there)."""
    try:
        ast.literal_eval(text.strip())
        return True
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


Pieces = list[tuple[int, str]]   # (line offset, Python to check) inside a magic


def _config(line: str) -> Pieces | None:
    found = CONFIG.fullmatch(line)
    return [] if found and (found["value"] is None or _literal(found["value"])) else None


def _timeit(line: str, cell: str | None = None) -> Pieces:
    options = TIMEIT_OPTIONS.match(line)
    assert options is not None   # the pattern matches the empty string
    code = line[options.end():]   # options, then the statement (or, over a cell, its setup)
    return [(0, code)] + ([(1, cell)] if cell is not None else [])


MAGICS: dict[tuple[str, str], Callable[..., Pieces | None]] = {
    ("line", "time"): lambda line: [(0, line)],
    ("line", "timeit"): _timeit,
    ("cell", "time"): lambda line, cell: [(0, line), (1, cell)],
    ("cell", "timeit"): _timeit,
    ("cell", "capture"): lambda line, cell: [(1, cell)] if CAPTURE.fullmatch(line) else None,
    ("line", "matplotlib"): lambda line: [] if line.strip() in BACKENDS else None,
    ("line", "config"): _config,
    ("line", "load_ext"): lambda line: [] if line.strip() == "autoreload" else None,
    ("line", "reload_ext"): lambda line: [] if line.strip() == "autoreload" else None,
    ("line", "autoreload"): lambda line: [] if set(line.split()) <= AUTORELOAD else None,
    ("line", "precision"): lambda line: [] if re.fullmatch(r"\s*[\w%.+#-]*\s*", line) else None,
    # help: `f?`, `?f`, `f??`, %pinfo f; the object's expression is checked (`In?` shows the input history)
    ("line", "pinfo"): lambda line: [(0, line)],
    ("line", "pinfo2"): lambda line: [(0, line)],
    ("line", "pdoc"): lambda line: [(0, line)],
    ("line", "pdef"): lambda line: [(0, line)],
}
IPYTHON_CALLS = {"run_line_magic": "line", "run_cell_magic": "cell", "system": "shell", "getoutput": "shell"}


def _ipython_call(node: ast.Call) -> tuple[str, list[str]] | None:
    """(kind, [its string arguments]) if `node` is a call IPython writes for a magic or a shell command:
    get_ipython().run_line_magic('name', 'line'), run_cell_magic('name', 'line', 'cell'), system('cmd')."""
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr in IPYTHON_CALLS and isinstance(func.value, ast.Call) \
            and isinstance(func.value.func, ast.Name) and func.value.func.id == "get_ipython" \
            and not func.value.args and not func.value.keywords and not node.keywords \
            and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args):
        return IPYTHON_CALLS[func.attr], [a.value for a in node.args
                                          if isinstance(a, ast.Constant) and isinstance(a.value, str)]   # all of them
    return None


def _parse(source: str, depth: int = 0) -> tuple[ast.Module | None, list[tuple[int, str]]]:
    """(tree, refused) of a cell's source, Python or IPython's syntax: the tree holds the student's Python, the
    Python inside the allowed magics in its place (at its lines in the cell), and none of the calls IPython
    made of the magics; refused is [(line, magic)] of the magics and shell commands that are not allowed.
    (None, []) for a source that does not parse (it does not run either)."""
    try:
        return ast.parse(source), []
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        pass   # IPython's syntax (%magics, !commands, `f?`), or code that does not run
    if depth > 5:
        return None, []
    from IPython.core.inputtransformer2 import TransformerManager
    try:
        python = TransformerManager().transform_cell(source)
        tree = ast.parse(python)
    except Exception:
        return None, []
    typed = {line.strip() for line in source.splitlines()}
    lines = python.splitlines()
    refused: list[tuple[int, str]] = []
    inside: list[ast.stmt] = []

    class Magics(ast.NodeTransformer):
        def visit_Call(self, node: ast.Call) -> ast.AST:
            self.generic_visit(node)
            made = _ipython_call(node)
            line = lines[node.lineno - 1].strip() if 0 < node.lineno <= len(lines) else ""
            if made is None or line in typed:   # a get_ipython() the student typed stays, and is flagged
                return node
            kind, args = made
            name = args[0] if kind != "shell" else "!"
            magic = MAGICS.get((kind, name)) if kind != "shell" else None
            pieces = magic(*args[1:]) if magic is not None else None
            if pieces is None:
                refused.append((node.lineno, f"%{name}" if kind == "line" else f"%%{name}" if kind == "cell"
                                else f"!{args[0] if args else ''}"))
            else:
                for offset, code in pieces:
                    code = code.strip() if offset == 0 else code
                    sub, deeper = _parse(code, depth + 1)
                    if sub is not None:
                        ast.increment_lineno(sub, node.lineno - 1 + offset)
                        inside.extend(sub.body)
                    refused.extend((node.lineno - 1 + offset + line, what) for line, what in deeper)
            return ast.copy_location(ast.Constant(None), node)

    tree = Magics().visit(tree)
    tree.body.extend(inside)
    return tree, refused


def _root_name(node: ast.expr) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _dotted(node: ast.expr) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.insert(0, node.attr)
        node = node.value
    return ".".join([node.id] + parts) if isinstance(node, ast.Name) else None


def _setting(target: ast.expr) -> bool:
    """Whether an assignment to `target` sets what an honest notebook sets: plt.rcParams['figure.figsize'],
    torch.backends.cudnn.deterministic, ..."""
    if isinstance(target, ast.Subscript) and isinstance(target.value, ast.Attribute) \
            and target.value.attr == "rcParams" and isinstance(target.slice, ast.Constant) \
            and isinstance(target.slice.value, str):
        return _dotted(target.value) is not None
    return _dotted(target) in SETTINGS


def _imported_names(trees: Iterable[ast.AST]) -> set[str]:
    names = set(KNOWN_MODULE_NAMES)
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


class _Checker(ast.NodeVisitor):
    def __init__(self, where: str, lines: list[str], imported: Collection[str], found: list[Finding]) -> None:
        self.where, self.lines, self.imported, self.found = where, lines, imported, found
        self.ipython: set[int] = set()       # ids of the nodes of an IPython.* expression already judged
        self.class_names: set[int] = set()   # ids of the `x.__class__` of an `x.__class__.__name__`

    def flag(self, node: ast.AST, what: str, concern: Concern = Concern.INTROSPECTION) -> None:
        self.flag_line(getattr(node, "lineno", 1), what, concern)

    def flag_line(self, line: int, what: str, concern: Concern = Concern.INTROSPECTION) -> None:
        code = self.lines[line - 1].strip() if 0 < line <= len(self.lines) else ""
        self.found.append(Finding(self.where, line, what, code[:80], concern))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if not (_allowed(alias.name) or alias.name == "IPython"):   # what IPython.* it uses is checked
                self.flag(node, f"imports {alias.name}")
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        display = module == "IPython" and all(alias.name == "display" for alias in node.names)
        if node.level or not (_allowed(module) or display):
            self.flag(node, f"imports from {module or '.'}")
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in INTROSPECTION_NAMES:
            self.flag(node, INTROSPECTION_NAMES[node.id],
                      Concern.UNUSUAL if node.id in UNUSUAL_NAMES else Concern.INTROSPECTION)
        elif HISTORY_NAME.fullmatch(node.id):
            self.flag(node, "reads IPython's history variables")
        elif node.id == "IPython" and id(node) not in self.ipython:
            self.flag(node, "uses IPython's internals")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if id(node) not in self.ipython:
            self._ipython(node)
        if node.attr in FRAME_ATTRIBUTES:
            self.flag(node, f"reads a frame or code object ({node.attr})")
        elif node.attr in ("__name__", "__qualname__") and isinstance(node.value, ast.Attribute) \
                and node.value.attr == "__class__":
            self.class_names.add(id(node.value))   # type(x).__name__ spelt x.__class__.__name__: a name only
        elif node.attr.startswith("__") and node.attr.endswith("__") and node.attr not in ORDINARY_DUNDERS \
                and id(node) not in self.class_names:
            self.flag(node, f"uses the dunder attribute {node.attr}")
        self.generic_visit(node)

    def _ipython(self, node: ast.Attribute) -> None:
        """IPython.display.* (or IPython.core.display.*) is fine; any other attribute of IPython is flagged."""
        chain: list[str] = []
        part: ast.expr = node
        while isinstance(part, ast.Attribute):
            chain.insert(0, part.attr)
            part = part.value
        if not (isinstance(part, ast.Name) and part.id == "IPython"):
            return
        part = node
        while isinstance(part, ast.Attribute):
            self.ipython.add(id(part))
            part = part.value
        self.ipython.add(id(part))
        if not any(tuple(chain[:len(prefix)]) == prefix for prefix in IPYTHON_DISPLAY):
            self.flag(node, "uses IPython's internals")

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if node.name.startswith("__") and node.name.endswith("__") and node.name not in ORDINARY_DUNDERS:
            self.flag(node, f"defines the special method {node.name}", Concern.UNUSUAL)
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id in ("getattr", "setattr", "delattr", "hasattr"):
            name = node.args[1] if len(node.args) > 1 else None
            if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
                self.flag(node, f"{node.func.id} with a computed name")
            elif name.value in FRAME_ATTRIBUTES and node.func.id != "hasattr":
                self.flag(node, f"reads a frame or code object ({name.value})")
            elif name.value.startswith("__") and name.value.endswith("__") and name.value not in ORDINARY_DUNDERS \
                    and node.func.id != "hasattr":
                self.flag(node, f"uses the dunder attribute {name.value}")
            elif node.func.id in ("setattr", "delattr") and _root_name(node.args[0]) in self.imported:
                self.flag(node, "replaces an attribute of an imported module or class")
        self.generic_visit(node)

    def _targets(self, node: ast.stmt, targets: Iterable[ast.expr]) -> None:
        for target in targets:
            if isinstance(node, ast.Assign) and _setting(target):
                continue
            for part in ast.walk(target):
                if isinstance(part, ast.Attribute) and _root_name(part) in self.imported:
                    self.flag(node, "replaces an attribute of an imported module or class")
                    return

    def visit_Assign(self, node: ast.Assign) -> None:
        self._targets(node, node.targets)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._targets(node, [node.target])
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._targets(node, [node.target])
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        self._targets(node, node.targets)
        self.generic_visit(node)


@functools.lru_cache(maxsize=1024)
def _imported_by(source: str) -> frozenset[str]:
    """The names that a locked cell's imports bind (the same cells in every notebook of a class: parsed once)."""
    tree, _ = _parse(source)
    return frozenset(_imported_names([tree] if tree is not None else []))


def scan_cells(cells: Iterable[tuple[str, str]], context: Iterable[str] = ()) -> list[Finding]:
    """Findings in `cells`, [(where, source)] of the student's code; `context` holds the sources of the
    notebook's other (locked) cells, whose imports say which names are modules."""
    parsed: list[tuple[str, str, ast.Module, list[tuple[int, str]]]] = []
    for where, source in cells:
        tree, refused = _parse(source)
        if tree is not None:
            parsed.append((where, source, tree, refused))
    imported = _imported_names([tree for _, _, tree, _ in parsed])
    for source in context:
        imported |= _imported_by(source)
    found: list[Finding] = []
    for where, source, tree, refused in parsed:
        checker = _Checker(where, source.splitlines(), imported, found)
        for line, magic in refused:
            checker.flag_line(line, f"uses an IPython magic or a shell command ({magic})")
        checker.visit(tree)
    return found


def student_cells(notebook: NotebookNode, release: NotebookNode) -> tuple[list[tuple[str, str]], list[str]]:
    """[(where, source)] of the code cells the student wrote: every code cell that the released notebook
    does not lock (which it decides, not the submission's metadata), and [sources] of the locked ones."""
    locked = {c.metadata["nbgrader"]["grade_id"] for c in release.cells
              if c.metadata.get("nbgrader", {}).get("locked")}
    theirs: list[tuple[str, str]] = []
    context: list[str] = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in locked:
            context.append(cell.source)
        else:
            theirs.append((grade_id or "a cell the student added", cell.source))
    return theirs, context


def scan_notebook(notebook: NotebookNode, release: NotebookNode) -> list[Finding]:
    theirs, context = student_cells(notebook, release)
    return scan_cells(theirs, context)
