"""The second engine: a chat model served over HTTP by an OpenAI-compatible server.

For teams that outgrow one machine: one GPU box runs llama.cpp's ``llama-server`` (or
llama-cpp-python's server, vLLM, ...) and every desktop talks to it. Only the standard library is
used (``http.client``), so this adds no dependency, and ``http.client`` ignores proxy environment
variables, so a request for a loopback or LAN server can never be routed out to the internet.

Streaming uses server-sent events from ``POST /v1/chat/completions`` with ``stream: true``. Setting
the ``stop`` event ends the answer at the next received chunk and closes the connection, which is
how OpenAI-style servers learn to stop generating; a watcher also shuts the socket down when
``stop`` is set while the server is silent (still reading a long prompt), so stopping never waits
for the next token.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import socket
import ssl
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

from almanac.core.llm.base import ChatMessage, EngineInfo, GenerationConfig, ModelError

BACKEND = "openai-compatible"
# Token estimate when the server can't count: ~3.5 characters per token is typical of English
# with modern BPE vocabularies and errs towards over-counting, which is the safe side for a
# prompt budget. Each message adds role markers and separators; the reply adds an assistant header.
CHARS_PER_TOKEN = 3.5
MESSAGE_OVERHEAD_TOKENS = 4
REPLY_PRIMER_TOKENS = 3

_MAX_JSON_BYTES = 8 * 1024 * 1024
_MAX_LINE_BYTES = 1024 * 1024
_ERROR_BODY_BYTES = 64 * 1024
_MAX_STOPS = 4  # OpenAI's limit; servers that follow it refuse more
_ENDPOINT_ABSENT = frozenset({400, 404, 405, 422, 501})  # "no such API here", not "it broke"
_STOP_POLL_S = 0.05

Tokenizer = Literal["llama.cpp", "llama-cpp-python", "estimate"]


class ServerError(ModelError):
    """The chat server can't be used. Messages name the server URL."""


class ServerUnreachableError(ServerError):
    """No HTTP conversation happened: refused, unknown host, TLS failure, timeout."""


class ServerResponseError(ServerError):
    """The server answered, but with an HTTP error or something that isn't a valid answer."""


def estimate_tokens(messages: Sequence[ChatMessage]) -> int:
    """An estimate, not a count: ceil(chars / 3.5) per message plus template overhead."""
    total = REPLY_PRIMER_TOKENS
    for m in messages:
        total += math.ceil(len(m.content) / CHARS_PER_TOKEN) + MESSAGE_OVERHEAD_TOKENS
    return total


class _StopWatcher:
    """Shuts the connection's socket down when ``stop`` is set, so a blocked read returns now."""

    def __init__(self, stop: threading.Event, conn: http.client.HTTPConnection) -> None:
        self._stop = stop
        self._conn = conn
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="almanac-server-stop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # Event offers no "wait for either of two events"; a short poll is the simple way.
        while not self._done.is_set():
            if self._stop.wait(_STOP_POLL_S):
                _shutdown(self._conn)
                return

    def close(self) -> None:
        self._done.set()
        self._thread.join(timeout=1.0)


def _shutdown(conn: http.client.HTTPConnection) -> None:
    sock = conn.sock
    if sock is not None:
        # OSError: already closed, nothing left to interrupt.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def request_body(
    messages: Sequence[ChatMessage], config: GenerationConfig, model: str | None
) -> dict[str, Any]:
    """The chat-completion request for ``config``: the same generation settings the local engine
    applies, in the names OpenAI-style servers read."""
    body: dict[str, Any] = {
        "messages": [{"role": m.role, "content": m.content} for m in messages],
        "stream": True,
        "max_tokens": config.max_tokens,
        "temperature": config.temperature,
        "top_p": config.top_p,
    }
    if config.seed is not None:
        body["seed"] = config.seed
    if config.stop:
        body["stop"] = list(config.stop[:_MAX_STOPS])
    if config.repeat_penalty != 1.0:
        # Not in OpenAI's schema, but what llama.cpp's server, llama-cpp-python's and LM Studio
        # read; "frequency_penalty" is a different formula (it grows with the count), so it is
        # not sent in its place.
        body["repeat_penalty"] = config.repeat_penalty
    if model is not None:
        body["model"] = model
    return body


