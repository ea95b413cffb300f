"""The openai provider against a real `mlx_lm.server` serving a tiny random model on 127.0.0.1."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import httpx2 as httpx
import pytest

from rfai_cli.config import load_config
from rfai_cli.teachers import JudgeItem, TeacherError, build_teacher

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def mlx_server(tiny_model_dir):
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlx_lm.server",
            "--model",
            str(tiny_model_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            pytest.fail(f"mlx_lm.server exited: {process.stderr.read()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("mlx_lm.server did not start within 120 s")
        time.sleep(0.2)
    yield process, f"{url}/v1"
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _teacher(base_url: str, cache_dir, **settings):
    overrides = {
        "teacher.provider": "openai",
        "teacher.model_name": "default_model",  # mlx_lm.server's name for the model it was started with
        "teacher.base_url": base_url,
        "teacher.cache_dir": str(cache_dir),
        "teacher.max_tokens": 24,
        "teacher.retry_backoff": 0.01,
        **{f"teacher.{key}": value for key, value in settings.items()},
    }
    return build_teacher(load_config(None, overrides))


def test_references_and_judgements_from_mlx_lm_server_then_from_the_cache(mlx_server, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # a local server needs no key
    process, base_url = mlx_server
    tasks = [("Write a function that adds two numbers.", "python"), ("Reverse a string.", "rust")]
    items = [JudgeItem("Add two numbers.", "def add(a, b):\n    return a + b\n", "python")]

    teacher = _teacher(base_url, tmp_path / "cache", max_concurrency=2)
    answers = teacher.references(tasks)
    assert [a.source for a in answers] == ["teacher", "teacher"]
    assert all(a.ok and a.text for a in answers)
    # A random model cannot produce the verdict JSON: asked twice, then an honest fallback.
    [verdict] = teacher.judge_many(items)
    assert verdict.source == "fallback" and verdict.scores == {}
    assert verdict.fallback.startswith("unparsable judge answer, twice")
    teacher.close()

    # With the server gone, a rerun still has every answer: it makes no HTTP call at all.
    process.terminate()
    process.wait(timeout=10)
    again = _teacher(base_url, tmp_path / "cache")
    cached = again.references(tasks)
    assert [a.source for a in cached] == ["cache", "cache"]
    assert [a.text for a in cached] == [a.text for a in answers]
    assert again.judge_many(items)[0].fallback == verdict.fallback
    # ... while anything new fails in one line after its retries.
    fresh = again.reference("Something new.", "python")
    assert not fresh.ok and "connection failed" in fresh.error and "gave up after 4 attempts" in fresh.error


def test_openai_key_is_sent_only_when_configured(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    local = _teacher("http://127.0.0.1:9/v1", tmp_path)
    assert "authorization" not in local.backend.poster._client.headers
    with pytest.raises(TeacherError, match="OPENAI_API_KEY"):
        _teacher("https://api.openai.com/v1", tmp_path)
    with pytest.raises(TeacherError, match="OPENAI_API_KEY"):
        build_teacher(load_config(None, {"teacher.provider": "openai", "teacher.model_name": "gpt-test"}))
    monkeypatch.setenv("MY_VLLM_KEY", "sk-local")
    keyed = _teacher("http://127.0.0.1:9/v1", tmp_path, api_key_env="MY_VLLM_KEY")
    assert keyed.backend.poster._client.headers["authorization"] == "Bearer sk-local"
