"""Shared fixtures: the repository's paths, notebook helpers, and one grading run over a test class.

The class is graded once per test session (it is the slow part) with every core, and the grader,
mutant and hostile-input tests all read its CSV files.
"""
import ast
import csv
import copy
import hashlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

# Bytecode is cached (__pycache__, which git ignores) even where the environment says not to (PYTHONDONTWRITEBYTECODE):
# without it every test process compiles the test modules again (pytest's assertion rewriting: 2.5 s each) and every
# grader, worker and kernel process of the suite compiles the grader again (half a second each, hundreds of them).
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

import autograder  # noqa: F401  first: it spares every test process the 1.2 s import of rfc3987_syntax that
#                    nbformat's jsonschema would make (autograder/__init__.py)
import nbformat
import pytest

from tests import editors
from tests.mutants import catalogue

REPO = Path(__file__).resolve().parent.parent
SOLUTIONS = REPO / "solutions"
NOTEBOOKS = REPO / "notebooks"
ALL_ASSIGNMENTS = sorted(p.name for p in SOLUTIONS.iterdir() if (p / f"{p.name}.ipynb").is_file())
# Edit loop only: TEST_ASSIGNMENTS=04_transformer,05_attention_at_scale limits the per-assignment tests and
# the graded test class to those assignments. `make test` never sets it: the full run tests every one.
ASSIGNMENTS = [a for a in ALL_ASSIGNMENTS
               if a in os.environ.get("TEST_ASSIGNMENTS", a).split(",")]


def solution_path(assignment):
    return SOLUTIONS / assignment / f"{assignment}.ipynb"


# `make book` at most once per run of the tests, whichever process asks first (a file lock): argv = _build, run id.
BUILD_BOOK_ONCE = r"""
import fcntl, subprocess, sys
from pathlib import Path
folder, run = Path(sys.argv[1]), sys.argv[2]
done = folder / f".book-built-{run}"
with open(folder / ".book.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not done.exists():
        for stale in folder.glob(".book-built-*"):
            stale.unlink()
        with open(folder / "book-build.log", "w") as out:
            status = subprocess.run(["make", "book"], cwd=folder.parent, stdout=out, stderr=subprocess.STDOUT).returncode
        done.write_text(str(status))
"""
BOOK_BUILDER = []   # the background build this process started (pytest_collection_finish)


def _build_book_once(wait=True):
    folder = REPO / "_build"
    folder.mkdir(exist_ok=True)
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid{os.getpid()}"
    command = [sys.executable, "-c", BUILD_BOOK_ONCE, str(folder), run]
    if not wait:
        return subprocess.Popen(command, cwd=REPO, start_new_session=True)   # its own group: stopped whole
    subprocess.run(command, cwd=REPO, check=True)
    return folder / f".book-built-{run}"


def pytest_ignore_collect(collection_path, config):
    """`pytest -m unit`: a test module that marks no test `unit` is not imported at all (its imports and
    parametrisations, the catalogues of mutants, swaps and chapters, are most of the time of a unit run)."""
    if (config.option.markexpr == "unit" and collection_path.suffix == ".py" and collection_path.name.startswith("test_")
            and "mark.unit" not in collection_path.read_text(encoding="utf-8")):
        return True
    return None


def pytest_collection_finish(session):
    """The book starts building as soon as a test that needs it is collected, in a process of its own beside the
    tests (its one torch thread shares the cores with them); `built_book` waits for it."""
    if not session.config.option.collectonly and any("built_book" in getattr(item, "fixturenames", ())
                                                     for item in session.items):
        BOOK_BUILDER.append(_build_book_once(wait=False))


@pytest.fixture(scope="session")
def built_book():
    """_build/html, built by `make book` once per run of the tests (started when the tests are collected; every
    worker that needs it waits on a lock until it is built). A build that fails (a Sphinx warning, a chapter's
    error) fails every test of the built book, with the end of its log."""
    done = _build_book_once()
    status = int(done.read_text())
    if status != 0:
        log = REPO / "_build" / "book-build.log"
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        pytest.fail(f"`make book` failed (exit {status}); the end of {log.relative_to(REPO)}:\n{tail}", pytrace=False)
    return REPO / "_build" / "html"


