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
from __future__ import annotations

import asyncio
import json
import math
import os
import pwd
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import nbformat
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager, KernelManager
from jupyter_core.utils import ensure_async, run_sync
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError
from traitlets import List, Unicode

from nbformat import NotebookNode

from autograder import seccomp
from autograder.editions import Edition, say
from autograder.model import Limits
from autograder import zygote as zygote_program

if TYPE_CHECKING:
    from autograder.forked import ForkedKernel, ForkedKernelManager
    from autograder.remote import Remote

SYSTEM_DIRS = ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc"]
SANDBOX_ACCOUNT = "autograder-sandbox"   # the unprivileged account of every kernel when the grader is root
ACCOUNT_COMMAND = ("useradd --system --user-group --no-create-home --home-dir /nonexistent "
                   f"--shell /usr/sbin/nologin {SANDBOX_ACCOUNT}")
JOB = "/job"                      # the kernel's working folder, a tmpfs of its own
KERNEL_SOCKETS = "/run/kernel"    # the kernel's ZeroMQ sockets, a tmpfs of its own
JOB_SIZE = 256 * 2**20            # bytes the kernel may write in /job
TMP_SIZE = 256 * 2**20            # bytes in /tmp (its $HOME and matplotlib's cache live there)
SOCKETS_SIZE = 2**20              # bytes in its sockets folder (the sockets take none)
SHM_SIZE = 64 * 2**20             # bytes in /dev/shm (POSIX shared memory); the rest of /dev is read-only
MEMORY_LIMIT = 6 * 2**30          # bytes of address space (torch alone maps about 2 GiB); also the cgroup's cap
CPU_LIMIT = 900                   # CPU seconds for the whole notebook
FILE_LIMIT = 256 * 2**20          # bytes, the largest file it may write
FILES_LIMIT = 1024                # open files
OUTPUT_LIMIT = 100_000            # characters of output kept per cell (errors are always kept)
PIDS_LIMIT = 256                  # processes and threads of one kernel, where a pids cgroup can be made
SANDBOX_START_LIMIT = 60          # seconds for bubblewrap to set the sandbox up
# cgroup v1's hierarchies (one per controller), or v2's unified one
CGROUP_ROOTS = [Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup/memory"), Path("/sys/fs/cgroup")]


TIMEOUT_TAG = "autograder-timeout"   # a cell's own limit in seconds (never more than the notebook's cell limit)


class SandboxError(Exception):
    """The notebook could not be run to the end; the message says why."""


class NotebookTimeout(SandboxError):
    """The student's notebook ran longer than its limit: the student's error (it scores 0)."""


class SandboxFailure(SandboxError):
    """The sandbox or the kernel could not run at all: the grader's failure (the notebook is not graded)."""


SOCKETS_PREFIX = "ag-kernel-"


def sockets_prefix(pid: int | None = None) -> str:
    """The prefix of the private folders of the kernels that process `pid` starts (to clean up after it)."""
    return f"{SOCKETS_PREFIX}{pid or os.getpid()}-"


class KernelCgroup:
    """Cgroups of its own for one kernel: a pids cgroup (so that a fork bomb in one notebook cannot starve
    the kernels of other students; RLIMIT_NPROC cannot do this, it counts every process of the user) and a
    memory cgroup (its memory, its tmpfs folders included, capped at MEMORY_LIMIT). cgroup v1 has one
    hierarchy per controller, v2 one for both. `make()` returns None where the machine lets the grader
    create none (then only the rlimits and tmpfs sizes hold; see the README)."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths   # one folder per hierarchy

    @classmethod
    def make(cls) -> KernelCgroup | None:
        name = f"autograder-{os.getpid()}-{next(tempfile._get_candidate_names())}"  # type: ignore[attr-defined]  # private, not in typeshed
        made = []
        for root, limits in cls._hierarchies():
            path = root / name
            try:
                path.mkdir()
                made.append(path)
                for file, value in limits.items():
                    (path / file).write_text(value)
            except OSError:
                continue
        if not any((p / "pids.max").exists() for p in made):
            cls(made).remove()
            return None
        return cls(made)

    @staticmethod
    def _hierarchies() -> list[tuple[Path, dict[str, str]]]:
        """(root, {file: value}) of each hierarchy with a controller the kernel's limits need."""
        found = []
        for root in CGROUP_ROOTS:
            if not (root / "cgroup.procs").exists():
                continue
            if (root / "cgroup.controllers").exists():   # v2: the controllers enabled for its children
                enabled = (root / "cgroup.subtree_control").read_text().split()
                limits = {"pids.max": str(PIDS_LIMIT)} if "pids" in enabled else {}
                limits |= {"memory.max": str(MEMORY_LIMIT), "memory.swap.max": "0"} if "memory" in enabled else {}
            elif (root / "pids.max").exists() or root.name == "pids":
                limits = {"pids.max": str(PIDS_LIMIT)}
            elif (root / "memory.limit_in_bytes").exists():
                limits = {"memory.limit_in_bytes": str(MEMORY_LIMIT)}
            else:
                continue
            if limits:
                found.append((root, limits))
        return found

    def procs_files(self) -> list[Path]:
        return [path / "cgroup.procs" for path in self.paths]

    def memory_meter(self) -> MemoryMeter | None:
        """A MemoryMeter of the kernel's memory cgroup, or None where there is none (or its peak cannot be reset)."""
        for path in self.paths:
            meter = MemoryMeter.of(path)
            if meter is not None:
                return meter
        return None

    def remove(self) -> None:
        """Kill whatever is left inside, then remove the cgroups."""
        for path in self.paths:
            _empty_and_remove(path)


PidsCgroup = KernelCgroup   # the name the hostile tests know


class MemoryMeter:
    """How much the kernel's memory grew at its peak during one call, read by the grader from the kernel's
    memory cgroup (outside the student's reach): `start()` right before the call, `grown()` right after.
    cgroup v1: memory.max_usage_in_bytes, reset by writing 0; v2: memory.peak, reset for the file descriptor
    that writes to it (Linux 6.12 and later)."""

    def __init__(self, usage: Path, peak_path: Path, v2: bool) -> None:
        self.usage, self.peak_path, self.v2 = usage, peak_path, v2
        self.base = 0
        self.fd = os.open(peak_path, os.O_RDWR) if v2 else None

    @classmethod
    def of(cls, path: Path) -> MemoryMeter | None:
        for usage, peak, v2 in (("memory.current", "memory.peak", True),
                                ("memory.usage_in_bytes", "memory.max_usage_in_bytes", False)):
            if (path / usage).exists() and (path / peak).exists():
                try:
                    meter = cls(path / usage, path / peak, v2)
                    meter.start()
                    meter.grown()
                    return meter
                except (OSError, ValueError):
                    return None
        return None

    def start(self) -> None:
        self.base = int(self.usage.read_text())
        if self.v2:
            assert self.fd is not None   # v2 opens it
            os.pwrite(self.fd, b"reset\n", 0)
        else:
            self.peak_path.write_text("0")

    def grown(self) -> int:
        if self.v2:
            assert self.fd is not None
            peak = int(os.pread(self.fd, 64, 0))
        else:
            peak = int(self.peak_path.read_text())
        return max(0, peak - self.base)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _empty_and_remove(path: Path) -> None:
    for _ in range(50):
        try:
            pids = [int(p) for p in (path / "cgroup.procs").read_text().split()]
        except OSError:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            path.rmdir()
            return
        except OSError:
            time.sleep(0.05)


def remove_orphaned_socket_folders() -> None:
    """Remove the kernel socket folders and pids cgroups of worker processes that no longer exist (a worker
    killed outright cannot remove its own); those of a living process are left alone."""
    def dead(name: str, prefix: str) -> bool:
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
                _empty_and_remove(group)


def account() -> tuple[int, int]:
    """The (uid, gid) the kernel runs as: the dedicated account SANDBOX_ACCOUNT when the grader is root, the
    grader's own (unprivileged) ids otherwise. Raises SandboxFailure when root has no such account."""
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    try:
        entry = pwd.getpwnam(SANDBOX_ACCOUNT)
    except KeyError:
        raise SandboxFailure(f"the grader runs as root and the machine has no account {SANDBOX_ACCOUNT!r} for "
                             f"student code: create it with `make sandbox` (or: {ACCOUNT_COMMAND})") from None
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise SandboxFailure(f"the account {SANDBOX_ACCOUNT!r} must not be root (uid {entry.pw_uid}, gid {entry.pw_gid})")
    return entry.pw_uid, entry.pw_gid


def unavailable() -> str | None:
    """Why the sandbox cannot run on this machine (None when it can): bubblewrap and setpriv installed, the
    dedicated account present when the grader is root, a seccomp filter written for this processor."""
    for tool in ("bwrap", "setpriv", "prlimit"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (make sandbox installs Debian's bubblewrap and util-linux)"
    try:
        account()
        seccomp.program()
    except (SandboxFailure, seccomp.UnsupportedArchitecture) as error:
        return str(error)
    return None


def available() -> bool:
    return unavailable() is None


def _python_dirs() -> list[str]:
    """Directories a Python in the venv needs: the venv and the base installation."""
    return sorted(d for d in {sys.prefix, sys.base_prefix} if Path(d).is_dir())


def visible_paths() -> list[str]:
    """What the sandbox shows, read-only, at its own path: the system and the Python installation."""
    return [path for path in SYSTEM_DIRS + _python_dirs() if Path(path).exists()]


PRIVATE_FOLDERS = ((JOB, JOB_SIZE), ("/tmp", TMP_SIZE), (KERNEL_SOCKETS, SOCKETS_SIZE), ("/dev/shm", SHM_SIZE))


def kernel_environment() -> dict[str, str]:
    """The kernel's whole environment: a few variables, none of the grader's."""
    return {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": "/tmp/home",
            "MPLCONFIGDIR": "/tmp/matplotlib", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
            # one thread per kernel: workers run side by side, and results do not depend on their number
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            # every allocation over 64 KiB gets pages of its own, given back when freed: the memory the
            # grader reads from the cgroup during a call is what that call held (MemoryMeter)
            "MALLOC_MMAP_THRESHOLD_": "65536"}


def sandbox_command(connection_file: str | os.PathLike[str] | None, argv: list[str], zygote: bool = False) -> list[str]:
    """The sandbox proper, run by an unprivileged user: bubblewrap in new user (no nested one allowed), PID,
    network, IPC, UTS, cgroup and mount namespaces, showing only the system and Python read-only, size-capped
    private folders (/job, its working folder; /tmp; KERNEL_SOCKETS, its sockets; /dev/shm), the connection file
    read-only; no capability, an empty environment but a few variables, the seccomp filter read from fd 3,
    and its process id written to fd 4 (the client reaches the sockets through /proc/PID/root).

    With `zygote`, the sandbox of a worker's zygote (autograder/zygote.py), which runs no student code and
    builds each kernel's own namespaces, filter and folders itself: it may make nested namespaces (no seccomp
    filter yet), sees the host's /proc (so that each kernel may mount its own) and has the empty folder where
    each kernel's connection file is mounted."""
    command = ["bwrap", "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc",
               "--unshare-uts", "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
               "--dev", "/dev"]
    command += ["--bind", "/proc", "/proc"] if zygote else ["--disable-userns", "--proc", "/proc"]
    # the private folders first, then what is shown: a Python or venv under /tmp (a clone in /tmp, say) stays
    # visible on top of the sandbox's own /tmp
    for path, size in PRIVATE_FOLDERS:
        command += ["--size", str(size), "--tmpfs", path]
    for path in visible_paths():
        command += ["--ro-bind", path, path]
    command += ["--dir", "/tmp/home"]
    if zygote:
        command += ["--dir", zygote_program.CONNECTION_DIR]
    else:
        command += ["--ro-bind", str(connection_file), str(connection_file), "--seccomp", "3", "--info-fd", "4"]
    environment = kernel_environment() | \
        ({"MPLBACKEND": "module://matplotlib_inline.backend_inline"} if zygote else {})
    command += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", JOB, "--clearenv"]
    for name, value in environment.items():
        command += ["--setenv", name, value]
    return command + ["--"] + argv


def unprivileged_command(connection_file: str | os.PathLike[str] | None, argv: list[str],
                         zygote: bool = False) -> list[str]:
    """The sandbox, entered without any privilege. A root grader first builds a view (its own mount
    namespace, read-only) of what the sandbox needs at the paths it needs, so that a folder only root may
    enter (a Python under /root) can be shown; inside it, setpriv drops to the dedicated account for good
    (no capability, an empty bounding set, no_new_privs, no supplementary group) before bubblewrap starts."""
    inner = sandbox_command(connection_file, argv, zygote)
    if os.geteuid() != 0:
        return inner
    uid, gid = account()
    # the host's /proc, not a new one: bubblewrap covers parts of a /proc it mounts, and a /proc not fully
    # visible forbids the sandbox, in its own user namespace, to mount its own
    view = ["bwrap", "--die-with-parent", "--bind", "/proc", "/proc", "--dev", "/dev"]
    files = [] if connection_file is None else [str(connection_file)]
    shown = visible_paths() + files
    # /tmp: where bubblewrap mounts the sandbox's new root
    for folder in sorted({"/tmp"} | {str(a) for path in shown for a in Path(path).parents if str(a) != "/"}):
        view += ["--perms", "0755", "--dir", folder]   # bubblewrap would copy the host's mode (/root is 0700)
    for path in shown:
        view += ["--ro-bind", path, path]
    view += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP",
             "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--"]
    drop = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--inh-caps=-all",
            "--ambient-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    return view + drop + inner


def launcher_command(cgroup: KernelCgroup | None, seccomp_file: Path, info_file: Path) -> list[str]:
    """The first command, run as the grader: it joins the kernel's cgroups, opens the seccomp filter (fd 3)
    and the file where bubblewrap writes its process id (fd 4), then sets the resource limits."""
    script = ('exec 3<"$1" 4>"$2"; shift 2; '
              'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"')
    procs = cgroup.procs_files() if cgroup else []
    return ["sh", "-c", script, "sh", str(seccomp_file), str(info_file)] + [str(p) for p in procs] + ["--"] + \
        limits_command()


def limits_command() -> list[str]:
    """`prlimit` arguments: caps that the kernel, and everything it starts, inherits."""
    return ["prlimit", f"--as={MEMORY_LIMIT}", f"--cpu={CPU_LIMIT}", f"--fsize={FILE_LIMIT}", "--core=0",
            f"--nofile={FILES_LIMIT}", "--"]


class SandboxedKernelManager(AsyncKernelManager):
    """A python3 kernel started in the sandbox (or, unsandboxed, under `prlimit` only). Its ZeroMQ sockets
    live in the sandbox's own size-capped folder, which the client reaches through /proc/PID/root once
    bubblewrap has said its process id; the kernel cannot write anywhere on the host. It is interrupted by a
    message on its control channel: a signal would stop at bubblewrap, which puts the kernel in a session
    of its own. It starts with an environment of a few variables, none of the grader's."""

    wrapper = List(Unicode())    # the command put in front of the kernel's: cgroups, limits, then the sandbox
    info_file = Unicode("")      # where bubblewrap writes its process id ("" without the sandbox)

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        return self.wrapper + super().format_kernel_cmd(extra_arguments)

    async def _async_pre_start_kernel(self, **kwargs: Any) -> tuple[list[str], dict[str, Any]]:
        spec = self.kernel_spec
        assert spec is not None   # kernel_name is python3
        spec.interrupt_mode = "message"
        # The launcher's environment (bubblewrap clears it for the kernel). A test session's tag, when there is
        # one, marks the launcher so that the session can find what outlived it (tests/conftest.py).
        kwargs["env"] = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"} | \
            {k: v for k, v in os.environ.items() if k == "AG_TEST_SESSION"}
        started = await super()._async_pre_start_kernel(**kwargs)
        if self.info_file and os.geteuid() == 0:   # the kernel's account reads it (jupyter_client writes it 0600)
            os.chown(self.connection_file, *account())
        return started

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        await super()._async_launch_kernel(kernel_cmd, **kw)
        if self.info_file:
            pid = await self._sandbox_pid()
            self.ip = f"/proc/{pid}/root{KERNEL_SOCKETS}/kernel"

    async def _sandbox_pid(self) -> int:
        """The host's process id of the sandbox, from bubblewrap's --info-fd (it writes it once set up)."""
        deadline = time.monotonic() + SANDBOX_START_LIMIT
        while time.monotonic() < deadline:
            try:
                return int(json.loads(Path(self.info_file).read_text())["child-pid"])
            except (OSError, ValueError, KeyError, TypeError):
                pass
            process = _kernel_process(self)
            if process is not None and process.poll() is not None:
                raise SandboxFailure(f"the sandbox did not start (exit status {process.returncode}; "
                                     "see kernel.log, or run `make sandbox`)")
            await asyncio.sleep(0.01)
        raise SandboxFailure(f"the sandbox did not start within {SANDBOX_START_LIMIT} s")


class QuickKernelClient(AsyncKernelClient):
    """jupyter_client's kernel client, ready as soon as the kernel has answered kernel_info and its IOPub channel
    has spoken: jupyter_client's own then waits for 0.2 s of silence on IOPub (a fifth of a forked kernel's whole
    start), a flush that nbclient does not need (it reads only the IOPub messages of the requests it sends)."""

    async def _async_wait_for_ready(self, timeout: float | None = None) -> None:
        limit = SANDBOX_START_LIMIT if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            self.kernel_info()
            try:
                msg = await ensure_async(self.shell_channel.get_msg(timeout=0.2))
            except queue.Empty:
                msg = None
            if msg is not None and msg["msg_type"] == "kernel_info_reply":
                try:
                    await ensure_async(self.iopub_channel.get_msg(timeout=1))
                except queue.Empty:
                    pass
                else:
                    self._handle_kernel_info_reply(msg)
                    return
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {limit:g} seconds")

    wait_for_ready = _async_wait_for_ready   # the name nbclient calls (AsyncKernelClient binds it to the base's)


CLIENT_CLASS = f"{__name__}.QuickKernelClient"


class LimitedOutputClient(NotebookClient):
    """nbclient, keeping about OUTPUT_LIMIT characters of each cell's outputs (and all its errors), so
    that a notebook printing without end cannot fill the grader's memory. With `serve`, once every cell
    has run and while the kernel still lives, it starts the agent in the kernel (autograder/agent.py) and
    hands `serve` a Remote connected to it (the grader's tests run there, in this process)."""

    def __init__(self, notebook: NotebookNode, serve: Callable[[Remote], None] | None = None, agent_dir: str = "",
                 kept_key: str = "", serve_output: str | os.PathLike[str] | None = None,
                 meter: MemoryMeter | None = None, **kwargs: Any) -> None:
        super().__init__(notebook, **kwargs)
        self.meter = meter   # the kernel's MemoryMeter (None: no memory cgroup)
        self.kept_chars: dict[int, int] = {}  # cell index -> characters of output kept
        self.serve, self.agent_dir, self.kept_key = serve, agent_dir, kept_key
        self.serve_output = serve_output   # the file for what the kernel prints while it answers (None: dropped)
        self.timed_out: list[NotebookNode] = []   # the cells interrupted at their time limit, in order

    async def _async_handle_timeout(self, timeout: int, cell: NotebookNode | None = None) -> None | dict[str, Any]:
        """nbclient's own (the kernel interrupted, the cell's reply an error), remembering the cell."""
        if cell is not None:
            self.timed_out.append(cell)
        reply: None | dict[str, Any] = await super()._async_handle_timeout(timeout, cell)
        return reply

    async def async_execute(self, reset_kc: bool = False, **kwargs: Any) -> NotebookNode:
        """nbclient's own, with the agent's phase after the last cell."""
        if reset_kc and self.owns_km:
            await self._async_cleanup_kernel()
        self.reset_execution_trackers()
        async with self.async_setup_kernel(**kwargs):
            assert self.kc is not None   # as in nbclient's own
            msg_id = await ensure_async(self.kc.kernel_info())
            info_msg = await self.async_wait_for_reply(msg_id)
            if info_msg is not None and "language_info" in info_msg["content"]:
                self.nb.metadata["language_info"] = info_msg["content"]["language_info"]
            for index, cell in enumerate(self.nb.cells):
                await self.async_execute_cell(cell, index, execution_count=self.code_cells_executed + 1)
            self.set_widgets_metadata()
            if self.serve is not None:
                await self.async_serve()
        return self.nb

    execute = run_sync(async_execute)

    async def async_serve(self) -> None:
        from autograder import agent, wire
        from autograder.remote import NO_AGENT, KernelGone, Remote
        assert self.km is not None and self.kc is not None and self.serve is not None   # async_execute set them up
        km = self.km
        outside = str(Path(self.km.ip).parent / "agent")
        inside = f"{self.agent_dir}/agent"
        source = agent.cell_source(Path(wire.__file__).read_text(), inside, self.kept_key)
        msg_id = self.kc.execute(source, store_history=False, allow_stdin=False)
        drained = asyncio.ensure_future(self._drain_output(msg_id))
        conn = await _connect(outside, self.km)
        loop = asyncio.get_running_loop()

        def interrupt() -> None:
            asyncio.run_coroutine_threadsafe(ensure_async(km.interrupt_kernel()), loop).result(10)

        remote = Remote(conn, timeout=self.timeout or Limits().cell, interrupt=interrupt, meter=self.meter)
        try:
            if conn is None:
                remote.gone = KernelGone(NO_AGENT)
            await asyncio.to_thread(self.serve, remote)
        finally:
            if conn is not None and not remote.gone:
                try:
                    wire.send(conn, {"op": "done"}, {})
                except (OSError, wire.WireError):
                    pass
            if conn is not None:
                conn.close()
            try:
                await asyncio.wait_for(self.async_wait_for_reply(msg_id), 10)
            except Exception:
                pass   # a kernel that does not finish its agent cell is shut down with the rest
            try:
                await asyncio.wait_for(drained, 2)
            except Exception:
                drained.cancel()

    async def _drain_output(self, msg_id: str) -> None:
        """What the kernel prints, shows or raises while it answers the grader, to `serve_output` (capped at
        SERVE_OUTPUT_LIMIT characters), never to the notebook: the student's feedback shows the run of their
        notebook, and nothing after the grader's first request. Ends when the agent's cell is done."""
        written = 0
        out = open(self.serve_output, "w", encoding="utf-8", errors="replace") if self.serve_output else None
        kc = cast(AsyncKernelClient, self.kc)   # CLIENT_CLASS's kind (jupyter_client types it as the base KernelClient)
        try:
            while True:
                try:
                    msg: dict[str, Any] = await ensure_async(kc.get_iopub_msg(timeout=1))
                except queue.Empty:
                    continue
                except Exception:   # the channel is closed: the kernel is gone
                    return
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                content, kind = msg.get("content", {}), msg.get("msg_type")
                if kind == "status" and content.get("execution_state") == "idle":
                    return
                text = _output_text(kind, content)
                if out is not None and text and written < SERVE_OUTPUT_LIMIT:
                    text = text[:SERVE_OUTPUT_LIMIT - written]
                    out.write(text)
                    written += len(text)
                    if written >= SERVE_OUTPUT_LIMIT:
                        out.write(TRUNCATED)
        finally:
            if out is not None:
                out.close()

    def output(self, outs: list[NotebookNode], msg: dict[str, Any], display_id: str | None,
               cell_index: int) -> NotebookNode | None:
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
SERVE_OUTPUT_LIMIT = 200_000   # characters kept of what the kernel prints while it answers the grader


def _output_text(kind: object, content: dict[str, Any]) -> str:
    """The text of one iopub message of the kernel (stream, error, a display's text/plain), or ""."""
    if kind == "stream":
        return str(content.get("text", ""))
    if kind == "error":
        return f"{content.get('ename', '')}: {content.get('evalue', '')}\n"
    if kind in ("display_data", "execute_result", "update_display_data"):
        data = content.get("data", {})
        return str(data.get("text/plain", "")) + "\n" if isinstance(data, dict) else ""
    return ""


def _record_missing_error(cell: NotebookNode, reply: dict[str, Any] | None) -> None:
    """A cell whose reply says 'error' but shows no error (a hook swallowed it) still failed."""
    if reply and reply.get("content", {}).get("status") == "error":
        if not any(o.get("output_type") == "error" for o in cell.outputs):
            content = reply["content"]
            cell.outputs.append(nbformat.v4.new_output("error", ename=content.get("ename", "Error"),
                                                       evalue=content.get("evalue", ""), traceback=[]))


async def _connect(path: str, km: KernelManager, limit: float = 15) -> socket.socket | None:
    """A socket connected to the agent at `path` (None if the kernel never opens it)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not await ensure_async(km.is_alive()):
            return None
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(path)
            return conn
        except OSError:
            conn.close()
            await asyncio.sleep(0.02)
    return None


def run_notebook(notebook: NotebookNode, job_dir: str | os.PathLike[str], timeout: float, cell_timeout: float,
                 sandbox: bool = True, serve: Callable[[Remote], None] | None = None, kept_key: str = "",
                 serve_output: str | os.PathLike[str] | None = None, fresh_kernels: bool = False,
                 edition: Edition = Edition.EN) -> NotebookNode:
    """Execute `notebook` (a NotebookNode, changed in place) in the sandbox; returns it. What the grader writes
    into it (a cell out of time, a cell that never ran) is in `edition`.

    Code cells that never ran (the kernel died, or the notebook ran out of time) get an error output,
    so that nbgrader does not give their tests full points. Raises NotebookTimeout when the notebook ran
    longer than `timeout` seconds, SandboxFailure when the sandbox or the kernel could not start (or
    `sandbox` is asked for and bubblewrap is missing: never run student code unsandboxed by accident).
    With `serve` (a function of a Remote), once the cells have run the kernel answers the grader's calls
    (autograder/agent.py), `kept_key` naming the dict where keep cells stored the student's bindings; what
    the kernel prints from then on goes to the file `serve_output` (the instructor's), never to the notebook.

    The sandboxed kernel is forked by the worker's zygote (autograder/forked.py), pre-warmed, unless
    `fresh_kernels` asks for a new process or the worker cannot fork: a kernel that could not be forked is
    said on stderr and the notebook runs in a fresh kernel, graded as if nothing had happened.
    """
    from autograder import forked
    # the zygote's own start (a few seconds, once per worker) is not the notebook's time
    if sandbox and not fresh_kernels and forked.ready():
        try:
            return _run_notebook(notebook, job_dir, timeout, cell_timeout, sandbox, serve, kept_key, serve_output,
                                 edition, forked=True)
        except forked.ForkFailed as error:
            print(f"autograder: {error}; running the notebook in a fresh kernel", file=sys.stderr)
    return _run_notebook(notebook, job_dir, timeout, cell_timeout, sandbox, serve, kept_key, serve_output, edition)


def _run_notebook(notebook: NotebookNode, job_dir: str | os.PathLike[str], timeout: float, cell_timeout: float,
                  sandbox: bool, serve: Callable[[Remote], None] | None, kept_key: str,
                  serve_output: str | os.PathLike[str] | None, edition: Edition = Edition.EN,
                  forked: bool = False) -> NotebookNode:
    """run_notebook in a fresh kernel, or (`forked`) in one the zygote forks."""
    reason = unavailable() if sandbox else None
    if reason:
        raise SandboxFailure(f"this worker cannot sandbox student code, which must not run unsandboxed: {reason}")
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    cell_timeout = max(1, math.ceil(cell_timeout))  # nbclient takes whole seconds; 0 would mean no limit
    # The grader's private folder for this kernel, in the system's temp dir (ZeroMQ's socket paths must stay
    # short): the connection file (shown read-only in the sandbox), the seccomp filter, bubblewrap's report.
    private = Path(tempfile.mkdtemp(prefix=sockets_prefix()))
    connection_file = private / "kernel.json"
    cgroup = KernelCgroup.make() if sandbox else None
    km: ForkedKernelManager | SandboxedKernelManager
    if forked:
        from autograder.forked import ForkedKernelManager
        km = ForkedKernelManager(kernel_name="python3", transport="ipc", ip=f"{KERNEL_SOCKETS}/kernel",
                                 connection_file=str(connection_file), client_class=CLIENT_CLASS)
        km.cgroup = cgroup
    elif sandbox:
        (private / "seccomp.bpf").write_bytes(seccomp.program())
        wrapper = launcher_command(cgroup, private / "seccomp.bpf", private / "bwrap.json") + \
            unprivileged_command(connection_file, [])
        km = SandboxedKernelManager(kernel_name="python3", transport="ipc", ip=f"{KERNEL_SOCKETS}/kernel",
                                    connection_file=str(connection_file), wrapper=wrapper, client_class=CLIENT_CLASS,
                                    info_file=str(private / "bwrap.json"))
    else:
        km = SandboxedKernelManager(kernel_name="python3", transport="ipc", ip=str(private / "kernel"),
                                    connection_file=str(connection_file), wrapper=limits_command(),
                                    client_class=CLIENT_CLASS)
    client = LimitedOutputClient(
        notebook, serve=serve, agent_dir=KERNEL_SOCKETS if sandbox else str(private), kept_key=kept_key,
        serve_output=serve_output, meter=cgroup.memory_meter() if cgroup else None,
        km=km, timeout=cell_timeout, allow_errors=True,
        timeout_func=lambda cell: cell_limit(cell, cell_timeout), interrupt_on_timeout=True, record_timing=False,
        error_on_timeout={"ename": "CellTimeoutError", "traceback": [],
                          "evalue": say(edition, "the cell ran longer than {seconds} s", seconds=f"{cell_timeout:g}")},
        # not coalesce_streams: its regular expressions take quadratic time on a long line, which would
        # hang the grader's worker, where no timeout reaches (the hostile case print-megabytes)
        extra_arguments=["--HistoryManager.hist_file=:memory:"], shutdown_kernel="immediate",
        on_cell_executed=lambda cell, execute_reply, **_: _record_missing_error(cell, execute_reply))
    timed_out = threading.Event()

    def stop() -> None:
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
        from autograder.forked import ForkFailed   # (autograder/forked.py imports this module)
        if isinstance(error, ForkFailed):
            raise
        if not timed_out.is_set():
            raise SandboxFailure(f"the notebook's kernel failed: {type(error).__name__}: {error}") from None
    finally:
        timer.cancel()
        _shut_down(km)
        if client.meter is not None:
            client.meter.close()
        if cgroup:
            cgroup.remove()
        shutil.rmtree(private, ignore_errors=True)
    if timed_out.is_set():
        raise NotebookTimeout(f"timeout: the notebook ran longer than {timeout:g} s")
    for cell in client.timed_out:   # the kernel shows the interrupt as a KeyboardInterrupt: say it was the time limit,
        # the cell's own (TIMEOUT_TAG) where that is shorter than the notebook's limit per cell
        said = say(edition, "the cell ran longer than {seconds} s", seconds=f"{cell_limit(cell, cell_timeout):g}")
        cell.outputs = [o for o in cell.outputs if not (o.get("output_type") == "error"
                                                        and o.get("ename") in ("KeyboardInterrupt", "CellTimeoutError"))]
        cell.outputs.append(nbformat.v4.new_output("error", ename="CellTimeoutError", evalue=said, traceback=[]))
    for cell in notebook.cells:
        if cell.cell_type == "code" and cell.get("execution_count") is None:
            cell.outputs.append(nbformat.v4.new_output(
                "error", ename="NotExecuted", traceback=[],
                evalue=say(edition, "this cell never ran: the kernel died or stopped before it")))
    return notebook


def cell_limit(cell: NotebookNode, cell_timeout: int) -> int:
    """The seconds a cell may run: the notebook's limit per cell, or the cell's own (TIMEOUT_TAG in its
    metadata, whole seconds) when that is shorter."""
    try:
        own = int(cell.metadata.get(TIMEOUT_TAG, 0))
    except (TypeError, ValueError):
        own = 0
    return min(cell_timeout, own) if own > 0 else cell_timeout


def _shut_down(km: KernelManager) -> None:
    """Kill the kernel's sandbox if it still runs (nbclient has normally shut it down already)."""
    process = _kernel_process(km)
    if process is not None and process.poll() is None:
        process.kill()
        process.wait()


def _kernel_process(km: KernelManager) -> subprocess.Popen[bytes] | ForkedKernel | None:
    """The Popen of the kernel's sandbox (bwrap, or prlimit's kernel without it); None once shut down."""
    process: subprocess.Popen[bytes] | ForkedKernel | None = getattr(km.provisioner, "process", None)
    return process
