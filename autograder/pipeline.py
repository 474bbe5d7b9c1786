"""Grade a whole class: read the submissions (autograder/intake.py), build the scratch course once, grade the
submissions N at a time in worker processes (or on a Dask cluster), and merge the results for report.py.

Every graded submission leaves OUT/results/<key>.json (written atomically). Running the same command
again grades only what is missing or changed: a result is reused only when its fingerprint (the
submission, the assignment's source folder, the grader's version and the limits) is unchanged. A
failure of the grader (a worker that died, a lost Dask worker, Ctrl-C) is never written: those
submissions are "not graded" and are graded again next time. Each student and assignment appears
exactly once.

Once every result is in, fresh or cached, the instructor's word is applied to them all (autograder/policy.py:
overrides, deadlines, extensions, the late penalty; the times from --times or nbgrader's timestamp.txt): never
stored in OUT/results/, so that it holds whatever the instructor's files say at this run. OUT is the instructor's
only (0700, made so before any worker writes in it).

OUT holds one class, the one in SUBMISSIONS: when a batch has finished, the files that the grader wrote into OUT for
a student and assignment that this run did not find (their feedback page, result file and kernel output) are
removed (stale_outputs decides which), so that no page or result of a student who is gone, or who now handed in
nothing, is left beside the new CSV files. A file the grader did not write is never touched, and a run that finds
no submission at all removes nothing.
"""
import functools
import hashlib
import math
import multiprocessing
import multiprocessing.forkserver
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

from autograder import course, editions, mistakes, outputs, policy, similarity
from autograder.collect import read_file, read_notebook
from autograder.editions import Edition
from autograder.intake import Intake, gather
from autograder.model import ClassResults, FileId, Job, Limits, Status, SubmissionResult, zero_cells
from autograder.sandbox import remove_orphaned_socket_folders

from autograder.roster import Roster

if TYPE_CHECKING:
    from nbformat import NotebookNode



MakeExecutor = Callable[[], Executor]               # a new pool of workers (local processes, or a Dask cluster)
GradeFunction = Callable[[Job], SubmissionResult]   # what a worker runs on a job (grade.grade_job)
Timing = tuple[str, str, float]                     # student_id, assignment, seconds


