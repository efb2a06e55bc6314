"""``seqmodels-serve``: a checkpoint behind HTTP, with dynamic batching and a demo page (FastAPI + uvicorn).

``seqmodels-serve CHECKPOINT [--host 127.0.0.1] [--port 8000] [--max-batch-size 32] [--batch-timeout-ms 10]
[--workers N] [--backend torch|onnx|torchscript] [--device cpu|cuda] [--tokenizer simple|whitespace]``

- ``POST /predict``: ``{"text": "..."}`` (tokenized by ``--tokenizer``), ``{"tokens": [...]}``, or
  ``{"sentences": [...]}`` (texts and/or token lists). The answer is the record ``seqmodels-predict`` writes
  for the same input (a list of them for ``sentences``): ``tokens``, and every head's fields.
- ``GET /health``, ``GET /info`` (heads, tag and label sets, the model's settings, the version),
  ``GET /stats`` (requests, sentences, and the batch sizes that formed), ``GET /docs`` (OpenAPI), and the
  demo page at ``/``.

Requests arriving together are batched: the first one waits at most ``--batch-timeout-ms`` for others, up
to ``--max-batch-size`` sentences, and the batch goes through the model in the event loop's thread. Each uvicorn
worker process loads the model once. A bad request gets a 4xx status and ``{"error": "one line"}``, and the
server carries on. A token the model cannot read (empty, or a lone surrogate such as ``"\\ud800"``, valid JSON
but no character) is a 422 naming the sentence and the token. SIGTERM stops new connections, finishes the
requests in flight, then exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from seqmodels.backends import BACKENDS, load_predictor
from seqmodels.checkpoints import CheckpointError, package_version
from seqmodels.data.readers.common import token_problem
from seqmodels.predictor import TOKENIZERS, Predictor

STATIC = Path(__file__).with_name("static")
SETTINGS_ENV = "SEQMODELS_SERVE"  # how the settings reach each uvicorn worker process


@dataclass
class Settings:
    """What a server process loads and how it batches and bounds requests."""

    checkpoint: str
    backend: str = "torch"
    device: str = "cpu"
    tokenizer: str = "simple"
    max_batch_size: int = 32
    batch_timeout_ms: float = 10.0
    max_sentences: int = 256  # per request
    max_sentence_tokens: int = 10_000  # per sentence; longer than the model's chunk length is fine (chunked)
    threads: int = 0  # torch's intra-op threads per process; 0: its default


class PredictRequest(BaseModel):
    """Exactly one of ``text``, ``tokens`` or ``sentences`` (each a text or a token list)."""

    model_config = ConfigDict(extra="forbid")
    text: str | None = None
    tokens: list[str] | None = None
    sentences: list[str | list[str]] | None = None


class Batcher:
    """Dynamic batching: requests' sentences queue up; a batch forms when the next request would take it over
    ``max_batch_size`` sentences (that request starts the next batch) or the oldest has waited ``timeout``, and
    runs through the predictor, in one forward pass, in the event loop's own thread.

    Not in a worker thread: there, the predictor's Python code and the loop's request handling take the GIL
    and the cores from each other, and on 2 CPU cores the server reached 0.47x the offline predictor's
    tokens/s at 32 clients, against 0.75x this way (``benchmarks/serve_load.py``). Requests that arrive
    during a batch wait in the socket buffers and join the next one."""

    def __init__(self, predictor: Predictor, max_batch_size: int, timeout: float) -> None:
        self.predictor, self.max_batch_size, self.timeout = predictor, max_batch_size, timeout
        self.queue: asyncio.Queue[tuple[list[list[str]], asyncio.Future]] = asyncio.Queue()
        self.batch_sizes: Counter[int] = Counter()
        self.requests = self.sentences = 0
        self.in_flight = 0  # requests received and not yet answered
        self.busy_s = 0.0  # time spent in the predictor: how busy batching keeps the model

    async def predict(self, sentences: list[list[str]]) -> list[dict[str, Any]]:
        future = asyncio.get_running_loop().create_future()
        self.in_flight += 1
        try:
            await self.queue.put((sentences, future))
            return await future
        finally:
            self.in_flight -= 1

    async def run(self) -> None:
        """Form and run batches until cancelled; a failing batch fails its requests, not the server."""
        loop = asyncio.get_running_loop()
        next_first = None  # a request that would have overfilled the last batch: it starts this one
        while True:
            waiting = [next_first or await self.queue.get()]
            next_first, size, deadline = None, len(waiting[0][0]), loop.time() + self.timeout
            while size < self.max_batch_size and (left := deadline - loop.time()) > 0:
                try:
                    request = await asyncio.wait_for(self.queue.get(), left)
                except TimeoutError:
                    break
                if size + len(request[0]) > self.max_batch_size:  # a second, small forward pass costs more than
                    next_first = request  # waiting for the next batch
                    break
                waiting.append(request)
                size += len(request[0])
            flat = [sentence for sentences, _ in waiting for sentence in sentences]
            self.batch_sizes[len(flat)] += 1
            self.requests, self.sentences = self.requests + len(waiting), self.sentences + len(flat)
            started = loop.time()
            try:
                records = self.predictor(flat)  # blocks the loop for one batch, deliberately (see above)
            except Exception as error:  # noqa: BLE001  (reported to each waiting request)
                for _, future in waiting:
                    future.set_exception(error)
                continue
            finally:
                self.busy_s += loop.time() - started
            start = 0
            for sentences, future in waiting:
                future.set_result(records[start : start + len(sentences)])
                start += len(sentences)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application; without ``settings``, those the ``seqmodels-serve`` command put in the environment."""
    settings = settings or Settings(**json.loads(os.environ[SETTINGS_ENV]))
    tokenize = TOKENIZERS[settings.tokenizer]
    state: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.threads:  # set in each worker process: spawned workers start with torch's default
            torch.set_num_threads(settings.threads)
        predictor = load_predictor(settings.checkpoint, settings.backend, settings.device, settings.max_batch_size)
        state["batcher"] = batcher = Batcher(predictor, settings.max_batch_size, settings.batch_timeout_ms / 1000)
        state["info"] = info(predictor, settings)
        task = asyncio.create_task(batcher.run())
        yield
        task.cancel()  # uvicorn has finished the requests in flight by now

    app = FastAPI(title="seqmodels", version=package_version(), lifespan=lifespan,
                  description="Tags and/or classifies sentences with a seqmodels checkpoint.")  # fmt: skip

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"] if part != "body") or "body"
        message = "invalid JSON" if first["type"] == "json_invalid" else f"{where}: {first['msg']}"
        return JSONResponse({"error": message}, status_code=400 if first["type"] == "json_invalid" else 422)

    @app.exception_handler(StarletteHTTPException)  # FastAPI's own, and those FastAPI raises (a body not UTF-8: 400)
    async def refused(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)

    @app.post("/predict")
    async def predict(request: PredictRequest) -> JSONResponse:
        """The records ``seqmodels-predict`` writes: one for ``text`` or ``tokens``, a list for ``sentences``."""
        given = [name for name in ("text", "tokens", "sentences") if getattr(request, name) is not None]
        if len(given) != 1:
            got = ", ".join(given) or "none"
            raise HTTPException(422, f"give exactly one of text, tokens or sentences (got {got})")
        items = request.sentences if request.sentences is not None else [getattr(request, given[0])]
        if not items:
            raise HTTPException(422, "sentences: expected at least one sentence, got an empty list")
        if len(items) > settings.max_sentences:
            raise HTTPException(413, f"{len(items)} sentences; a request may have at most {settings.max_sentences}")
        sentences = [tokenize(item) if isinstance(item, str) else item for item in items]
        names = [f"sentences.{i}" for i in range(len(items))] if request.sentences is not None else given
        for name, tokens in zip(names, sentences):  # here, not in the batch: a bad request fails alone
            if problem := token_problem(tokens):
                raise HTTPException(422, f"{name}: {problem}")
        longest = max(len(s) for s in sentences)
        if longest > settings.max_sentence_tokens:
            raise HTTPException(413, f"a sentence of {longest} tokens; at most {settings.max_sentence_tokens}")
        records = [{"tokens": s, **r} for s, r in zip(sentences, await state["batcher"].predict(sentences))]
        # already JSON-ready: a JSONResponse skips FastAPI's jsonable_encoder, which walks every probability
        return JSONResponse(records if request.sentences is not None else records[0])

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/info")
    async def model_info() -> dict[str, Any]:
        return state["info"]

    @app.get("/stats")
    async def stats() -> dict[str, Any]:
        batcher = state["batcher"]
        return {"requests": batcher.requests, "sentences": batcher.sentences, "in_flight": batcher.in_flight,
                "pid": os.getpid(), "busy_s": round(batcher.busy_s, 3),
                "threads": torch.get_num_threads(),  # in the model's thread
                "batch_sizes": {str(size): n for size, n in sorted(batcher.batch_sizes.items())}}  # fmt: skip

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def info(predictor: Predictor, settings: Settings) -> dict[str, Any]:
    """What ``/info`` answers: the heads with their classes, the model's settings, the serving settings."""
    model = predictor.model
    heads = {name: {"reads": head.reads, "classes": head.classes if head.confusion_report else len(head.classes)}
             for name, head in model.heads.items()}  # fmt: skip
    settings_shown = {k: v for k, v in model.hparams.items() if k not in ("vocab",) and not k.startswith("_")}
    return {"version": package_version(), "heads": heads, "model": json.loads(json.dumps(settings_shown, default=str)),
            "serving": asdict(settings) | {"checkpoint": Path(settings.checkpoint).name}}  # fmt: skip


