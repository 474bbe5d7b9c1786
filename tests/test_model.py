"""Unit tests of the grader's pure parts: the result records, the scoring policy, reading a submission,
choosing among several notebooks, repairing honest accidents, the command line's limits, fingerprints.
They run in well under a second: `pytest -m unit`."""
import argparse
import codecs
import copy
import json

import nbformat
import pytest

from autograder import pipeline
from autograder.__main__ import seconds
from autograder.collect import find_notebook, read_notebook
from autograder.model import MISSING_CELL, TAMPERED, CellResult, Limits, Outcome, Status, SubmissionResult, score_cells
from autograder.repair import repair

pytestmark = pytest.mark.unit
CANONICAL = [("a_visible", 1.0), ("a_hidden", 3.0), ("b_hidden", 2.0)]


# --- the scoring policy -------------------------------------------------------------------------------
def test_scores_are_the_earned_points_in_the_course_order():
    cells = score_cells(CANONICAL, {"b_hidden": 2.0, "a_hidden": 0.0, "a_visible": 1.0}, {"a_hidden": "unscaled"})
    assert cells == (CellResult("a_visible", 1.0, 1.0, "", outcome=Outcome.PASSED), CellResult("a_hidden", 0.0, 3.0, "unscaled", outcome=Outcome.FAILED),
                     CellResult("b_hidden", 2.0, 2.0, "", outcome=Outcome.PASSED))


def test_a_deleted_cell_scores_zero_out_of_its_course_points():
    cells = score_cells(CANONICAL, {"a_visible": 1.0, "a_hidden": 3.0}, {})
    assert cells[2] == CellResult("b_hidden", 0.0, 2.0, MISSING_CELL, outcome=Outcome.MISSING)
    assert sum(c.max_score for c in cells) == 6.0


def test_inflated_or_negative_points_are_capped():
    cells = score_cells(CANONICAL, {"a_visible": 50.0, "a_hidden": -4.0, "b_hidden": 2.0}, {})
    assert [c.score for c in cells] == [1.0, 0.0, 2.0]


def test_tampering_scores_every_cell_zero():
    cells = score_cells(CANONICAL, {"a_visible": 1.0, "a_hidden": 3.0, "b_hidden": 2.0}, {}, tampered=True)
    assert [c.score for c in cells] == [0.0, 0.0, 0.0] and {c.message for c in cells} == {TAMPERED}


# --- the result record --------------------------------------------------------------------------------
def test_a_result_survives_its_json_and_the_json_is_stable():
    result = SubmissionResult("O'Brien, ünïcode", "01_attention", Status.GRADED,
                              (CellResult("x", 1.0, 2.0, "rows do not sum to 1", outcome=Outcome.FAILED),), flags=("f",), fingerprint="abc")
    text = result.to_json()
    assert SubmissionResult.from_json(text) == result
    assert text == SubmissionResult.from_json(text).to_json()
    assert result.score == 1.0 and result.max_score == 2.0


@pytest.mark.parametrize("text", ["", "{", "[]", '{"status": "graded"}', json.dumps({
    "student_id": "s", "assignment": "a", "status": "excellent", "cells": [], "reason": "", "flags": [],
    "fingerprint": "", "sandboxed": True}), "[" * 100_000])
def test_an_unreadable_result_file_is_a_value_error(text):
    with pytest.raises(ValueError):
        SubmissionResult.from_json(text)


# --- reading a submission -------------------------------------------------------------------------------
def _notebook_json(**extra):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    return json.dumps(dict(notebook) | extra)


