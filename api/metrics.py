"""Prometheus metrics of the API (served at ``/metrics``), on a registry per app so tests stay isolated."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "urbaneye_api_requests_total",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency_s = Histogram(
            "urbaneye_api_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.decisions = Counter(
            "urbaneye_review_decisions_total",
            "review decisions",
            ["decision", "reason"],
            registry=self.registry,
        )
        self.undos = Counter("urbaneye_review_undos_total", "review decisions undone", registry=self.registry)
        self.login_failures = Counter(
            "urbaneye_login_failures_total", "failed logins", registry=self.registry
        )
