"""Grade one submission: nbgrader's autograde, in-process, with the notebook executed in the sandbox.

nbgrader does the bookkeeping it is good at: it restores every graded and locked cell from the
gradebook (so edited, re-pointed or faked test cells do not count), clears the submitted outputs,
and scores each graded cell from its outputs. The one step that runs student code, nbgrader's Execute
preprocessor, is replaced by SandboxExecute, which runs the notebook in autograder/sandbox.py with the
hidden parts of its tests stripped; once it has run, the grader's own process runs every test cell
(autograder/verdicts.py) and then the assignment's diagnostics (autograder/diagnose.py), both calling
the student's code in the kernel through proxies, and the verdicts become the test cells' outputs
before nbgrader scores them. What the kernel prints from then on goes to WORKDIR/kernel-output.txt, for
the instructor only. Canary cells that must fail, and a scan of the student's own cells, name a kernel
that was tampered with or suspicious code: flags for a person (flags.csv), never a score. (An assignment
whose source notebook does not ask for verdicts in the grader keeps its tests in the kernel; there a
tampered canary scores 0.) The diagnostics name each failed component's misconception on its cells and
feed the feedback page; they never change a score.

Before nbgrader sees a submission, repair.py mends honest accidents (copied cells, changed cell types,
old formats, nbgrader metadata an editor removed); released cells it cannot find are flagged. Returns a
SubmissionResult (autograder/model.py); the student's feedback page is written to WORKDIR/feedback.html.
"""
import os
import secrets
import shutil
import threading
import warnings
from dataclasses import dataclass, field
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import nbformat
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbformat import NotebookNode
from nbgrader.api import Gradebook
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, IgnorePattern, LimitOutput,
                                    NbGraderPreprocessor, SaveAutoGrades)
from traitlets import Bool, Float, Unicode
from traitlets.config import Config

from autograder import agent, course, diagnose, feedback, verdicts
from autograder.collect import read_notebook
from autograder.diagnose import Facts
from autograder.model import Job, Limits, Status, SubmissionResult, score_cells, zero_cells
from autograder.canary import new_canary
from autograder.remote import Remote
from autograder.repair import repair
from autograder.scan import scan_notebook
from autograder.sandbox import NotebookTimeout, SandboxError, SandboxFailure, run_notebook
from autograder.editions import say
from autograder.verdicts import Verdict

# nbgrader 0.9's gradebook code triggers SQLAlchemy's "not in session" warnings on every autograde.
warnings.filterwarnings("ignore", message=".*not in session.*")

STUDENT = "student"  # the id nbgrader sees; the real id (any characters) stays with the pipeline
CANARY_TAG = "autograder-canary"
KERNEL_OUTPUT = "kernel-output.txt"   # in the job's folder: what the kernel printed while it answered the grader


@dataclass
class Execution:
    """What the notebook's run gives the rest of a job, in one record (nbgrader's autograde, which runs
    SandboxExecute, returns only success and a log): filled by SandboxExecute, read once by grade_submission."""
    failure: SandboxError | None = None   # what stopped the run (nbgrader swallows exceptions into its log)
    in_grader: bool = False                # the tests ran in the grader's process (verdicts.in_grader)
    verdicts: dict[str, Verdict] = field(default_factory=dict)   # {grade_id: Verdict} of those tests
    diagnoses: dict[str, Facts] = field(default_factory=dict)    # {solution cell: Facts} of the diagnostics
    noticed: list[str] = field(default_factory=list)   # what the grader noticed while it asked the kernel
    tampering: list[str] = field(default_factory=list)   # what the canary cells found, sorted