def cut_at_stops(pieces: Iterator[str], stops: Sequence[str]) -> Iterator[str]:
    """``pieces`` up to (not including) the first stop text, also for a server that ignores
    ``stop``; a stop text split across pieces is found, at the cost of holding back as many
    characters as the longest stop text minus one."""
    if not stops:
        yield from pieces
        return
    hold = max(len(s) for s in stops) - 1
    pending = ""
    for piece in pieces:
        pending += piece
        cut = min((i for s in stops if (i := pending.find(s)) >= 0), default=-1)
        if cut >= 0:
            if cut:
                yield pending[:cut]
            return
        if len(pending) > hold:
            ready, pending = pending[: len(pending) - hold], pending[len(pending) - hold :]
            yield ready
    if pending:
        yield pending


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _error_detail(raw: bytes) -> str:
    """The human part of an error body: OpenAI's error.message, FastAPI's detail, or the text."""
    text = raw.decode("utf-8", errors="replace")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return _one_line(text) or "(empty body)"
    if isinstance(obj, dict):
        err = obj.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return _one_line(err["message"])
        for key in ("error", "detail", "message"):
            value = obj.get(key)
            if isinstance(value, str):
                return _one_line(value)
            if value is not None:
                return _one_line(json.dumps(value))
    return _one_line(text)


