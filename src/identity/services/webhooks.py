"""Managing webhooks: endpoints, their secrets, test events and redeliveries.

An endpoint may subscribe only to events whose data its caller could read through the API
(services.events.READ_PERMISSIONS); every later operation on it (update, rotation, test,
redelivery, deletion) checks that again, against the caller's permissions.
"""

from __future__ import annotations

import unicodedata
import uuid
from dataclasses import dataclass
from datetime import timedelta

from identity.db.models import WebhookDelivery, WebhookEndpoint, WebhookSecret
from identity.security import webhooks as hooks
from identity.services.errors import NotFound, PermissionDenied
from identity.services.events import EVENT_TYPES, TEST_EVENT, body, needed_permissions
from identity.services.fields import UNSET, Maybe
from identity.services.paging import Cursors, Page
from identity.services.principal import Principal
from identity.services.runtime import Runtime
from identity.services.uow import UnitOfWork
from identity.services.validation import Checker

OVERLAP = timedelta(hours=24)  # a rotated secret signs alongside the new one this long
DESCRIPTION_MAX = 255


@dataclass(frozen=True, slots=True)
class EndpointView:
    endpoint: WebhookEndpoint
    events: list[str]


@dataclass(frozen=True, slots=True)
class EndpointChanges:
    url: Maybe[str] = UNSET
    events: Maybe[list[str]] = UNSET
    description: Maybe[str] = UNSET
    is_active: Maybe[bool] = UNSET


