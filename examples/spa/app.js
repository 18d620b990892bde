// The user interface: forms in, results out. Everything about tokens is in identity.js.
//
// Every mutation result is a union: each `switch` below has one case per member the schema
// lists for that mutation (see schema.graphql), so a new member shows up as an "unexpected
// result" instead of being silently ignored. Text from the server (names, messages, user
// agents) is put into the page with textContent, never innerHTML.

import { API_URL } from "./config.js";
import {
  IdentityClient,
  IdentityError,
  createPasskey,
  getPasskey,
  passkeysSupported,
} from "./identity.js";

const identity = new IdentityClient(API_URL);

const ME = /* GraphQL */ `
  query Me {
    me {
      id email firstName lastName isVerified lastLoginAt
      roles { name }
      sessions { id current userAgent ipAddress createdAt lastUsedAt aal }
      mfaEnabled recoveryCodesLeft
      factors { id kind label createdAt lastUsedAt }
      externalAccounts { id provider email linkedAt }
    }
  }`;

const PROVIDERS = /* GraphQL */ `
  query SignInProviders {
    externalProviders { id name }
  }`;

const LINK_ACCOUNT = /* GraphQL */ `
  mutation LinkProviderAccount($input: FinishExternalLoginInput!) {
    linkExternalAccount(input: $input) {
      __typename
      ... on LinkExternalAccountSuccess { externalAccount { id provider } }
      ... on Error { message }
    }
  }`;

const UNLINK_ACCOUNT = /* GraphQL */ `
  mutation UnlinkProviderAccount($id: ID!) {
    unlinkExternalAccount(id: $id) {
      __typename
      ... on UnlinkExternalAccountSuccess { message }
      ... on ValidationError { message fields { field code message } }
      ... on Error { message }
    }
  }`;

const START_ENROLLMENT = /* GraphQL */ `
  mutation StartEnrollment($input: StartTotpEnrollmentInput!) {
    startTotpEnrollment(input: $input) {
      __typename
      ... on StartTotpEnrollmentSuccess { enrollmentToken secret qrCodeSvg }
      ... on RateLimited { message retryAfter }
      ... on Error { message }
    }
  }`;

const CONFIRM_ENROLLMENT = /* GraphQL */ `
  mutation ConfirmEnrollment($input: ConfirmTotpEnrollmentInput!) {
    confirmTotpEnrollment(input: $input) {
      __typename
      ... on ConfirmTotpEnrollmentSuccess { factor { id label } recoveryCodes }
      ... on ValidationError { message fields { field code message } }
      ... on RateLimited { message retryAfter }
      ... on Error { message }
    }
  }`;

const START_PASSKEY_REGISTRATION = /* GraphQL */ `
  mutation StartAddingPasskey($input: StartPasskeyRegistrationInput!) {
    startPasskeyRegistration(input: $input) {
      __typename
      ... on StartPasskeyRegistrationSuccess { registrationToken options }
      ... on RateLimited { message retryAfter }
      ... on Error { message }
    }
  }`;

const FINISH_PASSKEY_REGISTRATION = /* GraphQL */ `
  mutation FinishAddingPasskey($input: FinishPasskeyRegistrationInput!) {
    finishPasskeyRegistration(input: $input) {
      __typename
      ... on FinishPasskeyRegistrationSuccess { factor { id label } recoveryCodes }
      ... on ValidationError { message fields { field code message } }
      ... on Error { message }
    }
  }`;

const REMOVE_FACTOR = /* GraphQL */ `
  mutation RemoveFactor($id: ID!, $input: RemoveFactorInput!) {
    removeFactor(id: $id, input: $input) {
      __typename
      ... on RemoveFactorSuccess { message }
      ... on RateLimited { message retryAfter }
      ... on Error { message }
    }
  }`;

const REGISTER = /* GraphQL */ `
  mutation Register($input: RegisterInput!) {
    register(input: $input) {
      __typename
      ... on RegisterSuccess { user { email } }
      ... on ValidationError { message fields { field code message } }
      ... on RateLimited { message retryAfter }
      ... on Error { message }
    }
  }`;

