"""The fenced blocks of the README and of the documentation pages, as the tests read them.

The conventions (docs/development/index.md says the same for writers):

- ```graphql blocks are operations, validated against schema.graphql;
- ```console blocks run: `$ ` starts a command (a trailing `\\` continues it), the lines up
  to the next command are its expected output, `...` alone on a line matches any lines and
  `...` in a line any text;
- every other shell block (sh, bash, shell, zsh) carries `<!-- docs-test: skip (why) -->` on
  the line before it;
- `<!-- docs-test: server [NAME=value …] -->` on a page runs `identity serve` for its console
  blocks, and `http://127.0.0.1:8000` in them is that server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
SHELLS = frozenset({"sh", "bash", "shell", "zsh", "console"})
DOCUMENTED_URL = "http://127.0.0.1:8000"

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,})(?P<info>[^\n`]*)\n", re.MULTILINE)
_SKIP = re.compile(r"<!--\s*docs-test:\s*skip\b(?P<reason>[^>]*)-->\s*$")
_SERVER = re.compile(r"<!--\s*docs-test:\s*server\b(?P<settings>[^>]*)-->")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    skip_reason: str | None  # None: not marked

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


@dataclass
class Page:
    path: Path
    blocks: list[Block]
    server: dict[str, str] | None = None  # settings of the page's server, if it has one
    commands: list[Command] = field(default_factory=list)


@dataclass(frozen=True)
class Command:
    block: Block
    line: int
    text: str  # what bash runs
    expected: list[str]  # the expected output, line by line


def pages() -> list[Path]:
    """The README and every Markdown page of the site."""
    return [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]


def blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    found: list[Block] = []
    position = 0
    while (opening := _FENCE.search(text, position)) is not None:
        indent, ticks = opening.group("indent"), opening.group("ticks")
        closing = re.compile(rf"^{re.escape(indent)}{ticks}[ \t]*$", re.MULTILINE)
        end = closing.search(text, opening.end())
        if end is None:
            raise ValueError(f"{path}: unclosed fence at offset {opening.start()}")
        body = text[opening.end() : end.start()]
        if indent:
            body = "\n".join(line.removeprefix(indent) for line in body.split("\n"))
        before = text[: opening.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = _SKIP.search(before)
        info = opening.group("info").strip()
        found.append(
            Block(
                path=path,
                line=text.count("\n", 0, opening.start()) + 1,
                language=info.split()[0].lower() if info else "",
                text=body,
                skip_reason=(skip.group("reason").strip(" ()") or "no reason") if skip else None,
            )
        )
        position = end.end()
    return found


def page(path: Path) -> Page:
    text = path.read_text(encoding="utf-8")
    server = _SERVER.search(text)
    settings = None
    if server is not None:
        settings = dict(item.split("=", 1) for item in server.group("settings").split())
    result = Page(path, blocks(path), settings)
    for block in result.blocks:
        if block.language == "console" and block.skip_reason is None:
            result.commands.extend(commands(block))
    return result


def commands(block: Block) -> list[Command]:
    lines = block.text.rstrip("\n").split("\n")
    found: list[Command] = []
    index = 0
    if lines and not lines[0].startswith("$ "):
        raise ValueError(f"{block.where}: a console block starts with a `$ ` command")
    while index < len(lines):
        start = index
        parts = [lines[index][2:]]
        while parts[-1].endswith("\\") and index + 1 < len(lines):
            index += 1
            parts.append(lines[index])
        index += 1
        expected = []
        while index < len(lines) and not lines[index].startswith("$ "):
            expected.append(lines[index])
            index += 1
        found.append(Command(block, block.line + 1 + start, "\n".join(parts), expected))
    return found


def matches(expected: list[str], actual: list[str]) -> bool:
    """Whether the output fits the expected lines, with `...` as the wildcard."""
    pattern = []
    for line in expected:
        if line.strip() == "...":
            pattern.append(r"(?:[^\n]*\n)*?")
        else:
            parts = [re.escape(part) for part in line.rstrip().split("...")]
            pattern.append("[^\n]*?".join(parts) + r"[ \t]*\n")
    text = "".join(line.rstrip() + "\n" for line in actual)
    return re.fullmatch("".join(pattern), text) is not None
