import json
import os
import subprocess
import sys
from pathlib import Path

from test_secrets import ANTHROPIC, HF, PRIVATE_KEY
from test_stats import one_line_error

from rfai_cli.data.filter import normalize_code

REPO = Path(__file__).resolve().parent.parent
ROWS = [
    # Odd key order, an unknown field and a non-canonical language: all must pass through untouched.
    '{"reward": 0.95, "language": "Python", "student_code": "def f():\\n    return 1\\n", "student_score": 0.9, "teacher_score": 0.95, "x_custom": [1, {"y": null}]}',
    '{"language": "python", "student_code": "def f():   \\n\\n    return 1", "student_score": 0.8, "teacher_score": 0.9, "reward": 0.97}',
    '{"language": "rust", "student_code": "fn main() {}", "student_score": 0.4, "teacher_score": 0.8, "reward": 0.5, "split": "validation"}',
    '{"language": "cpp", "student_code": "int main() {}", "student_score": 0.99, "teacher_score": 0.5, "reward": 1.98}',
    '{"language": "python", "prompt": "no scores here"}',
]


def write(tmp_path, name="data.jsonl", lines=ROWS):
    (tmp_path / name).write_text("\n".join(lines) + "\n")
    return name


def out_lines(result):
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_min_reward_keeps_rows_byte_for_byte(rfai, tmp_path):
    result = rfai("filter", write(tmp_path), "--min-reward", "0.9")
    assert out_lines(result) == [ROWS[0], ROWS[1], ROWS[3]]
    assert "kept 3 of 5 rows (dropped: 2 by --min-reward)" in result.stderr


def test_bounds_language_and_split_combine(rfai, tmp_path):
    name = write(tmp_path)
    assert out_lines(rfai("filter", name, "--max-teacher-score", "0.9", "--min-student-score", "0.5")) == [
        ROWS[1],
        ROWS[3],
    ]
    assert out_lines(rfai("filter", name, "--language", "c++", "--language", "rust")) == [ROWS[2], ROWS[3]]
    assert out_lines(rfai("filter", name, "--split", "validation")) == [ROWS[2]]
    # The file's name says its split, as in stats.
    train = write(tmp_path, "train.jsonl")
    assert out_lines(rfai("filter", train, "--split", "train", "-q")) == ROWS


def test_top_k_ranks_by_field_highest_first(rfai, tmp_path):
    name = write(tmp_path)
    assert out_lines(rfai("filter", name, "--top-k", "2")) == [ROWS[3], ROWS[1]]
    result = rfai("filter", name, "--top-k", "1", "--by", "student_score")
    assert out_lines(result) == [ROWS[3]]
    assert "1 without a number in 'student_score'" in result.stderr and "3 outside the top 1" in result.stderr


def test_dedupe_keeps_the_highest_reward_per_normalised_code(rfai, tmp_path):
    assert normalize_code("  def f():   \r\n\r\n      return 1") == normalize_code("def f():\n    return 1\n")
    result = rfai("filter", write(tmp_path), "--dedupe")
    # Rows 0 and 1 are the same Python code; row 1 has the higher reward. The prompt row has no code: kept.
    assert out_lines(result) == [ROWS[1], ROWS[2], ROWS[3], ROWS[4]]
    assert "1 duplicates" in result.stderr
    assert out_lines(rfai("filter", "data.jsonl", "--dedupe", "--top-k", "1")) == [ROWS[3]]


