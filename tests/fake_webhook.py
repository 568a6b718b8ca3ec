"""A JSON webhook on 127.0.0.1 for apprise's ``json://`` destination: it records every message and
can answer 500, answer late, or (``down``) refuse connections."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Webhook:
    messages: list[dict] = field(default_factory=list)  # apprise's JSON: title, message, type, …
    paths: list[str] = field(default_factory=list)
    status: int = 200
    slow: bool = False  # hold the answer until the test ends (longer than any budget)
    released: threading.Event = field(default_factory=threading.Event)
    url: str = ""  # json://127.0.0.1:PORT

    def destination(self, path: str = "hook") -> str:
        return f"{self.url}/{path}"

    def bodies(self) -> list[str]:
        return [m["message"] for m in self.messages]


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # a client that gave up: not news
        pass


def _handler(hook: Webhook):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            payload = json.loads(self.rfile.read(length) or b"{}")
            if hook.slow:
                hook.released.wait(30)
                return
            if hook.status == 200:
                hook.messages.append(payload)
                hook.paths.append(self.path)
            self.send_response(hook.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


class WebhookServer:
    def __init__(self, hook: Webhook):
        self.hook = hook
        self._server = _Quiet(("127.0.0.1", 0), _handler(hook))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Webhook:
        self._thread.start()
        host, port = self._server.server_address[:2]
        self.hook.url = f"json://{host}:{port}"
        return self.hook

    def __exit__(self, *exc) -> None:
        self.hook.released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