def release_path(assignment):
    return NOTEBOOKS / assignment / f"{assignment}.ipynb"


def filled_notebook(assignment, release=None, solution=None, replace=None):
    """The released notebook with each solution cell replaced by the solution's code (markers removed):
    a student's finished notebook. `release` and `solution`: another edition's (the Chinese); `replace`: a
    (grade_id, source) pair, a cell written otherwise."""
    release = nbformat.read(release_path(assignment), as_version=4) if release is None else release
    solution = nbformat.read(solution_path(assignment), as_version=4) if solution is None else solution
    code = {c.metadata["nbgrader"]["grade_id"]: c.source for c in solution.cells
            if c.metadata.get("nbgrader", {}).get("solution")}
    if replace is not None:
        code[replace[0]] = replace[1]
    for cell in release.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = "\n".join(line for line in code[grade_id].splitlines()
                                    if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))
    return release


def nbgrader_cells(notebook):
    """{grade_id: cell} of the cells that carry nbgrader metadata."""
    return {c.metadata["nbgrader"]["grade_id"]: c for c in notebook.cells if "nbgrader" in c.metadata}


def max_points(assignment):
    """{grade_id: points} of the graded cells, read from the solution notebook's metadata."""
    notebook = nbformat.read(solution_path(assignment), as_version=4)
    return {gid: float(c.metadata["nbgrader"]["points"]) for gid, c in nbgrader_cells(notebook).items()
            if c.metadata["nbgrader"].get("grade")}


def with_cell_replaced(assignment, grade_id, source, notebook=None):
    """The solution notebook (or a copy of `notebook`: the Chinese one, say) with the source of one cell replaced."""
    notebook = nbformat.read(solution_path(assignment), as_version=4) if notebook is None else \
        nbformat.from_dict(copy.deepcopy(notebook))
    cells = nbgrader_cells(notebook)
    assert grade_id in cells, f"{assignment} has no cell with grade_id {grade_id!r}"
    cells[grade_id].source = source
    return notebook


