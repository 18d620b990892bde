"""Markdown helpers shared by the page generators."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "docs" / "reference"
COMMAND = "make docs"


def notice(source: str) -> str:
    return (
        f"<!-- Generated from {source} by `{COMMAND}` (python -m tools.docs): "
        "edit the source, not this page. -->\n"
    )


def cell(text: str) -> str:
    """Text for one Markdown table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def paragraphs(text: str) -> str:
    """A docstring as Markdown paragraphs: lines joined, blank lines kept."""
    blocks = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(" ".join(block.split()) for block in blocks)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def sentence(text: str) -> str:
    return text[:1].upper() + text[1:]