@pytest.mark.parametrize("content,reason", [
    (b"", "empty"),
    (b"   \n", "empty"),
    (b"\xff\xfe\x00garbage\x80", "not UTF-8"),
    (b'{"cells": [ oops', "broken JSON at line 1"),
    (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
    (b'[1, 2]', "no list of cells"),
    (b'"a string"', "no list of cells"),
    (b'{"cells": {}}', "no list of cells"),
    (b'{"cells": []}', "no cells"),
    (b'{"cells": [1], "nbformat": 4, "nbformat_minor": 5, "metadata": {}}', "not a valid notebook"),
    (b'{"cells": [{}], "nbformat": 3}', "nbformat 3"),
])
def test_a_broken_file_gives_a_reason_never_an_exception(tmp_path, content, reason):
    path = tmp_path / "n.ipynb"
    path.write_bytes(content)
    notebook, why = read_notebook(path)
    assert notebook is None and reason in why


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_a_notebook_in_any_unicode_encoding_with_its_byte_order_mark_is_read(tmp_path, encoding):
    path = tmp_path / "n.ipynb"
    text = _notebook_json()
    bom = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}.get(encoding, b"")
    path.write_bytes(bom + text.encode(encoding))
    notebook, why = read_notebook(path)
    assert why is None and notebook.cells[0].source == "x = 1"


def test_a_huge_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from autograder import collect
    monkeypatch.setattr(collect, "MAX_NOTEBOOK_BYTES", 10)
    path = tmp_path / "n.ipynb"
    path.write_text(_notebook_json())
    assert "larger than" in read_notebook(path)[1]


def _write_notebook(path, sources):
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources]), path)


def test_of_several_notebooks_the_one_with_the_work_is_chosen(tmp_path):
    _write_notebook(tmp_path / "01_attention.ipynb", ["raise NotImplementedError()", "raise NotImplementedError()"])
    _write_notebook(tmp_path / "01_attention (1).ipynb", ["def f():\n    return 1", "raise NotImplementedError()"])
    (tmp_path / "notes.ipynb").write_text("not json")
    choice = find_notebook(tmp_path, "01_attention")
    assert choice.cause is None and choice.notebook.name == "01_attention (1).ipynb"
    assert "graded 01_attention (1).ipynb" in choice.flags[0]


def test_of_equal_notebooks_the_expected_name_is_chosen(tmp_path):
    _write_notebook(tmp_path / "copy.ipynb", ["x = 1"])
    _write_notebook(tmp_path / "01_attention.ipynb", ["x = 1"])
    assert find_notebook(tmp_path, "01_attention").notebook.name == "01_attention.ipynb"


# --- repairing honest accidents ------------------------------------------------------------------------------
def _cell(grade_id, source, cell_type="code", **meta):
    cell = nbformat.v4.new_code_cell(source) if cell_type == "code" else nbformat.v4.new_markdown_cell(source)
    cell.metadata["nbgrader"] = {"grade_id": grade_id, "schema_version": 3, "grade": False, "locked": False,
                                 "solution": grade_id == "f", "task": False} | meta
    return cell


RELEASE = nbformat.v4.new_notebook(cells=[_cell("intro", "# Intro", "markdown", locked=True),
                                          _cell("f", "raise NotImplementedError()"),
                                          _cell("f_test", "assert f() == 1", grade=True, locked=True, points=1)])


def test_a_copied_solution_cell_keeps_the_released_copy_graded():
    notebook = nbformat.v4.new_notebook(cells=[RELEASE.cells[0], _cell("f", "def f():\n    return 1"),
                                               _cell("f", "def f():\n    return 2"), RELEASE.cells[2]])
    result = repair(notebook, RELEASE)
    repaired, notes = result.notebook, result.notes
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in repaired.cells]
    assert ids == ["intro", "f", None, "f_test"] and "copied cell" in notes[0]
    assert [c.source for c in repaired.cells][1:3] == ["def f():\n    return 1", "def f():\n    return 2"]


def test_a_copy_moved_away_is_told_from_the_cell_in_its_released_place():
    notebook = nbformat.v4.new_notebook(cells=[_cell("f", "old = 1"), RELEASE.cells[0], _cell("f", "def f(): ..."),
                                               RELEASE.cells[2]])
    repaired = repair(notebook, RELEASE).notebook
    assert [c.metadata.get("nbgrader", {}).get("grade_id") for c in repaired.cells] == [None, "intro", "f", "f_test"]


