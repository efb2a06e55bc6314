"""seqmodels-serve's batcher: concurrent requests share batches, a large request is cut into bounded batches that
alternate with the others', and the backends predict what the model does."""

import asyncio
import contextlib
import shutil
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from test_server import SENTENCES, ready, trained_checkpoint

from seqmodels.inference.backends import load_predictor
from seqmodels.inference.server.app import Settings, create_app
from seqmodels.inference.server.batcher import Batcher


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return trained_checkpoint(tmp_path_factory)


def echo(batches: list):
    """A predictor that records each batch it is given and answers each sentence with its tokens."""

    def predictor(sentences):
        batches.append([" ".join(sentence) for sentence in sentences])
        return [{"tokens": sentence} for sentence in sentences]

    return predictor


@contextlib.asynccontextmanager
async def running_batcher(predictor, **options) -> AsyncIterator[Batcher]:
    """A Batcher (batches wait at most 1 ms to fill) forming batches in the running loop until the block ends."""
    batcher = Batcher(predictor, timeout=0.001, **options)
    task = asyncio.create_task(batcher.run())
    try:
        yield batcher
    finally:
        task.cancel()


async def answers(batcher: Batcher, requests: list[list[list[str]]]) -> list:
    task = asyncio.create_task(batcher.run())
    try:
        return await asyncio.gather(*(batcher.predict(request) for request in requests))
    finally:
        task.cancel()


def test_concurrent_requests_are_batched_together(checkpoint):
    settings = Settings(str(checkpoint), max_batch_size=16, batch_timeout_ms=200)
    with TestClient(create_app(settings)) as session, ThreadPoolExecutor(8) as pool:
        answered = list(pool.map(lambda s: ready(session).post("/predict", json={"text": s}).json(), SENTENCES * 4))
        sizes = {int(size): n for size, n in session.get("/stats").json()["batch_sizes"].items()}
    assert all("label" in a for a in answered) and max(sizes) > 1 and sum(sizes.values()) < 12


def test_batches_hold_at_most_max_batch_size_sentences_and_max_batch_tokens_tokens():
    """Requests are cut to fill each batch; a sentence longer than the token budget goes alone."""
    batches = []
    requests = [[[f"r{i}"]] * n for i, n in enumerate([3, 3, 3, 12, 2, 5])]
    long = [["w"] * 30, ["a"], ["b"] * 15, ["c"] * 6]  # 30 tokens, over the budget of 20: alone
    got = asyncio.run(answers(Batcher(echo(batches), max_batch_size=8, timeout=0.05, max_batch_tokens=20),
                              [*requests, long]))  # fmt: skip
    assert got == [[{"tokens": sentence} for sentence in request] for request in [*requests, long]]
    # short requests (they fit in one batch): r0 x3 r1 x3 r2 x2 | the long ones' turn: r3 x8 | short: r4 x2 r5 x5 r2
    # | long, in turn: the 30 tokens alone | r3 x4, then 1 + 15 tokens | 6 tokens
    assert [len(batch) for batch in batches] == [8, 8, 8, 1, 6, 1]
    assert batches[2] == ["r4", "r4", *["r5"] * 5, "r2"] and batches[3] == [" ".join(["w"] * 30)]
    assert all(len(batch) <= 8 and (len(batch) == 1 or sum(len(s.split()) for s in batch) <= 20) for batch in batches)


def test_a_small_request_waits_for_the_batch_running_not_for_a_large_requests_other_batches():
    """A 2 MB request in miniature: 5 batches' worth of sentences; a one-sentence request that arrives during its
    first batch runs next, in a batch of its own (not topped up with the large request's sentences, which would
    make it as slow as theirs), and is answered before the large request is."""
    batches, running, go = [], threading.Event(), threading.Event()

    def predictor(sentences):
        running.set()
        assert go.wait(30)
        return echo(batches)(sentences)

    async def scenario():
        async with running_batcher(predictor, max_batch_size=4) as batcher:
            large = asyncio.create_task(batcher.predict([["large"]] * 20))
            await asyncio.to_thread(running.wait, 30)  # the large request's first batch is in the model
            small = asyncio.create_task(batcher.predict([["small"]]))
            await asyncio.sleep(0)  # it is queued (the model is held)
            go.set()
            await small
            done_first = not large.done()
            await large
            return done_first

    assert asyncio.run(scenario())  # the small request was answered first
    assert batches[:3] == [["large"] * 4, ["small"], ["large"] * 4]


def held_model(batches: list):
    """A predictor held at each batch until released: (predictor, running, go); ``running`` is set once a batch is
    in it; each ``go`` lets one batch through."""
    running, go = threading.Semaphore(0), threading.Semaphore(0)

    def predictor(sentences):
        running.release()
        assert go.acquire(timeout=30)
        return echo(batches)(sentences)

    return predictor, running, go


def test_a_small_request_goes_ahead_of_a_large_request_that_arrived_before_it():
    """Two large requests: one running, one new; a one-sentence request that arrives after the new one still runs
    in the next batch: it waits for one large batch, not two."""
    batches = []
    predictor, running, go = held_model(batches)

    async def scenario():
        async with running_batcher(predictor, max_batch_size=4) as batcher:
            first = asyncio.create_task(batcher.predict([["first"]] * 8))
            await asyncio.to_thread(running.acquire, timeout=30)  # its first batch is in the model
            second = asyncio.create_task(batcher.predict([["second"]] * 8))
            small = asyncio.create_task(batcher.predict([["small"]]))
            await asyncio.sleep(0.01)  # both are queued (the model is held)
            for _ in range(5):
                go.release()
            await asyncio.gather(first, second, small)

    asyncio.run(scenario())
    assert batches[:2] == [["first"] * 4, ["small"]]


