// Turning each mutation's result union into what a screen shows, one member at a time.
//
// Every `switch` below lists every member of its union and ends in `assertNever`: when the
// schema gains a member (a new error type, say) that a switch does not handle, `tsc --noEmit`
// fails here, instead of the new case reaching users as "undefined". A member the schema drops
// fails too (its `case` no longer type-checks). Fix it by deciding what the screen should do.

import type {
  ChangePasswordMutation,
  InvalidInputFragment,
  RefreshSessionMutation,
  SignInMutation,
  SignOutMutation,
  SignUpMutation,
  SignedInFragment,
  TooManyAttemptsFragment,
  UpdateProfileMutation,
  UserProfileFragment,
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

export function assertNever(value: never): never {
  throw new Error(`Unhandled result: ${JSON.stringify(value)}`);
}

function invalidInput(error: InvalidInputFragment): Outcome<never> {
  const fields = Object.fromEntries(error.fields.map((f) => [f.field, f.message]));
  return { ok: false, reason: "ValidationError", message: error.message, fields };
}

function tooManyAttempts(error: TooManyAttemptsFragment): Outcome<never> {
  return { ok: false, reason: "RateLimited", message: error.message, retryAfter: error.retryAfter };
}

export function signUpOutcome(result: SignUpMutation["register"]): Outcome<UserProfileFragment> {
  switch (result.__typename) {
    case "RegisterSuccess":
      return { ok: true, value: result.user };
    case "ValidationError":
      return invalidInput(result);
    case "EmailAlreadyRegistered":
      return {
        ok: false,
        reason: result.__typename,
        message: result.message,
        fields: { email: result.message },
      };
    case "RateLimited":
      return tooManyAttempts(result);
    default:
      return assertNever(result);
  }
}

export function signInOutcome(result: SignInMutation["login"]): Outcome<SignedInFragment> {
  switch (result.__typename) {
    case "AuthPayload":
      return { ok: true, value: result };
    case "InvalidCredentials":
    case "AccountDisabled":
    case "EmailNotVerified":
      return { ok: false, reason: result.__typename, message: result.message };
    case "ValidationError":
      return invalidInput(result);
    case "RateLimited":
      return tooManyAttempts(result);
    default:
      return assertNever(result);
  }
}

export function refreshOutcome(
  result: RefreshSessionMutation["refreshToken"],
): Outcome<SignedInFragment> {
  switch (result.__typename) {
    case "AuthPayload":
      return { ok: true, value: result };
    case "InvalidToken":
      return { ok: false, reason: result.__typename, message: result.message, signedOut: true };
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
      return {
        ok: false,
        reason: result.__typename,
        message: result.message,
        fields: { currentPassword: result.message },
      };
    case "ValidationError":
      return invalidInput(result);
    case "RateLimited":
      return tooManyAttempts(result);
    default:
      return assertNever(result);
  }
}
