"""The sandbox runner leaves nothing behind in the worker that calls it: a worker grades hundreds of
notebooks, so one leaked socket or thread per notebook would end a batch with 'too many open files'."""
import os
import tempfile
import threading

import nbformat
import pytest

from autograder.sandbox import SandboxError, run_notebook, sockets_prefix

NOTEBOOKS = {  # how a notebook ends: normally, by killing its kernel, by running out of time
    "normal": ["print(1)"],
    "kernel-killed": ["import os\nos._exit(1)", "print(1)"],
    "timeout": ["while True:\n    pass"],
}


def open_files():
    return len(os.listdir("/proc/self/fd"))


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
    files, threads, folders = open_files(), threading.active_count(), socket_folders()
    for i in range(1, 3):
        run(i)
    assert open_files() == files
    assert threading.active_count() == threads
    assert socket_folders() == folders


@pytest.mark.unit
def test_a_cell_keeps_the_notebooks_limit_unless_its_own_is_shorter():
    import nbformat
    from autograder.sandbox import TIMEOUT_TAG, cell_limit
    plain, own, longer, odd = (nbformat.v4.new_code_cell("pass") for _ in range(4))
    own.metadata[TIMEOUT_TAG], longer.metadata[TIMEOUT_TAG], odd.metadata[TIMEOUT_TAG] = 30, 900, "x"
    assert [cell_limit(c, 120) for c in (plain, own, longer, odd)] == [120, 30, 120, 120]
