"""The OS-level jail under RestrictedPython: what a worker can do even if the policy is bypassed.

RestrictedPython had five published escapes in three years. A worker that gets out of it is still
a process that must not reach the network, the file system, other processes or a new program:

    netns         an empty network namespace (unshare CLONE_NEWNET; as an ordinary user inside a
                  new user namespace). The broker in the parent does all HTTP; the worker only
                  talks over the pipes it inherited.
    no_new_privs  PR_SET_NO_NEW_PRIVS: nothing it runs can gain privileges (and seccomp and
                  Landlock need it).
    seccomp       a hand-built BPF filter (DENIED_SYSCALLS): no execve, no new sockets, no connect,
                  no ptrace or process_vm_*, no signals to other processes, no fork/clone, no
                  mount/unshare/setns, no bpf/keyctl/io_uring... Everything else CPython needs is
                  allowed (a deny list: CPython's own syscalls vary by version and libc).
    fs            Landlock (read-only, and only the interpreter's libraries, the sandbox and rules
                  packages, shared libraries and time-zone data: `readable_paths`; on ABI >= 4 no TCP
                  bind/connect, on ABI >= 6 no signals or abstract sockets outside the domain); where
                  Landlock is missing, a private mount namespace with every mount made read-only.

Each layer is applied when the kernel offers it and `report()` says which are active; the pool
refuses to start without them when asked to (DESKFLOW_SANDBOX_REQUIRE_JAIL). Everything here is
ctypes over libc and raw syscalls, no extra library: the filter must load in slim containers
without libseccomp, and building 100 BPF instructions by hand is simpler than binding it.

Runs in the worker (child.py) after it has imported what it needs, before the first script.
"""
from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
import sys
import sysconfig
from typing import Any

LAYERS: tuple[str, ...] = ("netns", "no_new_privs", "seccomp", "fs")

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2

# Syscall numbers per architecture (checked against libseccomp by tests/sandbox/test_jail.py).
# A name missing from an architecture's table does not exist there.
_X86_64 = {
    "execve": 59, "execveat": 322, "socket": 41, "socketpair": 53, "connect": 42, "bind": 49,
    "listen": 50, "accept": 43, "accept4": 288, "ptrace": 101, "process_vm_readv": 310,
    "process_vm_writev": 311, "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161,
    "unshare": 272, "setns": 308, "bpf": 321, "keyctl": 250, "add_key": 248, "request_key": 249,
    "perf_event_open": 298, "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "init_module": 175, "finit_module": 313, "delete_module": 176,
    "kexec_load": 246, "kexec_file_load": 320, "reboot": 169, "swapon": 167, "swapoff": 168,
    "acct": 163, "kill": 62, "tkill": 200, "tgkill": 234, "rt_sigqueueinfo": 129,
    "rt_tgsigqueueinfo": 297, "pidfd_open": 434, "pidfd_send_signal": 424, "pidfd_getfd": 438,
    "fork": 57, "vfork": 58, "clone": 56, "clone3": 435, "setuid": 105, "setgid": 106,
    "setreuid": 113, "setregid": 114, "setresuid": 117, "setresgid": 119, "setgroups": 116,
    "setfsuid": 122, "setfsgid": 123, "capset": 126, "personality": 135,
    "open_by_handle_at": 304, "name_to_handle_at": 303, "move_mount": 429, "open_tree": 428,
    "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
    "quotactl": 179, "memfd_create": 319, "memfd_secret": 447, "kcmp": 312, "vhangup": 153,
    "uselib": 134, "iopl": 172, "ioperm": 173, "modify_ldt": 154, "settimeofday": 164,
    "clock_settime": 227, "clock_adjtime": 305, "adjtimex": 159, "sethostname": 170,
    "setdomainname": 171, "syslog": 103, "process_madvise": 440,
}
_AARCH64 = {
    "execve": 221, "execveat": 281, "socket": 198, "socketpair": 199, "connect": 203, "bind": 200,
    "listen": 201, "accept": 202, "accept4": 242, "ptrace": 117, "process_vm_readv": 270,
    "process_vm_writev": 271, "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51,
    "unshare": 97, "setns": 268, "bpf": 280, "keyctl": 219, "add_key": 217, "request_key": 218,
    "perf_event_open": 241, "userfaultfd": 282, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "init_module": 105, "finit_module": 273, "delete_module": 106,
    "kexec_load": 104, "kexec_file_load": 294, "reboot": 142, "swapon": 224, "swapoff": 225,
    "acct": 89, "kill": 129, "tkill": 130, "tgkill": 131, "rt_sigqueueinfo": 138,
    "rt_tgsigqueueinfo": 240, "pidfd_open": 434, "pidfd_send_signal": 424, "pidfd_getfd": 438,
    "clone": 220, "clone3": 435, "setuid": 146, "setgid": 144, "setreuid": 145, "setregid": 143,
    "setresuid": 147, "setresgid": 149, "setgroups": 159, "setfsuid": 151, "setfsgid": 152,
    "capset": 91, "personality": 92, "open_by_handle_at": 265, "name_to_handle_at": 264,
    "move_mount": 429, "open_tree": 428, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
    "fspick": 433, "mount_setattr": 442, "quotactl": 60, "memfd_create": 279, "memfd_secret": 447,
    "kcmp": 272, "vhangup": 58, "settimeofday": 170, "clock_settime": 112, "clock_adjtime": 266,
    "adjtimex": 171, "sethostname": 161, "setdomainname": 162, "syslog": 116,
    "process_madvise": 440,
}
# machine -> (AUDIT_ARCH_*, syscall table). Landlock's and mount_setattr's numbers are the same
# on every architecture (syscalls numbered from 424 on are unified).
_ARCHES: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (0xC000003E, _X86_64),
    "aarch64": (0xC00000B7, _AARCH64),
}
_NR_LANDLOCK_CREATE_RULESET, _NR_LANDLOCK_ADD_RULE, _NR_LANDLOCK_RESTRICT_SELF = 444, 445, 446
_NR_MOUNT_SETATTR = 442

