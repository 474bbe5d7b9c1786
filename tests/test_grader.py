"""The grading path: `python -m autograder grade` on a class of honest and broken submissions."""
import html
import json
import re
from collections import Counter
from itertools import groupby
from pathlib import Path

import pytest

from tests.conftest import (ASSIGNMENTS, BROKEN, CHINESE_TWINS, FEEDBACK_CASES, HEATMAP_CASES, HONEST, REPO,
                            chinese_submissions, cell_scores, kernel_sample,
                            honest_submissions, max_points, read_csv, run_grader)
from tests.editors import EDITORS


@pytest.mark.quick
@pytest.mark.parametrize("student,assignment", [(s, a) for s, a in honest_submissions() if s != "released"]
                         + [("wrong-folder", ASSIGNMENTS[0])])
def test_the_solution_scores_full_marks(graded_class, student, assignment):
    expected = max_points(assignment)
    assert cell_scores(graded_class, student, assignment) == {g: (p, p) for g, p in expected.items()}
    row = graded_class["grades"][(student, assignment)]
    assert float(row["score"]) == float(row["max_score"]) == sum(expected.values())


@pytest.mark.quick
@pytest.mark.parametrize("assignment", [a for s, a in honest_submissions() if s == "stub beside the work"])
def test_of_several_notebooks_the_one_with_the_work_is_graded_and_flagged(graded_class, assignment):
    flags = [r["reason"] for r in read_csv(graded_class["out"] / "flags.csv")
             if (r["student_id"], r["assignment"]) == ("stub beside the work", assignment)]
    assert flags == [f"several notebooks ({assignment} (1).ipynb, {assignment}.ipynb): graded {assignment} (1).ipynb, "
                     f"the one with the most work in it"]


@pytest.mark.quick
def test_notebooks_saved_by_other_editors_are_neither_flagged_nor_listed(graded_class):
    """VS Code, Colab, JupyterLite and stripped metadata (tests/editors/): their cells are all found."""
    students = {f"saved by {editor}" for editor in EDITORS}
    saved = {(s, a) for s, a in honest_submissions() if s in students}
    assert len(saved) == len(students), "every editor's save is in the graded class"
    assert not [e for e in graded_class["errors"] if (e["student_id"], e["assignment"]) in saved]
    assert not [f for f in read_csv(graded_class["out"] / "flags.csv") if f["student_id"] in students]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_released_notebook_scores_zero(graded_class, assignment):
    scores = cell_scores(graded_class, "released", assignment)
    assert scores and all(score == 0 for score, _ in scores.values())
    assert float(graded_class["grades"][("released", assignment)]["max_score"]) == sum(max_points(assignment).values())


@pytest.mark.quick
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
@pytest.mark.parametrize("student", sorted(BROKEN) + ["did-not-submit"])
def test_a_broken_submission_scores_zero_with_a_reason(graded_class, student, assignment):
    expected = BROKEN[student][1] if student in BROKEN else "no submission"
    reasons = [e["reason"] for e in graded_class["errors"] if (e["student_id"], e["assignment"]) == (student, assignment)]
    assert len(reasons) == 1 and expected in reasons[0], reasons
    assert float(graded_class["grades"][(student, assignment)]["score"]) == 0
    assert set(cell_scores(graded_class, student, assignment)) == set(max_points(assignment))


@pytest.mark.quick
def test_an_unknown_assignment_folder_is_reported_not_graded(graded_class):
    errors = [e for e in graded_class["errors"] if e["assignment"] == "99_not_an_assignment"]
    assert len(errors) == 1 and errors[0]["student_id"] == "wrong-folder"
    assert "unknown assignment" in errors[0]["reason"]
    assert ("wrong-folder", "99_not_an_assignment") not in graded_class["grades"]


@pytest.mark.quick
def test_every_student_gets_one_row_per_assignment(graded_class):
    students = (set(HONEST) | set(BROKEN) | {"did-not-submit", "wrong-folder"} | set(graded_class["mutants"])
                | set(graded_class["fixed"]) | {s for s, (a, _) in chinese_submissions().items() if a in ASSIGNMENTS})
    assert sorted(graded_class["grades"]) == sorted((s, a) for s in students for a in ASSIGNMENTS)
    keys = [(r["student_id"], r["assignment"], r["grade_id"]) for r in graded_class["tests"]]
    assert len(keys) == len(set(keys)) == len(students) * sum(len(max_points(a)) for a in ASSIGNMENTS)


@pytest.mark.quick
def test_submitted_notebooks_are_not_listed_as_errors(graded_class):
    listed = {(e["student_id"], e["assignment"]) for e in graded_class["errors"]}
    submitted = set(honest_submissions())
    submitted |= {(student, assignment) for student, (assignment, _, _) in graded_class["mutants"].items()}
    assert not listed & submitted


