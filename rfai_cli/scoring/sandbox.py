"""Run untrusted programs: a client for the pre-started zygote (`_zygote.py`), thread-safe.

One `Sandbox` serves any number of threads; each `run` blocks its caller until the program
ends, while the zygote runs all submitted programs in parallel. The caller writes a program's
files into `directory()`; they are copied into the program's own view, and the files it names
as `outputs` are copied back. Its stdout, stderr and results channel (fd 3) land in that
directory as `.stdout`, `.stderr` and `.rfai-results`. See `_zygote.py` for what contains each
program; `Sandbox.isolation` says which of those measures this OS allowed, and `weak_isolation`
says, in one line, what is missing when the kernel refused the private view.
"""

from __future__ import annotations

import itertools
import json
import os
import select
import shutil
import site
import stat
import subprocess
import sys
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

ZYGOTE = Path(__file__).with_name("_zygote.py")
OUTPUT_LIMIT = 64 * 1024  # bytes of stdout/stderr kept per program
RESULTS = ".rfai-results"  # what a program's fd 3 writes to


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the program): the zygote died or could not start."""


@dataclass(frozen=True)
class Limits:
    """Per-program resource bounds."""

    timeout: float = 10.0  # wall-clock seconds, then the whole process tree is killed
    cpu: int = 10  # CPU seconds (RLIMIT_CPU)
    memory_mb: int = 1024  # address space (RLIMIT_AS; not enforced on macOS)
    fsize_mb: int = 16  # largest file the program may write, stdout/stderr included
    nofile: int = 64  # open files
    nproc: int = 32  # processes and threads of the sandbox uid


@dataclass(frozen=True)
class RunResult:
    """How a program ended. `status`: ok, exit (non-zero), signal, timeout, or sandbox."""

    status: str
    exit_code: int | None
    signal: int | None
    wall: float
    cpu: float
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def describe(self) -> str:
        """One short line saying why the program did not succeed."""
        if self.status == "timeout":
            return f"timed out after {self.wall:.1f}s"
        if self.status == "signal":
            names = {
                9: "killed (memory, CPU or process limit)",
                24: "CPU time limit",
                25: "output/file size limit",
                11: "segmentation fault",
                6: "aborted",
            }
            return names.get(self.signal or 0, f"killed by signal {self.signal}")
        if self.status == "sandbox":
            return "sandbox error: " + last_line(self.stderr)
        if self.status == "exit":
            return f"exit code {self.exit_code}: {last_line(self.stderr)}"
        return "ok"


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def read_bounded(path: Path, limit: int = OUTPUT_LIMIT) -> str:
    """Read at most `limit` bytes of a file the program could have tampered with: never follow a
    symlink out of the box, never block on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return os.read(fd, limit).decode("utf-8", "replace")
    finally:
        os.close(fd)


# The whole environment a program sees, built from scratch (HOME and TMPDIR are its own
# directory, set where it runs): nothing of the parent's.
PROGRAM_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
}


def _memory_scratch() -> str | None:
    """/dev/shm when it is a writable tmpfs, else the temp directory. Each program creates and
    deletes a handful of files; on ext4 that inode churn cost a tenth of the scoring CPU."""
    shm = "/dev/shm"
    if os.environ.get("TMPDIR") or not os.path.isdir(shm) or not os.access(shm, os.W_OK | os.X_OK):
        return None  # a temp directory the user chose wins
    return shm


