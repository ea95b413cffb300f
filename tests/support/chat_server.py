"""A scripted OpenAI-compatible chat server on 127.0.0.1 for teacher tests that need a teacher
with known answers (a real model, even `mlx_lm.server` with the tiny one, writes noise).

`answer(messages) -> str` decides each reply; the server records every request's messages.

    with ChatServer(lambda messages: "```python\\ndef f(): return 1\\n```") as server:
        ... teacher.base_url = server.url ...
"""

from __future__ import annotations

from typing import Callable

from .json_http import JsonHandler, LocalServer


class ChatServer(LocalServer):
    def __init__(self, answer: Callable[[list[dict]], str]):
        self.answer = answer
        self.requests: list[list[dict]] = []
        self.start()
        self.url += "/v1"  # where an OpenAI client's base_url points

    def _handler(self):
        server = self

        class Handler(JsonHandler):
            def do_POST(self):
                body = self.json_body()
                with server._lock:
                    server.requests.append(body["messages"])
                if self.path != "/v1/chat/completions":
                    return self.send_json(404, {"error": {"message": self.path}})
                text = server.answer(body["messages"])
                self.send_json(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]})

        return Handler