const CHANGE_PASSWORD = /* GraphQL */ `
  mutation ChangePassword($input: ChangePasswordInput!) {
    changePassword(input: $input) {
      __typename
      ... on ChangePasswordSuccess { message }
      ... on ValidationError { message fields { field code message } }
      ... on RateLimited { message retryAfter }
      ... on Error { message }
    }
  }`;

const REVOKE_SESSION = /* GraphQL */ `
  mutation RevokeSession($id: ID!) {
    revokeSession(id: $id) {
      __typename
      ... on RevokeSessionSuccess { message }
      ... on NotFound { message }
    }
  }`;

const REVOKE_OTHER_SESSIONS = /* GraphQL */ `
  mutation RevokeOtherSessions {
    revokeAllSessions(keepCurrent: true) {
      __typename
      ... on RevokeAllSessionsSuccess { message count }
    }
  }`;

// ---------------------------------------------------------------------------------------
// Small DOM helpers

const $ = (selector, root = document) => root.querySelector(selector);

function show(view) {
  for (const section of document.querySelectorAll("[data-view]")) {
    section.hidden = section.dataset.view !== view;
  }
  if (view === "signed-out") {
    offerPasskeysInAutofill();
  } else {
    stopAutofill();
  }
}

/** The line at the top of the page, for things that concern the whole app. */
function announce(text, kind = "info") {
  const banner = $("#banner");
  banner.textContent = text;
  banner.dataset.kind = kind;
  banner.hidden = !text;
}

function formMessage(form, text, kind = "error") {
  const message = $(".form-message", form);
  message.textContent = text;
  message.dataset.kind = kind;
}

function clearForm(form) {
  formMessage(form, "");
  for (const small of form.querySelectorAll(".field-error")) {
    small.textContent = "";
  }
  for (const input of form.querySelectorAll("input")) {
    input.removeAttribute("aria-invalid");
  }
}

/** A ValidationError: its message on the form, each field's message under that field. */
function showValidationError(form, { message, fields }) {
  formMessage(form, message);
  for (const { field, message: text } of fields) {
    const input = form.elements.namedItem(field);
    const slot = $(`.field-error[data-field="${field}"]`, form);
    if (input && slot) {
      input.setAttribute("aria-invalid", "true");
      slot.textContent = text;
    } else {
      formMessage(form, `${message} ${field}: ${text}`); // a field this form does not show
    }
  }
}

function retryText({ message, retryAfter }) {
  const minutes = Math.ceil(retryAfter / 60);
  return `${message} (try again in ${minutes} minute${minutes === 1 ? "" : "s"})`;
}

function unexpected(result) {
  return new Error(`Unexpected result ${result.__typename}`);
}

/**
 * A request that failed outright. An UNAUTHENTICATED error after which the client is signed
 * out needs no message here: the "signedout" handler shows the sign-in form.
 */
function failed(error, form = null) {
  if (error instanceof IdentityError && error.code === "UNAUTHENTICATED" && !identity.signedIn) {
    return;
  }
  const reference = error.requestId ? ` (request ${error.requestId})` : "";
  const text = `${error.message}${reference}`;
  if (form) {
    formMessage(form, text);
  } else {
    announce(text, "error");
  }
}

/** Runs a form's handler with its button disabled, so a double click sends one request. */
function onSubmit(form, handler) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearForm(form);
    const button = $("button[type=submit]", form);
    button.disabled = true;
    try {
      await handler(Object.fromEntries(new FormData(form)));
    } catch (error) {
      failed(error, form);
    } finally {
      button.disabled = false;
    }
  });
}

function onClick(button, handler) {
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await handler();
    } catch (error) {
      failed(error);
    } finally {
      button.disabled = false;
    }
  });
}

const when = (iso) => (iso ? new Date(iso).toLocaleString() : "never");
const time = (date) => date.toLocaleTimeString();

