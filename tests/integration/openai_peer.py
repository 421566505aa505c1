"""A scripted OpenAI-compatible HTTP server on loopback: real sockets and real HTTP, answers chosen
by the test (429 then success, errors, slowness), for the paths a real provider rarely shows on demand."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def completion(letter: str = "B", logprob: float = -0.1, others=(("A", -2.5), (" C", -4.0)), prompt_tokens: int = 42) -> dict:
    top = [{"token": letter, "logprob": logprob, "bytes": None}] + [
        {"token": t, "logprob": lp, "bytes": None} for t, lp in others
    ]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "scripted",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": letter},
                "finish_reason": "length",
                "logprobs": {"content": [{"token": letter, "logprob": logprob, "bytes": None, "top_logprobs": top}]},
            }
        ],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 1, "total_tokens": prompt_tokens + 1},
    }


class ScriptedServer:
    """Serves `steps` in order (the last repeats): (status, body, headers, delay_s)."""

    def __init__(self, steps):
        self.steps = list(steps)
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                server.requests.append({"path": self.path, "body": json.loads(self.rfile.read(length) or b"{}"),
                                        "auth": self.headers.get("Authorization")})
                status, body, headers, delay = server.steps[min(len(server.requests), len(server.steps)) - 1]
                if delay:
                    time.sleep(delay)
                payload = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