def test_a_student_who_submitted_one_assignment_gets_no_submission_for_the_others(graded_class):
    student, (assignment, _, _) = next(iter(graded_class["mutants"].items()))
    for other in set(ASSIGNMENTS) - {assignment}:
        reasons = [e["reason"] for e in graded_class["errors"] if (e["student_id"], e["assignment"]) == (student, other)]
        assert reasons == ["no submission"]
        assert float(graded_class["grades"][(student, other)]["score"]) == 0


@pytest.mark.quick
def test_grading_never_writes_to_the_repository(graded_class):
    assert graded_class["repository_untouched"]


def test_the_gradebook_version_read_in_process_is_the_alembic_commands():
    import subprocess
    import sys
    from nbgrader.dbutil import _temp_alembic_ini

    from autograder.course import alembic_head
    alembic = Path(sys.executable).parent / "alembic"
    with _temp_alembic_ini("sqlite:////tmp/unused.db") as ini:
        heads = subprocess.run([str(alembic), "-c", ini, "heads"], capture_output=True, text=True, check=True).stdout
    assert heads.split()[0] == alembic_head()


@pytest.mark.quick
def test_a_missing_submissions_folder_is_a_usage_error(tmp_path):
    process = run_grader(tmp_path / "nowhere", tmp_path / "out")
    assert process.returncode == 2
    assert "SUBMISSIONS must be a folder" in process.stderr
    assert "Traceback" not in process.stderr


def test_an_empty_class_is_an_error_never_an_empty_success(tmp_path):
    """Issue 28: a folder that yields no submission at all (an empty folder, a download read the wrong way) is
    exit status 2 with what was expected, never "graded 0 of 0" and empty CSV files."""
    (tmp_path / "submitted").mkdir()
    process = run_grader(tmp_path / "submitted", tmp_path / "out")
    assert process.returncode == 2 and "nothing to grade" in process.stderr, process.stderr
    assert "<student_id>/<assignment>/<assignment>.ipynb" in process.stderr
    assert not (tmp_path / "out" / "grades.csv").exists()


@pytest.mark.quick
def test_every_graded_submission_has_a_feedback_page_without_hidden_tests(graded_class):
    from autograder import feedback
    import nbformat
    from tests.conftest import solution_path
    for assignment in ASSIGNMENTS:
        hidden = feedback.secret_lines(nbformat.read(solution_path(assignment), 4),
                                       [("BEGIN HIDDEN TESTS", "END HIDDEN TESTS")])
        for student in ([s for s, a in honest_submissions() if a == assignment]
                        + [s for s, (a, _, _) in graded_class["mutants"].items() if a == assignment]):
            page = graded_class["out"] / "feedback" / student / assignment / f"{assignment}.html"
            assert page.is_file(), f"no feedback for {student}"
            text = feedback.normalise(html.unescape(re.sub(r"<[^>]+>", " ", page.read_text(encoding="utf-8"))))
            assert not [line for line in hidden if line in text], f"{student}'s feedback shows hidden tests"




@pytest.mark.parametrize("name,message", [(name, message) for assignment, name, message in FEEDBACK_CASES
                                          if (assignment, name) in kernel_sample()])
def test_feedback_names_the_likely_mistake(graded_class, name, message):
    """On the feedback page, through the whole grader (every case's message: tests/test_fastpath.py, in-process)."""
    student, (assignment, _, _) = next((s, m) for s, m in graded_class["mutants"].items() if m[1] == name)
    page = graded_class["out"] / "feedback" / student / assignment / f"{assignment}.html"
    assert message in html.unescape(page.read_text(encoding="utf-8"))


