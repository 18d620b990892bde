"""GET/POST /oauth2/authorize with the hosted pages, and /oauth2/logout (RP-initiated).

A form of a hosted page carries the request's token and a CSRF value that must equal the
CSRF cookie (double submit; the cookie is SameSite=Lax and __Host- where https, so another
site can neither send nor set it). The passkey button's script posts the same way, for the
options of a passkey sign-in (step=passkey_options, answered in JSON), then sends the form
with the browser's answer (step=passkey). That challenge is bound to the authorization
request and to the browser's CSRF value: it serves no other page, browser or GraphQL's
finishPasskeyLogin. The second-factor page carries passkey options of its mfaToken (a new
WebAuthn challenge each time the page is shown) and sends the answer as step=mfa. Where the
pages' origin cannot use passkeys, the passkey steps are refused, whatever is posted.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from identity.container import Container
from identity.oauth2 import pages
from identity.oauth2.common import (
    csrf_cookie,
    form_of,
    new_csrf,
    peer,
    session_cookie,
    set_cookie,
)
from identity.security.origins import origin_of
from identity.services.auth import AuthResult, MfaPending
from identity.services.errors import (
    AccountDisabled,
    EmailNotVerified,
    InvalidCredentials,
    InvalidToken,
    PasskeysOff,
    RateLimited,
    ValidationFailed,
)
from identity.services.oauth_authorize import (
    BadClient,
    NeedsLogin,
    Outcome,
    Pending,
    Redirect,
)
from identity.services.oauth_common import (
    Hosted,
    OAuthError,
    hosted_cookie_value,
    hosted_session,
)
from identity.services.uow import UnitOfWork

_EXPIRED = "This sign-in took too long or was already used. Go back to the app and start again."
_PASSKEY_EXPIRED = "This passkey sign-in has expired or was started on another page. Try again."
_FORM_EXPIRED = "The form expired. Go back to the app and start again."
_NO_PASSKEYS = "Passkeys are not offered on this page."


class AuthorizeEndpoint:
    def __init__(self, container: Container) -> None:
        self.container = container
        self.settings = container.settings
        self.rt = container.runtime
        self.service = container.authorize
        # Passkeys are offered where the pages' own origin may use them.
        self.origin = origin_of(self.settings.public_url)
        self.passkeys = container.passkeys.usable_at(self.origin)

    async def handle(self, request: Request) -> Response:
        csrf = request.cookies.get(csrf_cookie(self.settings)) or new_csrf()
        try:
            if request.method == "GET":
                params = {k: request.query_params.getlist(k) for k in request.query_params}
                response = await self._start(request, params, csrf)
            else:
                form = await form_of(request)
                if "step" not in form:  # OpenID Connect allows the request as a POST
                    response = await self._start(request, form, csrf)
                else:
                    response = await self._step(request, form, csrf)
        except OAuthError as exc:
            response = self._error(exc.description, 400)
        if request.cookies.get(csrf_cookie(self.settings)) != csrf:
            set_cookie(response, self.settings, csrf_cookie(self.settings), csrf, None)
        return response

    async def _start(self, request: Request, params: dict[str, list[str]], csrf: str) -> Response:
        async with self.container.unit_of_work(peer(request)) as uow:
            hosted = await self._hosted(request, uow)
            try:
                outcome = await self.service.start(uow, params, hosted)
            except BadClient as exc:
                return self._error(str(exc), 400)
            return self._answer(outcome, csrf, hosted, status=302)

    async def _step(self, request: Request, form: dict[str, list[str]], csrf: str) -> Response:
        fields = {k: v[0] for k, v in form.items()}
        given = fields.get("csrf", "")
        step = fields["step"]
        if not request.cookies.get(csrf_cookie(self.settings)) or not hmac.compare_digest(
            given.encode(), csrf.encode()
        ):
            if step == "passkey_options":
                return JSONResponse({"error": _FORM_EXPIRED}, 403, _NO_STORE)
            return self._error(_FORM_EXPIRED, 403)
        if step in ("passkey_options", "passkey") and not self.passkeys:
            if step == "passkey_options":
                return JSONResponse({"error": _NO_PASSKEYS}, 404, _NO_STORE)
            return self._error(_NO_PASSKEYS, 404)
        async with self.container.unit_of_work(peer(request)) as uow:
            try:
                pending = await self.service.resume(uow, fields.get("request", ""))
                if step == "passkey_options":
                    return await self._passkey_options(request, uow, _binding(pending, csrf))
                if step in ("password", "mfa", "passkey"):
                    return await self._sign_in(request, uow, pending, fields, csrf)
                hosted = await self._hosted(request, uow)
                if step != "consent" or hosted is None:
                    return self._error(_EXPIRED, 400)
                allow = fields.get("decision") == "allow"
                outcome = await self.service.consented(uow, pending, hosted, allow)
            except InvalidToken:  # expired, answered already, or kept for another page
                if step == "passkey_options":
                    return JSONResponse({"error": _EXPIRED}, 400, _NO_STORE)
                return self._error(_EXPIRED, 400)
            return self._answer(outcome, csrf, hosted, status=303)

    async def _passkey_options(self, request: Request, uow: UnitOfWork, binding: str) -> Response:
        """A passkey sign-in's challenge, limited as startPasskeyLogin's, for this page."""
        try:
            started = await self.container.passkeys.start_login(
                uow, peer(request), bound_to=binding
            )
        except RateLimited as exc:
            error = {"error": f"{exc.message} ({exc.retry_after} s)"}
            return JSONResponse(error, 429, {**_NO_STORE, "Retry-After": str(exc.retry_after)})
        except PasskeysOff as exc:
            return JSONResponse({"error": exc.message}, 404, _NO_STORE)
        answer = {"challenge_token": started.token, "options": started.options}
        return JSONResponse(answer, 200, _NO_STORE)

    async def _sign_in(
        self,
        request: Request,
        uow: UnitOfWork,
        pending: Pending,
        fields: dict[str, str],
        csrf: str,
    ) -> Response:
        token = fields.get("request", "")
        client = peer(request)
        step = fields["step"]
        try:
            if step == "password":
                result = await self.container.auth.login(
                    uow, fields.get("email", ""), fields.get("password", ""), client
                )
            elif step == "passkey":
                result = await self.container.passkeys.finish_login(
                    uow,
                    fields.get("challenge_token", ""),
                    fields.get("credential", ""),
                    client,
                    bound_to=_binding(pending, csrf),
                    origin=self.origin,
                )
            else:
                totp = fields.get("totp_code", "").strip() or None
                recovery = None if totp else fields.get("recovery_code", "").strip() or None
                passkey = None
                if self.passkeys and not (totp or recovery):
                    passkey = fields.get("passkey") or None
                result = await self.container.second_step.verify(
                    uow,
                    fields.get("mfa_token", ""),
                    client,
                    totp_code_given=totp,
                    recovery_code_given=recovery,
                    passkey_given=passkey,
                    origin=self.origin,
                )
        except (ValidationFailed, InvalidCredentials, AccountDisabled, EmailNotVerified) as exc:
            return await self._again(uow, pending, token, csrf, fields, _words(exc))
        except RateLimited as exc:
            error = f"{exc.message} ({exc.retry_after} s)"
            return await self._again(uow, pending, token, csrf, fields, error)
        except PasskeysOff as exc:
            return await self._again(uow, pending, token, csrf, fields, exc.message)
        except InvalidToken:
            if step == "passkey":  # the passkey's challenge, not the request: try again
                return await self._again(uow, pending, token, csrf, fields, _PASSKEY_EXPIRED)
            return self._error(_EXPIRED, 400)
        if isinstance(result, MfaPending):
            options = result.passkey_options if self.passkeys else None
            body = pages.second_factor(
                token,
                csrf,
                result.mfa_token,
                totp="TOTP" in result.methods,
                passkey_options=options,
            )
            return self._page("Two-step verification", body, pending)
        return await self._signed_in(request, uow, pending, result, csrf)

    async def _signed_in(
        self, request: Request, uow: UnitOfWork, pending: Pending, result: AuthResult, csrf: str
    ) -> Response:
        cookie = hosted_cookie_value(self.rt, result.session_id)
        hosted = await hosted_session(self.rt, uow, cookie)
        if hosted is None:  # ended in the meantime
            return self._error(_EXPIRED, 400)
        previous = await self._hosted(request, uow)
        if previous is not None and previous.session.id != hosted.session.id:
            await uow.sessions.revoke(previous.session.id, self.rt.clock.now(), "logout")
        outcome = await self.service.proceed(uow, pending, hosted, fresh=True)
        response = self._answer(outcome, csrf, hosted, status=303)
        max_age = int((result.session_ends - self.rt.clock.now()).total_seconds())
        set_cookie(response, self.settings, session_cookie(self.settings), cookie, max_age)
        return response

    async def _again(
        self,
        uow: UnitOfWork,
        pending: Pending,
        token: str,
        csrf: str,
        fields: dict[str, str],
        error: str,
    ) -> Response:
        try:  # read again: a refused sign-in rolls back, which expires what was loaded
            pending = await self.service.resume(uow, token)
        except InvalidToken:
            return self._error(_EXPIRED, 400)
        if fields["step"] == "mfa":
            mfa_token = fields.get("mfa_token", "")
            # A passkey over a new challenge: an answer to the last one is void.
            totp, options = await self.container.second_step.offer(
                uow, mfa_token, passkeys=self.passkeys
            )
            body = pages.second_factor(
                token, csrf, mfa_token, error, totp=totp, passkey_options=options
            )
            return self._page("Two-step verification", body, pending, status=400)
        email = fields.get("email", "")
        body = pages.sign_in(pending.client, token, csrf, email, error, passkeys=self.passkeys)
        return self._page("Sign in", body, pending, status=400)

    async def _hosted(self, request: Request, uow: UnitOfWork) -> Hosted | None:
        return await hosted_session(
            self.rt, uow, request.cookies.get(session_cookie(self.settings))
        )

    def _answer(
        self, outcome: Outcome, csrf: str, hosted: Hosted | None, *, status: int
    ) -> Response:
        if isinstance(outcome, Redirect):
            return RedirectResponse(
                outcome.url, status_code=status, headers={"Cache-Control": "no-store"}
            )
        origins = self._origins(outcome.client.redirect_uris)
        if isinstance(outcome, NeedsLogin):
            body = pages.sign_in(
                outcome.client,
                outcome.request,
                csrf,
                outcome.login_hint,
                passkeys=self.passkeys,
            )
            return pages.page(self.settings.product_name, "Sign in", body, redirect_origin=origins)
        assert hosted is not None
        email = hosted.user.email
        body = pages.consent(outcome.client, outcome.scopes, outcome.request, csrf, email)
        title = f"Allow {outcome.client.name}?"
        return pages.page(self.settings.product_name, title, body, redirect_origin=origins)

    def _origins(self, uris: list[str]) -> str:
        return " ".join(sorted({pages.origin(uri) for uri in uris}))

    def _page(self, title: str, body: str, pending: Pending, *, status: int = 200) -> Response:
        return pages.page(
            self.settings.product_name,
            title,
            body,
            status=status,
            redirect_origin=self._origins(pending.client.redirect_uris),
        )

    def _error(self, text: str, status: int) -> Response:
        return pages.page(
            self.settings.product_name, "Something went wrong", pages.message(text), status=status
        )


_NO_STORE = {"Cache-Control": "no-store"}


def _binding(pending: Pending, csrf: str) -> str:
    """What a hosted passkey challenge is bound to: this request, in this browser."""
    return f"{pending.row_id}\0{csrf}"


def _words(exc: Exception) -> str:
    if isinstance(exc, ValidationFailed):
        return " ".join(p.message for p in exc.fields)
    return getattr(exc, "message", "The sign-in failed.")
