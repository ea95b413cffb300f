"""Any OpenAI-compatible chat completions endpoint: OpenAI, vLLM, Ollama, LM Studio, mlx_lm.server."""

from __future__ import annotations

from typing import Any

from .base import Chat, HttpBackend, Sampling, answer_shape_error
from .http import JsonPoster, RetryPolicy

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIBackend(HttpBackend):
    def __init__(
        self,
        model: str,
        base_url: str | None,
        api_key: str | None,
        timeout: float,
        max_concurrency: int,
        policy: RetryPolicy,
    ):
        self.model = model
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.label = f"teacher openai ({self.model} at {self.base_url})"
        # A local server needs no key: then no Authorization header is sent at all.
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        super().__init__(JsonPoster(self.label, headers, timeout, max_concurrency, policy), max_concurrency)

    def identity(self) -> dict[str, Any]:
        return {"provider": "openai", "model": self.model, "base_url": self.base_url}

    def complete(self, chat: Chat, sampling: Sampling) -> str:
        payload = {
            "model": self.model,
            "messages": chat,
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
        }
        body = self.poster.post(f"{self.base_url}/chat/completions", payload)
        try:
            content = body["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise answer_shape_error(self.label, body) from None
        return content or ""
