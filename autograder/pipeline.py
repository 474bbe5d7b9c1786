"""Grade a whole class: collect the submissions, build the scratch course once, grade the submissions
N at a time in worker processes (or on a Dask cluster), and merge the results for report.py.

Every graded submission leaves OUT/results/<key>.json (written atomically): running the same command
again after an interruption grades only what is missing, and a notebook that changed since is graded
again. The rows are rebuilt from those files, so each student and assignment appears exactly once.
"""
import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from autograder import course
from autograder.collect import collect


@dataclass
class Results:
    grades: list = field(default_factory=list)    # (student_id, assignment, score, max_score)
    tests: list = field(default_factory=list)     # (student_id, assignment, grade_id, score, max_score, message)
    errors: list = field(default_factory=list)    # (student_id, assignment, reason)
    flags: list = field(default_factory=list)     # (student_id, assignment, reason)

    def add(self, student_id, assignment, cells, error=None, flags=()):
        """Record one submission; `cells` are (grade_id, score, max_score, message)."""
        self.grades.append((student_id, assignment, sum(c[1] for c in cells), sum(c[2] for c in cells)))
        self.tests.extend((student_id, assignment, *cell) for cell in cells)
        if error:
            self.errors.append((student_id, assignment, error))
        self.flags.extend((student_id, assignment, reason) for reason in flags)

    def sort(self):
        for rows in (self.grades, self.tests, self.errors, self.flags):
            rows.sort(key=lambda row: (row[0], row[1]))


def _key(student_id, assignment):
    return hashlib.sha256(f"{student_id}\0{assignment}".encode()).hexdigest()[:24]


def _digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def local_executor(workers):
    """Worker processes forked from a server that has already imported nbgrader and torch's grader."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["autograder.grade"])
    return ProcessPoolExecutor(max_workers=workers, mp_context=context)


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
        print(f"\rgraded {self.done}/{self.total} submissions, {elapsed:.0f} s elapsed, ETA {eta:.0f} s   ",
              end=end, file=sys.stderr, flush=True)


def _run(jobs, make_executor, progress):
    """Run grade_job on every job. Student code runs in the sandbox, so a worker should never die; if
    one does, the jobs it left are graded again one at a time, and the one that kills its worker again
    gets an error row."""
    bar = Progress(len(jobs), enabled=progress)
    left = _run_pool(jobs, make_executor, bar)
    for job in left:
        if _run_pool([job], make_executor, bar):
            _write_error(job, "the grader's worker process died while grading this notebook")
            bar.step()


def _run_pool(jobs, make_executor, bar):
    """Grade `jobs` in one pool; returns the jobs without a result if the pool broke."""
    from autograder.grade import grade_job
    if not jobs:
        return []
    executor, futures = make_executor(), {}
    try:
        futures = {executor.submit(grade_job, job): job for job in jobs}
        for future in as_completed(futures):
            try:
                future.result()
            except BrokenProcessPool:
                return [job for job in jobs if not Path(job["result"]).exists()]
            except Exception as error:  # e.g. a Dask worker lost: record it, go on
                _write_error(futures[future], f"the grader's worker failed: {type(error).__name__}: {error}")
            bar.step()
        return []
    finally:
        for future in futures:
            future.cancel()
        executor.shutdown(wait=True)


def _write_error(job, reason):
    result = {"error": reason, "student_id": job["student_id"], "assignment": job["assignment"],
              "digest": job["digest"]}
    Path(job["result"]).parent.mkdir(parents=True, exist_ok=True)
    Path(job["result"]).write_text(json.dumps(result))


def grade_class(submissions, out, workers=None, timeout=600, cell_timeout=120, progress=True,
                make_executor=None, scratch=None):
    """Grade every submission under `submissions`, resuming from OUT/results; returns Results."""
    workers = workers or os.cpu_count() or 1
    make_executor = make_executor or (lambda: local_executor(workers))
    out = Path(out).resolve()
    jobs, problems = collect(submissions, course.assignments())
    scratch_root = Path(tempfile.mkdtemp(prefix="autograder-", dir=scratch))
    try:
        graded = {job.assignment for job in jobs} | {p.assignment for p in problems}
        course_dir = course.build_course(scratch_root / "course", only=graded)
        cells = {a: course.graded_cells(course_dir, a) for a in course.assignments() if a in graded}
        zeros = {a: [(gid, 0.0, points, "") for gid, points in cells[a]] for a in cells}

        todo, done = [], []
        for job in jobs:
            key = _key(job.student_id, job.assignment)
            spec = {"student_id": job.student_id, "assignment": job.assignment, "notebook": str(job.notebook.resolve()),
                    "digest": _digest(job.notebook), "course": str(course_dir),
                    "workdir": str(scratch_root / "jobs" / key), "timeout": timeout, "cell_timeout": cell_timeout,
                    "result": str(out / "results" / f"{key}.json"),
                    "feedback": str(out / "feedback" / job.student_id / job.assignment / f"{job.assignment}.html")}
            previous = Path(spec["result"])
            if previous.exists() and json.loads(previous.read_text()).get("digest") == spec["digest"]:
                done.append(spec)
            else:
                todo.append(spec)
        _run(todo, make_executor, progress)

        results = Results()
        for problem in problems:
            if problem.assignment in zeros:
                results.add(problem.student_id, problem.assignment, zeros[problem.assignment], problem.reason)
            else:
                results.errors.append((problem.student_id, problem.assignment, problem.reason))
        for spec in done + todo:
            result = json.loads(Path(spec["result"]).read_text())
            got = result.get("cells") or zeros[spec["assignment"]]
            results.add(spec["student_id"], spec["assignment"], [tuple(c) for c in got],
                        result.get("error"), result.get("flags", ()))
    finally:
        shutil.rmtree(scratch_root, ignore_errors=True)
    results.sort()
    return results
