"""Plain ASGI middleware: request ids, security headers, body limits, access log."""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from identity import metrics

log = logging.getLogger("identity.access")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    # JSON answers need nothing; pages that do (GraphiQL, the link pages) set their own.
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
]


class BodyTooLarge(Exception):
    pass


class RequestMiddleware:
    """Gives every request an id (from X-Request-ID or new), bounds its body, logs it.

    Plain ASGI rather than BaseHTTPMiddleware: no extra task or body copy per request.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_size: int,
        trusted_proxies: Sequence[str] = (),
        direct: Mapping[str, ASGIApp] | None = None,
    ) -> None:
        self.app = app
        self.direct = dict(direct or {})
        self.max_body_size = max_body_size
        self.trusted = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["client_ip"] = self.client_address(scope)
        status = 500
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                headers.extend(h for h in SECURITY_HEADERS if h[0] not in present)
                message["headers"] = headers
            await send(message)

        if _declared_length(scope) > self.max_body_size:
            await _too_large(send_with_headers)
            _log(scope, request_id, 413, started)
            return

        received = 0

        async def receive_bounded() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_size:
                    raise BodyTooLarge()
            return message

        direct = self.direct.get(scope["path"]) if scope["method"] == "POST" else None
        try:
            await (direct or self.app)(scope, receive_bounded, send_with_headers)
        except BodyTooLarge:
            if response_started:
                raise
            await _too_large(send_with_headers)
        except Exception:
            if direct is None or response_started:
                raise
            # What Starlette's error middleware does for the routes it serves.
            log.exception("unhandled error (request %s)", request_id)
            await _json(send_with_headers, 500, b'{"errors":[{"message":"Unexpected error."}]}')
        _log(scope, request_id, status, started)

    def client_address(self, scope: Scope) -> str | None:
        """The socket's peer; behind a trusted proxy, the nearest untrusted X-Forwarded-For hop."""
        client = scope.get("client")
        peer: str | None = client[0] if client else None
        if peer is None or not self.trusted or not self._trusted(peer):
            return peer
        hops = [
            _without_port(hop.strip())
            for name, value in scope["headers"]
            if name == b"x-forwarded-for"
            for hop in value.decode("latin-1").split(",")
        ]
        for hop in reversed(hops):
            if hop is None:
                return peer  # a garbled header: the proxy is the best we know
            if not self._trusted(hop):
                return hop
        return hops[0] if hops else peer

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)


def is_json(request: Request) -> bool:
    """Content-Type application/json, in any case, with or without parameters."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0]
    return media_type.strip().lower() == "application/json"


def _without_port(hop: str) -> str | None:
    """An X-Forwarded-For hop as a bare address; some proxies write `1.2.3.4:5678`,
    `[2001:db8::1]` or `[2001:db8::1]:5678`. None if it is no address."""
    if hop.startswith("["):
        hop = hop[1 : hop.find("]")] if "]" in hop else ""
    elif hop.count(":") == 1:  # IPv4 with a port (a bare IPv6 address has several colons)
        hop = hop.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(hop))
    except ValueError:
        return None


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text: str = value.decode("latin-1")
            if _REQUEST_ID.fullmatch(text):
                return text
            break
    return os.urandom(16).hex()


def _declared_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


async def _too_large(send: Send) -> None:
    await _json(send, 413, b'{"errors":[{"message":"Request body too large."}]}', close=True)


async def _json(send: Send, status: int, body: bytes, *, close: bool = False) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _log(scope: Scope, request_id: str, status: int, started: float) -> None:
    """One line per request; never a body, a header value or a token."""
    duration = time.perf_counter() - started
    state = scope.get("state", {})
    operation, outcome = state.get("operation"), state.get("outcome")
    if outcome is not None:  # a GraphQL operation ran
        metrics.REQUESTS.labels(metrics.operation_label(operation), outcome).observe(duration)
    if log.isEnabledFor(logging.INFO):
        fields = {
            "request_id": request_id,
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "duration_ms": round(duration * 1000, 1),
            "client": state.get("client_ip"),
        }
        if outcome is not None:
            fields.update(operation=operation, outcome=outcome, user_id=state.get("user_id"))
        log.info(
            "%s %s %d %.1fms%s",
            scope["method"],
            scope["path"],
            status,
            duration * 1000,
            f" {operation or '(unnamed)'} {outcome}" if outcome else "",
            extra={k: v for k, v in fields.items() if v is not None},
        )


class ApiCORS:
    """CORS for the API paths only (GraphQL, the keys and discovery, the OAuth endpoints a
    client's script calls). The pages a person sees (the hosted sign-in, the link pages, a
    provider's callback) answer no cross-origin read, from any origin: their forms carry
    CSRF values that a script elsewhere must not read."""

    PATHS = ("/graphql", "/.well-known/", "/oauth2/token", "/oauth2/userinfo", "/oauth2/revoke")

    def __init__(self, app: ASGIApp, /, **options: Any) -> None:
        self.app = app
        self.cors = CORSMiddleware(app, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _api_path(scope["path"], self.PATHS):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _api_path(path: str, prefixes: Sequence[str]) -> bool:
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in prefixes)
