"""DPoP (RFC 9449): sessions bound to a key the client holds, and the proofs that show it.

The checks of one proof are in `identity.security.dpop`. Here: which requests need one
(`IDENTITY_DPOP`), the URL a proof must name, and the replay record. A proof is good for one
request: its thumbprint and `jti` are recorded in the database until its `iat` could no
longer pass, so that every instance refuses a proof another one has seen. (Not in Redis: a
Redis outage would make instances fall back to a record the others cannot see, and let a
proof through twice. On PostgreSQL the record is one prepared statement.)

A request that issues tokens has its proof checked first and spent (recorded) by the use
case once the credentials are proven, so that requests with wrong passwords or made-up
refresh tokens write nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from identity.repositories.dpop import DpopProofRepository
from identity.repositories.hot import PostgresHotPath
from identity.security.dpop import InvalidProof, Proof, verify_proof
from identity.services.errors import ProofReplayed
from identity.services.runtime import Runtime
from identity.services.uow import UnitOfWork

HEADER = "DPoP"
SCHEME = "DPoP"


class Dpop:
    def __init__(
        self,
        rt: Runtime,
        writes: async_sessionmaker[AsyncSession],
        hot: PostgresHotPath | None = None,
    ) -> None:
        self.rt = rt
        self.writes = writes
        self.hot = hot  # PostgreSQL: the record is one prepared statement

    @property
    def required(self) -> bool:
        return self.rt.settings.dpop == "required"

    @property
    def graphql_url(self) -> str:
        """What `htu` must name for the GraphQL endpoint: its public URL."""
        return self.rt.settings.public_url.rstrip("/") + "/graphql"

    async def check(
        self, proofs: list[str], *, method: str, url: str, access_token: str | None = None
    ) -> str:
        """The thumbprint of the key behind the request's one proof, used for the first time."""
        proof = self.verify(proofs, method=method, url=url, access_token=access_token)
        await self.record(proof)
        return proof.jkt

    def verify(
        self, proofs: list[str], *, method: str, url: str, access_token: str | None = None
    ) -> Proof:
        """The request's one proof, checked (but not yet recorded as used)."""
        if len(proofs) != 1:
            raise InvalidProof("exactly one DPoP header is allowed")
        settings = self.rt.settings
        return verify_proof(
            proofs[0],
            method=method,
            url=url,
            now=self.rt.clock.now(),
            max_age=settings.dpop_proof_max_age,
            leeway=settings.jwt_leeway,
            access_token=access_token,
        )

    async def record(self, proof: Proof, uow: UnitOfWork | None = None) -> None:
        """Remember the proof as used; InvalidProof if it was used before (anywhere).

        On PostgreSQL in a statement of its own; on SQLite in `uow`'s transaction when there
        is one (a second writer would wait for it), committed with the use case's change.
        """
        settings = self.rt.settings
        # Until its iat can no longer pass the check (which compares whole seconds).
        until = proof.iat + settings.dpop_proof_max_age + settings.jwt_leeway + 1
        expires_at = datetime.fromtimestamp(until, UTC)
        key = hashlib.sha256(f"{proof.jkt}\0{proof.jti}".encode()).hexdigest()
        if self.hot is not None:
            first = await self.hot.record_proof(key, expires_at)
        elif uow is not None:
            first = await uow.dpop_proofs.first_use(key, expires_at)
        else:
            async with self.writes() as db:
                first = await DpopProofRepository(db).first_use(key, expires_at)
                await db.commit()
        if not first:
            raise InvalidProof("this proof was used already")

    def binding(self, proof: Proof) -> Binding:
        return Binding(proof.jkt, proof, self)

    async def prune(self) -> int:
        """Forget the proofs whose time has passed (housekeeping)."""
        async with self.writes() as db:
            count = await DpopProofRepository(db).prune(self.rt.clock.now())
            await db.commit()
        return count


@dataclass(frozen=True, slots=True)
class Binding:
    """A request's proof, checked, for a use case to spend once the credentials are proven
    (a ProofOfKey)."""

    jkt: str
    proof: Proof
    dpop: Dpop

    async def spend(self, uow: UnitOfWork) -> None:
        try:
            await self.dpop.record(self.proof, uow)
        except InvalidProof as exc:
            raise ProofReplayed() from exc
