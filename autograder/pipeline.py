"""Grade a whole class: collect the submissions, build the scratch course once, grade every
submission in its own process with N at a time, and merge the results into rows for report.py.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from autograder import course
from autograder.collect import collect

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Results:
    grades: list = field(default_factory=list)  # (student_id, assignment, score, max_score)
    tests: list = field(default_factory=list)   # (student_id, assignment, grade_id, score, max_score)
    errors: list = field(default_factory=list)  # (student_id, assignment, reason)

    def add(self, student_id, assignment, cells, error=None):
        """Record one submission; `cells` are (grade_id, score, max_score)."""
        self.grades.append((student_id, assignment, sum(c[1] for c in cells), sum(c[2] for c in cells)))
        self.tests.extend((student_id, assignment, *cell) for cell in cells)
        if error:
            self.errors.append((student_id, assignment, error))

    def sort(self):
        for rows in (self.grades, self.tests, self.errors):
            rows.sort(key=lambda row: (row[0], row[1]))


def run_job(job, course_dir, workdir, timeout):
    """Grade one job in a child process; returns (cells, error)."""
    workdir.mkdir(parents=True)
    job_file = workdir / "job.json"
    job_file.write_text(json.dumps({"course": str(course_dir), "workdir": str(workdir),
                                    "assignment": job.assignment, "notebook": str(job.notebook)}))
    with open(workdir / "grader.log", "wb") as log:
        child = subprocess.Popen([sys.executable, "-m", "autograder.grade", str(job_file)],
                                 cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            return None, f"timeout: grading took longer than {timeout:.0f} s"
    result_file = workdir / "result.json"
    if not result_file.exists():
        return None, f"the grader process died (exit status {child.returncode})"
    result = json.loads(result_file.read_text())
    return result.get("cells"), result.get("error")


class Progress:
    """One line on stderr: done/total and an estimate of the time left."""

    def __init__(self, total, enabled=True):
        self.total, self.done, self.start, self.enabled = total, 0, time.monotonic(), enabled

    def step(self):
        self.done += 1
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        end = "\n" if self.done == self.total or not sys.stderr.isatty() else ""
        print(f"\rgraded {self.done}/{self.total} submissions, {elapsed:.0f} s elapsed, "
              f"ETA {eta:.0f} s   ", end=end, file=sys.stderr, flush=True)


def grade_class(submissions, workers=None, timeout=600, progress=True):
    """Grade every submission under `submissions`; returns Results."""
    workers = workers or os.cpu_count() or 1
    jobs, problems = collect(submissions, course.assignments())
    results = Results()
    with tempfile.TemporaryDirectory(prefix="autograder-") as scratch:
        scratch = Path(scratch)
        graded = {job.assignment for job in jobs} | {p.assignment for p in problems}
        course_dir = course.build_course(scratch / "course", only=graded)
        cells = {a: course.graded_cells(course_dir, a) for a in course.assignments() if a in graded}
        zeros = {a: [(grade_id, 0.0, points) for grade_id, points in cells[a]] for a in cells}

        for problem in problems:
            if problem.assignment in zeros:
                results.add(problem.student_id, problem.assignment, zeros[problem.assignment], problem.reason)
            else:
                results.errors.append((problem.student_id, problem.assignment, problem.reason))

        bar = Progress(len(jobs), enabled=progress)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(run_job, job, course_dir, scratch / "jobs" / f"{i:05d}", timeout): job
                       for i, job in enumerate(jobs)}
            for future in as_completed(futures):
                job = futures[future]
                got, error = future.result()
                results.add(job.student_id, job.assignment, got or zeros[job.assignment], error)
                bar.step()
    results.sort()
    return results
