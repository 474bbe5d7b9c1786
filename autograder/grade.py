"""Grade one submission: nbgrader's autograde, in-process, with the notebook executed in the sandbox.

nbgrader does the bookkeeping it is good at: it restores every graded and locked cell from the
gradebook (so edited, re-pointed or faked test cells do not count), clears the submitted outputs,
re-inserts the hidden tests, and scores each graded cell from its outputs. The one step that runs
student code, nbgrader's Execute preprocessor, is replaced by SandboxExecute, which runs the notebook
in autograder/sandbox.py. Around it, canary cells that must fail detect a kernel that was tampered
with (patched torch comparisons or builtins, swallowed exceptions): such a submission scores 0 and is
flagged. A scan of the student's own cells names suspicious code (flagged, score unchanged). Both go
to flags.csv for a person to look at.

Returns {"cells": [[grade_id, score, max_score, message]], "flags": [reason, ...]}; the student's
feedback page is written to WORKDIR/feedback.html.
"""
import json
import re
import shutil
import time
import warnings
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.api import Gradebook
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, IgnorePattern, LimitOutput,
                                    NbGraderPreprocessor, SaveAutoGrades)
from traitlets import Integer, Unicode
from traitlets.config import Config

from autograder import course, feedback
from autograder.sandbox import run_notebook

# nbgrader 0.9's gradebook code triggers SQLAlchemy's "not in session" warnings on every autograde.
warnings.filterwarnings("ignore", message=".*not in session.*")

STUDENT = "student"  # the id nbgrader sees; the real id (any characters) stays with the pipeline
CANARY_TAG = "autograder-canary"

# A canary cell follows every block of graded cells. It checks that known-false comparisons are still false, then
# raises with the list of what was tampered with. If it raises nothing, the kernel swallows exceptions.
CANARY_CHECKS = [
    ("torch.allclose was replaced", "torch.allclose(torch.zeros(3), torch.ones(3))"),
    ("torch.equal was replaced", "torch.equal(torch.zeros(3), torch.ones(3))"),
    ("Tensor comparisons or Tensor.all were replaced", "bool((torch.zeros(3) == torch.ones(3)).all())"),
    ("torch.isnan was replaced", 'not bool(torch.isnan(torch.tensor(float("nan"))).any())'),
    ("torch.isfinite was replaced", 'bool(torch.isfinite(torch.tensor(float("inf"))).all())'),
    ("builtins were replaced", "all([False]) or isinstance(1, str) or abs(-2) != 2 or len([1]) != 1"),
]
CANARY_SOURCE = "\n".join(
    ["import torch as __canary_torch", "__canary_found = []"]
    + [f"try:\n    __canary_ok = {check.replace('torch.', '__canary_torch.')}\nexcept Exception:\n    __canary_ok = True\n"
       f"if __canary_ok:\n    __canary_found.append({reason!r})" for reason, check in CANARY_CHECKS]
    + ["try:\n    __canary_torch.testing.assert_close(__canary_torch.zeros(3), __canary_torch.ones(3))\n"
       "    __canary_found.append('torch.testing.assert_close was replaced')\nexcept AssertionError:\n    pass",
       "raise RuntimeError('autograder canary: ' + '; '.join(__canary_found))"])

SUSPICIOUS = [
    (r"get_ipython|IPython|InteractiveShell", "uses IPython's internals"),
    (r"\.events\.register|pre_run_cell|post_run_cell|post_execute|pre_execute|set_custom_exc", "registers IPython hooks"),
    (r"\bbuiltins\b|__builtins__", "touches builtins"),
    (r"sys\.modules|importlib|__import__", "manipulates imported modules"),
    (r"(torch|Tensor|nn|F|math|np)\.[\w.]+\s*=(?!=)|setattr\(\s*(torch|Tensor|nn|F|math)", "replaces a library function"),
    (r"os\._exit|sys\.exit|\bexit\(|\bquit\(|os\.kill|signal\.", "exits or signals the process"),
    (r"\bctypes\b|\bsubprocess\b|os\.system|os\.popen|\bsocket\b", "reaches outside Python"),
    (r"os\.walk|\bglob\b|os\.listdir|scandir|rglob|open\(|Path\(", "reads or lists files"),
    (r"\bexec\(|\beval\(|compile\(", "executes code from strings"),
    (r"gc\.get_objects|gc\.get_referrers|inspect\.", "inspects the interpreter"),
]


class SandboxExecute(NbGraderPreprocessor):
    """nbgrader's Execute step, run in the sandbox, with a canary cell after every block of tests."""

    workdir = Unicode("").tag(config=True)
    timeout = Integer(600).tag(config=True)        # seconds for the whole notebook
    cell_timeout = Integer(120).tag(config=True)   # seconds for one cell

    def preprocess(self, nb, resources):
        probed = nbformat.from_dict(nb)
        probed.cells = []
        for cell, following in zip(nb.cells, nb.cells[1:] + [None]):
            probed.cells.append(cell)
            if _ends_a_block_of_tests(cell, following):
                canary = nbformat.v4.new_code_cell(CANARY_SOURCE)
                canary.metadata[CANARY_TAG] = True
                probed.cells.append(canary)
        executed = run_notebook(probed, Path(self.workdir) / "sandbox", self.timeout, self.cell_timeout)
        found = set()
        for canary in (c for c in executed.cells if CANARY_TAG in c.metadata):
            if canary.get("execution_count") is None:
                continue  # not reached: the kernel died or the notebook stopped earlier
            errors = [o for o in canary.outputs if o.get("output_type") == "error"]
            if not errors:
                found.add("exceptions are swallowed (a cell that raises shows no error)")
            else:
                message = str(errors[0].get("evalue", ""))
                listed = message.split("autograder canary:", 1)[-1]
                found.update(part.strip() for part in listed.split(";") if part.strip())
        (Path(self.workdir) / "canaries.json").write_text(json.dumps(sorted(found)))
        nb.cells = [c for c in executed.cells if CANARY_TAG not in c.metadata]
        return nb, resources


