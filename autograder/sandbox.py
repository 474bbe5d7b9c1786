"""Run one notebook in isolation, with the operating system's tools.

The notebook's kernel (the only process that runs student code) starts in a bubblewrap sandbox: new
network, PID, IPC and UTS namespaces (no network at all, only its own loopback), a private /tmp, and a
read-only view of just the system directories and the Python installation with its virtual
environment. The repository (solutions and hidden tests), the grader's scratch course and gradebook,
and every other student's files are not in its view. Resource limits (setrlimit, through util-linux's
`prlimit`) cap its memory, CPU time and file sizes, and a wall-clock timeout kills the sandbox.

The client that sends the cells (nbclient) runs in the grader's warm worker process, outside the
sandbox, and talks to the kernel over ZeroMQ sockets in a directory of their own, the one writable
place besides the notebook's working directory. So the sandbox holds nothing but the student's kernel,
and a submission costs what a plain nbgrader run costs: starting a kernel and running the cells.
"""
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError
from traitlets import List, Unicode

SYSTEM_DIRS = ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc"]
MEMORY_LIMIT = 6 * 2**30          # bytes of address space (torch alone maps about 2 GiB)
CPU_LIMIT = 900                   # CPU seconds for the whole notebook
FILE_LIMIT = 256 * 2**20          # bytes, the largest file it may write
OUTPUT_LIMIT = 100_000            # characters of output kept per cell (errors are always kept)
PIDS_LIMIT = 256                  # processes and threads of one kernel, where a pids cgroup can be made
CGROUP_ROOTS = [Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup")]   # cgroup v1's pids hierarchy, or v2's


TIMEOUT_TAG = "autograder-timeout"   # a cell's own limit in seconds (never more than the notebook's cell limit)


class SandboxError(Exception):
    """The notebook could not be run to the end; the message says why."""


class NotebookTimeout(SandboxError):
    """The student's notebook ran longer than its limit: the student's error (it scores 0)."""


class SandboxFailure(SandboxError):
    """The sandbox or the kernel could not run at all: the grader's failure (the notebook is not graded)."""


SOCKETS_PREFIX = "ag-kernel-"


def sockets_prefix(pid=None):
    """The prefix of the socket folders of the kernels that process `pid` starts (to clean up after it)."""
    return f"{SOCKETS_PREFIX}{pid or os.getpid()}-"


class PidsCgroup:
    """A pids cgroup of its own for one kernel (cgroup v1's pids controller, or v2 with pids enabled), so
    that a fork bomb in one notebook cannot starve the kernels of other students. RLIMIT_NPROC cannot do
    this: it counts every process of the user. `make()` returns None where the machine does not let the
    grader create one (then only the machine-wide limits hold; see the README)."""

    def __init__(self, path):
        self.path = path

    @classmethod
    def make(cls, limit=PIDS_LIMIT):
        for root in CGROUP_ROOTS:
            v2 = (root / "cgroup.controllers").exists()
            if not (root / "cgroup.procs").exists() or (v2 and "pids" not in (root / "cgroup.subtree_control")
                                                             .read_text().split()):
                continue
            path = root / f"autograder-{os.getpid()}-{next(tempfile._get_candidate_names())}"
            try:
                path.mkdir()
                (path / "pids.max").write_text(str(limit))
                return cls(path)
            except OSError:
                if path.exists():
                    cls(path).remove()
        return None

    def wrapper(self):
        """A command prefix that moves itself into the cgroup before it execs the rest (so that everything
        it starts is inside from the first fork)."""
        return ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self.path / "cgroup.procs")]

    def remove(self):
        """Kill whatever is left inside, then remove the cgroup."""
        for _ in range(50):
            try:
                pids = [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
            except OSError:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.05)


def remove_orphaned_socket_folders():
    """Remove the kernel socket folders and pids cgroups of worker processes that no longer exist (a worker
    killed outright cannot remove its own); those of a living process are left alone."""
    def dead(name, prefix):
        pid = name[len(prefix):].split("-", 1)[0]
        if not pid.isdigit():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # another user's process, alive
        return False
    for folder in Path(tempfile.gettempdir()).glob(SOCKETS_PREFIX + "*-*"):
        if dead(folder.name, SOCKETS_PREFIX):
            shutil.rmtree(folder, ignore_errors=True)
    for root in CGROUP_ROOTS:
        for group in root.glob("autograder-*-*") if root.is_dir() else []:
            if dead(group.name, "autograder-"):
                PidsCgroup(group).remove()


