"""A real webhook receiver on loopback, verifying every delivery with `standardwebhooks`
(the receivers' own library, not our code), and the GraphQL of the webhook API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import standardwebhooks.webhooks as standard
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from identity.clock import FrozenClock
from identity.container import Container
from tests.conftest import GraphQLClient, SignedIn, scalar

ENDPOINT = """
fragment EndpointFields on WebhookEndpoint {
  id url events description isActive disabledReason createdAt
}
"""
CREATE = (
    ENDPOINT
    + """
mutation($input: CreateWebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) {
    __typename
    ... on CreateWebhookEndpointSuccess { secret endpoint { ...EndpointFields } }
    ... on ValidationError { fields { field code message } }
  }
}
"""
)
UPDATE = (
    ENDPOINT
    + """
mutation($id: ID!, $input: UpdateWebhookEndpointInput!) {
  updateWebhookEndpoint(id: $id, input: $input) {
    __typename
    ... on UpdateWebhookEndpointSuccess { endpoint { ...EndpointFields } }
    ... on ValidationError { fields { field code message } }
    ... on Error { message }
  }
}
"""
)
ROTATE = """
mutation($id: ID!) {
  rotateWebhookSecret(id: $id) {
    __typename
    ... on RotateWebhookSecretSuccess { secret endpoint { id } }
    ... on Error { message }
  }
}
"""
DELETE = """
mutation($id: ID!) {
  deleteWebhookEndpoint(id: $id) { __typename ... on Error { message } }
}
"""
DELIVERY = """
fragment DeliveryFields on WebhookDelivery {
  id eventId event status attempts lastResponseStatus lastError createdAt deliveredAt
  nextAttemptAt
}
"""
SEND_TEST = (
    DELIVERY
    + """
mutation($id: ID!) {
  sendTestWebhook(endpointId: $id) {
    __typename ... on SendTestWebhookSuccess { delivery { ...DeliveryFields } }
    ... on Error { message }
  }
}
"""
)
REDELIVER = (
    DELIVERY
    + """
mutation($id: ID!) {
  redeliverWebhook(deliveryId: $id) {
    __typename ... on RedeliverWebhookSuccess { delivery { ...DeliveryFields } }
    ... on Error { message }
  }
}
"""
)
ENDPOINTS = ENDPOINT + "{ webhookEndpoints { ...EndpointFields } }"
DELIVERIES = (
    DELIVERY
    + """
query($id: ID!, $first: Int, $after: String) {
  webhookDeliveries(endpointId: $id, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { ...DeliveryFields } }
  }
}
"""
)


async def create_endpoint(
    gql: GraphQLClient, admin: SignedIn, url: str, events: list[str], description: str = ""
) -> dict[str, Any]:
    variables = {"input": {"url": url, "events": events, "description": description}}
    result = (await gql(CREATE, variables, token=admin.access_token))["data"]
    created: dict[str, Any] = result["createWebhookEndpoint"]
    assert created["__typename"] == "CreateWebhookEndpointSuccess", created
    return created


async def deliveries(gql: GraphQLClient, admin: SignedIn, endpoint_id: str) -> list[Any]:
    result = await gql(DELIVERIES, {"id": endpoint_id, "first": 100}, token=admin.access_token)
    return [edge["node"] for edge in result["data"]["webhookDeliveries"]["edges"]]


async def settle_webhooks(container: Container, timeout: float = 10) -> None:
    """Until no delivery is due or in flight (handled by this call or the app's sender)."""
    busy = (
        "SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'"
        " AND (claim IS NOT NULL OR next_attempt_at <= :now)"
    )
    deadline = asyncio.get_running_loop().time() + timeout
    while await scalar(container, busy, now=container.runtime.clock.now()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the webhook outbox did not settle")
        await container.webhook_sender.deliver_due()
        await asyncio.sleep(0.02)


class QuietServer(uvicorn.Server):
    """uvicorn inside the test's event loop, leaving the test runner's signals alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    payload: Any
    verified_by: list[str]  # the secrets under which standardwebhooks accepted it
    status: int

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    """An HTTP server on loopback; answers with `statuses` in turn (then 200)."""

    secrets: list[str] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 0
    _server: QuietServer | None = None
    _task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        if not self.port:
            with socket.socket() as sock:
                sock.bind((self.host, 0))
                self.port = sock.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hook"

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        verified = []
        for secret in self.secrets:
            with contextlib.suppress(standard.WebhookVerificationError):
                standard.Webhook(secret).verify(body, headers)
                verified.append(secret)
        status = self.statuses.pop(0) if self.statuses else 200
        self.received.append(Received(headers, body, json.loads(body), verified, status))
        return Response(status_code=status)

    async def start(self) -> None:
        app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        config = uvicorn.Config(
            app, host=self.host, port=self.port, log_level="warning", lifespan="off"
        )
        self._server = QuietServer(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = self._task = None

    def accepted(self) -> list[Received]:
        return [r for r in self.received if 200 <= r.status < 300]


def sync_receivers_with(clock: FrozenClock, monkeypatch: Any) -> None:
    """Receivers allow five minutes of skew around *their* clock: give the library the
    test's clock, as a receiver whose clock agrees with the sender's would have."""

    class ClockedDatetime(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return clock.now()

    monkeypatch.setattr(standard, "datetime", ClockedDatetime)
