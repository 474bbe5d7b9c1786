"""The grader's records: a job to grade, a graded cell, a submission's result, and the scoring policy.

Every module passes these frozen dataclasses, never dicts of strings. A result travels between
processes (and Dask workers) pickled, and to OUT/results/ as JSON: `to_json` is its one writer and
`from_json` its one reader. The scoring policy is one pure function, `score_cells`: what the tests give. The
instructor's word on top of it (overrides of a cell's points, late penalties) is applied to the whole class after
every grading by autograder/policy.py, and never stored in a result (ClassResults.adjustments).
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from autograder.intake import Intake
    from autograder.mistakes import Misconception
    from autograder.policy import ClassAdjustments


class Status(Enum):
    GRADED = "graded"                # the notebook ran; its cells have the scores they earned
    STUDENT_ERROR = "student error"  # what was handed in cannot be graded (broken file, timeout): scores 0
    NOT_GRADED = "not graded"        # the grader failed or was stopped: no score, never cached


@dataclass(frozen=True)
class Limits:
    """The time limits of a grading, in seconds: one record from the command line (`--timeout`,
    `--cell-timeout`) to the kernel, the diagnostics and the worker's watchdog."""
    notebook: float = 600.0   # the whole notebook: past it, the submission scores 0 ("timeout")
    cell: float = 120.0       # one cell (a test cell's call of the student's code too): past it, the cell fails
    DIAGNOSTICS: ClassVar[float] = 30.0   # the diagnostics' own time, at most, after the notebook has run
    GRACE: ClassVar[float] = 120.0        # what a worker may spend on a job beyond it (nbgrader, the feedback)

    @property
    def diagnostics(self) -> float:
        """Seconds the diagnostics get, added to the notebook's limit (never more than a cell's)."""
        return min(self.cell, self.DIAGNOSTICS)

    @property
    def worker(self) -> float:
        """Seconds after which the worker grading a job is presumed hung."""
        return self.notebook + self.diagnostics + self.GRACE


@dataclass(frozen=True)
class FileId:
    """Which file a submitted notebook is (its device and inode), so that a later read can check that it
    opened the very file that was checked when the submissions were collected."""
    device: int
    inode: int


@dataclass(frozen=True)
class Job:
    """One submission to grade, with everything a worker needs (it travels to another process)."""
    student_id: str
    assignment: str
    notebook: str          # the submitted .ipynb
    fingerprint: str       # what decides the result: submission, assignment source, grader version, limits
    course: str            # the scratch course's folder
    workdir: str           # a scratch folder of this job's own
    result: str            # OUT/results/<key>.json
    feedback: str          # OUT/feedback/<student>/<assignment>/<assignment>.html
    limits: Limits         # the notebook's, a cell's and the diagnostics' time
    deadline: float        # seconds after which the worker itself is presumed hung (limits.worker)
    sandbox: bool = True   # run the kernel in bubblewrap (a worker that cannot refuses the job)
    flags: tuple[str, ...] = ()      # flags known before grading (e.g. which of several notebooks was picked)
    file_id: FileId | None = None  # the file collect checked (read again only if it is still that file)
    kernel_output: str = ""  # OUT/kernel-output/<student>/<assignment>.txt: the instructor's, never the student's
    fresh_kernels: bool = False  # a new kernel process per notebook, not one forked by the worker's zygote
    secret: str = ""       # the course's secret, mixed into the tests' seeds (autograder/course.py); never in a kernel


class Outcome(Enum):
    """What became of one graded cell: decided where the cell is scored (score_cells), never read back from
    its message."""
    PASSED = "passed"
    FAILED = "failed"                  # the test ran and the student's code lost its points
    NOT_ATTEMPTED = "not attempted"    # the student's code still raises NotImplementedError (the released stub)
    NOT_RUN = "not run"                # the cell never ran (the kernel died or stopped first) or was not graded
    MISSING = "missing"                # the student deleted the test cell
    TAMPERED = "tampered"              # the kernel was tampered with: every cell scores 0
    SUBMISSION_ERROR = "submission error"   # nothing of the submission could be run (broken file, timeout)


# The error a graded cell ended with -> its outcome, when it is not a plain failure
OUTCOME_OF_ERROR = {"NotImplementedError": Outcome.NOT_ATTEMPTED, "NotExecuted": Outcome.NOT_RUN,
                    "NotGraded": Outcome.NOT_RUN}


@dataclass(frozen=True)
class CellResult:
    grade_id: str
    score: float
    max_score: float
    message: str = ""      # why points were lost, in the student's words ("" when passed)
    misconception: str = ""  # the id of the mistake the diagnostics recognised ("" when passed or none)
    outcome: Outcome = field(kw_only=True)   # what became of the cell (never guessed from the message)


