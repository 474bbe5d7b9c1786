"""The student's tools: the workspace that `make lab` fills (tools/workspace.py) and the check before
handing in (`make check-submission`, tools/check_submission.py)."""
import json
import re
import shutil
import subprocess
import sys

import nbformat
import pytest

from autograder import feedback
from autograder.editions import CJK, Edition, say
from tests.conftest import REPO, release_path, solution_path
from tools import check_submission, workspace

ASSIGNMENT = "01_attention"


def make_release(folder, assignments=(ASSIGNMENT,)):
    for a in assignments:
        (folder / a).mkdir(parents=True)
        shutil.copy(release_path(a), folder / a)
    return folder


def changed_release(folder):
    """The release of ASSIGNMENT with its introduction reworded (the course fixed a typo)."""
    path = folder / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    notebook = nbformat.read(path, as_version=4)
    notebook.cells[0].source += "\n\nA sentence the course added."
    nbformat.write(notebook, path)


def student_edits(path):
    notebook = nbformat.read(path, as_version=4)
    solution_cell = next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("solution"))
    solution_cell.source = "# my answer\n"
    nbformat.write(notebook, path)
    return path.read_bytes()


@pytest.mark.quick
def test_the_workspace_gets_each_released_notebook_once_and_never_loses_work(tmp_path):
    release, work = make_release(tmp_path / "release"), tmp_path / "work"
    changes = workspace.sync(release, work)
    target = work / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert [c.action for c in changes] == ["copied"] and target.read_bytes() == release_path(ASSIGNMENT).read_bytes()
    given = workspace.given_versions(work, ASSIGNMENT)     # the version given is kept, for check-submission
    assert [p.read_bytes() for p in given] == [release_path(ASSIGNMENT).read_bytes()]
    theirs = student_edits(target)

    assert [c.action for c in workspace.sync(release, work)] == ["unchanged"]     # nothing new: quiet
    assert target.read_bytes() == theirs

    make_release(release, ["02_self_attention"])                                   # a new assignment
    assert {c.target.parent.name: c.action for c in workspace.sync(release, work)} == \
        {ASSIGNMENT: "unchanged", "02_self_attention": "copied"}

    changed_release(release)                                                       # the course changes 01
    changes = {c.target.parent.name: c for c in workspace.sync(release, work)}
    new = changes[ASSIGNMENT]
    assert new.action == "new_version" and new.written == target.with_name(f"{ASSIGNMENT}.new.ipynb")
    assert target.read_bytes() == theirs, "the student's notebook was overwritten"
    assert new.written.read_bytes() == (release / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_bytes()
    assert "beside yours" in new.message(work)

    again = {c.target.parent.name: c for c in workspace.sync(release, work)}[ASSIGNMENT]
    assert again.action == "pending" and "reminder" in again.message(work)         # said once, then a reminder
    assert target.read_bytes() == theirs
    assert sorted(p.read_bytes() for p in workspace.given_versions(work, ASSIGNMENT)) == \
        sorted([release_path(ASSIGNMENT).read_bytes(), new.written.read_bytes()])  # both versions given, kept once


@pytest.mark.quick
def test_running_or_saving_a_notebook_is_not_a_change_of_the_release(tmp_path):
    release, work = make_release(tmp_path / "release"), tmp_path / "work"
    workspace.sync(release, work)
    target = work / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    notebook = nbformat.read(target, as_version=4)
    notebook.cells[1].outputs = [nbformat.v4.new_output("stream", text="ran")]
    notebook.cells[1].execution_count = 1
    target.write_text(json.dumps(notebook, indent=2))
    (work / workspace.RECORD).unlink()  # and a workspace from before the record existed
    assert [c.action for c in workspace.sync(release, work)] == ["unchanged"]


@pytest.mark.quick
def test_check_submission_names_the_assignment_of_renamed_files(tmp_path):
    assert check_submission.assignment_of(tmp_path / ASSIGNMENT / "anything.ipynb") == ASSIGNMENT
    assert check_submission.assignment_of(tmp_path / "Downloads" / f"{ASSIGNMENT} (1).ipynb") == ASSIGNMENT
    assert check_submission.assignment_of(tmp_path / "x" / f"{ASSIGNMENT}.new.ipynb") == ASSIGNMENT
    assert check_submission.assignment_of(tmp_path / "x" / f"{ASSIGNMENT}.new-2 (1).ipynb") == ASSIGNMENT
    assert check_submission.assignment_of(tmp_path / "x" / "homework.ipynb") is None


@pytest.mark.quick
def test_check_submission_rejects_broken_files_and_missing_or_doubled_cells(tmp_path):
    broken = tmp_path / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    broken.parent.mkdir()
    broken.write_text('{"cells": [ oops')
    _, checks = check_submission.check(broken)
    assert [c.ok for c in checks] == [False] and "broken JSON at line 1" in checks[0].what

    notebook = nbformat.read(release_path(ASSIGNMENT), as_version=4)
    test_cell = next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade"))
    notebook.cells.remove(test_cell)
    copy = nbformat.from_dict(notebook.cells[3])                     # a solution cell, copied
    copy.id = "a-copied-cell"
    notebook.cells.append(copy)
    nbformat.write(notebook, broken)
    _, checks = check_submission.check(broken)
    failed = " ".join(c.what for c in checks if not c.ok)
    grade_id = test_cell.metadata["nbgrader"]["grade_id"]
    assert f"cells missing (deleted, or their metadata lost and the cell not recognised): {grade_id}" in failed
    assert "present twice" in failed
    assert not any("fresh kernel" in c.what for c in checks), "a notebook with missing cells was run"


@pytest.mark.quick
def test_check_submission_never_runs_hidden_tests(tmp_path):
    # Even the solution notebook, hidden tests and all, runs with the release's cells in their place.
    solution = nbformat.read(solution_path(ASSIGNMENT), as_version=4)
    release = nbformat.read(release_path(ASSIGNMENT), as_version=4)
    run = check_submission.restored(solution, release)
    hidden = feedback.secret_lines(solution, [("BEGIN HIDDEN TESTS", "END HIDDEN TESTS")])
    text = feedback.normalise("\n".join(c.source for c in run.cells))
    assert hidden and not [line for line in hidden if line in text]
    assert all(c.outputs == [] for c in run.cells if c.cell_type == "code")


@pytest.mark.quick
def test_check_submission_uses_the_graders_time_limits():
    help_text = subprocess.run([sys.executable, "-m", "autograder", "grade", "--help"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout
    help_text = " ".join(help_text.split())
    notebook = re.search(r"--timeout TIMEOUT .*?\(default: ([\d.]+)\)", help_text).group(1)
    cell = re.search(r"--cell-timeout CELL_TIMEOUT .*?\(default: ([\d.]+)\)", help_text).group(1)
    assert (check_submission.LIMITS.notebook, check_submission.LIMITS.cell) == (float(notebook), float(cell))


def test_check_submission_runs_the_notebook_and_reports_the_visible_tests(tmp_path):
    from tests.conftest import filled_notebook
    done, stub = tmp_path / "done" / ASSIGNMENT, tmp_path / "stub" / ASSIGNMENT
    for folder in (done, stub):
        folder.mkdir(parents=True)
    notebook = filled_notebook(ASSIGNMENT)
    locked = next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade")
                  and check_submission.has_code(c.source))
    locked.source += "\nassert False, 'an edit of a test cell'"   # restored by the grader, so harmless
    nbformat.write(notebook, done / f"{ASSIGNMENT} (1).ipynb")
    shutil.copy(release_path(ASSIGNMENT), stub)
    process = subprocess.run([sys.executable, "-m", "tools.check_submission", str(done / f"{ASSIGNMENT} (1).ipynb"),
                              str(stub / f"{ASSIGNMENT}.ipynb")], cwd=REPO, capture_output=True, text=True)
    done_report, stub_report = process.stdout.split(f"\n{stub}")
    assert process.returncode == 1, process.stdout + process.stderr
    assert f"upload this file, named {ASSIGNMENT}.ipynb" in done_report
    assert "locked cells you edited (the grader puts the original back)" in done_report
    assert re.search(r"\[ok\] visible tests: (\d+) of \1 test cells pass", done_report), done_report
    assert "ready to upload" in done_report and "FAIL" not in done_report
    assert re.search(r"\[FAIL\] visible tests: 0 of \d+ test cells pass", stub_report), stub_report
    assert "not done yet" in stub_report and "NOT ready" in stub_report
    assert "hidden tests" in stub_report


ZH_RELEASE = REPO / "zh" / "notebooks" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"


def without_a_kernel(monkeypatch):
    """check-submission's run as a run in which no cell printed or raised (so every visible test passes)."""
    monkeypatch.setattr(check_submission, "run_notebook",
                        lambda notebook, job_dir, timeout, cell_timeout, sandbox=True: notebook)


def workspaces(monkeypatch, tmp_path):
    """A workspace in tmp_path (work/, and work/zh/ for the Chinese edition), as check-submission sees it."""
    work = {Edition.EN: tmp_path / "work", Edition.ZH: tmp_path / "work" / "zh"}
    monkeypatch.setattr(check_submission, "WORKSPACES", work)
    return work


@pytest.mark.quick
def test_check_submission_checks_a_chinese_notebook_against_the_chinese_release_in_chinese(tmp_path, monkeypatch,
                                                                                            capsys):
    without_a_kernel(monkeypatch)
    path = tmp_path / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    path.parent.mkdir()
    shutil.copy(ZH_RELEASE, path)
    english = nbformat.read(release_path(ASSIGNMENT), as_version=4)
    assert any("locked cells you edited" in c.what   # against the English release, its instructions were edited
               for c in check_submission.cell_checks(nbformat.read(path, as_version=4), english))

    report = check_submission.report(path)
    assert report.edition is Edition.ZH and all(c.ok for c in report.checks), [c.what for c in report.checks]
    assert not any("锁定单元" in c.what or "locked" in c.what for c in report.checks)
    assert check_submission.main([str(path)]) == 0
    lines = capsys.readouterr().out.strip("\n").splitlines()
    assert lines[0] == str(path) and lines[1] == f"  上传这个文件：{path}" and lines[-1] == "  可以上传"
    assert [line for line in lines[1:] if not CJK.search(line)] == [], "a line in English"
    assert any(line.startswith("  [ok] 可见测试：") for line in lines)


@pytest.mark.quick
def test_check_submission_checks_both_workspaces_and_says_the_same_english_as_ever(tmp_path, monkeypatch, capsys):
    without_a_kernel(monkeypatch)
    work = workspaces(monkeypatch, tmp_path)
    english, chinese = (work[e] / ASSIGNMENT / f"{ASSIGNMENT}.ipynb" for e in Edition)
    for path, release in ((english, release_path(ASSIGNMENT)), (chinese, ZH_RELEASE)):
        path.parent.mkdir(parents=True)
        shutil.copy(release, path)
    assert check_submission.main([]) == 0
    out = capsys.readouterr().out
    english_report, chinese_report = out.split(f"\n{chinese}\n")
    tests = [c for c in nbformat.read(release_path(ASSIGNMENT), as_version=4).cells
             if c.metadata.get("nbgrader", {}).get("grade")]
    visible = [c for c in tests if check_submission.has_code(c.source)]
    hidden = [c for c in tests if not check_submission.has_code(c.source)]
    points = sum(c.metadata["nbgrader"]["points"] for c in visible)
    limits = check_submission.LIMITS
    assert english_report.splitlines() == [
        "", str(english),
        f"  upload this file: {english}",
        "  [ok] a valid notebook (JSON, nbformat)",
        "  [ok] every graded cell of the release is there, once",
        f"  [ok] ran from a fresh kernel in 0 s (the grader allows {limits.notebook:g} s, {limits.cell:g} s per cell)",
        f"  [ok] visible tests: {len(visible)} of {len(visible)} test cells pass ({points:g} of their {points:g} points)",
        f"  [ok] hidden tests: {len(hidden)} more test cells "
        f"({sum(c.metadata['nbgrader']['points'] for c in hidden):g} points) are filled in and run only when your "
        "notebook is graded",
        "  ready to upload"]
    assert f"  上传这个文件：{chinese}" in chinese_report and "  可以上传" in chinese_report


@pytest.mark.quick
def test_check_submission_tells_a_chinese_student_in_chinese_what_is_wrong(tmp_path, monkeypatch, capsys):
    work = workspaces(monkeypatch, tmp_path)
    notebook = nbformat.read(ZH_RELEASE, as_version=4)
    test_cell = next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade"))
    notebook.cells.remove(test_cell)
    path = tmp_path / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    path.parent.mkdir()
    nbformat.write(notebook, path)
    report = check_submission.report(path)
    grade_id = test_cell.metadata["nbgrader"]["grade_id"]
    assert report.edition is Edition.ZH
    assert [(c.ok, c.what) for c in report.checks if not c.ok] == \
        [(False, f"缺少单元（已被删除，或其元数据丢失而未能识别）：{grade_id}")]
    assert all(CJK.search(c.what) for c in report.checks) and all(CJK.search(c.detail) for c in report.checks
                                                                     if c.detail)

    # Before a notebook is read, its place says its language: work/zh/ is the Chinese student's.
    unknown, missing = work[Edition.ZH] / "homework.ipynb", work[Edition.ZH] / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    unknown.parent.mkdir(parents=True)
    shutil.copy(ZH_RELEASE, unknown)
    assert check_submission.main([str(unknown), str(missing)]) == 1
    out, err = capsys.readouterr()
    assert "  [FAIL] 这是哪个作业？" in out and f"{missing}：没有这个文件" in err
    assert check_submission.main([str(tmp_path / "nowhere.ipynb")]) == 1
    assert "nowhere.ipynb: no such file" in capsys.readouterr().err


@pytest.mark.quick
def test_the_readme_table_is_generated_and_up_to_date():
    from tools import readme
    text = readme.README.read_text(encoding="utf-8")
    assert readme.rendered(text) == text, "README.md's table is out of date: run `make readme`"
    for chapter in readme.points.chapters():
        if chapter.assignment:
            assert f"| `{chapter.assignment.id}` | {chapter.assignment.points:g} |" in text


@pytest.mark.quick
@pytest.mark.parametrize("bwrap", [True, False])
def test_check_submission_runs_in_the_sandbox_when_bubblewrap_is_there(monkeypatch, bwrap):
    calls = []

    def fake_run_notebook(notebook, job_dir, timeout, cell_timeout, sandbox=True):
        calls.append(sandbox)
        return notebook
    monkeypatch.setattr(check_submission, "available", lambda: bwrap)
    monkeypatch.setattr(check_submission, "run_notebook", fake_run_notebook)
    release = nbformat.read(release_path(ASSIGNMENT), as_version=4)
    check_submission.run_checks(release, release)
    assert calls == [bwrap]


@pytest.mark.quick
def test_the_chinese_workspace_gets_the_chinese_notebooks_beside_the_english_ones(tmp_path, capsys):
    """`make lab EDITION=zh`: the Chinese release in work/zh/, the English workspace untouched beside it."""
    work = tmp_path / "work"
    assert workspace.main(["--work", str(work)]) == 0
    english = {p.relative_to(work) for p in work.rglob("*.ipynb")}
    assert workspace.main(["--work", str(work / "zh"), "--edition", "zh"]) == 0
    chinese = work / "zh" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert chinese.read_bytes() == (workspace.RELEASES["zh"] / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_bytes()
    assert {p.relative_to(work) for p in work.rglob("*.ipynb") if p.parts[len(work.parts)] != "zh"} == english
    assert "作业" in chinese.read_text(encoding="utf-8")
    assert workspace.WORKSPACES["zh"] == workspace.WORK / "zh"


ZH_RELEASES = REPO / "zh" / "notebooks"


def course_releases(monkeypatch, tmp_path):
    """Copies of the release of ASSIGNMENT in both editions, which check-submission takes for the course's."""
    releases = {Edition.EN: tmp_path / "release", Edition.ZH: tmp_path / "zh-release"}
    for edition, folder in releases.items():
        (folder / ASSIGNMENT).mkdir(parents=True)
        shutil.copy(check_submission.RELEASES[edition] / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", folder / ASSIGNMENT)
    monkeypatch.setattr(check_submission, "RELEASE", releases[Edition.EN])
    monkeypatch.setattr(check_submission, "RELEASES", releases)
    return releases


def edit_cells(path, **sources):
    """Set the source of cells (by grade_id) of the notebook at `path`; a value that starts with "+" is appended."""
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in sources:
            cell.source = cell.source + sources[grade_id][1:] if sources[grade_id].startswith("+") \
                else sources[grade_id]
    nbformat.write(notebook, path)


def cell_source(path, grade_id):
    return next(c.source for c in nbformat.read(path, as_version=4).cells
                if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


MY_ANSWER = "def masked_softmax(scores, mask=None):\n    return scores.softmax(-1)\n"


@pytest.mark.quick
@pytest.mark.parametrize("edition", list(Edition))
def test_check_submission_tells_the_courses_changes_from_the_students_edits_and_finds_their_work(
        tmp_path, monkeypatch, capsys, edition):
    """The course changes a notebook the student works on: make lab puts the new version beside theirs; check-submission
    says which copy holds their work, checks that one, and tells the course's changes from the student's edits."""
    without_a_kernel(monkeypatch)
    release = course_releases(monkeypatch, tmp_path)[edition] / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    work = workspaces(monkeypatch, tmp_path)[edition]
    workspace.sync(release.parent.parent, work)
    mine = work / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    stub = cell_source(mine, "masked_softmax")
    edit_cells(mine, masked_softmax=MY_ANSWER, sdpa_intro="+ My own note.")       # an answer, and an edited instruction
    edit_cells(release, intro="+\n\nA sentence the course added.", sdpa_visible="+\nassert True")   # the course's fix
    workspace.sync(release.parent.parent, work)                                    # make lab
    newer = work / ASSIGNMENT / f"{ASSIGNMENT}.new.ipynb"
    assert newer.read_bytes() == release.read_bytes()

    whats = [c.what for c in check_submission.report(mine).checks]
    assert say(edition, "the course changed these cells since your copy; the grader uses the new ones: {cells}",
               cells="intro, sdpa_visible") in whats, whats
    assert say(edition, "locked cells you edited (the grader puts the original back): {cells}",
               cells="sdpa_intro") in whats, whats
    assert say(edition, "every graded cell of the release is there, once") in whats

    def checked():
        """make check-submission with no argument: (its exit status, the notebooks it checked, what it printed)."""
        status = check_submission.main([])
        out = capsys.readouterr().out
        return status, [p for p in (mine, newer) if f"\n{p}\n" in out], out

    status, paths, out = checked()       # their work is in their copy: it alone is checked, against its own release
    assert status == 0 and paths == [mine], out
    assert say(edition, "your work is in {mine}; beside it, the course's newer version ({newer}) has none of your "
                        "answers: the checks below compare yours with the release it came from",
               mine=mine.name, newer=newer.name) in out

    edit_cells(newer, masked_softmax=MY_ANSWER)      # they copied their answer into the new version: both hold work
    status, paths, out = checked()
    assert status == 0 and paths == [mine, newer], out
    assert say(edition, "{files} each hold work of yours: upload only one, named {name} (the name the grader "
                        "expects): {name} itself, or the one that has your latest answers, renamed {name}",
               files=f"{mine.name}, {newer.name}", name=mine.name) in out

    edit_cells(mine, masked_softmax=stub)            # and emptied the old one: only the new version holds work
    status, paths, out = checked()
    assert status == 0 and paths == [newer], out
    assert say(edition, "upload this file, named {name}: {path}", name=mine.name, path=newer) in out
    assert say(edition, "your work is in {work}, not in {name}: upload {work}, renamed {name} (the name the grader "
                        "expects)", work=newer.name, name=mine.name) in out

    edit_cells(newer, masked_softmax=stub)           # neither holds work
    status, paths, out = checked()
    assert paths == [mine], out
    assert say(edition, "none of {files} holds work of yours yet: work in {latest}, the course's newest version",
               files=f"{mine.name}, {newer.name}", latest=newer.name) in out
    if edition is Edition.ZH:
        assert CJK.search(out) and "your work" not in out and "the course" not in out


@pytest.mark.quick
def test_check_submission_tells_the_cells_the_course_added_from_the_cells_the_student_deleted(tmp_path, monkeypatch):
    without_a_kernel(monkeypatch)
    release = course_releases(monkeypatch, tmp_path)[Edition.EN] / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    work = workspaces(monkeypatch, tmp_path)[Edition.EN]
    workspace.sync(release.parent.parent, work)
    mine = work / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    notebook = nbformat.read(mine, as_version=4)                 # the student deletes a test cell
    notebook.cells = [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "bandwidth_visible"]
    nbformat.write(notebook, mine)
    course = nbformat.read(release, as_version=4)                # the course adds one
    added = nbformat.from_dict(next(c for c in course.cells if c.metadata.nbgrader.get("grade_id") == "sdpa_visible"))
    added.id, added.metadata.nbgrader.grade_id = "a-new-test", "sdpa_more_visible"
    course.cells.insert(course.cells.index(next(c for c in course.cells if c.metadata.nbgrader.get("grade_id") ==
                                                "sdpa_visible")) + 1, added)
    nbformat.write(course, release)
    workspace.sync(release.parent.parent, work)

    failed = [c.what for c in check_submission.report(mine).checks if not c.ok]
    assert failed == ["cells missing (deleted, or their metadata lost and the cell not recognised): bandwidth_visible",
                      "cells the course added since your copy: sdpa_more_visible"], failed
    # The new version beside it has every cell of the release.
    assert all(c.ok for c in check_submission.report(mine.with_name(f"{ASSIGNMENT}.new.ipynb")).checks)
