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
