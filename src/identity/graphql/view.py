"""GraphQL over HTTP: the request, one cached document, graphql-core's executor, the answer.

Strawberry defines the schema and wraps the resolvers; this endpoint replaces its HTTP view
and `Schema.execute`, whose per-request machinery (extension runners, request adapters)
cost more than the whole `me` query. What it does instead is short: refuse what is not a
single JSON operation, take the document from the cache, execute, mask unexpected errors,
record the outcome.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable
from typing import Any
from urllib.parse import urlsplit

import orjson
from graphql import ExecutionResult, GraphQLError, OperationType, execute, get_operation_ast
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send
from strawberry.execution import optimized_is_awaitable
from strawberry.http.ides import get_graphql_ide_html
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from identity.container import Container
from identity.graphql.context import Context
from identity.graphql.graphiql import PUBLIC_CDN, graphiql_page
from identity.graphql.hints import neutral
from identity.graphql.schema import Documents, Schema
from identity.http import BodyTooLarge, is_json

log = logging.getLogger("identity.graphql")

UNEXPECTED = "Unexpected error."
# Refusals of the request itself rather than answers: HTTP 400.
_REQUEST_ERRORS = frozenset({"QUERY_TOO_COMPLEX", "CSRF_CHECK_FAILED"})
_JSON = "application/json"
_FOUND = re.compile(r"[;,.]? [Ff]ound: .*$", re.DOTALL)
_QUERIES = frozenset({OperationType.QUERY})
_QUERIES_AND_MUTATIONS = frozenset({OperationType.QUERY, OperationType.MUTATION})


class GraphQLEndpoint:
    """An ASGI app for /graphql."""

    def __init__(self, schema: Schema, container: Container) -> None:
        settings = container.settings
        self.container = container
        self.schema = schema._schema
        self.documents = Documents(schema, settings)
        # Operations in a URL can be sent cross-site by any page (a link, an image): off in
        # production unless IDENTITY_GRAPHQL_GET turns them on. GraphiQL itself POSTs.
        self.operations_via_get = settings.graphql_get_enabled
        self.graphiql_html: str | None = None
        if settings.graphiql_enabled:
            template = get_graphql_ide_html(graphql_ide="graphiql")
            self.graphiql_html = graphiql_page(template, settings.graphiql_assets_url)
            assets = _origin(settings.graphiql_assets_url or PUBLIC_CDN)
            # Strawberry's page runs one inline script; everything else is from `assets`.
            self.graphiql_csp = (
                f"default-src 'self'; script-src 'self' 'unsafe-inline' {assets}; "
                f"style-src 'self' 'unsafe-inline' {assets}; img-src 'self' data: {assets}; "
                f"font-src 'self' data: {assets}; connect-src 'self'; frame-ancestors 'none'; "
                "base-uri 'none'; form-action 'none'"
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = await self.handle(request)
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        if request.method == "POST":
            return await self.post(request)
        if request.method in ("GET", "HEAD"):  # HEAD: the GET answer's headers
            return await self.get(request)
        return _refusal(405, "Use GET or POST.", {"Allow": "GET, HEAD, POST"})

    async def post(self, request: Request) -> Response:
        if not is_json(request):
            return _refusal(400, "Send the operation as application/json.")
        try:
            data = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _refusal(400, "The request body is not valid JSON.")
        except BodyTooLarge:  # a chunked body that outgrew the bound while being read
            return _refusal(413, "Request body too large.", {"Connection": "close"})
        if isinstance(data, list):
            return _refusal(400, "Batching is off: send one operation per request.")
        return await self.run(request, data, _QUERIES_AND_MUTATIONS)

    async def get(self, request: Request) -> Response:
        """Queries in the URL (never mutations, and only where allowed), or GraphiQL."""
        params = request.query_params
        browser = "text/html" in request.headers.get("accept", "")
        if "query" in params and self.operations_via_get:
            return await self.run_from_url(request)
        if self.graphiql_html is not None and browser:
            # GraphiQL's page, also for a URL that prefills it with ?query=…
            headers = {"Content-Security-Policy": self.graphiql_csp, "Cache-Control": "no-store"}
            return HTMLResponse(self.graphiql_html, headers=headers)
        if "query" in params:
            return _refusal(
                405, "Operations over GET are turned off: POST them.", {"Allow": "POST"}
            )
        if self.graphiql_html is None:
            return _refusal(404, "Send a GraphQL operation: POST it as application/json.")
        return _refusal(
            404,
            "Send a GraphQL operation: POST it as application/json"
            + (", or GET with ?query=…" if self.operations_via_get else "")
            + "; a browser (Accept: text/html) gets the GraphiQL explorer here.",
        )

    async def run_from_url(self, request: Request) -> Response:
        params = request.query_params
        data = {"query": params["query"], "operationName": params.get("operationName")}
        if params.get("variables"):
            try:
                data["variables"] = orjson.loads(params["variables"])
            except orjson.JSONDecodeError:
                return _refusal(400, "`variables` is not valid JSON.")
        return await self.run(request, data, _QUERIES)

    async def run(self, request: Request, data: Any, allowed: frozenset[OperationType]) -> Response:
        if not isinstance(data, dict):
            return _refusal(400, "The request body must be a JSON object.")
        query, variables, name = data.get("query"), data.get("variables"), data.get("operationName")
        if not isinstance(query, str) or not query:
            return _refusal(400, "No GraphQL query found in the request.")
        if not isinstance(variables, dict | None) or not isinstance(name, str | None):
            return _refusal(400, "`variables` must be an object and `operationName` a string.")

        sub_response = Response()
        context = Context(request, sub_response, self.container)
        document, errors = self.documents.get(query)
        name_requested, name = name, None  # logs and metrics name only an operation that ran
        if document is None:
            result = ExecutionResult(data=None, errors=errors)
        else:
            operation = get_operation_ast(document, name_requested)
            if operation is not None and operation.operation not in allowed:
                return _refusal(405, "Mutations need POST.", {"Allow": "POST"})
            outcome = execute(
                self.schema,
                document,
                context_value=context,
                variable_values=variables,
                operation_name=name_requested,
                executor_class=StrawberryGraphQLCoreExecutionContext,
                is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]
                # Variables are checked here, not in validation: no "Did you mean" there either.
                hide_suggestions=not self.documents.hints,
            )
            result = await outcome if isinstance(outcome, Awaitable) else outcome
            if operation is not None and operation.name is not None:
                name = operation.name.value
        return self.answer(context, sub_response, result, name)

    def answer(
        self, context: Context, sub_response: Response, result: ExecutionResult, name: str | None
    ) -> Response:
        body: dict[str, Any] = {"data": result.data}
        status = 200
        state = context.state
        state["operation"] = name
        if result.errors:
            errors = [self._public(error, context) for error in result.errors]
            body["errors"] = [error.formatted for error in errors]
            codes = [(e.extensions or {}).get("code") for e in errors]
            state["outcome"] = next((c for c in codes if c), "GRAPHQL_VALIDATION_FAILED")
            if result.data is None and _REQUEST_ERRORS.intersection(codes):
                status = 400
        else:
            state["outcome"] = context.outcome or "ok"
        response = Response(orjson.dumps(body), status_code=status, media_type=_JSON)
        # Answers carry tokens and personal data: no cache may keep them.
        response.headers["Cache-Control"] = "no-store"
        response.raw_headers.extend(
            (key, value) for key, value in sub_response.raw_headers if key == b"set-cookie"
        )
        return response

    def _public(self, error: GraphQLError, context: Context) -> GraphQLError:
        """Expected errors as they are; anything else logged with its trace, and masked."""
        original = error.original_error
        expected = original is None or isinstance(original, GraphQLError)
        if expected and not self.documents.hints:
            return neutral(error)  # also a variable's value: no "Found: …" in neutral messages
        if expected and error.message.startswith("Variable '$"):
            # graphql-core quotes the variable's value ("Found: {...}"): a password among them
            # would come back in the answer, and from there into client-side error reports.
            message = _FOUND.sub(".", error.message)
            return GraphQLError(message, error.nodes, extensions=error.extensions)
        if expected:
            return error
        path = ".".join(str(p) for p in error.path or ()) or "operation"
        log.error(
            "unexpected error in %s (request %s)", path, context.request_id, exc_info=original
        )
        return GraphQLError(
            UNEXPECTED,
            nodes=error.nodes,
            path=error.path,
            extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": context.request_id},
        )


def _refusal(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps({"errors": [{"message": message}]})
    return Response(body, status_code=status, media_type=_JSON, headers=headers)


def _origin(url: str) -> str:
    """The origin part of a URL for CSP ('self' for a path on this server)."""
    if url.startswith("/"):
        return "'self'"
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
