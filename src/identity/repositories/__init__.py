"""Repositories: one module per aggregate, SQL only; rows or None back, never domain errors."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Executable
from sqlalchemy.ext.asyncio import AsyncSession


async def rowcount(db: AsyncSession, statement: Executable) -> int:
    """Run an UPDATE or DELETE and say how many rows it touched."""
    result = cast("CursorResult[Any]", await db.execute(statement))
    return int(result.rowcount)
