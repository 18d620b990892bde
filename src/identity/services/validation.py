"""Input rules shared by the use cases; every problem is collected, so a client sees them all."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import orjson
from email_validator import EmailNotValidError, validate_email

from identity.db.models import EMAIL_MAX, NAME_MAX
from identity.security.passwords import MAX_LENGTH, normalize_password, password_problem
from identity.services.errors import FieldProblem, ValidationFailed


def normalize_email(value: str) -> str | None:
    """The canonical form of an address (trimmed, IDNA domain, lower-cased), or None."""
    value = value.strip()
    if not value or len(value) > EMAIL_MAX:
        return None
    try:
        checked = validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return None
    normalized = checked.normalized.lower()
    return normalized if len(normalized) <= EMAIL_MAX else None


LABEL_MAX = 64
METADATA_MAX = 4096  # bytes of compact JSON
METADATA_DEPTH = 8  # objects and arrays nested at most this deep
# Keys every consumer can use as they are: no dots or brackets (read as paths by some
# libraries), no leading underscore (`__proto__`), nothing a shell or a URL must escape.
METADATA_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")

# Bidirectional overrides and isolates: they make a name display as something else.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class Checker:
    """Validates fields one by one and raises ValidationFailed with all problems at the end."""

    def __init__(self) -> None:
        self.problems: list[FieldProblem] = []

    def fail(self, field: str, code: str, message: str) -> None:
        self.problems.append(FieldProblem(field=field, code=code, message=message))

    def done(self) -> None:
        if self.problems:
            raise ValidationFailed(self.problems)

    def email(self, field: str, value: str | None) -> str:
        if value is None:
            self.fail(field, "required", "Enter an email address.")
            return ""
        normalized = normalize_email(value)
        if normalized is None:
            self.fail(field, "invalid_email", "Enter a valid email address.")
            return ""
        return normalized

    def name(self, field: str, value: str | None) -> str:
        if value is None:
            self.fail(field, "required", "This field cannot be null.")
            return ""
        # Blank is allowed: not everyone has two names.
        value = unicodedata.normalize("NFKC", value).strip()
        if len(value) > NAME_MAX:
            self.fail(field, "too_long", f"Use at most {NAME_MAX} characters.")
        elif any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in _BIDI for ch in value):
            self.fail(field, "invalid_characters", "Control characters are not allowed.")
        return value

    def label(self, field: str, value: str | None, default: str) -> str:
        """A name people give a thing (a factor): up to 64 characters, no control characters."""
        if value is None:
            return default
        value = unicodedata.normalize("NFKC", value).strip()
        if len(value) > LABEL_MAX:
            self.fail(field, "too_long", f"Use at most {LABEL_MAX} characters.")
        elif any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in _BIDI for ch in value):
            self.fail(field, "invalid_characters", "Control characters are not allowed.")
        return value or default

    def metadata(self, field: str, value: Any) -> dict[str, Any]:
        """A metadata object: JSON, at most 4 KiB, keys matching METADATA_KEY at every level."""
        if value is None:
            self.fail(field, "required", "This field cannot be null; use {} to clear it.")
            return {}
        if not isinstance(value, dict):
            self.fail(field, "not_an_object", "Metadata must be a JSON object.")
            return {}
        try:
            encoded = orjson.dumps(value)
        except (orjson.JSONEncodeError, TypeError):
            self.fail(field, "too_deep", f"Nest objects and arrays at most {METADATA_DEPTH} deep.")
            return {}
        if len(encoded) > METADATA_MAX:
            self.fail(
                field, "too_large", f"Metadata may take at most {METADATA_MAX} bytes as JSON."
            )
            return {}
        problem = _metadata_problem(value, 1)
        if problem is not None:
            self.fail(field, *problem)
            return {}
        # As stored and as tokens carry it (NaN and infinities, which JSON has not, as null).
        stored: dict[str, Any] = orjson.loads(encoded)
        return stored

    def new_password(self, field: str, value: str | None) -> str:
        """A password being set: the full policy."""
        if value is None:
            self.fail(field, "required", "Enter a password.")
            return ""
        if len(value) > 4 * MAX_LENGTH:  # refuse before normalizing megabytes
            self.fail(field, "too_long", f"Use at most {MAX_LENGTH} characters.")
            return ""
        password = normalize_password(value)
        problem = password_problem(password)
        if problem is not None:
            self.fail(field, *problem)
        return password

    def given_password(self, field: str, value: str) -> str:
        """A password being checked: only what no stored password can be (empty, over-long)."""
        if len(value) > 4 * MAX_LENGTH:
            self.fail(field, "too_long", f"Use at most {MAX_LENGTH} characters.")
            return ""
        password = normalize_password(value)
        if not password:
            self.fail(field, "required", "Enter your password.")
        elif len(password) > MAX_LENGTH:
            self.fail(field, "too_long", f"Use at most {MAX_LENGTH} characters.")
        return password


def _metadata_problem(value: Any, depth: int) -> tuple[str, str] | None:
    if isinstance(value, dict | list) and depth > METADATA_DEPTH:
        return "too_deep", f"Nest objects and arrays at most {METADATA_DEPTH} deep."
    children: list[Any] = []
    if isinstance(value, dict):
        for key, child in value.items():
            if not isinstance(key, str) or not METADATA_KEY.match(key):
                shown = str(key)[:64]
                return (
                    "invalid_key",
                    f"Key {shown!r}: use 1 to 64 letters, digits, _ or -, starting with a letter.",
                )
            children.append(child)
    elif isinstance(value, list):
        children = value
    for child in children:
        problem = _metadata_problem(child, depth + 1)
        if problem is not None:
            return problem
    return None
