COMMANDS = ("train", "collect", "card", "upload", "stats", "filter", "score")


def test_help_lists_every_subcommand(rfai):
    result = rfai("--help")
    assert result.returncode == 0
    for name in COMMANDS:
        assert name in result.stdout


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
