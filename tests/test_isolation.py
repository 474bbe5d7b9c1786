"""The sandbox proven from both sides: a notebook tries, from inside its kernel, to read, write, fill, reach
and outlive the host (three or more mechanisms per family, so that closing one call does not pass), and
the test checks from outside what the kernel is (uid, capabilities, seccomp mode, namespaces) and what it
did (files on the host, a listening socket, processes left, the disk's free space).

It runs four times: with the grader as root (the kernel drops to the account autograder-sandbox) and with
the grader as an ordinary user (nobody, uid 65534; the kernel keeps that uid, without privilege), each with
a kernel forked by the worker's zygote (autograder/forked.py) and with a fresh kernel (--fresh-kernels).
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import nbformat
import pytest

from autograder import forked, sandbox, zygote

REPO = Path(__file__).resolve().parent.parent
MARKER = "ag-isolation-probe"
NOBODY = 65534
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not sandbox.available(),
                                reason="needs root (to act as both kinds of grader) and `make sandbox`")

PRELUDE = r'''
import ctypes, errno, json, mmap, os, socket, subprocess, sys, time
libc = ctypes.CDLL(None, use_errno=True)
PARAMS = json.loads({params!r})

def report(name, leaked, detail=""):
    print("PROBE", json.dumps({{"name": name, "leaked": bool(leaked), "detail": str(detail)[:300]}}))

def attempt(name, action):
    """leaked when `action` returns a true value; a refusal (any exception) is what the sandbox promises."""
    try:
        result = action()
        report(name, bool(result), result)
    except BaseException as error:
        report(name, False, f"{{type(error).__name__}}: {{error}}")

def call(number, *args):
    """(result, errno) of a raw system call."""
    result = libc.syscall(ctypes.c_long(number), *args)
    return result, ctypes.get_errno()
'''

READ = r'''
def read_secret():
    return open(PARAMS["secret"]).read()
attempt("read: a world-readable host file outside the sandbox", read_secret)
attempt("read: /etc/shadow", lambda: open("/etc/shadow").read())
attempt("read: the repository's solutions", lambda: os.listdir(PARAMS["repo"] + "/solutions"))
def through_proc_roots():
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            for path in (f"/proc/{{pid}}/root" + PARAMS["secret"], f"/proc/{{pid}}/cwd/solutions"):
                try:
                    found.append(open(path).read() if "secret" in path else os.listdir(path))
                except OSError:
                    pass
    return found
attempt("read: the host through /proc/PID/root and /proc/PID/cwd", through_proc_roots)

def by_handle():
    # the escape of the issue: a file handle of the host's root inode (ext4: 2), opened against a mount of the host
    handle = (ctypes.c_uint32 * 4)(8, 1, 2, 0)          # handle_bytes, FILEID_INO32_GEN, inode 2, generation 0
    mount_fd = os.open("/usr", os.O_RDONLY | os.O_DIRECTORY)
    numbers = {{"x86_64": (303, 304), "aarch64": (264, 265)}}[os.uname().machine]
    mount_id = ctypes.c_int()
    named = call(numbers[0], -100, b"/usr", ctypes.byref((ctypes.c_uint32 * 34)(128)), ctypes.byref(mount_id), 0)
    opened = call(numbers[1], mount_fd, ctypes.byref(handle), os.O_RDONLY | os.O_DIRECTORY)
    if opened[0] >= 0:
        return os.listdir(f"/proc/self/fd/{{opened[0]}}")
    return [] if named[0] < 0 else "name_to_handle_at answered"
attempt("read: open_by_handle_at on the host's root inode", by_handle)

def environments():
    seen = [dict(os.environ), open("/proc/self/environ", "rb").read()]
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                seen.append(open(f"/proc/{{pid}}/environ", "rb").read())
            except OSError:
                pass
    return [s for s in map(str, seen) if PARAMS["env_marker"] in s]
attempt("read: the grader's environment (os.environ, /proc/*/environ)", environments)
'''

WRITE = r'''
def write_at(folder):
    def write():
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "written-by-the-sandbox"), "w") as file:
            file.write("x")
        return False   # the test judges from outside: the host must not see it
    return write
for name in ("host_dir", "repo", "venv"):
    attempt(f"write: {{name}}", write_at(PARAMS[name]))
attempt("write: /etc", write_at("/etc"))
def connection_file():
    from ipykernel.connect import get_connection_file
    with open(get_connection_file(), "a") as file:
        file.write(" ")
    return "the connection file was written"
attempt("write: the connection file", connection_file)
'''

FILL = r'''
def writable_folders():
    found = []
    for folder, subfolders, _ in os.walk("/"):
        if folder.startswith(("/proc", "/sys", "/dev/pts")):
            subfolders[:] = []
            continue
        if os.access(folder, os.W_OK):
            found.append(folder)
    return found

def fill(folder, how):
    chunk, total = b"\0" * (8 << 20), 0
    path = os.path.join(folder, f"fill-{{how}}")
    try:
        if how == "write":
            with open(path, "wb") as file:
                while total < (2 << 30):
                    file.write(chunk)
                    file.flush()
                    total += len(chunk)
        elif how == "fallocate":
            fd = os.open(path, os.O_CREAT | os.O_WRONLY)
            try:
                while total < (2 << 30):
                    os.posix_fallocate(fd, total, len(chunk))
                    total += len(chunk)
            finally:
                os.close(fd)
        else:   # many files
            for i in range(200_000):
                with open(f"{{path}}-{{i}}", "wb") as file:
                    file.write(chunk[:65536])
                total += 65536
    except OSError:
        pass
    for name in os.listdir(folder):
        if name.startswith("fill-"):
            try:
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass
    return total

totals = {{}}
for folder in writable_folders():
    if folder.startswith("/tmp/home/.ipython") or folder == "/dev/pts":
        continue
    totals[folder] = {{how: fill(folder, how) for how in ("write", "fallocate", "files")}}
print("FILLED", json.dumps(totals))
'''

NETWORK = r'''
def tcp():
    with socket.create_connection(("127.0.0.1", PARAMS["tcp_port"]), timeout=2) as s:
        return s.recv(64)
attempt("network: TCP to the host's loopback", tcp)
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"from the sandbox", ("127.0.0.1", PARAMS["udp_port"]))
    return False   # the test judges from outside: nothing may arrive
attempt("network: UDP to the host's loopback", udp)
def abstract():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    s.connect("\0" + PARAMS["abstract"])
    return s.recv(64)
attempt("network: the host's abstract unix socket", abstract)
attempt("network: interfaces other than loopback", lambda: [n for _, n in socket.if_nameindex() if n != "lo"])
def outside():
    with socket.create_connection(("192.0.2.1", 80), timeout=1):   # TEST-NET-1: documentation only, no host
        return True
attempt("network: a route out", outside)
'''

PRIVILEGES = r'''
numbers = {{"x86_64": dict(unshare=272, mount=165, ptrace=101, bpf=321, perf_event_open=298, keyctl=250,
                          userfaultfd=323, setns=308),
           "aarch64": dict(unshare=97, mount=40, ptrace=117, bpf=280, perf_event_open=241, keyctl=219,
                           userfaultfd=282, setns=268)}}[os.uname().machine]
attempt("privilege: unshare a user namespace", lambda: call(numbers["unshare"], 0x10000000)[0] == 0)
attempt("privilege: unshare a mount namespace", lambda: call(numbers["unshare"], 0x00020000)[0] == 0)
attempt("privilege: mount a tmpfs", lambda: call(numbers["mount"], b"none", b"/job", b"tmpfs", 0, None)[0] == 0)
attempt("privilege: ptrace pid 1", lambda: call(numbers["ptrace"], 16, 1, 0, 0)[0] == 0)
attempt("privilege: bpf", lambda: call(numbers["bpf"], 0, None, 0)[0] >= 0)
attempt("privilege: perf_event_open", lambda: call(numbers["perf_event_open"], None, 0, -1, -1, 0)[0] >= 0)
attempt("privilege: keyctl", lambda: call(numbers["keyctl"], 0, -3, 0)[0] >= 0)
attempt("privilege: userfaultfd", lambda: call(numbers["userfaultfd"], 0)[0] >= 0)
attempt("privilege: setuid(0)", lambda: libc.setuid(0) == 0)
attempt("privilege: a nested sandbox (bwrap --unshare-user)",
        lambda: subprocess.run(["bwrap", "--unshare-user", "--ro-bind", "/", "/", "true"],
                               capture_output=True).returncode == 0)
'''

LINGER = r'''
import signal
stubborn = ("import signal, time\n"
            "for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT): signal.signal(s, signal.SIG_IGN)\n"
            "time.sleep(600)\n")
if os.fork() == 0:                       # a daemon: double fork, new session
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", stubborn, PARAMS["marker"] + "-daemon"])
    os._exit(0)
subprocess.Popen([sys.executable, "-c", stubborn, PARAMS["marker"] + "-session"], start_new_session=True,
                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
os.system(f"nohup {{sys.executable}} -c 'import time; time.sleep(600)' {{PARAMS['marker']}}-nohup >/dev/null 2>&1 &")
time.sleep(0.5)
print("LINGERING")
'''

HOLD = "time.sleep(4)  # the test reads this kernel's /proc/PID/status from outside meanwhile"


def probe_notebook(params):
    cells = [PRELUDE.format(params=json.dumps(params))] + \
        [textwrap.dedent(c).format() for c in (READ, WRITE, FILL, NETWORK, PRIVILEGES, LINGER)] + [HOLD]
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])


def probes(notebook):
    """{probe name: (leaked, detail)} and the fill totals from the executed notebook."""
    found, filled, errors = {}, None, []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                errors.append(f"{output['ename']}: {output['evalue']}")
            for line in output.get("text", "").splitlines():
                if line.startswith("PROBE "):
                    entry = json.loads(line[6:])
                    found[entry["name"]] = (entry["leaked"], entry["detail"])
                elif line.startswith("FILLED "):
                    filled = json.loads(line[7:])
    assert not errors, f"a probe cell failed: {errors}"
    return found, filled


class Host:
    """What the notebook aims at, on the host: a secret file, folders to write, listening sockets."""

    def __init__(self, root):
        self.root = root
        root.mkdir(mode=0o755)
        root.chmod(0o755)
        (root / "secret.txt").write_text("the host's secret")
        (root / "secret.txt").chmod(0o644)
        self.open_dir = root / "open"
        self.open_dir.mkdir()
        self.open_dir.chmod(0o777)
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.settimeout(0.2)
        self.abstract_name = f"{MARKER}-{os.getpid()}-{time.monotonic_ns()}"
        self.abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.abstract.bind("\0" + self.abstract_name)
        self.abstract.listen()
        self.tcp.settimeout(0.2)
        self.abstract.settimeout(0.2)
        self.env_marker = f"AG_SECRET_{time.monotonic_ns()}"

    def params(self):
        return {"secret": str(self.root / "secret.txt"), "repo": str(REPO), "host_dir": str(self.open_dir),
                "venv": sys.prefix, "tcp_port": self.tcp.getsockname()[1],
                "udp_port": self.udp.getsockname()[1], "abstract": self.abstract_name,
                "env_marker": self.env_marker, "marker": MARKER}

    def reached(self):
        """What arrived on the host's sockets (nothing may)."""
        arrived = []
        for server in (self.tcp, self.abstract):
            try:
                arrived.append(server.accept())
            except (socket.timeout, BlockingIOError):
                pass
        try:
            arrived.append(self.udp.recvfrom(64))
        except socket.timeout:
            pass
        return arrived

    def close(self):
        for s in (self.tcp, self.udp, self.abstract):
            s.close()


