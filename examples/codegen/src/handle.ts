// Turning identity's results into what a screen shows, with the types generated from
// schema.graphql and ../operations/*.graphql.
//
// Every `switch` below lists every member of its result union and ends in `assertNever`: when
// the schema gains a member (a new error type, say) that a switch does not handle, `tsc --noEmit`
// fails here, instead of the new case reaching users as "undefined". A member the schema drops
// fails too (its `case` no longer type-checks). Fix it by deciding what the screen should do.
//
// The list queries (users, audit log, sessions, roles) are turned into plain rows for a table.

import type {
  AssignRoleMutation,
  AuditLogQuery,
  ChangePasswordMutation,
  ConfirmAuthenticatorEnrollmentMutation,
  ConfirmEmailChangeMutation,
  CreateRoleMutation,
  CreateUserMutation,
  CreateOAuthClientMutation,
  CreateWebhookEndpointMutation,
  DeleteAccountMutation,
  DeleteRoleMutation,
  DeleteUserMutation,
  DeleteOAuthClientMutation,
  DeleteWebhookEndpointMutation,
  DeviceSessionFragment,
  FinishPasskeyLoginMutation,
  FinishPasskeyRegistrationMutation,
  FinishProviderSignInMutation,
  InvalidInputFragment,
  LinkProviderAccountMutation,
  LinkedAccountFragment,
  ManagedUserFragment,
  MyFactorsQuery,
  MyLinkedAccountsQuery,
  MySessionsQuery,
  NextPageFragment,
  OAuthClientInfoFragment,
  RedeliverWebhookMutation,
  RefreshSessionMutation,
  RegenerateRecoveryCodesMutation,
  RemoveFactorMutation,
  RenameFactorMutation,
  RequestEmailChangeMutation,
  RequestEmailVerificationMutation,
  RequestPasswordResetMutation,
  ResetPasswordMutation,
  ResetUserMfaMutation,
  RevertSecurityChangeMutation,
  RevokeAllSessionsMutation,
  RevokeConsentMutation,
  RevokeRoleMutation,
  RevokeSessionMutation,
  RevokeUserSessionsMutation,
  RoleDetailsFragment,
  RoleEditorQuery,
  SecondFactorFragment,
  SecondStepFragment,
  RotateOAuthClientSecretMutation,
  RotateWebhookSecretMutation,
  SendTestWebhookMutation,
  SignInMutation,
  SignInProvidersQuery,
  SignOutMutation,
  SignUpMutation,
  SignedInFragment,
  StartAuthenticatorEnrollmentMutation,
  StartPasskeyLoginMutation,
  StartPasskeyRegistrationMutation,
  StartProviderSignInMutation,
  TooManyAttemptsFragment,
  UnlinkProviderAccountMutation,
  UpdateProfileMutation,
  UpdateRoleMutation,
  UpdateOAuthClientMutation,
  UpdateUserMutation,
  UpdateWebhookEndpointMutation,
  UserListQuery,
  UserProfileFragment,
  VerifyEmailMutation,
  VerifySecondFactorMutation,
  VerifyUserMutation,
  WebhookDeliveriesQuery,
  WebhookDeliveryInfoFragment,
  WebhookEndpointInfoFragment,
} from "./generated/operations";

/** What the UI does next: go on with a value, or show a message (per field, or "wait"). */
export type Outcome<T> =
  | { ok: true; value: T }
  | {
      ok: false;
      reason: string; // the member's __typename, for logs and tests
      message: string;
      fields?: Record<string, string>; // input field -> message, shown beside the input
      retryAfter?: number; // seconds
      signedOut?: true; // the session is gone: send the user to the sign-in screen
    };

/** The failing half of an Outcome: fits any `Outcome<T>`. */
type Failure = Extract<Outcome<unknown>, { ok: false }>;

// --8<-- [start:assert-never]
export function assertNever(value: never): never {
  throw new Error(`Unhandled result: ${JSON.stringify(value)}`);
}
// --8<-- [end:assert-never]

function invalidInput(error: InvalidInputFragment): Failure {
  const fields = Object.fromEntries(error.fields.map((f) => [f.field, f.message]));
  return { ok: false, reason: "ValidationError", message: error.message, fields };
}

function tooManyAttempts(error: TooManyAttemptsFragment): Failure {
  return { ok: false, reason: "RateLimited", message: error.message, retryAfter: error.retryAfter };
}

/** Any other error member: its message, beside one input when it is about that input. */
function rejected(error: { __typename: string; message: string }, field?: string): Failure {
  const fields = field === undefined ? undefined : { [field]: error.message };
  return { ok: false, reason: error.__typename, message: error.message, fields };
}

