"""The sandbox's pre-started interpreter: forks one contained process per program.

`rfai_cli.scoring.sandbox` starts this file as `python -I -S _zygote.py` with an empty environment.
It imports what test programs commonly need once, then reads jobs (one JSON object per line)
on stdin and answers each with one JSON line on stdout. A job names a directory and limits,
never code: the client writes the program's files into that directory, and only the contained
child reads them, so no program's source is ever in this process's memory for a later fork to
find. Python programs run in a fork of this interpreter (the trusted `_pyharness.py` loads
them); compilers and compiled programs are exec'd.

Each job runs as a chain  zygote -> A -> C:
  A  starts a new session (one killpg reaches the whole tree) and new mount, PID, IPC and network
     namespaces (plus a user namespace when not root, so ordinary users get the same walls),
     then builds C's whole filesystem view on a size-limited tmpfs: read-only binds of the
     system and toolchain directories, /dev with null, zero and urandom only, the job's input
     files copied into /sandbox (its home and cwd), and an empty /tmp. After C ends, A copies
     the files the job named as outputs back to the job's host directory.
  C  is PID 1 of the new PID namespace, so when it ends the kernel kills everything it left. It
     mounts its own /proc, pivots into the view (the host's tree is gone, not hidden), joins a
     fresh session keyring, drops every capability (and, as root, becomes a per-slot uid),
     applies rlimits, and runs the program with stdout, stderr and the results channel (fd 3)
     going to files in the host directory that it cannot name.
Where the kernel refuses namespaces, the fallback is Landlock (reads only system/toolchain
paths and the job's own directory, writes only there, no TCP, no signals out), a session kill
and a subreaper sweep; the client reports that loudly.
The zygote enforces the wall-clock timeout by killing A's process group.

Stdlib only, and no rfai imports: this runs before anything else and in every child.
"""

from __future__ import annotations

# Imported here so a forked program finds them in sys.modules instead of loading them.
# (`typing`: most generated Python starts `from typing import List`, and importing it cost each
# program some 600 freshly written pages.)
import array  # noqa: E401,F401
import base64  # noqa: E401,F401
import bisect  # noqa: E401,F401
import ctypes
import errno
import fcntl
import functools  # noqa: E401,F401
import gc
import heapq  # noqa: E401,F401
import itertools  # noqa: E401,F401
import json
import os
import platform
import resource
import selectors
import signal
import stat
import string  # noqa: E401,F401
import struct
import sys
import time
import types
import typing  # noqa: E401,F401

LINUX = sys.platform.startswith("linux")
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
UID_BASE = 61000  # as root, sandbox uids come in blocks from here: one block per rfai process,
UID_BLOCK, UID_BLOCKS = 1024, 64  # one uid per slot (programs at once) within it
OUT_FILES = (".stdout", ".stderr", ".rfai-results")  # fds 1, 2 and 3 of every program
BOX = "/sandbox"  # the program's home and working directory inside its view
COPY_LIMIT = 512 * 1024 * 1024  # bytes copied in or out per file, at most

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = (
    0x20000,
    0x8000000,
    0x10000000,
    0x20000000,
    0x40000000,
)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = (
    1,
    2,
    4,
    8,
    32,
    4096,
    16384,
    1 << 18,
)
MNT_DETACH = 2
_KEPT_FLAGS = ((8, MS_NOEXEC), (1024, 1024), (2048, 2048), (4096, 1 << 21))  # statvfs ST_* -> MS_*: noexec, atime
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER, PR_CAPBSET_DROP, PR_CAP_AMBIENT = 1, 38, 36, 24, 47
PR_SET_KEEPCAPS, PR_CAP_AMBIENT_CLEAR_ALL, CAP_DAC_READ_SEARCH = 8, 4, 2
KEYCTL_JOIN_SESSION_KEYRING, KEYCTL_CLEAR = 1, 7
KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING = -4, -5
SYSCALLS = {"x86_64": {"pivot_root": 155, "keyctl": 250}, "aarch64": {"pivot_root": 41, "keyctl": 219}}.get(
    platform.machine(), {}
)
# seccomp: (audit arch, syscalls a program never gets: add_key, request_key, keyctl).
KEYRING_SYSCALLS = {"x86_64": (0xC000003E, (248, 249, 250)), "aarch64": (0xC00000B7, (217, 218, 219))}.get(
    platform.machine()
)
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
SYS_LANDLOCK = (444, 445, 446)  # create_ruleset, add_rule, restrict_self (same number on every arch)