// ---------------------------------------------------------------------------------------
// Signed out: sign in and register

onSubmit($("#sign-in"), async ({ email, password }) => {
  const form = $("#sign-in");
  const result = await identity.signIn(email, password);
  switch (result.__typename) {
    case "AuthPayload":
      form.reset();
      announce("");
      await loadProfile();
      return;
    case "MfaRequired": // the password was right; a second factor finishes the sign-in
      form.reset();
      startSecondStep(result);
      return;
    case "ValidationError":
      showValidationError(form, result);
      return;
    case "RateLimited":
      formMessage(form, retryText(result));
      return;
    case "InvalidCredentials": // unknown email or wrong password: identity does not say which
    case "AccountDisabled":
    case "EmailNotVerified":
      formMessage(form, result.message);
      return;
    default:
      throw unexpected(result);
  }
});

// The second step: the mfaToken lives here, in memory, for the few minutes it is good.
let mfaToken = null;
let passkeyOptions = null; // request options naming the account's passkeys

function startSecondStep({ mfaToken: token, methods, passkeyOptions: options }) {
  mfaToken = token;
  passkeyOptions = methods.includes("PASSKEY") && passkeysSupported() ? options : null;
  $("#use-passkey").hidden = passkeyOptions === null;
  const form = $("#second-step");
  setSecondStepMethod("totp");
  $("#sign-in").hidden = true;
  form.hidden = false;
  form.elements.code.focus();
}

function endSecondStep() {
  mfaToken = null;
  passkeyOptions = null;
  $("#second-step").hidden = true;
  $("#sign-in").hidden = false;
}

function setSecondStepMethod(method) {
  const form = $("#second-step");
  form.dataset.method = method;
  form.reset();
  for (const hint of form.querySelectorAll(".hint")) {
    hint.hidden = hint.dataset.for !== method;
  }
  form.elements.code.inputMode = method === "totp" ? "numeric" : "text";
  $("#use-recovery-code").textContent =
    method === "totp" ? "Use a recovery code instead" : "Use the authenticator app instead";
}

$("#use-recovery-code").addEventListener("click", () => {
  setSecondStepMethod($("#second-step").dataset.method === "totp" ? "recovery" : "totp");
});
$("#cancel-second-step").addEventListener("click", endSecondStep);

onSubmit($("#second-step"), async ({ code }) => {
  const form = $("#second-step");
  const given = form.dataset.method === "totp" ? { totpCode: code } : { recoveryCode: code };
  await secondStepAnswered(await identity.verifySecondFactor(mfaToken, given));
});

onClick($("#use-passkey"), async () => {
  const form = $("#second-step");
  clearForm(form);
  await stopAutofill();
  let passkey;
  try {
    passkey = await getPasskey(passkeyOptions);
  } catch (error) {
    formMessage(form, passkeyRefusedText(error));
    return;
  }
  await secondStepAnswered(await identity.verifySecondFactor(mfaToken, { passkey }));
});

async function secondStepAnswered(result) {
  const form = $("#second-step");
  switch (result.__typename) {
    case "AuthPayload":
      endSecondStep();
      announce("");
      await loadProfile();
      return;
    case "InvalidCredentials": // a wrong or used code; the mfaToken allows five
      showValidationError(form, { message: result.message, fields: [{ field: "code", message: result.message }] });
      return;
    case "InvalidToken": // five wrong codes, five minutes, or a password change meanwhile
      endSecondStep();
      formMessage($("#sign-in"), "That sign-in expired. Enter your password again.");
      return;
    case "ValidationError":
      showValidationError(form, result);
      return;
    case "RateLimited":
      formMessage(form, retryText(result));
      return;
    default:
      throw unexpected(result);
  }
}

// Passkeys: a button, and the email field's autofill (conditional mediation). Only one
// WebAuthn request may be pending: the autofill's wait is aborted before any other.

let autofill = null; // {controller, done} while the autofill waits for a passkey

