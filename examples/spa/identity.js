// A tiny client for identity's GraphQL API, for a browser app on another origin.
//
// Copy this file into your app. It has no dependencies and does four things:
//
// 1. Sends GraphQL requests: always `credentials: "include"` (so the browser sends identity's
//    refresh cookie), JSON, and the `X-Requested-With` header that identity demands of every
//    request that uses the cookie (a CSRF defence: plain HTML forms cannot send that header,
//    and other sites cannot send it without a CORS preflight that identity refuses).
// 2. Keeps the access token in memory only: never in localStorage, sessionStorage or a cookie
//    that scripts can read. A page reload forgets it; `restore()` gets a new one.
// 3. Refreshes the access token before it expires: a timer fires when half of its lifetime
//    (`expiresIn`) has passed. The refresh token itself is an HttpOnly cookie that identity
//    sets when it runs with IDENTITY_REFRESH_COOKIE=true; this code never sees it.
// 4. Refreshes single-flight: however many calls need a new token at the same moment (say
//    two requests that both get UNAUTHENTICATED), one refresh request goes out and they all
//    wait for it. Every refresh rotates the cookie, so parallel refreshes would be wasteful
//    (identity tolerates them for a few seconds, for several tabs, but one is enough).
// 5. Binds the session to this browser with DPoP (RFC 9449, see dpop.js): every request
//    carries a proof signed by a non-extractable key kept in IndexedDB, so the access token
//    and the refresh cookie are of no use anywhere else. `authorization(method, url)` gives
//    the headers for your own APIs, which check the proof (docs: the DPoP guide).
//
// Events (the client is an EventTarget):
//   "token"     a new access token: detail { reason, expiresAt } where reason is "sign-in",
//               "reload" (restore), "timer" (before expiry), "expired" (found expired
//               before a request) or "rejected" (identity refused the token)
//   "signedout" detail { reason }: "sign-out" or "session-ended" (the refresh cookie was
//               refused: the session was ended elsewhere, expired, or never existed)

// Refresh when this share of the token's lifetime has passed.
const REFRESH_AT = 0.5;
// A token this close to its expiry is refreshed before it is sent.
const EXPIRY_MARGIN_MS = 5_000;
// After a refresh that failed for lack of network, try again this much later.
const RETRY_MS = 10_000;

// Result unions are matched on `__typename`; `... on Error { message }` covers the message
// of every error type. `refreshToken` is selected only to check that it is null (cookie mode).
const LOGIN = /* GraphQL */ `
  mutation SignIn($input: LoginInput!) {
    login(input: $input) {
      __typename
      ... on AuthPayload { accessToken tokenType expiresIn refreshToken }
      ... on MfaRequired { mfaToken methods expiresIn passkeyOptions }
      ... on ValidationError { message fields { field code message } }
      ... on RateLimited { message retryAfter }
      ... on Error { message }
    }
  }`;

// The second step of a sign-in with MFA on: the mfaToken from `login`, and one code.
const VERIFY_MFA = /* GraphQL */ `
  mutation VerifyMfa($input: VerifyMfaInput!) {
    verifyMfa(input: $input) {
      __typename
      ... on AuthPayload { accessToken tokenType expiresIn refreshToken }
      ... on ValidationError { message fields { field code message } }
      ... on RateLimited { message retryAfter }
      ... on Error { message }
    }
  }`;

// Sign-in with another provider. The start answers the provider's URL; the way back ends at
// this app's page with `#code=…`, which only this browser can finish: the code is worthless
// without the verifier kept in sessionStorage (this tab) between the two.
const START_EXTERNAL = /* GraphQL */ `
  mutation StartProviderSignIn($input: StartExternalLoginInput!) {
    startExternalLogin(input: $input) {
      __typename
      ... on StartExternalLoginSuccess { authorizationUrl }
      ... on ValidationError { message fields { field code message } }
      ... on RateLimited { message retryAfter }
      ... on Error { message }
    }
  }`;