# Landlock access rights (linux/landlock.h).
LL_EXECUTE, LL_WRITE_FILE, LL_READ_FILE, LL_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
LL_WRITE_TREE = sum(1 << bit for bit in range(4, 13))  # remove/make dir, file, char, sock, fifo, block, symlink
LL_REFER, LL_TRUNCATE = 1 << 13, 1 << 14
LL_READ = LL_EXECUTE | LL_READ_FILE | LL_READ_DIR
LL_FILE_ONLY = LL_EXECUTE | LL_WRITE_FILE | LL_READ_FILE | LL_TRUNCATE

_libc = ctypes.CDLL(None, use_errno=True) if LINUX else None
if _libc is not None:  # resolve once here, not in every forked child
    for _name in ("syscall", "prctl", "capset", "unshare", "mount", "umount2", "setns"):
        getattr(_libc, _name)
    _libc.syscall.restype = ctypes.c_long


def _call(name: str, *args) -> int:
    result = getattr(_libc, name)(*args)
    if result == -1:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{name}: {os.strerror(errno)}")
    return result


def _syscall(number: int, *args) -> int:
    return _call("syscall", ctypes.c_long(number), *args)


def _prctl(option: int, arg: int = 0, arg3: int = 0) -> None:
    _call(
        "prctl", ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(arg3), ctypes.c_ulong(0), ctypes.c_ulong(0)
    )


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    encode = lambda text: text.encode() if text is not None else None  # noqa: E731
    _call("mount", encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data))


def _landlock_abi() -> int:
    if not LINUX:
        return 0
    try:
        return _syscall(SYS_LANDLOCK[0], None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    except OSError:
        return 0


def _readable_paths() -> list[str]:
    """What a program may read: system dirs, this Python, and the compilers' roots. Paths inside
    another listed path are dropped (the outer bind already shows them)."""
    paths = [
        "/usr",
        "/lib",
        "/lib64",
        "/lib32",
        "/libx32",
        "/bin",
        "/sbin",
        "/etc/ld.so.cache",
        "/etc/ld.so.conf",
        "/etc/ld.so.conf.d",
        "/etc/alternatives",
        "/etc/localtime",
        sys.prefix,
        sys.base_prefix,
        os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))),
    ]
    paths += [p for p in sys.path if p and os.path.isabs(p)]
    paths += [p for p in os.environ.get("RFAI_SANDBOX_READ", "").split(os.pathsep) if p]
    private = (BOX, "/tmp", "/dev", "/proc", "/")  # the view's own: never shown from the host
    kept: list[str] = []
    for path in sorted({os.path.normpath(p) for p in paths if os.path.lexists(p)}):
        if path in private or any(part.startswith(path.rstrip("/") + "/") for part in private[:-1]):
            continue
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept


# --- the per-job filesystem view ----------------------------------------------------------------


def _bind_read_only(source: str, target: str) -> None:
    """Show `source` at `target` (inside the tmpfs), read-only. A symlink (merged /usr: /bin ->
    usr/bin) is recreated as a symlink."""
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    if os.path.islink(source):
        os.symlink(os.readlink(source), target)
        return
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))
    _mount(source, target, None, MS_BIND | MS_REC)
    # A remount must keep the flags the source mount already has (the kernel locks them in a
    # user namespace), and adds read-only, nosuid and nodev.
    have = os.statvfs(source).f_flag
    keep = sum(ms for st, ms in _KEPT_FLAGS if have & st)
    _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | keep)


