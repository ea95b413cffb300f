from pathlib import Path

import pytest
import yaml

from rfai_cli.config import Config, load_config
from rfai_cli.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_example_config_lists_every_key_with_its_default():
    example = yaml.safe_load((REPO / "config.example.yaml").read_text())
    assert example == Config().model_dump()


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config()
    assert config.source is None
    assert config.scoring.weights.correctness == 0.3
    assert config.huggingface.dataset_output_dir == "./datasets"


def test_seed_huggingface_section_reads(tmp_path):
    path = write(
        tmp_path,
        """
huggingface:
  upload_datasets: true
  dataset_repo_id: "mlx-community/qwen-code-rfai-dataset"
  save_datasets_locally: true
  dataset_output_dir: "./datasets"
""",
    )
    config = load_config(path)
    assert config.huggingface.upload_datasets is True
    assert config.huggingface.dataset_repo_id == "mlx-community/qwen-code-rfai-dataset"
    assert config.source == path


def test_a_repo_id_the_hub_refuses_is_an_error_when_the_config_loads(tmp_path):
    """Not at the end of a train run, whose last step writes the card with it."""
    path = write(tmp_path, "huggingface:\n  private: true\n  dataset_repo_id: my dataset\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}:3: huggingface.dataset_repo_id: must be OWNER/NAME")
    assert load_config(write(tmp_path, "huggingface:\n  dataset_repo_id: you/ok.name-1\n")).huggingface.dataset_repo_id


def test_unknown_key_names_it_with_line_and_suggestion(tmp_path):
    path = write(tmp_path, "training:\n  max_steps: 3\n  learnig_rate: 0.1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}:3: ")
    assert "training.learnig_rate" in message and "did you mean 'learning_rate'" in message
    assert info.value.exit_code == 2


def test_unknown_section_suggests_closest(tmp_path):
    path = write(tmp_path, "huggingfase:\n  private: true\n")
    with pytest.raises(ConfigError, match="did you mean 'huggingface'"):
        load_config(path)


