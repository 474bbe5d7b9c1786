"""Verdicts out of the student's reach: every test cell runs in the grader's own process.

After the notebook has run in the kernel (the student's cells and the visible tests, with the hidden
parts stripped), the grader runs the assignment's *source* notebook's course code itself: its locked
set-up cells and every graded test cell, visible and hidden parts alike, in a fresh namespace of its own,
where each name a solution cell defines is a proxy of what the student bound there (autograder/remote.py).
A cell passes when it runs to its end. The kernel only answers calls; nothing it prints, patches or
sends back can change a verdict except the values it returns, which the tests check against references
that the grader computes. Test source and expected values never enter the kernel.
"""
from __future__ import annotations

import ast
import builtins
import contextlib
import hashlib
import functools
import io
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import nbformat
import torch

from autograder.course import without_magics
from autograder.editions import Edition, say
from autograder.remote import KeptProxy, KernelGone, OutOfTime, Remote, RemoteError

FLAG = "verdicts"                 # metadata.autograder.verdicts of a source notebook: "grader" or "kernel"
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


@dataclass(frozen=True)
class Verdict:
    grade_id: str
    passed: bool
    error_type: str = ""   # the exception that failed the cell ("" when it passed)
    message: str = ""      # its message: the test's words, or the student's error (capped)


def in_grader(notebook: nbformat.NotebookNode) -> bool:
    """Whether an assignment's tests run in the grader's process (its source notebook says so)."""
    return bool(notebook.metadata.get("autograder", {}).get(FLAG) == "grader")


def strip_hidden(source: str) -> str:
    """The source without its hidden-test regions, as nbgrader's release has it."""
    kept, hidden = [], False
    for line in source.splitlines(keepends=True):
        if HIDDEN_BEGIN in line:
            hidden = True
        elif HIDDEN_END in line:
            hidden = False
        elif not hidden:
            kept.append(line)
    return "".join(kept)


def defined_names(source: str) -> list[str]:
    """The names a solution cell of the source notebook binds at its top level (functions, classes,
    simple assignments)."""
    return list(_defined_names(source))


@functools.lru_cache(maxsize=1024)
def _defined_names(source: str) -> tuple[str, ...]:
    names = []
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [t.id for t in targets if isinstance(t, ast.Name)]
    return tuple(n for n in dict.fromkeys(names) if not n.startswith("_"))


def _meta(cell: nbformat.NotebookNode) -> dict[str, Any]:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def solution_cells(notebook: nbformat.NotebookNode) -> dict[str, list[str]]:
    """{grade_id of each solution cell: the names it defines} of a source notebook."""
    return {_meta(c)["grade_id"]: defined_names(c.source) for c in notebook.cells
            if c.cell_type == "code" and _meta(c).get("solution")}


def student_definitions(submitted: nbformat.NotebookNode) -> dict[str, str]:
    """{name: source} of every top-level function and class the student wrote (solution cells and cells they
    added; the last definition of a name wins), read as text: what a test may inspect (forbidden names)."""
    found: dict[str, str] = {}
    for cell in submitted.cells:
        meta = _meta(cell)
        if cell.cell_type != "code" or (meta.get("locked") or meta.get("grade")) and not meta.get("solution"):
            continue
        text = "\n".join("pass" if line.lstrip().startswith(("%", "!")) else line for line in cell.source.splitlines())
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError, RecursionError):
            continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found[node.name] = ast.get_source_segment(text, node) or ""
    return found


def run_tests(source: nbformat.NotebookNode, remote: Remote,
              submitted: nbformat.NotebookNode | None = None, secret: str = "",
              only: set[str] | None = None, edition: Edition = Edition.EN) -> dict[str, Verdict]:
    """Run the source notebook's course code in a namespace of the grader's, with the student's names bound
    to proxies; the verdict of every graded cell. `submitted` (the notebook handed in) gives the tests the
    text of the student's definitions (`proxy.source`). With a course's `secret`, every seed the tests set
    is mixed with it (`seeded_builtins`): inputs that no one who reads the repository can know, the same
    at every regrade. `only` (the project's own tests): run just these graded cells, and no demo cell. What the
    grader says about an error of the student's code is in `edition` (the tests' own messages are the source's)."""
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": seeded_builtins(secret) if secret else builtins}
    remote.names = namespace
    remote.sources = student_definitions(submitted) if submitted is not None else {}
    verdicts: dict[str, Verdict] = {}
    seen_solution = False
    with grader_state():
        for cell in source.cells:
            if cell.cell_type != "code":
                continue
            meta = _meta(cell)
            if meta.get("solution"):
                seen_solution = True
                for name in defined_names(cell.source):
                    namespace[name] = KeptProxy(remote, meta["grade_id"], name)
                    remote.student_names.add(name)
            elif meta.get("grade"):
                if only is None or meta["grade_id"] in only:
                    verdicts[meta["grade_id"]] = _run_cell(meta["grade_id"], cell.source, namespace, edition)
                else:   # a cell left out still defines its helpers, which a later test cell may use
                    _run_cell("", _definitions_only(cell.source), namespace)
            elif seen_solution and only is not None and not meta.get("locked"):
                continue    # a demo, left out
            elif seen_solution:   # an ungraded cell after the student's code (a demo, or course code): it decides nothing
                _run_cell("", cell.source, namespace)
            else:
                _run_course_code(cell.source, namespace)
                for name in defined_names(cell.source):   # given code the student's code calls: a test may rebind it
                    remote.course_names[name] = namespace.get(name)
    return verdicts


