"""Prometheus metrics, one registry per app (replicas and tests never share one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from registry.core.profiles import PROFILE_ENGINES


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "reliquary_http_requests_total",
            "HTTP requests handled",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "reliquary_http_request_duration_seconds",
            "Time to answer a request",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30),
        )
        self.bytes_in = Counter(
            "reliquary_blob_bytes_received_total", "Blob bytes received", registry=self.registry
        )
        self.bytes_out = Counter(
            "reliquary_blob_bytes_sent_total", "Blob bytes sent", registry=self.registry
        )
        self.redirects = Counter(
            "reliquary_blob_redirects_total",
            "Blob GETs answered with a presigned object-store URL",
            registry=self.registry,
        )
        self.upload_seconds = Histogram(
            "reliquary_blob_upload_duration_seconds",
            "Time to receive, verify and publish one blob",
            ["outcome"],
            registry=self.registry,
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
        )
        self.nondeterministic = Counter(
            "reliquary_nondeterministic_total",
            "Nondeterminism findings: a worker's runs disagreed, or workers disagreed",
            ["profile"],
            registry=self.registry,
        )
        self.verification_seconds = Histogram(
            "reliquary_verification_duration_seconds",
            "From a job's creation to its accepted attestation",
            ["profile"],
            registry=self.registry,
            buckets=(5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600),
        )
        self.jobs_failed = Counter(
            "reliquary_verification_jobs_failed_total",
            "Verification jobs that ended failed (attempts exhausted or refused)",
            ["profile"],
            registry=self.registry,
        )
        self.reconciled = Counter(
            "reliquary_store_reconciled_total",
            "What store reconciliation put right: orphaned blobs recorded (or removed when "
            "they did not verify), abandoned staged writes, expired or finished uploads",
            ["what"],
            registry=self.registry,
        )
        self.reconcile_runs = Counter(
            "reliquary_store_reconcile_runs_total",
            "Store reconciliation passes (at start, then periodically) by outcome",
            ["outcome"],
            registry=self.registry,
        )
        for what in (
            "orphan_recorded",
            "orphan_removed",
            "staged_write",
            "expired_upload",
            "unowned_upload",
        ):
            self.reconciled.labels(what=what)
        for outcome in ("ok", "failed"):
            self.reconcile_runs.labels(outcome=outcome)
        for profile in PROFILE_ENGINES:  # series exist at 0, so alerts see their first increase
            self.nondeterministic.labels(profile=profile)
            self.verification_seconds.labels(profile=profile)
            self.jobs_failed.labels(profile=profile)
