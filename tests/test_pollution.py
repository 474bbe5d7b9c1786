"""Isolation between students graded by the same worker, proven: one worker grades, in this order, an honest
student, then a polluter of each kind, each followed by an honest student (copies of the solution with a
first cell added that prints the state its kernel starts in). Every kernel is forked by that worker's zygote.

A polluter changes what one kernel could leave to the next: files (its working folder, /tmp, $HOME, an
IPython start-up file, matplotlib's cache, /dev/shm, a module that shadows torch), processes (a background
process, a double-forked daemon, a daemon thread, a signal to every process it can reach), module state (a
patched torch function, the default dtype, the seed, torch's threads, sys.modules, os.environ), open files,
signal handlers and an alarm, and the process and memory limits. Every honest student keeps full marks, finds
exactly the state the first honest student found, and nothing of a polluter reaches their feedback. Once the
grader has ended, none of its processes (zygote and kernels included) and none of its files is left.
"""
import html
import json
import os
import re

import nbformat
import pytest

from autograder import sandbox
from tests.small_class import ASSIGNMENT, FULL, Run, grades
from tests.conftest import REPO

pytestmark = pytest.mark.skipif(not sandbox.available(), reason="needs the sandbox (make sandbox)")

MARK = "POLLUTER-MARK"

WITNESS = r'''
import json, os, resource, signal, sys, threading, math
import torch
def _files(folder):
    try:
        return sorted(os.listdir(folder))
    except OSError as error:
        return type(error).__name__
def _fds():
    found, log = [], {os.readlink("/proc/self/fd/1"), os.readlink("/proc/self/fd/2")}   # the grader's log
    for fd in sorted(os.listdir("/proc/self/fd"), key=int):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("/") and not target.startswith(("/dev/", "/proc/")) and target not in log:
            found.append(target)
    return found
_state = {
    "files": {folder: _files(folder) for folder in ("/job", "/tmp", os.path.expanduser("~"), "/dev/shm",
                                                     os.path.expanduser("~/.ipython/profile_default/startup"))},
    "torch": [str(torch.get_default_dtype()), torch.initial_seed(), torch.get_num_threads(),
              torch.softmax.__name__, torch.nn.functional.softmax.__module__, math.sqrt(4.0)],
    "random": torch.rand(1, generator=torch.Generator().manual_seed(0)).item(),
    "modules": sorted(m for m in sys.modules if "pollut" in m),
    "environ": sorted(os.environ),
    "fds": _fds(),
    "handlers": {name: str(signal.getsignal(getattr(signal, name))) for name in ("SIGALRM", "SIGTERM", "SIGUSR1")},
    "alarm": signal.alarm(0),
    "limits": {name: resource.getrlimit(getattr(resource, name))
               for name in ("RLIMIT_AS", "RLIMIT_NOFILE", "RLIMIT_CPU", "RLIMIT_NPROC", "RLIMIT_FSIZE")},
    "processes": len([p for p in os.listdir("/proc") if p.isdigit()]),
    "threads": sorted(t.name for t in threading.enumerate() if "pollut" in t.name),
}
print("WITNESS " + json.dumps(_state, sort_keys=True))
'''

