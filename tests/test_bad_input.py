"""Hostile and broken input through the real CLI: one-line errors, bounded time and memory, files intact.

Each case states the exit code, the message and the state of the files afterwards. Disk-full and
device cases use a 1 MiB tmpfs and device nodes made with mknod in a temporary directory (root,
as in CI); without root they use the system's /dev/full and /dev/null.
"""

from __future__ import annotations

import fcntl
import json
import os
import resource
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, RFAI

ROW = {
    "prompt": "p",
    "language": "python",
    "student_code": "def f():\n    return 1\n",
    "student_score": 0.5,
    "teacher_score": 0.9,
    "reward": 0.556,
}


def rows_file(path: Path, count: int = 4, **extra) -> Path:
    path.write_text("".join(json.dumps({**ROW, **extra, "task_id": f"t{i}"}) + "\n" for i in range(count)))
    return path


def one_line_failure(result: subprocess.CompletedProcess, code: int, words: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and words in lines[-1], result.stderr
    assert all(line.startswith(("warning:", "error:", "interrupted")) for line in lines), result.stderr


@pytest.fixture
def devices(tmp_path):
    """(full, null): character devices 1:7 and 1:3 made in tmp_path, or the system's without root."""
    try:
        full, null = tmp_path / "full", tmp_path / "null"
        os.mknod(full, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
        os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        return full, null
    except PermissionError:
        return Path("/dev/full"), Path("/dev/null")


@pytest.fixture
def tiny_fs(tmp_path):
    """A 1 MiB tmpfs, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


# --- output onto devices, links, other people's files ----------------------------------------


@pytest.mark.parametrize("command", ["filter", "score"])
def test_output_to_a_device_is_written_through_never_replaced(rfai, tmp_path, devices, command):
    full, null = devices
    rows = rows_file(tmp_path / "rows.jsonl")
    one_line_failure(rfai(command, rows, "-o", full), 1, "No space left on device")
    assert stat.S_ISCHR(full.stat().st_mode)  # a naive temp-and-rename made it a regular file
    ok = rfai(command, rows, "-o", null)
    assert ok.returncode == 0, ok.stderr
    assert stat.S_ISCHR(null.stat().st_mode)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_output_through_a_symlink_and_onto_a_file_with_its_own_permissions(rfai, tmp_path):
    rows = rows_file(tmp_path / "rows.jsonl")
    target = tmp_path / "real.jsonl"
    target.write_text("old\n")
    target.chmod(0o640)
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    assert rfai("filter", rows, "-o", link).returncode == 0
    assert link.is_symlink() and len(target.read_text().splitlines()) == 4
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_output_into_a_fifo_is_streamed(rfai, tmp_path):
    rows = rows_file(tmp_path / "rows.jsonl")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    assert rfai("filter", rows, "-o", fifo).returncode == 0
    assert len(reader.communicate(timeout=30)[0].splitlines()) == 4
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_two_filters_writing_one_file_at_once_both_leave_it_whole(tmp_path):
    rows = rows_file(tmp_path / "rows.jsonl", count=40_000)
    out = tmp_path / "same.jsonl"
    procs = [
        subprocess.Popen(
            [*RFAI, "filter", str(rows), "-o", str(out), "--min-reward", str(bound)], stderr=subprocess.PIPE, text=True
        )
        for bound in (0.0, 0.5)
    ]
    for proc in procs:
        proc.wait(timeout=120)
        assert proc.returncode == 0, proc.stderr.read()
    lines = out.read_text().splitlines()
    assert len(lines) == 40_000 and all(json.loads(line)["prompt"] == "p" for line in lines)


def test_a_second_collect_on_the_same_directory_is_refused_at_once(rfai, tmp_path):
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import fcntl, os, sys, time\n"
                f"fd = os.open({str(datasets / '.rfai.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
                "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, b'4242\\n'); print('held', flush=True); time.sleep(60)\n"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        result = rfai("collect", "--output-dir", datasets, "--limit", "1")
        one_line_failure(result, 1, "another rfai run is writing this dataset directory (pid 4242)")
        assert time.monotonic() - started < 20  # refused before any model is loaded
    finally:
        holder.kill()
        holder.wait()
    fd = os.open(datasets / ".rfai.lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released with its holder, even after kill -9
    os.close(fd)


def test_collect_into_a_file_fails_before_loading_anything(rfai, tmp_path):
    (tmp_path / "taken").write_text("a file\n")
    started = time.monotonic()
    one_line_failure(rfai("collect", "--output-dir", tmp_path / "taken", "--limit", "1"), 2, "is a file")
    assert time.monotonic() - started < 20
    assert (tmp_path / "taken").read_text() == "a file\n"


# --- endless, huge, binary and wrongly encoded input -------------------------------------------


@pytest.mark.parametrize("command", ["stats", "filter", "score"])
def test_dev_zero_is_refused_at_once(rfai, command):
    started = time.monotonic()
    one_line_failure(rfai(command, "/dev/zero"), 2, "not UTF-8 text (NUL bytes")
    assert time.monotonic() - started < 20


@pytest.mark.parametrize("command", ["stats", "filter"])
def test_an_endless_line_stops_within_bounded_memory(command):
    # 'a' forever on stdin: no NUL to refuse it up front, no line end to wait for.
    feeder = subprocess.Popen(
        [sys.executable, "-c", "import sys\nw = sys.stdout.buffer\nwhile True: w.write(b'a' * 65536)"],
        stdout=subprocess.PIPE,
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = subprocess.run([*RFAI, command, "-"], stdin=feeder.stdout, capture_output=True, text=True, timeout=120)
    feeder.kill()
    one_line_failure(result, 2, "without ending; stopped reading")
    peak_mib = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    assert peak_mib < 1024, peak_mib  # lines are bounded at 64 MiB, never held whole


def test_a_line_over_the_bound_is_one_reported_bad_line(rfai, tmp_path):
    path = tmp_path / "long.jsonl"
    with open(path, "wb") as handle:
        handle.write((json.dumps(ROW) + "\n").encode())
        handle.write(b'{"prompt": "' + b"x" * (65 << 20) + b'"}\n')
        handle.write((json.dumps(ROW) + "\n").encode())
    for command in ("stats", "filter"):
        result = rfai(command, path, *(["--json"] if command == "stats" else []))
        assert result.returncode == 0, result.stderr
        assert "long.jsonl:2: line longer than 64 MiB" in result.stderr
    assert json.loads(rfai("stats", path, "--json").stdout)["rows"] == 2


@pytest.mark.parametrize("command", ["stats", "filter", "score"])
def test_utf16_input_is_a_clear_error_and_utf8_bom_is_fine(rfai, tmp_path, command):
    text = "".join(json.dumps(ROW) + "\n" for _ in range(4))
    (tmp_path / "u16.jsonl").write_bytes(text.encode("utf-16"))
    (tmp_path / "u16nobom.jsonl").write_bytes(text.encode("utf-16-le"))
    one_line_failure(rfai(command, "u16.jsonl"), 2, "byte-order mark")
    one_line_failure(rfai(command, "u16nobom.jsonl"), 2, "not UTF-8 text")
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + text.encode())
    result = rfai(command, "bom.jsonl", *(["-o", "out.jsonl"] if command != "stats" else []))
    assert result.returncode == 0 and "skipped" not in result.stderr, result.stderr


# --- numbers ---------------------------------------------------------------------------------


def test_huge_scores_are_figures_and_non_finite_ones_are_reported_skips(rfai, tmp_path):
    data = tmp_path / "datasets"
    data.mkdir()
    lines = [
        json.dumps({**ROW, "reward": 6e16}),
        json.dumps({**ROW, "reward": 1e308}),
        json.dumps(ROW).replace("0.556", "NaN"),
        json.dumps(ROW).replace("0.556", "Infinity"),
        json.dumps(ROW).replace("0.556", "-1e400"),
    ]
    (data / "train.jsonl").write_text("\n".join(lines) + "\n")
    stats = rfai("stats", data / "train.jsonl", "--json")
    assert stats.returncode == 0 and "Traceback" not in stats.stderr, stats.stderr
    figures = json.loads(stats.stdout)
    assert figures["rows"] == 2 and figures["skipped"]["total"] == 3 and figures["reward"]["max"] == 1e308
    assert figures["reward"]["std"] is None  # overflows float64: null, never NaN in JSON
    assert "should be a finite number" in stats.stderr
    kept = rfai("filter", data / "train.jsonl")
    assert kept.returncode == 0 and len(kept.stdout.splitlines()) == 2 and "NaN" not in kept.stdout
    card = rfai("card", data)
    assert card.returncode == 0 and "Traceback" not in card.stderr, card.stderr
    assert "nan" not in (data / "README.md").read_text().lower().replace("nanoseconds", "")
    dry = rfai("upload", "--dataset-dir", data, "--repo-id", "me/x", "--dry-run", env={"HF_TOKEN": "hf_" + "a" * 34})
    assert "Traceback" not in dry.stderr, dry.stderr


@pytest.mark.parametrize("value, words", [("inf", "finite"), ("1e300", "less than or equal"), ("nan", "finite")])
def test_timeouts_out_of_range_are_config_errors(rfai, tmp_path, value, words):
    rows = rows_file(tmp_path / "rows.jsonl")
    one_line_failure(rfai("score", rows, "--timeout", value), 2, words)


def test_config_ranges_name_file_line_and_key(rfai, tmp_path):
    rows = rows_file(tmp_path / "rows.jsonl")
    (tmp_path / "config.yaml").write_text("scoring:\n  memory_mb: 99999999999999999\n")
    one_line_failure(rfai("stats", rows), 2, "config.yaml:2: scoring.memory_mb: input should be less than")
    (tmp_path / "config.yaml").write_text("scoring:\n  workers: 2\n  timeout: .inf\n")
    one_line_failure(rfai("stats", rows), 2, "config.yaml:3: scoring.timeout: input should be a finite number")


# --- YAML ------------------------------------------------------------------------------------

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)


@pytest.mark.parametrize(
    "text, words",
    [
        ("model:\n" + "  " * 0 + "a: " + "[" * 10_000 + "]" * 10_000 + "\n", "nested more than 64 levels"),
        ("training:\n  x: &x [*x]\n", "invalid YAML"),
        (BOMB, "alias bomb"),
        ("model:\n  base_model: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n", "nested more than 64 levels"),
    ],
)
def test_hostile_yaml_configs_fail_fast_in_one_line(rfai, tmp_path, text, words):
    (tmp_path / "config.yaml").write_text(text)
    started = time.monotonic()
    one_line_failure(rfai("stats", rows_file(tmp_path / "rows.jsonl")), 2, words)
    assert time.monotonic() - started < 20


def test_a_card_whose_front_matter_is_an_alias_bomb_is_rewritten(rfai, tmp_path):
    data = tmp_path / "datasets"
    data.mkdir()
    rows_file(data / "train.jsonl")
    (data / "README.md").write_text(f"---\n{BOMB}---\n# mine\n")
    started = time.monotonic()
    result = rfai("card", data)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 30
    assert "# mine" in (data / "README.md").read_text()  # the old text is kept in the custom section


def test_a_killed_uploads_staging_folder_is_swept_by_the_next(rfai, tmp_path):
    data = tmp_path / "datasets"
    data.mkdir()
    rows_file(data / "train.jsonl")
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = data / f".rfai-upload-{dead.pid}-abc"
    stale.mkdir()
    (stale / "train.jsonl").write_text("staged\n")
    rfai("upload", "--dataset-dir", data, "--repo-id", "me/x", "--dry-run", env={"HF_TOKEN": "hf_" + "a" * 34})
    assert not stale.exists()
    assert not [p for p in data.iterdir() if p.name.startswith(".rfai-upload-")]


# --- full disks and unwritable places -------------------------------------------------------


def test_full_disk_score_card_and_collect_fail_in_one_line_and_leave_nothing(rfai, tmp_path, tiny_fs, tiny_model_dir):
    rows = rows_file(tmp_path / "rows.jsonl", count=2000)  # ~400 kB of rows, scored: more than 1 MiB
    (tiny_fs / "fill").write_bytes(b"x" * (1024 * 1024 - 64 * 1024))
    one_line_failure(
        rfai("score", rows, "-o", tiny_fs / "scored.jsonl", "--workers", "2"), 1, "No space left on device"
    )
    assert sorted(p.name for p in tiny_fs.iterdir()) == ["fill"]

    data = tiny_fs / "data"
    data.mkdir()
    (data / "train.jsonl").write_bytes(rows.read_bytes()[: 60 * 1024].rsplit(b"\n", 1)[0] + b"\n")
    (tiny_fs / "fill").write_bytes(b"x" * (1024 * 1024 - 70 * 1024))
    before = (data / "train.jsonl").read_bytes()
    card = rfai("card", data)
    assert "Traceback" not in card.stderr and (card.returncode == 0 or "No space left" in card.stderr), card.stderr
    assert sorted(p.name for p in data.iterdir()) in (["train.jsonl"], ["README.md", "train.jsonl"])
    assert (data / "train.jsonl").read_bytes() == before
    (data / "README.md").unlink(missing_ok=True)
    (tiny_fs / "fill").write_bytes(b"x" * (1024 * 1024 - 62 * 1024))  # room for the links, not for a card
    dry = rfai("upload", "--dataset-dir", data, "--repo-id", "me/x", "--dry-run", env={"HF_TOKEN": "hf_" + "a" * 34})
    assert "Traceback" not in dry.stderr, dry.stderr
    if dry.returncode:  # upload prints what it checked first; the error is its last line
        assert dry.returncode == 1 and dry.stderr.strip().splitlines()[-1].endswith("No space left on device")
    assert sorted(p.name for p in data.iterdir()) in (["train.jsonl"], ["README.md", "train.jsonl"])
    assert (data / "train.jsonl").read_bytes() == before


def test_collect_on_a_full_disk_keeps_the_rows_it_wrote_whole(rfai, tmp_path, tiny_fs, tiny_model_dir):
    (tmp_path / "config.yaml").write_text(
        f"model:\n  base_model: {tiny_model_dir}\nteacher:\n  max_tokens: 24\n"
        f"  cache_dir: {tmp_path / 'cache'}\ntraining:\n  max_new_tokens: 24\n"
    )
    (tiny_fs / "fill").write_bytes(b"x" * (1024 * 1024 - 16 * 1024))
    result = rfai("collect", "--output-dir", tiny_fs / "data", "--limit", "12", "--samples", "4")
    one_line_failure(result, 1, "No space left on device")
    text = (tiny_fs / "data" / "train.jsonl").read_text() if (tiny_fs / "data" / "train.jsonl").exists() else ""
    assert all(json.loads(line)["task_id"] for line in text.splitlines())  # only whole rows
    assert not [p.name for p in (tiny_fs / "data").iterdir() if p.name.startswith(".rfai-tmp")]


def test_score_into_a_read_only_directory(rfai, tmp_path):
    rows = rows_file(tmp_path / "rows.jsonl")
    readonly = tmp_path / "ro"
    readonly.mkdir()
    if os.geteuid() == 0:  # root ignores permission bits: a read-only mount then
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(readonly)], check=True)
    else:
        readonly.chmod(0o500)
    try:
        one_line_failure(rfai("score", rows, "-o", readonly / "out.jsonl"), 1, "cannot write")
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", "-l", str(readonly)], check=False)


@pytest.mark.parametrize("command", ["filter", "score", "stats"])
def test_stdout_on_a_full_device(tmp_path, devices, command):
    full, _ = devices
    rows = rows_file(tmp_path / "rows.jsonl")
    with open(full, "wb") as stdout:
        result = subprocess.run(
            [*RFAI, command, str(rows)], stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=120
        )
    one_line_failure(result, 1, "No space left on device")


@pytest.mark.parametrize("command", ["filter", "score"])
def test_ctrl_c_says_interrupted_and_leaves_no_output(tmp_path, command):
    # Rows trickle in on stdin and never end; the score rows also take their time in the sandbox.
    row = json.dumps({**ROW, "student_code": "import time\ntime.sleep(30)\n", "tests": ["assert True"]})
    feeder = subprocess.Popen(
        [sys.executable, "-c", f"import sys, time\nwhile True:\n    print({row!r}, flush=True)\n    time.sleep(0.05)"],
        stdout=subprocess.PIPE,
    )
    proc = subprocess.Popen(
        [*RFAI, command, "-", "-o", str(tmp_path / "out.jsonl")],
        stdin=feeder.stdout,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    time.sleep(4)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    feeder.kill()
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "interrupted", err
    assert list(tmp_path.iterdir()) == []


def test_train_on_a_full_disk_stops_in_one_line_and_resumes_from_the_last_whole_checkpoint(
    tmp_path, tiny_fs, tiny_model_dir
):
    """The second checkpoint does not fit: the run stops with one line, the first checkpoint is
    whole, nothing half-written is left, and once there is room `--resume` ends where an
    uninterrupted run ends."""
    import numpy as np
    from safetensors.numpy import load_file
    from test_train import config_text, rows

    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    settings = "  checkpoint_every: 1\n  eval_steps: 0\n"
    for directory in (whole, broken):
        directory.mkdir()
        text = config_text(tiny_model_dir, 3, settings).replace("  checkpoint_every: 2\n", "")
        if directory is broken:
            text += f"  checkpoint_dir: {tiny_fs / 'checkpoints'}\n"
        (directory / "config.yaml").write_text(text)
    assert subprocess.run([*RFAI, "train"], cwd=whole, env=env, capture_output=True).returncode == 0
    one = sum(p.stat().st_size for p in (whole / "checkpoints" / "checkpoint-000001").iterdir())
    adapters = (whole / "checkpoints" / "adapters.safetensors").stat().st_size
    room = one + adapters + one // 2 + 16 * 1024  # the first checkpoint fits, the second does not
    (tiny_fs / "fill").write_bytes(b"x" * (1024 * 1024 - room))
    failed = subprocess.run([*RFAI, "train"], cwd=broken, env=env, capture_output=True, text=True)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stderr
    assert failed.stderr.strip().splitlines()[-1].endswith("cannot write a checkpoint: No space left on device")
    checkpoints = tiny_fs / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == [
        "adapter_config.json",
        "adapters.safetensors",
        "checkpoint-000001",
        "metrics.jsonl",
    ]
    (tiny_fs / "fill").unlink()
    resumed = subprocess.run([*RFAI, "train", "--resume"], cwd=broken, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    ours, theirs = (load_file(str(d / "adapters.safetensors")) for d in (whole / "checkpoints", checkpoints))
    assert all(np.array_equal(ours[k], theirs[k]) for k in ours)
    assert rows(whole / "datasets" / "train.jsonl") == rows(broken / "datasets" / "train.jsonl")


THREADS_AFTER = """
import os, sys
from pathlib import Path
import numpy, pyarrow, pyarrow.json, pyarrow.parquet, duckdb  # their start-up threads (OpenBLAS, jemalloc) are not the question
directory = Path(sys.argv[1])
pyarrow.parquet.write_table(pyarrow.json.read_json(directory / "train.jsonl", pyarrow.json.ReadOptions(use_threads=False)), directory / "shard.parquet")
before = len(os.listdir("/proc/self/task"))
from rfai_cli.data.card import write_card
from rfai_cli.data.splitcheck import check_split
from rfai_cli.data.filter import FilterSpec, filter_rows
from rfai_cli.data.stats import compute_stats
for source in ("train.jsonl", "shard.parquet"):
    with open(os.devnull, "wb") as sink:
        filter_rows(directory / source, sink, FilterSpec(minimum={"reward": 0.1}))
compute_stats([directory / "train.jsonl"], careful=True)
compute_stats([directory / "shard.parquet"])
compute_stats([directory / "train.jsonl"])  # the DuckDB path
write_card(directory)
check_split("train", directory / "train.jsonl")
print(len(os.listdir("/proc/self/task")) - before)
"""


def test_reading_commands_start_no_pyarrow_thread_pool(tmp_path):
    """pyarrow's pool aborted `rfai card` now and then (`terminate called without an active
    exception`, exit -6 in the fuzz run): under an address-space limit it cannot always start a
    thread, and at exit it can be torn down with a worker alive. So no block read starts it."""
    row = {"prompt": "p", "language": "python", "student_code": "x = 1", "student_score": 0.5, "reward": 0.5}
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "train.jsonl").write_text((json.dumps(row) + "\n") * 50)
    result = subprocess.run(
        [sys.executable, "-c", THREADS_AFTER, str(tmp_path / "ds")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0", "threads started by the reads"
