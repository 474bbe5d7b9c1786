"""Reading a class as an LMS gives it, without grading (autograder/intake.py, autograder/roster.py): the names Canvas
and Moodle give files, the roster and how files are credited to its students, zips and folders, notebooks one folder
off in nbgrader's layout, and SUBMISSIONS that holds nothing to grade; and the files written for the LMS
(autograder/lms.py) from results made here. The same class graded end to end, from a Canvas zip and a Moodle folder,
is tests/test_lms.py."""
import csv
import io
import os
import re
import shutil
import zipfile

import pytest

from autograder import lms
from autograder.collect import Cause, assignment_named, collect
from autograder.intake import (IntakeError, Layout, NothingToGrade, canvas_name, gather, moodle_name)
from autograder.model import CellResult, ClassResults, Outcome, Status, SubmissionResult
from autograder.roster import RosterError, name_keys, parse_roster
from tests.conftest import ALL_ASSIGNMENTS, REPO, release_path, solution_path

pytestmark = pytest.mark.unit

A = "01_attention"


# --- Canvas's names ---------------------------------------------------------------------------------------------
# (file name, the usual reading: who, user id, attachment id, the student's file name, late), written from Canvas's
# ContentZipper: [sortable name lowercased, only word characters][_LATE]_<user id>_<attachment id>_<display name>
CANVAS = [
    ("alice_12345_67890_01_attention.ipynb", ("alice", "12345", "67890", "01_attention.ipynb", False)),
    ("smithjohn_LATE_12345_67890_01_attention-1.ipynb", ("smithjohn", "12345", "67890", "01_attention-1.ipynb", True)),
    ("smithjohn_12345_67891_01_attention-2.ipynb", ("smithjohn", "12345", "67891", "01_attention-2.ipynb", False)),
    ("müllerjürgen_222_333_01_attention.ipynb", ("müllerjürgen", "222", "333", "01_attention.ipynb", False)),
    ("张伟_8_9_01_attention.ipynb", ("张伟", "8", "9", "01_attention.ipynb", False)),
    ("obrienpat_44_55_01_attention (1).ipynb", ("obrienpat", "44", "55", "01_attention (1).ipynb", False)),
    ("leeann_7_8_My Attention Homework.ipynb", ("leeann", "7", "8", "My Attention Homework.ipynb", False)),
    ("anon_xYz12_67890_01_attention.ipynb", ("", "anon_xYz12", "67890", "01_attention.ipynb", False)),
    ("LATE_anon_xYz12_67890_01_attention.ipynb", ("", "anon_xYz12", "67890", "01_attention.ipynb", True)),
    ("_12345_67890_01_attention.ipynb", ("", "12345", "67890", "01_attention.ipynb", False)),  # a name of no letters
    ("delacruzana_LATE_5_6_attention_final_v2.ipynb", ("delacruzana", "5", "6", "attention_final_v2.ipynb", True)),
]


@pytest.mark.parametrize("filename, expected", CANVAS, ids=[c[0] for c in CANVAS])
def test_canvas_name_read_as_canvas_writes_them(filename, expected):
    first = canvas_name(filename)
    assert (first.who, first.lms_id, first.attachment, first.filename, first.late) == expected
    assert first.kind == "file" and filename.startswith(first.prefix + "_")


def test_a_canvas_name_is_read_as_canvas_reads_it_back_even_where_a_roster_id_would_fit_another_reading(tmp_path):
    """`alice_12345_67890_01_attention.ipynb` could be user 67890 with attachment 01; Canvas reads its first two
    numbers, and so does the grader, even where the roster has a student 67890."""
    name = canvas_name("alice_12345_67890_01_attention.ipynb")
    assert (name.lms_id, name.attachment) == ("12345", "67890")
    roster = parse_roster("student_id,canvas_id\ns-alice,12345\ns-other,67890\n")
    _write(tmp_path / "dl" / "alice_12345_67890_01_attention.ipynb")
    intake = gather(tmp_path / "dl", ALL_ASSIGNMENTS, staging=tmp_path / "s", roster=roster)
    assert [(s.student_id, s.assignment) for s in intake.submissions] == [("s-alice", A)]


@pytest.mark.parametrize("filename, kind", [("smithjohn_12345_text.html", "text"), ("smithjohn_12345_link.html", "link"),
                                            ("smithjohn_LATE_12345_text.html", "text")])
def test_canvas_text_entries_and_urls_are_read_as_no_notebook(filename, kind):
    first = canvas_name(filename)
    assert (first.who, first.lms_id, first.kind, first.late) == ("smithjohn", "12345", kind, "LATE" in filename)


