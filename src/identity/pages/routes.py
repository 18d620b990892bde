"""Routes for the pages behind mailed links: set a new password, verify, confirm a change,
undo an added sign-in method."""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from importlib.resources import files

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from identity.config import Settings

Endpoint = Callable[[Request], Awaitable[Response]]

PAGES = {
    "reset-password": "Choose a new password",
    "verify-email": "Confirm your email address",
    "confirm-email-change": "Confirm your new email address",
    "revert-change": "Remove a sign-in method you did not add",
}
# sign-in.js: the passkey button of the hosted sign-in pages (identity.oauth2.pages).
_ASSETS = {"pages.js": "text/javascript", "sign-in.js": "text/javascript", "pages.css": "text/css"}
# The page scripts come from this origin only; nothing inline, nothing from elsewhere.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)


def link_pages(settings: Settings) -> list[Route]:
    folder = files("identity.pages")
    template = folder.joinpath("page.html").read_text("utf-8")
    product = html.escape(settings.product_name)
    routes = []
    for page, title in PAGES.items():
        body = template.format(page=page, title=html.escape(title), product=product)
        routes.append(Route(f"/{page}", _html(body), methods=["GET"]))
    for name, media_type in _ASSETS.items():
        content = folder.joinpath(name).read_text("utf-8")
        routes.append(Route(f"/pages/{name}", _asset(content, media_type), methods=["GET"]))
    return routes


def _html(body: str) -> Endpoint:
    async def endpoint(_: Request) -> Response:
        return HTMLResponse(
            body, headers={"Cache-Control": "no-store", "Content-Security-Policy": _CSP}
        )

    return endpoint


def _asset(content: str, media_type: str) -> Endpoint:
    async def endpoint(_: Request) -> Response:
        return Response(content, media_type=media_type, headers={"Cache-Control": "max-age=3600"})

    return endpoint
