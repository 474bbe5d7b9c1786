"""Grade one submission: nbgrader autograde in a private copy of the scratch course, then read its scores.

Runs in its own process (`python -m autograder.grade JOB.json`, started by pipeline.py), so that a
submission that crashes or hangs the grading code takes down nothing but itself. JOB.json holds
{"course", "workdir", "student_id", "assignment", "notebook"}; the result goes to workdir/result.json:
{"cells": [[grade_id, score, max_score], ...]} or {"error": reason}.
"""
import json
import shutil
import sys
from pathlib import Path

from autograder.course import nbgrader_api

STUDENT = "student"  # the id nbgrader sees; the real id (any characters) stays with the pipeline


def grade_submission(course, workdir, assignment, notebook):
    """[(grade_id, score, max_score)] for `notebook`, graded in `workdir` against `course`."""
    course, workdir = Path(course), Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "source").symlink_to(course / "source")
    shutil.copy(course / "gradebook.db", workdir / "gradebook.db")
    submitted = workdir / "submitted" / STUDENT / assignment
    submitted.mkdir(parents=True)
    shutil.copy(notebook, submitted / f"{assignment}.ipynb")

    result = nbgrader_api(workdir).autograde(assignment, STUDENT)
    if not result["success"]:
        raise RuntimeError(_last_lines(result.get("error") or result.get("log") or "autograde failed"))

    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{workdir / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission_notebook(assignment, assignment, STUDENT)
        return [(grade.name, float(grade.score), float(grade.max_score)) for grade in submission.grades]


def _last_lines(text, n=3):
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return " | ".join(lines[-n:])[:500]


def main(job_file):
    job = json.loads(Path(job_file).read_text())
    result_file = Path(job["workdir"]) / "result.json"
    try:
        cells = grade_submission(job["course"], job["workdir"], job["assignment"], job["notebook"])
        result = {"cells": cells}
    except Exception as error:
        result = {"error": f"the grader failed on this notebook: {type(error).__name__}: {error}"}
    result_file.write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
