"""``seqmodels-serve``: a checkpoint behind HTTP, with dynamic batching and a demo page (FastAPI + uvicorn).

``seqmodels-serve CHECKPOINT [--host 127.0.0.1] [--port 8000] [--workers N] [--model-processes N] [--threads N]
[--backend torch|torch-int8|onnx|torchscript] [--device cpu|cuda] [--precision 32|bf16]
[--tokenizer simple|whitespace] [limits]``

- ``POST /predict``: ``{"text": "..."}`` (tokenized by ``--tokenizer``), ``{"tokens": [...]}``, or
  ``{"sentences": [...]}`` (texts and/or token lists). The answer is the record ``seqmodels-predict`` writes
  for the same input (a list of them for ``sentences``): ``tokens``, and every head's fields.
- ``GET /health/live`` (the process answers), ``GET /health/ready`` and ``GET /health`` (200 once the model has
  loaded, 503 while it loads and while draining), ``GET /metrics`` (Prometheus), ``GET /info`` (the heads with
  their fields, tag and label sets, the model's settings, the version), ``GET /stats``, ``GET /docs`` (OpenAPI,
  offline), and the demo page at ``/``.

Concurrent requests' sentences are batched (:mod:`.batcher`): at most ``--max-batch-size`` sentences and
``--max-batch-tokens`` tokens per forward pass, a large request cut into several batches that alternate with the
others', run by model processes of their own (two on the CPU, each on half the cores: :mod:`.worker`). Every error
is ``{"error": "one line"}`` (:mod:`.errors`). SIGTERM drains (:mod:`.drain`): readiness turns 503, new connections
are refused, every request received is answered (a 503 past ``--drain-timeout``), then the process exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import signal
import sys
from dataclasses import asdict

import uvicorn
from uvicorn.config import LOGGING_CONFIG
from uvicorn.supervisors import Multiprocess

from seqmodels.arguments import NON_NEGATIVE, POSITIVE_INT
from seqmodels.checkpoints import CheckpointError
from seqmodels.inference.backends import BACKENDS, load_predictor
from seqmodels.inference.predictor import PRECISIONS, TOKENIZERS
from seqmodels.inference.server.app import SETTINGS_ENV, Settings
from seqmodels.inference.server.drain import DrainingHttpProtocol, DrainingServer
from seqmodels.inference.server.errors import BoundedHttpProtocol

DRAIN_MARGIN_S = 5.0  # past --drain-timeout, the time the 503s have to go out before uvicorn cancels what is left
# How long uvicorn's supervisor (--workers N) waits for a worker's answer before killing it as hung: its 5 s default
# killed workers still importing torch and starting their model processes on a busy machine, again and again.
WORKER_HEALTHCHECK_S = 60


class HttpProtocol(DrainingHttpProtocol, BoundedHttpProtocol):
    """uvicorn's HTTP/1.1 protocol on httptools' C parser (with h11's pure-Python one, one sentence per request got
    about a tenth fewer tokens/s: benchmarks/README.md), with the drain's grace for idle connections and the request
    head bounded."""


def parse_args(argv: list[str] | None) -> Settings:
    """The command line as Settings; each option's dest is a Settings field."""
    parser = argparse.ArgumentParser(prog="seqmodels-serve", description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("checkpoint")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=POSITIVE_INT, default=1, help="server processes, each with the model")
    parser.add_argument("--model-processes", type=POSITIVE_INT, default=0,
                        help="processes per worker that each run batches on a copy of the model (default: 2 on the "
                        "CPU where the cores allow two of --threads, else 1; 1 on a GPU)")  # fmt: skip
    parser.add_argument("--threads", type=POSITIVE_INT, default=0,
                        help="torch threads per model process (default: torch's threads, one per core or "
                        "$OMP_NUM_THREADS, shared between the model processes)")  # fmt: skip
    parser.add_argument("--backend", choices=BACKENDS, default="torch")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 (the torch backend)")
    parser.add_argument("--precision", choices=PRECISIONS, default="32",
                        help="bf16: the forward pass under bf16 autocast (the torch backend; on a CPU with bf16 "
                        "instructions)")  # fmt: skip
    parser.add_argument("--tokenizer", choices=TOKENIZERS, default="simple", help="for {'text': ...}")
    limits = parser.add_argument_group("batching and limits")
    limits.add_argument("--max-batch-size", type=POSITIVE_INT, default=32, help="sentences per forward pass")
    limits.add_argument("--max-batch-tokens", type=POSITIVE_INT, default=8192,
                        help="tokens per forward pass (a longer sentence goes alone)")  # fmt: skip
    limits.add_argument("--batch-timeout-ms", type=NON_NEGATIVE, default=10.0, help="how long a batch waits to fill")
    limits.add_argument("--max-sentences", type=POSITIVE_INT, default=256, help="per request (413 past it)")
    limits.add_argument("--max-sentence-tokens", type=POSITIVE_INT, default=10_000, help="per sentence (413 past it)")
    limits.add_argument("--max-body-bytes", type=POSITIVE_INT, default=16 * 2**20, help="per request (413 past it)")
    limits.add_argument("--max-queue", type=POSITIVE_INT, default=4096,
                        help="sentences waiting for a batch (503 past it)")
    limits.add_argument("--request-timeout", type=NON_NEGATIVE, default=0.0, dest="request_timeout_s",
                        help="seconds per request (504 past it; 0, the default: none, since a request within the "
                             "limits above may take minutes on a CPU)")  # fmt: skip
    limits.add_argument("--drain-timeout", type=NON_NEGATIVE, default=30.0, dest="drain_timeout_s",
                        help="seconds SIGTERM waits for the requests received (503 for the rest past it)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.max_queue < args.max_sentences:
        parser.error(f"--max-queue {args.max_queue} is below --max-sentences {args.max_sentences}: a request of "
                     "--max-sentences sentences could never be queued")  # fmt: skip
    omp = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()  # "2" or OpenMP's list of levels "2,1"
    if not args.threads and omp and not (omp.isdigit() and int(omp) > 0):
        parser.error(f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']!r}: expected a number of threads above 0 "
                     "(or give --threads)")  # fmt: skip
    return Settings(**vars(args))  # each option's dest is a Settings field


def main(argv: list[str] | None = None) -> None:
    """The console script: check the checkpoint once here (one line if it is bad), then start uvicorn."""
    settings = parse_args(argv)
    try:
        load_predictor(settings.checkpoint, settings.backend, "cpu",  # fails fast; also builds the export once
                       precision=settings.precision)  # fmt: skip
    except (CheckpointError, ValueError, OSError) as error:
        raise SystemExit(f"seqmodels-serve: error: {error}") from None
    os.environ[SETTINGS_ENV] = json.dumps(asdict(settings))
    # uvicorn re-raises SIGTERM once it has shut down; a drain that answered everything exits 0, not -15
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    log_config = copy.deepcopy(LOGGING_CONFIG)  # uvicorn's, with the start-up line and the drain's warnings
    log_config["loggers"]["seqmodels"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    graceful_s = math.ceil(settings.drain_timeout_s + DRAIN_MARGIN_S)
    config = uvicorn.Config("seqmodels.inference.server.app:create_app", factory=True, host=settings.host,
                            port=settings.port, workers=settings.workers, http=HttpProtocol,
                            log_config=log_config, log_level="warning",
                            timeout_graceful_shutdown=graceful_s,
                            timeout_worker_healthcheck=WORKER_HEALTHCHECK_S)  # fmt: skip
    if settings.workers > 1:  # uvicorn's supervisor, with uvicorn's server in each worker (see DrainingServer)
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises SIGINT too, once it has drained
            DrainingServer(config).run()


if __name__ == "__main__":
    main()
