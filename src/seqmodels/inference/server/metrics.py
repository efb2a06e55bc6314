"""``GET /metrics``: the server's Prometheus metrics (``prometheus_client``), in a registry of each app's own.

With ``--workers N``, each worker process has its own: a scrape reads the worker that answers it (the
``pid`` in ``/stats`` tells which).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """What ``/metrics`` shows: ``POST /predict`` requests by status and their latency, the requests in flight,
    the batches' sizes, the sentences and tokens predicted, the queue's depth and the model's load time."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.requests = Counter("seqmodels_requests", "POST /predict requests answered, by HTTP status", ["status"],
                                registry=registry)  # fmt: skip
        self.latency = Histogram("seqmodels_request_seconds", "POST /predict latency, from the request to its answer",
                                 buckets=LATENCY_BUCKETS, registry=registry)  # fmt: skip
        self.in_flight = Gauge("seqmodels_in_flight_requests", "POST /predict requests received and not yet answered",
                               registry=registry)  # fmt: skip
        self.batch_size = Histogram("seqmodels_batch_sentences", "Sentences per forward pass", buckets=BATCH_BUCKETS,
                                    registry=registry)  # fmt: skip
        self.sentences = Counter("seqmodels_sentences", "Sentences predicted", registry=registry)
        self.tokens = Counter("seqmodels_tokens", "Tokens predicted", registry=registry)
        self.queue = Gauge("seqmodels_queue_sentences", "Sentences waiting for a batch", registry=registry)
        self.load_seconds = Gauge("seqmodels_model_load_seconds", "How long the model took to load", registry=registry)

    def watch_queue(self, depth: Callable[[], float]) -> None:
        """Read the queue's depth at each scrape."""
        self.queue.set_function(depth)

    def observe_batch(self, sentences: int, tokens: int, seconds: float) -> None:
        """The Batcher's ``on_batch``."""
        self.batch_size.observe(sentences)
        self.sentences.inc(sentences)
        self.tokens.inc(tokens)


class PredictMetrics:
    """ASGI middleware: counts and times each ``POST /predict`` (whatever answers it, an error handler included;
    an exception that escapes every handler counts as the 500 it becomes)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/predict":
            await self.app(scope, receive, send)
            return
        status, started = 500, time.perf_counter()

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with self.metrics.in_flight.track_inprogress():
            try:
                await self.app(scope, receive, send_counted)
            finally:
                self.metrics.requests.labels(str(status)).inc()
                self.metrics.latency.observe(time.perf_counter() - started)
