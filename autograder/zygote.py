"""The zygote: one warm process per grader worker that forks a fresh, sandboxed kernel for each notebook.

It runs inside a bubblewrap sandbox of its own (autograder/forked.py starts it), as the unprivileged sandbox
account, and never runs student code. It imports, once, what every notebook's kernel imports (torch, numpy,
matplotlib, IPython and the IPython kernel), then answers the grader's requests on a unix socket (fd
CONTROL, passed by the grader), one at a time. For each notebook:

1. it forks a child (the *setup* process), which tells the grader its host process id and waits until the
   grader has moved it into the kernel's own cgroups (pids and memory);
2. the setup process sets the resource limits, enters new user, mount, PID, network, IPC, UTS and cgroup
   namespaces (mapping only its own uid), mounts fresh, size-capped tmpfs folders over /job, /tmp, the
   sockets folder and /dev/shm (a Python installed under one of them is bound again on top, read-only), a
   read-only folder with the kernel's connection file, and brings up its own loopback;
3. it forks the namespace's first process (PID 1: it mounts the namespace's own /proc, reaps orphans, and
   ends the namespace, so every process of the kernel, when the kernel ends), which forks the kernel;
4. the kernel starts a session of its own, points stdin at /dev/null and stdout/stderr at the grader's log,
   closes every other file, drops every capability (the bounding set too), sets no_new_privs, loads the
   course's seccomp filter, takes a clean environment and a fresh random state, and only then runs
   ipykernel, in-process, with what the zygote had imported already in memory.

Each kernel is a copy of the zygote made before any student code ran: what one student's kernel changes
(modules, torch's state, files, processes) dies with it, and the next kernel starts from the zygote again.
This file is sent to the sandbox as text (the repository is not in its view); it imports nothing of the
grader.
"""
from __future__ import annotations   # annotations stay text: the types below cost no import

import ctypes
import fcntl
import json
import os
import resource
import signal
import socket
import struct
import sys

TYPE_CHECKING = False   # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType
    from typing import IO, Any

CONNECTION_DIR = "/run/connection"   # where the kernel finds its connection file (read-only)
KERNEL_NAME = b"ag-kernel"            # the kernel's process name (/proc/PID/comm), to find it from outside
LOG_LIMIT = 16 * 2**20                # bytes of the kernel's stdout and stderr kept in the grader's log

libc = ctypes.CDLL(None, use_errno=True)

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x02000000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC, MS_PRIVATE, MS_RELATIME = 1024, 2048, 4096, 16384, 1 << 18, 1 << 21
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NAME, PR_SET_SECCOMP = 1, 4, 15, 22
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 38, 47, 4
SECCOMP_MODE_FILTER = 2
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
O_PATH = getattr(os, "O_PATH", 0o10000000)


class SetupError(Exception):
    """A step of a kernel's setup failed (the grader grades the notebook again in a fresh kernel)."""


def _check(result: int, what: str) -> int:
    if result == -1:
        number = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(number)}")
    return result


def _bytes(value: str | None) -> bytes | None:
    return None if value is None else value.encode()


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(libc.mount(_bytes(source), _bytes(target), _bytes(fstype), ctypes.c_ulong(flags), _bytes(data)),
           f"mount {target}")


def prctl(option: int, arg: int = 0, arg3: int = 0) -> int:
    return _check(libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(arg3),
                             ctypes.c_ulong(0), ctypes.c_ulong(0)), f"prctl {option}")


def unshare(flags: int) -> None:
    _check(libc.unshare(ctypes.c_int(flags)), "unshare")


# ---------------------------------------------------------------------------------------------- the zygote

def preload() -> None:
    """Import what every kernel imports, before any kernel is forked (no thread, no ZeroMQ context yet)."""
    import math  # noqa: F401
    import numpy  # noqa: F401
    import torch  # noqa: F401
    import torch.nn  # noqa: F401
    import torch.nn.functional  # noqa: F401
    import matplotlib  # noqa: F401
    import matplotlib.pyplot  # noqa: F401  (not its backend: matplotlib_inline hooks into IPython when imported)
    import IPython  # noqa: F401
    import ipykernel.ipkernel  # noqa: F401
    import ipykernel.kernelapp  # noqa: F401
    import ipykernel.zmqshell  # noqa: F401
    warm_up()


