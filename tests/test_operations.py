"""Grading operations an instructor relies on: a grade of 0 is only ever the student's; Ctrl-C, SIGTERM and
a killed worker leave no process, no scratch folder and no false grade behind; running again grades
exactly what is missing; regrading after a change of the tests is correct; honest accidents get the marks
of their code; no file stops the class; the Dask recipe of the README works as written."""
import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

from autograder.model import Status, SubmissionResult
from tests.conftest import (REPO, max_points, nbgrader_cells, read_csv, release_path, run_grader, solution_path,
                            with_cell_replaced)
from tests.mutants import catalogue

ASSIGNMENT = "01_attention"
FULL = sum(max_points(ASSIGNMENT).values())
FULL_TEXT = f"{FULL:g}"
BIN = Path(sys.executable).parent


# --- helpers: an isolated temp folder per grader run, and what it leaves behind -------------------------------
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

    def wait(self, timeout=300):
        stdout, stderr = self.process.communicate(timeout=timeout)
        self.stderr = stderr
        return self.process.returncode

    def wait_for_results(self, count, timeout=180):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(list((self.out / "results").glob("*.json"))) < count:
            assert self.process.poll() is None, "the grader ended before it was stopped"
            time.sleep(0.1)

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


def grades(out):
    return {r["student_id"]: r["score"] for r in read_csv(Path(out) / "grades.csv")}


def outputs(out):
    return [read_csv(Path(out) / name) for name in ("grades.csv", "tests.csv", "errors.csv", "flags.csv")]


def results_on_disk(out):
    return [SubmissionResult.from_json(p.read_text()) for p in sorted((Path(out) / "results").glob("*.json"))]


def children(pid):
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


# --- the class --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_class(tmp_path_factory):
    """Three honest students and two mutants, graded once without interruption (the reference)."""
    root = tmp_path_factory.mktemp("operations")
    submitted = root / "submitted"
    for i in range(3):
        (submitted / f"honest-{i}" / ASSIGNMENT).mkdir(parents=True)
        shutil.copy(solution_path(ASSIGNMENT), submitted / f"honest-{i}" / ASSIGNMENT)
    for name in ("sdpa/unscaled", "masked_softmax/inverted_mask"):
        mutant = catalogue()[ASSIGNMENT][name]
        folder = submitted / name.replace("/", "-") / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(with_cell_replaced(ASSIGNMENT, mutant.cell, mutant.source), folder / f"{ASSIGNMENT}.ipynb")
    run = Run(submitted, root / "reference")
    assert run.wait() == 0, run.stderr
    assert run.leftovers() == ([], [])
    reference = grades(root / "reference")
    assert [reference[f"honest-{i}"] for i in range(3)] == [FULL_TEXT] * 3
    assert 0 < float(reference["sdpa-unscaled"]) < FULL
    return root


