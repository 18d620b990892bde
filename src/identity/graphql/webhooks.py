"""Webhook types and queries (webhooks:read)."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from strawberry.types import Info

from identity.db import models
from identity.graphql.context import Context, GraphQLInfo
from identity.graphql.errors import bad_user_input
from identity.graphql.permissions import HasPermission, requires
from identity.graphql.types import PageInfo
from identity.services.paging import InvalidPage
from identity.services.webhooks import EndpointView


@strawberry.type(description="A URL that receives signed events (Standard Webhooks).")
class WebhookEndpoint:
    id: strawberry.ID
    url: str
    events: list[str] = strawberry.field(description="The event types it receives.")
    description: str
    is_active: bool
    disabled_reason: str | None = strawberry.field(
        description="Why it was turned off: an HTTP 410, five days of failures, or an admin."
    )
    created_at: datetime

    @classmethod
    def from_view(cls, view: EndpointView) -> WebhookEndpoint:
        row = view.endpoint
        return cls(
            id=strawberry.ID(str(row.id)),
            url=row.url,
            events=view.events,
            description=row.description,
            is_active=row.is_active,
            disabled_reason=row.disabled_reason,
            created_at=row.created_at,
        )


@strawberry.type(description="One event for one endpoint, and how its attempts went.")
class WebhookDelivery:
    id: strawberry.ID
    event_id: strawberry.ID = strawberry.field(
        description="The `webhook-id` header: the same on every retry and redelivery."
    )
    event: str
    status: str = strawberry.field(
        description=(
            "pending (waiting for its first or next attempt), delivered, failed (the endpoint "
            "was disabled) or abandoned (every attempt of the retry schedule failed)."
        )
    )
    attempts: int
    last_response_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    next_attempt_at: datetime | None = strawberry.field(description="Null unless pending.")

    @classmethod
    def from_row(cls, row: models.WebhookDelivery) -> WebhookDelivery:
        return cls(
            id=strawberry.ID(str(row.id)),
            event_id=strawberry.ID(str(row.event_id)),
            event=row.event,
            status=row.state,
            attempts=row.attempts,
            last_response_status=row.last_response_status,
            last_error=row.last_error,
            created_at=row.created_at,
            delivered_at=row.delivered_at,
            next_attempt_at=row.next_attempt_at if row.state == "pending" else None,
        )


@strawberry.type
class WebhookDeliveryEdge:
    cursor: str
    node: WebhookDelivery


@strawberry.type
class WebhookDeliveryConnection:
    edges: list[WebhookDeliveryEdge]
    page_info: PageInfo
    endpoint_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field(description="How many deliveries the endpoint has (counted only when asked).")
    async def total_count(self, info: Info[Context, None]) -> int:
        if self.endpoint_id is None:
            return 0
        async with info.context.container.reading() as uow:
            return await uow.webhooks.count_deliveries(self.endpoint_id)


@strawberry.type
class WebhookQueries:
    @strawberry.field(
        **requires(HasPermission("webhooks:read"), "The event types an endpoint can receive.")
    )
    def webhook_event_types(self, info: GraphQLInfo) -> list[str]:
        return info.context.container.webhooks.event_types()

    @strawberry.field(**requires(HasPermission("webhooks:read"), "Every webhook endpoint."))
    async def webhook_endpoints(self, info: GraphQLInfo) -> list[WebhookEndpoint]:
        async with info.context.container.reading() as uow:
            views = await info.context.container.webhooks.endpoints(uow)
        return [WebhookEndpoint.from_view(view) for view in views]

    @strawberry.field(
        **requires(
            HasPermission("webhooks:read"),
            "An endpoint's deliveries, newest first, `first` (1 to 100) at a time after `after`.",
        )
    )
    async def webhook_deliveries(
        self,
        info: GraphQLInfo,
        endpoint_id: strawberry.ID,
        first: int | None = 20,
        after: str | None = None,
    ) -> WebhookDeliveryConnection:
        try:
            parsed: uuid.UUID | None = uuid.UUID(str(endpoint_id))
        except ValueError:
            raise bad_user_input("`endpointId` is not a valid id.") from None
        service = info.context.container.webhooks
        try:
            async with info.context.container.reading() as uow:
                page = await service.deliveries(uow, parsed, 20 if first is None else first, after)
        except InvalidPage as exc:
            raise bad_user_input(exc.message) from None
        edges = [
            WebhookDeliveryEdge(cursor=service.delivery_cursor(d), node=WebhookDelivery.from_row(d))
            for d in page.items
        ]
        return WebhookDeliveryConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next, end_cursor=edges[-1].cursor if edges else None
            ),
            endpoint_id=parsed,
        )
