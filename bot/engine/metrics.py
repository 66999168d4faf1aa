"""What the engine counts for an operator, in Prometheus's terms (prometheus-client).

Counters and the duration histogram move as jobs do; the gauges (queue length, slots in use)
are set from the engine's state just before each scrape (`Engine.refresh_metrics`). Every
engine has its own registry, so several engines (tests) never share numbers.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bot.engine.jobs import Job, JobState

# Seconds from request to delivered video: a queue wait plus a few minutes of generation.
DURATION_BUCKETS = (15, 30, 60, 120, 180, 300, 450, 600, 900, 1200, 1800, 3600, 7200)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.queue = Gauge("wanbot_queue_length", "Jobs waiting for a slot", ["model"],
                           registry=r)
        self.slots_used = Gauge("wanbot_slots_used", "Tasks at the provider (submitting, "
                                "pending, running)", ["model", "key"], registry=r)
        self.slots = Gauge("wanbot_slots", "Slots the key's account has for the model",
                           ["model", "key"], registry=r)
        self.keys_usable = Gauge("wanbot_api_keys_usable", "API keys not set aside",
                                 registry=r)
        self.queries = Counter("wanbot_status_queries", "Task status queries sent (details "
                               "and lists); rate() is the poll rate", ["key"], registry=r)
        self.api_errors = Counter("wanbot_api_errors", "Errors the provider answered, by code",
                                  ["key", "code"], registry=r)
        self.finished = Counter("wanbot_jobs_finished", "Jobs that ended, by final state",
                                ["model", "state"], registry=r)
        self.errors = Counter("wanbot_job_errors", "Jobs that failed or expired, by code",
                              ["code"], registry=r)
        self.deliveries = Counter("wanbot_deliveries", "Videos delivered", ["platform"],
                                  registry=r)
        self.duration = Histogram("wanbot_job_duration_seconds", "From request to delivered "
                                  "video", ["model"], buckets=DURATION_BUCKETS, registry=r)

    def queried(self, key: str) -> None:
        self.queries.labels(key).inc()

    def api_error(self, key: str, code: str) -> None:
        self.api_errors.labels(key, code).inc()

    def moved(self, job: Job) -> None:
        """A job reached a new state (written in the store)."""
        if not job.terminal:
            return
        self.finished.labels(job.model, str(job.state)).inc()
        if job.state is JobState.DELIVERED:
            self.deliveries.labels(job.platform).inc()
            self.duration.labels(job.model).observe(
                max(0.0, (job.delivered_at or job.updated_at) - job.created_at))
        elif job.state in (JobState.FAILED, JobState.EXPIRED):
            self.errors.labels(job.error_code or "unknown").inc()

    def exposition(self) -> bytes:
        """The text a scrape of /metrics gets."""
        return generate_latest(self.registry)
