"""The seccomp filter of the sandbox: system calls a student's kernel never needs, refused by the Linux kernel.

bubblewrap loads a classic BPF program (`bwrap --seccomp FD`) just before it starts the notebook's kernel; the
filter holds for that process and everything it starts, and cannot be removed. It refuses (EPERM) what
could reach outside the sandbox or attack the host's kernel: file handles (`open_by_handle_at`, the escape
that reads the host's files by inode), mounts, other processes' memory (`ptrace`, `process_vm_*`), eBPF,
perf events, the keyring, `userfaultfd`, io_uring, kernel modules, new namespaces (`unshare`, `setns`,
`clone` with a CLONE_NEW* flag), and typing into a terminal (`ioctl(TIOCSTI)`). `clone3` answers ENOSYS,
whose flags a BPF filter cannot read, so that the C library falls back to `clone`. A system call of
another ABI (32-bit x86 on x86_64, x32) kills the process: its numbers would bypass the table.

The list follows Docker's and Flatpak's default profiles; nothing a Python kernel with torch does is in it.
"""
from __future__ import annotations

import errno
import platform
import struct

# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]
NR, ARCH, ARG0, ARG1 = 0, 4, 16, 24

# classic BPF opcodes
LD_W_ABS = 0x20      # BPF_LD | BPF_W | BPF_ABS
JEQ_K = 0x15         # BPF_JMP | BPF_JEQ | BPF_K
JGE_K = 0x35         # BPF_JMP | BPF_JGE | BPF_K
JSET_K = 0x45        # BPF_JMP | BPF_JSET | BPF_K
RET_K = 0x06         # BPF_RET | BPF_K

RET_ALLOW = 0x7FFF0000
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000

# CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
CLONE_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
TERMINAL_INJECTION = (0x5412, 0x541C)   # ioctl TIOCSTI (type into a terminal), TIOCLINUX

# The refused calls, by name, with their numbers on each architecture (Linux's syscall tables; numbers
# from 424 on are the same everywhere).
REFUSED = {
    #                     x86_64  aarch64
    "syslog":             (103,   116),
    "ptrace":             (101,   117),
    "uselib":             (134,   None),
    "vhangup":            (153,   58),
    "modify_ldt":         (154,   None),
    "pivot_root":         (155,   41),
    "adjtimex":           (159,   171),
    "chroot":             (161,   51),
    "acct":               (163,   89),
    "settimeofday":       (164,   170),
    "mount":              (165,   40),
    "umount2":            (166,   39),
    "swapon":             (167,   224),
    "swapoff":            (168,   225),
    "reboot":             (169,   142),
    "sethostname":        (170,   161),
    "setdomainname":      (171,   162),
    "iopl":               (172,   None),
    "ioperm":             (173,   None),
    "init_module":        (175,   105),
    "delete_module":      (176,   106),
    "quotactl":           (179,   60),
    "nfsservctl":         (180,   None),
    "lookup_dcookie":     (212,   18),
    "clock_settime":      (227,   112),
    "kexec_load":         (246,   104),
    "add_key":            (248,   217),
    "request_key":        (249,   218),
    "keyctl":             (250,   219),
    "unshare":            (272,   97),
    "perf_event_open":    (298,   241),
    "fanotify_init":      (300,   262),
    "name_to_handle_at":  (303,   264),
    "open_by_handle_at":  (304,   265),
    "clock_adjtime":      (305,   266),
    "setns":              (308,   268),
    "process_vm_readv":   (310,   270),
    "process_vm_writev":  (311,   271),
    "kcmp":               (312,   272),
    "finit_module":       (313,   273),
    "kexec_file_load":    (320,   294),
    "bpf":                (321,   280),
    "userfaultfd":        (323,   282),
    "io_uring_setup":     (425,   425),
    "io_uring_enter":     (426,   426),
    "io_uring_register":  (427,   427),
    "open_tree":          (428,   428),
    "move_mount":         (429,   429),
    "fsopen":             (430,   430),
    "fsconfig":           (431,   431),
    "fsmount":            (432,   432),
    "fspick":             (433,   433),
    "pidfd_getfd":        (438,   438),
    "mount_setattr":      (442,   442),
    "quotactl_fd":        (443,   443),
}
CLONE = {"x86_64": 56, "aarch64": 220}
CLONE3 = 435
IOCTL = {"x86_64": 16, "aarch64": 29}
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
X32_SYSCALL_BIT = 0x40000000   # x86_64 only: the x32 ABI's calls


class UnsupportedArchitecture(Exception):
    """No filter is written for this machine: the sandbox refuses to run rather than run without one."""


def machine() -> str:
    name = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(name, name)


def refused_numbers(arch: str) -> list[int]:
    column = 0 if arch == "x86_64" else 1
    return sorted(n for numbers in REFUSED.values() if (n := numbers[column]) is not None)


def program(arch: str | None = None) -> bytes:
    """The filter for `arch` (this machine's by default), as the bytes of a `struct sock_filter` array."""
    arch = arch or machine()
    if arch not in AUDIT_ARCH:
        raise UnsupportedArchitecture(f"the sandbox has no seccomp filter for {arch!r} (only x86_64 and aarch64)")
    eperm, enosys = RET_ERRNO | errno.EPERM, RET_ERRNO | errno.ENOSYS
    # Each entry: (code, k, jump-if-true target, jump-if-false target); targets are labels resolved below.
    body: list[tuple[int, int, str | None, str | None]] = [
        (LD_W_ABS, ARCH, None, None),
        (JEQ_K, AUDIT_ARCH[arch], None, "kill"),
        (LD_W_ABS, NR, None, None),
    ]
    if arch == "x86_64":
        body.append((JGE_K, X32_SYSCALL_BIT, "kill", None))
    for number in refused_numbers(arch):
        body.append((JEQ_K, number, "eperm", None))
    body.append((JEQ_K, CLONE3, "enosys", None))
    body.append((JEQ_K, CLONE[arch], "clone", None))
    body.append((JEQ_K, IOCTL[arch], "ioctl", None))
    body.append((RET_K, RET_ALLOW, None, None))
    labels: dict[str, list[tuple[int, int, str | None, str | None]]] = {
        "clone": [(LD_W_ABS, ARG0, None, None), (JSET_K, CLONE_NAMESPACES, "eperm", None),
                  (RET_K, RET_ALLOW, None, None)],
        "ioctl": [(LD_W_ABS, ARG1, None, None),
                  *[(JEQ_K, request, "eperm", None) for request in TERMINAL_INJECTION],
                  (RET_K, RET_ALLOW, None, None)],
        "eperm": [(RET_K, eperm, None, None)],
        "enosys": [(RET_K, enosys, None, None)],
        "kill": [(RET_K, RET_KILL_PROCESS, None, None)],
    }
    instructions, where = list(body), {}
    for label, block in labels.items():
        where[label] = len(instructions)
        instructions += block
    packed = bytearray()
    for index, (code, k, if_true, if_false) in enumerate(instructions):
        jt = where[if_true] - index - 1 if if_true else 0
        jf = where[if_false] - index - 1 if if_false else 0
        assert 0 <= jt < 256 and 0 <= jf < 256, "a seccomp jump is out of range"
        packed += struct.pack("=HBBI", code, jt, jf, k)
    return bytes(packed)
