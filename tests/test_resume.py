"""Repeatability: a batch killed half-way (SIGKILL to the grader, its workers and their kernels: no cleanup at all)
and run again finishes with every grade present exactly once, the same as an uninterrupted run.

The class is conftest's small class (tests/small_class.py), graded once per session for every end-to-end
operation. That grading twice gives identical results is proven on it by every test that grades it again and
compares with its reference (this one; in tests/test_operations.py the Ctrl-C test, whose two runs grade every
submission again, and the Dask test); that a changed notebook, and only it, is graded again by
tests/test_operations.py's regrading test."""
import os
import signal
import subprocess
import sys
import time

from tests.conftest import REPO, read_csv, run_grader
from tests.small_class import outputs


def test_a_killed_batch_resumes_with_every_grade_once(small_class, tmp_path):
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "autograder", "grade", str(small_class / "submitted"), "--out", str(out),
               "--workers", "2", "--quiet"]
    child = subprocess.Popen(command, cwd=REPO, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600   # left as soon as two results are there: minutes only on a loaded machine
    while time.monotonic() < deadline and len(list((out / "results").glob("*.json"))) < 2:
        time.sleep(0.2)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    finished = len(list((out / "results").glob("*.json")))
    assert 2 <= finished < 5, f"the batch should have been killed half-way, {finished} of 5 were done"
    assert not (out / "grades.csv").exists()

    again = run_grader(small_class / "submitted", out)
    assert again.returncode == 0, again.stderr
    ran = (out / "timings.log").read_text().splitlines()[1:]
    assert len(ran) == 5 - finished, "the rerun must grade exactly the submissions that were not graded"
    assert outputs(out) == outputs(small_class / "reference")
    keys = [(r["student_id"], r["assignment"]) for r in read_csv(out / "grades.csv")]
    assert len(keys) == len(set(keys)) == 5
