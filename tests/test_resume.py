"""Repeatability: grading the same class twice gives identical grades, and a batch killed half-way
and run again finishes with every grade present exactly once (and the same as an uninterrupted run)."""
import os
import shutil
import signal
import subprocess
import sys
import time

import nbformat
import pytest

from tests.conftest import REPO, max_points, read_csv, run_grader, solution_path, with_cell_replaced
from tests.mutants import catalogue

ASSIGNMENT = "01_attention"


@pytest.fixture(scope="module")
def small_class(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    mutants = sorted(catalogue()[ASSIGNMENT].items())[:3]
    for i in range(3):
        folder = root / "submitted" / f"honest-{i}" / ASSIGNMENT
        folder.mkdir(parents=True)
        shutil.copy(solution_path(ASSIGNMENT), folder)
    for name, mutant in mutants:
        folder = root / "submitted" / name.replace("/", "-") / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(with_cell_replaced(ASSIGNMENT, mutant.cell, mutant.source), folder / f"{ASSIGNMENT}.ipynb")
    first = run_grader(root / "submitted", root / "first")
    assert first.returncode == 0, first.stderr
    return root


def rows(out):
    return [read_csv(out / name) for name in ("grades.csv", "tests.csv", "errors.csv", "flags.csv")]


def test_grading_twice_gives_identical_results(small_class):
    second = run_grader(small_class / "submitted", small_class / "second")
    assert second.returncode == 0, second.stderr
    assert rows(small_class / "second") == rows(small_class / "first")


def test_a_killed_batch_resumes_with_every_grade_once(small_class):
    out = small_class / "killed"
    command = [sys.executable, "-m", "autograder", "grade", str(small_class / "submitted"), "--out", str(out),
               "--workers", "2", "--quiet"]
    child = subprocess.Popen(command, cwd=REPO, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list((out / "results").glob("*.json"))) < 2:
        time.sleep(0.2)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    finished = len(list((out / "results").glob("*.json")))
    assert 2 <= finished < 6, f"the batch should have been killed half-way, {finished} of 6 were done"
    assert not (out / "grades.csv").exists()

    again = run_grader(small_class / "submitted", out)
    assert again.returncode == 0, again.stderr
    assert rows(out) == rows(small_class / "first")
    keys = [(r["student_id"], r["assignment"]) for r in read_csv(out / "grades.csv")]
    assert len(keys) == len(set(keys)) == 6


def test_a_changed_notebook_is_graded_again(small_class, tmp_path):
    submitted = tmp_path / "submitted"
    shutil.copytree(small_class / "submitted", submitted)
    out = tmp_path / "out"
    shutil.copytree(small_class / "first", out)           # as if this class had been graded before
    changed = submitted / "honest-0" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    mutant = catalogue()[ASSIGNMENT]["sdpa/unscaled"]
    nbformat.write(with_cell_replaced(ASSIGNMENT, mutant.cell, mutant.source), changed)
    process = run_grader(submitted, out)
    assert process.returncode == 0, process.stderr
    grades = {r["student_id"]: float(r["score"]) for r in read_csv(out / "grades.csv")}
    assert grades["honest-0"] < grades["honest-1"] == sum(max_points(ASSIGNMENT).values())
