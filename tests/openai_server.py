"""A small OpenAI-compatible HTTP server for the tests: ``/v1/chat/completions`` (JSON and
SSE streaming) and ``/v1/embeddings``, replying with scripted answers and failures.

The real ``openai`` client talks to it over HTTP on 127.0.0.1, so retries, timeouts, status
codes and stream parsing are the client's own.
"""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np


@dataclass
class Reply:
    """One scripted response. ``status`` != 200 sends an error body (``error``, or a generic
        one); ``hang`` waits that many seconds before answering; ``garbage`` sends a body that is
        not JSON; ``trickle`` waits between streamed chunks. What llama.cpp's server does:
        ``ttft`` sends a stream's headers at once and its first chunk that many seconds later
        (the prompt is being read); ``stream_usage=False`` sends no usage chunk; ``empty_stream``
        sends a 200 event stream with no event (a prompt longer than its context window);
        ``no_finish`` ends the stream with [DONE] but no finish reason (an interrupted request);
        ``drop_after`` resets the connection after that many chunks; ``model`` is the model the
        response names (default: the requested one, echoed); ``chunk_size`` is the characters per
    streamed chunk."""

    text: str = ""
    status: int = 200
    hang: float = 0.0
    garbage: bool = False
    trickle: float = 0.0
    usage: tuple[int, int] = (123, 45)
    finish: str = "stop"
    error: dict | None = None
    ttft: float = 0.0
    stream_usage: bool = True
    empty_stream: bool = False
    no_finish: bool = False
    drop_after: int | None = None
    model: str | None = None
    chunk_size: int = 7


class OpenAIServer:
    def __init__(self) -> None:
        self.requests: list[dict] = []  # chat requests, in order: {"path", "headers", "json"}
        self.embedding_requests: list[dict] = []
        self.chunks_sent = 0  # streamed chunks written, across requests
        self.broken_pipes = 0  # streams the client closed while they were being written
        self.queue: deque[Reply] = deque()
        self.default: Callable[[dict], Reply] = lambda body: Reply("No script. [1]")
        # reject(body) -> an error message: the request is answered 400 with it, as a real
        # endpoint rejects a parameter its model does not take
        self.reject: Callable[[dict], str | None] = lambda body: None
        self.stopping = threading.Event()
        # GET /models lists these ids; None answers 404 (an endpoint that does not say)
        self.models: list[str] | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                if self.path.endswith("/models") and server.models is not None:
                    data = [{"id": m, "object": "model", "owned_by": "me"} for m in server.models]
                    return self._send(200, {"object": "list", "data": data})
                return self._send(404, {"error": {"message": "not found", "type": "test"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    body = {}
                if self.path.endswith("/embeddings"):
                    server.embedding_requests.append(body)
                    return self._embeddings(body)
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.requests.append({"path": self.path, "headers": headers, "json": body})
                rejected = server.reject(body)
                if rejected:
                    error = {"message": rejected, "type": "invalid_request_error"}
                    return self._send(400, {"error": error})
                reply = server.queue.popleft() if server.queue else server.default(body)
                if reply.hang and server.stopping.wait(reply.hang):
                    return
                if reply.status != 200:
                    error = reply.error or {"message": f"scripted {reply.status}", "type": "test"}
                    return self._send(reply.status, {"error": error})
                if reply.garbage:
                    return self._raw(200, b"this is { not json", "application/json")
                if body.get("stream"):
                    return self._stream(body, reply)
                return self._send(200, _completion(body, reply))

            def _embeddings(self, body: dict) -> None:
                inputs = body.get("input") or []
                if isinstance(inputs, str):
                    inputs = [inputs]
                data = [
                    {"object": "embedding", "index": i, "embedding": fake_embedding(t).tolist()}
                    for i, t in enumerate(inputs)
                ]
                self._send(
                    200,
                    {
                        "object": "list",
                        "data": data,
                        "model": body.get("model", "test-embed"),
                        "usage": {"prompt_tokens": 1, "total_tokens": 1},
                    },
                )

            def _stream(self, body: dict, reply: Reply) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                if reply.empty_stream:
                    return
                self.wfile.flush()
                if reply.ttft and server.stopping.wait(reply.ttft):
                    return
                size = reply.chunk_size
                pieces = [reply.text[i : i + size] for i in range(0, len(reply.text), size)]
                try:
                    for n, piece in enumerate(pieces):
                        if reply.drop_after is not None and n >= reply.drop_after:
                            # reset the connection (not a clean close): the stream breaks off.
                            # First give the client time to read what was sent: a reset that
                            # arrives before it reads would discard that text on its side
                            if server.stopping.wait(1.0):
                                return
                            linger = struct.pack("ii", 1, 0)
                            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                            self.connection.close()
                            return
                        chunk = _chunk(body, {"content": piece}, None, reply.model)
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                        self.wfile.flush()
                        server.chunks_sent += 1
                        if reply.trickle and server.stopping.wait(reply.trickle):
                            return
                    if not reply.no_finish:
                        done = _chunk(body, {}, reply.finish, reply.model)
                        self.wfile.write(f"data: {json.dumps(done)}\n\n".encode())
                    include = (body.get("stream_options") or {}).get("include_usage")
                    if include and reply.stream_usage:
                        usage = _chunk(body, None, None, reply.model)
                        usage["choices"] = []
                        usage["usage"] = _usage(reply)
                        self.wfile.write(f"data: {json.dumps(usage)}\n\n".encode())
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    server.broken_pipes += 1

            def _send(self, status: int, payload: dict) -> None:
                self._raw(status, json.dumps(payload).encode(), "application/json")

            def _raw(self, status: int, data: bytes, content_type: str) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> OpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def script(self, *replies: Reply | str) -> None:
        self.queue.extend(Reply(r) if isinstance(r, str) else r for r in replies)

    def user_messages(self, i: int = -1) -> str:
        messages = self.requests[i]["json"]["messages"]
        return "\n".join(m["content"] for m in messages if m["role"] == "user")

    def system_message(self, i: int = -1) -> str:
        messages = self.requests[i]["json"]["messages"]
        return "\n".join(m["content"] for m in messages if m["role"] == "system")


def fake_embedding(text: str, dims: int = 64) -> np.ndarray:
    """A deterministic bag-of-words embedding (hashed words), so similar texts are close."""
    vec = np.zeros(dims, np.float32)
    for word in text.lower().split():
        h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little")
        vec[h % dims] += 1.0
    if not vec.any():
        vec[0] = 1.0
    return vec / np.linalg.norm(vec)


def _usage(reply: Reply) -> dict:
    p, c = reply.usage
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _completion(body: dict, reply: Reply) -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": reply.model or body.get("model", "test"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.text},
                "finish_reason": reply.finish,
            }
        ],
        "usage": _usage(reply),
    }


def _chunk(body: dict, delta: dict | None, finish: str | None, model: str | None = None) -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model or body.get("model", "test"),
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
    }
