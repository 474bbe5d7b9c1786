"""Read the code a student wrote (as a syntax tree, never by running it) and name what a solution never needs.

Which cells are the student's is decided by the released notebook (the cells it does not lock, and
every cell the student added), never by the submitted metadata. Every line is checked against an
allowlist of what the exercises need (torch, math, a few standard modules, their own names); what falls
outside is flagged with its line, for a person to look at. A flag never changes a score by itself, but it
closes the feedback channel (feedback.py): a notebook flagged for introspection gets no output of its own
cells printed after the hidden tests started.
"""
import ast
import re
from dataclasses import dataclass

ALLOWED_MODULES = ("torch", "math", "numpy", "typing", "collections", "functools", "itertools", "dataclasses",
                   "numbers", "re", "string", "warnings", "time", "random", "IPython.display", "matplotlib")
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
HISTORY_NAME = re.compile(r"_i{1,3}\d*|_\d+|__{1,2}")       # _i, _ii, _iii, _i12, _12, __, ___
FRAME_ATTRIBUTES = {"f_back", "f_locals", "f_globals", "f_builtins", "f_code", "f_trace", "gi_frame", "cr_frame",
                    "ag_frame", "gi_code", "cr_code", "tb_frame", "tb_next", "co_consts", "co_code", "co_names",
                    "co_varnames", "co_filename"}
ORDINARY_DUNDERS = {"__init__", "__len__", "__call__", "__repr__", "__str__", "__name__", "__doc__", "__getitem__",
                    "__iter__", "__next__", "__contains__", "__eq__", "__hash__", "__enter__", "__exit__",
                    "__post_init__", "__class_getitem__"}
KNOWN_MODULE_NAMES = {"torch", "nn", "F", "math", "np", "numpy", "plt", "Tensor"}
SAFE_MAGICS = {"time", "timeit", "matplotlib", "precision"}
INTROSPECTION = ("IPython", "history", "frame", "builtins", "thread", "debugger", "namespace", "global names",
                 "local names", "imports", "by name", "raw memory", "code from strings", "opens files",
                 "replaces", "magic")


@dataclass(frozen=True)
class Finding:
    where: str      # the cell's grade_id, or "a cell the student added"
    line: int       # line in that cell
    what: str       # what is unusual, in plain words
    code: str       # the line itself, shortened

    def __str__(self):
        return f"{self.where} line {self.line} {self.what} ({self.code!r})"

    @property
    def introspects(self):
        """Whether it could read or alter the grading (history, frames, hooks, threads, files, imports)."""
        return any(word in self.what for word in INTROSPECTION)


def _allowed(module):
    return any(module == a or module.startswith(a + ".") for a in ALLOWED_MODULES)


def _python(source):
    """The cell's source as Python (IPython's %magics and !shell lines turned into calls), and the magics used."""
    if not re.search(r"^\s*[%!]", source, re.MULTILINE):
        return source, []
    cell_magic = re.match(r"\s*%%(\w+)[^\n]*\n?", source)
    if cell_magic and cell_magic.group(1) in SAFE_MAGICS:   # %%time: the body is Python, and it is checked
        body, magics = _python(source[cell_magic.end():])
        return "\n" + body, magics
    from IPython.core.inputtransformer2 import TransformerManager
    python = TransformerManager().transform_cell(source)
    magics = re.findall(r"get_ipython\(\)\.(run_line_magic|run_cell_magic|system|getoutput)\('?([\w]*)", python)
    return python, magics


def _root_name(node):
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _imported_names(trees):
    names = set(KNOWN_MODULE_NAMES)
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


