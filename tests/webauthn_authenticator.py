"""A software passkey authenticator for the tests: an EC P-256 key per credential, "none"
attestation, authenticator data built byte by byte (WebAuthn Level 3, section 6.1).

It answers the options identity sends as a browser would hand back `credential.toJSON()`,
and every part of the answer can be made wrong on purpose (origin, relying-party id,
challenge, user verification, counter, user handle).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40
AAGUID = bytes(16)  # "none" attestation: zeros


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Passkey:
    credential_id: bytes
    key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    counter: int = 0

    def cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: 2,  # kty: EC2
                3: -7,  # alg: ES256
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )


@dataclass
class SoftAuthenticator:
    origin: str = "http://testserver"
    counting: bool = False  # synced passkeys report 0; a security key counts up
    passkeys: list[Passkey] = field(default_factory=list)

    def create(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        challenge: str | None = None,
        uv: bool = True,
        credential_id: bytes | None = None,
    ) -> dict[str, Any]:
        """`navigator.credentials.create()` with these creation options."""
        rp = rp_id or options["rp"]["id"]
        passkey = Passkey(
            credential_id=credential_id or os.urandom(16),
            key=ec.generate_private_key(ec.SECP256R1()),
            rp_id=rp,
            user_handle=unb64(options["user"]["id"]),
        )
        flags = UP | (UV if uv else 0) | BE | BS | AT
        attested = (
            AAGUID
            + struct.pack(">H", len(passkey.credential_id))
            + passkey.credential_id
            + passkey.cose_key()
        )
        auth_data = self._auth_data(rp, flags, passkey.counter) + attested
        client_data = self._client_data(
            "webauthn.create", challenge or options["challenge"], origin
        )
        self.passkeys.append(passkey)
        return {
            "id": b64(passkey.credential_id),
            "rawId": b64(passkey.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64(client_data),
                "attestationObject": b64(
                    cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
                ),
                "transports": ["internal", "hybrid"],
            },
        }

    def get(
        self,
        options: dict[str, Any],
        *,
        passkey: Passkey | None = None,
        origin: str | None = None,
        rp_id: str | None = None,
        challenge: str | None = None,
        uv: bool = True,
        counter: int | None = None,
        user_handle: bytes | None = None,
    ) -> dict[str, Any]:
        """`navigator.credentials.get()`: the first passkey allowed (or the last made)."""
        chosen = passkey or self._pick(options)
        if counter is not None:
            chosen.counter = counter
        elif self.counting:
            chosen.counter += 1
        flags = UP | (UV if uv else 0) | BE | BS
        auth_data = self._auth_data(rp_id or options["rpId"], flags, chosen.counter)
        client_data = self._client_data("webauthn.get", challenge or options["challenge"], origin)
        signature = chosen.key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return {
            "id": b64(chosen.credential_id),
            "rawId": b64(chosen.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64(client_data),
                "authenticatorData": b64(auth_data),
                "signature": b64(signature),
                "userHandle": b64(user_handle or chosen.user_handle),
            },
        }

    def _pick(self, options: dict[str, Any]) -> Passkey:
        allowed = {unb64(c["id"]) for c in options.get("allowCredentials") or []}
        for passkey in reversed(self.passkeys):
            if not allowed or passkey.credential_id in allowed:
                return passkey
        raise LookupError("no passkey of this authenticator is allowed")

    def _auth_data(self, rp_id: str, flags: int, counter: int) -> bytes:
        return hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + struct.pack(">I", counter)

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps(
            {
                "type": kind,
                "challenge": challenge,
                "origin": origin or self.origin,
                "crossOrigin": False,
            }
        ).encode()
