"""The FastAPI application: ``/predict`` through the :class:`~.batcher.Batcher`, health, readiness, metrics,
the model's ``/info`` and the demo page. The model loads in the background, in the process it will run in
(:mod:`.worker`), so that ``/health/live`` answers once the server listens (after the command has checked the
checkpoint) and ``/health/ready`` says when it can serve."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict

from seqmodels.checkpoints import package_version
from seqmodels.data.readers.common import token_problem
from seqmodels.inference.predictor import TOKENIZERS
from seqmodels.inference.server.batcher import Batcher, QueueFull, model_threads
from seqmodels.inference.server.drain import CloseWhileDraining, Drain
from seqmodels.inference.server.errors import RequestLimits, add_error_handlers, error_response
from seqmodels.inference.server.metrics import Metrics, PredictMetrics
from seqmodels.inference.server.worker import ModelPool, ModelStopped, split_cores

STATIC = Path(__file__).parent / "static"  # the demo page
SETTINGS_ENV = "SEQMODELS_SERVE"  # how the settings reach each uvicorn worker process
logger = logging.getLogger("seqmodels.inference.server")


@dataclass
class Settings:
    """What a server process loads, and how it batches and bounds requests (``seqmodels-serve --help``)."""

    checkpoint: str
    backend: str = "torch"
    device: str = "cpu"
    precision: str = "32"  # bf16: the forward pass under bf16 autocast
    tokenizer: str = "simple"
    max_batch_size: int = 32  # sentences per forward pass
    max_batch_tokens: int = 8192  # tokens per forward pass (a longer sentence goes alone)
    batch_timeout_ms: float = 10.0
    max_sentences: int = 256  # per request
    max_sentence_tokens: int = 10_000  # per sentence; longer than the model's chunk length is fine (chunked)
    max_body_bytes: int = 16 * 2**20
    max_queue: int = 4096  # sentences waiting for a batch; past it, 503
    request_timeout_s: float = 0.0  # 0: none (a request within the limits may take minutes)
    drain_timeout_s: float = 30.0
    model_processes: int = 0  # processes that each run batches on a copy of the model; 0: worker.split_cores's choice
    threads: int = 0  # torch's intra-op threads per model process; 0: torch's default shared between the processes
    host: str = "127.0.0.1"  # where uvicorn listens: for the start-up line and /info
    port: int = 8000
    workers: int = 1


class PredictRequest(BaseModel):
    """Exactly one of ``text``, ``tokens`` or ``sentences`` (each a text or a token list)."""

    model_config = ConfigDict(extra="forbid")
    text: str | None = None
    tokens: list[str] | None = None
    sentences: list[str | list[str]] | None = None


class ServingState:
    """One process's serving state: the model (once loaded), its batcher, the drain and the metrics."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.processes, threads = split_cores(settings.model_processes, settings.threads, settings.device)
        self.model = ModelPool(self.processes, threads)
        self.executor = model_threads(self.processes)  # where the batcher waits for the model's processes
        self.batcher: Batcher | None = None
        self.info: dict[str, Any] = {}
        self.drain = Drain(settings.drain_timeout_s, self.answer_unanswered)
        self.failure: str | None = None  # why the model cannot serve: it failed to load, or its process stopped

    async def run(self) -> None:
        """Load the model in its processes, log the start-up line (or why loading failed), then batch until
        cancelled."""
        s, started, loop = self.settings, time.perf_counter(), asyncio.get_running_loop()
        try:
            model = await loop.run_in_executor(self.executor, self.model.load, s.checkpoint, s.backend, s.device,
                                               s.max_batch_size, s.precision)  # fmt: skip
        except Exception as error:  # noqa: BLE001  (told by readiness and the log; the process stays up to say it)
            reason = " ".join(str(error).split())
            self.failure = f"the model failed to load: {reason}"
            logger.error("seqmodels-serve: cannot load %s: %s", s.checkpoint, reason)
            return
        seconds = time.perf_counter() - started
        self.metrics.load_seconds.set(seconds)
        self.info, threads = info(model, s, self.processes), model["threads"]
        self.batcher = Batcher(self.model, s.max_batch_size, s.batch_timeout_ms / 1000, s.max_batch_tokens,
                               s.max_queue, self.executor, self.metrics.observe_batch, self.processes)  # fmt: skip
        self.metrics.watch_queue(lambda: self.batcher.queued)
        heads = ", ".join(self.info["heads"])
        logger.info("seqmodels-serve: serving %s (heads: %s) on http://%s:%d; backend %s on %s, model processes %d, "
                    "torch threads %d each, workers %d (this one pid %d); loaded in %.2f s", Path(s.checkpoint).name,
                    heads, s.host, s.port, s.backend, s.device, self.processes, threads, s.workers, os.getpid(),
                    seconds)  # fmt: skip
        await self.batcher.run()

    def not_ready(self) -> str | None:
        """Why the server cannot take predictions now, or None."""
        if self.drain.draining:
            return "draining: the server is shutting down"
        return self.model_failure() or (None if self.batcher else "the model is still loading")

    def model_failure(self) -> str | None:
        """Why the model cannot serve (it failed to load, or one of its processes stopped), or None."""
        if not self.failure and not self.model.alive():
            self.stopped(str(ModelStopped()))
        return self.failure

    async def predict(self, sentences: list[list[str]]) -> list[dict[str, Any]]:
        if self.drain.expired:
            raise HTTPException(503, "draining: past --drain-timeout; the server is shutting down")
        if self.batcher is None:
            raise HTTPException(503, self.not_ready(), {"Retry-After": "1"})
        if failure := self.model_failure():  # the other model processes could still answer: not by chance
            raise HTTPException(503, failure)
        try:
            return await self.batcher.predict(sentences, self.settings.request_timeout_s or None)
        except QueueFull as error:
            raise HTTPException(503, str(error), {"Retry-After": "1"}) from None
        except ModelStopped as error:
            self.stopped(str(error))
            raise HTTPException(503, str(error)) from None
        except TimeoutError:
            raise HTTPException(504, f"not answered within --request-timeout {self.settings.request_timeout_s:g} s; "
                                     "its remaining batches were dropped") from None  # fmt: skip

    def stopped(self, why: str) -> None:
        """A model's process has gone: readiness and predictions turn 503, so that the orchestrator restarts the
        server."""
        if not self.failure:
            self.failure = why
            logger.error("seqmodels-serve: %s; readiness is now 503", why)

    def answer_unanswered(self) -> int:
        """Past the drain's timeout: a 503 for every request still waiting."""
        expired = HTTPException(503, f"draining: not answered within --drain-timeout {self.drain.timeout:g} s")
        return self.batcher.fail_pending(expired) if self.batcher else 0


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application; without ``settings``, those the ``seqmodels-serve`` command put in the environment."""
    settings = settings or Settings(**json.loads(os.environ[SETTINGS_ENV]))
    serving = ServingState(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        serving.drain.hook_signals()
        running = asyncio.create_task(serving.run())
        yield
        running.cancel()  # uvicorn has answered the requests in flight by now
        serving.executor.shutdown(wait=False, cancel_futures=True)
        serving.model.close()
        if serving.drain.past_timeout:
            logger.info("stopped: %d requests got a 503 past --drain-timeout", serving.drain.past_timeout)
        else:
            logger.info("stopped: every request received got its answer")

    # /docs and /redoc with the Swagger UI and ReDoc assets shipped in fastapi-offline: FastAPI's own load from a CDN
    app = FastAPIOffline(title="seqmodels", version=package_version(), lifespan=lifespan,
                         description="Tags and/or classifies sentences with a seqmodels checkpoint.")  # fmt: skip
    app.state.serving = serving
    add_error_handlers(app)
    app.add_middleware(RequestLimits, max_bytes=settings.max_body_bytes)
    app.add_middleware(PredictMetrics, metrics=serving.metrics)  # outside RequestLimits: counts its 413s and 415s
    app.add_middleware(CloseWhileDraining, drain=serving.drain)
    add_routes(app, serving)
    return app


def request_sentences(request: PredictRequest, settings: Settings) -> list[list[str]]:
    """The request's sentences as token lists; an :class:`HTTPException` (422 for the schema or a token the model
    cannot read, 413 past the limits) naming what is wrong. Checked here, not in the batch: a bad request fails
    alone."""
    given = [name for name in ("text", "tokens", "sentences") if getattr(request, name) is not None]
    if len(given) != 1:
        raise HTTPException(422, f"give exactly one of text, tokens or sentences (got {', '.join(given) or 'none'})")
    items = request.sentences if request.sentences is not None else [getattr(request, given[0])]
    if not items:
        raise HTTPException(422, "sentences: expected at least one sentence, got an empty list")
    if len(items) > settings.max_sentences:
        raise HTTPException(413, f"{len(items)} sentences; a request may have at most {settings.max_sentences}")
    tokenize = TOKENIZERS[settings.tokenizer]
    sentences = [tokenize(item) if isinstance(item, str) else item for item in items]
    names = [f"sentences.{i}" for i in range(len(items))] if request.sentences is not None else given
    for name, tokens in zip(names, sentences):
        if problem := token_problem(tokens):
            raise HTTPException(422, f"{name}: {problem}")
    longest = max(len(s) for s in sentences)
    if longest > settings.max_sentence_tokens:
        raise HTTPException(413, f"a sentence of {longest} tokens; at most {settings.max_sentence_tokens}")
    return sentences


def add_routes(app: FastAPI, serving: ServingState) -> None:
    @app.post("/predict")
    async def predict(request: PredictRequest) -> JSONResponse:
        """The records ``seqmodels-predict`` writes: one for ``text`` or ``tokens``, a list for ``sentences``."""
        sentences = request_sentences(request, serving.settings)
        records = [{"tokens": s, **r} for s, r in zip(sentences, await serving.predict(sentences))]
        # already JSON-ready: a JSONResponse skips FastAPI's jsonable_encoder, which walks every probability
        return JSONResponse(records if request.sentences is not None else records[0])

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        """The process answers (whether or not the model has loaded)."""
        return {"status": "ok"}

    @app.get("/health/ready")
    @app.get("/health")
    async def ready() -> JSONResponse:
        """200 once the model has loaded, 503 before and while draining."""
        reason = serving.not_ready()
        return error_response(503, reason) if reason else JSONResponse({"status": "ok"})

    @app.get("/info")
    async def model_info() -> JSONResponse:
        return JSONResponse(serving.info) if serving.info else error_response(503, serving.not_ready() or "loading")

    @app.get("/stats")
    async def stats() -> dict[str, Any]:
        batcher = serving.batcher
        if batcher is None:
            raise HTTPException(503, serving.not_ready())
        return {"requests": batcher.requests, "sentences": batcher.sentences, "in_flight": batcher.in_flight,
                "queued": batcher.queued, "pid": os.getpid(), "model_pids": serving.model.pids,
                "busy_s": round(batcher.busy_s, 3),  # summed over the model processes
                "model_processes": serving.processes, "threads": serving.info["serving"]["threads"],  # in each
                "batch_sizes": {str(size): n for size, n in sorted(batcher.batch_sizes.items())}}  # fmt: skip

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(serving.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")


def info(model: dict[str, Any], settings: Settings, processes: int) -> dict[str, Any]:
    """What ``/info`` answers: the model's heads and settings (:func:`.worker.model_info`), the serving settings
    (with the model processes and the torch threads of each)."""
    serving = asdict(settings) | {"checkpoint": Path(settings.checkpoint).name, "threads": model["threads"],
                                  "model_processes": processes}  # fmt: skip
    return {"version": package_version(), "heads": model["heads"],
            "model": json.loads(json.dumps(model["model"], default=str)), "serving": serving}