def test_the_class_report_and_the_lms_gradebook(graded_class):
    out = graded_class["out"]
    report = (out / "report.html").read_text(encoding="utf-8")
    for section in ["<h3>Score distribution</h3>", "<h3>Pass rate per graded test cell</h3>",
                    "<h3>Pass rate per component</h3>", "<h3>Most common test messages</h3>",
                    "<h3>Students who need help</h3>", "<h2>Mistakes of the class, by misconception</h2>",
                    "<h2>Errors and submissions not graded</h2>", "<h2>Flags"]:
        assert report.count(section) == (len(ASSIGNMENTS) if section.startswith("<h3>") else 1), section
    assert report.count("<svg role=\"img\"") == 3 * len(ASSIGNMENTS)
    text = html.unescape(report)
    for assignment in ASSIGNMENTS:   # the class's most frequent mistake (from the results files) is listed
        messages = Counter()
        for result in map(json.loads, map(Path.read_text, (out / "results").glob("*.json"))):
            if result["assignment"] == assignment:
                messages.update((g, m) for g, s, t, m, _, outcome in result.get("cells", []) if s < t and m
                                and outcome not in ("not attempted", "not run"))
        best = max(messages.values(), default=0)   # the report counts a message per test cell
        assert best and any(m in text for (_, m), n in messages.items() if n == best)
    gradebook = read_csv(out / "gradebook.csv")
    students = {s for s, _ in graded_class["grades"]}
    assert {row["Student ID"] for row in gradebook} == students
    header = list(gradebook[0])
    assert header[0] == "Student ID" and header[-1].startswith("Total [")
    for row in gradebook:
        total = sum(float(row[h]) for h in header[1:-1])
        assert float(row[header[-1]]) == total
    assert read_csv(out / "flags.csv") is not None


def test_the_report_groups_the_class_by_misconception(graded_class):
    """Each misconception of misconceptions.csv is in the report with its number of students, most common first."""
    out = graded_class["out"]
    text = html.unescape((out / "report.html").read_text(encoding="utf-8"))
    section = text.split("<h2>Mistakes of the class, by misconception</h2>", 1)[1].split("<h2>", 1)[0]
    students = Counter()
    for key, group in groupby(sorted((r["misconception"], r["student_id"]) for r in read_csv(out / "misconceptions.csv")),
                              key=lambda pair: pair[0]):
        students[key] = len({s for _, s in group})
    assert students, "the mutants of the test class are recognised"
    rows = re.findall(r"<code>([^<]+)</code></td><td>[^<]*</td><td>(\d+)</td>", section)
    assert dict((key, int(n)) for key, n in rows) == dict(students)
    kinds = re.findall(r"<td rowspan='\d+'><strong>([^<]+)</strong><br>(\d+) students</td>", section)
    assert [kind for kind, _ in kinds] == list(dict.fromkeys(key.split(".", 1)[1] for key, _ in rows)), \
        "one group per kind of mistake, its misconceptions together"
    counts = [int(n) for _, n in kinds]
    assert counts == sorted(counts, reverse=True)




@pytest.mark.parametrize("assignment,name,misconception", [c for c in HEATMAP_CASES if c[0] in ASSIGNMENTS])
def test_feedback_shows_the_misconception_its_fix_and_heatmaps(graded_class, assignment, name, misconception):
    from autograder import diagnose, feedback
    from tests.conftest import SOLUTIONS
    student = next(s for s, m in graded_class["mutants"].items() if m[:2] == (assignment, name))
    page = html.unescape((graded_class["out"] / "feedback" / student / assignment / f"{assignment}.html")
                         .read_text(encoding="utf-8"))
    known = diagnose.misconceptions(SOLUTIONS / assignment, assignment)[misconception]
    assert f"Likely mistake [{misconception}]: {known.mistake}. How to fix it: {known.fix}." in page
    assert "the largest error of your weights is" in page
    assert f'alt="{feedback.HEATMAPS}"' in page, "no heatmaps of the weights"


@pytest.mark.quick
def test_one_kind_of_mistake_is_one_group_across_assignments():
    from autograder import diagnose, report
    from autograder.model import CellResult, ClassResults, Outcome, Status, SubmissionResult

    def result(student, assignment, key):
        return SubmissionResult(student, assignment, Status.GRADED, (CellResult("c", 0.0, 1.0, "m", key, outcome=Outcome.FAILED),))
    known = {key: diagnose.Misconception(key, f"mistake {key}", "fix it", "no-such-label", "a")
             for key in ("sdpa.mask-inverted", "mha.mask-inverted", "sdpa.unscaled")}
    results = ClassResults(submissions=[result("s1", "01", "sdpa.mask-inverted"), result("s2", "03", "mha.mask-inverted"),
                                        result("s3", "03", "mha.mask-inverted"), result("s1", "03", "sdpa.unscaled")],
                           misconceptions=known)
    page = report.report_html(results, [], [])
    assert re.findall(r"<td rowspan='(\d+)'><strong>([^<]+)</strong><br>(\d+) students", page) == [
        ("2", "mask-inverted", "3"), ("1", "unscaled", "1")]
    assert "no-such-label" not in page   # a label the book lacks gets no link


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_diagnostics_see_the_students_own_code_not_a_reference_left_bound(graded_class, assignment):
    """In the released notebook every visible test fails half-way, leaving the references of the hidden tests
    bound to the notebook's names; the diagnostics still judge the student's own stubs: not attempted."""
    from autograder import diagnose
    from tests.conftest import SOLUTIONS, solution_path
    import nbformat
    from autograder.course import components as owners
    components = set(owners(nbformat.read(solution_path(assignment), 4)).values())
    assert diagnose.checks(SOLUTIONS / assignment), f"{assignment} has no diagnostics"
    page = html.unescape((graded_class["out"] / "feedback" / "released" / assignment / f"{assignment}.html")
                         .read_text(encoding="utf-8"))
    assert page.count("Not attempted yet: the function still raises NotImplementedError.") == len(components)


