// Verify identity's access tokens in a Node.js service, with jose.
//
// Copy this file into your service (it needs the `jose` package). `createVerifier` returns a
// function that checks a token's signature against identity's public keys (its JWKS, fetched
// and cached by jose), pins the algorithm, and checks the issuer, the audience, the expiry
// and the type (`at+jwt`), then answers the caller's identity.
//
// A token bound to a DPoP key (its `cnf.jkt` claim, RFC 9449) is accepted only with a fresh
// proof by that key for this request: without the check, a stolen DPoP-bound token would
// work here as a bearer token.
import { createHash } from "node:crypto";

import { EmbeddedJWK, calculateJwkThumbprint, createRemoteJWKSet, errors, jwtVerify } from "jose";

// The header `typ` of identity's access tokens (RFC 9068).
export const ACCESS_TOKEN_TYPE = "at+jwt";
// Without these claims a token is refused (jose requires iss and aud itself once they are
// expected).
const REQUIRED_CLAIMS = ["sub", "exp", "iat", "sid"];
// DPoP proofs: asymmetric algorithms only, and how old a proof may be (seconds).
const DPOP_ALGORITHMS = ["ES256", "ES384", "RS256", "PS256", "EdDSA"];
const DPOP_MAX_AGE = 60;

export class InvalidToken extends Error {}
export class KeysUnavailable extends Error {}

export function createVerifier({
  issuer, // IDENTITY_JWT_ISSUER (by default identity's IDENTITY_PUBLIC_URL)
  audience, // IDENTITY_JWT_AUDIENCE (by default "identity")
  jwksUrl = `${issuer.replace(/\/$/, "")}/.well-known/jwks.json`,
  algorithm = "RS256", // IDENTITY_JWT_ALGORITHM, fixed here, never read from the token
  clockTolerance = 30, // seconds
  jwksCacheSeconds = 300, // at most IDENTITY_JWKS_MAX_AGE: a new key is known before it signs
}) {
  // A kid the cached JWKS does not have refetches it (once per 30 s cooldown).
  const jwks = createRemoteJWKSet(new URL(jwksUrl), { cacheMaxAge: jwksCacheSeconds * 1000 });
  const seen = new Map(); // DPoP proofs seen, by jti (one process; see the guide)

  // dpop: {proof, method, url} of a request with `Authorization: DPoP <token>`, else null.
  return async function verify(token, dpop = null) {
    let payload;
    try {
      ({ payload } = await jwtVerify(token, jwks, {
        issuer,
        audience,
        algorithms: [algorithm],
        typ: ACCESS_TOKEN_TYPE,
        clockTolerance,
        requiredClaims: REQUIRED_CLAIMS,
      }));
    } catch (error) {
      if (error instanceof errors.JWKSTimeout || !(error instanceof errors.JOSEError)) {
        // The JWKS could not be fetched: the token can be neither trusted nor refused.
        throw new KeysUnavailable(error.message, { cause: error });
      }
      throw new InvalidToken(`${error.code}: ${error.message}`, { cause: error });
    }
    const jkt = payload.cnf?.jkt ?? null;
    if ((jkt === null) !== (dpop === null)) {
      throw new InvalidToken("a DPoP-bound token needs the DPoP scheme, a bearer token Bearer");
    }
    if (jkt !== null) await checkDpop(dpop, token, jkt);
    return accept(payload);
  };

  // RFC 9449 §4.3: the proof is signed by the key `jkt` names, for this request and this
  // token, recent, and not seen before.
  async function checkDpop({ proof, method, url }, token, jkt) {
    let claims, header;
    try {
      ({ payload: claims, protectedHeader: header } = await jwtVerify(proof, EmbeddedJWK, {
        typ: "dpop+jwt",
        algorithms: DPOP_ALGORITHMS,
        maxTokenAge: DPOP_MAX_AGE,
        clockTolerance,
        requiredClaims: ["htm", "htu", "iat", "jti", "ath"],
      }));
    } catch (error) {
      throw new InvalidToken(`bad DPoP proof: ${error.message}`, { cause: error });
    }
    if (["d", "p", "q", "k"].some((member) => member in header.jwk)) {
      throw new InvalidToken("the proof must carry a public key");
    }
    if ((await calculateJwkThumbprint(header.jwk, "sha256")) !== jkt) {
      throw new InvalidToken("the proof is by another key than the token's");
    }
    if (claims.htm !== method || claims.htu.split("?")[0] !== url) {
      throw new InvalidToken("the proof is for another request");
    }
    if (claims.ath !== createHash("sha256").update(token).digest("base64url")) {
      throw new InvalidToken("the proof is for another token");
    }
    const now = Date.now() / 1000;
    for (const [jti, until] of seen) if (until <= now) seen.delete(jti);
    if (seen.has(claims.jti)) throw new InvalidToken("the proof was used already");
    seen.set(claims.jti, now + DPOP_MAX_AGE + 2 * clockTolerance);
  }
}

// The one place that reads claims: a check this service needs goes here.
function accept(claims) {
  const roles = claims.roles ?? [];
  if (!Array.isArray(roles) || !roles.every((role) => typeof role === "string")) {
    throw new InvalidToken("roles must be a list of names");
  }
  const aal = claims.aal ?? 1; // a token without it proves one factor at most
  if (aal !== 1 && aal !== 2) throw new InvalidToken("aal must be 1 or 2");
  const amr = claims.amr ?? [];
  if (!Array.isArray(amr) || !amr.every((method) => typeof method === "string")) {
    throw new InvalidToken("amr must be a list of methods");
  }
  return {
    userId: claims.sub,
    sessionId: claims.sid,
    // Advisory: the user's roles when the token was issued (at most its lifetime ago). A role
    // that requires MFA is listed only in tokens of sessions at aal 2.
    roles: new Set(roles),
    // Assurance: 1 for one factor, 2 for two (NIST SP 800-63B); how the user signed in (RFC
    // 8176: "pwd", "otp", "mfa", ...).
    aal,
    amr: new Set(amr),
    expiresAt: claims.exp,
    claims,
  };
}

// {scheme, token} of an `Authorization: Bearer …` or `DPoP …` header, or null.
export function accessToken(header) {
  const [scheme, token] = (header ?? "").split(" ", 2);
  const lower = scheme?.toLowerCase();
  return (lower === "bearer" || lower === "dpop") && token ? { scheme: lower, token: token.trim() } : null;
}
