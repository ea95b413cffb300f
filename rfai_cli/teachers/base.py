"""What every provider offers the Teacher: answer many chats, with a stable identity for the cache."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import TeacherError

Chat = list[dict[str, str]]  # [{"role": "system" | "user" | "assistant", "content": "..."}]


@dataclass(frozen=True)
class Sampling:
    """Generation parameters; part of every cache key."""

    max_tokens: int = 1024
    temperature: float = 0.0


class Backend(Protocol):
    def identity(self) -> dict[str, Any]:
        """Provider, model and endpoint: what, with the chat and sampling, decides the answer."""

    def complete_all(self, chats: list[Chat], sampling: Sampling) -> list[str | TeacherError]:
        """One answer (or the error that stopped it) per chat, in order."""

    def close(self) -> None: ...


class HttpBackend:
    """Answers chats concurrently over a JsonPoster; subclasses build the request and read the answer."""

    def __init__(self, poster, max_concurrency: int):
        self.poster = poster
        self.max_concurrency = max_concurrency

    def complete(self, chat: Chat, sampling: Sampling) -> str:
        raise NotImplementedError

    def complete_all(self, chats: list[Chat], sampling: Sampling) -> list[str | TeacherError]:
        def one(chat: Chat) -> str | TeacherError:
            try:
                return self.complete(chat, sampling)
            except TeacherError as exc:
                return exc

        if len(chats) <= 1:
            return [one(chat) for chat in chats]
        # The poster's semaphore bounds requests across all callers; the pool only feeds it.
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(chats))) as pool:
            return list(pool.map(one, chats))

    def close(self) -> None:
        self.poster.close()


def answer_shape_error(label: str, body: Any) -> TeacherError:
    return TeacherError(f"{label}: unexpected answer shape: {str(body)[:200]}")
