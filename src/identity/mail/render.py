"""Messages from templates: a plain-text and an HTML part, with a clear subject.

Templates live in identity/mail/templates as `<name>.txt` (first line `Subject: …`) and
`<name>.html`; a folder in IDENTITY_MAIL_TEMPLATES_DIR overrides any of them by name.
"""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

import jinja2


class Renderer:
    def __init__(self, *, sender: str, product_name: str, override_dir: Path | None) -> None:
        self.sender = sender
        self.product_name = product_name
        loaders: list[jinja2.BaseLoader] = []
        if override_dir is not None:
            loaders.append(jinja2.FileSystemLoader(override_dir))
        loaders.append(jinja2.PackageLoader("identity.mail", "templates"))
        loader = jinja2.ChoiceLoader(loaders)
        self._text = jinja2.Environment(
            loader=loader,
            autoescape=False,  # noqa: S701 - plain text, never rendered as HTML
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )
        self._html = jinja2.Environment(
            loader=loader, autoescape=True, undefined=jinja2.StrictUndefined
        )

    def render(self, template: str, recipient: str, context: dict[str, Any]) -> EmailMessage:
        values = {"product_name": self.product_name, "recipient": recipient, **context}
        text = self._text.get_template(f"{template}.txt").render(values)
        first_line, _, body = text.partition("\n")
        if not first_line.startswith("Subject:"):
            raise ValueError(f"mail template {template}.txt must start with 'Subject: '")
        html = self._html.get_template(f"{template}.html").render(values)

        message = EmailMessage()
        message["Subject"] = first_line.removeprefix("Subject:").strip()
        message["From"] = self.sender
        message["To"] = recipient
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(
            domain=self.sender.rpartition("@")[2].strip("> ") or None
        )
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(body.lstrip("\n"))
        message.add_alternative(html, subtype="html")
        return message


def describe(delta: timedelta) -> str:
    """A lifetime in words: '30 minutes', '24 hours', '7 days'."""
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        # Up to two days reads better in hours: "24 hours" rather than "1 day".
        if seconds % size == 0 and seconds >= (3 * size if unit == "day" else size):
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"
