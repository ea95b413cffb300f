"""The embedded SmolLM2: conversion from the GGUF is correct, cached, crash- and race-safe."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import rfai_cli.engine  # noqa: F401  (preloads OpenBLAS before mlx is imported)
from rfai_cli.engine import embedded
from rfai_cli.engine.generation import SamplingSettings, chat_prompt, generate_samples
from rfai_cli.engine.loading import load_model
from rfai_cli.errors import RfaiError

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent

# Ordinary English prose, written for this test (not from any training set we know of).
PROSE = (
    "On Saturday morning we walked to the market at the end of our street. The stalls were already "
    "busy, and the smell of fresh bread came from the bakery on the corner. My sister bought a bag of "
    "apples and some cheese, while I looked for flowers for our mother. We met an old friend from "
    "school who told us about his new job in the city. He said that the work was hard but that he "
    "enjoyed it, and that he hoped to visit his family more often in the summer. After an hour we "
    "carried our bags home, made a pot of tea and sat in the garden until it was time for lunch."
)


def run_python(script: str, cache: Path) -> subprocess.Popen:
    env = {**os.environ, "RFAI_CACHE": str(cache), "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    directory = tmp_path_factory.mktemp("rfai-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RFAI_CACHE", str(directory))
        yield directory
    shutil.rmtree(directory)  # 540 MB of float32 weights; pytest would keep three runs' worth


@pytest.fixture
def fresh_cache(tmp_path):
    yield tmp_path
    shutil.rmtree(tmp_path)


@pytest.fixture(scope="module")
def smollm(cache):
    return load_model(None)


def perplexity(loaded, text: str) -> float:
    import mlx.core as mx
    import mlx.nn as nn

    ids = mx.array(loaded.tokenizer.encode(text))[None]
    return mx.exp(nn.losses.cross_entropy(loaded.model(ids[:, :-1]), ids[:, 1:]).mean()).item()


def test_perplexity_on_ordinary_prose(smollm):
    # ~16.6 with a correct conversion; ~82 if the q/k RoPE permutation is not undone.
    assert smollm.name == "SmolLM2-135M-Instruct"
    assert 10 < perplexity(smollm, PROSE) < 20


def test_capital_of_france(smollm):
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    [[answer]] = generate_samples(smollm, [messages], 1, SamplingSettings(0.0, 1.0, 0, 24))
    assert "Paris" in answer.text
    assert answer.finish_reason == "stop"


def test_code_answers_end_where_their_code_block_closes(smollm):
    prompt = chat_prompt(
        smollm.tokenizer, "Write a function `add(a, b)` that returns the sum of two numbers.", "python"
    )
    greedy = SamplingSettings(0.0, 1.0, 0, 400)
    [[answer]] = generate_samples(smollm, [prompt], 1, greedy)
    assert answer.finish_reason == "block"
    assert answer.text.count("```") == 2 and answer.text.rstrip().endswith("```")
    # Without the rule the same greedy answer runs on past the block.
    [[rambling]] = generate_samples(smollm, [prompt], 1, replace(greedy, stop_after_code_block=False))
    assert rambling.text.startswith(answer.text) and len(rambling.token_ids) > len(answer.token_ids)


def test_tokenizer_rebuilt_from_the_gguf(smollm):
    tokenizer = smollm.tokenizer
    for text in (PROSE, "def f(x):\n    return x ** 2  # año 2024 ✓\n", "  leading spaces\t\ttabs"):
        assert tokenizer.decode(tokenizer.encode(text)) == text
    assert len(tokenizer.encode("12345")) == 5  # digits are split one by one
    assert tokenizer.encode("<|im_start|>user<|im_end|>")[0::2] == [1, 2]
    assert tokenizer.eos_token_ids == {2}
    assert "<|im_start|>assistant\n" in tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )


def test_conversion_is_cached(smollm, cache):
    first = embedded.embedded_model_dir()
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert embedded.embedded_model_dir() == first and first.parent.parent == cache
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".")]


def test_the_cache_is_keyed_on_the_file_and_old_conversions_go(smollm, cache):
    """Every fresh install used to add a 540 MB conversion (keyed on the GGUF's mtime), never removed."""
    import hashlib
    import os
    import time

    current = embedded.embedded_model_dir()
    digest = hashlib.sha256(embedded.gguf_path().read_bytes()).hexdigest()
    assert current.name.endswith(f"-v{embedded.FORMAT_VERSION}-{digest[:12]}")  # the content, not the install
    models, old = current.parent, time.time() - 3 * 24 * 3600
    stale, recent, other_variant = (
        models / name
        for name in (
            "smollm2-135m-instruct-f32-v0-aaa",
            "smollm2-135m-instruct-f32-v1-bbb",
            "smollm2-135m-instruct-q4-v1-ccc",
        )
    )
    for directory in (stale, recent, other_variant):
        directory.mkdir()
        (directory / "model.safetensors").write_bytes(b"x")
    for directory in (stale, other_variant):
        os.utime(directory, (old, old))
    os.utime(current, (old, old))  # its own age does not matter: it is in use
    assert embedded.embedded_model_dir() == current
    assert not stale.exists() and recent.is_dir() and other_variant.is_dir() and current.is_dir()
    assert time.time() - (current / embedded.USED_MARK).stat().st_mtime < 60


def test_quantized_variant_for_gpus_loads_and_matches(smollm, tmp_path):
    """The GPU variant keeps the GGUF's quantization (8-bit embedding, 4-bit elsewhere)."""
    import mlx.core as mx

    embedded.convert_gguf(embedded.gguf_path(), tmp_path, dequantize=False)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["quantization"] == {"group_size": 32, "bits": 4, "model.embed_tokens": {"group_size": 32, "bits": 8}}
    quantized = load_model(str(tmp_path))
    ids = mx.array(smollm.tokenizer.encode(PROSE[:200]))[None]
    assert mx.allclose(quantized.model(ids), smollm.model(ids), atol=1e-2).item()


def test_concurrent_first_runs_convert_once(fresh_cache):
    script = "from rfai_cli.engine.embedded import embedded_model_dir; print(embedded_model_dir())"
    workers = [run_python(script, fresh_cache) for _ in range(2)]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    assert all(worker.returncode == 0 for worker in workers), outputs
    paths = {out.strip() for out, _ in outputs}
    assert len(paths) == 1
    models = fresh_cache / "models"
    assert [p.name for p in models.iterdir() if p.is_dir()] == [Path(paths.pop()).name]


def test_a_crash_mid_conversion_leaves_no_model_behind(fresh_cache):
    """Kill the converter after it wrote part of the model: nothing half-written is ever used."""
    script = (
        "import os, signal\n"
        "from rfai_cli.engine import embedded\n"
        "def crash(source, directory, dequantize):\n"
        "    (directory / 'config.json').write_text('{}')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "embedded.convert_gguf = crash\n"
        "embedded.embedded_model_dir()\n"
    )
    crashed = run_python(script, fresh_cache)
    crashed.communicate(timeout=120)
    assert crashed.returncode == -9
    models = fresh_cache / "models"
    assert not [p for p in models.iterdir() if p.is_dir() and not p.name.startswith(".")]

    healthy = run_python(
        "from rfai_cli.engine.embedded import embedded_model_dir; print(embedded_model_dir())", fresh_cache
    )
    out, err = healthy.communicate(timeout=300)
    assert healthy.returncode == 0, err
    assert json.loads((Path(out.strip()) / "config.json").read_text())["model_type"] == "llama"


def test_missing_package_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr(embedded, "PACKAGE", "rfai-no-such-package")
    with pytest.raises(RfaiError, match="needs the package rfai-no-such-package: install it with"):
        embedded.gguf_path()


def test_training_passes_run_each_prompt_once_on_the_real_model(smollm):
    """The sharing check holds at SmolLM2's logit scale (about 30; a fixed 1e-4 tolerance once
    turned the shortcut off there while passing on tiny random models)."""
    import dataclasses

    import numpy as np

    from rfai_cli.engine.logprobs import SharedHidden, batch_logprobs, frozen_hidden, token_batch

    prompt = smollm.tokenizer.encode("Write a Python function that adds two numbers.")
    completions = [smollm.tokenizer.encode(text) for text in ("def add(a, b):", "return a + b", "x")]
    shared = token_batch([prompt] * 3, completions)
    smollm.model.freeze()  # as for training: the blocks without adapters are frozen
    assert isinstance(frozen_hidden(smollm.model, shared), SharedHidden)
    whole = batch_logprobs(smollm.model, dataclasses.replace(shared, shared=False))
    np.testing.assert_allclose(np.array(batch_logprobs(smollm.model, shared)), np.array(whole), atol=2e-4)
