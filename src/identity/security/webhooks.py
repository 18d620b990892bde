"""Webhooks as Standard Webhooks has them: secrets, signatures, and a sender that cannot be
turned against the network it runs in (server-side request forgery).

SSRF: where private addresses are not allowed (production's default), a URL must be https
and its host must resolve only to public addresses. That is checked when an endpoint is
registered, and again for every connection a send opens: the host is resolved once, every
address is checked, and the connection goes to a checked address, so a DNS answer that
changes between the check and the connection (rebinding) is never used. The Host header,
SNI and certificate check keep the name. Redirects are not followed, proxies from the
environment are not used, and answers are read only up to a small bound.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import os
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

SECRET_PREFIX = "whsec_"
SECRET_PURPOSE = "webhook-secret"  # sealed under the server secret with this purpose
SECRET_BYTES = 32
URL_MAX = 2048
TIMEOUT = 15.0  # seconds for one whole attempt, connection to last byte read
MAX_RESPONSE = 64 * 1024  # bytes of an answer read (and thrown away) at most

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

# Public addresses that clouds answer their instance-metadata or host services on.
_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "168.63.129.16",
        "100.100.100.200",
        "fd00:ec2::254",
    )
)
# Ranges Python's ipaddress counts as global that no webhook receiver lives in.
_RESERVED = tuple(
    ipaddress.ip_network(n)
    for n in (
        "192.0.0.0/24",  # IETF protocol assignments (Oracle's metadata is 192.0.0.192)
        "192.88.99.0/24",  # the old 6to4 relays' anycast
        "fec0::/10",  # site-local, deprecated but still routed inside some networks
        "3fff::/20",  # documentation
        "5f00::/16",  # segment routing
    )
)
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # SIIT's IPv4-translated addresses
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NUMERIC_HOST = re.compile(r"^[0-9a-fA-FxX.]+$")


# Secrets and signatures -------------------------------------------------------------------


def new_secret() -> tuple[bytes, str]:
    """32 random bytes and their `whsec_` form (standard base64, as receivers decode it)."""
    raw = os.urandom(SECRET_BYTES)
    return raw, SECRET_PREFIX + base64.b64encode(raw).decode("ascii")


def secret_aad(row: Any) -> bytes:
    """What a sealed secret is bound to: its endpoint and its own id."""
    return bytes(row.endpoint_id.bytes + row.id.bytes)


def signature(keys: Iterable[bytes], message_id: str, timestamp: int, body: str) -> str:
    """`v1,<base64 HMAC-SHA256>` per key over `id.timestamp.body`, single spaces between."""
    signed = f"{message_id}.{timestamp}.{body}".encode()
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii")
        for key in keys
    )


def headers(keys: Iterable[bytes], message_id: str, timestamp: int, body: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "user-agent": "identity-webhooks/1",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(keys, message_id, timestamp, body),
    }


# URLs and addresses -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UrlProblem:
    code: str
    message: str


def url_problem(url: str, *, require_https: bool) -> UrlProblem | None:
    """What is wrong with an endpoint URL as written (its addresses are checked apart)."""
    if len(url) > URL_MAX:
        return UrlProblem("too_long", f"Use at most {URL_MAX} characters.")
    if not url or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return UrlProblem("invalid_url", "Enter an absolute http(s) URL without spaces.")
    try:
        parts = urlsplit(url)
        port = parts.port
        httpx.URL(url)  # what will send it must read it too
    except (ValueError, httpx.InvalidURL):
        return UrlProblem("invalid_url", "Enter an absolute http(s) URL.")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return UrlProblem("invalid_url", "Enter an absolute http(s) URL.")
    if require_https and parts.scheme != "https":
        return UrlProblem("https_required", "Webhook URLs must use https.")
    if parts.username is not None or parts.password is not None or httpx.URL(url).userinfo:
        return UrlProblem("invalid_url", "Credentials in the URL are not allowed.")
    if parts.fragment or url.endswith("#"):
        return UrlProblem("invalid_url", "A URL fragment is never sent; leave it out.")
    if port == 0:
        return UrlProblem("invalid_url", "Port 0 cannot be connected to.")
    host = parts.hostname
    if _NUMERIC_HOST.match(host) and not _is_ip(host):
        # 2130706433, 0x7f.1, 017700000001: resolvers read these as addresses.
        return UrlProblem("invalid_url", "Write an IPv4 address as four decimal numbers.")
    return None


def host_and_port(url: str) -> tuple[str, int]:
    """The host and port the sender will connect to, as httpx reads the URL (not another
    parser's reading of it: they may disagree on odd URLs)."""
    parsed = httpx.URL(url)
    return parsed.raw_host.decode("ascii"), parsed.port or (443 if parsed.scheme == "https" else 80)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def refusal(ip: IP) -> str | None:
    """Why a sender must not connect to `ip`, or None for a public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            reason = refusal(embedded)
            if reason is not None:
                return reason
    if ip in _METADATA:
        return "a cloud metadata address"
    if any(ip in network for network in _RESERVED):
        return "a reserved address"
    for test, reason in (
        (ip.is_loopback, "a loopback address"),
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_private, "a private address"),
        (not ip.is_global, "not a public address"),
    ):
        if test:
            return reason
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries: mapped, 6to4, Teredo, NAT64, compatible."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64 or ip in _TRANSLATED or int(ip) >> 32 == 0:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def parse_ip(address: str) -> IP:
    return ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone is not the address


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class AddressRefused(Exception):
    """The host resolves to an address a webhook must not reach (or to none)."""

    def __init__(self, message: str, code: str = "private_address") -> None:
        super().__init__(message)
        self.code = code


async def checked_addresses(
    host: str, port: int, resolve: Resolver, allow_private: bool
) -> list[IP]:
    """The addresses to connect to for `host`: every one checked; AddressRefused if any is
    refused (a name with one private address among public ones is refused whole)."""
    if _is_ip(host.strip("[]")):
        found = [host.strip("[]")]
    else:
        try:
            found = await resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise AddressRefused(f"{host} does not resolve", "unresolvable_host") from exc
    if not found:
        raise AddressRefused(f"{host} does not resolve", "unresolvable_host")
    addresses = [parse_ip(a) for a in found]
    if not allow_private:
        for ip in addresses:
            reason = refusal(ip)
            if reason is not None:
                # Not the address itself: the API would tell internal addresses to its callers.
                raise AddressRefused(f"{host} resolves to {reason}")
    return addresses


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses it has just checked."""

    def __init__(self, resolve: Resolver, allow_private: bool) -> None:
        self.resolve = resolve
        self.allow_private = allow_private
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await checked_addresses(host, port, self.resolve, self.allow_private)
        error: Exception | None = None
        for ip in addresses:
            try:
                stream = await self.inner.connect_tcp(
                    str(ip), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
                continue
            peer = stream.get_extra_info("server_addr")
            if peer is None or parse_ip(str(peer[0])) != ip:  # never anything but the checked
                await stream.aclose()
                raise AddressRefused(f"connected to {peer}, not to the checked {ip}")
            return stream
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused("webhooks do not use Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


@dataclass(frozen=True, slots=True)
class Answer:
    status: int


class WebhookClient:
    """Posts webhook bodies with httpx over the guarded backend (HTTP/1.1, no redirects,
    no proxies from the environment, one whole attempt within TIMEOUT)."""

    def __init__(
        self,
        *,
        allow_private: bool,
        resolve: Resolver = system_resolver,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        self.timeout = timeout
        context = ssl_context or httpx.create_ssl_context(trust_env=False)
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        transport = httpx.AsyncHTTPTransport(verify=context, trust_env=False, limits=limits)
        # httpx takes no network backend; its transport is a thin shell over this pool.
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=GuardedBackend(resolve, allow_private),
        )
        self.http = httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(timeout),
        )

    async def post(self, url: str, headers: dict[str, str], body: str) -> Answer:
        """The answer's status; its body is read up to MAX_RESPONSE and dropped."""
        async with (
            asyncio.timeout(self.timeout),
            self.http.stream("POST", url, headers=headers, content=body.encode()) as response,
        ):
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read > MAX_RESPONSE:  # closing mid-body drops the connection
                    break
            return Answer(response.status_code)

    async def close(self) -> None:
        await self.http.aclose()