def test_submitted_metadata_is_replaced_by_the_released_one():
    forged = _cell("f_test", "assert True", grade=True, locked=False, points=100, schema_version=1)
    stranger = _cell("not_in_this_assignment", "x = 1", locked=True)
    notebook = nbformat.v4.new_notebook(cells=[RELEASE.cells[0], RELEASE.cells[1], forged, stranger])
    repaired = repair(notebook, RELEASE).notebook
    assert repaired.cells[2].metadata["nbgrader"] == RELEASE.cells[2].metadata["nbgrader"]
    assert "nbgrader" not in repaired.cells[3].metadata


def test_a_solution_cell_turned_into_markdown_is_turned_back():
    notebook = nbformat.v4.new_notebook(cells=[RELEASE.cells[0], _cell("f", "def f():\n    return 1", "markdown"),
                                               RELEASE.cells[2]])
    result = repair(notebook, RELEASE)
    repaired, notes = result.notebook, result.notes
    assert repaired.cells[1].cell_type == "code" and repaired.cells[1].outputs == []
    assert "turned back into code" in notes[0]


def test_an_old_notebook_without_cell_ids_or_with_duplicated_ids_is_upgraded():
    notebook = copy.deepcopy(RELEASE)
    notebook.nbformat_minor = 2
    for cell in notebook.cells:
        cell.pop("id", None)
        cell.metadata["nbgrader"].pop("schema_version")
    repaired = repair(notebook, RELEASE).notebook
    assert repaired.nbformat_minor == 5 and len({c.id for c in repaired.cells}) == 3
    assert all(c.metadata["nbgrader"]["schema_version"] == 3 for c in repaired.cells)
    notebook = copy.deepcopy(RELEASE)
    for cell in notebook.cells:
        cell.id = "same"
    assert len({c.id for c in repair(notebook, RELEASE).notebook.cells}) == 3


# --- the command line's limits and the fingerprint ------------------------------------------------------------
@pytest.mark.parametrize("text", ["0", "-200", "nan", "inf", "-inf", "ten", ""])
def test_a_limit_must_be_a_positive_number_of_seconds(text):
    with pytest.raises(argparse.ArgumentTypeError):
        seconds(text)


def test_a_fractional_limit_is_kept():
    assert seconds("0.5") == 0.5


def test_the_fingerprint_changes_with_everything_that_decides_a_result(tmp_path):
    notebook = tmp_path / "n.ipynb"
    notebook.write_text("one")
    base = ("assignment", "grader", Limits(600, 120), True)
    reference = pipeline.fingerprint(notebook, *base)
    assert pipeline.fingerprint(notebook, *base) == reference
    assert pipeline.fingerprint(notebook, *base, secret="another course") != reference, "the secret does not count"
    assert pipeline.fingerprint(notebook, *base, flags=("Canvas marked it LATE",)) != reference, \
        "the flags known before grading do not count: a cached result would keep another hand-in's flags"
    assert pipeline.fingerprint(notebook, *base, flags=("a", "b")) == pipeline.fingerprint(notebook, *base, flags=("b", "a"))
    for i, other in enumerate(["other assignment", "other grader", Limits(601, 120), False]):
        changed = list(base)
        changed[i] = other
        assert pipeline.fingerprint(notebook, *changed) != reference, f"argument {i} does not count"
    assert pipeline.fingerprint(notebook, "assignment", "grader", Limits(600, 121), True) != reference, \
        "the cell limit does not count"
    notebook.write_text("two")
    assert pipeline.fingerprint(notebook, *base) != reference


def _small_course(root):
    """What the grader's version and an assignment's version are digests of, made small."""
    (root / "autograder").mkdir(parents=True)
    (root / "autograder" / "grade.py").write_text("GRADER = 1\n")
    (root / "nbgrader_config.py").write_text("c = get_config()\n")
    (root / "requirements.txt").write_text("torch==2.13.0\n")
    (root / "solutions" / "01_x").mkdir(parents=True)
    (root / "solutions" / "01_x" / "01_x.ipynb").write_text('{"points": 1}')
    return root


