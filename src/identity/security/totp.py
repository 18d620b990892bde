"""Time-based one-time passwords (RFC 6238: SHA-1, 6 digits, 30 s), with pyotp and segno.

A code is accepted for the current time step and one step either side; which step matched
is returned so the caller can accept each step once (pyotp alone would accept the same
code again and again).
"""

from __future__ import annotations

import unicodedata
from datetime import datetime

import pyotp
from pyotp.exceptions import OTPVerificationError

# Sealing purposes (security.derive): a factor's secret, and an enrolment's until confirmed.
SECRET_PURPOSE = "totp-secret"
ENROLLMENT_PURPOSE = "totp-enrollment-secret"

DIGITS = 6
PERIOD = 30
SKEW = 1  # time steps either side


def new_secret() -> str:
    """160 random bits in base32, as authenticator apps expect."""
    return pyotp.random_base32()


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).provisioning_uri(
        name=account, issuer_name=issuer
    )


def qr_code_svg(uri: str) -> str:
    """The QR code as an <svg> element (paths only; never a request to an image service).

    It carries the SVG namespace, so it works inline in HTML and as a data: image alike.
    """
    import io

    import segno  # only enrolments draw QR codes

    out = io.BytesIO()
    segno.make_qr(uri, error="m").save(
        out, kind="svg", xmldecl=False, svgns=True, nl=False, scale=4, omitsize=True, border=2
    )
    return out.getvalue().decode()


def normalize_code(code: str) -> str | None:
    """The six digits of a code as typed ("123 456", full-width digits), or None."""
    if len(code) > 32:
        return None
    digits = "".join(unicodedata.normalize("NFKC", code).split())
    if len(digits) != DIGITS or not digits.isascii() or not digits.isdigit():
        return None
    return digits


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step whose code is `code` (a normalized code), within the skew; else None."""
    try:
        step: int = pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).verify_and_get_timecode(
            code, for_time=now, valid_window=SKEW
        )
    except OTPVerificationError:
        return None
    return step


def code_at(secret: str, when: datetime) -> str:
    """The code an authenticator app shows at `when` (for tests and the benchmark)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).at(when)
