"""Pre-warmed kernels: the grader's side of the zygote (autograder/zygote.py).

Each grader worker keeps one zygote, a process in a sandbox of its own that has imported torch, numpy,
matplotlib and the IPython kernel, and asks it for one freshly forked kernel per notebook. The kernel speaks
the Jupyter protocol as any other: `ForkedKernelManager` is a jupyter_client kernel manager whose launch asks
the zygote instead of starting a process, so nbclient, nbgrader, the agent, the limits and the memory meter
of autograder/sandbox.py work on it unchanged.

The zygote is replaced when it has died, has forked MAX_KERNELS kernels, or has grown past MEMORY_BOUND;
a kernel that could not be forked raises ForkFailed before any of the student's code ran, and the
notebook is run again in a fresh kernel (sandbox.run_notebook). Where no zygote can start (nested user
namespaces refused, say), the worker says so once and uses fresh kernels.
"""
from __future__ import annotations

import asyncio
import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

from jupyter_client.manager import AsyncKernelManager

from autograder import sandbox, seccomp, wire, zygote

MAX_KERNELS = 500                 # kernels one zygote forks before it is replaced
MEMORY_BOUND = 2 * 2**30          # bytes of resident memory past which a zygote is replaced
START_LIMIT = 120.0               # seconds for a zygote to import what it preloads
SPAWN_LIMIT = 30.0                # seconds for one kernel's namespaces to be set up
CONNECTION_FILE = f"{zygote.CONNECTION_DIR}/kernel.json"
BOOT = "import sys; exec(compile(sys.stdin.read(), 'autograder/zygote.py', 'exec'))"


class ForkFailed(sandbox.SandboxFailure):
    """No kernel could be forked for this notebook (none of its code ran): grade it in a fresh kernel."""


