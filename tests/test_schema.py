"""schema.graphql is exported from the code and checked in: it must not drift."""

from __future__ import annotations

from pathlib import Path

from identity.graphql.schema import sdl

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "schema.graphql"


def test_schema_file_matches_the_code() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == sdl(), (
        "schema.graphql is out of date: run `identity export-schema > schema.graphql`"
    )