def available():
    return shutil.which("bwrap") is not None


def _python_dirs():
    """Directories a Python in the venv needs: the venv and the base installation."""
    return sorted(d for d in {sys.prefix, sys.base_prefix} if Path(d).is_dir())


def bwrap_command(job_dir, sockets_dir, argv):
    """bwrap arguments that show `argv` only the system, Python, `job_dir` (at /job, its working
    directory) and `sockets_dir` (at its own path, for the kernel's sockets)."""
    command = ["bwrap", "--die-with-parent", "--new-session",
               "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
               "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--dir", "/tmp/home"]
    for path in SYSTEM_DIRS + _python_dirs():
        if Path(path).exists():
            command += ["--ro-bind", path, path]
    command += ["--bind", str(job_dir), "/job", "--bind", str(sockets_dir), str(sockets_dir), "--chdir", "/job",
                "--clearenv", "--setenv", "PATH", f"{Path(sys.executable).parent}:/usr/bin:/bin",
                "--setenv", "HOME", "/tmp/home", "--setenv", "MPLCONFIGDIR", "/tmp/matplotlib",
                "--setenv", "LANG", "C.UTF-8", "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
                # one thread per kernel: workers run side by side, and results do not depend on their number
                "--setenv", "OMP_NUM_THREADS", "1", "--setenv", "MKL_NUM_THREADS", "1", "--"]
    return command + argv


def limits_command():
    """`prlimit` arguments: caps that the kernel, and everything it starts, inherits."""
    return ["prlimit", f"--as={MEMORY_LIMIT}", f"--cpu={CPU_LIMIT}", f"--fsize={FILE_LIMIT}", "--core=0", "--"]


class SandboxedKernelManager(AsyncKernelManager):
    """A python3 kernel started under `prlimit` in bwrap. It is interrupted by a message on its control
    channel: a signal would stop at bwrap, which puts the kernel in a session of its own."""

    wrapper = List(Unicode())  # the command put in front of the kernel's: limits, then the sandbox

    def format_kernel_cmd(self, extra_arguments=None):
        return self.wrapper + super().format_kernel_cmd(extra_arguments)

    async def _async_pre_start_kernel(self, **kwargs):
        self.kernel_spec.interrupt_mode = "message"
        return await super()._async_pre_start_kernel(**kwargs)


class LimitedOutputClient(NotebookClient):
    """nbclient, keeping about OUTPUT_LIMIT characters of each cell's outputs (and all its errors), so
    that a notebook printing without end cannot fill the grader's memory."""

    def __init__(self, notebook, **kwargs):
        super().__init__(notebook, **kwargs)
        self.kept_chars = {}  # cell index -> characters of output kept

    def output(self, outs, msg, display_id, cell_index):
        if msg["msg_type"] == "error":  # kept, since it decides the score, but not without end
            out = super().output(outs, msg, display_id, cell_index)
            if out is not None:
                out["evalue"] = str(out.get("evalue", ""))[:OUTPUT_LIMIT]
                out["traceback"] = [line[:OUTPUT_LIMIT] for line in out.get("traceback", [])[:200]]
            return out
        kept = self.kept_chars
        if kept.get(cell_index, 0) > OUTPUT_LIMIT:
            if not (outs and outs[-1].get("text") == TRUNCATED):
                outs.append(nbformat.v4.new_output("stream", name="stdout", text=TRUNCATED))
            return None
        kept[cell_index] = kept.get(cell_index, 0) + len(str(msg["content"]))
        out = super().output(outs, msg, display_id, cell_index)
        if out is not None and len(out.get("text", "")) > OUTPUT_LIMIT:
            out["text"] = out["text"][:OUTPUT_LIMIT] + TRUNCATED
        return out


TRUNCATED = "\n[... output truncated by the grader ...]\n"


def _record_missing_error(cell, reply):
    """A cell whose reply says 'error' but shows no error (a hook swallowed it) still failed."""
    if reply and reply.get("content", {}).get("status") == "error":
        if not any(o.get("output_type") == "error" for o in cell.outputs):
            content = reply["content"]
            cell.outputs.append(nbformat.v4.new_output("error", ename=content.get("ename", "Error"),
                                                       evalue=content.get("evalue", ""), traceback=[]))


