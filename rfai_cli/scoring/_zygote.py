"""The sandbox's pre-started interpreter: forks one contained process per program.

`rfai_cli.scoring.sandbox` starts this file as `python -I -S _zygote.py` with an empty environment.
It imports what test programs commonly need once, then reads jobs (one JSON object per line)
on stdin and answers each with one JSON line on stdout. Python programs run in a fork of this
interpreter (no interpreter start-up per program); compilers and compiled programs are exec'd.

Each job runs as a chain  zygote -> A -> C:
  A  starts a new session (so one killpg reaches the whole tree) and, where the OS permits,
     enters a new PID namespace and an empty network namespace (plus a user namespace when
     not root), then waits for C;
  C  is PID 1 of that namespace, so when it ends the kernel kills every process it left,
     daemons included. It drops to a per-slot unprivileged uid (when root; compilers
     excepted), applies rlimits and Landlock (writes only inside its directory, reads only
     system/toolchain paths and the sandbox root, no TCP, no signals out), then runs the
     program with stdout/stderr going to files bounded by RLIMIT_FSIZE.
The zygote enforces the wall-clock timeout by killing A's process group, and (without PID
namespaces) kills any orphan that gets reparented to it, as it is a child subreaper.

Stdlib only, and no rfai imports: this runs before anything else and in every child.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import resource
import selectors
import signal
import struct
import sys
import time

# Imported here so a forked program finds them in sys.modules instead of loading them.
import array, bisect, collections, copy, dataclasses, datetime, decimal, enum, fractions  # noqa: E401,F401
import functools, hashlib, heapq, itertools, math, operator, random, re, statistics  # noqa: E401,F401
import string, textwrap, traceback, typing, unicodedata  # noqa: E401,F401

LINUX = sys.platform.startswith("linux")
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
UID_BASE = 61000  # per-slot sandbox uids when running as root: uid 61000 + slot
OUT_FILES = (".stdout", ".stderr")

CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
PR_SET_PDEATHSIG, PR_SET_KEEPCAPS, PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER = 1, 8, 38, 36
CAP_DAC_READ_SEARCH = 2
SYS_LANDLOCK = (444, 445, 446)  # create_ruleset, add_rule, restrict_self (same number on every arch)

# Landlock access rights (linux/landlock.h).
LL_EXECUTE, LL_WRITE_FILE, LL_READ_FILE, LL_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
LL_WRITE_TREE = sum(1 << bit for bit in range(4, 13))  # remove/make dir, file, char, sock, fifo, block, symlink
LL_REFER, LL_TRUNCATE = 1 << 13, 1 << 14
LL_READ = LL_EXECUTE | LL_READ_FILE | LL_READ_DIR
LL_FILE_ONLY = LL_EXECUTE | LL_WRITE_FILE | LL_READ_FILE | LL_TRUNCATE

_libc = ctypes.CDLL(None, use_errno=True) if LINUX else None
if _libc is not None:  # resolve once here, not in every forked child
    for _name in ("syscall", "prctl", "capset", "unshare", "setns"):
        getattr(_libc, _name)
    _libc.syscall.restype = ctypes.c_long


def _call(name: str, *args: int | bytes | ctypes.Array) -> int:
    result = getattr(_libc, name)(*args)
    if result == -1:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{name}: {os.strerror(errno)}")
    return result


def _syscall(number: int, *args) -> int:
    return _call("syscall", ctypes.c_long(number), *args)


def _prctl(option: int, arg: int = 0, arg3: int = 0) -> None:
    _call("prctl", ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(arg3), ctypes.c_ulong(0), ctypes.c_ulong(0))


def _landlock_abi() -> int:
    if not LINUX:
        return 0
    try:
        return _syscall(SYS_LANDLOCK[0], None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    except OSError:
        return 0


def _write_id_maps() -> None:
    """Map our own uid/gid into a fresh user namespace (what `unshare -r` does, minus root)."""
    uid, gid = os.getuid(), os.getgid()
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as handle:
            handle.write(text)


def _probe_namespaces() -> int:
    """The namespace flags a child may unshare here (0 when none), tried in a throwaway child."""
    if not LINUX or os.environ.get("RFAI_SANDBOX_NAMESPACES") == "0":
        return 0
    wanted = CLONE_NEWPID | CLONE_NEWNET | (0 if ROOT else CLONE_NEWUSER)
    for flags in (wanted, wanted & ~CLONE_NEWNET):
        pid = os.fork()
        if pid == 0:
            try:
                _call("unshare", ctypes.c_int(flags))
                if flags & CLONE_NEWUSER:
                    _write_id_maps()
                os._exit(0)
            except BaseException:
                os._exit(1)
        if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0:
            return flags
    return 0


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
    finally:
        os.close(done_w)  # the child's read returns
        os.waitpid(pid, 0)
        for fd in (ready_r, done_r):
            os.close(fd)


def _toolchain_readable_paths() -> list[str]:
    """Where programs and compilers may read: system dirs, this Python, and the compilers' roots."""
    paths = ["/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/opt", "/dev", "/proc", "/sys/devices/system/cpu",
             "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/localtime",
             sys.prefix, sys.base_prefix, os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))]
    paths += [p for p in sys.path if p and os.path.isabs(p)]
    paths += [p for p in os.environ.get("RFAI_SANDBOX_READ", "").split(os.pathsep) if p]
    return sorted({p for p in paths if os.path.exists(p)})


