"""Hostile programs against the real sandbox: each must score 0 with a reason, change nothing
outside its box, leave no process behind, and leave the scorer working.

Every program runs twice: with the namespaces this OS allows, and in the fallback used where
namespaces are refused (session kill + subreaper sweep + Landlock + uid drop)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rfai_cli.config import ScoringSettings
from rfai_cli.scoring import ScoreItem, Scorer, fill_record

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="containment checks read /proc")

SECRETS = {
    "HF_TOKEN": "hf_rfai-test-secret-1",
    "HUGGINGFACE_TOKEN": "hf_rfai-test-secret-2",
    "OPENAI_API_KEY": "sk-rfai-test-secret-3",
    "ANTHROPIC_API_KEY": "sk-ant-rfai-test-secret-4",
}
SLEEP_MARK = "731.25"  # a daemon runs `sleep 731.25`; no such process may survive
VICTIM_MARK = "731.75"  # the same, for the test that kills rfai itself


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("datasets")
    (folder / "train.jsonl").write_text('{"prompt": "p"}\n')
    folder.chmod(0o777)  # even a world-writable folder must stay untouched
    return folder


@pytest.fixture(scope="module", params=["namespaces", "fallback"])
def scorer(request):
    saved = {name: os.environ.get(name) for name in SECRETS}
    os.environ.update(SECRETS)  # the scorer's own environment holds the tokens
    settings = ScoringSettings(timeout=2, workers=2)
    with Scorer(settings, namespaces=request.param == "namespaces") as scorer:
        yield scorer
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="module")
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.setblocking(False)
    yield server
    server.close()


def hostile_programs(dataset_dir: Path, port: int) -> dict[str, str]:
    target = dataset_dir / "train.jsonl"
    return {
        "steal_env_tokens": """
import os, glob
def solve():
    found = [value for value in os.environ.values() if "rfai-test-secret" in value]
    for path in glob.glob("/proc/*/environ"):
        try:
            data = open(path, "rb").read()
        except OSError:
            continue
        if b"rfai-test-secret" in data:
            found.append(path)
    assert found, "no token found"
    return found
""",
        "write_outside": f"""
import os
def solve():
    with open({str(target)!r}, "a") as handle:
        handle.write("pwned\\n")
    open({str(dataset_dir / "extra.jsonl")!r}, "w").write("pwned")
    return True
""",
        "busy_loop": "def solve():\n    while True:\n        pass\n",
        "sleep_forever": "import time\ndef solve():\n    time.sleep(10**6)\n",
        "fork_bomb": """
import os
def solve():
    while True:
        try:
            os.fork()
        except OSError:
            pass
""",
        "allocate_50gb": "def solve():\n    block = bytearray(50 * 1024**3)\n    return len(block)\n",
        "print_1gb": "import sys\ndef solve():\n    chunk = 'x' * 2**20\n    for _ in range(1024):\n        sys.stdout.write(chunk)\n",
        "kill_parent_and_everyone": """
import os, signal
def solve():
    os.kill(os.getppid(), signal.SIGKILL)
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                os.kill(int(name), signal.SIGKILL)
            except OSError:
                pass
    return False
""",
        "daemon_outlives_timeout": f"""
import os, subprocess, time
def solve():
    subprocess.Popen(["sleep", "{SLEEP_MARK}"], start_new_session=True)
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execvp("sleep", ["sleep", "{SLEEP_MARK}"])
        os._exit(0)
    time.sleep(0.2)
    return False
""",
        "socket_to_localhost": f"""
import socket
import subprocess
def solve():
    connection = socket.create_connection(("127.0.0.1", {port}), timeout=1)
    connection.sendall(b"exfiltrated")
    return True
