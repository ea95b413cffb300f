"""The judge parser and the on-disk cache, on their own."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rfai_cli.config import load_config
from rfai_cli.errors import ConfigError
from rfai_cli.teachers import build_teacher
from rfai_cli.teachers.cache import AnswerCache, cache_key
from rfai_cli.teachers.prompts import VerdictError, parse_verdict

GOOD = '{"correctness": 0.9, "code_quality": 0.8, "efficiency": 0.7, "documentation": 0.6}'
SCORES = {"correctness": 0.9, "code_quality": 0.8, "efficiency": 0.7, "documentation": 0.6}


@pytest.mark.parametrize(
    "text",
    [
        GOOD,
        f"```json\n{GOOD}\n```",
        f"Here is my verdict:\n```\n{GOOD}\n```\nHope that helps.",
        f"My rating {{not json}} then {GOOD} done",
        GOOD.replace("}", ', "reasoning": "clear and short"}'),
    ],
)
def test_parse_verdict_finds_the_object(text):
    assert parse_verdict(text) == SCORES


def test_parse_verdict_accepts_integers_at_the_bounds():
    text = '{"correctness": 1, "code_quality": 0, "efficiency": 0.5, "documentation": 1.0}'
    assert parse_verdict(text) == {"correctness": 1.0, "code_quality": 0.0, "efficiency": 0.5, "documentation": 1.0}


@pytest.mark.parametrize(
    "text, problem",
    [
        ("looks good to me", "no JSON object"),
        ('{"correctness": 0.9, "code_quality": 0.8, "efficiency": 0.7}', "missing key 'documentation'"),
        (GOOD.replace("0.9", '"0.9"'), "'correctness' is not a number"),
        (GOOD.replace("0.9", "true"), "'correctness' is not a number"),
        (GOOD.replace("0.8", "8"), "'code_quality' is outside 0..1"),
        (GOOD.replace("0.7", "-0.1"), "'efficiency' is outside 0..1"),
        (GOOD.replace("0.6", "NaN"), "'documentation' is outside 0..1"),
    ],
)
def test_parse_verdict_rejects_what_is_not_the_asked_object(text, problem):
    with pytest.raises(VerdictError, match=problem):
        parse_verdict(text)


def test_cache_round_trip_and_unreadable_entries_are_misses(tmp_path):
    cache = AnswerCache(tmp_path)
    key = cache_key({"provider": "p", "model": "m"}, [{"role": "user", "content": "hi"}], {"max_tokens": 5})
    assert cache.get(key) is None
    cache.put(key, "answer ✓", {"provider": "p", "model": "m"})
    assert cache.get(key) == "answer ✓"
    path = next(tmp_path.rglob(f"{key}.json"))
    path.write_text('{"text": "trunc')
    assert cache.get(key) is None


def test_cache_keys_differ_by_identity_chat_and_sampling():
    chat = [{"role": "user", "content": "hi"}]
    base = cache_key({"provider": "p", "model": "m"}, chat, {"max_tokens": 5})
    assert base == cache_key({"model": "m", "provider": "p"}, chat, {"max_tokens": 5})
    assert base != cache_key({"provider": "p", "model": "m2"}, chat, {"max_tokens": 5})
    assert base != cache_key({"provider": "p", "model": "m"}, [{"role": "user", "content": "ho"}], {"max_tokens": 5})
    assert base != cache_key({"provider": "p", "model": "m"}, chat, {"max_tokens": 6})


WRITER = """
import sys
from rfai_cli.teachers.cache import AnswerCache
cache = AnswerCache(sys.argv[1])
for i in range(200):
    cache.put("ab" + "0" * 62, sys.argv[2] * 5000, {})
"""


def test_concurrent_writers_never_leave_a_torn_entry(tmp_path):
    """Two processes and a reading thread hammer one key: every read is a whole entry."""
    cache = AnswerCache(tmp_path)
    key = "ab" + "0" * 62
    cache.put(key, "x" * 5000, {})
    seen, stop = set(), threading.Event()

    def read():
        while not stop.is_set():
            seen.add(cache.get(key))

    reader = threading.Thread(target=read)
    reader.start()
    repo = Path(__file__).resolve().parent.parent
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), letter], cwd=repo, env={"PYTHONPATH": str(repo)})
        for letter in "yz"
    ]
    try:
        assert [w.wait(timeout=60) for w in writers] == [0, 0]
    finally:
        stop.set()
        reader.join()
    assert seen <= {"x" * 5000, "y" * 5000, "z" * 5000}
    assert cache.get(key) in {"y" * 5000, "z" * 5000}
    assert [p.name for p in tmp_path.rglob("*")] == ["ab", f"{key}.json"]  # no temporary files left


def test_http_providers_need_a_model_name(tmp_path):
    config = load_config(None, {"teacher.provider": "anthropic", "teacher.cache_dir": str(tmp_path)})
    with pytest.raises(ConfigError, match="teacher.model_name: required for provider 'anthropic'"):
        build_teacher(config)
