"""/oauth2/token, /oauth2/userinfo, /oauth2/revoke, /oauth2/introspect, /oauth2/logout and
the discovery document, which says exactly what is supported."""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from identity.container import Container
from identity.oauth2 import pages
from identity.oauth2.authorize import AuthorizeEndpoint
from identity.oauth2.common import (
    NO_STORE,
    credentials,
    csrf_cookie,
    error_response,
    form_of,
    json,
    new_csrf,
    peer,
    session_cookie,
    set_cookie,
    single,
)
from identity.security.dpop import ALGORITHMS as DPOP_ALGORITHMS
from identity.security.dpop import InvalidProof, Proof
from identity.services import events
from identity.services.oauth_clients import STANDARD_SCOPES
from identity.services.oauth_common import OAuthError, hosted_session


def discovery(container: Container) -> dict[str, Any]:
    settings = container.settings
    base = settings.public_url.rstrip("/")
    secret_methods = ["client_secret_basic", "client_secret_post"]
    return {
        "issuer": settings.issuer,
        "authorization_endpoint": f"{base}/oauth2/authorize",
        "token_endpoint": f"{base}/oauth2/token",
        "userinfo_endpoint": f"{base}/oauth2/userinfo",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "revocation_endpoint": f"{base}/oauth2/revoke",
        "introspection_endpoint": f"{base}/oauth2/introspect",
        "end_session_endpoint": f"{base}/oauth2/logout",
        "scopes_supported": list(STANDARD_SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": [*secret_methods, "none"],
        "revocation_endpoint_auth_methods_supported": secret_methods,
        "introspection_endpoint_auth_methods_supported": secret_methods,
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login", "consent"],
        "acr_values_supported": ["aal1", "aal2"],
        "claims_supported": [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "amr",
            "acr",
            "azp",
            "sid",
            "email",
            "email_verified",
            "name",
            "given_name",
            "family_name",
            "updated_at",
        ],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "authorization_response_iss_parameter_supported": True,
        "dpop_signing_alg_values_supported": sorted(DPOP_ALGORITHMS),
    }


def oauth2_routes(container: Container) -> list[Route]:
    rt = container.runtime
    settings = container.settings
    tokens = container.oauth_tokens
    document = discovery(container)

    async def configuration(_: Request) -> Response:
        return JSONResponse(document, headers={"Cache-Control": "public, max-age=3600"})

    def checked_proof(request: Request, access_token: str | None = None) -> Proof | None:
        """The request's DPoP proof for this endpoint, checked; None without one."""
        proofs = request.headers.getlist("DPoP")
        if not proofs:
            return None
        url = f"{settings.public_url.rstrip('/')}{request.url.path}"
        try:
            return container.dpop.verify(
                proofs, method=request.method, url=url, access_token=access_token
            )
        except InvalidProof as exc:
            status = 400 if access_token is None else 401
            raise OAuthError(
                "invalid_dpop_proof", f"The DPoP proof is not usable: {exc}.", status
            ) from None

    async def token(request: Request) -> Response:
        try:
            form = single(await form_of(request))
            proof = checked_proof(request)
            binding = None if proof is None else container.dpop.binding(proof)
            async with container.unit_of_work(peer(request)) as uow:
                client = await tokens.client(uow, credentials(request, form))
                return json(await tokens.grant(uow, client, form, peer(request), binding))
        except OAuthError as exc:
            return error_response(exc)

    async def userinfo(request: Request) -> Response:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        try:
            if scheme.lower() not in ("bearer", "dpop") or not value.strip():
                raise OAuthError(
                    "invalid_token", "Send the access token as a Bearer or DPoP token.", 401
                )
            token = value.strip()
            proof = checked_proof(request, token) if scheme.lower() == "dpop" else None
            if scheme.lower() == "dpop" and proof is None:
                raise OAuthError("invalid_dpop_proof", "A DPoP proof is required.", 401)
            async with container.reading() as uow:
                answer = await tokens.userinfo(uow, token, None if proof is None else proof.jkt)
            if proof is not None:  # recorded once the token is known good
                try:
                    await container.dpop.record(proof)
                except InvalidProof as exc:
                    raise OAuthError("invalid_dpop_proof", f"{exc}.", 401) from None
            return json(answer)
        except OAuthError as exc:
            return error_response(exc)

    async def revoke(request: Request) -> Response:
        try:
            form = single(await form_of(request))
            async with container.unit_of_work(peer(request)) as uow:
                client = await tokens.client(uow, credentials(request, form), confidential=True)
                if "token" not in form:
                    raise OAuthError("invalid_request", "token is required.")
                await tokens.revoke(uow, client, form["token"])
            return Response(status_code=200, headers=NO_STORE)
        except OAuthError as exc:
            return error_response(exc)

    async def introspect(request: Request) -> Response:
        try:
            form = single(await form_of(request))
            async with container.unit_of_work(peer(request)) as uow:
                client = await tokens.client(uow, credentials(request, form), confidential=True)
                if "token" not in form:
                    raise OAuthError("invalid_request", "token is required.")
                return json(await tokens.introspect(uow, client, form["token"]))
        except OAuthError as exc:
            return error_response(exc)

    async def logout(request: Request) -> Response:
        """RP-initiated logout: with an ID token of ours whose session is this browser's,
        at once; otherwise after the person confirms (a link alone cannot sign anyone out)."""
        csrf = request.cookies.get(csrf_cookie(settings)) or new_csrf()
        try:
            if request.method == "GET":
                fields = {k: v for k, v in request.query_params.items() if v}
            else:
                fields = single(await form_of(request))
        except OAuthError as exc:
            return pages.page(
                settings.product_name,
                "Something went wrong",
                pages.message(exc.description),
                status=400,
            )
        async with container.unit_of_work(peer(request)) as uow:
            hosted = await hosted_session(rt, uow, request.cookies.get(session_cookie(settings)))
            hint = tokens.logout_hint(fields.get("id_token_hint", ""))
            named = fields.get("client_id")
            if hint is not None and named is not None and named != hint[0]:
                # RP-Initiated Logout 1.0, section 2: both given, they must agree.
                body = pages.message("The ID token was issued to another app.")
                return pages.page(settings.product_name, "Something went wrong", body, status=400)
            # The hint's client, or the one named; never the named one in place of a hint's.
            client_id = hint[0] if hint is not None else named
            client = await container.oauth_clients.find(uow, client_id) if client_id else None
            target = fields.get("post_logout_redirect_uri")
            if target is not None and (
                client is None or target not in client.post_logout_redirect_uris
            ):
                body = pages.message("The app asked to return to an address it has not registered.")
                return pages.page(settings.product_name, "Something went wrong", body, status=400)
            sent = request.cookies.get(csrf_cookie(settings))
            confirmed = (
                request.method == "POST"
                and fields.get("confirm") == "yes"
                and bool(sent)  # an empty form value must not match a missing cookie
                and hmac.compare_digest(fields.get("csrf", "").encode(), (sent or "").encode())
            )
            ours = hosted is not None and hint is not None and hint[1] == str(hosted.session.id)
            if hosted is not None and not (confirmed or ours):
                keep = {
                    k: v
                    for k, v in fields.items()
                    if k in ("post_logout_redirect_uri", "state", "client_id", "id_token_hint")
                }
                confirm = pages.page(
                    settings.product_name,
                    "Sign out",
                    pages.sign_out(csrf, keep),
                    redirect_origin=pages.origin(target) if target else None,
                )
                set_cookie(confirm, settings, csrf_cookie(settings), csrf, None)
                return confirm
            if hosted is not None:
                now = rt.clock.now()
                await uow.sessions.revoke(hosted.session.id, now, "logout")
                events.sessions_ended(uow.events, hosted.user.id, [hosted.session.id], "logout")
                uow.audit.record(
                    "oauth.logout",
                    actor=hosted.user.id,
                    subject=hosted.user.id,
                    session_id=str(hosted.session.id),
                    client_id=client.client_id if client else None,
                )
                await uow.commit()
        if target is not None:
            state = urlencode({"state": fields["state"]}) if "state" in fields else ""
            joined = f"{target}{'&' if '?' in target else '?'}{state}" if state else target
            response: Response = RedirectResponse(joined, status_code=303)
        else:
            response = pages.page(
                settings.product_name, "Signed out", pages.message("You are signed out.")
            )
        response.delete_cookie(
            session_cookie(settings),
            path="/",
            secure=settings.secure_cookies,
            httponly=True,
            samesite="lax",
        )
        return response

    return [
        Route("/.well-known/openid-configuration", configuration, methods=["GET"]),
        Route("/oauth2/authorize", AuthorizeEndpoint(container).handle, methods=["GET", "POST"]),
        Route("/oauth2/token", token, methods=["POST"]),
        Route("/oauth2/userinfo", userinfo, methods=["GET", "POST"]),
        Route("/oauth2/revoke", revoke, methods=["POST"]),
        Route("/oauth2/introspect", introspect, methods=["POST"]),
        Route("/oauth2/logout", logout, methods=["GET", "POST"]),
    ]
