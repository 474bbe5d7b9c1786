"""From and to the LMS, end to end: conftest's small class handed in through Canvas (its download as a zip) and
through Moodle (its download as a folder), graded with a roster by the grader as an instructor runs it, gets the
scores, cell by cell, of the same notebooks in nbgrader's layout (the small class's reference run); roster students
who handed in nothing score 0 with a reason; and OUT/lms/ holds the grades and feedback pages for the LMS. Names,
rosters, zips and the exported columns are checked without grading in tests/test_intake.py."""
import csv
import io
import shutil
import zipfile

import pytest

from tests.conftest import read_csv
from tests.small_class import ASSIGNMENT, FULL_TEXT, Run

A = ASSIGNMENT
ROSTER = ("student_id,name,canvas_id,email\n"
          "honest-0,\"Smith, John\",101,js@uni.edu\n"
          "sdpa-unscaled,Jürgen Müller,102,jm@uni.edu\n"
          "honest-1,Ana de la Cruz,103,ac@uni.edu\n"
          "masked_softmax-inverted_mask,Wei Zhang,104,wz@uni.edu\n"
          "absent,No Body,105,nb@uni.edu\n")
BY_CANVAS = ("honest-0", "sdpa-unscaled")                   # the students of the Canvas download
BY_MOODLE = ("honest-1", "masked_softmax-inverted_mask")    # of the Moodle download


@pytest.fixture(scope="module")
def lms_class(small_class, tmp_path_factory):
    """Two notebooks of the small class downloaded from Canvas (a zip, with a file of no roster student and one of
    nobody), two from Moodle (a folder, one of them in a subfolder), each graded with the roster."""
    root = tmp_path_factory.mktemp("lms")
    notebook = {s: small_class / "submitted" / s / A / f"{A}.ipynb" for s in BY_CANVAS + BY_MOODLE}
    (root / "roster.csv").write_text(ROSTER, encoding="utf-8")
    canvas = root / "course-01-attention submissions.zip"
    with zipfile.ZipFile(canvas, "w") as archive:
        archive.write(notebook["honest-0"], f"smithjohn_101_9001_{A}.ipynb")
        archive.write(notebook["sdpa-unscaled"], f"müllerjürgen_LATE_102_9002_{A}-1.ipynb")
        archive.writestr("strangerx_999_9003_notes.pdf", b"%PDF-1.4")
        archive.writestr("readme.txt", b"from the instructor")
    moodle = root / "COURSE-Attention-77"
    for student, name, inside in [("honest-1", "Ana de la Cruz_55", f"work/{A}.ipynb"),
                                  ("masked_softmax-inverted_mask", "Wei Zhang_56", f"{A}.ipynb")]:
        target = moodle / f"{name}_assignsubmission_file_" / inside
        target.parent.mkdir(parents=True)
        shutil.copy(notebook[student], target)
    runs = {}
    for lms, download, extra in [("canvas", canvas, ["--canvas-assignment", f"{A}=4711"]), ("moodle", moodle, [])]:
        run = Run(download, root / f"out-{lms}", "--roster", str(root / "roster.csv"), *extra, workers=1)
        assert run.wait() == 0, run.stderr
        assert run.leftovers() == ([], [])
        runs[lms] = run
    return {"root": root, "runs": runs, "reference": small_class / "reference"}


def _rows(path, students):
    return sorted(tuple(row.values()) for row in read_csv(path) if row["student_id"] in students)


@pytest.mark.parametrize("lms, students", [("canvas", BY_CANVAS), ("moodle", BY_MOODLE)])
def test_a_download_grades_to_the_scores_of_nbgrader_s_layout(lms_class, lms, students):
    out = lms_class["root"] / f"out-{lms}"
    for name in ("grades.csv", "tests.csv"):
        assert _rows(out / name, students) == _rows(lms_class["reference"] / name, students), name
    assert {r["student_id"]: r["score"] for r in read_csv(out / "grades.csv")}[students[0]] == FULL_TEXT


