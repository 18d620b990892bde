"""The outbox every channel shares: a dead sender's claim is taken over within a lease
(30 s, on the injectable clock), a live one's is not; voided mail has a state of its own."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from identity.clock import FrozenClock
from identity.container import Container
from identity.db.models import OutboxMessage
from identity.services.mail import MailChannel
from identity.services.outbox import LEASE, Courier
from tests.conftest import Database, GraphQLClient, register, scalar, settle_outbox
from tests.test_cli import run
from tests.test_recovery import REQUEST_RESET


class HangingMailer:
    """Sends the first message, then hangs in the second send (a process about to die)."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.hanging = asyncio.Event()

    async def send(self, message: EmailMessage) -> None:
        if self.sent:
            self.hanging.set()
            await asyncio.Event().wait()
        self.sent.append(str(message["To"]))


class Mailer:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, message: EmailMessage) -> None:
        self.sent.append(str(message["To"]))


def sender(container: Container, mailer: Any, keep_alive_every: float = 10) -> Courier[Any]:
    mine = container.mail_channel
    channel = MailChannel(mine.rt, mine.tokens, mailer, mine.renderer, mine.unit_of_work)
    return Courier(
        mine.rt, channel, mine.unit_of_work, poll_interval=3600, keep_alive_every=keep_alive_every
    )


async def queue_mail(container: Container, clock: FrozenClock, count: int) -> None:
    async with container.unit_of_work() as uow:
        for n in range(count):  # queued directly: the app's own sender is not woken up
            uow.outbox_messages.add(
                OutboxMessage(
                    id=uuid.uuid4(),
                    created_at=clock.now() + timedelta(microseconds=n),
                    template="password_changed",
                    recipient=f"u{n}@example.com",
                    context={"first_name": "U"},
                    attempts=0,
                    next_attempt_at=clock.now(),
                )
            )
        await uow.commit()


@pytest.mark.parametrize("settings_overrides", [{"mail_poll_interval": 3600}])
async def test_a_killed_sender_is_taken_over_within_30_seconds(
    container: Container, clock: FrozenClock
) -> None:
    await queue_mail(container, clock, 5)
    dying = HangingMailer()
    a = sender(container, dying, keep_alive_every=0.01)
    b_mailer = Mailer()
    b = sender(container, b_mailer)
    task = asyncio.create_task(a.deliver_due())
    await asyncio.wait_for(dying.hanging.wait(), 10)  # mid-batch: one sent, four claimed

    # While A lives, its heartbeat keeps the claim, however long its send takes.
    for _ in range(6):
        clock.advance(20)
        await asyncio.sleep(0.1)  # a few heartbeats (real time)
        assert await b.deliver_due() == 0
    assert b_mailer.sent == []

    task.cancel()  # killed: no heartbeat, nothing released
    with pytest.raises(asyncio.CancelledError):
        await task
    waited = 0
    while not await b.deliver_due():
        clock.advance(1)
        waited += 1
        assert waited <= LEASE.total_seconds() + 1, "the dead claim was not taken over"
    assert 20 <= waited <= 30  # the last heartbeat gave A a full lease; then B takes over
    assert dying.sent == ["u0@example.com"]
    assert sorted(b_mailer.sent) == [f"u{n}@example.com" for n in range(1, 5)]
    assert await scalar(container, "SELECT count(*) FROM outbox_messages WHERE state = 'sent'") == 5


async def test_mail_whose_link_was_replaced_is_voided(
    gql: GraphQLClient, container: Container, database: Database, tmp_path: Path
) -> None:
    await register(gql, "ann@example.com")
    container.mail_wakeup.clear()
    for _ in range(2):  # the second link replaces the first before it goes out
        await gql(REQUEST_RESET, {"email": "ann@example.com"})
    async with container.unit_of_work() as uow:  # expand both requests, send nothing yet
        await container.mail_channel.expanders["password_reset_request"](uow, "ann@example.com")
        await container.mail_channel.expanders["password_reset_request"](uow, "ann@example.com")
        await uow.commit()
    for _ in range(20):
        await container.mail.deliver_due()
        voided = await scalar(
            container, "SELECT count(*) FROM outbox_messages WHERE state = 'voided'"
        )
        if voided:
            break
        await asyncio.sleep(0.05)
    assert voided >= 1
    error = await scalar(container, "SELECT last_error FROM outbox_messages WHERE state = 'voided'")
    assert error == "the link in it was used, replaced or expired"
    assert (
        await scalar(container, "SELECT count(*) FROM outbox_messages WHERE state = 'failed'") == 0
    )

    await settle_outbox(container)
    env = {
        "IDENTITY_DATABASE_URL": database.url,
        "IDENTITY_SECRET_KEY": container.settings.secret().decode(),
    }
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("IDENTITY_")}, **env}
    status = run(["mail", "status"], env)
    assert status.returncode == 0, status.stderr
    first, *lines = status.stdout.splitlines()
    assert first.startswith("pending 0  failed 0  voided ")
    assert any(line.startswith("voided ") and "password_reset" in line for line in lines)