@pytest.mark.parametrize("filename", ["01_attention.ipynb", "alice.ipynb", "alice_01_attention.ipynb", "12345_67890.ipynb",
                                      "readme.txt"])
def test_names_that_canvas_does_not_write_are_not_read_as_canvas(filename):
    assert canvas_name(filename) is None


# --- Moodle's names ---------------------------------------------------------------------------------------------
MOODLE = [  # (name, a folder?, (who, participant, plugin, file name))
    ("Jo Smith_4242_assignsubmission_file_", True, ("Jo Smith", "4242", "file", "")),
    ("Jo Smith_4242_assignsubmission_file", True, ("Jo Smith", "4242", "file", "")),          # Moodle 4.1 and later
    ("Jürgen Müller_17_assignsubmission_file_", True, ("Jürgen Müller", "17", "file", "")),
    ("张 伟_99_assignsubmission_file_", True, ("张 伟", "99", "file", "")),
    ("Ann Lee_5_assignsubmission_onlinetext_", True, ("Ann Lee", "5", "onlinetext", "")),
    ("Team A-Jo Smith_7_assignsubmission_file_", True, ("Team A-Jo Smith", "7", "file", "")),
    ("Participant_1234567_assignsubmission_file_", True, ("Participant", "1234567", "file", "")),   # blind marking
    ("Jo Smith_4242_assignsubmission_file_01_attention.ipynb", False, ("Jo Smith", "4242", "file", "01_attention.ipynb")),
    ("Jo Smith_4242_assignsubmission_file_my_work (2).ipynb", False, ("Jo Smith", "4242", "file", "my_work (2).ipynb")),
]


@pytest.mark.parametrize("name, folder, expected", MOODLE, ids=[m[0] for m in MOODLE])
def test_moodle_names_read_as_moodle_writes_them(name, folder, expected):
    read = moodle_name(name, folder)
    assert (read.who, read.lms_id, read.kind, read.filename) == expected


@pytest.mark.parametrize("name", ["Jo Smith", "Jo Smith_4242", "Jo Smith_x_assignsubmission_file_", "submitted"])
def test_names_that_moodle_does_not_write_are_not_read_as_moodle(name):
    assert moodle_name(name, folder=True) is None


# --- which assignment a file name names -------------------------------------------------------------------------
@pytest.mark.parametrize("name, expected", [
    ("01_attention.ipynb", A), ("01_attention-1.ipynb", A), ("01_attention (2).ipynb", A), ("01-Attention.ipynb", A),
    ("alice_01_attention.ipynb", A), ("02_self_attention.ipynb", "02_self_attention"), ("01attention_v2.ipynb", A),
    ("attention.ipynb", None), ("homework 1.ipynb", None), ("1_attention.ipynb", None)])
def test_the_assignment_a_file_name_names(name, expected):
    assert assignment_named(name, ALL_ASSIGNMENTS) == expected


# --- the roster -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("roster_name, lms_name", [
    ("Smith, John", "smithjohn"), ("John Smith", "smithjohn"), ("John Smith", "John Smith"), ("Smith, John", "John Smith"),
    ("de la Cruz, Ana", "delacruzana"), ("Ana de la Cruz", "delacruzana"), ("Ana de la Cruz", "Ana de la Cruz"),
    ("Müller, Jürgen", "müllerjürgen"), ("Jürgen Müller", "Jürgen Müller"), ("Jürgen Müller", "JÜRGEN MÜLLER"),
    ("O'Brien, Pat", "obrienpat"), ("Pat O'Brien", "Pat OBrien"), ("Zhang, Wei", "Wei Zhang"), ("张伟", "张伟"),
    ("Jean-Luc Picard", "picardjeanluc"), ("Jean-Luc  Picard", "Jean-Luc Picard")])
def test_a_roster_name_meets_the_names_lms_write(roster_name, lms_name):
    roster = parse_roster(f'student_id,name\ns1,"{roster_name}"\ns2,Someone Else\n')
    assert [s.student_id for s in roster.by_name(lms_name)] == ["s1"]


@pytest.mark.parametrize("roster_name, lms_name", [("John Smith", "smithjane"), ("John Smith", "smith"),
                                                   ("Ana de la Cruz", "cruzana")])
def test_other_names_do_not_meet(roster_name, lms_name):
    assert parse_roster(f'student_id,name\ns1,"{roster_name}"\n').by_name(lms_name) == ()


def test_name_keys_are_the_rotations_of_the_words():
    assert name_keys("de la Cruz, Ana") == {"anadelacruz", "delacruzana", "lacruzanade", "cruzanadela"}
    assert name_keys("") == frozenset()


