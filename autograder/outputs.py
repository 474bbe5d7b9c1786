"""What a grading run writes in OUT, and where: the one owner of OUT's paths (as course.py owns the scratch course's).

The pipeline writes each submission's files, the report and the LMS export read them, the class hub releases the
pages, and the clean-up of a class that lost a student finds them, all through this module:

    OUT/results/<key>.json                                  the result of a submission (model.SubmissionResult)
    OUT/feedback/<student>/<assignment>/<assignment>.html   its feedback page
    OUT/kernel-output/<student>/<assignment>.txt            what its kernel printed while it answered the grader
    OUT/grades.csv, tests.csv, ... (CLASS_FILES)            the class's files (autograder/report.py)

A student id may hold any character: a result's file is named by a digest of the id and the assignment (`key`), and
the folders named by an id are made by the pipeline only for ids that intake.py accepted as folder names.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

RESULTS, FEEDBACK, KERNEL_OUTPUT = "results", "feedback", "kernel-output"
FOLDERS = (RESULTS, FEEDBACK, KERNEL_OUTPUT)
CLASS_FILES = ("grades.csv", "tests.csv", "errors.csv", "flags.csv", "gradebook.csv", "similarity.csv",
               "misconceptions.csv", "report.html", "timings.log")


def key(student_id: str, assignment: str) -> str:
    """The name (without .json) of the result file of `student_id`'s `assignment`."""
    return hashlib.sha256(f"{student_id}\0{assignment}".encode()).hexdigest()[:24]


def result_path(out: str | os.PathLike[str], student_id: str, assignment: str) -> Path:
    return Path(out) / RESULTS / f"{key(student_id, assignment)}.json"


def page_path(out: str | os.PathLike[str], student_id: str, assignment: str) -> Path:
    """Where the feedback page of a submission lies in OUT."""
    return Path(out) / FEEDBACK / student_id / assignment / f"{assignment}.html"


def kernel_output_path(out: str | os.PathLike[str], student_id: str, assignment: str) -> Path:
    return Path(out) / KERNEL_OUTPUT / student_id / f"{assignment}.txt"


def pages_of(out: str | os.PathLike[str], assignment: str) -> list[Path]:
    """The feedback pages of `assignment` in OUT, one per student, sorted."""
    return sorted((Path(out) / FEEDBACK).glob(f"*/{assignment}/{assignment}.html"))