// Signing up, in and out (auth.graphql) ----------------------------------------------------------

export function signUpOutcome(result: SignUpMutation["register"]): Outcome<UserProfileFragment> {
  switch (result.__typename) {
    case "RegisterSuccess":
      return { ok: true, value: result.user };
    case "ValidationError":
      return invalidInput(result);
    case "EmailAlreadyRegistered":
      return rejected(result, "email");
    case "RateLimited":
      return tooManyAttempts(result);
    default:
      return assertNever(result);
  }
}

/** Signed in, or one step to go: ask for a second factor and call `verifyMfa`. */
export type SignInStep =
  | { signedIn: SignedInFragment }
  | { secondFactor: SecondStepFragment };

// --8<-- [start:sign-in]
export function signInOutcome(result: SignInMutation["login"]): Outcome<SignInStep> {
  switch (result.__typename) {
    case "AuthPayload":
      return { ok: true, value: { signedIn: result } };
    case "MfaRequired":
      return { ok: true, value: { secondFactor: result } };
    case "InvalidCredentials":
    case "AccountDisabled":
    case "EmailNotVerified":
      return rejected(result);
    case "ValidationError":
      return invalidInput(result);
    case "RateLimited":
      return tooManyAttempts(result);
    default:
      return assertNever(result);
  }
}
// --8<-- [end:sign-in]

export function refreshOutcome(
  result: RefreshSessionMutation["refreshToken"],
): Outcome<SignedInFragment> {
  switch (result.__typename) {
    case "AuthPayload":
      return { ok: true, value: result };
    case "InvalidToken":
      return { ...rejected(result), signedOut: true };
    default:
      return assertNever(result);
  }
}

export function signOutOutcome(result: SignOutMutation["logout"]): Outcome<string> {
  switch (result.__typename) {
    case "LogoutSuccess":
      return { ok: true, value: result.message };
    case "InvalidToken":
      // Already signed out (or the session was ended elsewhere): the user is out either way.
      return { ok: true, value: result.message };
    default:
      return assertNever(result);
  }
}

// Second factors (mfa.graphql) -------------------------------------------------------------------

export function verifySecondFactorOutcome(
  result: VerifySecondFactorMutation["verifyMfa"],
): Outcome<SignedInFragment> {
  switch (result.__typename) {
    case "AuthPayload":
      return { ok: true, value: result };
    case "InvalidCredentials": // a wrong or used code: the mfaToken allows five
      return rejected(result, "code");
    case "InvalidToken": // expired, used up, or the password changed: sign in again
      return { ...rejected(result), signedOut: true };
    case "ValidationError":
      return invalidInput(result);
    case "RateLimited":
      return tooManyAttempts(result);
    default:
      return assertNever(result);
  }
}

/** The security page: each factor as a row, and whether MFA is on. */
export interface FactorRow {
  id: string;
  kind: "authenticator app" | "passkey";
  label: string;
  added: Date;
  lastUsed: Date | null;
}

export function myFactors(
  data: MyFactorsQuery,
): Outcome<{ mfaEnabled: boolean; recoveryCodesLeft: number; factors: FactorRow[] }> {
  if (data.me === null) {
    return { ok: false, reason: "SignedOut", message: "Please sign in.", signedOut: true };
  }
  const factors = data.me.factors.map((f: SecondFactorFragment) => ({
    id: f.id,
    kind: f.kind === "TOTP" ? ("authenticator app" as const) : ("passkey" as const),
    label: f.label,
    added: new Date(f.createdAt),
    lastUsed: f.lastUsedAt === null ? null : new Date(f.lastUsedAt),
  }));
  const { mfaEnabled, recoveryCodesLeft } = data.me;
  return { ok: true, value: { mfaEnabled, recoveryCodesLeft, factors } };
}

export function startEnrollmentOutcome(
  result: StartAuthenticatorEnrollmentMutation["startTotpEnrollment"],
): Outcome<{ enrollmentToken: string; secret: string; qrCodeSvg: string }> {
  switch (result.__typename) {
    case "StartTotpEnrollmentSuccess":
      return { ok: true, value: result };
    case "InvalidCredentials": // wrong password, or no recent sign-in: ask for the password
      return rejected(result, "currentPassword");
    case "EmailNotVerified":
      return rejected(result);
    case "RateLimited":
      return tooManyAttempts(result);
    default:
      return assertNever(result);
  }
}