const FINISH_EXTERNAL = /* GraphQL */ `
  mutation FinishProviderSignIn($input: FinishExternalLoginInput!) {
    finishExternalLogin(input: $input) {
      __typename
      ... on AuthPayload { accessToken tokenType expiresIn refreshToken }
      ... on MfaRequired { mfaToken methods expiresIn passkeyOptions }
      ... on RateLimited { message retryAfter }
      ... on Error { message }
    }
  }`;

import { forgetKeyPair, loadKeyPair, makeProof } from "./dpop.js";
// Sign-in with a passkey alone: no email; the browser offers the passkeys it has for this
// site. The challenge token serves one answer.
const START_PASSKEY_LOGIN = /* GraphQL */ `
  mutation StartPasskeySignIn {
    startPasskeyLogin {
      __typename
      ... on StartPasskeyLoginSuccess { challengeToken options }
      ... on RateLimited { message retryAfter }
    }
  }`;

const FINISH_PASSKEY_LOGIN = /* GraphQL */ `
  mutation FinishPasskeySignIn($input: FinishPasskeyLoginInput!) {
    finishPasskeyLogin(input: $input) {
      __typename
      ... on AuthPayload { accessToken tokenType expiresIn refreshToken }
      ... on ValidationError { message fields { field code message } }
      ... on RateLimited { message retryAfter }
      ... on Error { message }
    }
  }`;

/** Whether this browser can use passkeys (WebAuthn with the JSON helpers). */
export function passkeysSupported() {
  return (
    typeof PublicKeyCredential !== "undefined" &&
    typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function"
  );
}

/** `navigator.credentials.create()` with identity's creation options; the JSON to send back. */
export async function createPasskey(options) {
  const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(options);
  const credential = await navigator.credentials.create({ publicKey });
  return credential.toJSON();
}

/** `navigator.credentials.get()` with identity's request options; the JSON to send back.
 * `mediation: "conditional"` waits for the user to pick a passkey from the autofill list. */
export async function getPasskey(options, { mediation, signal } = {}) {
  const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(options);
  const credential = await navigator.credentials.get({ publicKey, mediation, signal });
  return credential.toJSON();
}

const PENDING = "identity.external-sign-in"; // sessionStorage: {verifier, link}, while away

function base64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replaceAll("+", "-")
    .replaceAll("/", "_")
    .replace(/=+$/, "");
}

// `input: {}`: no token in the body, so identity reads its HttpOnly cookie.
const REFRESH = /* GraphQL */ `
  mutation Refresh {
    refreshToken(input: {}) {
      __typename
      ... on AuthPayload { accessToken tokenType expiresIn refreshToken }
      ... on InvalidToken { message }
    }
  }`;

// Ends the session of the cookie; identity clears the cookie whatever the outcome.
const LOGOUT = /* GraphQL */ `
  mutation SignOut {
    logout(input: {}) {
      __typename
      ... on LogoutSuccess { message }
      ... on InvalidToken { message }
    }
  }`;

/** A request that did not produce data: a GraphQL error (with its `extensions.code`, e.g.
 * UNAUTHENTICATED or CSRF_CHECK_FAILED), an HTTP refusal, or no answer at all. */
export class IdentityError extends Error {
  constructor(message, { code = null, status = null, requestId = null } = {}) {
    super(message);
    this.name = "IdentityError";
    this.code = code; // null for a network failure
    this.status = status;
    this.requestId = requestId; // quote it when reporting a problem: identity's log has it
  }
}

export class IdentityClient extends EventTarget {
  #url;
  #fetch;
  #token = null;
  #tokenType = "Bearer"; // "DPoP" once identity has bound the session to this browser's key
  #dpop; // whether requests carry DPoP proofs
  #keyPair = null; // the DPoP key pair, loaded (or made) at the first request
  #expiresAt = 0; // Date.now() milliseconds
  #timer = null;
  #refreshing = null; // the refresh in flight, shared by everyone who needs it
  #generation = 0; // bumped at sign-out, so a refresh that finishes later is ignored

  /**
   * @param {string} url  identity's GraphQL endpoint, e.g. "https://id.example.com/graphql"
   * @param {{fetch?: typeof fetch, dpop?: boolean}} options  `fetch`: a replacement
   *   (logging, tests); `dpop`: bind sessions to this browser (default true)
   */
  constructor(url, { fetch = (...args) => globalThis.fetch(...args), dpop = true } = {}) {
    super();
    this.#url = url;
    this.#fetch = fetch;
    this.#dpop = dpop;
  }