@pytest.mark.parametrize("student", sorted(CHINESE_TWINS))
def test_a_chinese_submission_gets_the_score_of_the_same_code_in_english_with_chinese_feedback(graded_class, student):
    """The Chinese edition's notebook (its instructions, comments and messages in Chinese) is graded by the same
    tests to the same score, cell by cell, and its feedback page is in Chinese, with no hidden test in it."""
    from autograder import editions, feedback
    import nbformat
    from tests.conftest import solution_path
    assignment = chinese_submissions()[student][0]
    if assignment not in ASSIGNMENTS:
        pytest.skip(f"{assignment} is not graded in this run (TEST_ASSIGNMENTS)")
    twin = CHINESE_TWINS[student]
    scores = {(r["student_id"], r["grade_id"]): (r["score"], r["max_score"]) for r in graded_class["tests"]
              if r["assignment"] == assignment}
    ours = {g: s for (who, g), s in scores.items() if who == student}
    theirs = {g: s for (who, g), s in scores.items() if who == twin}
    assert ours and ours == theirs
    assert graded_class["grades"][(student, assignment)]["score"] == graded_class["grades"][(twin, assignment)]["score"]
    page = (graded_class["out"] / "feedback" / student / assignment / f"{assignment}.html").read_text(encoding="utf-8")
    assert '<html lang="zh-CN"' in page and "得分：" in page and "Score:" not in page
    text = feedback.normalise(html.unescape(re.sub(r"<[^>]+>", " ", page)))
    chinese_source = editions.translated_notebook(nbformat.read(solution_path(assignment), 4), assignment)
    hidden = feedback.secret_lines(chinese_source, [("BEGIN HIDDEN TESTS", "END HIDDEN TESTS")]) | \
        feedback.secret_lines(nbformat.read(solution_path(assignment), 4), [("BEGIN HIDDEN TESTS", "END HIDDEN TESTS")])
    assert not [line for line in hidden if line in text], f"{student}'s feedback shows hidden tests"
    instructions = next(c.source for c in nbformat.read(REPO / "zh" / "notebooks" / assignment / f"{assignment}.ipynb",
                                                        4).cells if c.cell_type == "markdown")
    assert feedback.normalise(instructions.splitlines()[0].lstrip("# ")) in text, "its instructions are not Chinese"


def test_a_chinese_mistake_is_diagnosed_in_chinese(graded_class):
    """The likely mistake and its fix, under a failed test of a Chinese submission, are the Chinese ones."""
    if "01_attention" not in ASSIGNMENTS:
        pytest.skip("01_attention is not graded in this run (TEST_ASSIGNMENTS)")
    from autograder import diagnose
    from autograder.editions import Edition
    from tests.conftest import SOLUTIONS
    _, name, mutant = graded_class["mutants"]["mutant-01_attention-000"]
    out = graded_class["out"] / "feedback"
    english = (out / "mutant-01_attention-000" / "01_attention" / "01_attention.html").read_text(encoding="utf-8")
    page = (out / "zh-mutant" / "01_attention" / "01_attention.html").read_text(encoding="utf-8")
    assert "✘" in page and " 分。" in page
    assert mutant.misconception and f"[{mutant.misconception}]" in english, f"{name}: no misconception named"
    known = diagnose.misconceptions(SOLUTIONS / "01_attention", "01_attention", Edition.ZH)[mutant.misconception]
    assert html.escape(known.mistake, quote=False) in page and html.escape(known.fix, quote=False) in page
    assert "可能的错误" in page and "Likely mistake" not in page


def test_the_class_report_links_resolve_in_the_built_book(graded_class, built_book):
    """The report's links to the book's sections (the book builds in the background from the run's start: tests/conftest.py)."""
    from tests.test_book import _anchor_exists
    page = (graded_class["out"] / "report.html").read_text(encoding="utf-8")
    links = re.findall(r'href="([^"]+)"', page)
    book = [link for link in links if "#" in link]
    assert book, "the report of the test class links to no section of the book"
    broken = [link for link in book if not _anchor_exists(link.replace("&amp;", "&"))]
    assert not broken, f"links of report.html that the built book does not resolve: {broken[:5]}"