export function confirmEnrollmentOutcome(
  result: ConfirmAuthenticatorEnrollmentMutation["confirmTotpEnrollment"],
): Outcome<{ factor: SecondFactorFragment; recoveryCodes: string[] | null }> {
  switch (result.__typename) {
    case "ConfirmTotpEnrollmentSuccess":
      return { ok: true, value: { factor: result.factor, recoveryCodes: result.recoveryCodes ?? null } };
    case "InvalidCredentials": // the code was wrong: try the next one the app shows
      return rejected(result, "code");
    case "InvalidToken": // expired (10 minutes) or used: start again
      return rejected(result);
    case "ValidationError":
      return invalidInput(result);
    case "RateLimited":
      return tooManyAttempts(result);
    default:
      return assertNever(result);
  }
}

export function regenerateRecoveryCodesOutcome(
  result: RegenerateRecoveryCodesMutation["regenerateRecoveryCodes"],
): Outcome<string[]> {
  switch (result.__typename) {
    case "RegenerateRecoveryCodesSuccess":
      return { ok: true, value: result.recoveryCodes };
    case "InvalidCredentials":
      return rejected(result, "currentPassword");
    case "ValidationError":
      return invalidInput(result); // `mfa_off`: add a factor first
    case "RateLimited":
      return tooManyAttempts(result);
    default:
      return assertNever(result);
  }
}

export function renameFactorOutcome(
  result: RenameFactorMutation["renameFactor"],
): Outcome<SecondFactorFragment> {
  switch (result.__typename) {
    case "RenameFactorSuccess":
      return { ok: true, value: result.factor };
    case "ValidationError":
      return invalidInput(result);
    case "NotFound":
      return rejected(result);
    default:
      return assertNever(result);
  }
}

export function removeFactorOutcome(
  result: RemoveFactorMutation["removeFactor"],
): Outcome<string> {
  switch (result.__typename) {
    case "RemoveFactorSuccess":
      return { ok: true, value: result.message };
    case "InvalidCredentials":
      return rejected(result, "currentPassword");
    case "NotFound":
      return rejected(result);
    case "RateLimited":
      return tooManyAttempts(result);
    default:
      return assertNever(result);
  }
}

export function resetUserMfaOutcome(
  result: ResetUserMfaMutation["resetUserMfa"],
): Outcome<ManagedUserFragment> {
  switch (result.__typename) {
    case "ResetUserMfaSuccess":
      return { ok: true, value: result.user };
    case "NotFound":
      return rejected(result);
    default:
      return assertNever(result);
  }
}

export function revertSecurityChangeOutcome(
  result: RevertSecurityChangeMutation["revertSecurityChange"],
): Outcome<string> {
  switch (result.__typename) {
    case "RevertSecurityChangeSuccess":
      return { ok: true, value: result.message }; // every session ended: sign in again
    case "InvalidToken":
      return rejected(result);
    default:
      return assertNever(result);
  }
}

// Passkeys (passkeys.graphql) --------------------------------------------------------------------

/** WebAuthn options (for `PublicKeyCredential.parse…OptionsFromJSON`) and the token to send back. */
export type PasskeyCeremony = { token: string; options: unknown };

export function startPasskeyRegistrationOutcome(
  result: StartPasskeyRegistrationMutation["startPasskeyRegistration"],
): Outcome<PasskeyCeremony> {
  switch (result.__typename) {
    case "StartPasskeyRegistrationSuccess":
      return { ok: true, value: { token: result.registrationToken, options: result.options } };
    case "InvalidCredentials": // wrong password, or no recent sign-in: ask for the password
      return rejected(result, "currentPassword");
    case "EmailNotVerified":
      return rejected(result);
    case "RateLimited":
      return tooManyAttempts(result);
    default:
      return assertNever(result);
  }
}

export function finishPasskeyRegistrationOutcome(
  result: FinishPasskeyRegistrationMutation["finishPasskeyRegistration"],
): Outcome<{ factor: SecondFactorFragment; recoveryCodes: string[] | null }> {
  switch (result.__typename) {
    case "FinishPasskeyRegistrationSuccess":
      return { ok: true, value: { factor: result.factor, recoveryCodes: result.recoveryCodes ?? null } };
    case "InvalidToken": // expired (5 minutes), used, or replaced by a newer start: start again
      return rejected(result);
    case "ValidationError": // the credential did not verify, or is registered already
      return invalidInput(result);
    default:
      return assertNever(result);
  }
}

export function startPasskeyLoginOutcome(
  result: StartPasskeyLoginMutation["startPasskeyLogin"],
): Outcome<PasskeyCeremony> {
  switch (result.__typename) {
    case "StartPasskeyLoginSuccess":
      return { ok: true, value: { token: result.challengeToken, options: result.options } };
    case "RateLimited":
      return tooManyAttempts(result);
    default:
      return assertNever(result);
  }
}

