"""Origins and relying-party ids, as browsers compare them for WebAuthn."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def origin_of(url: str) -> str:
    """`scheme://host[:port]` as a browser writes it in clientDataJSON (no default port)."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    port = parts.port
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    suffix = f":{port}" if port is not None and port != default else ""
    return f"{parts.scheme}://{host}{suffix}"


def fits(rp_id: str, origin: str) -> bool:
    """Whether `rp_id` is the host of `origin` or a parent domain of it."""
    host = (urlsplit(origin).hostname or "").lower()
    rp_id = rp_id.lower()
    return host == rp_id or host.endswith("." + rp_id)


def relying_party_problem(rp_id: str, origins: list[str]) -> str | None:
    """Why browsers would refuse `rp_id` for these origins, or None.

    The id must be a domain name (not an address, not a top-level domain alone, `localhost`
    excepted) and the host of every origin or a parent domain of it.
    """
    try:
        ipaddress.ip_address(rp_id.strip("[]"))
    except ValueError:
        pass
    else:
        return f"{rp_id!r} is an address; browsers accept only a domain name"
    if rp_id != "localhost" and "." not in rp_id.strip("."):
        return f"{rp_id!r} is not a registrable domain"
    for origin in origins:
        if not fits(rp_id, origin):
            return f"{rp_id!r} is not {origin}'s host or a parent domain of it"
    return None
