"""Where mail goes: the console (development), a folder of .eml files, or SMTP."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class ConsoleMailer:
    """Prints each message on standard output, outside the log pipeline (development only)."""

    async def send(self, message: EmailMessage) -> None:
        text = message.get_body(("plain",))
        body = text.get_content() if text is not None else ""
        sys.stdout.write(
            f"\n----- mail to {message['To']}: {message['Subject']}\n{body}\n----- end of mail\n"
        )
        sys.stdout.flush()


class FileMailer:
    """Writes one .eml file per message into a folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def send(self, message: EmailMessage) -> None:
        def write() -> None:
            self.folder.mkdir(parents=True, exist_ok=True)
            name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.eml"
            temporary = self.folder / f".{name}.tmp"
            temporary.write_bytes(bytes(message))
            temporary.rename(self.folder / name)  # readers never see half a message

        await asyncio.to_thread(write)


class SMTPMailer:
    """aiosmtplib: `smtp://user:pass@host:port?starttls=true` or `smtps://…` (implicit TLS)."""

    def __init__(self, url: str, timeout: float = 30) -> None:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        self.hostname = parts.hostname or "localhost"
        self.implicit_tls = parts.scheme == "smtps"
        self.port = parts.port or (465 if self.implicit_tls else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.starttls = query.get("starttls", ["false"])[0].lower() in ("1", "true", "yes")
        self.timeout = timeout

    async def send(self, message: EmailMessage) -> None:
        await aiosmtplib.send(
            message,
            hostname=self.hostname,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.implicit_tls,
            start_tls=self.starttls if not self.implicit_tls else False,
            timeout=self.timeout,
        )


def create_mailer(url: str) -> Mailer:
    if url.startswith("console:"):
        return ConsoleMailer()
    if url.startswith("file://"):
        return FileMailer(Path(unquote(urlsplit(url).path)))
    if url.startswith(("smtp://", "smtps://")):
        return SMTPMailer(url)
    raise ValueError(f"unsupported mail transport {url.split(':', 1)[0]!r}")