class Webhooks:
    def __init__(self, rt: Runtime, resolve: hooks.Resolver = hooks.system_resolver) -> None:
        self.rt = rt
        self.resolve = resolve
        self.cursors = Cursors(rt.secret)

    # Reading ----------------------------------------------------------------------------

    def event_types(self) -> list[str]:
        return list(EVENT_TYPES)

    async def endpoints(self, uow: UnitOfWork) -> list[EndpointView]:
        rows = await uow.webhooks.endpoints()
        events = await uow.webhooks.events_of([row.id for row in rows])
        return [EndpointView(row, events.get(row.id, [])) for row in rows]

    async def deliveries(
        self, uow: UnitOfWork, endpoint_id: uuid.UUID | None, first: int, after: str | None
    ) -> Page[WebhookDelivery]:
        async def fetch(limit: int, at: object) -> list[WebhookDelivery]:
            if endpoint_id is None:
                return []
            return await uow.webhooks.deliveries_page(endpoint_id, limit, at)  # type: ignore[arg-type]

        return await self.cursors.page("webhook-deliveries", first, after, fetch)

    def delivery_cursor(self, delivery: WebhookDelivery) -> str:
        return self.cursors.encode("webhook-deliveries", delivery.created_at, delivery.id)

    # Endpoints --------------------------------------------------------------------------

    async def create(
        self, uow: UnitOfWork, actor: Principal, url: str, events: list[str], description: str
    ) -> tuple[EndpointView, str]:
        check = Checker()
        url = await self._url(check, url)
        events = self._events(check, events)
        description = self._description(check, description)
        check.done()
        self._ensure_readable(actor, events)
        now = self.rt.clock.now()
        endpoint = WebhookEndpoint(
            id=uuid.uuid4(),
            url=url,
            description=description,
            is_active=True,
            created_by=actor.user_id,
            created_at=now,
            updated_at=now,
        )
        uow.webhooks.add(endpoint)
        await uow.webhooks.flush()
        await uow.webhooks.set_events(endpoint.id, events)
        secret = self._new_secret(uow, endpoint)
        uow.audit.record(
            "webhook.endpoint_created",
            actor=actor.user_id,
            endpoint_id=str(endpoint.id),
            url=url,
            events=events,
        )
        await uow.commit()
        return EndpointView(endpoint, events), secret

    async def update(
        self, uow: UnitOfWork, actor: Principal, endpoint_id: uuid.UUID, changes: EndpointChanges
    ) -> EndpointView:
        view = await self._manageable(uow, actor, endpoint_id)
        endpoint = view.endpoint
        check = Checker()
        url = events = description = None
        if changes.url is not UNSET:
            url = await self._url(check, changes.url)
        if changes.events is not UNSET:
            events = self._events(check, changes.events)
        if changes.description is not UNSET:
            description = self._description(check, changes.description)
        if changes.is_active is None:
            check.fail("isActive", "required", "This field cannot be null.")
        check.done()
        if events is not None:
            self._ensure_readable(actor, events)

        now = self.rt.clock.now()
        changed: list[str] = []
        if url is not None and url != endpoint.url:
            endpoint.url = url
            changed.append("url")
        if events is not None and events != view.events:
            await uow.webhooks.set_events(endpoint.id, events)
            changed.append("events")
        if description is not None and description != endpoint.description:
            endpoint.description = description
            changed.append("description")
        if changes.is_active is not UNSET and changes.is_active != endpoint.is_active:
            endpoint.is_active = bool(changes.is_active)
            changed.append("isActive")
            if endpoint.is_active:  # back on: a clean slate
                endpoint.disabled_reason = None
                endpoint.failing_since = None
            else:
                endpoint.disabled_reason = "Disabled by an admin."
                await uow.webhooks.fail_pending(endpoint.id, "endpoint disabled by an admin")
        if changed:
            endpoint.updated_at = now
            uow.audit.record(
                "webhook.endpoint_updated",
                actor=actor.user_id,
                endpoint_id=str(endpoint.id),
                fields=changed,
            )
        await uow.commit()
        return EndpointView(endpoint, events if events is not None else view.events)

    async def rotate_secret(
        self, uow: UnitOfWork, actor: Principal, endpoint_id: uuid.UUID
    ) -> tuple[EndpointView, str]:
        """A new secret; the one it replaces signs alongside it for 24 hours."""
        view = await self._manageable(uow, actor, endpoint_id)
        now = self.rt.clock.now()
        await uow.webhooks.retire_secrets(endpoint_id, now, now + OVERLAP)
        secret = self._new_secret(uow, view.endpoint)
        uow.audit.record(
            "webhook.secret_rotated", actor=actor.user_id, endpoint_id=str(endpoint_id)
        )
        await uow.commit()
        return view, secret

    async def delete(self, uow: UnitOfWork, actor: Principal, endpoint_id: uuid.UUID) -> None:
        view = await self._manageable(uow, actor, endpoint_id)
        await uow.webhooks.delete_endpoint(endpoint_id)
        uow.audit.record(
            "webhook.endpoint_deleted",
            actor=actor.user_id,
            endpoint_id=str(endpoint_id),
            url=view.endpoint.url,
        )
        await uow.commit()

    async def send_test(
        self, uow: UnitOfWork, actor: Principal, endpoint_id: uuid.UUID
    ) -> WebhookDelivery:
        view = await self._manageable(uow, actor, endpoint_id)
        now = self.rt.clock.now()
        event_id = uuid.uuid4()
        data = {"endpointId": endpoint_id, "message": "A test event: the endpoint works."}
        delivery = self._delivery(view.endpoint, event_id, TEST_EVENT, body(TEST_EVENT, now, data))
        uow.events.enqueue(delivery)
        uow.audit.record("webhook.test_sent", actor=actor.user_id, endpoint_id=str(endpoint_id))
        await uow.commit()
        return delivery

    async def redeliver(
        self, uow: UnitOfWork, actor: Principal, delivery_id: uuid.UUID
    ) -> WebhookDelivery:
        """The same event again (same webhook-id, same body), as a new delivery."""
        original = await uow.webhooks.delivery(delivery_id)
        if original is None:
            raise NotFound("No webhook delivery with this id.")
        view = await self._manageable(uow, actor, original.endpoint_id)
        delivery = self._delivery(view.endpoint, original.event_id, original.event, original.body)
        uow.events.enqueue(delivery)
        uow.audit.record(
            "webhook.redelivered",
            actor=actor.user_id,
            endpoint_id=str(view.endpoint.id),
            delivery_id=str(original.id),
        )
        await uow.commit()
        return delivery

    # Helpers ----------------------------------------------------------------------------

    def _delivery(
        self, endpoint: WebhookEndpoint, event_id: uuid.UUID, event: str, text: str
    ) -> WebhookDelivery:
        now = self.rt.clock.now()
        return WebhookDelivery(
            id=uuid.uuid4(),
            endpoint_id=endpoint.id,
            event_id=event_id,
            event=event,
            body=text,
            state="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )

    def _new_secret(self, uow: UnitOfWork, endpoint: WebhookEndpoint) -> str:
        raw, shown = hooks.new_secret()
        row = WebhookSecret(
            id=uuid.uuid4(), endpoint_id=endpoint.id, created_at=self.rt.clock.now()
        )
        row.sealed = self.rt.secret.seal(hooks.SECRET_PURPOSE, raw, hooks.secret_aad(row))
        uow.webhooks.add(row)
        return shown

    async def _manageable(
        self, uow: UnitOfWork, actor: Principal, endpoint_id: uuid.UUID
    ) -> EndpointView:
        endpoint = await uow.webhooks.endpoint(endpoint_id)
        if endpoint is None:
            raise NotFound("No webhook endpoint with this id.")
        events = (await uow.webhooks.events_of([endpoint.id])).get(endpoint.id, [])
        self._ensure_readable(actor, events)
        return EndpointView(endpoint, events)

    def _ensure_readable(self, actor: Principal, events: list[str]) -> None:
        missing = sorted(needed_permissions(events) - actor.permissions)
        if missing:
            raise PermissionDenied(
                "Forbidden: these events carry data that needs permissions you do not hold: "
                f"{', '.join(missing)}."
            )

    async def _url(self, check: Checker, url: str | None) -> str:
        if url is None:
            check.fail("url", "required", "This field cannot be null.")
            return ""
        url = url.strip()
        if not url:
            check.fail("url", "required", "Enter the URL that receives the events.")
            return ""
        problem = hooks.url_problem(url, require_https=self.rt.settings.is_production)
        if problem is not None:
            check.fail("url", problem.code, problem.message)
            return url
        if not self.rt.settings.webhooks_allow_private:
            host, port = hooks.host_and_port(url)
            try:
                await hooks.checked_addresses(host, port, self.resolve, allow_private=False)
            except hooks.AddressRefused as exc:
                message = (
                    "The host does not resolve."
                    if exc.code == "unresolvable_host"
                    else f"Webhooks cannot reach this host: {exc}."
                )
                check.fail("url", exc.code, message)
        return url

    def _events(self, check: Checker, events: list[str] | None) -> list[str]:
        if events is None or not events:
            check.fail("events", "required", "Choose at least one event type.")
            return []
        unknown = sorted({e for e in events if e not in EVENT_TYPES})
        if unknown:
            shown = ", ".join(e[:64] for e in unknown[:5])
            check.fail("events", "unknown_event", f"Unknown event types: {shown}.")
        return sorted({e for e in events if e in EVENT_TYPES})

    def _description(self, check: Checker, description: str | None) -> str:
        if description is None:
            check.fail("description", "required", "This field cannot be null.")
            return ""
        description = unicodedata.normalize("NFKC", description).strip()
        if len(description) > DESCRIPTION_MAX:
            check.fail("description", "too_long", f"Use at most {DESCRIPTION_MAX} characters.")
        elif any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in description):
            check.fail("description", "invalid_characters", "Control characters are not allowed.")
        return description