def _run_cell(grade_id: str, source: str, namespace: dict[str, Any], edition: Edition = Edition.EN) -> Verdict:
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            exec(_compiled(source, f"<test {grade_id}>"), namespace)
    except RemoteError as error:
        raised = f"{error.kind}: {error.text}".rstrip(": ")
        return Verdict(grade_id, False, error.kind, say(edition, "your code raised {error}", error=raised))
    except KernelGone as error:
        return Verdict(grade_id, False, "KernelGone", say(edition, error.template, detail=error.detail))
    except OutOfTime as error:
        message = str(error) if error.seconds is None else \
            say(edition, "your code ran longer than {seconds} s", seconds=f"{error.seconds:g}")
        return Verdict(grade_id, False, "OutOfTime", message)
    except Exception as error:   # the test's own assertion, or what a wrong answer made the test raise
        return Verdict(grade_id, False, type(error).__name__, str(error))
    return Verdict(grade_id, True)


@functools.lru_cache(maxsize=1024)
def _compiled(source: str, filename: str) -> types.CodeType:
    """The course's code (a source notebook's cell) compiled once per process: a worker grades many submissions
    of the same assignment with the same test cells."""
    return compile(source, filename, "exec")


@functools.lru_cache(maxsize=1024)
def _definitions_only(source: str) -> str:
    """The imports, functions and classes that a cell defines at its top level, without the rest."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return ""
    kept: list[ast.stmt] = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef))]
    return ast.unparse(ast.Module(body=kept, type_ignores=[]))


def _run_course_code(source: str, namespace: dict[str, Any]) -> None:
    """A locked cell of the course (imports, seeds): it must run, or no test can."""
    with contextlib.redirect_stdout(io.StringIO()):
        exec(_compiled(without_magics(source), "<course code>"), namespace)


def mixed_seed(secret: str, seed: int) -> int:
    """The seed a test's `seed` becomes under a course's secret: a hash of both, in [0, 2**63)."""
    digest = hashlib.sha256(f"{secret}\0{int(seed)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def seeded_torch(secret: str) -> types.ModuleType:
    """torch as the tests see it under a course's secret: `torch.manual_seed(n)` and
    `torch.Generator().manual_seed(n)` seed with mixed_seed(secret, n); everything else is torch's own."""
    class Generator(torch.Generator):
        def manual_seed(self, seed: int) -> torch.Generator:
            return super().manual_seed(mixed_seed(secret, seed))

    class SeededTorch(types.ModuleType):
        def __getattr__(self, name: str) -> Any:
            return getattr(torch, name)

    module = SeededTorch("torch", torch.__doc__)
    module.Generator = Generator  # type: ignore[attr-defined]
    module.manual_seed = lambda seed: torch.manual_seed(mixed_seed(secret, seed))  # type: ignore[attr-defined]
    return module


def seeded_builtins(secret: str) -> dict[str, Any]:
    """The builtins of the tests' namespace under a course's secret: `import torch` (and `from torch import
    ...`, `import torch.nn.functional as F`) gives them seeded_torch(secret)."""
    seeded = seeded_torch(secret)

    def import_(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        module = builtins.__import__(name, globals, locals, fromlist, level)
        if level == 0 and module is torch and (name == "torch" or not fromlist):
            return seeded
        return module
    return {**vars(builtins), "__import__": import_}


@contextlib.contextmanager
def grader_state() -> Iterator[None]:
    """Whatever the tests change in the grader's torch (default dtype, seeds, grad mode) is put back."""
    dtype, rng, grad = torch.get_default_dtype(), torch.get_rng_state(), torch.is_grad_enabled()
    try:
        yield
    finally:
        torch.set_default_dtype(dtype)
        torch.set_rng_state(rng)
        torch.set_grad_enabled(grad)