# What the filter refuses (EPERM), each group with its reason. Signals are refused unless aimed
# at the worker itself (abort() and raise() still work); clone3 says ENOSYS, the answer glibc
# expects from an old kernel, so it falls back to clone -- which is refused too.
DENIED_SYSCALLS: dict[str, str] = {
    **dict.fromkeys(("execve", "execveat", "uselib"), "no other program"),
    **dict.fromkeys(("fork", "vfork", "clone", "clone3"), "no new processes or threads"),
    **dict.fromkeys(("socket", "socketpair", "connect", "bind", "listen", "accept", "accept4"),
                    "no sockets: the broker in the parent does all HTTP"),
    **dict.fromkeys(("ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_open",
                     "pidfd_getfd", "pidfd_send_signal", "process_madvise"),
                    "no reaching into another process"),
    **dict.fromkeys(("kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo"),
                    "signals only to itself"),
    **dict.fromkeys(("mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree",
                     "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
                     "open_by_handle_at", "name_to_handle_at", "quotactl", "swapon", "swapoff"),
                    "the file system view is fixed"),
    **dict.fromkeys(("unshare", "setns"), "the namespaces are fixed"),
    **dict.fromkeys(("setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid",
                     "setgroups", "setfsuid", "setfsgid", "capset", "personality"),
                    "the identity is fixed"),
    **dict.fromkeys(("bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key",
                     "memfd_create", "memfd_secret"), "kernel attack surface a script never needs"),
    **dict.fromkeys(("io_uring_setup", "io_uring_enter", "io_uring_register"),
                    "io_uring runs socket and file operations past seccomp"),
    **dict.fromkeys(("init_module", "finit_module", "delete_module", "kexec_load",
                     "kexec_file_load", "reboot", "acct", "vhangup", "iopl", "ioperm",
                     "modify_ldt", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
                     "sethostname", "setdomainname", "syslog"), "system administration"),
}
_SELF_ONLY = ("kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo")

# BPF opcodes (linux/filter.h, linux/seccomp.h)
_LD_W_ABS, _JEQ_K, _JGE_K, _RET_K = 0x20, 0x15, 0x35, 0x06
_RET_KILL_PROCESS, _RET_ALLOW, _RET_ERRNO = 0x80000000, 0x7FFF0000, 0x00050000
_X32_SYSCALL_BIT = 0x40000000