def test_ctrl_c_stops_cleanly_records_no_false_grade_and_the_rerun_grades_the_rest(small_class):
    out = small_class / "interrupted"
    run = Run(small_class / "submitted", out)
    run.wait_for_results(1)
    os.killpg(run.process.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends: the whole foreground group
    assert run.wait(60) == 130, run.stderr
    assert "Traceback" not in run.stderr and "Run the same command again" in run.stderr
    assert run.leftovers() == ([], []), "Ctrl-C left processes or files behind"
    done = results_on_disk(out)
    assert 1 <= len(done) < 5, f"{len(done)} of 5 results: the batch should have been stopped half-way"
    assert all(r.status is Status.GRADED for r in done), [r.reason for r in done]
    assert not (out / "grades.csv").exists()

    again = Run(small_class / "submitted", out)
    assert again.wait() == 0, again.stderr
    ran = (out / "timings.log").read_text().splitlines()[1:]
    assert len(ran) == 5 - len(done), "the rerun must grade exactly the submissions that were not graded"
    assert outputs(out) == outputs(small_class / "reference")
    assert again.leftovers() == ([], [])


def test_sigterm_to_the_grader_ends_its_workers_kernels_and_scratch(small_class, tmp_path):
    run = Run(small_class / "submitted", tmp_path / "out")
    run.wait_for_results(1)
    run.process.send_signal(signal.SIGTERM)   # the main process alone, as a service manager would
    assert run.wait(60) == 130, run.stderr
    assert run.leftovers() == ([], []), "SIGTERM left processes or files behind"
    assert all(r.status is Status.GRADED for r in results_on_disk(tmp_path / "out"))


def test_a_worker_killed_mid_batch_costs_nothing(small_class, tmp_path):
    run = Run(small_class / "submitted", tmp_path / "out")
    deadline, worker = time.monotonic() + 120, None
    while worker is None and time.monotonic() < deadline:   # a worker with a kernel running under it
        for server in children(run.process.pid):
            for candidate in children(server):
                if children(candidate):
                    worker = candidate
        time.sleep(0.1)
    assert worker, "no worker with a running kernel was found"
    os.kill(worker, signal.SIGKILL)
    assert run.wait() == 0, run.stderr
    assert run.leftovers() == ([], []), "a killed worker left its kernel or files behind"
    assert outputs(tmp_path / "out") == outputs(small_class / "reference")


def test_no_bubblewrap_on_a_worker_means_not_graded(small_class, tmp_path, monkeypatch):
    from autograder import pipeline, sandbox
    monkeypatch.setattr(sandbox, "unavailable", lambda: "bwrap is not installed")
    results = pipeline.grade_class(small_class / "submitted", tmp_path / "out", workers=1, progress=False,
                                   make_executor=_in_process_executor)
    assert {r.status for r in results.submissions} == {Status.NOT_GRADED}
    assert all("cannot sandbox" in r.reason and "bwrap is not installed" in r.reason and r.cells == ()
               for r in results.submissions)
    assert not list((tmp_path / "out" / "results").glob("*.json")), "a failure of the grader was cached"
    from autograder.report import write_report
    write_report(results, tmp_path / "out")
    assert set(grades(tmp_path / "out").values()) == {""}, "a submission that was not graded got a score"
    gradebook = read_csv(tmp_path / "out" / "gradebook.csv")
    assert {row[f"{ASSIGNMENT} [{FULL_TEXT}]"] for row in gradebook} == {""}
    assert {row[f"Total [{FULL_TEXT}]"] for row in gradebook} == {""}
    errors = read_csv(tmp_path / "out" / "errors.csv")
    assert len(errors) == 5 and all(e["reason"].startswith("not graded: ") for e in errors)

    monkeypatch.undo()
    again = run_grader(small_class / "submitted", tmp_path / "out")
    assert again.returncode == 0, again.stderr
    assert outputs(tmp_path / "out") == outputs(small_class / "reference")


class _in_process_executor:
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


def test_the_exit_status_says_how_many_were_not_graded(small_class, tmp_path, capsys):
    """Not graded -> exit 3 with a count; run through main() with a grader whose workers all fail."""
    from autograder import __main__ as cli
    from autograder.model import ClassResults, SubmissionResult as Result

    def failing(*args, **kwargs):
        return ClassResults(submissions=[Result("s", ASSIGNMENT, Status.NOT_GRADED, reason="a worker died")],
                            cells={ASSIGNMENT: [("x", 1.0)]})
    original = cli.grade_class
    cli.grade_class = failing
    try:
        status = cli.main(["grade", str(small_class / "submitted"), "--out", str(tmp_path / "out"), "--quiet"])
    finally:
        cli.grade_class = original
    assert status == 3 and "1 submissions were NOT GRADED" in capsys.readouterr().err
    assert read_csv(tmp_path / "out" / "grades.csv") == [{"student_id": "s", "assignment": ASSIGNMENT,
                                                          "score": "", "max_score": "1"}]


# --- regrading ---------------------------------------------------------------------------------------------
def _course_copy(root):
    """A copy of what the grader needs (its code, its configuration, assignment 01) to change a test in."""
    root.mkdir()
    for name in ("autograder", "nbgrader_config.py", "requirements.txt"):
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, root / name)
    (root / "solutions").mkdir()
    shutil.copytree(REPO / "solutions" / ASSIGNMENT, root / "solutions" / ASSIGNMENT)
    return root


def _regraded(out):
    return sorted(line.split("\t")[0] for line in (out / "timings.log").read_text().splitlines()[1:])