""",
    }


def folder_state(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def leftovers(scorer: Scorer) -> list[str]:
    """Processes a sandboxed program could have left: any descendant of this scorer's zygote
    (every job is finished, so it should have none; orphans are reparented to it, as it is a
    subreaper) and anything running the daemon's marker."""
    zygote = scorer.sandbox.server_pid
    parents, cmdlines = {}, {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
            cmdlines[int(name)] = (
                Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            )
        except OSError:
            continue
        parents[int(name)] = int(stat.rsplit(")", 1)[1].split()[1])

    def descends_from_zygote(pid: int) -> bool:
        for _ in range(64):
            pid = parents.get(pid, 0)
            if pid == zygote:
                return True
            if pid <= 1:
                return False
        return False

    return [
        f"{pid} {cmdline[:80]}"
        for pid, cmdline in cmdlines.items()
        if SLEEP_MARK in cmdline or descends_from_zygote(pid)
    ]


def wait_for_no_leftovers(scorer: Scorer, seconds: float = 5.0) -> list[str]:
    deadline = time.monotonic() + seconds  # namespace teardown is asynchronous, but quick
    while (found := leftovers(scorer)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


NAMES = [
    "steal_env_tokens",
    "write_outside",
    "busy_loop",
    "sleep_forever",
    "fork_bomb",
    "allocate_50gb",
    "print_1gb",
    "kill_parent_and_everyone",
    "daemon_outlives_timeout",
    "socket_to_localhost",
]


@pytest.mark.parametrize("name", NAMES)
def test_hostile_program_is_contained(name, scorer, dataset_dir, listener):
    if name == "kill_parent_and_everyone" and not (
        {"uid-drop", "pidns"} & set(scorer.isolation)
        or any(i.startswith("landlock-v") and int(i[10:]) >= 6 for i in scorer.isolation)
    ):
        pytest.skip("signals are contained only by a PID namespace, a dropped uid or Landlock v6")
    before = folder_state(dataset_dir)
    code = hostile_programs(dataset_dir, listener.getsockname()[1])[name]
    row = {"prompt": name, "language": "python", "tests": ["assert solve() == 'never'"]}
    started = time.monotonic()
    result = scorer.score(ScoreItem(row, [code]))
    elapsed = time.monotonic() - started

    record = fill_record({}, result)
    assert record["student_breakdown"]["correctness"] == 0.0, record
    assert record["score_sources"]["student"]["correctness"] == "tests"
    assert record["test_results"]["student"]["reason"], record
    assert elapsed < 15, f"{name} held the scorer for {elapsed:.1f}s"
    assert folder_state(dataset_dir) == before, "the dataset folder changed"
    assert not list(Path("/tmp").glob("pwned*"))
    assert wait_for_no_leftovers(scorer) == []
    with pytest.raises(BlockingIOError):
        listener.accept()  # nobody connected
    # the scorer still works
    fine = scorer.score(ScoreItem(row, ["def solve():\n    return 'never'\n"]))
    assert fine.students[0].breakdown["correctness"] == 1.0


def test_reasons_name_the_limit(scorer, dataset_dir, listener):
    programs = hostile_programs(dataset_dir, listener.getsockname()[1])
    row = {"prompt": "p", "language": "python", "tests": ["assert solve() == 'never'"]}
    names = ["busy_loop", "allocate_50gb", "print_1gb", "steal_env_tokens"]
    results = scorer.score_many([ScoreItem(row, [programs[name]]) for name in names])
    reasons = dict(zip(names, (r.students[0].tests["reason"] for r in results)))
    assert reasons["busy_loop"].startswith(("timed out", "CPU time limit")), reasons
    assert "MemoryError" in reasons["allocate_50gb"]
    assert "output/file size limit" in reasons["print_1gb"] or "File too large" in reasons["print_1gb"]
    assert "no token found" in reasons["steal_env_tokens"]
    assert not any("rfai-test-secret" in reason for reason in reasons.values())


def test_program_environment_is_built_from_scratch(scorer):
    code = "import os\ndef solve():\n    return sorted(os.environ)\n"
    row = {
        "prompt": "p",
        "language": "python",
        "tests": [
            "assert solve() == ['HOME', 'LANG', 'PATH', 'PYTHONDONTWRITEBYTECODE', 'PYTHONHASHSEED', 'TMPDIR']",
            "import os\nassert os.environ['HOME'] == os.getcwd() and not os.getcwd().startswith('/root')",
        ],
    }
    result = scorer.score(ScoreItem(row, [code]))
    assert result.students[0].tests["passed"] == 2, result.students[0].tests


def test_isolation_is_reported(scorer):
    assert {"session", "rlimits", "clean-env", "no-new-privileges"} <= set(scorer.isolation)


@pytest.mark.parametrize(
    "language, code",
    [
        ("cpp", '#include "{secret}"\nint add(int a, int b) {{ return a + b; }}\n'),
        ("rust", 'pub fn add(a: i32, b: i32) -> i32 {{ let _s = include_str!("{secret}"); a + b }}\n'),
    ],
)
def test_compilers_cannot_read_files_outside_the_sandbox(language, code, tmp_path):
    from rfai_cli.scoring.programs import Toolchains

    if Toolchains().compiler(language)[0] is None:
        pytest.skip(f"no {language} compiler")
    secret = tmp_path / "token.txt"
    secret.write_text("rfai-compile-secret = 1;\n")
    tests = ["assert(add(1, 2) == 3);"] if language == "cpp" else ["assert_eq!(add(1, 2), 3);"]
    with Scorer(ScoringSettings(workers=1)) as scorer:
        result = scorer.score(
            ScoreItem({"prompt": "p", "language": language, "tests": tests}, [code.format(secret=secret)])
        )
    student = result.students[0]
    assert student.breakdown["correctness"] == 0.0
    assert "does not compile" in student.tests["reason"]
    assert "rfai-compile-secret" not in json.dumps(student.tests)


def test_killing_rfai_kills_its_programs(tmp_path):
    """If the scoring process dies (kill -9), the sandbox and every program go with it."""
    script = tmp_path / "victim.py"
    script.write_text(
        "from rfai_cli.scoring import Scorer, ScoreItem\n"
        "from rfai_cli.config import ScoringSettings\n"
        "import sys\n"
        "scorer = Scorer(ScoringSettings(timeout=60, workers=1))\n"
        "print(scorer.sandbox.server_pid, flush=True)\n"
        f'code = \'import subprocess, time\\nsubprocess.Popen(["sleep", "{VICTIM_MARK}"])\\ntime.sleep(60)\\n\'\n'
        "scorer.score(ScoreItem({'prompt': 'p', 'tests': ['pass']}, [code]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    victim = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    zygote = int(victim.stdout.readline())
    deadline = time.monotonic() + 20
    while not any(VICTIM_MARK in p for p in _cmdlines()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any(VICTIM_MARK in p for p in _cmdlines()), "the program never started"
    victim.kill()
    victim.wait()
    deadline = time.monotonic() + 5
    while (VICTIM_MARK in " ".join(_cmdlines()) or Path(f"/proc/{zygote}").exists()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(VICTIM_MARK in p for p in _cmdlines())
    assert not Path(f"/proc/{zygote}").exists() or "Z" in Path(f"/proc/{zygote}/stat").read_text().split()[2]


def _cmdlines() -> list[str]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                found.append(Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                pass
    return found