function passkeyRefusedText(error) {
  if (error instanceof DOMException && error.name === "NotAllowedError") {
    return "No passkey was used.";
  }
  if (error instanceof DOMException && error.name === "InvalidStateError") {
    return "This device already holds a passkey for your account.";
  }
  throw error;
}

async function stopAutofill() {
  if (autofill !== null) {
    const { controller, done } = autofill;
    autofill = null;
    controller.abort();
    await done;
  }
}

async function offerPasskeysInAutofill() {
  if (autofill !== null || !passkeysSupported()) {
    return;
  }
  const controller = new AbortController();
  const waiting = { controller, done: null };
  autofill = waiting; // taken at once: show() may call this again meanwhile
  const available = await PublicKeyCredential.isConditionalMediationAvailable?.();
  if (!available || controller.signal.aborted) {
    if (autofill === waiting) {
      autofill = null;
    }
    return;
  }
  waiting.done = identity
    .signInWithPasskey({ mediation: "conditional", signal: controller.signal })
    .then(passkeySignedIn, (error) => {
      if (!controller.signal.aborted) {
        failed(error, $("#sign-in"));
      }
    })
    .finally(() => {
      if (autofill === waiting) {
        autofill = null;
      }
    });
}

async function passkeySignedIn(result) {
  const form = $("#sign-in");
  switch (result.__typename) {
    case "AuthPayload":
      form.reset();
      announce("");
      await loadProfile();
      return;
    case "ValidationError":
    case "InvalidCredentials": // a passkey this server does not know (any more)
    case "InvalidToken": // the challenge expired: try again
    case "AccountDisabled":
    case "EmailNotVerified":
      formMessage(form, result.message);
      return;
    case "RateLimited":
      formMessage(form, retryText(result));
      return;
    default:
      throw unexpected(result);
  }
}

$("#passkey-sign-in").hidden = !passkeysSupported();
onClick($("#passkey-sign-in"), async () => {
  const form = $("#sign-in");
  clearForm(form);
  await stopAutofill();
  let result;
  try {
    result = await identity.signInWithPasskey();
  } catch (error) {
    formMessage(form, passkeyRefusedText(error));
    return;
  } finally {
    if (!identity.signedIn) {
      offerPasskeysInAutofill();
    }
  }
  await passkeySignedIn(result);
});

onSubmit($("#register"), async ({ email, password, firstName, lastName }) => {
  const form = $("#register");
  const data = await identity.request(REGISTER, {
    input: { email, password, firstName, lastName },
  });
  const result = data.register;
  switch (result.__typename) {
    case "RegisterSuccess": {
      // register does not sign in: hand over to the sign-in form.
      form.reset();
      formMessage(form, `Account created for ${result.user.email}. Sign in above.`, "success");
      const signIn = $("#sign-in");
      signIn.elements.email.value = result.user.email;
      signIn.elements.password.focus();
      return;
    }
    case "ValidationError":
      showValidationError(form, result);
      return;
    case "RateLimited":
      formMessage(form, retryText(result));
      return;
    case "EmailAlreadyRegistered":
      showValidationError(form, {
        message: result.message,
        fields: [{ field: "email", message: result.message }],
      });
      return;
    default:
      throw unexpected(result);
  }
});

// ---------------------------------------------------------------------------------------
// Signed in: profile, token status, sessions, password, sign out

async function loadProfile() {
  const { me } = await identity.request(ME);
  if (me === null) {
    show("signed-out"); // no token: the session ended between the refresh and this call
    return;
  }
  const fields = {
    name: `${me.firstName} ${me.lastName}`.trim() || "(no name)",
    email: me.email,
    verified: me.isVerified ? "yes" : "no (see the verification mail)",
    roles: me.roles.map((role) => role.name).join(", "),
    lastLoginAt: when(me.lastLoginAt),
  };
  for (const [name, value] of Object.entries(fields)) {
    $(`[data-profile="${name}"]`).textContent = value;
  }
  $("#change-password").elements.username.value = me.email;
  renderSessions(me.sessions);
  renderFactors(me);
  renderLinkedAccounts(me.externalAccounts);
  show("signed-in");
}

