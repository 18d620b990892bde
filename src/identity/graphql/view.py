"""The HTTP side of GraphQL: context per request, JSON encoding, status codes."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import orjson
from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse

from identity.container import Container
from identity.graphql.context import Context
from identity.graphql.graphiql import PUBLIC_CDN, graphiql_page
from identity.graphql.schema import Schema

# Refusals of the request itself rather than answers: HTTP 400.
_REQUEST_ERRORS = frozenset({"QUERY_TOO_COMPLEX", "CSRF_CHECK_FAILED"})


class GraphQLView(GraphQL[Context, None]):
    def __init__(self, schema: Schema, container: Container) -> None:
        settings = container.settings
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql_enabled else None,
            allow_queries_via_get=True,
        )
        self.container = container
        if settings.graphiql_enabled:
            self.graphiql_html = graphiql_page(self.graphql_ide_html, settings.graphiql_assets_url)
            assets = _origin(settings.graphiql_assets_url or PUBLIC_CDN)
            # Strawberry's page runs one inline script; everything else is from `assets`.
            self.graphiql_csp = (
                f"default-src 'self'; script-src 'self' 'unsafe-inline' {assets}; "
                f"style-src 'self' 'unsafe-inline' {assets}; img-src 'self' data: {assets}; "
                f"font-src 'self' data: {assets}; connect-src 'self'; frame-ancestors 'none'; "
                "base-uri 'none'; form-action 'none'"
            )

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        assert isinstance(request, Request)
        assert isinstance(response, Response)
        return Context(request, response, self.container)

    async def render_graphql_ide(self, request: Request) -> Response:
        # Typed headers (an Authorization token) stay in memory, not in localStorage.
        return HTMLResponse(
            self.graphiql_html,
            headers={"Content-Security-Policy": self.graphiql_csp, "Cache-Control": "no-store"},
        )

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)

    def parse_json(self, data: str | bytes) -> Any:
        parsed = super().parse_json(data)
        if not isinstance(parsed, dict | list):
            raise HTTPException(400, "The request body must be a JSON object.")
        return parsed

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        response = super().create_response(response_data, sub_response)
        # Answers carry tokens and personal data: no cache may keep them.
        response.headers["Cache-Control"] = "no-store"
        if isinstance(response_data, dict) and _is_refusal(response_data):
            response.status_code = 400
        return response


def _origin(url: str) -> str:
    """The origin part of a URL for CSP ('self' for a path on this server)."""
    if url.startswith("/"):
        return "'self'"
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _is_refusal(data: GraphQLHTTPResponse) -> bool:
    if data.get("data") is not None:
        return False
    errors: list[dict[str, Any]] = data.get("errors") or []  # type: ignore[assignment]
    return any((e.get("extensions") or {}).get("code") in _REQUEST_ERRORS for e in errors)
