// Verify identity's access tokens in a Node.js service, with jose.
//
// Copy this file into your service (it needs the `jose` package). `createVerifier` returns a
// function that checks a token's signature against identity's public keys (its JWKS, fetched
// and cached by jose), pins the algorithm, and checks the issuer, the audience, the expiry
// and the type (`at+jwt`), then answers the caller's identity.
import { createRemoteJWKSet, errors, jwtVerify } from "jose";

// The header `typ` of identity's access tokens (RFC 9068).
export const ACCESS_TOKEN_TYPE = "at+jwt";
// Without these claims a token is refused (jose requires iss and aud itself once they are
// expected).
const REQUIRED_CLAIMS = ["sub", "exp", "iat", "sid"];

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

  return async function verify(token) {
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
    return accept(payload);
  };
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

// The token of an `Authorization: Bearer …` header, or null.
export function bearerToken(header) {
  const [scheme, token] = (header ?? "").split(" ", 2);
  return scheme?.toLowerCase() === "bearer" && token ? token.trim() : null;
}