POLLUTERS = {
    "files": r'''
import os, pathlib
for folder in ("/job", "/tmp", os.path.expanduser("~"), "/dev/shm", "/run/kernel"):
    try:
        pathlib.Path(folder, "polluted.txt").write_text("POLLUTER-MARK")
    except OSError:
        pass
startup = pathlib.Path.home() / ".ipython" / "profile_default" / "startup"
startup.mkdir(parents=True, exist_ok=True)
(startup / "00-pollute.py").write_text("import torch\ntorch.softmax = lambda *a, **k: 0\nprint('POLLUTER-MARK')\n")
pathlib.Path("/tmp/matplotlib").mkdir(exist_ok=True)
pathlib.Path("/tmp/matplotlib/matplotlibrc").write_text("backend: pdf  # POLLUTER-MARK\n")
pathlib.Path("/job/torch.py").write_text("raise ImportError('POLLUTER-MARK')\n")
pathlib.Path("/job/math.py").write_text("raise ImportError('POLLUTER-MARK')\n")
print("POLLUTER-MARK files")
''',
    "processes": r'''
import os, subprocess, sys, threading, time, torch
script = ("import os, time\n"
          "for _ in range(600):\n"
          "    time.sleep(0.1)\n"
          "    for folder in ('/job', '/tmp'):\n"
          "        try:\n"
          "            open(os.path.join(folder, 'late.txt'), 'w').write('POLLUTER-MARK')\n"
          "        except OSError:\n"
          "            pass\n")
subprocess.Popen([sys.executable, "-c", script], start_new_session=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", script])
    os._exit(0)
def patch_forever():
    while True:
        torch.softmax = lambda *a, **k: "POLLUTER-MARK"
        time.sleep(0.01)
threading.Thread(target=patch_forever, name="polluter-thread", daemon=True).start()
time.sleep(0.3)
print("POLLUTER-MARK processes")
''',
    "module state": r'''
import math, os, sys, types, torch
torch.set_default_dtype(torch.float64)
torch.manual_seed(1234)
torch.set_num_threads(2)
torch.softmax = lambda *a, **k: "POLLUTER-MARK"
torch.nn.functional.softmax = torch.softmax
math.sqrt = lambda x: 1.0
sys.modules["polluter_module"] = types.ModuleType("polluter_module")
os.environ["POLLUTER"] = "POLLUTER-MARK"
os.environ["OMP_NUM_THREADS"] = "8"
print("POLLUTER-MARK module state")
''',
    "files descriptors signals limits": r'''
import os, resource, signal
kept = [open("/job/held.txt", "w"), open("/tmp/held.txt", "w")]
os.dup2(kept[0].fileno(), 50)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGUSR1, lambda *a: print("POLLUTER-MARK"))
signal.signal(signal.SIGALRM, lambda *a: print("POLLUTER-MARK"))
signal.alarm(2)
resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))
resource.setrlimit(resource.RLIMIT_AS, (5 * 2**30, 5 * 2**30))
resource.setrlimit(resource.RLIMIT_CPU, (100, 100))
held = bytearray(512 * 2**20)   # memory, held until the kernel ends
print("POLLUTER-MARK descriptors, signals, limits")
''',
    "everyone": r'''
import os, signal, time
print("POLLUTER-MARK signals every process it can reach")
time.sleep(0.2)
os.kill(-1, signal.SIGKILL)
''',
}


def with_cell(source, first=False):
    """The solution with one cell added: first (the witness: a cell before the tests keeps its output on the
    feedback page even when the scan flags it for reading the environment, as it does), or last."""
    notebook = nbformat.read(REPO / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    notebook.cells.insert(0 if first else len(notebook.cells), nbformat.v4.new_code_cell(source))
    return notebook


@pytest.fixture(scope="module")
def polluted_class(tmp_path_factory):
    root = tmp_path_factory.mktemp("pollution")
    order = []
    students = [("s00-honest", WITNESS)]
    for i, (kind, source) in enumerate(POLLUTERS.items(), start=1):
        students += [(f"s{i:02d}a-polluter", source), (f"s{i:02d}b-honest", WITNESS)]
        order.append(kind)
    for student, source in students:
        folder = root / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(with_cell(source, first=source is WITNESS), folder / f"{ASSIGNMENT}.ipynb")
    run = Run(root / "submitted", root / "out", workers=1)
    code = run.wait()
    return {"root": root, "out": root / "out", "code": code, "stderr": run.stderr, "leftovers": run.leftovers(),
            "students": [s for s, _ in students]}


def witness(out, student):
    page = html.unescape((out / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text())
    found = re.findall(r"WITNESS (\{.*\})", page)
    assert len(found) == 1, f"{student}: the witness cell printed nothing"
    return page, json.loads(found[0])


def test_every_honest_student_after_a_polluter_keeps_full_marks(polluted_class):
    assert polluted_class["code"] == 0, polluted_class["stderr"][-2000:]
    scores = grades(polluted_class["out"])
    honest = [s for s in polluted_class["students"] if s.endswith("honest")]
    assert {s: float(scores[s]) for s in honest} == {s: FULL for s in honest}


def test_nothing_of_a_polluter_reaches_the_next_student(polluted_class):
    out = polluted_class["out"]
    honest = [s for s in polluted_class["students"] if s.endswith("honest")]
    _, first = witness(out, honest[0])
    assert first["files"]["/job"] == [] and first["modules"] == [] and first["threads"] == [], first
    for student in honest[1:]:
        page, state = witness(out, student)
        assert MARK not in page.replace(WITNESS, ""), f"{student}: a polluter's mark reached the feedback"
        assert state == first, f"{student} found another state than the first honest student: " + \
            json.dumps({k: (first[k], state[k]) for k in state if state[k] != first[k]})


def test_the_polluters_did_pollute_their_own_kernel(polluted_class):
    """The polluters ran (their mark is in their own feedback), so the honest students' clean state is a result."""
    out = polluted_class["out"]
    for student in (s for s in polluted_class["students"] if s.endswith("polluter")):
        page = (out / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
        assert MARK in page, f"{student}: the polluting cell did not run"


def test_no_process_or_file_outlives_the_grader(polluted_class):
    alive, files = polluted_class["leftovers"]
    assert alive == [] and files == [], (alive, files)
