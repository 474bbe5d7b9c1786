"""Check a notebook before handing it in, as the grader will (without the hidden tests).

    python -m tools.check_submission [NOTEBOOK ...]      (make check-submission [NB=...])

With no argument, every work/<id>/<id>.ipynb and work/zh/<id>/<id>.ipynb, or the copy beside it that holds the
student's work (below). Each notebook is checked against the release of its edition (notebooks/, or zh/notebooks/ for
a notebook in Chinese: the one whose instructions it keeps, as the grader decides, autograder.editions.detect), and
the check speaks that edition's language (zh/grader.yml).

When the course changed a notebook after the student got it, `make lab` put the new version beside theirs as
<id>.new.ipynb (tools/workspace.py). The check then says which of the copies holds their work (a solution cell that
differs from the stub of the release it came from) and which file to upload, named <id>.ipynb, and checks the copies
that hold work. A notebook is compared with the release it came from, which the workspace keeps (work/.releases/):
a locked cell the course changed since is told apart from one the student edited, and a cell the course added from
one the student deleted.

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
from tools import workspace

REPO = Path(__file__).resolve().parent.parent
RELEASE = workspace.RELEASE
WORK = workspace.WORK
RELEASES = {Edition(e): path for e, path in workspace.RELEASES.items()}      # each edition's released notebooks
WORKSPACES = {Edition(e): path for e, path in workspace.WORKSPACES.items()}  # and where its student works
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
    " (1)", make lab ".new" or ".new-2"), if the release has it; else None."""
    path = Path(path)
    for name in (path.parent.name, re.sub(r"(\.new(-\d+)?)?\s*(\(\d+\))?$", "", path.stem)):
        if release_notebook(name).is_file():
            return name
    return None


