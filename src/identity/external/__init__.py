"""Plain-HTTP endpoints of sign-in with other providers (the provider sends the browser here)."""
