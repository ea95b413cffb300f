"""`rfai score` end to end, through the real CLI in a subprocess."""

from __future__ import annotations

import json
import os

ROWS = [
    {
        "prompt": "add",
        "language": "python",
        "tests": ["assert add(1, 2) == 3", "assert add(2, 2) == 4"],
        "student_code": "```python\ndef add(a, b):\n    return a + b\n```",
        "teacher_code": 'def add(a, b):\n    """Add."""\n    return a + b\n',
    },
    "{not json",
    {"prompt": "bad tests", "language": "python", "tests": [1, 2], "student_code": "x = 1"},
    {"prompt": "no code", "language": "python"},
    {
        "prompt": "wrong",
        "language": "python",
        "tests": ["assert add(1, 2) == 3"],
        "student_code": "def add(a, b):\n    return a - b\n",
        "teacher_code": "def add(a, b):\n    return a + b\n",
    },
]


def write_rows(path):
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in ROWS))


def test_score_reports_malformed_rows_and_scores_the_rest(rfai, tmp_path):
    write_rows(tmp_path / "in.jsonl")
    result = rfai("score", "in.jsonl", "-o", "out.jsonl", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["scored"] == 2 and summary["rows_written"] == 4
    assert any(p.startswith("in.jsonl:2: invalid JSON") for p in summary["problems"])
    assert any(p.startswith("in.jsonl:3: not scored: field 'tests'") for p in summary["problems"])
    assert any(p.startswith("in.jsonl:4: not scored: no 'student_code'") for p in summary["problems"])
    assert "warning: in.jsonl:2:" in result.stderr
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [row["prompt"] for row in rows] == ["add", "bad tests", "no code", "wrong"]
    good, wrong = rows[0], rows[3]
    assert good["test_results"]["student"] == {
        "passed": 2,
        "total": 2,
        "cpu_s": good["test_results"]["student"]["cpu_s"],
    }
    assert good["reward"] == round(good["student_score"] / good["teacher_score"], 3)
    assert wrong["student_breakdown"]["correctness"] == 0.0 and wrong["reward"] < good["reward"]
    assert "student_score" not in rows[1] and "student_score" not in rows[2]
    # exactly the isolation of this mode, in the report and in every scored row
    isolation = set(summary["isolation"])
    assert {"private-root", "pidns", "netns", "no-capabilities"} <= isolation
    assert ("uid-drop" in isolation) == (os.geteuid() == 0) and ("userns" in isolation) == (os.geteuid() != 0)
    assert good["score_sources"]["sandbox"] == summary["isolation"] == wrong["score_sources"]["sandbox"]
    assert "kernel refused namespaces" not in result.stderr


def test_rescore_in_place_with_new_weights_and_stdout(rfai, tmp_path):
    write_rows(tmp_path / "data.jsonl")
    (tmp_path / "config.yaml").write_text(
        "scoring:\n  weights:\n    correctness: 1.0\n    code_quality: 0.0\n    efficiency: 0.0\n    documentation: 0.0\n"
    )
    result = rfai("score", "data.jsonl", "-o", "data.jsonl")
    assert result.returncode == 0, result.stderr
    assert "scored 2 of 4 rows" in result.stderr
    rows = [json.loads(line) for line in (tmp_path / "data.jsonl").read_text().splitlines()]
    assert rows[0]["scoring_breakdown"]["correctness"] == 1.0 and rows[0]["student_score"] == 1.0
    assert rows[3]["student_score"] == 0.0
    assert not list(tmp_path.glob("*.partial"))

    piped = rfai("score", "-", input=json.dumps(ROWS[0]) + "\n")
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout)["student_score"] == 1.0


def test_score_missing_file_is_one_line(rfai):
    result = rfai("score", "nope.jsonl")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: nope.jsonl: no such file"


def test_score_asks_the_configured_teacher_to_judge(rfai, tmp_path):
    """With teacher.judge on, a row without tests gets its correctness from the teacher's verdict."""
    from support.messages_server import VERDICT, MessagesServer

    server = MessagesServer()
    try:
        (tmp_path / "config.yaml").write_text(
            "teacher:\n  provider: anthropic\n  model_name: claude-test\n  judge: true\n"
            f"  base_url: {server.url}\n  api_key_env: RFAI_TEST_KEY\n  cache_dir: {tmp_path / 'cache'}\n"
        )
        (tmp_path / "in.jsonl").write_text(
            json.dumps(
                {
                    "prompt": "add two numbers",
                    "language": "python",
                    "student_code": "def add(a, b):\n    return a + b\n",
                }
            )
            + "\n"
        )
        result = rfai("score", "in.jsonl", "-o", "out.jsonl", env={"RFAI_TEST_KEY": "sk-test-not-real"})
        assert result.returncode == 0, result.stderr
        (row,) = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
        assert row["score_sources"]["student"]["correctness"] == "judge"
        assert row["student_breakdown"]["correctness"] == VERDICT["correctness"]
        assert server.count >= 1
        missing = rfai("score", "in.jsonl", "-o", "out2.jsonl", env={"RFAI_TEST_KEY": ""})
        assert missing.returncode != 0 and "RFAI_TEST_KEY" in missing.stderr
        assert not (tmp_path / "out2.jsonl").exists()
    finally:
        server.close()
