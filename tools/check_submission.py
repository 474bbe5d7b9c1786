"""Check a notebook before handing it in, as the grader will (without the hidden tests).

    python -m tools.check_submission [NOTEBOOK ...]      (make check-submission [NB=...])

With no argument, every work/<id>/<id>.ipynb and work/zh/<id>/<id>.ipynb. Each notebook is checked against the
release of its edition (notebooks/, or zh/notebooks/ for a notebook in Chinese: the one whose instructions it keeps,
as the grader decides, autograder.editions.detect), and the check speaks that edition's language (zh/grader.yml).
For each notebook it says which file to upload, then checks:
1. the file is a valid notebook (JSON, nbformat), as the grader's first step does;
2. every graded and locked cell of the release is there, once, and unedited (the grader restores
   edited ones from its own copy, so an edit counts for nothing; a deleted one cannot be graded); where an
   editor removed the cells' nbgrader metadata (Colab, a new notebook the cells were pasted into), it says
   so and which cells the grader matches to the release, as the grader does (autograder.repair);
3. it runs from a fresh kernel within the grader's time limits (a notebook that runs longer scores 0),
   with the grader's locked cells put back, in an empty folder, as the grader runs it;
4. the visible tests: which test cells pass, and which of your cells raise.
The hidden tests are never run: the cells that hold them come from the release (notebooks/, zh/notebooks/),
which has none. Passing here is necessary, not sufficient: the hidden tests check more than the visible ones.
Exit status: 0 when every notebook is ready to upload, 1 otherwise.

From the grader it uses: autograder.collect.read_notebook (step 1), autograder.repair.restore_metadata
(step 2) and autograder.sandbox.run_notebook (step 3, in the grader's sandbox when bubblewrap is
installed; and autograder.sandbox.available, to know).
"""
import argparse
import inspect
import re
import sys
import tempfile
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from autograder.collect import read_notebook
from autograder.editions import Edition, detect, say
from autograder.model import Limits
from autograder.repair import Restoration, restore_metadata
from autograder.sandbox import SandboxError, available, run_notebook

REPO = Path(__file__).resolve().parent.parent
RELEASE = REPO / "notebooks"
WORK = REPO / "work"
RELEASES = {Edition.EN: RELEASE, Edition.ZH: REPO / "zh" / "notebooks"}   # each edition's released notebooks
WORKSPACES = {Edition.EN: WORK, Edition.ZH: WORK / "zh"}                  # as tools/workspace.py has them
# The grader's limits: the defaults of `python -m autograder grade --timeout` and `--cell-timeout`.
LIMITS = Limits()


@dataclass(frozen=True)
class Check:
    ok: bool
    what: str      # one line: what was checked, and what was found
    detail: str = ""


def release_notebook(assignment: str, edition: Edition = Edition.EN) -> Path:
    """The released notebook of an assignment in an edition: the English one where the edition has none."""
    path = RELEASES[edition] / assignment / f"{assignment}.ipynb"
    return path if path.is_file() else RELEASE / assignment / f"{assignment}.ipynb"


def releases(assignment: str) -> dict[Edition, NotebookNode]:
    """The released notebook of an assignment in each edition (the English one for an edition without it)."""
    english = nbformat.read(release_notebook(assignment), as_version=4)
    chinese = release_notebook(assignment, Edition.ZH)
    return {Edition.EN: english,
            Edition.ZH: english if chinese == release_notebook(assignment) else nbformat.read(chinese, as_version=4)}


def edition_of_place(path: str | os.PathLike[str]) -> Edition:
    """The edition to speak before a notebook is read: Chinese for one in the Chinese workspace (work/zh/)."""
    return Edition.ZH if Path(path).resolve().is_relative_to(WORKSPACES[Edition.ZH].resolve()) else Edition.EN


def assignment_of(path: str | os.PathLike[str]) -> str | None:
    """The assignment a notebook belongs to: its folder's name, else its file name (a browser may add
    " (1)"), if the release has it; else None."""
    path = Path(path)
    for name in (path.parent.name, re.sub(r"\s*\(\d+\)$", "", path.stem).removesuffix(".new")):
        if release_notebook(name).is_file():
            return name
    return None


