"""WebAuthn for passkeys, through py_webauthn: options to send, responses to verify.

Discoverable credentials with user verification required and attestation `none`. Options go
out as the JSON `PublicKeyCredential.parseCreationOptionsFromJSON` / `parseRequestOptionsFromJSON`
read (base64url without padding). Every refusal is one exception, `Refused`, whose reason is
for the audit log, never for the client.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    bytes_to_base64url,
    options_to_json_dict,
    parse_authentication_credential_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

if TYPE_CHECKING:
    from identity.db.models import Factor

MAX_CREDENTIAL_JSON = 16 * 1024  # characters; a real response is a few hundred to 2000
TIMEOUT_MS = 5 * 60 * 1000  # as long as the challenge lives
# What a malformed response may raise from the parsers (base64, CBOR, enums) besides the
# library's own exceptions.
# RecursionError: json.loads of a deeply nested string.
_MALFORMED = (
    WebAuthnException,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    RecursionError,
)
MAX_CREDENTIAL_ID = 1023  # bytes; WebAuthn Level 3 §7.1 refuses longer ones


class Refused(Exception):
    """The response does not prove what it should; `reason` is a short snake_case word."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Credential:
    """A stored passkey, as the verification needs it."""

    credential_id: bytes
    public_key: bytes
    sign_count: int
    transports: list[str]

    @classmethod
    def of(cls, factor: Factor) -> Credential:
        assert factor.credential_id is not None
        assert factor.public_key is not None
        return cls(
            credential_id=factor.credential_id,
            public_key=factor.public_key,
            sign_count=factor.sign_count or 0,
            transports=list(factor.transports or []),
        )


@dataclass(frozen=True, slots=True)
class Registered:
    credential_id: bytes
    public_key: bytes
    sign_count: int
    transports: list[str]
    aaguid: str
    backup_eligible: bool
    backup_state: bool


@dataclass(frozen=True, slots=True)
class Asserted:
    credential_id: bytes
    sign_count: int
    backup_state: bool


def new_challenge() -> bytes:
    return secrets.token_bytes(32)


def encode(value: bytes) -> str:
    return bytes_to_base64url(value)


def parse_assertion(value: object) -> AuthenticationCredential:
    """A browser's JSON of `navigator.credentials.get()`; Refused("malformed") otherwise."""
    text = _bounded(value)
    try:
        parsed = parse_authentication_credential_json(text)
    except _MALFORMED:
        raise Refused("malformed") from None
    if len(parsed.raw_id) > MAX_CREDENTIAL_ID:
        raise Refused("malformed")
    return parsed


def user_handle(assertion: AuthenticationCredential) -> bytes | None:
    return assertion.response.user_handle


class RelyingParty:
    def __init__(self, rp_id: str, origins: list[str], name: str) -> None:
        self.rp_id = rp_id
        self.origins = list(origins)
        self.name = name

    def creation_options(
        self,
        *,
        challenge: bytes,
        user_handle: bytes,
        user_name: str,
        display_name: str,
        exclude: list[Credential],
    ) -> dict[str, Any]:
        options = generate_registration_options(
            rp_id=self.rp_id,
            rp_name=self.name,
            user_id=user_handle,
            user_name=user_name,
            user_display_name=display_name or user_name,
            challenge=challenge,
            timeout=TIMEOUT_MS,
            attestation=AttestationConveyancePreference.NONE,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                require_resident_key=True,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            exclude_credentials=[_descriptor(c) for c in exclude],
        )
        return options_to_json_dict(options)

    def request_options(self, *, challenge: bytes, allow: list[Credential]) -> dict[str, Any]:
        """Empty `allow`: discoverable, the browser offers the user's passkeys."""
        options = generate_authentication_options(
            rp_id=self.rp_id,
            challenge=challenge,
            timeout=TIMEOUT_MS,
            allow_credentials=[_descriptor(c) for c in allow],
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        return options_to_json_dict(options)

    def parse_registration(self, value: object) -> Any:
        text = _bounded(value)
        try:
            return parse_registration_credential_json(text)
        except _MALFORMED:
            raise Refused("malformed") from None

    def verify_registration(self, credential: Any, challenge: bytes) -> Registered:
        try:
            verified = verify_registration_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=self.origins,
                require_user_verification=True,
            )
        except _MALFORMED as exc:
            raise Refused(_reason(exc)) from None
        if len(verified.credential_id) > MAX_CREDENTIAL_ID:
            raise Refused("credential_id_too_long")
        transports = credential.response.transports or []
        return Registered(
            credential_id=verified.credential_id,
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
            transports=[
                t.value if isinstance(t, AuthenticatorTransport) else t for t in transports
            ],
            aaguid=verified.aaguid,
            backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
            backup_state=verified.credential_backed_up,
        )

    def verify_assertion(
        self,
        assertion: AuthenticationCredential,
        challenge: bytes,
        stored: Credential,
        origin: str | None = None,
    ) -> Asserted:
        """Verify the signature and flags; the counter is compared here, not by the library,
        so that a counter going backwards has a reason of its own. `origin`: the one origin
        the ceremony ran at (identity's own pages), instead of any allowed one."""
        if origin is not None and origin not in self.origins:
            raise Refused("origin")
        try:
            verified = verify_authentication_response(
                credential=assertion,
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=[origin] if origin is not None else self.origins,
                credential_public_key=stored.public_key,
                credential_current_sign_count=0,
                require_user_verification=True,
            )
        except _MALFORMED as exc:
            raise Refused(_reason(exc)) from None
        new = verified.new_sign_count
        if (new > 0 or stored.sign_count > 0) and new <= stored.sign_count:
            raise Refused("counter_regressed")
        return Asserted(
            credential_id=verified.credential_id,
            sign_count=new,
            backup_state=verified.credential_backed_up,
        )


def _descriptor(credential: Credential) -> PublicKeyCredentialDescriptor:
    transports = []
    for name in credential.transports:
        try:
            transports.append(AuthenticatorTransport(name))
        except ValueError:
            continue  # a transport newer than the library: leaving it out is harmless
    return PublicKeyCredentialDescriptor(id=credential.credential_id, transports=transports)


def _bounded(value: object) -> str:
    """The credential as JSON text, refused when it is not an object or too long."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, dict):
        text = json.dumps(value)
    else:
        raise Refused("malformed")
    if len(text) > MAX_CREDENTIAL_JSON:
        raise Refused("oversized")
    return text


def _reason(exc: Exception) -> str:
    """A short reason from the library's message, for the audit log."""
    text = str(exc).lower()
    for needle, reason in (
        ("origin", "wrong_origin"),
        ("rp id", "wrong_rp_id"),
        ("challenge", "wrong_challenge"),
        ("user verification", "user_not_verified"),
        ("not present", "user_not_present"),
        ("signature", "bad_signature"),
        ("type", "wrong_type"),
    ):
        if needle in text:
            return reason
    return "invalid"