class SandboxExecute(NbGraderPreprocessor):  # type: ignore[misc]  # nbgrader has no type information
    """nbgrader's Execute step, run in the sandbox, with a canary cell after every block of tests."""

    workdir = Unicode("").tag(config=True)
    timeout = Float(Limits.notebook).tag(config=True)    # seconds for the whole notebook (Limits.notebook)
    cell_timeout = Float(Limits.cell).tag(config=True)   # seconds for one cell (Limits.cell)
    sandbox = Bool(True).tag(config=True)         # run the kernel in bubblewrap
    fresh_kernels = Bool(False).tag(config=True)  # a new kernel process, not one the worker's zygote forks
    nonce = Unicode("").tag(config=True)          # names the dict where the kernel keeps the student's bindings
    source = Unicode("").tag(config=True)         # the assignment's source notebook (its tests, trusted)
    secret = Unicode("").tag(config=True)         # the course's secret, mixed into the tests' seeds
    runs: dict[str, Execution] = {}   # workdir -> the Execution of its job (one job per workdir at a time)

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]) -> tuple[NotebookNode, dict[str, Any]]:
        canary = new_canary()   # names, shapes and values of its own, drawn for this run
        source = nbformat.read(self.source, as_version=4)
        in_grader = verdicts.in_grader(source)
        run = SandboxExecute.runs[self.workdir] = Execution(in_grader=in_grader)
        names = verdicts.solution_cells(source) if in_grader else {}
        kept_key = f"_autograder_kept_{self.nonce}"
        probed = nbformat.from_dict(nb)
        probed.cells = []
        sent: dict[int, NotebookNode] = {}   # index in nb.cells -> the copy the kernel ran (tests without their hidden parts)
        pending: list[str] = []   # solution cells whose bindings are kept right before the next test (after any cell
        #                the student added in between, as the tests would have found them)

        def keep_pending() -> None:
            for name in pending:
                probed.cells.append(nbformat.v4.new_code_cell(agent.keep_cell(names[name], name, kept_key)))
            pending.clear()
        for index, (cell, following) in enumerate(zip(nb.cells, nb.cells[1:] + [None])):
            if in_grader and cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("grade"):
                keep_pending()
                sent[index] = nbformat.from_dict(cell)
                sent[index].source = verdicts.strip_hidden(cell.source)
                probed.cells.append(sent[index])
            else:
                probed.cells.append(cell)
            name = cell.metadata.get("nbgrader", {}).get("grade_id") if _is_solution(cell) else None
            if in_grader and name in names:   # what the grader's tests will call
                pending.append(name)
            if _ends_a_block_of_tests(cell, following):
                probe = nbformat.v4.new_code_cell(canary.source)
                probe.metadata[CANARY_TAG] = True
                probed.cells.append(probe)
        keep_pending()
        folder = Path(self.source).parent
        edition = course.edition(folder.parent.parent)   # the course's: source/<assignment>/ in it

        # the diagnostics' own time is added to the notebook's (at most a cell's): they never make a student's
        # notebook late
        extra = Limits(self.timeout, self.cell_timeout).diagnostics if diagnose.checks(folder) else 0

        owners = course.assignment_components(folder.parent.parent, folder.name)   # {test cell: its component}

        def serve(remote: Remote) -> None:   # in the grader's process, once the notebook has run: the tests, then the diagnostics
            try:
                run.verdicts.update(verdicts.run_tests(source, remote, nb, self.secret, edition=edition))
                # only a failed test cell shows its component's diagnosis (feedback, misconceptions.csv, the report):
                # the components whose test cells all passed are not diagnosed
                failed = {component for grade_id, component in owners.items()
                          if grade_id not in run.verdicts or not run.verdicts[grade_id].passed}
                run.diagnoses.update(diagnose.run(folder, remote, names, nb, only=failed, seconds=extra))
            finally:
                run.noticed.extend(dict.fromkeys(remote.flags))
        try:
            executed = run_notebook(probed, Path(self.workdir) / "sandbox", self.timeout + extra,
                                    self.cell_timeout, sandbox=self.sandbox, kept_key=kept_key,
                                    fresh_kernels=self.fresh_kernels,
                                    serve=serve if in_grader else None,
                                    serve_output=Path(self.workdir) / KERNEL_OUTPUT, edition=edition)
        except SandboxError as error:
            run.failure = error
            raise
        for index, copy in sent.items():   # the grader's verdict, shown under what the kernel printed
            cell = nb.cells[index]
            cell.outputs = [_not_a_failure(o) for o in copy.outputs if o.get("output_type") != "error"]
            cell.execution_count = copy.get("execution_count")
            verdict = run.verdicts.get(cell.metadata["nbgrader"]["grade_id"])
            if verdict is None or not verdict.passed:
                ename, evalue = (verdict.error_type, verdict.message) if verdict else \
                    ("NotGraded", say(edition, "the grader's tests of this cell did not run"))
                cell.outputs.append(nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[]))
        tampering: set[str] = set()
        for probe in (c for c in executed.cells if CANARY_TAG in c.metadata):
            tampering.update(canary.verdict(probe) or [])   # None: not reached (the kernel died or stopped)
        run.tampering = sorted(tampering)
        # nb's cells are the ones the kernel ran (the tests' copies aside, whose outputs were moved back above)
        return nb, resources