def test_a_roster_is_read_with_every_documented_column():
    roster = parse_roster("\ufeffstudent_id,name,email,canvas_id,sis_user_id,sis_login_id,section,idnumber\r\n"
                          "s1,\"Smith, John\",js@uni.edu,12345,SIS1,jsmith,A,ID1\r\n\r\ns2,,,,,,,\r\n")
    assert roster.ids == ["s1", "s2"]
    first = roster.get("s1")
    assert (first.name, first.email, first.canvas_id, first.sis_user_id, first.sis_login_id, first.section,
            first.idnumber) == ("Smith, John", "js@uni.edu", "12345", "SIS1", "jsmith", "A", "ID1")
    assert roster.by_canvas_id("12345") is first and roster.by_canvas_id("") is None
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    cells = [line.split("|")[1] for line in readme.splitlines() if line.startswith("| `")]
    columns = {word for cell in cells for word in re.findall(r"`([a-z_]+)`", cell)}
    from autograder.roster import COLUMNS
    assert set(COLUMNS) <= columns, "a roster column is not in the README's table"


@pytest.mark.parametrize("text, message", [
    ("", "empty"), ("name,email\nJo,jo@x\n", "no student_id column"),
    ("student_id,canvas id\ns1,5\n", "unknown column 'canvas id'"),
    ("student_id,name,name\ns1,a,b\n", "appears twice"),
    ("student_id\ns1\ns1\n", "student_id 's1' is given twice"),
    ("student_id,canvas_id\ns1,5\ns2,5\n", "canvas_id '5' is given twice"),
    ("student_id,email\ns1,A@x\ns2,a@x\n", "email 'a@x' is given twice"),
    ("student_id,canvas_id\ns1,five\n", "not a number"),
    ("student_id\n../etc\n", "cannot be used"), ("student_id\n.hidden\n", "cannot be used"),
    ("student_id,name\n,Jo\n", "it is empty")])
def test_a_roster_that_cannot_be_used_says_why(text, message):
    with pytest.raises(RosterError, match=re.escape(message)):
        parse_roster(text)


def test_the_command_line_refuses_a_bad_roster_with_its_reason(tmp_path, capsys):
    from autograder import __main__ as cli
    (tmp_path / "submitted").mkdir()
    (tmp_path / "roster.csv").write_text("student_id,canvas id\ns1,5\n", encoding="utf-8")
    with pytest.raises(SystemExit) as stopped:
        cli.main(["grade", str(tmp_path / "submitted"), "--out", str(tmp_path / "out"), "--quiet",
                  "--roster", str(tmp_path / "roster.csv")])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and "unknown column 'canvas id'" in err and "Traceback" not in err