export function finishPasskeyLoginOutcome(
  result: FinishPasskeyLoginMutation["finishPasskeyLogin"],
): Outcome<SignedInFragment> {
  switch (result.__typename) {
    case "AuthPayload": // aal 2, amr ["hwk", "user"]
      return { ok: true, value: result };
    case "InvalidCredentials": // a passkey this server does not know, or an answer that failed
    case "InvalidToken": // the challenge expired or was used: start again
    case "AccountDisabled":
    case "EmailNotVerified":
      return rejected(result);
    case "ValidationError":
      return invalidInput(result);
    case "RateLimited":
      return tooManyAttempts(result);
    default:
      return assertNever(result);
  }
}

// Sign-in with other providers (external.graphql) ------------------------------------------------

/** One "Sign in with …" button per provider. */
export function providerButtons(data: SignInProvidersQuery): { id: string; label: string }[] {
  return data.externalProviders.map((p) => ({ id: p.id, label: `Sign in with ${p.name}` }));
}

/** Where to send the browser (a top-level navigation), or why not. */
export function startProviderSignInOutcome(
  result: StartProviderSignInMutation["startExternalLogin"],
): Outcome<string> {
  switch (result.__typename) {
    case "StartExternalLoginSuccess":
      return { ok: true, value: result.authorizationUrl };
    case "ValidationError":
      return invalidInput(result);
    case "InvalidCredentials": // a link start: the password, or a recent sign-in, is needed
      return rejected(result, "currentPassword");
    case "RateLimited":
      return tooManyAttempts(result);
    default:
      return assertNever(result);
  }
}

export function finishProviderSignInOutcome(
  result: FinishProviderSignInMutation["finishExternalLogin"],
): Outcome<SignInStep> {
  switch (result.__typename) {
    case "AuthPayload":
      return { ok: true, value: { signedIn: result } };
    case "MfaRequired":
      return { ok: true, value: { secondFactor: result } };
    case "ExternalAccountConflict": // the address has an account: sign in to it, then link
    case "EmailNotVerified": // the provider did not vouch for the address
    case "AccountDisabled":
    case "InvalidToken": // used, expired, or not this browser's (the verifier did not match)
      return rejected(result);
    case "RateLimited":
      return tooManyAttempts(result);
    default:
      return assertNever(result);
  }
}

export function linkProviderAccountOutcome(
  result: LinkProviderAccountMutation["linkExternalAccount"],
): Outcome<LinkedAccountFragment> {
  switch (result.__typename) {
    case "LinkExternalAccountSuccess":
      return { ok: true, value: result.externalAccount };
    case "ExternalAccountConflict": // linked to another user
    case "InvalidToken":
      return rejected(result);
    default:
      return assertNever(result);
  }
}

export function unlinkProviderAccountOutcome(
  result: UnlinkProviderAccountMutation["unlinkExternalAccount"],
): Outcome<string> {
  switch (result.__typename) {
    case "UnlinkExternalAccountSuccess":
      return { ok: true, value: result.message };
    case "ValidationError": // the last way to sign in
      return invalidInput(result);
    case "NotFound":
      return rejected(result);
    default:
      return assertNever(result);
  }
}

export function linkedAccounts(data: MyLinkedAccountsQuery): Outcome<LinkedAccountFragment[]> {
  if (data.me === null) {
    return { ok: false, reason: "SignedOut", message: "Please sign in.", signedOut: true };
  }
  return { ok: true, value: data.me.externalAccounts };
}

// The signed-in user's account (account.graphql) -------------------------------------------------

export function updateProfileOutcome(
  result: UpdateProfileMutation["updateMe"],
): Outcome<UserProfileFragment> {
  switch (result.__typename) {
    case "UpdateMeSuccess":
      return { ok: true, value: result.user };
    case "ValidationError":
      return invalidInput(result);
    default:
      return assertNever(result);
  }
}

export function changePasswordOutcome(
  result: ChangePasswordMutation["changePassword"],
): Outcome<string> {
  switch (result.__typename) {
    case "ChangePasswordSuccess":
      return { ok: true, value: result.message };
    case "InvalidCredentials":
      return rejected(result, "currentPassword");
    case "ValidationError":
      return invalidInput(result);
    case "RateLimited":
      return tooManyAttempts(result);
    default:
      return assertNever(result);
  }
}

// Recovery and addresses (recovery.graphql) ------------------------------------------------------

