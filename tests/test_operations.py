"""Grading operations an instructor relies on: a grade of 0 is only ever the student's; Ctrl-C, SIGTERM and
a killed worker leave no process, no scratch folder and no false grade behind; running again grades
exactly what is missing; regrading after a change of a notebook or of the tests is correct; honest accidents get
the marks of their code; no file stops the class; the Dask recipe of the README works as written.

The end-to-end operations share conftest's small class (tests/small_class.py, graded once per session) and as
few grader runs as each needs; what the cache decides is also proven without a kernel (a recording executor)."""
import copy
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

from autograder.model import Limits, Status
from autograder.outputs import result_path
from tests.conftest import REPO, read_csv, release_path, run_grader, solution_path, with_cell_replaced
from tests.mutants import catalogue
from tests.small_class import (ASSIGNMENT, FULL, FULL_TEXT, Run, children, grades, outputs, processes_mentioning,
                               results_on_disk)

BIN = Path(sys.executable).parent


# --- the small class (conftest's small_class, tests/small_class.py) --------------------------------------------
def test_ctrl_c_stops_cleanly_records_no_false_grade_and_the_rerun_grades_the_rest(small_class):
    """Ctrl-C half-way, then the same command again, during which one of its workers is killed (SIGKILL, while a
    kernel runs under it): the killed worker costs nothing, and every submission, graded again in these two runs,
    gets exactly the rows of the reference (grading is repeatable)."""
    out = small_class / "interrupted"
    run = Run(small_class / "submitted", out)
    run.wait_for_results(1)
    os.killpg(run.process.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends: the whole foreground group
    assert run.wait(60) == 130, run.stderr
    assert "Traceback" not in run.stderr and "Run the same command again" in run.stderr
    assert run.leftovers() == ([], []), "Ctrl-C left processes or files behind"
    done = results_on_disk(out)
    assert 1 <= len(done) < 5, f"{len(done)} of 5 results: the batch should have been stopped half-way"
    assert all(r.status is Status.GRADED for r in done), [r.reason for r in done]
    assert not (out / "grades.csv").exists()

    again = Run(small_class / "submitted", out)
    again.kill_a_worker_with_a_kernel()
    assert again.wait() == 0, again.stderr
    ran = (out / "timings.log").read_text().splitlines()[1:]
    assert len(ran) == 5 - len(done), "the rerun must grade exactly the submissions that were not graded"
    assert outputs(out) == outputs(small_class / "reference")
    assert again.leftovers() == ([], []), "a killed worker left its kernel or files behind"


def test_sigterm_to_the_grader_ends_its_workers_kernels_and_scratch(small_class, tmp_path):
    run = Run(small_class / "submitted", tmp_path / "out")
    run.wait_for_results(1)
    run.process.send_signal(signal.SIGTERM)   # the main process alone, as a service manager would
    assert run.wait(60) == 130, run.stderr
    assert run.leftovers() == ([], []), "SIGTERM left processes or files behind"
    assert all(r.status is Status.GRADED for r in results_on_disk(tmp_path / "out"))


def test_no_bubblewrap_on_a_worker_means_not_graded(small_class):
    """The small class was first graded on a worker that cannot sandbox (tests/small_class.py): nothing graded,
    nothing cached, no score; the grader's next run into the same folder (the reference) graded every one."""
    results = pickle.loads((small_class / "not-graded.pickle").read_bytes())
    assert {r.status for r in results.submissions} == {Status.NOT_GRADED}
    assert all("cannot sandbox" in r.reason and "bwrap is not installed" in r.reason and r.cells == ()
               for r in results.submissions)
    failed = small_class / "not-graded"
    assert not list((failed / "results").glob("*.json")), "a failure of the grader was cached"
    assert set(grades(failed).values()) == {""}, "a submission that was not graded got a score"
    gradebook = read_csv(failed / "gradebook.csv")
    assert {row[f"{ASSIGNMENT} [{FULL_TEXT}]"] for row in gradebook} == {""}
    assert {row[f"Total [{FULL_TEXT}]"] for row in gradebook} == {""}
    errors = read_csv(failed / "errors.csv")
    assert len(errors) == 5 and all(e["reason"].startswith("not graded: ") for e in errors)

    again = small_class / "reference"   # the same command again, with bubblewrap: every submission graded
    assert len(list((again / "results").glob("*.json"))) == 5
    assert "" not in grades(again).values() and read_csv(again / "errors.csv") == []
    assert "" not in {row[f"Total [{FULL_TEXT}]"] for row in read_csv(again / "gradebook.csv")}


def test_the_exit_status_says_how_many_were_not_graded(small_class, tmp_path, capsys):
    """Not graded -> exit 3 with a count; run through main() with a grader whose workers all fail."""
    from autograder import __main__ as cli
    from autograder.model import ClassResults, SubmissionResult as Result

    def failing(*args, **kwargs):
        return ClassResults(submissions=[Result("s", ASSIGNMENT, Status.NOT_GRADED, reason="a worker died")],
                            cells={ASSIGNMENT: [("x", 1.0)]})
    original = cli.grade_class
    cli.grade_class = failing
    try:
        status = cli.main(["grade", str(small_class / "submitted"), "--out", str(tmp_path / "out"), "--quiet"])
    finally:
        cli.grade_class = original
    assert status == 3 and "1 submissions were NOT GRADED" in capsys.readouterr().err
    assert read_csv(tmp_path / "out" / "grades.csv") == [{"student_id": "s", "assignment": ASSIGNMENT,
                                                          "score": "", "max_score": "1", "raw_score": "",
                                                          "late_penalty": "", "final_score": "", "submitted_at": "",
                                                          "deadline": "", "late_by_hours": "", "notes": ""}]


# --- regrading ---------------------------------------------------------------------------------------------
def _course_copy(root):
    """A copy of what the grader needs (its code, its configuration, assignment 01) to change a test in."""
    root.mkdir()
    for name in ("autograder", "nbgrader_config.py", "requirements.txt"):
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, root / name)
    (root / "solutions").mkdir()
    shutil.copytree(REPO / "solutions" / ASSIGNMENT, root / "solutions" / ASSIGNMENT)
    for name in ("zh/grader.yml", f"zh/solutions/{ASSIGNMENT}.md", f"zh/mistakes/{ASSIGNMENT}.yml"):  # its translation
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, root / name)
    return root


