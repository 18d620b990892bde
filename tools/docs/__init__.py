"""Generate the reference pages of the documentation site from the code.

    python -m tools.docs            write docs/reference/{configuration,cli,graphql}.md
    python -m tools.docs --check    exit 1 when a committed page differs from the code

`make docs` runs the first, then builds the site. The pages come from:

- configuration.md: the fields of `identity.config.Settings` and the docstring under each;
- cli.md: the argparse parser of `identity.cli`, with each command's help and description;
- graphql.md: `schema.graphql` (itself exported from the code), with each operation's
  description, the permission it needs (the "Requires …" sentence of its description) and
  the members of its result union.

New settings, commands and operations appear without an edit here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tools.docs.cli_page import argument_text, arguments, cli_page, commands, identity_parser
from tools.docs.configuration_page import configuration_page
from tools.docs.graphql_page import graphql_page
from tools.docs.markdown import COMMAND, REFERENCE, REPO

__all__ = [
    "COMMAND",
    "argument_text",
    "arguments",
    "cli_page",
    "commands",
    "configuration_page",
    "graphql_page",
    "identity_parser",
    "main",
    "pages",
    "stale",
]


def pages() -> dict[Path, str]:
    return {
        REFERENCE / "configuration.md": configuration_page(),
        REFERENCE / "cli.md": cli_page(),
        REFERENCE / "graphql.md": graphql_page(),
    }


def stale() -> list[Path]:
    """The committed pages that differ from what the code generates."""
    return [
        path
        for path, text in pages().items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.docs", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--check", action="store_true", help="only report stale pages")
    args = parser.parse_args(argv)
    if args.check:
        out_of_date = stale()
        for path in out_of_date:
            print(f"{path.relative_to(REPO)} is out of date: run `{COMMAND}`", file=sys.stderr)
        return 1 if out_of_date else 0
    for path, text in pages().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(REPO)}")
    return 0
