"""To the LMS: the grades in the CSV layouts that Canvas's and Moodle's gradebook imports read, and each student's
feedback ready to upload, in OUT/lms/ (written when the class has a roster, `--roster`).

    canvas-grades.csv   Canvas's gradebook import (Grades > Import): Student, ID, SIS User ID, SIS Login ID, Section,
                        then one column per assignment titled "<assignment> (<Canvas assignment id>)" (the number from
                        --canvas-assignment; the assignment alone without it), and a second row "Points Possible".
                        Canvas finds each student by ID, SIS User ID or SIS Login ID, and each assignment by the
                        number in parentheses (a title without a number makes a new assignment).
    moodle-grades.csv   Moodle's grade import (Grades > Import > CSV file): Full name, Email address, ID number, then
                        one column per assignment; map "Email address" (or "ID number") to the user's field of that
                        name, and each assignment's column to its grade item.
    feedback/<student_id>_<assignment>.html    each roster student's feedback page, one file to upload
    canvas-feedback-<assignment>.zip    for a Canvas download: each page named as Canvas's download named the graded
                        notebook (<name>_<user id>_<attachment id>_<assignment>-feedback.html), what Canvas's "Upload
                        Submissions" (bulk upload of marked submissions) attaches to that student's submission
    moodle-feedback-<assignment>.zip    for a Moodle download: a folder <Full Name>_<participant>_assignfeedback_file_/
                        per student holding the page, what Moodle's "Upload multiple feedback files in a zip" reads

A score is the one that counts (grades.csv's final_score); a submission that was not graded has an empty cell (an import leaves that grade
as it was), never a 0. Only roster students are exported: a file credited to no roster student is graded under the
LMS's name for it and flagged, and stays out of these files. The zips are the same bytes for the same pages.
"""
from __future__ import annotations

import os
import re
import shutil
import zipfile
from collections.abc import Mapping
from pathlib import Path

from autograder import outputs
from autograder.intake import Intake, Layout
from autograder.model import ClassResults, Status, SubmissionResult
from autograder.report import write_csv
from autograder.roster import Roster

CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
MOODLE_COLUMNS = ("Full name", "Email address", "ID number")
POINTS_POSSIBLE = "Points Possible"
ZIP_TIME = (1980, 1, 1, 0, 0, 0)   # every entry's date: the same pages give the same zip


def _points(x: float) -> str:
    return f"{x:g}"


def canvas_title(assignment: str, canvas_ids: Mapping[str, str]) -> str:
    """The column title of an assignment in canvas-grades.csv: "01_attention (67890)", or "01_attention"."""
    number = canvas_ids.get(assignment)
    return f"{assignment} ({number})" if number else assignment


def _scores(results: ClassResults) -> dict[tuple[str, str], SubmissionResult]:
    return {(r.student_id, r.assignment): r for r in results.submissions}


def _score(result: SubmissionResult | None, results: ClassResults | None = None) -> str:
    """A gradebook's cell: the score that counts (grades.csv's final_score: the instructor's overrides and the late
    penalty applied, autograder/policy.py); empty when it was not graded (or is unknown), so that the import keeps
    what the gradebook holds."""
    if result is None or result.status is Status.NOT_GRADED:
        return ""
    adjusted = results.adjustments.submissions.get((result.student_id, result.assignment)) \
        if results is not None and results.adjustments is not None else None
    if adjusted is not None and adjusted.final_score is not None:
        return _points(adjusted.final_score)
    return _points(result.score)


def canvas_rows(results: ClassResults, roster: Roster, canvas_ids: Mapping[str, str]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of canvas-grades.csv: the points possible, then one row per roster student."""
    assignments = sorted(results.cells)
    scores = _scores(results)
    header = list(CANVAS_COLUMNS) + [canvas_title(a, canvas_ids) for a in assignments]
    rows = [[POINTS_POSSIBLE, "", "", "", ""] + [_points(sum(p for _, p in results.cells[a])) for a in assignments]]
    for s in roster.students:
        rows.append([s.name or s.student_id, s.canvas_id, s.sis_user_id, s.sis_login_id, s.section]
                    + [_score(scores.get((s.student_id, a)), results) for a in assignments])
    return header, rows


def moodle_rows(results: ClassResults, roster: Roster) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of moodle-grades.csv: one row per roster student."""
    assignments = sorted(results.cells)
    scores = _scores(results)
    header = list(MOODLE_COLUMNS) + assignments
    rows = [[s.name or s.student_id, s.email, s.idnumber] + [_score(scores.get((s.student_id, a)), results) for a in assignments]
            for s in roster.students]
    return header, rows


def _safe(text: str) -> str:
    """A file name's part: no slash, backslash or control character."""
    return re.sub(r"[/\\\x00-\x1f\x7f]", "_", text)


def _zip(path: Path, entries: list[tuple[str, Path]]) -> None:
    """A zip of (name in the zip, file) with fixed dates, in name order, written whole or not at all."""
    partial = path.with_name(path.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, source in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, source.read_bytes())
    os.replace(partial, path)


def upload_names(intake: Intake, assignment: str) -> dict[str, str]:
    """{student: the name of their feedback page in the LMS's bulk upload} for the students of an LMS's download."""
    names = {}
    for (student, graded), origin in intake.origins.items():
        if graded != assignment:
            continue
        if intake.layout is Layout.CANVAS and origin.attachment:
            names[student] = f"{origin.prefix}_{assignment}-feedback.html"
        elif intake.layout is Layout.MOODLE:
            names[student] = f"{origin.who}_{origin.lms_id}_assignfeedback_file_/{assignment}-feedback.html"
    return names


OURS = re.compile(r"(canvas-grades|moodle-grades)\.csv|(canvas|moodle)-feedback-.+\.zip")


def write_exports(results: ClassResults, out: str | os.PathLike[str], canvas_ids: Mapping[str, str] | None = None) -> Path | None:
    """Write OUT/lms/ for a class graded with a roster (nothing without one); returns the folder. What an earlier run
    wrote there is replaced."""
    intake = results.intake
    if intake is None or intake.roster is None:
        return None
    out = Path(out)
    folder = out / "lms"
    if folder.is_dir():   # only what this module writes
        shutil.rmtree(folder / "feedback", ignore_errors=True)
        for old in folder.iterdir():
            if old.is_file() and OURS.fullmatch(old.name):
                old.unlink()
    (folder / "feedback").mkdir(parents=True, exist_ok=True)
    write_csv(folder / "canvas-grades.csv", *canvas_rows(results, intake.roster, canvas_ids or {}))
    write_csv(folder / "moodle-grades.csv", *moodle_rows(results, intake.roster))
    on_roster = set(intake.roster.ids)
    for assignment in sorted(results.cells):
        pages = {s: page for s in sorted(on_roster) if (page := outputs.page_path(out, s, assignment)).is_file()}
        for student, page in pages.items():
            shutil.copyfile(page, folder / "feedback" / f"{_safe(student)}_{assignment}.html")
        if intake.layout in (Layout.CANVAS, Layout.MOODLE):
            names = upload_names(intake, assignment)
            entries = [(names[s], page) for s, page in pages.items() if s in names]
            if entries:
                _zip(folder / f"{intake.layout.name.lower()}-feedback-{assignment}.zip", entries)
    return folder