# Landlock (linux/landlock.h)
_LL_FS_V1 = (1 << 13) - 1          # EXECUTE .. MAKE_SYM
_LL_FS_REFER, _LL_FS_TRUNCATE, _LL_FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_LL_READ_FILE = 1 << 2
_LL_READ = _LL_READ_FILE | (1 << 3)  # READ_FILE | READ_DIR
_LL_NET_BIND_TCP, _LL_NET_CONNECT_TCP = 1 << 0, 1 << 1
_LL_SCOPE_ABSTRACT_UNIX, _LL_SCOPE_SIGNAL = 1 << 0, 1 << 1
_LL_RULE_PATH_BENEATH = 1
_LL_CREATE_RULESET_VERSION = 1

_MOUNT_ATTR_RDONLY, _MS_PRIVATE, _AT_RECURSIVE, _AT_FDCWD = 0x1, 1 << 18, 0x8000, -100
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REC = 0x1, 0x2, 0x4, 0x8, 0x4000


def readable_paths() -> list[tuple[str, int]]:
    """What a locked worker may read (Landlock), with the access each gets: the interpreter's own
    library directories (the standard library, lib-dynload, the site-packages it imports from),
    the `sandbox` and `rules` packages, the shared libraries, time-zone data and two devices.
    Nothing else: not the service's data directory, its secrets key file, /etc or /home. A worker
    has imported what it needs before it locks (child.py `_warm`), so these are for the lazy
    imports and data files of what it already holds."""
    here = os.path.dirname(os.path.abspath(__file__))
    dirs = {sysconfig.get_path(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    dirs |= {p for p in sys.path if p.endswith(("site-packages", "dist-packages", "lib-dynload"))}
    dirs |= {here, os.path.join(os.path.dirname(here), "rules"),
             "/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib", "/usr/share/zoneinfo"}
    files = {"/dev/null", "/dev/urandom", "/etc/localtime"}
    return ([(d, _LL_READ) for d in sorted(p for p in dirs if p)]
            + [(f, _LL_READ_FILE) for f in sorted(files)])


def _libc() -> Any:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return libc


def _fail(what: str) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"{what}: {errno.errorcode.get(code, code)}")


class Jail:
    """Applies the layers in two steps around the uid drop, recording each outcome.

    `skip` names layers not to apply (tests use it to show each layer holds on its own)."""

    def __init__(self, skip: frozenset[str] = frozenset()) -> None:
        self.skip = skip
        self.libc = _libc()
        self.active: dict[str, bool] = dict.fromkeys(("netns", "no_new_privs", "seccomp", "landlock", "mount_ns"), False)
        self.unavailable: dict[str, str] = {}
        self.landlock_abi = self._landlock_abi() if "landlock" not in skip else 0

    # -- step 1: namespaces (before the uid drop as root, after it otherwise) ------------------

    def enter_namespaces(self, privileged: bool) -> None:
        """Root unshares the net (and maybe mount) namespace directly; an ordinary user (or root
        in a container without CAP_SYS_ADMIN, after the drop) inside a new user namespace."""
        if self.active["netns"]:
            return
        flags = 0 if "netns" in self.skip else _CLONE_NEWNET
        want_mount = self.landlock_abi <= 0 and "mount_ns" not in self.skip
        if want_mount:
            flags |= _CLONE_NEWNS
        if not flags:
            return
        if not privileged:
            flags |= _CLONE_NEWUSER
        if self.libc.unshare(flags) != 0:
            error = _fail("unshare")
            if privileged:
                return      # try again as an ordinary user, inside a user namespace
            self.unavailable["netns"] = str(error)
            return
        self.active["netns"] = bool(flags & _CLONE_NEWNET)
        self.unavailable.pop("netns", None)
        if want_mount:
            self._mount_read_only()

    def _mount_read_only(self) -> None:
        # /proc first: without Landlock's ptrace scoping, a worker running as the service's own
        # uid could read the service's /proc/<pid>/environ and mem. An empty tmpfs covers it
        # (the worker keeps the /proc/self/statm descriptor it opened before).
        # Private first: as root, the new mount namespace's mounts are still shared with the
        # service's, and a mount on /proc would propagate back to it.
        if self.libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
            self.unavailable["mount_ns"] = str(_fail("mount --make-rprivate /"))
            return
        if self.libc.mount(b"none", b"/proc", b"tmpfs", _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC,
                           b"size=4k,mode=555") != 0:
            self.unavailable["mount_ns"] = str(_fail("mount tmpfs on /proc"))
            return
        # struct mount_attr { u64 attr_set, attr_clr, propagation, userns_fd }
        attr = struct.pack("=QQQQ", _MOUNT_ATTR_RDONLY, 0, _MS_PRIVATE, 0)
        buf = ctypes.create_string_buffer(attr, len(attr))
        if self.libc.syscall(_NR_MOUNT_SETATTR, _AT_FDCWD, b"/", _AT_RECURSIVE, buf, len(attr)) != 0:
            self.unavailable["mount_ns"] = str(_fail("mount_setattr"))
        else:
            self.active["mount_ns"] = True

    # -- step 2: locks (after the uid drop, before the first script) ---------------------------

    def lock(self) -> None:
        if "no_new_privs" not in self.skip:
            if self.libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
                self.unavailable["no_new_privs"] = str(_fail("prctl(PR_SET_NO_NEW_PRIVS)"))
            else:
                self.active["no_new_privs"] = True
        if self.landlock_abi > 0 and self.active["no_new_privs"]:
            try:
                self._landlock()
                self.active["landlock"] = True
            except Exception as exc:  # noqa: BLE001 - reported as unavailable, never fatal
                self.unavailable["landlock"] = str(exc)
        if "seccomp" not in self.skip:
            try:
                self._seccomp()
                self.active["seccomp"] = True
            except Exception as exc:  # noqa: BLE001 - reported as unavailable, never fatal
                self.unavailable["seccomp"] = str(exc)

    def _landlock_abi(self) -> int:
        abi = self.libc.syscall(_NR_LANDLOCK_CREATE_RULESET, None, 0, _LL_CREATE_RULESET_VERSION)
        if abi < 0:
            self.unavailable["landlock"] = str(_fail("landlock_create_ruleset"))
            return 0
        return int(abi)

    def _landlock(self) -> None:
        abi = self.landlock_abi
        fs = _LL_FS_V1 | (_LL_FS_REFER if abi >= 2 else 0) | (_LL_FS_TRUNCATE if abi >= 3 else 0) | (
            _LL_FS_IOCTL_DEV if abi >= 5 else 0)
        net = (_LL_NET_BIND_TCP | _LL_NET_CONNECT_TCP) if abi >= 4 else 0
        scoped = (_LL_SCOPE_ABSTRACT_UNIX | _LL_SCOPE_SIGNAL) if abi >= 6 else 0
        attr = struct.pack("=QQQ", fs, net, scoped)[: 8 if abi < 4 else 16 if abi < 6 else 24]
        buf = ctypes.create_string_buffer(attr, len(attr))
        ruleset = self.libc.syscall(_NR_LANDLOCK_CREATE_RULESET, buf, len(attr), 0)
        if ruleset < 0:
            raise _fail("landlock_create_ruleset")
        try:
            for path, access in readable_paths():
                try:
                    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue   # not on this machine
                try:
                    rule = struct.pack("=Qi", access, fd)   # packed: u64 allowed_access, s32 parent_fd
                    rbuf = ctypes.create_string_buffer(rule, len(rule))
                    if self.libc.syscall(_NR_LANDLOCK_ADD_RULE, ruleset, _LL_RULE_PATH_BENEATH,
                                         rbuf, 0) != 0:
                        raise _fail(f"landlock_add_rule({path})")
                finally:
                    os.close(fd)
            if self.libc.syscall(_NR_LANDLOCK_RESTRICT_SELF, ruleset, 0) != 0:
                raise _fail("landlock_restrict_self")
        finally:
            os.close(ruleset)

    def _seccomp(self) -> None:
        program = seccomp_program(os.getpid())
        raw = b"".join(struct.pack("=HBBI", *insn) for insn in program)
        filters = ctypes.create_string_buffer(raw, len(raw))
        # struct sock_fprog { unsigned short len; struct sock_filter *filter; }
        fprog = struct.pack("=HxxxxxxQ", len(program), ctypes.addressof(filters))
        fbuf = ctypes.create_string_buffer(fprog, len(fprog))
        if self.libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(fbuf), 0, 0) != 0:
            raise _fail("prctl(PR_SET_SECCOMP)")

    def report(self) -> dict[str, Any]:
        """The `jail` description for /readyz and the start-up log."""
        fs = "landlock" if self.active["landlock"] else "mount_ns" if self.active["mount_ns"] else "none"
        out: dict[str, Any] = {"netns": self.active["netns"], "no_new_privs": self.active["no_new_privs"],
                               "seccomp": self.active["seccomp"], "landlock": self.active["landlock"],
                               "fs": fs}
        gaps = {k: v for k, v in self.unavailable.items() if not self.active.get(k)}
        if fs != "none":
            gaps.pop("landlock", None)
            gaps.pop("mount_ns", None)
        if gaps:
            out["unavailable"] = gaps
        return out