def _regraded(out):
    return sorted(line.split("\t")[0] for line in (out / "timings.log").read_text().splitlines()[1:])


def _rows_of(out, student, keep):
    """The rows of the four CSV files whose student is (keep=True) or is not (keep=False) `student`."""
    return [[row for row in rows if (row["student_id"] == student) == keep] for rows in outputs(out)]


def test_regrading_after_a_change_of_a_notebook_tests_points_or_grader_is_correct(small_class, tmp_path):
    """End to end, the cache's two directions: a copy of the course reuses every result graded by the original
    but that of the one notebook a student changed (it is graded again, and alone), and a change of points grades
    every submission again. What else enters the fingerprint (the grader's code, the limits, the secret) and
    --regrade are proven without a kernel: by the next tests, and by unit tests of the digests in
    tests/test_model.py."""
    course = _course_copy(tmp_path / "course")
    submitted, out = tmp_path / "submitted", tmp_path / "out"
    shutil.copytree(small_class / "submitted", submitted)
    shutil.copytree(small_class / "reference", out)   # as if this class had been graded before
    mutant = catalogue()[ASSIGNMENT]["sdpa/unscaled"]   # honest-0 hands in the notebook of student sdpa-unscaled
    nbformat.write(with_cell_replaced(ASSIGNMENT, mutant.cell, mutant.source),
                   submitted / "honest-0" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    same = Run(submitted, out, cwd=course)
    assert same.wait() == 0, same.stderr
    assert _regraded(out) == ["honest-0"], "only the changed notebook is graded again"
    assert _rows_of(out, "honest-0", False) == _rows_of(small_class / "reference", "honest-0", False)
    scores = grades(out)
    assert scores["honest-0"] == scores["sdpa-unscaled"] != FULL_TEXT and scores["honest-1"] == FULL_TEXT
    assert [[{k: v for k, v in row.items() if k != "student_id"} for row in rows]
            for rows in _rows_of(out, "honest-0", True)] == \
        [[{k: v for k, v in row.items() if k != "student_id"} for row in rows]
         for rows in _rows_of(out, "sdpa-unscaled", True)], "one notebook, two students, two different results"

    source = course / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    notebook = nbformat.read(source, as_version=4)
    cell = next(c for c in notebook.cells if "BEGIN HIDDEN TESTS" in c.source)   # a hidden test worth one more point
    points = cell.metadata["nbgrader"]["points"]
    cell.metadata["nbgrader"]["points"] = points + 1
    cell.source = cell.source.replace(f"[{points} point", f"[{points + 1} point", 1)
    nbformat.write(notebook, source)
    changed = Run(submitted, out, cwd=course, workers=1)
    assert changed.wait() == 0, changed.stderr
    assert len(_regraded(out)) == 5, "a change of points must regrade every submission of that assignment"
    assert {r["max_score"] for r in read_csv(out / "grades.csv")} == {f"{FULL + 1:g}"}, "old and new scales mixed"
    assert grades(out)["honest-1"] == f"{FULL + 1:g}"
    assert changed.leftovers() == ([], [])


@pytest.mark.unit
def test_the_command_line_passes_regrade_and_the_limits_to_the_grader(tmp_path):
    """--regrade, --timeout, --cell-timeout and --fresh-kernels reach grade_class as given (the next test shows what
    it does with the first three; tests/test_forked.py with the last)."""
    from autograder import __main__ as cli
    from autograder.model import ClassResults
    calls = []

    def recording(*args, **kwargs):
        calls.append(kwargs)
        return ClassResults(submissions=[], cells={})
    original, sigterm = cli.grade_class, signal.getsignal(signal.SIGTERM)
    cli.grade_class = recording
    (tmp_path / "submitted").mkdir()
    try:
        for extra in ([], ["--regrade", "--timeout", "500", "--cell-timeout", "100", "--fresh-kernels"]):
            assert cli.main(["grade", str(tmp_path / "submitted"), "--out", str(tmp_path / "out"), "--quiet",
                             *extra]) == 0
    finally:
        cli.grade_class = original
        signal.signal(signal.SIGTERM, sigterm)   # main() makes SIGTERM stop as Ctrl-C does: not pytest's
    assert [(c["regrade"], c["limits"], c["fresh_kernels"]) for c in calls] == \
        [(False, Limits(600, 120), False), (True, Limits(500, 100), True)]


class _RecordingExecutor:
    """A concurrent.futures-like executor that records the jobs it is given and grades none of them."""

    def __init__(self, jobs):
        self.jobs = jobs

    def submit(self, in_worker, function, job):
        from concurrent.futures import Future
        self.jobs.append(job)
        future = Future()
        future.set_exception(RuntimeError("this test grades nothing"))
        return future

    def shutdown(self, wait=True, cancel_futures=False):
        pass


@pytest.mark.parametrize("change", ["nothing", "the notebook's limit", "a cell's limit", "the grader's version",
                                    "the course's secret", "--regrade"])
def test_the_cache_grades_again_exactly_what_a_change_would_grade_differently(small_class, tmp_path,
                                                                               monkeypatch, change):
    """What the end-to-end test above does not change, without a kernel: grade_class, on the small class's results,
    hands every submission to its workers after a change of the limits, the grader's version or the secret, and
    with --regrade (regrade=True), and none when nothing changed."""
    from autograder import course, pipeline

    built, cached_course = [], course.cached_course
    monkeypatch.setattr(course, "cached_course",
                        lambda scratch, only, *rest: built.append(set(only)) or cached_course(scratch, only, *rest))
    out = tmp_path / "out"
    shutil.copytree(small_class / "reference", out)
    limits = {"the notebook's limit": {"limits": Limits(notebook=500)}, "a cell's limit": {"limits": Limits(cell=100)},
              "--regrade": {"regrade": True}}.get(change, {})
    if change == "the grader's version":
        monkeypatch.setattr(pipeline, "grader_version", lambda: "another version")
    if change == "the course's secret":
        monkeypatch.setenv("AUTOGRADER_SECRET", "another course")
    jobs = []
    pipeline.grade_class(small_class / "submitted", out, workers=1, progress=False,
                         make_executor=lambda: _RecordingExecutor(jobs), **limits)
    assert len(jobs) == (0 if change == "nothing" else 5), f"{change}: {len(jobs)} of 5 submissions graded again"
    assert built == [{ASSIGNMENT}], f"the course built holds {built}: only the graded assignments"



def test_a_course_built_before_is_copied_and_a_new_key_builds_anew(tmp_path, monkeypatch):
    """course.cached_course: the first build of a key is stored and is what build_course makes; the same key again
    is a copy (nbgrader is not asked); another key (a changed assignment, grader or translation) builds anew.
    Every folder that the build works in is still there when it returns: the grader's worker processes start
    while the course builds (pipeline.PrestartedPool), and each takes the folder the grader works in at that
    moment for its own (a course built in a folder renamed afterwards: "the grader's worker processes could
    not start", in a fresh-clone run)."""
    from autograder import course
    from autograder.editions import Edition
    monkeypatch.setattr(course, "COURSES", tmp_path / "courses")
    worked_in, chdir = [], os.chdir
    monkeypatch.setattr(os, "chdir", lambda path: worked_in.append(Path(path).resolve()) or chdir(path))
    first = course.cached_course(tmp_path / "first", {ASSIGNMENT}, Edition.EN, "k1")
    monkeypatch.setattr(os, "chdir", chdir)
    assert worked_in and all(folder.is_dir() for folder in worked_in), worked_in
    plain = course.build_course(tmp_path / "plain", only={ASSIGNMENT})

    def files(root):
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
                if p.is_file() and p.name != course.GRADEBOOK}
    assert files(first) == files(plain) and files(first)
    assert course.graded_cells(first, ASSIGNMENT) == course.graded_cells(plain, ASSIGNMENT)
    from nbgrader.api import Gradebook   # the cells the grader scores are those nbgrader recorded, with their points
    with Gradebook(course.gradebook_url(first)) as gradebook:
        recorded = [(cell.name, float(cell.max_score)) for notebook in gradebook.find_assignment(ASSIGNMENT).notebooks
                    for cell in notebook.grade_cells]
    assert course.graded_cells(first, ASSIGNMENT) == recorded and recorded
    built = []
    build_course = course.build_course
    monkeypatch.setattr(course, "build_course", lambda *args: built.append(args) or build_course(*args))
    again = course.cached_course(tmp_path / "again", {ASSIGNMENT}, Edition.EN, "k1")
    assert built == [] and files(again) == files(first)
    course.cached_course(tmp_path / "other", {ASSIGNMENT}, Edition.EN, "k2")
    assert len(built) == 1 and sorted(p.name for p in course.COURSES.iterdir()) == ["en-k1", "en-k2"]

