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

DB_POOL = Gauge(
    "identity_db_pool_connections",
    "Database connections of this process's pool, by state.",
    ["state"],
    multiprocess_mode="livesum",
)

_OPERATION_NAMES: set[str] = set()
_MAX_OPERATION_NAMES = 200


def operation_label(name: str | None) -> str:
    """Client-chosen operation names as a metric label, without unbounded cardinality."""
    if not name:
        return "unnamed"
    if name in _OPERATION_NAMES:
        return name
    if len(_OPERATION_NAMES) >= _MAX_OPERATION_NAMES or not _is_plain(name):
        return "other"
    _OPERATION_NAMES.add(name)
    return name


def _is_plain(name: str) -> bool:
    return len(name) <= 64 and name.replace("_", "").isalnum() and name.isascii()


def render(pool_status: dict[str, int]) -> tuple[bytes, str]:
    """The exposition text; with several workers, every worker's samples (multiprocess mode)."""
    import os

    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client import REGISTRY as DEFAULT_REGISTRY

    for state, value in pool_status.items():
        DB_POOL.labels(state).set(value)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(DEFAULT_REGISTRY), CONTENT_TYPE_LATEST


WEBHOOK_DELIVERIES = Counter(
    "identity_webhook_deliveries_total",
    "Webhook delivery attempts by outcome (delivered, retried, abandoned, failed, refused).",
    ["outcome"],
)
WEBHOOK_QUEUE_DEPTH = Gauge(
    "identity_webhook_deliveries_pending",
    "Webhook deliveries waiting to be delivered.",
    multiprocess_mode="livemax",
)
WEBHOOK_OLDEST_PENDING = Gauge(
    "identity_webhook_oldest_pending_seconds",
    "Age of the oldest webhook delivery still waiting (0 when none waits).",
    multiprocess_mode="livemax",
)