def test_regrading_after_a_change_of_tests_points_or_grader_is_correct(small_class, tmp_path):
    """End to end, the cache's two directions: a copy of the course reuses every result graded by the
    original (nothing changed), and a change of points, or --regrade, grades every submission again. What
    else enters the fingerprint (the grader's code, the limits, the secret) is proven without a kernel: by the
    next test, and by unit tests of the digests in tests/test_model.py."""
    course = _course_copy(tmp_path / "course")
    out = tmp_path / "out"
    shutil.copytree(small_class / "reference", out)
    same = Run(small_class / "submitted", out, cwd=course)
    assert same.wait() == 0 and _regraded(out) == [], "nothing changed: nothing is graded again"
    assert outputs(out) == outputs(small_class / "reference")

    source = course / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    notebook = nbformat.read(source, as_version=4)
    cell = next(c for c in notebook.cells if "BEGIN HIDDEN TESTS" in c.source)   # a hidden test worth one more point
    points = cell.metadata["nbgrader"]["points"]
    cell.metadata["nbgrader"]["points"] = points + 1
    cell.source = cell.source.replace(f"[{points} point", f"[{points + 1} point", 1)
    nbformat.write(notebook, source)
    changed = Run(small_class / "submitted", out, cwd=course)
    assert changed.wait() == 0, changed.stderr
    assert len(_regraded(out)) == 5, "a change of points must regrade every submission of that assignment"
    assert {r["max_score"] for r in read_csv(out / "grades.csv")} == {f"{FULL + 1:g}"}, "old and new scales mixed"
    assert grades(out)["honest-0"] == f"{FULL + 1:g}"

    forced = Run(small_class / "submitted", out, "--regrade", cwd=course)
    assert forced.wait() == 0 and len(_regraded(out)) == 5


class _RecordingExecutor:
    """A concurrent.futures-like executor that records the jobs it is given and grades none of them."""

    def __init__(self, jobs):
        self.jobs = jobs

    def submit(self, in_worker, function, job):
        from concurrent.futures import Future
        self.jobs.append(job)
        future = Future()
        future.set_exception(RuntimeError("this test grades nothing"))
        return future

    def shutdown(self, wait=True, cancel_futures=False):
        pass


@pytest.mark.parametrize("change", ["nothing", "the notebook's limit", "a cell's limit", "the grader's version",
                                    "the course's secret"])
def test_the_cache_grades_again_exactly_what_a_change_would_grade_differently(small_class, tmp_path, monkeypatch,
                                                                               change):
    """What the end-to-end test above does not change, without a kernel: grade_class, on the small class's results,
    hands every submission to its workers after a change of the limits, the grader's version or the secret, and
    none when nothing changed."""
    from autograder import pipeline
    out = tmp_path / "out"
    shutil.copytree(small_class / "reference", out)
    limits = {"the notebook's limit": {"timeout": 500}, "a cell's limit": {"cell_timeout": 100}}.get(change, {})
    if change == "the grader's version":
        monkeypatch.setattr(pipeline, "grader_version", lambda: "another version")
    if change == "the course's secret":
        monkeypatch.setenv("AUTOGRADER_SECRET", "another course")
    jobs = []
    pipeline.grade_class(small_class / "submitted", out, workers=1, progress=False,
                         make_executor=lambda: _RecordingExecutor(jobs), **limits)
    assert len(jobs) == (0 if change == "nothing" else 5), f"{change}: {len(jobs)} of 5 submissions graded again"


# --- honest accidents ------------------------------------------------------------------------------------
def _solution():
    return nbformat.read(solution_path(ASSIGNMENT), as_version=4)


def _index(notebook, grade_id):
    return next(i for i, c in enumerate(notebook.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def copied_solution_cell(nb):
    i = _index(nb, "scaled_dot_product_attention")
    nb.cells.insert(i + 1, copy.deepcopy(nb.cells[i]))
    nb.cells[i + 1].id = "pasted-copy"
    return nb


def copied_stub_above_the_work(nb):
    """The stub, pasted above the finished cell (the finished one runs last, so it is the one that counts)."""
    i = _index(nb, "masked_softmax")
    stub = copy.deepcopy(nb.cells[i])
    stub.source = "def masked_softmax(scores, mask=None):\n    raise NotImplementedError()"
    stub.id = "stub-copy"
    nb.cells.insert(i, stub)
    return nb


def copied_visible_test(nb):
    i = _index(nb, "nadaraya_watson_visible")
    nb.cells.append(copy.deepcopy(nb.cells[i]))
    nb.cells[-1].id = "test-copy"
    return nb


def moved_solution_cell(nb):
    """A solution cell moved up, above its own introduction."""
    i = _index(nb, "masked_softmax")
    cell = nb.cells.pop(i)
    nb.cells.insert(_index(nb, "masked_softmax_intro"), cell)
    return nb


def solution_turned_into_markdown(nb):
    cell = nb.cells[_index(nb, "nadaraya_watson")]
    cell.cell_type = "markdown"
    cell.pop("outputs")
    cell.pop("execution_count")
    return nb


def outputs_left_in(nb):
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="Visible tests passed.\n")]
            cell.execution_count = 7
    return nb


