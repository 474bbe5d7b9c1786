"""What the kernel prints once the grader asks is no part of a grade: a notebook whose code prints random bytes
(stdout, stderr, the raw file descriptors, displays) whenever the grader's tests and diagnostics call it is graded
twice, and its feedback page, CSV rows and result are byte-identical both times. The noise is kept for the
instructor (OUT/kernel-output/), never shown to the student.
"""
import os
import textwrap

import nbformat
import pytest

from autograder import sandbox
from tests.conftest import REPO, run_grader, solution_path

pytestmark = pytest.mark.skipif(not sandbox.available(), reason="needs bubblewrap (`make sandbox`)")

ASSIGNMENT = "01_attention"

# Appended to every solution cell: each function of the cell, and each module's forward, prints random bytes in
# every way a kernel can print once NOISE is set (by the notebook's last cell, after which only the grader calls).
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


def noisy_notebook():
    notebook = nbformat.read(solution_path(ASSIGNMENT), as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source += "\n" + NOISE
    notebook.cells.append(nbformat.v4.new_code_cell("NOISE = True   # from here on, every call prints random bytes"))
    return notebook


def _files(out):
    """{path: bytes} of what grading writes for people and machines, the instructor's kernel output and the
    run's timings aside."""
    found = {}
    for path in sorted(out.rglob("*")):
        relative = path.relative_to(out)
        if path.is_file() and relative.parts[0] != "kernel-output" and path.name != "timings.log":
            found[str(relative)] = path.read_bytes()
    return found


def test_what_the_kernel_prints_after_the_first_request_changes_no_file(tmp_path):
    submissions = tmp_path / "submissions" / "noisy" / ASSIGNMENT
    submissions.mkdir(parents=True)
    nbformat.write(noisy_notebook(), submissions / f"{ASSIGNMENT}.ipynb")
    outs = [tmp_path / "out-1", tmp_path / "out-2"]
    for out in outs:
        process = run_grader(tmp_path / "submissions", out, 1)
        assert process.returncode == 0, process.stderr[-2000:]
    first, second = (_files(out) for out in outs)
    assert first.keys() == second.keys()
    changed = [name for name in first if first[name] != second[name]]
    assert not changed, f"files that differ between two gradings of one notebook: {changed}"
    grades = first["grades.csv"].decode()
    assert "noisy,01_attention,41,41" in grades, grades   # the noise cost nothing

    # the noise was made, and went to the instructor's file: different each time, never in the feedback
    kept = [out / "kernel-output" / "noisy" / f"{ASSIGNMENT}.txt" for out in outs]
    assert all(path.is_file() and path.stat().st_size > 100 for path in kept), "the kernel's output was not kept"
    assert kept[0].read_bytes() != kept[1].read_bytes()
    noise = kept[0].read_text(encoding="utf-8", errors="replace").split()[0]
    page = first[os.path.join("feedback", "noisy", ASSIGNMENT, f"{ASSIGNMENT}.html")].decode()
    assert noise not in page
    assert not (REPO / "kernel-output").exists()
