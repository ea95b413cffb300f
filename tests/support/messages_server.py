"""A small local HTTP server that speaks enough of Anthropic's Messages API for the teacher tests.

It answers like a model would (a fenced solution for a reference request, a JSON verdict for a
judge request), or with scripted answers queued by the test: `server.script(429, 200, ...)`.
It counts requests, records their bodies and headers, and tracks how many were in flight at once.
"""

from __future__ import annotations

import json
import time

from .json_http import JsonHandler, LocalServer

VERDICT = {"correctness": 0.9, "code_quality": 0.8, "efficiency": 0.7, "documentation": 0.6}
SOLUTION = "Here it is:\n```python\ndef add(a, b):\n    return a + b\n```\n"


class MessagesServer(LocalServer):
    def __init__(self, delay: float = 0.0):
        self.delay = delay  # seconds each request takes, to observe concurrency
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._script: list = []
        self.start()

    @property
    def count(self) -> int:
        return len(self.requests)

    def script(self, *answers) -> None:
        """Queue answers for the next requests: a status code, a text (200 with that text), or
        `("forever", status)` to answer that status from then on."""
        with self._lock:
            self._script.extend(answers)

    def clear(self) -> None:
        """Forget queued answers: answer like a model again."""
        with self._lock:
            self._script.clear()

    def _next(self, body: dict):
        with self._lock:
            if self._script:
                answer = self._script[0]
                if not (isinstance(answer, tuple) and answer[0] == "forever"):
                    self._script.pop(0)
                    return answer
                return answer[1]
        # No script: answer like a model.
        return json.dumps(VERDICT) if "JSON" in body.get("system", "") else SOLUTION

    def _handler(self):
        server = self

        class Handler(JsonHandler):
            def do_POST(self):
                body = self.json_body()
                with server._lock:
                    server.requests.append(body)
                    server.headers.append(dict(self.headers))
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    time.sleep(server.delay)
                    status, payload = self._answer(body)
                finally:
                    # Counted out before the answer leaves, so a client that sends its next request
                    # the moment it has this answer is never seen as one too many in flight.
                    with server._lock:
                        server.in_flight -= 1
                self.send_json(status, payload)

            def _answer(self, body: dict) -> tuple[int, dict]:
                if self.path != "/v1/messages":
                    return 404, {"type": "error", "error": {"type": "not_found_error", "message": self.path}}
                answer = server._next(body)
                if isinstance(answer, int):
                    kind = "rate_limit_error" if answer == 429 else "api_error"
                    return answer, {"type": "error", "error": {"type": kind, "message": f"scripted {answer}"}}
                return 200, {
                    "id": "msg_test",
                    "type": "message",
                    "role": "assistant",
                    "model": body["model"],
                    "content": [{"type": "text", "text": answer}],
                    "stop_reason": "end_turn",
                    "usage": {"input_tokens": 1, "output_tokens": 1},
                }

        return Handler
