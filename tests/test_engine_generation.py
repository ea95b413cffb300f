"""Batched generation and log-probs on the tiny random llama: real mlx-lm model, real batching."""

from __future__ import annotations

import json
import shutil

import pytest

import rfai_cli.engine  # noqa: F401  (preloads OpenBLAS before mlx is imported)
from rfai_cli.engine.generation import SamplingSettings, chat_prompt, encode_prompt, generate_samples, system_prompt
from rfai_cli.engine.loading import load_model
from rfai_cli.engine.logprobs import completion_logprobs, padded_completion_logprobs

PROMPTS = [
    "Write a Python function that reverses a string.",
    "def add(a, b):",
    "Print hello world in Rust, then explain the program in one long and detailed paragraph please.",
]
GREEDY = SamplingSettings(temperature=0.0, top_p=1.0, top_k=0, max_new_tokens=12)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(str(tiny_model_dir))


@pytest.fixture(scope="module")
def chats(tiny):
    return [chat_prompt(tiny.tokenizer, prompt, "python") for prompt in PROMPTS]


def unbatched_greedy(loaded, prompt_ids, max_tokens, stop_ids=()):
    """Reference: mlx-lm's single-sequence generate_step, stopping where rfai should stop."""
    import mlx.core as mx
    from mlx_lm.generate import generate_step

    tokens = []
    for token, _ in generate_step(mx.array(prompt_ids), loaded.model, max_tokens=max_tokens):
        tokens.append(int(token))
        if int(token) in stop_ids:
            break
    return tokens


def test_chat_prompt_uses_template_and_language_system_prompt(tiny):
    text = chat_prompt(tiny.tokenizer, "Sum a list.", "cpp")
    assert text.startswith("<|im_start|>system\nYou are an expert C++ programmer.")
    assert "```cpp" in text
    assert text.endswith("<|im_start|>user\nSum a list.<|im_end|>\n<|im_start|>assistant\n")
    assert system_prompt("rust").startswith("You are an expert Rust programmer")


def test_chat_prompt_without_system_role_folds_system_text_into_user_turn(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir))
    loaded.tokenizer._tokenizer.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
        "<turn>{{ m['content'] }}</turn>{% endfor %}<turn>"
    )
    text = chat_prompt(loaded.tokenizer, "Sum a list.", "python")
    assert text == f"<turn>{system_prompt('python')}\n\nSum a list.</turn><turn>"


def test_greedy_batched_equals_unbatched(tiny, chats):
    groups = generate_samples(tiny, chats, 2, GREEDY)
    assert len(groups) == len(chats)
    for chat, group in zip(chats, groups):
        ids = encode_prompt(tiny.tokenizer, chat)
        expected = unbatched_greedy(tiny, ids, GREEDY.max_new_tokens, tiny.tokenizer.eos_token_ids)
        for sample in group:
            assert sample.prompt_ids == ids
            assert sample.token_ids == expected
            assert sample.finish_reason == "length"


def test_messages_are_formatted_with_the_chat_template(tiny, chats):
    messages = [
        {"role": "system", "content": system_prompt("python")},
        {"role": "user", "content": PROMPTS[0]},
    ]
    [[from_messages]], [[from_text]] = (generate_samples(tiny, [p], 1, GREEDY) for p in (messages, chats[0]))
    assert from_messages.prompt_ids == from_text.prompt_ids
    assert from_messages.token_ids == from_text.token_ids


def test_sampling_logprobs_match_recomputed_logprobs(tiny, chats):
    import mlx.core as mx

    settings = SamplingSettings(temperature=1.0, top_p=0.9, top_k=0, max_new_tokens=16)
    flat = [s for group in generate_samples(tiny, chats, 3, settings) for s in group]
    recomputed = completion_logprobs(tiny.model, [s.prompt_ids for s in flat], [s.token_ids for s in flat])
    for sample, logprobs in zip(flat, recomputed):
        assert len(sample.logprobs) == len(sample.token_ids) == logprobs.shape[0]
        assert mx.allclose(mx.array(sample.logprobs), logprobs, atol=1e-4).item()
        assert all(lp <= 0 for lp in sample.logprobs)


