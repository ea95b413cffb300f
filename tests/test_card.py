import json
import random

import pytest
from test_stats import one_line_error, seed_row

from rfai_cli.data.card import CUSTOM_END, CUSTOM_START, size_category, write_card
from rfai_cli.data.layout import append_run, read_run_info
from rfai_cli.records import JsonlWriter, new_record


def make_dataset(directory, counts: dict[str, int]):
    directory.mkdir(exist_ok=True)
    rng = random.Random(5)
    for split, count in counts.items():
        rows = []
        for i in range(count):
            extra = {"split": split, "task_id": f"t{i}"}
            if i % 2:
                extra["test_results"] = {"student": {"passed": 1, "total": 2}, "teacher": {"passed": 2, "total": 2}}
            if i % 3 == 0:
                extra["student_score"] = 1  # an integer score in some rows: still float64
            rows.append(new_record(**seed_row(i, rng, **extra)))
        with JsonlWriter(directory / f"{split}.jsonl") as writer:  # the writer collect uses
            writer.write_many(rows)
    return directory


def load(directory, tmp_path):
    import datasets

    return datasets.load_dataset(str(directory), cache_dir=str(tmp_path / "hf-cache"))


@pytest.mark.slow
def test_load_dataset_returns_exactly_the_splits_and_rows_on_disk(tmp_path):
    directory = make_dataset(tmp_path / "ds", {"train": 7, "validation": 2, "evaluation": 3})
    path = write_card(directory, repo_id="me/rfai-python-ds")
    assert path == directory / "README.md"
    loaded = load(directory, tmp_path)
    assert {name: split.num_rows for name, split in loaded.items()} == {"train": 7, "validation": 2, "evaluation": 3}
    assert loaded["evaluation"]["student_score"][0] == 1.0

    from datasets import Features
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(path)
    meta = card.data.to_dict()
    assert meta["license"] == "apache-2.0"
    assert meta["pretty_name"] == "rfai python ds"
    assert meta["size_categories"] == ["n<1K"]
    assert {"code", "python", "cpp", "rust"} <= set(meta["tags"])
    assert meta["configs"] == [
        {
            "config_name": "default",
            "data_files": [
                {"split": "train", "path": "train.jsonl"},
                {"split": "validation", "path": "validation.jsonl"},
                {"split": "evaluation", "path": "evaluation.jsonl"},
            ],
        }
    ]
    # The declared features are the ones datasets loads with.
    assert Features._from_yaml_list(meta["dataset_info"]["features"]) == loaded["train"].features
    assert loaded["train"].features["student_score"].dtype == "float64"
    assert 'load_dataset("me/rfai-python-ds")' in card.text
    assert "| train | `train.jsonl` | 7 |" in card.text


@pytest.mark.slow
def test_only_the_splits_present_and_evaluation_is_not_renamed(tmp_path):
    directory = make_dataset(tmp_path / "ds", {"train": 4, "evaluation": 2})
    write_card(directory)
    loaded = load(directory, tmp_path)
    assert {name: split.num_rows for name, split in loaded.items()} == {"train": 4, "evaluation": 2}


def test_rewrite_is_identical_but_for_the_date_and_keeps_hand_written_text(tmp_path):
    directory = make_dataset(tmp_path / "ds", {"train": 3})
    path = write_card(directory)
    first = path.read_text()
    assert write_card(directory).read_text() == first
    assert "## Notes" not in first  # no heading over an empty section
    edited = first.replace(first[first.index(CUSTOM_START) : first.index(CUSTOM_END)], f"{CUSTOM_START}\nOur notes.\n")
    edited = edited.replace("license: apache-2.0", "license: mit")
    path.write_text(edited)
    again = write_card(directory).read_text()
    assert f"{CUSTOM_START}\nOur notes.\n{CUSTOM_END}" in again
    assert "license: mit" in again  # a license chosen by hand stays
    assert again == edited.replace(CUSTOM_START, f"## Notes\n\n{CUSTOM_START}")  # the notes get their heading
    assert write_card(directory).read_text() == again


def test_a_readme_rfai_did_not_write_is_kept_in_the_notes(tmp_path):
    directory = make_dataset(tmp_path / "ds", {"train": 2})
    (directory / "README.md").write_text("---\nlicense: cc-by-4.0\n---\n# My data\n\nCollected by hand.\n")
    text = write_card(directory).read_text()
    assert "license: cc-by-4.0" in text
    assert f"{CUSTOM_START}\n# My data\n\nCollected by hand.\n{CUSTOM_END}" in text