def _digest_files(paths: Iterable[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def grader_version() -> str:
    """A digest of what decides how a notebook is graded: the grader's code, nbgrader's configuration and
    the pinned packages. A result graded by another version is graded again."""
    root = course.REPO
    files = list((root / "autograder").glob("*.py")) + [root / "nbgrader_config.py", root / "requirements.txt"]
    return _digest_files([f for f in files if f.is_file()], root)


def assignment_version(assignment: str) -> str:
    """A digest of the assignment's source folder (its notebook: tests, points; and what lies beside it) and of
    its translations (the Chinese notebook, mistakes and grader messages: the feedback of a Chinese submission)."""
    folder = course.SOLUTIONS / assignment
    files = [p for p in folder.rglob("*") if p.is_file() and not any(part in {".ipynb_checkpoints", "__pycache__"}
                                                                     for part in p.parts)]
    translations = [editions.notebook_translation(assignment), editions.mistakes_translation(assignment),
                    editions.GRADER_MESSAGES]
    return _digest_files(files, course.SOLUTIONS) + _digest_files([p for p in translations if p.is_file()],
                                                                   course.REPO)


def _course_key(version: str, digests: dict[str, str], assignments: Collection[str]) -> str:
    """What a scratch course of `assignments` is built from (course.cached_course): the grader's version and each
    assignment's (its folder and its translations). A name that is no assignment (a stray folder) builds nothing."""
    parts = [version] + [f"{a}\0{digests[a]}" for a in sorted(assignments) if a in digests]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def _edition(notebook: str | os.PathLike[str], file_id: FileId | None, assignment: str) -> Edition:
    """The edition of a submission (autograder/editions.py `detect`): English unless its instructions are the
    Chinese edition's. A notebook that cannot be read is English (its grading says why)."""
    if not editions.has_translation(assignment):
        return Edition.EN
    submitted, _ = read_notebook(notebook, file_id)
    if submitted is None:
        return Edition.EN
    return editions.detect(submitted, _solutions(assignment))


@functools.cache
def _solutions(assignment: str) -> "dict[Edition, NotebookNode]":
    """The solution notebook of an assignment in each edition (their instructions are the releases')."""
    import nbformat
    english = nbformat.read(course.SOLUTIONS / assignment / f"{assignment}.ipynb", as_version=4)
    return {Edition.EN: english, Edition.ZH: editions.translated_notebook(english, assignment)}


def fingerprint(notebook: str | os.PathLike[str], assignment_digest: str, version: str, limits: Limits,
                sandbox: bool, file_id: FileId | None = None, secret: str = "", flags: Iterable[str] = ()) -> str:
    """Everything that decides a result; a cached result is reused only when its fingerprint is equal.
    The notebook is read as collect checked it (no link followed; with `file_id`, only that very file).
    The course's secret counts through its hash (it decides the tests' inputs), and so do the flags known before
    grading (how the notebook was found: one folder off, marked late by the LMS, picked among several), which the
    result carries: a cached result never keeps the flags of another way of handing the same notebook in."""
    data, reason = read_file(notebook, file_id)
    parts = [hashlib.sha256(data if data is not None else f"unreadable: {reason}".encode()).hexdigest(), assignment_digest, version,
             repr(float(limits.notebook)), repr(float(limits.cell)), repr(bool(sandbox)),
             hashlib.sha256(f"secret\0{secret}".encode()).hexdigest(), repr(sorted(flags))]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


WORKER_MODULES = ["autograder.grade"]  # imported once, by the server the workers are forked from


def _worker_setup(prewarm: bool = False) -> None:
    """In each local worker: Ctrl-C is the main process's to handle (it stops the workers itself), and
    SIGTERM unwinds the job (its kernel and scratch folder are removed on the way out). With `prewarm`, the
    worker's zygote starts importing now, while the course is built and the first job is sent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    import torch
    torch.set_num_threads(1)   # as each kernel: workers side by side, and the verdicts' tensors are small
    if prewarm:
        from autograder import forked
        forked.prewarm()


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> NoReturn:
    raise SystemExit(128 + signum)


def local_executor(workers: int, prewarm: bool = False) -> ProcessPoolExecutor:
    """Worker processes forked from a server that has already imported nbgrader, nbclient and the grader."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WORKER_MODULES)
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_setup,
                               initargs=(prewarm,))


def _ready() -> None:
    """A job that does nothing: handed to each worker of a pool as it starts, so that every worker is spawned
    (and its zygote starts importing) at once."""


class PrestartedPool:
    """make_executor for local workers whose first pool starts in the background, while the course is built:
    its workers are forked and their zygotes import torch meanwhile. Later calls (a pool that broke) get a new
    pool; `close()` shuts down a first pool that was never asked for."""

    def __init__(self, workers: int, prewarm: bool) -> None:
        self.workers, self.prewarm = workers, prewarm
        self.pool: ProcessPoolExecutor | None = None
        self.thread: threading.Thread | None = threading.Thread(target=self._start, name="autograder-prestart",
                                                                daemon=True)
        self.thread.start()

    def _start(self) -> None:
        pool = local_executor(self.workers, self.prewarm)
        try:
            for _ in range(self.workers):
                pool.submit(_ready)
        except Exception:   # a pool that cannot start says so when it is used
            pass
        self.pool = pool

    def __call__(self) -> ProcessPoolExecutor:
        if self.thread is not None:
            self.thread.join()
            self.thread, pool, self.pool = None, self.pool, None
            if pool is not None:
                return pool
        return local_executor(self.workers, self.prewarm)

    def close(self) -> None:
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None


def start_forkserver() -> None:
    """Start local_executor's server now, so that its imports overlap the building of the course."""
    multiprocessing.get_context("forkserver").set_forkserver_preload(WORKER_MODULES)
    multiprocessing.forkserver.ensure_running()


class Progress:
    """One line on stderr: done/total and an estimate of the time left."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        self.total, self.done, self.start, self.enabled = total, 0, time.monotonic(), enabled

    def step(self) -> None:
        self.done += 1
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        end = "\n" if self.done == self.total or not sys.stderr.isatty() else ""
        print(f"\rgraded {self.done}/{self.total} submissions, {elapsed:.0f} s elapsed, ETA {eta:.0f} s   ",
              end=end, file=sys.stderr, flush=True)


def _not_graded(job: Job, reason: str) -> SubmissionResult:
    return SubmissionResult(job.student_id, job.assignment, Status.NOT_GRADED, reason=reason,
                            flags=tuple(job.flags), fingerprint=job.fingerprint, sandboxed=job.sandbox)


def _grade_job(job: Job) -> SubmissionResult:
    """grade.grade_job, imported where it runs, in a worker: it imports torch, which the main process never needs."""
    from autograder.grade import grade_job
    return grade_job(job)


def _run(jobs: list[Job], make_executor: MakeExecutor, progress: bool, function: GradeFunction | None = None,
         timings: list[Timing] | None = None) -> dict[Job, SubmissionResult]:
    """Run `function` (grade_job) on every job; returns {job: SubmissionResult}.

    Student code runs in the sandbox, so a worker should never die or hang; if one does, its pool
    breaks. The jobs that had started then are graded again one at a time; one that breaks its worker
    again is "not graded" (the grader's failure, not the student's); the others go on in a new pool.
    """
    if function is None:
        function = _grade_job
    bar = Progress(len(jobs), enabled=progress)
    results: dict[Job, SubmissionResult] = {}
    left = _run_pool(jobs, make_executor, bar, function, results, timings)
    while left:
        suspects = [job for job in left if _started(job).exists()]
        for job in suspects:
            _started(job).unlink()
            if _run_pool([job], make_executor, bar, function, results, timings):
                _started(job).unlink(missing_ok=True)
                results[job] = _not_graded(job, f"the grader's worker process died or hung (over {job.deadline:g} s) "
                                                f"while grading this notebook")
                bar.step()
        others = [job for job in left if job not in suspects]
        if not suspects:  # the pool broke before any job started: the workers themselves cannot run
            for job in others:
                results[job] = _not_graded(job, "the grader's worker processes could not start")
                bar.step()
            break
        left = _run_pool(others, make_executor, bar, function, results, timings)
    remove_orphaned_socket_folders()
    return results


def _started(job: Job) -> Path:
    return Path(job.result).with_name(Path(job.result).stem + ".started")


# One grading at a time per process: nbgrader keeps state in the process's environment
# (NBGRADER_EXECUTION) and the watchdog below is a process-wide alarm, so a Dask worker with several
# threads grades one notebook at a time (start Dask workers with --nthreads 1 and one --nworkers per core).
_ONE_AT_A_TIME = threading.Lock()


def _in_worker(function: GradeFunction, job: Job) -> tuple[SubmissionResult, float]:
    """Run function(job) in a worker; returns (result, seconds). A worker whose job runs past job.deadline
    seconds kills itself (SIGALRM's default action), so that a grader that hangs cannot stall the batch."""
    with _ONE_AT_A_TIME:
        marker = _started(job)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        try:
            signal.signal(signal.SIGALRM, signal.SIG_DFL)  # the default action kills, even inside C code
        except ValueError:
            pass  # not the main thread (a Dask worker's): the default stands
        start = time.perf_counter()
        signal.alarm(max(1, math.ceil(job.deadline)))
        try:
            return function(job), time.perf_counter() - start
        finally:
            signal.alarm(0)
            marker.unlink(missing_ok=True)


def _stop_workers(executor: ProcessPoolExecutor) -> None:
    """End a local pool's workers now: SIGTERM (each removes its kernel on the way out), then SIGKILL."""
    processes = list((getattr(executor, "_processes", None) or {}).values())
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + 10
    for process in processes:
        process.join(max(0.1, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
    remove_orphaned_socket_folders()  # a worker killed outright leaves its kernels' socket folders


def _run_pool(jobs: list[Job], make_executor: MakeExecutor, bar: Progress, function: GradeFunction,
              results: dict[Job, SubmissionResult], timings: list[Timing] | None) -> list[Job]:
    """Run `jobs` in one pool, adding to `results`; returns the jobs without a result if the pool broke."""
    if not jobs:
        return []
    executor, stopped = make_executor(), False
    futures: dict[Future[tuple[SubmissionResult, float]], Job] = {}
    try:
        try:
            for job in jobs:
                futures[executor.submit(_in_worker, function, job)] = job
        except BrokenProcessPool:
            pass  # a worker died while the jobs were handed out: what has no result is run again below
        for future in as_completed(futures):
            job = futures[future]
            try:
                results[job], seconds = future.result()
                if timings is not None:
                    timings.append((job.student_id, job.assignment, seconds))
            except BrokenProcessPool:
                break
            except Exception as error:  # e.g. a Dask worker lost: not graded, graded again next time
                results[job] = _not_graded(job, f"the grader's worker failed: {type(error).__name__}: {error}")
            bar.step()
        return [job for job in jobs if job not in results]
    except BaseException:  # Ctrl-C, SIGTERM: abandon the jobs in flight (nothing of theirs is recorded)
        stopped = True
        if isinstance(executor, ProcessPoolExecutor):
            _stop_workers(executor)
        raise
    finally:
        for future in futures:
            future.cancel()
        executor.shutdown(wait=not stopped)  # the futures are cancelled above (a Dask executor knows no cancel_futures)


def _cached(job: Job) -> SubmissionResult | None:
    """The result of an earlier run of this same job, if its file is whole and its fingerprint equal."""
    try:
        previous = SubmissionResult.from_json(Path(job.result).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # none, or unreadable: grade again
    if previous.fingerprint != job.fingerprint or previous.status is Status.NOT_GRADED:
        return None
    return previous


def grade_class(submissions: str | os.PathLike[str], out: str | os.PathLike[str], workers: int | None = None,
                limits: Limits = Limits(), progress: bool = True,
                make_executor: MakeExecutor | None = None, scratch: str | os.PathLike[str] | None = None,
                sandbox: bool = True, regrade: bool = False, fresh_kernels: bool = False,
                roster: Roster | None = None, assignment: str | None = None,
                rules: policy.Rules = policy.Rules()) -> ClassResults:
    """Grade every submission of `submissions` (a folder in nbgrader's layout, or an LMS's download: a zip or its
    folder; autograder/intake.py), reusing OUT/results where nothing changed; returns ClassResults. With `regrade`,
    every submission is graded again. Kernels are forked by each worker's zygote (autograder/forked.py), pre-warmed
    when the worker starts, unless `fresh_kernels`. With a `roster`, every file is credited to a roster student
    (results.intake says which are not) and every roster student is graded; `assignment` is the assignment of an
    LMS's download whose file names do not say it. Raises intake.NothingToGrade when nothing was handed in. The
    instructor's `rules` are applied to the results (ClassResults.adjustments)."""
    workers = workers or os.cpu_count() or 1
    out = Path(out).resolve()
    private_folder(out)
    if scratch is not None:
        Path(scratch).mkdir(parents=True, exist_ok=True)
    scratch_root = Path(tempfile.mkdtemp(prefix="autograder-", dir=scratch))
    prestarted: list[PrestartedPool] = []

    def local_workers(jobs: int) -> MakeExecutor:
        """The local pool, started (in the background) only once there is something to grade: no more workers
        than jobs (each worker's zygote imports torch)."""
        start_forkserver()
        prestarted.append(PrestartedPool(min(workers, jobs), prewarm=sandbox and not fresh_kernels))
        return prestarted[0]

    try:   # an LMS's notebooks are copied into the scratch folder (where Dask's workers see them, with --scratch)
        intake = gather(submissions, course.assignments(), skip=[out], staging=scratch_root / "download",
                        roster=roster, assignment=assignment)   # first: nothing to grade is said at once
        return _grade_class(intake, out, scratch_root, limits, progress, make_executor, local_workers,
                            sandbox, regrade, fresh_kernels, rules)
    finally:
        for pool in prestarted:
            pool.close()
        shutil.rmtree(scratch_root, ignore_errors=True)


def _grade_class(intake: Intake, out: Path, scratch_root: Path, limits: Limits, progress: bool,
                 make_executor: MakeExecutor | None, local_workers: Callable[[int], MakeExecutor], sandbox: bool,
                 regrade: bool, fresh_kernels: bool, rules: policy.Rules) -> ClassResults:
    """Without a `make_executor`, `local_workers(jobs)` starts the local pool, only when a submission is to be
    graded (a class whose every result is cached starts no worker and no kernel)."""
    found, problems = intake.submissions, intake.problems
    graded = {s.assignment for s in found} | {p.assignment for p in problems}
    submitted_in = {id(s): _edition(s.notebook, s.file_id, s.assignment) for s in found}
    in_chinese = {s.assignment for s in found if submitted_in[id(s)] is Edition.ZH}
    courses = {Edition.EN: scratch_root / "course"} | ({Edition.ZH: scratch_root / "course-zh"} if in_chinese else {})
    version = grader_version()
    digests = {a: assignment_version(a) for a in course.assignments() if a in graded}
    course_secret = course.secret()

    todo: list[Job] = []
    done: list[SubmissionResult] = []
    for submission in found:
        student, assignment = submission.student_id, submission.assignment
        job = Job(student_id=student, assignment=assignment,
                  notebook=str(submission.notebook),
                  fingerprint=fingerprint(submission.notebook, digests[assignment], version, limits,
                                          sandbox, submission.file_id, course_secret, submission.flags),
                  course=str(courses[submitted_in[id(submission)]]),
                  workdir=str(scratch_root / "jobs" / outputs.key(student, assignment)),
                  result=str(outputs.result_path(out, student, assignment)),
                  feedback=str(outputs.page_path(out, student, assignment)),
                  kernel_output=str(outputs.kernel_output_path(out, student, assignment)),
                  limits=limits, deadline=limits.worker, sandbox=sandbox,
                  fresh_kernels=fresh_kernels,
                  flags=submission.flags, file_id=submission.file_id, secret=course_secret)
        _started(job).unlink(missing_ok=True)  # left by a batch that was killed
        previous = None if regrade else _cached(job)
        if previous is not None and Path(job.feedback).exists() == (previous.status is Status.GRADED):
            done.append(previous)
        else:
            todo.append(job)
    if todo and make_executor is None:   # the workers start importing while the course is built
        make_executor = local_workers(len(todo))
    course_dir = course.cached_course(courses[Edition.EN], graded, Edition.EN, _course_key(version, digests, graded))
    if in_chinese:   # the Chinese edition's notebooks, for the submissions written in it
        course.cached_course(courses[Edition.ZH], in_chinese, Edition.ZH, _course_key(version, digests, in_chinese))
    cells = {a: course.graded_cells(course_dir, a) for a in course.assignments() if a in graded}
    timings: list[Timing] = []
    fresh = _run(todo, make_executor, progress, timings=timings) if make_executor is not None else {}
    _write_timings(out, timings)
    removed = remove_stale_outputs(out, {(s.student_id, s.assignment) for s in found}) if found else []

    results = ClassResults(submissions=done + list(fresh.values()), cells=cells, intake=intake,
                           components={a: course.assignment_components(course_dir, a) for a in cells},
                           misconceptions={key: m for a in cells
                                           for key, m in mistakes.misconceptions(course.source_folder(course_dir, a), a).items()},
                           removed=removed)
    for problem in problems:
        if problem.assignment in cells:
            results.submissions.append(SubmissionResult(problem.student_id, problem.assignment,
                                                        Status.STUDENT_ERROR, zero_cells(cells[problem.assignment]),
                                                        reason=problem.reason))
        else:
            results.problems.append((problem.student_id, problem.assignment, problem.reason))
    try:
        results.similar = similarity.find_pairs(found, course_dir)
    except Exception as error:  # never lose the grades for it
        results.problems.append(("", "", f"similarity check failed: {type(error).__name__}: {error}"))
    results.adjustments = policy.adjust(results, rules, policy.submission_times(found, rules))
    return results.sorted()


def private_folder(folder: Path) -> None:
    """Create `folder` readable by its owner only (0700), or take the group's and others' access away from it."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = folder.stat().st_mode & 0o777
    if mode & 0o077:
        folder.chmod(mode & 0o700)


def _write_timings(out: Path, timings: list[Timing]) -> None:
    """Seconds per job of this run, in OUT/timings.log (not a result: it differs from run to run)."""
    out.mkdir(parents=True, exist_ok=True)
    lines = "".join(f"{student}\t{assignment}\t{seconds:.2f}\n" for student, assignment, seconds in sorted(timings))
    (out / "timings.log").write_text("student_id\tassignment\tseconds\n" + lines, encoding="utf-8")


# ---------------------------------------------------------------- OUT holds one class

RESULT_NAME = re.compile(r"[0-9a-f]{24}\.json")
# what a batch that was killed leaves in OUT/results/: a job's start marker (_started), a half-written result
# (grade.write_result)
LEFT_BY_A_KILLED_BATCH = re.compile(r"[0-9a-f]{24}\.started|\.[0-9a-f]{24}\.json\.\d+\.\d+\.partial")
FEEDBACK_MARK = '<section class="autograder-summary'   # the summary at the top of every page (feedback.summary_html)
# MathJax, as grader versions before self-contained pages copied it beside the pages (OUT/feedback/_mathjax/)
OLD_MATHJAX = re.compile(r"tex-chtml\.js|output/chtml/fonts/woff-v2/[\w-]+\.woff")


def _folders(folder: Path) -> list[Path]:
    """The folders in `folder` (none if it is not one), links left out: never followed."""
    if folder.is_symlink() or not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink())


def _files(folder: Path) -> list[Path]:
    """The regular files in `folder`, links left out."""
    if folder.is_symlink() or not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.is_symlink())


def _is_result_of(path: Path, kept: Collection[tuple[str, str]]) -> bool | None:
    """Whether the result file `path` is of a kept (student, assignment); None if it is no result file of ours."""
    try:
        result = SubmissionResult.from_json(path.read_bytes())
    except (OSError, ValueError):
        return None
    if path.name != outputs.result_path("", result.student_id, result.assignment).name:
        return None
    return (result.student_id, result.assignment) in kept


def _is_feedback_page(path: Path) -> bool:
    try:
        return FEEDBACK_MARK in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def stale_outputs(out: str | os.PathLike[str], kept: Collection[tuple[str, str]]) -> list[Path]:
    """The files in OUT that the grader wrote for a (student, assignment) not in `kept`, and what earlier runs left:

    OUT/results/<key>.json      a result file (it reads as a SubmissionResult whose key is its name)
    OUT/results/<key>.started, .<key>.json.<pid>.<thread>.partial   left by a batch that was killed
    OUT/feedback/<student>/<assignment>/<assignment>.html   a page that holds the grader's summary
    OUT/kernel-output/<student>/<assignment>.txt
    OUT/feedback/_mathjax/...   the MathJax of grader versions before self-contained pages

    Nothing else: no other file, and nothing through a link."""
    out = Path(out)
    stale = [path for path in _files(out / outputs.RESULTS)
             if LEFT_BY_A_KILLED_BATCH.fullmatch(path.name)
             or (RESULT_NAME.fullmatch(path.name) and _is_result_of(path, kept) is False)]
    for student in _folders(out / outputs.FEEDBACK):
        if student.name == "_mathjax":
            for folder, _, names in os.walk(student):   # a link to a folder is not followed
                stale += [Path(folder, name) for name in sorted(names) if not Path(folder, name).is_symlink()
                          and OLD_MATHJAX.fullmatch(Path(folder, name).relative_to(student).as_posix())]
            continue
        for assignment in _folders(student):
            page = assignment / f"{assignment.name}.html"
            if (student.name, assignment.name) not in kept and not page.is_symlink() and page.is_file() \
                    and _is_feedback_page(page):
                stale.append(page)
    for student in _folders(out / outputs.KERNEL_OUTPUT):
        stale += [path for path in _files(student)
                  if path.suffix == ".txt" and (student.name, path.stem) not in kept]
    return stale


def remove_stale_outputs(out: str | os.PathLike[str], kept: Collection[tuple[str, str]]) -> list[str]:
    """Remove stale_outputs(out, kept), and the folders that leaves empty; returns their paths relative to OUT."""
    out = Path(out)
    removed = []
    for path in stale_outputs(out, kept):
        try:
            path.unlink()
        except OSError:
            continue
        removed.append(path.relative_to(out).as_posix())
        folder = path.parent
        while folder != out and folder.parent != out:   # OUT/feedback, OUT/results, ... stay
            try:
                folder.rmdir()   # only an empty one
            except OSError:
                break
            folder = folder.parent
    return removed
