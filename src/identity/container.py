"""Everything a process builds once: the engine, the session factories and the use cases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from identity.clock import Clock, SystemClock
from identity.config import Settings
from identity.db.engine import create_engine, create_sessionmaker
from identity.db.models import OutboxMessage, WebhookDelivery
from identity.mail.render import Renderer
from identity.mail.transports import create_mailer
from identity.repositories.hot import PostgresHotPath
from identity.security.webauthn import RelyingParty
from identity.security.webhooks import WebhookClient
from identity.services.accounts import Accounts
from identity.services.admin import Admin
from identity.services.auth import Auth
from identity.services.challenges import Challenges
from identity.services.datakeys import DataKeys
from identity.services.dpop import Dpop
from identity.services.external import ExternalLogin, ExternalProviders
from identity.services.external_accounts import ExternalAccounts
from identity.services.factors import Factors
from identity.services.keys import Keys
from identity.services.mail import MailChannel
from identity.services.mfa import SecondStep
from identity.services.oauth_authorize import Authorize
from identity.services.oauth_clients import OAuthClients
from identity.services.oauth_tokens import Tokens
from identity.services.outbox import Courier
from identity.services.passkeys import Passkeys
from identity.services.principal import ClientInfo
from identity.services.reauth import Reauthentication
from identity.services.recovery import RESET_REQUEST, Recovery
from identity.services.refresh import Refresh
from identity.services.revert import Revert
from identity.services.roles import Roles
from identity.services.runtime import Runtime
from identity.services.secrets import Secrets
from identity.services.throttle import Throttle
from identity.services.tokens import OneTimeTokens
from identity.services.transfer import Transfer
from identity.services.uow import UnitOfWork
from identity.services.webhook_sender import WEBHOOK_BATCH, WebhookChannel
from identity.services.webhooks import Webhooks


@dataclass(frozen=True, slots=True)
class Container:
    settings: Settings
    engine: AsyncEngine
    reads: async_sessionmaker[AsyncSession]
    writes: async_sessionmaker[AsyncSession]
    snapshots: async_sessionmaker[AsyncSession]
    hot: PostgresHotPath | None
    runtime: Runtime
    auth: Auth
    refresh: Refresh
    accounts: Accounts
    recovery: Recovery
    admin: Admin
    roles: Roles
    factors: Factors
    passkeys: Passkeys
    second_step: SecondStep
    challenges: Challenges
    datakeys: DataKeys
    keys: Keys
    secrets: Secrets
    tokens: OneTimeTokens
    transfer: Transfer
    webhooks: Webhooks
    oauth_clients: OAuthClients
    authorize: Authorize
    oauth_tokens: Tokens
    providers: ExternalProviders
    external_login: ExternalLogin
    external_accounts: ExternalAccounts
    revert: Revert
    dpop: Dpop
    # The outbox: one sender per channel, each woken up at once by a commit that queued
    # something for it.
    mail: Courier[OutboxMessage]
    mail_channel: MailChannel
    webhook_sender: Courier[WebhookDelivery]
    webhook_channel: WebhookChannel
    mail_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    webhook_wakeup: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def create(cls, settings: Settings, *, clock: Clock | None = None) -> Container:
        engine = create_engine(settings)
        runtime = Runtime.create(settings, clock or SystemClock())
        tokens = OneTimeTokens(runtime)
        throttle = Throttle(runtime)
        recovery = Recovery(runtime, tokens, throttle)
        writes = create_sessionmaker(engine, write=True)
        reads = create_sessionmaker(engine)
        hot = (
            None
            if settings.is_sqlite
            else PostgresHotPath(settings.database_url, settings.database_hot_pool_size)
        )
        renderer = Renderer(
            sender=settings.mail_from,
            product_name=settings.product_name,
            override_dir=settings.mail_templates_dir,
        )

        mail_wakeup = asyncio.Event()

        # For background work and caches: a transaction of their own, never a request's.
        @asynccontextmanager
        async def own_transaction() -> AsyncIterator[UnitOfWork]:
            async with writes() as db:
                uow = UnitOfWork(db, runtime.clock)
                try:
                    yield uow
                finally:
                    await uow.rollback()
                    if uow.committed and uow.queued_mail:  # a disabled endpoint's notice
                        mail_wakeup.set()

        @asynccontextmanager
        async def own_reads() -> AsyncIterator[UnitOfWork]:
            async with reads() as db:
                yield UnitOfWork(db, runtime.clock)

        mail_channel = MailChannel(
            runtime, tokens, create_mailer(settings.mail_transport), renderer, own_transaction
        )
        mail_channel.expanders[RESET_REQUEST] = recovery.expand_reset_request
        webhook_channel = WebhookChannel(
            runtime, WebhookClient(allow_private=settings.webhooks_allow_private), own_transaction
        )
        challenges = Challenges(runtime)
        datakeys = DataKeys(runtime, own_reads, own_transaction)
        rp = (
            RelyingParty(settings.passkey_rp_id, settings.passkey_origins, settings.product_name)
            if settings.passkeys_enabled
            else None
        )
        auth = Auth(runtime, throttle, challenges, reads, hot, rp)
        reauth = Reauthentication(runtime, throttle)
        factors = Factors(runtime, challenges, datakeys, tokens, reauth)
        providers = ExternalProviders(runtime, _provider_http(settings))
        oauth_clients = OAuthClients(runtime, datakeys)
        return cls(
            settings=settings,
            engine=engine,
            reads=reads,
            snapshots=create_sessionmaker(engine, snapshot=True),
            hot=hot,
            writes=writes,
            runtime=runtime,
            auth=auth,
            refresh=Refresh(runtime, auth, hot),
            accounts=Accounts(runtime, recovery, throttle),
            recovery=recovery,
            admin=Admin(runtime, tokens),
            roles=Roles(runtime),
            factors=factors,
            passkeys=Passkeys(runtime, rp, auth, challenges, factors, throttle),
            second_step=SecondStep(runtime, auth, challenges, factors, throttle),
            challenges=challenges,
            datakeys=datakeys,
            keys=Keys(runtime),
            secrets=Secrets(runtime),
            tokens=tokens,
            transfer=Transfer(runtime),
            webhooks=Webhooks(runtime),
            oauth_clients=oauth_clients,
            authorize=Authorize(runtime, challenges, oauth_clients),
            oauth_tokens=Tokens(runtime, challenges, oauth_clients),
            mail=Courier(
                runtime, mail_channel, own_transaction, poll_interval=settings.mail_poll_interval
            ),
            mail_channel=mail_channel,
            webhook_sender=Courier(
                runtime,
                webhook_channel,
                own_transaction,
                poll_interval=settings.webhook_poll_interval,
                concurrency=settings.webhook_concurrency,
                batch=WEBHOOK_BATCH,
            ),
            webhook_channel=webhook_channel,
            mail_wakeup=mail_wakeup,
            providers=providers,
            external_login=ExternalLogin(runtime, providers, challenges, reauth, throttle),
            external_accounts=ExternalAccounts(
                runtime, providers, auth, challenges, tokens, throttle
            ),
            dpop=Dpop(runtime, writes, hot),
            revert=Revert(runtime, tokens),
        )

    @asynccontextmanager
    async def unit_of_work(self, client: ClientInfo | None = None) -> AsyncIterator[UnitOfWork]:
        """A transaction for one use case; rolled back unless the service committed."""
        async with self.writes() as db:
            uow = UnitOfWork(db, self.runtime.clock, client)
            try:
                yield uow
            finally:
                await uow.rollback()
                if uow.committed and uow.queued_mail:
                    self.mail_wakeup.set()
                if uow.committed and uow.queued_deliveries:
                    self.webhook_wakeup.set()

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[UnitOfWork]:
        """Repositories on a read-only session (queries)."""
        async with self.reads() as db:
            yield UnitOfWork(db, self.runtime.clock)

    async def start(self) -> None:
        if self.hot is not None:
            await self.hot.start()

    async def close(self) -> None:
        self.runtime.hasher.close()
        await self.webhook_channel.client.close()
        await self.providers.close()
        if self.hot is not None:
            await self.hot.close()
        await self.engine.dispose()


def _provider_http(settings: Settings) -> httpx.AsyncClient | None:
    """The HTTP client towards sign-in providers, when there are any: no redirects followed,
    bounded in time."""
    if not settings.oidc_providers:
        return None
    return httpx.AsyncClient(
        timeout=settings.oidc_timeout,
        follow_redirects=False,
        headers={"User-Agent": f"{settings.product_name} (identity)"},
    )
