"""Webhooks: `webhooks status`."""

from __future__ import annotations

import argparse

from identity.cli.common import Commands, command_container, execute
from identity.config import Settings

STATES = ("pending", "delivered", "failed", "abandoned")


def add_commands(commands: Commands) -> None:
    webhooks = commands.add_parser("webhooks", help="webhook endpoints and their deliveries")
    actions = webhooks.add_subparsers(required=True, metavar="ACTION")
    status = actions.add_parser(
        "status", help="each endpoint with its deliveries by state, and the oldest waiting"
    )
    status.set_defaults(run=_status)


def _status(settings: Settings, args: argparse.Namespace) -> None:
    async def run() -> None:
        async with command_container(settings) as container, container.reading() as uow:
            views = await container.webhooks.endpoints(uow)
            counts = await uow.webhooks.status()
            oldest = await uow.webhook_deliveries.oldest_pending()
            now = container.runtime.clock.now()
        by_endpoint: dict[object, dict[str, int]] = {}
        for endpoint_id, state, n in counts:
            by_endpoint.setdefault(endpoint_id, {})[state] = n
        totals = {state: sum(c.get(state, 0) for c in by_endpoint.values()) for state in STATES}
        waiting = f"{(now - oldest).total_seconds():.0f}s" if oldest is not None else "-"
        print("  ".join(f"{s} {n}" for s, n in totals.items()) + f"  oldest-pending {waiting}")
        for view in views:
            row = view.endpoint
            mine = by_endpoint.get(row.id, {})
            state = "active" if row.is_active else f"disabled ({row.disabled_reason})"
            numbers = " ".join(f"{s}={mine.get(s, 0)}" for s in STATES)
            print(f"{row.id} {row.url} {state} {numbers} events={','.join(view.events)}")

    execute(run())
