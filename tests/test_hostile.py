"""Hostile and broken submissions (tests/hostile/) graded in one batch with honest ones: the batch
finishes and exits 0, honest students get exactly their marks, no attack gains points (or it is
flagged), broken runs are listed with a reason, and no feedback page shows a hidden test."""
import socket
import threading

import nbformat
import pytest

from autograder import feedback
from tests.conftest import read_csv, run_grader, solution_path
from tests.hostile import ASSIGNMENT, CASES, FULL, build


@pytest.fixture(scope="module")
def hostile_batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    submissions, out = root / "submitted", root / "out"
    for name, case in CASES.items():
        folder = submissions / name / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(build(case), folder / f"{ASSIGNMENT}.ipynb")
    # A server on the host's loopback: a sandboxed notebook must not reach it.
    hits = []
    server = socket.create_server(("127.0.0.1", 47615))
    server.settimeout(0.5)

    def listen():
        while not stop.is_set():
            try:
                connection, _ = server.accept()
                hits.append(connection.recv(100))
                connection.close()
            except OSError:
                pass
    stop = threading.Event()
    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    try:
        process = run_grader(submissions, out, 2, "--timeout", "30", "--cell-timeout", "6")
    finally:
        stop.set()
        thread.join()
        server.close()
    return {"process": process, "out": out, "hits": hits,
            "grades": {r["student_id"]: float(r["score"]) for r in read_csv(out / "grades.csv")},
            "max": {r["student_id"]: float(r["max_score"]) for r in read_csv(out / "grades.csv")},
            "errors": {r["student_id"]: r["reason"] for r in read_csv(out / "errors.csv")},
            "flags": [(r["student_id"], r["reason"]) for r in read_csv(out / "flags.csv")]}


def test_the_batch_finishes_and_exits_zero(hostile_batch):
    assert hostile_batch["process"].returncode == 0, hostile_batch["process"].stderr
    assert sorted(hostile_batch["grades"]) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_no_case_gains_points(hostile_batch, name):
    case, score = CASES[name], hostile_batch["grades"][name]
    assert hostile_batch["max"][name] == FULL, "the maximum score must not change"
    if case.exact is not None:
        assert score == case.exact, f"{name} scored {score}, expected {case.exact}"
    assert score <= case.max_score, f"{name} scored {score}, more than {case.max_score}"
    if case.flag and name not in hostile_batch["errors"]:
        reasons = [reason for student, reason in hostile_batch["flags"] if student == name]
        assert any(case.flag in reason for reason in reasons), f"{name} not flagged for {case.flag!r}: {reasons}"
    if case.error:
        assert case.error in hostile_batch["errors"].get(name, ""), hostile_batch["errors"]


def test_honest_students_are_neither_flagged_nor_listed(hostile_batch):
    for name in ("honest", "honest-too"):
        assert name not in hostile_batch["errors"]
        assert not [reason for student, reason in hostile_batch["flags"] if student == name]


def test_no_notebook_reaches_the_network_of_the_host(hostile_batch):
    assert hostile_batch["hits"] == []


def test_no_feedback_page_shows_a_hidden_test(hostile_batch):
    hidden = feedback.secret_lines(nbformat.read(solution_path(ASSIGNMENT), 4), [("BEGIN HIDDEN TESTS", "END HIDDEN TESTS")])
    assert len(hidden) > 20
    pages = sorted((hostile_batch["out"] / "feedback").rglob("*.html"))
    assert len(pages) >= len(CASES) - len(hostile_batch["errors"])
    for page in pages:
        text = feedback.normalise(page.read_text(encoding="utf-8").replace("&quot;", '"').replace("&#39;", "'")
                                  .replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
        leaked = [line for line in hidden if line in text]
        assert not leaked, f"{page.parent.parent.name}'s feedback shows hidden tests: {leaked[:2]}"


def test_the_history_spy_did_see_hidden_tests_so_the_filter_was_needed(hostile_batch):
    page = hostile_batch["out"] / "feedback" / "history-spy" / ASSIGNMENT / f"{ASSIGNMENT}.html"
    assert "output removed by the grader" in page.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ["print-megabytes", "print-flood"])
def test_feedback_is_small_even_when_a_notebook_prints_megabytes(hostile_batch, name):
    page = hostile_batch["out"] / "feedback" / name / ASSIGNMENT / f"{ASSIGNMENT}.html"
    assert page.stat().st_size < 3_000_000