def kernel_status(uid):
    """/proc/PID/status and namespaces of the running kernel (a python running ipykernel as `uid`), read from
    outside; None until it runs."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        fresh = b"ipykernel_launcher" in b" ".join(cmdline) and fields.get("Name", "").startswith("python")
        forked = fields.get("Name") == zygote.KERNEL_NAME.decode()
        if (fresh or forked) and int(fields["Uid"].split()[0]) == uid:
            try:
                namespaces = {ns: os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}")
                              for ns in ("user", "pid", "net", "ipc", "uts", "mnt", "cgroup")}
            except OSError:   # a kernel that is exiting (an earlier job's, or another test's): its namespaces are gone
                continue
            return fields, namespaces
    return None


def processes_of(uid=None, marker=None):
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            owner = os.stat(f"/proc/{pid}").st_uid
        except OSError:
            continue
        if (uid is not None and owner == uid) or (marker and marker.encode() in cmdline):
            found.append((pid, owner, cmdline[:120]))
    return found


def nonroot_view(paths):
    """A root-made mount namespace in which the ordinary user can reach `paths` (a Python under /root, 0700),
    then the drop to uid 65534: how a machine set up for a non-root grader looks to it."""
    view = ["bwrap", "--dev-bind", "/", "/"]
    for path in map(Path, paths):
        hidden = [a for a in reversed(path.parents) if str(a) != "/" and not os.stat(a).st_mode & 0o001]
        if hidden:
            view += ["--tmpfs", str(hidden[0])]
            for folder in [a for a in reversed(path.parents) if a.is_relative_to(hidden[0])]:
                view += ["--perms", "0755", "--dir", str(folder)]
            view += ["--ro-bind", str(path), str(path)]
    return view + ["--", "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                   "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]


RUNNER = """
import json, sys
import nbformat
from autograder.sandbox import run_notebook
notebook = nbformat.reads(sys.stdin.read(), as_version=4)
run_notebook(notebook, sys.argv[1], 240, 120, fresh_kernels=sys.argv[2] == "fresh")
print(nbformat.writes(notebook))
"""


def run_as(grader, notebook, folder, env_marker, kernels="forked"):
    """Run `notebook` in the sandbox with the grader as root (in this process) or as nobody (a subprocess), in a
    forked or a fresh kernel."""
    os.environ[env_marker] = "the grader's own secret"
    try:
        if grader == "root":
            if kernels == "forked":
                forked.shut_down()   # a zygote started now, with the marker in the grader's environment
            sandbox.run_notebook(notebook, folder / "job", 240, 120, fresh_kernels=kernels == "fresh")
            return notebook
        folder.mkdir(exist_ok=True)
        folder.chmod(0o777)
        env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHONPATH": str(REPO),
               env_marker: "the grader's own secret", "HOME": str(folder)}
        done = subprocess.run(nonroot_view([sys.base_prefix, sys.prefix, str(REPO)]) +
                              [sys.executable, "-c", RUNNER, str(folder / "job"), kernels],
                              input=nbformat.writes(notebook), capture_output=True, text=True, env=env,
                              cwd=folder, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return nbformat.reads(done.stdout, as_version=4)
    finally:
        del os.environ[env_marker]


@pytest.fixture(scope="module", params=[("root", "forked"), ("root", "fresh"), ("ordinary user", "forked"),
                                        ("ordinary user", "fresh")], ids=lambda p: f"{p[0]}-{p[1]}")
def probed(request, tmp_path_factory):
    grader, kernels = request.param
    folder = Path(tempfile.mkdtemp(prefix="ag-isolation-"))
    folder.chmod(0o755)
    host = Host(folder / "host")
    kernel_uid = sandbox.account()[0] if grader == "root" else NOBODY
    before = shutil.disk_usage(folder)
    seen = {}

    def watch():   # the kernel, from outside, while the notebook runs
        deadline = time.monotonic() + 200
        while time.monotonic() < deadline and "status" not in seen:
            found = kernel_status(kernel_uid)
            if found:
                seen["status"], seen["namespaces"] = found
            time.sleep(0.05)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        notebook = run_as(grader, probe_notebook(host.params()), folder / "run", host.env_marker, kernels)
        watcher.join(5)
        time.sleep(1)
        result = {"grader": grader, "probes": probes(notebook), "host": host, "kernel_uid": kernel_uid,
                  "seen": seen, "reached": host.reached(), "free_before": before.free,
                  "free_after": shutil.disk_usage(folder).free,
                  # every process the notebook starts carries the marker in its command line; the account's
                  # uid alone would also count the kernels of other graders running on the machine
                  "left": processes_of(marker=MARKER)}
        yield result
    finally:
        host.close()
        for pid, _, _ in processes_of(marker=MARKER):
            try:
                os.kill(int(pid), 9)
            except OSError:
                pass
        shutil.rmtree(folder, ignore_errors=True)


def test_nothing_of_the_host_can_be_read_written_reached_or_used_from_inside(probed):
    found, _ = probed["probes"]
    expected = {"read", "write", "network", "privilege"}
    assert {name.split(":")[0] for name in found} == expected, sorted(found)
    assert len(found) >= 20, sorted(found)
    leaks = {name: detail for name, (leaked, detail) in found.items() if leaked}
    assert not leaks, f"{probed['grader']}: the sandbox leaked: {leaks}"


def test_what_the_kernel_wrote_never_reaches_the_host(probed):
    host = probed["host"]
    planted = [p for p in (host.open_dir, REPO, Path(sys.prefix), Path("/etc"))
               if (p / "written-by-the-sandbox").exists()]
    assert planted == [], f"{probed['grader']}: the kernel wrote on the host: {planted}"
    assert probed["reached"] == [], f"{probed['grader']}: the kernel reached the host's sockets"


def test_every_writable_folder_is_capped_and_none_is_the_hosts(probed):
    _, filled = probed["probes"]
    caps = {sandbox.JOB: sandbox.JOB_SIZE, "/tmp": sandbox.TMP_SIZE, sandbox.KERNEL_SOCKETS: sandbox.SOCKETS_SIZE,
            "/dev/shm": sandbox.SHM_SIZE}
    assert filled and set(caps) <= set(filled), filled
    for folder, totals in filled.items():
        mount = max((c for c in caps if folder == c or folder.startswith(c + "/")), key=len, default=None)
        assert mount is not None, f"{probed['grader']}: {folder} is writable and belongs to no capped folder"
        for how, total in totals.items():
            assert total <= caps[mount] + (8 << 20), f"{folder} took {total} bytes by {how}"
    # Had what the kernel wrote gone to the host's disk, the disk would have lost at least that much. Other tests
    # write on it meanwhile (pytest-xdist), so the bound is half of what the kernel wrote, not a fixed few MiB.
    written = sum(max(totals.values()) for totals in filled.values())
    assert written >= 256 << 20, f"the kernel wrote only {written >> 20} MiB: the probe proves nothing about the disk"
    drop = probed["free_before"] - probed["free_after"]
    assert drop < written // 2, (f"the host's disk lost {drop >> 20} MiB while the kernel wrote {written >> 20} MiB "
                                 "in its folders")


def test_the_kernel_is_unprivileged_seen_from_outside(probed):
    status, namespaces = probed["seen"].get("status"), probed["seen"].get("namespaces")
    assert status, f"{probed['grader']}: the kernel's process was never seen from outside"
    assert [int(u) for u in status["Uid"].split()] == [probed["kernel_uid"]] * 4
    assert all(int(g) != 0 for g in status["Gid"].split())
    assert status["Groups"].strip() in ("", str(probed["kernel_uid"]))
    for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[caps], 16) == 0, f"{caps} = {status[caps]}"
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2", "no seccomp filter"
    assert all(namespaces.values()), f"namespaces shared with the grader: {namespaces}"
    if probed["grader"] == "root":
        assert probed["kernel_uid"] != 0 and probed["kernel_uid"] != os.getuid()


def test_no_process_outlives_the_notebook(probed):
    assert probed["left"] == [], f"{probed['grader']}: processes left behind: {probed['left']}"


def test_the_probes_see_a_weakened_sandbox(tmp_path, monkeypatch):
    """The probes can fail: a sandbox that shows the host's folder and filters no system call leaks."""
    import struct
    from autograder import seccomp
    folder = Path(tempfile.mkdtemp(prefix="ag-isolation-", dir="/var/tmp"))   # not under the sandbox's own /tmp
    folder.chmod(0o755)
    host = Host(folder / "host")
    visible = sandbox.visible_paths
    monkeypatch.setattr(sandbox, "visible_paths", lambda: visible() + [str(host.root)])
    monkeypatch.setattr(seccomp, "program", lambda arch=None: struct.pack("=HBBI", seccomp.RET_K, 0, 0, seccomp.RET_ALLOW))
    try:
        notebook = probe_notebook(host.params())
        notebook.cells = notebook.cells[:2] + notebook.cells[5:6]   # reading, and privileges
        found, _ = probes(run_as("root", notebook, folder / "run", host.env_marker))
    finally:
        host.close()
        shutil.rmtree(folder, ignore_errors=True)
    leaked = {name for name, (leak, _) in found.items() if leak}
    assert "read: a world-readable host file outside the sandbox" in leaked
    assert "privilege: bpf" in leaked or "privilege: perf_event_open" in leaked or "privilege: keyctl" in leaked, found