@dataclass(frozen=True)
class SubmissionResult:
    student_id: str
    assignment: str
    status: Status
    cells: tuple[CellResult, ...] = ()  # one per graded cell of the assignment (empty when NOT_GRADED)
    reason: str = ""       # for STUDENT_ERROR and NOT_GRADED: what a person should know
    flags: tuple[str, ...] = ()      # reasons for a person to look (graded as usual)
    fingerprint: str = ""  # Job.fingerprint of the run that produced it
    sandboxed: bool = True  # whether student code ran in the sandbox

    @property
    def score(self) -> float:
        return sum(cell.score for cell in self.cells)

    @property
    def max_score(self) -> float:
        return sum(cell.max_score for cell in self.cells)

    def to_json(self) -> str:
        record = {"student_id": self.student_id, "assignment": self.assignment, "status": self.status.value,
                  "cells": [[c.grade_id, c.score, c.max_score, c.message, c.misconception, c.outcome.value]
                            for c in self.cells],
                  "reason": self.reason, "flags": list(self.flags), "fingerprint": self.fingerprint,
                  "sandboxed": self.sandboxed}
        return json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> SubmissionResult:
        """The result written by to_json; raises ValueError for anything else (then: grade again)."""
        try:
            record = json.loads(text)
            cells = tuple(CellResult(str(g), float(s), float(m), str(msg), str(mis), outcome=Outcome(outcome))
                          for g, s, m, msg, mis, outcome in record["cells"])
            return cls(student_id=str(record["student_id"]), assignment=str(record["assignment"]),
                       status=Status(record["status"]), cells=cells, reason=str(record["reason"]),
                       flags=tuple(str(f) for f in record["flags"]), fingerprint=str(record["fingerprint"]),
                       sandboxed=bool(record["sandboxed"]))
        except (KeyError, TypeError, ValueError, RecursionError) as error:
            raise ValueError(f"not a result file: {type(error).__name__}: {error}") from None


def zero_cells(canonical: Iterable[tuple[str, float]], message: str = "") -> tuple[CellResult, ...]:
    """Every graded cell of an assignment at 0 points; `canonical` is [(grade_id, max_score)]."""
    return tuple(CellResult(grade_id, 0.0, points, message, outcome=Outcome.SUBMISSION_ERROR)
                 for grade_id, points in canonical)


MISSING_CELL = "this test cell is missing from the submitted notebook"
TAMPERED = "scored 0: the notebook tampered with the grading environment"


def score_cells(canonical: Iterable[tuple[str, float]], earned: Mapping[str, float], messages: Mapping[str, str],
                tampered: bool = False, misconceptions: Mapping[str, str] | None = None,
                errors: Mapping[str, str] | None = None) -> tuple[CellResult, ...]:
    """The scoring policy, in one place.

    canonical   [(grade_id, max_score)] of the assignment's graded cells, from the course (not the submission)
    earned      {grade_id: score} that nbgrader gave the cells it found in the submission
    messages    {grade_id: message} of the cells that failed
    tampered    the kernel was tampered with: no verdict can be trusted, every cell scores 0
    misconceptions  {grade_id: id of the mistake its component's diagnostics recognised}, kept on failed cells
    errors      {grade_id: the name of the error the cell ended with} (its outcome: OUTCOME_OF_ERROR)

    A cell the student deleted scores 0 (its max_score stays the course's); no cell scores more than
    its max_score or less than 0; the cells come in the course's order.
    """
    cells = []
    for grade_id, points in canonical:
        if tampered:
            cells.append(CellResult(grade_id, 0.0, points, TAMPERED, outcome=Outcome.TAMPERED))
        elif grade_id not in earned:
            cells.append(CellResult(grade_id, 0.0, points, MISSING_CELL, outcome=Outcome.MISSING))
        else:
            score = min(max(float(earned[grade_id]), 0.0), points)
            failed = score < points
            outcome = OUTCOME_OF_ERROR.get((errors or {}).get(grade_id, ""), Outcome.FAILED) if failed else Outcome.PASSED
            cells.append(CellResult(grade_id, score, points, messages.get(grade_id, "") if failed else "",
                                    (misconceptions or {}).get(grade_id, "") if failed else "", outcome=outcome))
    return tuple(cells)


@dataclass(frozen=True)
class Pair:
    """Two submissions of one assignment whose student code is alike (student_a < student_b), as
    autograder/similarity.py finds them."""
    assignment: str
    student_a: str
    student_b: str
    score: float           # min(share_a, share_b), in [0, 1]
    share_a: float         # share of A's fingerprinted code found in B
    share_b: float         # share of B's fingerprinted code found in A
    regions: tuple[tuple[str, str], ...] = ()    # ((code_a, code_b), ...): matching regions, the students' own text


@dataclass
class ClassResults:
    """Every submission's result of one batch, in a stable order (student, then assignment)."""
    submissions: list[SubmissionResult] = field(default_factory=list)
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # (student_id, folder, reason) of folders that are no assignment
    cells: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # assignment -> [(grade_id, max_score)] from the course
    components: dict[str, dict[str, str]] = field(default_factory=dict)  # assignment -> {graded cell: the solution cell it tests}
    misconceptions: dict[str, Misconception] = field(default_factory=dict)  # id -> diagnose.Misconception, of every graded assignment
    similar: list[Pair] = field(default_factory=list)  # possibly copied work
    adjustments: ClassAdjustments | None = None  # the instructor's overrides and deadlines, applied (policy.adjust)
    intake: Intake | None = None  # how SUBMISSIONS was read: its layout, the roster, what matched no student
    removed: list[str] = field(default_factory=list)  # files of OUT (relative) of submissions no longer there: removed

    def sorted(self) -> ClassResults:
        self.submissions.sort(key=lambda r: (r.student_id, r.assignment))
        self.problems.sort()
        return self

    @property
    def not_graded(self) -> list[SubmissionResult]:
        return [r for r in self.submissions if r.status is Status.NOT_GRADED]