class Isolation:
    """What this OS lets us apply, decided once at start-up and reported to the client."""

    def __init__(self) -> None:
        self.ns_flags = _probe_namespaces()
        self.shared_netns = None
        if ROOT and self.ns_flags & CLONE_NEWNET:
            # One empty network namespace (loopback down) joined by every program: as isolated
            # as one each, without creating and tearing down a namespace per program.
            self.shared_netns = _empty_netns()
            if self.shared_netns is not None:
                self.ns_flags &= ~CLONE_NEWNET
        self.landlock = _landlock_abi()
        self.subreaper = False
        if LINUX:
            try:
                _prctl(PR_SET_CHILD_SUBREAPER, 1)
                self.subreaper = True
            except OSError:
                pass
        self.read_paths = _toolchain_readable_paths()
        self.landlock_base = _landlock_base(self.landlock, self.read_paths) if self.landlock else None

    def names(self) -> list[str]:
        names = ["session", "rlimits", "clean-env", "tmpdir"]
        if self.ns_flags & CLONE_NEWUSER:
            names.append("userns")
        if self.ns_flags & CLONE_NEWPID:
            names.append("pidns")
        if self.ns_flags & CLONE_NEWNET or self.shared_netns is not None:
            names.append("netns")
        if ROOT:
            names.append("uid-drop")
        if self.landlock:
            names.append(f"landlock-v{self.landlock}")
        if self.subreaper:
            names.append("subreaper-sweep")
        return names


# --- in the child -------------------------------------------------------------------------

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
    # RLIMIT_NPROC counts every process of the uid: only meaningful for our own slot uid or user namespace.
    if job.get("nproc") and (ROOT or iso.ns_flags & CLONE_NEWUSER):
        limits[resource.RLIMIT_NPROC] = (job["nproc"],) * 2
    for which, (soft, hard) in limits.items():
        resource.setrlimit(which, (soft, hard))


