"""Run one notebook in isolation, with the operating system's tools.

The notebook runs (kernel and client) in a bubblewrap sandbox: new network, PID, IPC and UTS
namespaces (no network at all, only its own loopback), a private /tmp, and a read-only view of just
the system directories, the Python installation and the virtual environment. The repository
(solutions and hidden tests), the grader's scratch course and gradebook, and every other student's
files are not in its view. Resource limits (setrlimit) cap its memory, CPU time and file sizes, and a
wall-clock timeout kills the whole process group. `python -m autograder.sandbox CELL_TIMEOUT FD` is
the program that runs inside: it reads the notebook on stdin and writes it back, executed, on FD.
"""
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SYSTEM_DIRS = ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc"]
MEMORY_LIMIT = 6 * 2**30          # bytes of address space (torch alone maps about 2 GiB)
CPU_LIMIT = 900                   # CPU seconds for the whole notebook
FILE_LIMIT = 256 * 2**20          # bytes, the largest file it may write
OUTPUT_LIMIT = 100_000            # characters of text output kept per cell
RESULT_LIMIT = 64 * 2**20         # bytes of executed notebook accepted back


class SandboxError(Exception):
    """The notebook could not be run to the end; the message says why, for errors.csv."""


def available():
    return shutil.which("bwrap") is not None


def _python_dirs():
    """Directories a Python in the venv needs: the venv, the base installation, the grader package."""
    dirs = {sys.prefix, sys.base_prefix, str(REPO / "autograder")}
    return sorted(d for d in dirs if os.path.isdir(d))


def bwrap_command(job_dir, argv):
    """bwrap arguments that show the sandbox only the system, Python and `job_dir` (at /job)."""
    command = ["bwrap", "--die-with-parent", "--new-session",
               "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
               "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--dir", "/tmp/home"]
    for path in SYSTEM_DIRS + _python_dirs():
        if os.path.exists(path):
            command += ["--ro-bind", path, path]
    command += ["--bind", str(job_dir), "/job", "--chdir", "/job",
                "--setenv", "HOME", "/tmp/home", "--setenv", "MPLCONFIGDIR", "/tmp/matplotlib",
                "--setenv", "PYTHONPATH", str(REPO), "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
                "--unsetenv", "JUPYTER_RUNTIME_DIR", "--unsetenv", "JUPYTER_DATA_DIR",
                "--unsetenv", "JUPYTER_CONFIG_DIR", "--"]
    return command + argv


def _limit_resources():
    """In the child, before exec: caps that the student's code inherits."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_LIMIT, CPU_LIMIT))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_notebook(notebook, job_dir, timeout, cell_timeout):
    """Execute `notebook` (a NotebookNode) in the sandbox; returns the executed NotebookNode.

    The notebook goes in on the runner's stdin and comes back on a pipe that only the runner holds: no file in the sandbox ever holds the hidden tests, and nothing the student's code leaves
    running can rewrite the result. Code cells that never ran (the kernel died) get an error output,
    so that nbgrader does not give their tests full points.
    """
    import nbformat
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    result_read, result_write = os.pipe()
    inner = [sys.executable, "-m", "autograder.sandbox", str(cell_timeout), str(result_write)]
    command = bwrap_command(job_dir, inner) if available() else inner

    with open(job_dir / "sandbox.log", "wb") as log:
        child = subprocess.Popen(command, cwd=job_dir, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True, preexec_fn=_limit_resources, pass_fds=(result_write,))
        os.close(result_write)
        chunks = []
        reader = threading.Thread(target=_read_limited, args=(result_read, chunks), daemon=True)
        reader.start()
        try:
            child.stdin.write(nbformat.writes(notebook).encode())
            child.stdin.close()
        except BrokenPipeError:
            pass
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            raise SandboxError(f"timeout: the notebook ran longer than {timeout:.0f} s") from None
        finally:
            reader.join(timeout=10)
    data = b"".join(chunks)
    if child.returncode != 0 or not data:
        raise SandboxError(f"the notebook could not be run to the end (the runner's exit status was "
                           f"{child.returncode}): it may have used too much memory or output")
    executed = nbformat.reads(data.decode(), as_version=4)
    for cell in executed.cells:
        if cell.cell_type == "code" and cell.get("execution_count") is None:
            cell.outputs.append(nbformat.v4.new_output(
                "error", ename="NotExecuted", evalue="this cell never ran: the kernel died or stopped before it",
                traceback=[]))
    return executed


def _read_limited(fd, chunks, limit=RESULT_LIMIT):
    with os.fdopen(fd, "rb") as pipe:
        size = 0
        while True:
            chunk = pipe.read(1 << 16)
            if not chunk:
                return
            size += len(chunk)
            if size > limit:
                chunks.clear()  # too large to be an honest notebook: treated as a failed run
                return
            chunks.append(chunk)


# --- the program that runs inside the sandbox ----------------------------------------------------

def _record_missing_error(cell, reply):
    """A cell whose reply says 'error' but shows no error (a hook swallowed it) still failed."""
    if reply and reply.get("content", {}).get("status") == "error":
        if not any(o.get("output_type") == "error" for o in cell.outputs):
            import nbformat
            content = reply["content"]
            cell.outputs.append(nbformat.v4.new_output("error", ename=content.get("ename", "Error"),
                                                       evalue=content.get("evalue", ""), traceback=[]))


def _truncate(cell):
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream" and len(output.get("text", "")) > OUTPUT_LIMIT:
            output["text"] = output["text"][:OUTPUT_LIMIT] + "\n[... output truncated by the grader ...]\n"


def main(cell_timeout, result_fd):
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    notebook = nbformat.reads(sys.stdin.read(), as_version=4)
    result = os.fdopen(result_fd, "w")
    os.set_inheritable(result_fd, False)  # the kernel and anything it starts never see it
    client = NotebookClient(
        notebook, timeout=cell_timeout, kernel_name="python3", allow_errors=True,
        interrupt_on_timeout=True, record_timing=False,
        error_on_timeout={"ename": "CellTimeoutError", "evalue": f"the cell ran longer than {cell_timeout} s",
                          "traceback": []},
        extra_arguments=["--HistoryManager.hist_file=:memory:"],
        on_cell_executed=lambda cell, execute_reply, **_: _record_missing_error(cell, execute_reply),
        resources={"metadata": {"path": "/job"}})
    try:
        client.execute()
    except DeadKernelError:
        pass  # the student's code killed its kernel: the cells after it have no outputs and score 0
    for cell in notebook.cells:
        _truncate(cell)
    result.write(nbformat.writes(notebook))
    result.close()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