export function requestPasswordResetOutcome(
  result: RequestPasswordResetMutation["requestPasswordReset"],
): Outcome<string> {
  switch (result.__typename) {
    case "RequestPasswordResetSuccess":
      return { ok: true, value: result.message }; // "check your mail", known address or not
    case "ValidationError":
      return invalidInput(result);
    case "RateLimited":
      return tooManyAttempts(result);
    default:
      return assertNever(result);
  }
}

export function resetPasswordOutcome(
  result: ResetPasswordMutation["resetPassword"],
): Outcome<string> {
  switch (result.__typename) {
    case "ResetPasswordSuccess":
      return { ok: true, value: result.message }; // every session ended: sign in again
    case "InvalidToken":
      return rejected(result); // expired or used link: offer to send a new one
    case "ValidationError":
      return invalidInput(result); // `password`, `passwordConfirm` (code `mismatch`)
    default:
      return assertNever(result);
  }
}

export function requestEmailVerificationOutcome(
  result: RequestEmailVerificationMutation["requestEmailVerification"],
): Outcome<string> {
  switch (result.__typename) {
    case "RequestEmailVerificationSuccess":
      return { ok: true, value: result.message };
    case "RateLimited":
      return tooManyAttempts(result);
    default:
      return assertNever(result);
  }
}

export function verifyEmailOutcome(
  result: VerifyEmailMutation["verifyEmail"],
): Outcome<UserProfileFragment> {
  switch (result.__typename) {
    case "VerifyEmailSuccess":
      return { ok: true, value: result.user };
    case "InvalidToken":
      return rejected(result);
    default:
      return assertNever(result);
  }
}

export function requestEmailChangeOutcome(
  result: RequestEmailChangeMutation["requestEmailChange"],
): Outcome<string> {
  switch (result.__typename) {
    case "RequestEmailChangeSuccess":
      return { ok: true, value: result.message };
    case "InvalidCredentials":
      return rejected(result, "currentPassword");
    case "EmailAlreadyRegistered":
      return rejected(result, "newEmail");
    case "ValidationError":
      return invalidInput(result);
    case "RateLimited":
      return tooManyAttempts(result);
    default:
      return assertNever(result);
  }
}

export function confirmEmailChangeOutcome(
  result: ConfirmEmailChangeMutation["confirmEmailChange"],
): Outcome<UserProfileFragment> {
  switch (result.__typename) {
    case "ConfirmEmailChangeSuccess":
      return { ok: true, value: result.user };
    case "InvalidToken":
    case "EmailAlreadyRegistered": // someone took the address since the link was sent
      return rejected(result);
    default:
      return assertNever(result);
  }
}

// Sessions and closing the account (sessions.graphql) --------------------------------------------

/** One signed-in device, as a "Where you're signed in" list or an admin's user page shows it. */
export interface DeviceRow {
  id: string; // for revokeSession
  device: string;
  ipAddress: string;
  lastUsed: Date;
  expires: Date;
  current: boolean; // "this device": ending it signs the user out here
}

export function deviceRows(sessions: readonly DeviceSessionFragment[]): DeviceRow[] {
  return sessions.map((s) => ({
    id: s.id,
    device: s.userAgent ?? "Unknown device",
    ipAddress: s.ipAddress ?? "",
    lastUsed: new Date(s.lastUsedAt),
    expires: new Date(s.expiresAt),
    current: s.current,
  }));
}

export function mySessions(data: MySessionsQuery): Outcome<DeviceRow[]> {
  if (data.me === null) {
    return { ok: false, reason: "SignedOut", message: "Please sign in.", signedOut: true };
  }
  return { ok: true, value: deviceRows(data.me.sessions) };
}

export function revokeSessionOutcome(
  result: RevokeSessionMutation["revokeSession"],
): Outcome<string> {
  switch (result.__typename) {
    case "RevokeSessionSuccess":
      return { ok: true, value: result.message };
    case "NotFound": // ended already, or not one of yours: refresh the list
      return rejected(result);
    default:
      return assertNever(result);
  }
}

/** With `keepCurrent: false` the caller's own session ends too: sign out afterwards. */
export function revokeAllSessionsOutcome(
  result: RevokeAllSessionsMutation["revokeAllSessions"],
): Outcome<{ message: string; count: number }> {
  switch (result.__typename) {
    case "RevokeAllSessionsSuccess":
      return { ok: true, value: { message: result.message, count: result.count } };
    default:
      // A union of one member is a plain object type to TypeScript: the `switch` narrows
      // `result.__typename` to `never` here, but not `result` itself.
      return assertNever(result.__typename);
  }
}