def test_secrets_dropped_or_redacted(rfai, tmp_path):
    rows = [
        json.dumps({"student_code": f"TOKEN = '{HF}'", "reward": 1.0, "z": 1}),
        json.dumps({"student_code": "print(1)", "reward": 0.5}),
        json.dumps(
            {"teacher_code": "ok", "tests": ["assert True", f"key = '''{PRIVATE_KEY}'''"], "x": {"k": ANTHROPIC}}
        ),
    ]
    name = write(tmp_path, lines=rows)
    dropped = rfai("filter", name, "--drop-secrets")
    assert out_lines(dropped) == [rows[1]]
    assert "2 with secrets" in dropped.stderr
    redacted = [json.loads(line) for line in out_lines(rfai("filter", name, "--redact-secrets"))]
    assert redacted[0] == {"student_code": "TOKEN = '[REDACTED:huggingface]'", "reward": 1.0, "z": 1}
    assert list(redacted[0]) == ["student_code", "reward", "z"]
    assert redacted[2]["tests"] == ["assert True", "key = '''[REDACTED:private_key]'''"]
    assert redacted[2]["x"] == {"k": "[REDACTED:anthropic]"}
    assert HF not in json.dumps(redacted)
    assert "--drop-secrets and --redact-secrets" in one_line_error(
        rfai("filter", name, "--drop-secrets", "--redact-secrets")
    )


def test_pipe_into_stats(tmp_path):
    write(tmp_path)
    rfai = f"{sys.executable} -m rfai_cli"
    script = f"{rfai} filter - --min-reward 0.9 < data.jsonl | {rfai} stats - --json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(script, shell=True, cwd=tmp_path, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["rows"] == 3


def test_output_file_is_written_whole_and_may_replace_the_input(rfai, tmp_path):
    name = write(tmp_path)
    result = rfai("filter", name, "--language", "rust", "-o", name)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / name).read_text() == ROWS[2] + "\n"
    assert not list(tmp_path.glob(".*partial"))


def test_bad_inputs_are_one_line_or_reported(rfai, tmp_path):
    assert "no such file" in one_line_error(rfai("filter", "missing.jsonl"))
    assert "is a directory" in one_line_error(rfai("filter", str(tmp_path)))
    write(tmp_path)
    assert "is a directory" in one_line_error(rfai("filter", "data.jsonl", "-o", str(tmp_path)))
    (tmp_path / "empty.jsonl").write_text("")
    empty = rfai("filter", "empty.jsonl")
    assert empty.returncode == 0 and empty.stdout == "" and "kept 0 of 0 rows" in empty.stderr
    mixed = write(tmp_path, "mixed.jsonl", [ROWS[0], '{"reward": 0.', '{"student_score": "high"}', "\x00\x01", ROWS[3]])
    result = rfai("filter", mixed, "--min-reward", "0.9")
    assert out_lines(result) == [ROWS[0], ROWS[3]]
    assert "mixed.jsonl:2: invalid JSON" in result.stderr and "mixed.jsonl:3: field 'student_score'" in result.stderr
    assert "skipped 3 malformed lines" in result.stderr
    assert "mixed.jsonl:2" in one_line_error(rfai("filter", mixed, "--strict"))
    assert "--top-k must be at least 1" in one_line_error(rfai("filter", "data.jsonl", "--top-k", "0"))
    huge = json.dumps({"prompt": "x" * (10 << 20), "reward": 1.5})
    write(tmp_path, "huge.jsonl", [ROWS[2], huge])
    assert out_lines(rfai("filter", "huge.jsonl", "--min-reward", "1", "-q")) == [huge]


