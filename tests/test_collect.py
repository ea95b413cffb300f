"""`rfai collect` through the real CLI: tiny random model for the mechanics, the embedded SmolLM2 end to end."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO

from rfai_cli.engine.embedded import MODEL_NAME


def config_file(tmp_path: Path, model_dir: Path, **sections: str) -> Path:
    """A config whose student and teacher are the tiny model, with short answers to keep tests quick."""
    text = f"""
model:
  base_model: {model_dir}
teacher:
  max_tokens: 24
  judge: false
  cache_dir: {tmp_path / "teacher-cache"}
training:
  max_new_tokens: 24
  batch_size: 2
"""
    for section in sections.values():
        text += section
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_collect_writes_scored_rows_and_resumes_without_duplicates(rfai, tmp_path, tiny_model_dir):
    config_file(tmp_path, tiny_model_dir)
    first = rfai("collect", "--limit", "3", "--samples", "2", "--json")
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["rows_written"] == 6
    rows = rows_of(tmp_path / "datasets" / "train.jsonl")
    assert [(row["task_id"], row["sample_index"]) for row in rows][:2] == [
        (rows[0]["task_id"], 0),
        (rows[0]["task_id"], 1),
    ]
    row = rows[0]
    for field in (
        "prompt",
        "language",
        "student_code",
        "teacher_code",
        "student_score",
        "teacher_score",
        "reward",
        "scoring_breakdown",
        "timestamp",
        "student_breakdown",
        "teacher_breakdown",
        "score_sources",
        "test_results",
        "split",
        "run_id",
        "student_model",
        "teacher_model",
        "schema_version",
        "tests",
    ):
        assert field in row, field
    assert row["scoring_breakdown"] == {
        "correctness": 0.3,
        "code_quality": 0.3,
        "efficiency": 0.2,
        "documentation": 0.2,
    }
    assert row["split"] == "train" and row["student_model"] == str(tiny_model_dir)
    assert row["test_results"]["student"]["total"] == len(row["tests"])
    (metadata,) = json.loads((tmp_path / "datasets" / "run.json").read_text())["runs"]
    assert metadata["rubric_weights"]["correctness"] == 0.3 and metadata["student_model"] == str(tiny_model_dir)
    assert metadata["run_id"] == row["run_id"] and metadata["split"] == "train" and metadata["rfai_version"]

    # The same run again adds nothing; a larger limit adds only the new prompts.
    again = rfai("collect", "--limit", "3", "--samples", "2", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["rows_written"] == 0
    assert "3 of 3 prompts already collected" in again.stderr
    more = rfai("collect", "--limit", "4", "--samples", "2", "--json")
    assert json.loads(more.stdout)["rows_written"] == 2
    keys = [(row["task_id"], row["sample_index"]) for row in rows_of(tmp_path / "datasets" / "train.jsonl")]
    assert len(keys) == len(set(keys)) == 8


def test_no_resume_refuses_to_mix_into_existing_rows(rfai, tmp_path, tiny_model_dir):
    config_file(tmp_path, tiny_model_dir)
    out = tmp_path / "datasets" / "train.jsonl"
    out.parent.mkdir()
    out.write_text('{"prompt": "x", "task_id": "t", "sample_index": 0}\n')
    result = rfai("collect", "--limit", "1", "--no-resume")
    assert result.returncode == 2
    assert "already holds rows" in result.stderr and "Traceback" not in result.stderr
    assert out.read_text().count("\n") == 1


def test_a_malformed_prompt_line_is_reported_by_the_command(rfai, tmp_path, tiny_model_dir):
    config_file(tmp_path, tiny_model_dir)
    (tmp_path / "prompts.jsonl").write_text('not json\n{"prompt": "Add two numbers.", "task_id": "add"}\n')
    result = rfai("collect", "--prompts", "prompts.jsonl", "--samples", "1")
    assert result.returncode == 0, result.stderr
    assert "warning: skipped prompts.jsonl:1: invalid JSON" in result.stderr
    assert len(rows_of(tmp_path / "datasets" / "train.jsonl")) == 1


def test_card_shows_the_reward_numbers_of_every_collect_run(rfai, tmp_path, tiny_model_dir):
    """run.json is written and read by one owner: a real collect's floor and cap reach the card,
    and a second split's run is added to the log, not written over the first."""
    config_file(tmp_path, tiny_model_dir, scoring="scoring:\n  reward_floor: 0.125\n  reward_cap: 3.5\n")
    for split in ("train", "validation"):
        result = rfai("collect", "--limit", "1", "--samples", "1", "--split", split, "--prompts", "builtin")
        assert result.returncode == 0, result.stderr
    runs = json.loads((tmp_path / "datasets" / "run.json").read_text())["runs"]
    assert [run["split"] for run in runs] == ["train", "validation"]
    assert rfai("card", "datasets").returncode == 0
    card = (tmp_path / "datasets" / "README.md").read_text()
    assert "min(3.5, student_score / max(teacher_score, 0.125))" in card
    assert "floor" not in card.split("## How it was collected")[-1].split("min(")[1].split(")")[0]


