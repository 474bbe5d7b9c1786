"""A worker process that dies or hangs (a fault of the grader, since student code runs in the sandbox)
costs one error row for the submission it was grading, never the batch or anyone else's grade."""
import json
import os
import time
from pathlib import Path

from autograder import pipeline


def fake_grade(job):
    """Stands in for grade.grade_job: hangs or kills its worker for two of the students."""
    if job["student_id"] == "hangs":
        while True:
            pass
    if job["student_id"] == "dies":
        os._exit(1)
    result = {"cells": [["cell", 1.0, 1.0, ""]], "student_id": job["student_id"], "assignment": job["assignment"],
              "digest": job["digest"]}
    Path(job["result"]).write_text(json.dumps(result))


def test_a_dead_or_hung_worker_costs_one_error_row(tmp_path):
    names = ["alice", "dies", "bob", "hangs", "carol", "dan"]
    jobs = [{"student_id": name, "assignment": "a", "digest": "d", "deadline": 3,
             "result": str(tmp_path / f"{name}.json")} for name in names]
    start = time.monotonic()
    pipeline._run(jobs, lambda: pipeline.local_executor(2), progress=False, function=fake_grade)
    assert time.monotonic() - start < 90
    results = {name: json.loads((tmp_path / f"{name}.json").read_text()) for name in names}
    for name in ("alice", "bob", "carol", "dan"):
        assert results[name]["cells"] == [["cell", 1.0, 1.0, ""]], name
    for name in ("dies", "hangs"):
        assert "died or hung" in results[name]["error"], name
    assert not list(tmp_path.glob("*.started"))