def warm_up() -> None:
    """Run, once, what a notebook's first calls pay for (torch's lazy imports and first dispatches, matplotlib's
    fonts), leaving no state behind: no thread, the global random state as it was, no figure kept."""
    import io
    import math
    import torch
    import torch.nn.functional as F
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    state = torch.random.get_rng_state()
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, generator=generator, requires_grad=True)           # (B, T, d)
    mask = torch.ones(3, 3, dtype=torch.bool).tril()
    scores = (x @ x.transpose(-2, -1) / math.sqrt(4)).masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    (weights @ x).sum().backward()
    F.scaled_dot_product_attention(x, x, x, attn_mask=mask)
    for module in (torch.nn.Linear(4, 4), torch.nn.LayerNorm(4), torch.nn.Dropout(0.1),
                   torch.nn.MultiheadAttention(4, 2, batch_first=True)):
        out = module(x, x, x) if isinstance(module, torch.nn.MultiheadAttention) else module(x)
    torch.nn.Embedding(5, 4)(torch.tensor([1, 2]))
    torch.testing.assert_close(x, x)
    F.cross_entropy(x.reshape(6, 4), torch.tensor([0, 1, 2, 3, 0, 1]))
    torch.random.set_rng_state(state)
    del out
    figure = Figure(figsize=(2, 2))
    axes = figure.add_subplot()
    axes.plot([0, 1], [1, 0], label="x")
    axes.set_title("warm")
    axes.legend()
    figure.colorbar(axes.imshow([[0.0, 1.0]]), ax=axes)
    FigureCanvasAgg(figure).print_png(io.BytesIO())


def serve(control: socket.socket) -> None:
    """Answer the grader until it closes the socket: one kernel per `spawn` request."""
    signal.signal(signal.SIGCHLD, _reap)
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1:   # a fork copies one thread: locks that another held would never be released
        send(control, {"op": "failed", "error": f"the zygote runs {threads} threads after its imports: forking "
                                                "it would not be safe"})
        return
    send(control, {"op": "ready", "pid": _host_pid()})
    while True:
        request, fds = receive(control)
        if request is None:
            return
        try:
            spawn(control, request, fds)
        finally:
            for fd in fds:
                _close(fd)