def seccomp_program(own_pid: int, machine: str | None = None) -> list[tuple[int, int, int, int]]:
    """The BPF filter: kill on a foreign architecture (i386 via int 0x80, x32), EPERM for
    DENIED_SYSCALLS, signals allowed only when aimed at `own_pid`, everything else allowed."""
    arch = _ARCHES.get(machine or platform.machine())
    if arch is None:
        raise KeyError(f"no syscall table for {machine or platform.machine()}")
    audit_arch, table = arch
    denied = sorted({table[n] for n in DENIED_SYSCALLS if n in table and n not in _SELF_ONLY and n != "clone3"})
    self_only = sorted({table[n] for n in _SELF_ONLY if n in table})
    insns: list[tuple[int, int, int, int]] = []
    # Jumps are ("J", op, k, label_if_true[, label_if_false]), resolved once the body is laid out.
    body: list[Any] = [
        (_LD_W_ABS, 0, 0, 4),                        # seccomp_data.arch
        (_JEQ_K, 1, 0, audit_arch),
        (_RET_K, 0, 0, _RET_KILL_PROCESS),
        (_LD_W_ABS, 0, 0, 0),                        # seccomp_data.nr
    ]
    if audit_arch == 0xC000003E:
        body.append(("J", _JGE_K, _X32_SYSCALL_BIT, "deny"))
    body += [("J", _JEQ_K, nr, "self") for nr in self_only]
    if "clone3" in table:
        body.append(("J", _JEQ_K, table["clone3"], "enosys"))
    body += [("J", _JEQ_K, nr, "deny") for nr in denied]
    labels: dict[str, int] = {}
    body.append((_RET_K, 0, 0, _RET_ALLOW))
    labels["self"] = len(body)
    body.append((_LD_W_ABS, 0, 0, 16))              # low 32 bits of args[0] (little-endian)
    body.append(("J", _JEQ_K, own_pid & 0xFFFFFFFF, "allow", "deny"))
    labels["allow"] = len(body)
    body.append((_RET_K, 0, 0, _RET_ALLOW))
    labels["enosys"] = len(body)
    body.append((_RET_K, 0, 0, _RET_ERRNO | errno.ENOSYS))
    labels["deny"] = len(body)
    body.append((_RET_K, 0, 0, _RET_ERRNO | errno.EPERM))
    for i, insn in enumerate(body):
        if insn[0] == "J":
            op, k, on_true = insn[1], insn[2], insn[3]
            jt = labels[on_true] - (i + 1)
            jf = labels[insn[4]] - (i + 1) if len(insn) > 4 else 0
            if max(jt, jf) > 255:
                raise ValueError("seccomp filter too long for 8-bit jumps")
            insns.append((op, jt, jf, k))
        else:
            insns.append(insn)
    return insns


def missing(report: dict[str, Any]) -> list[str]:
    """The layers of LAYERS a jail report lacks, with the reason when the worker gave one."""
    gaps = report.get("unavailable") or {}
    out = []
    for layer in LAYERS:
        active = report.get(layer) != "none" if layer == "fs" else bool(report.get(layer))
        if not active:
            reason = gaps.get(layer) or (gaps.get("landlock") or gaps.get("mount_ns") if layer == "fs" else None)
            out.append(f"{layer} ({reason})" if reason else layer)
    return out
