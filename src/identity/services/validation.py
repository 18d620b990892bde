"""Input rules shared by the use cases; every problem is collected, so a client sees them all."""

from __future__ import annotations

import unicodedata

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
