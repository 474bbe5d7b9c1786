"""The sandbox runner leaves nothing behind in the worker that calls it: a worker grades hundreds of
notebooks, so one leaked socket or thread per notebook would end a batch with 'too many open files'."""
import os
import tempfile
import threading

import nbformat
import pytest
import torch

from autograder.sandbox import SandboxError, run_notebook, sockets_prefix

NOTEBOOKS = {  # how a notebook ends: normally, by killing its kernel, by running out of time
    "normal": ["print(1)"],
    "kernel-killed": ["import os\nos._exit(1)", "print(1)"],
    "timeout": ["while True:\n    pass"],
}


def open_files():
    """{(descriptor, what it is open on)} of this process."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            found.add((fd, os.readlink(f"/proc/self/fd/{fd}")))
        except OSError:   # the descriptor of the listing itself, closed meanwhile
            pass
    return found


def socket_folders():
    """This process's kernel socket folders (other graders may run on the machine at the same time)."""
    return {p for p in os.listdir(tempfile.gettempdir()) if p.startswith(sockets_prefix(os.getpid()))}


@pytest.mark.parametrize("ending", sorted(NOTEBOOKS))
def test_running_notebooks_leaks_no_file_or_thread(tmp_path, ending):
    def run(i):
        notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in NOTEBOOKS[ending]])
        try:
            run_notebook(notebook, tmp_path / str(i), timeout=4, cell_timeout=60)
        except SandboxError as error:
            assert ending == "timeout" and "timeout" in str(error)
    run(0)  # the first run opens what stays open for good (imports, the event loop)
    files, threads, folders = open_files(), set(threading.enumerate()), socket_folders()
    for i in range(1, 3):
        run(i)
    # no file opened by the runs is left open, and no thread they started is left (a file or thread of an earlier test
    # of this worker may end meanwhile: a count would take that for a change)
    assert open_files() - files == set()
    assert set(threading.enumerate()) - threads == set()
    assert socket_folders() == folders


@pytest.mark.unit
def test_a_cell_keeps_the_notebooks_limit_unless_its_own_is_shorter():
    import nbformat
    from autograder.sandbox import TIMEOUT_TAG, cell_limit
    plain, own, longer, odd = (nbformat.v4.new_code_cell("pass") for _ in range(4))
    own.metadata[TIMEOUT_TAG], longer.metadata[TIMEOUT_TAG], odd.metadata[TIMEOUT_TAG] = 30, 900, "x"
    assert [cell_limit(c, 120) for c in (plain, own, longer, odd)] == [120, 30, 120, 120]


STUDENT_MEMORY = '''
import torch

def full_row(q, k):               # every score of a query row at once: (T_q, T_k)
    return torch.softmax(q @ k.T, dim=-1).sum(-1)

def blocked(q, k):                # one block of keys at a time: (T_q, 1024)
    total = torch.zeros(q.shape[0])
    for start in range(0, k.shape[0], 1024):
        total += (q @ k[start:start + 1024].T).exp().sum(-1)
    return total
'''


def test_the_grader_reads_a_calls_memory_from_the_kernels_cgroup(tmp_path):
    """What a watched call held, measured by the grader from the kernel's memory cgroup (outside the student's
    reach): a (16, 2^19) matrix of scores shows as tens of MB, a loop over blocks of 1024 keys as almost
    nothing, although both calls receive the same 32 MB of keys."""
    from autograder import agent, sandbox
    from autograder.remote import KeptProxy
    if sandbox.unavailable():
        pytest.skip("needs the sandbox")
    probe = sandbox.KernelCgroup.make()
    meter = probe.memory_meter() if probe else None
    if probe:
        probe.remove()
    if meter is None:
        pytest.skip("this machine gives the grader no memory cgroup: the measurement cannot be made here")
    meter.close()
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(STUDENT_MEMORY),
                                               nbformat.v4.new_code_cell(agent.keep_cell(["full_row", "blocked"], "s", "_kept"))])
    grown = {}

    def serve(remote):
        q, k = torch.randn(16, 16), torch.randn(1 << 19, 16)
        for name in ("full_row", "blocked"):
            _, watch = KeptProxy(remote, "s", name).watch(q, k)
            grown[name] = watch.grown
        assert not remote.flags
    run_notebook(notebook, tmp_path / "job", 120, 60, serve=serve, kept_key="_kept")
    assert grown["full_row"] > 30 * 2**20, grown
    assert grown["blocked"] < 4 * 2**20, grown


def test_what_the_sandbox_writes_into_a_chinese_notebook_is_chinese(tmp_path):
    """A cell that never ran says so in the submission's edition (its error name stays)."""
    from autograder.editions import Edition
    cells = ["import os\nos._exit(1)", "print(1)"]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    run_notebook(notebook, tmp_path / "job", timeout=60, cell_timeout=30, edition=Edition.ZH)
    errors = [(o.ename, o.evalue) for o in notebook.cells[1].outputs if o.output_type == "error"]
    assert errors == [("NotExecuted", "这个单元从未运行：内核在它之前已终止或停止")], errors


def test_a_cell_out_of_time_names_its_own_limit(tmp_path):
    """A cell past its time limit says which limit: its own (TIMEOUT_TAG) where that is shorter than the notebook's
    limit per cell, in the submission's edition."""
    from autograder.editions import Edition
    from autograder.sandbox import TIMEOUT_TAG
    cells = [nbformat.v4.new_code_cell("import time\ntime.sleep(30)") for _ in range(2)]
    cells[1].metadata[TIMEOUT_TAG] = 1
    for edition, words in ((Edition.EN, "the cell ran longer than {} s"), (Edition.ZH, "这个单元的运行超过了 {} 秒")):
        notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c.source, metadata=dict(c.metadata))
                                                   for c in cells])
        run_notebook(notebook, tmp_path / edition.value, timeout=60, cell_timeout=2, edition=edition)
        errors = [[(o.ename, o.evalue) for o in cell.outputs if o.output_type == "error"] for cell in notebook.cells]
        assert errors == [[("CellTimeoutError", words.format(2))], [("CellTimeoutError", words.format(1))]], errors
