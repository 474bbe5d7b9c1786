"""A worker process that dies or hangs (a fault of the grader, since student code runs in the sandbox)
costs that one submission a "not graded" row, never a score, never a cached result, never the batch or
anyone else's grade."""
import os
import time
from pathlib import Path

from autograder import pipeline
from autograder.grade import write_result
from autograder.model import CellResult, Job, Limits, Outcome, Status, SubmissionResult


def fake_grade(job):
    """Stands in for grade.grade_job: hangs or kills its worker for two of the students."""
    if job.student_id == "hangs":
        while True:
            pass
    if job.student_id == "dies":
        os._exit(1)
    result = SubmissionResult(job.student_id, job.assignment, Status.GRADED, (CellResult("cell", 1.0, 1.0, outcome=Outcome.PASSED),),
                              fingerprint=job.fingerprint)
    write_result(result, job.result)
    return result


def job(tmp_path, name, deadline=3):
    return Job(student_id=name, assignment="a", notebook="", fingerprint="f", course="", workdir="",
               result=str(tmp_path / f"{name}.json"), feedback="", limits=Limits(1, 1), deadline=deadline)


def test_a_dead_or_hung_worker_costs_one_not_graded_row(tmp_path):
    names = ["alice", "dies", "bob", "hangs", "carol", "dan"]
    jobs = [job(tmp_path, name) for name in names]
    start = time.monotonic()
    results = pipeline._run(jobs, lambda: pipeline.local_executor(2), progress=False, function=fake_grade)
    assert time.monotonic() - start < 90
    by_name = {j.student_id: results[j] for j in jobs}
    for name in ("alice", "bob", "carol", "dan"):
        assert by_name[name].status is Status.GRADED and by_name[name].score == 1.0, name
    for name in ("dies", "hangs"):
        assert by_name[name].status is Status.NOT_GRADED and by_name[name].cells == (), name
        assert "died or hung" in by_name[name].reason, name
        assert not (tmp_path / f"{name}.json").exists(), f"{name}: a failure of the grader must not be cached"
    assert not list(tmp_path.glob("*.started"))
    assert pipeline._cached(jobs[0]) == by_name["alice"]
    assert pipeline._cached(job(tmp_path, "dies")) is None
