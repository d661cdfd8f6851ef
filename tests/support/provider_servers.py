"""Local HTTP servers that speak the tagging providers' documented wire formats.

Each server binds 127.0.0.1 on a free port, runs in a background thread, and stops when its
``with`` block ends (or, at the latest, after ``lifetime`` seconds). Behaviour is scriptable:

* ``latency`` — seconds added before every answer.
* ``script(*replies, path=None)`` — a queue of exact replies (status, body, headers, delay) used,
  in order, before anything else; ``path`` limits an entry to requests on that path prefix.
* ``faults = Faults(error_rate=0.1, throttle_rate=0.05, hang_rate=0.02, seed=7)`` — random
  faults drawn from a seeded RNG (deterministic for a given request order), answered in the
  provider's own error format by :meth:`ProviderServer.fault_reply` (its ``error_reply`` and
  ``throttle_reply``).
* ``fail_images({sha256, ...}, kind="error")`` — every request whose image bytes hash to one of
  these fails (transiently by default) until ``recover()`` is called.
* ``calls`` / ``calls_to(path)`` / ``requests`` / ``last`` / ``wait_for_calls(n)`` — a thread-safe
  counter and the log of :class:`RecordedRequest` (method, path, query, headers, raw body, parsed
  JSON, multipart form fields and files, the image bytes the request carried).

Extension point (other providers' servers live in their own modules and subclass
:class:`ProviderServer`)::

    class MyServer(ProviderServer):
        name = "my-provider"

        def route(self, request: RecordedRequest) -> Reply:      # required: the wire format
            ...
        def authorized(self, request) -> bool: ...              # optional: check credentials
        def unauthorized_reply(self, request) -> Reply: ...     # optional: the auth error shape
        def image_of(self, request) -> bytes | None: ...        # optional: for fail_images()
        def error_reply(self) -> Reply: ...                     # optional: its internal error
        def throttle_reply(self, seconds) -> Reply: ...         # optional: its throttling answer

Order of precedence for one request: scripted reply → image failure rule → random fault →
authorization → :meth:`route`. Every request is recorded and counted first, whatever answers it.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import random
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email import policy as email_policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Literal, Self
from urllib.parse import parse_qs, urlsplit

FaultKind = Literal["error", "throttle", "hang", "drop", "malformed"]

HANG_SECONDS = 30.0
"""How long a hanging reply waits (it is released as soon as the server stops)."""


# --- Values ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One HTTP answer. ``body``: dict/list → JSON, str/bytes → sent as is, None → empty."""

    status: int = 200
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before answering (on top of the server's latency)."""
    drop: bool = False
    """Close the connection without answering."""

    @classmethod
    def json(cls, body: Any, status: int = 200, **headers: str) -> Reply:
        return cls(status=status, body=body, headers=dict(headers))

    @classmethod
    def hang(cls, seconds: float = HANG_SECONDS) -> Reply:
        return cls(status=504, body={"error": "late"}, delay=seconds)

    def encode(self) -> tuple[bytes, str]:
        if self.body is None:
            return b"", "application/json"
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), "application/json"
        return json.dumps(self.body).encode(), "application/json"


@dataclass(frozen=True)
class UploadedFile:
    name: str
    filename: str | None
    content_type: str | None
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    """Header names lower-cased."""
    body: bytes = field(repr=False)
    json: Any = None
    """The parsed JSON body (None when the body is not JSON)."""
    form: dict[str, str] = field(default_factory=dict)
    """Multipart text fields."""
    files: dict[str, UploadedFile] = field(default_factory=dict)
    """Multipart file parts by field name."""
    image: bytes | None = field(default=None, repr=False)
    """The image bytes this request carried, as the server's ``image_of`` found them."""
    received_at: float = 0.0

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    @property
    def image_sha256(self) -> str | None:
        return hashlib.sha256(self.image).hexdigest() if self.image is not None else None