def _build_template(root: str, read_paths: list[str]) -> None:
    """Once, in the zygote's own mount namespace: the read-only tree every view shares. Each job
    mounts its scratch tmpfs on /sandbox and a fresh /proc on /proc; /tmp and /dev/shm point
    into /sandbox, so all a program can write is its own size-limited scratch."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("rfai-view", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=4096,mode=755")
    for path in read_paths:
        _bind_read_only(path, root + path)
    dev = root + "/dev"
    os.makedirs(dev, exist_ok=True)
    for name in ("null", "zero", "urandom"):
        os.close(os.open(f"{dev}/{name}", os.O_CREAT | os.O_WRONLY, 0o666))
        _mount(f"/dev/{name}", f"{dev}/{name}", None, MS_BIND)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("random", "urandom"),
        ("shm", BOX),
    ):
        os.symlink(target, f"{dev}/{name}")
    if not os.path.isdir(root + "/tmp"):  # no read path lives under /tmp: /tmp is the scratch too
        os.symlink(BOX, root + "/tmp")
    for name in (BOX, "/proc", "/.old"):
        os.mkdir(root + name, 0o755)
    _mount(None, root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _mount_scratch(iso: "Isolation", job: dict, uid: int, workdir_fd: int | None) -> int:
    """In A (its own mount namespace): the job's size-limited /sandbox, holding copies of its
    input files. Returns an fd of it (A reads the outputs back through it)."""
    box = iso.mountpoint + BOX
    _mount(
        "rfai-sandbox",
        box,
        "tmpfs",
        MS_NOSUID | MS_NODEV,
        f"size={job['fsize_mb'] * 2 + 8}m,nr_inodes=16384,mode=700,uid={uid},gid={uid}",
    )
    box_fd = os.open(box, os.O_PATH | os.O_DIRECTORY)
    if workdir_fd is not None:
        for name in os.listdir(workdir_fd):
            if name not in OUT_FILES:
                _copy_file(workdir_fd, name, box_fd, uid)
    return box_fd


def _copy_file(from_dir: int, name: str, to_dir: int, uid: int) -> None:
    """Copy one regular file between directory fds, never following a link or blocking on a FIFO."""
    try:
        source = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=from_dir)
    except OSError:
        return
    try:
        info = os.fstat(source)
        if not stat.S_ISREG(info.st_mode):
            return
        target = os.open(
            name,
            os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
            0o700 if info.st_mode & 0o100 else 0o600,
            dir_fd=to_dir,
        )
        try:
            left = min(info.st_size, COPY_LIMIT)
            while left > 0:
                sent = os.sendfile(target, source, None, left)
                if sent == 0:
                    break
                left -= sent
            if uid >= 0:
                os.fchown(target, uid, uid)
        finally:
            os.close(target)
    finally:
        os.close(source)


def _enter_view(iso: "Isolation") -> None:
    """In C: a fresh /proc, then the pivot (A, in the same mount namespace, moves too: it only
    uses fds from here on), and the host's tree is detached, not merely hidden."""
    root = iso.mountpoint
    if iso.proc:
        _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _syscall(SYSCALLS["pivot_root"], root.encode(), (root + "/.old").encode())
    os.chdir("/")
    _call("umount2", b"/.old", ctypes.c_int(MNT_DETACH))
    os.chdir(BOX)


# --- dropping privileges ------------------------------------------------------------------------


