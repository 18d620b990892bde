"""DPoP (RFC 9449): sessions bound to a key the client holds, and the proofs that show it.

The checks of one proof are in `identity.security.dpop`. Here: which requests need one
(`IDENTITY_DPOP`), the URL a proof must name, and the replay cache. A proof is good for one
request: its thumbprint and `jti` are recorded until its `iat` could no longer pass, in Redis
when it is configured and answering, else in the database, so that every instance refuses a
proof another one has seen (never in one process's memory).
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from identity.repositories.dpop import DpopProofRepository
from identity.repositories.hot import PostgresHotPath
from identity.security.dpop import InvalidProof, Proof, verify_proof
from identity.services.runtime import Runtime

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

    async def record(self, proof: Proof) -> None:
        """Remember the proof as used; InvalidProof if it was used before (anywhere)."""
        settings = self.rt.settings
        # Until the proof's iat is too old to pass (the window plus the leeway both ways).
        keep = settings.dpop_proof_max_age + 2 * settings.jwt_leeway
        key = hashlib.sha256(f"{proof.jkt}\0{proof.jti}".encode()).hexdigest()
        first = await self.rt.limiter.first_use("dpop", key, keep)
        if first is None:
            expires_at = self.rt.clock.now() + timedelta(seconds=keep)
            if self.hot is not None:
                first = await self.hot.record_proof(key, expires_at)
            else:
                async with self.writes() as db:
                    first = await DpopProofRepository(db).first_use(key, expires_at)
                    await db.commit()
        if not first:
            raise InvalidProof("this proof was used already")

    async def prune(self) -> int:
        """Forget the proofs whose time has passed (housekeeping)."""
        async with self.writes() as db:
            count = await DpopProofRepository(db).prune(self.rt.clock.now())
            await db.commit()
        return count
