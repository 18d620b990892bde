"""Logging: readable lines in development, JSON lines in production."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import orjson

from identity.config import Settings

# Attributes every LogRecord has; anything else was passed with `extra=` and is kept, except
# uvicorn's `color_message` (the message again, with terminal colour codes).
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


# Access-log fields the readable message already shows.
_IN_MESSAGE = {"method", "path", "status", "duration_ms", "operation", "outcome"}


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extra = {
            k: v for k, v in record.__dict__.items() if k not in _STANDARD and k not in _IN_MESSAGE
        }
        if extra:
            text += " " + " ".join(f"{k}={v}" for k, v in extra.items())
        return text


def configure_logging(settings: Settings) -> None:
    """Idempotent: worker processes call it again from create_app."""
    root = logging.getLogger()
    if any(getattr(h, "_identity", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if settings.is_production else TextFormatter())
    handler._identity = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # start-up noise