export function deleteAccountOutcome(result: DeleteAccountMutation["deleteMe"]): Outcome<string> {
  switch (result.__typename) {
    case "DeleteMeSuccess":
      return { ok: true, value: result.message }; // the account is gone: drop the tokens
    case "InvalidCredentials":
      return rejected(result, "currentPassword");
    case "LastAdmin": // another admin must exist first
      return rejected(result);
    case "RateLimited":
      return tooManyAttempts(result);
    default:
      return assertNever(result);
  }
}

// Paging, shared by the user list and the audit log ----------------------------------------------

/** One page of a connection as a table shows it. */
export interface Page<Row> {
  rows: Row[];
  totalCount: number; // every match of the filter, for "1–20 of 345"
  after: string | null; // the `after` variable of the next page; null on the last page
}

function toPage<Node, Row>(
  connection: {
    edges: ReadonlyArray<{ node: Node }>;
    pageInfo: NextPageFragment;
    totalCount: number;
  },
  toRow: (node: Node) => Row,
): Page<Row> {
  const { hasNextPage, endCursor } = connection.pageInfo;
  return {
    rows: connection.edges.map((edge) => toRow(edge.node)),
    totalCount: connection.totalCount,
    after: hasNextPage ? endCursor : null,
  };
}

// Admin: users (admin-users.graphql) -------------------------------------------------------------

export interface UserRow {
  id: string;
  name: string; // an invited user may have no name yet: then the address
  email: string;
  status: "active" | "unverified" | "disabled";
  roles: { id: string; name: string }[]; // ids for revokeRole
  permissions: string[];
  lastLogin: Date | null;
}

export function userRow(user: ManagedUserFragment): UserRow {
  const fullName = `${user.firstName} ${user.lastName}`.trim();
  return {
    id: user.id,
    name: fullName || user.email,
    email: user.email,
    status: !user.isActive ? "disabled" : user.isVerified ? "active" : "unverified",
    roles: user.roles.map(({ id, name }) => ({ id, name })),
    permissions: user.permissions,
    lastLogin: user.lastLoginAt === null ? null : new Date(user.lastLoginAt),
  };
}

export function userRows(data: UserListQuery): Page<UserRow> {
  return toPage(data.users, userRow);
}

export function createUserOutcome(
  result: CreateUserMutation["createUser"],
): Outcome<ManagedUserFragment> {
  switch (result.__typename) {
    case "CreateUserSuccess":
      return { ok: true, value: result.user }; // the invitation is on its way
    case "ValidationError":
      return invalidInput(result);
    case "EmailAlreadyRegistered":
      return rejected(result, "email");
    default:
      return assertNever(result);
  }
}

export function updateUserOutcome(
  result: UpdateUserMutation["updateUser"],
): Outcome<ManagedUserFragment> {
  switch (result.__typename) {
    case "UpdateUserSuccess":
      return { ok: true, value: result.user };
    case "ValidationError":
      return invalidInput(result);
    case "EmailAlreadyRegistered":
      return rejected(result, "email");
    case "LastAdmin":
      return rejected(result, "isActive");
    case "NotFound":
      return rejected(result);
    default:
      return assertNever(result);
  }
}

export function deleteUserOutcome(result: DeleteUserMutation["deleteUser"]): Outcome<string> {
  switch (result.__typename) {
    case "DeleteUserSuccess":
      return { ok: true, value: result.message };
    case "NotFound":
    case "LastAdmin":
      return rejected(result);
    default:
      return assertNever(result);
  }
}

export function verifyUserOutcome(
  result: VerifyUserMutation["verifyUser"],
): Outcome<ManagedUserFragment> {
  switch (result.__typename) {
    case "VerifyUserSuccess":
      return { ok: true, value: result.user };
    case "NotFound":
      return rejected(result);
    default:
      return assertNever(result);
  }
}

export function revokeUserSessionsOutcome(
  result: RevokeUserSessionsMutation["revokeUserSessions"],
): Outcome<number> {
  switch (result.__typename) {
    case "RevokeUserSessionsSuccess":
      return { ok: true, value: result.count };
    case "NotFound":
      return rejected(result);
    default:
      return assertNever(result);
  }
}

export function assignRoleOutcome(
  result: AssignRoleMutation["assignRole"],
): Outcome<ManagedUserFragment> {
  switch (result.__typename) {
    case "AssignRoleSuccess":
      return { ok: true, value: result.user };
    case "NotFound": // the user or the role
      return rejected(result);
    default:
      return assertNever(result);
  }
}