// ---------------------------------------------------------------------------------------
// Other sign-in providers: the buttons, the way back, linking and unlinking

// identity sends the browser back here (this page, exactly as on IDENTITY_OIDC_RETURN_URLS).
const RETURN_TO = location.origin + location.pathname;
let providers = [];

function providerName(id) {
  return providers.find((provider) => provider.id === id)?.name ?? id;
}

function providerButton(provider, label, handler) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = label;
  button.dataset.provider = provider.id;
  onClick(button, handler);
  return button;
}

function renderProviders() {
  $("#providers").hidden = providers.length === 0;
  $("#provider-buttons").replaceChildren(
    ...providers.map((p) => providerButton(p, `Sign in with ${p.name}`, () => goToProvider(p.id))),
  );
  $("#link-buttons").replaceChildren(
    ...providers.map((p) => providerButton(p, `Link ${p.name}`, () => goToProvider(p.id, true))),
  );
}

function providerMessage(text, kind = "error") {
  const message = $(identity.signedIn ? "#linked-message" : "#provider-message");
  message.textContent = text;
  message.dataset.kind = kind;
}

async function goToProvider(provider, link = false) {
  providerMessage("");
  const password = $("#link-password").value;
  const result = await identity.startProviderSignIn(provider, RETURN_TO, {
    link,
    currentPassword: link && password !== "" ? password : null,
  });
  switch (result.__typename) {
    case "StartExternalLoginSuccess":
      location.assign(result.authorizationUrl); // a top-level navigation; back with #code=…
      return;
    case "InvalidCredentials": // a link: the password, or a recent sign-in, is needed
      providerMessage(result.message);
      return;
    case "ValidationError":
      providerMessage(`${result.message} ${result.fields.map((f) => f.message).join(" ")}`);
      return;
    default:
      throw unexpected(result);
  }
}

const RETURN_ERRORS = {
  invalid_state: "That sign-in link was not valid any more. Please start again.",
  access_denied: "The sign-in was cancelled at the provider.",
  provider_error: "The provider's answer could not be used. Please try again.",
};

/** The page was opened by the way back from a provider: finish, link, or say why not. */
async function providerReturned({ code, error, pending }, signedIn) {
  if (error !== null) {
    show(signedIn ? "signed-in" : "signed-out");
    if (signedIn) await loadProfile();
    providerMessage(RETURN_ERRORS[error] ?? `The sign-in failed (${error}).`);
    return;
  }
  if (pending?.link) {
    await linkReturned(code, pending.verifier, signedIn);
    return;
  }
  // Without a pending start of this tab, the verifier is empty and identity refuses the code.
  const result = await identity.finishProviderSignIn(code, pending?.verifier ?? "");
  switch (result.__typename) {
    case "AuthPayload":
      announce("");
      await loadProfile();
      return;
    case "MfaRequired": // the provider was the first factor; identity's second one follows
      show("signed-out");
      startSecondStep(result);
      return;
    case "ExternalAccountConflict": // sign in to that account (password), then link there
    case "EmailNotVerified":
    case "AccountDisabled":
    case "InvalidToken": // used, expired, or not started in this browser
      show("signed-out");
      providerMessage(result.message);
      return;
    case "RateLimited":
      show("signed-out");
      providerMessage(retryText(result));
      return;
    default:
      throw unexpected(result);
  }
}

async function linkReturned(code, codeVerifier, signedIn) {
  if (!signedIn) {
    show("signed-out");
    providerMessage("Your session ended while you were away: sign in, then link again.");
    return;
  }
  const data = await identity.request(LINK_ACCOUNT, { input: { code, codeVerifier } });
  const result = data.linkExternalAccount;
  await loadProfile();
  switch (result.__typename) {
    case "LinkExternalAccountSuccess":
      $("#link-password").value = "";
      providerMessage(`${providerName(result.externalAccount.provider)} is linked.`, "success");
      return;
    case "ExternalAccountConflict": // that account is linked to someone else
    case "InvalidToken":
      providerMessage(result.message);
      return;
    default:
      throw unexpected(result);
  }
}