# --- the instructor's word: deadlines, extensions, overrides ---------------------------------------------------
def _instructors_files(folder, overrides):
    """A policy (the deadline the night the clocks go forward in Berlin, 10% per started day, an extension) and an
    overrides file, readable by the instructor only."""
    folder.mkdir(exist_ok=True)
    (folder / "policy.yml").write_text(f"""timezone: Europe/Berlin
deadlines:
  {ASSIGNMENT}: 2027-03-28 23:59
penalty: {{rate: 10%, per: day, cap: 50%}}
extensions:
  - {{student: honest-1, assignment: {ASSIGNMENT}, days: 1, reason: "ill: a doctor's note"}}
""")
    (folder / "overrides.csv").write_text("student_id,assignment,grade_id,points,reason\n" + "".join(
        f"{student},{ASSIGNMENT},{cell},{points},{reason}\n" for student, cell, points, reason in overrides))
    for name in ("policy.yml", "overrides.csv"):
        os.chmod(folder / name, 0o600)
    return ["--policy", str(folder / "policy.yml"), "--overrides", str(folder / "overrides.csv")]


def _page(out, student):
    return (out / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text(encoding="utf-8")


def test_a_late_submission_an_extension_and_an_override_show_with_their_reasons_and_survive_a_regrade(small_class,
                                                                                                     tmp_path):
    """Issue 28's "done when", on the small class graded before (every result cached): nbgrader's timestamps
    make honest-0 late by 31 minutes (a deadline at 23:59 the night Berlin's clocks go forward: 22:30 UTC is past
    it), honest-1 late but within the day of its extension, and the notebook of one student without a timestamp
    of unknown time (flagged, not penalised); an override gives sdpa-unscaled the points of a cell it lost, another
    names a cell that does not exist. All of it shows, with its reasons, in grades.csv, tests.csv, flags.csv,
    report.html and the feedback pages, applied to the cached results; grading those three submissions again
    writes the same again (their results and pages are the workers' anew); the override taken back gives the page
    the worker wrote; OUT is the instructor's only."""
    import html
    submitted, out = tmp_path / "submitted", tmp_path / "out"
    shutil.copytree(small_class / "submitted", submitted)
    shutil.copytree(small_class / "reference", out)   # graded before: every result is reused
    stamps = {"honest-0": "2027-03-28 22:30:00.000000 UTC", "honest-1": "2027-03-29 08:00:00.000000 CEST",
              "honest-2": "2027-03-28 23:58:00.000000 CEST", "sdpa-unscaled": "2027-03-28 21:00:00.000000 UTC"}
    for student, stamp in stamps.items():   # masked_softmax-inverted_mask has none
        (submitted / student / ASSIGNMENT / "timestamp.txt").write_text(stamp)
    lost = next(r for r in read_csv(small_class / "reference" / "tests.csv")
                if r["student_id"] == "sdpa-unscaled" and float(r["score"]) < float(r["max_score"]))
    reason = "regrade request: the scaling is explained in words"
    files = _instructors_files(tmp_path / "instructor", [("sdpa-unscaled", lost["grade_id"], lost["max_score"], reason),
                                                         ("honest-2", "no_such_cell", "1", "a cell of last year")])
    first = Run(submitted, out, *files)
    assert first.wait() == 0, first.stderr
    assert _regraded(out) == [], "the instructor's files apply to cached results: nothing is graded again"
    assert "1 late" in first.stderr and "override NOT applied, line 3" in first.stderr

    rows = {r["student_id"]: r for r in read_csv(out / "grades.csv")}
    assert [rows[s]["score"] for s in sorted(rows)] == [grades(small_class / "reference")[s] for s in sorted(rows)]
    assert (rows["honest-0"]["late_penalty"], rows["honest-0"]["final_score"]) == ("4.1", f"{FULL - 4.1:g}")
    assert rows["honest-0"]["submitted_at"] == "2027-03-29T00:30:00+02:00" and "late by 31 min" in rows["honest-0"]["notes"]
    assert rows["honest-1"]["final_score"] == FULL_TEXT and "ill: a doctor's note" in rows["honest-1"]["notes"]
    assert rows["honest-1"]["deadline"] == "2027-03-29T23:59:00+02:00"
    raised = float(rows["sdpa-unscaled"]["score"]) - float(lost["score"]) + float(lost["max_score"])
    assert float(rows["sdpa-unscaled"]["final_score"]) == pytest.approx(raised) and reason in rows["sdpa-unscaled"]["notes"]
    assert [(r["override"], r["override_reason"]) for r in read_csv(out / "tests.csv")
            if r["student_id"] == "sdpa-unscaled" and r["grade_id"] == lost["grade_id"]] == [(lost["max_score"], reason)]
    gradebook = {r["Student ID"]: r[f"{ASSIGNMENT} [{FULL_TEXT}]"] for r in read_csv(out / "gradebook.csv")}
    assert gradebook["honest-0"] == f"{FULL - 4.1:g}"
    flags = [(f["student_id"], f["reason"]) for f in read_csv(out / "flags.csv")]
    assert any(s == "masked_softmax-inverted_mask" and "submission time unknown" in r for s, r in flags)
    assert any(s == "honest-2" and "no graded cell 'no_such_cell'" in r for s, r in flags)

    text = html.unescape((out / "report.html").read_text(encoding="utf-8"))
    assert "ill: a doctor's note" in text and reason in text and "a cell of last year" in text and "31 min" in text
    assert f"Score: {FULL - 4.1:g} / {FULL_TEXT}" in html.unescape(_page(out, "honest-0"))
    assert "after your deadline" in _page(out, "honest-0")
    assert "ill: a doctor's note" in html.unescape(_page(out, "honest-1"))
    assert reason in html.unescape(_page(out, "sdpa-unscaled")) and lost["grade_id"] in _page(out, "sdpa-unscaled")
    assert _page(out, "honest-2") == _page(small_class / "reference", "honest-2"), "nothing changed: the worker's page"

    def written():
        sections = text_of(out / "report.html").split("<h2>Deadlines and late work</h2>", 1)[1].split("<h2>Errors", 1)[0]
        return [read_csv(out / n) for n in ("grades.csv", "tests.csv", "flags.csv", "errors.csv")] + \
            [sections] + [_page(out, s) for s in sorted(rows)]
    before = written()
    changed = ["honest-0", "honest-1", "sdpa-unscaled"]   # graded again (as --regrade would, on the same path: cheaper)
    for student in changed:
        result_path(out, student, ASSIGNMENT).unlink()
    regrade = Run(submitted, out, *files, workers=1)
    assert regrade.wait() == 0, regrade.stderr
    assert _regraded(out) == changed
    assert written() == before, "a regrade loses nothing of the instructor's word"
    assert regrade.leftovers() == ([], [])

    _instructors_files(tmp_path / "instructor", [])   # the override taken back
    again = Run(submitted, out, *files)
    assert again.wait() == 0, again.stderr
    assert _page(out, "sdpa-unscaled") == _page(small_class / "reference", "sdpa-unscaled")
    assert grades(out)["sdpa-unscaled"] == {r["student_id"]: r["final_score"] for r in read_csv(out / "grades.csv")}["sdpa-unscaled"]
    assert os.stat(out).st_mode & 0o777 == 0o700
    for path in [out / "grades.csv", out / "report.html", out / "feedback" / "honest-0" / ASSIGNMENT / f"{ASSIGNMENT}.html",
                 *(out / "results").glob("*.json")]:
        assert os.stat(path).st_mode & 0o777 == 0o600, path


def text_of(path):
    return path.read_text(encoding="utf-8")


def test_grading_again_into_the_out_of_a_class_leaves_nothing_of_a_student_who_is_gone(small_class, tmp_path):
    """OUT holds one class, end to end without a kernel (every other result is reused): the small class graded again
    into a copy of its OUT, without honest-2, leaves no feedback page, result or row of honest-2, and every file that
    the grader did not write (the unit cases: tests/test_out.py)."""
    from autograder import pipeline
    from autograder.report import write_report
    out, submitted = tmp_path / "out", tmp_path / "submitted"
    shutil.copytree(small_class / "reference", out)
    shutil.copytree(small_class / "submitted", submitted)
    shutil.rmtree(submitted / "honest-2")
    gone = out / "feedback" / "honest-2" / ASSIGNMENT / f"{ASSIGNMENT}.html"
    assert gone.is_file()
    mine = [out / "my notes.txt", out / "feedback" / "honest-2" / "my notes.txt"]
    for path in mine:
        path.write_text("the instructor's", encoding="utf-8")
    jobs = []
    results = pipeline.grade_class(submitted, out, workers=1, progress=False,
                                   make_executor=lambda: _RecordingExecutor(jobs))
    write_report(results, out)
    assert jobs == [], "the other results are reused"
    assert not gone.exists() and not gone.parent.exists() and all(p.read_text() == "the instructor's" for p in mine)
    assert "feedback/honest-2/01_attention/01_attention.html" in results.removed
    assert sorted(p.parent.name for p in (out / "feedback").glob(f"*/{ASSIGNMENT}")) == \
        ["honest-0", "honest-1", "masked_softmax-inverted_mask", "sdpa-unscaled"]
    assert sorted(r.student_id for r in results_on_disk(out)) == sorted(grades(out)) == \
        ["honest-0", "honest-1", "masked_softmax-inverted_mask", "sdpa-unscaled"]


# --- honest accidents ------------------------------------------------------------------------------------
def _solution():
    return nbformat.read(solution_path(ASSIGNMENT), as_version=4)


def _index(notebook, grade_id):
    return next(i for i, c in enumerate(notebook.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def copied_solution_cell(nb):
    i = _index(nb, "scaled_dot_product_attention")
    nb.cells.insert(i + 1, copy.deepcopy(nb.cells[i]))
    nb.cells[i + 1].id = "pasted-copy"
    return nb


def copied_stub_above_the_work(nb):
    """The stub, pasted above the finished cell (the finished one runs last, so it is the one that counts)."""
    i = _index(nb, "masked_softmax")
    stub = copy.deepcopy(nb.cells[i])
    stub.source = "def masked_softmax(scores, mask=None):\n    raise NotImplementedError()"
    stub.id = "stub-copy"
    nb.cells.insert(i, stub)
    return nb


def copied_visible_test(nb):
    i = _index(nb, "nadaraya_watson_visible")
    nb.cells.append(copy.deepcopy(nb.cells[i]))
    nb.cells[-1].id = "test-copy"
    return nb


def moved_solution_cell(nb):
    """A solution cell moved up, above its own introduction."""
    i = _index(nb, "masked_softmax")
    cell = nb.cells.pop(i)
    nb.cells.insert(_index(nb, "masked_softmax_intro"), cell)
    return nb


def solution_turned_into_markdown(nb):
    cell = nb.cells[_index(nb, "nadaraya_watson")]
    cell.cell_type = "markdown"
    cell.pop("outputs")
    cell.pop("execution_count")
    return nb


def outputs_left_in(nb):
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="Visible tests passed.\n")]
            cell.execution_count = 7
    return nb


def saved_by_an_old_jupyter(nb):
    nb.nbformat_minor = 2
    for cell in nb.cells:
        cell.pop("id", None)
        cell.metadata.get("nbgrader", {})["schema_version"] = 1
        cell.metadata.get("nbgrader", {}).pop("cell_type", None)
    return nb


ACCIDENTS = [copied_solution_cell, copied_stub_above_the_work, copied_visible_test, moved_solution_cell,
             solution_turned_into_markdown, outputs_left_in, saved_by_an_old_jupyter]


ODD = {   # student -> a file that is not a notebook, or not in UTF-8
    "deeply-nested": b"[" * 300_000 + b"]" * 300_000,
    "a-list": b"[1, 2, 3]",
    "no-cells": b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}',
    "latin-1": "{\"cells\": \"caf\xe9\"}".encode("latin-1"),
    "utf-16": b"\xff\xfe" + release_path(ASSIGNMENT).read_text().encode("utf-16-le"),
}