# --- a Canvas download ------------------------------------------------------------------------------------------
def _write(path, source=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    if source is None:
        shutil.copy(solution_path(A), path)
    else:
        path.write_bytes(source if isinstance(source, bytes) else source.read_bytes())


ROSTER = ("student_id,name,canvas_id,email\n"
          "s-smith,\"Smith, John\",12345,js@uni.edu\n"
          "s-muller,Jürgen Müller,,jm@uni.edu\n"      # no canvas_id: found by name
          "s-doe,Jane Doe,444,jd@uni.edu\n"
          "s-absent,Absent Person,999,ap@uni.edu\n")


def _canvas_download(folder):
    _write(folder / "smithjohn_12345_67890_01_attention.ipynb")
    _write(folder / "smithjohn_12345_67891_01_attention-1.ipynb", release_path(A))   # a stub beside the work
    _write(folder / "müllerjürgen_LATE_222_333_01_attention.ipynb")
    _write(folder / "doejane_444_555_homework.ipynb")                       # names no assignment
    (folder / "doejane_444_556_notes.pdf").write_bytes(b"%PDF-1.4")
    _write(folder / "strangerx_888_999_01_attention.ipynb")                 # on no roster
    (folder / "leeann_777_text.html").write_text("<p>my answer</p>")
    (folder / "readme.txt").write_text("from the instructor")               # names no student
    return folder


def _by_student(intake):
    return ({(s.student_id, s.assignment): s for s in intake.submissions},
            {(p.student_id, p.assignment): p for p in intake.problems})


@pytest.mark.parametrize("zipped", [False, True], ids=["folder", "zip"])
def test_a_canvas_download_is_credited_to_the_roster(tmp_path, zipped):
    download = _canvas_download(tmp_path / "submissions")
    if zipped:
        download = _zip_of(download, tmp_path / "submissions.zip")
    roster = parse_roster(ROSTER, "roster.csv")
    intake = gather(download, ALL_ASSIGNMENTS, staging=tmp_path / "staging", roster=roster)
    found, problems = _by_student(intake)
    assert intake.layout is Layout.CANVAS
    assert sorted(found) == [("s-doe", A), ("s-muller", A), ("s-smith", A), ("strangerx_888", A)]
    assert found[("s-smith", A)].notebook.name == "01_attention.ipynb"   # the most work of the two
    assert any("several notebooks" in f for f in found[("s-smith", A)].flags)
    assert any("LATE" in f for f in found[("s-muller", A)].flags)
    assert any("names no assignment" in f for f in found[("s-doe", A)].flags)
    assert any("notes.pdf" in f and "not graded" in f for f in found[("s-doe", A)].flags)
    assert any("matches no student of the roster" in f for f in found[("strangerx_888", A)].flags)
    assert problems[("s-absent", A)].cause is Cause.NO_SUBMISSION and intake.absent == ["s-absent"]
    assert problems[("leeann_777", A)].cause is Cause.NO_NOTEBOOK and "text entry" in problems[("leeann_777", A)].reason
    assert problems[("readme.txt", "")].cause is Cause.NOBODYS
    assert sorted(u.split(":")[0] for u in intake.unmatched) == ["leeann_777_text.html", "readme.txt",
                                                                 "strangerx_888_999_01_attention.ipynb"]
    origin = intake.origins[("s-smith", A)]
    assert (origin.prefix, origin.attachment) == ("smithjohn_12345_67890", "67890")
    graded = found[("s-smith", A)].notebook.read_bytes()
    assert graded == solution_path(A).read_bytes(), "the staged notebook is not the handed-in file"


def test_without_a_roster_the_students_are_the_lms_names(tmp_path):
    intake = gather(_canvas_download(tmp_path / "dl"), ALL_ASSIGNMENTS, staging=tmp_path / "s")
    assert sorted(s.student_id for s in intake.submissions) == ["doejane_444", "müllerjürgen_222", "smithjohn_12345",
                                                                "strangerx_888"]
    assert intake.absent == [] and not any("roster" in f for s in intake.submissions for f in s.flags)


def test_the_issue_s_flat_download_is_graded_not_nothing(tmp_path):
    """Issue 28: `alice_12345_01_attention.ipynb` and two more files in one folder gave "graded 0 of 0"."""
    folder = tmp_path / "flat"
    for name in ("alice_12345_01_attention.ipynb", "bob_23456_01_attention.ipynb", "carol_34567_01_attention.ipynb"):
        _write(folder / name)
    intake = gather(folder, ALL_ASSIGNMENTS, staging=tmp_path / "s")
    assert sorted((s.student_id, s.assignment) for s in intake.submissions) == \
        [("alice_12345", A), ("bob_23456", A), ("carol_34567", A)]


def test_flat_notebooks_named_after_student_and_assignment(tmp_path):
    folder = tmp_path / "flat"
    _write(folder / "alice_01_attention.ipynb")
    _write(folder / "01_attention-bob (1).ipynb")
    _write(folder / "s-smith.ipynb")     # names no assignment: the folder's one assignment, by the roster's id
    (folder / "notes.txt").write_text("no student's")
    roster = parse_roster("student_id,name\nalice,Alice Liddell\ns-bob,Bob\ns-smith,John Smith\n")
    intake = gather(folder, ALL_ASSIGNMENTS, staging=tmp_path / "s", roster=roster)
    found, problems = _by_student(intake)
    assert intake.layout is Layout.FILES
    assert sorted(found) == [("alice", A), ("s-bob", A), ("s-smith", A)]
    assert problems[("notes.txt", "")].cause is Cause.NOBODYS


# --- a Moodle download ------------------------------------------------------------------------------------------
def _moodle_download(folder):
    _write(folder / "Jo Smith_4242_assignsubmission_file_" / "01_attention.ipynb")
    _write(folder / "Zhang Wei_4243_assignsubmission_file" / "work" / "attention.ipynb")   # 4.1's name, a subfolder
    (folder / "Ann Lee_4244_assignsubmission_onlinetext_").mkdir(parents=True)
    (folder / "Ann Lee_4244_assignsubmission_onlinetext_" / "onlinetext.html").write_text("<p>text</p>")
    _write(folder / "Team B-Jürgen Müller_4245_assignsubmission_file_" / "01_attention.ipynb")
    _write(folder / "Wei Zhang_4246_assignsubmission_file_" / "01_attention.ipynb")   # two roster students share it
    (folder / "Jo Smith_4242_assignsubmission_file_" / "link.ipynb").symlink_to(solution_path(A))
    return folder


MOODLE_ROSTER = ("student_id,name,email\nu-jo,Jo Smith,jo@uni.edu\nu-wz1,\"Zhang, Wei\",wz1@uni.edu\n"
                 "u-wz2,Wei Zhang,wz2@uni.edu\nu-ann,Ann Lee,al@uni.edu\nu-jm,Jürgen Müller,jm@uni.edu\n")


@pytest.mark.parametrize("zipped", [False, True], ids=["folder", "zip"])
def test_a_moodle_download_is_credited_to_the_roster_by_name(tmp_path, zipped):
    download = _moodle_download(tmp_path / "moodle")
    if zipped:
        download = _zip_of(download, tmp_path / "moodle.zip")
    intake = gather(download, ALL_ASSIGNMENTS, staging=tmp_path / "s", roster=parse_roster(MOODLE_ROSTER, "r.csv"))
    found, problems = _by_student(intake)
    assert intake.layout is Layout.MOODLE
    # "Zhang Wei" and "Wei Zhang" are one name to the roster, and two students have it: neither file is credited
    assert sorted(found) == [("Wei Zhang_4246", A), ("Zhang Wei_4243", A), ("u-jm", A), ("u-jo", A)]
    assert any("several students of the roster (u-wz1, u-wz2)" in f for f in found[("Zhang Wei_4243", A)].flags)
    assert any("one folder too deep" in f for f in found[("Zhang Wei_4243", A)].flags)
    assert any("link.ipynb" in f and "link" in f for f in found[("u-jo", A)].flags)
    assert problems[("u-ann", A)].cause is Cause.NO_NOTEBOOK and "onlinetext" in problems[("u-ann", A)].reason
    assert {problems[(s, A)].cause for s in ("u-wz1", "u-wz2")} == {Cause.NO_SUBMISSION}
    assert intake.origins[("u-jo", A)].lms_id == "4242"


def test_a_moodle_download_without_folders(tmp_path):
    folder = tmp_path / "moodle"
    _write(folder / "Jo Smith_4242_assignsubmission_file_01_attention.ipynb")
    _write(folder / "Ann Lee_4244_assignsubmission_file_01_attention (1).ipynb")
    intake = gather(folder, ALL_ASSIGNMENTS, staging=tmp_path / "s")
    assert intake.layout is Layout.MOODLE
    assert sorted(s.student_id for s in intake.submissions) == ["Ann Lee_4244", "Jo Smith_4242"]


def test_assignment_names_the_assignment_of_a_download_and_nothing_else(tmp_path):
    folder = tmp_path / "moodle"
    _write(folder / "Jo Smith_4242_assignsubmission_file_" / "homework.ipynb")
    with pytest.raises(NothingToGrade, match="cannot tell which assignment"):
        gather(folder, ALL_ASSIGNMENTS, staging=tmp_path / "s1")
    intake = gather(folder, ALL_ASSIGNMENTS, staging=tmp_path / "s2", assignment="03_multi_head_attention")
    assert [(s.student_id, s.assignment) for s in intake.submissions] == [("Jo Smith_4242", "03_multi_head_attention")]
    nbgrader = tmp_path / "submitted" / "ana" / A
    _write(nbgrader / f"{A}.ipynb")
    with pytest.raises(IntakeError, match="nbgrader's layout"):
        gather(tmp_path / "submitted", ALL_ASSIGNMENTS, staging=tmp_path / "s3", assignment=A)


# --- zips -------------------------------------------------------------------------------------------------------
def _zip_of(folder, path, wrapper=""):
    with zipfile.ZipFile(path, "w") as archive:
        for file in sorted(folder.rglob("*")):
            name = wrapper + str(file.relative_to(folder))
            if file.is_symlink():
                info = zipfile.ZipInfo(name)
                info.external_attr = 0o120777 << 16   # how zip -y stores a link
                archive.writestr(info, os.readlink(file))
            else:   # a file, or a folder (an empty one is kept)
                archive.write(file, name)
    return path


def test_a_zip_is_unpacked_as_regular_files_only(tmp_path):
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.write(solution_path(A), "smithjohn_12345_67890_01_attention.ipynb")
        link = zipfile.ZipInfo("doejane_444_555_01_attention.ipynb")
        link.external_attr = 0o120777 << 16
        archive.writestr(link, f"/proc/self/cwd/solutions/{A}/{A}.ipynb")
        archive.writestr("../outside_1_2_01_attention.ipynb", b"{}")
        windows = zipfile.ZipInfo("leeann_7_8_01_attention.ipynb")   # no Unix file type, as Windows's zips
        archive.writestr(windows, solution_path(A).read_bytes())
        fifo = zipfile.ZipInfo("fifo_9_10_01_attention.ipynb")
        fifo.external_attr = 0o010644 << 16
        archive.writestr(fifo, b"")
        archive.writestr("__MACOSX/._smithjohn_12345_67890_01_attention.ipynb", b"\x00\x05\x16\x07")
    intake = gather(path, ALL_ASSIGNMENTS, staging=tmp_path / "staging")
    found, problems = _by_student(intake)
    assert sorted(found) == [("leeann_7", A), ("smithjohn_12345", A)]
    assert problems[("fifo_9", A)].cause is Cause.NOT_A_FILE
    assert problems[("doejane_444", A)].cause is Cause.LINK and "symbolic link" in problems[("doejane_444", A)].reason
    assert problems[("outside_1", A)].cause is Cause.LINK and "leads out" in problems[("outside_1", A)].reason
    assert not (tmp_path / "outside_1_2_01_attention.ipynb").exists()
    unpacked = [p for p in (tmp_path / "staging" / "unpacked").rglob("*")]
    assert not any(p.is_symlink() for p in unpacked) and not any("MACOSX" in str(p) for p in unpacked)


def test_a_zip_wrapping_one_folder_and_a_zip_of_nbgrader_s_layout(tmp_path):
    canvas = _zip_of(_canvas_download(tmp_path / "dl"), tmp_path / "wrapped.zip", wrapper="course-hw1 submissions/")
    intake = gather(canvas, ALL_ASSIGNMENTS, staging=tmp_path / "s1")
    assert intake.layout is Layout.CANVAS and any("one folder" in note for note in intake.notes)
    (tmp_path / "class" / "ana" / A).mkdir(parents=True)
    _write(tmp_path / "class" / "ana" / A / f"{A}.ipynb")
    (tmp_path / "class" / "bob").mkdir()
    intake = gather(_zip_of(tmp_path / "class", tmp_path / "class.zip", wrapper="submitted/"), ALL_ASSIGNMENTS,
                    staging=tmp_path / "s2")
    found, problems = _by_student(intake)
    assert intake.layout is Layout.NBGRADER and list(found) == [("ana", A)]
    assert problems[("bob", A)].reason == "no submission"


def test_a_file_that_is_not_a_zip_is_an_intake_error(tmp_path):
    (tmp_path / "grades.zip").write_bytes(b"not a zip at all")
    with pytest.raises(IntakeError, match="not a zip"):
        gather(tmp_path / "grades.zip", ALL_ASSIGNMENTS, staging=tmp_path / "s")


# --- nbgrader's layout ------------------------------------------------------------------------------------------
def test_nbgrader_s_layout_is_read_exactly_as_collect_reads_it(tmp_path):
    submitted = tmp_path / "submitted"
    for student, folder, name in [("ana", A, f"{A}.ipynb"), ("bob", A, "renamed (1).ipynb"),
                                  ("bob", "02_self_attention", "02_self_attention.ipynb"), ("cy", "99_other", "x.ipynb")]:
        _write(submitted / student / folder / name, solution_path(A))
    (submitted / "dee").mkdir()
    intake = gather(submitted, ALL_ASSIGNMENTS, staging=tmp_path / "s")
    assert (intake.submissions, intake.problems) == tuple(collect(submitted, ALL_ASSIGNMENTS))
    assert intake.layout is Layout.NBGRADER and not (tmp_path / "s").exists(), "nbgrader's layout is read in place"


def test_a_notebook_one_folder_off_is_found_and_flagged(tmp_path):
    submitted = tmp_path / "submitted"
    _write(submitted / "ana" / A / f"{A}.ipynb")
    _write(submitted / "high" / f"{A}.ipynb")                       # no assignment folder
    _write(submitted / "deep" / A / "sub" / f"{A}.ipynb")           # one folder too deep
    _write(submitted / "deeper" / A / "a" / "b" / f"{A}.ipynb")     # two: not searched
    found, problems = collect(submitted, ALL_ASSIGNMENTS)
    flags = {s.student_id: s.flags for s in found}
    assert sorted(flags) == ["ana", "deep", "high"]
    assert flags["ana"] == () and "one folder too high" in flags["high"][0] and "one folder too deep" in flags["deep"][0]
    assert [(p.student_id, p.cause) for p in problems] == [("deeper", Cause.NO_NOTEBOOK)]
    assert {s.student_id: s.notebook for s in found}["deep"] == submitted / "deep" / A / "sub" / f"{A}.ipynb"


def test_a_lone_notebook_of_a_one_assignment_class_is_that_assignment(tmp_path):
    """`alice/homework.ipynb` beside `bob/01_attention/...`: the class is graded for one assignment: it is hers."""
    submitted = tmp_path / "submitted"
    _write(submitted / "bob" / A / f"{A}.ipynb")
    _write(submitted / "alice" / "homework.ipynb")
    found, problems = collect(submitted, ALL_ASSIGNMENTS)
    assert sorted(s.student_id for s in found) == ["alice", "bob"] and problems == []
    _write(submitted / "bob" / "02_self_attention" / "02_self_attention.ipynb")   # now two: homework.ipynb is neither
    found, problems = collect(submitted, ALL_ASSIGNMENTS)
    assert sorted((p.student_id, p.assignment) for p in problems) == [("alice", A), ("alice", "02_self_attention")]


def test_a_roster_on_nbgrader_s_layout_grades_every_roster_student(tmp_path):
    submitted = tmp_path / "submitted"
    _write(submitted / "ana" / A / f"{A}.ipynb")
    _write(submitted / "stranger" / A / f"{A}.ipynb")
    _write(submitted / "loose.ipynb")
    (submitted / "ana" / "99_not_an_assignment").mkdir()
    roster = parse_roster("student_id\nana\nbob\n", "roster.csv")
    intake = gather(submitted, ALL_ASSIGNMENTS, staging=tmp_path / "s", roster=roster)
    found, problems = _by_student(intake)
    assert found[("ana", A)].flags == () and "no student of the roster" in found[("stranger", A)].flags[0]
    assert problems[("bob", A)].cause is Cause.NO_SUBMISSION and intake.absent == ["bob"]
    assert problems[("loose.ipynb", "")].cause is Cause.NOBODYS
    assert ("bob", "99_not_an_assignment") not in problems, "an unknown assignment is graded for nobody"
    assert [u.split(":")[0] for u in intake.unmatched] == ["stranger/"]


# --- nothing to grade -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", ["empty", "no assignment", "no student", "only a roster"])
def test_submissions_that_yield_nothing_are_an_error_that_says_what_it_holds(tmp_path, make):
    folder = tmp_path / "dl"
    folder.mkdir()
    roster = None
    if make == "no assignment":
        _write(folder / "alice_homework.ipynb")
        _write(folder / "bob_homework.ipynb")
    elif make == "no student":
        (folder / "notes.txt").write_text("x")
    elif make == "only a roster":
        roster = parse_roster("student_id\nana\n")
    with pytest.raises(NothingToGrade) as error:
        gather(folder, ALL_ASSIGNMENTS, staging=tmp_path / "s", roster=roster)
    message = str(error.value)
    assert "nothing to grade" in message and "Expected nbgrader's layout" in message
    assert ("it is empty" in message) == (make in ("empty", "only a roster"))


def test_nothing_to_grade_exits_with_status_2_and_a_clear_message(tmp_path, capsys):
    from autograder import __main__ as cli
    folder = tmp_path / "dl"
    folder.mkdir()
    (folder / "readme.txt").write_text("x")
    status = cli.main(["grade", str(folder), "--out", str(tmp_path / "out"), "--quiet", "--unsafe-no-sandbox"])
    err = capsys.readouterr().err
    assert status == 2 and "nothing to grade" in err and "readme.txt" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "grades.csv").exists()


