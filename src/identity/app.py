"""create_app(settings) -> Starlette: routes, middleware, lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from identity import metrics
from identity.clock import Clock
from identity.config import Settings, load_settings, unknown_variables
from identity.container import Container
from identity.db import migrate
from identity.external.routes import external_login_routes
from identity.graphql.cookies import CSRF_HEADER
from identity.graphql.schema import build_schema
from identity.graphql.view import GraphQLEndpoint
from identity.http import ApiCORS, RequestMiddleware
from identity.oauth2.endpoints import oauth2_routes
from identity.pages.routes import link_pages

log = logging.getLogger("identity")

READY_TIMEOUT = 2.0
SHUTDOWN_GRACE = 10.0


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> Starlette:
    settings = settings or load_settings()
    for line in unknown_variables(os.environ):
        log.warning(line)
    container = Container.create(settings, clock=clock)
    graphql = GraphQLEndpoint(build_schema(settings), container)

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def home(_: Request) -> Response:
        if settings.graphiql_enabled:
            return RedirectResponse("/graphql")
        return JSONResponse({"graphql": "/graphql", "health": "/health", "ready": "/ready"})

    async def ready(_: Request) -> Response:
        try:
            async with asyncio.timeout(READY_TIMEOUT), container.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:  # any failure means "not ready"
            log.warning("not ready: database unreachable (%s)", type(exc).__name__)
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
        return JSONResponse({"status": "ok", "database": "ok"})

    async def jwks(_: Request) -> Response:
        keys = container.runtime.keyring.jwks(container.runtime.clock.now())
        return JSONResponse(
            keys,
            headers={"Cache-Control": f"public, max-age={settings.jwks_max_age}"},
            media_type="application/jwk-set+json",
        )

    async def prometheus(request: Request) -> Response:
        token = settings.metrics_token
        expected = f"Bearer {token.get_secret_value()}" if token else None
        given = request.headers.get("authorization", "")
        if expected is None or not hmac.compare_digest(given.encode(), expected.encode()):
            return JSONResponse({"error": "unauthorized"}, 401, {"WWW-Authenticate": "Bearer"})
        body, content_type = metrics.render(_pool_status(container))
        return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await startup(container)
        stop = asyncio.Event()
        reloader = asyncio.create_task(_reload_keys(container), name="identity-key-reload")
        housekeeper = asyncio.create_task(_housekeeping(container), name="identity-housekeeping")
        senders = [
            asyncio.create_task(
                container.mail.run(container.mail_wakeup, stop), name="identity-mail-sender"
            ),
            asyncio.create_task(
                container.webhook_sender.run(container.webhook_wakeup, stop),
                name="identity-webhook-sender",
            ),
        ]
        try:
            yield
        finally:
            # In-flight requests have finished (uvicorn waits for them); the senders finish
            # what they hold, then stop.
            stop.set()
            container.mail_wakeup.set()
            container.webhook_wakeup.set()
            reloader.cancel()
            housekeeper.cancel()
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                async with asyncio.timeout(SHUTDOWN_GRACE):
                    await asyncio.gather(*senders)
            for sender in senders:
                sender.cancel()
            for task in (reloader, housekeeper, *senders):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await container.close()

    app = App(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            Route("/", home, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/ready", ready, methods=["GET"]),
            Route("/.well-known/jwks.json", jwks, methods=["GET"]),
            Route("/metrics", prometheus, methods=["GET"]),
            *link_pages(settings),
            *external_login_routes(container),
            *oauth2_routes(container),
        ],
        lifespan=lifespan,
        request_options={
            "max_body_size": settings.max_body_size,
            "trusted_proxies": settings.trusted_proxies,
            # POST /graphql skips the router (with CORS, it goes through it).
            "direct": {"/graphql": graphql} if not settings.cors_origins else {},
        },
    )
    app.state.container = container
    if settings.cors_origins:
        # Credentials (the refresh cookie) only for these exact origins; the custom header
        # that cookie requests carry makes every cross-origin call preflighted. The pages
        # are left out (see ApiCORS).
        app.add_middleware(
            ApiCORS,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", CSRF_HEADER, "DPoP", "X-Request-ID"],
            expose_headers=["X-Request-ID", "DPoP-Nonce"],
            max_age=600,
        )
    return app


class App(Starlette):
    """Starlette with the request middleware outermost: every response, errors included,
    carries the request id and the security headers, and POST /graphql skips the stack."""

    def __init__(self, *, request_options: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.request_options = request_options

    def build_middleware_stack(self) -> ASGIApp:
        return RequestMiddleware(super().build_middleware_stack(), **self.request_options)


def _pool_status(container: Container) -> dict[str, int]:
    pool = container.engine.pool
    status = {}
    for state in ("checkedout", "checkedin", "overflow"):
        value = getattr(pool, state, None)
        if callable(value):
            status[state] = int(value())
    return status


async def startup(container: Container) -> None:
    """One-time work, safe to run in every instance at once (it takes locks)."""
    settings = container.settings
    await container.start()
    if settings.migrate_on_start:
        await asyncio.to_thread(migrate.upgrade, settings.database_url)
    else:
        await migrate.check_migrated(container.engine)
    async with container.unit_of_work() as uow:
        kid = await container.keys.ensure_signer(uow)
    if kid is not None:
        log.info("created the first signing key %s", kid)
    await container.datakeys.ensure()
    if settings.gc_freeze:
        # What start-up loaded stays for the life of the process: keep the collector off
        # it (full collections would otherwise walk it, a pause in the tail of latencies).
        gc.collect()
        gc.freeze()


HOUSEKEEPING_INTERVAL = 60.0


async def _housekeeping(container: Container) -> None:
    """Delete what has expired and nothing needs (challenges with their sealed secrets, the
    DPoP proofs too old to come back)."""
    while True:
        await asyncio.sleep(HOUSEKEEPING_INTERVAL)
        try:
            async with container.unit_of_work() as uow:
                await container.challenges.prune(uow)
            await container.dpop.prune()
        except Exception:  # the database may be briefly away; next time
            log.warning("housekeeping failed", exc_info=True)


async def _reload_keys(container: Container) -> None:
    """Pick up keys rotated or revoked by other instances or by the CLI."""
    while True:
        await asyncio.sleep(container.settings.key_refresh_interval)
        try:
            async with container.unit_of_work() as uow:
                await container.keys.reload(uow)
        except Exception:  # the database may be briefly away; keep the keys we have
            log.warning("could not reload signing keys", exc_info=True)
