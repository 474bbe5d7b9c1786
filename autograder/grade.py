"""Grade one submission: nbgrader's autograde, in-process, with the notebook executed in the sandbox.

nbgrader does the bookkeeping it is good at: it restores every graded and locked cell from the
gradebook (so edited, re-pointed or faked test cells do not count), clears the submitted outputs,
re-inserts the hidden tests, and scores each graded cell from its outputs. The one step that runs
student code, nbgrader's Execute preprocessor, is replaced by SandboxExecute, which runs the notebook
in autograder/sandbox.py. Around it, canary cells that must fail detect a kernel that was tampered
with (patched torch comparisons or builtins, swallowed exceptions): such a submission scores 0 and is
flagged. A scan of the student's own cells names suspicious code (flagged, score unchanged). Both go
to flags.csv for a person to look at.

Before nbgrader sees a submission, repair.py mends honest accidents (copied cells, changed cell types,
old formats). Returns a SubmissionResult (autograder/model.py); the student's feedback page is written
to WORKDIR/feedback.html.
"""
import json
import os
import re
import shutil
import threading
import warnings
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.api import Gradebook
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, IgnorePattern, LimitOutput,
                                    NbGraderPreprocessor, SaveAutoGrades)
from traitlets import Bool, Float, Unicode
from traitlets.config import Config

from autograder import course, feedback
from autograder.collect import read_notebook
from autograder.model import Status, SubmissionResult, score_cells, zero_cells
from autograder.repair import repair
from autograder.sandbox import NotebookTimeout, SandboxError, SandboxFailure, run_notebook

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
    timeout = Float(600).tag(config=True)         # seconds for the whole notebook
    cell_timeout = Float(120).tag(config=True)    # seconds for one cell
    sandbox = Bool(True).tag(config=True)         # run the kernel in bubblewrap
    failures = {}  # workdir -> the SandboxError that stopped the run (nbgrader swallows exceptions into its log)

    def preprocess(self, nb, resources):
        probed = nbformat.from_dict(nb)
        probed.cells = []
        for cell, following in zip(nb.cells, nb.cells[1:] + [None]):
            probed.cells.append(cell)
            if _ends_a_block_of_tests(cell, following):
                canary = nbformat.v4.new_code_cell(CANARY_SOURCE)
                canary.metadata[CANARY_TAG] = True
                probed.cells.append(canary)
        try:
            executed = run_notebook(probed, Path(self.workdir) / "sandbox", self.timeout, self.cell_timeout,
                                    sandbox=self.sandbox)
        except SandboxError as error:
            SandboxExecute.failures[self.workdir] = error
            raise
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


def suspicious_code(notebook, release):
    """Reasons to look at the student's own cells: those the released notebook does not lock (which
    cells are locked is read from the release, never from the submission's metadata)."""
    locked = {c.metadata["nbgrader"]["grade_id"] for c in release.cells
              if c.metadata.get("nbgrader", {}).get("locked")}
    found = []
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.cell_type != "code" or grade_id in locked:
            continue
        where = grade_id or "a cell the student added"
        for pattern, what in SUSPICIOUS:
            match = re.search(pattern, cell.source)
            if match:
                found.append(f"{where} {what} ({match.group(0).strip()!r})")
    return found


def _release(course_dir, assignment):
    return nbformat.read(Path(course_dir) / "release" / assignment / f"{assignment}.ipynb", as_version=4)