def saved_by_an_old_jupyter(nb):
    nb.nbformat_minor = 2
    for cell in nb.cells:
        cell.pop("id", None)
        cell.metadata.get("nbgrader", {})["schema_version"] = 1
        cell.metadata.get("nbgrader", {}).pop("cell_type", None)
    return nb


ACCIDENTS = [copied_solution_cell, copied_stub_above_the_work, copied_visible_test, moved_solution_cell,
             solution_turned_into_markdown, outputs_left_in, saved_by_an_old_jupyter]


def test_honest_accidents_get_exactly_the_marks_of_their_code(tmp_path):
    submitted = tmp_path / "submitted"
    for accident in ACCIDENTS:
        folder = submitted / accident.__name__ / ASSIGNMENT
        folder.mkdir(parents=True)
        notebook = accident(_solution())
        path = folder / f"{ASSIGNMENT}.ipynb"
        path.write_text(json.dumps(notebook, indent=1))   # as saved, without nbformat's own validation
    # the same accident on a wrong implementation keeps exactly that implementation's marks
    mutant = catalogue()[ASSIGNMENT]["sdpa/unscaled"]
    folder = submitted / "copied-cell-of-a-mutant" / ASSIGNMENT
    folder.mkdir(parents=True)
    nbformat.write(copied_solution_cell(with_cell_replaced(ASSIGNMENT, mutant.cell, mutant.source)),
                   folder / f"{ASSIGNMENT}.ipynb")
    folder = submitted / "the-mutant" / ASSIGNMENT
    folder.mkdir(parents=True)
    nbformat.write(with_cell_replaced(ASSIGNMENT, mutant.cell, mutant.source), folder / f"{ASSIGNMENT}.ipynb")

    process = run_grader(submitted, tmp_path / "out")
    assert process.returncode == 0, process.stderr
    scores = grades(tmp_path / "out")
    assert read_csv(tmp_path / "out" / "errors.csv") == []
    for accident in ACCIDENTS:
        assert scores[accident.__name__] == FULL_TEXT, f"{accident.__name__}: {scores[accident.__name__]}"
    assert scores["copied-cell-of-a-mutant"] == scores["the-mutant"] != FULL_TEXT


