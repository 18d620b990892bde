"""The hosted pages: sign-in, second factor, consent, sign-out and errors.

Small, server-rendered, without JavaScript except for passkeys; every value is escaped.
They share the link pages' stylesheet and never frame: `frame-ancestors 'none'` and
X-Frame-Options DENY. Forms post only to identity; the answer to a form may redirect to the
client, so that origin is allowed as a form action too (browsers check redirects after a
submission). The passkey forms are hidden until /pages/sign-in.js (scripts from this origin
only, nothing inline) finds WebAuthn's JSON helpers in the browser and shows them.
"""

from __future__ import annotations

import html
import json
from typing import Any
from urllib.parse import urlsplit

from starlette.responses import HTMLResponse

from identity.db.oauth_models import OAuthClient

SCOPE_WORDS = {
    "openid": "Know who you are here",
    "profile": "See your name",
    "email": "See your email address",
    "offline_access": "Stay connected when you are not using it",
}
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title}</title><link rel="stylesheet" href="/pages/pages.css"></head>
<body><main><p class="product">{product}</p><h1>{title}</h1>{body}</main></body></html>
"""


def page(
    product: str, title: str, body: str, *, status: int = 200, redirect_origin: str | None = None
) -> HTMLResponse:
    actions = "'self'" + (f" {redirect_origin}" if redirect_origin else "")
    csp = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; "
        f"form-action {actions}; frame-ancestors 'none'; base-uri 'none'"
    )
    text = _PAGE.format(product=html.escape(product), title=html.escape(title), body=body)
    return HTMLResponse(
        text,
        status_code=status,
        headers={"Cache-Control": "no-store", "Content-Security-Policy": csp},
    )


def origin(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}"


def _hidden(**fields: str) -> str:
    return "".join(
        f'<input type="hidden" name="{name}" value="{html.escape(value)}">'
        for name, value in fields.items()
    )


def _error(message: str | None) -> str:
    return (
        f'<p id="status" class="error" role="alert">{html.escape(message)}</p>' if message else ""
    )


def sign_in(
    client: OAuthClient,
    request: str,
    csrf: str,
    login_hint: str,
    error: str | None = None,
    *,
    passkeys: bool = False,
) -> str:
    """The password form; with `passkeys`, the passkey button too (a discoverable
    credential: the script asks for the options first, with step=passkey_options)."""
    return (
        f"<p>to continue to <strong>{html.escape(client.name)}</strong></p>{_error(error)}"
        '<form method="post" action="/oauth2/authorize">'
        + _hidden(request=request, csrf=csrf, step="password")
        + '<label>Email <input type="email" name="email" autocomplete="username" required '
        f'value="{html.escape(login_hint)}"></label>'
        '<label>Password <input type="password" name="password" '
        'autocomplete="current-password" required></label>'
        '<button type="submit">Sign in</button></form>'
        + (
            _passkey_form(
                "Sign in with a passkey",
                _hidden(
                    request=request, csrf=csrf, step="passkey", challenge_token="", credential=""
                ),
            )
            if passkeys
            else ""
        )
    )


def second_factor(
    request: str,
    csrf: str,
    mfa_token: str,
    error: str | None = None,
    *,
    totp: bool = True,
    passkey_options: dict[str, Any] | None = None,
) -> str:
    """The code form (an app's code where the user has an app, a recovery code always);
    with `passkey_options` (the mfaToken's), a passkey button too."""
    passkey = passkey_options is not None
    code = (
        '<label>Code from your app <input name="totp_code" inputmode="numeric" '
        'autocomplete="one-time-code" maxlength="12"></label>'
        if totp
        else ""
    )
    return (
        f"<p>{_SECOND_FACTOR_WORDS[totp, passkey]}</p>{_error(error)}"
        '<form method="post" action="/oauth2/authorize">'
        + _hidden(request=request, csrf=csrf, step="mfa", mfa_token=mfa_token)
        + code
        + f"<label>{'Or a recovery code' if totp else 'A recovery code'} "
        '<input name="recovery_code" autocomplete="off" maxlength="40"></label>'
        '<button type="submit">Continue</button></form>'
        + (
            _passkey_form(
                "Use a passkey",
                _hidden(request=request, csrf=csrf, step="mfa", mfa_token=mfa_token, passkey=""),
                passkey_options,
            )
            if passkey_options is not None
            else ""
        )
    )


_SECOND_FACTOR_WORDS = {  # (an app, a passkey offered)
    (True, False): "Enter the code from your authenticator app, or one of your recovery codes.",
    (True, True): "Enter the code from your authenticator app or one of your recovery codes, "
    "or use your passkey.",
    (False, True): "Use your passkey, or enter one of your recovery codes.",
    (False, False): "Enter one of your recovery codes.",
}


def _passkey_form(label: str, fields: str, options: dict[str, Any] | None = None) -> str:
    """Hidden without the script; the script fills `credential` (or `passkey`) with the
    browser's answer and sends the form."""
    given = (
        f' data-options="{html.escape(json.dumps(options, separators=(",", ":")))}"'
        if options is not None
        else ""
    )
    return (
        '<section id="passkey" hidden><p>or</p>'
        f'<form method="post" action="/oauth2/authorize"{given}>{fields}'
        f'<button type="submit">{html.escape(label)}</button></form>'
        '<p id="passkey-status" class="error" role="alert" hidden></p></section>'
        '<script type="module" src="/pages/sign-in.js"></script>'
    )


def consent(client: OAuthClient, scopes: list[str], request: str, csrf: str, email: str) -> str:
    items = "".join(
        f"<li>{html.escape(SCOPE_WORDS.get(s, f'Use your account for {s}'))}</li>" for s in scopes
    )
    return (
        f"<p><strong>{html.escape(client.name)}</strong> would like to:</p><ul>{items}</ul>"
        f"<p>You are signed in as {html.escape(email)}.</p>"
        '<form method="post" action="/oauth2/authorize">'
        + _hidden(request=request, csrf=csrf, step="consent")
        + '<button type="submit" name="decision" value="allow">Allow</button> '
        '<button type="submit" name="decision" value="deny">Deny</button></form>'
    )


def sign_out(csrf: str, fields: dict[str, str]) -> str:
    return (
        "<p>Sign out of your account here?</p>"
        '<form method="post" action="/oauth2/logout">'
        + _hidden(csrf=csrf, confirm="yes", **fields)
        + '<button type="submit">Sign out</button></form>'
    )


def message(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"