def test_run_metadata_gives_training_details(tmp_path):
    directory = make_dataset(tmp_path / "ds", {"train": 2})
    run = {
        "run_id": "run-42",
        "command": "train",
        "student_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "teacher_model": "gpt-4o-mini",
        "steps": "many",  # wrong type: ignored, not fatal
        "rubric_weights": {"correctness": 0.3, "code_quality": 0.3, "efficiency": 0.2, "documentation": 0.2},
        "reward": {"cap": 2.0},
        "learning_rate": 1e-5,
        "ranks": 2,
    }
    append_run(directory, run)
    info = read_run_info(directory)
    assert info.steps is None and info.reward_floor is None and info.extra == {"learning_rate": 1e-5, "ranks": 2}
    text = write_card(directory).read_text()
    assert "## Training details" in text and "How it was collected" not in text
    assert "| student model | HuggingFaceTB/SmolLM2-135M-Instruct |" in text
    assert "| rubric weight: efficiency | 0.2 |" in text and "| teacher | gpt-4o-mini |" in text
    assert "| data-parallel ranks | 2 |" in text
    assert "reward = min(2.0, student_score / max(teacher_score, floor))" in text


def test_a_collect_run_says_how_it_was_collected_with_its_settings_and_prompt_licence(tmp_path):
    directory = make_dataset(tmp_path / "ds", {"evaluation": 2})
    append_run(
        directory,
        {
            "run_id": "r",
            "command": "collect",
            "prompts": "humaneval",
            "teacher_provider": "auto",
            "teacher_model": "SmolLM2-135M-Instruct",
            "rfai_version": "0.1.0",
            "sampling": {"temperature": 0.8, "top_p": 0.95},
            "reward": {"floor": 0.05, "cap": 2.0},
        },
    )
    text = write_card(directory).read_text()
    assert "## How it was collected" in text and "## Training details" not in text
    assert "| prompts | humaneval (OpenAI HumanEval, MIT) |" in text
    assert "### By split" not in text and "Every row has split `evaluation`" in text  # no one-row table
    assert (
        "| sampling | temperature 0.8, top_p 0.95 |" in text
        and "| teacher | auto: each task's reference solution, else SmolLM2-135M-Instruct |" in text
    )
    assert "| rfai version | 0.1.0 |" in text and "min(2.0, student_score / max(teacher_score, 0.05))" in text


def test_the_title_follows_the_repo_id_and_the_usage_works_without_one(tmp_path, monkeypatch):
    from datasets import load_dataset

    directory = make_dataset(tmp_path / "datasets", {"train": 2, "validation": 1})
    first = write_card(directory).read_text()
    assert "pretty_name: datasets" in first
    usage = first.split("```python\n")[1].split("```")[0]
    assert 'load_dataset("json", data_files=' in usage
    monkeypatch.chdir(directory)  # where the card is
    loaded = eval(usage.split("dataset = ")[1].splitlines()[0], {"load_dataset": load_dataset, "__builtins__": {}})
    assert loaded.num_rows == {"train": 2, "validation": 1}  # the example really loads this directory
    again = write_card(directory, repo_id="me/python-best-of-n").read_text()
    assert "pretty_name: python best of n" in again and "# python best of n" in again
    assert 'load_dataset("me/python-best-of-n")' in again and "title = {python best of n}" in again
    named = write_card(directory, repo_id="me/x", pretty_name="Best-of-n Python").read_text()
    assert "pretty_name: Best-of-n Python" in named
    braces = write_card(directory, pretty_name="Best}, note={injected").read_text()
    assert "  title = {Best, note=injected}," in braces  # a brace would have closed the BibTeX field


def test_size_categories():
    assert [size_category(n) for n in (0, 999, 1000, 54_321, 999_999, 1_000_000)] == [
        "n<1K",
        "n<1K",
        "1K<n<10K",
        "10K<n<100K",
        "100K<n<1M",
        "1M<n<10M",
    ]


def test_cli_card_uses_config_defaults(rfai, tmp_path):
    make_dataset(tmp_path / "out", {"train": 2, "validation": 1})
    (tmp_path / "config.yaml").write_text(
        "huggingface:\n  dataset_output_dir: out\n  dataset_repo_id: org/from-config\n"
    )
    result = rfai("card")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "out/README.md"
    assert 'load_dataset("org/from-config")' in (tmp_path / "out" / "README.md").read_text()


