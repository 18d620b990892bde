"""Prometheus metrics. Counters live at module level, as prometheus-client expects."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Histogram(
    "identity_graphql_request_duration_seconds",
    "GraphQL requests by operation name and outcome.",
    ["operation", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
LOGINS = Counter("identity_logins_total", "Sign-in attempts by outcome.", ["outcome"])
RATE_LIMITED = Counter("identity_rate_limited_total", "Requests refused by a rate limit.", ["rule"])
RATE_LIMIT_FALLBACKS = Counter(
    "identity_rate_limit_fallback_total",
    "Rate-limit checks answered from process memory because Redis was unreachable.",
)
REFRESH_REUSE = Counter(
    "identity_refresh_token_reuse_total", "Replayed refresh tokens (sessions ended)."
)
MAIL_SENT = Counter("identity_mail_sent_total", "Mail delivered.", ["template"])
MAIL_FAILURES = Counter(
    "identity_mail_delivery_failures_total", "Failed mail delivery attempts.", ["template"]
)
OUTBOX_DEPTH = Gauge(
    "identity_outbox_pending", "Mail waiting in the outbox.", multiprocess_mode="livemax"
)
