import gzip
import json
import subprocess
import sys

import pytest

from rfai_cli.data.layout import split_path
from rfai_cli.errors import InputError
from rfai_cli.records import (
    JsonlWriter,
    Skip,
    new_record,
    normalize_language,
    read_rows,
)


@pytest.mark.parametrize(
    "given,expected",
    [
        ("c++", "cpp"),
        ("C++", "cpp"),
        ("cxx", "cpp"),
        ("cpp", "cpp"),
        ("py", "python"),
        ("Python", "python"),
        ("rs", "rust"),
    ],
)
def test_language_names_are_normalised(given, expected):
    assert normalize_language(given) == expected


def test_prompt_only_rows_read(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "Implement a binary search function", "language": "C++"}\n')
    assert list(read_rows(path)) == [{"prompt": "Implement a binary search function", "language": "cpp"}]


def test_malformed_lines_are_reported_with_file_and_line_and_skipped(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_bytes(
        b'{"prompt": "a", "student_score": 0.5}\n'
        b"{not json\n"
        b'{"prompt": "b", "student_score": "high"}\n'
        b"[1, 2]\n"
        b"\xff\xfe\x00binary\n"
        b"\n"
        b'{"prompt": "c", "extra": {"kept": true}}\n'
    )
    skips: list[Skip] = []
    rows = list(read_rows(path, on_skip=skips.append))
    assert [row["prompt"] for row in rows] == ["a", "c"]
    assert rows[1]["extra"] == {"kept": True}
    assert [skip.line for skip in skips] == [2, 3, 4, 5]
    assert "student_score" in skips[1].reason and "number" in skips[1].reason
    assert str(skips[0]).startswith(f"{path}:2: invalid JSON")


def test_strict_stops_at_first_bad_line(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"prompt": "a"}\n{"prompt": 3}\n')
    with pytest.raises(InputError, match=r"data.jsonl:2: field 'prompt'"):
        list(read_rows(path, strict=True))


def test_booleans_are_not_scores(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"reward": true}\n')
    skips = []
    assert list(read_rows(path, on_skip=skips.append)) == []
    assert len(skips) == 1


def test_gzip_and_ten_megabyte_line(tmp_path):
    path = tmp_path / "data.jsonl.gz"
    big = "x" * 10_000_000
    with gzip.open(path, "wt") as out:
        out.write(json.dumps({"prompt": big}) + "\n")
        out.write(json.dumps({"prompt": "small"}) + "\n")
    rows = list(read_rows(path))
    assert [len(row["prompt"]) for row in rows] == [10_000_000, 5]


def test_missing_file_and_directory_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        list(read_rows(tmp_path / "absent.jsonl"))
    with pytest.raises(InputError, match="is a directory"):
        list(read_rows(tmp_path))


def test_stdin_is_read_for_dash():
    code = "from rfai_cli.records import read_rows; print([r['prompt'] for r in read_rows('-')])"
    result = subprocess.run(
        [sys.executable, "-c", code], input='{"prompt": "p1"}\n{"prompt": "p2"}\n', capture_output=True, text=True
    )
    assert result.stdout.strip() == "['p1', 'p2']"


def test_writer_appends_whole_lines_and_repairs_a_torn_tail(tmp_path):
    path = tmp_path / "out" / "train.jsonl"
    with JsonlWriter(path) as writer:
        writer.write(new_record(prompt="a", language="py", student_score=0.5))
    # Simulate a crash that left half a line behind.
    with open(path, "a") as out:
        out.write('{"prompt": "tor')
    with JsonlWriter(path) as writer:
        writer.write_many([new_record(prompt="b"), new_record(prompt="c")])
    skips = []
    rows = list(read_rows(path, on_skip=skips.append))
    assert [row["prompt"] for row in rows] == ["a", "b", "c"]
    assert len(skips) == 1 and skips[0].line == 2
    assert rows[0]["language"] == "python"
    assert rows[0]["schema_version"] == 1
    assert list(rows[0])[:4] == ["prompt", "language", "student_score", "timestamp"]


def test_split_paths():
    assert split_path("datasets", "evaluation").name == "evaluation.jsonl"
    with pytest.raises(InputError, match="unknown split 'test'"):
        split_path("datasets", "test")