def test_wrong_type_names_key_path_and_expected_type(tmp_path):
    path = write(tmp_path, "model:\n  base_model: null\ntraining:\n  top_p: high\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}:4: training.top_p: expected a number, got 'high'"


def test_weights_must_sum_to_one(tmp_path):
    path = write(tmp_path, "scoring:\n  weights:\n    correctness: 0.9\n")
    with pytest.raises(ConfigError, match="sum to 1"):
        load_config(path)


def test_bad_yaml_gives_line_number(tmp_path):
    path = write(tmp_path, "training:\n  max_steps: 3\n  top_p: [0.9\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}:")
    assert "invalid YAML" in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_and_directory(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_non_mapping_document(tmp_path):
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_empty_file_is_all_defaults(tmp_path):
    assert load_config(write(tmp_path, "")).model_dump() == Config().model_dump()


def test_cli_overrides_win_and_none_is_ignored(tmp_path):
    path = write(tmp_path, "training:\n  num_samples_per_prompt: 2\n")
    config = load_config(path, {"training.num_samples_per_prompt": 8, "huggingface.private": None})
    assert config.training.num_samples_per_prompt == 8
    assert config.huggingface.private is False


def test_override_is_validated_too(tmp_path):
    with pytest.raises(ConfigError, match="training.max_steps"):
        load_config(write(tmp_path, ""), {"training.max_steps": 0})


def test_set_reads_values_as_yaml_between_the_file_and_the_flags(tmp_path):
    path = write(tmp_path, "training:\n  batch_size: 4\n  eval_limit: 3\n  lora_rank: 16\n")
    config = load_config(
        path,
        {"training.lora_rank": 32},
        assignments=[
            "training.batch_size=1",
            "training.learning_rate=3e-5",
            "training.report_to=[wandb, tensorboard]",
            "training.eval_limit=null",  # null reaches the key: --set can undo a file's value
            "training.lora_rank=4",  # the command's own flag wins
            "huggingface.private=true",
            "training.batch_size=2",  # the last of a repeated key wins
        ],
    )
    assert config.training.batch_size == 2 and config.training.learning_rate == 3e-5
    assert config.training.report_to == ["wandb", "tensorboard"] and config.training.eval_limit is None
    assert config.training.lora_rank == 32 and config.huggingface.private is True


@pytest.mark.parametrize(
    "assignment, expected",
    [
        ("training.batch_size=x", "--set: training.batch_size: expected an integer, got 'x'"),
        ("training.batchsize=2", "--set: unknown key 'training.batchsize' (did you mean 'batch_size'?)"),
        ("training.batch_size", "--set 'training.batch_size': expected KEY=VALUE"),
        ("training..x=1", "--set 'training..x=1': expected KEY=VALUE"),
        ("training.report_to=[wandb", "--set training.report_to: invalid YAML value"),
    ],
)
def test_set_errors_name_the_option_not_a_line_of_the_file(tmp_path, assignment, expected):
    path = write(tmp_path, "training:\n  batch_size: 4\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, assignments=[assignment])
    assert str(info.value).startswith(expected) and "\n" not in str(info.value)


def test_bad_config_through_the_cli_is_one_line(rfai, tmp_path):
    (tmp_path / "config.yaml").write_text("training:\n  top_p: [\n")
    result = rfai("stats", "--config", "config.yaml", "x.jsonl")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_a_config_for_the_original_project_is_reported_in_one_line(tmp_path):
    """Every unknown key at once, with where renamed keys live now: one run to fix it, not dozens."""
    path = write(
        tmp_path,
        "rlaif:\n  lora_r: 16\n  kl_penalty: 0.1\nlogging:\n  level: info\ntraining:\n"
        "  num_epochs: 2\n  output_dir: out\n  learnig_rate: 0.1\n",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: 5 unknown keys: ")
    for expected in (
        "'training.num_epochs' (line 7) (now 'training.epochs')",
        "(now 'training.checkpoint_dir')",
        "rlaif.lora_r -> training.lora_rank",
        "rlaif.kl_penalty -> training.kl_beta",
        "did you mean 'learning_rate'",
        "'logging' (line 4)",
    ):
        assert expected in message, message


@pytest.mark.parametrize(
    "pasted",
    [
        "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789",
        "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH",
        "a1b2c3d4e5f6a7b8c9d0e1f2",
    ],
)
def test_a_key_pasted_into_api_key_env_is_refused_without_being_echoed(tmp_path, rfai, monkeypatch, pasted):
    from rfai_cli.config import TeacherSettings
    from rfai_cli.teachers.build import _api_key
    from rfai_cli.teachers.errors import TeacherError

    # Unchecked, the missing-variable message would print the key into the terminal and CI logs.
    monkeypatch.delenv(pasted, raising=False)
    with pytest.raises(TeacherError) as naive:
        _api_key(TeacherSettings.model_construct(provider="openai", api_key_env=pasted))
    assert pasted in str(naive.value)
    (tmp_path / "config.yaml").write_text(f"teacher:\n  provider: openai\n  api_key_env: {pasted}\n")
    for args in (("collect",), ("collect", "--config", "/dev/null", "--set", f"teacher.api_key_env={pasted}")):
        result = rfai(*args)
        assert result.returncode == 2 and "looks like a key itself (not shown)" in result.stderr
        assert pasted not in result.stderr + result.stdout
    assert load_config(write(tmp_path, "teacher:\n  api_key_env: MY_TEAM_OPENAI_KEY\n")).teacher.api_key_env


# Keys read through a computed name: prompts.py reads data.<split>_prompts.
READ_BY_COMPUTED_NAME = {"data.validation_prompts", "data.evaluation_prompts"}
# Keys no code reads, because every value but the default is refused (with the reason) when the config loads.
REFUSED_UNLESS_DEFAULT = {"huggingface.save_datasets_locally": False}


def _leaf_keys(model=Config, prefix=()):
    from pydantic import BaseModel

    for name, info in model.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            yield from _leaf_keys(info.annotation, (*prefix, name))
        else:
            yield ".".join((*prefix, name))


def test_every_config_key_is_read_by_some_code_or_refused_when_changed(tmp_path):
    """A key that is accepted and then ignored (save_datasets_locally: false was) misleads its user."""
    import re

    from conftest import REPO

    sources = [p.read_text() for p in (REPO / "rfai_cli").rglob("*.py") if p.name != "config.py"]
    for key in _leaf_keys():
        name = key.rsplit(".", 1)[-1]
        read = any(re.search(rf"\.{name}\b|[\"']{name}[\"']", text) for text in sources)
        if key in REFUSED_UNLESS_DEFAULT:
            assert not read, f"{key} is read now: drop it from REFUSED_UNLESS_DEFAULT"
            section, leaf = key.split(".")
            with pytest.raises(ConfigError, match=rf"{key}: .*not supported"):
                load_config(write(tmp_path, f"{section}:\n  {leaf}: {str(REFUSED_UNLESS_DEFAULT[key]).lower()}\n"))
        else:
            assert read or key in READ_BY_COMPUTED_NAME, f"no code reads {key}"