@pytest.mark.unit
def test_the_seccomp_filter_refuses_what_the_issue_names():
    from autograder import seccomp
    for name in ("open_by_handle_at", "name_to_handle_at", "ptrace", "mount", "bpf", "perf_event_open", "keyctl",
                 "userfaultfd", "unshare", "setns", "process_vm_readv", "io_uring_setup"):
        assert name in seccomp.REFUSED
    for arch in ("x86_64", "aarch64"):
        program = seccomp.program(arch)
        assert len(program) % 8 == 0 and 20 < len(program) // 8 < 256


def test_a_python_under_tmp_stays_visible_on_top_of_the_sandbox_tmp(monkeypatch):
    """A clone (and its venv) under /tmp, as CI and many users have it: the sandbox's own /tmp must not hide it."""
    folder = Path(tempfile.mkdtemp(prefix="ag-visible-"))
    folder.chmod(0o755)
    (folder / "f.txt").write_text("seen")
    (folder / "f.txt").chmod(0o644)
    visible = sandbox.visible_paths
    monkeypatch.setattr(sandbox, "visible_paths", lambda: visible() + [str(folder)])
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(f"print(open({str(folder / 'f.txt')!r}).read())")])
    try:
        sandbox.run_notebook(notebook, folder / "run", 60, 30)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert notebook.cells[0].outputs[0].get("text", "").strip() == "seen", notebook.cells[0].outputs
