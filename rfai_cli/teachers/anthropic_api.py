"""Anthropic's Messages API."""

from __future__ import annotations

from typing import Any

from .base import Chat, HttpBackend, Sampling, answer_shape_error
from .http import JsonPoster, RetryPolicy

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"


class AnthropicBackend(HttpBackend):
    def __init__(
        self,
        model: str,
        base_url: str | None,
        api_key: str,
        timeout: float,
        max_concurrency: int,
        policy: RetryPolicy,
    ):
        self.model = model
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.label = f"teacher anthropic ({self.model} at {self.base_url})"
        headers = {"x-api-key": api_key, "anthropic-version": API_VERSION}
        super().__init__(JsonPoster(self.label, headers, timeout, max_concurrency, policy), max_concurrency)

    def identity(self) -> dict[str, Any]:
        return {"provider": "anthropic", "model": self.model, "base_url": self.base_url}

    def complete(self, chat: Chat, sampling: Sampling) -> str:
        # The Messages API takes the system prompt apart from the turns.
        system = "\n\n".join(m["content"] for m in chat if m["role"] == "system")
        payload: dict[str, Any] = {
            "model": self.model,
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "messages": [m for m in chat if m["role"] != "system"],
        }
        if system:
            payload["system"] = system
        body = self.poster.post(f"{self.base_url}/v1/messages", payload)
        try:
            blocks = body["content"]
            return "".join(block["text"] for block in blocks if block.get("type") == "text")
        except (KeyError, TypeError, AttributeError):
            raise answer_shape_error(self.label, body) from None
