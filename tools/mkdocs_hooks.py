"""MkDocs hooks: the repository's README.md is the site's front page.

The README links into the site as `docs/<page>.md`, which works on a code host; on the site
those links become relative to docs/. Any other link of the README is checked by
`mkdocs build --strict` like every page's.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

README = Path(__file__).resolve().parents[1] / "README.md"
_DOCS_LINK = re.compile(r"(\]\()docs/")


def front_page() -> str:
    """README.md as the site's index.md."""
    return _DOCS_LINK.sub(r"\1", README.read_text(encoding="utf-8"))


def on_files(files: Files, config: MkDocsConfig) -> Files:
    if files.get_file_from_path("index.md") is not None:
        raise SystemExit("docs/index.md must not exist: the front page is README.md")
    files.append(File.generated(config, "index.md", content=front_page()))
    return files
