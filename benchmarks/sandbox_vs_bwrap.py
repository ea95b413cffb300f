"""Per-program cost of rfai's sandbox against bubblewrap, the sandbox Flatpak relies on.

The same trivial Python program (load a module, run one assert) is contained N times, one at a
time and then two at a time: by rfai's zygote (fork, namespaces, private view, no capability)
and by `bwrap` with an equivalent view (`--unshare-all --die-with-parent --cap-drop ALL`, the
same read-only binds, a tmpfs /sandbox, a fresh /proc and /dev), which must exec a fresh
interpreter per program. Prints programs per second and the ratio.

    python benchmarks/sandbox_vs_bwrap.py [--programs 200] [--runs 3]

Needs bwrap on PATH (Debian: apt-get install bubblewrap); exits 0 with a note when it is missing.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rfai_cli.scoring.programs import Toolchains, run_tests  # noqa: E402
from rfai_cli.scoring.sandbox import Limits, Sandbox  # noqa: E402

CODE = "def add(a, b):\n    return a + b\n"
TEST = "assert add(2, 3) == 5"


def bwrap_argv(read_paths: list[str], workdir: Path) -> list[str]:
    argv = [
        "bwrap",
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--tmpfs",
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/sandbox",
        "--chdir",
        "/sandbox",
    ]
    for path in read_paths:
        argv += ["--ro-bind", path, path]
    argv += ["--ro-bind", str(workdir / "main.py"), "/sandbox/main.py", "--setenv", "HOME", "/sandbox"]
    return argv + [sys.executable, "-I", "-S", "/sandbox/main.py"]


def timed(run_one, programs: int, parallel: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda _: run_one(), range(programs)))
    return programs / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--programs", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("bwrap") is None:
        print("bwrap is not installed (apt-get install bubblewrap): nothing to compare")
        return
    scratch = Path(__import__("tempfile").mkdtemp())
    (scratch / "main.py").write_text(f"{CODE}\n{TEST}\n")
    reads = sorted(
        {
            p
            for p in ("/usr", "/lib", "/lib64", "/bin", "/etc/ld.so.cache", sys.base_prefix, sys.prefix)
            if Path(p).exists()
        }
    )
    argv = bwrap_argv(reads, scratch)
    probe = subprocess.run(argv, capture_output=True, text=True)
    if probe.returncode != 0:
        print(f"bwrap cannot run here: {probe.stderr.strip()[:200]}")
        return
    tools, limits = Toolchains(), Limits(timeout=10)
    with Sandbox() as sandbox:

        def ours_once():
            return run_tests(sandbox, tools, "python", CODE, [TEST], None, limits, limits)

        assert ours_once().passed == 1
        for parallel in (1, 2):
            ours = statistics.median(timed(ours_once, args.programs, parallel) for _ in range(args.runs))
            theirs = statistics.median(
                timed(lambda: subprocess.run(argv, capture_output=True, check=True), args.programs, parallel)
                for _ in range(args.runs)
            )
            print(
                f"{parallel} at a time: rfai {ours:.0f} programs/s, bwrap {theirs:.0f} programs/s, "
                f"ratio {ours / theirs:.1f}x (median of {args.runs}, {args.programs} programs; isolation: "
                f"{', '.join(sandbox.isolation)})"
            )
    shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