def test_a_stream_of_small_requests_does_not_starve_a_large_one():
    """While small requests keep the queue full, the large request still gets every other batch."""
    batches = []
    predictor, running, go = held_model(batches)

    async def scenario():
        async with running_batcher(predictor, max_batch_size=2) as batcher:
            large = asyncio.create_task(batcher.predict([["large"]] * 6))
            small = [asyncio.create_task(batcher.predict([["small"]])) for _ in range(12)]
            for _ in range(9):  # 3 large batches and 6 small ones
                await asyncio.to_thread(running.acquire, timeout=30)
                go.release()
            await large
            for request in small:
                request.cancel()

    asyncio.run(scenario())
    assert batches[:6] == [["small"] * 2, ["large"] * 2] * 3


@pytest.mark.parametrize("backend", ["onnx", "torchscript", "torch-int8"])
def test_the_other_backends_predict_what_the_model_does(checkpoint, tmp_path, backend):
    """Exports are made once, beside the checkpoint (copied here), keyed on its hash; int8 stays close."""
    pytest.importorskip("onnxruntime")
    copy = tmp_path / "model.ckpt"
    shutil.copy(checkpoint, copy)
    tokens = [s.split() for s in SENTENCES]
    expected = load_predictor(copy)(tokens)
    got = load_predictor(copy, backend)(tokens)
    if backend == "torch-int8":
        assert sum(a == b for e, g in zip(expected, got) for a, b in zip(e["tags"], g["tags"])) >= 0.8 * sum(
            len(t) for t in tokens)
        return
    for e, g in zip(expected, got):
        assert e["tags"] == g["tags"] and e["label"] == g["label"]
        assert g["tag_probs"] == pytest.approx(e["tag_probs"], abs=1e-4)
    assert len(list(tmp_path.glob(f"model.*.{'onnx' if backend == 'onnx' else 'pt'}"))) == 1
    load_predictor(copy, backend)  # reused, not made again
    assert len(list(tmp_path.glob("model.*"))) == 2


def test_int8_runs_packed_whatever_kernel_the_model_trained_with(checkpoint, tmp_path):
    """An int8 LSTM runs packed only: a checkpoint that names ``model.encoder.kernel: masked`` still predicts."""
    saved = torch.load(checkpoint, weights_only=True)
    saved["hyper_parameters"]["encoder"]["kernel"] = "masked"
    torch.save(saved, tmp_path / "masked.ckpt")
    tokens = [s.split() for s in SENTENCES]
    expected = load_predictor(tmp_path / "masked.ckpt")(tokens)
    got = load_predictor(tmp_path / "masked.ckpt", "torch-int8")(tokens)
    assert [len(record["tags"]) for record in got] == [len(record["tags"]) for record in expected]
    same = sum(a == b for e, g in zip(expected, got) for a, b in zip(e["tags"], g["tags"]))
    assert same >= 0.8 * sum(map(len, tokens))


def test_batches_run_concurrently_and_each_request_gets_its_records_in_order():
    """With ``concurrency`` 2, a second batch runs while the first is held; a request cut into two batches gets
    its records in its own order when its second batch ends first."""
    batches, in_model, release = [], threading.Semaphore(0), {}

    def predictor(sentences):
        key = sentences[0][0]
        release[key] = threading.Event()
        in_model.release()
        assert release[key].wait(30)
        return echo(batches)(sentences)

    async def scenario():
        async with running_batcher(predictor, max_batch_size=2, concurrency=2) as batcher:
            request = asyncio.create_task(batcher.predict([["a"], ["b"], ["c"], ["d"]]))
            for _ in range(2):  # both of its batches are in the model at once
                assert await asyncio.to_thread(in_model.acquire, timeout=30)
            release["c"].set()  # the second batch ends first
            await asyncio.sleep(0.05)
            release["a"].set()
            return await request

    assert asyncio.run(scenario()) == [{"tokens": [word]} for word in "abcd"]
    assert batches == [["c", "d"], ["a", "b"]]


def test_the_sentences_queued_are_shared_between_the_idle_model_processes():
    """Four one-sentence requests and two idle slots: two batches of two at once, not one of four while the other
    model process waits."""
    batches, in_model, go = [], threading.Semaphore(0), threading.Event()

    def predictor(sentences):
        in_model.release()
        assert go.wait(30)
        return echo(batches)(sentences)

    async def scenario():
        async with running_batcher(predictor, max_batch_size=8, concurrency=2) as batcher:
            requests = [asyncio.create_task(batcher.predict([[word]])) for word in "abcd"]
            for _ in range(2):
                assert await asyncio.to_thread(in_model.acquire, timeout=30)
            go.set()
            return await asyncio.gather(*requests)

    assert asyncio.run(scenario()) == [[{"tokens": [word]}] for word in "abcd"]
    assert sorted(batches) == [["a", "b"], ["c", "d"]]