# --- what goes back to the LMS ----------------------------------------------------------------------------------
def _results(tmp_path, layout_download):
    """ClassResults of a class read from `layout_download` (no grading: every submission gets made-up scores)."""
    intake = gather(layout_download, ALL_ASSIGNMENTS, staging=tmp_path / "s", roster=parse_roster(ROSTER, "r.csv"))
    cells = {A: [("c1", 4.0), ("c2", 6.0)]}
    made_up = {"s-smith": (4.0, 6.0), "s-muller": (0.0, 6.0), "strangerx_888": (4.0, 0.0)}
    submissions = [SubmissionResult(s.student_id, A, Status.GRADED,
                                    (CellResult("c1", made_up.get(s.student_id, (4, 6))[0], 4, outcome=Outcome.PASSED),
                                     CellResult("c2", made_up.get(s.student_id, (4, 6))[1], 6, outcome=Outcome.PASSED)))
                   for s in intake.submissions if s.student_id != "s-doe"]
    submissions.append(SubmissionResult("s-doe", A, Status.NOT_GRADED, reason="a worker died"))
    submissions += [SubmissionResult(p.student_id, A, Status.STUDENT_ERROR, reason=p.reason) for p in intake.problems
                    if p.assignment == A]
    out = tmp_path / "out"
    for r in submissions:
        if r.status is Status.GRADED:
            page = out / "feedback" / r.student_id / A / f"{A}.html"
            page.parent.mkdir(parents=True)
            page.write_text(f"<p>feedback of {r.student_id}</p>", encoding="utf-8")
    return ClassResults(submissions=submissions, cells=cells, intake=intake), out