def _drop_privileges(uid: int | None, keep_read: bool = False) -> None:
    """No capability left in any set, none to regain (bounding set empty, no_new_privs), and as
    root a per-slot uid. The session keyring is replaced by an empty one.

    `keep_read` exists only for the fallback as root with a Python the slot uid cannot reach
    (one under /root): the forked interpreter keeps CAP_DAC_READ_SEARCH in its effective set
    (lost at any exec) to import its stdlib; Landlock still bounds what is read."""
    cap = 0
    while True:
        if not (keep_read and cap == CAP_DAC_READ_SEARCH):
            try:
                _prctl(PR_CAPBSET_DROP, cap)
            except OSError:
                break  # past the last capability this kernel knows
        cap += 1
    try:
        _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError:
        pass
    if uid is not None:
        if keep_read:
            _prctl(PR_SET_KEEPCAPS, 1)
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)  # from root to another uid: the kernel clears every capability set
    kept = 1 << CAP_DAC_READ_SEARCH if keep_read else 0
    header = struct.pack("Ii", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = struct.pack("6I", kept, kept, 0, 0, 0, 0)
    _call("capset", ctypes.create_string_buffer(header), ctypes.create_string_buffer(data))
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    if SYSCALLS:  # after the uid change, so the keyrings touched are the program's own
        try:
            _syscall(SYSCALLS["keyctl"], ctypes.c_int(KEYCTL_JOIN_SESSION_KEYRING), None)
        except OSError as exc:
            if exc.errno != errno.ENOSYS:  # (a kernel without keys has no keyring to reach either)
                # Fail closed: the program would keep the keyring of the login that started rfai.
                raise OSError(exc.errno, f"cannot join a fresh session keyring: {exc.strerror}") from None
        if uid is not None:  # a slot uid's keyrings outlive its program (a user namespace's do not)
            for keyring in (KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING):
                try:
                    _syscall(SYSCALLS["keyctl"], ctypes.c_int(KEYCTL_CLEAR), ctypes.c_int(keyring))
                except OSError:
                    pass


def _deny_keyrings() -> None:
    """A seccomp filter: add_key, request_key and keyctl fail with EPERM, so a program can neither
    read a keyring nor leave a key behind (the persistent keyring outlives a process by days,
    and filling a uid's key quota there would make the next program's fresh session keyring
    fail). Requires no_new_privs, set before."""
    arch, numbers = KEYRING_SYSCALLS
    ld, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    deny, allow, kill = 0x00050000 | errno.EPERM, 0x7FFF0000, 0x80000000
    program = [
        (ld, 0, 0, 4),  # the architecture
        (jeq, 0, 3 + len(numbers) + 1, arch),  # another one (a 32-bit entry): kill
        (ld, 0, 0, 0),  # the syscall number
        (jge, len(numbers) + 1, 0, 0x40000000),  # x32 numbers: deny
        *[(jeq, len(numbers) - i, 0, number) for i, number in enumerate(numbers)],
        (ret, 0, 0, allow),
        (ret, 0, 0, deny),
        (ret, 0, 0, kill),
    ]
    filters = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *op) for op in program))
    fprog = ctypes.create_string_buffer(struct.pack("HxxxxxxP", len(program), ctypes.addressof(filters)))
    _prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog))


