"""The grader's tests of a notebook, in-process, without a kernel: the fast path of the project's own tests.

The notebook's cells (set-up and solution cells; not its test cells) run in a namespace of this process,
what each solution cell binds is kept right after it (as the keep cells do in a kernel), the agent
(autograder/agent.py) answers for that namespace on one end of a socket pair, and the grader's tests
(autograder/verdicts.py) run against it through the same proxies and wire as in a real grading. For
trusted code only (solutions, the catalogue of mutants): nothing here is sandboxed.
"""
import contextlib
import socket
import threading

import nbformat

from autograder import agent, course, diagnose, verdicts, wire
from autograder.editions import Edition
from autograder.remote import Remote

KEPT = "_autograder_kept_fastpath"


def _meta(cell):
    return cell.metadata.get("nbgrader", {})


def student_namespace(notebook, source):
    """Run the notebook's non-test code cells; {solution cell: {name: what it bound}} kept after each."""
    with verdicts.grader_state():   # what the notebook's code does to torch's global state stays in its "kernel"
        return _run_cells(notebook, source)


def _run_cells(notebook, source):
    namespace = {"__name__": "__main__"}
    names = verdicts.solution_cells(source)
    kept = namespace.setdefault(KEPT, {})
    for cell in notebook.cells:
        if cell.cell_type != "code" or _meta(cell).get("grade"):
            continue
        code = verdicts.without_magics(cell.source)
        try:   # as a kernel runs a notebook for the grader: a cell that raises does not stop the others
            exec(compile(code, "<notebook cell>", "exec"), namespace)
        except Exception:
            pass
        grade_id = _meta(cell).get("grade_id")
        if _meta(cell).get("solution") and grade_id in names:
            kept[grade_id] = {n: namespace[n] for n in names[grade_id] if n in namespace}
    return namespace


@contextlib.contextmanager
def serving(notebook, source, timeout=60):
    """A Remote whose agent answers, in a thread of this process, for the namespace of `notebook`'s code."""
    namespace = student_namespace(notebook, source)
    ours, theirs = socket.socketpair()
    thread = threading.Thread(target=agent.in_process, args=(namespace, KEPT, theirs), daemon=True)
    thread.start()
    try:
        yield Remote(ours, timeout=timeout)
    finally:
        try:
            wire.send(ours, {"op": "done"}, {})
        except OSError:
            pass
        thread.join(10)
        ours.close()


def grade_in_process(notebook, source, timeout=60, secret=None, only=None, edition=Edition.EN):
    """{grade_id: Verdict} of the grader's tests of `notebook` (the source notebook `source` holds them), their
    seeds mixed with the course's secret as the grader mixes them (`secret`: another one); `only`: just these
    test cells (a component's); what the grader says of an error, in `edition`."""
    with serving(notebook, source, timeout) as remote:
        return verdicts.run_tests(source, remote, notebook, course.secret() if secret is None else secret, only=only,
                                  edition=edition)


def diagnose_in_process(notebook, source, folder, only=None):
    """{solution cell: Facts} of the assignment's diagnostics (in `folder`) on `notebook`, as the grader runs them
    after the tests (autograder/diagnose.py); `only`: one component."""
    with serving(notebook, source) as remote:
        return diagnose.run(folder, remote, verdicts.solution_cells(source), notebook,
                            only=None if only is None else {only})


def read(path):
    return nbformat.read(path, as_version=4)