  /**
   * The headers a request to your own API needs: `Authorization` with the access token and,
   * for a DPoP-bound session, a `DPoP` proof for exactly this method and URL. One call per
   * request: a proof is good once.
   */
  async authorization(method, url) {
    if (this.#token === null) {
      return {};
    }
    const headers = { Authorization: `${this.#tokenType} ${this.#token}` };
    if (this.#tokenType === "DPoP") {
      headers.DPoP = await makeProof(await this.#key(), { method, url, accessToken: this.#token });
    }
    return headers;
  }

  #key() {
    this.#keyPair ??= loadKeyPair();
    return this.#keyPair;
  }

  get signedIn() {
    return this.#token !== null;
  }

  /** When the access token expires (a Date), or null when signed out. */
  get expiresAt() {
    return this.#token === null ? null : new Date(this.#expiresAt);
  }

  /**
   * Runs a query or mutation with the access token (if any) and returns its `data`. Throws
   * IdentityError for GraphQL errors. A refused token is refreshed once and the call retried.
   */
  async request(query, variables = {}) {
    if (this.#token !== null && Date.now() >= this.#expiresAt - EXPIRY_MARGIN_MS) {
      // The timer did not fire in time (a sleeping laptop, a throttled background tab).
      await this.refresh("expired");
    }
    const sent = this.#token;
    try {
      return await this.#send(query, variables, sent);
    } catch (error) {
      if (!(error instanceof IdentityError) || error.code !== "UNAUTHENTICATED" || sent === null) {
        throw error;
      }
      // identity refused the token: it expired on the way, or its session ended. If another
      // call has refreshed meanwhile, retry with that token; else refresh (once, for all).
      if (this.#token === sent) {
        await this.refresh("rejected");
      }
      if (this.#token === null || this.#token === sent) {
        throw error; // signed out: the "signedout" event has told the app
      }
      return this.#send(query, variables, this.#token);
    }
  }

  /**
   * Signs in. Returns the `login` result without the access token, which stays in here:
   * `{__typename: "AuthPayload"}`, `MfaRequired` (with `mfaToken` and `methods`: finish with
   * `verifySecondFactor`) or one of the error members (InvalidCredentials, AccountDisabled,
   * EmailNotVerified, RateLimited, ValidationError).
   */
  async signIn(email, password) {
    const data = await this.#send(LOGIN, { input: { email, password } }, null);
    return this.#signedIn(data.login, "sign-in");
  }