class _Checker(ast.NodeVisitor):
    def __init__(self, where, lines, imported, found):
        self.where, self.lines, self.imported, self.found = where, lines, imported, found

    def flag(self, node, what):
        line = getattr(node, "lineno", 1)
        code = self.lines[line - 1].strip() if 0 < line <= len(self.lines) else ""
        self.found.append(Finding(self.where, line, what, code[:80]))

    def visit_Import(self, node):
        for alias in node.names:
            if not _allowed(alias.name):
                self.flag(node, f"imports {alias.name}")
        self.generic_visit(node)

    def visit_ImportFrom(self, node):
        module = node.module or ""
        if node.level or not _allowed(module):
            self.flag(node, f"imports from {module or '.'}")
        self.generic_visit(node)

    def visit_Name(self, node):
        if node.id in INTROSPECTION_NAMES:
            self.flag(node, INTROSPECTION_NAMES[node.id])
        elif HISTORY_NAME.fullmatch(node.id):
            self.flag(node, "reads IPython's history variables")
        self.generic_visit(node)

    def visit_Attribute(self, node):
        if node.attr in FRAME_ATTRIBUTES:
            self.flag(node, f"reads a frame or code object ({node.attr})")
        elif node.attr.startswith("__") and node.attr.endswith("__") and node.attr not in ORDINARY_DUNDERS:
            self.flag(node, f"uses the dunder attribute {node.attr}")
        self.generic_visit(node)

    def visit_FunctionDef(self, node):
        if node.name.startswith("__") and node.name.endswith("__") and node.name not in ORDINARY_DUNDERS:
            self.flag(node, f"defines the special method {node.name}")
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node):
        if isinstance(node.func, ast.Name) and node.func.id in ("getattr", "setattr", "delattr", "hasattr"):
            name = node.args[1] if len(node.args) > 1 else None
            if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
                self.flag(node, f"{node.func.id} with a computed name")
            elif node.func.id in ("setattr", "delattr") and _root_name(node.args[0]) in self.imported:
                self.flag(node, "replaces an attribute of an imported module or class")
        self.generic_visit(node)

    def _targets(self, node, targets):
        for target in targets:
            for part in ast.walk(target):
                if isinstance(part, ast.Attribute) and _root_name(part) in self.imported:
                    self.flag(node, "replaces an attribute of an imported module or class")
                    return

    def visit_Assign(self, node):
        self._targets(node, node.targets)
        self.generic_visit(node)

    def visit_AugAssign(self, node):
        self._targets(node, [node.target])
        self.generic_visit(node)

    def visit_AnnAssign(self, node):
        self._targets(node, [node.target])
        self.generic_visit(node)

    def visit_Delete(self, node):
        self._targets(node, node.targets)
        self.generic_visit(node)


def scan_cells(cells, context=()):
    """Findings in `cells`, [(where, source)] of the student's code; `context` holds the sources of the
    notebook's other (locked) cells, whose imports say which names are modules."""
    parsed = []
    for where, source in cells:
        python, magics = _python(source)
        try:
            parsed.append((where, python, ast.parse(python), magics))
        except (SyntaxError, ValueError, RecursionError):
            continue  # code that does not parse does not run either
    trees = [tree for *_, tree, _ in parsed]
    for source in context:
        try:
            trees.append(ast.parse(_python(source)[0]))
        except (SyntaxError, ValueError, RecursionError):
            pass
    imported = _imported_names(trees)
    found = []
    for where, python, tree, magics in parsed:
        checker = _Checker(where, python.splitlines(), imported, found)
        safe = [kind == "run_line_magic" and name in SAFE_MAGICS or kind == "run_cell_magic" and name in SAFE_MAGICS
                for kind, name in magics]
        if magics and all(safe):   # %timeit and %matplotlib are fine; the calls they became are not the student's
            tree = _without_magic_calls(tree, python, source)
        elif magics:
            found.append(Finding(where, 1, "uses an IPython magic or a shell command",
                                 next(name for (_, name), ok in zip(magics, safe) if not ok)))
        checker.visit(tree)
    return found


def _without_magic_calls(tree, python, source):
    """The tree without the get_ipython().run_line_magic(...) calls that IPython made of the cell's magics
    (only on the lines that were magics in the student's source: a get_ipython() they typed stays)."""
    magic_lines = {i + 1 for i, line in enumerate(source.splitlines()) if line.lstrip().startswith(("%", "!"))}

    class Strip(ast.NodeTransformer):
        def visit_Call(self, node):
            func = node.func
            if node.lineno in magic_lines and isinstance(func, ast.Attribute) and isinstance(func.value, ast.Call) \
                    and isinstance(func.value.func, ast.Name) and func.value.func.id == "get_ipython":
                return ast.Constant(None)
            return self.generic_visit(node)
    return Strip().visit(tree)


def student_cells(notebook, release):
    """[(where, source)] of the code cells the student wrote: every code cell that the released notebook
    does not lock (which it decides, not the submission's metadata), and [sources] of the locked ones."""
    locked = {c.metadata["nbgrader"]["grade_id"] for c in release.cells
              if c.metadata.get("nbgrader", {}).get("locked")}
    theirs, context = [], []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in locked:
            context.append(cell.source)
        else:
            theirs.append((grade_id or "a cell the student added", cell.source))
    return theirs, context


def scan_notebook(notebook, release):
    theirs, context = student_cells(notebook, release)
    return scan_cells(theirs, context)
