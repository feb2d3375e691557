"""Every Prometheus metric of the processor, and only here.

Dashboards and alert rules name these metrics; tests check that they name nothing else.
Labels have bounded values: outcomes, message types, operations, HTTP status codes,
stages, partitions. Never a user id, never a free-form event name.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREFIX = "trengo_processor"

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS = Counter(
    f"{PREFIX}_events",
    "Events finished, by outcome (delivered|dead_lettered|skipped) and message type.",
    ["outcome", "type"],
    registry=REGISTRY,
)
SKIPPED = Counter(
    f"{PREFIX}_skipped",
    "Events skipped as RudderStack would not have sent them to Trengo, by reason "
    "(message_type|unmapped_event|integrations|consent|ignore_types|transformation).",
    ["reason"],
    registry=REGISTRY,
)
TRANSFORMATION_THREADS_ABANDONED = Counter(
    f"{PREFIX}_transformation_threads_abandoned",
    "Python transformation calls over the time limit that did not stop when interrupted "
    "(their thread keeps running, detached).",
    registry=REGISTRY,
)
TRENGO_REQUESTS = Counter(
    f"{PREFIX}_trengo_requests",
    "Trengo API calls, by operation and HTTP status (or 'error' when no response came).",
    ["operation", "status"],
    registry=REGISTRY,
)
TRENGO_REQUEST_DURATION = Histogram(
    f"{PREFIX}_trengo_request_duration_seconds",
    "Trengo API call duration, by operation.",
    ["operation"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
RATE_LIMIT_REMAINING = Gauge(
    f"{PREFIX}_rate_limit_remaining",
    "Requests left in Trengo's current rate-limit window, as last reported by Trengo.",
    registry=REGISTRY,
)
THROTTLED_SECONDS = Counter(
    f"{PREFIX}_throttled_seconds",
    "Seconds calls waited for the rate limiter before being sent.",
    registry=REGISTRY,
)
RETRIES = Counter(
    f"{PREFIX}_retries",
    "Delivery attempts scheduled for retry, by reason (http_429|http_5xx|timeout|...).",
    ["reason"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    f"{PREFIX}_dead_letters",
    "Events written to the dead-letter topic, by stage (decode|validate|map|deliver).",
    ["stage"],
    registry=REGISTRY,
)
INFLIGHT_EVENTS = Gauge(
    f"{PREFIX}_inflight_events",
    "Events polled from Kafka and not yet done (queued or being delivered).",
    registry=REGISTRY,
)
INFLIGHT_BYTES = Gauge(
    f"{PREFIX}_inflight_bytes",
    "Record bytes (key, value, headers) of the events counted in inflight_events.",
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    f"{PREFIX}_consumer_lag",
    "Messages between the committed offset and the high watermark, per assigned partition.",
    ["partition"],
    registry=REGISTRY,
)
LAST_COMMIT_TIMESTAMP = Gauge(
    f"{PREFIX}_last_commit_timestamp_seconds",
    "Unix time of the last successful offset commit.",
    registry=REGISTRY,
)
CONTACT_CACHE_REQUESTS = Counter(
    f"{PREFIX}_contact_cache_requests",
    "Contact-id cache lookups, by result (hit|miss).",
    ["result"],
    registry=REGISTRY,
)
UPDATES_SKIPPED = Counter(
    f"{PREFIX}_updates_skipped",
    "Contact updates not sent because the name equals the last one sent (or was coalesced).",
    ["reason"],
    registry=REGISTRY,
)
DESTINATION_UP = Gauge(
    f"{PREFIX}_destination_up",
    "1 while Trengo accepts the token, 0 while the destination is halted (401/403).",
    registry=REGISTRY,
)
DEAD_LETTER_RATIO = Gauge(
    f"{PREFIX}_dead_letter_ratio",
    "Share of dead letters among the last delivery.dead_letter_window deliveries (deliver stage).",
    registry=REGISTRY,
)
DEAD_LETTER_HALT = Gauge(
    f"{PREFIX}_dead_letter_halt",
    "1 once the destination halted for delivery.max_dead_letter_ratio (until a restart), else 0.",
    registry=REGISTRY,
)
EVENT_DELIVERY_LATENCY = Histogram(
    f"{PREFIX}_event_delivery_latency_seconds",
    "Time from the Kafka message timestamp to Trengo accepting the work.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 10800),
    registry=REGISTRY,
)
PARTITIONS_PAUSED = Gauge(
    f"{PREFIX}_partitions_paused",
    "Assigned partitions currently paused for backpressure or a halted destination.",
    registry=REGISTRY,
)
PARTITION_STALLED = Gauge(
    f"{PREFIX}_partition_stalled",
    "1 while an assigned partition holds pending events and none was attempted or finished "
    "for server.stall_seconds (the pod's /healthz fails), else 0.",
    ["partition"],
    registry=REGISTRY,
)

DESTINATION_UP.set(1)
DEAD_LETTER_HALT.set(0)