def grade_submission(job):
    """Grade `job.notebook` in `job.workdir` against the scratch course; returns a SubmissionResult.

    Raises NotebookTimeout (the student's error), or SandboxFailure / GradingError (the grader's).
    """
    course_dir, workdir, assignment = Path(job.course), Path(job.workdir), job.assignment
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "source").symlink_to(course_dir / "source")
    shutil.copy(course_dir / "gradebook.db", workdir / "gradebook.db")
    submitted = workdir / "submitted" / STUDENT / assignment
    submitted.mkdir(parents=True)
    release = _release(course_dir, assignment)
    notebook, reason = read_notebook(Path(job.notebook))
    if notebook is None:
        raise GradingError(f"the notebook could not be read again: {reason}")
    notebook, _ = repair(notebook, release)
    nbformat.write(notebook, submitted / f"{assignment}.ipynb")

    config = Config()
    config.SandboxExecute.workdir = str(workdir)
    config.SandboxExecute.timeout = float(job.timeout)
    config.SandboxExecute.cell_timeout = float(job.cell_timeout)
    config.SandboxExecute.sandbox = bool(job.sandbox)
    config.Autograde.autograde_preprocessors = [SandboxExecute, IgnorePattern, ClearMetadataPreprocessor,
                                                LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
    try:
        result = course.nbgrader_api(workdir, config).autograde(assignment, STUDENT)
    finally:
        failure = SandboxExecute.failures.pop(str(workdir), None)
    if failure is not None:
        raise failure
    if not result["success"]:
        raise GradingError(_reason(result))

    graded = nbformat.read(workdir / "autograded" / STUDENT / assignment / f"{assignment}.ipynb", as_version=4)
    with Gradebook(f"sqlite:///{workdir / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission_notebook(assignment, assignment, STUDENT)
        earned = {grade.name: float(grade.score) for grade in submission.grades}
    messages = feedback.messages(graded, course_dir, assignment)
    tampered = json.loads((workdir / "canaries.json").read_text())
    cells = score_cells(course.graded_cells(course_dir, assignment), earned, messages, tampered=bool(tampered))
    flags = [f"tampering detected, scored 0: {reason}" for reason in tampered]
    flags += suspicious_code(graded, release)
    scores = {c.grade_id: (c.score, c.max_score) for c in cells}
    feedback.write_html(graded, course_dir, assignment, scores, {c.grade_id: c.message for c in cells},
                        workdir / "feedback.html")
    return SubmissionResult(job.student_id, job.assignment, Status.GRADED, cells, flags=tuple(job.flags) + tuple(flags),
                            fingerprint=job.fingerprint, sandboxed=job.sandbox)


class GradingError(Exception):
    """nbgrader could not grade the notebook: a failure of the grader, not a grade."""


def _reason(result):
    """A person's reason from nbgrader's log of a failed autograde."""
    text = str(result.get("error") or "") + "\n" + str(result.get("log") or "")
    lines = [line for line in text.splitlines() if line.strip()]
    return "nbgrader could not grade this notebook: " + (lines[-1][:300] if lines else "no reason given")


# One grading at a time per process: nbgrader keeps state in the process's environment
# (NBGRADER_EXECUTION) and the watchdog is a process-wide alarm, so a Dask worker with several threads
# grades one notebook at a time (start Dask workers with --nthreads 1 and as many --nworkers as cores).
_ONE_AT_A_TIME = threading.Lock()


def grade_job(job):
    """Grade one Job in a worker; returns its SubmissionResult and never raises.

    A grade (or a student's error) is written atomically to job.result, so that an interrupted batch
    resumes where it stopped; a failure of the grader is returned but never written: it is graded
    again next time. The feedback page goes to job.feedback.
    """
    Path(job.feedback).unlink(missing_ok=True)  # never leave the page of an earlier grading
    workdir = Path(job.workdir)
    with _ONE_AT_A_TIME:
        shutil.rmtree(workdir, ignore_errors=True)  # a half-done attempt of a killed batch
        try:
            result = grade_submission(job)
            Path(job.feedback).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(workdir / "feedback.html", job.feedback)
        except NotebookTimeout as error:
            result = _failed(job, Status.STUDENT_ERROR, str(error))
        except (SandboxFailure, GradingError) as error:
            result = _failed(job, Status.NOT_GRADED, str(error))
        except Exception as error:  # one broken submission must not stop the others
            result = _failed(job, Status.NOT_GRADED, f"the grader failed on this notebook: {type(error).__name__}: {error}")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    if result.status is not Status.NOT_GRADED:
        write_result(result, job.result)
    return result


def _failed(job, status, reason):
    """A result without grades: zeros for a student's error, no cells at all when not graded."""
    cells = zero_cells(course.graded_cells(job.course, job.assignment)) if status is Status.STUDENT_ERROR else ()
    flags = tuple(job.flags)
    if status is not Status.NOT_GRADED:  # the scan needs no execution: it stands even when the run failed
        try:
            notebook, _ = read_notebook(Path(job.notebook))
            flags += tuple(suspicious_code(notebook, _release(job.course, job.assignment)))
        except Exception:
            pass
    return SubmissionResult(job.student_id, job.assignment, status, cells, reason=reason, flags=flags,
                            fingerprint=job.fingerprint, sandboxed=job.sandbox)


def write_result(result, path):
    """Write `result` to `path` atomically: a reader finds the whole file or none."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
    partial.write_text(result.to_json(), encoding="utf-8")
    partial.replace(path)
