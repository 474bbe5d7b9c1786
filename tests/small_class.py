"""The small class of the end-to-end operations (tests/test_operations.py, tests/test_resume.py), graded once per
test session by conftest's `small_class` fixture, and the helpers that run the grader as an instructor does and
look at what it leaves behind."""
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from autograder.model import SubmissionResult
from tests.conftest import REPO, max_points, read_csv, solution_path, with_cell_replaced
from tests.proctree import children, descendants
from tests.mutants import catalogue

ASSIGNMENT = "01_attention"
FULL = sum(max_points(ASSIGNMENT).values())
FULL_TEXT = f"{FULL:g}"
MUTANTS = ("sdpa/unscaled", "masked_softmax/inverted_mask")
MUTANT_STUDENTS = tuple(name.replace("/", "-") for name in MUTANTS)   # their student folders


class Run:
    """One grader process with a TMPDIR of its own (short: kernel socket paths must stay under ~100
    bytes), so that everything it creates (scratch course, kernel sockets) and every process it starts can
    be found afterwards."""

    def __init__(self, submissions, out, *extra, workers=2, cwd=REPO):
        self.tmp = Path(tempfile.mkdtemp(prefix="agt-", dir="/tmp"))
        env = dict(os.environ, TMPDIR=str(self.tmp))
        command = [sys.executable, "-m", "autograder", "grade", str(submissions), "--out", str(out),
                   "--workers", str(workers), "--quiet", *extra]
        self.out = Path(out)
        self.process = subprocess.Popen(command, cwd=cwd, env=env, start_new_session=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait(self, timeout=600):   # a watchdog: five notebooks take about 40 s, but minutes on a loaded machine
        stdout, stderr = self.process.communicate(timeout=timeout)
        self.stderr = stderr
        return self.process.returncode

    def wait_for_results(self, count, timeout=600):   # returns as soon as they are there
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(list((self.out / "results").glob("*.json"))) < count:
            assert self.process.poll() is None, "the grader ended before it was stopped"
            time.sleep(0.1)

    def kill_a_worker_with_a_kernel(self, timeout=600):
        """SIGKILL one of the grader's worker processes while a kernel runs under it; returns its pid."""
        deadline, worker = time.monotonic() + timeout, None
        while worker is None and time.monotonic() < deadline:   # a worker with a kernel running under it
            for server in children(self.process.pid):
                for candidate in children(server):
                    if any(is_kernel(pid) for pid in descendants(candidate)):
                        worker = candidate
            time.sleep(0.1)
        assert worker, "no worker with a running kernel was found"
        os.kill(worker, 9)
        return worker

    def leftovers(self, wait=15):
        """Processes that mention this run's TMPDIR (workers, sandboxes, kernels) and files left in it."""
        deadline = time.monotonic() + wait
        while True:
            alive = processes_mentioning(str(self.tmp))
            files = sorted(str(p.relative_to(self.tmp)) for p in self.tmp.rglob("*"))
            if (not alive and not files) or time.monotonic() > deadline:
                shutil.rmtree(self.tmp, ignore_errors=True)
                return alive, files
            time.sleep(0.2)


def processes_mentioning(text):
    """[(pid, command line)] of every process (but this one) whose command line or environment holds `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline or text.encode() in environ:
            found.append((int(entry.name), cmdline.replace(b"\0", b" ").decode(errors="replace")[:200]))
    return found


def is_kernel(pid):
    """A notebook's kernel: forked by a zygote (its name), or started fresh (ipykernel_launcher)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "ag-kernel" or \
            b"ipykernel_launcher" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def grades(out):
    return {r["student_id"]: r["score"] for r in read_csv(Path(out) / "grades.csv")}


def outputs(out):
    return [read_csv(Path(out) / name) for name in ("grades.csv", "tests.csv", "errors.csv", "flags.csv")]


def results_on_disk(out):
    return [SubmissionResult.from_json(p.read_text()) for p in sorted((Path(out) / "results").glob("*.json"))]


class InProcessExecutor:
    """A concurrent.futures-like executor that runs each job at once, in this process (without the
    worker's watchdog alarm, which would replace pytest's own)."""

    def submit(self, in_worker, function, job):
        from concurrent.futures import Future
        future = Future()
        try:
            future.set_result((function(job), 0.0))
        except Exception as error:
            future.set_exception(error)
        return future

    def shutdown(self, wait=True, cancel_futures=False):
        pass


def make_small_class(root):
    """Three honest students and two mutants of ASSIGNMENT in root/submitted.

    First graded in this process on a worker that cannot sandbox (bubblewrap "missing"): every submission is
    "not graded", nothing is cached; that run's report is kept in root/not-graded/ and its results in
    root/not-graded.pickle (tests/test_operations.py checks them). Then the grader, as an instructor runs it,
    grades the class into the same folder, root/reference: every grade the failed run left out, and the
    reference of every other end-to-end test."""
    from autograder import pipeline, sandbox
    from autograder.report import write_report
    import pytest

    submitted = root / "submitted"
    for i in range(3):
        (submitted / f"honest-{i}" / ASSIGNMENT).mkdir(parents=True)
        shutil.copy(solution_path(ASSIGNMENT), submitted / f"honest-{i}" / ASSIGNMENT)
    for name, student in zip(MUTANTS, MUTANT_STUDENTS):
        mutant = catalogue()[ASSIGNMENT][name]
        folder = submitted / student / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(with_cell_replaced(ASSIGNMENT, mutant.cell, mutant.source), folder / f"{ASSIGNMENT}.ipynb")

    reference = root / "reference"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sandbox, "unavailable", lambda: "bwrap is not installed")
        results = pipeline.grade_class(submitted, reference, workers=1, progress=False,
                                       make_executor=InProcessExecutor)
    write_report(results, reference)
    shutil.copytree(reference, root / "not-graded")
    (root / "not-graded.pickle").write_bytes(pickle.dumps(results))

    run = Run(submitted, reference, workers=1)   # the runs compared with it have two
    assert run.wait() == 0, run.stderr
    assert run.leftovers() == ([], [])
    return root