export function revokeRoleOutcome(
  result: RevokeRoleMutation["revokeRole"],
): Outcome<ManagedUserFragment> {
  switch (result.__typename) {
    case "RevokeRoleSuccess":
      return { ok: true, value: result.user };
    case "NotFound":
    case "LastAdmin":
      return rejected(result);
    default:
      return assertNever(result);
  }
}

// Admin: roles (admin-roles.graphql) -------------------------------------------------------------

/** One checkbox of the role editor. */
export interface PermissionChoice {
  code: string;
  description: string;
  granted: boolean;
}

/** The role editor's form: the role, and every permission with the role's ones ticked. */
export function roleEditor(
  data: RoleEditorQuery,
): Outcome<{ role: RoleDetailsFragment; choices: PermissionChoice[] }> {
  const { role, permissions } = data;
  if (role === null) {
    return { ok: false, reason: "NotFound", message: "No such role." };
  }
  const granted = new Set(role.permissions.map((p) => p.code));
  const choices = permissions.map((p) => ({ ...p, granted: granted.has(p.code) }));
  return { ok: true, value: { role, choices } };
}

export function createRoleOutcome(
  result: CreateRoleMutation["createRole"],
): Outcome<RoleDetailsFragment> {
  switch (result.__typename) {
    case "CreateRoleSuccess":
      return { ok: true, value: result.role };
    case "ValidationError":
      return invalidInput(result); // `name` (`taken`), `permissions` (`unknown_permission`)
    default:
      return assertNever(result);
  }
}

export function updateRoleOutcome(
  result: UpdateRoleMutation["updateRole"],
): Outcome<RoleDetailsFragment> {
  switch (result.__typename) {
    case "UpdateRoleSuccess":
      return { ok: true, value: result.role };
    case "ValidationError":
      return invalidInput(result); // also `system_role` when renaming a system role
    case "NotFound":
      return rejected(result);
    default:
      return assertNever(result);
  }
}

export function deleteRoleOutcome(result: DeleteRoleMutation["deleteRole"]): Outcome<string> {
  switch (result.__typename) {
    case "DeleteRoleSuccess":
      return { ok: true, value: result.message };
    case "ValidationError":
      return invalidInput(result); // `system_role`
    case "NotFound":
      return rejected(result);
    default:
      return assertNever(result);
  }
}

// Audit log (audit.graphql) ----------------------------------------------------------------------

export interface AuditRow {
  id: string;
  at: Date;
  action: string; // e.g. "password.changed"
  actorId: string | null; // null for the system; kept after the user is deleted
  subjectId: string | null;
  from: string; // address and browser, when the event came from a request
  details: string; // "key: value" pairs, for a one-line summary
}

export function auditRows(data: AuditLogQuery): Page<AuditRow> {
  return toPage(data.auditEvents, (event) => ({
    id: event.id,
    at: new Date(event.occurredAt),
    action: event.action,
    actorId: event.actorId,
    subjectId: event.subjectId,
    from: [event.ipAddress, event.userAgent].filter(Boolean).join(" · "),
    details: Object.entries(event.details)
      .map(([key, value]) => `${key}: ${JSON.stringify(value)}`)
      .join(", "),
  }));
}

// Admin: webhooks (webhooks.graphql) -------------------------------------------------------------

/** A new endpoint or a rotated secret: the secret is in this answer only, shown once. */
export interface EndpointWithSecret {
  endpoint: WebhookEndpointInfoFragment;
  secret: string; // `whsec_…`: hand it to the receiver, then forget it
}

export function createWebhookEndpointOutcome(
  result: CreateWebhookEndpointMutation["createWebhookEndpoint"],
): Outcome<EndpointWithSecret> {
  switch (result.__typename) {
    case "CreateWebhookEndpointSuccess":
      return { ok: true, value: { endpoint: result.endpoint, secret: result.secret } };
    case "ValidationError":
      return invalidInput(result); // `https_required`, `private_address`, `unknown_event`, …
    default:
      return assertNever(result);
  }
}

export function updateWebhookEndpointOutcome(
  result: UpdateWebhookEndpointMutation["updateWebhookEndpoint"],
): Outcome<WebhookEndpointInfoFragment> {
  switch (result.__typename) {
    case "UpdateWebhookEndpointSuccess":
      return { ok: true, value: result.endpoint };
    case "ValidationError":
      return invalidInput(result);
    case "NotFound":
      return rejected(result);
    default:
      return assertNever(result);
  }
}

export function rotateWebhookSecretOutcome(
  result: RotateWebhookSecretMutation["rotateWebhookSecret"],
): Outcome<EndpointWithSecret> {
  switch (result.__typename) {
    case "RotateWebhookSecretSuccess":
      // The old secret keeps signing beside the new one for 24 hours: time to switch over.
      return { ok: true, value: { endpoint: result.endpoint, secret: result.secret } };
    case "NotFound":
      return rejected(result);
    default:
      return assertNever(result);
  }
}