@pytest.mark.parametrize("edit", ["autograder/grade.py", "autograder/new_module.py", "nbgrader_config.py",
                                  "requirements.txt"])
def test_a_change_of_the_graders_code_configuration_or_pins_is_a_new_version(tmp_path, monkeypatch, edit):
    root = _small_course(tmp_path)
    monkeypatch.setattr(pipeline.course, "REPO", root)
    before = pipeline.grader_version()
    assert pipeline.grader_version() == before, "the version is not a digest"
    path = root / edit
    path.write_text((path.read_text() if path.exists() else "") + "# v2\n")
    assert pipeline.grader_version() != before, f"a change of {edit} is not a new grader version"


@pytest.mark.parametrize("edit", ["01_x/01_x.ipynb", "01_x/data.csv"])
def test_a_change_of_an_assignments_folder_is_a_new_version_of_it(tmp_path, monkeypatch, edit):
    root = _small_course(tmp_path)
    monkeypatch.setattr(pipeline.course, "SOLUTIONS", root / "solutions")
    before = pipeline.assignment_version("01_x")
    checkpoint = root / "solutions" / "01_x" / ".ipynb_checkpoints" / "01_x-checkpoint.ipynb"
    checkpoint.parent.mkdir()
    checkpoint.write_text("saved by JupyterLab")
    assert pipeline.assignment_version("01_x") == before, "a checkpoint is not the assignment"
    path = root / "solutions" / edit
    path.write_text((path.read_text() if path.exists() else "") + "2")
    assert pipeline.assignment_version("01_x") != before, f"a change of {edit} is not a new version"


def test_the_courses_secret_is_made_once_readable_by_its_owner_only(tmp_path, monkeypatch):
    from autograder import course
    monkeypatch.delenv(course.SECRET_VARIABLE, raising=False)
    monkeypatch.setattr(course, "SECRET_FILE", tmp_path / "autograder-secret.txt")
    made = course.secret()
    assert len(made) == 64 and course.secret() == made, "a regrade must mix the same secret"
    assert (tmp_path / "autograder-secret.txt").stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv(course.SECRET_VARIABLE, "from the environment")
    assert course.secret() == "from the environment"


def test_each_cell_says_what_became_of_it_whatever_its_message():
    """The outcome comes from the error the cell ended with, never from the words of its message: a student's
    message that begins like a stub's changes nothing, and a stub is 'not attempted' whatever it says."""
    errors = {"a_visible": "NotImplementedError", "a_hidden": "AssertionError", "b_hidden": "NotExecuted"}
    messages = {"a_visible": "NotImplementedError: ", "a_hidden": "NotImplementedError: said the student",
                "b_hidden": "this cell never ran"}
    cells = score_cells(CANONICAL, {"a_visible": 0.0, "a_hidden": 0.0, "b_hidden": 0.0}, messages, errors=errors)
    assert [c.outcome for c in cells] == [Outcome.NOT_ATTEMPTED, Outcome.FAILED, Outcome.NOT_RUN]
    assert score_cells(CANONICAL, {"a_visible": 1.0, "a_hidden": 3.0, "b_hidden": 2.0}, {}, errors=errors)[0].outcome \
        is Outcome.PASSED, "a cell with its points passed, whatever error a later line printed"
    assert {c.outcome for c in score_cells(CANONICAL, {}, {}, tampered=True)} == {Outcome.TAMPERED}


def test_a_result_keeps_its_outcomes_through_its_file():
    cells = score_cells(CANONICAL, {"a_visible": 0.0, "a_hidden": 1.0}, {"a_visible": "NotImplementedError"},
                        errors={"a_visible": "NotImplementedError"})
    result = SubmissionResult("s", "a", Status.GRADED, cells)
    assert SubmissionResult.from_json(result.to_json()) == result
    assert [c.outcome for c in cells] == [Outcome.NOT_ATTEMPTED, Outcome.FAILED, Outcome.MISSING]