def test_cli_card_bad_inputs(rfai, tmp_path):
    assert "no such directory" in one_line_error(rfai("card", "nope"))
    (tmp_path / "file.jsonl").write_text("{}\n")
    assert "not a directory" in one_line_error(rfai("card", "file.jsonl"))
    (tmp_path / "empty").mkdir()
    assert "no split files" in one_line_error(rfai("card", "empty"))
    make_dataset(tmp_path / "ds", {"train": 2})
    (tmp_path / "ds" / "run.json").write_text("{broken")
    assert "run.json: cannot read the run log" in one_line_error(rfai("card", "ds"))
    (tmp_path / "ds" / "run.json").unlink()
    with open(tmp_path / "ds" / "train.jsonl", "a") as stream:
        stream.write("{oops\n")
    result = rfai("card", "ds")
    assert result.returncode == 0
    assert "train.jsonl:3: invalid JSON" in result.stderr
    assert "load_dataset fails on malformed lines" in result.stderr
    assert "| train | `train.jsonl` | 2 |" in (tmp_path / "ds" / "README.md").read_text()


@pytest.mark.parametrize(
    "option, value, expected",
    [
        # A line break in the title would end its Markdown heading and BibTeX field and start other text.
        ("--pretty-name", "Mine\n---\n# injected", "--pretty-name must be one non-empty line"),
        ("--pretty-name", "  ", "--pretty-name must be one non-empty line"),
        ("--license", "mit\nfoo: 1", "--license must be a license id"),
        ("--repo-id", "you/x\ny", "--repo-id 'you/x\\ny' is not a valid repo name"),
        ("--repo-id", "you/x}", "is not a valid repo name"),
        ("--repo-id", "justaname", "--repo-id must be OWNER/NAME"),
    ],
)
def test_card_options_that_would_break_the_card_are_one_line_errors(rfai, tmp_path, option, value, expected):
    make_dataset(tmp_path / "ds", {"train": 2})
    before = (tmp_path / "ds" / "README.md").read_bytes() if (tmp_path / "ds" / "README.md").exists() else None
    assert expected in one_line_error(rfai("card", "ds", option, value))
    after = (tmp_path / "ds" / "README.md").read_bytes() if (tmp_path / "ds" / "README.md").exists() else None
    assert after == before  # nothing written


def test_a_hand_edited_title_that_is_not_one_line_is_not_kept(tmp_path):
    directory = make_dataset(tmp_path / "ds", {"train": 2})
    (directory / "README.md").write_text('---\npretty_name: "a\\n# b"\n---\n')
    assert "\n# ds\n" in write_card(directory).read_text()


def test_a_field_mixing_strings_and_lists_leaves_typing_to_the_loader(tmp_path):
    directory = tmp_path / "ds"
    directory.mkdir()
    (directory / "train.jsonl").write_text(
        '{"prompt": "a", "tests": "assert f()", "student_score": 0.5}\n'
        '{"prompt": "b", "tests": ["assert f()"], "student_score": 0.7}\n'
    )
    text = write_card(directory).read_text()
    assert "dataset_info" not in text.split("---")[1] or "features" not in text.split("---")[1]


def test_card_says_how_correctness_was_known_and_pass_at_1(tmp_path):
    directory = tmp_path / "ds"
    directory.mkdir()
    rng = random.Random(6)
    sources = ["tests"] * 4 + ["measured"] * 3 + ["unassessed"]
    rows = [
        seed_row(
            i,
            rng,
            task_id=f"t{i % 2}",
            score_sources={"student": {"correctness": source}},
            test_results={"student": {"passed": i % 2, "total": 1}},
        )
        for i, source in enumerate(sources)
    ]
    (directory / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    text = write_card(directory).read_text()
    assert "3 rows had no tests and no judge" in text and "capped at 0.5" in text
    assert "1 rows could not be assessed" in text
    assert "pass@1 over 2 tasks (8 samples): 0.5000" in text


def test_an_empty_split_file_is_no_split_so_the_dataset_still_loads(tmp_path, monkeypatch):
    """A training run without validation leaves an empty validation.jsonl; listing it as a split
    would make `load_dataset` fail ("corresponds to no data")."""
    from datasets import load_dataset

    directory = make_dataset(tmp_path / "datasets", {"train": 2})
    (directory / "validation.jsonl").write_text("")
    text = write_card(directory).read_text()
    assert "validation" not in text.split("---\n")[1]  # not in the front matter's configs
    monkeypatch.chdir(directory)
    assert load_dataset("json", data_files={"train": "train.jsonl"}).num_rows == {"train": 2}
