"""Webhook endpoints, their secrets, test events and redeliveries (webhooks:write)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from identity.graphql.context import GraphQLInfo
from identity.graphql.errors import NotFound, ValidationError
from identity.graphql.mutations import maybe, mutation, parse_id
from identity.graphql.permissions import HasPermission
from identity.graphql.webhooks import WebhookDelivery, WebhookEndpoint
from identity.services.webhooks import EndpointChanges

WRITE = HasPermission("webhooks:write")


@strawberry.input
class CreateWebhookEndpointInput:
    url: str = strawberry.field(description="https (and a public host) in production.")
    events: list[str] = strawberry.field(
        description="Event types (see webhookEventTypes) whose data you could read yourself."
    )
    description: str = ""


@strawberry.input(description="Omitted fields stay as they are; null is refused.")
class UpdateWebhookEndpointInput:
    url: str | None = strawberry.UNSET
    events: list[str] | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    is_active: bool | None = strawberry.field(
        default=strawberry.UNSET,
        description="true turns a disabled endpoint back on (failures counted afresh).",
    )


@strawberry.type
class CreateWebhookEndpointSuccess:
    endpoint: WebhookEndpoint
    secret: str = strawberry.field(description="`whsec_…`: shown this once, keep it safe.")


@strawberry.type
class UpdateWebhookEndpointSuccess:
    endpoint: WebhookEndpoint


@strawberry.type
class RotateWebhookSecretSuccess:
    endpoint: WebhookEndpoint
    secret: str = strawberry.field(
        description="The new `whsec_…`, shown once; the old one signs too for 24 hours."
    )


@strawberry.type
class DeleteWebhookEndpointSuccess:
    message: str


@strawberry.type
class SendTestWebhookSuccess:
    delivery: WebhookDelivery


@strawberry.type
class RedeliverWebhookSuccess:
    delivery: WebhookDelivery


CreateWebhookEndpointResult = Annotated[
    CreateWebhookEndpointSuccess | ValidationError,
    strawberry.union("CreateWebhookEndpointResult"),
]
UpdateWebhookEndpointResult = Annotated[
    UpdateWebhookEndpointSuccess | NotFound | ValidationError,
    strawberry.union("UpdateWebhookEndpointResult"),
]
RotateWebhookSecretResult = Annotated[
    RotateWebhookSecretSuccess | NotFound, strawberry.union("RotateWebhookSecretResult")
]
DeleteWebhookEndpointResult = Annotated[
    DeleteWebhookEndpointSuccess | NotFound, strawberry.union("DeleteWebhookEndpointResult")
]
SendTestWebhookResult = Annotated[
    SendTestWebhookSuccess | NotFound, strawberry.union("SendTestWebhookResult")
]
RedeliverWebhookResult = Annotated[
    RedeliverWebhookSuccess | NotFound, strawberry.union("RedeliverWebhookResult")
]


@strawberry.type
class WebhookMutations:
    @mutation("Register an endpoint; its signing secret is shown once.", WRITE)
    async def create_webhook_endpoint(
        self, info: GraphQLInfo, input: CreateWebhookEndpointInput
    ) -> CreateWebhookEndpointResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            view, secret = await info.context.container.webhooks.create(
                uow, principal, input.url, input.events, input.description
            )
        return CreateWebhookEndpointSuccess(endpoint=WebhookEndpoint.from_view(view), secret=secret)

    @mutation("Edit an endpoint; isActive: false stops its deliveries.", WRITE)
    async def update_webhook_endpoint(
        self, info: GraphQLInfo, id: strawberry.ID, input: UpdateWebhookEndpointInput
    ) -> UpdateWebhookEndpointResult:
        principal = await info.context.require_principal()
        changes = EndpointChanges(
            url=maybe(input.url),
            events=maybe(input.events),
            description=maybe(input.description),
            is_active=maybe(input.is_active),
        )
        async with info.context.unit_of_work() as uow:
            view = await info.context.container.webhooks.update(
                uow, principal, parse_id(id, "webhook endpoint"), changes
            )
        return UpdateWebhookEndpointSuccess(endpoint=WebhookEndpoint.from_view(view))

    @mutation("A new signing secret; the old one signs alongside it for 24 hours.", WRITE)
    async def rotate_webhook_secret(
        self, info: GraphQLInfo, id: strawberry.ID
    ) -> RotateWebhookSecretResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            view, secret = await info.context.container.webhooks.rotate_secret(
                uow, principal, parse_id(id, "webhook endpoint")
            )
        return RotateWebhookSecretSuccess(endpoint=WebhookEndpoint.from_view(view), secret=secret)

    @mutation("Delete an endpoint with its secrets and deliveries.", WRITE)
    async def delete_webhook_endpoint(
        self, info: GraphQLInfo, id: strawberry.ID
    ) -> DeleteWebhookEndpointResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            await info.context.container.webhooks.delete(
                uow, principal, parse_id(id, "webhook endpoint")
            )
        return DeleteWebhookEndpointSuccess(message="Webhook endpoint deleted.")

    @mutation("Send the endpoint a `webhook.test` event.", WRITE)
    async def send_test_webhook(
        self, info: GraphQLInfo, endpoint_id: strawberry.ID
    ) -> SendTestWebhookResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            delivery = await info.context.container.webhooks.send_test(
                uow, principal, parse_id(endpoint_id, "webhook endpoint")
            )
        return SendTestWebhookSuccess(delivery=WebhookDelivery.from_row(delivery))

    @mutation("Send a delivery's event again: same webhook-id, same body.", WRITE)
    async def redeliver_webhook(
        self, info: GraphQLInfo, delivery_id: strawberry.ID
    ) -> RedeliverWebhookResult:
        principal = await info.context.require_principal()
        async with info.context.unit_of_work() as uow:
            delivery = await info.context.container.webhooks.redeliver(
                uow, principal, parse_id(delivery_id, "webhook delivery")
            )
        return RedeliverWebhookSuccess(delivery=WebhookDelivery.from_row(delivery))