@dataclass(frozen=True)
class Faults:
    """Random faults by rate (0..1 each, drawn once per request from a seeded RNG)."""

    error_rate: float = 0.0
    throttle_rate: float = 0.0
    hang_rate: float = 0.0
    drop_rate: float = 0.0
    malformed_rate: float = 0.0
    retry_after: float = 1.0
    """The Retry-After (seconds) a throttle fault carries."""
    hang_seconds: float = HANG_SECONDS
    seed: int = 0

    def draw(self, rng: random.Random) -> FaultKind | None:
        roll = rng.random()
        for kind, rate in (
            ("error", self.error_rate),
            ("throttle", self.throttle_rate),
            ("hang", self.hang_rate),
            ("drop", self.drop_rate),
            ("malformed", self.malformed_rate),
        ):
            if roll < rate:
                return kind  # type: ignore[return-value]
            roll -= rate
        return None


NO_FAULTS = Faults()


# --- Parsing helpers (shared by the handlers) --------------------------------------------------

_DATA_URL = re.compile(r"^data:(?P<type>[\w/+.-]+)?(?P<params>(;[\w=.-]+)*?);base64,(?P<data>.*)$", re.S)


def data_url_image(request: RecordedRequest, field: str = "image") -> bytes | None:
    """The image bytes of a JSON body's data-URL field."""
    body = request.json if isinstance(request.json, dict) else {}
    parsed = parse_data_url(body.get(field))
    return parsed[1] if parsed else None