def _ends_a_block_of_tests(cell, following):
    """A graded cell not followed by another: the end of a run of tests, before anything the student
    wrote can run again (a cell the student adds between tests ends a run too)."""
    def graded(c):
        return c is not None and c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")
    return graded(cell) and not graded(following)


def suspicious_code(notebook):
    """Reasons to look at the student's own (unlocked) cells."""
    found = []
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or meta.get("locked"):
            continue
        where = meta.get("grade_id") or "a cell the student added"
        for pattern, what in SUSPICIOUS:
            match = re.search(pattern, cell.source)
            if match:
                found.append(f"{where} {what} ({match.group(0).strip()!r})")
    return found


def grade_submission(course_dir, workdir, assignment, notebook, timeout=600, cell_timeout=120):
    """Grade `notebook` in `workdir` against the scratch course `course_dir`; see the module's docstring."""
    course_dir, workdir = Path(course_dir), Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "source").symlink_to(course_dir / "source")
    shutil.copy(course_dir / "gradebook.db", workdir / "gradebook.db")
    submitted = workdir / "submitted" / STUDENT / assignment
    submitted.mkdir(parents=True)
    shutil.copy(notebook, submitted / f"{assignment}.ipynb")

    config = Config()
    config.SandboxExecute.workdir = str(workdir)
    config.SandboxExecute.timeout = int(timeout)
    config.SandboxExecute.cell_timeout = int(cell_timeout)
    config.Autograde.autograde_preprocessors = [SandboxExecute, IgnorePattern, ClearMetadataPreprocessor,
                                                LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
    result = course.nbgrader_api(workdir, config).autograde(assignment, STUDENT)
    if not result["success"]:
        raise GradingError(_reason(result))

    graded = nbformat.read(workdir / "autograded" / STUDENT / assignment / f"{assignment}.ipynb", as_version=4)
    with Gradebook(f"sqlite:///{workdir / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission_notebook(assignment, assignment, STUDENT)
        scores = {grade.name: (float(grade.score), float(grade.max_score)) for grade in submission.grades}
    messages = feedback.messages(graded, course_dir, assignment)
    # Every graded cell of the assignment counts, with its points from the course: a test cell that the
    # student deleted scores 0 (its max_score cannot shrink with it).
    canonical = course.graded_cells(course_dir, assignment)
    for grade_id, points in canonical:
        if grade_id not in scores:
            messages[grade_id] = "this test cell is missing from the submitted notebook"
    scores = {grade_id: (min(scores.get(grade_id, (0.0,))[0], points), points) for grade_id, points in canonical}
    tampered = json.loads((workdir / "canaries.json").read_text())
    if tampered:  # no honest code does this: the tests' verdicts cannot be trusted, so they count for nothing
        scores = {grade_id: (0.0, top) for grade_id, (_, top) in scores.items()}
        messages = {grade_id: "scored 0: the notebook tampered with the grading environment" for grade_id in scores}
    cells = [[grade_id, score, top, messages.get(grade_id, "")] for grade_id, (score, top) in scores.items()]
    flags = [f"tampering detected, scored 0: {reason}" for reason in tampered]
    feedback.write_html(graded, course_dir, assignment, scores, messages, workdir / "feedback.html")
    return {"cells": cells, "flags": flags}


class GradingError(Exception):
    pass


def _reason(result):
    """A person's reason from nbgrader's log of a failed autograde."""
    text = str(result.get("error") or "") + "\n" + str(result.get("log") or "")
    for line in reversed(text.splitlines()):
        if "SandboxError" in line or "timeout:" in line or "could not be run" in line:
            return line.split("SandboxError:", 1)[-1].strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return "nbgrader could not grade this notebook: " + (lines[-1][:300] if lines else "no reason given")


def grade_job(job):
    """Grade one job (a dict from pipeline.py) in a worker process; never raises.

    Writes the feedback page to job["feedback"] and the result, atomically, to job["result"], so that
    an interrupted batch resumes where it stopped.
    """
    start = time.perf_counter()
    workdir = Path(job["workdir"])
    shutil.rmtree(workdir, ignore_errors=True)  # a half-done attempt of a killed batch
    try:
        result = grade_submission(job["course"], workdir, job["assignment"], job["notebook"],
                                  job["timeout"], job["cell_timeout"])
        Path(job["feedback"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(workdir / "feedback.html", job["feedback"])
    except Exception as error:  # one broken submission must not stop the others
        from autograder.sandbox import SandboxError
        reason = str(error) if isinstance(error, (SandboxError, GradingError)) else \
            f"the grader failed on this notebook: {type(error).__name__}: {error}"
        result = {"error": reason}
    try:  # the scan needs no execution: it stands even when grading failed
        result["flags"] = result.get("flags", []) + suspicious_code(nbformat.read(job["notebook"], as_version=4))
    except Exception:
        pass
    result.update(student_id=job["student_id"], assignment=job["assignment"], digest=job["digest"],
                  seconds=round(time.perf_counter() - start, 2))
    target = Path(job["result"])
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_text(json.dumps(result))
    partial.replace(target)
    shutil.rmtree(workdir, ignore_errors=True)
    return result