def _drop_privileges(uid: int, keep_read: bool) -> None:
    """Become `uid`. With `keep_read`, keep CAP_DAC_READ_SEARCH in the effective set (lost on exec)
    so a forked Python can still import its stdlib when that is installed under /root; Landlock
    still limits what may be read."""
    if keep_read:
        _prctl(PR_SET_KEEPCAPS, 1)
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    if keep_read:
        header = struct.pack("Ii", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
        bit = 1 << CAP_DAC_READ_SEARCH
        data = struct.pack("6I", bit, bit, 0, 0, 0, 0)  # effective, permitted, inheritable (x2 words)
        _call("capset", ctypes.create_string_buffer(header), ctypes.create_string_buffer(data))


def _landlock_ruleset(handled_fs: int, handled_net: int, scoped: int, abi: int) -> int:
    attr = struct.pack("QQQ", handled_fs, handled_net, scoped)[: 24 if abi >= 6 else 16 if abi >= 4 else 8]
    return _syscall(SYS_LANDLOCK[0], ctypes.create_string_buffer(attr, len(attr)), ctypes.c_size_t(len(attr)),
                    ctypes.c_uint32(0))


def _landlock_allow(ruleset: int, handled_fs: int, path: str, access: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return
    try:
        if not os.path.isdir(path):
            access &= LL_FILE_ONLY
        rule = struct.pack("=Qi", access & handled_fs, fd)
        _syscall(SYS_LANDLOCK[1], ctypes.c_int(ruleset), ctypes.c_int(1), ctypes.create_string_buffer(rule, len(rule)),
                 ctypes.c_uint32(0))
    finally:
        os.close(fd)


def _landlock_write_bits(abi: int) -> int:
    return LL_WRITE_FILE | LL_WRITE_TREE | (LL_REFER if abi >= 2 else 0) | (LL_TRUNCATE if abi >= 3 else 0)


def _landlock_base(abi: int, read_paths: list[str]) -> int:
    """Built once in the zygote, never changed after: reads only beneath `read_paths`, no TCP,
    no signals or abstract sockets outside the domain. Each child adds its own write layer."""
    ruleset = _landlock_ruleset(LL_READ, 0b11 if abi >= 4 else 0, 0b11 if abi >= 6 else 0, abi)
    for path in read_paths:
        _landlock_allow(ruleset, LL_READ, path, LL_READ)
    return ruleset


def _landlock(abi: int, base: int, workdir: str) -> None:
    """Enforce the shared base layer, then a layer of our own: writes only beneath `workdir`."""
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    _syscall(SYS_LANDLOCK[2], ctypes.c_int(base), ctypes.c_uint32(0))
    write = _landlock_write_bits(abi)
    ruleset = _landlock_ruleset(write, 0, 0, abi)
    _landlock_allow(ruleset, write, workdir, write)
    _landlock_allow(ruleset, write, "/dev/null", write)
    _syscall(SYS_LANDLOCK[2], ctypes.c_int(ruleset), ctypes.c_uint32(0))
    os.close(ruleset)


def _become_program(job: dict, iso: Isolation, slot: int) -> None:
    """In C: contain this process, then run the program. Never returns."""
    try:
        workdir = job["dir"]
        os.chdir(workdir)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, name in zip((1, 2), OUT_FILES):
            out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(out, fd)
        if ROOT and not job.get("tool"):  # compilers run as the user (their toolchain may be private)
            uid = UID_BASE + slot
            for root, dirs, files in os.walk(workdir) if job.get("argv") else [(workdir, [], list(OUT_FILES))]:
                for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                    os.lchown(name, uid, uid)
            _drop_privileges(uid, keep_read=job.get("python") is not None)
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # a uid change clears it: die with A, still
        _apply_rlimits(job, iso)
        if iso.landlock:
            _landlock(iso.landlock, iso.landlock_base, workdir)
        os.closerange(3, 65536)
        env = job["env"]
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
            os.execve(job["argv"][0], job["argv"], job["env"])
        except OSError as exc:
            os.write(2, f"rfai sandbox: cannot execute {job['argv'][0]}: {exc.strerror}\n".encode())
            os._exit(127)
    _exec_python(job["python"])


def _exec_python(source: str) -> None:
    sys.stdin = open(0, "r", closefd=False)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    sys.argv = ["main.py"]
    sys.path = [p for p in sys.path if p] + [os.getcwd()]
    code = 0
    try:
        exec(compile(source, "main.py", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
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


def _run_job(job: dict, iso: Isolation, slot: int, zygote: int) -> None:
    """A: new session and namespaces, then fork C (PID 1 of its namespace) and wait. Never returns.

    The program itself is the namespace's init, so everything it leaves behind dies with it.
    (As init it ignores signals it sends itself without a handler; RLIMIT_CPU's final SIGKILL
    and our own kill still apply.)"""
    try:
        os.setsid()
        if LINUX:
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != zygote:
                os._exit(125)
        if iso.shared_netns is not None:
            _call("setns", ctypes.c_int(iso.shared_netns), ctypes.c_int(CLONE_NEWNET))
        if iso.ns_flags:
            _call("unshare", ctypes.c_int(iso.ns_flags))
            if iso.ns_flags & CLONE_NEWUSER:
                _write_id_maps()
        child = os.fork()
        if child == 0:
            if LINUX:
                _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            _become_program(job, iso, slot)
        os._exit(_encode(os.waitpid(child, 0)[1]))
    except BaseException as exc:
        os.write(2, f"rfai sandbox: {exc}\n".encode())
        os._exit(125)


# --- the server loop ----------------------------------------------------------------------

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
        pid = os.fork()
        if pid == 0:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            self.buffer[:] = b""  # other jobs' sources must not be readable by this one
            _run_job(job, self.iso, slot, self.pid)
        now = time.monotonic()
        self.running[pid] = {"job": job, "start": now, "deadline": now + job["timeout"], "slot": slot,
                             "timed_out": False}

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
            result = {"id": entry["job"]["id"], "wall": time.monotonic() - entry["start"],
                      "cpu": usage.ru_utime + usage.ru_stime, "timed_out": entry["timed_out"]}
            if code > 128 and code - 128 < 65:
                result.update(status="signal", signal=code - 128, code=None)
            else:
                result.update(status="exit", code=code, signal=None)
            if self.iso.subreaper and not self.iso.ns_flags & CLONE_NEWPID:
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


def main() -> None:
    # Started with -S (no site: faster); the client names the site-packages programs may import from.
    sys.path += [p for p in os.environ.pop("RFAI_SANDBOX_PATH", "").split(os.pathsep) if p]
    # No parent-death signal here: it would follow the *thread* that started us. rfai's death
    # closes our stdin instead, and we exit; our children carry a parent-death signal.
    zygote = Zygote()
    gc.freeze()  # forked programs then never touch (copy) the pages of these objects
    zygote.serve()


if __name__ == "__main__":
    main()
