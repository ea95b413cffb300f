import pytest

COMMANDS = ("train", "collect", "card", "upload", "stats", "filter", "score")


def test_help_lists_every_subcommand(rfai):
    result = rfai("--help")
    assert result.returncode == 0
    # Each command starts a row of the commands panel (a substring could be any word of the help).
    listed = {line.strip("│ ").split(" ")[0] for line in result.stdout.splitlines() if line.startswith("│ ")}
    assert set(COMMANDS) <= listed, listed


def test_version(rfai):
    result = rfai("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("rfai ")


def test_unknown_command_is_a_usage_error(rfai):
    result = rfai("trian")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_help_keeps_the_config_key_hints_and_v_prints_the_version(rfai):
    """`[training.x]` in a help text is rich markup unless escaped: it used to vanish."""
    collect = rfai("collect", "--help", env={"COLUMNS": "250"})
    assert collect.returncode == 0
    assert "[training.max_new_tokens]" in collect.stdout and "[training.num_samples_per_prompt]" in collect.stdout
    train = rfai("train", "--help", env={"COLUMNS": "250"})
    assert "[training.max_steps]" in train.stdout and "[model.base_model]" in train.stdout
    version = rfai("-V")
    assert version.returncode == 0 and version.stdout.startswith("rfai ")


def test_help_shows_plain_metavars(rfai):
    """A flag shows no type, a value its metavar or TEXT/PATH/INTEGER, an argument only its name
    (typer 0.29 writes <bool> after every flag and <str> after every argument)."""
    import re

    for name in COMMANDS:
        text = rfai(name, "--help", env={"COLUMNS": "250"}).stdout
        assert not re.findall(r"<(?:bool|str|int|float|path|list\[\w+\])>", text), name
    lines = rfai("filter", "--help", env={"COLUMNS": "250"}).stdout.splitlines()
    row = {line.split()[1]: line.split()[2:4] for line in lines if line.startswith("│ --")}
    assert row["--dedupe"][0] == "One" and row["--language"][1] == "TEXT" and row["--format"][0] == "[jsonl|mlx-lm]"
    usage = {name: rfai(name, "--help").stdout.split(f" {name} ")[1].splitlines()[0].strip() for name in COMMANDS}
    assert usage["stats"] == "[OPTIONS] FILE..." and usage["score"] == "[OPTIONS] FILE"
    assert usage["filter"] == "[OPTIONS] [FILE]" and usage["card"] == "[OPTIONS] [DIR]"
    assert "INT RANGE" not in rfai("collect", "--help", env={"COLUMNS": "250"}).stdout


def test_every_option_says_what_it_does_beyond_its_config_key():
    """`[training.max_new_tokens]` alone is a key, not a description."""
    import re

    import typer

    from rfai_cli.cli import app

    for name, command in typer.main.get_command(app).commands.items():
        for param in command.params:
            if not getattr(param, "hidden", False):
                words = re.sub(r"\\?\[[\w.]+\]", "", param.help or "").strip(" .")
                assert words, f"{name} {param.opts[0]}"


def test_every_help_example_uses_options_its_command_has():
    """The examples under each --help are parsed by the command itself: a renamed or removed
    option would make one fail here, not in a user's shell."""
    import shlex

    import typer

    from rfai_cli.cli import EXAMPLES, app

    group = typer.main.get_command(app)
    assert set(EXAMPLES) == set(group.commands)
    for name, examples in EXAMPLES.items():
        for example in examples:
            words = shlex.split(example.split("| ")[-1])
            assert words[:2] == ["rfai", name], example
            group.commands[name].make_context(name, words[2:])  # raises on an unknown option or a bad value


def test_every_json_output_is_one_compact_line(rfai, tmp_path):
    """Scripts read --json the same way from every command: one object on one line."""
    import json

    row = {
        "prompt": "p",
        "language": "python",
        "student_code": "def f():\n    return 1\n",
        "reward": 1.0,
        "student_score": 0.5,
        "teacher_score": 0.5,
    }
    (tmp_path / "rows.jsonl").write_text(json.dumps(row) + "\n")
    for args in (("stats", "rows.jsonl", "--json"), ("score", "rows.jsonl", "-o", "scored.jsonl", "--json")):
        result = rfai(*args)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert len(lines) == 1 and isinstance(json.loads(lines[0]), dict), result.stdout


def test_the_dataset_directory_is_dataset_dir_everywhere_and_the_old_spelling_still_works(rfai, tmp_path):
    for command in ("collect", "train", "upload"):
        text = rfai(command, "--help").stdout
        assert "--dataset-dir" in text and "-d " in text and "--output-dir" not in text, command
    import typer

    from rfai_cli.cli import app

    group = typer.main.get_command(app)
    for command in ("collect", "train"):
        old = group.commands[command].make_context(command, ["-o", "mine"]).params
        new = group.commands[command].make_context(command, ["-d", "mine"]).params
        assert str(old["output_dir"]) == str(new["dataset_dir"]) == "mine"


def test_quiet_and_json_on_every_command_that_reports(rfai, tmp_path):
    """--quiet leaves nothing but warnings and errors; every command that writes something has --json."""
    import json

    import typer

    from rfai_cli.cli import app

    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        options = {opt for param in command.params for opt in param.opts}
        assert "--json" in options, name
        assert "--quiet" in options, name
    row = {"prompt": "p", "language": "python", "student_code": "def f():\n    return 1\n"}
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text(json.dumps(row) + "\n")
    for args in (
        ("card", "data", "-q"),
        ("stats", "data", "-q"),
        ("score", "data/train.jsonl", "-o", "scored.jsonl", "-q"),
    ):
        result = rfai(*args)
        assert result.returncode == 0 and result.stdout == "" and result.stderr == "", (args, result.stderr)
    assert json.loads(rfai("card", "data", "--json").stdout)["card"].endswith("README.md")


def test_rfai_debug_shows_the_traceback_behind_the_one_line_error(rfai, tmp_path):
    (tmp_path / "bad.yaml").write_text("training:\n  learnig_rate: 1\n")
    plain = rfai("stats", "x.jsonl", "--config", "bad.yaml")
    debug = rfai("stats", "x.jsonl", "--config", "bad.yaml", env={"RFAI_DEBUG": "1"})
    assert plain.returncode == debug.returncode == 2
    assert plain.stderr.count("\n") == 1 and "Traceback" not in plain.stderr
    assert "Traceback (most recent call last)" in debug.stderr and "load_config" in debug.stderr
    assert debug.stderr.splitlines()[-1] == plain.stderr.strip()  # the same line, last


def test_every_rfai_command_in_the_readme_parses():
    """README's commands are parsed by the real commands (make tour runs the tour itself): a
    renamed option or a bad value fails here."""
    import re
    import shlex

    import typer
    from conftest import REPO
    from support.readme_tour import tour_lines

    from rfai_cli.cli import app

    group = typer.main.get_command(app)
    readme = (REPO / "README.md").read_text()
    blocks = "\n".join(re.findall(r"```bash\n(.*?)```", readme, re.S))
    commands = [
        part.split("  #")[0].strip()
        for line in blocks.splitlines()
        for part in re.split(r"&&|;", line)
        if part.strip().startswith("rfai ")
    ]
    assert len(commands) >= 8 and set(tour_lines(REPO / "README.md")) - {"source .venv/bin/activate"} <= set(commands)
    for command in commands:
        words = shlex.split(command)
        group.commands[words[1]].make_context(words[1], words[2:])  # raises on an unknown option or a bad value


def test_shell_completion_completes_commands_options_and_choices(tmp_path):
    """The installed `rfai` answers bash's completion protocol (what --install-completion wires up)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    rfai_script = Path(sys.executable).parent / "rfai"

    def complete(words: str) -> list[str]:
        env = {**os.environ, "_RFAI_COMPLETE": "complete_bash", "COMP_WORDS": words}
        env["COMP_CWORD"] = str(len(words.split()) - (0 if words.endswith(" ") else 1))
        result = subprocess.run([rfai_script], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    assert complete("rfai fil") == ["filter"]
    assert complete("rfai filter --min-r") == ["--min-reward"]
    assert complete("rfai filter --format ") == ["jsonl", "mlx-lm"]
    assert complete("rfai collect --split ") == ["train", "validation", "evaluation"]


def test_a_usage_error_is_one_unwrapped_line_in_a_pipe_and_a_panel_on_a_terminal(rfai, tmp_path):
    import os

    from conftest import REPO, RFAI
    from support.terminal import run_on_terminal

    for args, message in (
        (
            ("collect", "--limit", "0"),
            "error: Invalid value for '--limit' / '-n': Input should be greater than or equal to 1",
        ),
        (("stats", "--nope", "x"), "error: No such option: --nope"),
        (("trian",), "error: No such command 'trian'. Did you mean 'train'?"),
    ):
        result = rfai(*args, env={"COLUMNS": "80"})
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.count("\n") == 1 and result.stderr.startswith(message), result.stderr
    code, text = run_on_terminal([*RFAI, "collect", "--limit", "0"], tmp_path, {**os.environ, "PYTHONPATH": str(REPO)})
    text = __import__("re").sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)  # colours
    assert code == 2 and "╭─ Error" in text and "Invalid value for '--limit'" in text


def test_help_at_80_columns_folds_long_words_instead_of_cutting_them(rfai):
    """`[training.num_samples_per_prompt]` used to end as `[training.num_samp…` in an 80-column terminal."""
    for name in COMMANDS:
        text = rfai(name, "--help", env={"COLUMNS": "80"}).stdout
        assert "…" not in text, (name, [line for line in text.splitlines() if "…" in line])
        assert max(map(len, text.splitlines())) <= 80, name


def test_a_bad_config_stops_nproc_once_before_any_rank_starts(rfai, tmp_path):
    result = rfai("train", "--nproc", "2", "--set", "training.batch_size=x", "--learning-rate", "1e-4")
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["error: --set: training.batch_size: expected an integer, got 'x'"]
    flags = rfai("train", "--lr", "0", "--nproc", "2")
    assert flags.returncode == 2
    assert flags.stderr.splitlines() == ["error: command line: training.learning_rate: input should be greater than 0"]


@pytest.mark.parametrize("as_json", [False, True])
def test_a_reader_that_stops_early_is_not_a_failure(tmp_path, as_json):
    """`rfai stats f | head -1`: rich's own broken-pipe handling exits 1; rfai exits 0, silently."""
    import json
    import os
    import subprocess

    from conftest import REPO, RFAI

    rows = "".join(
        json.dumps({"task_id": f"t{i}", "language": "python", "student_score": 0.5}) + "\n" for i in range(3000)
    )
    (tmp_path / "rows.jsonl").write_text(rows)
    process = subprocess.Popen(
        [*RFAI, "stats", "rows.jsonl", "--by", "task_id", *(["--json"] if as_json else [])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    process.stdout.read(10)  # the table is far larger than the pipe's buffer: the writer meets a closed pipe
    process.stdout.close()
    assert process.wait(timeout=120) == 0
    assert process.stderr.read() == b""
