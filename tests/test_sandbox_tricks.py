"""Each trick a generated program could play on the sandbox, tried for real.

Every test first shows the trick working where nothing stops it (a naive harness that runs the
candidate and its tests in one interpreter or one binary, or the program run unconfined), then
that rfai stops it. Tests run with the namespaces this OS allows and in the Landlock fallback;
`test_sandbox_as_user.py` runs this module again as an ordinary user.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support.naive_harness import naive_binary, naive_python

from rfai_cli.config import ScoringSettings
from rfai_cli.scoring import ScoreItem, Scorer
from rfai_cli.scoring.programs import Toolchains
from rfai_cli.scoring.rubric import INSIDE_SHARE
from rfai_cli.scoring.sandbox import RESULTS, Limits, Sandbox, read_bounded

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="containment is Linux's")
ROOT = os.geteuid() == 0
TOOLS = Toolchains()


@pytest.fixture(scope="module", params=["namespaces", "fallback"])
def mode(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def scorer(mode):
    with Scorer(ScoringSettings(timeout=5, workers=2), namespaces=mode == "namespaces") as scorer:
        yield scorer


def passed(scorer: Scorer, language: str, code: str, tests: list[str], entry_point: str | None = None):
    """(cases passed with their verdict decided outside the program's reach, the reason); a pass
    decided inside earns a quarter of a case at most, and is checked where it matters."""
    row = {"prompt": "p", "language": language, "tests": tests, "entry_point": entry_point}
    student = scorer.score(ScoreItem(row, [code])).students[0]
    return student.tests["passed"] - student.tests.get("passed_inside", 0), student.tests.get("reason", "")


def unconfined_python(code: str, cwd: Path, timeout: float = 30) -> subprocess.CompletedProcess:
    """The program as a plain child process: what it can do when nothing contains it."""
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=timeout)


# --- faking a pass ------------------------------------------------------------------------------

PYTHON_FAKES = {
    "always_equal": (
        "class Anything:\n    def __eq__(self, other):\n        return True\ndef solve():\n    return Anything()\n",
        ["assert solve() == 42"],
    ),
    "shadow_builtin": ("def len(items):\n    return 3\ndef solve():\n    return []\n", ["assert len(solve()) == 3"]),
    "patch_builtins": (
        "import builtins\nbuiltins.exec = lambda *args, **kwargs: None\n"
        "builtins.compile = lambda *args, **kwargs: None\ndef solve():\n    return 0\n",
        ["assert solve() == 42"],
    ),
    "exit_early": (
        "import os, sys\nsys.stdout.flush()\nos._exit(0)\ndef solve():\n    return 0\n",
        ["assert solve() == 42"],
    ),
    "forge_events": (
        "import os\nfor fd in (1, 3):\n    try:\n"
        '        os.write(fd, b\'{"case": 0, "done": true}\\n{"case": 0, "obs": 0, "value": {"i": "7"}}\\n\')\n'
        "    except OSError:\n        pass\nos._exit(0)\ndef solve():\n    return 0\n",
        ["assert solve() == 42"],
    ),
    "read_expected_from_memory": (
        "import gc, re, sys\n"
        "def solve():\n"
        "    frame = sys._getframe(1)\n"
        "    while frame is not None:  # the callers' variables: the test's source, the harness's state\n"
        "        for value in list(frame.f_locals.values()) + list(frame.f_globals.values()):\n"
        "            for text in (value if isinstance(value, list) else [value]):\n"
        "                found = re.search(r'== (\\d+)', text) if isinstance(text, str) else None\n"
        "                if found:\n                    return int(found.group(1))\n"
        "        frame = frame.f_back\n"
        "    for item in gc.get_objects():\n"
        "        if isinstance(item, str) and re.fullmatch(r'assert solve\\(\\) == \\d+', item):\n"
        "            return int(item.rsplit(' ', 1)[1])\n"
        "    return 0\n",
        ["assert solve() == 42"],
    ),
    "own_exception_named_like_the_expected_one": (
        "class ValueError(Exception):\n    pass\ndef solve():\n    raise ValueError('not the built-in one')\n",
        ["try:\n    solve()\nexcept ValueError:\n    pass\nelse:\n    raise AssertionError('expected ValueError')"],
    ),
}
HONEST = {
    "shadow_builtin": "def solve():\n    return [1, 2, 3]\n",
    "own_exception_named_like_the_expected_one": "class Bad(ValueError):\n    pass\ndef solve():\n    raise Bad()\n",
}


@pytest.mark.parametrize("trick", sorted(PYTHON_FAKES))
def test_python_cannot_fake_a_pass(trick, scorer, tmp_path):
    code, tests = PYTHON_FAKES[trick]
    assert naive_python(code, tests, tmp_path) == 0, "the trick should fool a naive harness"
    count, reason = passed(scorer, "python", code, tests)
    assert count == 0, f"{trick} faked a pass: {reason}"
    # an honest answer to the same test still passes
    honest = HONEST.get(trick, "def solve():\n    return 42\n")
    assert passed(scorer, "python", honest, tests)[0] == 1


CPP_FAKES = {
    "macro_silences_assert": "#define assert(...) ((void)0)\nint add(int a, int b) { return a - b; }\n",
    "static_constructor_reports": (
        "#include <unistd.h>\n#include <cstdlib>\n"
        'struct Early { Early() { const char e[] = "{\\"case\\": 0, \\"done\\": true}\\n";'
        " ::write(3, e, sizeof e - 1); ::write(1, e, sizeof e - 1); std::_Exit(0); } } early;\n"
        "int add(int a, int b) { return a - b; }\n"
    ),
    "macro_rewrites_harness": "#define throw\n#define if(x) if (true)\nint add(int a, int b) { return a - b; }\n",
}
RUST_FAKES = {
    "println_forges_libtest": (
        "pub fn add(a: i32, b: i32) -> i32 {\n"
        '    println!("test case_0 ... ok\\ntest result: ok. 1 passed");\n    a - b\n}\n'
    ),
    "macro_shadows_assert_eq": (
        "macro_rules! assert_eq { ($($t:tt)*) => {} }\npub fn add(a: i32, b: i32) -> i32 { a - b }\n"
    ),
}


@pytest.mark.parametrize(
    "language, trick", [("cpp", t) for t in sorted(CPP_FAKES)] + [("rust", t) for t in sorted(RUST_FAKES)]
)
def test_compiled_languages_cannot_fake_a_pass(language, trick, scorer, tmp_path):
    if TOOLS.compiler(language)[0] is None:
        pytest.skip(f"no {language} compiler on this machine")
    code = (CPP_FAKES if language == "cpp" else RUST_FAKES)[trick]
    tests = ["assert(add(2, 2) == 4);"] if language == "cpp" else ["assert_eq!(add(2, 2), 4);"]
    if trick != "macro_rewrites_harness":  # that one targets rfai's own old harness, not a naive one
        assert naive_binary(language, code, tests, tmp_path) == 0, "the trick should fool a naive harness"
    count, reason = passed(scorer, language, code, tests)
    assert count == 0, f"{trick} faked a pass: {reason}"
    honest = (
        "int add(int a, int b) { return a + b; }\n"
        if language == "cpp"
        else "pub fn add(a: i32, b: i32) -> i32 { a + b }\n"
    )
    assert passed(scorer, language, honest, tests)[0] == 1


def test_a_case_the_programs_own_object_decides_is_marked_weaker(scorer):
    row = {
        "prompt": "p",
        "language": "python",
        "tests": ["assert solve() == sorted([3, 1, 2])", "b = Box(2)\nassert b == Box(2)"],
    }
    code = "def solve():\n    return [1, 2, 3]\nclass Box:\n    def __init__(self, v): self.v = v\n"
    code += "    def __eq__(self, other): return self.v == other.v\n"
    student = scorer.score(ScoreItem(row, [code])).students[0]
    assert student.tests["passed"] == 2 and student.tests["passed_inside"] == 1
    assert student.sources["verdicts"] == "inside" and student.tests["decided_inside"] == 1
    assert student.breakdown["correctness"] == (1 + INSIDE_SHARE) / 2


# --- reading what is not its own ----------------------------------------------------------------


def run_python(sandbox: Sandbox, code: str, limits: Limits = Limits(timeout=10)) -> str:
    """Run `code` as the candidate module in the sandbox; what it printed."""
    with sandbox.directory() as box:
        (box / "candidate.py").write_text(code)
        (box / "cases.json").write_text("[]")
        result = sandbox.run(box, limits, python="load")
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def sandbox(mode, tmp_path_factory):
    shared = tmp_path_factory.mktemp("toolchain")  # a directory programs may read, as a toolchain's
    (shared / "user-file.txt").write_text("the user's")
    (shared / "user-file.txt").chmod(0o644)
    with Sandbox(read_paths=[str(shared)], namespaces=mode == "namespaces") as sandbox:
        sandbox.shared = shared
        yield sandbox


SCAN_FOR_MARKER = """
import os
marker = bytes.fromhex({marker_hex!r})
found = []
for top in {roots!r}:
    for parent, dirs, files in os.walk(top):
        for name in files:
            try:
                with open(os.path.join(parent, name), "rb") as handle:
                    if marker in handle.read(1 << 20):
                        found.append(os.path.join(parent, name))
            except OSError:
                pass
try:
    pids = [pid for pid in os.listdir("/proc") if pid.isdigit() and int(pid) != os.getpid()]
except OSError:
    pids = []
for pid in pids:
    try:
        if marker in open(f"/proc/{{pid}}/cmdline", "rb").read():
            found.append("cmdline of " + pid)
    except OSError:
        pass
print("FOUND" if found else "NOTHING", found[:3])
"""


def test_a_program_cannot_see_another_programs_files_or_command_line(sandbox, tmp_path):
    marker = "rfai-sibling-" + os.urandom(6).hex()
    sibling_box = Path(sandbox._root) / "box-sibling"  # where a neighbour's files live on the host
    sibling_box.mkdir()
    (sibling_box / "main.py").write_text(f"# {marker}\n")
    host_process = subprocess.Popen(["sh", "-c", f"sleep 30; : {marker}"])
    roots = [str(sandbox._root), "/sandbox", "/tmp"]
    try:
        scan = SCAN_FOR_MARKER.format(marker_hex=marker.encode().hex(), roots=roots[:1])
        assert "FOUND" in unconfined_python(scan, tmp_path).stdout
        neighbour = threading.Thread(target=run_python, args=(sandbox, f"import time\n# {marker}\ntime.sleep(3)\n"))
        neighbour.start()
        time.sleep(0.5)
        seen = run_python(sandbox, SCAN_FOR_MARKER.format(marker_hex=marker.encode().hex(), roots=roots))
        neighbour.join()
    finally:
        host_process.kill()
        host_process.wait()
        shutil.rmtree(sibling_box)
    if "private-proc" not in sandbox.isolation and "private-root" not in sandbox.isolation and not ROOT:
        assert sandbox.weak_isolation  # the fallback, as an ordinary user, cannot hide /proc: said loudly
        return
    assert "NOTHING" in seen, seen


def memory_holds(pid: int, marker: bytes) -> bool:
    """Whether a process's readable memory contains `marker` (read from outside, through /proc)."""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", buffering=0) as memory:
        for line in maps:
            fields = line.split()
            if "r" not in fields[1] or (len(fields) > 5 and fields[5] in ("[vvar]", "[vsyscall]")):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            try:
                memory.seek(start)
                if marker in memory.read(end - start):
                    return True
            except (OSError, ValueError, OverflowError):
                continue
    return False


NAIVE_FORK_SERVER = """
import json, os, sys, time
job = json.loads(sys.stdin.readline())  # the job carries its source, as rfai's zygote once did
child = os.fork()
if child == 0:
    exec(job["python"], {})
    os._exit(0)
os.waitpid(child, 0)
print("served", flush=True)
time.sleep(30)
"""


def test_no_earlier_program_source_is_left_in_the_process_programs_fork_from(sandbox, tmp_path):
    marker = ("rfai-reference-" + os.urandom(6).hex()).encode()
    naive = subprocess.Popen([sys.executable, "-c", NAIVE_FORK_SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        naive.stdin.write((json.dumps({"python": f"REFERENCE = {marker.decode()!r}"}) + "\n").encode())
        naive.stdin.flush()
        naive.stdout.readline()
        try:
            assert memory_holds(naive.pid, marker), "a naive fork server keeps the source it ran"
        except PermissionError:
            pytest.skip("this kernel does not let a parent read its child's memory")
    finally:
        naive.kill()
        naive.wait()
    run_python(sandbox, f"REFERENCE = {marker.decode()!r}\n")
    assert not memory_holds(sandbox.server_pid, marker)


def test_devices_terminals_and_run_are_not_there(sandbox, tmp_path):
    listing = (
        "import os\nfor path in ('/dev', '/run', '/var/run', '/etc/shadow', '/dev/tty', '/dev/pts'):\n"
        "    try:\n        print(path, sorted(os.listdir(path)) if os.path.isdir(path) else open(path).read(1))\n"
        "    except OSError as exc:\n        print(path, 'refused', exc.errno)\n"
    )
    host = unconfined_python(listing, tmp_path).stdout
    assert "null" in host and "'tty'" in host  # the host's /dev has far more
    seen = run_python(sandbox, listing)
    if "private-root" in sandbox.isolation:
        dev_line = next(line for line in seen.splitlines() if line.startswith("/dev "))
        assert set(eval(dev_line[5:])) == {
            "fd",
            "null",
            "random",
            "shm",
            "stderr",
            "stdin",
            "stdout",
            "urandom",
            "zero",
        }
    for path in ("/run", "/var/run", "/etc/shadow", "/dev/tty", "/dev/pts"):
        line = next(line for line in seen.splitlines() if line.startswith(path + " "))
        assert "refused" in line, seen


def test_no_capability_is_left(sandbox, tmp_path):
    status = "for line in open('/proc/self/status'):\n    if line.startswith('Cap'):\n        print(line.strip())\n"
    if ROOT:
        assert "CapEff:\t0000000000000000" not in unconfined_python(status, tmp_path).stdout
    seen = run_python(sandbox, status)
    if "refused" in seen or "Cap" not in seen:  # the fallback cannot read /proc: ask the kernel directly
        seen = run_python(
            sandbox,
            "import ctypes, struct\nlibc = ctypes.CDLL(None)\nhead = ctypes.create_string_buffer(struct.pack('Ii', 0x20080522, 0))\n"
            "data = ctypes.create_string_buffer(24)\nlibc.capget(head, data)\nprint('CAPS', sum(data.raw))\n",
        )
        # the fallback as root with a Python under /root keeps exactly one: reading (see docs/sandbox.md)
        assert ("CAPS 8" if "read-search-capability" in sandbox.isolation else "CAPS 0") in seen, seen
        return
    for name in ("CapInh", "CapPrm", "CapEff", "CapAmb") + (
        ("CapBnd",) if ROOT or "userns" in sandbox.isolation else ()
    ):
        assert f"{name}:\t0000000000000000" in seen, seen


def test_unix_sockets_of_the_user_are_unreachable(sandbox, tmp_path):
    path = tmp_path / "agent.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(1)
    path.parent.chmod(0o755)
    path.chmod(0o777)
    client = (
        f"import socket\ns = socket.socket(socket.AF_UNIX)\ntry:\n    s.connect({str(path)!r})\n    print('CONNECTED')\n"
        "except OSError as exc:\n    print('refused', exc)\n"
    )
    try:
        assert "CONNECTED" in unconfined_python(client, tmp_path).stdout
        server.accept()[0].close()
        if not fallback_stops_it(sandbox, "a pathname unix socket the user can reach"):
            return
        assert "refused" in run_python(sandbox, client)
    finally:
        server.close()


def test_udp_to_localhost_does_not_leave(sandbox, tmp_path):
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(0.5)
    port = receiver.getsockname()[1]
    sender = (
        f"import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ntry:\n    s.sendto(b'out', ('127.0.0.1', {port}))\n"
        "    print('SENT')\nexcept OSError as exc:\n    print('refused', exc)\n"
    )
    try:
        unconfined_python(sender, tmp_path)
        assert receiver.recv(16) == b"out"
        if "netns" not in sandbox.isolation:
            assert sandbox.weak_isolation  # Landlock stops TCP only: the fallback says it is weaker
            return
        run_python(sandbox, sender)
        with pytest.raises(socket.timeout):
            receiver.recv(16)
    finally:
        receiver.close()


KEYCTL, ADD_KEY = {"x86_64": (250, 248), "aarch64": (219, 217)}.get(os.uname().machine, (None, None))


@pytest.mark.skipif(KEYCTL is None, reason="keyring syscalls known for x86_64 and aarch64 only")
def test_the_session_keyring_is_a_fresh_one(sandbox, tmp_path):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    key = libc.syscall(ADD_KEY, b"user", b"rfai-test-key", b"secret-payload", 14, -3)  # -3: the session keyring
    if key < 0:
        pytest.skip("this kernel refuses keys")
    search = (
        f"import ctypes\nlibc = ctypes.CDLL(None)\nlibc.syscall.restype = ctypes.c_long\n"
        f"print('KEY', libc.syscall({KEYCTL}, 10, -3, b'user', b'rfai-test-key', 0))\n"
    )  # 10: KEYCTL_SEARCH
    try:
        assert "KEY -1" not in unconfined_python(search, tmp_path).stdout  # a child finds its parent's key
        assert "KEY -1" in run_python(sandbox, search)
    finally:
        libc.syscall(KEYCTL, 3, ctypes.c_long(key))  # KEYCTL_REVOKE


def fallback_stops_it(sandbox: Sandbox, what: str) -> bool:
    """The private view stops everything here; the Landlock fallback, as an ordinary user (same
    uid as the files), cannot stop `what`: then the sandbox must say it is weaker."""
    if "private-root" in sandbox.isolation or (ROOT and "read-search-capability" not in sandbox.isolation):
        return True
    assert sandbox.weak_isolation, f"the fallback cannot stop {what} and must say so"
    return False


# --- damaging ------------------------------------------------------------------------------------


def test_one_program_filling_the_disk_does_not_change_another_ones_result(scorer, tmp_path):
    filler = (
        "import os\ndef solve():\n    block = b'x' * (1 << 20)\n    for i in range(400):\n"
        "        with open('fill-%d' % i, 'wb') as handle:\n            for _ in range(15):\n"
        "                handle.write(block)\n    return 'filled'\n"
    )
    honest = (
        "def solve():\n    with open('mine.txt', 'w') as handle:\n        handle.write('y' * 2_000_000)\n"
        "    return len(open('mine.txt').read())\n"
    )
    # unconfined, only a per-file limit (the old wall): far more than any one program's share
    limited = unconfined_python(
        "import resource\nresource.setrlimit(resource.RLIMIT_FSIZE, (16 << 20, 16 << 20))\n"
        + filler.replace("range(400)", "range(8)")
        + "print(solve())\n",
        tmp_path,
    )
    assert "filled" in limited.stdout and sum(p.stat().st_size for p in tmp_path.glob("fill-*")) > 100 << 20
    for leftover in tmp_path.glob("fill-*"):
        leftover.unlink()
    if "scratch-tmpfs" not in scorer.isolation:
        assert scorer.sandbox.weak_isolation  # the fallback bounds each file, not the total: said loudly
        return
    row = {"prompt": "p", "language": "python", "tests": ["assert solve() == 'filled'"]}
    row_honest = {"prompt": "p", "language": "python", "tests": ["assert solve() == 2_000_000"]}
    free_before = shutil.disk_usage("/tmp").free
    results = scorer.score_many([ScoreItem(row, [filler]), ScoreItem(row_honest, [honest]), ScoreItem(row, [filler])])
    assert [r.students[0].tests["passed"] for r in results] == [0, 1, 0]
    assert free_before - shutil.disk_usage("/tmp").free < 64 << 20


def test_user_files_keep_their_mode_times_and_attributes(sandbox, tmp_path):
    target = sandbox.shared / "user-file.txt"
    before = target.stat()
    damage = (
        f"import os\npath = {str(target)!r}\n"
        "for name, act in (('chmod', lambda: os.chmod(path, 0o777)), ('utime', lambda: os.utime(path, (0, 0))),\n"
        "                  ('xattr', lambda: os.setxattr(path, 'user.rfai', b'x')), ('write', lambda: open(path, 'a').write('x'))):\n"
        "    try:\n        act()\n        print(name, 'DONE')\n    except OSError as exc:\n        print(name, 'refused', exc.errno)\n"
    )
    copy = tmp_path / "copy.txt"
    shutil.copy(target, copy)
    assert "chmod DONE" in unconfined_python(damage.replace(str(target), str(copy)), tmp_path).stdout
    if not fallback_stops_it(sandbox, "metadata changes on the user's own readable files"):
        return
    seen = run_python(sandbox, damage)
    assert "DONE" not in seen, seen
    after = target.stat()
    assert (after.st_mode, after.st_mtime_ns, after.st_size) == (before.st_mode, before.st_mtime_ns, before.st_size)


def test_a_directory_left_without_permissions_is_cleaned_up(scorer, tmp_path):
    code = (
        "import os\nos.makedirs('locked/inner')\nopen('locked/inner/f', 'w').write('x')\n"
        "os.chmod('locked/inner', 0)\nos.chmod('locked', 0)\ndef solve():\n    return 1\n"
    )
    row = {"prompt": "p", "language": "python", "tests": ["assert solve() == 1"]}
    for _ in range(2):
        assert scorer.score(ScoreItem(row, [code])).students[0].tests["passed"] == 1
    assert not [p for p in Path(scorer.sandbox._root).iterdir() if p.name.startswith("box-")]


# --- crashing rfai ------------------------------------------------------------------------------

OLD_CPP_FUNCTION = (
    r"^[ \t]*(?:template\s*<[^>]*>\s*)?(?:[\w:<>,*&~\[\]]+[ \t\n*&]+)+(?P<name>~?\w+)\s*\([^;{}()]*"
    r"(?:\([^)]*\)[^;{}()]*)*\)\s*(?:const\s*)?(?:noexcept\s*)?(?:override\s*)?(?:->\s*[\w:<>]+\s*)?\{"
)
BANNER = (
    "/" + "*" * 40 + "\n" + " " + "*" * 40 + " rfai\n" + "*" * 40 + " x\n*/\nint add(int a, int b) { return a + b; }\n"
)
DEEP_ELIF = "def f(x):\n    if x == 0:\n        return 0\n" + "".join(
    f"    elif x == {i}:\n        return {i}\n" for i in range(1, 400)
)
LONG_SUM = "def f():\n    return " + " + ".join(["1"] * 500) + "\n"


def test_a_comment_banner_cannot_hang_static_analysis(scorer, tmp_path):
    probe = f"import re\nre.compile({OLD_CPP_FUNCTION!r}, re.M).findall({BANNER.replace('/' + '*' * 40, '', 1)!r})\n"
    with pytest.raises(subprocess.TimeoutExpired):  # the pattern rfai used to run: exponential here
        unconfined_python(probe, tmp_path, timeout=3)
    row = {"prompt": "p", "language": "cpp", "tests": ["assert(add(1, 2) == 3);"]}
    started = time.monotonic()
    result = scorer.score(ScoreItem(row, [BANNER.replace("/" + "*" * 40, "", 1) + "\n" + BANNER]))
    assert time.monotonic() - started < 30
    assert result.students[0].breakdown is not None


@pytest.mark.parametrize("code", [DEEP_ELIF, LONG_SUM], ids=["elif-chain", "long-sum"])
def test_deep_programs_cannot_crash_static_analysis(code, scorer, tmp_path):
    naive = (
        "import ast, sys\nsys.setrecursionlimit(1000)\n"
        "def depth(node):\n    return 1 + max((depth(c) for c in ast.iter_child_nodes(node)), default=0)\n"
        f"depth(ast.parse({code!r}))\n"
    )
    assert "RecursionError" in unconfined_python(naive, tmp_path).stderr  # a recursive walk, as rfai had
    row = {
        "prompt": "p",
        "language": "python",
        "tests": ["assert f(3) == 3" if "elif" in code else "assert f() == 500"],
    }
    student = scorer.score(ScoreItem(row, [code])).students[0]
    assert student.tests["passed"] == 1


# --- what the report says ---------------------------------------------------------------------------


def test_the_isolation_report_matches_the_mode(sandbox, mode):
    names = set(sandbox.isolation)
    assert {"session", "rlimits", "clean-env", "no-new-privileges"} <= names
    assert ("no-capabilities" in names) != ("read-search-capability" in names)
    if mode == "fallback":
        assert "private-root" not in names and "pidns" not in names and sandbox.weak_isolation
    else:
        assert "no-capabilities" in names
        assert {"private-root", "mountns", "pidns", "netns", "ipcns", "scratch-tmpfs", "nproc-limit"} <= names
        assert sandbox.weak_isolation is None
        assert ("userns" in names) == (not ROOT)
    assert ("uid-drop" in names) == ROOT
    json.dumps(sandbox.isolation)  # part of every row


def test_results_channel_is_fd_3_and_stdout_is_not_read(sandbox):
    with sandbox.directory() as box:
        result = sandbox.run(box, Limits(), argv=["/bin/sh", "-c", "echo to-stdout; echo to-results >&3"])
        assert result.stdout.strip() == "to-stdout"
        assert read_bounded(box / RESULTS).strip() == "to-results"