@pytest.mark.parametrize("lms, students", [("canvas", BY_CANVAS), ("moodle", BY_MOODLE)])
def test_roster_students_who_handed_in_nothing_score_0_with_a_reason(lms_class, lms, students):
    out = lms_class["root"] / f"out-{lms}"
    nothing = sorted({"honest-0", "sdpa-unscaled", "honest-1", "masked_softmax-inverted_mask", "absent"} - set(students))
    grades = {r["student_id"]: r["score"] for r in read_csv(out / "grades.csv")}
    reasons = {r["student_id"]: r["reason"] for r in read_csv(out / "errors.csv")}
    assert all(grades[s] == "0" and reasons[s].startswith("no submission") for s in nothing)
    stderr = lms_class["runs"][lms].stderr
    assert f"{len(nothing)} students of the roster handed in nothing" in stderr and "absent" in stderr, stderr


def test_what_matches_no_student_is_said_and_nothing_is_lost(lms_class):
    out, stderr = lms_class["root"] / "out-canvas", lms_class["runs"]["canvas"].stderr
    reasons = {(r["student_id"], r["assignment"]): r["reason"] for r in read_csv(out / "errors.csv")}
    assert "notes.pdf" in reasons[("strangerx_999", A)] and ("readme.txt", "") in reasons
    assert "strangerx_999_9003_notes.pdf" in stderr and "readme.txt" in stderr and "match no student" in stderr
    flags = {(r["student_id"], r["reason"]) for r in read_csv(out / "flags.csv")}
    assert ("sdpa-unscaled", "Canvas marked it LATE") in flags
    moodle_flags = [r["reason"] for r in read_csv(lms_class["root"] / "out-moodle" / "flags.csv")
                    if r["student_id"] == "honest-1"]
    assert any("one folder too deep" in f for f in moodle_flags)


def test_the_lms_files_hold_the_grades_and_each_student_s_feedback(lms_class):
    out = lms_class["root"] / "out-canvas"
    scores = {r["student_id"]: r["score"] for r in read_csv(out / "grades.csv")}
    canvas = list(csv.reader(io.StringIO((out / "lms" / "canvas-grades.csv").read_text(encoding="utf-8"))))
    assert canvas[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", f"{A} (4711)"]
    assert canvas[1][0] == "Points Possible"
    assert {row[1]: row[5] for row in canvas[2:]} == {"101": scores["honest-0"], "102": scores["sdpa-unscaled"],
                                                      "103": "0", "104": "0", "105": "0"}
    moodle_out = lms_class["root"] / "out-moodle"
    moodle = list(csv.reader(io.StringIO((moodle_out / "lms" / "moodle-grades.csv").read_text(encoding="utf-8"))))
    moodle_scores = {r["student_id"]: r["score"] for r in read_csv(moodle_out / "grades.csv")}
    assert moodle[0] == ["Full name", "Email address", "ID number", A]
    assert {row[1]: row[3] for row in moodle[1:]}["ac@uni.edu"] == moodle_scores["honest-1"] == FULL_TEXT
    for lms, students in [("canvas", BY_CANVAS), ("moodle", BY_MOODLE)]:
        folder = lms_class["root"] / f"out-{lms}"
        for student in students:
            page = (folder / "lms" / "feedback" / f"{student}_{A}.html").read_bytes()
            assert page == (folder / "feedback" / student / A / f"{A}.html").read_bytes()
    with zipfile.ZipFile(out / "lms" / f"canvas-feedback-{A}.zip") as archive:
        assert sorted(archive.namelist()) == [f"müllerjürgen_LATE_102_9002_{A}-feedback.html",
                                              f"smithjohn_101_9001_{A}-feedback.html"]
    with zipfile.ZipFile(moodle_out / "lms" / f"moodle-feedback-{A}.zip") as archive:
        assert sorted(archive.namelist()) == [f"Ana de la Cruz_55_assignfeedback_file_/{A}-feedback.html",
                                              f"Wei Zhang_56_assignfeedback_file_/{A}-feedback.html"]
