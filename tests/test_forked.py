"""Pre-warmed kernels (autograder/forked.py, autograder/zygote.py): the same grades as fresh kernels, and faults
that cost nothing.

- A class graded with --fresh-kernels gives byte for byte the CSV files and feedback pages of the same class
  graded in forked kernels (of conftest's small class, an honest student and both mutants).
- Each forked kernel lives in namespaces of its own, none shared with its zygote; the zygote runs no student
  code (the kernel is another process, two forks below it).
- A zygote that died, forked MAX_KERNELS kernels or grew past MEMORY_BOUND is replaced; a kernel that could not
  be forked is run again in a fresh kernel (and said on stderr); a worker whose zygote cannot start says so
  and uses fresh kernels. The notebook's outputs are right every time.
The sandbox itself is proven on forked kernels by tests/test_isolation.py, and isolation between students by
tests/test_pollution.py.
"""
import os
import shutil
import time
from pathlib import Path

import nbformat
import pytest

from autograder import forked, sandbox, zygote
from tests.small_class import MUTANT_STUDENTS, Run, outputs

pytestmark = pytest.mark.skipif(not sandbox.available(), reason="needs the sandbox (make sandbox)")

WHO = "import os\nprint(open('/proc/self/comm').read().strip(), 6 * 7)"


def run(source=WHO, tmp_path=None, **kwargs):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    sandbox.run_notebook(notebook, Path(tmp_path or "/tmp") / f"job-{time.monotonic_ns()}", 60, 30, **kwargs)
    return "".join(o.get("text", "") for o in notebook.cells[0].outputs).strip()


@pytest.fixture
def fresh_zygote():
    """Each test starts with no zygote in this process, and leaves none behind."""
    forked.shut_down()
    yield
    forked.shut_down()


def zygote_pid():
    return forked._CURRENT[0].pid if forked._CURRENT else None


# One honest student and both mutants of the small class: a fresh kernel per notebook costs seconds more than a forked one
FRESH_SAMPLE = ["honest-0", *MUTANT_STUDENTS]


def test_fresh_kernels_give_the_same_csv_files_and_feedback_pages(small_class, tmp_path):
    submitted, out = tmp_path / "submitted", tmp_path / "fresh"
    for student in FRESH_SAMPLE:
        shutil.copytree(small_class / "submitted" / student, submitted / student)
    grader = Run(submitted, out, "--fresh-kernels")
    assert grader.wait() == 0, grader.stderr
    assert grader.leftovers() == ([], [])
    reference = small_class / "reference"
    assert outputs(out) == [[row for row in rows if row["student_id"] in FRESH_SAMPLE] for rows in outputs(reference)]
    pages = sorted(p.relative_to(reference) for p in (reference / "feedback").rglob("*.html")
                   if p.relative_to(reference / "feedback").parts[0] in FRESH_SAMPLE)
    assert pages and pages == sorted(p.relative_to(out) for p in (out / "feedback").rglob("*.html"))
    for page in pages:
        assert (out / page).read_bytes() == (reference / page).read_bytes(), f"{page} differs"


def test_a_forked_kernel_shares_no_namespace_with_its_zygote(fresh_zygote, tmp_path):
    import threading
    found = {}
    kinds = ("user", "pid", "net", "ipc", "uts", "mnt", "cgroup")

    def namespaces(pid):
        return {kind: os.readlink(f"/proc/{pid}/ns/{kind}") for kind in kinds}

    def watch(mother):   # the kernel, from outside, while it runs
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not found:
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    if Path(f"/proc/{pid}/comm").read_text().strip() == zygote.KERNEL_NAME.decode():
                        found.update(kernel=int(pid), theirs=namespaces(pid), mothers=namespaces(mother))
                except OSError:
                    pass
            time.sleep(0.05)
    forked.prewarm()
    forked._CURRENT[0].wait_ready()
    watcher = threading.Thread(target=watch, args=(zygote_pid(),))
    watcher.start()
    assert run("import time\ntime.sleep(3)\nprint('done')", tmp_path) == "done"
    watcher.join()
    assert found, "the forked kernel was never seen"
    assert found["kernel"] != zygote_pid()
    shared = [kind for kind in kinds if found["theirs"][kind] == found["mothers"][kind]]
    assert shared == [], f"the kernel shares its zygote's {shared} namespaces"


def test_kernels_are_forked_and_a_dead_zygote_is_replaced(fresh_zygote, tmp_path):
    assert run(tmp_path=tmp_path) == f"{zygote.KERNEL_NAME.decode()} 42"
    first = zygote_pid()
    os.kill(first, 9)
    time.sleep(0.5)
    assert run(tmp_path=tmp_path).endswith(" 42")       # a fresh kernel, or one forked by a new zygote
    assert run(tmp_path=tmp_path) == f"{zygote.KERNEL_NAME.decode()} 42"
    assert zygote_pid() not in (None, first)


def test_a_zygote_is_replaced_after_max_kernels_and_past_its_memory_bound(fresh_zygote, tmp_path, monkeypatch):
    monkeypatch.setattr(forked, "MAX_KERNELS", 2)
    pids = []
    for _ in range(3):
        assert run(tmp_path=tmp_path) == f"{zygote.KERNEL_NAME.decode()} 42"
        pids.append(zygote_pid())
    assert pids[0] == pids[1] != pids[2]
    monkeypatch.setattr(forked, "MAX_KERNELS", 500)
    monkeypatch.setattr(forked, "MEMORY_BOUND", 1)
    assert run(tmp_path=tmp_path) == f"{zygote.KERNEL_NAME.decode()} 42"
    assert zygote_pid() != pids[2]


def test_a_kernel_that_could_not_be_forked_runs_in_a_fresh_kernel(fresh_zygote, tmp_path, monkeypatch, capfd):
    def fails(*args, **kwargs):
        raise forked.ForkFailed("the kernel's sandbox could not be set up: a test says so")
    monkeypatch.setattr(forked.Zygote, "spawn", fails)
    assert run(tmp_path=tmp_path) == "python 42"   # the fresh kernel's own name
    assert "running the notebook in a fresh kernel" in capfd.readouterr().err
    assert forked.available()   # one failed fork does not turn forking off


def test_a_worker_whose_zygote_cannot_start_says_so_and_uses_fresh_kernels(fresh_zygote, tmp_path, monkeypatch,
                                                                           capfd):
    monkeypatch.setattr(forked, "BOOT", "raise SystemExit('this zygote cannot start')")
    monkeypatch.setattr(forked, "_UNAVAILABLE", [])
    assert run(tmp_path=tmp_path) == "python 42"
    assert run(tmp_path=tmp_path) == "python 42"
    err = capfd.readouterr().err
    assert err.count("pre-warmed kernels are not available on this worker") == 1, err
    assert "this zygote cannot start" in err, "the zygote's own words are not in the message"
    assert not forked.available()


def test_fresh_kernels_are_fresh(fresh_zygote, tmp_path):
    assert run(tmp_path=tmp_path, fresh_kernels=True) == "python 42"
    assert not forked._CURRENT, "a zygote was started although fresh kernels were asked for"