def test_every_setting_a_resume_can_refuse_is_named_by_its_config_key():
    """The refusal names what to change in config.yaml, not run.json's own layout."""
    from rfai_cli.config import Config
    from rfai_cli.runs import config_key, fingerprint

    def leaves(value, path=""):
        if isinstance(value, dict):
            for key, inner in value.items():
                yield from leaves(inner, f"{path}.{key}" if path else key)
        else:
            yield path

    for path in leaves(fingerprint(Config())):
        section, *rest = config_key(path).split(".")
        model = getattr(Config(), section)
        for name in rest:
            assert name in type(model).model_fields, (path, config_key(path))
            model = getattr(model, name)


def test_resume_refuses_rows_made_with_other_settings_and_overwrite_starts_over(rfai, tmp_path, tiny_model_dir):
    config_file(tmp_path, tiny_model_dir)
    assert rfai("collect", "--limit", "2", "--samples", "1").returncode == 0
    before = (tmp_path / "datasets" / "train.jsonl").read_bytes()
    (tmp_path / "datasets" / "train.jsonl").chmod(0o640)
    for args, named in (
        (["--model", str(tmp_path / "another-model")], "model.base_model"),
        (["--max-new-tokens", "7"], "training.max_new_tokens"),
    ):
        result = rfai("collect", "--limit", "2", "--samples", "1", *args)
        assert result.returncode == 2, result.stderr
        error = result.stderr.strip().splitlines()
        assert (
            len(error) == 1
            and f"was collected with {named} = " in error[0]
            and "--overwrite" in error[0]
            and "--dataset-dir" in error[0]
        ), error
        assert (tmp_path / "datasets" / "train.jsonl").read_bytes() == before
    again = rfai("collect", "--limit", "2", "--samples", "1", "--max-new-tokens", "7", "--overwrite", "--json")
    assert again.returncode == 0, again.stderr
    rows = rows_of(tmp_path / "datasets" / "train.jsonl")
    assert (
        len(rows) == 2 and len({row["run_id"] for row in rows}) == 1 and json.loads(again.stdout)["rows_written"] == 2
    )
    assert not [p for p in (tmp_path / "datasets").iterdir() if p.name.startswith(".rfai-tmp-")]
    assert (tmp_path / "datasets" / "train.jsonl").stat().st_mode & 0o777 == 0o640  # the file's own permissions kept
    # now it resumes with the new settings
    assert (
        "2 of 2 prompts already collected"
        in rfai("collect", "--limit", "2", "--samples", "1", "--max-new-tokens", "7").stderr
    )


def test_the_same_seed_gives_the_same_rows(rfai, tmp_path, tiny_model_dir):
    config_file(tmp_path, tiny_model_dir, training="  seed: 7\n  generation_temperature: 1.0\n")
    produced = []
    for directory in ("first", "second", "third"):
        extra = ["--config", str(tmp_path / "seed3.yaml")] if directory == "third" else []
        if directory == "third":
            (tmp_path / "seed3.yaml").write_text((tmp_path / "config.yaml").read_text().replace("seed: 7", "seed: 8"))
        result = rfai("collect", "--limit", "2", "--samples", "2", "-o", directory, *extra)
        assert result.returncode == 0, result.stderr
        rows = rows_of(tmp_path / directory / "train.jsonl")
        for row in rows:  # measured CPU times are the only other thing that may differ
            for side in row["test_results"].values():
                (side or {}).pop("cpu_s", None)
        produced.append([{k: v for k, v in row.items() if k not in ("timestamp", "run_id")} for row in rows])
    assert produced[0] == produced[1]
    assert [row["student_code"] for row in produced[0]] != [row["student_code"] for row in produced[2]]