def parse_data_url(value: object) -> tuple[str | None, bytes] | None:
    """(media type, bytes) of a base64 data URL, or None when it is not one."""
    if not isinstance(value, str):
        return None
    match = _DATA_URL.match(value)
    if not match:
        return None
    try:
        return match.group("type"), base64.b64decode(match.group("data"), validate=True)
    except (binascii.Error, ValueError):
        return None


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, UploadedFile]]:
    message = BytesParser(policy=email_policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    form: dict[str, str] = {}
    files: dict[str, UploadedFile] = {}
    if not message.is_multipart():
        return form, files
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        raw = part.get_payload(decode=True)
        payload = raw if isinstance(raw, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            files[name] = UploadedFile(name, filename, part.get_content_type(), payload)
        else:
            form[name] = payload.decode("utf-8", "replace")
    return form, files


def image_kind(data: bytes) -> str | None:
    """The image format by magic number (enough for the servers' format checks)."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data.startswith(b"BM"):
        return "bmp"
    return None


# --- The base server ---------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # socketserver's default listen backlog is 5: a batch's 10 connections opened at the same
    # instant would overflow it and wait a 1 s SYN retransmit. A provider's endpoint has room.
    request_queue_size = 128
    provider: ProviderServer


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    server_version = "provider-double/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: requests are in the server's log, and headers may carry keys."""

    def _handle(self) -> None:
        try:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            self.server.provider._serve(self, body)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the client gave up (its timeout), which is what some scripts test

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle


class ProviderServer:
    """A scriptable local double of one provider's HTTP API. Subclass and implement :meth:`route`."""

    name: ClassVar[str] = "provider"

    def __init__(
        self,
        *,
        latency: float = 0.0,
        faults: Faults | None = None,
        lifetime: float = 600.0,
    ) -> None:
        self.latency = latency
        self.lifetime = lifetime
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._faults = faults or NO_FAULTS
        self._rng = random.Random(self._faults.seed)
        self._script: deque[tuple[str | None, Reply]] = deque()
        self._image_rules: dict[str, FaultKind | Reply] = {}
        self._requests: list[RecordedRequest] = []
        self._calls_changed = threading.Condition(self._lock)
        self._http: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._watchdog: threading.Timer | None = None

    # -- lifecycle

    def start(self) -> Self:
        http = _HTTPServer(("127.0.0.1", 0), _Handler)
        http.provider = self
        self._http = http
        self._thread = threading.Thread(
            target=http.serve_forever, kwargs={"poll_interval": 0.1}, name=f"{self.name}-server", daemon=True
        )
        self._thread.start()
        self._watchdog = threading.Timer(self.lifetime, self.stop)
        self._watchdog.daemon = True
        self._watchdog.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases hanging replies
        if self._watchdog is not None:
            self._watchdog.cancel()
        http, self._http = self._http, None
        if http is not None:
            http.shutdown()
            http.server_close()

    def __enter__(self) -> Self:
        return self.start() if self._http is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._http is not None, "server not started"
        return int(self._http.server_address[1])

    @property
    def url(self) -> str:
        """The base URL (``http://127.0.0.1:PORT``); point a provider's endpoint at it."""
        return f"http://127.0.0.1:{self.port}"

    # -- scripting

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        with self._lock:
            self._faults = faults
            self._rng = random.Random(faults.seed)

    def script(self, *replies: Reply, path: str | None = None) -> None:
        """Queue replies used, in order, for the next requests (on `path` prefix, when given)."""
        with self._lock:
            self._script.extend((path, reply) for reply in replies)

    def fail_images(self, sha256s: Iterable[str], kind: FaultKind | Reply = "error") -> None:
        """Fail every request carrying one of these images (by sha256) until :meth:`recover`."""
        with self._lock:
            for digest in sha256s:
                self._image_rules[digest] = kind

    def recover(self, sha256s: Iterable[str] | None = None) -> None:
        with self._lock:
            if sha256s is None:
                self._image_rules.clear()
            else:
                for digest in sha256s:
                    self._image_rules.pop(digest, None)

    def reset(self) -> None:
        """Forget the request log, script, image rules and faults (keeps latency)."""
        with self._lock:
            self._requests.clear()
            self._script.clear()
            self._image_rules.clear()
            self.faults = NO_FAULTS

    # -- observation

    @property
    def calls(self) -> int:
        with self._lock:
            return len(self._requests)

    def calls_to(self, path: str, method: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for r in self._requests
                if r.path.startswith(path) and (method is None or r.method == method)
            )

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def last(self) -> RecordedRequest:
        with self._lock:
            assert self._requests, f"{self.name}: no request received"
            return self._requests[-1]

    def wait_for_calls(self, count: int, timeout: float = 5.0) -> bool:
        with self._calls_changed:
            return self._calls_changed.wait_for(lambda: len(self._requests) >= count, timeout)

    # -- extension points

    def route(self, request: RecordedRequest) -> Reply:
        """The provider's normal behaviour for a request that passed auth and drew no fault."""
        raise NotImplementedError

    def authorized(self, request: RecordedRequest) -> bool:
        return True

    def unauthorized_reply(self, request: RecordedRequest) -> Reply:
        return Reply.json({"error": "Unauthorized"}, 401)

    def image_of(self, request: RecordedRequest) -> bytes | None:
        """The image bytes a request carries (used by :meth:`fail_images` and recorded)."""
        return next(iter(request.files.values())).data if request.files else None

    def error_reply(self) -> Reply:
        """The provider's internal error (the ``error`` fault). Subclasses give its format."""
        return Reply.json({"error": "Internal Server Error"}, 500)

    def throttle_reply(self, seconds: float) -> Reply:
        """The provider's throttling answer asking to wait `seconds` (the ``throttle`` fault)."""
        return Reply.json({"error": "Too Many Requests"}, 429, **{"Retry-After": _seconds(seconds)})

    def fault_reply(self, kind: FaultKind, request: RecordedRequest) -> Reply:
        """A fault in the provider's error format."""
        if kind == "error":
            return self.error_reply()
        if kind == "throttle":
            return self.throttle_reply(self.faults.retry_after)
        if kind == "hang":
            return Reply.hang(self.faults.hang_seconds)
        if kind == "drop":
            return Reply(drop=True)
        if kind == "malformed":
            return Reply(status=200, body='{"truncated": ')
        return self.error_reply()

    # -- serving

    def _record(self, handler: _Handler, body: bytes) -> RecordedRequest:
        split = urlsplit(handler.path)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        content_type = headers.get("content-type", "")
        parsed_json: Any = None
        form: dict[str, str] = {}
        files: dict[str, UploadedFile] = {}
        if content_type.startswith("multipart/"):
            form, files = parse_multipart(content_type, body)
        elif content_type.startswith("application/x-www-form-urlencoded"):
            form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        elif body:
            try:
                parsed_json = json.loads(body)
            except ValueError:
                parsed_json = None
        request = RecordedRequest(
            method=handler.command,
            path=split.path,
            query=parse_qs(split.query),
            headers=headers,
            body=body,
            json=parsed_json,
            form=form,
            files=files,
            received_at=time.monotonic(),
        )
        try:
            image = self.image_of(request)
        except Exception:  # a malformed request carries no usable image; route() answers it
            image = None
        return dataclasses.replace(request, image=image)

    def _decide(self, request: RecordedRequest) -> Reply:
        with self._lock:
            for index, (path, scripted) in enumerate(self._script):
                if path is None or request.path.startswith(path):
                    del self._script[index]
                    return scripted
            digest = request.image_sha256
            rule = self._image_rules.get(digest) if digest else None
            fault = None if rule is not None else self._faults.draw(self._rng)
        if isinstance(rule, Reply):
            return rule
        if rule is not None:
            return self.fault_reply(rule, request)
        if fault is not None:
            return self.fault_reply(fault, request)
        if not self.authorized(request):
            return self.unauthorized_reply(request)
        return self.route(request)

    def _serve(self, handler: _Handler, body: bytes) -> None:
        request = self._record(handler, body)
        with self._calls_changed:
            self._requests.append(request)
            self._calls_changed.notify_all()
        try:
            reply = self._decide(request)
        except Exception as exc:  # a bug in a double must show up as a 500, not a hung client
            reply = Reply.json({"error": f"double failed: {type(exc).__name__}: {exc}"}, 500)
        wait = self.latency + reply.delay
        if wait > 0 and self._stopping.wait(wait):
            return  # stopping: drop the connection
        if reply.drop:
            handler.close_connection = True
            return
        payload, default_type = reply.encode()
        handler.send_response(reply.status)
        headers = {k.lower(): v for k, v in reply.headers.items()}
        headers.setdefault("content-type", default_type)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("content-length", str(len(payload)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(payload)


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def new_request_id() -> str:
    return uuid.uuid4().hex


# --- imagedescriber (seeds/000) ----------------------------------------------------------------

IMAGEDESCRIBER_LANGS = ("en", "zh", "fr", "de", "es", "ja", "ko")
IMAGEDESCRIBER_MESSAGES = {
    1002: "Unauthorized",
    1003: "Invalid API Key",
    1004: "Too Many Requests",
    1005: "Invalid Parameters",
    2002: "Insufficient Credits",
    2003: "Content Blocked by Filter",
    2004: "Invalid Image Format",
    2005: "Image Upload Failed",
    5050: "Internal Server Error",
}


class ImageDescriberServer(ProviderServer):
    """``POST /api/v1/generate_tags``: Bearer key, ``{"image": data URL, "lang"}`` → code/data.

    The document does not say which HTTP status accompanies an error ``code``; by default the
    double sends the status below with the JSON error body (``error(code, http_status=200)``
    scripts the other possibility). Each success consumes ``credits_per_call`` from ``credits``;
    at zero it answers 2002.
    """

    name = "imagedescriber"
    PATH = "/api/v1/generate_tags"
    ERROR_HTTP_STATUS: ClassVar[dict[int, int]] = {
        1002: 401,
        1003: 401,
        1004: 429,
        1005: 400,
        2002: 402,
        2003: 400,
        2004: 400,
        2005: 500,
        5050: 500,
    }

    def __init__(
        self,
        *,
        api_key: str = "test-imagedescriber-key",
        tags: Iterable[str] = ("cat", "pet", "whiskers", "indoor"),
        title: str = "A cat at home",
        description: str = "A tabby cat sitting on a sofa in a sunlit living room.",
        credits: int = 100,
        credits_per_call: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.api_key = api_key
        self.tags = list(tags)
        self.title = title
        self.description = description
        self.credits = credits
        self.credits_per_call = credits_per_call
        self.localized: dict[str, list[str]] = {}
        """Tags by language (falls back to ``tags``)."""

    @classmethod
    def error(
        cls,
        code: int,
        message: str | None = None,
        *,
        http_status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        return Reply.json(
            {
                "code": code,
                "message": message or IMAGEDESCRIBER_MESSAGES.get(code, "error"),
                "request_id": new_request_id(),
            },
            http_status or cls.ERROR_HTTP_STATUS.get(code, 400),
            **dict(headers or {}),
        )

    def authorized(self, request: RecordedRequest) -> bool:
        return request.header("authorization") == f"Bearer {self.api_key}"

    def unauthorized_reply(self, request: RecordedRequest) -> Reply:
        return self.error(1003 if request.header("authorization") else 1002)

    def image_of(self, request: RecordedRequest) -> bytes | None:
        return data_url_image(request)

    def error_reply(self) -> Reply:
        return self.error(5050)

    def throttle_reply(self, seconds: float) -> Reply:
        return self.error(1004, headers={"Retry-After": _seconds(seconds)})

    def route(self, request: RecordedRequest) -> Reply:
        if request.path != self.PATH:
            return Reply.json({"code": 404, "message": "Not Found"}, 404)
        if request.method != "POST":
            return Reply.json({"code": 405, "message": "Method Not Allowed"}, 405)
        body = request.json
        if not isinstance(body, dict) or not isinstance(body.get("image"), str):
            return self.error(1005)
        lang = body.get("lang", "en")
        if lang not in IMAGEDESCRIBER_LANGS:
            return self.error(1005, "Invalid Parameters: lang")
        parsed = parse_data_url(body["image"])
        if parsed is None or image_kind(parsed[1]) not in ("jpeg", "png", "webp"):
            return self.error(2004)
        if len(parsed[1]) > 4 * 1024 * 1024:
            return self.error(2004, "Invalid Image Format: larger than 4MB")
        with self._lock:
            if self.credits < self.credits_per_call:
                return self.error(2002)
            self.credits -= self.credits_per_call
            remaining = self.credits
        return Reply.json(
            {
                "code": 0,
                "message": "success",
                "request_id": new_request_id(),
                "data": {
                    "tags": {
                        "tags": list(self.localized.get(lang, self.tags)),
                        "title": self.title,
                        "description": self.description,
                    },
                    "credits": {"amount": self.credits_per_call, "remaining": remaining},
                },
            }
        )


# --- CoreViz (seeds/001) -----------------------------------------------------------------------


class CoreVizServer(ProviderServer):
    """``POST /api/ai/tag``: ``x-api-key``; ``{"image", "prompt"?, "choices"?, "single"?}``.

    ``tag_style``: ``"objects"`` (``[{"tag","confidence"}]``, the SDK document) or ``"strings"``
    (``{"tags": [str], "raw": {...}}``, the other documented version).
    """

    name = "coreviz"
    PATH = "/api/ai/tag"

    def __init__(
        self,
        *,
        api_key: str = "test-coreviz-key",
        tags: Iterable[tuple[str, float]] = (("person", 0.95), ("outdoor", 0.87), ("nature", 0.82)),
        tag_style: Literal["objects", "strings"] = "objects",
        scores: Mapping[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.api_key = api_key
        self.tags = list(tags)
        self.tag_style = tag_style
        self.scores = dict(scores or {})
        """Classification scores by choice (unlisted choices score 0.05)."""
        self.prompt_tags: dict[str, list[tuple[str, float]]] = {}
        """Tags answered for a given prompt."""

    @staticmethod
    def error(status: int, message: str | None = None, headers: Mapping[str, str] | None = None) -> Reply:
        titles = {
            400: ("Bad Request", "Invalid image URL or missing required fields"),
            401: ("Unauthorized", "Invalid or missing API key"),
            422: ("Unprocessable Entity", "Unable to process the provided image"),
            429: ("Too Many Requests", "Rate limit exceeded"),
            500: ("Internal Server Error", "Something went wrong"),
        }
        title, default = titles.get(status, ("Error", "Error"))
        return Reply.json({"error": title, "message": message or default}, status, **dict(headers or {}))

    def authorized(self, request: RecordedRequest) -> bool:
        return request.header("x-api-key") == self.api_key

    def unauthorized_reply(self, request: RecordedRequest) -> Reply:
        return self.error(401)

    def image_of(self, request: RecordedRequest) -> bytes | None:
        return data_url_image(request)

    def error_reply(self) -> Reply:
        return self.error(500)

    def throttle_reply(self, seconds: float) -> Reply:
        return self.error(429, headers={"Retry-After": _seconds(seconds)})

    def route(self, request: RecordedRequest) -> Reply:
        if request.path != self.PATH or request.method != "POST":
            return Reply.json({"error": "Not Found"}, 404)
        body = request.json
        if not isinstance(body, dict) or not isinstance(body.get("image"), str):
            return self.error(400)
        image = body["image"]
        if image.startswith("data:"):
            parsed = parse_data_url(image)
            if parsed is None or image_kind(parsed[1]) not in ("jpeg", "png", "webp", "gif"):
                return self.error(422)
        elif not image.startswith(("http://", "https://")):
            return self.error(400)
        choices = body.get("choices")
        if choices is not None:
            if not isinstance(choices, list) or not choices or not all(isinstance(c, str) for c in choices):
                return self.error(400, "choices must be a non-empty list of strings")
            all_scores = [{"choice": c, "score": self.scores.get(c, 0.05)} for c in choices]
            best = max(all_scores, key=lambda s: s["score"])
            if body.get("single"):
                return Reply.json(
                    {"classification": best["choice"], "confidence": best["score"], "all_scores": all_scores}
                )
            return Reply.json({"all_scores": all_scores})
        tags = self.prompt_tags.get(body.get("prompt") or "", self.tags)
        if self.tag_style == "strings":
            return Reply.json({"tags": [t for t, _ in tags], "raw": {"model": "double"}})
        return Reply.json({"tags": [{"tag": t, "confidence": c} for t, c in tags]})


# --- PixLab tagimg (seeds/002) -----------------------------------------------------------------


class PixLabServer(ProviderServer):
    """``GET|POST /tagimg``: key as ``key`` (query, form or JSON) or in ``WWW-Authenticate``.

    Errors come back as HTTP 200 with ``{"status": <code>, "error": "..."}`` (as documented),
    except infrastructure faults (HTTP 5xx) and throttling (HTTP 429 with Retry-After).
    ``confidence_scale`` 1 or 100 lets tests check the adapter's scale detection.
    """

    name = "pixlab"
    PATH = "/tagimg"

    def __init__(
        self,
        *,
        api_key: str = "test-pixlab-key",
        tags: Iterable[tuple[str, float]] = (("tree", 0.97), ("grass", 0.91), ("sky", 0.84), ("road", 0.41)),
        confidence_scale: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.api_key = api_key
        self.tags = list(tags)
        self.confidence_scale = confidence_scale

    @staticmethod
    def error(
        status: int, message: str, *, http_status: int = 200, headers: Mapping[str, str] | None = None
    ) -> Reply:
        return Reply.json({"status": status, "error": message}, http_status, **dict(headers or {}))

    @staticmethod
    def key_of(request: RecordedRequest) -> str | None:
        body = request.json if isinstance(request.json, dict) else {}
        return (
            request.param("key")
            or request.form.get("key")
            or (body.get("key") if isinstance(body.get("key"), str) else None)
            or request.header("www-authenticate")
        )

    def authorized(self, request: RecordedRequest) -> bool:
        return self.key_of(request) == self.api_key

    def unauthorized_reply(self, request: RecordedRequest) -> Reply:
        if self.key_of(request) is None:
            return self.error(401, "Missing API key")
        return self.error(401, "Invalid API key")

    def error_reply(self) -> Reply:
        return Reply.json({"status": 500, "error": "Internal Server Error"}, 500)

    def throttle_reply(self, seconds: float) -> Reply:
        return self.error(
            429, "Too many requests", http_status=429, headers={"Retry-After": _seconds(seconds)}
        )

    def route(self, request: RecordedRequest) -> Reply:
        if request.path != self.PATH:
            return self.error(404, "Unknown endpoint", http_status=404)
        if request.method == "POST" and request.files:
            data = next(iter(request.files.values())).data
            if image_kind(data) is None:
                return self.error(400, "Uploaded file is not a supported image")
        else:
            body = request.json if isinstance(request.json, dict) else {}
            img = request.param("img") or request.form.get("img") or body.get("img")
            if not img:
                return self.error(400, "Missing img parameter")
            if not str(img).startswith(("http://", "https://")):
                return self.error(400, "Invalid img URL")
        return Reply.json(
            {
                "status": 200,
                "tags": [{"name": n, "confidence": c * self.confidence_scale} for n, c in self.tags],
            }
        )


# --- ImageKit upload + AI auto-tagging (seeds/003) ---------------------------------------------

IMAGEKIT_EXTENSIONS = ("google-auto-tagging", "aws-auto-tagging")


@dataclass
class ExtensionPlan:
    """How one auto-tagging extension behaves on the double.

    ``status`` is what the upload answers; when it is ``pending``, the extension settles to
    ``final`` after ``pending_polls`` reads of the file's details.
    """

    tags: list[tuple[str, float]]
    status: Literal["success", "failed", "pending"] = "success"
    final: Literal["success", "failed"] = "success"
    pending_polls: int = 1


@dataclass
class StoredFile:
    file_id: str
    name: str
    folder: str
    data: bytes = field(repr=False)
    extensions: list[dict[str, Any]] = field(default_factory=list)
    status: dict[str, str] = field(default_factory=dict)
    polls_left: dict[str, int] = field(default_factory=dict)
    ai_tags: list[dict[str, Any]] = field(default_factory=list)


class ImageKitServer(ProviderServer):
    """ImageKit's upload and file APIs on one server.

    ``POST /api/v1/files/upload`` (multipart: file, fileName, folder, extensions JSON…),
    ``GET /v1/files/{fileId}/details``, ``DELETE /v1/files/{fileId}``. HTTP Basic auth with the
    private key as user name and an empty password. ``plans`` decides each extension's outcome.
    """

    name = "imagekit"
    UPLOAD_PATH = "/api/v1/files/upload"
    FILES_PATH = "/v1/files/"

    def __init__(self, *, private_key: str = "private_test_imagekit_key", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.private_key = private_key
        self.plans: dict[str, ExtensionPlan] = {
            "google-auto-tagging": ExtensionPlan(
                [
                    ("Toy", 91.73),
                    ("Teddy bear", 83.52),
                    ("Red", 81.77),
                    ("Stuffed toy", 76.25),
                    ("Art", 72.83),
                ]
            ),
            "aws-auto-tagging": ExtensionPlan(
                [("Teddy Bear", 98.52), ("Toy", 98.52), ("Sweets", 77.84), ("Heart", 61.19), ("Plush", 56.64)]
            ),
        }
        self.files: dict[str, StoredFile] = {}
        self.deleted: list[str] = []

    @staticmethod
    def error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Reply:
        body = {"message": message, "help": "For support kindly contact us."}
        return Reply.json(body, status, **dict(headers or {}))

    def authorized(self, request: RecordedRequest) -> bool:
        expected = "Basic " + base64.b64encode(f"{self.private_key}:".encode()).decode()
        return request.header("authorization") == expected

    def unauthorized_reply(self, request: RecordedRequest) -> Reply:
        if not request.header("authorization"):
            return self.error(401, "Your request does not contain private API key.")
        return self.error(403, "Your account cannot be authenticated.")

    def error_reply(self) -> Reply:
        return self.error(500, "We have experienced an internal error while processing your request.")

    def throttle_reply(self, seconds: float) -> Reply:
        headers = {
            "Retry-After": _seconds(seconds),
            "X-RateLimit-Limit": "100",
            "X-RateLimit-Reset": str(int(seconds * 1000)),
            "X-RateLimit-Interval": "1000",
        }
        return self.error(429, "Too many requests", headers)

    def route(self, request: RecordedRequest) -> Reply:
        if request.path == self.UPLOAD_PATH and request.method == "POST":
            return self._upload(request)
        if request.path.startswith(self.FILES_PATH):
            rest = request.path[len(self.FILES_PATH) :].strip("/").split("/")
            if len(rest) == 2 and rest[1] == "details" and request.method == "GET":
                return self._details(rest[0])
            if len(rest) == 1 and request.method == "DELETE":
                return self._delete(rest[0])
        return self.error(404, "Not found")

    def _upload(self, request: RecordedRequest) -> Reply:
        upload = request.files.get("file")
        if upload is None or not upload.data:
            return self.error(400, "Missing file parameter for upload")
        file_name = request.form.get("fileName")
        if not file_name:
            return self.error(400, "Missing fileName parameter for upload")
        try:
            extensions = json.loads(request.form.get("extensions", "[]"))
        except ValueError:
            return self.error(400, "Invalid extensions parameter")
        problem = _check_extensions(extensions)
        if problem:
            return self.error(400, problem)
        folder = request.form.get("folder", "/").rstrip("/") or ""
        with self._lock:
            stored = StoredFile(
                file_id=secrets.token_hex(12),
                name=file_name,
                folder=folder,
                data=upload.data,
                extensions=extensions,
            )
            for ext in extensions:
                plan = self.plans[ext["name"]]
                stored.status[ext["name"]] = plan.status
                stored.polls_left[ext["name"]] = plan.pending_polls
                if plan.status == "success":
                    stored.ai_tags.extend(self._tags_for(ext))
            self.files[stored.file_id] = stored
            return Reply.json(self._file_object(stored))

    def _details(self, file_id: str) -> Reply:
        with self._lock:
            stored = self.files.get(file_id)
            if stored is None:
                return self.error(404, "The requested file does not exist.")
            for ext in stored.extensions:
                name = ext["name"]
                if stored.status[name] != "pending":
                    continue
                stored.polls_left[name] -= 1
                if stored.polls_left[name] <= 0:
                    final = self.plans[name].final
                    stored.status[name] = final
                    if final == "success":
                        stored.ai_tags.extend(self._tags_for(ext))
            return Reply.json({**self._file_object(stored), "type": "file", "mime": "image/jpeg"})

    def _delete(self, file_id: str) -> Reply:
        with self._lock:
            if self.files.pop(file_id, None) is None:
                return self.error(404, "The requested file does not exist.")
            self.deleted.append(file_id)
        return Reply(status=204)

    def _tags_for(self, ext: Mapping[str, Any]) -> list[dict[str, Any]]:
        plan = self.plans[ext["name"]]
        kept = sorted((t for t in plan.tags if t[1] >= ext["minConfidence"]), key=lambda t: -t[1])
        return [{"name": n, "confidence": c, "source": ext["name"]} for n, c in kept[: ext["maxTags"]]]

    def _file_object(self, stored: StoredFile) -> dict[str, Any]:
        path = f"{stored.folder}/{stored.name}"
        body: dict[str, Any] = {
            "fileId": stored.file_id,
            "name": stored.name,
            "url": f"https://ik.imagekit.io/double{path}",
            "thumbnailUrl": f"https://ik.imagekit.io/double/tr:n-media_library_thumbnail{path}",
            "filePath": path,
            "size": len(stored.data),
            "fileType": "image",
            "AITags": list(stored.ai_tags) or None,
        }
        if stored.extensions:
            body["extensionStatus"] = dict(stored.status)
        return body


def _check_extensions(extensions: object) -> str | None:
    if not isinstance(extensions, list):
        return "extensions must be an array"
    for ext in extensions:
        if not isinstance(ext, dict) or ext.get("name") not in IMAGEKIT_EXTENSIONS:
            return "Invalid extension name"
        confidence, max_tags = ext.get("minConfidence"), ext.get("maxTags")
        if not isinstance(confidence, (int, float)) or not 0 <= confidence <= 100:
            return "minConfidence must be between 0 and 100"
        if not isinstance(max_tags, int) or not 0 <= max_tags <= 30:
            return "maxTags must be between 0 and 30"
    return None
