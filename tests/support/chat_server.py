"""A scripted OpenAI-compatible chat server on 127.0.0.1 for teacher tests that need a teacher
with known answers (a real model, even `mlx_lm.server` with the tiny one, writes noise).

`answer(messages) -> str` decides each reply; the server records every request's messages.

    with ChatServer(lambda messages: "```python\\ndef f(): return 1\\n```") as server:
        ... teacher.base_url = server.url ...
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


class ChatServer:
    def __init__(self, answer: Callable[[list[dict]], str]):
        self.answer = answer
        self.requests: list[list[dict]] = []
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def __enter__(self) -> "ChatServer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                with server._lock:
                    server.requests.append(body["messages"])
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": self.path}})
                text = server.answer(body["messages"])
                self._send(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]})

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