def test_samples_with_temperature_differ_and_respect_max_new_tokens(tiny, chats):
    settings = SamplingSettings(temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=7)
    steps = []
    groups = generate_samples(tiny, chats[:2], 4, settings, on_progress=steps.append)
    for group in groups:
        assert len(group) == 4
        assert len({tuple(s.token_ids) for s in group}) > 1
        for sample in group:
            assert 1 <= len(sample.token_ids) <= 7
            assert (sample.finish_reason == "length") == (len(sample.token_ids) == 7)
    assert sum(steps) == sum(len(s.token_ids) for group in groups for s in group)


def test_end_of_sequence_stops_the_sample(tiny_model_dir, tmp_path, chats):
    """Declare the token greedy decoding emits third to be the EOS token: decoding stops on it."""
    base = load_model(str(tiny_model_dir))
    [[free]] = generate_samples(base, [chats[0]], 1, GREEDY)
    stop = free.token_ids[2]
    first = free.token_ids.index(stop)
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps({**config, "eos_token_id": stop}))

    stopping = load_model(str(model_dir))
    [[sample, again]] = generate_samples(stopping, [chats[0]], 2, GREEDY)
    assert sample.finish_reason == "stop"
    assert sample.token_ids == free.token_ids[: first + 1]
    assert sample.text == stopping.tokenizer.decode(free.token_ids[:first])
    assert again.token_ids == sample.token_ids


def test_padded_logprobs_match_one_sequence_at_a_time(tiny):
    """Right padding in a batch must not change any sequence's log-probs; the prompt is masked."""
    import mlx.core as mx

    prompts = [[5, 9, 11, 40], [7], [3, 3, 3, 3, 3, 3, 3]]
    completions = [[12, 13], [50, 51, 52, 53, 54], []]
    logprobs, mask = padded_completion_logprobs(tiny.model, prompts, completions)
    assert logprobs.shape == mask.shape == (3, 5)
    assert mask.tolist() == [[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]]
    for row, (prompt, completion) in enumerate(zip(prompts, completions)):
        if not completion:
            continue
        sequence = mx.array(prompt + completion)[None]
        logits = tiny.model(sequence[:, :-1])[0]
        full = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        expected = [full[len(prompt) - 1 + t, token].item() for t, token in enumerate(completion)]
        assert mx.allclose(logprobs[row, : len(completion)], mx.array(expected), atol=1e-5).item()
    assert [a.shape[0] for a in completion_logprobs(tiny.model, prompts, completions)] == [2, 5, 0]


def test_each_prompt_is_prefilled_once_for_all_its_samples(tiny, chats):
    """Count the tokens the model processes: the prompt once per prompt, then one token per sample per step."""
    from dataclasses import replace

    class Counting:
        def __init__(self, model):
            self.model, self.calls = model, []

        def __call__(self, inputs, **kwargs):
            self.calls.append(tuple(inputs.shape))
            return self.model(inputs, **kwargs)

        def __getattr__(self, name):
            return getattr(self.model, name)

    counting = Counting(tiny.model)
    groups = generate_samples(replace(tiny, model=counting), chats, 4, GREEDY)
    prompt_lengths = [len(group[0].prompt_ids) for group in groups]
    prefills = [shape for shape in counting.calls if shape[1] > 1]
    assert sorted(shape[1] for shape in prefills) == sorted(length - 1 for length in prompt_lengths)
    assert all(shape[0] == 1 for shape in prefills)
    decode_tokens = sum(shape[0] for shape in counting.calls if shape[1] == 1)
    generated = sum(len(s.token_ids) for group in groups for s in group)
    # BatchGenerator computes one step ahead of what it returns: at most one spare step.
    assert generated <= decode_tokens <= generated + len(chats) * 4


def test_tokenizer_without_chat_template_gets_plain_text(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir))
    loaded.tokenizer._tokenizer.chat_template = None
    assert chat_prompt(loaded.tokenizer, "Sum a list.", "go") == f"{system_prompt('go')}\n\nSum a list.\n"
