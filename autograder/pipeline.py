"""Grade a whole class: collect the submissions, build the scratch course once, grade the submissions
N at a time in worker processes (or on a Dask cluster), and merge the results for report.py.

Every graded submission leaves OUT/results/<key>.json (written atomically): running the same command
again after an interruption grades only what is missing, and a notebook that changed since is graded
again. The rows are rebuilt from those files, so each student and assignment appears exactly once.
"""
import hashlib
import json
import multiprocessing
import multiprocessing.forkserver
import os
import shutil
import signal
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from autograder import course
from autograder.collect import collect


GRACE = 120  # seconds a worker may spend on a job beyond the notebook's timeout (nbgrader, feedback)


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


WORKER_MODULES = ["autograder.grade"]  # imported once, by the server the workers are forked from


def local_executor(workers):
    """Worker processes forked from a server that has already imported nbgrader, nbclient and the grader."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WORKER_MODULES)
    return ProcessPoolExecutor(max_workers=workers, mp_context=context)


def start_forkserver():
    """Start local_executor's server now, so that its imports overlap the building of the course."""
    multiprocessing.get_context("forkserver").set_forkserver_preload(WORKER_MODULES)
    multiprocessing.forkserver.ensure_running()


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


def _run(jobs, make_executor, progress, function=None):
    """Run `function` (grade_job) on every job. Student code runs in the sandbox, so a worker should never
    die or hang; if one does, its pool breaks. The jobs that had started then are graded again one at a
    time, and one that breaks its worker again gets an error row; the others go on in a new pool."""
    if function is None:
        from autograder.grade import grade_job as function
    bar = Progress(len(jobs), enabled=progress)
    left = _run_pool(jobs, make_executor, bar, function)
    while left:
        suspects = [job for job in left if _started(job).exists()]
        for job in suspects:
            _started(job).unlink()
            if _run_pool([job], make_executor, bar, function):
                _write_error(job, f"the grader's worker process died or hung (over {job['deadline']} s) "
                                  f"while grading this notebook")
                bar.step()
        others = [job for job in left if job not in suspects]
        if not suspects:  # the pool broke before any job started: the workers themselves cannot run
            for job in others:
                _write_error(job, "the grader's worker processes could not start")
                bar.step()
            return
        left = _run_pool(others, make_executor, bar, function)


def _started(job):
    return Path(job["result"]).with_suffix(".started")


def _in_worker(function, job):
    """Run function(job) in a worker process. A worker whose job runs past job["deadline"] seconds kills
    itself (SIGALRM's default action), so that a grader that hangs cannot stall the batch."""
    marker = _started(job)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    try:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)  # the default action kills, even inside C code
    except ValueError:
        pass  # not the main thread (a Dask worker's): the default stands
    signal.alarm(int(job["deadline"]))
    try:
        return function(job)
    finally:
        signal.alarm(0)
        marker.unlink(missing_ok=True)


def _run_pool(jobs, make_executor, bar, function):
    """Run `jobs` in one pool; returns the jobs without a result if the pool broke."""
    if not jobs:
        return []
    executor, futures = make_executor(), {}
    try:
        futures = {executor.submit(_in_worker, function, job): job for job in jobs}
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
    _started(job).unlink(missing_ok=True)


def grade_class(submissions, out, workers=None, timeout=600, cell_timeout=120, progress=True,
                make_executor=None, scratch=None):
    """Grade every submission under `submissions`, resuming from OUT/results; returns Results."""
    workers = workers or os.cpu_count() or 1
    if make_executor is None:
        start_forkserver()
        make_executor = lambda: local_executor(workers)  # noqa: E731
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
                    "deadline": timeout + GRACE,
                    "result": str(out / "results" / f"{key}.json"),
                    "feedback": str(out / "feedback" / job.student_id / job.assignment / f"{job.assignment}.html")}
            _started(spec).unlink(missing_ok=True)  # left by a batch that was killed
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