def test_no_file_on_a_terminal_is_an_error_not_a_silent_wait(tmp_path):
    """stdin a terminal and no FILE: a one-line error at once (a pseudo-terminal, as a user has)."""
    import os
    import pty
    import subprocess
    import sys

    from conftest import REPO

    leader, follower = pty.openpty()
    result = subprocess.run(
        [sys.executable, "-m", "rfai_cli", "filter"],
        stdin=follower,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    os.close(leader)
    os.close(follower)
    assert result.returncode == 2 and "no input: give a FILE" in result.stderr


def test_mlx_lm_export_feeds_mlx_lm_lora(rfai, tmp_path, tiny_model_dir):
    """Best-of-n distillation: the kept samples as chat rows, in a directory `mlx_lm.lora --data` trains on."""
    rows = [
        {
            "prompt": f"Write f{i}.",
            "language": "python",
            "student_code": f"def f{i}():\n    return {i}\n",
            "reward": 1.0 + i / 10,
            "split": "validation" if i == 5 else "train",
        }
        for i in range(6)
    ] + [
        {"prompt": "Too weak.", "language": "python", "student_code": "pass", "reward": 0.2},
        {"prompt": "No code.", "language": "python", "reward": 1.5},
    ]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = rfai("filter", "rows.jsonl", "--min-reward", "1", "--format", "mlx-lm", "-o", "sft/")
    assert result.returncode == 0, result.stderr
    assert "without a prompt and student code" in result.stderr
    train = [json.loads(line) for line in (tmp_path / "sft" / "train.jsonl").read_text().splitlines()]
    valid = [json.loads(line) for line in (tmp_path / "sft" / "valid.jsonl").read_text().splitlines()]
    assert len(train) == 5 and len(valid) == 1 and not (tmp_path / "sft" / "test.jsonl").exists()
    system, user, assistant = train[0]["messages"]
    assert system["role"] == "system" and "Python" in system["content"]
    assert user == {"role": "user", "content": "Write f0."}
    assert assistant == {"role": "assistant", "content": "```python\ndef f0():\n    return 0\n```"}
    # one file, to stdout
    single = rfai("filter", "rows.jsonl", "--min-reward", "1", "--format", "mlx-lm", "-q")
    assert [json.loads(line)["messages"][1]["content"] for line in single.stdout.splitlines()][:2] == [
        "Write f0.",
        "Write f1.",
    ]
    lora = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlx_lm",
            "lora",
            "--model",
            str(tiny_model_dir),
            "--train",
            "--data",
            "sft",
            "--iters",
            "3",
            "--batch-size",
            "1",
            "--num-layers",
            "1",
            "--steps-per-report",
            "1",
            "--adapter-path",
            "adapters",
            "--max-seq-length",
            "256",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert lora.returncode == 0, lora.stderr[-2000:]
    assert (tmp_path / "adapters" / "adapters.safetensors").is_file()


def test_dedupe_and_top_k_match_a_plain_reference_on_many_samples(tmp_path):
    """Thousands of samples, many repeated with other rewards (ties too), some without code: the
    partitioned dedupe and the spooled top-k give what a dict and a full sort give."""
    import io
    import random

    from rfai_cli.data.filter import FilterSpec, filter_rows

    rng = random.Random(3)
    rows = []
    for i in range(6000):
        row = {"language": rng.choice(["python", "rust"]), "reward": rng.choice([0.1, 0.5, 0.5, 0.9, None]), "i": i}
        if i % 17:
            row["student_code"] = f"def f():\n    return {rng.randrange(1500)}\n"
        rows.append(json.dumps({k: v for k, v in row.items() if v is not None}))
    path = tmp_path / "many.jsonl"
    path.write_text("\n".join(rows) + "\n")

    best = {}
    for index, line in enumerate(rows):
        row = json.loads(line)
        if "student_code" in row:
            key = (row["language"], normalize_code(row["student_code"]))
            reward = row.get("reward", float("-inf"))
            if key not in best or reward > best[key][0]:
                best[key] = (reward, index)
    winners = {index for _, index in best.values()}
    expected = [line for index, line in enumerate(rows) if index in winners or "student_code" not in json.loads(line)]
    out = io.BytesIO()
    report = filter_rows(path, out, FilterSpec(dedupe=True))
    assert out.getvalue().decode().splitlines() == expected and report.dropped["duplicates"] == len(rows) - len(
        expected
    )

    scored = [
        (json.loads(line)["reward"], -index, line) for index, line in enumerate(rows) if "reward" in json.loads(line)
    ]
    out = io.BytesIO()
    filter_rows(path, out, FilterSpec(top_k=700))
    assert out.getvalue().decode().splitlines() == [line for *_, line in sorted(scored, reverse=True)[:700]]
