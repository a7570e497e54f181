"""Prometheus metrics of the proxy node, in the process-wide registry.

Registered once per process, so an in-process node's numbers also appear on the backend's
``/metrics``; a standalone node serves them on its own ``/metrics``. Label values come from
settings (model and upstream names) or fixed vocabularies, never from what a client sends.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

REQUESTS = Counter(
    "twin_proxy_requests", "Chat completion requests by outcome", ["model", "outcome"]
)  # outcome: ok, failed, cancelled, payment_refused, rejected
TIME_TO_FIRST_TOKEN = Histogram(
    "twin_proxy_time_to_first_token_seconds",
    "From the request's arrival to its first token",
    ["model", "upstream"],
    buckets=_LATENCY_BUCKETS,
)
REQUEST_DURATION = Histogram(
    "twin_proxy_request_duration_seconds",
    "From arrival to the reply's end",
    ["model", "outcome"],
    buckets=_LATENCY_BUCKETS,
)
TOKENS = Counter("twin_proxy_tokens", "Tokens reported by the upstream", ["model", "kind"])  # kind: prompt, completion
UPSTREAM_ERRORS = Counter(
    "twin_proxy_upstream_errors", "Upstream failures", ["upstream", "phase"]
)  # phase: before_first_token, mid_stream
IN_FLIGHT = Gauge("twin_proxy_in_flight_requests", "Requests being answered now (streams included)")
PAYMENTS = Counter(
    "twin_proxy_payments", "x402 payments by outcome", ["outcome"]
)  # required (none sent), refused, verified, settled, settle_failed, released
