"""Chat-template arguments (`model.chat_template_args`, `--chat-template-args`) with a Qwen3-shaped
template: a reasoning model's thinking is off by default, can be turned on, and a run whose samples
end inside an unclosed think block says so."""

from __future__ import annotations

import json

import pytest

import rfai_cli.engine  # noqa: F401  (preloads OpenBLAS before mlx is imported)
from rfai_cli.engine.generation import chat_prompt, ends_thinking
from rfai_cli.engine.loading import load_model


@pytest.fixture(scope="module")
def thinking_model_dir(tmp_path_factory):
    from support.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("thinking-model"), thinking=True)


def test_thinking_is_off_unless_asked_for(thinking_model_dir):
    loaded = load_model(str(thinking_model_dir))
    # mlx-lm alone turns thinking on for any vocabulary with <think>: the prompt opens a think block
    # and a small model spends every new token reasoning, cut off before any code.
    naive = chat_prompt(loaded.tokenizer, "Write f.", "python")
    assert naive.endswith("<|im_start|>assistant\n<think>\n")
    off = chat_prompt(loaded.tokenizer, "Write f.", "python", loaded.chat_template_args)
    assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    on = load_model(str(thinking_model_dir), chat_template_args={"enable_thinking": True})
    assert chat_prompt(on.tokenizer, "Write f.", "python", on.chat_template_args) == naive


def test_a_sample_cut_off_while_thinking_is_told_apart(thinking_model_dir):
    tokenizer = load_model(str(thinking_model_dir)).tokenizer
    opened = "<|im_start|>assistant\n<think>\n"
    assert ends_thinking(tokenizer, opened, "Let me think about the loop")
    assert not ends_thinking(tokenizer, opened, "ok</think>\n```python\ndef f(): pass\n```")
    assert not ends_thinking(tokenizer, opened + "\n</think>\n\n", "```python\ndef f(): pass\n```")
    assert ends_thinking(tokenizer, "<|im_start|>assistant\n", "<think>hmm")  # the model opened it itself


def test_collect_warns_when_most_samples_end_thinking_and_the_option_reaches_the_template(
    rfai, tmp_path, thinking_model_dir
):
    (tmp_path / "config.yaml").write_text(
        f"model:\n  base_model: {thinking_model_dir}\nteacher:\n  max_tokens: 16\ntraining:\n  max_new_tokens: 8\n"
    )
    thinking = rfai(
        "collect", "--limit", "2", "--samples", "2", "-d", "on", "--chat-template-args", '{"enable_thinking": true}'
    )
    assert thinking.returncode == 0, thinking.stderr
    warnings = [line for line in thinking.stderr.splitlines() if "unclosed <think> block" in line]
    assert len(warnings) == 1 and "training.max_new_tokens (8)" in warnings[0]
    run = json.loads((tmp_path / "on" / "run.json").read_text())["runs"][-1]
    assert run["fingerprint"]["chat_template_args"] == {"enable_thinking": True}  # a resume must keep it
    default = rfai("collect", "--limit", "2", "--samples", "2", "-d", "off")
    assert default.returncode == 0 and "unclosed" not in default.stderr
    assert (
        "chat_template_args" not in json.loads((tmp_path / "off" / "run.json").read_text())["runs"][-1]["fingerprint"]
    )