def nbgrader_meta(cell: Mapping[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = cell.get("metadata", {}).get("nbgrader", {})
    return meta


def locked_sources(notebook: NotebookNode) -> dict[str, str]:
    """{grade_id: source} of a notebook's locked cells (instructions, set-up code, tests), whitespace aside."""
    return {nbgrader_meta(c)["grade_id"]: c.source.strip() for c in notebook.cells
            if nbgrader_meta(c).get("locked") and nbgrader_meta(c).get("grade_id")}


def given_releases(path: str | os.PathLike[str], assignment: str) -> list[NotebookNode]:
    """The released versions of an assignment that the workspace holding the notebook at `path` was given
    (work/<id>/<id>.ipynb: work/.releases/, tools/workspace.py); none for a notebook elsewhere."""
    found = []
    for kept in workspace.given_versions(Path(path).resolve().parent.parent, assignment):
        notebook, _ = read_notebook(kept)
        if notebook is not None:
            found.append(notebook)
    return found


def origin_of(notebook: NotebookNode, release: NotebookNode, given: list[NotebookNode]) -> NotebookNode:
    """The release a notebook came from: of the release as it is now and the versions its workspace was given,
    the one whose locked cells it departs from least (lacks, or holds with another text); the release as it is now
    on a tie."""
    theirs = locked_sources(notebook)

    def departures(candidate: NotebookNode) -> int:
        return sum(theirs.get(grade_id) != source for grade_id, source in locked_sources(candidate).items())
    best = release
    for candidate in given:
        if departures(candidate) < departures(best):
            best = candidate
    return best


def holds_work(notebook: NotebookNode, origin: NotebookNode) -> bool:
    """Whether the student wrote in a notebook: a solution cell differs from its stub in the release it came from."""
    stubs = {nbgrader_meta(c)["grade_id"]: c.source.strip() for c in origin.cells
             if nbgrader_meta(c).get("solution") and nbgrader_meta(c).get("grade_id")}
    return any(cell.source.strip() != stubs[grade_id] for cell in notebook.cells
               for grade_id in [nbgrader_meta(cell).get("grade_id")] if grade_id in stubs)


def cell_checks(notebook: NotebookNode, release: NotebookNode, edition: Edition = Edition.EN,
                origin: NotebookNode | None = None) -> list[Check]:
    """Step 2: the release's graded and locked cells, present once and unedited. `origin` is the release the
    notebook came from (default: `release`): a cell that the course changed or added since is not the student's
    edit or deletion."""
    origin = release if origin is None else origin
    before = locked_sources(origin)
    in_origin = {nbgrader_meta(c).get("grade_id") for c in origin.cells}
    theirs: dict[str, list[NotebookNode]] = {}
    for cell in notebook.cells:
        grade_id = nbgrader_meta(cell).get("grade_id")
        if grade_id:
            theirs.setdefault(grade_id, []).append(cell)
    missing: list[str] = []
    added: list[str] = []
    edited: list[str] = []
    changed: list[str] = []
    doubled: list[str] = []
    for cell in release.cells:
        meta = nbgrader_meta(cell)
        grade_id = meta.get("grade_id")
        if not grade_id or not (meta.get("grade") or meta.get("locked") or meta.get("solution")):
            continue
        found = theirs.get(grade_id, [])
        if not found:
            (missing if grade_id in in_origin else added).append(grade_id)
        elif len(found) > 1:
            doubled.append(grade_id)
        elif meta.get("locked") and found[0].source.strip() != cell.source.strip():
            (changed if found[0].source.strip() == before.get(grade_id) else edited).append(grade_id)
    checks = []
    if missing:
        checks.append(Check(False, say(edition, "cells missing (deleted, or their metadata lost and the cell not "
                                                "recognised): {cells}", cells=", ".join(missing)),
                            say(edition, "A cell the grader cannot find scores 0. Copy it back from the released "
                                         "notebook (make lab puts a fresh copy beside yours if the course changed it).")))
    if added:
        checks.append(Check(False, say(edition, "cells the course added since your copy: {cells}",
                                       cells=", ".join(added)),
                            say(edition, "A cell the grader cannot find scores 0. Copy your answers into the course's "
                                         "new version of the notebook (make lab puts it beside yours; its name ends "
                                         "in .new.ipynb), or copy these cells from it into yours.")))
    if doubled:
        checks.append(Check(False, say(edition, "cells present twice (copied?): {cells}", cells=", ".join(doubled)),
                            say(edition, "The grader keeps only one of them, and not the one you choose: "
                                         "delete the copies.")))
    if changed:
        checks.append(Check(True, say(edition, "the course changed these cells since your copy; the grader uses the "
                                               "new ones: {cells}", cells=", ".join(changed))))
    if edited:
        checks.append(Check(True, say(edition, "locked cells you edited (the grader puts the original back): {cells}",
                                      cells=", ".join(edited))))
    if not (missing or doubled or added):
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


@dataclass(frozen=True)
class Read:
    """A student's notebook, read as the grader reads it, with the releases it is compared with."""
    notebook: NotebookNode       # with the release's nbgrader metadata where an editor removed it
    edition: Edition             # as the grader decides it: from the instructions the notebook keeps
    release: NotebookNode        # that edition's release as it is now: what the grader uses
    origin: NotebookNode         # the release the notebook came from (an earlier one its workspace kept, or `release`)
    restoration: Restoration


def read(path: Path, assignment: str) -> Read | str:
    """The notebook at `path` as the grader reads it, or why it cannot be read."""
    notebook, problem = read_notebook(path)
    if notebook is None:
        return problem or "unreadable"
    released = releases(assignment)
    edition = detect(notebook, released)
    release = released[edition]             # whose locked cells are in that edition's language
    restoration = restore_metadata(notebook, release)
    origin = origin_of(restoration.notebook, release, given_releases(path, assignment))
    return Read(restoration.notebook, edition, release, origin, restoration)


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
    found = read(path, assignment)
    if isinstance(found, str):
        return Report(assignment, edition, [Check(
            False, say(edition, "the file is not a notebook the grader can read: {problem}", problem=found),
            say(edition, "Open it in JupyterLab, or copy your answers into a fresh copy of the release."))])
    edition, release, notebook = found.edition, found.release, found.notebook
    checks = [Check(True, say(edition, "a valid notebook (JSON, nbformat)"))]
    checks += metadata_checks(found.restoration, edition)
    checks += cell_checks(notebook, release, edition, found.origin)
    if all(c.ok for c in checks):
        # English leaves the edition out: the default, and what a stand-in run_checks(notebook, release) takes.
        checks += run_checks(notebook, release) if edition is Edition.EN else run_checks(notebook, release, edition)
    return Report(assignment, edition, checks)


@dataclass(frozen=True)
class Copy:
    """One of the student's copies of an assignment's notebook in a folder."""
    path: Path
    newer: bool   # a newer version of the course's that make lab put beside theirs (<id>.new.ipynb, <id>.new-2.ipynb)
    work: bool    # holds work of theirs (holds_work); False for a file the grader cannot read


def copies(folder: Path, assignment: str) -> list[Copy]:
    """The student's copies of an assignment's notebook in `folder`: <id>.ipynb, then the newer versions that
    make lab put beside it (tools/workspace.py), oldest first."""
    def newer(path: Path) -> int:   # 0 for <id>.ipynb, 1 for <id>.new.ipynb, n for <id>.new-n.ipynb, -1 otherwise
        if path.name == f"{assignment}.ipynb":
            return 0
        match = re.fullmatch(rf"{re.escape(assignment)}\.new(?:-(\d+))?\.ipynb", path.name)
        return -1 if match is None else int(match.group(1) or 1)
    paths = [folder / f"{assignment}.ipynb", *folder.glob(f"{assignment}.new*.ipynb")]
    found = []
    for path in sorted((p for p in paths if newer(p) >= 0 and p.is_file()), key=newer):
        notebook = read(path, assignment)
        found.append(Copy(path, newer(path) > 0,
                          not isinstance(notebook, str) and holds_work(notebook.notebook, notebook.origin)))
    return found


def to_check(found: list[Copy]) -> list[Path]:
    """Which of a folder's copies to check: those that hold work, else the first."""
    return [c.path for c in found if c.work] or [c.path for c in found[:1]]


def copies_note(found: list[Copy], assignment: str, edition: Edition = Edition.EN) -> str | None:
    """Where there are several copies, which holds the student's work and which to upload; None for one copy."""
    if len(found) < 2:
        return None
    name = f"{assignment}.ipynb"
    work = [c for c in found if c.work]
    if not work:
        return say(edition, "none of {files} holds work of yours yet: work in {latest}, the course's newest version",
                   files=", ".join(c.path.name for c in found), latest=found[-1].path.name)
    if len(work) == 1 and not work[0].newer:
        return say(edition, "your work is in {mine}; beside it, the course's newer version ({newer}) has none of your "
                            "answers: the checks below compare yours with the release it came from",
                   mine=work[0].path.name, newer=", ".join(c.path.name for c in found if c.newer))
    if len(work) == 1:
        return say(edition, "your work is in {work}, not in {name}: upload {work}, renamed {name} (the name the "
                            "grader expects)", work=work[0].path.name, name=name)
    files = ", ".join(c.path.name for c in work)
    if any(not c.newer for c in work):
        return say(edition, "{files} each hold work of yours: upload only one, named {name} (the name the grader "
                            "expects): {name} itself, or the one that has your latest answers, renamed {name}",
                   files=files, name=name)
    return say(edition, "{files} each hold work of yours: upload only one, the one with your latest answers, "
                        "renamed {name}", files=files, name=name)


def workspace_notebooks(work: Path) -> list[Path]:
    """The notebooks to check in a workspace: in each work/<id>/, <id>.ipynb or the copies that hold work."""
    paths = []
    for folder in sorted(p for p in work.glob("*") if p.is_dir() and not p.name.startswith(".")):
        mine = folder / f"{folder.name}.ipynb"
        if assignment_of(mine) != folder.name:   # not an assignment's folder: its <id>.ipynb, if any, says so
            paths += [mine] if mine.is_file() else []
        else:
            paths += to_check(copies(folder, folder.name))
    return paths


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
                        help="notebooks to check (default: every work/<id>/<id>.ipynb and work/zh/<id>/<id>.ipynb, "
                             "or the copies beside it that hold your work)")
    args = parser.parse_args(argv)
    paths = args.notebooks or [p for work in WORKSPACES.values() for p in workspace_notebooks(work)]
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
            found = copies(path.parent, result.assignment)
            note = copies_note(found, result.assignment, edition) \
                if any(c.path.resolve() == path.resolve() for c in found) else None
            if note:
                print("  " + note)
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