def _keyrings_deniable() -> bool:
    """Whether `_deny_keyrings` works here: a throwaway child applies it and asks for a keyring."""
    pid = os.fork()
    if pid == 0:
        try:
            _prctl(PR_SET_NO_NEW_PRIVS, 1)
            _deny_keyrings()
            _syscall(KEYRING_SYSCALLS[1][2], ctypes.c_int(0), ctypes.c_int(KEY_SPEC_USER_KEYRING), ctypes.c_int(0))
            os._exit(1)  # KEYCTL_GET_KEYRING_ID answered: not denied
        except OSError as exc:
            os._exit(0 if exc.errno == errno.EPERM else 1)
        except BaseException:
            os._exit(1)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def _claim_uids() -> tuple[int, int]:
    """As root: (first uid, lock fd) of a block of sandbox uids that no other rfai process holds,
    so two rfai processes at once never share a uid (nor its keyrings or process budget). The
    block is ours while this process holds an flock on its lock file."""
    parent = next((path for path in ("/run", "/var/lock", "/tmp") if os.path.isdir(path)), "/")
    directory = os.path.join(parent, "rfai-sandbox")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o022:
        raise OSError(f"{directory} is not a directory only root may write")
    for block in range(UID_BLOCKS):
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(f"{directory}/uids-{block}.lock", flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return UID_BASE + block * UID_BLOCK, fd
    raise OSError(f"all {UID_BLOCKS} blocks of sandbox uids are held by other rfai processes")


def _reachable_by_others(paths: list[str]) -> bool:
    """Whether a uid other than the owner can reach every path (each directory on the way o+x)."""
    for path in paths:
        parts = os.path.realpath(path).split("/")
        for depth in range(2, len(parts) + 1):
            try:
                info = os.stat("/".join(parts[:depth]) or "/")
            except OSError:
                return False
            if stat.S_ISDIR(info.st_mode) and not info.st_mode & 0o001:
                return False
    return True


def _write_id_maps(uid: int, gid: int) -> None:
    """Map our own ids (read before unshare: after it, getuid() is already the overflow id)."""
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as handle:
            handle.write(text)


def _landlock_ruleset(handled_fs: int, handled_net: int, scoped: int, abi: int) -> int:
    attr = struct.pack("QQQ", handled_fs, handled_net, scoped)[: 24 if abi >= 6 else 16 if abi >= 4 else 8]
    return _syscall(
        SYS_LANDLOCK[0], ctypes.create_string_buffer(attr, len(attr)), ctypes.c_size_t(len(attr)), ctypes.c_uint32(0)
    )


def _landlock_allow(ruleset: int, handled_fs: int, path: str, access: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return
    try:
        if not os.path.isdir(path):
            access &= LL_FILE_ONLY
        rule = struct.pack("=Qi", access & handled_fs, fd)
        _syscall(
            SYS_LANDLOCK[1],
            ctypes.c_int(ruleset),
            ctypes.c_int(1),
            ctypes.create_string_buffer(rule, len(rule)),
            ctypes.c_uint32(0),
        )
    finally:
        os.close(fd)


def _landlock(abi: int, read_paths: list[str], workdir: str) -> None:
    """The fallback's walls: reads beneath `read_paths` and `workdir`, writes only in `workdir`,
    no TCP, no signals or abstract sockets outside the domain."""
    write = LL_WRITE_FILE | LL_WRITE_TREE | (LL_REFER if abi >= 2 else 0) | (LL_TRUNCATE if abi >= 3 else 0)
    ruleset = _landlock_ruleset(LL_READ | write, 0b11 if abi >= 4 else 0, 0b11 if abi >= 6 else 0, abi)
    for path in read_paths:
        _landlock_allow(ruleset, LL_READ, path, LL_READ)
    for path in (workdir, "/dev/null"):
        _landlock_allow(ruleset, LL_READ | write, path, LL_READ | write)
    _syscall(SYS_LANDLOCK[2], ctypes.c_int(ruleset), ctypes.c_uint32(0))
    os.close(ruleset)


# --- what this OS allows ------------------------------------------------------------------------


class Isolation:
    """What this OS lets us apply, decided once at start-up (by trying it) and reported.

    With namespaces, the zygote itself moves into a mount namespace of its own (and, when not
    root, a user namespace first) to hold the shared read-only template of every view."""

    def __init__(self) -> None:
        self.uid, self.gid = os.getuid(), os.getgid()
        self.uid_base, self._uid_lock = _claim_uids() if ROOT else (0, None)
        self.mountpoint = os.environ.get("RFAI_SANDBOX_MOUNT", "")
        self.read_paths = _readable_paths()
        self.job_flags = 0  # what each job unshares; 0: the fallback
        self.proc = False
        self.landlock = 0
        self.seccomp = LINUX and KEYRING_SYSCALLS is not None and _keyrings_deniable()
        self.subreaper = False
        self.netns: dict[int, int] = {}  # slot -> fd of that slot's empty network namespace
        self.shared_template = ROOT  # built once in the zygote; per job in a user's own namespaces
        if LINUX and os.environ.get("RFAI_SANDBOX_NAMESPACES") != "0" and SYSCALLS and self.mountpoint:
            try:
                if ROOT:
                    _call("unshare", ctypes.c_int(CLONE_NEWNS))
                    _build_template(self.mountpoint, self.read_paths)
                    self.job_flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC
                else:
                    # Mounts copied into a less privileged namespace are locked, and pivot_root
                    # refuses a locked root: an ordinary user's jobs build their view in their own
                    # user namespace (one per job, which also makes the process count per job).
                    self.job_flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWNET
            except OSError:
                self.job_flags = 0
            self.proc = bool(self.job_flags)
            if self.job_flags and not self._probe():
                self.proc = False
                if not self._probe():
                    self.job_flags = 0
        # The fallback as root drops to slot uids, which may not reach a toolchain under /root:
        # Python keeps a read capability and compilers stay uid 0 (owner access, no capability).
        self.keep_read = ROOT and not self.job_flags and not _reachable_by_others(self.read_paths)
        if not self.job_flags:
            self.landlock = _landlock_abi()
            if LINUX:
                try:
                    _prctl(PR_SET_CHILD_SUBREAPER, 1)
                    self.subreaper = True
                except OSError:
                    pass

    @property
    def private_view(self) -> bool:
        return bool(self.job_flags)

    def slot_netns(self, slot: int) -> int | None:
        """As root, the empty network namespace (loopback down) of one slot, made on first use
        (an ordinary user's jobs make their own: None). Programs
        of a slot run one after another and nothing of a program outlives it there; programs of
        different slots, which run at the same time, never share one (abstract unix sockets
        live in the network namespace)."""
        if not self.shared_template:
            return None
        if slot not in self.netns:
            fd = _empty_netns()
            if fd is None:
                raise OSError("cannot create a network namespace")
            self.netns[slot] = fd
        return self.netns[slot]

    def _probe(self) -> bool:
        """Contain a throwaway child exactly as a job is; True if every step worked."""
        netns = self.slot_netns(0)
        pid = os.fork()
        if pid == 0:
            try:
                os.setsid()
                _enter_namespaces(self, netns)
                _build_view(self, {"fsize_mb": 1}, self.uid_base if ROOT else self.uid, None)
                child = os.fork()
                if child == 0:
                    try:
                        _enter_view(self)
                        _drop_privileges(self.uid_base if ROOT else None)
                        os._exit(0 if os.getcwd() == BOX and not os.path.exists("/.old/proc") else 1)
                    except BaseException:
                        os._exit(1)
                os._exit(os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]))
            except BaseException:
                os._exit(1)
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0

    def names(self) -> list[str]:
        """Exactly the measures every program gets, in a fixed vocabulary (docs/sandbox.md)."""
        names = [
            "session",
            "rlimits",
            "clean-env",
            "no-new-privileges",
            "read-search-capability" if self.keep_read else "no-capabilities",
        ]
        if self.private_view:
            names += [
                "private-root",
                "scratch-tmpfs",
                "minimal-dev",
                "mountns",
                "pidns",
                "ipcns",
                "netns",
                "session-keyring",
                "nproc-limit",
            ]
            if not ROOT:
                names.append("userns")
            if self.proc:
                names.append("private-proc")
        else:
            if self.landlock:
                names.append(f"landlock-v{self.landlock}")
            if self.subreaper:
                names.append("subreaper-sweep")
            if ROOT:
                names.append("nproc-limit")
        if ROOT:
            names.append("uid-drop")
        if self.seccomp:
            names.append("no-keyrings")
        return sorted(names)