def _documented_header(name):
    """The header of OUT/lms/<name> as the README documents it (its table row)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith(f"| `OUT/lms/{name}` |"))
    return row.split("|")[2].split("`")[1].split(",")


def test_the_lms_grade_files_have_exactly_the_documented_columns(tmp_path):
    results, out = _results(tmp_path, _canvas_download(tmp_path / "dl"))
    folder = lms.write_exports(results, out, {A: "67890"})
    canvas = list(csv.reader(io.StringIO((folder / "canvas-grades.csv").read_text(encoding="utf-8"))))
    documented = _documented_header("canvas-grades.csv")
    assert documented == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "<assignment> (<Canvas assignment id>)"]
    assert canvas[0] == documented[:5] + [f"{A} (67890)"]
    assert canvas[1] == ["Points Possible", "", "", "", "", "10"]
    rows = {row[0]: row for row in canvas[2:]}
    assert rows["Smith, John"] == ["Smith, John", "12345", "", "", "", "10"]
    assert rows["Jürgen Müller"][5] == "6" and rows["Absent Person"][5] == "0"
    assert rows["Jane Doe"][5] == "", "a submission that was not graded is an empty cell, never a 0"
    assert len(canvas) == 2 + 4, "only roster students are exported"
    moodle = list(csv.reader(io.StringIO((folder / "moodle-grades.csv").read_text(encoding="utf-8"))))
    documented = _documented_header("moodle-grades.csv")
    assert documented == ["Full name", "Email address", "ID number", "<assignment>"]
    assert moodle[0] == documented[:3] + [A]
    assert {row[1]: row[3] for row in moodle[1:]} == {"js@uni.edu": "10", "jm@uni.edu": "6", "jd@uni.edu": "",
                                                      "ap@uni.edu": "0"}
    without_ids = lms.write_exports(results, out)
    assert (without_ids / "canvas-grades.csv").read_text(encoding="utf-8").splitlines()[0].endswith(f",{A}")


def test_each_feedback_page_is_ready_to_upload_by_hand_or_in_the_lms_s_zip(tmp_path):
    results, out = _results(tmp_path, _canvas_download(tmp_path / "dl"))
    folder = lms.write_exports(results, out)
    assert sorted(p.name for p in (folder / "feedback").iterdir()) == [f"s-muller_{A}.html", f"s-smith_{A}.html"]
    with zipfile.ZipFile(folder / f"canvas-feedback-{A}.zip") as archive:
        names = sorted(archive.namelist())
        assert archive.read(f"smithjohn_12345_67890_{A}-feedback.html") == b"<p>feedback of s-smith</p>"
    assert names == [f"müllerjürgen_LATE_222_333_{A}-feedback.html", f"smithjohn_12345_67890_{A}-feedback.html"]
    for name in names:   # what Canvas reads back: the first two numbers are the user and the attachment
        numbers = [part for part in name.split("_") if part.isdigit()][:2]
        origin = next(o for o in results.intake.origins.values() if name.startswith(o.prefix))
        assert numbers == [origin.lms_id, origin.attachment]
    first = (folder / f"canvas-feedback-{A}.zip").read_bytes()
    lms.write_exports(results, out)
    assert (folder / f"canvas-feedback-{A}.zip").read_bytes() == first, "the same pages must give the same zip"


def test_moodle_feedback_zip_uses_moodle_s_folder_names(tmp_path):
    download = tmp_path / "moodle"
    _write(download / "John Smith_4242_assignsubmission_file_" / "01_attention.ipynb")
    results, out = _results(tmp_path, download)
    folder = lms.write_exports(results, out)
    with zipfile.ZipFile(folder / f"moodle-feedback-{A}.zip") as archive:
        assert archive.namelist() == [f"John Smith_4242_assignfeedback_file_/{A}-feedback.html"]
    # Moodle's importer splits the first part at "_" into name, participant, plugin type and name
    info = archive.namelist()[0].split("/")[0].split("_", 4)
    assert info[1:4] == ["4242", "assignfeedback", "file"]


def test_no_roster_no_lms_files(tmp_path):
    assert lms.write_exports(ClassResults(), tmp_path) is None and not (tmp_path / "lms").exists()