def spawn(control: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
    """Fork one kernel's setup process; relay what it says to the grader, and the grader's go-ahead to it."""
    go_read, go_write = os.pipe()
    said_read, said_write = os.pipe()

    def setup_process() -> int:
        try:
            os.close(go_write)
            os.close(said_read)
            control.close()
            setup(request, fds[0] if fds else -1, go_read, said_write)
            return 0
        except BaseException as error:   # said to the grader; the setup process ends either way
            _say(said_write, {"op": "failed", "error": f"{type(error).__name__}: {error}"})
            return 1
    _fork(setup_process)
    os.close(go_read)
    os.close(said_write)
    said = os.fdopen(said_read, "rb")
    try:
        forked = _heard(said)
        send(control, forked)
        if forked.get("op") != "forked":
            return
        answer, _ = receive(control)
        os.write(go_write, b"g" if answer and answer.get("op") == "go" else b"")
        os.close(go_write)
        go_write = -1
        send(control, _heard(said))
    finally:
        said.close()
        _close(go_write)


def _fork(child: Callable[[], int]) -> int:
    """os.fork(); the child runs `child()` and ends with the status it returns (1 if it raises), never returning
    here; the parent gets the child's process id."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = child()
        finally:
            os._exit(code)
    return pid


def _heard(said: IO[bytes]) -> dict[str, Any]:
    line = said.readline()
    if not line:
        return {"op": "failed", "error": "the kernel's setup process ended before it said why"}
    message: dict[str, Any] = json.loads(line)
    return message


def _reap(signum: int, frame: FrameType | None) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _host_pid() -> int:
    """This process's id on the host: the sandbox shows the host's /proc (each kernel mounts its own)."""
    try:
        return int(os.readlink("/proc/self"))
    except (OSError, ValueError):
        return os.getpid()


def _close(fd: int | None) -> None:
    if fd is not None and fd >= 0:
        try:
            os.close(fd)
        except OSError:
            pass


def send(control: socket.socket, message: dict[str, Any]) -> None:
    control.sendmsg([json.dumps(message).encode()])


def receive(control: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    """(request, file descriptors) from the grader; (None, []) once it has closed the socket."""
    try:
        data, fds, _, _ = socket.recv_fds(control, 1 << 20, 4)
    except (ConnectionError, OSError):
        return None, []
    if not data:
        return None, list(fds)
    return json.loads(data), list(fds)


def _say(fd: int, message: dict[str, Any]) -> None:
    try:
        os.write(fd, json.dumps(message).encode() + b"\n")
    except OSError:
        pass


# ------------------------------------------------------------------------------- one kernel's setup process

def setup(request: dict[str, Any], log_fd: int, go_read: int, said: int) -> None:
    """In the setup process: wait for the cgroups, then build the kernel's namespaces and start it."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)   # the zygote gone, its kernels go too
    _say(said, {"op": "forked", "pid": _host_pid()})
    if os.read(go_read, 1) != b"g":
        raise SetupError("the grader did not give the go-ahead")
    os.close(go_read)
    limits = request["limits"]
    for name, value in limits.items():
        resource.setrlimit(getattr(resource, name), (value, value))
    uid, gid = os.getuid(), os.getgid()
    unshare(CLONE_NEWUSER)
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")
    unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP)
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    _private_folders(request["private"], request["visible"])
    _connection_folder(request["connection"])
    _loopback_up()
    output_read, output_write = os.pipe()

    def pid_1() -> int:
        os.close(output_read)
        _close(log_fd)
        return first_process(request, output_write, said)
    init = _fork(pid_1)
    os.close(output_write)
    os.close(said)
    _copy_output(output_read, log_fd)
    try:
        os.waitpid(init, 0)
    except ChildProcessError:
        pass


def _copy_output(source: int, log_fd: int) -> None:
    """What the kernel writes to stdout and stderr, copied to the grader's log (at most LOG_LIMIT bytes): the
    kernel holds a pipe, never the grader's file, whose name and disk it would else see."""
    written = 0
    while True:
        try:
            chunk = os.read(source, 1 << 16)
        except InterruptedError:
            continue
        except OSError:
            break
        if not chunk:
            break
        if log_fd >= 0 and written < LOG_LIMIT:
            try:
                os.write(log_fd, chunk[:LOG_LIMIT - written])
                written += len(chunk)
            except OSError:
                pass
    os.close(source)
    _close(log_fd)


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w") as file:
            file.write(text)
    except OSError as error:
        raise SetupError(f"writing {path}: {error.strerror}") from None


def _private_folders(private: list[list[Any]], visible: list[str]) -> None:
    """Fresh tmpfs folders, each capped at its size; a visible path under one is bound again on top, read-only
    (a clone, with its virtual environment, under /tmp)."""
    under = [path for path in visible if any(path == folder or path.startswith(folder.rstrip("/") + "/")
                                             for folder, _ in private)]
    kept = {path: os.open(path, O_PATH | os.O_DIRECTORY) for path in under}
    for folder, size in private:
        mount("tmpfs", folder, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size},mode=0755")
    os.makedirs("/tmp/home", exist_ok=True)
    for path, fd in sorted(kept.items()):
        os.makedirs(path, exist_ok=True)
        mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        _remount_read_only(path)
        os.close(fd)


def _remount_read_only(path: str) -> None:
    """Make the bind mount at `path` read-only, keeping the flags the kernel locks in a user namespace."""
    found = os.statvfs(path).f_flag
    flags = MS_BIND | MS_REMOUNT | MS_RDONLY
    for stat_flag, mount_flag in ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
                                  (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME),
                                  (os.ST_RELATIME, MS_RELATIME)):
        if found & stat_flag:
            flags |= mount_flag
    mount(None, path, None, flags)