def _empty_netns() -> int | None:
    """An fd holding a fresh network namespace, made by a child that exits once we hold it."""
    ready_r, ready_w = os.pipe()  # child -> parent: the namespace exists
    done_r, done_w = os.pipe()  # parent -> child: opened, you may go
    pid = os.fork()
    if pid == 0:
        try:
            os.close(ready_r)
            os.close(done_w)
            _call("unshare", ctypes.c_int(CLONE_NEWNET))
            os.write(ready_w, b"1")
            os.read(done_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    try:
        return os.open(f"/proc/{pid}/ns/net", os.O_RDONLY) if os.read(ready_r, 1) == b"1" else None
    except OSError:
        return None
    finally:
        os.close(done_w)  # the child's read returns
        os.waitpid(pid, 0)
        for fd in (ready_r, done_r):
            os.close(fd)


def _enter_namespaces(iso: Isolation, netns: int | None) -> None:
    """In A: the slot's network namespace (as root), then the job's own namespaces."""
    if netns is not None:
        _call("setns", ctypes.c_int(netns), ctypes.c_int(CLONE_NEWNET))
    _call("unshare", ctypes.c_int(iso.job_flags))
    if iso.job_flags & CLONE_NEWUSER:
        _write_id_maps(iso.uid, iso.gid)


def _build_view(iso: Isolation, job: dict, uid: int, workdir_fd: int | None) -> int:
    """In A, after `_enter_namespaces`: the template (unless the zygote holds it) and the job's
    scratch. Returns the scratch's fd."""
    if not iso.shared_template:
        _build_template(iso.mountpoint, iso.read_paths)
    return _mount_scratch(iso, job, uid, workdir_fd)


# --- in the child -------------------------------------------------------------------------------


def _apply_rlimits(job: dict, iso: Isolation) -> None:
    mb = 1024 * 1024
    limits = {
        resource.RLIMIT_CPU: (job["cpu"], job["cpu"] + 1),
        resource.RLIMIT_FSIZE: (job["fsize_mb"] * mb,) * 2,
        resource.RLIMIT_NOFILE: (job["nofile"],) * 2,
        resource.RLIMIT_CORE: (0, 0),
    }
    if LINUX:  # macOS does not enforce RLIMIT_AS
        limits[resource.RLIMIT_AS] = (job["memory_mb"] * mb,) * 2
    # RLIMIT_NPROC counts the processes of a uid within a user namespace: only meaningful for our
    # own slot uid (root) or our own user namespace.
    if ROOT or iso.job_flags & CLONE_NEWUSER:
        limits[resource.RLIMIT_NPROC] = (job["nproc"],) * 2
    for which, (soft, hard) in limits.items():
        resource.setrlimit(which, (soft, hard))


def _become_program(job: dict, iso: Isolation, slot: int, outputs: list[int]) -> None:
    """In C: contain this process, then run the program. Never returns."""
    try:
        for fd, out in zip((1, 2, 3), outputs):
            os.dup2(out, fd, inheritable=True)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        uid = iso.uid_base + slot if ROOT else None
        if iso.keep_read and job.get("compiler"):
            uid = None  # the fallback as root: a toolchain under /root is reachable as its owner, with no capability
        if iso.private_view:
            _enter_view(iso)
        else:
            os.chdir(job["dir"])
            if uid is not None:  # the fallback's program works in the host directory: make it its own
                for name in [".", *os.listdir(".")]:
                    os.lchown(name, uid, uid)
        _drop_privileges(uid, keep_read=iso.keep_read and bool(job.get("python")))
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # a uid change clears it: die with A, still
        _apply_rlimits(job, iso)
        if iso.seccomp:
            _deny_keyrings()
        if iso.landlock:
            _landlock(iso.landlock, iso.read_paths, job["dir"])
        os.closerange(4, 65536)
        env = {**job["env"], "HOME": os.getcwd(), "TMPDIR": os.getcwd()}
        for name in [name for name in os.environ if name not in env]:
            del os.environ[name]
        for name, value in env.items():
            if os.environ.get(name) != value:
                os.environ[name] = value
        for signum in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT):  # Python's own choices, not the program's
            signal.signal(signum, signal.SIG_DFL)
    except BaseException as exc:  # containment failed: refuse to run the program at all
        os.write(2, f"rfai sandbox: cannot contain the program: {exc}\n".encode())
        os._exit(125)
    if job.get("argv"):
        try:
            os.execve(job["argv"][0], job["argv"], env)
        except OSError as exc:
            os.write(2, f"rfai sandbox: cannot execute {job['argv'][0]}: {exc.strerror}\n".encode())
            os._exit(127)
    _run_python(job["python"])


