"""A local server that speaks the OpenAI chat-completions protocol, for offline tests.

[`OpenAIServer`][OpenAIServer] listens on ``127.0.0.1`` (a free port) in a background thread and
answers ``POST /v1/chat/completions`` with whatever a handler returns, so code that uses the real
``openai`` client ([`failmodes.proposers.ChatGPTProposer`][failmodes.proposers.ChatGPTProposer], or
your own) can be tested
without a network, a key or a model:

```python
with OpenAIServer(lambda body: '{"values": ["in a desert"]}') as server:
    proposer = ChatGPTProposer(base_url=server.base_url, api_key="test-key")
    assert proposer.propose(["fox"]) == {"fox": ["in a desert"]}
assert server.requests[0].headers["authorization"] == "Bearer test-key"
```

The handler receives the parsed JSON body of each request and returns either a string (the
assistant's answer) or a [`Reply`][Reply] that sets the status code, headers, refusal, finish
reason or the whole body: enough to play rate limits (``Reply(status=429,
headers={"retry-after-ms": "1"})``), server errors, refusals and servers that reject a
``response_format``. Instead of a callable, a [`Reply`][Reply], a string, or a list of them played
in order (the last one repeats) may be given.

Every request received is kept in ``OpenAIServer.requests``, with its headers, so a test can
check what was sent. ``delay`` makes each chat request take that long, the waits of concurrent
requests overlapping, and ``max_in_flight`` tells how many were handled at once, so that a
client's concurrency can be measured. ``GET /v1/models`` lists one model; other paths answer
404. Streaming is not supported.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["OpenAIServer", "ReceivedRequest", "Reply"]


@dataclass(frozen=True)
class Reply:
    """One answer of [`OpenAIServer`][OpenAIServer] to a chat-completions request.

    Attributes:
        content: the assistant message's content (``None`` for no content).
        refusal: the assistant message's ``refusal`` (a model declining to answer).
        finish_reason: the choice's finish reason (``"stop"``, ``"length"``,
            ``"content_filter"``, ...).
        status: the HTTP status code. For a status of 400 or more, the body is an OpenAI-style
            error object ``{"error": {"message": error, ...}}``.
        error: the error message of an error status.
        headers: extra response headers, e.g. ``{"retry-after-ms": "1"}`` to make the ``openai``
            client retry a 429 or a 5xx answer at once.
        body: a body that replaces the one built from the fields above: a ``dict`` or ``list`` is
            sent as JSON, a ``str`` or ``bytes`` as they are (to send malformed JSON).

    Examples:
        >>> Reply("in a desert").status, Reply(status=429, headers={"retry-after-ms": "1"}).status
        (200, 429)
    """

    content: str | None = None
    refusal: str | None = None
    finish_reason: str = "stop"
    status: int = 200
    error: str = "error from OpenAIServer"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None


@dataclass(frozen=True)
class ReceivedRequest:
    """A request as [`OpenAIServer`][OpenAIServer] received it.

    Attributes:
        method: ``"GET"`` or ``"POST"``.
        path: the request path, e.g. ``"/v1/chat/completions"``.
        headers: the request headers, names in lower case.
        body: the parsed JSON body (``None`` without a body or when it is not JSON).

    Examples:
        [`OpenAIServer`][OpenAIServer] keeps one per request in ``requests``; by hand:

        >>> from failmodes.testing.openai_server import ReceivedRequest
        >>> received = ReceivedRequest("POST", "/v1/chat/completions",
        ...                            {"authorization": "Bearer test-key"}, {"model": "any"})
        >>> received.body["model"], received.headers["authorization"]
        ('any', 'Bearer test-key')
    """

    method: str
    path: str
    headers: dict[str, str]
    body: Any


Handler = Callable[[dict[str, Any]], "str | Reply"]


class OpenAIServer:
    """A local OpenAI-protocol server on ``127.0.0.1`` that answers what a handler says.

    Use it as a context manager (or call [`start`][start] and [`close`][close]);
    [`base_url`][base_url] is what to give an ``openai.OpenAI`` client. Each request is handled on
    its own thread, but the handler is called for one request at a time, so it need not be
    thread-safe; only the ``delay`` is waited outside that lock, so that concurrent requests
    overlap.

    Args:
        handler: what to answer to ``POST /v1/chat/completions``: a callable
            ``handler(body) -> str | Reply`` given the parsed JSON request body; a [`Reply`][Reply]
            or string given every time; or a list of them, answered in order, the last one
            repeating. An exception in the handler answers 500 with its message.
        model: the model id listed by ``GET /v1/models``.
        delay: seconds to wait before answering each ``POST /v1/chat/completions`` (a finite
            number, at least 0), as a model would; requests wait at the same time.

    Attributes:
        requests: every request received, in the order they were answered
            ([`ReceivedRequest`][ReceivedRequest]).
        max_in_flight: the most chat-completions requests handled at once so far (from the
            request's arrival, through ``delay``, to its answer): with a ``delay``, how many
            requests a client had in flight at most.

    Raises:
        ValueError: if ``delay`` is negative, not finite or not a number.

    Examples:
        >>> import openai
        >>> replies = [Reply(status=429, headers={"retry-after-ms": "1"}), "in a desert"]
        >>> with OpenAIServer(replies) as server:
        ...     client = openai.OpenAI(base_url=server.base_url, api_key="test-key")
        ...     answer = client.chat.completions.create(
        ...         model="any", messages=[{"role": "user", "content": "Where?"}]
        ...     )
        >>> answer.choices[0].message.content, len(server.requests)
        ('in a desert', 2)
        >>> server.requests[-1].headers["authorization"]
        'Bearer test-key'

        With a ``delay``, ``max_in_flight`` shows how many requests overlapped:

        >>> from concurrent.futures import ThreadPoolExecutor
        >>> with OpenAIServer("in a desert", delay=0.1) as server:
        ...     client = openai.OpenAI(base_url=server.base_url, api_key="test-key")
        ...     ask = lambda _: client.chat.completions.create(model="any", messages=[])
        ...     with ThreadPoolExecutor(3) as threads:
        ...         answers = list(threads.map(ask, range(3)))
        >>> len(answers), server.max_in_flight
        (3, 3)
    """

    def __init__(
        self,
        handler: Handler | Reply | str | Sequence[Reply | str],
        *,
        model: str = "test-model",
        delay: float = 0.0,
    ):
        if (
            isinstance(delay, bool)
            or not isinstance(delay, int | float)
            or not math.isfinite(delay)
            or delay < 0
        ):
            raise ValueError(f"delay must be a finite number of seconds, at least 0, not {delay!r}")
        self.handler = handler
        self.model = model
        self.delay = delay
        self.requests: list[ReceivedRequest] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._played = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """The server's OpenAI base URL, ``http://127.0.0.1:<port>/v1``.

        Raises:
            RuntimeError: if the server is not running.
        """
        if self._httpd is None:
            raise RuntimeError("the OpenAIServer is not running; use it in a with block")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> OpenAIServer:
        """Start serving in a daemon thread, on a free port; a running server stays as it is.

        Returns:
            The server itself, so that ``server = OpenAIServer(...).start()`` works.
        """
        if self._httpd is not None:
            return self
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_request_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},  # how long close() waits for the loop to notice
            name="OpenAIServer",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and free the port; ``requests`` is kept."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.base_url if self._httpd is not None else "not running"
        return f"OpenAIServer({where}, {len(self.requests)} requests)"

    # -- answering -------------------------------------------------------------------------------

    def respond(self, request: ReceivedRequest) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body for one request, as the server answers it (thread-safe).

        A chat-completions request first waits ``delay`` seconds, outside the lock.

        Args:
            request: the request received.

        Returns:
            ``(status, headers, body)``; the request is added to ``requests``.
        """
        if not (request.method == "POST" and _is_chat(request.path)):
            with self._lock:
                return self._answer(request)
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if self.delay:
                time.sleep(self.delay)
            with self._lock:
                return self._answer(request)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _answer(self, request: ReceivedRequest) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body for one request (called under the lock)."""
        self.requests.append(request)
        if request.method == "GET" and request.path.rstrip("/") == "/v1/models":
            models = {"object": "list", "data": [_model_entry(self.model)]}
            return _json(200, models)
        if request.method != "POST" or not _is_chat(request.path):
            return _error(404, f"OpenAIServer has no {request.method} {request.path}")
        body = request.body
        if not isinstance(body, dict):
            return _error(400, "the request body must be a JSON object")
        if body.get("stream"):
            return _error(400, "OpenAIServer does not support stream=true")
        try:
            reply = self._reply_to(body)
        except Exception as err:  # a test's handler failed: answer 500 and say why
            return _error(500, f"OpenAIServer handler raised {type(err).__name__}: {err}")
        if isinstance(reply, str):
            reply = Reply(reply)
        if not isinstance(reply, Reply):
            return _error(500, f"OpenAIServer handler returned {type(reply).__name__}")
        return _render(reply, body)

    def _reply_to(self, body: dict[str, Any]) -> Reply | str:
        handler = self.handler
        if isinstance(handler, Reply | str):
            return handler
        if isinstance(handler, Sequence):
            if not handler:
                raise ValueError("the list of replies is empty")
            reply = handler[min(self._played, len(handler) - 1)]
            self._played += 1
            return reply
        return handler(body)


def _make_request_handler(server: OpenAIServer) -> type[BaseHTTPRequestHandler]:
    class _RequestHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
            self._handle(None)

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("content-length") or 0)
            self._handle(self.rfile.read(length) if length else b"")

        def _handle(self, raw: bytes | None) -> None:
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            request = ReceivedRequest(
                method=self.command,
                path=self.path.split("?", 1)[0],
                headers={name.lower(): value for name, value in self.headers.items()},
                body=body,
            )
            status, headers, payload = server.respond(request)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

    return _RequestHandler


def _is_chat(path: str) -> bool:
    return path.rstrip("/") == "/v1/chat/completions"


def _render(reply: Reply, request_body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    if reply.body is not None:
        status, headers, payload = _raw(reply.status, reply.body)
    elif reply.status >= 400:
        status, headers, payload = _error(reply.status, reply.error)
    else:
        status, headers, payload = _json(reply.status, _completion(reply, request_body))
    return status, {**headers, **reply.headers}, payload


def _completion(reply: Reply, request_body: dict[str, Any]) -> dict[str, Any]:
    message = {"role": "assistant", "content": reply.content, "refusal": reply.refusal}
    return {
        "id": "chatcmpl-openaiserver",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(request_body.get("model", "")),
        "choices": [
            {"index": 0, "message": message, "finish_reason": reply.finish_reason, "logprobs": None}
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def _model_entry(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 0, "owned_by": "failmodes"}


def _json(status: int, obj: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"content-type": "application/json"}, json.dumps(obj).encode()


def _raw(status: int, body: Any) -> tuple[int, dict[str, str], bytes]:
    if isinstance(body, bytes):
        return status, {"content-type": "application/json"}, body
    if isinstance(body, str):
        return status, {"content-type": "application/json"}, body.encode()
    return _json(status, body)


def _error(status: int, message: str) -> tuple[int, dict[str, str], bytes]:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return _json(status, {"error": {"message": message, "type": kind, "param": None, "code": None}})