def _connection_folder(connection: str) -> None:
    mount("tmpfs", CONNECTION_DIR, "tmpfs", MS_NOSUID | MS_NODEV, "size=65536,mode=0755")
    with open(f"{CONNECTION_DIR}/kernel.json", "w") as file:
        file.write(connection)
    mount(None, CONNECTION_DIR, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))


# --------------------------------------------------------------------------------- PID 1, and the kernel

def first_process(request: dict[str, Any], log_fd: int, said: int) -> int:
    """PID 1 of the kernel's namespace: its own /proc, then the kernel; reaps until the kernel ends."""
    try:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        prctl(PR_SET_DUMPABLE, 0)    # nothing of the kernel may read or write this process's memory
        host_pid = _host_pid()       # read in the host's /proc, before the namespace's own hides it
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except BaseException as error:
        _say(said, {"op": "failed", "error": f"{type(error).__name__}: {error}"})
        raise
    def kernel_process() -> int:
        os.close(said)
        run_kernel(request, log_fd)
        return 0
    kernel = _fork(kernel_process)
    _say(said, {"op": "started", "pid": host_pid})
    _close(log_fd)
    os.close(said)
    _close_files_from(0)
    drop_privileges(request["seccomp"])
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 0
        if pid == kernel:
            return os.waitstatus_to_exitcode(status) & 0xFF


def run_kernel(request: dict[str, Any], log_fd: int) -> None:
    """The kernel: its own session and files, no privilege, the seccomp filter, then ipykernel."""
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    os.setsid()
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log_fd if log_fd >= 0 else os.open("/dev/null", os.O_WRONLY), 1)
    os.dup2(1, 2)
    _close_files_from(3)
    os.chdir(request["cwd"])
    drop_privileges(request["seccomp"])
    libc.prctl(ctypes.c_int(PR_SET_NAME), ctypes.c_char_p(KERNEL_NAME), 0, 0, 0)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGCHLD", "SIGPIPE", "SIGUSR1", "SIGUSR2"):
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)   # as Python sets it at start-up
    os.environ.clear()
    os.environ.update(request["env"])
    import random
    random.seed()
    try:
        import numpy
        numpy.random.seed()
    except ImportError:
        pass
    sys.argv = [request["launcher"]] + request["argv"]
    sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())]
    from ipykernel import kernelapp
    kernelapp.launch_new_instance()


def _close_files_from(lowest: int) -> None:
    try:
        os.closerange(lowest, 1 << 16)
    except OSError:
        pass


def drop_privileges(program: str) -> None:
    """Every capability gone for good (bounding set, ambient, the rest), no_new_privs, then the filter."""
    for capability in range(64):
        if libc.prctl(ctypes.c_int(PR_CAPBSET_DROP), ctypes.c_ulong(capability), 0, 0, 0) != 0:
            if ctypes.get_errno() == 22:   # EINVAL: past the last capability this kernel knows
                break
            raise SetupError(f"dropping capability {capability}: {os.strerror(ctypes.get_errno())}")
    libc.prctl(ctypes.c_int(PR_CAP_AMBIENT), ctypes.c_ulong(PR_CAP_AMBIENT_CLEAR_ALL), 0, 0, 0)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]
    _check(libc.capset(ctypes.byref(Header(0x20080522, 0)), ctypes.byref((Data * 2)())), "capset")
    prctl(PR_SET_NO_NEW_PRIVS, 1)

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    code = bytes.fromhex(program)
    buffer = ctypes.create_string_buffer(code, len(code))
    filter_ = Program(len(code) // 8, ctypes.addressof(buffer))
    _check(libc.prctl(ctypes.c_int(PR_SET_SECCOMP), ctypes.c_ulong(SECCOMP_MODE_FILTER), ctypes.byref(filter_),
                      0, 0), "seccomp")


def main() -> None:
    control = socket.socket(fileno=int(sys.argv[1]))
    preload()
    serve(control)


if __name__ == "__main__":
    main()