def _run_python(mode: str) -> None:
    """Hand over to the trusted harness, which reads the program from the box's files."""
    sys.stdin = open(0, "r", closefd=False)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    sys.argv = ["main.py"]
    sys.path = [p for p in sys.path if p] + [os.getcwd()]
    code = HARNESS.main(mode)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code & 0xFF)


def _encode(status: int) -> int:
    """Carry a wait status through an exit code: signals become 128 + signo, like a shell."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _run_job(job: dict, iso: Isolation, slot: int, netns: int | None, zygote: int) -> None:
    """A: new session and namespaces, the view, then fork C (PID 1 of its namespace), wait, and
    copy the outputs back. Never returns.

    The program itself is the namespace's init, so everything it leaves behind dies with it.
    (As init it ignores signals it sends itself without a handler; RLIMIT_CPU's final SIGKILL
    and our own kill still apply.)"""
    try:
        os.setsid()
        if LINUX:
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != zygote:
                os._exit(125)
        workdir = os.open(job["dir"], os.O_PATH | os.O_DIRECTORY)
        outputs = [
            os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600, dir_fd=workdir)
            for name in OUT_FILES
        ]
        if ROOT and slot >= UID_BLOCK:
            raise OSError(f"more than {UID_BLOCK} programs at once")
        uid = iso.uid_base + slot if ROOT else iso.uid
        box = None
        if iso.private_view:
            _enter_namespaces(iso, netns)
            box = _build_view(iso, job, uid, os.open(job["dir"], os.O_RDONLY | os.O_DIRECTORY))
        child = os.fork()
        if child == 0:
            if LINUX:
                _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            _become_program(job, iso, slot, outputs)
        status = os.waitpid(child, 0)[1]
        if box is not None and os.WIFEXITED(status):
            for name in job.get("outputs", []):
                _copy_file(box, name, workdir, -1)
        os._exit(_encode(status))
    except BaseException as exc:
        os.write(2, f"rfai sandbox: {exc}\n".encode())
        os._exit(125)


# --- the server loop ----------------------------------------------------------------------------


class Zygote:
    def __init__(self) -> None:
        self.iso = Isolation()
        self.pid = os.getpid()
        self.running: dict[int, dict] = {}  # A's pid -> job, start, deadline, slot, timed_out
        self.buffer = bytearray()
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.selector.register(0, selectors.EVENT_READ, "jobs")
        self.selector.register(self.wake_r, selectors.EVENT_READ, "wake")

    def reply(self, message: dict) -> None:
        os.write(1, (json.dumps(message) + "\n").encode())

    def start(self, job: dict) -> None:
        slots = {entry["slot"] for entry in self.running.values()}
        slot = next(i for i in range(len(slots) + 1) if i not in slots)
        netns = self.iso.slot_netns(slot) if self.iso.private_view else None
        pid = os.fork()
        if pid == 0:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            _run_job(job, self.iso, slot, netns, self.pid)
        now = time.monotonic()
        self.running[pid] = {
            "job": job,
            "start": now,
            "deadline": now + job["timeout"],
            "slot": slot,
            "timed_out": False,
        }

    def reap(self) -> None:
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            entry = self.running.pop(pid, None)
            if entry is None:
                continue  # a reparented orphan, already killed by the sweep
            self.kill_group(pid)
            code = _encode(status) if not os.WIFEXITED(status) else os.WEXITSTATUS(status)
            result = {
                "id": entry["job"]["id"],
                "wall": time.monotonic() - entry["start"],
                "cpu": usage.ru_utime + usage.ru_stime,
                "timed_out": entry["timed_out"],
            }
            if code > 128 and code - 128 < 65:
                result.update(status="signal", signal=code - 128, code=None)
            else:
                result.update(status="exit", code=code, signal=None)
            if self.iso.subreaper:
                self.sweep()
            self.reply(result)

    def kill_group(self, pid: int) -> None:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def sweep(self) -> None:
        """Kill orphans reparented to us (daemons that left their session): they belong to no job."""
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) in self.running:
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as handle:
                    fields = handle.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.pid:
                try:
                    os.kill(int(name), signal.SIGKILL)
                except OSError:
                    pass

    def expire(self) -> None:
        now = time.monotonic()
        for pid, entry in self.running.items():
            if not entry["timed_out"] and now >= entry["deadline"]:
                entry["timed_out"] = True
                self.kill_group(pid)

    def read_jobs(self) -> bool:
        chunk = os.read(0, 1 << 20)
        if not chunk:
            return False
        self.buffer += chunk
        while b"\n" in self.buffer:
            line, _, rest = bytes(self.buffer).partition(b"\n")
            self.buffer[:] = rest
            if line.strip():
                self.start(json.loads(line))
        return True

    def serve(self) -> None:
        self.reply({"hello": {"isolation": self.iso.names(), "pid": self.pid, "root": ROOT}})
        while True:
            deadlines = [e["deadline"] for e in self.running.values() if not e["timed_out"]]
            timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            for key, _ in self.selector.select(timeout):
                if key.data == "wake":
                    os.read(self.wake_r, 4096)
                elif not self.read_jobs():
                    return
            self.reap()
            self.expire()


def _load(name: str, filename: str) -> types.ModuleType:
    """A module of rfai's read by path (this process imports nothing of rfai's by name)."""
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), filename)) as handle:
        code = compile(handle.read(), filename, "exec")
    module = sys.modules[name] = types.ModuleType(name)
    exec(code, module.__dict__)
    return module


def main() -> None:
    global HARNESS
    # Started with -S (no site: faster); the client names the site-packages programs may import from.
    sys.path += [p for p in os.environ.pop("RFAI_SANDBOX_PATH", "").split(os.pathsep) if p]
    # Loaded here, once: a program's process then only runs them (setting them up in every
    # child cost a thousand copied pages a process). The harness encodes values with `wire.py`.
    _load("rfai_wire", "wire.py")
    HARNESS = _load("rfai_harness", "_pyharness.py")
    # No parent-death signal here: it would follow the *thread* that started us. rfai's death
    # closes our stdin instead, and we exit; our children carry a parent-death signal.
    zygote = Zygote()
    gc.freeze()  # forked programs then never touch (copy) the pages of these objects
    zygote.serve()


HARNESS = None
if __name__ == "__main__":
    main()
