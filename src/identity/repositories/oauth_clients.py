"""OAuth clients, the consents users gave them, and their grants: SQL only."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from identity.db.models import Session
from identity.db.oauth_models import OAuthClient, OAuthConsent
from identity.repositories import rowcount


class OAuthClientRepository:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    def add(self, client: OAuthClient) -> None:
        self.db.add(client)

    async def flush(self) -> None:
        await self.db.flush()

    async def all(self) -> list[OAuthClient]:
        stmt = select(OAuthClient).order_by(OAuthClient.created_at, OAuthClient.id)
        return list((await self.db.execute(stmt)).scalars())

    async def get(self, client_pk: uuid.UUID) -> OAuthClient | None:
        return await self.db.get(OAuthClient, client_pk)

    async def by_client_id(self, client_id: str) -> OAuthClient | None:
        stmt = select(OAuthClient).where(OAuthClient.client_id == client_id)
        return (await self.db.execute(stmt)).scalar_one_or_none()

    async def delete(self, client_pk: uuid.UUID) -> bool:
        return bool(await rowcount(self.db, delete(OAuthClient).where(OAuthClient.id == client_pk)))

    # Consents ---------------------------------------------------------------------------

    async def consent(self, user_id: uuid.UUID, client_pk: uuid.UUID) -> OAuthConsent | None:
        return await self.db.get(OAuthConsent, (user_id, client_pk))

    async def save_consent(
        self, user_id: uuid.UUID, client_pk: uuid.UUID, scopes: list[str], now: datetime
    ) -> None:
        found = await self.consent(user_id, client_pk)
        if found is None:
            self.db.add(
                OAuthConsent(user_id=user_id, client_id=client_pk, scopes=scopes, granted_at=now)
            )
        else:
            found.scopes = sorted(set(found.scopes) | set(scopes))
            found.granted_at = now

    async def forget_consent(self, user_id: uuid.UUID, client_pk: uuid.UUID) -> bool:
        stmt = delete(OAuthConsent).where(
            OAuthConsent.user_id == user_id, OAuthConsent.client_id == client_pk
        )
        return bool(await rowcount(self.db, stmt))

    # Grants (sessions that belong to a client) ------------------------------------------

    async def grant(self, grant_id: uuid.UUID) -> Session | None:
        session = await self.db.get(Session, grant_id)
        return session if session is not None and session.oauth_client_id is not None else None

    async def revoke_grants(
        self, user_id: uuid.UUID, client_pk: uuid.UUID, now: datetime, reason: str
    ) -> list[uuid.UUID]:
        stmt = (
            update(Session)
            .where(
                Session.user_id == user_id,
                Session.oauth_client_id == client_pk,
                Session.revoked_at.is_(None),
            )
            .values(revoked_at=now, revoked_reason=reason)
            .returning(Session.id)
        )
        return list((await self.db.execute(stmt)).scalars())