class ForkedKernel:
    """The kernel's namespace seen from the grader, as much of subprocess.Popen as jupyter_client uses: its
    first process (PID 1 inside; when it ends, everything in the namespace ends), held by a pidfd."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None
        self.fd: int | None = None
        self.fd = os.pidfd_open(pid)

    def poll(self) -> int | None:
        if self.returncode is None and self.fd is not None:
            if wire.readable(self.fd, 0):
                self.returncode = 0
                self._close()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
            if self.fd is not None:
                wire.readable(self.fd, 0.1)
        return self.returncode or 0

    def send_signal(self, signum: int) -> None:
        """SIGKILL to the namespace's first process (no other signal reaches it), which ends the whole namespace;
        returns once it has ended (jupyter_client would else poll it again only 0.1 s later)."""
        if self.fd is not None and self.poll() is None:
            try:
                signal.pidfd_send_signal(self.fd, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    terminate = kill

    def _close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __del__(self) -> None:
        self._close()


class Zygote:
    """One zygote process and the socket the grader talks to it on."""

    def __init__(self) -> None:
        self.control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.visible = sandbox.visible_paths()   # what its sandbox shows (a change means a new zygote)
        self.log = tempfile.TemporaryFile()   # the zygote's stderr, read when it fails (no name: nothing to leave)
        # the grader's temp folder in its command line (and so in every kernel's): what a worker leaves behind
        # can be found by it (tests/small_class.py)
        argv = [sys.executable, "-c", BOOT, str(theirs.fileno()), f"autograder-zygote:{tempfile.gettempdir()}"]
        command = sandbox.unprivileged_command(None, argv, zygote=True)
        self.process: subprocess.Popen[bytes] | None = None
        self.pid = 0
        self.forked = 0
        started = threading.Event()
        failure: list[BaseException] = []

        def keep() -> None:   # bubblewrap's --die-with-parent follows the thread that started it: this one
            try:
                self.process = subprocess.Popen(command, pass_fds=(theirs.fileno(),), stdin=subprocess.PIPE,
                                                stdout=subprocess.DEVNULL, stderr=self.log,
                                                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"} |
                                                {k: v for k, v in os.environ.items() if k == "AG_TEST_SESSION"})
            except OSError as error:
                failure.append(error)
                started.set()
                return
            started.set()
            self.process.wait()
        threading.Thread(target=keep, name="autograder-zygote", daemon=True).start()
        started.wait()
        theirs.close()
        if failure or self.process is None:
            raise ForkFailed(f"the zygote could not start: {failure[0] if failure else 'unknown'}")
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(Path(zygote.__file__).read_bytes())
            self.process.stdin.close()
        except OSError:
            pass
        self.ready: bool = False

    def wait_ready(self) -> None:
        if self.ready:
            return
        message = self._receive(START_LIMIT)
        if message.get("op") != "ready":
            raise ForkFailed(f"the zygote did not start: {message.get('error') or self._log_tail()}")
        self.pid = int(message["pid"])
        self.ready = True

    def healthy(self) -> bool:
        if self.process is None or self.process.poll() is not None or self.forked >= MAX_KERNELS:
            return False
        if sandbox.visible_paths() != self.visible:
            return False
        return not self.ready or resident_memory(self.pid) <= MEMORY_BOUND

    def spawn(self, connection: str, argv: list[str], log: IO[bytes] | None,
              cgroup: sandbox.KernelCgroup | None) -> ForkedKernel:
        """One kernel, forked, in namespaces of its own, in `cgroup`, before any of its code runs."""
        self.wait_ready()
        self.forked += 1
        request = {"op": "spawn", "connection": connection, "launcher": "ipykernel_launcher",
                   "argv": ["-f", CONNECTION_FILE] + argv, "cwd": sandbox.JOB,
                   "env": sandbox.kernel_environment() | {"PWD": sandbox.JOB},   # bubblewrap's --chdir sets PWD
                   "limits": kernel_limits(), "private": [list(p) for p in sandbox.PRIVATE_FOLDERS],
                   "visible": self.visible, "seccomp": seccomp.program().hex()}
        fds = [log.fileno()] if log is not None else []
        try:
            socket.send_fds(self.control, [json.dumps(request).encode()], fds)
        except OSError as error:
            raise ForkFailed(f"the zygote is gone: {error}") from None
        forked = self._receive(SPAWN_LIMIT)
        if forked.get("op") != "forked":
            raise ForkFailed(f"the kernel could not be forked: {forked.get('error')}")
        setup = int(forked["pid"])
        try:
            for procs in cgroup.procs_files() if cgroup else []:
                procs.write_text(str(setup))
        except OSError as error:
            self._send({"op": "stop"})
            self._receive(SPAWN_LIMIT)
            raise ForkFailed(f"the kernel's cgroup could not be joined: {error}") from None
        self._send({"op": "go"})
        started = self._receive(SPAWN_LIMIT)
        if started.get("op") != "started":
            raise ForkFailed(f"the kernel's sandbox could not be set up: {started.get('error')}")
        pid = int(started["pid"])
        if parent_of(pid) != setup:
            raise ForkFailed(f"the zygote named process {pid}, which is not the kernel it forked")
        return ForkedKernel(pid)

    def _send(self, message: dict[str, Any]) -> None:
        try:
            self.control.sendmsg([json.dumps(message).encode()])
        except OSError as error:
            raise ForkFailed(f"the zygote is gone: {error}") from None

    def _receive(self, limit: float) -> dict[str, Any]:
        if not wire.readable(self.control, limit):
            self.close()
            return {"op": "failed", "error": f"the zygote did not answer within {limit:g} s"}
        try:
            data = self.control.recv(1 << 16)
        except OSError as error:
            data, reason = b"", str(error)
        else:
            reason = "it ended"
        if not data:
            tail = self._log_tail()   # before close() closes the log
            self.close()
            return {"op": "failed", "error": f"the zygote is gone ({reason}): {tail}"}
        try:
            message = json.loads(data)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            self.close()
            return {"op": "failed", "error": "the zygote answered outside its protocol"}
        return message

    def _log_tail(self) -> str:
        try:
            size = os.fstat(self.log.fileno()).st_size
            tail = os.pread(self.log.fileno(), 600, max(0, size - 600)).decode(errors="replace").strip()
        except (OSError, ValueError):
            return "no output"
        return tail or "no output"

    def close(self) -> None:
        """End the zygote, and with it every kernel it forked (each dies with its parent): it ends when its socket
        closes; its sandbox's processes are killed after it."""
        self.control.close()
        if self.ready:
            try:
                ForkedKernel(self.pid).wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self.log.close()