function renderLinkedAccounts(accounts) {
  const items = accounts.map((account) => {
    const item = document.createElement("li");
    item.dataset.accountId = account.id;
    const email = account.email ? ` as ${account.email}` : "";
    item.textContent = `${providerName(account.provider)}${email}, linked ${when(account.linkedAt)} `;
    const unlink = document.createElement("button");
    unlink.type = "button";
    unlink.textContent = "Unlink";
    onClick(unlink, () => unlinkAccount(account.id));
    item.append(unlink);
    return item;
  });
  $("#linked-list").replaceChildren(...items);
}

async function unlinkAccount(id) {
  providerMessage("");
  const { unlinkExternalAccount: result } = await identity.request(UNLINK_ACCOUNT, { id });
  switch (result.__typename) {
    case "UnlinkExternalAccountSuccess":
      await loadProfile();
      providerMessage(result.message, "success");
      return;
    case "ValidationError": // the last way to sign in
      providerMessage(result.fields.map((f) => f.message).join(" ") || result.message);
      return;
    case "NotFound":
      providerMessage(result.message);
      await loadProfile();
      return;
    default:
      throw unexpected(result);
  }
}

// ---------------------------------------------------------------------------------------
// Two-step sign-in: add an authenticator app, show the recovery codes once, remove factors

function renderFactors(me) {
  $("#mfa-status").textContent = me.mfaEnabled
    ? `On: signing in takes your password and a code. ${me.recoveryCodesLeft} recovery codes left.`
    : "Off: your password alone signs you in.";
  const items = me.factors.map((factor) => {
    const item = document.createElement("li");
    item.dataset.factorId = factor.id;
    const kind = factor.kind === "TOTP" ? "authenticator app" : "passkey";
    item.textContent = `${factor.label} (${kind}, added ${when(factor.createdAt)}, last used ${when(factor.lastUsedAt)}) `;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "Remove";
    onClick(remove, () => removeFactor(factor.id));
    item.append(remove);
    return item;
  });
  $("#factors").replaceChildren(...items);
}

/** The current password if the user typed one; without it identity wants a recent sign-in. */
function reauthentication() {
  const password = $("#mfa-password").value;
  return { currentPassword: password === "" ? null : password };
}

function mfaMessage(text, kind = "error") {
  const message = $("#mfa-message");
  message.textContent = text;
  message.dataset.kind = kind;
}

let enrollmentToken = null;

