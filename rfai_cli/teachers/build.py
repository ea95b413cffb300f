"""build_teacher(config): the configured provider, checked before any work starts."""

from __future__ import annotations

import os
from typing import Any, Sequence
from urllib.parse import urlparse

from ..config import Config, TeacherSettings
from ..errors import ConfigError, InputError
from ..scoring.extract import extract_code
from .base import Backend, Sampling
from .cache import AnswerCache, default_cache_dir
from .errors import TeacherError
from .http import RetryPolicy
from .teacher import KNOWN_SOLUTION, Teacher

DEFAULT_KEY_ENV = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}


def build_teacher(config: Config, student: Any = None) -> Teacher:
    """The teacher the config describes. A missing model name or API key fails here, in one line.

    `student` (an engine LoadedModel) lets a local teacher that is the student's base model share
    its weights, with adapters off, instead of loading a second copy.
    """
    settings = config.teacher
    if settings.provider == KNOWN_SOLUTION and settings.judge:
        raise ConfigError(
            "teacher.judge: needs a model teacher, and teacher.provider 'reference' has none "
            "(set teacher.provider to auto, mlx, openai or anthropic)"
        )
    backend, model = _backend(config, student)
    return Teacher(
        backend=backend,
        model=model,
        extract_code=extract_code,
        cache=AnswerCache(settings.cache_dir or default_cache_dir()),
        sampling=Sampling(max_tokens=settings.max_tokens, temperature=settings.temperature),
        judge_enabled=settings.judge,
        use_known_solutions=settings.provider in ("auto", KNOWN_SOLUTION),
    )


def weak_teacher_notice(teacher: Teacher, tasks: Sequence[Any]) -> str | None:
    """A one-line warning when the embedded 135M model will write references for some of `tasks`
    (objects with `canonical_solution`): its answers rarely pass tests."""
    from ..engine.embedded import MODEL_NAME

    if teacher.model != MODEL_NAME:
        return None
    asked = sum(1 for task in tasks if not (teacher.use_known_solutions and task.canonical_solution))
    if not asked:
        return None
    return (
        f"the teacher is the embedded {MODEL_NAME}: its reference solutions are weak ({asked} of {len(tasks)} "
        "prompts have no reference solution of their own). For a capable teacher set teacher.provider to "
        "openai (any OpenAI-compatible server, e.g. mlx_lm.server) or anthropic with teacher.model_name, "
        "or give the prompts a 'canonical_solution'"
    )


def _backend(config: Config, student: Any) -> tuple[Backend | None, str]:
    settings = config.teacher
    if settings.provider == KNOWN_SOLUTION:
        return None, KNOWN_SOLUTION
    if settings.provider in ("auto", "mlx"):
        from .mlx_local import MlxBackend

        backend = MlxBackend.from_config(config, student)
        return backend, backend.model
    if not settings.model_name:
        raise ConfigError(f"teacher.model_name: required for provider '{settings.provider}' (the model to ask)")
    policy = RetryPolicy(max_retries=settings.max_retries, backoff=settings.retry_backoff)
    common = dict(
        model=settings.model_name,
        base_url=settings.base_url,
        timeout=settings.timeout,
        max_concurrency=settings.max_concurrency,
        policy=policy,
    )
    if settings.provider == "anthropic":
        from .anthropic_api import AnthropicBackend

        return AnthropicBackend(api_key=_api_key(settings), **common), settings.model_name
    from .openai_api import OpenAIBackend

    return OpenAIBackend(api_key=_api_key(settings), **common), settings.model_name


def key_env(settings: TeacherSettings) -> str | None:
    """The variable holding the API key: the configured one, else the provider's usual one.

    An OpenAI-compatible endpoint other than api.openai.com (a local mlx_lm.server, vLLM, Ollama)
    usually needs no key, so none is assumed there.
    """
    if settings.api_key_env:
        return settings.api_key_env
    if settings.provider == "openai" and settings.base_url and urlparse(settings.base_url).hostname != "api.openai.com":
        return None
    return DEFAULT_KEY_ENV.get(settings.provider)


def _api_key(settings: TeacherSettings) -> str | None:
    name = key_env(settings)
    if name is None:
        return None
    value = os.environ.get(name, "").strip()
    if not value:
        raise TeacherError(
            f"teacher provider '{settings.provider}' needs an API key: the environment variable {name} "
            f"is not set (set it, or name another variable in teacher.api_key_env)",
            exit_code=InputError.exit_code,  # something the user must supply, like a missing file
        )
    return value
