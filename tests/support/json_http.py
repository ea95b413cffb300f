"""What the tests' local JSON API servers share: a threaded server that takes bursts, and a quiet
handler that reads a JSON body and sends a JSON answer."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Httpd(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops bursts of connections (then TCP waits a second)


class JsonHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def json_body(self) -> dict:
        return json.loads(self.rfile.read(int(self.headers["content-length"])))

    def send_json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class LocalServer:
    """A server on 127.0.0.1 (a free port) answering with `self._handler()`, in a daemon thread,
    until `close` (or the end of a `with` block). `self.url` is http://127.0.0.1:PORT."""

    def start(self) -> None:
        self._lock = threading.Lock()
        self.httpd = Httpd(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def _handler(self) -> type[JsonHandler]:
        raise NotImplementedError

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
