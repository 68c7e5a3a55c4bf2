"""A small HTTP/1.1 server on asyncio streams, inside the collector's event loop: the
dashboard, the JSON API and /metrics. GET and HEAD only, keep-alive, bounded request size, a
timeout for idle or slow clients. Static files are the dashboard's own, loaded into memory at
start and served by exact name — no request path ever reaches the file system."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST

from energy_pipeline.config import DEVICE_ID_PATTERN, HttpOutput
from energy_pipeline.live.api import LiveApi
from energy_pipeline.live.encoding import BodyCache, accepts_gzip, matches
from energy_pipeline.live.history import History, HistoryError
from energy_pipeline.live.metrics import MetricsSink

log = logging.getLogger("energy_pipeline.http")

STATIC_DIR = Path(__file__).parent / "static"
STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
JSON_TYPE = "application/json"
MAX_LINE = 8192
MAX_HEADERS = 64
IDLE_TIMEOUT = 15.0
TOKEN_COOKIE = "ep_token"
_DEVICE = re.compile(DEVICE_ID_PATTERN)
_SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-cache"),
    ("Content-Security-Policy", "default-src 'self'; img-src 'self' data:"),
    ("Referrer-Policy", "no-referrer"),
)


class BadRequest(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        self.status = status
        super().__init__(message)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    keep_alive: bool


@dataclass
class Response:
    status: HTTPStatus
    body: bytes
    content_type: str = JSON_TYPE
    extra: tuple[tuple[str, str], ...] = ()


def json_response(status: HTTPStatus, doc: object) -> Response:
    return Response(status, json.dumps(doc, separators=(",", ":")).encode())


def error(status: HTTPStatus, message: str) -> Response:
    return json_response(status, {"error": message, "status": status.value})


def load_static() -> dict[str, tuple[bytes, str]]:
    """The dashboard's files by URL: `/` is index.html, the rest under /static/<name>."""
    files: dict[str, tuple[bytes, str]] = {}
    for path in sorted(STATIC_DIR.rglob("*")):
        kind = STATIC_TYPES.get(path.suffix)
        if path.is_file() and kind:
            files[f"/static/{path.relative_to(STATIC_DIR).as_posix()}"] = (path.read_bytes(), kind)
    files["/"] = files["/static/index.html"]
    return files


