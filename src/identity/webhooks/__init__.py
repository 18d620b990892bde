"""The JSON Schema of every webhook payload, one file per event type in schemas/."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any


def schema(event_type: str) -> dict[str, Any]:
    text = files("identity.webhooks").joinpath("schemas", f"{event_type}.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded
