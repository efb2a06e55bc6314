"""seqmodels-serve in-process (FastAPI's TestClient): the records seqmodels-predict writes, one error shape for every
error class, readiness while loading and while draining, shedding past --max-queue, deadlines, Prometheus metrics,
offline /docs. The batcher's own tests are in test_server_batching.py, the real server's (SIGTERM, a 2 MB request
beside a probe, load, the demo page in Chromium) in test_server_faults.py."""

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from seqmodels.cli import main
from seqmodels.inference.backends import load_predictor
from seqmodels.inference.server.app import Settings, create_app
from seqmodels.inference.server.cli import parse_args
from seqmodels.inference.server.worker import ModelProcess, split_cores

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = ["the plot was not dull .", "i do n't think that the cast played well .", "great !"]


def trained_checkpoint(tmp_path_factory) -> Path:
    """The default multitask model (tags and a label), trained for a few epochs on a small synthetic corpus; once
    per session: each server test module's ``checkpoint`` fixture returns it."""
    root = tmp_path_factory.getbasetemp() / "serve"
    path = root / "logs" / "default" / "version_0" / "checkpoints" / "last.ckpt"
    if not path.exists():
        main(["fit", "--config", str(ROOT / "configs" / "default.yaml"), "--data.train_size", "600", "--data.val_size",
              "60", "--data.test_size", "60", "--trainer.max_epochs", "4", "--trainer.enable_progress_bar", "false",
              f"--data.cache_dir={root / 'cache'}", f"--trainer.logger.init_args.save_dir={root / 'logs'}"],
             config_dir=ROOT / "configs")  # fmt: skip
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return trained_checkpoint(tmp_path_factory)


def ready(session: TestClient) -> TestClient:
    """``session`` once ``/health/ready`` says the model has loaded (it loads in the background)."""
    for _ in range(600):
        if session.get("/health/ready").status_code == 200:
            return session
        time.sleep(0.05)
    raise AssertionError(f"not ready after 30 s: {session.get('/health/ready').json()}")


@pytest.fixture(scope="module")
def client(checkpoint):
    settings = Settings(str(checkpoint), max_batch_size=8, batch_timeout_ms=5, max_sentences=4, max_sentence_tokens=700,
                        max_body_bytes=20_000)  # fmt: skip
    with TestClient(create_app(settings)) as session:
        yield ready(session)


class Gate:
    """A predictor that holds each batch until ``open()``: the batches it was given are in ``batches``."""

    def __init__(self, predictor) -> None:
        self.predictor, self.opened, self.batches = predictor, threading.Event(), []

    def __call__(self, sentences):
        self.batches.append(sentences)
        assert self.opened.wait(30)
        return self.predictor(sentences)

    def open(self) -> None:
        self.opened.set()


def until(condition, what: str) -> None:
    for _ in range(600):
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within 30 s")


def test_predict_answers_the_records_seqmodels_predict_writes(client, checkpoint):
    predictor = load_predictor(checkpoint)
    tokens = [s.split() for s in SENTENCES]
    expected = [{"tokens": t, **r} for t, r in zip(tokens, predictor(tokens))]  # as one batch, as the server does
    alone = {"tokens": tokens[0], **predictor(tokens[:1])[0]}  # a batch of one, as the server's
    assert client.post("/predict", json={"tokens": tokens[0]}).json() == alone
    assert client.post("/predict", json={"text": "The plot wasn't dull."}).json()["tokens"] == \
        ["The", "plot", "was", "n't", "dull", "."]  # the simple tokenizer  # fmt: skip
    assert client.post("/predict", json={"sentences": [SENTENCES[0], tokens[1], SENTENCES[2]]}).json() == expected
    long = ["the", "film"] * 300  # 600 tokens: predicted in chunks of 512, as seqmodels-predict does
    assert client.post("/predict", json={"tokens": long}).json() == {"tokens": long, **predictor([long])[0]}


def chunked(body: bytes):
    """The body sent in pieces (Transfer-Encoding: chunked, no Content-Length)."""
    yield from (body[i : i + 4096] for i in range(0, len(body), 4096))


BIG = json.dumps({"text": "word " * 5000}).encode()  # over the client's 20,000 bytes
JSON = "application/json"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        (b"{not json", JSON, 400, "invalid JSON: Expecting property name enclosed in double quotes at character 1"),
        (b'{"text": "caf\xe9"}', JSON, 400,  # Latin-1, not UTF-8
         "unreadable JSON body: 'utf-8' codec can't decode byte 0xe9 in position 13: invalid continuation byte"),
        (b"[" * 5000 + b"]" * 5000, JSON, 400, "unreadable JSON body: maximum recursion depth exceeded"),
        (b'{"tokens": [' + b"1" * 5000 + b"]}", JSON, 400, "unreadable JSON body: Exceeds the limit (4300 digits)"),
        (b'{"text": "a"}', "text/plain", 415, "expected content-type application/json, got text/plain"),
        (b'{"text": "a"}', None, 415, "expected content-type application/json, got none"),
        (BIG, JSON, 413, f"a body of {len(BIG)} bytes; at most 20000 (--max-body-bytes)"),
        (chunked(BIG), JSON, 413, "a body of more than 20000 bytes; at most 20000 (--max-body-bytes)"),
        (b'{"txt": "x"}', JSON, 422, "txt: Extra inputs are not permitted"),
        (b"{}", JSON, 422, "give exactly one of text, tokens or sentences (got none)"),
        (b'{"text": "a", "tokens": ["a"]}', JSON, 422,
         "give exactly one of text, tokens or sentences (got text, tokens)"),
        (b'{"sentences": []}', JSON, 422, "sentences: expected at least one sentence, got an empty list"),
        (b'{"tokens": "a b"}', JSON, 422, "tokens: Input should be a valid list"),
        (b'{"sentences": ["a", "b", "c", "d", "e"]}', JSON, 413, "5 sentences; a request may have at most 4"),
        (json.dumps({"tokens": ["w"] * 701}).encode(), JSON, 413, "a sentence of 701 tokens; at most 700"),
        (b'{"tokens": [""]}', JSON, 422,
         "tokens: expected tokens of one or more characters, found an empty one (token 1)"),
        (b'{"sentences": ["a", ["b", ""]]}', JSON, 422,
         "sentences.1: expected tokens of one or more characters, found an empty one (token 2)"),
        (b'{"tokens": ["\\ud800"]}', JSON, 422,
         "tokens: expected Unicode text, found a lone surrogate U+D800 in token 1"),
        (b'{"text": "a \\udc80"}', JSON, 422, "text: expected Unicode text, found a lone surrogate U+DC80 in token 2"),
    ],
    ids=["invalid-json", "not-utf8", "deep-nesting", "5000-digits", "text-plain", "no-content-type", "too-large",
         "too-large-chunked", "unknown-field", "no-field", "two-fields", "empty-list", "wrong-type", "too-many",
         "too-long", "empty-token", "empty-token-in-sentences", "lone-surrogate", "lone-surrogate-in-text"],
)  # fmt: skip
def test_a_bad_request_gets_one_json_line_with_its_status_and_the_server_carries_on(
    client, body, content_type, status, message
):
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/predict", content=body, headers=headers)
    assert response.status_code == status and list(response.json()) == ["error"], response.text
    assert response.json()["error"].startswith(message) and "\n" not in response.text
    assert client.post("/predict", json={"text": "still serving"}).status_code == 200


def test_other_http_errors_and_a_bug_have_the_same_shape(checkpoint):
    with TestClient(create_app(Settings(str(checkpoint))), raise_server_exceptions=False) as session:
        assert ready(session).get("/nowhere").json() == {"error": "Not Found"}
        assert session.get("/predict").json() == {"error": "Method Not Allowed"}

        def bug(sentences):
            raise RuntimeError("a bug")

        session.app.state.serving.batcher.predictor = bug
        response = session.post("/predict", json={"text": "a"})
    assert response.status_code == 500
    assert response.json() == {"error": "internal error (RuntimeError); the server's log has the traceback"}


def test_info_lists_each_heads_fields_and_stats_the_batches(client):
    info = client.get("/info").json()
    assert info["heads"]["classifier"] == {"reads": "final", "fields": ["label", "label_probs"], "conllu": "comment",
                                           "classes": ["negative", "positive"]}  # fmt: skip
    tagger = info["heads"]["tagger"]
    assert tagger["reads"] == "outputs" and tagger["fields"][:2] == ["tags", "tag_probs"]
    assert "NOUN" in tagger["classes"]
    assert info["model"]["encoder"]["hidden_size"] == 128 and info["serving"]["max_batch_size"] == 8 and info["version"]
    assert client.post("/predict", json={"text": "the film"}).status_code == 200  # not relying on other tests' requests
    stats = client.get("/stats").json()
    assert stats["requests"] >= 1 and sum(stats["batch_sizes"].values()) >= 1 and stats["busy_s"] > 0
    assert stats["in_flight"] == stats["queued"] == 0  # every request so far has had its answer


def test_threads_and_model_processes_are_set_in_the_models_processes(checkpoint):
    before = torch.get_num_threads()
    with TestClient(create_app(Settings(str(checkpoint), model_processes=3, threads=1))) as session:
        stats = ready(session).get("/stats").json()
        info = session.get("/info").json()["serving"]
    assert stats["threads"] == info["threads"] == 1 and stats["model_processes"] == info["model_processes"] == 3
    assert len(set(stats["model_pids"])) == 3 and os.getpid() not in stats["model_pids"]
    assert torch.get_num_threads() == before  # the server's process keeps its own
    assert parse_args(["model.ckpt", "--model-processes", "2", "--threads", "4"]).threads == 4
    assert parse_args(["model.ckpt"]).model_processes == parse_args(["model.ckpt"]).threads == 0  # the defaults


@pytest.mark.parametrize(
    ("torch_threads", "asked", "device", "started"),
    [(4, (0, 0), "cpu", (2, 2)), (5, (0, 0), "cpu", (2, 2)), (1, (0, 0), "cpu", (1, 1)), (4, (0, 0), "cuda", (1, 4)),
     (4, (3, 0), "cpu", (3, 1)), (4, (0, 3), "cpu", (1, 3)), (4, (0, 2), "cpu", (2, 2)), (2, (0, 2), "cpu", (1, 2)),
     (2, (1, 0), "cpu", (1, 2))],
)
def test_the_cores_are_shared_between_the_model_processes(torch_threads, asked, device, started, monkeypatch):
    """torch's threads (one per core, or OMP_NUM_THREADS) are the budget: two processes on the CPU by default, one
    where ``--threads`` alone leaves no room for two (``--threads 2`` on 2 cores: one process of two threads, as
    before)."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: torch_threads)
    assert split_cores(*asked, device) == started


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--max-batch-size", "0"], {}, "argument --max-batch-size: expected a whole number above 0, found '0'"),
        (["--max-batch-tokens", "0"], {}, "argument --max-batch-tokens: expected a whole number above 0, found '0'"),
        (["--threads", "-1"], {}, "argument --threads: expected a whole number above 0, found '-1'"),
        (["--workers", "0"], {}, "argument --workers: expected a whole number above 0, found '0'"),
        (["--request-timeout", "-1"], {}, "argument --request-timeout: expected a number, 0 or more, found '-1'"),
        ([], {"OMP_NUM_THREADS": "abc"}, "OMP_NUM_THREADS='abc': expected a number of threads above 0"),
    ],
    ids=["batch-size-0", "batch-tokens-0", "threads-negative", "workers-0", "timeout-negative", "omp-not-a-number"],
)
def test_an_option_out_of_range_is_a_usage_error(args, env, message, monkeypatch, capsys):
    """Refused before anything starts: a batch of 0 sentences or tokens spun the batcher at 100% CPU, deaf to probes
    and SIGTERM; --threads -1 left a server that never became ready; a non-number OMP_NUM_THREADS was a traceback."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stopped:
        parse_args(["model.ckpt", *args])
    assert stopped.value.code == 2 and message in capsys.readouterr().err


def test_readiness_is_503_while_the_model_loads_and_liveness_is_200(checkpoint, monkeypatch):
    gate = Gate(lambda args: load(*args))
    load = ModelProcess.load
    monkeypatch.setattr(ModelProcess, "load", lambda *args: gate(args))  # each of the model's processes
    with TestClient(create_app(Settings(str(checkpoint)))) as session:
        until(lambda: gate.batches, "loading did not start")
        assert session.get("/health/live").json() == {"status": "ok"}
        for path in ("/health/ready", "/health"):
            response = session.get(path)
            assert response.status_code == 503 and response.json() == {"error": "the model is still loading"}
        refused = session.post("/predict", json={"text": "a"})
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        gate.open()
        assert ready(session).post("/predict", json={"text": "a"}).status_code == 200


def test_draining_turns_readiness_503_closes_connections_and_past_its_timeout_503s_the_requests_waiting(
    checkpoint, caplog, monkeypatch
):
    # seqmodels-serve's log config (run in-process by another test) stops "seqmodels" records at its own handler
    monkeypatch.setattr(logging.getLogger("seqmodels"), "propagate", True)
    with TestClient(create_app(Settings(str(checkpoint), drain_timeout_s=0.5))) as session:
        serving = ready(session).app.state.serving
        gate = serving.batcher.predictor = Gate(serving.batcher.predictor)
        waiting = threading.Thread(target=lambda: setattr(gate, "answer", session.post("/predict", json={"text": "a"})))
        waiting.start()
        until(lambda: gate.batches, "the request did not reach the model")
        session.portal.call(serving.drain.begin)  # what SIGTERM does (signal handlers are the main thread's)
        response = session.get("/health/ready")
        assert response.status_code == 503 and response.json() == {"error": "draining: the server is shutting down"}
        assert response.headers["connection"] == "close"  # so that no client sends more on this connection
        waiting.join(30)
        gate.open()
        late = session.post("/predict", json={"text": "b"})
    assert gate.answer.status_code == 503
    assert gate.answer.json() == {"error": "draining: not answered within --drain-timeout 0.5 s"}
    assert late.status_code == 503 and late.json()["error"].startswith("draining: past --drain-timeout")
    assert "drain: 1 requests not answered within --drain-timeout 0.5 s got a 503" in caplog.text


def test_readiness_turns_503_once_a_models_process_is_killed_without_waiting_for_a_request(checkpoint):
    with TestClient(create_app(Settings(str(checkpoint), model_processes=2))) as session:
        serving = ready(session).app.state.serving
        os.kill(serving.model.pids[1], signal.SIGKILL)
        until(lambda: session.get("/health/ready").status_code == 503, "readiness stayed 200")
        why = "the model's process stopped (killed, out of memory or crashed)"
        assert session.get("/health/ready").json() == {"error": why}
        answer = session.post("/predict", json={"text": "a"})
        assert answer.status_code == 503 and answer.json() == {"error": why}
        assert session.get("/health/live").status_code == 200


def test_past_max_queue_a_request_is_shed_with_503_and_retry_after(checkpoint):
    settings = Settings(str(checkpoint), max_sentences=4, max_queue=4, batch_timeout_ms=1, model_processes=1)
    with TestClient(create_app(settings)) as session:
        serving = ready(session).app.state.serving
        gate = serving.batcher.predictor = Gate(serving.batcher.predictor)
        answers = []

        def send(sentences: int) -> threading.Thread:
            body = {"sentences": ["a"] * sentences}
            return threading.Thread(target=lambda: answers.append(session.post("/predict", json=body)))

        send = [send(1), send(4)]
        send[0].start()
        until(lambda: gate.batches, "the first request did not reach the model")  # it holds the model
        send[1].start()
        until(lambda: serving.batcher.queued == 4, "the second request was not queued")  # it fills the queue
        shed = session.post("/predict", json={"text": "one more"})
        gate.open()
        [thread.join(30) for thread in send]
    assert shed.status_code == 503 and shed.headers["retry-after"] == "1"
    assert shed.json() == {"error": "this request's 1 sentence(s) would take the queue from 4 to 5, past --max-queue 4"}
    assert [answer.status_code for answer in answers] == [200, 200]


def test_past_request_timeout_a_request_gets_504_and_its_other_batches_are_dropped(checkpoint):
    settings = Settings(str(checkpoint), max_batch_size=1, batch_timeout_ms=1, request_timeout_s=0.3,
                        model_processes=1)  # one batch at a time  # fmt: skip
    with TestClient(create_app(settings)) as session:
        serving = ready(session).app.state.serving
        gate = serving.batcher.predictor = Gate(serving.batcher.predictor)
        late = session.post("/predict", json={"sentences": ["one", "two", "three"]})  # three batches: one held
        gate.open()
        assert session.post("/predict", json={"text": "next"}).status_code == 200
    assert late.status_code == 504
    assert late.json() == {"error": "not answered within --request-timeout 0.3 s; its remaining batches were dropped"}
    assert gate.batches == [[["one"]], [["next"]]]  # "two" and "three" never ran


def test_metrics_in_the_prometheus_format_count_what_was_sent(checkpoint):
    sent = {200: [{"text": "a good film"}, {"sentences": ["a", "b c"]}, {"tokens": ["x"]}], 422: [{}, {"txt": "a"}]}
    with TestClient(create_app(Settings(str(checkpoint), max_sentences=2))) as session:
        for body in [*sent[200], *sent[422]]:
            ready(session).post("/predict", json=body)
        session.post("/predict", content=b"{}", headers={"content-type": "text/plain"})
        session.post("/predict", json={"sentences": ["a"] * 3})  # 413
        text = session.get("/metrics").text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}  # fmt: skip
    by_status = {dict(labels)["status"]: value for (name, labels), value in samples.items()
                 if name == "seqmodels_requests_total"}  # fmt: skip
    assert by_status == {"200": 3, "422": 2, "415": 1, "413": 1}
    assert samples["seqmodels_sentences_total", ()] == 4 and samples["seqmodels_tokens_total", ()] == 7
    assert samples["seqmodels_batch_sentences_sum", ()] == 4 and samples["seqmodels_request_seconds_count", ()] == 7
    assert samples["seqmodels_in_flight_requests", ()] == samples["seqmodels_queue_sentences", ()] == 0
    assert samples["seqmodels_model_load_seconds", ()] > 0


def test_docs_work_offline(client):
    page = client.get("/docs").text
    assets = [part.split('"')[0] for part in page.split('src="')[1:]] + [part.split('"')[0] for part in
                                                                        page.split('href="')[1:]]  # fmt: skip
    assert assets and all(asset.startswith("/") for asset in assets)  # nothing from a CDN
    assert all(client.get(asset).status_code == 200 for asset in assets)
    assert client.get("/openapi.json").json()["paths"]["/predict"]