class HttpServer:
    def __init__(
        self,
        cfg: HttpOutput,
        api: LiveApi,
        metrics: MetricsSink,
        clock: Callable[[], datetime],
        history: History | None = None,
    ):
        self.cfg = cfg
        self.history = history
        self._bodies = BodyCache()
        self.api = api
        self.metrics = metrics
        self.clock = clock
        self.port: int | None = None
        self._token = cfg.token.get_secret_value().encode() if cfg.token else None
        self._static = load_static()
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self.cfg.host, self.cfg.port, limit=MAX_LINE
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info(f"dashboard on http://{self.cfg.host}:{self.port}/")

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._clients):
            task.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)
        await self._server.wait_closed()
        if self.history is not None:
            self.history.close()

    def offer(self, outcomes: object) -> None:
        """Reads come from the shared store; nothing to queue here."""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            while True:
                try:
                    request = await asyncio.wait_for(read_request(reader), IDLE_TIMEOUT)
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    return
                except BadRequest as exc:
                    await send(writer, error(exc.status, str(exc)), head=False, keep=False)
                    return
                if request is None:
                    return
                response = await self.respond(request)
                await send(writer, response, request.method == "HEAD", request.keep_alive)
                if not request.keep_alive:
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self._clients.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _authorized(self, request: Request) -> bool:
        if self._token is None:
            return True
        offered = ""
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            offered = auth[7:].strip()
        elif "token" in request.query:
            offered = request.query["token"][0]
        else:
            for part in request.headers.get("cookie", "").split(";"):
                name, _, value = part.strip().partition("=")
                if name == TOKEN_COOKIE:
                    offered = value
        return hmac.compare_digest(offered.encode(), self._token)

    async def respond(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return error(HTTPStatus.METHOD_NOT_ALLOWED, "only GET and HEAD are served")
        if not self._authorized(request):
            resp = error(HTTPStatus.UNAUTHORIZED, "missing or wrong bearer token")
            resp.extra = (("WWW-Authenticate", 'Bearer realm="energy_pipeline"'),)
            return resp
        try:
            resp = self._encode(request, await self._route(request))
        except BadRequest as exc:
            return error(exc.status, str(exc))
        if self._token is not None and "token" in request.query:
            # The browser came with ?token=: keep it in a cookie so the page's own requests
            # (scripts, fetches) are authorised too. The configured value, never the query's.
            cookie = f"{TOKEN_COOKIE}={self._token.decode()}; HttpOnly; SameSite=Strict; Path=/"
            resp.extra = (*resp.extra, ("Set-Cookie", cookie))
        return resp

    def _encode(self, request: Request, resp: Response) -> Response:
        """ETag on every 200, 304 when the client holds that body, gzip when accepted."""
        if resp.status != HTTPStatus.OK:
            return resp
        etag, gz = self._bodies.encode(resp.body)
        headers = (*resp.extra, ("ETag", etag), ("Vary", "Accept-Encoding"))
        if matches(request.headers.get("if-none-match", ""), etag):
            return Response(HTTPStatus.NOT_MODIFIED, b"", resp.content_type, headers)
        if gz is not None and accepts_gzip(request.headers.get("accept-encoding", "")):
            return Response(
                resp.status, gz, resp.content_type, (*headers, ("Content-Encoding", "gzip"))
            )
        return Response(resp.status, resp.body, resp.content_type, headers)

    async def _route(self, request: Request) -> Response:
        path = request.path
        now = self.clock()
        if path in self._static:
            body, kind = self._static[path]
            return Response(HTTPStatus.OK, body, kind)
        if path == "/api/telemetry":
            if "since" in request.query or "view" in request.query:
                since = request.query.get("since", ["0"])[0]
                if not since.isdigit():
                    raise BadRequest(HTTPStatus.BAD_REQUEST, "since: expected a sequence number")
                cards = request.query.get("view", [""])[0] == "cards"
                return Response(HTTPStatus.OK, self.api.telemetry_since(int(since), cards))
            return Response(HTTPStatus.OK, self.api.telemetry(now))
        if path.startswith("/api/telemetry/"):
            device = path.removeprefix("/api/telemetry/")
            if not _DEVICE.fullmatch(device) or device not in self.api.store.meta:
                return error(HTTPStatus.NOT_FOUND, f"no device {device!r}")
            return json_response(HTTPStatus.OK, self.api.device_telemetry(device, now))
        if path == "/api/devices":
            return json_response(HTTPStatus.OK, {"devices": self.api.devices()})
        if path == "/api/alerts":
            return json_response(HTTPStatus.OK, self.api.alerts_doc())
        if path == "/api/history":
            if self.history is None or "device" not in request.query:
                return json_response(HTTPStatus.OK, {"series": self.api.store.chart()})
            try:
                doc = await self.history.serve(request.query, now)
            except HistoryError as exc:
                raise BadRequest(HTTPStatus.BAD_REQUEST, str(exc)) from None
            except Exception:
                log.exception("history query failed")
                return error(HTTPStatus.INTERNAL_SERVER_ERROR, "history query failed")
            return json_response(HTTPStatus.OK, doc)
        if path == "/api/health":
            code, doc = self.api.health(now)
            return json_response(HTTPStatus(code), doc)
        if path == "/metrics":
            return Response(HTTPStatus.OK, self.metrics.render(), CONTENT_TYPE_LATEST)
        return error(HTTPStatus.NOT_FOUND, "not found")


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """One request head; None at a clean end of the connection. Bodies are refused."""
    try:
        line = await reader.readuntil(b"\r\n")
    except asyncio.LimitOverrunError:
        raise BadRequest(HTTPStatus.REQUEST_URI_TOO_LONG, "request line too long") from None
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise BadRequest(HTTPStatus.BAD_REQUEST, "incomplete request line") from None
    parts = line.decode("latin-1").rstrip("\r\n").split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(HTTPStatus.BAD_REQUEST, "malformed request line")
    method, target, version = parts
    headers: dict[str, str] = {}
    while True:
        try:
            raw = await reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError:
            raise BadRequest(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "header line too long"
            ) from None
        if raw == b"\r\n":
            break
        if len(headers) >= MAX_HEADERS:
            raise BadRequest(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "too many headers")
        name, sep, value = raw.decode("latin-1").partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(HTTPStatus.BAD_REQUEST, "malformed header line")
        headers[name.lower()] = value.strip()
    if headers.get("content-length", "0") != "0" or "transfer-encoding" in headers:
        raise BadRequest(HTTPStatus.BAD_REQUEST, "request bodies are not accepted")
    if not target.startswith("/"):
        raise BadRequest(HTTPStatus.BAD_REQUEST, "expected an absolute path")
    url = urlsplit(target)
    try:
        query = parse_qs(url.query, strict_parsing=False, max_num_fields=20)
    except ValueError:
        raise BadRequest(HTTPStatus.BAD_REQUEST, "malformed query string") from None
    connection = headers.get("connection", "").lower()
    keep = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
    return Request(method, url.path, query, headers, keep)


async def send(writer: asyncio.StreamWriter, resp: Response, head: bool, keep: bool) -> None:
    lines = [
        f"HTTP/1.1 {resp.status.value} {resp.status.phrase}",
        f"Content-Type: {resp.content_type}",
        f"Content-Length: {len(resp.body)}",
        f"Connection: {'keep-alive' if keep else 'close'}",
        *(f"{k}: {v}" for k, v in (*_SECURITY_HEADERS, *resp.extra)),
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    if not head:
        writer.write(resp.body)
    await writer.drain()
