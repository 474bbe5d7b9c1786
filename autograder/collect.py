"""Find the submissions under SUBMISSIONS/<student_id>/<assignment_id>/ and sort out broken ones.

Returns the jobs to grade and, for every submission that cannot be graded, a reason a person
understands (it goes to errors.csv and scores 0). Nothing here runs student code.
"""
import json
from dataclasses import dataclass
from pathlib import Path

import nbformat

IGNORED_DIRS = {".ipynb_checkpoints", "__pycache__"}


@dataclass(frozen=True)
class Job:
    student_id: str
    assignment: str
    notebook: Path  # the submitted .ipynb


@dataclass(frozen=True)
class Problem:
    student_id: str
    assignment: str
    reason: str


def _visible_dirs(folder):
    return sorted(p for p in folder.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and p.name not in IGNORED_DIRS)


def find_notebook(folder, assignment):
    """The notebook to grade in a student's assignment folder, or (None, reason)."""
    expected = folder / f"{assignment}.ipynb"
    if expected.is_file():
        return expected, None
    candidates = sorted(p for p in folder.glob("*.ipynb") if p.is_file())
    if len(candidates) == 1:  # renamed by a browser or by hand, e.g. "01_attention (1).ipynb"
        return candidates[0], None
    if not candidates:
        return None, f"no notebook: expected {assignment}.ipynb in the submission folder"
    names = ", ".join(p.name for p in candidates)
    return None, f"several notebooks ({names}) and none is named {assignment}.ipynb"


def check_notebook(path):
    """None if `path` is a readable Jupyter notebook, else why not."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return "not a notebook: the file is not UTF-8 text"
    except OSError as error:
        return f"the file cannot be read ({error.strerror})"
    if not text.strip():
        return "the notebook file is empty"
    try:
        content = json.loads(text)
    except json.JSONDecodeError as error:
        return f"not a valid notebook: broken JSON at line {error.lineno}, column {error.colno}"
    if not isinstance(content, dict) or "cells" not in content:
        return "not a valid notebook: the JSON has no list of cells"
    try:
        nbformat.validate(nbformat.reads(text, as_version=4))
    except Exception as error:  # nbformat's validation errors have many types
        first_line = (str(error).strip().splitlines() or [""])[0][:200]
        return f"not a valid notebook: {type(error).__name__}: {first_line}"
    return None


def collect(submissions, known_assignments):
    """Jobs and problems for every student folder under `submissions`.

    An assignment is graded for every student as soon as one student submitted it; a student
    without that folder gets a "no submission" problem (and a score of 0).
    """
    submissions = Path(submissions)
    students = _visible_dirs(submissions)
    submitted = {a.name for s in students for a in _visible_dirs(s)}
    assignments = sorted(submitted & set(known_assignments))
    jobs, problems = [], []
    for student in students:
        for folder in _visible_dirs(student):
            if folder.name not in known_assignments:
                known = ", ".join(sorted(known_assignments))
                problems.append(Problem(student.name, folder.name,
                                        f"unknown assignment (this course has: {known})"))
        for assignment in assignments:
            folder = student / assignment
            if not folder.is_dir():
                problems.append(Problem(student.name, assignment, "no submission"))
                continue
            notebook, reason = find_notebook(folder, assignment)
            reason = reason or check_notebook(notebook)
            if reason:
                problems.append(Problem(student.name, assignment, reason))
            else:
                jobs.append(Job(student.name, assignment, notebook))
    return jobs, problems