def parse_args(argv: list[str] | None) -> tuple[Settings, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="seqmodels-serve", description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("checkpoint")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="server processes, each with the model")
    parser.add_argument("--max-batch-size", type=int, default=32, help="sentences per batch")
    parser.add_argument("--batch-timeout-ms", type=float, default=10.0, help="how long a batch waits to fill")
    parser.add_argument("--backend", choices=BACKENDS, default="torch")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 (the torch backend)")
    parser.add_argument("--tokenizer", choices=TOKENIZERS, default="simple", help="for {'text': ...}")
    parser.add_argument("--max-sentences", type=int, default=256, help="per request")
    parser.add_argument("--max-sentence-tokens", type=int, default=10_000, help="per sentence")
    parser.add_argument("--threads", type=int, help="torch threads per worker (default: the CPU cores / workers)")
    args = parser.parse_args(argv)
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.workers)
    settings = Settings(args.checkpoint, args.backend, args.device, args.tokenizer, args.max_batch_size,
                        args.batch_timeout_ms, args.max_sentences, args.max_sentence_tokens, threads)  # fmt: skip
    return settings, args


def main(argv: list[str] | None = None) -> None:
    """The console script: check the checkpoint once here (one line if it is bad), then start uvicorn."""
    settings, args = parse_args(argv)
    try:
        load_predictor(settings.checkpoint, settings.backend, "cpu")  # fails fast; also builds the export once
    except (CheckpointError, ValueError, OSError) as error:
        raise SystemExit(f"seqmodels-serve: error: {error}") from None
    os.environ[SETTINGS_ENV] = json.dumps(asdict(settings))
    uvicorn.run("seqmodels.server:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                log_level="warning", timeout_graceful_shutdown=30)  # fmt: skip


if __name__ == "__main__":
    main()