def kernel_limits() -> dict[str, int]:
    """The resource limits of a forked kernel: the same as a fresh one's (sandbox.limits_command)."""
    return {"RLIMIT_AS": sandbox.MEMORY_LIMIT, "RLIMIT_CPU": sandbox.CPU_LIMIT, "RLIMIT_FSIZE": sandbox.FILE_LIMIT,
            "RLIMIT_CORE": 0, "RLIMIT_NOFILE": sandbox.FILES_LIMIT}


def resident_memory(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def parent_of(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


_LOCK = threading.Lock()
_CURRENT: list[Zygote] = []
_UNAVAILABLE: list[str] = []   # why this worker cannot fork kernels (said once)


def prewarm() -> None:
    """Start this worker's zygote now (its imports overlap whatever the worker does next)."""
    with _LOCK:
        _current()


def _current() -> Zygote | None:
    if _UNAVAILABLE:
        return None
    if _CURRENT and not _CURRENT[0].healthy():
        _CURRENT.pop().close()
    if not _CURRENT:
        try:
            _CURRENT.append(Zygote())
        except ForkFailed as error:
            _unavailable(str(error))
            return None
    return _CURRENT[0]


def _unavailable(reason: str) -> None:
    _UNAVAILABLE.append(reason)
    print(f"autograder: pre-warmed kernels are not available on this worker ({reason}); "
          "grading in fresh kernels", file=sys.stderr)


def _ready_zygote() -> Zygote | None:
    """This worker's zygote, ready to fork (started or replaced as needed); None where none can start. Holds _LOCK."""
    current = _current()
    if current is None:
        return None
    try:
        current.wait_ready()
    except ForkFailed as error:   # it never started: this worker cannot fork kernels
        _unavailable(str(error))
        _CURRENT.remove(current)
        current.close()
        return None
    return current


def ready() -> bool:
    """Whether this worker forks its kernels: its zygote started and ready (False, said once, where none can)."""
    with _LOCK:
        return _ready_zygote() is not None


def spawn(connection: str, argv: list[str], log: IO[bytes] | None,
          cgroup: sandbox.KernelCgroup | None) -> ForkedKernel:
    """A kernel forked by this worker's zygote (started, or replaced, as needed). Raises ForkFailed."""
    with _LOCK:
        current = _ready_zygote()
        if current is None:
            raise ForkFailed(f"no zygote: {_UNAVAILABLE[0] if _UNAVAILABLE else 'it could not start'}")
        try:
            return current.spawn(connection, argv, log, cgroup)
        except ForkFailed:
            if _CURRENT and _CURRENT[0] is current:
                _CURRENT.pop().close()
            raise


def available() -> bool:
    """Whether this worker grades in forked kernels (False once a zygote could not start)."""
    return not _UNAVAILABLE


def shut_down() -> None:
    with _LOCK:
        while _CURRENT:
            _CURRENT.pop().close()


atexit.register(shut_down)


class ForkedKernelManager(AsyncKernelManager):
    """A python3 kernel forked by the worker's zygote in its own sandbox (autograder/zygote.py) instead of
    started as a process; interrupted by a message on its control channel, as in the fresh sandbox."""

    cgroup: sandbox.KernelCgroup | None = None

    async def _async_pre_start_kernel(self, **kwargs: Any) -> Any:
        spec = self.kernel_spec
        assert spec is not None   # kernel_name is python3
        spec.interrupt_mode = "message"
        kwargs["env"] = {}
        return await super()._async_pre_start_kernel(**kwargs)

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        assert self.provisioner is not None
        argv = kernel_cmd[kernel_cmd.index("-f") + 2:] if "-f" in kernel_cmd else []
        connection = Path(self.connection_file).read_text()
        kernel = await asyncio.to_thread(spawn, connection, argv, kw.get("stdout"), self.cgroup)
        provisioner: Any = self.provisioner
        provisioner.process, provisioner.pid, provisioner.pgid = kernel, kernel.pid, None
        self._reconcile_connection_info(provisioner.connection_info)
        self.ip = f"/proc/{kernel.pid}/root{sandbox.KERNEL_SOCKETS}/kernel"
