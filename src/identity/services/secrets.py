"""Rotating the server secret: what each secret opens, and re-sealing under the current one.

A rotation runs in three phases, each a rolling restart (docs/guides/secret-rotation.md):
the new secret added as a fallback everywhere; the new secret made current and the old one a
fallback; then, after `reencrypt`, the old one dropped. Nothing here runs at start-up: an
instance still in an earlier phase must keep opening what the others sealed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from identity.config import ConfigError
from identity.repositories.sealed import SEALED_COLUMNS, SealedColumn
from identity.security.derive import DATA_KEY_PURPOSE
from identity.security.jwt import KEY_ENCRYPTION
from identity.services.runtime import Runtime
from identity.services.uow import UnitOfWork

BATCH = 100


@dataclass(slots=True)
class SealedCount:
    """One sealed column: how many of its values each secret opens."""

    name: str
    opened_by: list[int]  # [current, fallback 1, fallback 2, …]
    unopenable: int = 0
    resealed: int = 0
    changed_meanwhile: int = 0  # written by a server while being re-sealed: left as it is
    empty: int = 0  # rows without a value (a nullable column)

    @property
    def rows(self) -> int:
        return sum(self.opened_by) + self.unopenable + self.empty

    @property
    def fallback_only(self) -> int:
        return sum(self.opened_by[1:])


def advice(them: str) -> str:
    return (
        f"start with the secret that sealed {them}, as IDENTITY_SECRET_KEY or in "
        "IDENTITY_SECRET_KEY_FALLBACKS (`identity secret check` counts what each secret opens)"
    )


class SecretMismatch(ConfigError):
    """Sealed values needed at start-up that no secret of this process opens: the message is
    one line saying what is wrong and what to do."""

    @classmethod
    def counted(cls, counts: Sequence[SealedCount]) -> SecretMismatch:
        what = " and ".join(
            f"{c.rows - c.unopenable or 'none'} of the {c.rows} {c.name}" for c in counts
        )
        return cls(
            f"IDENTITY_SECRET_KEY and IDENTITY_SECRET_KEY_FALLBACKS open {what} in the "
            f"database: {advice('them')}"
        )

    @classmethod
    def of(cls, what: str) -> SecretMismatch:
        return cls(
            "neither IDENTITY_SECRET_KEY nor IDENTITY_SECRET_KEY_FALLBACKS opens "
            f"{what}: {advice('it')}"
        )


# What every process opens when it starts: a few rows, checked before it starts.
_AT_START = (KEY_ENCRYPTION, DATA_KEY_PURPOSE)


class Secrets:
    def __init__(self, rt: Runtime, columns: Sequence[SealedColumn] = SEALED_COLUMNS) -> None:
        self.rt = rt
        self.columns = columns

    async def check_start_up(self, uow: UnitOfWork) -> None:
        """Raise SecretMismatch unless every signing key and data key opens with a secret
        of this process (a server opens them all when it starts)."""
        failing = []
        for column in self.columns:
            # Run before migrations: a table they will add holds nothing sealed yet.
            if column.purpose not in _AT_START or not await uow.sealed.exists(column):
                continue
            count = SealedCount(column.name, [0] * self.rt.secret.generations)
            async for row, value in self._values(uow, column):
                self._generation(column, row, value, count)
            if count.unopenable:
                failing.append(count)
        if failing:
            raise SecretMismatch.counted(failing)

    async def check(self, uow: UnitOfWork) -> list[SealedCount]:
        """For each sealed column: how many values the current secret and each fallback open."""
        counts = []
        for column in self.columns:
            count = SealedCount(column.name, [0] * self.rt.secret.generations)
            async for row, value in self._values(uow, column):
                self._generation(column, row, value, count)
            counts.append(count)
        return counts

    async def reencrypt(self, uow: UnitOfWork, batch: int = BATCH) -> list[SealedCount]:
        """Re-seal under the current secret every value a fallback opens, one batch per
        transaction. Idempotent, and safe while servers run: each value is replaced only if
        nobody changed it meanwhile, and every server of phase 2 opens both sealings."""
        secret = self.rt.secret
        counts = []
        for column in self.columns:
            count = SealedCount(column.name, [0] * secret.generations)
            async for row, value in self._values(uow, column, batch, commit=True):
                generation = self._generation(column, row, value, count)
                if not generation:  # under the current secret already, or under none
                    continue
                aad = column.aad(row)
                fresh = secret.seal(column.purpose, secret.unseal(column.purpose, value, aad), aad)
                if await uow.sealed.store(column, row, fresh, was=value):
                    count.resealed += 1
                else:
                    count.changed_meanwhile += 1
            counts.append(count)
        return counts

    def _generation(
        self, column: SealedColumn, row: Any, value: bytes | None, count: SealedCount
    ) -> int | None:
        if value is None:
            count.empty += 1
            return None
        generation = self.rt.secret.sealed_with(column.purpose, value, column.aad(row))
        if generation is None:
            count.unopenable += 1
        else:
            count.opened_by[generation] += 1
        return generation

    async def _values(
        self, uow: UnitOfWork, column: SealedColumn, batch: int = BATCH, *, commit: bool = False
    ) -> Any:
        """(row, sealed value) for every row of the column's table, a batch at a time; each
        batch ends its transaction (committed when `commit`) before the next is read."""
        after = None
        while True:
            rows = await uow.sealed.page(column, after, batch)
            for row in rows:
                yield row, getattr(row, column.column)
            if commit:
                await uow.commit()
            else:
                await uow.release()
            if len(rows) < batch:
                return
            after = uow.sealed.key_of(rows[-1])