def test_seed_prompt_file_without_tests_gets_measured_capped_correctness(rfai, tmp_path, tiny_model_dir):
    config_file(tmp_path, tiny_model_dir)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "Implement a binary search function", "language": "python"}\n{"oops\n')
    result = rfai("collect", "--prompts", prompts, "--samples", "1", "--split", "validation", "--json")
    assert result.returncode == 0, result.stderr
    assert "prompts.jsonl:2" in result.stderr  # the malformed line is reported
    (row,) = rows_of(tmp_path / "datasets" / "validation.jsonl")
    assert row["split"] == "validation" and row["tests"] is None
    assert row["score_sources"]["student"]["correctness"] == "measured"
    assert row["student_score"] <= 0.5  # random tiny-model text: at most the measured cap
    assert row["test_results"]["student"]["notes"][0].startswith("no tests, no judge")


def test_missing_teacher_key_fails_before_any_work(rfai, tmp_path, tiny_model_dir):
    config_file(tmp_path, tiny_model_dir, teacher="")
    (tmp_path / "config.yaml").write_text(
        (tmp_path / "config.yaml")
        .read_text()
        .replace("teacher:\n", "teacher:\n  provider: anthropic\n  model_name: claude\n", 1)
    )
    result = rfai("collect", "--limit", "1", env={"ANTHROPIC_API_KEY": ""})
    assert result.returncode != 0
    assert "ANTHROPIC_API_KEY" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "datasets" / "train.jsonl").exists()