def _not_a_failure(output: NotebookNode) -> NotebookNode:
    """What the kernel wrote to stderr in a graded cell (a UserWarning of torch's, say), shown as ordinary output:
    nbgrader scores a cell with any stderr output 0, and there the grader's verdict alone decides."""
    if output.get("output_type") == "stream" and output.get("name") == "stderr":
        shown: NotebookNode = nbformat.v4.new_output("stream", name="stdout", text=output.get("text", ""))
        return shown
    return output


def _is_solution(cell: NotebookNode) -> bool:
    return cell.cell_type == "code" and bool(cell.metadata.get("nbgrader", {}).get("solution"))


def _ends_a_block_of_tests(cell: NotebookNode, following: NotebookNode | None) -> bool:
    """A graded cell not followed by another: the end of a run of tests, before anything the student
    wrote can run again (a cell the student adds between tests ends a run too)."""
    def graded(c: NotebookNode | None) -> bool:
        return c is not None and c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")
    return graded(cell) and not graded(following)


def _release(course_dir: str | os.PathLike[str], assignment: str) -> NotebookNode:
    release: NotebookNode = nbformat.read(course.release_notebook(course_dir, assignment), as_version=4)
    return release


def grade_submission(job: Job) -> SubmissionResult:
    """Grade `job.notebook` in `job.workdir` against the scratch course; returns a SubmissionResult.

    Raises NotebookTimeout (the student's error), or SandboxFailure / GradingError (the grader's).
    """
    course_dir, workdir, assignment = Path(job.course), Path(job.workdir), job.assignment
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / course.SOURCE).symlink_to(course_dir / course.SOURCE)
    shutil.copy(course.gradebook_path(course_dir), course.gradebook_path(workdir))
    submitted = course.submitted_folder(workdir, STUDENT, assignment)
    submitted.mkdir(parents=True)
    release = _release(course_dir, assignment)
    notebook, reason = read_notebook(Path(job.notebook), job.file_id)
    if notebook is None:
        raise GradingError(f"the notebook could not be read again: {reason}")
    repaired = repair(notebook, release)
    nbformat.write(repaired.notebook, submitted / f"{assignment}.ipynb")

    config = Config()
    config.SandboxExecute.workdir = str(workdir)
    config.SandboxExecute.timeout = float(job.limits.notebook)
    config.SandboxExecute.cell_timeout = float(job.limits.cell)
    config.SandboxExecute.sandbox = bool(job.sandbox)
    config.SandboxExecute.fresh_kernels = bool(job.fresh_kernels)
    config.SandboxExecute.nonce = secrets.token_hex(8)
    config.SandboxExecute.source = str(course.source_notebook(course_dir, assignment))
    config.SandboxExecute.secret = job.secret
    config.Autograde.autograde_preprocessors = [SandboxExecute, IgnorePattern, ClearMetadataPreprocessor,
                                                LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
    try:
        result = course.nbgrader_api(workdir, config).autograde(assignment, STUDENT)
    finally:
        run = SandboxExecute.runs.pop(str(workdir), None)
    if run is not None and run.failure is not None:
        raise run.failure
    if not result["success"]:
        raise GradingError(_reason(result))

    graded = nbformat.read(course.autograded_notebook(workdir, STUDENT, assignment), as_version=4)
    with Gradebook(course.gradebook_url(workdir)) as gradebook:
        submission = gradebook.find_submission_notebook(assignment, assignment, STUDENT)
        earned = {grade.name: float(grade.score) for grade in submission.grades}
    findings = scan_notebook(graded, release)
    introspects = any(f.introspects for f in findings)
    messages = feedback.messages(graded, course_dir, assignment, introspects)
    if run is None:
        raise GradingError("the notebook's run left no record")
    tampered = run.tampering
    if run.in_grader:   # the verdicts did not run where the student's code runs: a canary is a signal, not a 0
        flags_only, tampered = tampered, []
    else:
        flags_only = []
    diagnoses = {} if tampered or introspects else run.diagnoses
    owners = course.assignment_components(course_dir, assignment)   # {graded cell: the solution cell it tests}
    cells = score_cells(course.graded_cells(course_dir, assignment), earned, messages, tampered=bool(tampered),
                        misconceptions={gid: diagnoses[c].misconception for gid, c in owners.items() if c in diagnoses},
                        errors=feedback.error_names(graded))
    flags = [f"tampering detected, scored 0: {reason}" for reason in tampered] + \
        [f"tampering detected (the kernel was tampered with; the grader's own tests decided the score): {reason}"
         for reason in flags_only] + \
        [str(f) for f in findings] + [f"tampering detected (the grader's own tests decided the score): {reason}"
                                      for reason in run.noticed]
    flags += [unmatched_flag(repaired.unmatched)] if repaired.unmatched else []
    scores = {c.grade_id: (c.score, c.max_score) for c in cells}
    feedback.write_html(graded, course_dir, assignment, scores, {c.grade_id: c.message for c in cells},
                        workdir / "feedback.html", introspects, diagnoses)
    return SubmissionResult(job.student_id, job.assignment, Status.GRADED, cells, flags=tuple(job.flags) + tuple(flags),
                            fingerprint=job.fingerprint, sandboxed=job.sandbox)


def unmatched_flag(grade_ids: Iterable[str]) -> str:
    """The flag of a notebook in which cells of the release were not found, by metadata or by matching."""
    return (f"cells of the release not found in the notebook (deleted, or their nbgrader metadata removed and the "
            f"cell not recognised; a test cell not found scores 0): {', '.join(grade_ids)}")


class GradingError(Exception):
    """nbgrader could not grade the notebook: a failure of the grader, not a grade."""


def _reason(result: dict[str, Any]) -> str:
    """A person's reason from nbgrader's log of a failed autograde."""
    text = str(result.get("error") or "") + "\n" + str(result.get("log") or "")
    lines = [line for line in text.splitlines() if line.strip()]
    return "nbgrader could not grade this notebook: " + (lines[-1][:300] if lines else "no reason given")


def grade_job(job: Job) -> SubmissionResult:
    """Grade one Job in a worker; returns its SubmissionResult and never raises.

    A grade (or a student's error) is written atomically to job.result, so that an interrupted batch
    resumes where it stopped; a failure of the grader is returned but never written: it is graded
    again next time. The feedback page goes to job.feedback.
    """
    Path(job.feedback).unlink(missing_ok=True)  # never leave the page (or the kernel's output) of an earlier grading
    if job.kernel_output:
        Path(job.kernel_output).unlink(missing_ok=True)
    workdir = Path(job.workdir)
    shutil.rmtree(workdir, ignore_errors=True)  # a half-done attempt of a killed batch
    try:
        result = grade_submission(job)
        Path(job.feedback).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(workdir / "feedback.html", job.feedback)
        if job.kernel_output:
            _keep_kernel_output(workdir / KERNEL_OUTPUT, Path(job.kernel_output))
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


def _keep_kernel_output(found: Path, kept: Path) -> None:
    """What the kernel printed while it answered the grader, for the instructor (a regrade request): kept
    when there is any, away from the student's feedback."""
    if found.is_file() and found.stat().st_size:
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(found, kept)


def _failed(job: Job, status: Status, reason: str) -> SubmissionResult:
    """A result without grades: zeros for a student's error, no cells at all when not graded."""
    cells = zero_cells(course.graded_cells(job.course, job.assignment)) if status is Status.STUDENT_ERROR else ()
    flags = tuple(job.flags)
    if status is not Status.NOT_GRADED:  # the scan needs no execution: it stands even when the run failed
        try:
            notebook, _ = read_notebook(Path(job.notebook), job.file_id)
            # repaired first, as when graded: a notebook that lost its nbgrader metadata (Colab) would else
            # have its test cells taken for the student's own
            release = _release(job.course, job.assignment)
            if notebook is not None:
                flags += tuple(str(f) for f in scan_notebook(repair(notebook, release).notebook, release))
        except Exception:
            pass
    return SubmissionResult(job.student_id, job.assignment, status, cells, reason=reason, flags=flags,
                            fingerprint=job.fingerprint, sandboxed=job.sandbox)


def write_result(result: SubmissionResult, path: str | os.PathLike[str]) -> None:
    """Write `result` to `path` atomically: a reader finds the whole file or none."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
    partial.write_text(result.to_json(), encoding="utf-8")
    partial.replace(path)