export function deleteWebhookEndpointOutcome(
  result: DeleteWebhookEndpointMutation["deleteWebhookEndpoint"],
): Outcome<string> {
  switch (result.__typename) {
    case "DeleteWebhookEndpointSuccess":
      return { ok: true, value: result.message };
    case "NotFound":
      return rejected(result);
    default:
      return assertNever(result);
  }
}

export function sendTestWebhookOutcome(
  result: SendTestWebhookMutation["sendTestWebhook"],
): Outcome<WebhookDeliveryInfoFragment> {
  switch (result.__typename) {
    case "SendTestWebhookSuccess":
      return { ok: true, value: result.delivery }; // pending: webhookDeliveries shows how it went
    case "NotFound":
      return rejected(result);
    default:
      return assertNever(result);
  }
}

export function redeliverWebhookOutcome(
  result: RedeliverWebhookMutation["redeliverWebhook"],
): Outcome<WebhookDeliveryInfoFragment> {
  switch (result.__typename) {
    case "RedeliverWebhookSuccess":
      return { ok: true, value: result.delivery };
    case "NotFound":
      return rejected(result);
    default:
      return assertNever(result);
  }
}

export interface DeliveryRow {
  id: string;
  eventId: string;
  event: string;
  status: string; // pending | delivered | failed | abandoned
  detail: string; // "HTTP 500, retry at …", "delivered after 2 attempts", …
}

export function deliveryRows(data: WebhookDeliveriesQuery): Page<DeliveryRow> {
  return toPage(data.webhookDeliveries, (d) => ({
    id: d.id,
    eventId: d.eventId,
    event: d.event,
    status: d.status,
    detail: [
      d.lastError ?? (d.lastResponseStatus === null ? null : `HTTP ${d.lastResponseStatus}`),
      d.nextAttemptAt === null ? null : `retry at ${new Date(d.nextAttemptAt).toISOString()}`,
      `${d.attempts} attempt${d.attempts === 1 ? "" : "s"}`,
    ]
      .filter(Boolean)
      .join(", "),
  }));
}

// Admin: OAuth clients (clients.graphql) ---------------------------------------------------------

/** A new client or a rotated secret: a confidential client's secret is in this answer only. */
export interface ClientWithSecret {
  client: OAuthClientInfoFragment;
  clientSecret: string | null; // null for a public client (PKCE alone)
}

export function createOAuthClientOutcome(
  result: CreateOAuthClientMutation["createOAuthClient"],
): Outcome<ClientWithSecret> {
  switch (result.__typename) {
    case "CreateOAuthClientSuccess":
      return {
        ok: true,
        value: { client: result.client, clientSecret: result.clientSecret ?? null },
      };
    case "ValidationError":
      return invalidInput(result); // `invalid_url`, `too_many`, `invalid_scope`, …
    default:
      return assertNever(result);
  }
}

export function updateOAuthClientOutcome(
  result: UpdateOAuthClientMutation["updateOAuthClient"],
): Outcome<OAuthClientInfoFragment> {
  switch (result.__typename) {
    case "UpdateOAuthClientSuccess":
      return { ok: true, value: result.client };
    case "ValidationError":
      return invalidInput(result);
    case "NotFound":
      return rejected(result);
    default:
      return assertNever(result);
  }
}

export function rotateOAuthClientSecretOutcome(
  result: RotateOAuthClientSecretMutation["rotateOAuthClientSecret"],
): Outcome<string | null> {
  switch (result.__typename) {
    case "RotateOAuthClientSecretSuccess":
      return { ok: true, value: result.clientSecret ?? null }; // the old one stopped at once
    case "NotFound":
      return rejected(result);
    default:
      return assertNever(result);
  }
}

export function deleteOAuthClientOutcome(
  result: DeleteOAuthClientMutation["deleteOAuthClient"],
): Outcome<string> {
  switch (result.__typename) {
    case "DeleteOAuthClientSuccess":
      return { ok: true, value: result.message };
    case "NotFound":
      return rejected(result);
    default:
      return assertNever(result);
  }
}

export function revokeConsentOutcome(
  result: RevokeConsentMutation["revokeConsent"],
): Outcome<string> {
  switch (result.__typename) {
    case "RevokeConsentSuccess":
      return { ok: true, value: result.message };
    case "NotFound":
      return rejected(result); // no such client, or no consent to forget
    default:
      return assertNever(result);
  }
}