  /**
   * Signs in with a passkey alone. Resolves to the `finishPasskeyLogin` result without the
   * access token (AuthPayload, InvalidCredentials, InvalidToken, AccountDisabled,
   * EmailNotVerified, RateLimited, ValidationError), or to the start's RateLimited. Rejects
   * with the browser's DOMException when the person cancels (NotAllowedError) or, for
   * `mediation: "conditional"`, when `signal` aborts the wait.
   */
  async signInWithPasskey({ mediation, signal } = {}) {
    const started = (await this.#send(START_PASSKEY_LOGIN, {}, null)).startPasskeyLogin;
    switch (started.__typename) {
      case "StartPasskeyLoginSuccess":
        break;
      case "RateLimited":
        return started;
      default:
        throw new IdentityError(`Unexpected startPasskeyLogin result ${started.__typename}`);
    }
    const credential = await getPasskey(started.options, { mediation, signal });
    const input = { challengeToken: started.challengeToken, credential };
    const data = await this.#send(FINISH_PASSKEY_LOGIN, { input }, null);
    return this.#signedIn(data.finishPasskeyLogin, "sign-in");
  }

  /**
   * The second step: `code` is `{ totpCode }`, `{ recoveryCode }` or `{ passkey }` (the JSON
   * of `getPasskey(passkeyOptions)`). Returns the `verifyMfa`
   * result without the access token: AuthPayload, or InvalidCredentials (a wrong code: the
   * mfaToken allows five), InvalidToken (expired or used up: sign in again), RateLimited,
   * ValidationError.
   */
  async verifySecondFactor(mfaToken, code) {
    const data = await this.#send(VERIFY_MFA, { input: { mfaToken, ...code } }, null);
    return this.#signedIn(data.verifyMfa, "sign-in");
  }

  /**
   * Starts a sign-in with another provider (or, with `link`, linking one to the signed-in
   * user: `currentPassword`, or a recent sign-in). Resolves to the `startExternalLogin`
   * result; on StartExternalLoginSuccess, send the browser to `authorizationUrl`. `returnTo`
   * must be on identity's IDENTITY_OIDC_RETURN_URLS; the way back ends there.
   */
  async startProviderSignIn(provider, returnTo, { link = false, currentPassword = null } = {}) {
    const verifier = base64url(crypto.getRandomValues(new Uint8Array(32)));
    const challenge = base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
    const input = { provider, returnTo, codeChallenge: challenge, link, currentPassword };
    const data = link
      ? await this.request(START_EXTERNAL, { input })
      : await this.#send(START_EXTERNAL, { input }, null);
    const result = data.startExternalLogin;
    if (result.__typename === "StartExternalLoginSuccess") {
      sessionStorage.setItem(PENDING, JSON.stringify({ verifier, link }));
    }
    return result;
  }

  /**
   * After the way back: what the fragment says (`{code}` or `{error}`) and the pending start
   * of this tab (`{verifier, link}`, or null when this browser started none), or null when
   * the page was not opened by a provider's return. Clears both the fragment and the storage.
   */
  takeProviderReturn() {
    const params = new URLSearchParams(location.hash.slice(1));
    const code = params.get("code");
    const error = params.get("error");
    if (code === null && error === null) {
      return null;
    }
    history.replaceState(null, "", location.pathname + location.search);
    const pending = JSON.parse(sessionStorage.getItem(PENDING) ?? "null");
    sessionStorage.removeItem(PENDING);
    return { code, error, pending };
  }

  /**
   * Finishes a sign-in with another provider; `verifier` from `takeProviderReturn` (an empty
   * one when this browser started nothing: identity then refuses the code, as it should).
   * Returns the result without the access token, as `signIn` does: AuthPayload, MfaRequired
   * (finish with `verifySecondFactor`), ExternalAccountConflict, EmailNotVerified,
   * InvalidToken, AccountDisabled or RateLimited.
   */
  async finishProviderSignIn(code, verifier) {
    const input = { code, codeVerifier: verifier };
    const data = await this.#send(FINISH_EXTERNAL, { input }, null);
    return this.#signedIn(data.finishExternalLogin, "sign-in");
  }

  #signedIn(answer, reason) {
    const { accessToken, tokenType, expiresIn, refreshToken, ...result } = answer;
    if (result.__typename === "AuthPayload") {
      this.#accept({ accessToken, tokenType, expiresIn, refreshToken }, reason, this.#generation);
    } else if (result.__typename === "MfaRequired") {
      result.expiresIn = expiresIn; // the mfaToken's lifetime
    }
    return result;
  }

  /**
   * After a page load: trade the refresh cookie (if the browser has one) for an access
   * token. Resolves to true when signed in, false when there is no usable session.
   */
  restore() {
    return this.refresh("reload");
  }