@pytest.fixture(scope="module")
def mixed_class(tmp_path_factory):
    """One class of honest accidents (each alone in its notebook), odd files and an honest student, graded
    twice with OUT inside SUBMISSIONS (the second run finds OUT's results/ and feedback/ there); the first run
    is given a --scratch folder that does not exist yet."""
    root = tmp_path_factory.mktemp("mixed")
    submitted = root / "submitted"
    for accident in ACCIDENTS:
        folder = submitted / accident.__name__ / ASSIGNMENT
        folder.mkdir(parents=True)
        notebook = accident(_solution())
        path = folder / f"{ASSIGNMENT}.ipynb"
        path.write_text(json.dumps(notebook, indent=1))   # as saved, without nbformat's own validation
    # the same accident on a wrong implementation keeps exactly that implementation's marks
    mutant = catalogue()[ASSIGNMENT]["sdpa/unscaled"]
    folder = submitted / "copied-cell-of-a-mutant" / ASSIGNMENT
    folder.mkdir(parents=True)
    nbformat.write(copied_solution_cell(with_cell_replaced(ASSIGNMENT, mutant.cell, mutant.source)),
                   folder / f"{ASSIGNMENT}.ipynb")
    folder = submitted / "the-mutant" / ASSIGNMENT
    folder.mkdir(parents=True)
    nbformat.write(with_cell_replaced(ASSIGNMENT, mutant.cell, mutant.source), folder / f"{ASSIGNMENT}.ipynb")
    for student, content in ODD.items():
        (submitted / student / ASSIGNMENT).mkdir(parents=True)
        (submitted / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").write_bytes(content)
    (submitted / "honest" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(solution_path(ASSIGNMENT), submitted / "honest" / ASSIGNMENT)
    out, scratch = submitted / "out", root / "new" / "scratch"
    processes = [run_grader(submitted, out, 1, *extra) for extra in (["--scratch", str(scratch)], [])]
    return {"out": out, "processes": processes, "scratch": scratch,
            "students": [a.__name__ for a in ACCIDENTS] + ["copied-cell-of-a-mutant", "the-mutant"] + list(ODD) + ["honest"]}


def test_honest_accidents_get_exactly_the_marks_of_their_code(mixed_class):
    for process in mixed_class["processes"]:
        assert process.returncode == 0, process.stderr
    scores = grades(mixed_class["out"])
    accidents = [a.__name__ for a in ACCIDENTS] + ["copied-cell-of-a-mutant", "the-mutant"]
    assert [e for e in read_csv(mixed_class["out"] / "errors.csv") if e["student_id"] in accidents] == []
    for accident in ACCIDENTS:
        assert scores[accident.__name__] == FULL_TEXT, f"{accident.__name__}: {scores[accident.__name__]}"
    assert scores["copied-cell-of-a-mutant"] == scores["the-mutant"] != FULL_TEXT


# --- no input stops the class or invents students ---------------------------------------------------------------
def test_odd_files_and_an_out_folder_inside_submissions_stop_nothing(mixed_class):
    for process in mixed_class["processes"]:
        assert process.returncode == 0, process.stderr
        assert "skipped" in process.stderr
    assert mixed_class["scratch"].is_dir(), "the missing scratch folder was not created"
    out = mixed_class["out"]
    scores = grades(out)
    assert sorted(scores) == sorted(mixed_class["students"]), "OUT inside SUBMISSIONS became students"
    assert scores["honest"] == FULL_TEXT and scores["utf-16"] == "0"
    reasons = {e["student_id"]: e["reason"] for e in read_csv(out / "errors.csv")}
    assert "nested too deeply" in reasons["deeply-nested"] and "no list of cells" in reasons["a-list"]
    assert "no cells" in reasons["no-cells"] and "not UTF-8" in reasons["latin-1"] and "utf-16" not in reasons


@pytest.mark.unit
@pytest.mark.parametrize("limit", [["--timeout", "-200"], ["--cell-timeout", "0"], ["--timeout", "nan"],
                                   ["--cell-timeout", "soon"]])
def test_a_limit_that_is_not_a_positive_number_is_a_usage_error(tmp_path, limit, capsys):
    """The command line's own parsing, in this process (`python -m autograder` exits with main's SystemExit)."""
    from autograder import __main__ as cli
    (tmp_path / "submitted").mkdir()
    with pytest.raises(SystemExit) as stopped:
        cli.main(["grade", str(tmp_path / "submitted"), "--out", str(tmp_path / "out"), "--workers", "1", "--quiet",
                  *limit])
    stderr = capsys.readouterr().err
    assert stopped.value.code == 2 and ("positive number" in stderr or "not a number" in stderr), stderr
    assert "Traceback" not in stderr and not (tmp_path / "out").exists()


# --- the README's Dask recipe, with real processes ----------------------------------------------------------
class DaskCluster:
    """`dask scheduler` and `dask worker` started as the README says, from another working directory, with
    the default number of threads per worker."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix="agd-", dir="/tmp"))
        self.file = self.folder / "scheduler.json"
        env = dict(os.environ, TMPDIR=str(self.tmp), PYTHONPATH="")
        self.scheduler = subprocess.Popen([str(BIN / "dask"), "scheduler", "--no-dashboard", "--port", "0",
                                           "--host", "127.0.0.1", "--scheduler-file", str(self.file)],
                                          cwd=self.folder, env=env, start_new_session=True,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline, self.address = time.monotonic() + 60, None
        while self.address is None and time.monotonic() < deadline:
            try:
                self.address = json.loads(self.file.read_text())["address"]
            except (OSError, ValueError, KeyError):   # not written yet, or half-written
                time.sleep(0.2)
        self.worker = subprocess.Popen([str(BIN / "dask"), "worker", self.address, "--no-dashboard"],
                                       cwd=self.folder, env=env, start_new_session=True,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        from distributed import Client
        with Client(self.address, timeout=60) as client:
            client.wait_for_workers(1, timeout=60)

    def close(self):
        for process in (self.worker, self.scheduler):
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        deadline = time.monotonic() + 15
        while processes_mentioning(str(self.tmp)) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = processes_mentioning(str(self.tmp))
        shutil.rmtree(self.tmp, ignore_errors=True)
        return left


def test_the_readme_dask_recipe_gives_the_grades_of_local_workers_even_when_a_worker_is_killed(small_class, tmp_path):
    """One cluster started as the README says. Its worker process is killed once the first result is written:
    no false grade. Run again on the same cluster (the nanny restarted the worker), the class gets exactly the
    reference's rows, every submission graded on Dask in one of the two runs, and the cluster leaves nothing."""
    cluster = DaskCluster(tmp_path / "elsewhere")
    out = tmp_path / "dask"
    try:
        command = [sys.executable, "-m", "autograder", "grade", str(small_class / "submitted"), "--out", str(out),
                   "--quiet", "--dask", cluster.address, "--scratch", str(tmp_path / "shared" / "scratch")]
        grader = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not list((out / "results").glob("*.json")) and time.monotonic() < deadline:
            time.sleep(0.1)
        killed = children(cluster.worker.pid)
        for worker in killed:   # the nanny's worker process: it restarts another
            os.kill(worker, signal.SIGKILL)
        _, stderr = grader.communicate(timeout=300)
        assert killed, "the Dask worker process was not found"
        assert grader.returncode in (0, 3), stderr
        rows = {r["student_id"]: r for r in read_csv(out / "grades.csv")}
        reference = grades(small_class / "reference")
        for student, row in rows.items():
            assert row["score"] in ("", reference[student]), f"{student}: {row['score']}, a false grade"
        again = run_grader(small_class / "submitted", out, 2, "--dask", cluster.address,
                           "--scratch", str(tmp_path / "shared" / "scratch"))
        assert again.returncode == 0, again.stderr
        assert outputs(out) == outputs(small_class / "reference")
    finally:
        left = cluster.close()
    assert left == [], f"processes left behind by the Dask cluster: {left}"