def test_interrupted_run_resumes_with_only_whole_rows(tmp_path, tiny_model_dir):
    config_file(tmp_path, tiny_model_dir)
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
    command = [sys.executable, "-m", "rfai_cli", "collect", "--limit", "12", "--samples", "2", "--batch-size", "1"]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    out = tmp_path / "datasets" / "train.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 2):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    written = rows_of(out)  # every line parses: no half row
    assert 2 <= len(written) < 24

    resumed = subprocess.run(command + ["--json"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    keys = [(row["task_id"], row["sample_index"]) for row in rows_of(out)]
    assert len(keys) == len(set(keys)) == 24


@pytest.mark.slow
def test_embedded_model_end_to_end_then_stats(rfai, tmp_path):
    """The offline demo path: the embedded SmolLM2 as student and teacher, then `rfai stats` on the result."""
    (tmp_path / "config.yaml").write_text(f"teacher:\n  max_tokens: 96\n  cache_dir: {tmp_path / 'cache'}\n")
    result = rfai("collect", "--limit", "2", "--samples", "2", "--max-new-tokens", "96", "--json", timeout=900)
    assert result.returncode == 0, result.stderr
    rows = rows_of(tmp_path / "datasets" / "train.jsonl")
    assert len(rows) == 4
    assert {row["student_model"] for row in rows} == {MODEL_NAME}
    # The built-in tasks carry reference solutions: they teach (teacher.provider auto), and pass every test.
    assert {row["teacher_model"] for row in rows} == {"reference"}
    assert all(row["teacher_score"] == 1.0 for row in rows)
    assert all(row["reward"] == row["student_score"] for row in rows)  # a perfect teacher: reward = score
    assert "embedded" not in result.stderr  # no model wrote a reference, so no weak-teacher warning
    stats = rfai("stats", "datasets/train.jsonl", "--json")
    assert stats.returncode == 0, stats.stderr
    figures = json.loads(stats.stdout)
    assert figures["rows"] == 4 and figures["skipped"]["total"] == 0
    assert figures["student_score"]["mean"] == pytest.approx(sum(row["student_score"] for row in rows) / 4, abs=1e-6)


def test_local_teacher_judges_from_scoring_threads_while_the_student_generates(rfai, tmp_path, tiny_model_dir):
    """The mlx teacher shares the student's weights; its judge runs on the scorer's threads while the
    next batch generates. Every verdict must be a real judge answer (here unparsable: the model is
    random), never an engine error from running MLX on two threads at once."""
    path = config_file(tmp_path, tiny_model_dir)
    path.write_text(path.read_text().replace("judge: false", "judge: true"))
    result = rfai("collect", "--limit", "3", "--samples", "2", "--batch-size", "1", "--json")
    assert result.returncode == 0, result.stderr
    rows = rows_of(tmp_path / "datasets" / "train.jsonl")
    notes = [
        note for row in rows for note in row["test_results"]["student"].get("notes", []) if note.startswith("judge")
    ]
    assert len(notes) == len(rows)
    assert all("unparsable judge answer" in note for note in notes), notes


def test_reference_solutions_teach_and_a_failing_one_is_reported_once(rfai, tmp_path, tiny_model_dir):
    config_file(tmp_path, tiny_model_dir)
    prompts = tmp_path / "prompts.jsonl"
    rows = [
        {
            "task_id": "good",
            "prompt": "Add.",
            "tests": ["assert add(1, 2) == 3"],
            "solution": 'def add(a, b):\n    """Sum."""\n    return a + b\n',
        },
        {
            "task_id": "bad",
            "prompt": "Add!",
            "tests": ["assert add(1, 2) == 3"],
            "solution": "def add(a, b):\n    return a - b\n",
        },
        {"task_id": "none", "prompt": "Mul.", "tests": ["assert mul(2, 2) == 4"]},
    ]
    prompts.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = rfai("collect", "--prompts", prompts, "--samples", "2", "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("task bad: its reference solution passes 0 of 1 of its own tests") == 1
    assert "task good" not in result.stderr
    written = rows_of(tmp_path / "datasets" / "train.jsonl")
    by_task = {row["task_id"]: row for row in written}
    assert by_task["good"]["teacher_model"] == by_task["bad"]["teacher_model"] == "reference"
    assert by_task["good"]["teacher_score"] == 1.0 and by_task["bad"]["teacher_score"] == 0.0
    assert by_task["none"]["teacher_model"] == str(tiny_model_dir)  # no solution: the model teaches


def test_on_a_terminal_collect_shows_its_phase_an_eta_and_the_next_command(rfai, tmp_path, tiny_model_dir):
    from conftest import RFAI
    from support.terminal import run_on_terminal, screen_lines

    config_file(tmp_path, tiny_model_dir)
    code, text = run_on_terminal(
        [*RFAI, "collect", "--limit", "6", "--samples", "2"], tmp_path, {**os.environ, "PYTHONPATH": str(REPO)}
    )
    assert code == 0, text
    plain = __import__("re").sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)  # colours and cursor moves
    assert "generation, batch 1 of 3" in plain and "scoring batch 3 of 3" in plain
    for columns in (60, 80, 120):  # the counts and the ETA hold on one line at every width
        code, text = run_on_terminal(
            [*RFAI, "collect", "--limit", "6", "--samples", "2", "-d", f"at{columns}"],
            tmp_path,
            {**os.environ, "PYTHONPATH": str(REPO)},
            columns=columns,
        )
        shown = screen_lines(text, columns)
        (bar,) = [line for line in shown if line.startswith("collect ")]
        assert re.search(r" 6/6 prompts \d+:\d\d:\d\d \d+:\d\d:\d\d$", bar), (columns, shown)  # the ETA has a value
        detail = shown[shown.index(bar) + 1]
        assert re.match(r"\d+\.\d\d samples/s, mean reward (-|\d\.\d{3}), ", detail), shown
    piped = rfai("collect", "--limit", "2", "--samples", "1", "-o", "more")
    assert piped.returncode == 0, piped.stderr
    last = piped.stdout.strip().splitlines()[-1]  # the summary ends with what to run next
    assert last == "next: rfai stats more; rfai upload --repo-id ID --dataset-dir more", piped.stdout
    assert (tmp_path / "more" / "README.md").is_file()  # the card is written by collect itself


def test_collect_evaluates_a_trained_adapter_named_on_the_command_line(rfai, tmp_path, tiny_model_dir):
    from test_train import config_text

    (tmp_path / "config.yaml").write_text(config_text(tiny_model_dir, 1))
    assert rfai("train").returncode == 0
    adapted = rfai("collect", "--adapter-path", "checkpoints", "--limit", "1", "--samples", "1", "-d", "adapted")
    assert adapted.returncode == 0, adapted.stderr
    (run,) = json.loads((tmp_path / "adapted" / "run.json").read_text())["runs"]
    assert run["fingerprint"]["adapters"] == "checkpoints"
    # Each row says which adapter wrote it, so the base model and the adapter can be told apart.
    weights = hashlib.sha256((tmp_path / "checkpoints" / "adapters.safetensors").read_bytes()).hexdigest()
    (row,) = [json.loads(line) for line in (tmp_path / "adapted" / "train.jsonl").read_text().splitlines()]
    assert row["student_adapter"] == f"checkpoints@{weights[:12]}"
    assert rfai("collect", "--limit", "1", "--samples", "1", "-d", "base").returncode == 0
    assert "student_adapter" not in json.loads((tmp_path / "base" / "train.jsonl").read_text())
    groups = json.loads(rfai("stats", "base", "adapted", "--by", "model", "--json").stdout)["by"]["model"]
    assert set(groups) == {row["student_model"], f"{row['student_model']} + checkpoints@{weights[:12]}"}
    missing = rfai("collect", "--adapter-path", "nowhere", "--limit", "1", "-d", "other")
    assert (
        missing.returncode != 0
        and missing.stderr.count("\n") == 1
        and "adapter_config.json not found" in missing.stderr
    )
