"""The "this wasn't me" link of a notice mail: for 24 hours it undoes an added factor or a
linked external account, and ends every session. It survives password and email changes
(the owner may be locked out by whoever made the change)."""

from __future__ import annotations

import uuid
from typing import Any

from identity.services import events
from identity.services.challenges import factor_lock
from identity.services.errors import InvalidToken
from identity.services.runtime import Runtime
from identity.services.tokens import REVERT_CHANGE, OneTimeTokens
from identity.services.uow import UnitOfWork

FACTOR = "factor"  # payload factor:<id>
EXTERNAL = "external"  # payload external:<id>


class Revert:
    def __init__(self, rt: Runtime, tokens: OneTimeTokens) -> None:
        self.rt = rt
        self.tokens = tokens

    async def revert(self, uow: UnitOfWork, token: str) -> None:
        row = await self.tokens.consume(uow, token, {REVERT_CHANGE})
        user = await uow.users.get(row.user_id)
        kind, _, ident = (row.payload or "").partition(":")
        try:
            target = uuid.UUID(ident)
        except ValueError:
            raise InvalidToken() from None
        if user is None or kind not in (FACTOR, EXTERNAL):
            raise InvalidToken()
        now = self.rt.clock.now()
        if kind == FACTOR:
            await uow.locks.hold(factor_lock(user.id))
            factor = await uow.factors.get(target)
            removed = factor is not None and factor.user_id == user.id
            if removed:
                await uow.factors.remove(target)
                if await uow.factors.count(user.id) == 0:
                    uow.events.add(
                        events.USER_MFA_DISABLED,
                        {"userId": user.id, "actorId": None, "reason": "change_reverted"},
                    )
            # Whoever added it may have seen the recovery codes and asked for links: all void.
            await uow.recovery_codes.remove_all(user.id)
            await uow.tokens.void(user.id, now)
        else:
            await uow.locks.hold(f"external-accounts:{user.id}")
            account = await uow.external_accounts.get(target)
            removed = account is not None and account.user_id == user.id
            if removed:
                await uow.external_accounts.remove(target)
        await uow.challenges.void_all(user.id)
        ended = await uow.sessions.revoke_all(user.id, now, "change_reverted")
        events.sessions_ended(uow.events, user.id, ended, "change_reverted")
        uow.outbox.add("change_reverted", user.email, first_name=user.first_name)
        details: dict[str, Any] = {"factor_id" if kind == FACTOR else "external_account_id": ident}
        uow.audit.record(
            "mfa.change_reverted" if kind == FACTOR else "external.link_reverted",
            subject=user.id,
            removed=removed,
            sessions_ended=len(ended),
            **details,
        )
        await uow.commit()