  /**
   * A new access token from the refresh cookie; single-flight. Resolves to true on success,
   * false when identity refused the cookie (then the client is signed out). Rejects with
   * IdentityError when identity could not be reached.
   */
  refresh(reason = "timer") {
    this.#refreshing ??= this.#refreshOnce(reason).finally(() => {
      this.#refreshing = null;
    });
    return this.#refreshing;
  }

  /** Ends this browser's session and clears the cookie. Returns the `logout` result. */
  async signOut() {
    await this.#refreshing?.catch(() => {}); // let a refresh in flight land first
    try {
      const data = await this.#send(LOGOUT, {}, null);
      return data.logout; // LogoutSuccess, or InvalidToken (the session had ended already)
    } finally {
      this.#forget("sign-out");
      if (this.#dpop) {
        // The next session gets a key of its own.
        this.#keyPair = null;
        await forgetKeyPair().catch(() => {});
      }
    }
  }

  async #refreshOnce(reason) {
    const generation = this.#generation;
    const data = await this.#send(REFRESH, {}, null);
    if (generation !== this.#generation) {
      return false; // signed out while this was in flight
    }
    const result = data.refreshToken;
    switch (result.__typename) {
      case "AuthPayload":
        this.#accept(result, reason, generation);
        return true;
      case "InvalidToken":
        this.#forget("session-ended");
        return false;
      default:
        throw new IdentityError(`Unexpected refreshToken result ${result.__typename}`);
    }
  }

  #accept({ accessToken, tokenType, expiresIn, refreshToken }, reason, generation) {
    if (refreshToken !== null) {
      // identity is not in cookie mode, so the refresh token reached JavaScript. Refuse to
      // go on rather than quietly work without the protection this design relies on.
      throw new IdentityError(
        "identity sent the refresh token in the response body: run it with IDENTITY_REFRESH_COOKIE=true.",
      );
    }
    if (generation !== this.#generation) {
      return;
    }
    this.#token = accessToken;
    this.#tokenType = tokenType;
    this.#expiresAt = Date.now() + expiresIn * 1000;
    this.#schedule(expiresIn * 1000 * REFRESH_AT);
    this.dispatchEvent(
      new CustomEvent("token", { detail: { reason, expiresAt: new Date(this.#expiresAt) } }),
    );
  }

  #schedule(delay) {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.refresh("timer").catch(() => {
        // No answer (offline?). Try again soon while the token may still be good; once it
        // has expired, the next request refreshes first anyway.
        if (this.#token !== null && Date.now() < this.#expiresAt) {
          this.#schedule(RETRY_MS);
        }
      });
    }, delay);
  }

  #forget(reason) {
    const wasSignedIn = this.#token !== null;
    this.#generation += 1;
    this.#token = null;
    this.#expiresAt = 0;
    clearTimeout(this.#timer);
    if (wasSignedIn || reason === "sign-out") {
      this.dispatchEvent(new CustomEvent("signedout", { detail: { reason } }));
    }
  }

  /** One POST to identity; returns `data` or throws IdentityError. */
  async #send(query, variables, token) {
    const headers = {
      "Content-Type": "application/json",
      "X-Requested-With": "fetch", // any value: identity checks that the header is there
    };
    if (token !== null) {
      headers.Authorization = `${this.#tokenType} ${token}`;
    }
    if (this.#dpop) {
      // Every request proves the key: a sign-in or refresh binds (or keeps) the session to
      // it, a request with the access token shows it holds the token's key.
      const proof = { method: "POST", url: this.#url, accessToken: token };
      headers.DPoP = await makeProof(await this.#key(), proof);
    }
    let response;
    try {
      response = await this.#fetch(this.#url, {
        method: "POST",
        credentials: "include", // send and accept identity's cookie across origins
        headers,
        body: JSON.stringify({ query, variables }),
      });
    } catch (error) {
      // A network failure, or a CORS refusal (is this origin in IDENTITY_CORS_ORIGINS?).
      throw new IdentityError(`identity could not be reached (${error.message})`);
    }
    const requestId = response.headers.get("X-Request-ID");
    let body;
    try {
      body = await response.json();
    } catch {
      throw new IdentityError(`identity answered HTTP ${response.status}`, {
        status: response.status,
        requestId,
      });
    }
    if (body.errors?.length) {
      // GraphQL errors: UNAUTHENTICATED, CSRF_CHECK_FAILED, QUERY_TOO_COMPLEX, ... or an HTTP
      // refusal (413, 400) whose body has a message but no code.
      const [first] = body.errors;
      throw new IdentityError(first.message, {
        code: first.extensions?.code ?? null,
        status: response.status,
        requestId: first.extensions?.requestId ?? requestId,
      });
    }
    if (!response.ok || !body.data) {
      throw new IdentityError(`identity answered HTTP ${response.status}`, {
        status: response.status,
        requestId,
      });
    }
    return body.data;
  }
}