onClick($("#add-authenticator"), async () => {
  mfaMessage("");
  const data = await identity.request(START_ENROLLMENT, { input: reauthentication() });
  const result = data.startTotpEnrollment;
  switch (result.__typename) {
    case "StartTotpEnrollmentSuccess":
      enrollmentToken = result.enrollmentToken;
      // The QR code is an SVG made by identity; shown as an image, it cannot run anything.
      $("#qr-code").src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(result.qrCodeSvg)}`;
      $("#totp-secret").textContent = result.secret;
      $("#enrollment").hidden = false;
      $("#confirm-enrollment").elements.code.focus();
      return;
    case "InvalidCredentials": // a wrong password, or none and no recent sign-in
    case "EmailNotVerified":
      mfaMessage(result.message);
      return;
    case "RateLimited":
      mfaMessage(retryText(result));
      return;
    default:
      throw unexpected(result);
  }
});

onSubmit($("#confirm-enrollment"), async ({ code, label }) => {
  const form = $("#confirm-enrollment");
  const data = await identity.request(CONFIRM_ENROLLMENT, {
    input: { enrollmentToken, code, label: label || null },
  });
  const result = data.confirmTotpEnrollment;
  switch (result.__typename) {
    case "ConfirmTotpEnrollmentSuccess":
      form.reset();
      enrollmentToken = null;
      $("#enrollment").hidden = true;
      $("#mfa-password").value = "";
      await factorAdded(result);
      return;
    case "InvalidCredentials": // the code was wrong: the app shows a new one every 30 seconds
      showValidationError(form, { message: result.message, fields: [{ field: "code", message: result.message }] });
      return;
    case "InvalidToken": // ten minutes passed, or five wrong codes: start again
      $("#enrollment").hidden = true;
      mfaMessage(`${result.message} Start again.`);
      return;
    case "ValidationError":
      showValidationError(form, result);
      return;
    case "RateLimited":
      formMessage(form, retryText(result));
      return;
    default:
      throw unexpected(result);
  }
});

async function factorAdded({ factor, recoveryCodes }) {
  if (recoveryCodes) {
    // MFA just turned on: the codes are shown this once.
    const items = recoveryCodes.map((recoveryCode) => {
      const item = document.createElement("li");
      item.textContent = recoveryCode;
      return item;
    });
    $("#recovery-code-list").replaceChildren(...items);
    $("#recovery-codes").hidden = false;
  } else {
    mfaMessage(`${factor.label} was added.`, "success");
    await loadProfile();
  }
}

$("#passkey-actions").hidden = !passkeysSupported();
onClick($("#add-passkey"), async () => {
  mfaMessage("");
  const data = await identity.request(START_PASSKEY_REGISTRATION, { input: reauthentication() });
  const started = data.startPasskeyRegistration;
  switch (started.__typename) {
    case "StartPasskeyRegistrationSuccess":
      break;
    case "InvalidCredentials": // a wrong password, or none and no recent sign-in
    case "EmailNotVerified":
      mfaMessage(started.message);
      return;
    case "RateLimited":
      mfaMessage(retryText(started));
      return;
    default:
      throw unexpected(started);
  }
  let credential;
  try {
    credential = await createPasskey(started.options);
  } catch (error) {
    mfaMessage(passkeyRefusedText(error));
    return;
  }
  const label = $("#passkey-label").value.trim() || null;
  const finished = await identity.request(FINISH_PASSKEY_REGISTRATION, {
    input: { registrationToken: started.registrationToken, credential, label },
  });
  const result = finished.finishPasskeyRegistration;
  switch (result.__typename) {
    case "FinishPasskeyRegistrationSuccess":
      $("#mfa-password").value = "";
      $("#passkey-label").value = "";
      await factorAdded(result);
      return;
    case "InvalidToken": // five minutes passed, or another start replaced this one
      mfaMessage(`${result.message} Start again.`);
      return;
    case "ValidationError":
      mfaMessage(result.fields.map((f) => f.message).join(" ") || result.message);
      return;
    default:
      throw unexpected(result);
  }
});

onClick($("#saved-codes"), async () => {
  $("#recovery-code-list").replaceChildren();
  $("#recovery-codes").hidden = true;
  mfaMessage("Two-step sign-in is on. Your other sessions were signed out.", "success");
  await loadProfile();
});

async function removeFactor(id) {
  mfaMessage("");
  const data = await identity.request(REMOVE_FACTOR, { id, input: reauthentication() });
  const result = data.removeFactor;
  switch (result.__typename) {
    case "RemoveFactorSuccess":
      $("#mfa-password").value = "";
      mfaMessage(`${result.message} Your other sessions were signed out.`, "success");
      await loadProfile();
      return;
    case "InvalidCredentials":
    case "NotFound":
      mfaMessage(result.message);
      return;
    case "RateLimited":
      mfaMessage(retryText(result));
      return;
    default:
      throw unexpected(result);
  }
}

function renderSessions(sessions) {
  const rows = sessions.map((session) => {
    const row = document.createElement("tr");
    row.dataset.sessionId = session.id;
    row.dataset.current = String(session.current);
    for (const text of [
      session.userAgent ?? "unknown device",
      session.ipAddress ?? "",
      when(session.createdAt),
      when(session.lastUsedAt),
    ]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    const action = document.createElement("td");
    if (session.current) {
      action.textContent = "this browser";
    } else {
      const end = document.createElement("button");
      end.type = "button";
      end.textContent = "End";
      onClick(end, () => revokeSession(session.id));
      action.append(end);
    }
    row.append(action);
    return row;
  });
  $("#sessions tbody").replaceChildren(...rows);
}

async function revokeSession(id) {
  const message = $("#sessions-message");
  const { revokeSession: result } = await identity.request(REVOKE_SESSION, { id });
  switch (result.__typename) {
    case "RevokeSessionSuccess":
      message.dataset.kind = "success";
      break;
    case "NotFound": // ended meanwhile, e.g. signed out on that device
      message.dataset.kind = "error";
      break;
    default:
      throw unexpected(result);
  }
  message.textContent = result.message;
  await loadProfile();
}

onClick($("#revoke-others"), async () => {
  const message = $("#sessions-message");
  const { revokeAllSessions: result } = await identity.request(REVOKE_OTHER_SESSIONS);
  switch (result.__typename) {
    case "RevokeAllSessionsSuccess":
      message.textContent = result.message;
      message.dataset.kind = "success";
      break;
    default:
      throw unexpected(result);
  }
  await loadProfile();
});

onClick($("#reload-sessions"), async () => {
  $("#sessions-message").textContent = "";
  await loadProfile();
});

onSubmit($("#change-password"), async ({ currentPassword, newPassword }) => {
  const form = $("#change-password");
  const data = await identity.request(CHANGE_PASSWORD, {
    input: { currentPassword, newPassword },
  });
  const result = data.changePassword;
  switch (result.__typename) {
    case "ChangePasswordSuccess":
      form.reset();
      // identity ends every other session of the user; this one goes on.
      formMessage(form, `${result.message} Your other sessions were signed out.`, "success");
      await loadProfile();
      return;
    case "InvalidCredentials": // the current password is wrong
      showValidationError(form, {
        message: result.message,
        fields: [{ field: "currentPassword", message: result.message }],
      });
      return;
    case "ValidationError":
      showValidationError(form, result);
      return;
    case "RateLimited":
      formMessage(form, retryText(result));
      return;
    default:
      throw unexpected(result);
  }
});

onClick($("#sign-out"), async () => {
  const result = await identity.signOut();
  switch (result.__typename) {
    case "LogoutSuccess":
      announce(result.message);
      break;
    case "InvalidToken": // the session had ended already; the cookie is gone all the same
      announce("Signed out.");
      break;
    default:
      throw unexpected(result);
  }
});

// ---------------------------------------------------------------------------------------
// Token events from identity.js

let refreshCount = 0;

identity.addEventListener("token", ({ detail: { reason, expiresAt } }) => {
  const status = $("#token-status");
  if (reason !== "sign-in") {
    refreshCount += 1; // a silent refresh: the user did nothing
  }
  status.dataset.refreshCount = String(refreshCount);
  status.dataset.lastRefreshReason = reason;
  const refreshed =
    refreshCount === 0
      ? "not refreshed yet"
      : `refreshed ${refreshCount} time${refreshCount === 1 ? "" : "s"}, last at ${time(new Date())} (${reason})`;
  status.textContent = `Access token valid until ${time(expiresAt)}; ${refreshed}.`;
});

identity.addEventListener("signedout", ({ detail: { reason } }) => {
  show("signed-out");
  endSecondStep();
  if (reason === "session-ended") {
    announce("Your session has ended. Please sign in again.", "error");
  }
});

// ---------------------------------------------------------------------------------------
// Start: the access token is gone after a reload; the refresh cookie (if any) brings it back.

async function start() {
  show("loading");
  const back = identity.takeProviderReturn(); // before anything else reads the address
  try {
    providers = (await identity.request(PROVIDERS)).externalProviders;
    renderProviders();
    const signedIn = await identity.restore();
    if (back !== null) {
      await providerReturned(back, signedIn);
    } else if (signedIn) {
      await loadProfile();
    } else {
      show("signed-out");
    }
  } catch (error) {
    show("signed-out");
    failed(error);
  }
}

start();