def nbgrader_meta(cell: Mapping[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = cell.get("metadata", {}).get("nbgrader", {})
    return meta


def cell_checks(notebook: NotebookNode, release: NotebookNode, edition: Edition = Edition.EN) -> list[Check]:
    """Step 2: the release's graded and locked cells, present once and unedited."""
    theirs: dict[str, list[NotebookNode]] = {}
    for cell in notebook.cells:
        grade_id = nbgrader_meta(cell).get("grade_id")
        if grade_id:
            theirs.setdefault(grade_id, []).append(cell)
    missing: list[str] = []
    edited: list[str] = []
    doubled: list[str] = []
    for cell in release.cells:
        meta = nbgrader_meta(cell)
        grade_id = meta.get("grade_id")
        if not grade_id or not (meta.get("grade") or meta.get("locked") or meta.get("solution")):
            continue
        found = theirs.get(grade_id, [])
        if not found:
            missing.append(grade_id)
        elif len(found) > 1:
            doubled.append(grade_id)
        elif meta.get("locked") and found[0].source.strip() != cell.source.strip():
            edited.append(grade_id)
    checks = []
    if missing:
        checks.append(Check(False, say(edition, "cells missing (deleted, or their metadata lost and the cell not "
                                                "recognised): {cells}", cells=", ".join(missing)),
                            say(edition, "A cell the grader cannot find scores 0. Copy it back from the released "
                                         "notebook (make lab puts a fresh copy beside yours if the course changed it).")))
    if doubled:
        checks.append(Check(False, say(edition, "cells present twice (copied?): {cells}", cells=", ".join(doubled)),
                            say(edition, "The grader keeps only one of them, and not the one you choose: "
                                         "delete the copies.")))
    if edited:
        checks.append(Check(True, say(edition, "locked cells you edited (the grader puts the original back): {cells}",
                                      cells=", ".join(edited))))
    if not (missing or doubled):
        checks.append(Check(True, say(edition, "every graded cell of the release is there, once")))
    return checks


def metadata_checks(restoration: Restoration, edition: Edition = Edition.EN) -> list[Check]:
    """Step 2's first part: whether cells had lost their nbgrader metadata, and how the grader finds them."""
    if not restoration.restored:
        return []
    return [Check(True, say(edition, "nbgrader metadata missing from {count} cells (removed by an editor?): "
                                     "the grader matches them to the release: {cells}",
                            count=len(restoration.restored), cells=", ".join(restoration.restored)),
                  say(edition, "The grader matches each cell without metadata to the release: by its cell id; a "
                               "locked cell (instructions, setup, tests) by its text; a cell of yours by the function "
                               "or class its stub defines, between the matched cells around it; an edited locked cell "
                               "by a text at least 60% alike; what is left by position. To be safe, copy your answers "
                               "into a fresh copy of the release (make lab)."))]


def restored(notebook: NotebookNode, release: NotebookNode) -> NotebookNode:
    """The notebook as the grader runs it: the release's locked cells put back, outputs cleared."""
    locked = {nbgrader_meta(c)["grade_id"]: c.source for c in release.cells if nbgrader_meta(c).get("locked")}
    run: NotebookNode = nbformat.from_dict(notebook)
    for cell in run.cells:
        grade_id = nbgrader_meta(cell).get("grade_id")
        if grade_id in locked:
            cell.source = locked[grade_id]
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return run


def first_error(cell: Mapping[str, Any]) -> str | None:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            value = str(output.get("evalue", "")).strip().splitlines()
            return f"{output.get('ename', 'Error')}: {value[0][:200]}" if value else output.get("ename", "Error")
    return None


def has_code(source: str) -> bool:
    """Whether a cell's source holds any line that is not blank or a comment."""
    return any(line.strip() and not line.strip().startswith("#") for line in source.splitlines())


def explained(error: str, edition: Edition = Edition.EN) -> str:
    if error.startswith("NotImplementedError"):
        return say(edition, "NotImplementedError: not done yet (a cell of yours still raises the released stub's error)")
    return error


def run_checks(notebook: NotebookNode, release: NotebookNode, edition: Edition = Edition.EN) -> list[Check]:
    """Steps 3 and 4: run from a fresh kernel, in an empty folder, within the grader's limits."""
    run = restored(notebook, release)
    with tempfile.TemporaryDirectory(prefix="check-submission-") as folder:
        start = time.monotonic()
        # In the grader's sandbox where bubblewrap is installed. On a student's machine without it, their own
        # code runs as any notebook of theirs does: a run_notebook that refuses to run unsandboxed by default
        # takes sandbox=False for that.
        unsandboxed: dict[str, Any] = {}   # keyword arguments of whichever run_notebook is bound (a test's fake, say)
        if not available() and "sandbox" in inspect.signature(run_notebook).parameters:
            unsandboxed = {"sandbox": False}
        try:
            run_notebook(run, Path(folder) / "job", LIMITS.notebook, LIMITS.cell, **unsandboxed)
        except SandboxError as error:
            return [Check(False, say(edition, "the notebook did not run to the end: {error}", error=error))]
        seconds = time.monotonic() - start
    checks = [Check(True, say(edition, "ran from a fresh kernel in {seconds} s (the grader allows {notebook} s, "
                                       "{cell} s per cell)",
                              seconds=f"{seconds:.0f}", notebook=f"{LIMITS.notebook:g}", cell=f"{LIMITS.cell:g}"))]
    stuck = [f"{nbgrader_meta(c).get('grade_id') or say(edition, 'a cell you added')}: {explained(error, edition)}"
             for c in run.cells if c.cell_type == "code" and not nbgrader_meta(c).get("grade")
             for error in [first_error(c)] if error]
    if stuck:
        checks.append(Check(False, say(edition, "your cells raise (every test that uses them will fail)"),
                            "\n".join(stuck)))
    tests = [c for c in run.cells if c.cell_type == "code" and nbgrader_meta(c).get("grade")]
    visible = [c for c in tests if has_code(c.source)]   # in the release, a hidden-test cell is only its header
    hidden = [c for c in tests if not has_code(c.source)]
    failed = [(nbgrader_meta(c)["grade_id"], error) for c in visible for error in [first_error(c)] if error]
    points = sum(nbgrader_meta(c).get("points", 0) for c in visible if not first_error(c))
    total = sum(nbgrader_meta(c).get("points", 0) for c in visible)
    checks.append(Check(not failed, say(edition, "visible tests: {passed} of {cells} test cells pass "
                                                 "({points} of their {total} points)",
                                        passed=len(visible) - len(failed), cells=len(visible),
                                        points=f"{points:g}", total=f"{total:g}"),
                        "\n".join(f"{grade_id}: {explained(error, edition)}" for grade_id, error in failed)))
    hidden_points = sum(nbgrader_meta(c).get("points", 0) for c in hidden)
    checks.append(Check(True, say(edition, "hidden tests: {cells} more test cells ({points} points) are filled in "
                                           "and run only when your notebook is graded",
                                  cells=len(hidden), points=f"{hidden_points:g}")))
    return checks


@dataclass(frozen=True)
class Report:
    assignment: str | None
    edition: Edition      # the language the checks speak: the notebook's edition, once it is read
    checks: list[Check]


def report(path: str | os.PathLike[str]) -> Report:
    """Every check of one notebook, in order, in its edition's language; stops at the first one that makes the
    rest meaningless."""
    path = Path(path)
    edition = edition_of_place(path)
    assignment = assignment_of(path)
    if assignment is None:
        known = ", ".join(sorted(p.name for p in RELEASE.iterdir() if p.is_dir()))
        return Report(None, edition, [Check(False, say(edition, "which assignment is this? Neither its folder nor "
                                                                "its name is one of: {known}", known=known))])
    notebook, problem = read_notebook(path)
    if problem:
        return Report(assignment, edition, [Check(
            False, say(edition, "the file is not a notebook the grader can read: {problem}", problem=problem),
            say(edition, "Open it in JupyterLab, or copy your answers into a fresh copy of the release."))])
    assert notebook is not None   # read_notebook gives a notebook or a problem
    released = releases(assignment)
    edition = detect(notebook, released)    # as the grader decides it: from the instructions the notebook keeps
    release = released[edition]             # whose locked cells are in that edition's language
    checks = [Check(True, say(edition, "a valid notebook (JSON, nbformat)"))]
    restoration = restore_metadata(notebook, release)
    notebook = restoration.notebook
    checks += metadata_checks(restoration, edition)
    checks += cell_checks(notebook, release, edition)
    if all(c.ok for c in checks):
        # English leaves the edition out: the default, and what a stand-in run_checks(notebook, release) takes.
        checks += run_checks(notebook, release) if edition is Edition.EN else run_checks(notebook, release, edition)
    return Report(assignment, edition, checks)


def check(path: str | os.PathLike[str]) -> tuple[str | None, list[Check]]:
    """(assignment, checks) of one notebook: see `report`."""
    result = report(path)
    return result.assignment, result.checks


def shown(path: str | os.PathLike[str]) -> Path:
    try:
        return Path(path).resolve().relative_to(Path.cwd())
    except ValueError:
        return Path(path)


def main(argv: list[str] | None = None) -> int:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(prog="python -m tools.check_submission", description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to check (default: every work/<id>/<id>.ipynb and work/zh/<id>/<id>.ipynb)")
    args = parser.parse_args(argv)
    paths = args.notebooks or [p for work in WORKSPACES.values()
                               for p in sorted(work.glob("*/*.ipynb")) if p.stem == p.parent.name]
    if not paths:
        print(say(Edition.EN, "check-submission: no notebook to check: run `make lab` first (it creates work/), "
                              "or name one: make check-submission NB=path/to/notebook.ipynb"), file=sys.stderr)
        return 1
    ready = True
    for path in paths:
        if not path.is_file():
            print("\n" + say(edition_of_place(path), "{path}: no such file", path=shown(path)), file=sys.stderr)
            ready = False
            continue
        result = report(path)
        edition = result.edition
        print(f"\n{shown(path)}")
        if result.assignment:
            name = f"{result.assignment}.ipynb"
            print("  " + say(edition, "upload this file: {path}" if path.name == name else
                             "upload this file, named {name}: {path}", name=name, path=shown(path)))
        for c in result.checks:
            print(f"  [{'ok' if c.ok else 'FAIL'}] {c.what}")
            for line in c.detail.splitlines():
                print(f"         {line}")
        ok = all(c.ok for c in result.checks)
        ready &= ok
        print("  " + say(edition, "ready to upload" if ok else "NOT ready: fix what is marked FAIL, then check again "
                         "(a notebook with failing tests can still be handed in: credit is per test cell)"))
    return 0 if ready else 1


if __name__ == "__main__":
    sys.exit(main())