def tree_digest(*folders):
    """A digest of every file's path and bytes under `folders` (Python's bytecode caches aside)."""
    digest = hashlib.sha256()
    for folder in folders:
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.relative_to(folder).parts:
                digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def start_grader(submissions, out, workers=2, *extra):
    """`python -m autograder grade` started, not waited for (finished(): its CompletedProcess). A test that grades a
    few notebooks, and tests no parallel grading, asks for one worker: each worker's zygote costs about 5 s of CPU to
    start (torch imported), more than a second worker saves on three to ten notebooks of 01 (`make test` is bound by
    its two cores)."""
    return subprocess.Popen([sys.executable, "-m", "autograder", "grade", str(submissions), "--out", str(out),
                             "--workers", str(workers), "--quiet", *extra],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(process):
    stdout, stderr = process.communicate()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def run_grader(submissions, out, workers=2, *extra):
    return finished(start_grader(submissions, out, workers, *extra))


# Students of the test class who are not mutants: (student_id, assignment, how to make the folder).
def _copy(src, name=None):
    def make(folder):
        shutil.copy(src, folder / (name or src.name))
    return make


def _write(text):
    def make(folder):
        (folder / f"{folder.name}.ipynb").write_text(text, encoding="utf-8")
    return make


def _stub_beside_the_work(a):
    def make(folder):
        _copy(release_path(a))(folder)
        _copy(solution_path(a), f"{a} (1).ipynb")(folder)
    return make


def _saved_by(editor):
    """The finished notebook as `editor` saves it (tests/editors/)."""
    def make(a):
        return _write(editors.saved(editor, filled_notebook(a)))
    return make


NOTING = """

import functools as _functools
import warnings as _warnings


def _noting(function):
    @_functools.wraps(function)
    def noted(*args, **kwargs):
        _warnings.warn("a note from my code while it runs", UserWarning, stacklevel=2)
        return function(*args, **kwargs)
    return noted
"""


def _warns_while_tested(a):
    """The finished notebook whose functions each print a UserWarning (to stderr) when called, in the test cells as
    anywhere: nbgrader would score a cell with stderr output 0; the grader's verdict decides (autograder/grade.py)."""
    def make(folder):
        notebook = filled_notebook(a)
        for cell in notebook.cells:
            if cell.metadata.get("nbgrader", {}).get("solution"):
                functions = [n.name for n in ast.parse(cell.source).body if isinstance(n, ast.FunctionDef)]
                if functions:
                    cell.source += NOTING + "".join(f"{name} = _noting({name})\n" for name in functions)
        _write(nbformat.writes(notebook))(folder)
    return make


HONEST = {
    "solution": lambda a: _copy(solution_path(a)),
    "warns while tested": _warns_while_tested,       # a warning on stderr in a test cell costs nothing
    "stub beside the work": _stub_beside_the_work,   # graded from the finished copy, with a flag
    "released": lambda a: _copy(release_path(a)),
    "renamed by browser": lambda a: _copy(solution_path(a), f"{a} (1).ipynb"),
    "O'Brien, ünïcode": lambda a: _copy(solution_path(a)),
} | {f"saved by {editor}": _saved_by(editor) for editor in editors.EDITORS}   # full marks, no flag
EVERY_ASSIGNMENT = ("solution", "released")   # honest students of every assignment
# The assignments whose notebooks the grader runs fastest (about 3 s of CPU each, against 6 to 12 s for 04-06): the
# graded class's other honest styles and its fixed copies are handed in for these.
QUICKEST = ("01_attention", "02_self_attention", "03_multi_head_attention")


def quickest_assignments():
    return [a for a in ASSIGNMENTS if a in QUICKEST] or ASSIGNMENTS


def honest_submissions():
    """[(student, assignment)] of the graded class's honest students: the solution and the release in every
    assignment; every other honest style (the stub beside the work, a browser's rename, a name in Unicode, each
    editor's save) in one of the quickest assignments, in turn. What a style changes is the file, not the
    assignment: every editor's save of every assignment is read and matched in process (tests/test_inputs.py) and
    raises no flag (tests/test_honest_flags.py), and which of several notebooks is graded is decided by the same
    code for every assignment (autograder/collect.py, tests/test_inputs.py)."""
    others = [student for student in HONEST if student not in EVERY_ASSIGNMENT]
    quickest = quickest_assignments()
    return ([(student, a) for student in EVERY_ASSIGNMENT for a in ASSIGNMENTS]
            + [(student, quickest[i % len(quickest)]) for i, student in enumerate(others)])


def zh_release_path(assignment):
    return REPO / "zh" / "notebooks" / assignment / f"{assignment}.ipynb"


def filled_chinese_notebook(assignment, replace=None):
    """A Chinese student's finished notebook: the Chinese release with the Chinese solution's code (and `replace`)."""
    from autograder import editions
    solution = editions.translated_notebook(nbformat.read(solution_path(assignment), as_version=4), assignment)
    return filled_notebook(assignment, nbformat.read(zh_release_path(assignment), as_version=4), solution, replace)


# The graded class's students of the Chinese edition, each the Chinese twin of an English student of the class
# (tests/test_grader.py compares their scores cell by cell and reads their feedback): {student: (assignment, make)}.
CHINESE_TWINS = {  # Chinese student -> the English student whose score it must have
    "zh-solution": "solution", "zh-solution-06": "solution", "zh-released": "released",
    "zh-mutant": "mutant-01_attention-000"}


def chinese_submissions():
    def mutant():
        name = next(n for a, n in kernel_sample() if a == "01_attention")
        m = catalogue()["01_attention"][name]
        return filled_chinese_notebook("01_attention", (m.cell, m.source))
    return {"zh-solution": ("01_attention", lambda: filled_chinese_notebook("01_attention")),
            "zh-solution-06": ("06_language_model", lambda: filled_chinese_notebook("06_language_model")),
            "zh-released": ("01_attention", lambda: nbformat.read(zh_release_path("01_attention"), as_version=4)),
            "zh-mutant": ("01_attention", mutant)}


BROKEN = {  # student_id -> (how to make the folder, what errors.csv must say)
    "bad-json": (lambda a: _write('{"cells": [ oops'), "broken JSON at line 1"),
    "empty-file": (lambda a: _write(""), "empty"),
    "not-a-notebook": (lambda a: _write('{"hello": "world"}'), "not a valid notebook"),
    "no-notebook": (lambda a: (lambda folder: None), "no notebook"),
}


# The whole grader (sandboxed kernels) grades a fixed sample of each catalogue of mutants: the first mutant of
# each assignment (in the catalogue's sorted order), those whose heat map tests/test_grader.py reads, and every
# mutant that only a kernel can catch (KERNEL_ONLY: the memory the kernel's cgroup measures, the fused attention
# of the kernel's own torch). The message a failed cell shows for each of FEEDBACK_CASES is checked in-process
# (tests/test_fastpath.py), and on the feedback page for those in the sample. Every mutant goes through
# the grader's own tests in-process (tests/test_fastpath.py, tests/test_diagnostics.py), through the same proxies,
# agent and wire, with its copy fixed as its feedback advises; that a component's mistake costs nothing elsewhere
# is proven once per component there; tests/test_mutants.py checks that the kernel gives the sample the fast
# path's scores. The first mutant of each quickest assignment's sample that has a fix is also handed in fixed,
# through the whole grader.
FEEDBACK_CASES = [  # (assignment, mutant, what its feedback must say)
    ("01_attention", "sdpa/unscaled", "did you divide by sqrt(d_k)?"),
    ("01_attention", "masked_softmax/inverted_mask", "your mask looks inverted"),
    ("02_self_attention", "pe/sin_cos_swapped", "sin and cos are swapped"),
    ("03_multi_head_attention", "split_heads/view_without_transpose", "did you transpose after splitting D?"),
    ("03_multi_head_attention", "mha/weights_averaged_over_heads", "one map per head"),
    ("04_transformer", "ffn/gelu_instead_of_relu", "your FFN uses GELU"),
    ("04_transformer", "encoder/norm_first_ignored", "your block computes the post-norm variant"),
    ("04_transformer", "decoder/cross_attention_before_self_attention", "your sub-layers are in the wrong order"),
    ("04_transformer", "decoder/memory_normalised", "the memory is normalised"),
    ("05_attention_at_scale", "online_softmax/accumulator_not_rescaled", "rescale both the accumulator and the normaliser"),
    ("05_attention_at_scale", "online_softmax/materialises_the_full_matrix", "at least one T_q x T_k matrix per batch and head"),
    ("05_attention_at_scale", "online_softmax/calls_fused_attention", "neither torch's fused attention nor numpy"),
    ("05_attention_at_scale", "kvcache/len_counts_calls", "count positions, not calls"),
    ("05_attention_at_scale", "causal_attention/top_left_alignment", "aligned bottom-right"),
    ("05_attention_at_scale", "rotary/pairs_i_and_i_plus_half", "here the pairs are neighbours (2i, 2i+1)"),
    ("05_attention_at_scale", "gqa/repeat_instead_of_repeat_interleave", "use repeat_interleave, not repeat"),
]


KERNEL_ONLY = [("05_attention_at_scale", "online_softmax/materialises_the_full_matrix"),
               ("05_attention_at_scale", "online_softmax/calls_fused_attention")]


HEATMAP_CASES = [("01_attention", "sdpa/unscaled", "sdpa.unscaled"),
                 ("02_self_attention", "self_attention/unscaled_scores", "sa.unscaled"),
                 ("03_multi_head_attention", "mha/torch_mask_convention", "mha.mask-inverted"),
                 ("05_attention_at_scale", "gqa/repeat_instead_of_repeat_interleave", "gqa.repeat-not-interleave")]


def kernel_sample():
    """[(assignment, mutant name)] that the graded class grades through the whole grader: the first mutant of each
    assignment, those of HEATMAP_CASES and KERNEL_ONLY."""
    named = set(KERNEL_ONLY) | {(a, n) for a, n, _ in HEATMAP_CASES}
    sample = []
    for a in ASSIGNMENTS:
        mutants = sorted(catalogue().get(a, {}))
        sample += [(a, name) for name in mutants if name == mutants[0] or (a, name) in named]
    return sample


@pytest.fixture(scope="session")
def graded_class(tmp_path_factory):
    """Grade one class holding honest, broken and mutant submissions of every assignment.

    Returns a dict with the CSV rows, the grader's process result, the mutants by student id (the kernel
    sample of each catalogue) and whether the repository was left untouched.
    """
    root = tmp_path_factory.mktemp("class")
    submissions, out = root / "submitted", root / "out"
    mutants, fixed = {}, {}
    for student, assignment in honest_submissions():
        folder = submissions / student / assignment
        folder.mkdir(parents=True)
        HONEST[student](assignment)(folder)
    for assignment in ASSIGNMENTS:
        for student, (make, _) in BROKEN.items():
            folder = submissions / student / assignment
            folder.mkdir(parents=True)
            make(assignment)(folder)
        sample = [name for a, name in kernel_sample() if a == assignment]
        for i, name in enumerate(sample):
            mutant = catalogue()[assignment][name]
            student = f"mutant-{assignment}-{i:03d}"
            folder = submissions / student / assignment
            folder.mkdir(parents=True)
            nbformat.write(with_cell_replaced(assignment, mutant.cell, mutant.source),
                           folder / f"{assignment}.ipynb")
            mutants[student] = (assignment, name, mutant)
            if (assignment in quickest_assignments() and mutant.fixed_source is not None
                    and not any(a == assignment for a, _, _ in fixed.values())):
                # the advice followed: full marks (every mutant's fix is proven in-process: tests/test_fastpath.py)
                folder = submissions / f"fixed-{assignment}-{i:03d}" / assignment
                folder.mkdir(parents=True)
                nbformat.write(with_cell_replaced(assignment, mutant.cell, mutant.fixed_source),
                               folder / f"{assignment}.ipynb")
                fixed[folder.parent.name] = (assignment, name, mutant)
    for student, (assignment, make) in chinese_submissions().items():   # the same code in the Chinese edition
        if assignment not in ASSIGNMENTS:
            continue
        folder = submissions / student / assignment
        folder.mkdir(parents=True)
        nbformat.write(make(), folder / f"{assignment}.ipynb")
    (submissions / "did-not-submit").mkdir()
    (submissions / "wrong-folder" / "99_not_an_assignment").mkdir(parents=True)   # beside a solution: it is graded
    shutil.copytree(submissions / "solution" / ASSIGNMENTS[0], submissions / "wrong-folder" / ASSIGNMENTS[0])

    before = tree_digest(SOLUTIONS, NOTEBOOKS), sorted(p.name for p in REPO.iterdir())
    process = run_grader(submissions, out)
    after = tree_digest(SOLUTIONS, NOTEBOOKS), sorted(p.name for p in REPO.iterdir())
    assert process.returncode == 0, f"the grader failed:\n{process.stdout}\n{process.stderr}"
    return {
        "process": process,
        "grades": {(r["student_id"], r["assignment"]): r for r in read_csv(out / "grades.csv")},
        "tests": read_csv(out / "tests.csv"),
        "errors": read_csv(out / "errors.csv"),
        "mutants": mutants,
        "fixed": fixed,
        "repository_untouched": before == after,
        "out": out,
    }


@pytest.fixture(scope="session")
def small_class(tmp_path_factory):
    """The small class of the end-to-end operations (tests/small_class.py): three honest students and two mutants
    of 01_attention, graded once without interruption (root/reference) after a run on a worker that cannot sandbox
    (root/not-graded). Ctrl-C, SIGTERM, killed workers and batches, regrading and Dask are all compared with it."""
    from tests.small_class import FULL, FULL_TEXT, grades, make_small_class
    root = make_small_class(tmp_path_factory.mktemp("small-class"))
    reference = grades(root / "reference")
    assert [reference[f"honest-{i}"] for i in range(3)] == [FULL_TEXT] * 3
    assert 0 < float(reference["sdpa-unscaled"]) < FULL
    assert read_csv(root / "reference" / "errors.csv") == [], "the reference run left an error"
    return root


def cell_scores(graded, student, assignment):
    """{grade_id: (score, max_score)} of one graded submission."""
    return {r["grade_id"]: (float(r["score"]), float(r["max_score"])) for r in graded["tests"]
            if r["student_id"] == student and r["assignment"] == assignment}


# Every process this test session starts (graders, workers, sandboxes) inherits this variable, so that the
# session can check at its end that it left none running (a kernel outliving its grader is a bug).
SESSION_TAG = f"AG_TEST_SESSION={os.getpid()}"
os.environ["AG_TEST_SESSION"] = str(os.getpid())
# The course's secret of the tests (autograder/course.py): graders the tests start never write one into the
# repository, and every seed of the hidden tests is mixed with it, as in a course.
os.environ.setdefault("AUTOGRADER_SECRET", "the project's tests")


# multiprocessing's helpers that a test started in this process (local_executor): they end with it
OWN_HELPERS = (b"multiprocessing.forkserver", b"multiprocessing.resource_tracker")


def _tagged_processes():
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if SESSION_TAG.encode() + b"\0" not in (entry / "environ").read_bytes():
                    continue
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if parent == os.getpid() and any(helper in command for helper in OWN_HELPERS):
                    continue
                found.append(f"{entry.name}: {command[:150].decode(errors='replace')}")
            except (OSError, ValueError, IndexError):
                pass
    return found


LEFT_BY_WORKERS = []   # in pytest-xdist's controller: what its workers reported left running


def pytest_sessionfinish(session, exitstatus):
    """No process of this session outlives it. Under pytest-xdist each worker checks what its own tests
    started (they carry the worker's tag) and reports it to the controller, which fails the run."""
    import time
    if session.config.pluginmanager.hasplugin("dsession"):   # xdist's controller: it runs no test itself
        left = LEFT_BY_WORKERS
    else:
        for builder in BOOK_BUILDER:   # the book's build, if no test waited for it (an interrupted run)
            if builder.poll() is None and exitstatus == pytest.ExitCode.INTERRUPTED:
                os.killpg(builder.pid, signal.SIGTERM)
            builder.wait()
        from autograder import forked
        forked.shut_down()   # this process's zygote, with every kernel it forked: all must be gone after it
        deadline = time.monotonic() + 20
        while _tagged_processes() and time.monotonic() < deadline:
            time.sleep(0.5)
        left = _tagged_processes()
        worker_output = getattr(session.config, "workeroutput", None)
        if worker_output is not None:   # an xdist worker: the controller says it
            worker_output["left_running"] = left
            return
    if left:
        print("\nERROR: the tests left processes running:\n  " + "\n  ".join(left), file=sys.stderr)
        session.exitstatus = 1


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    LEFT_BY_WORKERS.extend(getattr(node, "workeroutput", {}).get("left_running", []))


# --- parallel tests (pytest-xdist) --------------------------------------------------------------------------------
# `make test` runs on one pytest-xdist worker per core. Tests that share an expensive fixture must run on one
# worker, so that it is made once: the graded class (session-scoped) and each module's own class or batch
# (module-scoped). xdist's own `--dist loadgroup` cannot do it under pytest 9 (it renames node ids, which pytest
# 9 no longer lets it do), so the controller schedules by this table (for `pytest -n N`, whatever --dist): a file's tests form one unit of work,
# named by the fixture they share; every other test is a unit of its own. Each worker checks the table against
# the fixtures its tests really use (pytest_collection_modifyitems below), so it cannot silently go stale.
# The book is the exception: `built_book` is built once per run, in the background from the start (a file lock
# makes it once, pytest_collection_finish above), so its tests form a unit of their own, and the graded class's
# test of the report's links to the book (tests/test_grader.py) uses it too.
SHARED_BY_FILE = {
    "tests/test_book.py": "the book", "tests/test_grader.py": "the graded class",
    "tests/test_mutants.py": "the graded class", "tests/test_similarity.py": "the graded class",
    "tests/test_hostile.py": "the hostile batch", "tests/test_inputs.py": "the planted inputs",
    "tests/test_isolation.py": "the isolation probes", "tests/test_operations.py": "the small class",
    "tests/test_resume.py": "the small class", "tests/test_forked.py": "the small class",
    "tests/test_lms.py": "the small class",
    "tests/test_pollution.py": "the pollution class", "tests/test_maintainer.py": "the repository copy",
}


MADE_ONCE_PER_RUN = {"built_book"}   # session fixtures that every worker may use: one makes them, under a lock


def schedule_unit(nodeid):
    """The unit of work of a test under xdist: its file's shared fixture, or the test alone."""
    return SHARED_BY_FILE.get(nodeid.split("::", 1)[0], nodeid)


def _shared_fixtures(item):
    """Keys of the expensive fixtures an item uses: the name of each session-scoped fixture of this folder,
    the item's module for each module-scoped one."""
    info = getattr(item, "_fixtureinfo", None)
    keys = set()
    for name, definitions in (info.name2fixturedefs.items() if info else ()):
        definition = definitions[-1]
        code = getattr(definition.func, "__code__", None)
        if code is None or not Path(code.co_filename).resolve().is_relative_to(REPO / "tests"):
            continue
        if definition.scope == "session" and name not in MADE_ONCE_PER_RUN:
            keys.add(name)
        elif definition.scope == "module":
            keys.add(item.module.__name__)
    return keys


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """xdist's controller: schedule by schedule_unit (largest units first, as xdist's loadscope does), whatever
    the --dist mode that balances load (load, loadscope, loadfile, loadgroup, worksteal); not --dist each."""
    if config.getvalue("dist") == "each":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return schedule_unit(nodeid)

    return SharedFixtureScheduling(config, log)


MISSCHEDULED = {}   # in an xdist worker: {nodeid: why its schedule is wrong}; the test fails with it


def pytest_collection_modifyitems(config, items):
    """In an xdist worker: every test that shares an expensive fixture with another is in the same unit."""
    if not hasattr(config, "workerinput"):
        return
    unit_of_key = {}
    for item in items:
        unit = schedule_unit(item.nodeid)
        for key in sorted(_shared_fixtures(item)):
            if unit == item.nodeid or unit_of_key.setdefault(key, unit) != unit:
                where = "is not in" if unit == item.nodeid else f"is under {unit!r} in"
                MISSCHEDULED[item.nodeid] = (
                    f"it uses the shared fixture {key!r}, but its file {where} tests/conftest.py's SHARED_BY_FILE, "
                    f"not under the unit of the other tests that use it ({unit_of_key.get(key)!r}): fix it there")


def pytest_runtest_setup(item):
    if item.nodeid in MISSCHEDULED:
        pytest.fail(f"scheduled wrongly under pytest-xdist: {MISSCHEDULED[item.nodeid]}", pytrace=False)
