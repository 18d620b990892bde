"""identity as an OpenID Provider: the plain-HTTP endpoints and the hosted pages."""