def run_notebook(notebook, job_dir, timeout, cell_timeout, sandbox=True):
    """Execute `notebook` (a NotebookNode, changed in place) in the sandbox; returns it.

    Code cells that never ran (the kernel died, or the notebook ran out of time) get an error output,
    so that nbgrader does not give their tests full points. Raises NotebookTimeout when the notebook ran
    longer than `timeout` seconds, SandboxFailure when the sandbox or the kernel could not start (or
    `sandbox` is asked for and bubblewrap is missing: never run student code unsandboxed by accident).
    """
    if sandbox and not available():
        raise SandboxFailure("this worker has no bubblewrap (bwrap), and student code must not run unsandboxed")
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    cell_timeout = max(1, math.ceil(cell_timeout))  # nbclient takes whole seconds; 0 would mean no limit
    # ZeroMQ's socket paths must stay short (about 100 bytes): their own folder in the system's temp dir
    sockets_dir = Path(tempfile.mkdtemp(prefix=sockets_prefix()))
    cgroup = PidsCgroup.make() if sandbox else None
    wrapper = (cgroup.wrapper() if cgroup else []) + limits_command() + \
        (bwrap_command(job_dir, sockets_dir, []) if sandbox else [])
    km = SandboxedKernelManager(kernel_name="python3", transport="ipc", ip=str(sockets_dir / "kernel"),
                                connection_file=str(sockets_dir / "kernel.json"), wrapper=wrapper)
    client = LimitedOutputClient(
        notebook, km=km, timeout=cell_timeout, allow_errors=True,
        timeout_func=lambda cell: cell_limit(cell, cell_timeout), interrupt_on_timeout=True, record_timing=False,
        error_on_timeout={"ename": "CellTimeoutError", "evalue": f"the cell ran longer than {cell_timeout} s",
                          "traceback": []},
        # not coalesce_streams: its regular expressions take quadratic time on a long line, which would
        # hang the grader's worker, where no timeout reaches (the hostile case print-megabytes)
        extra_arguments=["--HistoryManager.hist_file=:memory:"], shutdown_kernel="immediate",
        on_cell_executed=lambda cell, execute_reply, **_: _record_missing_error(cell, execute_reply))
    timed_out = threading.Event()

    def stop():
        timed_out.set()
        process = _kernel_process(km)
        if process is not None:
            process.send_signal(signal.SIGKILL)  # bwrap: --die-with-parent takes everything inside with it

    timer = threading.Timer(timeout, stop)
    try:
        with open(job_dir.parent / "kernel.log", "wb") as log:  # outside the view of the sandbox
            timer.start()
            # cleanup_kc: nbclient closes the sockets and threads of a kernel it did not create only when
            # asked to; without it a worker leaks about 19 files per notebook (tests/test_sandbox.py)
            client.execute(cwd=str(job_dir), stdout=log, stderr=subprocess.STDOUT, cleanup_kc=True)
    except DeadKernelError:
        pass  # the student's code killed its kernel: the cells after it have no outputs and score 0
    except Exception as error:
        if not timed_out.is_set():
            raise SandboxFailure(f"the notebook's kernel failed: {type(error).__name__}: {error}") from None
    finally:
        timer.cancel()
        _shut_down(km)
        if cgroup:
            cgroup.remove()
        shutil.rmtree(sockets_dir, ignore_errors=True)
    if timed_out.is_set():
        raise NotebookTimeout(f"timeout: the notebook ran longer than {timeout:g} s")
    for cell in notebook.cells:
        if cell.cell_type == "code" and cell.get("execution_count") is None:
            cell.outputs.append(nbformat.v4.new_output(
                "error", ename="NotExecuted", evalue="this cell never ran: the kernel died or stopped before it",
                traceback=[]))
    return notebook


def cell_limit(cell, cell_timeout):
    """The seconds a cell may run: the notebook's limit per cell, or the cell's own (TIMEOUT_TAG in its
    metadata, whole seconds) when that is shorter."""
    try:
        own = int(cell.metadata.get(TIMEOUT_TAG, 0))
    except (TypeError, ValueError):
        own = 0
    return min(cell_timeout, own) if own > 0 else cell_timeout


def _shut_down(km):
    """Kill the kernel's sandbox if it still runs (nbclient has normally shut it down already)."""
    process = _kernel_process(km)
    if process is not None and process.poll() is None:
        process.kill()
        process.wait()


def _kernel_process(km):
    """The Popen of the kernel's sandbox (bwrap, or prlimit's kernel without it); None once shut down."""
    return getattr(km.provisioner, "process", None)