class Sandbox:
    """Starts the zygote on first use; `close` (or the end of the parent) stops it and its children."""

    def __init__(self, read_paths: list[str] | None = None, namespaces: bool = True):
        """`read_paths`: extra directories programs may read (compiler toolchains). `namespaces=False`
        forces the fallback used where the OS refuses namespaces (tests use it to check that path)."""
        self._read_paths = read_paths or []
        self._namespaces = namespaces
        # Every program's host directory lives under this root; `mnt` is where each program's
        # private view is mounted (in its own mount namespace, so they never meet).
        self._root = Path(tempfile.mkdtemp(prefix="rfai-sandbox-", dir=_memory_scratch()))
        self._root.chmod(0o711)  # the fallback's slot uids must reach their own directory
        (self._root / "mnt").mkdir()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._pending: dict[int, tuple[threading.Event, list]] = {}
        self._ids = itertools.count()
        self._isolation: list[str] = []

    @property
    def isolation(self) -> list[str]:
        """The containment measures applied to every program (e.g. pidns, netns, landlock-v7)."""
        self._ensure_started()
        return list(self._isolation)

    @property
    def weak_isolation(self) -> str | None:
        """None with the private view; else one line saying what programs can still reach."""
        if "private-root" in self.isolation:
            return None
        return (
            "the kernel refused namespaces, so generated programs run without a private filesystem view "
            f"(only {', '.join(self._isolation)}): they can read whatever this user can read outside the "
            "Landlock rules, and processes may outlive a kill; see docs/sandbox.md"
        )

    @property
    def server_pid(self) -> int:
        """The zygote's pid (it is started if it was not)."""
        return self._ensure_started().pid

    def _ensure_started(self) -> subprocess.Popen:
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                return self._proc
            env = {
                "PATH": "/usr/bin:/bin",
                "LANG": "C.UTF-8",
                "PYTHONHASHSEED": "0",
                "PYTHONDONTWRITEBYTECODE": "1",
                "RFAI_SANDBOX_READ": os.pathsep.join(self._read_paths),
                "RFAI_SANDBOX_MOUNT": str(self._root / "mnt"),
                "RFAI_SANDBOX_NAMESPACES": "1" if self._namespaces else "0",
                "RFAI_SANDBOX_PATH": os.pathsep.join(site.getsitepackages()),
            }
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", str(ZYGOTE)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
                cwd="/",
                close_fds=True,
                # Out of the terminal's process group: a Ctrl-C meant for rfai (which finishes its
                # step) would kill the server and the program it runs. rfai's exit closes our stdin.
                process_group=0,
            )
            started, _, _ = select.select([proc.stdout], [], [], 60)
            hello = proc.stdout.readline() if started else b""
            try:
                self._isolation = json.loads(hello)["hello"]["isolation"]
            except (ValueError, KeyError, TypeError):
                proc.kill()
                raise SandboxError("the sandbox process did not start") from None
            self._proc = proc
            threading.Thread(target=self._read_results, args=(proc,), daemon=True).start()
            return proc

    def _read_results(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            message = json.loads(line)
            with self._lock:
                waiter = self._pending.pop(message["id"], None)
            if waiter:
                waiter[1].append(message)
                waiter[0].set()
        with self._lock:  # the zygote is gone: nobody will answer the jobs still waiting
            pending, self._pending = self._pending, {}
        for event, _ in pending.values():
            event.set()

    @contextmanager
    def directory(self) -> Iterator[Path]:
        """A fresh empty directory for one program (and its compile step), removed afterwards."""
        path = Path(tempfile.mkdtemp(prefix="box-", dir=self._root))
        try:
            yield path
        finally:
            _remove_tree(path)

    def run(
        self,
        workdir: Path,
        limits: Limits,
        *,
        argv: list[str] | None = None,
        python: str | None = None,
        outputs: tuple[str, ...] = (),
        compiler: bool = False,
    ) -> RunResult:
        """Run `argv` (exec'd; a relative path is the program's own file) or the Python harness in
        mode `python` ("tests" or "load", see `_pyharness.py`) on the files in `workdir`.
        Compilers run like any program, with the same walls; `compiler` only matters in the
        fallback as root, where a toolchain under /root needs a read capability (see _zygote)."""
        job = {
            "dir": str(workdir),
            "argv": argv,
            "python": python,
            "env": PROGRAM_ENV,
            "outputs": list(outputs),
            "compiler": compiler,
            "timeout": limits.timeout,
            "cpu": limits.cpu,
            "memory_mb": limits.memory_mb,
            "fsize_mb": limits.fsize_mb,
            "nofile": limits.nofile,
            "nproc": limits.nproc,
        }
        proc = self._ensure_started()
        event, box = threading.Event(), []
        with self._lock:
            job["id"] = next(self._ids)
            self._pending[job["id"]] = (event, box)
            try:
                proc.stdin.write((json.dumps(job) + "\n").encode())
                proc.stdin.flush()
            except (BrokenPipeError, OSError):
                self._pending.pop(job["id"], None)
                raise SandboxError("the sandbox process is gone") from None
        event.wait()
        if not box:
            raise SandboxError("the sandbox process died while running a program")
        return _result(box[0], workdir)

    def close(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None:
            proc.stdin.close()  # the zygote exits; its children die with it (parent-death signal)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _remove_tree(self._root)

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _result(message: dict, workdir: Path) -> RunResult:
    stdout = read_bounded(workdir / ".stdout")
    stderr = read_bounded(workdir / ".stderr")
    if message["timed_out"]:
        status = "timeout"
    elif message["status"] == "signal":
        status = "signal"
    elif message["code"] == 0:
        status = "ok"
    elif message["code"] == 125 and stderr.startswith("rfai sandbox:"):
        status = "sandbox"
    else:
        status = "exit"
    return RunResult(status, message["code"], message["signal"], message["wall"], message["cpu"], stdout, stderr)


def _remove_tree(path: Path) -> None:
    """Remove a program's directory whatever it left there (directories without permissions
    included); never raises, since a clean-up failure must not cost the run."""
    try:
        shutil.rmtree(path)
        return
    except FileNotFoundError:
        return
    except OSError:
        pass
    for parent, dirs, _ in os.walk(path):  # top-down: each directory is opened up before it is entered
        for name in dirs:
            try:
                os.chmod(os.path.join(parent, name), 0o700, follow_symlinks=False)
            except (OSError, NotImplementedError):
                pass
    shutil.rmtree(path, ignore_errors=True)