class OpenAICompatibleEngine:
    """An :class:`~almanac.core.llm.base.Engine` backed by an OpenAI-compatible HTTP server.

    ``base_url`` is the server root, with or without a trailing ``/v1`` (``http://gpu-box:8080``).
    ``model`` is the served model id; when None the first id from ``/v1/models`` is used.
    ``timeout`` bounds each wait for the server (connecting, or the next bytes of an answer), not
    a whole answer. ``n_ctx`` is the server's context size, which the OpenAI API doesn't report.
    Not thread-safe, like every engine; :meth:`close` may be called from another thread.
    """

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        api_key: str | None = None,
        n_ctx: int = 8192,
        timeout: float = 120,
    ) -> None:
        parts = urlsplit(base_url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ModelError(
                f"server URL must be http:// or https:// with a host, got {base_url!r}"
            )
        if n_ctx < 1:
            raise ValueError("n_ctx must be at least 1")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        try:
            port = parts.port
        except ValueError as e:
            raise ModelError(f"server URL has an invalid port: {base_url!r}") from e
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = port
        prefix = parts.path.rstrip("/")
        self._prefix = prefix.removesuffix("/v1")
        self.url = f"{parts.scheme}://{parts.netloc}{self._prefix}"
        self._model = model
        self._api_key = api_key
        self._n_ctx = n_ctx
        self._timeout = float(timeout)
        self._served_model: str | None = None
        self._model_resolved = model is not None
        self._tokenizer: Tokenizer | None = None  # None until the first count probes the server
        self._has_apply_template: bool | None = None
        self._active: http.client.HTTPConnection | None = None
        self._closed = False

    # --- Engine protocol ------------------------------------------------------------------------

    @property
    def info(self) -> EngineInfo:
        """Asks ``/v1/models`` once when no model id was given; raises ServerError if that fails."""
        model = self._resolved_model()
        return EngineInfo(
            backend=BACKEND,
            model=model or "(server default)",
            n_ctx=self._n_ctx,
            chat_template="server",  # the server applies its own model's template
        )

    @property
    def tokenizer(self) -> Tokenizer | None:
        """How :meth:`count_tokens` counts on this server; None until the first count probes it."""
        return self._tokenizer

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """Tokens of the rendered prompt: exact from a llama.cpp server, otherwise approximate.

        llama.cpp's ``llama-server`` renders the chat template (``/apply-template``) and tokenizes
        it (``/tokenize``): an exact count. llama-cpp-python's server tokenizes text
        (``/extras/tokenize/count``); template overhead is then added as an estimate. Other
        servers get :func:`estimate_tokens`. Which one works is probed once and remembered.
        """
        self._check_open()
        if self._tokenizer in (None, "llama.cpp"):
            count = self._count_llama_cpp(messages)
            if count is not None:
                self._tokenizer = "llama.cpp"
                return count
        if self._tokenizer in (None, "llama-cpp-python"):
            count = self._count_llama_cpp_python(messages)
            if count is not None:
                self._tokenizer = "llama-cpp-python"
                return count
        if self._tokenizer is None:
            self._tokenizer = "estimate"
        return estimate_tokens(messages)

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        config: GenerationConfig,
        stop: threading.Event | None = None,
    ) -> Iterator[str]:
        self._check_open()
        if stop is not None and stop.is_set():
            return
        payload = request_body(messages, config, self._resolved_model())
        path = self._prefix + "/v1/chat/completions"
        conn, resp = self._send("POST", path, payload, accept="text/event-stream")
        self._active = conn
        watcher = _StopWatcher(stop, conn) if stop is not None else None
        try:
            if resp.status >= 400:
                raise self._http_error(resp.status, resp.read(_ERROR_BODY_BYTES), path)
            content_type = (resp.getheader("Content-Type") or "").lower()
            if "text/event-stream" in content_type:
                yield from cut_at_stops(self._read_events(resp, stop), config.stop)
            elif "json" in content_type:
                # Some servers ignore stream=true and send the whole answer at once.
                piece, _ = self._parse_chunk(self._read_json(resp, path), whole=True)
                if piece and not (stop is not None and stop.is_set()):
                    yield from cut_at_stops(iter([piece]), config.stop)
            else:
                raise ServerResponseError(
                    f"{self.url} answered {path} with {content_type or 'no content type'}, "
                    "not an event stream"
                )
        finally:
            if watcher is not None:
                watcher.close()
            conn.close()
            self._active = None

    def close(self) -> None:
        self._closed = True
        conn = self._active
        if conn is not None:
            _shutdown(conn)  # unblocks a stream being read on another thread
            conn.close()

    # --- Streaming ------------------------------------------------------------------------------

    def _read_events(
        self, resp: http.client.HTTPResponse, stop: threading.Event | None
    ) -> Iterator[str]:
        data_lines: list[str] = []
        finished = False
        while True:
            if stop is not None and stop.is_set():
                return
            try:
                raw = resp.readline(_MAX_LINE_BYTES)
            except (OSError, http.client.HTTPException) as e:
                if stop is not None and stop.is_set():
                    return  # the stop watcher shut the socket down under us
                raise self._transport_error(e) from e
            if not raw:
                if stop is not None and stop.is_set():
                    return
                if not finished:
                    raise ServerResponseError(
                        f"{self.url} ended the answer stream before the answer was complete"
                    )
                return
            if len(raw) >= _MAX_LINE_BYTES and not raw.endswith(b"\n"):
                raise ServerResponseError(f"{self.url} sent a malformed stream (a line over 1 MB)")
            # Splitting on ASCII newlines never cuts a UTF-8 sequence: per-line decoding is safe.
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if line:
                if line.startswith(":"):
                    continue  # SSE comment: keep-alive pings
                field, _, value = line.partition(":")
                if field == "data":
                    data_lines.append(value.removeprefix(" "))
                continue  # event:, id:, retry: carry nothing we use
            if not data_lines:
                continue
            data = "\n".join(data_lines)
            data_lines = []
            if data.strip() == "[DONE]":
                return
            piece, done = self._parse_chunk(self._decode_event(data), whole=False)
            finished = finished or done
            if piece:
                if stop is not None and stop.is_set():
                    return
                yield piece

    def _decode_event(self, data: str) -> Any:
        try:
            return json.loads(data)
        except json.JSONDecodeError as e:
            raise ServerResponseError(
                f"{self.url} sent a malformed stream event: {_one_line(data, 80)!r}"
            ) from e

    def _parse_chunk(self, obj: Any, *, whole: bool) -> tuple[str, bool]:
        """(text, finished) from one chunk (``delta``) or a whole answer (``message``)."""
        if not isinstance(obj, dict):
            raise ServerResponseError(f"{self.url} sent a malformed answer (not a JSON object)")
        if "error" in obj:
            detail = _error_detail(json.dumps(obj).encode("utf-8"))
            raise ServerResponseError(f"{self.url} reported an error while answering: {detail}")
        choices = obj.get("choices")
        if not isinstance(choices, list):
            raise ServerResponseError(f"{self.url} sent a malformed answer (no choices)")
        if not choices:
            return "", False  # e.g. a usage-only chunk after the last token
        choice = choices[0]
        if not isinstance(choice, dict):
            raise ServerResponseError(f"{self.url} sent a malformed answer (bad choice)")
        body = choice.get("message" if whole else "delta")
        content = body.get("content") if isinstance(body, dict) else None
        if content is None and isinstance(choice.get("text"), str):
            content = choice["text"]  # completions-style chunks from some servers
        if content is not None and not isinstance(content, str):
            raise ServerResponseError(f"{self.url} sent a malformed answer (content not text)")
        return content or "", whole or choice.get("finish_reason") is not None

    # --- Model id and token counting ------------------------------------------------------------

    def _resolved_model(self) -> str | None:
        if self._model is not None:
            return self._model
        if not self._model_resolved:
            self._check_open()
            path = self._prefix + "/v1/models"
            status, obj = self._json("GET", path)
            if status in _ENDPOINT_ABSENT:
                self._served_model = None  # no model list: let the server use its default
            elif status >= 400:
                raise self._http_error(status, json.dumps(obj).encode("utf-8"), path)
            else:
                self._served_model = self._first_model_id(obj, path)
            self._model_resolved = True
        return self._served_model

    def _first_model_id(self, obj: Any, path: str) -> str | None:
        data = obj.get("data") if isinstance(obj, dict) else None
        if not isinstance(data, list):
            raise ServerResponseError(f"{self.url} answered {path} without a model list")
        for item in data:
            if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]:
                return str(item["id"])
        return None

    def _count_llama_cpp(self, messages: Sequence[ChatMessage]) -> int | None:
        if self._has_apply_template is not False:
            status, obj = self._json(
                "POST",
                self._prefix + "/apply-template",
                {"messages": [{"role": m.role, "content": m.content} for m in messages]},
            )
            prompt = obj.get("prompt") if isinstance(obj, dict) and status < 300 else None
            self._has_apply_template = isinstance(prompt, str)
            if isinstance(prompt, str):
                tokens = self._llama_cpp_tokens(prompt, add_special=True)
                if tokens is not None:
                    return tokens
        text = "\n".join(m.content for m in messages)
        tokens = self._llama_cpp_tokens(text, add_special=False)
        if tokens is None:
            return None
        return tokens + MESSAGE_OVERHEAD_TOKENS * len(messages) + REPLY_PRIMER_TOKENS

    def _llama_cpp_tokens(self, text: str, *, add_special: bool) -> int | None:
        status, obj = self._json(
            "POST", self._prefix + "/tokenize", {"content": text, "add_special": add_special}
        )
        tokens = obj.get("tokens") if isinstance(obj, dict) and status < 300 else None
        return len(tokens) if isinstance(tokens, list) else None

    def _count_llama_cpp_python(self, messages: Sequence[ChatMessage]) -> int | None:
        payload: dict[str, Any] = {"input": "\n".join(m.content for m in messages)}
        if self._model is not None:
            payload["model"] = self._model
        status, obj = self._json("POST", self._prefix + "/extras/tokenize/count", payload)
        count = obj.get("count") if isinstance(obj, dict) and status < 300 else None
        if not isinstance(count, int) or isinstance(count, bool):
            return None
        return count + MESSAGE_OVERHEAD_TOKENS * len(messages) + REPLY_PRIMER_TOKENS

    # --- HTTP -----------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ModelError(f"the connection to {self.url} was closed")

    def _connection(self) -> http.client.HTTPConnection:
        assert self._host is not None  # checked in __init__
        if self._https:
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=self._timeout, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)

    def _send(
        self, method: str, path: str, payload: Any = None, *, accept: str = "application/json"
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        headers = {"Accept": accept, "User-Agent": "Almanac"}
        body: bytes | None = None
        if payload is not None:
            body = json.dumps(payload).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        conn = self._connection()
        try:
            conn.request(method, path, body=body, headers=headers)
            return conn, conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise self._transport_error(e) from e

    def _json(self, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        """(status, decoded body or None). HTTP errors are returned for the caller to judge."""
        conn, resp = self._send(method, path, payload)
        try:
            if resp.status >= 300:
                raw = resp.read(_ERROR_BODY_BYTES)
                try:
                    return resp.status, json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    return resp.status, {"error": raw.decode("utf-8", errors="replace")}
            return resp.status, self._read_json(resp, path)
        except (OSError, http.client.HTTPException) as e:
            raise self._transport_error(e) from e
        finally:
            conn.close()

    def _read_json(self, resp: http.client.HTTPResponse, path: str) -> Any:
        raw = resp.read(_MAX_JSON_BYTES + 1)
        if len(raw) > _MAX_JSON_BYTES:
            raise ServerResponseError(f"{self.url} answered {path} with over 8 MB of JSON")
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ServerResponseError(f"{self.url} answered {path} with malformed JSON") from e

    def _http_error(self, status: int, raw: bytes, path: str) -> ServerResponseError:
        detail = _error_detail(raw)
        if status in (401, 403):
            return ServerResponseError(
                f"{self.url} refused {path} (HTTP {status}: {detail}); check the API key"
            )
        if status == 404 and path.endswith("/chat/completions"):
            return ServerResponseError(
                f"{self.url} has no {path} (HTTP 404); is it an OpenAI-compatible server?"
            )
        return ServerResponseError(f"{self.url} answered {path} with HTTP {status}: {detail}")

    def _transport_error(self, e: Exception) -> ServerError:
        if isinstance(e, http.client.RemoteDisconnected):
            return ServerResponseError(f"{self.url} closed the connection without answering")
        if isinstance(e, ConnectionRefusedError):
            return ServerUnreachableError(
                f"cannot reach {self.url}: connection refused (is the server running?)"
            )
        if isinstance(e, socket.gaierror):
            return ServerUnreachableError(f"cannot reach {self.url}: unknown host {self._host}")
        if isinstance(e, TimeoutError):
            return ServerUnreachableError(f"{self.url} did not answer within {self._timeout:g} s")
        if isinstance(e, ssl.SSLError):
            return ServerUnreachableError(
                f"cannot reach {self.url}: TLS error ({_one_line(e.reason or str(e))})"
            )
        if isinstance(e, http.client.HTTPException):
            return ServerResponseError(
                f"{self.url} sent a malformed HTTP response ({type(e).__name__})"
            )
        if isinstance(e, OSError):
            reason = e.strerror or str(e) or type(e).__name__
            return ServerUnreachableError(f"cannot reach {self.url}: {_one_line(reason)}")
        return ServerError(f"{self.url}: {_one_line(str(e))}")