# --- no input stops the class or invents students ---------------------------------------------------------------
def test_odd_files_and_an_out_folder_inside_submissions_stop_nothing(tmp_path):
    submitted = tmp_path / "submitted"
    odd = {
        "deeply-nested": b"[" * 300_000 + b"]" * 300_000,
        "a-list": b"[1, 2, 3]",
        "no-cells": b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}',
        "latin-1": "{\"cells\": \"caf\xe9\"}".encode("latin-1"),
        "utf-16": b"\xff\xfe" + release_path(ASSIGNMENT).read_text().encode("utf-16-le"),
    }
    for student, content in odd.items():
        (submitted / student / ASSIGNMENT).mkdir(parents=True)
        (submitted / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").write_bytes(content)
    (submitted / "honest" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(solution_path(ASSIGNMENT), submitted / "honest" / ASSIGNMENT)
    out = submitted / "out"
    for _ in range(2):   # the second run finds OUT's results/ and feedback/ folders inside SUBMISSIONS
        process = run_grader(submitted, out)
        assert process.returncode == 0, process.stderr
        assert "skipped" in process.stderr
    scores = grades(out)
    assert sorted(scores) == sorted(list(odd) + ["honest"]), "OUT inside SUBMISSIONS became students"
    assert scores["honest"] == FULL_TEXT and scores["utf-16"] == "0"
    reasons = {e["student_id"]: e["reason"] for e in read_csv(out / "errors.csv")}
    assert "nested too deeply" in reasons["deeply-nested"] and "no list of cells" in reasons["a-list"]
    assert "no cells" in reasons["no-cells"] and "not UTF-8" in reasons["latin-1"] and "utf-16" not in reasons


@pytest.mark.parametrize("limit", [["--timeout", "-200"], ["--cell-timeout", "0"], ["--timeout", "nan"],
                                   ["--cell-timeout", "soon"]])
def test_a_limit_that_is_not_a_positive_number_is_a_usage_error(tmp_path, limit):
    (tmp_path / "submitted").mkdir()
    process = run_grader(tmp_path / "submitted", tmp_path / "out", 1, *limit)
    assert process.returncode == 2 and "positive number" in process.stderr or "not a number" in process.stderr
    assert "Traceback" not in process.stderr


def test_a_missing_scratch_folder_is_created(tmp_path):
    (tmp_path / "submitted" / "s" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(release_path(ASSIGNMENT), tmp_path / "submitted" / "s" / ASSIGNMENT)
    process = run_grader(tmp_path / "submitted", tmp_path / "out", 1, "--scratch", str(tmp_path / "new" / "scratch"))
    assert process.returncode == 0, process.stderr
    assert (tmp_path / "new" / "scratch").is_dir() and grades(tmp_path / "out") == {"s": "0"}


# --- the README's Dask recipe, with real processes ----------------------------------------------------------
class DaskCluster:
    """`dask scheduler` and `dask worker` started as the README says, from another working directory, with
    the default number of threads per worker."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix="agd-", dir="/tmp"))
        self.file = self.folder / "scheduler.json"
        env = dict(os.environ, TMPDIR=str(self.tmp), PYTHONPATH="")
        self.scheduler = subprocess.Popen([str(BIN / "dask"), "scheduler", "--no-dashboard", "--port", "0",
                                           "--host", "127.0.0.1", "--scheduler-file", str(self.file)],
                                          cwd=self.folder, env=env, start_new_session=True,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline, self.address = time.monotonic() + 60, None
        while self.address is None and time.monotonic() < deadline:
            try:
                self.address = json.loads(self.file.read_text())["address"]
            except (OSError, ValueError, KeyError):   # not written yet, or half-written
                time.sleep(0.2)
        self.worker = subprocess.Popen([str(BIN / "dask"), "worker", self.address, "--no-dashboard"],
                                       cwd=self.folder, env=env, start_new_session=True,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        from distributed import Client
        with Client(self.address, timeout=60) as client:
            client.wait_for_workers(1, timeout=60)

    def close(self):
        for process in (self.worker, self.scheduler):
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        deadline = time.monotonic() + 15
        while processes_mentioning(str(self.tmp)) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = processes_mentioning(str(self.tmp))
        shutil.rmtree(self.tmp, ignore_errors=True)
        return left


def test_the_readme_dask_recipe_gives_the_same_grades_as_local_workers(small_class, tmp_path):
    cluster = DaskCluster(tmp_path / "elsewhere")
    try:
        process = run_grader(small_class / "submitted", tmp_path / "dask", 2, "--dask", cluster.address,
                             "--scratch", str(tmp_path / "shared" / "scratch"))
    finally:
        left = cluster.close()
    assert process.returncode == 0, process.stderr
    assert outputs(tmp_path / "dask") == outputs(small_class / "reference")
    assert left == [], f"processes left behind by the Dask cluster: {left}"


def test_a_dask_worker_killed_mid_batch_gives_no_false_grade(small_class, tmp_path):
    cluster = DaskCluster(tmp_path / "elsewhere")
    out = tmp_path / "dask"
    try:
        command = [sys.executable, "-m", "autograder", "grade", str(small_class / "submitted"), "--out", str(out),
                   "--quiet", "--dask", cluster.address, "--scratch", str(tmp_path / "scratch")]
        grader = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not list((out / "results").glob("*.json")) and time.monotonic() < deadline:
            time.sleep(0.1)
        for worker in children(cluster.worker.pid):   # the nanny's worker process: it restarts another
            os.kill(worker, signal.SIGKILL)
        _, stderr = grader.communicate(timeout=300)
        assert grader.returncode in (0, 3), stderr
        rows = {r["student_id"]: r for r in read_csv(out / "grades.csv")}
        reference = grades(small_class / "reference")
        for student, row in rows.items():
            assert row["score"] in ("", reference[student]), f"{student}: {row['score']}, a false grade"
        again = run_grader(small_class / "submitted", out, 2, "--dask", cluster.address,
                           "--scratch", str(tmp_path / "scratch"))
        assert again.returncode == 0, again.stderr
        assert outputs(out) == outputs(small_class / "reference")
    finally:
        left = cluster.close()
    assert left == [], f"processes left behind by the Dask cluster: {left}"
