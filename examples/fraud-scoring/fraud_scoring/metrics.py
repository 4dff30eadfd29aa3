"""The workload's own Prometheus series (the engine's latency, batch and DLQ series come for free)."""

from __future__ import annotations

from prometheus_client import Counter

ALERTS = Counter("workers_fraud_alerts_total", "Transactions scored at or above the alert threshold.", ["worker"])
